//! The `Coordinator` gRPC service: registry, job drivers and result relay.
//!
//! Every active job has one driver task, the only writer of that job's record. RPC handlers turn
//! party reports, uploads, connections, disconnects and cancellations into events for it. The
//! driver is a thin loop around the job's [`JobLifecycle`], the pure state machine that walks
//! `submitted → approved → running → succeeded | failed | rejected | aborted`: it hands the
//! machine each event (and its deadline, and the shutdown) and carries out the effects the
//! machine returns (persist, notify watchers, send to parties, audit, delete results).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::VerifyingKey;
use futures::Stream;
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status, Streaming};
use treaty_proto::text::peer_text;
use treaty_proto::v1::{
    self as pb, Job, JobState, PartyEvent, PartyJobState, PartyJobStatus, coordinator_server,
    job_report, party_event,
};
use treaty_trust::roster::Roster;

use crate::CoordinatorError;
use crate::identity::{AnalystList, check_fresh, verify_cancel, verify_submission};
pub use crate::lifecycle::is_final;
use crate::lifecycle::{Effect, Event, JobLifecycle, Limits, Now, state_name};
use crate::store::{JobCursor, Store};
use crate::tls::peer_cert_sha256;
use treaty_audit::{
    AuditEvent, AuditFile, COORDINATOR_WRITER, Digest32, SignedHead, head_signature_valid,
};
use treaty_job::validate::{
    check_model_reference, check_psi_reference, trained_model_id, validate_spec,
};
use treaty_trust::{PeerIdentity, Role};

/// Timeouts and limits of the coordinator.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// How long a submitted job waits for its parties to come online before it fails.
    pub offline_timeout: Duration,
    /// How long the parties have to accept or reject an assignment.
    pub accept_timeout: Duration,
    /// Longest a job may run once started.
    pub run_timeout: Duration,
    /// Whether party calls must come from the TLS identity the party registered (off only with
    /// `--insecure`).
    pub require_tls_identity: bool,
    /// Largest sealed result one party may upload for one job.
    pub max_result_bytes: usize,
    /// How long a job waits for a human approval at a party whose policy asks for one.
    pub approval_timeout: Duration,
    /// The analysts allowed to submit (`analysts.toml`, re-read at every submission so that a
    /// revocation applies at once). `None`: any correctly signed submission is accepted here,
    /// and only the parties' policies decide (development).
    pub analysts_file: Option<PathBuf>,
    /// The consortium's roster: who a caller is, is then the member whose certificate the roster
    /// pins (and the certificate must state that member's role and name); a party registers
    /// only with the endpoint the roster lists; a submission must be signed with the key the
    /// roster lists for its analyst. `None`: the deployment CA and the certificates' stated
    /// identities decide (the one-CA trial set-up).
    pub roster: Option<Arc<Roster>>,
    /// Most unfinished jobs (submitted, approved or running) one analyst may have; a submission
    /// beyond is refused (`RESOURCE_EXHAUSTED`) and not stored.
    pub max_jobs_in_flight_per_analyst: usize,
    /// Sustained submissions per minute per analyst (a token bucket refilled at this rate); a
    /// submission beyond is refused (`RESOURCE_EXHAUSTED`) and not stored.
    pub submissions_per_minute: u32,
    /// How many submissions an analyst may make at once before the rate applies (the bucket's
    /// size).
    pub submission_burst: u32,
    /// How long the sealed results of a succeeded job are kept after it finished; then the
    /// retention sweep deletes them (audited as `results_expired`) and fetching them is
    /// `NOT_FOUND`, saying they expired.
    pub result_retention: Duration,
    /// How often the retention sweep runs (it also runs once at start).
    pub retention_sweep_interval: Duration,
    /// Events queued for one party's `Subscribe` stream; a party that lets it fill up (does not
    /// read) is disconnected, and subscribes again.
    pub party_event_queue: usize,
    /// How long calls in flight at shutdown (an upload, a submission waiting for approval) get
    /// to finish; then their connections are cut, so no client can hold the shutdown (or the
    /// database) open.
    pub shutdown_grace: Duration,
    /// The wall clock (a [`ManualClock`] in tests).
    pub clock: Arc<dyn Clock>,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            offline_timeout: Duration::from_secs(30),
            accept_timeout: Duration::from_secs(30),
            run_timeout: Duration::from_secs(6 * 3600),
            require_tls_identity: true,
            max_result_bytes: 1 << 30,
            approval_timeout: Duration::from_secs(3600),
            analysts_file: None,
            roster: None,
            max_jobs_in_flight_per_analyst: 16,
            submissions_per_minute: 60,
            submission_burst: 10,
            result_retention: Duration::from_secs(7 * 24 * 3600),
            retention_sweep_interval: Duration::from_secs(3600),
            party_event_queue: 256,
            shutdown_grace: Duration::from_secs(10),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Most encoded job bytes in one `ListJobs` page (under the control plane's message limit).
const MAX_PAGE_BYTES: usize = treaty_proto::MAX_CONTROL_MESSAGE / 2;
/// Events queued for one job's driver. A full queue makes the RPC handler that routes an event
/// wait (see [`CoordinatorService::to_driver`]).
const DRIVER_QUEUE: usize = 64;
/// Jobs whose results one retention transaction deletes.
const SWEEP_BATCH: usize = 256;

/// The coordinator's wall clock: job timestamps, submission freshness, the submission rate and
/// result retention read it. Injectable, so tests move time by hand instead of sleeping.
/// (Job deadlines run on tokio's monotonic clock, which tests can pause.)
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock reading `ms` since the epoch.
    #[must_use]
    pub fn new(ms: i64) -> Self {
        Self(AtomicI64::new(ms))
    }

    /// A clock reading the system's time now (then standing still).
    #[must_use]
    pub fn at_system_time() -> Self {
        Self::new(SystemClock.now_ms())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Who is calling, as [`CoordinatorService`] decides it once per request (from the mTLS client
/// certificate's `treaty://ROLE/NAME` URI). Every handler authorises from this alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A plaintext deployment (`--insecure`, development only): nobody is identified and
    /// nothing is checked.
    Insecure,
    /// The identity the caller's certificate states (its chain to the deployment CA was
    /// verified by the TLS handshake).
    Verified(PeerIdentity),
}

impl Caller {
    /// Requires the certificate `role` `name` exactly.
    ///
    /// # Errors
    /// [`CoordinatorError::WrongIdentity`], saying `what` rule was broken.
    pub fn require(
        &self,
        role: Role,
        name: &str,
        what: &'static str,
    ) -> Result<(), CoordinatorError> {
        match self {
            Caller::Insecure => Ok(()),
            Caller::Verified(id) if id.role == role && id.name == name => Ok(()),
            Caller::Verified(id) => Err(CoordinatorError::WrongIdentity {
                what,
                expected: PeerIdentity::new(role, name).uri(),
                found: id.to_string(),
            }),
        }
    }

    /// Requires a certificate of `role`; returns its name (`None` when insecure).
    ///
    /// # Errors
    /// [`CoordinatorError::WrongRole`], saying `what` rule was broken.
    pub fn require_role(
        &self,
        role: Role,
        what: &'static str,
    ) -> Result<Option<&str>, CoordinatorError> {
        match self {
            Caller::Insecure => Ok(None),
            Caller::Verified(id) if id.role == role => Ok(Some(&id.name)),
            Caller::Verified(id) => Err(CoordinatorError::WrongRole {
                what,
                found: id.to_string(),
            }),
        }
    }

    /// Whether the caller may read `job`: the analyst who submitted it, or an auditor.
    pub fn reads(&self, job: &Job) -> bool {
        match self {
            Caller::Insecure => true,
            Caller::Verified(id) => match id.role {
                Role::Auditor => true,
                Role::Analyst => id.name == job.analyst,
                Role::Party | Role::Coordinator => false,
            },
        }
    }

    /// Whether the caller owns `job`: the analyst who submitted it.
    pub fn owns(&self, job: &Job) -> bool {
        match self {
            Caller::Insecure => true,
            Caller::Verified(id) => id.role == Role::Analyst && id.name == job.analyst,
        }
    }
}

/// The rule a party call breaks when its certificate is not the party's own.
const OWN_PARTY_CERT: &str = "a party calls with its own party certificate";

type EventTx = mpsc::Sender<Result<PartyEvent, Status>>;

struct Subscription {
    tx: EventTx,
    generation: u64,
    /// Cancelled to end the party's stream (its queue overflowed, or it subscribed again).
    gone: CancellationToken,
}

/// Which parties hold a `Subscribe` stream, each with its subscription's generation: a party
/// that lost its stream and subscribed again has a new generation, so a driver that looks only
/// now and then still sees that it went offline in between.
type Presence = Arc<BTreeMap<String, u64>>;

/// One analyst's submission budget.
#[derive(Debug)]
struct Budget {
    /// Submission credit, in 1/60000ths of a submission (so that refilling at
    /// `submissions_per_minute` per 60,000 ms is exact integer arithmetic).
    credit: u64,
    /// When `credit` was last refilled.
    at_ms: i64,
    /// The analyst's jobs not yet final.
    in_flight: usize,
}

/// One submission's credit in [`Budget::credit`] units.
const SUBMISSION: u64 = 60_000;

type Budgets = Arc<Mutex<HashMap<String, Budget>>>;

/// One unfinished job of an analyst, counted against `max_jobs_in_flight_per_analyst` for as
/// long as it lives: the job's driver holds it and drops it when the job ends (or if the
/// submission fails before the job is stored), so the count cannot leak.
struct InFlight {
    budgets: Budgets,
    analyst: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(b) = lock(&self.budgets).get_mut(&self.analyst) {
            b.in_flight = b.in_flight.saturating_sub(1);
        }
    }
}

struct Inner {
    store: Store,
    audit: AuditFile,
    config: CoordinatorConfig,
    online: Mutex<HashMap<String, Subscription>>,
    /// `online` as drivers see it, published under the `online` lock at every change.
    presence: watch::Sender<Presence>,
    /// Every active job's driver. Lock order: `online` before `drivers`.
    drivers: Mutex<HashMap<String, mpsc::Sender<Event>>>,
    /// Submission budgets by analyst.
    budgets: Budgets,
    /// Ids of jobs whose record changed.
    changes: broadcast::Sender<String>,
    generation: Mutex<u64>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Dropped last (fields drop in declaration order), when the last clone of the service
    /// goes: its receivers then know the database and the audit file are closed.
    closed: watch::Sender<()>,
}

/// The coordinator service; cheap to clone.
#[derive(Clone)]
pub struct CoordinatorService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CoordinatorService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorService").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another handler panicked mid-update of an in-memory map; the
    // map itself is still consistent (all updates are single insert/remove calls).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn wrong_state(job: &Job, what: &'static str) -> CoordinatorError {
    CoordinatorError::WrongState {
        job: job.id.clone(),
        state: state_name(job.state()),
        what,
    }
}

