//! # treaty-bench: Treaty's bench harnesses
//!
//! `treaty bench mpc|psi|train|score`: a workload between party processes on loopback, over
//! the real data plane ([`GrpcTransport`] on `PartyLink` streams with mutual TLS and pinned
//! certificates, as deployed). [`Workload::Mpc`] runs the rep3 workloads of
//! [`treaty_mpc::rep3::workload`] between three processes ([`mpc`]); [`Workload::Psi`] runs
//! two-party ECDH-PSI ([`treaty_mpc::psi`]) on synthetic id sets between two ([`psi`]);
//! [`Workload::Train`] and [`Workload::Score`] train and apply secure logistic regression
//! ([`treaty_mpc::glm`]) on a synthetic vertically split table between three ([`glm`]).
//!
//! ```text
//!                       parent (run_parent): throwaway PKI in a temp dir; starts the same
//!              ┌───────────────┼───────────────┐  binary once per party (a hidden subcommand)
//!              ▼ stdin/stdout  ▼               ▼
//!          party-0 ◄───────► party-1 ◄───────► party-2    run_child: PartyLink on 127.0.0.1:0
//!              ▲          gRPC + mutual TLS    ▲          (party-2 not for psi)
//!              └───────────────────────────────┘
//!   child → parent (stdout, JSON lines): ready {port, cert_sha256} · run {case, run, …} · done
//!   parent → child (stdin, one JSON line): the peers (endpoints, pinned fingerprints) and the plan
//! ```
//!
//! **Port exchange without races.** Each child binds port 0 itself, then reports the port it got
//! and its certificate fingerprint; only when all have reported does the parent send every child
//! the full peer list. No port is chosen before it is bound.
//!
//! **A run** (per case: `warmup` untimed runs, then `repeat` timed runs, all on one session):
//! inputs prepared untimed (rep3: shared; PSI: each party generates its own ids once per case;
//! glm: see [`glm`]), a barrier round, then the operation timed at every party. A run's time is the slowest party's; a
//! case reports the median over its runs, the rounds, and the most payload bytes any party sent
//! during the operation (framing and TLS overhead are not counted).
//!
//! **CPU time.** Each child also reports the CPU time its process used during the operation (all
//! threads, from `/proc/self/stat`): on a machine shared with other work the wall time grows with
//! the load, the CPU time much less, so it shows what the operation itself costs.
//!
//! **Peak memory.** With every timed run each child reports its peak resident set size so far
//! (`VmHWM` from `/proc/self/status`; `None` where that file does not exist, i.e. off Linux). A
//! process's peak cannot be reset, so a case's figure covers the child's whole life up to the end
//! of that case: start-up, connection, input generation and every earlier run and case.
//!
//! **Clean end.** A party that is through its runs closes its links gracefully
//! ([`GrpcTransport::close`]: its last message still leaves, and it waits until every peer has
//! finished) and only then reports `done`; it exits when the parent closes its stdin, which the
//! parent does once every party is done.
//!
//! **No orphans.** Children run in their own process group (a terminal's Ctrl-C reaches only the
//! parent, which then kills them) and are killed when the parent's handle on them is dropped, on
//! any error or interruption. A child also stops by itself as soon as its stdin closes, which
//! happens however the parent dies, even by `SIGKILL`. A child that fails is reported by its name
//! and index with the end of its stderr, followed by how the others ended (the root cause may
//! be theirs).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
#[cfg(feature = "fhe")]
pub mod fhe;
pub mod glm;
pub mod mpc;
pub mod psi;
pub mod soak;

use std::collections::VecDeque;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use treaty_mpc::rep3::workload::Case;
use treaty_mpc::transport::{Channel, CounterSnapshot, DEFAULT_MAX_MESSAGE, PartyIndex};
use treaty_trust::pki;
use treaty_trust::tls::TlsIdentity;

