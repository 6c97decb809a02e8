//! `treaty bench mpc`: the rep3 workloads of [`treaty_mpc::rep3::workload`] between three party
//! processes on loopback, over the real data plane ([`GrpcTransport`] on `PartyLink` streams with
//! mutual TLS and pinned certificates, as deployed).
//!
//! ```text
//!                       parent (run_parent): throwaway PKI in a temp dir; starts the same
//!              ┌───────────────┼───────────────┐  binary 3× (a hidden subcommand)
//!              ▼ stdin/stdout  ▼               ▼
//!          party-0 ◄───────► party-1 ◄───────► party-2    run_child: PartyLink on 127.0.0.1:0
//!              ▲          gRPC + mutual TLS    ▲
//!              └───────────────────────────────┘
//!   child → parent (stdout, JSON lines): ready {port, cert_sha256} · run {case, run, …} · done
//!   parent → child (stdin, one JSON line): the peers (endpoints, pinned fingerprints) and the plan
//! ```
//!
//! **Port exchange without races.** Each child binds port 0 itself, then reports the port it got
//! and its certificate fingerprint; only when all three have reported does the parent send every
//! child the full peer list. No port is chosen before it is bound.
//!
//! **A run** (per case: one untimed warm-up, then `repeat` timed runs, all on one rep3 session):
//! inputs shared (untimed), a barrier round, then the operation timed at every party
//! ([`treaty_mpc::rep3::workload::Case::measure`]). A run's time is the slowest party's; a case
//! reports the median over its runs, the rounds, and the most payload bytes any party sent
//! during the operation (framing and TLS overhead are not counted).
//!
//! **Clean end.** A party that is through its runs closes its links gracefully
//! ([`GrpcTransport::close`]: its last message still leaves, and it waits until both peers have
//! finished) and only then reports `done`; it exits when the parent closes its stdin, which the
//! parent does once all three are done.
//!
//! **No orphans.** Children run in their own process group (a terminal's Ctrl-C reaches only the
//! parent, which then kills them) and are killed when the parent's handle on them is dropped, on
//! any error or interruption. A child also stops by itself as soon as its stdin closes, which
//! happens however the parent dies, even by `SIGKILL`. A child that fails is reported by its name
//! and index with the end of its stderr, followed by how the other two ended (the root cause may
//! be theirs).

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
use treaty_coordinator::tls::TlsIdentity;
use treaty_coordinator::{CoordinatorError, pki};
use treaty_mpc::rep3::Rep3Session;
use treaty_mpc::rep3::workload::{self, Case, Op, Shape};
use treaty_mpc::seeds::{SessionContext, os_rng};
use treaty_mpc::transport::{DEFAULT_MAX_MESSAGE, PartyIndex};

use crate::PartyError;
use crate::link::{
    GrpcTransport, LinkHub, PartyLinkService, SessionPeer, SessionSetup, data_plane_incoming,
    data_plane_server,
};

/// How the reports name the transport.
pub const TRANSPORT: &str = "grpc+tls";

/// Number of parties (rep3).
pub const PARTIES: usize = 3;

/// Job id of the benchmark session (binds its pairwise seeds).
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
    /// The cases, in order.
    pub cases: Vec<Case>,
    /// Timed runs per case (after one untimed warm-up); at least 1.
    pub repeat: usize,
    /// How long a party waits for a peer's message (and to connect) before it fails.
    pub timeout: Duration,
}

/// One case's figures, as `treaty bench mpc --json` prints them (one object per line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseResult {
    /// The operation ([`Op::name`]).
    pub op: Op,
    /// Output elements (`m·n` for a matrix product).
    pub n: usize,
    /// `[m, k, n]` of a matrix product `m×k · k×n`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<[usize; 3]>,
    /// Median over the timed runs of the slowest party's time for the operation, in seconds.
    pub seconds: f64,
    /// Communication rounds of the operation.
    pub rounds: u64,
    /// Most payload bytes any party sent during the operation.
    pub bytes_per_party: u64,
    /// `bytes_per_party / n`.
    pub bytes_per_element: f64,
    /// Every timed run's time (slowest party), in run order.
    pub run_seconds: Vec<f64>,
    /// Timed runs.
    pub repeat: usize,
    /// Fixed-point fractional bits of the inputs.
    pub frac_bits: u32,
    /// Number of parties (processes).
    pub parties: usize,
    /// [`TRANSPORT`].
    pub transport: &'static str,
}

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
        seconds: f64,
        rounds: u64,
        bytes_sent: u64,
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

