//! A whole deployment in one process — a coordinator and party nodes on loopback, with a local
//! PKI — for `treaty demo`, tests and benchmarks. Every component is the real one, talking real
//! gRPC over TCP (and mutual TLS unless `insecure`); parties and the coordinator can be stopped
//! and restarted to exercise faults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use treaty_audit::{AuditEvent, ExportedLog, SignedHead, verify_logs};
use treaty_coordinator::{CoordinatorConfig, ServeOptions};
use treaty_proto::v1::{self as pb, coordinator_client::CoordinatorClient};
use treaty_trust::client::{COORDINATOR_TLS_NAME, Dial, connect};
use treaty_trust::identity::{read_signing_key, sign_now};
use treaty_trust::pki;
use treaty_trust::tls::TlsIdentity;

use crate::SandboxError;
use treaty_party::config::{Limits, PartyConfig, TlsFiles};
use treaty_party::dataset::DatasetConfig;

/// Name of the sandbox analyst's certificate and signing key.
pub const ANALYST: &str = "analyst";

/// Name of the sandbox auditor's certificate (reads every job and audit record, changes
/// nothing).
pub const AUDITOR: &str = "auditor";

/// The policy every sandbox party gets unless a test writes its own `<party>-policy.toml`
/// first: the sandbox analyst may run every job kind on every dataset, for any recipient.
pub const OPEN_POLICY: &str = "# Sandbox policy: the sandbox analyst may run anything here.
analysts_file = \"analysts.toml\"

[[rules]]
analysts = [\"*\"]
jobs = [\"stats\", \"psi\", \"train\", \"score\", \"fhe-score\"]
datasets = { \"*\" = [\"*\"] }
recipients = [\"*\"]
reveal_models = true
";

/// What [`Sandbox::verify_audit`] found.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct AuditSummary {
    /// Logs verified (the parties' and the coordinator's).
    pub logs: usize,
    /// Entries in them.
    pub entries: usize,
    /// Every problem, naming writer and entry (empty: all verified).
    pub failures: Vec<String>,
}

/// A running component and the token that stops it.
struct Running<T> {
    stop: CancellationToken,
    task: JoinHandle<Result<T, SandboxError>>,
    /// How long its graceful shutdown may take (its own grace for calls in flight, and more).
    patience: Duration,
}

impl<T> Running<T> {
    /// Stops it gracefully, within its patience; past that the task is cancelled, and awaited
    /// so that whatever it held (a database, a port) is released when this returns.
    async fn shut_down(mut self) -> Option<Result<T, SandboxError>> {
        self.stop.cancel();
        match tokio::time::timeout(self.patience, &mut self.task).await {
            Ok(Ok(r)) => Some(r),
            Ok(Err(_)) => None,
            Err(_) => {
                tracing::warn!(patience = ?self.patience, "a sandbox component did not stop: cancelled");
                self.task.abort();
                let _ = (&mut self.task).await;
                None
            }
        }
    }
}

/// How to build a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Directory for keys, data and coordinator state.
    pub dir: PathBuf,
    /// Plaintext gRPC instead of mutual TLS.
    pub insecure: bool,
    /// Extra certificate names to issue (for test peers that are not real nodes).
    pub extra_names: Vec<String>,
    /// Coordinator timeouts.
    pub coordinator: CoordinatorConfig,
    /// Data-plane limits of every party.
    pub limits: Limits,
}

impl SandboxOptions {
    /// Defaults: TLS on, default timeouts and limits.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            insecure: false,
            extra_names: Vec::new(),
            coordinator: CoordinatorConfig::default(),
            limits: Limits::default(),
        }
    }
}