impl CoordinatorService {
    /// Opens the service over `store`. Jobs left unfinished by a previous run are marked failed
    /// (their parties lost the coordinator mid-job) and their partial results deleted.
    pub fn new(
        store: Store,
        audit: AuditFile,
        config: CoordinatorConfig,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Result<Self, CoordinatorError> {
        let (changes, _) = broadcast::channel(1024);
        let (presence, _) = watch::channel(Presence::default());
        let svc = Self {
            inner: Arc::new(Inner {
                store,
                audit,
                config,
                online: Mutex::new(HashMap::new()),
                presence,
                drivers: Mutex::new(HashMap::new()),
                budgets: Budgets::default(),
                changes,
                generation: Mutex::new(0),
                shutdown,
                tasks,
                closed: watch::channel(()).0,
            }),
        };
        svc.recover()?;
        svc.expire_results()?;
        Ok(svc)
    }

    /// Resolves once the last clone of this service is gone, and with it its database and audit
    /// file.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut closed = self.inner.closed.subscribe();
        async move { while closed.changed().await.is_ok() {} }
    }

    /// The wall clock now (ms since the epoch).
    fn now_ms(&self) -> i64 {
        self.inner.config.clock.now_ms()
    }

    /// The retention sweep: deletes the sealed results of every job that succeeded longer than
    /// `result_retention` ago, records each deletion in the audit log (`results_expired`) and
    /// marks the job's results expired. Returns how many jobs' results went.
    ///
    /// # Errors
    /// [`CoordinatorError::Storage`].
    pub fn expire_results(&self) -> Result<usize, CoordinatorError> {
        let now = self.now_ms();
        let retention =
            i64::try_from(self.inner.config.result_retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.saturating_sub(retention);
        let mut expired = 0;
        loop {
            let batch = self.inner.store.expire_results(cutoff, now, SWEEP_BATCH)?;
            for gone in batch.iter().filter(|g| !g.parties.is_empty()) {
                tracing::info!(job = %gone.job_id, bytes = gone.bytes, "results expired");
                self.audit(
                    Some(&gone.job_id),
                    AuditEvent::ResultsExpired {
                        parties: gone.parties.clone(),
                        bytes: gone.bytes,
                    },
                );
                expired += 1;
            }
            if batch.len() < SWEEP_BATCH {
                break;
            }
        }
        if expired > 0
            && let Err(e) = self.inner.audit.checkpoint()
        {
            tracing::error!(error = %e, "audit checkpoint failed");
        }
        Ok(expired)
    }

    /// Runs [`CoordinatorService::expire_results`] every `retention_sweep_interval` until the
    /// shutdown.
    pub(crate) fn spawn_retention_sweep(&self) {
        let svc = self.clone();
        let every = self
            .inner
            .config
            .retention_sweep_interval
            .max(Duration::from_secs(1));
        self.inner.tasks.spawn(async move {
            let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = svc.inner.shutdown.cancelled() => return,
                }
                if let Err(e) = svc.expire_results() {
                    tracing::error!(error = %e, "result retention sweep failed");
                }
            }
        });
    }

    /// Admits one submission of `analyst` against its in-flight cap and its submission rate
    /// (checked in that order; a refusal by the cap costs no credit). The returned slot counts
    /// the job as in flight until dropped.
    ///
    /// # Errors
    /// [`CoordinatorError::TooManyJobs`], [`CoordinatorError::RateLimited`].
    fn admit(&self, analyst: &str) -> Result<InFlight, CoordinatorError> {
        let config = &self.inner.config;
        let now = self.now_ms();
        let full = u64::from(config.submission_burst).saturating_mul(SUBMISSION);
        let per_ms = u64::from(config.submissions_per_minute);
        let mut budgets = lock(&self.inner.budgets);
        if budgets.len() > 4096 {
            // Forget analysts with nothing in flight whose bucket has refilled: they are as if new.
            budgets.retain(|_, b| {
                let elapsed = u64::try_from(now.saturating_sub(b.at_ms)).unwrap_or(0);
                b.in_flight > 0 || b.credit.saturating_add(elapsed.saturating_mul(per_ms)) < full
            });
        }
        let budget = budgets.entry(analyst.to_string()).or_insert(Budget {
            credit: full,
            at_ms: now,
            in_flight: 0,
        });
        // A clock that steps back refills nothing (and does not move `at_ms` back).
        let elapsed = u64::try_from(now.saturating_sub(budget.at_ms)).unwrap_or(0);
        budget.credit = budget
            .credit
            .saturating_add(elapsed.saturating_mul(per_ms))
            .min(full);
        budget.at_ms = budget.at_ms.max(now);
        if budget.in_flight >= config.max_jobs_in_flight_per_analyst {
            return Err(CoordinatorError::TooManyJobs {
                analyst: analyst.to_string(),
                max: config.max_jobs_in_flight_per_analyst,
            });
        }
        if budget.credit < SUBMISSION {
            let missing = SUBMISSION - budget.credit;
            return Err(CoordinatorError::RateLimited {
                analyst: analyst.to_string(),
                per_minute: config.submissions_per_minute,
                burst: config.submission_burst,
                retry_after_ms: if per_ms == 0 {
                    u64::MAX
                } else {
                    missing.div_ceil(per_ms)
                },
            });
        }
        budget.credit -= SUBMISSION;
        budget.in_flight += 1;
        Ok(InFlight {
            budgets: Arc::clone(&self.inner.budgets),
            analyst: analyst.to_string(),
        })
    }

    fn recover(&self) -> Result<(), CoordinatorError> {
        let limits = self.inner.config.limits();
        for job in self.inner.store.jobs()? {
            let id = job.id.clone();
            let now = Now {
                wall_ms: self.now_ms(),
                mono: Duration::ZERO,
            };
            let (_, effects) = JobLifecycle::recover(job, limits, now);
            if !effects.is_empty() {
                tracing::warn!(job = %id, "job was unfinished at restart; marking it failed");
            }
            for effect in effects {
                match effect {
                    Effect::DeleteResults => self.inner.store.delete_results(&id)?,
                    Effect::Persist(job) => self.inner.store.put_job(&job)?,
                    // Nobody is connected or watching yet.
                    other => tracing::debug!(job = %id, effect = ?other, "skipped at recovery"),
                }
            }
        }
        Ok(())
    }

    /// Drops every party subscription (their streams end), so a graceful shutdown can finish.
    pub fn disconnect_all(&self) {
        let mut online = lock(&self.inner.online);
        for (_, s) in online.drain() {
            s.gone.cancel();
        }
        self.publish_presence(&online);
    }

    /// Tells the drivers who is online now. Called with the `online` lock held (so drivers see
    /// its changes in order); never blocks.
    fn publish_presence(&self, online: &HashMap<String, Subscription>) {
        let presence: BTreeMap<String, u64> = online
            .iter()
            .map(|(party, s)| (party.clone(), s.generation))
            .collect();
        self.inner.presence.send_replace(Arc::new(presence));
    }

    /// Who is calling: the one place that reads the caller's identity. In a plaintext
    /// deployment (`require_tls_identity` off) [`Caller::Insecure`]; otherwise the identity the
    /// client certificate states, and a certificate stating none (or no certificate) is refused.
    ///
    /// # Errors
    /// [`CoordinatorError::NoIdentity`].
    pub fn caller<T>(&self, req: &Request<T>) -> Result<Caller, CoordinatorError> {
        if !self.inner.config.require_tls_identity {
            return Ok(Caller::Insecure);
        }
        let leaf = req.peer_certs().and_then(|c| c.first().map(|c| c.to_vec()));
        let Some(der) = leaf else {
            return Err(CoordinatorError::NoIdentity(
                "no client certificate was presented".into(),
            ));
        };
        let identity = match &self.inner.config.roster {
            Some(roster) => roster.identify(&der).map(|m| m.identity.clone()),
            None => PeerIdentity::of_der(&der),
        };
        identity
            .map(Caller::Verified)
            .map_err(|e| CoordinatorError::NoIdentity(e.to_string()))
    }

    /// Authenticates a call of the registered party `party`: the caller must hold the party
    /// certificate named `party`, and it must be the one the party registered.
    fn authenticate<T>(&self, req: &Request<T>, party: &str) -> Result<(), CoordinatorError> {
        let caller = self.caller(req)?;
        caller.require(Role::Party, party, OWN_PARTY_CERT)?;
        if caller == Caller::Insecure {
            return Ok(());
        }
        let info = self
            .inner
            .store
            .party(party)?
            .ok_or_else(|| CoordinatorError::UnknownParty(party.to_string()))?;
        match peer_cert_sha256(req) {
            Some(fp) if fp.as_slice() == info.tls_cert_sha256.as_slice() => Ok(()),
            _ => Err(CoordinatorError::NotAuthenticated(party.to_string())),
        }
    }

    /// `job` as `caller` may read it: a job the caller may not read is reported unknown, exactly
    /// like a job that does not exist.
    fn job_for(&self, caller: &Caller, id: &str) -> Result<Job, CoordinatorError> {
        let job = self.job(id)?;
        if caller.reads(&job) {
            Ok(job)
        } else {
            Err(CoordinatorError::UnknownJob(id.to_string()))
        }
    }

    /// Checks that `party` is one of `job`'s parties.
    fn job_party(job: &Job, party: &str) -> Result<(), CoordinatorError> {
        if job.parties.iter().any(|p| p.party == party) {
            Ok(())
        } else {
            Err(CoordinatorError::NotJobParty {
                job: job.id.clone(),
                party: party.to_string(),
            })
        }
    }

    /// Appends to the coordinator's own audit log (a failure to write is logged, not fatal to
    /// the job: the parties' logs still hold their side).
    fn audit(&self, job: Option<&str>, event: AuditEvent) {
        if let Err(e) = self.inner.audit.record(job, event) {
            tracing::error!(job = ?job, error = %e, "audit log write failed");
        }
    }

    fn job(&self, id: &str) -> Result<Job, CoordinatorError> {
        self.inner
            .store
            .job(id)?
            .ok_or_else(|| CoordinatorError::UnknownJob(id.to_string()))
    }

    /// Hands `event` to the job's driver; false if the job has none (it ended, or is unknown).
    ///
    /// A driver's queue is bounded ([`DRIVER_QUEUE`]), and a full queue makes this wait for
    /// room (back-pressure) instead of dropping the event: every event routed here (a report,
    /// an upload, a cancellation) may change the job's state, and losing one would leave the
    /// job wrong or stuck until its deadline. The callers are RPC handlers, each bounded by its
    /// connection's concurrency limit, so what waits is one event per call in flight, held by
    /// the caller's own request; the driver drains its queue without ever waiting on an RPC.
    /// The driver never calls this (it would wait on itself), and parties going online or
    /// offline reach drivers through the presence watch, which holds only the latest state and
    /// never blocks.
    async fn to_driver(&self, job_id: &str, event: Event) -> bool {
        let tx = lock(&self.inner.drivers).get(job_id).cloned();
        match tx {
            // A driver closes its queue as the job ends, so a send after that fails.
            Some(tx) => tx.send(event).await.is_ok(),
            None => false,
        }
    }

    /// Sends `event` on `party`'s stream; false if it is offline. A party whose queue is full
    /// (it does not read its stream) is disconnected at once: its stream ends, its jobs see it
    /// go offline, and it subscribes again, rather than the coordinator holding ever more
    /// events for it.
    fn send(&self, party: &str, event: party_event::Event) -> bool {
        let mut online = lock(&self.inner.online);
        let Some(s) = online.get(party) else {
            return false;
        };
        match s.tx.try_send(Ok(PartyEvent { event: Some(event) })) {
            Ok(()) => true,
            Err(TrySendError::Closed(_)) => false,
            Err(TrySendError::Full(_)) => {
                tracing::warn!(party = %party, "party's event queue is full: disconnecting it");
                if let Some(s) = online.remove(party) {
                    s.gone.cancel();
                }
                self.publish_presence(&online);
                false
            }
        }
    }
}

