#![allow(clippy::unwrap_used)]
//! A malicious coordinator against a real party node: a fake coordinator speaking the real
//! control-plane protocol over mutual TLS (with the deployment's coordinator certificate) sends
//! the node assignments the analyst never signed for, and a stranger dials the node's data plane
//! with a certificate that is not the peer it claims to be.
//!
//! Every test waits for the node's own answer (a report, or the refused stream): no verdict
//! depends on timing. `PATIENCE` only bounds how long a broken run takes to fail.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use treaty_job::validate::normalize_spec;
use treaty_mpc::output::RecipientSecretKey;
use treaty_party::PartyConfig;
use treaty_proto::v1::{
    self as pb, coordinator_server, frame, job_report, party_event, party_link_client,
};
use treaty_sandbox::demo::{self, DemoOptions};
use treaty_sandbox::sandbox::{Sandbox, SandboxOptions};
use treaty_trust::client::{Dial, endpoint};
use treaty_trust::identity::verify_submission;

/// Upper bound on anything a test waits for.
const PATIENCE: Duration = Duration::from_secs(60);

type Stream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send>>;

/// What the fake coordinator saw, and the handle to push events to the subscribed party.
#[derive(Default)]
struct Seen {
    registered: BTreeMap<String, pb::PartyInfo>,
    events: Option<mpsc::Sender<Result<pb::PartyEvent, Status>>>,
}

/// A coordinator that does what the test says, and forwards every job report to it.
#[derive(Clone)]
struct FakeCoordinator {
    seen: Arc<Mutex<Seen>>,
    reports: mpsc::UnboundedSender<pb::JobReport>,
    subscribed: mpsc::UnboundedSender<String>,
}

#[tonic::async_trait]
impl coordinator_server::Coordinator for FakeCoordinator {
    async fn register_party(
        &self,
        request: Request<pb::RegisterPartyRequest>,
    ) -> Result<Response<pb::RegisterPartyResponse>, Status> {
        let info = request.into_inner().party.unwrap_or_default();
        self.seen
            .lock()
            .unwrap()
            .registered
            .insert(info.id.clone(), info);
        Ok(Response::new(pb::RegisterPartyResponse::default()))
    }

