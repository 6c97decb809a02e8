//! `treaty`: one binary for every role — demo, coordinator, party node, analyst.
#![deny(unsafe_code)]

mod analyst;
mod approve;
mod audit;
mod bench;
mod demo;
#[cfg(feature = "fhe")]
mod fhe_key;
mod keys;
mod print;
mod roster;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

/// Treaty: joint statistics and models across organisations that cannot share their data.
#[derive(Parser, Debug)]
#[command(name = "treaty", version, about)]
struct Cli {
    /// Log filter (e.g. `info`, `treaty_party=debug`); defaults to `info` for servers and `warn`
    /// for everything else.
    #[arg(long, global = true, env = "TREATY_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a coordinator and party nodes on loopback with synthetic data, submit a `stats` job
    /// and print the result beside the same figures computed in the clear.
    Demo(demo::DemoArgs),
    /// Create the keys and certificates of a deployment (a local CA, one certificate per node,
    /// per analyst an HPKE result key and an Ed25519 signing key, and `analysts.toml`).
    Init(keys::InitArgs),
    /// Write a synthetic claims file (deterministic from --seed and --party) for trials.
    Synth(SynthArgs),
    /// Write synthetic vertically split claim-fraud data: `hospital.csv`, `insurer.csv` (with the
    /// `fraud` label) and `bank.csv`, keyed by `person_id`, 10 features each, labels from a known
    /// logistic model (the data of `treaty demo claims` and `examples/train-job.toml`).
    SynthRisk(SynthRiskArgs),
    /// Run the coordinator.
    Coordinator(CoordinatorArgs),
    /// Run a party node.
    Party(PartyArgs),
    /// List registered parties and their published dataset schemas.
    Parties(analyst::ConnectArgs),
    /// Submit a job file.
    Submit(analyst::SubmitArgs),
    /// List jobs, newest first.
    Jobs(analyst::JobsArgs),
    /// Follow a job until it ends (exit code 1 unless it succeeds).
    Watch(analyst::JobArgs),
    /// Fetch the result of a succeeded job, verify every party's signature on its share, open
    /// and print it.
    Result(analyst::ResultArgs),
    /// Cancel an unfinished job.
    Cancel(analyst::CancelArgs),
    /// On a party's machine: the jobs waiting for a human approval under its policy.
    Approvals(approve::ListArgs),
    /// On a party's machine: approve a job its policy holds for approval.
    Approve(approve::DecideArgs),
    /// On a party's machine: reject a job its policy holds for approval (the reason goes to the
    /// analyst).
    Reject(approve::RejectArgs),
    /// Benchmarks over the real data plane between local party processes talking gRPC with
    /// mutual TLS (`treaty bench mpc`: rep3 operations, three parties; `treaty bench psi`:
    /// ECDH-PSI, two parties; `treaty bench train` and `treaty bench score`: secure logistic
    /// regression, three parties; `treaty bench soak`: a deployment of processes under load,
    /// with a node and the coordinator killed and restarted).
    Bench(bench::BenchArgs),
    /// Audit logs: a party's audit key, the coordinator's registry of keys and signed heads,
    /// offline verification of exported logs (chains, signatures, coordinator-held heads,
    /// cross-party traffic), and one job's timeline.
    Audit(audit::AuditArgs),
    /// The per-organisation set-up: each organisation's own keys (`roster keys`), its entry,
    /// the consortium's roster (`assemble`, `show`) and each node's explicit acceptance.
    Roster(roster::RosterArgs),
    /// A party's FHE keys: show, rotate (as data owner), delete (own or cached).
    #[cfg(feature = "fhe")]
    FheKey(fhe_key::FheKeyArgs),
}

/// TLS material for a server: a PKI directory and a name, or explicit files.
#[derive(Args, Debug, Clone)]
pub(crate) struct TlsArgs {
    /// Directory written by `treaty init` (holds ca.pem, NAME.pem, NAME.key).
    #[arg(long, env = "TREATY_PKI")]
    pki: Option<PathBuf>,
    /// CA certificate (overrides --pki).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// TLS certificate (overrides --pki).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// TLS private key (overrides --pki).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Plaintext gRPC. Development only: everything on the wire is readable.
    #[arg(long)]
    insecure: bool,
}

