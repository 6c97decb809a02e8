//! Executing an assigned job on this party: check it against local datasets, compute local
//! aggregates, run the protocol over the data plane, seal the output share, sign it with the
//! node's identity key and upload it.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use treaty_audit::{AuditEvent, Digest32, Outcome};
use treaty_job::validate::normalize_spec;
use treaty_job::{Computation, JobError, ProblemKind};
use treaty_mpc::fixed::FixedPoint;
use treaty_mpc::output;
use treaty_mpc::seeds;
use treaty_mpc::stats::LocalAggregates;
use treaty_mpc::transport::{Channel as DataChannel, DigestedLink};
use treaty_proto::v1::{self as pb, coordinator_client::CoordinatorClient, job_report, job_spec};
use treaty_trust::identity::{check_fresh, verify_submission};
use treaty_trust::roster::Roster;
use treaty_trust::tls::TlsIdentity;
use zeroize::Zeroize;

use crate::PartyError;
use crate::artefact::Staged;
use crate::checks::{check_file, unknown_dataset};
use crate::config::PartyConfig;
#[cfg(feature = "fhe")]
use crate::fhe_score;
use crate::join::{JoinPlan, JoinTable};
use crate::link::{GrpcTransport, LinkHub, SessionPeer, SessionSetup};
use crate::membership;
use crate::policy::{Policy, Request, Reuse, Terms, check_cohort};
use crate::refusal::Refusal;
use crate::score::{self, ClearModel, ModelSource, ScorePlan};
use crate::train::{self, StoredModel, TrainPlan};

/// This party's index in the job and its dataset name.
pub fn my_role<'a>(
    cfg: &PartyConfig,
    assignment: &'a pb::JobAssignment,
) -> Result<(usize, &'a str), PartyError> {
    let me = assignment
        .peers
        .iter()
        .position(|p| p.party == cfg.id)
        .ok_or_else(|| Refusal::NotInJob {
            party: cfg.id.clone(),
        })?;
    let spec = assignment.spec.as_ref().ok_or(Refusal::NoSpec)?;
    let input = spec
        .inputs
        .iter()
        .find(|i| i.party == cfg.id)
        .ok_or_else(|| Refusal::NotInJob {
            party: cfg.id.clone(),
        })?;
    Ok((me, input.dataset.as_str()))
}

/// How this party answered an assignment: who signed it, under which policy version, and the
/// verdict (the terms it runs under, or why it is refused).
#[derive(Debug)]
pub struct Admission {
    /// The analyst who signed the submission ("" if the signature did not verify).
    pub analyst: String,
    /// SHA-256 of the signed submission bytes (zeros without one).
    pub submission_sha256: [u8; 32],
    /// The policy version that decided (zeros if it was never consulted).
    pub policy_sha256: [u8; 32],
    /// What the job asks of this party, as the policy saw it.
    pub request: Request,
    /// The terms, or the reason to refuse.
    pub verdict: Result<Terms, PartyError>,
}

/// Decides an assignment, in order: the analyst's signature over the job (and that the job id
/// and spec are what was signed, fresh, and not seen before), the analyst on this party's list,
/// this party's policy, then its datasets ([`check_assignment`]). Never touches data rows before
/// the policy admits the job.
pub fn admit(
    cfg: &PartyConfig,
    a: &pb::JobAssignment,
    roster: Option<&Roster>,
    seen: impl Fn(&str) -> bool,
    now_ms: i64,
) -> Admission {
    let mut out = Admission {
        analyst: String::new(),
        submission_sha256: [0; 32],
        policy_sha256: [0; 32],
        request: Request::default(),
        verdict: Err(Refusal::Unsigned.into()),
    };
    let reject = |refusal: Refusal| Err(PartyError::from(refusal));
    let Some(signed) = &a.submission else {
        out.verdict = reject(Refusal::Unsigned);
        return out;
    };
    let submission = match verify_submission(signed) {
        Ok(s) => s,
        Err(e) => {
            out.verdict = reject(Refusal::Signature {
                reason: e.to_string(),
            });
            return out;
        }
    };
    out.analyst = submission.analyst.clone();
    out.submission_sha256 = submission.sha256;
    let spec = a.spec.clone().unwrap_or_default();
    out.request = match my_role(cfg, a) {
        Ok((_, dataset)) => {
            let id = cfg.dataset(dataset).map(|d| d.id_column.as_str());
            let mut request = Request::of(&with_stored_features(cfg, &spec), &cfg.id, dataset, id);
            request.reuses = reuses(cfg, &spec);
            request
        }
        Err(e) => {
            out.verdict = Err(e);
            return out;
        }
    };
    let signed_checks = if submission.job_id() != a.job_id {
        Err(Refusal::JobIdMismatch)
    } else if normalize_spec(submission.spec.clone()) != spec {
        Err(Refusal::SpecMismatch)
    } else if seen(&a.job_id) {
        Err(Refusal::Replayed {
            party: cfg.id.clone(),
            job_id: a.job_id.clone(),
        })
    } else if let Err(error) = membership::check(a, &spec, roster) {
        Err(Refusal::Membership {
            party: cfg.id.clone(),
            error,
        })
    } else if let Some(Err(e)) =
        roster.map(|r| r.check_signer(&submission.analyst, &submission.public_key))
    {
        Err(Refusal::Signature {
            reason: e.to_string(),
        })
    } else {
        check_fresh(&submission, now_ms).map_err(|reason| Refusal::Stale { reason })
    };
    if let Err(reason) = signed_checks {
        out.verdict = reject(reason);
        return out;
    }
    let Some(path) = &cfg.policy else {
        out.verdict = reject(Refusal::NoPolicy {
            party: cfg.id.clone(),
        });
        return out;
    };
    let policy = match Policy::load(&cfg.resolve(path)) {
        Ok(p) => p,
        Err(e) => {
            // The details are for the operator, not the analyst.
            tracing::error!(error = %e, "the policy file is unusable: every job is refused");
            out.verdict = reject(Refusal::PolicyUnusable {
                party: cfg.id.clone(),
            });
            return out;
        }
    };
    out.policy_sha256 = policy.sha256;
    let analyst = match policy.analysts.admit(&submission) {
        Ok(a) => a,
        Err(reason) => {
            out.verdict = reject(Refusal::Analyst {
                party: cfg.id.clone(),
                reason: reason.to_string(),
            });
            return out;
        }
    };
    out.verdict = policy
        .decide(analyst, &out.request)
        .map_err(|reason| {
            PartyError::from(Refusal::Policy {
                party: cfg.id.clone(),
                reason,
            })
        })
        .and_then(|terms| check_assignment(cfg, a).map(|()| terms));
    out
}

