//! Analyst commands: parties, submit, jobs, watch, result, cancel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use ed25519_dalek::VerifyingKey;
use tonic::transport::Channel;
use treaty_job::file::JobFile;
use treaty_proto::v1::{self as pb, JobState, coordinator_client::CoordinatorClient};
use treaty_trust::client::{Dial, connect};

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
    fn roster(&self) -> anyhow::Result<Option<treaty_trust::roster::Roster>> {
        self.roster
            .as_deref()
            .map(treaty_trust::roster::Roster::load)
            .transpose()
            .map_err(Into::into)
    }

    /// The analyst's Ed25519 signing key: `--signing-key`, else `<pki>/<NAME>.sign.key`.
    fn signing_key(&self) -> anyhow::Result<ed25519_dalek::SigningKey> {
        let path = self
            .signing_key
            .clone()
            .or_else(|| {
                self.tls
                    .pki
                    .as_ref()
                    .map(|d| d.join(format!("{}.sign.key", self.name)))
            })
            .context("no signing key: pass --signing-key FILE (NAME.sign.key from treaty init)")?;
        Ok(treaty_trust::identity::read_signing_key(&path)?)
    }

    pub(crate) async fn client(&self) -> anyhow::Result<CoordinatorClient<Channel>> {
        let mut tls = self.tls.identity(&self.name)?;
        let roster = self.roster()?;
        let coordinator = roster.as_ref().and_then(|r| r.coordinator());
        if let (Some(t), Some(c)) = (&tls, coordinator) {
            tls = Some(t.with_ca(&c.ca_pem)?);
        }
        connect(Dial {
            url: &self.coordinator,
            tls: tls.as_ref(),
            server_name: coordinator.map_or(&self.coordinator_name, |c| &c.identity.name),
        })
        .await
        .with_context(|| format!("connecting to the coordinator at {}", self.coordinator))
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
    /// How many jobs to list.
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
    let mut c = args.client().await?;
    let parties = c
        .list_parties(pb::ListPartiesRequest {})
        .await?
        .into_inner()
        .parties;
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
    let key = args.connect.signing_key()?;
    let submission = treaty_trust::identity::sign_now(spec, &args.connect.name, &key)?;
    let mut c = args.connect.client().await?;
    let job_id = c
        .submit_job(pb::SubmitJobRequest {
            submission: Some(submission),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner()
        .job_id;
    if args.connect.json && !args.watch {
        println!("{}", serde_json::json!({ "job_id": job_id }));
    } else if !args.connect.json {
        println!("submitted {job_id}");
    }
    if args.watch {
        return follow(&mut c, &job_id, args.connect.json).await;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn jobs(args: JobsArgs) -> anyhow::Result<ExitCode> {
    let mut c = args.connect.client().await?;
    let jobs = c
        .list_jobs(pb::ListJobsRequest { limit: args.limit })
        .await?
        .into_inner()
        .jobs;
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
    let mut c = args.connect.client().await?;
    follow(&mut c, &args.job, args.connect.json).await
}

async fn follow(
    c: &mut CoordinatorClient<Channel>,
    job_id: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut stream = c
        .watch_job(pb::WatchJobRequest {
            job_id: job_id.to_string(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    let mut bar = (!json).then(print::JobBar::new);
    let mut last = None;
    while let Some(job) = stream.message().await? {
        match &mut bar {
            Some(bar) => bar.update(&job),
            None => println!("{}", print::job_json(&job)),
        }
        last = Some(job);
    }
    let job = last.context("the coordinator sent no job state")?;
    if let Some(bar) = bar {
        bar.finish(&job);
    }
    Ok(if job.state() == JobState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The keys `treaty result` verifies the parties' result signatures with, party id → Ed25519
/// identity key: `--party-keys FILE` (out of band, trustworthy), else the roster's (`--roster`,
/// the keys the consortium agreed on), else — with a warning — the coordinator's audit registry.
async fn party_keys(
    file: Option<&Path>,
    connect: &ConnectArgs,
    c: &mut CoordinatorClient<Channel>,
) -> anyhow::Result<BTreeMap<String, VerifyingKey>> {
    if let Some(file) = file {
        return crate::audit::read_party_keys(file);
    }
    if let Some(roster) = connect.roster()? {
        return Ok(roster.party_keys());
    }
    eprintln!(
        "warning: no --party-keys: the parties' signature keys come from the coordinator, so \
         the coordinator's word is trusted for them (pass --party-keys FILE, saved from \
         `treaty audit registry` and checked out of band, to verify against keys you trust)"
    );
    let registry = c
        .get_audit_registry(pb::GetAuditRegistryRequest {})
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    crate::audit::party_keys_from_proto(&registry)
}

pub(crate) async fn result(args: ResultArgs) -> anyhow::Result<ExitCode> {
    let key = keys::read_secret_key(&args.key)?;
    let mut c = args.connect.client().await?;
    let job = c
        .get_job(pb::GetJobRequest {
            job_id: args.job.clone(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    if job.state() != JobState::Succeeded {
        anyhow::bail!(
            "job {} is {}{}",
            job.id,
            print::state(job.state()),
            if job.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", job.reason)
            }
        );
    }
    let keys = party_keys(args.party_keys.as_deref(), &args.connect, &mut c).await?;
    use treaty_analyst as opened;
    use treaty_proto::v1::job_spec::Computation;
    let computation = job.spec.as_ref().and_then(|s| s.computation.as_ref());
    // Each kind: its JSON value and a printer for humans.
    let (json, human): (serde_json::Value, Box<dyn FnOnce()>) = match computation {
        Some(Computation::Psi(_)) => {
            let reports = opened::fetch_psi_result(&mut c, &job, &key, &keys)
                .await
                .context("opening the sealed reports")?;
            (
                print::psi_json(&reports),
                Box::new(move || print::psi(&reports)),
            )
        }
        Some(Computation::Train(_)) => {
            let r = opened::fetch_train_result(&mut c, &job, &key, &keys)
                .await
                .context("opening the sealed reports")?;
            (
                serde_json::to_value(&r)?,
                Box::new(move || print::train(&r)),
            )
        }
        Some(Computation::Score(_)) => {
            let r = opened::fetch_score_result(&mut c, &job, &key, &keys)
                .await
                .context("opening the sealed reports")?;
            (
                serde_json::to_value(&r)?,
                Box::new(move || print::score(&r)),
            )
        }
        #[cfg(feature = "fhe")]
        Some(Computation::FheScore(_)) => {
            let r = opened::fetch_fhe_score_result(&mut c, &job, &key, &keys)
                .await
                .context("opening the sealed reports")?;
            (
                serde_json::to_value(&r)?,
                Box::new(move || print::fhe_score(&r, 20)),
            )
        }
        _ => {
            let r = opened::fetch_stats_result(&mut c, &job, &key, &keys)
                .await
                .context("opening the sealed result")?;
            (
                serde_json::to_value(&r)?,
                Box::new(move || print::stats(&r)),
            )
        }
    };
    if args.connect.json {
        println!(
            "{}",
            serde_json::json!({ "job_id": job.id, "result": json })
        );
    } else {
        human();
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn cancel(args: CancelArgs) -> anyhow::Result<ExitCode> {
    let mut c = args.connect.client().await?;
    let job = c
        .cancel_job(treaty_trust::identity::sign_cancel(
            &args.job,
            &args.reason,
            &args.connect.signing_key()?,
        ))
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
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
