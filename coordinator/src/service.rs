//! The `Coordinator` gRPC service: registry, job drivers and result relay.
//!
//! Every active job has one driver task, the only writer of that job's record. RPC handlers turn
//! party reports, uploads, connections, disconnects and cancellations into events for it. The
//! driver is a thin loop around the job's [`JobLifecycle`], the pure state machine that walks
//! `submitted → approved → running → succeeded | failed | rejected | aborted`: it hands the
//! machine each event (and its deadline, and the shutdown) and carries out the effects the
//! machine returns (persist, notify watchers, send to parties, audit, delete results).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::VerifyingKey;
use futures::Stream;
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status, Streaming};
use treaty_proto::v1::{
    self as pb, Job, JobState, PartyEvent, PartyJobState, PartyJobStatus, coordinator_server,
    party_event,
};
use treaty_trust::roster::Roster;

use crate::CoordinatorError;
use crate::identity::{AnalystList, check_fresh, verify_cancel, verify_submission};
pub use crate::lifecycle::is_final;
use crate::lifecycle::{Effect, Event, JobLifecycle, Limits, Now, state_name};
use crate::store::Store;
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
        }
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

type EventTx = mpsc::UnboundedSender<Result<PartyEvent, Status>>;

struct Subscription {
    tx: EventTx,
    generation: u64,
}