/// A running in-process deployment.
pub struct Sandbox {
    opts: SandboxOptions,
    coordinator_addr: SocketAddr,
    coordinator: Option<Running<()>>,
    parties: BTreeMap<String, Running<()>>,
    /// The identity (audit) key of every node started here, kept when it stops.
    party_keys: treaty_analyst::PartyKeys,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("coordinator", &self.coordinator_addr)
            .field("parties", &self.parties.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Writes the sandbox analyst's signing key (`analyst.sign.key`) and the analysts file listing
/// it (`analysts.toml`), unless they exist.
fn write_analyst(dir: &Path) -> Result<(), SandboxError> {
    if !dir.join("analysts.toml").exists() {
        treaty_trust::identity::write_analyst_keys(dir, &[(ANALYST.to_string(), None)])?;
    }
    Ok(())
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> SandboxError + '_ {
    move |e| SandboxError::Io {
        path: PathBuf::from(what),
        source: e,
    }
}

impl Sandbox {
    /// Writes the PKI (for `parties`, the analyst and `extra_names`) and starts the coordinator.
    pub async fn start(opts: SandboxOptions, parties: &[String]) -> Result<Self, SandboxError> {
        std::fs::create_dir_all(&opts.dir).map_err(io_err("sandbox dir"))?;
        if !opts.insecure {
            let mut names: Vec<String> = parties.to_vec();
            names.extend(opts.extra_names.iter().cloned());
            pki::write_deployment(
                &opts.dir.join("pki"),
                &[],
                &names,
                &[ANALYST.to_string()],
                &[AUDITOR.to_string()],
            )
            .map_err(treaty_trust::TrustError::from)?;
        }
        write_analyst(&opts.dir)?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io_err("127.0.0.1:0"))?;
        let coordinator_addr = listener.local_addr().map_err(io_err("listener"))?;
        let mut sandbox = Self {
            opts,
            coordinator_addr,
            coordinator: None,
            parties: BTreeMap::new(),
            party_keys: BTreeMap::new(),
        };
        sandbox.start_coordinator_on(listener)?;
        Ok(sandbox)
    }

    fn start_coordinator_on(&mut self, listener: TcpListener) -> Result<(), SandboxError> {
        let stop = CancellationToken::new();
        let mut config = self.opts.coordinator.clone();
        if config.analysts_file.is_none() {
            config.analysts_file = Some(self.opts.dir.join("analysts.toml"));
        }
        let patience = config.shutdown_grace * 2 + Duration::from_secs(10);
        let serve = treaty_coordinator::serve(
            listener,
            ServeOptions {
                state_dir: self.state_dir(),
                tls: self.identity("coordinator")?,
                config,
            },
            stop.clone().cancelled_owned(),
        );
        let task = tokio::spawn(async move { serve.await.map_err(SandboxError::from) });
        self.coordinator = Some(Running {
            stop,
            task,
            patience,
        });
        Ok(())
    }

    /// The coordinator's database directory.
    pub fn state_dir(&self) -> PathBuf {
        self.opts.dir.join("coordinator-state")
    }

    /// The sandbox directory.
    pub fn dir(&self) -> &Path {
        &self.opts.dir
    }

    /// Whether TLS is off.
    pub fn insecure(&self) -> bool {
        self.opts.insecure
    }

    /// The coordinator's URL.
    pub fn coordinator_url(&self) -> String {
        let scheme = if self.opts.insecure { "http" } else { "https" };
        format!("{scheme}://{}", self.coordinator_addr)
    }

    /// TLS files of `name` in the sandbox PKI.
    pub fn tls_files(&self, name: &str) -> TlsFiles {
        let pki = self.opts.dir.join("pki");
        TlsFiles {
            ca: pki.join("ca.pem"),
            cert: pki.join(format!("{name}.pem")),
            key: pki.join(format!("{name}.key")),
        }
    }

    /// The TLS identity of `name` (`None` when insecure).
    pub fn identity(&self, name: &str) -> Result<Option<TlsIdentity>, SandboxError> {
        if self.opts.insecure {
            return Ok(None);
        }
        let f = self.tls_files(name);
        Ok(Some(
            TlsIdentity::load(&f.ca, &f.cert, &f.key).map_err(treaty_trust::TrustError::from)?,
        ))
    }

    /// Stops the coordinator (gracefully) and starts it again on the same port and database.
    pub async fn restart_coordinator(&mut self) -> Result<(), SandboxError> {
        self.stop_coordinator().await;
        self.start_coordinator().await
    }

    /// Stops the coordinator (gracefully); its database can then be opened (a test playing a
    /// malicious coordinator edits it) until [`Self::start_coordinator`].
    pub async fn stop_coordinator(&mut self) {
        if let Some(c) = self.coordinator.take() {
            c.shut_down().await;
        }
    }

    /// Starts the coordinator again on the same port and database (after
    /// [`Self::stop_coordinator`]).
    pub async fn start_coordinator(&mut self) -> Result<(), SandboxError> {
        if self.coordinator.is_some() {
            return Ok(());
        }
        // The port was just released; retry briefly in case the OS holds it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(self.coordinator_addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() > deadline => return Err(io_err("rebind")(e)),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.start_coordinator_on(listener)
    }

    /// Starts the coordinator and every party of `parties` with its datasets from `data`
    /// (`(party, dataset)` pairs), and waits until all are online; on failure shuts everything
    /// down before returning the error.
    pub async fn start_with_datasets(
        opts: SandboxOptions,
        parties: &[String],
        data: &[(String, DatasetConfig)],
    ) -> Result<Self, SandboxError> {
        let mut sandbox = Self::start(opts, parties).await?;
        let started = async {
            for party in parties {
                let datasets = data
                    .iter()
                    .filter(|(p, _)| p == party)
                    .map(|(_, d)| d.clone())
                    .collect();
                sandbox.start_party(party, datasets).await?;
            }
            sandbox.wait_online(parties, Duration::from_secs(60)).await
        }
        .await;
        match started {
            Ok(()) => Ok(sandbox),
            Err(e) => {
                sandbox.shut_down().await;
                Err(e)
            }
        }
    }

    /// A party config for `id` serving `datasets`, listening on `listen`.
    pub fn party_config(
        &self,
        id: &str,
        listen: SocketAddr,
        datasets: Vec<DatasetConfig>,
    ) -> PartyConfig {
        let policy = PathBuf::from(format!("{id}-policy.toml"));
        let path = self.opts.dir.join(&policy);
        if !path.exists()
            && let Err(e) = std::fs::write(&path, OPEN_POLICY)
        {
            tracing::warn!(error = %e, "could not write the sandbox policy");
        }
        PartyConfig {
            policy: Some(policy),
            id: id.to_string(),
            listen,
            advertise: None,
            coordinator: self.coordinator_url(),
            coordinator_name: COORDINATOR_TLS_NAME.into(),
            insecure: self.opts.insecure,
            tls: (!self.opts.insecure).then(|| self.tls_files(id)),
            limits: self.opts.limits.clone(),
            datasets,
            state_dir: Some(format!("{id}-state").into()),
            roster: None,
            base_dir: self.opts.dir.clone(),
        }
    }

    /// Starts a party node with `datasets`.
    pub async fn start_party(
        &mut self,
        id: &str,
        datasets: Vec<DatasetConfig>,
    ) -> Result<(), SandboxError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io_err("127.0.0.1:0"))?;
        let cfg = self.party_config(
            id,
            listener.local_addr().map_err(io_err("listener"))?,
            datasets,
        );
        self.start_party_with(cfg, listener);
        Ok(())
    }

    /// Starts a party node from a full config on a bound listener. Its identity key is created
    /// first if it has none, and kept for [`Self::party_keys`].
    pub fn start_party_with(&mut self, cfg: PartyConfig, listener: TcpListener) {
        let stop = CancellationToken::new();
        let id = cfg.id.clone();
        match treaty_audit::identity_key(&treaty_party::audit_log::audit_dir(&cfg)) {
            Ok(key) => {
                self.party_keys.insert(id.clone(), key.verifying_key());
            }
            // The node fails to open its audit log the same way and says so.
            Err(e) => tracing::warn!(party = %id, error = %e, "no identity key for the party"),
        }
        let node = treaty_party::node::run(cfg, listener, stop.clone().cancelled_owned());
        let task = tokio::spawn(async move { node.await.map_err(SandboxError::from) });
        let patience = Duration::from_secs(10);
        self.parties.insert(
            id,
            Running {
                stop,
                task,
                patience,
            },
        );
    }

    /// Stops a party node, as if its process died: its links and job stream close.
    pub async fn stop_party(&mut self, id: &str) -> Option<Result<(), SandboxError>> {
        match self.parties.remove(id) {
            Some(p) => p.shut_down().await,
            None => None,
        }
    }

    /// Waits for a party task to end by itself (e.g. a refused registration).
    pub async fn party_exit(
        &mut self,
        id: &str,
        within: Duration,
    ) -> Option<Result<(), SandboxError>> {
        let p = self.parties.remove(id)?;
        match tokio::time::timeout(within, p.task).await {
            Ok(Ok(r)) => Some(r),
            _ => None,
        }
    }

    /// The identity (audit) keys of the nodes this sandbox started, by party id: it runs them,
    /// so it knows them without asking the coordinator. The analyst verifies result shares
    /// with them.
    pub fn party_keys(&self) -> treaty_analyst::PartyKeys {
        self.party_keys.clone()
    }

    /// An analyst client.
    pub async fn analyst(&self) -> Result<CoordinatorClient<Channel>, SandboxError> {
        self.client(ANALYST).await
    }

    /// An auditor client: reads every job and the audit registry, changes nothing.
    pub async fn auditor(&self) -> Result<CoordinatorClient<Channel>, SandboxError> {
        self.client(AUDITOR).await
    }

    /// A client holding the certificate `name` of the sandbox PKI.
    async fn client(&self, name: &str) -> Result<CoordinatorClient<Channel>, SandboxError> {
        let tls = self.identity(name)?;
        Ok(connect(Dial {
            url: &self.coordinator_url(),
            tls: tls.as_ref(),
            server_name: COORDINATOR_TLS_NAME,
        })
        .await?)
    }

    /// `spec` signed by the sandbox analyst, ready to submit.
    ///
    /// # Errors
    /// The key file cannot be read, or no OS randomness.
    pub fn sign(&self, spec: pb::JobSpec) -> Result<pb::SubmitJobRequest, SandboxError> {
        Ok(pb::SubmitJobRequest {
            submission: Some(sign_now(spec, ANALYST, &self.analyst_key()?)?),
        })
    }

    /// The sandbox analyst's signing key.
    ///
    /// # Errors
    /// The key file cannot be read.
    pub fn analyst_key(&self) -> Result<ed25519_dalek::SigningKey, SandboxError> {
        Ok(read_signing_key(
            &self.opts.dir.join(format!("{ANALYST}.sign.key")),
        )?)
    }

    /// Waits until every party in `ids` is registered and online.
    pub async fn wait_online(&self, ids: &[String], within: Duration) -> Result<(), SandboxError> {
        let deadline = Instant::now() + within;
        let mut client = self.analyst().await?;
        loop {
            let parties = client
                .list_parties(pb::ListPartiesRequest {})
                .await?
                .into_inner()
                .parties;
            if ids
                .iter()
                .all(|id| parties.iter().any(|p| &p.id == id && p.online))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(SandboxError::Aborted(format!(
                    "parties {ids:?} not all online within {} s",
                    within.as_secs_f64()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Submits a job and follows it to its final state, calling `on_update` on every change.
    pub async fn run_job(
        &self,
        spec: pb::JobSpec,
        mut on_update: impl FnMut(&pb::Job),
    ) -> Result<pb::Job, SandboxError> {
        let mut client = self.analyst().await?;
        let job_id = client
            .submit_job(self.sign(spec)?)
            .await?
            .into_inner()
            .job_id;
        let mut watch = client
            .watch_job(pb::WatchJobRequest { job_id })
            .await?
            .into_inner();
        let mut last = None;
        while let Some(job) = watch.message().await? {
            on_update(&job);
            last = Some(job);
        }
        last.ok_or_else(|| SandboxError::Aborted("the job stream ended empty".into()))
    }

    /// [`Self::run_job`], then an error naming the final state and reason unless it succeeded.
    pub async fn run_job_to_success(
        &self,
        spec: pb::JobSpec,
        on_update: impl FnMut(&pb::Job),
    ) -> Result<pb::Job, SandboxError> {
        let job = self.run_job(spec, on_update).await?;
        if job.state() != pb::JobState::Succeeded {
            return Err(SandboxError::Aborted(format!(
                "job {} ended {}: {}",
                job.id,
                job.state().as_str_name(),
                job.reason
            )));
        }
        Ok(job)
    }

    /// Verifies every node's audit log as an auditor would: the coordinator's registry gives
    /// each writer's key and the signed head it holds; each log (the parties' and the
    /// coordinator's own) must verify against them, hold every head the coordinator's log
    /// recorded and match the keys it logged, and the parties' committed traffic must agree
    /// pairwise. Waits up to `within` for the heads of jobs that just ended to be recorded.
    ///
    /// # Errors
    /// The registry cannot be fetched, a log cannot be read, or a key is malformed.
    pub async fn verify_audit(&self, within: Duration) -> Result<AuditSummary, SandboxError> {
        let mut client = self.auditor().await?;
        let log_dir = |writer: &str| {
            if writer == treaty_audit::COORDINATOR_WRITER {
                self.state_dir()
            } else {
                self.opts.dir.join(format!("{writer}-state"))
            }
        };
        verify_audit_logs(&mut client, &log_dir, within).await
    }

    /// Stops everything.
    pub async fn shut_down(mut self) {
        for (_, p) in std::mem::take(&mut self.parties) {
            p.shut_down().await;
        }
        if let Some(c) = self.coordinator.take() {
            c.shut_down().await;
        }
    }
}

/// Verifies every node's audit log as an auditor would (see [`Sandbox::verify_audit`]): the
/// registry comes from the coordinator through `client` (an auditor's), each writer's log from
/// `log_dir(writer)/audit/log.jsonl` (a writer without a log there, e.g. a test's fake party, is
/// skipped). Waits up to `within` for the heads of jobs that just ended to be recorded.
///
/// # Errors
/// The registry cannot be fetched, a log cannot be read, or a key is malformed.
pub async fn verify_audit_logs(
    client: &mut CoordinatorClient<Channel>,
    log_dir: &dyn Fn(&str) -> PathBuf,
    within: Duration,
) -> Result<AuditSummary, SandboxError> {
    let deadline = Instant::now() + within;
    loop {
        let registry = client
            .get_audit_registry(pb::GetAuditRegistryRequest {})
            .await?
            .into_inner();
        // (writer, text, key, head) of every registered writer with a log here (a test's
        // fake party has none).
        let mut found = Vec::new();
        for w in &registry.writers {
            let dir = log_dir(&w.writer);
            let text = match std::fs::read_to_string(dir.join("audit").join("log.jsonl")) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("audit log")(e)),
            };
            let key = <[u8; 32]>::try_from(w.public_key.as_slice())
                .ok()
                .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
                .ok_or_else(|| {
                    SandboxError::Failed(format!("{}'s audit key is malformed", w.writer))
                })?;
            let head = w
                .head
                .as_ref()
                .map(SignedHead::from_proto)
                .transpose()
                .map_err(SandboxError::Failed)?;
            found.push((w.writer.as_str(), text, key, head));
        }
        let exported: Vec<ExportedLog<'_>> = found
            .iter()
            .map(|(writer, text, key, head)| ExportedLog {
                writer,
                text,
                key: *key,
                head: head.clone(),
            })
            .collect();
        let (logs, failures) = verify_logs(&exported);
        // Settled once every writer's last checkpoint is the head the coordinator holds.
        let settled = logs.iter().zip(&exported).all(|((_, records), log)| {
            let last = records.iter().rev().find_map(|r| match &r.entry.event {
                AuditEvent::Checkpoint { head_seq, .. } => Some(*head_seq),
                _ => None,
            });
            last == log.head.as_ref().map(|h| h.seq)
        });
        if settled || Instant::now() > deadline {
            return Ok(AuditSummary {
                logs: logs.len(),
                entries: logs.iter().map(|(_, r)| r.len()).sum(),
                failures: failures.iter().map(ToString::to_string).collect(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
