//! `treaty bench soak`: a deployment under load and faults, as processes of the `treaty` binary.
//!
//! ```text
//!   soak (this process): PKI by `treaty init`, synthetic data, configs; analysts and checks
//!        │ spawns, samples /proc/PID, kills with SIGKILL and restarts
//!        ├── treaty coordinator ──────────── redb state, audit log
//!        └── treaty party × 3 (hospital, insurer, bank), each with its own state and audit log
//!   analyst-1 … analyst-N: in-process clients (mutual TLS), each with at most --in-flight jobs
//! ```
//!
//! **The jobs.** `--jobs` jobs are dealt round-robin to the analysts. Each analyst first runs a
//! `psi` (the people all three parties hold, stored at each) and a `train` on it, one after the
//! other; its other jobs run with at most `in_flight` at a time, in the cycle of [`CYCLE`]:
//! `stats` (claims of all three, filtered), `score` (new records, inline PSI, the analyst's
//! latest model), `join-stats` (hospital and insurer joined by an inline PSI, the bank as
//! helper), `psi` and `train` (on the analyst's latest stored intersection). Every job's spec is
//! signed by its analyst and sealed to it.
//!
//! **The faults.** Once 30% of the jobs have ended (and every analyst's first two), the bank's
//! node is killed (`SIGKILL`: no shutdown, whatever it was writing is cut off) and started
//! again after a pause; once 60% have ended, the coordinator is killed the same way and started
//! again on its database. Analysts retry refused or unreachable submissions (with back-off)
//! and reconnect to follow their jobs. A failure is *expected* if the job was unfinished at
//! some instant between a kill and the moment every node was online again; any other failure
//! counts as unexpected. The run passes only if some job first submitted after the last kill
//! succeeded (so with enough jobs left then: more than the analysts keep in flight).
//!
//! **Orphans.** The processes are killed when the soak ends, fails or is interrupted; a soak
//! killed with `SIGKILL` leaves them running (they are in their own process group: `kill --
//! -PGID` each).
//!
//! **The checks.** Every succeeded result is opened by its analyst (every party's signature
//! verified first) and compared with the same computation in the clear from the parties' files,
//! which this harness wrote: statistics within the fixed-point bound, PSI sizes exact and the
//! stored intersections equal (as sets, and in one order at all three), trained weights and AUC
//! within the claims demo's bounds of the f64 pipeline on the same rows in the same order,
//! scores within its bound of the f64 model. At the end every log (coordinator and parties)
//! is verified as an auditor would ([`treaty_sandbox::sandbox::verify_audit_logs`]).
//!
//! **The figures.** Per kind and overall, p50/p99/max from the accepted submission to the
//! opened result; per process its peak resident set (`VmHWM`, the highest over its lives)
//! and CPU seconds (summed over its lives; sampled every [`SAMPLE_EVERY`], so a killed life's
//! last fraction of a second is missing).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Notify, Semaphore};
use treaty_analyst::{Analyst, AnalystError, Connect, JobResult, PartyKeys};
use treaty_mpc::fixed::FixedPoint;
use treaty_mpc::output::RecipientSecretKey;
use treaty_mpc::stats::StatsResult;
use treaty_party::config::{Limits, PartyConfig, TlsFiles};
use treaty_party::dataset::DatasetConfig;
use treaty_party::psi::intersection_path;
use treaty_proto::v1 as pb;
use treaty_sandbox::demo::{self, DemoOptions};
use treaty_sandbox::demo_claims::{self, ClaimsDemoOptions, ClearRun};
use treaty_sandbox::demo_join::{self, JoinDemoOptions};
use treaty_sandbox::sandbox::{AuditSummary, verify_audit_logs};
use treaty_sandbox::synthetic_risk::ID_COLUMN;
use treaty_trust::client::COORDINATOR_TLS_NAME;
use treaty_trust::identity::read_signing_key;
use treaty_trust::tls::TlsIdentity;

use crate::BenchError;

/// The parties, in the demos' order; [`FAULTY`] is the one killed.
pub const PARTIES: [&str; 3] = ["hospital", "insurer", "bank"];

/// The node killed and restarted during the run.
pub const FAULTY: &str = "bank";

/// The auditor whose certificate reads the registry and the job lists.
const AUDITOR: &str = "auditor";

/// How often every process's memory and CPU time is read.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// How long a killed process stays down before it is started again.
const DOWN_FOR: Duration = Duration::from_secs(3);

/// How long the deployment may take to come (back) online.
const ONLINE_WITHIN: Duration = Duration::from_secs(120);

/// Longest back-off between two attempts to submit or follow a job.
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// How long an analyst keeps retrying one submission before it gives up on the job.
const SUBMIT_PATIENCE: Duration = Duration::from_secs(180);

/// The kinds of job the soak submits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SoakKind {
    /// Horizontal statistics over every party's claims.
    Stats,
    /// Statistics over the hospital's and the insurer's patients joined by an inline PSI.
    JoinStats,
    /// The people all three hold, stored at each.
    Psi,
    /// A logistic regression on a stored intersection, weights revealed to the analyst.
    Train,
    /// New records scored with the analyst's latest model (inline PSI).
    Score,
}

impl SoakKind {
    /// The name the report uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stats => "stats",
            Self::JoinStats => "join-stats",
            Self::Psi => "psi",
            Self::Train => "train",
            Self::Score => "score",
        }
    }
}

/// Each analyst's jobs after its first `psi` and `train`, in a cycle.
pub const CYCLE: [SoakKind; 5] = [
    SoakKind::Stats,
    SoakKind::Score,
    SoakKind::JoinStats,
    SoakKind::Psi,
    SoakKind::Train,
];

/// The kind of an analyst's `j`-th job.
pub fn kind_of(j: usize) -> SoakKind {
    match j {
        0 => SoakKind::Psi,
        1 => SoakKind::Train,
        j => CYCLE[(j - 2) % CYCLE.len()],
    }
}