    type SubscribeStream = Stream<pb::PartyEvent>;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        self.seen.lock().unwrap().events = Some(tx);
        let _ = self.subscribed.send(request.into_inner().party);
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn report_job(
        &self,
        request: Request<pb::JobReport>,
    ) -> Result<Response<pb::JobReportAck>, Status> {
        let _ = self.reports.send(request.into_inner());
        Ok(Response::new(pb::JobReportAck { r#continue: true }))
    }

    async fn upload_result(
        &self,
        _request: Request<Streaming<pb::ResultChunk>>,
    ) -> Result<Response<pb::UploadResultResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn list_parties(
        &self,
        _request: Request<pb::ListPartiesRequest>,
    ) -> Result<Response<pb::ListPartiesResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn submit_job(
        &self,
        _request: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_job(
        &self,
        _request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn list_jobs(
        &self,
        _request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn cancel_job(
        &self,
        _request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        Err(Status::unimplemented("fake"))
    }

    type WatchJobStream = Stream<pb::Job>;

    async fn watch_job(
        &self,
        _request: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        Err(Status::unimplemented("fake"))
    }

    type FetchResultStream = Stream<pb::ResultChunk>;

    async fn fetch_result(
        &self,
        _request: Request<pb::FetchResultRequest>,
    ) -> Result<Response<Self::FetchResultStream>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn record_audit_head(
        &self,
        _request: Request<pb::AuditHead>,
    ) -> Result<Response<pb::RecordAuditHeadResponse>, Status> {
        Ok(Response::new(pb::RecordAuditHeadResponse {}))
    }

    async fn get_audit_registry(
        &self,
        _request: Request<pb::GetAuditRegistryRequest>,
    ) -> Result<Response<pb::AuditRegistry>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

/// The deployment (a sandbox's PKI, analyst and data), a fake coordinator, and one real party
/// node ("hospital") that registered and subscribed with it.
struct Rig {
    _dir: TempDir,
    sandbox: Sandbox,
    seen: Arc<Mutex<Seen>>,
    reports: mpsc::UnboundedReceiver<pb::JobReport>,
    opts: DemoOptions,
    cfg: PartyConfig,
    stop: CancellationToken,
}

impl Rig {
    /// Starts the rig; `policy` (rules) becomes the hospital's policy.
    async fn start(policy_rules: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = DemoOptions::new(dir.path().join("data"));
        opts.rows = 50;
        opts.parties = ["hospital", "insurer"].map(String::from).to_vec();
        let data = demo::write_data(&opts).unwrap();
        let parties = opts.parties.clone();
        let sandbox = Sandbox::start(SandboxOptions::new(dir.path().join("sandbox")), &parties)
            .await
            .unwrap();

        // The fake coordinator, with the deployment's coordinator certificate.
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let (subscribed_tx, mut subscribed) = mpsc::unbounded_channel();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let fake = FakeCoordinator {
            seen: seen.clone(),
            reports: reports_tx,
            subscribed: subscribed_tx,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let tls = sandbox.identity("coordinator").unwrap().unwrap();
        let stop = CancellationToken::new();
        let server = tonic::transport::Server::builder()
            .tls_config(tls.server_config())
            .unwrap()
            .add_service(coordinator_server::CoordinatorServer::new(fake))
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(listener),
                stop.clone().cancelled_owned(),
            );
        tokio::spawn(server);

        // The hospital's node, pointed at the fake coordinator.
        let node_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let datasets = data
            .iter()
            .filter(|(p, _)| p == "hospital")
            .map(|(_, d)| d.clone())
            .collect();
        let mut cfg =
            sandbox.party_config("hospital", node_listener.local_addr().unwrap(), datasets);
        cfg.coordinator = url;
        std::fs::write(
            sandbox.dir().join("hospital-policy.toml"),
            format!("analysts_file = \"analysts.toml\"\n\n{policy_rules}"),
        )
        .unwrap();
        let node_stop = stop.clone();
        let node_cfg = cfg.clone();
        tokio::spawn(async move {
            let _ =
                treaty_party::node::run(node_cfg, node_listener, node_stop.cancelled_owned()).await;
        });
        let who = tokio::time::timeout(PATIENCE, subscribed.recv())
            .await
            .unwrap();
        assert_eq!(who.as_deref(), Some("hospital"));
        Rig {
            _dir: dir,
            sandbox,
            seen,
            reports,
            opts,
            cfg,
            stop,
        }
    }

    /// A stats job of hospital and insurer, signed by the sandbox analyst: its id, the spec the
    /// coordinator would assign and the signed submission.
    fn signed_job(&self) -> (String, pb::JobSpec, pb::SignedSubmission) {
        let recipient = RecipientSecretKey::generate(&mut treaty_mpc::seeds::os_rng().unwrap());
        let spec = demo::stats_spec(&self.opts, recipient.public_key().unwrap().to_vec());
        let signed = self.sandbox.sign(spec).unwrap().submission.unwrap();
        let verified = verify_submission(&signed).unwrap();
        (verified.job_id(), normalize_spec(verified.spec), signed)
    }

    /// The hospital's registration, as the fake coordinator received it.
    fn hospital(&self) -> pb::PartyInfo {
        self.seen.lock().unwrap().registered["hospital"].clone()
    }

    async fn send(&self, event: party_event::Event) {
        let tx = self.seen.lock().unwrap().events.clone().unwrap();
        tx.send(Ok(pb::PartyEvent { event: Some(event) }))
            .await
            .unwrap();
    }

    /// The next report about `job` (progress reports skipped).
    async fn report(&mut self, job: &str) -> job_report::Report {
        loop {
            let r = tokio::time::timeout(PATIENCE, self.reports.recv())
                .await
                .expect("the node never answered")
                .unwrap();
            match r.report {
                Some(job_report::Report::Progress(_)) => {}
                Some(report) if r.job_id == job => return report,
                _ => {}
            }
        }
    }

    /// The hospital's audit log, as text.
    fn audit_log(&self) -> String {
        std::fs::read_to_string(self.cfg.state_dir().join("audit/log.jsonl")).unwrap()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn peer(party: &str, index: u32, endpoint: &str, fp: &[u8]) -> pb::JobPeer {
    pb::JobPeer {
        party: party.into(),
        index,
        endpoint: endpoint.into(),
        tls_cert_sha256: fp.to_vec(),
    }
}

const OPEN: &str = "[[rules]]\nanalysts = [\"*\"]\njobs = [\"stats\"]\ndatasets = { \"*\" = [\"*\"] }\nrecipients = [\"*\"]\n";

const WITH_APPROVAL: &str = "[[rules]]\nanalysts = [\"*\"]\njobs = [\"stats\"]\ndatasets = { \"*\" = [\"*\"] }\nrecipients = [\"*\"]\napproval = true\n";

/// A coordinator that sends Start right after Assign, without waiting for the human approval the
/// hospital's policy asks for, gets nothing: the node fails the job and never opens its data
/// plane for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_start_before_the_approval_does_not_run_the_job() {
    let mut rig = Rig::start(WITH_APPROVAL).await;
    let (job, spec, submission) = rig.signed_job();
    let hospital = rig.hospital();
    let insurer = rig.sandbox.identity("insurer").unwrap().unwrap();
    rig.send(party_event::Event::Assign(pb::JobAssignment {
        job_id: job.clone(),
        spec: Some(spec),
        peers: vec![
            peer("hospital", 0, &hospital.endpoint, &hospital.tls_cert_sha256),
            peer("insurer", 1, "https://127.0.0.1:9", &insurer.cert_sha256()),
        ],
        submission: Some(submission),
    }))
    .await;
    match rig.report(&job).await {
        job_report::Report::AwaitingApproval(_) => {}
        other => panic!("expected the job to wait for approval, got {other:?}"),
    }
    rig.send(party_event::Event::Start(pb::JobStart {
        job_id: job.clone(),
    }))
    .await;
    match rig.report(&job).await {
        job_report::Report::Failed(reason) => {
            assert!(reason.contains("had not admitted"), "{reason}");
        }
        other => panic!("the node ran a job it had not admitted: {other:?}"),
    }
    let log = rig.audit_log();
    assert!(
        !log.contains("ProtocolStart"),
        "the protocol started: {log}"
    );
}

/// A coordinator that puts a party of its choosing in place of the one the analyst signed (a
/// sybil to collect the hospital's shares) is refused before the node dials anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_assignment_with_other_parties_than_the_signed_ones_is_refused() {
    let mut rig = Rig::start(OPEN).await;
    let hospital = rig.hospital();
    let mallory = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mallory_url = format!("https://{}", mallory.local_addr().unwrap());
    let cases: Vec<(&str, Vec<pb::JobPeer>)> = vec![
        (
            "a substituted party",
            vec![
                peer("hospital", 0, &hospital.endpoint, &hospital.tls_cert_sha256),
                peer("mallory", 1, &mallory_url, &[7; 32]),
            ],
        ),
        (
            "another order",
            vec![
                peer("insurer", 0, &mallory_url, &[7; 32]),
                peer("hospital", 1, &hospital.endpoint, &hospital.tls_cert_sha256),
            ],
        ),
        (
            "an extra party",
            vec![
                peer("hospital", 0, &hospital.endpoint, &hospital.tls_cert_sha256),
                peer("insurer", 1, &mallory_url, &[7; 32]),
                peer("mallory", 2, &mallory_url, &[7; 32]),
            ],
        ),
    ];
    for (what, peers) in cases {
        let (job, spec, submission) = rig.signed_job();
        rig.send(party_event::Event::Assign(pb::JobAssignment {
            job_id: job.clone(),
            spec: Some(spec),
            peers,
            submission: Some(submission),
        }))
        .await;
        match rig.report(&job).await {
            job_report::Report::Rejected(reason) => {
                assert!(reason.contains("membership"), "{what}: {reason}");
            }
            other => panic!("{what}: the node accepted: {other:?}"),
        }
        // Even a start that follows runs nothing.
        rig.send(party_event::Event::Start(pb::JobStart {
            job_id: job.clone(),
        }))
        .await;
    }
    // Nothing ever dialled mallory's endpoint: the node refuses before its data plane.
    let accepted = tokio::time::timeout(Duration::from_millis(200), mallory.accept()).await;
    assert!(accepted.is_err(), "the node dialled the substituted party");
    assert!(!rig.audit_log().contains("ProtocolStart"));
}

/// A stranger on the data plane: a certificate of the deployment (the coordinator's, the
/// analyst's) whose hello claims to be the insurer is refused before its stream is parked, so it
/// can neither join nor disturb the insurer's link.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_certificate_that_is_not_the_sender_cannot_open_a_link() {
    let rig = Rig::start(OPEN).await;
    let hospital = rig.hospital();
    for who in ["coordinator", "analyst", "insurer"] {
        let tls = rig.sandbox.identity(who).unwrap().unwrap();
        let channel = endpoint(Dial {
            url: &hospital.endpoint,
            tls: Some(&tls),
            server_name: "hospital",
        })
        .unwrap()
        .connect()
        .await
        .unwrap();
        let mut client = party_link_client::PartyLinkClient::new(channel);
        let (tx, rx) = mpsc::channel(4);
        tx.send(pb::Frame {
            kind: Some(frame::Kind::Hello(pb::Hello {
                job_id: "job-0000000000000000".into(),
                sender: "insurer".into(),
                receiver: "hospital".into(),
            })),
        })
        .await
        .unwrap();
        let answer = tokio::time::timeout(PATIENCE, client.exchange(ReceiverStream::new(rx)))
            .await
            .unwrap();
        if who == "insurer" {
            assert!(
                answer.is_ok(),
                "the insurer's own certificate was refused: {answer:?}"
            );
        } else {
            let status = answer
                .err()
                .unwrap_or_else(|| panic!("{who} opened a link as the insurer"));
            assert_eq!(
                status.code(),
                tonic::Code::PermissionDenied,
                "{who}: {status:?}"
            );
        }
    }
}
