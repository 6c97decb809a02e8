//! The party node's life: serve the data plane, register with the coordinator, follow the job
//! stream (assign → check → accept/reject; start → execute; abort → cancel), and reconnect with
//! back-off when the coordinator goes away (running jobs are aborted: their results could no
//! longer be delivered).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use treaty_proto::sever::Sever;
use treaty_proto::v1::{
    self as pb, coordinator_client::CoordinatorClient, job_report, party_event,
};
use treaty_trust::client::{Dial, connect};
use treaty_trust::tls::TlsIdentity;

use crate::PartyError;
use crate::approval;
use crate::config::PartyConfig;
use crate::job::{JobRun, Reporter, admit, checkpoint};
use crate::link::{LinkHub, PartyLinkService, data_plane_incoming, data_plane_server};
use crate::policy::Terms;
use crate::refusal::Refusal;
use prost::Message;
use sha2::{Digest, Sha256};
use treaty_audit::AuditFile;
use treaty_audit::{AuditEvent, AuditRecord, Digest32, Outcome};
use treaty_trust::roster::Roster;
use treaty_trust::{Role, TrustError};

/// How long the data plane's streams get to end at shutdown before their connections are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

struct ActiveJob {
    assignment: pb::JobAssignment,
    /// The analyst who signed it.
    analyst: String,
    abort: CancellationToken,
    terms: Terms,
    /// Set once this party admitted the job: its policy accepted it and, where the policy asks
    /// for one, a human approved it. Only an admitted job may start.
    admitted: bool,
    /// Set once the job runs (it then writes its own end to the audit log).
    started: bool,
}

/// A running party node.
struct Node {
    cfg: Arc<PartyConfig>,
    audit: Arc<AuditFile>,
    tls: Option<Arc<TlsIdentity>>,
    /// The roster this node's operator accepted: who its peers and its coordinator are.
    roster: Option<Arc<Roster>>,
    hub: Arc<LinkHub>,
    jobs: Mutex<HashMap<String, ActiveJob>>,
    /// Every job id this node ever received (from its audit log): a replayed submission is
    /// refused.
    seen: Mutex<HashSet<String>>,
}

