#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The job driver end to end: a real coordinator (plaintext, on loopback), parties that are
//! only gRPC clients, and an analyst. The state machine's rules are tested alone in
//! `lifecycle`; this checks that the thin loop around it routes events and carries out effects
//! (party online and offline, reports, uploads, the deadline). Waits follow `WatchJob` and the
//! parties' event streams, never a sleep.

mod common;

use std::time::Duration;

use common::fixtures::{party_info, stats_spec};
use common::{Client, PATIENCE, Served};
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use tempfile::TempDir;
use tonic::Streaming;
use treaty_coordinator::CoordinatorConfig;
use treaty_coordinator::identity::sign_now;
use treaty_coordinator::store::Store;
use treaty_proto::v1::{self as pb, JobState, PartyJobState, job_report, party_event};

/// The coordinator under test (plaintext), and what the analyst asks of it.
struct Coordinator {
    served: Served,
}

impl Coordinator {
    async fn start(config: CoordinatorConfig) -> Self {
        Self {
            served: Served::start(config, None).await,
        }
    }

    async fn client(&self) -> Client {
        self.served.dial(None).await
    }

    fn audit_log(&self) -> String {
        self.served.audit_log()
    }

    async fn submit(&self, parties: &[&str]) -> String {
        let spec = stats_spec("driver", parties);
        let key = SigningKey::from_bytes(&[3; 32]);
        let submission = sign_now(spec, "alice", &key).unwrap();
        let request = pb::SubmitJobRequest {
            submission: Some(submission),
        };
        let response = self.client().await.submit_job(request).await.unwrap();
        response.into_inner().job_id
    }

    /// Follows the job until `done` holds.
    async fn watch(&self, job_id: &str, done: impl Fn(&pb::Job) -> bool) -> pb::Job {
        let request = pb::WatchJobRequest {
            job_id: job_id.into(),
        };
        let mut jobs = self
            .client()
            .await
            .watch_job(request)
            .await
            .unwrap()
            .into_inner();
        tokio::time::timeout(PATIENCE, async {
            loop {
                let job = jobs.message().await.unwrap().expect("the watch ended");
                if done(&job) {
                    return job;
                }
            }
        })
        .await
        .expect("the job did not get there in time")
    }

    /// Shuts it down and checks that `serve` returned cleanly; gives back its state folder.
    async fn stop(self) -> TempDir {
        self.served.stop().await
    }
}

/// A party that is only a gRPC client: it answers what the test tells it to.
struct Party {
    id: String,
    client: Client,
    events: Option<Streaming<pb::PartyEvent>>,
}

impl Party {
    /// Registers `id` and subscribes to its events.
    async fn online(coordinator: &Coordinator, id: &str) -> Self {
        let mut party = Self::registered(coordinator, id).await;
        party.subscribe().await;
        party
    }

    async fn subscribe(&mut self) {
        let request = pb::SubscribeRequest {
            party: self.id.clone(),
        };
        let events = self.client.subscribe(request).await.unwrap().into_inner();
        self.events = Some(events);
    }

    /// Registers `id` (it stays offline).
    async fn registered(coordinator: &Coordinator, id: &str) -> Self {
        let mut client = coordinator.client().await;
        let info = party_info(id, &format!("https://{id}.invalid:1"));
        let request = pb::RegisterPartyRequest { party: Some(info) };
        client.register_party(request).await.unwrap();
        Self {
            id: id.into(),
            client,
            events: None,
        }
    }

    async fn next_event(&mut self) -> party_event::Event {
        let events = self.events.as_mut().expect("offline");
        let next = tokio::time::timeout(PATIENCE, events.message()).await;
        let event = next.expect("no event in time").unwrap();
        event.and_then(|e| e.event).expect("the stream ended")
    }

    async fn report(&mut self, job_id: &str, report: job_report::Report) {
        let report = pb::JobReport {
            job_id: job_id.into(),
            party: self.id.clone(),
            report: Some(report),
        };
        self.client.report_job(report).await.unwrap();
    }

    /// Waits for the assignment, checks its peers, accepts.
    async fn accept(&mut self, job_id: &str, peers: &[&str]) {
        match self.next_event().await {
            party_event::Event::Assign(a) => {
                assert_eq!(a.job_id, job_id);
                let named: Vec<&str> = a.peers.iter().map(|p| p.party.as_str()).collect();
                assert_eq!(named, peers);
                assert_eq!(
                    a.peers[0].endpoint,
                    format!("https://{}.invalid:1", peers[0])
                );
            }
            other => panic!("{}: {other:?}", self.id),
        }
        let accepted = job_report::Report::Accepted(pb::Admission::default());
        self.report(job_id, accepted).await;
    }