pub use glm::{
    ScoreBatchResult, ScoreCase, ScoreResult, ScoreSingleResult, TrainCase, TrainResult,
};
pub use mpc::CaseResult;
pub use psi::{PsiBenchMode, PsiCase, PsiResult};

pub use error::BenchError;
use treaty_party::PartyError;
use treaty_party::link::{
    GrpcTransport, LinkHub, PartyLinkService, SessionPeer, SessionSetup, data_plane_incoming,
    data_plane_server,
};

/// How the reports name the transport.
pub const TRANSPORT: &str = "grpc+tls";

/// Job id of the benchmark session (binds its pairwise seeds and the PSI hash).
const JOB_ID: &str = "bench";

/// How long the parent waits for every child to report its port.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a child may take to exit after it said it is done.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Lines of a child's stderr kept for an error report.
const STDERR_TAIL: usize = 20;

/// The name of party `index` (also its certificate's name).
pub fn party_name(index: PartyIndex) -> String {
    format!("party-{index}")
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    /// The cases, in order, and so the number of parties.
    pub workload: Workload,
    /// Timed runs per case; at least 1.
    pub repeat: usize,
    /// Untimed runs per case before the timed ones.
    pub warmup: usize,
    /// How long a party waits for a peer's message (and to connect) before it fails.
    pub timeout: Duration,
}

/// The cases of a benchmark, by protocol.
#[derive(Debug, Clone)]
pub enum Workload {
    /// rep3 operations between three parties.
    Mpc(Vec<Case>),
    /// Two-party ECDH-PSI.
    Psi(Vec<PsiCase>),
    /// Secure logistic or linear regression training between three parties.
    Train(Vec<TrainCase>),
    /// Scoring with a secret-shared model between three parties.
    Score(Vec<ScoreCase>),
}

impl Workload {
    /// Number of party processes.
    pub fn parties(&self) -> usize {
        match self {
            Self::Mpc(_) => mpc::PARTIES,
            Self::Psi(_) => psi::PARTIES,
            Self::Train(_) | Self::Score(_) => glm::PARTIES,
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Mpc(c) => c.len(),
            Self::Psi(c) => c.len(),
            Self::Train(c) => c.len(),
            Self::Score(c) => c.len(),
        }
    }

    fn wire(&self) -> WireWorkload {
        match self {
            Self::Mpc(cases) => WireWorkload::Mpc {
                cases: cases.iter().map(mpc::WireCase::from).collect(),
            },
            Self::Psi(cases) => WireWorkload::Psi {
                cases: cases.clone(),
            },
            Self::Train(cases) => WireWorkload::Train {
                cases: cases.clone(),
            },
            Self::Score(cases) => WireWorkload::Score {
                cases: cases.clone(),
            },
        }
    }

    /// The figures of case `case` from its complete runs.
    fn summarise(
        &self,
        case: usize,
        plan: &BenchPlan,
        runs: &[RunReports],
    ) -> Result<BenchResult, BenchError> {
        Ok(match self {
            Self::Mpc(cases) => BenchResult::Mpc(mpc::summarise(&cases[case], plan, runs)),
            Self::Psi(cases) => BenchResult::Psi(psi::summarise(&cases[case], plan, runs)?),
            Self::Train(cases) => {
                BenchResult::Train(glm::summarise_train(&cases[case], plan, runs))
            }
            Self::Score(cases) => match glm::summarise_score(&cases[case], plan, runs) {
                ScoreResult::Batch(r) => BenchResult::ScoreBatch(r),
                ScoreResult::Single(r) => BenchResult::ScoreSingle(r),
            },
        })
    }
}

/// One case's figures, as `treaty bench … --json` prints them (one object per line).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum BenchResult {
    /// A rep3 operation.
    Mpc(CaseResult),
    /// A PSI run.
    Psi(PsiResult),
    /// A training run.
    Train(TrainResult),
    /// Batch scoring.
    ScoreBatch(ScoreBatchResult),
    /// Single-record scoring latency.
    ScoreSingle(ScoreSingleResult),
}