/// What the soak runs.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// The `treaty` binary whose `init`, `coordinator` and `party` commands are run.
    pub exe: PathBuf,
    /// Where keys, data, configs, state and logs go.
    pub work_dir: PathBuf,
    /// Jobs in all.
    pub jobs: usize,
    /// Analysts (each its own certificate, signing and result keys).
    pub analysts: usize,
    /// Most unfinished jobs per analyst.
    pub in_flight: usize,
    /// Kill and restart a node and the coordinator during the run.
    pub faults: bool,
    /// People (risk data) and claims per party; the join and new-record sets are a fraction.
    pub rows: usize,
    /// Each node's `peer_timeout_secs`: how soon a job whose peer died fails.
    pub peer_timeout_secs: u64,
    /// How long an analyst follows one job before it gives up on it.
    pub job_timeout: Duration,
    /// Seed of the synthetic data.
    pub seed: u64,
}

impl SoakOptions {
    /// 100 jobs, 3 analysts with 2 jobs in flight each, faults on, 2,000 rows per party.
    pub fn new(exe: PathBuf, work_dir: PathBuf) -> Self {
        Self {
            exe,
            work_dir,
            jobs: 100,
            analysts: 3,
            in_flight: 2,
            faults: true,
            rows: 2_000,
            peer_timeout_secs: 20,
            job_timeout: Duration::from_secs(600),
            seed: 42,
        }
    }
}

/// One job's figures, per kind.
#[derive(Debug, Clone, Serialize)]
pub struct KindFigures {
    /// The kind.
    pub kind: &'static str,
    /// Jobs of this kind.
    pub jobs: usize,
    /// Of which succeeded (and were opened).
    pub succeeded: usize,
    /// Median seconds from the accepted submission to the opened result (succeeded jobs).
    pub p50_seconds: f64,
    /// 99th percentile (nearest rank) of the same.
    pub p99_seconds: f64,
    /// Slowest.
    pub max_seconds: f64,
}

/// A job that did not give a result.
#[derive(Debug, Clone, Serialize)]
pub struct JobFailure {
    /// The job id (empty if it was never accepted).
    pub job: String,
    /// Its kind.
    pub kind: &'static str,
    /// Its analyst.
    pub analyst: String,
    /// Its final state (`failed`, …, or `not-submitted`, `not-followed`, `not-opened`).
    pub state: String,
    /// The reason as the job (or the harness) states it.
    pub reason: String,
    /// Whether it was unfinished while a process was down or coming back.
    pub during_fault: bool,
}

/// A process killed and restarted.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// What was killed (`bank`, `coordinator`).
    pub process: String,
    /// Seconds into the run when it was killed.
    pub killed_at: f64,
    /// Seconds into the run when every node was online again.
    pub recovered_at: f64,
    /// Jobs ended when it was killed.
    pub after_jobs: usize,
}

/// One process's resources over all its lives.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessFigures {
    /// `coordinator` or the party id.
    pub process: String,
    /// Times started.
    pub lives: u32,
    /// Highest peak resident set of any life, in bytes (`None` off Linux).
    pub peak_rss_bytes: Option<u64>,
    /// CPU seconds of all lives (user + system).
    pub cpu_seconds: Option<f64>,
}

/// What the soak found.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// Jobs planned.
    pub jobs: usize,
    /// Succeeded, opened and checked.
    pub succeeded: usize,
    /// Did not give a result.
    pub failed: usize,
    /// Of those, failures with no fault to explain them.
    pub unexpected_failures: usize,
    /// Per kind.
    pub kinds: Vec<KindFigures>,
    /// Median seconds from accepted submission to opened result, every kind.
    pub p50_seconds: f64,
    /// 99th percentile of the same.
    pub p99_seconds: f64,
    /// Jobs first submitted after the last kill that succeeded (through the restarted
    /// processes): the deployment came back. Without faults, every succeeded job.
    pub succeeded_after_faults: usize,
    /// Succeeded results compared with the clear computation.
    pub checked: usize,
    /// Results that did not match it (empty: all matched).
    pub mismatches: Vec<String>,
    /// Every job without a result, with its reason.
    pub failures: Vec<JobFailure>,
    /// The kills and restarts.
    pub faults: Vec<FaultRecord>,
    /// Per process.
    pub processes: Vec<ProcessFigures>,
    /// Submissions retried (refused by a rate limit, or the coordinator unreachable).
    pub submit_retries: u64,
    /// The auditor's check of every log at the end.
    pub audit: AuditSummary,
    /// Analysts.
    pub analysts: usize,
    /// Most unfinished jobs per analyst.
    pub in_flight: usize,
    /// Rows per party.
    pub rows: usize,
    /// Seconds of the whole run (jobs and faults; not the set-up or the audit).
    pub seconds: f64,
}

impl SoakReport {
    /// Whether the run passed: every result matched, every log verified, no unexpected
    /// failure, and at least one job succeeded after the last fault.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
            && self.audit.failures.is_empty()
            && self.unexpected_failures == 0
            && self.succeeded_after_faults > 0
    }
}

// ---------------------------------------------------------------------------------------------
// Processes.

/// A `treaty` process the soak runs, restarted as often as asked; killed when dropped.
struct Proc {
    name: String,
    exe: PathBuf,
    args: Vec<OsString>,
    log: PathBuf,
    child: Option<Child>,
    lives: u32,
    peak_rss: Option<u64>,
    /// CPU seconds of ended lives.
    cpu_before: f64,
    /// CPU seconds of the current life at its last sample.
    cpu_now: Option<f64>,
}

impl Proc {
    fn new(name: &str, exe: &Path, args: Vec<OsString>, log: PathBuf) -> Self {
        Self {
            name: name.to_string(),
            exe: exe.to_path_buf(),
            args,
            log,
            child: None,
            lives: 0,
            peak_rss: None,
            cpu_before: 0.0,
            cpu_now: None,
        }
    }

