//! The party node's life: serve the data plane, register with the coordinator, follow the job
//! stream (assign → check → accept/reject; start → execute; abort → cancel), and reconnect with
//! back-off when the coordinator goes away (running jobs are aborted: their results could no
//! longer be delivered).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use treaty_coordinator::client::{Dial, connect};
use treaty_coordinator::tls::TlsIdentity;
use treaty_proto::v1::{
    self as pb, coordinator_client::CoordinatorClient, job_report, party_event,
};

use crate::PartyError;
use crate::audit_log::PartyAudit;
use crate::config::PartyConfig;
use crate::job::{JobRun, check_assignment};
use crate::link::{LinkHub, PartyLinkService, data_plane_incoming, data_plane_server};

struct ActiveJob {
    assignment: pb::JobAssignment,
    abort: CancellationToken,
}

/// A running party node.
struct Node {
    cfg: Arc<PartyConfig>,
    audit: Arc<PartyAudit>,
    tls: Option<Arc<TlsIdentity>>,
    hub: Arc<LinkHub>,
    jobs: Mutex<HashMap<String, ActiveJob>>,
}

impl Node {
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, ActiveJob>> {
        // Single insert/remove updates: a poisoned map is still consistent.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn abort_all(&self, reason: &str) {
        for (id, job) in self.jobs().drain() {
            tracing::warn!(job = %id, reason, "aborting job");
            job.abort.cancel();
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
    let audit = Arc::new(PartyAudit::open(&cfg)?);
    let node = Arc::new(Node {
        audit,
        cfg: Arc::new(cfg),
        tls,
        hub: hub.clone(),
        jobs: Mutex::new(HashMap::new()),
    });

    // Data plane.
    let data_plane = data_plane_server(node.tls.as_deref())?
        .add_service(PartyLinkService::new(node.cfg.id.clone(), hub).into_server())
        .serve_with_incoming_shutdown(
            data_plane_incoming(listener),
            token.clone().cancelled_owned(),
        );
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
    let mut client = connect(Dial {
        url: &cfg.coordinator,
        tls: node.tls.as_deref(),
        server_name: &cfg.coordinator_name,
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
            Some(party_event::Event::Start(s)) => on_start(node, &client, &s.job_id),
            Some(party_event::Event::Abort(a)) => {
                if let Some(job) = node.jobs().remove(&a.job_id) {
                    tracing::warn!(job = %a.job_id, reason = %a.reason, "job aborted by the coordinator");
                    job.abort.cancel();
                }
            }
            None => {}
        }
    }
    Ok(())
}

async fn on_assign(node: &Arc<Node>, client: &CoordinatorClient<Channel>, a: pb::JobAssignment) {
    let job_id = a.job_id.clone();
    let report = match check_assignment(&node.cfg, &a) {
        Ok(()) => {
            node.jobs().insert(
                job_id.clone(),
                ActiveJob {
                    assignment: a,
                    abort: CancellationToken::new(),
                },
            );
            tracing::info!(job = %job_id, "job accepted");
            job_report::Report::Accepted(pb::Empty {})
        }
        Err(e) => {
            tracing::warn!(job = %job_id, reason = %e, "job rejected");
            job_report::Report::Rejected(e.to_string())
        }
    };
    let mut c = client.clone();
    if let Err(e) = c
        .report_job(pb::JobReport {
            job_id,
            party: node.cfg.id.clone(),
            report: Some(report),
        })
        .await
    {
        tracing::warn!(error = %e.message(), "could not answer an assignment");
    }
}

fn on_start(node: &Arc<Node>, client: &CoordinatorClient<Channel>, job_id: &str) {
    let Some((assignment, abort)) = node
        .jobs()
        .get(job_id)
        .map(|j| (j.assignment.clone(), j.abort.clone()))
    else {
        tracing::warn!(job = %job_id, "start for an unknown job");
        return;
    };
    let run = JobRun {
        cfg: node.cfg.clone(),
        audit: node.audit.clone(),
        rounds: Default::default(),
        tls: node.tls.clone(),
        hub: node.hub.clone(),
        coordinator: client.clone(),
        assignment,
        abort,
    };
    let node = node.clone();
    let job_id = job_id.to_string();
    tokio::spawn(async move {
        run.execute().await;
        node.jobs().remove(&job_id);
    });
}