impl TlsArgs {
    /// Loads the identity `name` (None when insecure).
    pub(crate) fn identity(
        &self,
        name: &str,
    ) -> anyhow::Result<Option<treaty_trust::tls::TlsIdentity>> {
        if self.insecure {
            eprintln!("warning: --insecure: TLS is off, traffic is unauthenticated and readable");
            return Ok(None);
        }
        let from_dir = |file: String| self.pki.as_ref().map(|d| d.join(file));
        let ca = self.tls_ca.clone().or_else(|| from_dir("ca.pem".into()));
        let cert = self
            .tls_cert
            .clone()
            .or_else(|| from_dir(format!("{name}.pem")));
        let key = self
            .tls_key
            .clone()
            .or_else(|| from_dir(format!("{name}.key")));
        match (ca, cert, key) {
            (Some(ca), Some(cert), Some(key)) => Ok(Some(
                treaty_trust::tls::TlsIdentity::load(&ca, &cert, &key)
                    .with_context(|| format!("loading the TLS identity of {name:?}"))?,
            )),
            _ => anyhow::bail!(
                "TLS material missing: pass --pki DIR (from `treaty init`) or --tls-ca/--tls-cert/--tls-key, \
                 or --insecure for a plaintext development setup"
            ),
        }
    }
}

#[derive(Args, Debug)]
struct CoordinatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: SocketAddr,
    /// Directory of the coordinator's database (created if missing).
    #[arg(long, default_value = "treaty-state")]
    state_dir: PathBuf,
    /// Name of the coordinator's certificate in the PKI directory.
    #[arg(long, default_value = "coordinator")]
    name: String,
    #[command(flatten)]
    tls: TlsArgs,
    /// Seconds a job waits for offline parties before it fails.
    #[arg(long, default_value_t = 30)]
    offline_timeout: u64,
    /// Seconds parties have to accept or reject a job.
    #[arg(long, default_value_t = 30)]
    accept_timeout: u64,
    /// Longest a job may run, in seconds.
    #[arg(long, default_value_t = 6 * 3600)]
    run_timeout: u64,
    /// Seconds a job waits for a human approval at a party whose policy asks for one.
    #[arg(long, default_value_t = 3600)]
    approval_timeout: u64,
    /// The analysts allowed to submit jobs (`analysts.toml` from `treaty init`; re-read at every
    /// submission, so `revoked = true` applies at once). Default: `<pki>/analysts.toml`.
    #[arg(long)]
    analysts: Option<PathBuf>,
    /// The consortium's roster (`treaty roster assemble`): callers are the members whose
    /// certificates it pins, under the CAs it lists; parties register only with the endpoints
    /// and keys it lists; submissions only with the analysts' keys it lists.
    #[arg(long)]
    roster: Option<PathBuf>,
    /// Most unfinished jobs one analyst may have; a submission beyond is refused.
    #[arg(long, default_value_t = 16)]
    max_jobs_in_flight: usize,
    /// Sustained submissions per minute per analyst (beyond the burst).
    #[arg(long, default_value_t = 60)]
    submissions_per_minute: u32,
    /// Submissions an analyst may make at once before the per-minute rate applies.
    #[arg(long, default_value_t = 10)]
    submission_burst: u32,
    /// Hours the sealed results of a succeeded job are kept after it finished (then deleted,
    /// and the deletion audited).
    #[arg(long, default_value_t = 7 * 24)]
    result_retention_hours: u64,
}