/// What one party reports for one timed run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Reported {
    /// This party's time for the operation.
    seconds: f64,
    /// Rounds of the operation.
    rounds: u64,
    /// Payload bytes this party sent during the operation.
    bytes_sent: u64,
    /// The intersection size, for a PSI party that learns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    intersection: Option<u64>,
    /// This process's CPU time during the operation ([`process_cpu_seconds`]).
    #[serde(default)]
    cpu_seconds: Option<f64>,
    /// [`peak_rss_bytes`] right after the run.
    #[serde(default)]
    peak_rss: Option<u64>,
    /// The largest gap from a plaintext reference, from the party that checks it (glm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_error: Option<f64>,
    /// How many results are off by more than the workload tolerates (glm scores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    off: Option<u64>,
    /// This party's time for each request, in seconds (glm single-record scoring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    latencies: Option<Vec<f64>>,
}

impl Reported {
    /// A run that took `elapsed` and `traffic` and started when the process had used `cpu_start`
    /// seconds of CPU; reads the CPU time and the peak RSS now.
    fn new(
        elapsed: Duration,
        traffic: CounterSnapshot,
        cpu_start: Option<f64>,
        intersection: Option<u64>,
    ) -> Self {
        Self {
            seconds: elapsed.as_secs_f64(),
            rounds: traffic.rounds,
            bytes_sent: traffic.bytes_sent,
            intersection,
            cpu_seconds: process_cpu_seconds()
                .zip(cpu_start)
                // Whole ticks, without the float noise of the subtraction (1.78, not 1.7799…).
                .map(|(end, start)| ((end - start) * USER_HZ).round().max(0.0) / USER_HZ),
            peak_rss: peak_rss_bytes(),
            ..Self::default()
        }
    }
}

/// One timed run's reports, by party.
type RunReports = Vec<Option<Reported>>;

/// Child → parent, one JSON object per stdout line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum ChildEvent {
    /// Listening; this is my port and certificate.
    Ready { port: u16, cert_sha256: String },
    /// One timed run of case `case`.
    Run {
        case: usize,
        run: usize,
        #[serde(flatten)]
        report: Reported,
    },
    /// Every case ran.
    Done,
}

/// A peer as the parent hands it to every child.
#[derive(Debug, Serialize, Deserialize)]
struct WirePeer {
    party: String,
    endpoint: String,
    cert_sha256: String,
}

/// The cases on the wire (checked again by the child).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WireWorkload {
    Mpc { cases: Vec<mpc::WireCase> },
    Psi { cases: Vec<PsiCase> },
    Train { cases: Vec<TrainCase> },
    Score { cases: Vec<ScoreCase> },
}

/// Parent → child, one JSON line on stdin.
#[derive(Debug, Serialize, Deserialize)]
struct Setup {
    peers: Vec<WirePeer>,
    workload: WireWorkload,
    repeat: usize,
    warmup: usize,
    timeout_ms: u64,
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::Io {
        path: PathBuf::from(what),
        source,
    }
}

fn child_err(index: PartyIndex, what: impl Into<String>) -> BenchError {
    BenchError::Party {
        party: party_name(index),
        index,
        what: what.into(),
    }
}