/// A `score` job of a stored shared model runs on the model's own features, whatever the spec
/// names. For the policy, the spec with the stored model's features in place of its own
/// (unchanged for any other job, or if this party stores no such model — the dataset check
/// refuses that later).
fn with_stored_features(cfg: &PartyConfig, spec: &pb::JobSpec) -> pb::JobSpec {
    let mut spec = spec.clone();
    if let Some(job_spec::Computation::Score(score)) = &mut spec.computation
        && score.weights_party.is_empty()
        && let Ok(model) = StoredModel::load(cfg, &score.model_id)
    {
        score.features.clone_from(&model.features);
    }
    spec
}

/// What `spec` reuses from earlier jobs at this party (a stored model, a stored intersection)
/// and which analyst's job made it, for the policy's `reuse` rule. Only what this party holds:
/// a missing model or intersection is refused by the dataset check.
fn reuses(cfg: &PartyConfig, spec: &pb::JobSpec) -> Vec<Reuse> {
    let mut out = Vec::new();
    if let Some(job_spec::Computation::Score(score)) = &spec.computation
        && score.weights_party.is_empty()
        && let Ok(model) = StoredModel::load(cfg, &score.model_id)
    {
        out.push(Reuse {
            what: format!("model {:?}", score.model_id),
            origin: model.analyst.clone(),
        });
    }
    if let Some(join) = &spec.join
        && !join.psi_job.is_empty()
        && crate::psi::intersection_path(cfg, &join.psi_job).is_file()
    {
        out.push(Reuse {
            what: format!("the intersection of psi job {}", join.psi_job),
            origin: crate::psi::intersection_origin(cfg, &join.psi_job),
        });
    }
    out
}

/// Checks an assignment against this party's own datasets (the registry only holds what the
/// party published, and the config may have changed since). Returns the reason to refuse.
pub fn check_assignment(
    cfg: &PartyConfig,
    assignment: &pb::JobAssignment,
) -> Result<(), PartyError> {
    let (me, dataset) = my_role(cfg, assignment)?;
    let spec = assignment.spec.as_ref().ok_or(Refusal::NoSpec)?;
    let peers = peer_ids(assignment);
    let dataset_config = || cfg.dataset(dataset).ok_or_else(|| unknown_dataset(dataset));
    let plan = match Computation::of(spec).map_err(JobError::from)? {
        Computation::Stats(stats) => {
            return crate::stats::check(cfg, spec, stats, dataset_config()?, dataset);
        }
        Computation::Psi(psi) => {
            let ds = dataset_config()?;
            crate::psi::id_column(cfg, psi, ds)?;
            return check_file(cfg, ds);
        }
        #[cfg(feature = "fhe")]
        Computation::FheScore(job) => return fhe_score::check(cfg, job, &peers, me, dataset),
        #[cfg(not(feature = "fhe"))]
        Computation::FheScore(_) => return Err(Refusal::NoFhe.into()),
        Computation::JoinStats { stats, join } => JoinPlan::for_stats(spec, stats, join, &peers)?,
        Computation::Train { train, join } => {
            let plan = train_join_plan(spec, train, join, &peers)?;
            let t = TrainPlan::new(train, &plan, &assignment.job_id, spec.frac_bits)?;
            if train::model_path(cfg, &t.model_id).exists() {
                return Err(Refusal::ModelExists {
                    model_id: t.model_id.clone(),
                }
                .into());
            }
            plan
        }
        Computation::Score { score, join } => score_plans(cfg, spec, score, join, &peers, me)?.0,
    };
    if plan.id_column(me).is_none() {
        // The helper: no data of its own in this job.
        return match dataset {
            "" => Ok(()),
            d => Err(Refusal::HelperWithData {
                dataset: d.to_string(),
            }
            .into()),
        };
    }
    let ds = dataset_config()?;
    plan.check_local(cfg, me, ds)?;
    check_file(cfg, ds)
}

/// The join plan of a `train` job: its features, then its label, as the join's columns.
fn train_join_plan(
    spec: &pb::JobSpec,
    train: &pb::TrainJob,
    join: &pb::JoinSpec,
    peers: &[String],
) -> Result<JoinPlan, PartyError> {
    let mut columns = train.features.clone();
    columns.push(train.label.clone());
    JoinPlan::new(spec, &columns, &[], join, peers)
}