/// A case on the wire (checked again with [`Case::new`] by the child).
#[derive(Debug, Serialize, Deserialize)]
struct WireCase {
    op: Op,
    shape: Shape,
}

/// Parent → child, one JSON line on stdin.
#[derive(Debug, Serialize, Deserialize)]
struct Setup {
    peers: Vec<WirePeer>,
    cases: Vec<WireCase>,
    repeat: usize,
    timeout_ms: u64,
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> PartyError + '_ {
    move |source| PartyError::Io {
        path: PathBuf::from(what),
        source,
    }
}

fn child_err(index: PartyIndex, what: impl Into<String>) -> PartyError {
    PartyError::BenchParty {
        party: party_name(index),
        index,
        what: what.into(),
    }
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
    fn send_line(&mut self, line: &str) -> Result<(), PartyError> {
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
) -> Result<Proc, PartyError> {
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

/// What one party reported for one timed run.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reported {
    seconds: f64,
    rounds: u64,
    bytes_sent: u64,
}

/// One timed run's reports, by party.
type RunReports = [Option<Reported>; PARTIES];

/// Runs `plan` between three child processes and returns one result per case, calling
/// `on_result` as soon as each case is complete.
///
/// `command(index, pki_dir)` must build the command line of a child that calls [`run_child`]
/// with that index and PKI directory (for `treaty`: the same binary with a hidden subcommand);
/// stdin, stdout and stderr are set here. Stops, killing the children, with
/// [`PartyError::Aborted`] when `shutdown` resolves, and with [`PartyError::BenchParty`] naming
/// the party when a child fails.
pub async fn run_parent(
    plan: &BenchPlan,
    command: impl Fn(PartyIndex, &Path) -> Command,
    shutdown: impl Future<Output = ()>,
    mut on_result: impl FnMut(&CaseResult),
) -> Result<Vec<CaseResult>, PartyError> {
    if plan.repeat == 0 {
        return Err(PartyError::Rejected("--repeat must be at least 1".into()));
    }
    let dir = tempfile::Builder::new()
        .prefix("treaty-bench-")
        .tempdir()
        .map_err(io_err("a temporary directory"))?;
    let pki_dir = dir.path().join("pki");
    let names: Vec<String> = (0..PARTIES).map(party_name).collect();
    pki::write_deployment(&pki_dir, &[], &names, &[]).map_err(CoordinatorError::from)?;

    let (tx, mut events) = mpsc::unbounded_channel();
    let mut procs = Vec::with_capacity(PARTIES);
    for i in 0..PARTIES {
        procs.push(spawn_child(i, command(i, &pki_dir), tx.clone())?);
    }
    drop(tx);

    tokio::pin!(shutdown);
    let interrupted =
        || PartyError::Aborted("interrupted; the party processes were stopped".into());

    // 1. Every child reports its port and fingerprint.
    let mut ready: [Option<(u16, String)>; PARTIES] = Default::default();
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
        cases: plan
            .cases
            .iter()
            .map(|c| WireCase {
                op: c.op(),
                shape: c.shape(),
            })
            .collect(),
        repeat: plan.repeat,
        timeout_ms: u64::try_from(plan.timeout.as_millis()).unwrap_or(u64::MAX),
    };
    let line = serde_json::to_string(&setup)
        .map_err(|e| PartyError::Aborted(format!("cannot encode the plan: {e}")))?;
    for p in &mut procs {
        p.send_line(&line)?;
    }

    // 3. Runs, until every child is done.
    let mut runs: Vec<Vec<RunReports>> = plan
        .cases
        .iter()
        .map(|_| vec![[None; PARTIES]; plan.repeat])
        .collect();
    let mut results = Vec::with_capacity(plan.cases.len());
    let mut done = [false; PARTIES];
    while done.iter().any(|d| !d) {
        let event = tokio::select! {
            e = events.recv() => e,
            () = &mut shutdown => return Err(interrupted()),
        };
        match parse_event(event, &mut procs).await? {
            (
                i,
                ChildEvent::Run {
                    case,
                    run,
                    seconds,
                    rounds,
                    bytes_sent,
                },
            ) => {
                let slot = runs
                    .get_mut(case)
                    .and_then(|r| r.get_mut(run))
                    .ok_or_else(|| child_err(i, format!("reported an unknown run {case}/{run}")))?;
                slot[i] = Some(Reported {
                    seconds,
                    rounds,
                    bytes_sent,
                });
                // Parties run the cases in order: a case is complete when its last run is.
                if results.len() == case && runs[case].iter().flatten().all(Option::is_some) {
                    let r = summarise(&plan.cases[case], plan.repeat, &runs[case]);
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
    for i in 0..PARTIES {
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
async fn failure(procs: &mut [Proc], i: PartyIndex, what: &str) -> PartyError {
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
) -> Result<(PartyIndex, ChildEvent), PartyError> {
    match event {
        Some(Event::Line(i, line)) => serde_json::from_str(&line).map(|e| (i, e)).map_err(|e| {
            child_err(
                i,
                format!("printed a line that is not a report ({e}): {line:?}"),
            )
        }),
        Some(Event::Closed(i)) => Err(failure(procs, i, "stopped before it was done").await),
        // Every reader thread ends with `Closed`, so this is not reached while a child runs.
        None => Err(PartyError::Aborted("every party process went away".into())),
    }
}

/// The figures of one case from its complete runs.
fn summarise(case: &Case, repeat: usize, runs: &[RunReports]) -> CaseResult {
    let per_party = || runs.iter().flatten().flatten();
    let run_seconds: Vec<f64> = runs
        .iter()
        .map(|r| r.iter().flatten().map(|m| m.seconds).fold(0.0, f64::max))
        .collect();
    let rounds = per_party().map(|m| m.rounds).max().unwrap_or(0);
    let bytes_per_party = per_party().map(|m| m.bytes_sent).max().unwrap_or(0);
    let n = case.out_len();
    CaseResult {
        op: case.op(),
        n,
        shape: match case.shape() {
            Shape::Matrix { m, k, n } => Some([m, k, n]),
            Shape::Vector { .. } => None,
        },
        seconds: median(&run_seconds),
        rounds,
        bytes_per_party,
        bytes_per_element: bytes_per_party as f64 / n as f64,
        run_seconds,
        repeat,
        frac_bits: workload::FRAC_BITS,
        parties: PARTIES,
        transport: TRANSPORT,
    }
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
/// [`GrpcTransport`] to the other two and runs the plan, reporting each timed run on `output`.
///
/// After reporting `done` it waits for `input` to close, which the parent does once every party
/// is done (so no peer is still reading this party's last message when the process exits).
/// Returns [`PartyError::Aborted`] as soon as `input` closes before the end (the parent is gone).
pub async fn run_child(
    index: PartyIndex,
    pki_dir: &Path,
    input: impl BufRead + Send + 'static,
    output: impl Write,
) -> Result<(), PartyError> {
    if index >= PARTIES {
        return Err(PartyError::Rejected(format!(
            "party index {index}: there are {PARTIES} parties"
        )));
    }
    let name = party_name(index);
    let tls = TlsIdentity::load(
        &pki_dir.join("ca.pem"),
        &pki_dir.join(format!("{name}.pem")),
        &pki_dir.join(format!("{name}.key")),
    )
    .map_err(CoordinatorError::from)?;

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
        .add_service(PartyLinkService::new(name.clone(), hub.clone()).into_server())
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
            .map_err(|e| PartyError::Aborted(format!("unreadable plan from the parent: {e}")))?;
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

fn parent_gone() -> PartyError {
    PartyError::Aborted("the parent process is gone (stdin closed)".into())
}

/// JSON lines on the child's stdout, flushed one by one.
struct Reporter<W: Write>(W);

impl<W: Write> Reporter<W> {
    fn send(&mut self, event: &ChildEvent) -> Result<(), PartyError> {
        let line = serde_json::to_string(event)
            .map_err(|e| PartyError::Aborted(format!("cannot encode a report: {e}")))?;
        writeln!(self.0, "{line}")
            .and_then(|()| self.0.flush())
            .map_err(io_err("stdout"))
    }
}

async fn run_plan<W: Write>(
    index: PartyIndex,
    tls: &TlsIdentity,
    hub: &LinkHub,
    setup: Setup,
    abort: CancellationToken,
    out: &mut Reporter<W>,
) -> Result<(), PartyError> {
    if setup.peers.len() != PARTIES {
        return Err(PartyError::Rejected(format!(
            "the plan names {} parties, not {PARTIES}",
            setup.peers.len()
        )));
    }
    let cases = setup
        .cases
        .iter()
        .map(|c| Case::new(c.op, c.shape))
        .collect::<Result<Vec<_>, _>>()?;
    let peers: Vec<SessionPeer> = setup
        .peers
        .iter()
        .map(|p| {
            Ok(SessionPeer {
                party: p.party.clone(),
                endpoint: p.endpoint.clone(),
                tls_cert_sha256: hex::decode(&p.cert_sha256).map_err(|_| {
                    PartyError::Rejected(format!("bad fingerprint for {}", p.party))
                })?,
            })
        })
        .collect::<Result<_, PartyError>>()?;
    let ids: Vec<String> = peers.iter().map(|p| p.party.clone()).collect();
    let transport = GrpcTransport::connect(
        SessionSetup {
            job_id: JOB_ID,
            me: index,
            peers: &peers,
            tls: Some(tls),
            max_message: DEFAULT_MAX_MESSAGE,
            timeout: Duration::from_millis(setup.timeout_ms),
            abort,
        },
        hub,
    )
    .await
    .map_err(|e| PartyError::from(e).with_peer_names(&ids))?;
    let result = async {
        let ctx = SessionContext {
            job_id: JOB_ID,
            party_ids: &ids,
        };
        let mut s = Rep3Session::setup(&transport, ctx, 0, &mut os_rng()?).await?;
        for (c, case) in cases.iter().enumerate() {
            let inputs = case.inputs_for(index);
            // Run 0 is the warm-up.
            for run in 0..=setup.repeat {
                let shared = case.share(&mut s, &inputs).await?;
                let (result, m) = case.measure(&mut s, &shared).await?;
                drop(result);
                if run > 0 {
                    out.send(&ChildEvent::Run {
                        case: c,
                        run: run - 1,
                        seconds: m.elapsed.as_secs_f64(),
                        rounds: m.traffic.rounds,
                        bytes_sent: m.traffic.bytes_sent,
                    })?;
                }
            }
        }
        Ok::<_, PartyError>(())
    }
    .await;
    if let Err(e) = &result {
        transport.abort_peers(&format!("{} failed: {e}", party_name(index)));
        // Give the abort frames a moment to leave before the links drop.
        tokio::time::sleep(Duration::from_millis(50)).await;
        return result.map_err(|e| e.with_peer_names(&ids));
    }
    // Our last message may still be queued: end the links gracefully, not by dropping them.
    transport
        .close(Duration::from_millis(setup.timeout_ms))
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
    fn a_case_is_summarised_by_its_slowest_party_and_largest_sender() {
        let case = Case::new(Op::Matmul, Shape::Matrix { m: 10, k: 3, n: 2 }).unwrap();
        let rep = |seconds, bytes_sent| {
            Some(Reported {
                seconds,
                rounds: 2,
                bytes_sent,
            })
        };
        let runs = [
            [rep(1.0, 160), rep(3.0, 150), rep(2.0, 160)],
            [rep(5.0, 160), rep(1.0, 150), rep(1.0, 160)],
            [rep(2.0, 160), rep(2.5, 150), rep(1.0, 160)],
        ];
        let r = summarise(&case, 3, &runs);
        assert_eq!(r.run_seconds, vec![3.0, 5.0, 2.5]);
        assert_eq!(r.seconds, 3.0);
        assert_eq!((r.rounds, r.bytes_per_party, r.n), (2, 160, 20));
        assert_eq!(r.shape, Some([10, 3, 2]));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["op"], "matmul");
        assert_eq!(json["transport"], "grpc+tls");
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
    }
}