/// This process's peak resident set size in bytes (`VmHWM` in `/proc/self/status`), or `None`
/// where that is not available (off Linux). It covers the process's whole life: it cannot be reset.
pub fn peak_rss_bytes() -> Option<u64> {
    vm_hwm(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// Clock ticks per second of the times in `/proc/PID/stat` (Linux's `USER_HZ`, fixed at 100 for
/// user space whatever the kernel's tick rate).
const USER_HZ: f64 = 100.0;

/// CPU time this process has used so far (user + system, every thread), in seconds, from
/// `/proc/self/stat` (so in steps of 10 ms); `None` off Linux. On a loaded machine the wall time
/// of a run grows with the load; its CPU time much less.
pub fn process_cpu_seconds() -> Option<f64> {
    let ticks = cpu_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    Some(ticks as f64 / USER_HZ)
}

/// `utime + stime` of a `/proc/PID/stat` line: fields 14 and 15, counted from the state (field 3)
/// after the command name, which may hold spaces and parentheses.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// The `VmHWM:   123 kB` line of a `/proc/PID/status` text, in bytes.
fn vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

// ---------------------------------------------------------------------------------------------
// Parent.

/// A spawned child with its pipes and the end of its stderr. Killed and reaped when dropped.
struct Proc {
    index: PartyIndex,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Closing stdin alone would stop the child too; killing makes it immediate.
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// The exit status, waiting at most `within`.
    async fn exit_status(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => return None,
            }
        }
    }

    /// How the child ended (waiting at most `within`) and the end of its stderr.
    async fn outcome(&mut self, within: Duration) -> String {
        let status = match self.exit_status(within).await {
            Some(s) => format!("exited with {s}"),
            None => "still running".into(),
        };
        let tail = self.stderr_tail();
        if tail.is_empty() {
            status
        } else {
            format!("{status}; its stderr ends with:\n{tail}")
        }
    }
    fn send_line(&mut self, line: &str) -> Result<(), BenchError> {
        let index = self.index;
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| child_err(index, "stdin already closed"))?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| child_err(index, format!("cannot write to its stdin: {e}")))
    }
}

/// What the reader threads report.
enum Event {
    Line(PartyIndex, String),
    Closed(PartyIndex),
}

fn spawn_child(
    index: PartyIndex,
    mut cmd: Command,
    events: mpsc::UnboundedSender<Event>,
) -> Result<Proc, BenchError> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .map_err(|e| child_err(index, format!("cannot start {:?}: {e}", cmd.get_program())))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr_pipe = child.stderr.take();
    let stderr = Arc::new(Mutex::new(VecDeque::new()));
    // Build the handle first, so that a failure below still kills the child.
    let proc = Proc {
        index,
        child,
        stdin,
        stderr: stderr.clone(),
    };
    let (Some(stdout), Some(stderr_pipe)) = (stdout, stderr_pipe) else {
        return Err(child_err(index, "no stdout/stderr pipe"));
    };
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if events.send(Event::Line(index, l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = events.send(Event::Closed(index));
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
            let mut tail = stderr.lock().unwrap_or_else(|p| p.into_inner());
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    });
    Ok(proc)
}

