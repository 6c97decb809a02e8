//! The coordinator's resource limits, each attacked directly on the service (plaintext, so the
//! caller is whoever the request says), with the wall clock injected: no test sleeps.

use std::pin::pin;

use ed25519_dalek::SigningKey;
use futures::FutureExt;
use tempfile::TempDir;
use tonic::Code;
use treaty_proto::v1::coordinator_server::Coordinator as _;

use super::*;
use crate::identity::{sign_cancel, sign_now};

// The proto fixtures the integration tests use too (`tests/common/fixtures.rs`).
#[path = "../../tests/common/fixtures.rs"]
mod fixtures;

const HOUR: Duration = Duration::from_secs(3600);

struct Fixture {
    svc: CoordinatorService,
    clock: Arc<ManualClock>,
    dir: TempDir,
}

impl Fixture {
    fn audit_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("audit/log.jsonl")).unwrap_or_default()
    }
}

/// A plaintext service over a fresh store, its clock at the system's time now.
fn service(config: CoordinatorConfig) -> Fixture {
    service_at(
        config,
        tempfile::tempdir().unwrap(),
        ManualClock::at_system_time(),
    )
}

fn service_at(config: CoordinatorConfig, dir: TempDir, clock: ManualClock) -> Fixture {
    let clock = Arc::new(clock);
    let store = Store::open(&dir.path().join("state")).unwrap();
    let audit = AuditFile::open(COORDINATOR_WRITER, &dir.path().join("audit")).unwrap();
    let config = CoordinatorConfig {
        require_tls_identity: false,
        clock: clock.clone(),
        ..config
    };
    let svc = CoordinatorService::new(
        store,
        audit,
        config,
        CancellationToken::new(),
        TaskTracker::new(),
    )
    .unwrap();
    Fixture { svc, clock, dir }
}

fn code<T>(result: Result<T, Status>) -> Code {
    match result {
        Ok(_) => panic!("allowed"),
        Err(status) => status.code(),
    }
}

async fn register(svc: &CoordinatorService, id: &str) {
    let info = fixtures::party_info(id, &format!("https://{id}.invalid:1"));
    let request = pb::RegisterPartyRequest { party: Some(info) };
    svc.register_party(Request::new(request)).await.unwrap();
}

fn spec() -> pb::JobSpec {
    fixtures::stats_spec("limits", &["bank", "clinic"])
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[3; 32])
}

/// Submits a fresh (newly signed) job as `analyst`.
async fn submit(svc: &CoordinatorService, analyst: &str) -> Result<String, Status> {
    let request = pb::SubmitJobRequest {
        submission: Some(sign_now(spec(), analyst, &key()).unwrap()),
    };
    let response = svc.submit_job(Request::new(request)).await?;
    Ok(response.into_inner().job_id)
}

fn stored_jobs(svc: &CoordinatorService) -> usize {
    svc.inner.store.jobs().unwrap().len()
}