struct Inner {
    store: Store,
    audit: AuditFile,
    config: CoordinatorConfig,
    online: Mutex<HashMap<String, Subscription>>,
    /// Every active job's driver. Lock order: `online` before `drivers`.
    drivers: Mutex<HashMap<String, mpsc::UnboundedSender<Event>>>,
    /// Ids of jobs whose record changed.
    changes: broadcast::Sender<String>,
    generation: Mutex<u64>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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
        let svc = Self {
            inner: Arc::new(Inner {
                store,
                audit,
                config,
                online: Mutex::new(HashMap::new()),
                drivers: Mutex::new(HashMap::new()),
                changes,
                generation: Mutex::new(0),
                shutdown,
                tasks,
            }),
        };
        svc.recover()?;
        Ok(svc)
    }

    fn recover(&self) -> Result<(), CoordinatorError> {
        let limits = self.inner.config.limits();
        for job in self.inner.store.jobs()? {
            let id = job.id.clone();
            let now = Now {
                wall_ms: now_ms(),
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
        lock(&self.inner.online).clear();
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

    fn to_driver(&self, job_id: &str, event: Event) -> bool {
        lock(&self.inner.drivers)
            .get(job_id)
            .is_some_and(|tx| tx.send(event).is_ok())
    }

    /// Tells every driver `event` (a party came online or went offline). Called with the
    /// `online` lock held, so that drivers see the changes of the online map in its order.
    fn to_all_drivers(&self, event: &Event) {
        for tx in lock(&self.inner.drivers).values() {
            let _ = tx.send(event.clone());
        }
    }

    /// Sends `event` on `party`'s stream; false if it is offline.
    fn send(&self, party: &str, event: party_event::Event) -> bool {
        lock(&self.inner.online)
            .get(party)
            .is_some_and(|s| s.tx.send(Ok(PartyEvent { event: Some(event) })).is_ok())
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
    rx: mpsc::UnboundedReceiver<Event>,
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
            wall_ms: now_ms(),
            mono: self.origin.elapsed(),
        }
    }

    /// Runs `job` (just submitted) until it is final; `online` are its parties online when the
    /// driver was registered (later changes arrive as events).
    async fn run(mut self, job: Job, online: Vec<String>) {
        let limits = self.svc.inner.config.limits();
        let (mut machine, effects) = JobLifecycle::start(job, limits, online, self.now());
        self.execute(&mut machine, effects);
        while !machine.is_final() {
            let deadline = self.deadline;
            let event = tokio::select! {
                ev = self.rx.recv() => ev.unwrap_or_else(|| Event::Internal("driver channel closed".into())),
                () = sleep_until(deadline) => Event::Tick,
                () = self.svc.inner.shutdown.cancelled() => Event::Shutdown,
            };
            let effects = machine.on(event, self.now());
            self.execute(&mut machine, effects);
        }
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
            .map_or_else(now_ms, |o| o.registered_at_ms);
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

    type SubscribeStream = UnboundedReceiverStream<Result<PartyEvent, Status>>;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let party = request.get_ref().party.clone();
        self.authenticate(&request, &party)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let generation = {
            let mut g = lock(&self.inner.generation);
            *g += 1;
            *g
        };
        {
            let mut online = lock(&self.inner.online);
            online.insert(
                party.clone(),
                Subscription {
                    tx: tx.clone(),
                    generation,
                },
            );
            self.to_all_drivers(&Event::PartyOnline {
                party: party.clone(),
            });
        }
        tracing::info!(party = %party, "party online");
        let svc = self.clone();
        self.inner.tasks.spawn(async move {
            tokio::select! {
                () = tx.closed() => {}
                () = svc.inner.shutdown.cancelled() => return,
            }
            let mine = {
                let mut online = lock(&svc.inner.online);
                let mine = online
                    .get(&party)
                    .is_some_and(|s| s.generation == generation);
                if mine {
                    online.remove(&party);
                    svc.to_all_drivers(&Event::PartyOffline {
                        party: party.clone(),
                    });
                }
                mine
            };
            if mine {
                tracing::warn!(party = %party, "party offline");
            }
        });
        Ok(Response::new(UnboundedReceiverStream::new(rx)))
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
        // Only the job's own parties speak about it (a report on a job this coordinator does not
        // know is answered "stop", as before).
        if let Some(job) = self.inner.store.job(&r.job_id)? {
            Self::job_party(&job, &party)?;
        }
        let live = self.to_driver(&r.job_id, Event::Report { party, report });
        Ok(Response::new(pb::JobReportAck { r#continue: live }))
    }

    async fn upload_result(
        &self,
        request: Request<Streaming<pb::ResultChunk>>,
    ) -> Result<Response<pb::UploadResultResponse>, Status> {
        let caller = self.caller(&request)?;
        let peer_fp = peer_cert_sha256(&request);
        let mut stream = request.into_inner();
        let mut data = Vec::new();
        let mut ident: Option<(String, String)> = None;
        let mut expected_index = 0u32;
        let max = self.inner.config.max_result_bytes;
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
            if chunk.index != expected_index {
                return Err(CoordinatorError::InvalidRequest(format!(
                    "chunk {} arrived where chunk {expected_index} was expected",
                    chunk.index
                ))
                .into());
            }
            expected_index += 1;
            if data.len() + chunk.data.len() > max {
                return Err(CoordinatorError::ResultTooLarge {
                    job: chunk.job_id,
                    max,
                }
                .into());
            }
            data.extend_from_slice(&chunk.data);
            if chunk.last {
                break;
            }
        }
        let Some((job_id, party)) = ident else {
            return Err(CoordinatorError::InvalidRequest("empty upload".into()).into());
        };
        self.inner.store.put_result(&job_id, &party, &data)?;
        let uploaded = Event::Uploaded {
            party,
            bytes: data.len() as u64,
            sha256: Sha256::digest(&data).into(),
        };
        if !self.to_driver(&job_id, uploaded) {
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
        check_fresh(&submission, now_ms()).map_err(CoordinatorError::NotAuthorized)?;
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
        let now = now_ms();
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
        let (tx, rx) = mpsc::unbounded_channel();
        // Under the `online` lock, so that every later change of it reaches the driver.
        let online: Vec<String> = {
            let online = lock(&self.inner.online);
            lock(&self.inner.drivers).insert(job.id.clone(), tx);
            job.parties
                .iter()
                .filter(|p| online.contains_key(&p.party))
                .map(|p| p.party.clone())
                .collect()
        };
        let job_id = job.id.clone();
        let driver = Driver {
            svc: self.clone(),
            job_id: job.id.clone(),
            rx,
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
        let limit = match request.get_ref().limit {
            0 => 50,
            n => n as usize,
        };
        let mut jobs = self.inner.store.jobs()?;
        jobs.retain(|j| caller.reads(j));
        jobs.sort_by(|a, b| {
            b.submitted_at_ms
                .cmp(&a.submitted_at_ms)
                .then(b.id.cmp(&a.id))
        });
        jobs.truncate(limit);
        Ok(Response::new(pb::ListJobsResponse { jobs }))
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
        if self.to_driver(&job.id, Event::Cancel { reason }) {
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