/// Runs `plan` between [`Workload::parties`] child processes and returns one result per case,
/// calling `on_result` as soon as each case is complete.
///
/// `command(index, pki_dir)` must build the command line of a child that calls [`run_child`]
/// with that index and PKI directory (for `treaty`: the same binary with a hidden subcommand);
/// stdin, stdout and stderr are set here. Stops, killing the children, with
/// [`BenchError::Aborted`] when `shutdown` resolves, and with [`BenchError::Party`] naming
/// the party when a child fails (or a PSI party finds a wrong intersection).
pub async fn run_parent(
    plan: &BenchPlan,
    command: impl Fn(PartyIndex, &Path) -> Command,
    shutdown: impl Future<Output = ()>,
    mut on_result: impl FnMut(&BenchResult),
) -> Result<Vec<BenchResult>, BenchError> {
    if plan.repeat == 0 {
        return Err(BenchError::Failed("--repeat must be at least 1".into()));
    }
    let parties = plan.workload.parties();
    let dir = tempfile::Builder::new()
        .prefix("treaty-bench-")
        .tempdir()
        .map_err(io_err("a temporary directory"))?;
    let pki_dir = dir.path().join("pki");
    let names: Vec<String> = (0..parties).map(party_name).collect();
    pki::write_deployment(&pki_dir, &[], &names, &[], &[])
        .map_err(treaty_trust::TrustError::from)?;

    let (tx, mut events) = mpsc::unbounded_channel();
    let mut procs = Vec::with_capacity(parties);
    for i in 0..parties {
        procs.push(spawn_child(i, command(i, &pki_dir), tx.clone())?);
    }
    drop(tx);

    tokio::pin!(shutdown);
    let interrupted =
        || BenchError::Aborted("interrupted; the party processes were stopped".into());

    // 1. Every child reports its port and fingerprint.
    let mut ready: Vec<Option<(u16, String)>> = vec![None; parties];
    let deadline = tokio::time::sleep(READY_TIMEOUT);
    tokio::pin!(deadline);
    while ready.iter().any(Option::is_none) {
        let event = tokio::select! {
            e = events.recv() => e,
            () = &mut shutdown => return Err(interrupted()),
            () = &mut deadline => {
                let late = ready.iter().position(Option::is_none).unwrap_or(0);
                return Err(failure(&mut procs, late, "did not report its port in time").await);
            }
        };
        match parse_event(event, &mut procs).await? {
            (i, ChildEvent::Ready { port, cert_sha256 }) => ready[i] = Some((port, cert_sha256)),
            (i, other) => {
                return Err(child_err(i, format!("sent {other:?} before it was ready")));
            }
        }
    }

    // 2. Every child gets the peers and the plan.
    let setup = Setup {
        peers: ready
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (port, fp) = r.clone().unwrap_or_default();
                WirePeer {
                    party: party_name(i),
                    endpoint: format!("https://127.0.0.1:{port}"),
                    cert_sha256: fp,
                }
            })
            .collect(),
        workload: plan.workload.wire(),
        repeat: plan.repeat,
        warmup: plan.warmup,
        timeout_ms: u64::try_from(plan.timeout.as_millis()).unwrap_or(u64::MAX),
    };
    let line = serde_json::to_string(&setup)
        .map_err(|e| BenchError::Aborted(format!("cannot encode the plan: {e}")))?;
    for p in &mut procs {
        p.send_line(&line)?;
    }

    // 3. Runs, until every child is done.
    let mut runs: Vec<Vec<RunReports>> = (0..plan.workload.len())
        .map(|_| vec![vec![None; parties]; plan.repeat])
        .collect();
    let mut results = Vec::with_capacity(runs.len());
    let mut done = vec![false; parties];
    while done.iter().any(|d| !d) {
        let event = tokio::select! {
            e = events.recv() => e,
            () = &mut shutdown => return Err(interrupted()),
        };
        match parse_event(event, &mut procs).await? {
            (i, ChildEvent::Run { case, run, report }) => {
                let slot = runs
                    .get_mut(case)
                    .and_then(|r| r.get_mut(run))
                    .ok_or_else(|| child_err(i, format!("reported an unknown run {case}/{run}")))?;
                slot[i] = Some(report);
                // Parties run the cases in order: a case is complete when its last run is.
                if results.len() == case && runs[case].iter().flatten().all(Option::is_some) {
                    let r = plan.workload.summarise(case, plan, &runs[case])?;
                    on_result(&r);
                    results.push(r);
                }
            }
            (i, ChildEvent::Done) => {
                if runs.iter().flatten().any(|r| r[i].is_none()) {
                    return Err(child_err(i, "said it was done before every run"));
                }
                done[i] = true;
            }
            (i, ChildEvent::Ready { .. }) => return Err(child_err(i, "reported ready twice")),
        }
    }

    // 4. Every child has closed its links; closing its stdin lets it exit.
    for p in &mut procs {
        p.stdin.take();
    }
    for i in 0..parties {
        match procs[i].exit_status(EXIT_TIMEOUT).await {
            Some(s) if s.success() => {}
            Some(_) => return Err(failure(&mut procs, i, "failed after its last run").await),
            None => return Err(child_err(i, "did not exit after its last run")),
        }
    }
    Ok(results)
}