/// Accumulates one upload's chunks: in order, within `max` bytes, with no index overflow.
#[derive(Debug)]
struct UploadBuffer {
    data: Vec<u8>,
    next_index: u32,
    max: usize,
}

impl UploadBuffer {
    fn new(max: usize) -> Self {
        Self {
            data: Vec::new(),
            next_index: 0,
            max,
        }
    }

    /// Appends `chunk` (whose job and party the caller checked).
    ///
    /// # Errors
    /// [`CoordinatorError::InvalidRequest`] for a chunk out of order, an empty chunk that is
    /// not the last (an upload of nothing is one empty last chunk), or one past index
    /// `u32::MAX`; [`CoordinatorError::ResultTooLarge`] beyond `max` bytes.
    fn push(&mut self, chunk: &pb::ResultChunk) -> Result<(), CoordinatorError> {
        if chunk.index != self.next_index {
            return Err(CoordinatorError::InvalidRequest(format!(
                "chunk {} arrived where chunk {} was expected",
                chunk.index, self.next_index
            )));
        }
        if chunk.data.is_empty() && !chunk.last {
            return Err(CoordinatorError::InvalidRequest(format!(
                "chunk {} is empty and not the last",
                chunk.index
            )));
        }
        if self.data.len().saturating_add(chunk.data.len()) > self.max {
            return Err(CoordinatorError::ResultTooLarge {
                job: chunk.job_id.clone(),
                max: self.max,
            });
        }
        if !chunk.last {
            self.next_index = self.next_index.checked_add(1).ok_or_else(|| {
                CoordinatorError::InvalidRequest("the upload has too many chunks".into())
            })?;
        }
        self.data.extend_from_slice(&chunk.data);
        Ok(())
    }
}

