//! Analyst commands: parties, submit, jobs, watch, result, cancel.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tonic::transport::Channel;
use treaty_analyst::{Analyst, Connect, JobResult, KeySource};
use treaty_job::file::JobFile;
use treaty_proto::v1::{JobState, coordinator_client::CoordinatorClient};
use treaty_trust::roster::Roster;

use crate::{TlsArgs, keys, print};

#[derive(Args, Debug, Clone)]
pub(crate) struct ConnectArgs {
    /// Coordinator URL.
    #[arg(
        long,
        env = "TREATY_COORDINATOR",
        default_value = "https://127.0.0.1:7000"
    )]
    coordinator: String,
    /// TLS name of the coordinator's certificate.
    #[arg(long, default_value = "coordinator")]
    coordinator_name: String,
    /// Your name in the PKI directory (your NAME.pem / NAME.key are used).
    #[arg(long = "as", env = "TREATY_NAME", default_value = "analyst")]
    name: String,
    #[command(flatten)]
    tls: TlsArgs,
    /// Your Ed25519 signing key (NAME.sign.key from `treaty init`); default
    /// `<pki>/<NAME>.sign.key`. Jobs and cancellations are signed: the coordinator and each
    /// party check it.
    #[arg(long, env = "TREATY_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
    /// The consortium's roster: the coordinator is dialled trusting only the CA the roster lists
    /// for it, and `treaty result` verifies the parties' shares with the keys it pins.
    #[arg(long, env = "TREATY_ROSTER")]
    roster: Option<PathBuf>,
    /// Machine-readable output (JSON).
    #[arg(long, global = true)]
    json: bool,
}

impl ConnectArgs {
    fn roster(&self) -> anyhow::Result<Option<Roster>> {
        self.roster
            .as_deref()
            .map(Roster::load)
            .transpose()
            .map_err(Into::into)
    }

    /// The analyst's Ed25519 signing key: `--signing-key`, else `<pki>/<NAME>.sign.key` if it
    /// exists (reading commands need none).
    fn signing_key(&self) -> anyhow::Result<Option<ed25519_dalek::SigningKey>> {
        let path = match (&self.signing_key, &self.tls.pki) {
            (Some(path), _) => path.clone(),
            (None, Some(dir)) => {
                let path = dir.join(format!("{}.sign.key", self.name));
                if !path.exists() {
                    return Ok(None);
                }
                path
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(treaty_trust::identity::read_signing_key(&path)?))
    }

    /// Connects as this analyst.
    pub(crate) async fn analyst(&self) -> anyhow::Result<Analyst> {
        Analyst::connect(Connect {
            url: &self.coordinator,
            tls: self.tls.identity(&self.name)?,
            server_name: &self.coordinator_name,
            roster: self.roster()?,
            name: &self.name,
            signing_key: self.signing_key()?,
        })
        .await
        .with_context(|| format!("connecting to the coordinator at {}", self.coordinator))
    }

    pub(crate) async fn client(&self) -> anyhow::Result<CoordinatorClient<Channel>> {
        Ok(self.analyst().await?.client().clone())
    }
}

#[derive(Args, Debug)]
pub(crate) struct SubmitArgs {
    /// The job file (TOML).
    job: PathBuf,
    /// The recipient's HPKE public key file (from `treaty init`); overrides output.public_key.
    #[arg(long)]
    recipient_key: Option<PathBuf>,
    /// Follow the job until it ends.
    #[arg(long)]
    watch: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Args, Debug)]
pub(crate) struct JobsArgs {
    /// How many jobs to list, newest first (fetched from the coordinator in pages of at most 200).
    #[arg(long, default_value_t = 20)]
    limit: u32,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Args, Debug)]
pub(crate) struct JobArgs {
    /// The job id.
    job: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Args, Debug)]
pub(crate) struct ResultArgs {
    /// The job id.
    job: String,
    /// Your HPKE private key file (NAME.hpke.key from `treaty init`).
    #[arg(long, env = "TREATY_RESULT_KEY")]
    key: PathBuf,
    /// The parties' identity keys, to verify every party's signature on its share before
    /// anything is opened: the JSON `treaty audit registry` writes, obtained out of band (e.g.
    /// from each party's `treaty audit key`). Without it the coordinator's registry is used,
    /// which trusts the coordinator for the keys.
    #[arg(long, env = "TREATY_PARTY_KEYS")]
    party_keys: Option<PathBuf>,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Args, Debug)]