/// The error for child `i`, which stopped talking: how it ended and, as the root cause may lie
/// elsewhere, how the others did (they usually fail right after, naming the peer they lost).
async fn failure(procs: &mut [Proc], i: PartyIndex, what: &str) -> BenchError {
    let mut report = format!(
        "{what} ({})",
        procs[i].outcome(Duration::from_secs(2)).await
    );
    for p in procs.iter_mut().filter(|p| p.index != i) {
        let outcome = p.outcome(Duration::from_millis(500)).await;
        report.push_str(&format!(
            "\n{} (index {}): {outcome}",
            party_name(p.index),
            p.index
        ));
    }
    child_err(i, report)
}

/// Decodes a reader event; a closed stdout or a malformed line is the child's failure.
async fn parse_event(
    event: Option<Event>,
    procs: &mut [Proc],
) -> Result<(PartyIndex, ChildEvent), BenchError> {
    match event {
        Some(Event::Line(i, line)) => serde_json::from_str(&line).map(|e| (i, e)).map_err(|e| {
            child_err(
                i,
                format!("printed a line that is not a report ({e}): {line:?}"),
            )
        }),
        Some(Event::Closed(i)) => Err(failure(procs, i, "stopped before it was done").await),
        // Every reader thread ends with `Closed`, so this is not reached while a child runs.
        None => Err(BenchError::Aborted("every party process went away".into())),
    }
}

/// Per run, the slowest party's time.
fn run_seconds(runs: &[RunReports]) -> Vec<f64> {
    runs.iter()
        .map(|r| r.iter().flatten().map(|m| m.seconds).fold(0.0, f64::max))
        .collect()
}

/// Every party's median CPU time over the runs (`None` if a run of it has none).
fn median_cpu_seconds(runs: &[RunReports]) -> Vec<Option<f64>> {
    let parties = runs.first().map_or(0, Vec::len);
    (0..parties)
        .map(|p| {
            let cpu: Option<Vec<f64>> = runs.iter().map(|r| r[p].as_ref()?.cpu_seconds).collect();
            cpu.map(|c| median(&c))
        })
        .collect()
}

/// Every party's last reported peak RSS (reports come after each run, and a peak only grows).
fn last_peak_rss(runs: &[RunReports]) -> Vec<Option<u64>> {
    let parties = runs.first().map_or(0, Vec::len);
    (0..parties)
        .map(|p| runs.iter().filter_map(|r| r[p].as_ref()?.peak_rss).max())
        .collect()
}

/// The median (the mean of the two middle values for an even count); 0 for no values.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        l if l % 2 == 1 => v[l / 2],
        l => (v[l / 2 - 1] + v[l / 2]) / 2.0,
    }
}

// ---------------------------------------------------------------------------------------------
// Child.

/// One party process: serves `PartyLink` on `127.0.0.1:0` with the identity `party-INDEX` from
/// `pki_dir`, reports its port on `output`, reads the peers and plan from `input`, connects a
/// [`GrpcTransport`] to the other parties and runs the plan, reporting each timed run on `output`.
///
/// After reporting `done` it waits for `input` to close, which the parent does once every party
/// is done (so no peer is still reading this party's last message when the process exits).
/// Returns [`BenchError::Aborted`] as soon as `input` closes before the end (the parent is gone).
pub async fn run_child(
    index: PartyIndex,
    pki_dir: &Path,
    input: impl BufRead + Send + 'static,
    output: impl Write,
) -> Result<(), BenchError> {
    let name = party_name(index);
    let tls = TlsIdentity::load(
        &pki_dir.join("ca.pem"),
        &pki_dir.join(format!("{name}.pem")),
        &pki_dir.join(format!("{name}.key")),
    )
    .map_err(treaty_trust::TrustError::from)?;

    // Lines from the parent; the channel closes when stdin does.
    let (tx, mut lines) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in input.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });

    let stop = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(io_err("127.0.0.1:0"))?;
    let addr: SocketAddr = listener.local_addr().map_err(io_err("listener"))?;
    let hub = Arc::new(LinkHub::default());
    let server = data_plane_server(Some(&tls))?
        .add_service(PartyLinkService::new(name.clone(), hub.clone(), None).into_server())
        .serve_with_incoming_shutdown(
            data_plane_incoming(listener),
            stop.clone().cancelled_owned(),
        );
    let server = tokio::spawn(server);

    let mut out = Reporter(output);
    let outcome = async {
        out.send(&ChildEvent::Ready {
            port: addr.port(),
            cert_sha256: hex::encode(tls.cert_sha256()),
        })?;
        let line = lines.recv().await.ok_or_else(parent_gone)?;
        let setup: Setup = serde_json::from_str(&line)
            .map_err(|e| BenchError::Aborted(format!("unreadable plan from the parent: {e}")))?;
        // From here on, the parent closing stdin stops the run.
        tokio::select! {
            r = run_plan(index, &tls, &hub, setup, stop.clone(), &mut out) => r?,
            () = until_closed(&mut lines) => return Err(parent_gone()),
        }
        // Done, but a peer may still be reading our last message, which a process exit could cut
        // off: stay up until the parent closes stdin, which it does once every party is done.
        until_closed(&mut lines).await;
        Ok(())
    }
    .await;
    stop.cancel();
    // Peers are done or gone; do not let a half-closed connection hold the exit.
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    outcome
}