impl CoordinatorConfig {
    /// The timeouts of a job's lifecycle.
    fn limits(&self) -> Limits {
        Limits {
            offline_timeout: self.offline_timeout,
            accept_timeout: self.accept_timeout,
            approval_timeout: self.approval_timeout,
            run_timeout: self.run_timeout,
        }
    }
}

/// A job's driver: the thin async loop around its [`JobLifecycle`]. It feeds the machine the
/// events the RPC handlers route to the job, its deadline and the coordinator's shutdown, and
/// carries out the effects. It is the only writer of the job's record.
struct Driver {
    svc: CoordinatorService,
    job_id: String,
    rx: mpsc::Receiver<Event>,
    /// Who is online; `seen` is the generation of each of the job's parties as last looked at.
    presence: watch::Receiver<Presence>,
    seen: BTreeMap<String, u64>,
    /// The job's place in its analyst's in-flight count, given back when the job ends.
    in_flight: Option<InFlight>,
    /// Where the machine's monotonic time starts.
    origin: Instant,
    /// When the machine wants an [`Event::Tick`].
    deadline: Option<Instant>,
    /// The state last persisted (to log transitions).
    state: JobState,
}

impl Driver {
    fn now(&self) -> Now {
        Now {
            wall_ms: self.svc.now_ms(),
            mono: self.origin.elapsed(),
        }
    }

    /// Runs `job` (just submitted) until it is final; `online` are its parties online when the
    /// driver subscribed to the presence (later changes arrive through it).
    async fn run(mut self, job: Job, online: Vec<String>) {
        let limits = self.svc.inner.config.limits();
        let (mut machine, effects) = JobLifecycle::start(job, limits, online, self.now());
        self.execute(&mut machine, effects);
        while !machine.is_final() {
            let deadline = self.deadline;
            // `biased`: the queue first, so that an event queued before a party went offline
            // (its upload, say) is handled before the party's going.
            let events = tokio::select! {
                biased;
                ev = self.rx.recv() => {
                    vec![ev.unwrap_or_else(|| Event::Internal("driver channel closed".into()))]
                }
                changed = self.presence.changed() => match changed {
                    Ok(()) => self.presence_events(),
                    Err(_) => vec![Event::Internal("presence closed".into())],
                },
                () = sleep_until(deadline) => vec![Event::Tick],
                () = self.svc.inner.shutdown.cancelled() => vec![Event::Shutdown],
            };
            for event in events {
                let effects = machine.on(event, self.now());
                self.execute(&mut machine, effects);
            }
        }
    }

    /// The presence changed: the events already queued (they happened before the change),
    /// then each of the job's parties that went offline (its generation changed or it is
    /// gone) and each that came online.
    fn presence_events(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Ok(event) = self.rx.try_recv() {
            events.push(event);
        }
        let now = Arc::clone(&self.presence.borrow_and_update());
        for (party, seen) in &mut self.seen {
            let current = now.get(party).copied().unwrap_or(0);
            if *seen == current {
                continue;
            }
            if *seen != 0 {
                events.push(Event::PartyOffline {
                    party: party.clone(),
                });
            }
            if current != 0 {
                events.push(Event::PartyOnline {
                    party: party.clone(),
                });
            }
            *seen = current;
        }
        events
    }