pub(crate) struct CancelArgs {
    /// The job id.
    job: String,
    /// Why (shown in the job).
    #[arg(long, default_value = "")]
    reason: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub(crate) async fn parties(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let parties = args.analyst().await?.parties().await?;
    if args.json {
        println!(
            "{}",
            serde_json::Value::Array(parties.iter().map(print::party_json).collect())
        );
    } else {
        print::parties(&parties);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.job)
        .with_context(|| format!("reading {}", args.job.display()))?;
    let key = args
        .recipient_key
        .as_deref()
        .map(keys::read_public_key)
        .transpose()?;
    let spec = JobFile::parse(&text)
        .and_then(|f| f.to_spec(key))
        .with_context(|| format!("in {}", args.job.display()))?;
    let mut analyst = args.connect.analyst().await?;
    let job_id = analyst.submit(spec).await?;
    if args.connect.json && !args.watch {
        println!("{}", serde_json::json!({ "job_id": job_id }));
    } else if !args.connect.json {
        println!("submitted {job_id}");
    }
    if args.watch {
        return follow(&mut analyst, &job_id, args.connect.json).await;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn jobs(args: JobsArgs) -> anyhow::Result<ExitCode> {
    let jobs = args.connect.analyst().await?.jobs(args.limit).await?;
    if args.connect.json {
        println!(
            "{}",
            serde_json::Value::Array(jobs.iter().map(print::job_json).collect())
        );
    } else {
        print::jobs(&jobs);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn watch(args: JobArgs) -> anyhow::Result<ExitCode> {
    let mut analyst = args.connect.analyst().await?;
    follow(&mut analyst, &args.job, args.connect.json).await
}

async fn follow(analyst: &mut Analyst, job_id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let mut bar = (!json).then(print::JobBar::new);
    let job = analyst
        .watch(job_id, |job| match &mut bar {
            Some(bar) => bar.update(job),
            None => println!("{}", print::job_json(job)),
        })
        .await?;
    if let Some(bar) = bar {
        bar.finish(&job);
    }
    Ok(if job.state() == JobState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Where `treaty result` takes the keys it verifies the parties' result signatures with:
/// `--party-keys FILE` (out of band, trustworthy), else the roster's (`--roster`, the keys the
/// consortium agreed on), else — with a warning — the coordinator's audit registry.
fn key_source(file: Option<&Path>, connect: &ConnectArgs) -> anyhow::Result<KeySource> {
    if let Some(file) = file {
        return Ok(KeySource::Given(treaty_analyst::client::read_party_keys(
            file,
        )?));
    }
    if connect.roster.is_some() {
        return Ok(KeySource::Roster);
    }
    eprintln!(
        "warning: no --party-keys: the parties' signature keys come from the coordinator, so \
         the coordinator's word is trusted for them (pass --party-keys FILE, saved from \
         `treaty audit registry` and checked out of band, to verify against keys you trust)"
    );
    Ok(KeySource::Coordinator)
}

pub(crate) async fn result(args: ResultArgs) -> anyhow::Result<ExitCode> {
    let key = keys::read_secret_key(&args.key)?;
    let mut analyst = args.connect.analyst().await?;
    let source = key_source(args.party_keys.as_deref(), &args.connect)?;
    let keys = analyst.party_keys(source).await?;
    let result = analyst
        .result(&args.job, &key, &keys)
        .await
        .context("opening the sealed result")?;
    if args.connect.json {
        let json = match &result {
            JobResult::Psi { reports } => print::psi_json(reports),
            JobResult::Stats(r) => serde_json::to_value(r)?,
            JobResult::Train(r) => serde_json::to_value(r)?,
            JobResult::Score(r) => serde_json::to_value(r)?,
            JobResult::FheScore(r) => serde_json::to_value(r)?,
            _ => serde_json::to_value(&result)?,
        };
        println!(
            "{}",
            serde_json::json!({ "job_id": args.job, "result": json })
        );
    } else {
        match &result {
            JobResult::Psi { reports } => print::psi(reports),
            JobResult::Stats(r) => print::stats(r),
            JobResult::Train(r) => print::train(r),
            JobResult::Score(r) => print::score(r),
            JobResult::FheScore(r) => print::fhe_score(r, 20),
            _ => println!("{}", serde_json::to_string_pretty(&result)?),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn cancel(args: CancelArgs) -> anyhow::Result<ExitCode> {
    let job = args
        .connect
        .analyst()
        .await?
        .cancel(&args.job, &args.reason)
        .await?;
    if args.connect.json {
        println!("{}", print::job_json(&job));
    } else {
        println!(
            "{} is {}: {}",
            job.id,
            print::state(job.state()),
            job.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}