/// Resolves when the parent closes stdin (further lines are ignored).
async fn until_closed(lines: &mut mpsc::UnboundedReceiver<String>) {
    while lines.recv().await.is_some() {}
}

fn parent_gone() -> BenchError {
    BenchError::Aborted("the parent process is gone (stdin closed)".into())
}

/// JSON lines on the child's stdout, flushed one by one.
struct Reporter<W: Write>(W);

impl<W: Write> Reporter<W> {
    fn send(&mut self, event: &ChildEvent) -> Result<(), BenchError> {
        let line = serde_json::to_string(event)
            .map_err(|e| BenchError::Aborted(format!("cannot encode a report: {e}")))?;
        writeln!(self.0, "{line}")
            .and_then(|()| self.0.flush())
            .map_err(io_err("stdout"))
    }

    /// Reports timed run `run` of case `case`.
    fn run(&mut self, case: usize, run: usize, report: Reported) -> Result<(), BenchError> {
        self.send(&ChildEvent::Run { case, run, report })
    }
}

/// How many runs of each case a child does, and which it reports.
#[derive(Debug, Clone, Copy)]
struct Runs {
    warmup: usize,
    repeat: usize,
}

impl Runs {
    /// Every run of a case, each with its index among the timed runs (`None` for a warm-up).
    fn iter(self) -> impl Iterator<Item = Option<usize>> {
        (0..self.warmup + self.repeat).map(move |r| r.checked_sub(self.warmup))
    }
}