    fn start(&mut self) -> Result<(), BenchError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io_err(&self.log))?;
        let child = Command::new(&self.exe)
            .args(&self.args)
            .env_remove("TREATY_COORDINATOR")
            .env_remove("TREATY_PKI")
            .env_remove("TREATY_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Its own process group: a terminal's Ctrl-C reaches the soak, which kills it.
            .process_group(0)
            .spawn()
            .map_err(io_err(&self.exe))?;
        self.child = Some(child);
        self.lives += 1;
        self.cpu_now = None;
        Ok(())
    }

    /// Reads the current life's peak memory and CPU time.
    fn sample(&mut self) {
        let Some(child) = &self.child else { return };
        let pid = child.id();
        if let Some(rss) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| crate::vm_hwm(&s))
        {
            self.peak_rss = Some(self.peak_rss.map_or(rss, |p| p.max(rss)));
        }
        if let Some(ticks) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| crate::cpu_ticks(&s))
        {
            self.cpu_now = Some(ticks as f64 / crate::USER_HZ);
        }
    }

    /// `SIGKILL`, after a last sample; waits until it is gone.
    fn kill(&mut self) {
        self.sample();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.cpu_before += self.cpu_now.take().unwrap_or(0.0);
    }

    /// Whether it exited by itself (and how), without waiting.
    fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        Some(status.to_string())
    }

    fn figures(&self) -> ProcessFigures {
        let cpu = self.cpu_before + self.cpu_now.unwrap_or(0.0);
        ProcessFigures {
            process: self.name.clone(),
            lives: self.lives,
            peak_rss_bytes: self.peak_rss,
            // Both come from the same /proc files: none off Linux.
            cpu_seconds: self.peak_rss.map(|_| cpu),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The deployment's processes, by name.
type Procs = Arc<Mutex<BTreeMap<String, Proc>>>;

fn with_procs<T>(procs: &Procs, f: impl FnOnce(&mut BTreeMap<String, Proc>) -> T) -> T {
    let mut guard = procs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(&mut guard)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// Set-up.

/// Everything the analysts and the checks need, written once.
struct World {
    opts: SoakOptions,
    url: String,
    pki: PathBuf,
    configs: BTreeMap<String, PartyConfig>,
    party_keys: PartyKeys,
    stats_opts: DemoOptions,
    claims_opts: ClaimsDemoOptions,
    risk_data: Vec<(String, DatasetConfig)>,
    clear_stats: StatsResult,
    clear_join: StatsResult,
    clear_people: Vec<String>,
    /// Every analyst's result key, read once.
    result_keys: HashMap<String, RecipientSecretKey>,
    /// The f64 pipeline of every checked `train` job, by job id (the model id).
    models: Mutex<HashMap<String, Arc<ClearRun>>>,
}

fn free_port() -> Result<u16, BenchError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io_err(Path::new("127.0.0.1:0")))?;
    Ok(l.local_addr()
        .map_err(io_err(Path::new("127.0.0.1:0")))?
        .port())
}

/// The soak's policy at every party: any analyst of the deployment, every kind, any dataset,
/// results to the analyst itself, weights may be revealed (the checks compare them).
fn policy(analysts_file: &Path) -> String {
    format!(
        "# treaty bench soak: every analyst of the deployment may run anything here.\n\
         analysts_file = {:?}\n\n\
         [[rules]]\n\
         analysts = [\"*\"]\n\
         jobs = [\"stats\", \"psi\", \"train\", \"score\"]\n\
         datasets = {{ \"*\" = [\"*\"] }}\n\
         recipients = [\"self\"]\n\
         reveal_models = true\n",
        analysts_file.display().to_string()
    )
}

/// Analyst names: `analyst-1` …
fn analyst_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("analyst-{i}")).collect()
}