impl Node {
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, ActiveJob>> {
        // Single insert/remove updates: a poisoned map is still consistent.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an event of `job` to the audit log (a failure to write is logged).
    fn audit_event(&self, job: &str, event: AuditEvent) {
        if let Err(e) = self.audit.record(Some(job), event) {
            tracing::warn!(job = %job, error = %e, "audit log write failed");
        }
    }

    /// Aborts every job. A running job records its own end; one that never started (accepted,
    /// or waiting for approval) is recorded here, and the log's head signed (it reaches the
    /// coordinator with the next checkpoint).
    fn abort_all(&self, reason: &str) {
        let jobs: Vec<(String, ActiveJob)> = self.jobs().drain().collect();
        let mut unstarted = false;
        for (id, job) in jobs {
            tracing::warn!(job = %id, reason, "aborting job");
            job.abort.cancel();
            if !job.started {
                self.audit_event(&id, aborted_before_start(reason));
                unstarted = true;
            }
        }
        if unstarted && let Err(e) = self.audit.checkpoint() {
            tracing::warn!(error = %e, "audit checkpoint failed");
        }
    }
}

/// Runs a party node: the data plane on `listener` and the coordinator session, until `shutdown`
/// resolves. Returns an error only for problems a retry cannot fix (bad identity, duplicate id).
pub async fn run(
    cfg: PartyConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), PartyError> {
    let tls = cfg.tls_identity()?.map(Arc::new);
    if tls.is_none() {
        tracing::warn!(
            "party {} runs WITHOUT TLS (--insecure): development only",
            cfg.id
        );
    }
    let token = CancellationToken::new();
    {
        let token = token.clone();
        tokio::spawn(async move {
            shutdown.await;
            token.cancel();
        });
    }
    let hub = Arc::new(LinkHub::default());
    // The policy is re-read for every job; a broken one stops the start, where the operator
    // sees it, rather than refusing every job later.
    match &cfg.policy {
        Some(path) => {
            crate::policy::Policy::load(&cfg.resolve(path))?;
        }
        None => tracing::warn!(
            "party {} has no policy file (`policy` in its config): it refuses every job",
            cfg.id
        ),
    }
    let audit = Arc::new(crate::audit_log::open(&cfg)?);
    // Files that jobs staged when this node stopped mid-job never count (see `artefact`).
    crate::artefact::sweep(&cfg.state_dir());
    // One pass over the log at start: the roster last recorded and every job id received.
    let records = audit.records();
    let roster = cfg.load_roster()?.map(Arc::new);
    if let Some(roster) = &roster {
        let pinned = roster.party(&cfg.id).and_then(|m| m.audit_key);
        if pinned != Some(audit.public_key()) {
            return Err(PartyError::Config {
                path: cfg.state_dir().join("audit"),
                reason: format!(
                    "the roster pins another audit key for {:?} than this node's \
                     (treaty roster entry --config prints this node's)",
                    cfg.id
                ),
            });
        }
        tracing::info!(
            version = roster.version,
            sha256 = %hex::encode(roster.sha256),
            "running with the accepted roster"
        );
        record_roster(&audit, &records, roster);
    }
    let seen = records
        .into_iter()
        .filter(|r| matches!(r.entry.event, AuditEvent::JobReceived { .. }))
        .filter_map(|r| r.entry.job)
        .collect();
    let node = Arc::new(Node {
        audit,
        roster: roster.clone(),
        seen: Mutex::new(seen),
        cfg: Arc::new(cfg),
        tls,
        hub: hub.clone(),
        jobs: Mutex::new(HashMap::new()),
    });

    // Data plane.
    // With a roster, the data plane trusts the CAs of the roster's parties only.
    let data_tls = match (&node.tls, &roster) {
        (Some(tls), Some(r)) => Some(
            tls.with_ca(r.ca_bundle(&[Role::Party]))
                .map_err(TrustError::from)?,
        ),
        (tls, _) => tls.as_deref().cloned(),
    };
    let sever = Sever::new();
    let incoming = {
        let sever = sever.clone();
        data_plane_incoming(listener).map(move |conn| conn.map(|conn| sever.wrap(conn)))
    };
    let data_plane = data_plane_server(data_tls.as_ref())?
        .add_service(PartyLinkService::new(node.cfg.id.clone(), hub, roster).into_server())
        .serve_with_incoming_shutdown(incoming, token.clone().cancelled_owned());
    let data_plane = tokio::spawn(data_plane);

    // Control plane, with reconnects.
    let mut backoff = Duration::from_millis(200);
    let outcome = loop {
        let session = tokio::select! {
            r = session(&node) => r,
            () = token.cancelled() => break Ok(()),
        };
        node.abort_all("lost the coordinator");
        match session {
            Err(e) if is_fatal(&e) => break Err(e),
            Err(e) => tracing::warn!(error = %e, "coordinator session ended"),
            Ok(()) => {
                tracing::warn!("coordinator closed the job stream");
                backoff = Duration::from_millis(200);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = token.cancelled() => break Ok(()),
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    };
    node.abort_all("the node is shutting down");
    token.cancel();
    // Parked streams end now; whatever a peer still holds open is cut after the grace.
    node.hub.clear();
    sever.after(SHUTDOWN_GRACE);
    let _ = data_plane.await;
    outcome
}

fn is_fatal(e: &PartyError) -> bool {
    matches!(e, PartyError::Rpc(s) if matches!(
        s.code(),
        tonic::Code::AlreadyExists | tonic::Code::PermissionDenied | tonic::Code::InvalidArgument
    ))
}

async fn session(node: &Arc<Node>) -> Result<(), PartyError> {
    let cfg = &node.cfg;
    // With a roster, the coordinator is the roster's: its CA alone is trusted, under its name.
    let coordinator = node.roster.as_ref().and_then(|r| r.coordinator());
    let tls = match (&node.tls, coordinator) {
        (Some(tls), Some(c)) => Some(tls.with_ca(&c.ca_pem).map_err(TrustError::from)?),
        (tls, _) => tls.as_deref().cloned(),
    };
    let mut client = connect(Dial {
        url: &cfg.coordinator,
        tls: tls.as_ref(),
        server_name: coordinator.map_or(&cfg.coordinator_name, |c| &c.identity.name),
    })
    .await?;
    let info = pb::PartyInfo {
        id: cfg.id.clone(),
        endpoint: cfg.advertised_endpoint(),
        tls_cert_sha256: node
            .tls
            .as_ref()
            .map(|t| t.cert_sha256().to_vec())
            .unwrap_or_default(),
        datasets: cfg.published_schemas(),
        audit_public_key: node.audit.public_key().to_bytes().to_vec(),
        ..Default::default()
    };
    client
        .register_party(pb::RegisterPartyRequest { party: Some(info) })
        .await?;
    let mut events = client
        .subscribe(pb::SubscribeRequest {
            party: cfg.id.clone(),
        })
        .await?
        .into_inner();
    tracing::info!(party = %cfg.id, "registered and subscribed");
    while let Some(event) = events.message().await? {
        match event.event {
            Some(party_event::Event::Assign(a)) => on_assign(node, &client, a).await,
            Some(party_event::Event::Start(s)) => on_start(node, &client, &s.job_id).await,
            Some(party_event::Event::Abort(a)) => {
                let removed = node.jobs().remove(&a.job_id);
                if let Some(job) = removed {
                    let reason = treaty_proto::text::peer_text(&a.reason);
                    tracing::warn!(job = %a.job_id, %reason, "job aborted by the coordinator");
                    job.abort.cancel();
                    if !job.started {
                        node.audit_event(&a.job_id, aborted_before_start(&reason));
                        checkpoint(&node.audit, &client).await;
                    }
                }
            }
            None => {}
        }
    }
    Ok(())
}

/// Records the roster this node runs with, once per version it is first seen with.
fn record_roster(audit: &AuditFile, records: &[AuditRecord], roster: &Roster) {
    let sha256 = Digest32(roster.sha256);
    let known = records.iter().rev().find_map(|r| match &r.entry.event {
        AuditEvent::RosterAccepted { sha256, .. } => Some(*sha256),
        _ => None,
    });
    if known != Some(sha256) {
        let event = AuditEvent::RosterAccepted {
            version: roster.version,
            sha256,
            members: roster.members().iter().map(|m| m.identity.uri()).collect(),
        };
        if let Err(e) = audit
            .record(None, event)
            .and_then(|_| audit.checkpoint().map(|_| ()))
        {
            tracing::warn!(error = %e, "audit log write failed");
        }
    }
}

/// The end of a job aborted before its protocol started.
fn aborted_before_start(reason: &str) -> AuditEvent {
    AuditEvent::Completed {
        outcome: Outcome::Aborted,
        rounds: 0,
        reason: reason.to_string(),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Refuses a job: tells the coordinator why (the analyst sees it), then signs the audit log's
/// head (the refusal is the job's last entry here).
async fn refuse(node: &Node, client: &CoordinatorClient<Channel>, job_id: &str, reason: String) {
    Reporter::new(client, job_id, &node.cfg.id)
        .report(job_report::Report::Rejected(reason))
        .await;
    checkpoint(&node.audit, client).await;
}

/// Signature, policy and datasets decide; the decision goes to the audit log, then to the
/// coordinator. A job whose rule asks for a human approval waits for one in a side task.
async fn on_assign(node: &Arc<Node>, client: &CoordinatorClient<Channel>, a: pb::JobAssignment) {
    let job_id = a.job_id.clone();
    let admission = {
        let seen = node.seen();
        admit(
            &node.cfg,
            &a,
            node.roster.as_deref(),
            |id| seen.contains(id),
            now_ms(),
        )
    };
    node.seen().insert(job_id.clone());
    let spec = a.spec.clone().unwrap_or_default();
    // The receipt is on disk (appended and synced) before anything is decided: the replay check
    // of every later start rests on it.
    let received = node.audit.record(
        Some(&job_id),
        AuditEvent::JobReceived {
            kind: treaty_job::Kind::of(&spec),
            spec_sha256: Digest32(Sha256::digest(spec.encode_to_vec()).into()),
            analyst: admission.analyst.clone(),
            submission_sha256: Digest32(admission.submission_sha256),
        },
    );
    if let Err(e) = received {
        tracing::error!(job = %job_id, error = %e, "cannot record a job in the audit log: refused");
        let refusal = Refusal::AuditUnavailable {
            party: node.cfg.id.clone(),
        };
        refuse(node, client, &job_id, refusal.to_string()).await;
        return;
    }
    node.audit_event(
        &job_id,
        AuditEvent::PolicyDecision {
            admitted: admission.verdict.is_ok(),
            policy_sha256: Digest32(admission.policy_sha256),
            reason: admission
                .verdict
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default(),
            needs_approval: admission.verdict.as_ref().is_ok_and(|t| t.approval),
        },
    );
    let party = node.cfg.id.clone();
    let reporter = Reporter::new(client, &job_id, &party);
    let terms = match admission.verdict {
        Ok(terms) => terms,
        Err(e) => {
            tracing::warn!(job = %job_id, reason = %e, "job rejected");
            refuse(node, client, &job_id, e.to_string()).await;
            return;
        }
    };
    let abort = CancellationToken::new();
    let approval = terms.approval;
    let pending = approval.then(|| approval::PendingApproval {
        job: job_id.clone(),
        name: spec.name.clone(),
        analyst: admission.analyst.clone(),
        kind: admission.request.kind.clone(),
        parties: a.peers.iter().map(|p| p.party.clone()).collect(),
        dataset: admission.request.dataset.clone(),
        columns: admission.request.columns.clone(),
        recipient: spec
            .output
            .as_ref()
            .map(|o| o.recipient.clone())
            .unwrap_or_default(),
        recipient_key: hex::encode(&admission.request.recipient_key),
        policy_sha256: hex::encode(terms.policy_sha256),
        received_at_ms: now_ms() as u64,
    });
    let policy_sha256 = terms.policy_sha256.to_vec();
    node.jobs().insert(
        job_id.clone(),
        ActiveJob {
            assignment: a,
            analyst: admission.analyst.clone(),
            abort: abort.clone(),
            terms,
            admitted: !approval,
            started: false,
        },
    );
    let Some(pending) = pending else {
        tracing::info!(job = %job_id, "job accepted");
        let admitted = pb::Admission {
            policy_sha256,
            approved_by: String::new(),
        };
        reporter
            .report(job_report::Report::Accepted(admitted))
            .await;
        return;
    };
    if let Err(e) = approval::request(&node.cfg, &pending) {
        tracing::error!(job = %job_id, error = %e, "could not record the approval request");
        node.jobs().remove(&job_id);
        let reason = format!("{party} could not record the approval request");
        refuse(node, client, &job_id, reason).await;
        return;
    }
    tracing::info!(job = %job_id, "job waits for approval: treaty approve {job_id}");
    let note = format!("waiting for an operator at {party} to approve it");
    reporter
        .report(job_report::Report::AwaitingApproval(note))
        .await;
    let (node, client) = (node.clone(), client.clone());
    tokio::spawn(async move {
        let decision = approval::wait(&node.cfg, &job_id, &abort).await;
        let decision = match decision {
            Ok(Some(d)) => d,
            // Aborted while waiting: the abort handler logged it.
            Ok(None) => return,
            Err(e) => {
                tracing::error!(job = %job_id, error = %e, "reading the approval decision");
                approval::Decision {
                    approved: false,
                    by: party.clone(),
                    reason: "the approval decision could not be read".into(),
                    at_ms: now_ms() as u64,
                }
            }
        };
        node.audit_event(
            &job_id,
            AuditEvent::Approval {
                by: decision.by.clone(),
                approved: decision.approved,
                reason: decision.reason.clone(),
                policy_sha256: Digest32(policy_sha256.as_slice().try_into().unwrap_or_default()),
            },
        );
        if decision.approved {
            tracing::info!(job = %job_id, by = %decision.by, "job approved");
            // Admitted before the coordinator hears of it: its start may follow at once.
            match node.jobs().get_mut(&job_id) {
                Some(job) => job.admitted = true,
                // Aborted while the decision was written: nothing to accept.
                None => return,
            }
            let admitted = pb::Admission {
                policy_sha256,
                approved_by: decision.by,
            };
            reporter
                .report(job_report::Report::Accepted(admitted))
                .await;
        } else {
            tracing::warn!(job = %job_id, by = %decision.by, "job rejected by an operator");
            node.jobs().remove(&job_id);
            let reason = format!(
                "rejected at {party} by {}: {}",
                decision.by, decision.reason
            );
            refuse(&node, &client, &job_id, reason).await;
        }
    });
}

/// Runs a job the coordinator says to start — only one this party admitted (and, where its
/// policy asks, a human approved). A start for anything else fails the job here: a coordinator
/// that skips a party's approval gets nothing from it.
async fn on_start(node: &Arc<Node>, client: &CoordinatorClient<Channel>, job_id: &str) {
    let started = {
        let mut jobs = node.jobs();
        match jobs.get_mut(job_id) {
            Some(j) if j.admitted => {
                j.started = true;
                Ok((
                    j.assignment.clone(),
                    j.abort.clone(),
                    j.terms.clone(),
                    j.analyst.clone(),
                ))
            }
            Some(_) => Err(jobs.remove(job_id)),
            None => Err(None),
        }
    };
    let (assignment, abort, terms, analyst) = match started {
        Ok(run) => run,
        Err(None) => {
            tracing::warn!(job = %job_id, "start for a job this party never admitted");
            return;
        }
        Err(Some(job)) => {
            tracing::error!(
                job = %job_id,
                "the coordinator started a job before this party admitted it: refused"
            );
            job.abort.cancel();
            let reason = format!(
                "{} had not admitted the job (it waits for approval there) when the coordinator \
                 started it",
                node.cfg.id
            );
            node.audit_event(job_id, aborted_before_start(&reason));
            Reporter::new(client, job_id, &node.cfg.id)
                .report(job_report::Report::Failed(reason))
                .await;
            checkpoint(&node.audit, client).await;
            return;
        }
    };
    let run = JobRun {
        cfg: node.cfg.clone(),
        roster: node.roster.clone(),
        analyst,
        audit: node.audit.clone(),
        rounds: Default::default(),
        tls: node.tls.clone(),
        hub: node.hub.clone(),
        coordinator: client.clone(),
        assignment,
        terms,
        abort,
    };
    let node = node.clone();
    let job_id = job_id.to_string();
    tokio::spawn(async move {
        run.execute().await;
        node.jobs().remove(&job_id);
    });
}