#[derive(Args, Debug)]
struct SynthArgs {
    /// Party whose data to generate (different parties get different rows).
    #[arg(long)]
    party: String,
    /// Number of claims.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output CSV file.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct SynthRiskArgs {
    /// People per party.
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
    /// Share of each party's people that all three hold (0 to 1).
    #[arg(long, default_value_t = 0.6)]
    overlap: f64,
    /// Share of positive (fraud) labels.
    #[arg(long, default_value_t = 0.1)]
    positive_rate: f64,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output directory (created).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct PartyArgs {
    /// The node's config file (party.toml).
    #[arg(long, short)]
    config: PathBuf,
}

fn init_logging(filter: Option<&str>, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter.unwrap_or(default))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let log = cli.log;
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Init(args) => keys::init(args).map(|()| ExitCode::SUCCESS),
        Command::Synth(args) => {
            if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            treaty_sandbox::synthetic::write_claims_csv(
                &args.out,
                &args.party,
                args.rows,
                args.seed,
            )
            .with_context(|| format!("writing {}", args.out.display()))?;
            println!(
                "wrote {} claims for {} to {}",
                args.rows,
                args.party,
                args.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::SynthRisk(args) => {
            let opts = treaty_sandbox::synthetic_risk::RiskDataOptions {
                rows: args.rows,
                overlap: args.overlap,
                seed: args.seed,
                positive_rate: args.positive_rate,
            };
            let written = treaty_sandbox::synthetic_risk::write_risk_data(&args.out, &opts)
                .with_context(|| format!("writing to {}", args.out.display()))?;
            for (party, ds) in written {
                println!(
                    "wrote {} people for {party} to {} ({} columns)",
                    args.rows,
                    ds.path.display(),
                    ds.columns.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Coordinator(args) => {
            let tls = args.tls.identity(&args.name)?;
            let analysts = args
                .analysts
                .clone()
                .or_else(|| args.tls.pki.as_ref().map(|d| d.join("analysts.toml")));
            match &analysts {
                Some(path) => {
                    // Checked now so that a broken file stops the start, not the first job.
                    treaty_trust::identity::AnalystList::load(path)?;
                }
                None if args.tls.insecure => eprintln!(
                    "warning: no --analysts: any correctly signed job is accepted here (the \
                     parties' policies still decide)"
                ),
                None => anyhow::bail!(
                    "no analysts file: pass --analysts FILE (treaty init writes \
                     <pki>/analysts.toml)"
                ),
            }
            let roster = match &args.roster {
                Some(path) => {
                    let roster = treaty_trust::roster::Roster::load(path)?;
                    let me = roster
                        .coordinator()
                        .context("the roster names no coordinator")?;
                    if let Some(tls) = &tls
                        && tls.cert_sha256() != me.cert_sha256
                    {
                        anyhow::bail!(
                            "the roster pins another certificate for the coordinator {:?} than \
                             this one",
                            me.identity.name
                        );
                    }
                    tracing::info!(
                        version = roster.version,
                        sha256 = %hex::encode(roster.sha256),
                        "coordinator runs with the roster"
                    );
                    Some(std::sync::Arc::new(roster))
                }
                None => None,
            };
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("binding {}", args.listen))?;
            tracing::info!(listen = %args.listen, tls = tls.is_some(), state_dir = %args.state_dir.display(), "coordinator listening");
            treaty_coordinator::serve(
                listener,
                treaty_coordinator::ServeOptions {
                    state_dir: args.state_dir,
                    tls,
                    config: treaty_coordinator::CoordinatorConfig {
                        offline_timeout: Duration::from_secs(args.offline_timeout),
                        accept_timeout: Duration::from_secs(args.accept_timeout),
                        run_timeout: Duration::from_secs(args.run_timeout),
                        approval_timeout: Duration::from_secs(args.approval_timeout),
                        max_jobs_in_flight_per_analyst: args.max_jobs_in_flight,
                        submissions_per_minute: args.submissions_per_minute,
                        submission_burst: args.submission_burst,
                        result_retention: Duration::from_secs(
                            args.result_retention_hours.saturating_mul(3600),
                        ),
                        analysts_file: analysts,
                        roster,
                        ..Default::default()
                    },
                },
                shutdown_signal(),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Party(args) => {
            let cfg = treaty_party::PartyConfig::load(&args.config)?;
            let listener = tokio::net::TcpListener::bind(cfg.listen)
                .await
                .with_context(|| format!("binding the data plane on {}", cfg.listen))?;
            tracing::info!(party = %cfg.id, listen = %cfg.listen, "party node starting");
            treaty_party::node::run(cfg, listener, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Parties(args) => analyst::parties(args).await,
        Command::Submit(args) => analyst::submit(args).await,
        Command::Jobs(args) => analyst::jobs(args).await,
        Command::Watch(args) => analyst::watch(args).await,
        Command::Result(args) => analyst::result(args).await,
        Command::Cancel(args) => analyst::cancel(args).await,
        Command::Approvals(args) => approve::list(args),
        Command::Approve(args) => approve::approve(args),
        Command::Reject(args) => approve::reject(args),
        Command::Bench(args) => bench::run(args, log.as_deref(), shutdown_signal()).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Roster(args) => roster::run(args).map(|()| ExitCode::SUCCESS),
        #[cfg(feature = "fhe")]
        Command::FheKey(args) => {
            fhe_key::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Makes glibc's allocator keep freed memory for reuse instead of handing it back to the kernel.
///
/// The rep3 engine allocates and drops vectors of megabytes every round. By default glibc serves
/// such blocks with fresh `mmap`s (or trims them off the heap when freed), so every round pays
/// page faults and the kernel's zeroing of new pages: ≈ 30% of the CPU time of a `treaty bench
/// mpc` sigmoid at `n = 10^6`. With blocks up to 32 MiB on the heap and up to 1 GiB of free heap
/// kept, that run takes ≈ 22% less CPU (glibc tunables `mmap_threshold`/`trim_threshold`,
/// measured with `perf stat`; mimalloc and jemalloc were slower there). Larger blocks are still
/// mapped and unmapped as before.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn keep_freed_memory() {
    // SAFETY: `mallopt` takes two integers, sets allocator parameters under glibc's own lock and
    // has no memory-safety preconditions; it is called before any other thread exists. A value
    // glibc rejects leaves its default in place (return value 0), which is only slower.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let default_log = match &cli.command {
        Command::Coordinator(_) | Command::Party(_) => "info",
        // The demo runs every component in-process: only errors belong on its screen.
        Command::Demo(_) => "error",
        _ => "warn",
    };
    init_logging(cli.log.as_deref(), default_log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