fn run_init(opts: &SoakOptions, pki: &Path) -> Result<(), BenchError> {
    let out = Command::new(&opts.exe)
        .arg("init")
        .arg("--out")
        .arg(pki)
        .arg("--parties")
        .arg(PARTIES.join(","))
        .arg("--analysts")
        .arg(analyst_names(opts.analysts).join(","))
        .arg("--auditors")
        .arg(AUDITOR)
        .output()
        .map_err(io_err(&opts.exe))?;
    if !out.status.success() {
        return Err(BenchError::Failed(format!(
            "treaty init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// Writes keys, data, policies and configs; returns the world and the processes (not started).
fn set_up(mut opts: SoakOptions) -> Result<(World, BTreeMap<String, Proc>), BenchError> {
    std::fs::create_dir_all(&opts.work_dir).map_err(io_err(&opts.work_dir))?;
    // Every path in the configs is absolute: the nodes resolve nothing against their own
    // working directory.
    opts.work_dir = std::path::absolute(&opts.work_dir).map_err(io_err(&opts.work_dir))?;
    let dir = opts.work_dir.clone();
    let pki = dir.join("pki");
    run_init(&opts, &pki)?;

    // Data: claims (stats), patients (join stats), risk and new records (psi, train, score).
    let mut stats_opts = DemoOptions::new(dir.join("data/claims"));
    stats_opts.rows = opts.rows;
    stats_opts.seed = opts.seed;
    let claims = demo::write_data(&stats_opts)?;
    let mut join_opts = JoinDemoOptions::new(dir.join("data/join"));
    join_opts.rows = opts.rows;
    join_opts.seed = opts.seed;
    let patients = demo_join::write_data(&join_opts)?;
    let mut claims_opts = ClaimsDemoOptions::new(dir.join("data/risk"));
    claims_opts.rows = opts.rows;
    claims_opts.score_rows = (opts.rows / 4).max(50);
    claims_opts.seed = opts.seed;
    let (risk_data, extra) = demo_claims::write_data(&claims_opts)?;
    let clear_stats = demo::clear_reference(&stats_opts, &claims)?;
    let (clear_join, _) = demo_join::clear_reference(&patients)?;
    let clear_people = clear_intersection(&claims_opts, &risk_data)?;

    let coord_port = free_port()?;
    let url = format!("https://127.0.0.1:{coord_port}");
    let configs_dir = dir.join("configs");
    std::fs::create_dir_all(&configs_dir).map_err(io_err(&configs_dir))?;
    let policy_text = policy(&pki.join("analysts.toml"));
    let mut configs = BTreeMap::new();
    let mut party_keys = PartyKeys::new();
    let mut procs = BTreeMap::new();
    for p in PARTIES {
        let datasets: Vec<DatasetConfig> = claims
            .iter()
            .chain(&patients)
            .chain(&risk_data)
            .chain(&extra)
            .filter(|(owner, _)| owner == p)
            .map(|(_, ds)| ds.clone())
            .collect();
        let policy_path = configs_dir.join(format!("{p}-policy.toml"));
        std::fs::write(&policy_path, &policy_text).map_err(io_err(&policy_path))?;
        let cfg = PartyConfig {
            id: p.to_string(),
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            advertise: None,
            coordinator: url.clone(),
            coordinator_name: COORDINATOR_TLS_NAME.into(),
            insecure: false,
            tls: Some(TlsFiles {
                ca: pki.join("ca.pem"),
                cert: pki.join(format!("{p}.pem")),
                key: pki.join(format!("{p}.key")),
            }),
            limits: Limits {
                peer_timeout_secs: opts.peer_timeout_secs,
                ..Limits::default()
            },
            datasets,
            policy: Some(policy_path),
            roster: None,
            state_dir: Some(dir.join(format!("state/{p}"))),
            base_dir: configs_dir.clone(),
        };
        cfg.validate().map_err(BenchError::Failed)?;
        // The deployment's owner knows each node's identity key (created here, as the node
        // would at its first start): results are verified with it, not the coordinator's word.
        let key = treaty_audit::identity_key(&treaty_party::audit_log::audit_dir(&cfg))
            .map_err(|e| BenchError::Failed(format!("{p}'s identity key: {e}")))?;
        party_keys.insert(p.to_string(), key.verifying_key());
        let path = configs_dir.join(format!("{p}.toml"));
        let text = toml::to_string(&cfg).map_err(|e| BenchError::Failed(e.to_string()))?;
        std::fs::write(&path, text).map_err(io_err(&path))?;
        let args = vec![OsString::from("party"), "--config".into(), path.into()];
        procs.insert(
            p.to_string(),
            Proc::new(p, &opts.exe, args, dir.join(format!("{p}.log"))),
        );
        configs.insert(p.to_string(), cfg);
    }
    // The coordinator, with submission limits that let the soak's analysts keep `in_flight`
    // jobs each and resubmit after faults.
    let per_minute = (opts.jobs as u32).saturating_mul(2).max(60);
    let args: Vec<OsString> = [
        "coordinator",
        "--listen",
        &format!("127.0.0.1:{coord_port}"),
        "--max-jobs-in-flight",
        &opts.in_flight.max(1).to_string(),
        "--submissions-per-minute",
        &per_minute.to_string(),
        "--submission-burst",
        &(opts.in_flight.max(1) * 4).to_string(),
    ]
    .iter()
    .map(OsString::from)
    .chain([
        "--pki".into(),
        pki.clone().into(),
        "--state-dir".into(),
        dir.join("state/coordinator").into(),
    ])
    .collect();
    procs.insert(
        "coordinator".into(),
        Proc::new("coordinator", &opts.exe, args, dir.join("coordinator.log")),
    );
    let result_keys = analyst_names(opts.analysts)
        .into_iter()
        .map(|a| Ok((a.clone(), read_result_key(&pki, &a)?)))
        .collect::<Result<_, BenchError>>()?;
    let world = World {
        opts,
        url,
        pki,
        configs,
        party_keys,
        stats_opts,
        claims_opts,
        risk_data,
        clear_stats,
        clear_join,
        clear_people,
        result_keys,
        models: Mutex::new(HashMap::new()),
    };
    Ok((world, procs))
}

/// The people all three parties' risk files hold, sorted.
fn clear_intersection(
    opts: &ClaimsDemoOptions,
    data: &[(String, DatasetConfig)],
) -> Result<Vec<String>, BenchError> {
    let mut sets = Vec::new();
    for (_, ds) in data {
        let path = opts.work_dir.join(&ds.path);
        let table = treaty_party::dataset::load_columns(ds, &path, &[ID_COLUMN])
            .map_err(|e| BenchError::Failed(format!("{}: {e}", path.display())))?;
        let ids = treaty_party::join::id_strings(&table, &ds.name, ID_COLUMN)
            .map_err(BenchError::Node)?;
        sets.push(
            ids.into_iter()
                .collect::<std::collections::BTreeSet<String>>(),
        );
    }
    let mut all = sets.first().cloned().unwrap_or_default();
    for s in &sets[1..] {
        all.retain(|id| s.contains(id));
    }
    Ok(all.into_iter().collect())
}

// ---------------------------------------------------------------------------------------------
// The deployment seen from outside.

impl World {
    fn tls(&self, name: &str) -> Result<TlsIdentity, BenchError> {
        Ok(TlsIdentity::load(
            &self.pki.join("ca.pem"),
            &self.pki.join(format!("{name}.pem")),
            &self.pki.join(format!("{name}.key")),
        )
        .map_err(treaty_trust::TrustError::from)?)
    }

    async fn connect(&self, name: &str, sign: bool) -> Result<Analyst, BenchError> {
        let signing_key = if sign {
            Some(read_signing_key(
                &self.pki.join(format!("{name}.sign.key")),
            )?)
        } else {
            None
        };
        Ok(Analyst::connect(Connect {
            url: &self.url,
            tls: Some(self.tls(name)?),
            server_name: COORDINATOR_TLS_NAME,
            roster: None,
            name,
            signing_key,
        })
        .await?)
    }

    /// Waits until the coordinator answers and every party is online.
    async fn wait_online(&self, procs: &Procs) -> Result<(), BenchError> {
        let deadline = Instant::now() + ONLINE_WITHIN;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Some((name, how)) = with_procs(procs, |p| {
                p.values_mut()
                    .find_map(|p| Some((p.name.clone(), p.exited()?)))
            }) {
                return Err(BenchError::Aborted(format!(
                    "{name} exited ({how}); see {}",
                    self.opts.work_dir.join(format!("{name}.log")).display()
                )));
            }
            match self.connect(AUDITOR, false).await {
                Ok(mut a) => match a.parties().await {
                    Ok(parties) => {
                        let online = parties.iter().filter(|p| p.online).count();
                        if online == PARTIES.len() {
                            return Ok(());
                        }
                        last = format!("{online} of {} parties online", PARTIES.len());
                    }
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(BenchError::Aborted(format!(
            "the deployment did not come online within {} s: {last}",
            ONLINE_WITHIN.as_secs()
        )))
    }
}

/// `analyst`'s result key, as `treaty init` wrote it (hex).
fn read_result_key(pki: &Path, analyst: &str) -> Result<RecipientSecretKey, BenchError> {
    let path = pki.join(format!("{analyst}.hpke.key"));
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    let bytes = hex::decode(text.trim())
        .map_err(|_| BenchError::Failed(format!("{} is not hex", path.display())))?;
    Ok(RecipientSecretKey::from_bytes(&bytes)?)
}

// ---------------------------------------------------------------------------------------------
// Analysts.

/// What an analyst's earlier jobs left for its later ones.
#[derive(Default)]
struct Carry {
    /// Its latest succeeded `psi` job (a stored intersection).
    psi: Option<String>,
    /// Its latest succeeded `train` job (a stored model).
    model: Option<String>,
}

/// The shared state of the run.
struct Run {
    world: World,
    procs: Procs,
    started: Instant,
    ended: AtomicUsize,
    ended_changed: Notify,
    submit_retries: AtomicU64,
    /// Fault windows so far: (killed at, recovered at; `None` while recovering).
    windows: Mutex<Vec<(Instant, Option<Instant>)>>,
    records: Mutex<Vec<JobRecord>>,
}

/// One job's outcome.
struct JobRecord {
    kind: SoakKind,
    analyst: String,
    job: String,
    /// From the accepted submission to the opened result.
    seconds: Option<f64>,
    failure: Option<(String, String)>,
    /// `None`: matched the clear computation; `Some`: how it did not.
    mismatch: Option<String>,
    checked: bool,
    /// When the harness first asked (submission) and when it knew the outcome.
    span: (Instant, Instant),
}

impl Run {
    fn windows(&self) -> Vec<(Instant, Option<Instant>)> {
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn record(&self, r: JobRecord) {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(r);
        self.ended.fetch_add(1, Ordering::SeqCst);
        self.ended_changed.notify_waiters();
    }

    fn back_off(attempt: u32) -> Duration {
        Duration::from_millis(100u64 << attempt.min(6)).min(MAX_BACKOFF)
    }

    async fn connect(&self, analyst: &str) -> Result<Analyst, BenchError> {
        let deadline = Instant::now() + SUBMIT_PATIENCE;
        let mut attempt = 0;
        loop {
            match self.world.connect(analyst, true).await {
                Ok(a) => return Ok(a),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => {
                    tokio::time::sleep(Self::back_off(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Submits `spec`, retrying what a restart or a rate limit refuses; returns the job id.
    async fn submit(
        &self,
        analyst: &str,
        client: &mut Analyst,
        spec: &pb::JobSpec,
    ) -> Result<String, String> {
        let deadline = Instant::now() + SUBMIT_PATIENCE;
        let mut attempt = 0;
        loop {
            match client.submit(spec.clone()).await {
                Ok(id) => return Ok(id),
                Err(AnalystError::Rpc(s))
                    if (retryable(&s) || s.code() == tonic::Code::ResourceExhausted)
                        && Instant::now() < deadline =>
                {
                    self.submit_retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Self::back_off(attempt)).await;
                    attempt += 1;
                    if s.code() != tonic::Code::ResourceExhausted
                        && let Ok(c) = self.connect(analyst).await
                    {
                        *client = c;
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Follows job `id` to its end, reconnecting whenever the coordinator goes away.
    async fn follow(
        &self,
        analyst: &str,
        client: &mut Analyst,
        id: &str,
    ) -> Result<pb::Job, String> {
        let deadline = Instant::now() + self.world.opts.job_timeout;
        let mut attempt = 0;
        loop {
            if let Ok(job) = client.watch(id, |_| {}).await
                && is_final(job.state())
            {
                return Ok(job);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "still unfinished after {} s",
                    self.world.opts.job_timeout.as_secs()
                ));
            }
            tokio::time::sleep(Self::back_off(attempt)).await;
            attempt += 1;
            if let Ok(c) = self.connect(analyst).await {
                *client = c;
            }
        }
    }

    /// Opens a succeeded job's result, retrying while the coordinator is away.
    async fn open(
        &self,
        analyst: &str,
        client: &mut Analyst,
        id: &str,
        key: &RecipientSecretKey,
    ) -> Result<JobResult, String> {
        let deadline = Instant::now() + SUBMIT_PATIENCE;
        let mut attempt = 0;
        loop {
            match client.result(id, key, &self.world.party_keys).await {
                Ok(r) => return Ok(r),
                Err(AnalystError::Rpc(s)) if retryable(&s) && Instant::now() < deadline => {
                    tokio::time::sleep(Self::back_off(attempt)).await;
                    attempt += 1;
                    if let Ok(c) = self.connect(analyst).await {
                        *client = c;
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Runs one job from submission to checked result and records it.
    async fn job(&self, analyst: &str, kind: SoakKind, carry: &Mutex<Carry>) {
        let asked = Instant::now();
        let mut rec = JobRecord {
            kind,
            analyst: analyst.to_string(),
            job: String::new(),
            seconds: None,
            failure: None,
            mismatch: None,
            checked: false,
            span: (asked, asked),
        };
        match self.job_inner(analyst, kind, carry, &mut rec).await {
            Ok(()) => {}
            Err((state, reason)) => rec.failure = Some((state, reason)),
        }
        rec.span.1 = Instant::now();
        self.record(rec);
    }

    async fn job_inner(
        &self,
        analyst: &str,
        kind: SoakKind,
        carry: &Mutex<Carry>,
        rec: &mut JobRecord,
    ) -> Result<(), (String, String)> {
        let key = self.world.result_keys.get(analyst).ok_or_else(|| {
            (
                "not-submitted".to_string(),
                format!("no result key for {analyst}"),
            )
        })?;
        let public = key
            .public_key()
            .map_err(|e| ("not-submitted".to_string(), e.to_string()))?
            .to_vec();
        let (psi, model) = {
            let c = carry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (c.psi.clone(), c.model.clone())
        };
        let w = &self.world;
        let mut spec = match kind {
            SoakKind::Stats => demo::stats_spec(&w.stats_opts, public),
            SoakKind::JoinStats => demo_join::join_spec(16, None, public),
            SoakKind::Psi => demo_claims::psi_spec(public),
            SoakKind::Train => {
                let psi = psi.ok_or_else(|| {
                    (
                        "not-submitted".into(),
                        "no psi job of this analyst succeeded".into(),
                    )
                })?;
                demo_claims::train_spec(&w.claims_opts, &psi, public)
            }
            SoakKind::Score => {
                let model = model.ok_or_else(|| {
                    (
                        "not-submitted".into(),
                        "no train job of this analyst succeeded".into(),
                    )
                })?;
                demo_claims::score_spec(&model, demo_claims::NEW_DATASET, public)
            }
        };
        spec.name = format!("soak: {} by {analyst}", kind.name());
        if let Some(out) = &mut spec.output {
            out.recipient = analyst.to_string();
        }
        let mut client = self
            .connect(analyst)
            .await
            .map_err(harness_failure("not-submitted"))?;
        let id = self
            .submit(analyst, &mut client, &spec)
            .await
            .map_err(|r| ("not-submitted".to_string(), r))?;
        let accepted = Instant::now();
        rec.job = id.clone();
        let job = self
            .follow(analyst, &mut client, &id)
            .await
            .map_err(|r| ("not-followed".to_string(), r))?;
        if job.state() != pb::JobState::Succeeded {
            return Err((treaty_analyst::client::state_name(job.state()), job.reason));
        }
        let result = self
            .open(analyst, &mut client, &id, key)
            .await
            .map_err(|r| ("not-opened".to_string(), r))?;
        rec.seconds = Some(accepted.elapsed().as_secs_f64());
        // The stored intersection and model are what this analyst's later jobs build on.
        match kind {
            SoakKind::Psi => carry_set(carry, |c| c.psi = Some(id.clone())),
            SoakKind::Train => carry_set(carry, |c| c.model = Some(id.clone())),
            _ => {}
        }
        // The clear computation reads files and trains in f64: off the async workers.
        let check = tokio::task::block_in_place(|| self.check(kind, &spec, &id, &result));
        rec.checked = true;
        rec.mismatch = check.err();
        Ok(())
    }

    /// Compares an opened result with the clear computation.
    fn check(
        &self,
        kind: SoakKind,
        spec: &pb::JobSpec,
        id: &str,
        result: &JobResult,
    ) -> Result<(), String> {
        let w = &self.world;
        let fixed = FixedPoint::new(16).map_err(|e| e.to_string())?;
        let stats = |secure: &StatsResult, clear: &StatsResult| {
            let (err, ok) = secure.compare(clear, fixed);
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "statistics off by {err:.3e} (count {} vs {})",
                    secure.count, clear.count
                ))
            }
        };
        match (kind, result) {
            (SoakKind::Stats, JobResult::Stats(s)) => stats(s, &w.clear_stats),
            (SoakKind::JoinStats, JobResult::Stats(s)) => stats(s, &w.clear_join),
            (SoakKind::Psi, JobResult::Psi { reports }) => self.check_psi(id, reports),
            (SoakKind::Train, JobResult::Train(t)) => self.check_train(spec, id, t),
            (SoakKind::Score, JobResult::Score(s)) => self.check_score(spec, s),
            (kind, _) => Err(format!("a {} job gave another kind of result", kind.name())),
        }
    }

    fn stored(&self, party: &str, psi_job: &str) -> Result<Vec<String>, String> {
        let cfg = self
            .world
            .configs
            .get(party)
            .ok_or_else(|| format!("no config for {party}"))?;
        let path = intersection_path(cfg, psi_job);
        Ok(std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .lines()
            .map(str::to_owned)
            .collect())
    }

    fn check_psi(
        &self,
        id: &str,
        reports: &[(String, treaty_analyst::PsiReport)],
    ) -> Result<(), String> {
        let clear = &self.world.clear_people;
        for (party, r) in reports {
            if r.intersection_size != Some(clear.len() as u64) {
                return Err(format!(
                    "{party} reports {:?} people in common, the clear intersection has {}",
                    r.intersection_size,
                    clear.len()
                ));
            }
        }
        let first = self.stored(PARTIES[0], id)?;
        let mut sorted = first.clone();
        sorted.sort();
        if &sorted != clear {
            return Err("the stored intersection is not the clear one".into());
        }
        for p in &PARTIES[1..] {
            if self.stored(p, id)? != first {
                return Err(format!("{p} stored the intersection in another order"));
            }
        }
        Ok(())
    }

    fn check_train(
        &self,
        spec: &pb::JobSpec,
        id: &str,
        t: &treaty_analyst::TrainResult,
    ) -> Result<(), String> {
        let w = &self.world;
        let psi = spec
            .join
            .as_ref()
            .map(|j| j.psi_job.clone())
            .unwrap_or_default();
        let order = self.stored(PARTIES[0], &psi)?;
        let clear = demo_claims::clear_pipeline(&w.claims_opts, &w.risk_data, &order)
            .map_err(|e| e.to_string())?;
        let weights = t
            .weights
            .as_ref()
            .ok_or("the train job revealed no weights")?;
        if weights.len() != clear.weights.len() {
            return Err("secure and clear weights differ in number".into());
        }
        let err = weights
            .iter()
            .zip(&clear.weights)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let auc = t.value.ok_or("the train job computed no AUC")?;
        if err > demo_claims::WEIGHT_BOUND || (auc - clear.auc).abs() > demo_claims::AUC_BOUND {
            return Err(format!(
                "weights off by {err:.2e}, AUC {auc:.4} vs {:.4} in the clear",
                clear.auc
            ));
        }
        w.models
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_string(), Arc::new(clear));
        Ok(())
    }

    fn check_score(
        &self,
        spec: &pb::JobSpec,
        s: &treaty_analyst::ScoreResult,
    ) -> Result<(), String> {
        let w = &self.world;
        let model = match &spec.computation {
            Some(pb::job_spec::Computation::Score(score)) => score.model_id.clone(),
            _ => return Err("not a score spec".into()),
        };
        let clear = w
            .models
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&model)
            .cloned()
            .ok_or_else(|| format!("model {model} was not checked"))?;
        let logits = demo_claims::clear_new_logits(&w.claims_opts, &s.ids, &clear)
            .map_err(|e| e.to_string())?;
        let scores = s.scores.as_ref().ok_or("no scores")?;
        let decisions = s.decisions.as_ref().ok_or("no decisions")?;
        if scores.len() != logits.len() || decisions.len() != logits.len() {
            return Err("the score job returned the wrong number of results".into());
        }
        let mut people = std::collections::BTreeSet::new();
        people.extend(s.ids.iter().cloned());
        let err = scores
            .iter()
            .zip(&logits)
            .map(|(s, z)| (s - treaty_mpc::glm::plain::sigmoid(*z)).abs())
            .fold(0.0, f64::max);
        let wrong = decisions
            .iter()
            .zip(&logits)
            .filter(|(d, z)| **d != (**z >= 0.0) && z.abs() > 1e-3)
            .count();
        if err > demo_claims::SCORE_BOUND || wrong > 0 || people.len() != s.ids.len() {
            return Err(format!("scores off by {err:.2e}, {wrong} decisions differ"));
        }
        Ok(())
    }

    /// One analyst: its first `psi` and `train` in turn, then the rest with `in_flight` at once.
    async fn analyst(self: Arc<Self>, analyst: String, jobs: usize) {
        let carry = Arc::new(Mutex::new(Carry::default()));
        for j in 0..jobs.min(2) {
            self.job(&analyst, kind_of(j), &carry).await;
        }
        let permits = Arc::new(Semaphore::new(self.world.opts.in_flight.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for j in 2..jobs {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let (run, analyst, carry) = (self.clone(), analyst.clone(), carry.clone());
            tasks.spawn(async move {
                run.job(&analyst, kind_of(j), &carry).await;
                drop(permit);
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Kills `name`, waits, starts it again and waits until every node is online.
    async fn fault(&self, name: &str, faults: &mut Vec<FaultRecord>) -> Result<(), BenchError> {
        let after_jobs = self.ended.load(Ordering::SeqCst);
        let killed = Instant::now();
        with_procs(&self.procs, |p| p.get_mut(name).map(Proc::kill));
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((killed, None));
        tracing::info!(process = name, after_jobs, "soak: killed");
        tokio::time::sleep(DOWN_FOR).await;
        with_procs(&self.procs, |p| p.get_mut(name).map(Proc::start)).transpose()?;
        self.world.wait_online(&self.procs).await?;
        let recovered = Instant::now();
        if let Some(last) = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .last_mut()
        {
            last.1 = Some(recovered);
        }
        tracing::info!(process = name, "soak: back online");
        faults.push(FaultRecord {
            process: name.to_string(),
            killed_at: (killed - self.started).as_secs_f64(),
            recovered_at: (recovered - self.started).as_secs_f64(),
            after_jobs,
        });
        Ok(())
    }

    /// Waits until `n` jobs have ended.
    async fn ended_at_least(&self, n: usize) {
        loop {
            let changed = self.ended_changed.notified();
            if self.ended.load(Ordering::SeqCst) >= n {
                return;
            }
            changed.await;
        }
    }
}

/// Whether a failed call may succeed again: the coordinator was unreachable or went away
/// mid-call (a restart), not a refusal.
fn retryable(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}

/// A harness error as a job's (state, reason).
fn harness_failure(state: &'static str) -> impl FnOnce(BenchError) -> (String, String) {
    move |e| (state.to_string(), e.to_string())
}

fn carry_set(carry: &Mutex<Carry>, f: impl FnOnce(&mut Carry)) {
    f(&mut carry
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner));
}

fn is_final(state: pb::JobState) -> bool {
    matches!(
        state,
        pb::JobState::Succeeded
            | pb::JobState::Failed
            | pb::JobState::Rejected
            | pb::JobState::Aborted
    )
}

/// The `p`-th percentile (0–100) of `xs` by nearest rank; 0 for none.
pub fn percentile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Runs the soak; `progress` is told every time a job ends (ended so far, planned).
///
/// # Errors
/// The set-up fails (keys, data, a process that does not start or come online), or a
/// restarted process does not come back.
pub async fn run(opts: SoakOptions) -> Result<SoakReport, BenchError> {
    let (analysts, jobs, in_flight, rows, faults_on) = (
        opts.analysts.max(1),
        opts.jobs,
        opts.in_flight.max(1),
        opts.rows,
        opts.faults,
    );
    let (world, procs) = tokio::task::block_in_place(|| set_up(opts))?;
    let procs: Procs = Arc::new(Mutex::new(procs));
    with_procs(&procs, |p| p.values_mut().try_for_each(Proc::start))?;
    world.wait_online(&procs).await?;

    let run = Arc::new(Run {
        world,
        procs: procs.clone(),
        started: Instant::now(),
        ended: AtomicUsize::new(0),
        ended_changed: Notify::new(),
        submit_retries: AtomicU64::new(0),
        windows: Mutex::new(Vec::new()),
        records: Mutex::new(Vec::new()),
    });
    let sampler = {
        let procs = procs.clone();
        tokio::spawn(async move {
            loop {
                with_procs(&procs, |p| p.values_mut().for_each(Proc::sample));
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        })
    };
    let names = analyst_names(analysts);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, name) in names.iter().enumerate() {
        let share = jobs / analysts + usize::from(i < jobs % analysts);
        tasks.spawn(run.clone().analyst(name.clone(), share));
    }
    let mut faults = Vec::new();
    let fault_result = async {
        if faults_on && jobs > 0 {
            // Not before every analyst's first psi and train have ended: its later jobs build
            // on them.
            let seeds = (2 * analysts).min(jobs);
            run.ended_at_least((jobs * 3 / 10).max(seeds)).await;
            run.fault(FAULTY, &mut faults).await?;
            run.ended_at_least((jobs * 6 / 10).max(seeds)).await;
            run.fault("coordinator", &mut faults).await?;
        }
        Ok::<_, BenchError>(())
    }
    .await;
    while tasks.join_next().await.is_some() {}
    let seconds = run.started.elapsed().as_secs_f64();
    sampler.abort();
    fault_result?;

    let audit = {
        let mut auditor = run.world.connect(AUDITOR, false).await?;
        let state = run.world.opts.work_dir.join("state");
        let log_dir = |writer: &str| {
            if writer == treaty_audit::COORDINATOR_WRITER {
                state.join("coordinator")
            } else {
                state.join(writer)
            }
        };
        verify_audit_logs(auditor.client(), &log_dir, Duration::from_secs(30)).await?
    };
    with_procs(&procs, |p| p.values_mut().for_each(Proc::sample));
    let processes = with_procs(&procs, |p| p.values().map(Proc::figures).collect());
    let windows = run.windows();
    let records = std::mem::take(
        &mut *run
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    Ok(summarise(
        &records,
        &windows,
        Summary {
            jobs,
            analysts,
            in_flight,
            rows,
            seconds,
            faults,
            processes,
            audit,
            submit_retries: run.submit_retries.load(Ordering::Relaxed),
        },
    ))
}

/// The parts of the report that are not per job.
struct Summary {
    jobs: usize,
    analysts: usize,
    in_flight: usize,
    rows: usize,
    seconds: f64,
    faults: Vec<FaultRecord>,
    processes: Vec<ProcessFigures>,
    audit: AuditSummary,
    submit_retries: u64,
}

fn summarise(
    records: &[JobRecord],
    windows: &[(Instant, Option<Instant>)],
    s: Summary,
) -> SoakReport {
    let overlaps = |span: (Instant, Instant)| {
        windows
            .iter()
            .any(|(from, to)| span.0 <= to.unwrap_or(span.1) && *from <= span.1)
    };
    let mut failures = Vec::new();
    let mut mismatches = Vec::new();
    for r in records {
        if let Some((state, reason)) = &r.failure {
            failures.push(JobFailure {
                job: r.job.clone(),
                kind: r.kind.name(),
                analyst: r.analyst.clone(),
                state: state.clone(),
                reason: reason.clone(),
                during_fault: overlaps(r.span),
            });
        }
        if let Some(m) = &r.mismatch {
            mismatches.push(format!("{} {} ({}): {m}", r.kind.name(), r.job, r.analyst));
        }
    }
    let seconds = |kind: Option<SoakKind>| -> Vec<f64> {
        records
            .iter()
            .filter(|r| kind.is_none_or(|k| r.kind == k))
            .filter_map(|r| r.seconds)
            .collect()
    };
    let kinds = [
        SoakKind::Stats,
        SoakKind::JoinStats,
        SoakKind::Psi,
        SoakKind::Train,
        SoakKind::Score,
    ]
    .into_iter()
    .map(|k| {
        let t = seconds(Some(k));
        KindFigures {
            kind: k.name(),
            jobs: records.iter().filter(|r| r.kind == k).count(),
            succeeded: t.len(),
            p50_seconds: percentile(&t, 50.0),
            p99_seconds: percentile(&t, 99.0),
            max_seconds: percentile(&t, 100.0),
        }
    })
    .collect();
    let all = seconds(None);
    let last_kill = windows.last().map(|(killed, _)| *killed);
    let succeeded_after_faults = records
        .iter()
        .filter(|r| r.seconds.is_some() && last_kill.is_none_or(|k| r.span.0 >= k))
        .count();
    SoakReport {
        succeeded_after_faults,
        jobs: s.jobs,
        succeeded: all.len(),
        failed: failures.len(),
        unexpected_failures: failures.iter().filter(|f| !f.during_fault).count(),
        kinds,
        p50_seconds: percentile(&all, 50.0),
        p99_seconds: percentile(&all, 99.0),
        checked: records.iter().filter(|r| r.checked).count(),
        mismatches,
        failures,
        faults: s.faults,
        processes: s.processes,
        submit_retries: s.submit_retries,
        audit: s.audit,
        analysts: s.analysts,
        in_flight: s.in_flight,
        rows: s.rows,
        seconds: s.seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let xs: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&xs, 50.0), 50.0);
        assert_eq!(percentile(&xs, 99.0), 99.0);
        assert_eq!(percentile(&xs, 100.0), 100.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn every_analyst_starts_with_a_psi_and_a_train_then_cycles_through_every_kind() {
        assert_eq!(kind_of(0), SoakKind::Psi);
        assert_eq!(kind_of(1), SoakKind::Train);
        let cycle: Vec<SoakKind> = (2..7).map(kind_of).collect();
        assert_eq!(cycle, CYCLE);
        assert_eq!(kind_of(7), CYCLE[0]);
        for k in [SoakKind::Stats, SoakKind::JoinStats, SoakKind::Score] {
            assert!(CYCLE.contains(&k));
        }
    }

    /// A failure counts as expected only when the job was unfinished inside a fault window
    /// (from the kill to the moment every node was back online).
    #[test]
    fn a_failure_is_expected_only_inside_a_fault_window() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let failed = |from: u64, to: u64| JobRecord {
            kind: SoakKind::Stats,
            analyst: "analyst-1".into(),
            job: format!("j{from}"),
            seconds: None,
            failure: Some(("failed".into(), "peer gone".into())),
            mismatch: None,
            checked: false,
            span: (at(from), at(to)),
        };
        let records = [failed(0, 5), failed(8, 12), failed(25, 30), failed(40, 45)];
        let windows = [(at(10), Some(at(20))), (at(35), None)];
        let report = summarise(
            &records,
            &windows,
            Summary {
                jobs: 4,
                analysts: 1,
                in_flight: 1,
                rows: 10,
                seconds: 45.0,
                faults: Vec::new(),
                processes: Vec::new(),
                audit: AuditSummary::default(),
                submit_retries: 0,
            },
        );
        let during: Vec<bool> = report.failures.iter().map(|f| f.during_fault).collect();
        assert_eq!(during, [false, true, false, true]);
        assert_eq!(report.unexpected_failures, 2);
        assert!(!report.passed());
    }
}