/// The join plan of a `score` job (over the stored model's features) and this party's score
/// plan: reads the model this party stores.
fn score_plans(
    cfg: &PartyConfig,
    spec: &pb::JobSpec,
    score: &pb::ScoreJob,
    join: &pb::JoinSpec,
    peers: &[String],
    me: usize,
) -> Result<(JoinPlan, ScorePlan), PartyError> {
    let missing = |e: PartyError| match e {
        PartyError::Io { .. } => PartyError::from(Refusal::NoModel {
            model_id: score.model_id.clone(),
        }),
        other => other,
    };
    let (source, features) = if score.weights_party.is_empty() {
        let model = StoredModel::load(cfg, &score.model_id).map_err(missing)?;
        if spec.frac_bits != 0 && spec.frac_bits != model.frac_bits {
            return Err(Refusal::FracBitsMismatch {
                model: model.frac_bits,
                job: spec.frac_bits,
            }
            .into());
        }
        let features = model.features.clone();
        (ModelSource::Shared(model), features)
    } else {
        let weights_party = peers
            .iter()
            .position(|p| *p == score.weights_party)
            .ok_or_else(|| {
                Refusal::spec(
                    "score.weights_party",
                    ProblemKind::NotAnInput {
                        party: score.weights_party.clone(),
                    },
                )
            })?;
        let model = (weights_party == me)
            .then(|| ClearModel::load(cfg, &score.model_id).map_err(missing))
            .transpose()?;
        let source = ModelSource::Clear {
            weights_party,
            model,
        };
        (source, score.features.clone())
    };
    let frac_bits = match spec.frac_bits {
        0 => treaty_mpc::fixed::DEFAULT_FRAC_BITS,
        f => f,
    };
    let plan = JoinPlan::new(spec, &features, &[], join, peers)?;
    let score = ScorePlan::new(score, &plan, source, me, peers, frac_bits)?;
    Ok((plan, score))
}

/// Signs the audit log's head and records it with the coordinator (failures are logged: the
/// head stays in the log and the next checkpoint records a newer one).
pub async fn checkpoint(audit: &treaty_audit::AuditFile, coordinator: &CoordinatorClient<Channel>) {
    let head = match audit.checkpoint() {
        Ok(Some(head)) => head,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "audit checkpoint failed");
            return;
        }
    };
    if let Err(e) = coordinator.clone().record_audit_head(head.to_proto()).await {
        tracing::warn!(error = %e.message(), "the coordinator did not record the audit head");
    }
}

/// The job's party ids in protocol order.
fn peer_ids(assignment: &pb::JobAssignment) -> Vec<String> {
    assignment.peers.iter().map(|p| p.party.clone()).collect()
}

/// What a job computes locally before the protocol.
enum LocalInput {
    Stats(pb::StatsJob, LocalAggregates),
    Psi(pb::PsiJob, Vec<String>),
    Join(Box<JoinLocal>),
    #[cfg(feature = "fhe")]
    Fhe(Box<(fhe_score::FhePlan, fhe_score::FheLocal)>),
}

/// What a job with a join computes once its rows are aligned.
enum JoinWork {
    Stats,
    Train(Box<TrainPlan>),
    Score(Box<ScorePlan>),
}

/// A `stats` or `train` job with a join, before the protocol: the plan and, at a data party, its rows and
/// (with a stored intersection) their alignment.
struct JoinLocal {
    plan: JoinPlan,
    work: JoinWork,
    fixed: FixedPoint,
    table: Option<JoinTable>,
    matched: Option<Vec<usize>>,
}

impl JoinLocal {
    /// Reads this party's rows and, when the join reuses a stored intersection, aligns them.
    /// CPU-bound: call it off the async runtime.
    #[allow(clippy::too_many_arguments)]
    fn load(
        cfg: &PartyConfig,
        spec: &pb::JobSpec,
        job_id: &str,
        comp: Computation<'_>,
        peers: &[String],
        me: usize,
        dataset: &str,
    ) -> Result<Self, PartyError> {
        let (plan, work) = match comp {
            Computation::JoinStats { stats, join } => (
                JoinPlan::for_stats(spec, stats, join, peers)?,
                JoinWork::Stats,
            ),
            Computation::Train { train, join } => {
                let plan = train_join_plan(spec, train, join, peers)?;
                let t = TrainPlan::new(train, &plan, job_id, spec.frac_bits)?;
                (plan, JoinWork::Train(Box::new(t)))
            }
            Computation::Score { score, join } => {
                let (plan, score) = score_plans(cfg, spec, score, join, peers, me)?;
                (plan, JoinWork::Score(Box::new(score)))
            }
            Computation::Stats(_) | Computation::Psi(_) | Computation::FheScore(_) => {
                return Err(Refusal::spec(
                    "join",
                    ProblemKind::Missing {
                        hint: "only a job with a join loads one",
                    },
                )
                .into());
            }
        };
        let fixed = FixedPoint::new(spec.frac_bits)?;
        if plan.id_column(me).is_none() {
            return Ok(Self {
                plan,
                work,
                fixed,
                table: None,
                matched: None,
            });
        }
        let ds = cfg
            .dataset(dataset)
            .ok_or_else(|| unknown_dataset(dataset))?;
        let table = JoinTable::load(&plan, me, ds, &cfg.resolve(&ds.path))?;
        let matched = match &plan.psi_job {
            Some(job) => Some(table.align(&crate::psi::read_intersection(cfg, job)?)?),
            None => {
                table.check_ids()?;
                None
            }
        };
        Ok(Self {
            plan,
            work,
            fixed,
            table: Some(table),
            matched,
        })
    }
}