async fn run_plan<W: Write>(
    index: PartyIndex,
    tls: &TlsIdentity,
    hub: &LinkHub,
    setup: Setup,
    abort: CancellationToken,
    out: &mut Reporter<W>,
) -> Result<(), BenchError> {
    let parties = match &setup.workload {
        WireWorkload::Mpc { .. } => mpc::PARTIES,
        WireWorkload::Psi { .. } => psi::PARTIES,
        WireWorkload::Train { .. } | WireWorkload::Score { .. } => glm::PARTIES,
    };
    if setup.peers.len() != parties || index >= parties {
        return Err(BenchError::Failed(format!(
            "the plan names {} parties, not {parties}, or index {index} is not among them",
            setup.peers.len()
        )));
    }
    let peers: Vec<SessionPeer> = setup
        .peers
        .iter()
        .map(|p| {
            Ok(SessionPeer {
                party: p.party.clone(),
                endpoint: p.endpoint.clone(),
                tls_cert_sha256: hex::decode(&p.cert_sha256)
                    .map_err(|_| BenchError::Failed(format!("bad fingerprint for {}", p.party)))?,
                ca_pem: None,
            })
        })
        .collect::<Result<_, BenchError>>()?;
    let ids: Vec<String> = peers.iter().map(|p| p.party.clone()).collect();
    let timeout = Duration::from_millis(setup.timeout_ms);
    let transport = GrpcTransport::connect(
        SessionSetup {
            job_id: JOB_ID,
            me: index,
            peers: &peers,
            tls: Some(tls),
            timeout,
            abort,
        },
        hub,
    )
    .await
    .map_err(|e| PartyError::from(e).with_peer_names(&ids))?;
    let transport = Arc::new(transport);
    let root = Channel::new(transport.clone(), DEFAULT_MAX_MESSAGE);
    let runs = Runs {
        warmup: setup.warmup,
        repeat: setup.repeat,
    };
    let result = match &setup.workload {
        WireWorkload::Mpc { cases } => mpc::run_cases(&root, &ids, cases, runs, out).await,
        WireWorkload::Psi { cases } => psi::run_cases(&root, cases, runs, out).await,
        WireWorkload::Train { cases } => glm::run_train(&root, &ids, cases, runs, out).await,
        WireWorkload::Score { cases } => glm::run_score(&root, &ids, cases, runs, out).await,
    };
    if let Err(e) = &result {
        transport.abort_peers(&format!("{} failed: {e}", party_name(index)));
        // Give the abort frames a moment to leave before the links drop.
        tokio::time::sleep(Duration::from_millis(50)).await;
        return result.map_err(|e| e.with_peer_names(&ids));
    }
    // Our last message may still be queued: end the links gracefully, not by dropping them.
    transport
        .close(timeout)
        .await
        .map_err(|e| PartyError::from(e).with_peer_names(&ids))?;
    out.send(&ChildEvent::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn reports_round_trip_as_tagged_json_lines() {
        let line = serde_json::to_string(&ChildEvent::Ready {
            port: 4242,
            cert_sha256: "ab".into(),
        })
        .unwrap();
        assert_eq!(line, r#"{"event":"ready","port":4242,"cert_sha256":"ab"}"#);
        let back: ChildEvent = serde_json::from_str(&line).unwrap();
        assert!(matches!(back, ChildEvent::Ready { port: 4242, .. }));
        let run = ChildEvent::Run {
            case: 1,
            run: 0,
            report: Reported {
                seconds: 0.5,
                rounds: 3,
                bytes_sent: 10,
                intersection: Some(7),
                cpu_seconds: Some(0.25),
                peak_rss: None,
                ..Reported::default()
            },
        };
        let line = serde_json::to_string(&run).unwrap();
        let back: ChildEvent = serde_json::from_str(&line).unwrap();
        assert!(
            matches!(back, ChildEvent::Run { case: 1, report, .. } if report.intersection == Some(7)),
            "{line}"
        );
    }

    #[test]
    fn peak_rss_is_read_from_vm_hwm() {
        let status = "Name:\ttreaty\nVmPeak:\t  900 kB\nVmHWM:\t    1536 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(vm_hwm(status), Some(1536 * 1024));
        assert_eq!(vm_hwm("Name:\tx\n"), None);
        #[cfg(target_os = "linux")]
        assert!(peak_rss_bytes().is_some_and(|b| b > 0));
    }

    #[test]
    fn cpu_time_is_read_from_proc_stat() {
        // A command name with spaces and a parenthesis; utime 250 and stime 50 ticks.
        let stat = "42 (tr (x) y) R 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(cpu_ticks(stat), Some(300));
        assert_eq!(cpu_ticks("42 (x) R 1"), None);
        #[cfg(target_os = "linux")]
        assert!(process_cpu_seconds().is_some_and(|s| s >= 0.0));
    }

    #[test]
    fn warm_up_runs_are_not_reported() {
        let runs = Runs {
            warmup: 2,
            repeat: 2,
        };
        assert_eq!(
            runs.iter().collect::<Vec<_>>(),
            [None, None, Some(0), Some(1)]
        );
    }
}