    /// Carries out `effects` in order (a registry request is answered at once, so no other
    /// event comes in between).
    fn execute(&mut self, machine: &mut JobLifecycle, effects: Vec<Effect>) {
        let inner = &self.svc.inner;
        let id = &self.job_id;
        let mut queue = VecDeque::from(effects);
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Detach => {
                    lock(&inner.drivers).remove(id);
                    // Whatever an RPC handler sends from now on fails: an upload arriving now
                    // is deleted by its handler, and one queued before is deleted by this
                    // ending's `DeleteResults` (a failed job), which comes after this.
                    self.rx.close();
                    self.in_flight = None;
                }
                Effect::LoadRegistry => {
                    let event = match inner.store.parties() {
                        Ok(registry) => Event::Registry(registry),
                        Err(e) => Event::Internal(e.to_string()),
                    };
                    queue.extend(machine.on(event, self.now()));
                }
                Effect::Persist(job) => {
                    if job.state() != self.state {
                        self.state = job.state();
                        tracing::info!(job = %id, state = %state_name(self.state), "job state");
                    }
                    if let Err(e) = inner.store.put_job(&job) {
                        tracing::error!(job = %id, error = %e, "could not persist job");
                    }
                }
                Effect::Notify => {
                    let _ = inner.changes.send(id.clone());
                }
                Effect::Send { party, event } => {
                    if !self.svc.send(&party, *event) {
                        tracing::debug!(job = %id, party = %party, "party offline: event dropped");
                    }
                }
                Effect::Audit(event) => self.svc.audit(Some(id), event),
                Effect::Checkpoint => {
                    if let Err(e) = inner.audit.checkpoint() {
                        tracing::error!(job = %id, error = %e, "audit checkpoint failed");
                    }
                }
                Effect::DeleteResults => {
                    if let Err(e) = inner.store.delete_results(id) {
                        tracing::error!(job = %id, error = %e, "could not delete partial results");
                    }
                }
                Effect::Deadline(at) => self.deadline = at.map(|d| self.origin + d),
            }
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl coordinator_server::Coordinator for CoordinatorService {
    async fn register_party(
        &self,
        request: Request<pb::RegisterPartyRequest>,
    ) -> Result<Response<pb::RegisterPartyResponse>, Status> {
        let caller = self.caller(&request)?;
        let peer_fp = peer_cert_sha256(&request);
        let mut info = request
            .into_inner()
            .party
            .ok_or_else(|| CoordinatorError::InvalidRequest("party is required".into()))?;
        caller.require(
            Role::Party,
            &info.id,
            "a party must register with its own party certificate",
        )?;
        crate::pki::validate_name(&info.id)
            .map_err(|e| CoordinatorError::InvalidRequest(format!("party id: {e}")))?;
        if info.id == COORDINATOR_WRITER {
            return Err(CoordinatorError::InvalidRequest(format!(
                "party id {COORDINATOR_WRITER:?} is the coordinator's own"
            ))
            .into());
        }
        if !info.audit_public_key.is_empty() {
            let key: [u8; 32] = info.audit_public_key.as_slice().try_into().map_err(|_| {
                CoordinatorError::InvalidRequest("audit_public_key must be 32 bytes".into())
            })?;
            VerifyingKey::from_bytes(&key).map_err(|_| {
                CoordinatorError::InvalidRequest("audit_public_key is not an Ed25519 key".into())
            })?;
        }
        if info.endpoint.is_empty() {
            return Err(CoordinatorError::InvalidRequest("endpoint is required".into()).into());
        }
        if let Some(member) = self
            .inner
            .config
            .roster
            .as_ref()
            .and_then(|r| r.party(&info.id))
        {
            // Every node dials and pins its peers from its own roster: a registration that
            // differs from it would only make the parties refuse the party's jobs later.
            if member.endpoint != info.endpoint {
                return Err(CoordinatorError::InvalidRequest(format!(
                    "party {:?} registers endpoint {} but the roster lists {}",
                    info.id, info.endpoint, member.endpoint
                ))
                .into());
            }
            if member.audit_key.map(|k| k.to_bytes().to_vec())
                != Some(info.audit_public_key.clone())
            {
                return Err(CoordinatorError::InvalidRequest(format!(
                    "party {:?} registers another audit key than the roster lists",
                    info.id
                ))
                .into());
            }
        }
        if self.inner.config.require_tls_identity {
            match peer_fp {
                Some(fp) if fp.as_slice() == info.tls_cert_sha256.as_slice() => {}
                _ => {
                    return Err(CoordinatorError::NotAuthenticated(info.id.clone()).into());
                }
            }
        }
        let existing = self.inner.store.party(&info.id)?;
        if let Some(old) = &existing {
            if old.tls_cert_sha256 != info.tls_cert_sha256 {
                return Err(CoordinatorError::DuplicateParty {
                    id: info.id,
                    how: "with another identity",
                }
                .into());
            }
            if !self.inner.config.require_tls_identity
                && lock(&self.inner.online).contains_key(&info.id)
            {
                return Err(CoordinatorError::DuplicateParty {
                    id: info.id,
                    how: "and online",
                }
                .into());
            }
        }
        info.online = false;
        info.registered_at_ms = existing
            .as_ref()
            .map_or_else(|| self.now_ms(), |o| o.registered_at_ms);
        let old_key = existing.as_ref().map(|o| o.audit_public_key.as_slice());
        if old_key != Some(info.audit_public_key.as_slice()) && !info.audit_public_key.is_empty() {
            if old_key.is_some_and(|k| !k.is_empty()) {
                // A new audit identity starts a new log: the old head cannot verify under it.
                tracing::warn!(party = %info.id, "party registered a new audit key");
                self.inner.store.delete_head(&info.id)?;
            }
            self.audit(
                None,
                AuditEvent::WriterKey {
                    party: info.id.clone(),
                    public_key: hex::encode(&info.audit_public_key),
                },
            );
        }
        tracing::info!(party = %info.id, endpoint = %info.endpoint, "party registered");
        self.inner.store.put_party(&info)?;
        Ok(Response::new(pb::RegisterPartyResponse {
            reregistered: existing.is_some(),
        }))
    }

    type SubscribeStream = BoxStream<PartyEvent>;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let party = request.get_ref().party.clone();
        self.authenticate(&request, &party)?;
        if self.inner.shutdown.is_cancelled() {
            return Err(Status::unavailable("the coordinator is shutting down"));
        }
        let (tx, rx) = mpsc::channel(self.inner.config.party_event_queue.max(1));
        // A child of the shutdown: a stream opened while the coordinator shuts down (after it
        // disconnected everyone) ends with it too, instead of holding the connection open.
        let gone = self.inner.shutdown.child_token();
        let generation = {
            let mut g = lock(&self.inner.generation);
            *g += 1;
            *g
        };
        {
            let mut online = lock(&self.inner.online);
            let subscription = Subscription {
                tx: tx.clone(),
                generation,
                gone: gone.clone(),
            };
            if let Some(old) = online.insert(party.clone(), subscription) {
                // The party's previous stream is stale: end it.
                old.gone.cancel();
            }
            self.publish_presence(&online);
        }
        tracing::info!(party = %party, "party online");
        let svc = self.clone();
        let ended = gone.clone();
        self.inner.tasks.spawn(async move {
            tokio::select! {
                () = tx.closed() => {}
                // Disconnected by the coordinator (`send`): already offline.
                () = ended.cancelled() => return,
                () = svc.inner.shutdown.cancelled() => return,
            }
            let mine = {
                let mut online = lock(&svc.inner.online);
                let mine = online
                    .get(&party)
                    .is_some_and(|s| s.generation == generation);
                if mine {
                    online.remove(&party);
                    svc.publish_presence(&online);
                }
                mine
            };
            if mine {
                tracing::warn!(party = %party, "party offline");
            }
        });
        let stream =
            futures::StreamExt::take_until(ReceiverStream::new(rx), gone.cancelled_owned());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn report_job(
        &self,
        request: Request<pb::JobReport>,
    ) -> Result<Response<pb::JobReportAck>, Status> {
        let party = request.get_ref().party.clone();
        self.authenticate(&request, &party)?;
        let r = request.into_inner();
        let report = r
            .report
            .ok_or_else(|| CoordinatorError::InvalidRequest("report is required".into()))?;
        // A party's text reaches job reasons, the analyst and the audit log: capped and escaped.
        let report = match report {
            job_report::Report::Failed(t) => job_report::Report::Failed(peer_text(&t)),
            job_report::Report::Rejected(t) => job_report::Report::Rejected(peer_text(&t)),
            job_report::Report::AwaitingApproval(t) => {
                job_report::Report::AwaitingApproval(peer_text(&t))
            }
            other => other,
        };
        // Only the job's own parties speak about it (a report on a job this coordinator does not
        // know is answered "stop", as before).
        if let Some(job) = self.inner.store.job(&r.job_id)? {
            Self::job_party(&job, &party)?;
        }
        let live = self
            .to_driver(&r.job_id, Event::Report { party, report })
            .await;
        Ok(Response::new(pb::JobReportAck { r#continue: live }))
    }

    async fn upload_result(
        &self,
        request: Request<Streaming<pb::ResultChunk>>,
    ) -> Result<Response<pb::UploadResultResponse>, Status> {
        let caller = self.caller(&request)?;
        let peer_fp = peer_cert_sha256(&request);
        let mut stream = request.into_inner();
        let mut buffer = UploadBuffer::new(self.inner.config.max_result_bytes);
        let mut ident: Option<(String, String)> = None;
        loop {
            let chunk = stream.message().await?.ok_or_else(|| {
                CoordinatorError::InvalidRequest("upload ended before its last chunk".into())
            })?;
            match &ident {
                None => {
                    caller.require(Role::Party, &chunk.party, OWN_PARTY_CERT)?;
                    let job = self.job(&chunk.job_id)?;
                    Self::job_party(&job, &chunk.party)?;
                    if job.state() != JobState::Running {
                        return Err(
                            wrong_state(&job, "results are accepted only while it runs").into()
                        );
                    }
                    if caller != Caller::Insecure {
                        let info = self.inner.store.party(&chunk.party)?;
                        let ok = matches!((info, peer_fp), (Some(i), Some(fp)) if i.tls_cert_sha256 == fp);
                        if !ok {
                            return Err(CoordinatorError::NotAuthenticated(chunk.party).into());
                        }
                    }
                    // Refused before anything is buffered; `put_result` checks again, atomically.
                    let uploaded = job
                        .parties
                        .iter()
                        .any(|p| p.party == chunk.party && p.state() == PartyJobState::Uploaded);
                    if uploaded || self.inner.store.has_result(&job.id, &chunk.party)? {
                        return Err(CoordinatorError::ResultExists {
                            job: chunk.job_id,
                            party: chunk.party,
                        }
                        .into());
                    }
                    ident = Some((chunk.job_id.clone(), chunk.party.clone()));
                }
                Some((job, party)) if *job != chunk.job_id || *party != chunk.party => {
                    return Err(CoordinatorError::InvalidRequest(
                        "chunks of one upload must name the same job and party".into(),
                    )
                    .into());
                }
                Some(_) => {}
            }
            buffer.push(&chunk)?;
            if chunk.last {
                break;
            }
        }
        let Some((job_id, party)) = ident else {
            return Err(CoordinatorError::InvalidRequest("empty upload".into()).into());
        };
        let data = buffer.data;
        self.inner.store.put_result(&job_id, &party, &data)?;
        let uploaded = Event::Uploaded {
            party,
            bytes: data.len() as u64,
            sha256: Sha256::digest(&data).into(),
        };
        if !self.to_driver(&job_id, uploaded).await {
            self.inner.store.delete_results(&job_id)?;
            return Err(CoordinatorError::WrongState {
                job: job_id,
                state: "no longer running".into(),
                what: "the upload came too late",
            }
            .into());
        }
        Ok(Response::new(pb::UploadResultResponse {
            bytes: data.len() as u64,
        }))
    }

    async fn list_parties(
        &self,
        request: Request<pb::ListPartiesRequest>,
    ) -> Result<Response<pb::ListPartiesResponse>, Status> {
        self.caller(&request)?;
        let mut parties = self.inner.store.parties()?;
        let online = lock(&self.inner.online);
        for p in &mut parties {
            p.online = online.contains_key(&p.id);
        }
        Ok(Response::new(pb::ListPartiesResponse { parties }))
    }

    async fn submit_job(
        &self,
        request: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        let caller = self.caller(&request)?;
        caller.require_role(Role::Analyst, "only an analyst certificate submits jobs")?;
        let signed = request.into_inner().submission.ok_or_else(|| {
            CoordinatorError::InvalidRequest(
                "a signed submission is required (treaty submit signs the job spec)".into(),
            )
        })?;
        let submission = verify_submission(&signed).map_err(CoordinatorError::from)?;
        caller.require(
            Role::Analyst,
            &submission.analyst,
            "a job is submitted with the certificate of the analyst who signed it",
        )?;
        check_fresh(&submission, self.now_ms()).map_err(CoordinatorError::NotAuthorized)?;
        if let Some(path) = &self.inner.config.analysts_file {
            AnalystList::load(path)
                .map_err(CoordinatorError::from)?
                .admit(&submission)
                .map_err(CoordinatorError::NotAuthorized)?;
        }
        if let Some(roster) = &self.inner.config.roster {
            roster
                .analysts()
                .admit(&submission)
                .map_err(|e| CoordinatorError::NotAuthorized(format!("roster: {e}")))?;
        }
        // Everything after this costs the coordinator work and may store a job: it counts
        // against the analyst's rate and in-flight cap (dropped again if the job is not stored).
        let in_flight = self.admit(&submission.analyst)?;
        let job_id = submission.job_id();
        if self.inner.store.job(&job_id)?.is_some() {
            return Err(CoordinatorError::AlreadySubmitted(job_id).into());
        }
        let registry: BTreeMap<String, pb::PartyInfo> = self
            .inner
            .store
            .parties()?
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        let spec =
            validate_spec(submission.spec.clone(), &registry).map_err(CoordinatorError::from)?;
        if let Some(join) = spec.join.as_ref().filter(|j| !j.psi_job.is_empty()) {
            let referenced = self.inner.store.job(&join.psi_job)?;
            check_psi_reference(&spec, referenced.as_ref(), &registry)
                .map_err(CoordinatorError::from)?;
        }
        if let Some(pb::job_spec::Computation::Score(score)) = spec.computation.as_ref()
            && score.weights_party.is_empty()
        {
            // The newest succeeded train job that stored this model id.
            let trained = self
                .inner
                .store
                .jobs()?
                .into_iter()
                .filter(|j| {
                    j.state() == JobState::Succeeded
                        && trained_model_id(j) == Some(score.model_id.as_str())
                })
                .max_by_key(|j| j.finished_at_ms);
            check_model_reference(&spec, trained.as_ref(), &registry)
                .map_err(CoordinatorError::from)?;
        }
        let now = self.now_ms();
        self.audit(
            Some(&job_id),
            AuditEvent::JobReceived {
                kind: treaty_job::Kind::of(&spec),
                spec_sha256: Digest32(Sha256::digest(spec.encode_to_vec()).into()),
                analyst: submission.analyst.clone(),
                submission_sha256: Digest32(submission.sha256),
            },
        );
        let job = Job {
            id: job_id,
            analyst: submission.analyst.clone(),
            submission: Some(signed),
            parties: spec
                .inputs
                .iter()
                .map(|i| PartyJobStatus {
                    party: i.party.clone(),
                    state: PartyJobState::Pending as i32,
                    ..Default::default()
                })
                .collect(),
            spec: Some(spec),
            state: JobState::Submitted as i32,
            submitted_at_ms: now,
            updated_at_ms: now,
            ..Default::default()
        };
        self.inner.store.put_job(&job)?;
        tracing::info!(job = %job.id, "job submitted");
        let (tx, rx) = mpsc::channel(DRIVER_QUEUE);
        lock(&self.inner.drivers).insert(job.id.clone(), tx);
        // Who is online now; every later change marks the receiver changed.
        let mut presence = self.inner.presence.subscribe();
        let now_online = Arc::clone(&presence.borrow_and_update());
        let seen: BTreeMap<String, u64> = job
            .parties
            .iter()
            .map(|p| {
                let generation = now_online.get(&p.party).copied().unwrap_or(0);
                (p.party.clone(), generation)
            })
            .collect();
        let online: Vec<String> = seen
            .iter()
            .filter(|(_, g)| **g != 0)
            .map(|(p, _)| p.clone())
            .collect();
        let job_id = job.id.clone();
        let driver = Driver {
            svc: self.clone(),
            job_id: job.id.clone(),
            rx,
            presence,
            seen,
            in_flight: Some(in_flight),
            origin: Instant::now(),
            deadline: None,
            state: job.state(),
        };
        self.inner.tasks.spawn(driver.run(job, online));
        Ok(Response::new(pb::SubmitJobResponse { job_id }))
    }

    async fn get_job(&self, request: Request<pb::GetJobRequest>) -> Result<Response<Job>, Status> {
        let caller = self.caller(&request)?;
        Ok(Response::new(
            self.job_for(&caller, &request.get_ref().job_id)?,
        ))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let caller = self.caller(&request)?;
        if let Caller::Verified(id) = &caller
            && !matches!(id.role, Role::Analyst | Role::Auditor)
        {
            return Err(CoordinatorError::WrongRole {
                what: "only analysts and auditors list jobs",
                found: id.to_string(),
            }
            .into());
        }
        let r = request.into_inner();
        let limit = match r.limit {
            0 => treaty_proto::DEFAULT_JOBS_PAGE,
            n => n.min(treaty_proto::MAX_JOBS_PAGE),
        } as usize;
        let after = if r.page_token.is_empty() {
            None
        } else {
            Some(JobCursor::from_token(&r.page_token)?)
        };
        // An analyst's listing reads the analyst's own index: other analysts' jobs are never
        // even looked at.
        let analyst = match &caller {
            Caller::Verified(id) if id.role == Role::Analyst => Some(id.name.as_str()),
            _ => None,
        };
        let page = self
            .inner
            .store
            .jobs_page(analyst, after.as_ref(), limit, MAX_PAGE_BYTES)?;
        let mut jobs = page.jobs;
        jobs.retain(|j| caller.reads(j));
        Ok(Response::new(pb::ListJobsResponse {
            jobs,
            next_page_token: page.next.map(|c| c.to_token()).unwrap_or_default(),
        }))
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<Job>, Status> {
        let caller = self.caller(&request)?;
        caller.require_role(Role::Analyst, "only an analyst certificate cancels jobs")?;
        let r = request.into_inner();
        let job = self.job(&r.job_id)?;
        if !caller.owns(&job) {
            return Err(CoordinatorError::UnknownJob(r.job_id).into());
        }
        verify_cancel(&job, &r).map_err(CoordinatorError::NotAuthorized)?;
        if is_final(job.state()) {
            return Err(wrong_state(&job, "only an unfinished job can be cancelled").into());
        }
        let reason = if r.reason.is_empty() {
            "cancelled by the analyst".to_string()
        } else {
            format!("cancelled by the analyst: {}", r.reason)
        };
        let mut changes = self.inner.changes.subscribe();
        if self.to_driver(&job.id, Event::Cancel { reason }).await {
            // Wait (briefly) for the driver to record the abort, so the reply shows it.
            let wait = async {
                loop {
                    match changes.recv().await {
                        Ok(id)
                            if id == job.id && self.job(&id).is_ok_and(|j| is_final(j.state())) =>
                        {
                            break;
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                        _ => {}
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
        }
        Ok(Response::new(self.job(&job.id)?))
    }

    type WatchJobStream = ReceiverStream<Result<Job, Status>>;

    async fn watch_job(
        &self,
        request: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let caller = self.caller(&request)?;
        let job_id = request.into_inner().job_id;
        // Subscribe before the first read so no change falls in between.
        let mut changes = self.inner.changes.subscribe();
        let first = self.job_for(&caller, &job_id)?;
        let (tx, rx) = mpsc::channel(16);
        let svc = self.clone();
        self.inner.tasks.spawn(async move {
            let mut last = first;
            if tx.send(Ok(last.clone())).await.is_err() {
                return;
            }
            while !is_final(last.state()) {
                let changed = tokio::select! {
                    r = changes.recv() => r,
                    () = tx.closed() => return,
                    () = svc.inner.shutdown.cancelled() => return,
                };
                match changed {
                    Ok(id) if id != job_id => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                    _ => {}
                }
                match svc.job(&job_id) {
                    Ok(job) if job != last => {
                        last = job;
                        if tx.send(Ok(last.clone())).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type FetchResultStream = BoxStream<pb::ResultChunk>;

    async fn fetch_result(
        &self,
        request: Request<pb::FetchResultRequest>,
    ) -> Result<Response<Self::FetchResultStream>, Status> {
        let caller = self.caller(&request)?;
        let job = self.job_for(&caller, &request.get_ref().job_id)?;
        if !caller.owns(&job) {
            // An auditor sees the job but not its result.
            return Err(CoordinatorError::WrongRole {
                what: "only the analyst who submitted a job fetches its result",
                found: match &caller {
                    Caller::Verified(id) => id.to_string(),
                    Caller::Insecure => String::new(),
                },
            }
            .into());
        }
        if job.state() != JobState::Succeeded {
            return Err(wrong_state(&job, "a result exists only for a succeeded job").into());
        }
        if let Some(expired_at_ms) = self.inner.store.results_expired_at(&job.id)? {
            return Err(CoordinatorError::ResultsExpired {
                job: job.id,
                expired_at_ms,
                retention_secs: self.inner.config.result_retention.as_secs(),
            }
            .into());
        }
        let mut chunks = Vec::new();
        for p in &job.parties {
            let sealed = self.inner.store.result(&job.id, &p.party)?.ok_or_else(|| {
                CoordinatorError::Storage(format!("sealed share of {} is missing", p.party))
            })?;
            let pieces: Vec<&[u8]> = if sealed.is_empty() {
                vec![&[]]
            } else {
                sealed.chunks(treaty_proto::CHUNK_SIZE).collect()
            };
            let count = pieces.len();
            for (i, piece) in pieces.into_iter().enumerate() {
                chunks.push(Ok(pb::ResultChunk {
                    job_id: job.id.clone(),
                    party: p.party.clone(),
                    index: i as u32,
                    last: i + 1 == count,
                    data: piece.to_vec(),
                }));
            }
        }
        Ok(Response::new(Box::pin(
            tokio_stream::iter(chunks).map(|c| c),
        )))
    }

    async fn record_audit_head(
        &self,
        request: Request<pb::AuditHead>,
    ) -> Result<Response<pb::RecordAuditHeadResponse>, Status> {
        let writer = request.get_ref().writer.clone();
        self.authenticate(&request, &writer)?;
        let head = request.into_inner();
        let info = self
            .inner
            .store
            .party(&writer)?
            .ok_or_else(|| CoordinatorError::UnknownParty(writer.clone()))?;
        let key = <[u8; 32]>::try_from(info.audit_public_key.as_slice())
            .ok()
            .and_then(|k| VerifyingKey::from_bytes(&k).ok())
            .ok_or_else(|| {
                CoordinatorError::InvalidRequest(format!("party {writer} registered no audit key"))
            })?;
        let signed = SignedHead::from_proto(&head).map_err(CoordinatorError::InvalidRequest)?;
        if !head_signature_valid(&signed, &key) {
            return Err(CoordinatorError::NotAuthorized(format!(
                "the head's signature does not verify under {writer}'s registered audit key"
            ))
            .into());
        }
        if let Some(old) = self.inner.store.head(&writer)? {
            if head.seq < old.seq {
                return Err(CoordinatorError::InvalidRequest(format!(
                    "head at entry {} is older than the one recorded (entry {}): a log never \
                     shrinks",
                    head.seq, old.seq
                ))
                .into());
            }
            if head.seq == old.seq {
                return if head.head == old.head {
                    Ok(Response::new(pb::RecordAuditHeadResponse {}))
                } else {
                    Err(CoordinatorError::InvalidRequest(format!(
                        "head at entry {} differs from the one recorded for that entry",
                        head.seq
                    ))
                    .into())
                };
            }
        }
        self.inner.store.put_head(&head)?;
        self.audit(
            None,
            AuditEvent::HeadRecorded {
                party: writer,
                head_seq: signed.seq,
                head: signed.head,
            },
        );
        Ok(Response::new(pb::RecordAuditHeadResponse {}))
    }

    async fn get_audit_registry(
        &self,
        request: Request<pb::GetAuditRegistryRequest>,
    ) -> Result<Response<pb::AuditRegistry>, Status> {
        self.caller(&request)?;
        let mut writers = vec![pb::AuditWriter {
            writer: COORDINATOR_WRITER.into(),
            public_key: self.inner.audit.public_key().to_bytes().to_vec(),
            head: self
                .inner
                .audit
                .latest_head()
                .as_ref()
                .map(SignedHead::to_proto),
        }];
        for p in self.inner.store.parties()? {
            if p.audit_public_key.is_empty() {
                continue;
            }
            writers.push(pb::AuditWriter {
                head: self.inner.store.head(&p.id)?,
                writer: p.id,
                public_key: p.audit_public_key,
            });
        }
        Ok(Response::new(pb::AuditRegistry { writers }))
    }
}

#[cfg(test)]
mod limits_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(role: Role, name: &str) -> Caller {
        Caller::Verified(PeerIdentity::new(role, name))
    }

    #[test]
    fn a_caller_is_exactly_one_role_and_name() {
        let analyst = verified(Role::Analyst, "analyst");
        match analyst.require(Role::Party, "mallory", "a party must register with its own") {
            Err(CoordinatorError::WrongIdentity {
                expected, found, ..
            }) => {
                assert_eq!(expected, "treaty://party/mallory");
                assert_eq!(
                    found,
                    PeerIdentity::new(Role::Analyst, "analyst").to_string()
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            verified(Role::Party, "mallory")
                .require(Role::Party, "mallory", "")
                .is_ok()
        );
        assert!(Caller::Insecure.require(Role::Party, "mallory", "").is_ok());
        assert!(matches!(
            verified(Role::Auditor, "kim").require_role(Role::Analyst, ""),
            Err(CoordinatorError::WrongRole { .. })
        ));
        assert!(matches!(
            analyst.require_role(Role::Analyst, ""),
            Ok(Some("analyst"))
        ));
        let status = Status::from(CoordinatorError::WrongIdentity {
            what: "",
            expected: String::new(),
            found: String::new(),
        });
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
    }

    #[test]
    fn a_job_is_read_by_its_analyst_and_auditors_only() {
        let job = Job {
            analyst: "alice".into(),
            ..Default::default()
        };
        for (caller, reads, owns) in [
            (verified(Role::Analyst, "alice"), true, true),
            (verified(Role::Analyst, "bob"), false, false),
            (verified(Role::Auditor, "kim"), true, false),
            (verified(Role::Party, "alice"), false, false),
            (verified(Role::Coordinator, "alice"), false, false),
            (Caller::Insecure, true, true),
        ] {
            assert_eq!(caller.reads(&job), reads, "{caller:?}");
            assert_eq!(caller.owns(&job), owns, "{caller:?}");
        }
    }
}