/// Everything a running job needs.
pub struct JobRun {
    /// Node config.
    pub cfg: Arc<PartyConfig>,
    /// The roster the node runs with (peers' endpoints, fingerprints and CAs come from it).
    pub roster: Option<Arc<Roster>>,
    /// The analyst who signed the job (recorded with what it leaves here: models,
    /// intersections).
    pub analyst: String,
    /// The node's audit log.
    pub audit: Arc<treaty_audit::AuditFile>,
    /// Rounds the protocol ran (set when it ends; for the audit log).
    pub rounds: std::sync::atomic::AtomicU64,
    /// TLS identity.
    pub tls: Option<Arc<TlsIdentity>>,
    /// The data-plane rendezvous.
    pub hub: Arc<LinkHub>,
    /// Coordinator client (reports, upload).
    pub coordinator: CoordinatorClient<Channel>,
    /// The assignment.
    pub assignment: pb::JobAssignment,
    /// The terms this party's policy admitted the job under.
    pub terms: Terms,
    /// Cancelled when the job is aborted.
    pub abort: CancellationToken,
}

impl std::fmt::Debug for JobRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRun")
            .field("job", &self.assignment.job_id)
            .finish_non_exhaustive()
    }
}

/// Sends a job's reports to the coordinator (cloneable into side tasks).
#[derive(Clone)]
pub(crate) struct Reporter {
    coordinator: CoordinatorClient<Channel>,
    job_id: String,
    party: String,
}

impl Reporter {
    /// Reports of `party` about `job_id`.
    pub(crate) fn new(coordinator: &CoordinatorClient<Channel>, job_id: &str, party: &str) -> Self {
        Self {
            coordinator: coordinator.clone(),
            job_id: job_id.to_string(),
            party: party.to_string(),
        }
    }

    /// Sends one report (a failure is logged: the coordinator's timeouts handle a lost one).
    pub(crate) async fn report(&self, report: job_report::Report) {
        let mut c = self.coordinator.clone();
        let r = c
            .report_job(pb::JobReport {
                job_id: self.job_id.clone(),
                party: self.party.clone(),
                report: Some(report),
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(job = %self.job_id, error = %e.message(), "report failed");
        }
    }
}

impl JobRun {
    fn reporter(&self) -> Reporter {
        Reporter::new(&self.coordinator, &self.assignment.job_id, &self.cfg.id)
    }

    async fn report(&self, report: job_report::Report) {
        self.reporter().report(report).await;
    }

    /// Progress from a long protocol step: the fractions sent on the returned channel go to the
    /// coordinator from a side task, at most every 200 ms (drop the sender, then await the task).
    fn progress_side_task(
        &self,
        start: f64,
    ) -> (tokio::sync::watch::Sender<f64>, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = tokio::sync::watch::channel(start);
        let this = self.reporter();
        let task = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let fraction = *rx.borrow_and_update();
                this.report(job_report::Report::Progress(pb::JobProgress {
                    fraction,
                    ..Default::default()
                }))
                .await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        (tx, task)
    }

    async fn progress(&self, fraction: f64, transport: Option<&DataChannel>) {
        let c = transport
            .map(|t| t.counters().snapshot())
            .unwrap_or_default();
        self.report(job_report::Report::Progress(pb::JobProgress {
            fraction,
            rounds: c.rounds,
            bytes_sent: c.bytes_sent,
            bytes_received: c.bytes_received,
        }))
        .await;
    }

    /// Runs the job to the end; on failure tells the coordinator why (and nothing secret).
    pub async fn execute(self) {
        let job_id = self.assignment.job_id.clone();
        tracing::info!(job = %job_id, "job started");
        let (outcome, reason) = match self.run().await {
            Ok(()) => {
                tracing::info!(job = %job_id, "job done: sealed share uploaded");
                (Outcome::Succeeded, String::new())
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(job = %job_id, error = %reason, "job failed");
                if !self.abort.is_cancelled() {
                    self.report(job_report::Report::Failed(reason.clone()))
                        .await;
                }
                let outcome = if self.abort.is_cancelled() {
                    Outcome::Aborted
                } else {
                    Outcome::Failed
                };
                (outcome, reason)
            }
        };
        self.audit_event(AuditEvent::Completed {
            outcome,
            rounds: self.rounds.load(std::sync::atomic::Ordering::Relaxed),
            reason,
        });
        checkpoint(&self.audit, &self.coordinator).await;
        self.hub.forget_job(&job_id);
    }

    /// Appends an event of this job to the node's audit log (a failure to write is logged).
    fn audit_event(&self, event: AuditEvent) {
        if let Err(e) = self.audit.record(Some(&self.assignment.job_id), event) {
            tracing::warn!(job = %self.assignment.job_id, error = %e, "audit log write failed");
        }
    }