    async fn started(&mut self, job_id: &str) {
        match self.next_event().await {
            party_event::Event::Start(s) => assert_eq!(s.job_id, job_id),
            other => panic!("{}: {other:?}", self.id),
        }
    }

    async fn upload(&mut self, job_id: &str) {
        let chunk = pb::ResultChunk {
            job_id: job_id.into(),
            party: self.id.clone(),
            index: 0,
            last: true,
            data: format!("sealed by {}", self.id).into_bytes(),
        };
        let chunks = tokio_stream::iter(vec![chunk]);
        self.client.upload_result(chunks).await.unwrap();
    }

    async fn aborted(&mut self) -> String {
        match self.next_event().await {
            party_event::Event::Abort(a) => a.reason,
            other => panic!("{}: {other:?}", self.id),
        }
    }
}

fn config() -> CoordinatorConfig {
    CoordinatorConfig {
        require_tls_identity: false,
        ..CoordinatorConfig::default()
    }
}

fn party_state(job: &pb::Job, party: &str) -> PartyJobState {
    job.parties
        .iter()
        .find(|p| p.party == party)
        .map(pb::PartyJobStatus::state)
        .unwrap()
}

/// A coordinator, bank and clinic online, and a job of both that both accepted and started.
async fn running_job() -> (Coordinator, Party, Party, String) {
    running_job_with(config()).await
}