#[tokio::test]
async fn an_analyst_over_the_in_flight_cap_is_refused_and_nothing_is_stored() {
    let f = service(CoordinatorConfig {
        max_jobs_in_flight_per_analyst: 2,
        ..CoordinatorConfig::default()
    });
    register(&f.svc, "bank").await;
    register(&f.svc, "clinic").await;
    // Parties offline: both jobs wait, unfinished.
    let first = submit(&f.svc, "alice").await.unwrap();
    submit(&f.svc, "alice").await.unwrap();
    assert_eq!(code(submit(&f.svc, "alice").await), Code::ResourceExhausted);
    assert!(matches!(
        f.svc.admit("alice"),
        Err(CoordinatorError::TooManyJobs { max: 2, .. })
    ));
    assert_eq!(stored_jobs(&f.svc), 2);
    // Another analyst has a cap of its own.
    submit(&f.svc, "bob").await.unwrap();

    // A job that ends gives its place back.
    let cancelled = f
        .svc
        .cancel_job(Request::new(sign_cancel(&first, "", &key())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.state(), JobState::Aborted);
    submit(&f.svc, "alice").await.unwrap();
    assert_eq!(stored_jobs(&f.svc), 4);

    // A refused submission (here: invalid) does not keep a place either.
    let mut bad = spec();
    bad.inputs.clear();
    let request = pb::SubmitJobRequest {
        submission: Some(sign_now(bad, "bob", &key()).unwrap()),
    };
    assert_eq!(
        code(f.svc.submit_job(Request::new(request)).await),
        Code::InvalidArgument
    );
    submit(&f.svc, "bob").await.unwrap();
}

#[tokio::test]
async fn an_analyst_submitting_faster_than_the_rate_is_refused_until_credit_refills() {
    let f = service(CoordinatorConfig {
        submissions_per_minute: 60,
        submission_burst: 3,
        max_jobs_in_flight_per_analyst: 100,
        ..CoordinatorConfig::default()
    });
    register(&f.svc, "bank").await;
    register(&f.svc, "clinic").await;
    for _ in 0..3 {
        submit(&f.svc, "alice").await.unwrap();
    }
    assert_eq!(code(submit(&f.svc, "alice").await), Code::ResourceExhausted);
    match f.svc.admit("alice") {
        Err(CoordinatorError::RateLimited { retry_after_ms, .. }) => {
            assert_eq!(retry_after_ms, 1000);
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("admitted"),
    }
    assert_eq!(stored_jobs(&f.svc), 3);
    // Bob's bucket is his own.
    submit(&f.svc, "bob").await.unwrap();

    // 60 a minute: one more a second.
    f.clock.advance(Duration::from_millis(999));
    assert_eq!(code(submit(&f.svc, "alice").await), Code::ResourceExhausted);
    f.clock.advance(Duration::from_millis(1));
    submit(&f.svc, "alice").await.unwrap();
    assert_eq!(code(submit(&f.svc, "alice").await), Code::ResourceExhausted);
    // A long pause refills the burst, not more.
    f.clock.advance(HOUR);
    for _ in 0..3 {
        submit(&f.svc, "alice").await.unwrap();
    }
    assert_eq!(code(submit(&f.svc, "alice").await), Code::ResourceExhausted);
    assert_eq!(stored_jobs(&f.svc), 8);
}

/// A succeeded job of alice's that finished at `finished_ms`, with both parties' results.
fn succeeded(store: &Store, id: &str, finished_ms: i64) {
    for (party, sealed) in [("bank", &b"sealed by bank"[..]), ("clinic", b"clinic")] {
        store.put_result(id, party, sealed).unwrap();
    }
    let job = Job {
        id: id.into(),
        analyst: "alice".into(),
        state: JobState::Succeeded as i32,
        submitted_at_ms: finished_ms - 1000,
        finished_at_ms: finished_ms,
        parties: ["bank", "clinic"]
            .iter()
            .map(|p| PartyJobStatus {
                party: (*p).into(),
                state: PartyJobState::Uploaded as i32,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    store.put_job(&job).unwrap();
}

async fn fetch(svc: &CoordinatorService, id: &str) -> Result<Vec<pb::ResultChunk>, Status> {
    let request = pb::FetchResultRequest { job_id: id.into() };
    let stream = svc.fetch_result(Request::new(request)).await?.into_inner();
    stream.collect::<Result<Vec<_>, _>>().await
}

#[tokio::test]
async fn results_are_deleted_once_their_retention_passed_audited_and_reported_expired() {
    let dir = tempfile::tempdir().unwrap();
    let start = 1_800_000_000_000;
    {
        let store = Store::open(&dir.path().join("state")).unwrap();
        succeeded(&store, "job-old", start - 2 * 3_600_000);
        succeeded(&store, "job-new", start);
    }
    let config = CoordinatorConfig {
        result_retention: HOUR,
        ..CoordinatorConfig::default()
    };
    // The sweep at start deletes what is already past its retention.
    let f = service_at(config, dir, ManualClock::new(start + 1000));
    assert_eq!(code(fetch(&f.svc, "job-old").await), Code::NotFound);
    assert!(matches!(
        f.svc.inner.store.results_expired_at("job-old").unwrap(),
        Some(at) if at == start + 1000
    ));
    assert_eq!(fetch(&f.svc, "job-new").await.unwrap().len(), 2);

    // Just before the retention passes: kept.
    f.clock.advance(HOUR - Duration::from_millis(1001));
    assert_eq!(f.svc.expire_results().unwrap(), 0);
    assert_eq!(fetch(&f.svc, "job-new").await.unwrap().len(), 2);
    // Then gone.
    f.clock.advance(Duration::from_millis(1));
    assert_eq!(f.svc.expire_results().unwrap(), 1);
    assert_eq!(code(fetch(&f.svc, "job-new").await), Code::NotFound);
    for party in ["bank", "clinic"] {
        assert!(
            f.svc
                .inner
                .store
                .result("job-new", party)
                .unwrap()
                .is_none()
        );
    }
    // Nothing twice.
    assert_eq!(f.svc.expire_results().unwrap(), 0);

    // Every deletion is in the coordinator's audit log, which still verifies.
    let log = f.audit_log();
    let expired: Vec<treaty_audit::AuditRecord> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &treaty_audit::AuditRecord| {
            matches!(r.entry.event, AuditEvent::ResultsExpired { .. })
        })
        .collect();
    assert_eq!(expired.len(), 2, "{log}");
    assert_eq!(expired[1].entry.job.as_deref(), Some("job-new"));
    assert_eq!(
        expired[1].entry.event,
        AuditEvent::ResultsExpired {
            parties: vec!["bank".into(), "clinic".into()],
            bytes: 20,
        }
    );
    let (_, failures) = treaty_audit::verify_log(
        COORDINATOR_WRITER,
        &log,
        &f.svc.inner.audit.public_key(),
        f.svc.inner.audit.latest_head().as_ref(),
    );
    assert!(failures.is_empty(), "{failures:?}");
}

#[tokio::test]
async fn list_jobs_clamps_its_page_follows_tokens_and_refuses_a_forged_one() {
    let f = service(CoordinatorConfig::default());
    for i in 0..230 {
        let job = Job {
            id: format!("job-{i:04}"),
            analyst: if i % 2 == 0 { "alice" } else { "bob" }.into(),
            submitted_at_ms: 1000 + i64::from(i / 3),
            state: JobState::Failed as i32,
            ..Default::default()
        };
        f.svc.inner.store.put_job(&job).unwrap();
    }
    let list = |limit: u32, page_token: String| {
        let svc = f.svc.clone();
        async move {
            let request = pb::ListJobsRequest { limit, page_token };
            svc.list_jobs(Request::new(request))
                .await
                .map(|r| r.into_inner())
        }
    };
    let first = list(u32::MAX, String::new()).await.unwrap();
    assert_eq!(first.jobs.len(), treaty_proto::MAX_JOBS_PAGE as usize);
    assert!(!first.next_page_token.is_empty());
    let rest = list(u32::MAX, first.next_page_token.clone()).await.unwrap();
    assert_eq!(rest.jobs.len(), 30);
    assert!(rest.next_page_token.is_empty());
    let all: Vec<&Job> = first.jobs.iter().chain(&rest.jobs).collect();
    // Newest first, by time then id, each job once.
    assert_eq!(all[0].id, "job-0229");
    for pair in all.windows(2) {
        let key = |j: &Job| (j.submitted_at_ms, j.id.clone());
        assert!(
            key(pair[0]) > key(pair[1]),
            "{} then {}",
            pair[0].id,
            pair[1].id
        );
    }
    assert_eq!(
        list(0, String::new()).await.unwrap().jobs.len(),
        treaty_proto::DEFAULT_JOBS_PAGE as usize
    );
    for forged in ["not hex", "00", "0000000000000000ff", &"ab".repeat(10_000)] {
        assert_eq!(
            code(list(10, forged.to_string()).await),
            Code::InvalidArgument,
            "{forged:?}"
        );
    }
}

#[tokio::test]
async fn a_party_that_does_not_read_its_events_is_disconnected_not_buffered() {
    let f = service(CoordinatorConfig {
        party_event_queue: 2,
        ..CoordinatorConfig::default()
    });
    let subscribe = || {
        let svc = f.svc.clone();
        async move {
            let request = pb::SubscribeRequest {
                party: "bank".into(),
            };
            svc.subscribe(Request::new(request))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let mut stream = subscribe().await;
    let start = || {
        party_event::Event::Start(pb::JobStart {
            job_id: "job-1".into(),
        })
    };
    assert!(f.svc.send("bank", start()));
    assert!(f.svc.send("bank", start()));
    assert!(f.svc.inner.presence.borrow().contains_key("bank"));
    // The queue is full: the party is dropped, not the coordinator's memory grown.
    assert!(!f.svc.send("bank", start()));
    assert!(!lock(&f.svc.inner.online).contains_key("bank"));
    assert!(!f.svc.inner.presence.borrow().contains_key("bank"));
    assert!(!f.svc.send("bank", start()));
    // Its stream ends at once...
    assert!(matches!(stream.next().now_or_never(), Some(None)));
    // ...and it subscribes again, as nodes do after a disconnect.
    let mut again = subscribe().await;
    assert!(f.svc.send("bank", start()));
    let event = again.next().await.unwrap().unwrap();
    assert_eq!(event.event, Some(start()));
}

#[tokio::test]
async fn a_full_driver_queue_makes_the_caller_wait_and_loses_no_event() {
    let f = service(CoordinatorConfig::default());
    let (tx, mut rx) = mpsc::channel(1);
    lock(&f.svc.inner.drivers).insert("job-1".into(), tx);
    let cancel = |why: &str| Event::Cancel { reason: why.into() };
    assert!(f.svc.to_driver("job-1", cancel("first")).await);
    // The queue is full: the second waits for room instead of being dropped.
    let mut second = pin!(f.svc.to_driver("job-1", cancel("second")));
    assert!((&mut second).now_or_never().is_none());
    assert_eq!(rx.recv().await, Some(cancel("first")));
    assert!(second.await);
    assert_eq!(rx.recv().await, Some(cancel("second")));
    // A driver whose job ended closes its queue: nothing is taken in after that.
    rx.close();
    assert!(!f.svc.to_driver("job-1", cancel("late")).await);
    assert!(!f.svc.to_driver("job-unknown", cancel("late")).await);
}

#[test]
fn an_upload_is_in_order_within_its_size_and_never_overflows_its_chunk_index() {
    let chunk = |index: u32, data: &[u8], last: bool| pb::ResultChunk {
        job_id: "job-1".into(),
        party: "bank".into(),
        index,
        last,
        data: data.to_vec(),
    };
    let mut buffer = UploadBuffer::new(4);
    buffer.push(&chunk(0, b"ab", false)).unwrap();
    assert!(matches!(
        buffer.push(&chunk(2, b"c", false)),
        Err(CoordinatorError::InvalidRequest(_))
    ));
    // Empty chunks that are not the last would be free to send forever.
    assert!(matches!(
        buffer.push(&chunk(1, b"", false)),
        Err(CoordinatorError::InvalidRequest(_))
    ));
    assert!(matches!(
        buffer.push(&chunk(1, b"cde", true)),
        Err(CoordinatorError::ResultTooLarge { max: 4, .. })
    ));
    buffer.push(&chunk(1, b"cd", true)).unwrap();
    assert_eq!(buffer.data, b"abcd");
    // The index after u32::MAX does not exist: refused, no wrap-around and no panic.
    let mut buffer = UploadBuffer {
        data: Vec::new(),
        next_index: u32::MAX,
        max: 4,
    };
    assert!(matches!(
        buffer.push(&chunk(u32::MAX, b"a", false)),
        Err(CoordinatorError::InvalidRequest(_))
    ));
    let mut empty = UploadBuffer::new(4);
    empty.push(&chunk(0, b"", true)).unwrap();
}