    async fn run(&self) -> Result<(), PartyError> {
        let a = &self.assignment;
        let (me, dataset) = my_role(&self.cfg, a)?;
        let spec = a.spec.as_ref().ok_or(Refusal::NoSpec)?;
        let fixed = FixedPoint::new(spec.frac_bits)?;
        let recipient = spec
            .output
            .as_ref()
            .map(|o| o.recipient_public_key.clone())
            .ok_or(Refusal::NoRecipient)?;
        // 1. Local input (aggregates, ids, or a join's rows), off the async runtime.
        let cfg = self.cfg.clone();
        let (spec, dataset) = (spec.clone(), dataset.to_string());
        let peers = peer_ids(a);
        let job_id = a.job_id.clone();
        let local = {
            let work = tokio::task::spawn_blocking(move || {
                let ds = || {
                    cfg.dataset(&dataset)
                        .ok_or_else(|| unknown_dataset(&dataset))
                };
                match Computation::of(&spec).map_err(JobError::from)? {
                    comp @ (Computation::JoinStats { .. }
                    | Computation::Train { .. }
                    | Computation::Score { .. }) => {
                        let local =
                            JoinLocal::load(&cfg, &spec, &job_id, comp, &peers, me, &dataset)?;
                        Ok::<_, PartyError>(LocalInput::Join(Box::new(local)))
                    }
                    Computation::Stats(stats) => {
                        let local = crate::stats::local(&cfg, ds()?, stats, fixed)?;
                        Ok(LocalInput::Stats(stats.clone(), local))
                    }
                    Computation::Psi(psi) => {
                        let ids = crate::psi::local_ids(&cfg, ds()?, psi)?;
                        Ok(LocalInput::Psi(psi.clone(), ids))
                    }
                    #[cfg(feature = "fhe")]
                    Computation::FheScore(job) => {
                        let plan = fhe_score::FhePlan::new(job, &peers)?;
                        let local = fhe_score::load_local(&cfg, &plan, me, &dataset)?;
                        Ok(LocalInput::Fhe(Box::new((plan, local))))
                    }
                    #[cfg(not(feature = "fhe"))]
                    Computation::FheScore(_) => Err(Refusal::NoFhe.into()),
                }
            });
            tokio::select! {
                r = work => r.map_err(|_| PartyError::Aborted("local computation panicked".into()))??,
                () = self.abort.cancelled() => return Err(PartyError::Aborted("job aborted".into())),
            }
        };
        // The cohort rule, before anything leaves this party: rows behind a horizontal
        // aggregate here (a join's aligned rows are checked once the PSI aligned them).
        if let LocalInput::Stats(_, aggregates) = &local {
            check_cohort(&self.terms, &self.cfg.id, aggregates.count())?;
        }
        self.progress(0.4, None).await;

        // 2. Data plane.
        let peers: Vec<SessionPeer> = membership::session_peers(a, self.roster.as_deref());
        let ids: Vec<String> = peers.iter().map(|p| p.party.clone()).collect();
        let transport = GrpcTransport::connect(
            SessionSetup {
                job_id: &a.job_id,
                me,
                peers: &peers,
                tls: self.tls.as_deref(),
                timeout: self.cfg.limits.peer_timeout(),
                abort: self.abort.clone(),
            },
            &self.hub,
        )
        .await
        .map_err(|e| PartyError::from(e).with_peer_names(&ids))?;
        self.audit_event(AuditEvent::ProtocolStart { peers: ids.clone() });
        let digested = Arc::new(DigestedLink::new(transport));
        let root = DataChannel::new(digested.clone(), self.cfg.limits.max_message_bytes);
        let result = self
            .protocol(&root, &peers, local, &recipient)
            .await
            .map_err(|e| e.with_peer_names(&ids));
        self.rounds.store(
            root.counters().snapshot().rounds,
            std::sync::atomic::Ordering::Relaxed,
        );
        let transport = digested.inner();
        for t in digested.traffic() {
            // A job that failed here may have left messages in flight: the cuts let a peer's
            // receipt of part of the stream be matched (`treaty_audit::cross_check`).
            let sent_prefixes = match &result {
                Ok(()) => Vec::new(),
                Err(_) => t
                    .sent_prefixes
                    .iter()
                    .map(|p| treaty_audit::TrafficPrefix {
                        bytes: p.bytes,
                        sha256: Digest32(p.sha256),
                    })
                    .collect(),
            };
            self.audit_event(AuditEvent::PeerTraffic {
                peer: ids.get(t.peer).cloned().unwrap_or_default(),
                sent_sha256: Digest32(t.sent_sha256),
                sent_bytes: t.sent_bytes,
                sent_prefixes,
                received_sha256: Digest32(t.received_sha256),
                received_bytes: t.received_bytes,
            });
        }
        match &result {
            Err(e) => {
                transport.abort_peers(&format!("party {} failed: {e}", self.cfg.id));
                // Give the abort frames a moment to leave before the links drop.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Deliver what is still queued (the barrier digest) before the links close: a plain
            // drop could discard it and fail a peer that is still waiting for it.
            Ok(()) => {
                if let Err(e) = transport.close(self.cfg.limits.peer_timeout()).await {
                    tracing::debug!(job = %a.job_id, error = %e, "closing the data plane");
                }
            }
        }
        result
    }

    async fn protocol(
        &self,
        transport: &DataChannel,
        peers: &[SessionPeer],
        local: LocalInput,
        recipient: &[u8],
    ) -> Result<(), PartyError> {
        let a = &self.assignment;
        let ids: Vec<String> = peers.iter().map(|p| p.party.clone()).collect();
        let mut rng = seeds::os_rng()?;
        // Files this job leaves here (a model share, an intersection): staged until every party
        // passed the release barrier, removed if it fails before.
        let mut staged = Staged::default();
        let plain = match local {
            LocalInput::Stats(stats, local) => {
                let ch = transport.child("stats");
                crate::stats::run(&ch, &a.job_id, &ids, &stats, &local, &mut rng).await?
            }
            LocalInput::Psi(psi, own) => {
                let ch = transport.child("psi");
                self.psi(&ch, &ids, &psi, &own, &mut rng, &mut staged)
                    .await?
                    .encode_to_vec()
            }
            LocalInput::Join(join) => {
                self.join_job(transport, &ids, *join, &mut rng, &mut staged)
                    .await?
            }
            #[cfg(feature = "fhe")]
            LocalInput::Fhe(fhe) => {
                let (plan, local) = *fhe;
                let ch = transport.child("fhe");
                let report = fhe_score::run(&ch, &self.cfg, &ids, &plan, local, &mut rng).await?;
                report.encode_to_vec()
            }
        };
        let mut plain = plain;
        let sealed = output::seal(recipient, &a.job_id, &self.cfg.id, &plain, &mut rng)?;
        plain.zeroize();
        // Signed with this node's identity (audit) key, bound to the job, this party and the
        // recipient: the analyst refuses a share the coordinator made up, altered or moved.
        let recipient: &[u8; treaty_trust::result::RECIPIENT_KEY_LEN] =
            recipient.try_into().map_err(|_| {
                treaty_mpc::MpcError::Seal("signed: the recipient public key is not 32 bytes")
            })?;
        let upload = self
            .audit
            .sign_with(|key| {
                treaty_trust::result::sign(key, &a.job_id, &self.cfg.id, recipient, sealed)
            })
            .encode_to_vec();
        self.progress(0.9, Some(transport)).await;

        // Release barrier: nobody uploads until every party has sealed its share, so a party that
        // fails mid-protocol leaves no share of this job anywhere.
        let digest: [u8; 32] = Sha256::digest(&upload).into();
        self.audit_event(AuditEvent::ResultSealed {
            recipient: a
                .spec
                .as_ref()
                .and_then(|s| s.output.as_ref())
                .map(|o| o.recipient.clone())
                .unwrap_or_default(),
            sealed_sha256: Digest32(digest),
        });
        treaty_mpc::barrier::run(&transport.child("barrier"), digest).await?;
        let files: Vec<String> = staged.paths().map(|p| p.display().to_string()).collect();
        let committed = staged.commit()?;
        if !files.is_empty() {
            tracing::info!(job = %a.job_id, ?files, "the job's files are in place");
        }
        self.progress(0.95, Some(transport)).await;
        if let Err(e) = self.upload(&upload).await {
            committed.revoke();
            return Err(e);
        }
        self.progress(1.0, Some(transport)).await;
        Ok(())
    }

    /// Runs a `psi` job's protocol on this party's ids `own`, with progress reports every
    /// 200 ms at most; stores the aligned intersection if this party learns it. Returns the
    /// report sealed to the analyst.
    async fn psi(
        &self,
        transport: &DataChannel,
        ids: &[String],
        psi: &pb::PsiJob,
        own: &[String],
        rng: &mut ChaCha20Rng,
        staged: &mut Staged,
    ) -> Result<pb::PsiPartyResult, PartyError> {
        let job_id = &self.assignment.job_id;
        let (tx, reporter) = self.progress_side_task(0.0);
        let limit = self.cfg.limits.max_psi_set;
        let outcome = crate::psi::run(transport, job_id, ids, psi, own, limit, rng, |p| {
            let done = (p.own_sent + p.peer_done) as f64;
            let total = (p.own_total + p.peer_total).max(1) as f64;
            tx.send_replace(0.1 + 0.8 * done / total);
        })
        .await;
        drop(tx);
        let _ = reporter.await;
        let outcome = outcome?;
        let stored_as = match &outcome.matched {
            Some(matched) => {
                let path = crate::psi::stage_intersection(
                    &self.cfg,
                    job_id,
                    &self.analyst,
                    own,
                    matched,
                    staged,
                )?;
                path.display().to_string()
            }
            None => String::new(),
        };
        Ok(outcome.report(own.len(), stored_as))
    }

    /// Runs a `stats` or `train` job with a join: the inline PSI between the data parties if
    /// the join reuses no stored intersection, then the vertical protocol with the helper.
    /// The inline PSI runs on the `psi` child of `transport` (among the data parties), the
    /// vertical protocol on its `join` child. Returns this party's sealed output (bytes).
    async fn join_job(
        &self,
        transport: &DataChannel,
        ids: &[String],
        local: JoinLocal,
        rng: &mut ChaCha20Rng,
        staged: &mut Staged,
    ) -> Result<Vec<u8>, PartyError> {
        let a = &self.assignment;
        let JoinLocal {
            plan,
            work,
            fixed,
            table,
            matched,
        } = local;
        let aligned = match (table, matched) {
            (None, _) => None,
            (Some(table), Some(matched)) => Some((table, matched)),
            (Some(table), None) => {
                let ch = transport.child("psi");
                let limit = self.cfg.limits.max_psi_set;
                let data = plan.data_parties();
                let matched =
                    crate::psi::inline(ch, &a.job_id, data, table.ids(), limit, rng).await?;
                Some((table, matched))
            }
        };
        if let Some((_, matched)) = &aligned {
            check_cohort(&self.terms, &self.cfg.id, matched.len() as u64)?;
        }
        self.progress(0.3, Some(transport)).await;
        let join = transport.child("join");
        match work {
            JoinWork::Train(train) => {
                return self
                    .train(&join, ids, &train, aligned.as_ref(), rng, staged)
                    .await;
            }
            JoinWork::Score(plan) => {
                let aligned = aligned.as_ref().map(|(t, m)| (t, m.as_slice()));
                let limits = &self.cfg.limits;
                let report = score::run(&join, ids, &a.job_id, &plan, aligned, limits, rng).await?;
                return Ok(report.encode_to_vec());
            }
            JoinWork::Stats => {}
        }
        self.progress(0.5, Some(transport)).await;
        let max_rows = self.cfg.limits.max_rows();
        crate::stats::run_joined(&join, &a.job_id, ids, &plan, aligned, fixed, max_rows, rng).await
    }

    /// The `train` protocol on aligned rows, with progress reports every 200 ms at most; stages
    /// this party's part of the model. Returns the sealed report's plaintext.
    async fn train(
        &self,
        transport: &DataChannel,
        ids: &[String],
        plan: &TrainPlan,
        aligned: Option<&(JoinTable, Vec<usize>)>,
        rng: &mut ChaCha20Rng,
        staged: &mut Staged,
    ) -> Result<Vec<u8>, PartyError> {
        let a = &self.assignment;
        let (tx, reporter) = self.progress_side_task(0.3);
        let outcome = train::run(
            transport,
            ids,
            &a.job_id,
            plan,
            aligned.map(|(t, m)| (t, m.as_slice())),
            &self.cfg.limits,
            rng,
            |done, total| {
                tx.send_replace(0.3 + 0.55 * done as f64 / total.max(1) as f64);
            },
        )
        .await;
        drop(tx);
        let _ = reporter.await;
        let outcome = outcome?;
        let cfg = self.cfg.clone();
        let mut model = outcome.model;
        model.analyst.clone_from(&self.analyst);
        let (model_files, path) = tokio::task::spawn_blocking(move || {
            let mut files = Staged::default();
            let path = model.stage(&cfg, &mut files)?;
            Ok::<_, PartyError>((files, path))
        })
        .await
        .map_err(|_| PartyError::Aborted("storing the model panicked".into()))??;
        staged.absorb(model_files);
        tracing::info!(job = %a.job_id, model = %plan.model_id, path = %path.display(), "model share staged");
        Ok(outcome.report.encode_to_vec())
    }

    /// Uploads this party's signed, sealed share (an encoded `SignedResult`) in chunks.
    async fn upload(&self, upload: &[u8]) -> Result<(), PartyError> {
        let a = &self.assignment;
        let pieces: Vec<Vec<u8>> = if upload.is_empty() {
            vec![Vec::new()]
        } else {
            upload
                .chunks(treaty_proto::CHUNK_SIZE)
                .map(<[u8]>::to_vec)
                .collect()
        };
        let count = pieces.len();
        let chunks: Vec<pb::ResultChunk> = pieces
            .into_iter()
            .enumerate()
            .map(|(i, data)| pb::ResultChunk {
                job_id: a.job_id.clone(),
                party: self.cfg.id.clone(),
                index: i as u32,
                last: i + 1 == count,
                data,
            })
            .collect();
        let mut c = self.coordinator.clone();
        c.upload_result(tokio_stream::iter(chunks)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use treaty_trust::identity::sign_submission;

    const NOW: i64 = 1_800_000_000_000;

    fn party_cfg(dir: &std::path::Path, policy: Option<&str>) -> PartyConfig {
        let mut cfg: PartyConfig = toml::from_str(
            "id = \"hospital\"\nlisten = \"127.0.0.1:1\"\ncoordinator = \"x\"\ninsecure = true",
        )
        .unwrap();
        cfg.base_dir = dir.to_path_buf();
        if let Some(text) = policy {
            std::fs::write(dir.join("policy.toml"), text).unwrap();
            cfg.policy = Some("policy.toml".into());
        }
        cfg
    }

    fn key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[3; 32])
    }

    fn policy() -> String {
        format!(
            "[[analysts]]\nname = \"ana\"\nkey = \"{}\"\n\n[[rules]]\nanalysts = [\"ana\"]\n\
             jobs = [\"psi\"]\nrecipients = [\"*\"]\n",
            hex::encode(key().verifying_key().to_bytes())
        )
    }

    /// A PSI job between hospital (no dataset named here: the policy refuses nothing about
    /// columns) and insurer, signed by "ana" at `signed_at`.
    fn assignment(signed_at: i64) -> pb::JobAssignment {
        let spec = pb::JobSpec {
            inputs: vec![
                pb::JobInput {
                    party: "hospital".into(),
                    dataset: String::new(),
                },
                pb::JobInput {
                    party: "insurer".into(),
                    dataset: String::new(),
                },
            ],
            output: Some(pb::JobOutput {
                recipient: "ana".into(),
                recipient_public_key: vec![1; 32],
            }),
            computation: Some(job_spec::Computation::Psi(pb::PsiJob::default())),
            ..Default::default()
        };
        let signed = sign_submission(spec.clone(), "ana", &key(), [5; 16], signed_at);
        let id = verify_submission(&signed).unwrap().job_id();
        pb::JobAssignment {
            job_id: id,
            spec: Some(normalize_spec(spec)),
            peers: ["hospital", "insurer"]
                .iter()
                .enumerate()
                .map(|(i, p)| pb::JobPeer {
                    party: (*p).into(),
                    index: i as u32,
                    ..Default::default()
                })
                .collect(),
            submission: Some(signed),
        }
    }

    fn reason(a: &Admission) -> String {
        a.verdict.as_ref().unwrap_err().to_string()
    }

    #[test]
    fn the_signature_policy_and_datasets_decide_in_that_order() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = party_cfg(dir.path(), Some(&policy()));
        let a = assignment(NOW);
        // Admitted by the policy; then the dataset check refuses (no dataset named).
        let ok = admit(&cfg, &a, None, |_| false, NOW);
        assert_eq!(ok.analyst, "ana");
        assert_ne!(ok.policy_sha256, [0; 32]);
        assert!(
            matches!(&ok.verdict, Err(PartyError::Refused(Refusal::UnknownDataset { dataset })) if dataset.is_empty()),
            "{}",
            reason(&ok)
        );

        let cases: Vec<(pb::JobAssignment, &str)> = vec![
            (
                pb::JobAssignment {
                    submission: None,
                    ..a.clone()
                },
                "no signed submission",
            ),
            (
                {
                    // A coordinator that changes the job after the analyst signed it.
                    let mut b = a.clone();
                    if let Some(s) = b.spec.as_mut() {
                        s.output = Some(pb::JobOutput {
                            recipient: "mallory".into(),
                            recipient_public_key: vec![2; 32],
                        });
                    }
                    b
                },
                "differs from the one the analyst signed",
            ),
            (
                pb::JobAssignment {
                    job_id: "job-0000000000000000".into(),
                    ..a.clone()
                },
                "job id is not the one",
            ),
            (
                {
                    let mut b = a.clone();
                    if let Some(s) = b.submission.as_mut() {
                        s.signature[0] ^= 1;
                    }
                    b
                },
                "signature does not verify",
            ),
            (assignment(NOW - 25 * 3600 * 1000), "signed 90000 s ago"),
        ];
        for (b, want) in cases {
            let got = admit(&cfg, &b, None, |_| false, NOW);
            assert!(reason(&got).contains(want), "{want}: {}", reason(&got));
            assert_eq!(
                got.policy_sha256, [0; 32],
                "{want}: the policy was not consulted"
            );
        }
        let replay = admit(&cfg, &a, None, |id| id == a.job_id, NOW);
        assert!(reason(&replay).contains("a replayed submission"));

        let none = admit(&party_cfg(dir.path(), None), &a, None, |_| false, NOW);
        assert!(reason(&none).contains("has no policy configured"));
        let broken = party_cfg(dir.path(), Some("[[rules]]\nnonsense"));
        let got = admit(&broken, &a, None, |_| false, NOW);
        assert!(
            reason(&got).contains("policy file is unusable"),
            "{}",
            reason(&got)
        );
        assert!(
            !reason(&got).contains("nonsense"),
            "details stay with the operator"
        );
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    /// The coordinator refuses a filter on a record id column; the party does too, on its own
    /// dataset's declaration (a coordinator that lets one through does not single out a row).
    #[test]
    fn a_filter_on_the_id_column_is_refused_here() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.csv"), "claim_id,amount\na,1\n").unwrap();
        let mut cfg: PartyConfig = toml::from_str(
            "id = \"hospital\"\nlisten = \"127.0.0.1:1\"\ncoordinator = \"x\"\ninsecure = true\n\
             [[datasets]]\nname = \"claims\"\npath = \"c.csv\"\nid_column = \"claim_id\"\n\
             columns = [{ name = \"claim_id\", type = \"string\" }, { name = \"amount\", type = \"float\" }]",
        )
        .unwrap();
        cfg.base_dir = dir.path().to_path_buf();
        let filter = |column: &str| pb::Filter {
            column: column.into(),
            predicate: Some(pb::filter::Predicate::Equals("a".into())),
        };
        let assignment = |f: pb::Filter| pb::JobAssignment {
            job_id: "job-1".into(),
            spec: Some(pb::JobSpec {
                inputs: ["hospital", "insurer"]
                    .map(|p| pb::JobInput {
                        party: p.into(),
                        dataset: "claims".into(),
                    })
                    .to_vec(),
                computation: Some(job_spec::Computation::Stats(pb::StatsJob {
                    columns: vec!["amount".into()],
                    filters: vec![f],
                    ..Default::default()
                })),
                ..Default::default()
            }),
            peers: ["hospital", "insurer"]
                .iter()
                .enumerate()
                .map(|(i, p)| pb::JobPeer {
                    party: (*p).into(),
                    index: i as u32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        check_assignment(&cfg, &assignment(filter("amount"))).unwrap();
        match check_assignment(&cfg, &assignment(filter("claim_id"))) {
            Err(PartyError::Refused(Refusal::FilterOnIds { column })) => {
                assert_eq!(column, "claim_id");
            }
            other => panic!("a filter on the id column passed: {other:?}"),
        }
    }
}

#[cfg(test)]
mod score_policy_tests {
    use super::*;

    /// A `score` job of a stored model names no columns; the policy still sees the model's
    /// features at this party.
    #[test]
    fn a_stored_models_features_are_what_a_score_job_touches() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg: PartyConfig = toml::from_str(
            "id = \"hospital\"\nlisten = \"127.0.0.1:1\"\ncoordinator = \"x\"\ninsecure = true",
        )
        .unwrap();
        cfg.base_dir = dir.path().to_path_buf();
        StoredModel {
            model_id: "m1".into(),
            job_id: "job-1".into(),
            kind: "logistic".into(),
            frac_bits: 16,
            intercept: true,
            features: vec!["hospital.age".into(), "bank.income".into()],
            parties: vec!["hospital".into(), "insurer".into(), "bank".into()],
            index: 0,
            share_a: vec![0; 3],
            share_b: vec![0; 3],
            standardizers: Vec::new(),
            analyst: "bob".into(),
        }
        .save(&cfg)
        .unwrap();
        let spec = pb::JobSpec {
            join: Some(pb::JoinSpec {
                id_columns: [("hospital".to_string(), "pid".to_string())].into(),
                psi_job: String::new(),
            }),
            computation: Some(job_spec::Computation::Score(pb::ScoreJob {
                model_id: "m1".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let req = Request::of(&with_stored_features(&cfg, &spec), "hospital", "risk", None);
        assert_eq!(req.columns, ["age", "pid"]);
        // Features the spec names instead of the model's do not hide the model's.
        let mut named = spec.clone();
        if let Some(job_spec::Computation::Score(s)) = named.computation.as_mut() {
            s.features = vec!["hospital.postcode".into()];
        }
        let req = Request::of(
            &with_stored_features(&cfg, &named),
            "hospital",
            "risk",
            None,
        );
        assert_eq!(req.columns, ["age", "pid"]);
        // Who made the model is what the policy's `reuse` rule sees.
        assert_eq!(
            reuses(&cfg, &spec),
            [Reuse {
                what: "model \"m1\"".into(),
                origin: "bob".into()
            }]
        );
        // Another model id: nothing stored, nothing added (the dataset check refuses later).
        let mut other = spec.clone();
        if let Some(job_spec::Computation::Score(s)) = other.computation.as_mut() {
            s.model_id = "m2".into();
        }
        let req = Request::of(
            &with_stored_features(&cfg, &other),
            "hospital",
            "risk",
            None,
        );
        assert_eq!(req.columns, ["pid"]);
    }
}