async fn running_job_with(config: CoordinatorConfig) -> (Coordinator, Party, Party, String) {
    let coordinator = Coordinator::start(config).await;
    let mut bank = Party::online(&coordinator, "bank").await;
    let mut clinic = Party::online(&coordinator, "clinic").await;
    let job_id = coordinator.submit(&["bank", "clinic"]).await;
    for party in [&mut bank, &mut clinic] {
        party.accept(&job_id, &["bank", "clinic"]).await;
    }
    for party in [&mut bank, &mut clinic] {
        party.started(&job_id).await;
    }
    (coordinator, bank, clinic, job_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_through_the_driver_to_success() {
    let coordinator = Coordinator::start(config()).await;
    let mut bank = Party::online(&coordinator, "bank").await;
    let mut clinic = Party::registered(&coordinator, "clinic").await;
    let job_id = coordinator.submit(&["bank", "clinic"]).await;
    // The clinic comes online after the submission: the driver hears of it.
    clinic.subscribe().await;
    for party in [&mut bank, &mut clinic] {
        party.accept(&job_id, &["bank", "clinic"]).await;
    }
    for party in [&mut bank, &mut clinic] {
        party.started(&job_id).await;
        party.upload(&job_id).await;
    }
    let job = coordinator
        .watch(&job_id, |j| j.state() != JobState::Running)
        .await;
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    assert!(job.started_at_ms > 0 && job.finished_at_ms >= job.started_at_ms);
    for p in ["bank", "clinic"] {
        assert_eq!(party_state(&job, p), PartyJobState::Uploaded);
    }
    let log = coordinator.audit_log();
    assert_eq!(log.matches("\"result_stored\"").count(), 2, "{log}");
    assert!(log.contains("\"outcome\":\"succeeded\""), "{log}");
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_lost_mid_job_fails_it_and_the_others_are_told() {
    let (coordinator, mut bank, mut clinic, job_id) = running_job().await;
    bank.upload(&job_id).await;
    clinic.events = None;
    let job = coordinator
        .watch(&job_id, |j| j.state() != JobState::Running)
        .await;
    assert_eq!(job.state(), JobState::Failed, "{job:?}");
    assert_eq!(
        job.reason,
        "party clinic disconnected while the job was running"
    );
    assert_eq!(party_state(&job, "clinic"), PartyJobState::Failed);
    assert_eq!(party_state(&job, "bank"), PartyJobState::Uploaded);
    assert_eq!(bank.aborted().await, job.reason);
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_that_never_comes_online_fails_the_job_at_its_deadline() {
    let coordinator = Coordinator::start(CoordinatorConfig {
        offline_timeout: Duration::from_millis(200),
        ..config()
    })
    .await;
    let mut bank = Party::online(&coordinator, "bank").await;
    let _clinic = Party::registered(&coordinator, "clinic").await;
    let job_id = coordinator.submit(&["bank", "clinic"]).await;
    let job = coordinator
        .watch(&job_id, |j| j.state() != JobState::Submitted)
        .await;
    assert_eq!(job.state(), JobState::Failed, "{job:?}");
    assert_eq!(
        job.reason,
        "party clinic offline: not connected within 0.2 s"
    );
    assert_eq!(bank.aborted().await, job.reason);
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_upload_is_refused_and_the_first_kept() {
    let (coordinator, mut bank, mut clinic, job_id) = running_job().await;
    bank.upload(&job_id).await;
    // The bank tries to replace its share (say, after seeing something it should not have).
    let replacement = pb::ResultChunk {
        job_id: job_id.clone(),
        party: "bank".into(),
        index: 0,
        last: true,
        data: b"a different share".to_vec(),
    };
    let refused = bank
        .client
        .upload_result(tokio_stream::iter(vec![replacement]))
        .await;
    assert_eq!(
        refused.map(|_| ()).unwrap_err().code(),
        tonic::Code::AlreadyExists
    );
    clinic.upload(&job_id).await;
    let job = coordinator
        .watch(&job_id, |j| j.state() != JobState::Running)
        .await;
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    let request = pb::FetchResultRequest {
        job_id: job_id.clone(),
    };
    let mut chunks = coordinator
        .client()
        .await
        .fetch_result(request)
        .await
        .unwrap()
        .into_inner();
    let mut shares = Vec::new();
    while let Some(chunk) = chunks.message().await.unwrap() {
        shares.push((chunk.party, chunk.data));
    }
    assert_eq!(
        shares,
        [
            ("bank".to_string(), b"sealed by bank".to_vec()),
            ("clinic".to_string(), b"sealed by clinic".to_vec()),
        ]
    );
    let log = coordinator.audit_log();
    assert_eq!(log.matches("\"result_stored\"").count(), 2, "{log}");
    coordinator.stop().await;
}

/// A party's failure text of a megabyte with forged log lines reaches the job's reason, the
/// other parties and the coordinator's audit log cut and escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partys_failure_text_is_capped_and_escaped() {
    let (coordinator, mut bank, mut clinic, job_id) = running_job().await;
    let text = "boom\n{\"event\":\"forged\"}".repeat(1 << 15);
    clinic
        .report(&job_id, job_report::Report::Failed(text.clone()))
        .await;
    let job = coordinator
        .watch(&job_id, |j| j.state() != JobState::Running)
        .await;
    assert_eq!(job.state(), JobState::Failed, "{job:?}");
    let max = treaty_proto::text::MAX_PEER_TEXT;
    assert!(job.reason.len() < 2 * max, "{} bytes", job.reason.len());
    assert!(
        job.reason.contains("bytes cut") && !job.reason.contains('\n'),
        "{}",
        job.reason
    );
    assert_eq!(bank.aborted().await, job.reason);
    let log = coordinator.audit_log();
    assert!(
        log.len() < 64 * 1024,
        "the audit log holds {} bytes",
        log.len()
    );
    coordinator.stop().await;
}

/// A client that keeps a call open (an upload that never ends) cannot hold the coordinator's
/// shutdown: past the grace its connection is cut, `serve` returns with the database closed, and
/// the state opens again at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_call_cannot_hold_the_shutdown_or_the_database() {
    let config = CoordinatorConfig {
        shutdown_grace: Duration::from_millis(200),
        ..config()
    };
    let (coordinator, bank, _clinic, job_id) = running_job_with(config).await;
    let (began, begun) = tokio::sync::oneshot::channel();
    let first = pb::ResultChunk {
        job_id: job_id.clone(),
        party: "bank".into(),
        index: 0,
        last: false,
        data: b"the first of many".to_vec(),
    };
    let body = futures::stream::once(async move {
        let _ = began.send(());
        first
    })
    .chain(futures::stream::pending());
    let mut client = bank.client.clone();
    let upload = tokio::spawn(async move { client.upload_result(body).await });
    begun.await.unwrap();
    // Calls on one connection are taken in order: once this one is answered, the coordinator
    // holds the upload.
    bank.client
        .clone()
        .list_parties(pb::ListPartiesRequest {})
        .await
        .unwrap();
    let dir = coordinator.stop().await;
    let cut = tokio::time::timeout(PATIENCE, upload)
        .await
        .unwrap()
        .unwrap();
    assert!(cut.is_err(), "{cut:?}");
    let store = Store::open(&dir.path().join("state")).expect("the database is still held");
    let job = store.job(&job_id).unwrap().unwrap();
    assert_eq!(job.state(), JobState::Failed, "{job:?}");
}
