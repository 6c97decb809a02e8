//! The machine driven by hand, event by event.

use super::*;

const PARTIES: [&str; 3] = ["hospital", "insurer", "bank"];
const JOB: &str = "job-1";
const WALL: i64 = 1_700_000_000_000;

fn limits() -> Limits {
    Limits {
        offline_timeout: Duration::from_secs(10),
        accept_timeout: Duration::from_secs(20),
        approval_timeout: Duration::from_secs(100),
        run_timeout: Duration::from_secs(1000),
    }
}

/// `ms` milliseconds after the machine's origin.
fn at(ms: u64) -> Now {
    Now {
        wall_ms: WALL + ms as i64,
        mono: Duration::from_millis(ms),
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn submitted() -> Job {
    Job {
        id: JOB.into(),
        analyst: "alice".into(),
        spec: Some(pb::JobSpec::default()),
        submission: Some(pb::SignedSubmission {
            submission: vec![1, 2, 3],
            ..Default::default()
        }),
        state: JobState::Submitted as i32,
        submitted_at_ms: WALL,
        updated_at_ms: WALL,
        parties: PARTIES
            .iter()
            .map(|p| PartyJobStatus {
                party: (*p).into(),
                state: PartyJobState::Pending as i32,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn registry() -> Vec<pb::PartyInfo> {
    // In registry order (by id), not job order; and a party of no job.
    let mut parties: Vec<_> = PARTIES
        .iter()
        .chain(&["mallory"])
        .enumerate()
        .map(|(i, p)| pb::PartyInfo {
            id: (*p).into(),
            endpoint: format!("https://{p}:7000"),
            tls_cert_sha256: vec![i as u8; 32],
            ..Default::default()
        })
        .collect();
    parties.sort_by(|a, b| a.id.cmp(&b.id));
    parties
}

fn online(p: &str) -> Event {
    Event::PartyOnline { party: p.into() }
}

fn offline(p: &str) -> Event {
    Event::PartyOffline { party: p.into() }
}

fn report(p: &str, report: job_report::Report) -> Event {
    Event::Report {
        party: p.into(),
        report,
    }
}

fn accept(p: &str) -> Event {
    report(
        p,
        job_report::Report::Accepted(pb::Admission {
            policy_sha256: vec![9; 32],
            approved_by: String::new(),
        }),
    )
}

fn reject(p: &str, why: &str) -> Event {
    report(p, job_report::Report::Rejected(why.into()))
}

fn awaiting(p: &str) -> Event {
    report(
        p,
        job_report::Report::AwaitingApproval(format!("waiting for an operator at {p}")),
    )
}

fn failed(p: &str, why: &str) -> Event {
    report(p, job_report::Report::Failed(why.into()))
}

fn progress(p: &str, fraction: f64, rounds: u64) -> Event {
    report(
        p,
        job_report::Report::Progress(pb::JobProgress {
            fraction,
            rounds,
            bytes_sent: 10,
            bytes_received: 20,
        }),
    )
}

fn upload(p: &str) -> Event {
    Event::Uploaded {
        party: p.into(),
        bytes: 64,
        sha256: [7; 32],
    }
}

fn cancel() -> Event {
    Event::Cancel {
        reason: "cancelled by the analyst: wrong cohort".into(),
    }
}

/// Every party online from the start, assigned at 0.
fn assigned() -> JobLifecycle {
    let (mut m, effects) = JobLifecycle::start(submitted(), limits(), all_online(), at(0));
    assert_eq!(effects, [Effect::LoadRegistry]);
    m.on(Event::Registry(registry()), at(0));
    m
}

fn all_online() -> Vec<String> {
    PARTIES.iter().map(|p| p.to_string()).collect()
}

/// Every party accepted; started at 1 s.
fn running() -> JobLifecycle {
    let mut m = assigned();
    for p in PARTIES {
        m.on(accept(p), at(1000));
    }
    assert_eq!(m.job().state(), JobState::Running);
    m
}

fn party(m: &JobLifecycle, p: &str) -> PartyJobStatus {
    m.job()
        .parties
        .iter()
        .find(|s| s.party == p)
        .cloned()
        .unwrap_or_else(|| panic!("no party {p}"))
}

fn party_states(m: &JobLifecycle) -> Vec<PartyJobState> {
    m.job().parties.iter().map(|p| p.state()).collect()
}

fn persisted(effects: &[Effect]) -> Vec<Job> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Persist(job) => Some((**job).clone()),
            _ => None,
        })
        .collect()
}

fn sent(effects: &[Effect]) -> Vec<(String, party_event::Event)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { party, event } => Some((party.clone(), (**event).clone())),
            _ => None,
        })
        .collect()
}

fn abort_to_all(reason: &str) -> Vec<Effect> {
    PARTIES
        .iter()
        .map(|p| Effect::Send {
            party: (*p).into(),
            event: Box::new(party_event::Event::Abort(pb::JobAbort {
                job_id: JOB.into(),
                reason: reason.into(),
            })),
        })
        .collect()
}

/// The effects of a step that ends a non-succeeded job at `now`, whose final record is `m`'s.
fn ending(m: &JobLifecycle, outcome: Outcome, rounds: u64) -> Vec<Effect> {
    let reason = m.job().reason.clone();
    let mut effects = vec![
        Effect::Detach,
        Effect::DeleteResults,
        Effect::Persist(Box::new(m.job().clone())),
        Effect::Notify,
    ];
    effects.extend(abort_to_all(&reason));
    effects.extend([
        Effect::Audit(AuditEvent::Completed {
            outcome,
            rounds,
            reason,
        }),
        Effect::Checkpoint,
        Effect::Deadline(None),
    ]);
    effects
}

/// Every kind of event, from the job's parties and from a stranger.
fn every_event() -> Vec<Event> {
    let mut events = vec![
        cancel(),
        Event::Registry(registry()),
        Event::Tick,
        Event::Shutdown,
        Event::Internal("storage: broken".into()),
    ];
    for p in PARTIES.iter().chain(&["mallory"]) {
        events.extend([
            online(p),
            offline(p),
            accept(p),
            reject(p, "no"),
            awaiting(p),
            failed(p, "boom"),
            progress(p, 0.5, 3),
            upload(p),
        ]);
    }
    events
}

/// Once final, nothing moves the machine.
fn assert_absorbing(mut m: JobLifecycle, now: u64) {
    assert!(m.is_final());
    assert_eq!(m.deadline(), None);
    let job = m.job().clone();
    for (i, event) in every_event().into_iter().enumerate() {
        let effects = m.on(event.clone(), at(now + i as u64 * 1_000_000));
        assert!(effects.is_empty(), "{event:?} after the end: {effects:?}");
        assert_eq!(m.job(), &job, "{event:?} changed a final job");
    }
}

#[test]
fn a_job_runs_from_submission_to_success() {
    let (mut m, effects) = JobLifecycle::start(submitted(), limits(), all_online(), at(0));
    assert_eq!(effects, [Effect::LoadRegistry]);
    assert_eq!(m.deadline(), None);

    // Assigned: persisted first, then each party is sent its assignment with every peer.
    let effects = m.on(Event::Registry(registry()), at(5));
    let mut job = m.job().clone();
    assert_eq!(job.state(), JobState::Submitted);
    assert_eq!(party_states(&m), [PartyJobState::Assigned; 3]);
    assert_eq!(job.updated_at_ms, WALL + 5);
    let peers: Vec<pb::JobPeer> = PARTIES
        .iter()
        .enumerate()
        .map(|(index, p)| pb::JobPeer {
            party: (*p).into(),
            index: index as u32,
            endpoint: format!("https://{p}:7000"),
            tls_cert_sha256: vec![index as u8; 32],
        })
        .collect();
    let assignment = party_event::Event::Assign(pb::JobAssignment {
        job_id: JOB.into(),
        spec: job.spec.clone(),
        peers,
        submission: job.submission.clone(),
    });
    let mut expected = vec![Effect::Persist(Box::new(job.clone())), Effect::Notify];
    expected.extend(PARTIES.iter().map(|p| Effect::Send {
        party: (*p).into(),
        event: Box::new(assignment.clone()),
    }));
    expected.push(Effect::Deadline(Some(Duration::from_millis(5) + secs(20))));
    assert_eq!(effects, expected);

    // Each answer is audited, then persisted.
    let effects = m.on(accept("hospital"), at(1000));
    job = m.job().clone();
    assert_eq!(party(&m, "hospital").state(), PartyJobState::Accepted);
    assert_eq!(
        effects,
        [
            Effect::Audit(AuditEvent::PartyAnswer {
                party: "hospital".into(),
                admitted: true,
                policy_sha256: Digest32([9; 32]),
                approved_by: String::new(),
                reason: String::new(),
            }),
            Effect::Persist(Box::new(job)),
            Effect::Notify,
        ]
    );
    assert!(m.on(accept("insurer"), at(1500)).len() == 3);

    // The last answer approves and starts the job: approved, then running, then `Start`.
    let effects = m.on(accept("bank"), at(2000));
    let states: Vec<JobState> = persisted(&effects).iter().map(Job::state).collect();
    assert_eq!(
        states,
        [JobState::Submitted, JobState::Approved, JobState::Running]
    );
    assert_eq!(party_states(&m), [PartyJobState::Running; 3]);
    assert_eq!(m.job().started_at_ms, WALL + 2000);
    let start = party_event::Event::Start(pb::JobStart { job_id: JOB.into() });
    let tail: Vec<Effect> = PARTIES
        .iter()
        .map(|p| Effect::Send {
            party: (*p).into(),
            event: Box::new(start.clone()),
        })
        .chain([Effect::Deadline(Some(
            Duration::from_millis(2000) + secs(1000),
        ))])
        .collect();
    assert_eq!(effects[effects.len() - 4..], tail);
    assert_eq!(m.deadline(), Some(Duration::from_millis(2000) + secs(1000)));

    // Progress is recorded (clamped).
    let effects = m.on(progress("insurer", 1.5, 42), at(3000));
    let insurer = party(&m, "insurer");
    assert_eq!(
        (
            insurer.progress,
            insurer.rounds,
            insurer.bytes_sent,
            insurer.bytes_received
        ),
        (1.0, 42, 10, 20)
    );
    assert_eq!(
        effects,
        [Effect::Persist(Box::new(m.job().clone())), Effect::Notify]
    );

    // Every upload is audited; the last one ends the job: nothing deleted, nobody aborted.
    for p in ["bank", "hospital"] {
        let effects = m.on(upload(p), at(4000));
        assert_eq!(effects.len(), 3, "{effects:?}");
        assert_eq!(party(&m, p).state(), PartyJobState::Uploaded);
    }
    let effects = m.on(upload("insurer"), at(5000));
    let job = m.job().clone();
    assert_eq!(job.state(), JobState::Succeeded);
    assert_eq!(job.reason, "");
    assert_eq!(job.finished_at_ms, WALL + 5000);
    assert_eq!(party_states(&m), [PartyJobState::Uploaded; 3]);
    let mut uploaded = job.clone();
    uploaded.set_state(JobState::Running);
    uploaded.finished_at_ms = 0;
    assert_eq!(
        effects,
        [
            Effect::Audit(AuditEvent::ResultStored {
                party: "insurer".into(),
                bytes: 64,
                sealed_sha256: Digest32([7; 32]),
            }),
            Effect::Persist(Box::new(uploaded)),
            Effect::Notify,
            Effect::Detach,
            Effect::Persist(Box::new(job)),
            Effect::Notify,
            Effect::Audit(AuditEvent::Completed {
                outcome: Outcome::Succeeded,
                rounds: 42,
                reason: String::new(),
            }),
            Effect::Checkpoint,
            Effect::Deadline(None),
        ]
    );
    assert_absorbing(m, 6000);
}

#[test]
fn a_job_waits_for_every_party_to_be_online() {
    let (mut m, effects) =
        JobLifecycle::start(submitted(), limits(), ["hospital".to_string()], at(0));
    assert_eq!(effects, [Effect::Deadline(Some(secs(10)))]);
    assert!(m.on(online("insurer"), at(100)).is_empty());
    // A party restarting meanwhile (offline, then online) is only late.
    assert!(m.on(offline("hospital"), at(200)).is_empty());
    assert!(m.on(online("bank"), at(300)).is_empty());
    assert!(m.on(Event::Tick, at(400)).is_empty());
    // Reports before the assignment are ignored.
    assert!(m.on(accept("bank"), at(400)).is_empty());
    assert!(m.on(failed("bank", "boom"), at(400)).is_empty());
    assert_eq!(
        m.on(online("hospital"), at(500)),
        [Effect::LoadRegistry, Effect::Deadline(None)]
    );
    assert_eq!(
        m.job(),
        &submitted(),
        "nothing changed before the assignment"
    );
    let effects = m.on(Event::Registry(registry()), at(500));
    assert_eq!(sent(&effects).len(), 3);
    assert_eq!(m.deadline(), Some(Duration::from_millis(500) + secs(20)));
}

#[test]
fn a_party_that_stays_offline_fails_the_job_at_the_offline_timeout() {
    let (mut m, _) = JobLifecycle::start(submitted(), limits(), ["insurer".to_string()], at(0));
    assert!(m.on(Event::Tick, at(9_999)).is_empty());
    let effects = m.on(Event::Tick, at(10_000));
    assert_eq!(m.job().state(), JobState::Failed);
    assert_eq!(
        m.job().reason,
        "party hospital, bank offline: not connected within 10 s"
    );
    assert_eq!(
        party_states(&m),
        [PartyJobState::Pending; 3],
        "never assigned"
    );
    assert_eq!(m.job().finished_at_ms, WALL + 10_000);
    assert_eq!(effects, ending(&m, Outcome::Failed, 0));
    assert_absorbing(m, 20_000);
}

#[test]
fn refusals_reject_the_job_in_job_order() {
    let mut m = assigned();
    m.on(reject("bank", "too small"), at(100));
    m.on(accept("hospital"), at(200));
    let effects = m.on(reject("insurer", "no consent"), at(300));
    assert_eq!(m.job().state(), JobState::Rejected);
    assert_eq!(m.job().reason, "insurer: no consent; bank: too small");
    assert_eq!(
        party_states(&m),
        [
            PartyJobState::Aborted,
            PartyJobState::Rejected,
            PartyJobState::Rejected
        ]
    );
    assert_eq!(party(&m, "bank").reason, "too small");
    assert_eq!(
        effects[0],
        Effect::Audit(AuditEvent::PartyAnswer {
            party: "insurer".into(),
            admitted: false,
            policy_sha256: Digest32::default(),
            approved_by: String::new(),
            reason: "no consent".into(),
        })
    );
    assert_eq!(persisted(&effects).len(), 2);
    assert_eq!(effects[3..], ending(&m, Outcome::Rejected, 0));
    assert_absorbing(m, 400);
}

#[test]
fn silent_parties_fail_the_job_at_the_accept_timeout() {
    let mut m = assigned();
    m.on(accept("hospital"), at(100));
    assert!(m.on(Event::Tick, at(19_999)).is_empty());
    // An answer at the deadline comes too late: the timeout wins.
    let effects = m.on(accept("insurer"), at(20_000));
    assert_eq!(m.job().state(), JobState::Failed);
    assert_eq!(
        m.job().reason,
        "party insurer, bank did not answer the assignment within 20 s"
    );
    assert_eq!(party_states(&m), [PartyJobState::Aborted; 3]);
    assert_eq!(effects, ending(&m, Outcome::Failed, 0));
}

#[test]
fn an_approval_extends_the_wait_once_and_times_out_as_such() {
    let mut m = assigned();
    let effects = m.on(awaiting("insurer"), at(5000));
    assert_eq!(
        party(&m, "insurer").state(),
        PartyJobState::AwaitingApproval
    );
    assert_eq!(
        party(&m, "insurer").reason,
        "waiting for an operator at insurer"
    );
    let extended = Duration::from_millis(5000) + secs(100);
    assert_eq!(
        effects,
        [
            Effect::Persist(Box::new(m.job().clone())),
            Effect::Notify,
            Effect::Deadline(Some(extended)),
        ]
    );
    // Said again: no second extension.
    let effects = m.on(awaiting("insurer"), at(6000));
    assert_eq!(effects.len(), 2);
    assert_eq!(m.deadline(), Some(extended));
    m.on(accept("hospital"), at(7000));
    assert!(m.on(Event::Tick, at(104_999)).is_empty());
    let effects = m.on(Event::Tick, at(105_000));
    assert_eq!(
        m.job().reason,
        "party insurer, bank: no answer (approval pending) within 100 s"
    );
    // A party awaiting its human keeps that state; the others that were assigned are aborted.
    assert_eq!(
        party_states(&m),
        [
            PartyJobState::Aborted,
            PartyJobState::AwaitingApproval,
            PartyJobState::Aborted
        ]
    );
    assert_eq!(effects, ending(&m, Outcome::Failed, 0));
}

#[test]
fn an_approved_party_answers_and_the_job_runs() {
    let mut m = assigned();
    m.on(awaiting("bank"), at(100));
    m.on(accept("hospital"), at(200));
    // Once a party answered, an awaiting note from it changes nothing.
    assert!(m.on(awaiting("hospital"), at(250)).is_empty());
    m.on(accept("insurer"), at(300));
    assert_eq!(m.job().state(), JobState::Submitted);
    m.on(
        report(
            "bank",
            job_report::Report::Accepted(pb::Admission {
                policy_sha256: vec![1; 32],
                approved_by: "dr. who".into(),
            }),
        ),
        at(50_000),
    );
    assert_eq!(m.job().state(), JobState::Running);
    assert_eq!(party(&m, "bank").reason, "", "the note is cleared");
    assert_eq!(
        m.deadline(),
        Some(Duration::from_millis(50_000) + secs(1000))
    );
}

#[test]
fn a_running_job_times_out() {
    let mut m = running();
    m.on(upload("hospital"), at(2000));
    m.on(progress("bank", 0.5, 7), at(2000));
    assert!(m.on(Event::Tick, at(1_000_999)).is_empty());
    let effects = m.on(Event::Tick, at(1_001_000));
    assert_eq!(m.job().reason, "the job exceeded its run time of 1000 s");
    assert_eq!(
        party_states(&m),
        [
            PartyJobState::Uploaded,
            PartyJobState::Aborted,
            PartyJobState::Aborted
        ]
    );
    assert_eq!(effects, ending(&m, Outcome::Failed, 7));
}

#[test]
fn a_cancel_aborts_the_job_in_every_phase() {
    let reason = "cancelled by the analyst: wrong cohort";
    let waiting = JobLifecycle::start(submitted(), limits(), [], at(0)).0;
    let mut answering = assigned();
    answering.on(reject("bank", "no"), at(10));
    let mut uploading = running();
    uploading.on(upload("insurer"), at(2000));
    for (mut m, parties) in [
        (waiting, [PartyJobState::Pending; 3]),
        (
            answering,
            [
                PartyJobState::Aborted,
                PartyJobState::Aborted,
                PartyJobState::Rejected,
            ],
        ),
        (
            uploading,
            [
                PartyJobState::Aborted,
                PartyJobState::Uploaded,
                PartyJobState::Aborted,
            ],
        ),
    ] {
        let effects = m.on(cancel(), at(3000));
        assert_eq!(m.job().state(), JobState::Aborted);
        assert_eq!(m.job().reason, reason);
        assert_eq!(party_states(&m), parties);
        assert_eq!(effects, ending(&m, Outcome::Aborted, 0));
        assert_absorbing(m, 4000);
    }
}

#[test]
fn a_shutdown_or_an_internal_error_fails_the_job_in_every_phase() {
    for (event, reason) in [
        (Event::Shutdown, SHUTDOWN_REASON.to_string()),
        (
            Event::Internal("storage: broken".into()),
            "internal: storage: broken".into(),
        ),
    ] {
        let mut assigning = JobLifecycle::start(submitted(), limits(), all_online(), at(0)).0;
        let waiting = JobLifecycle::start(submitted(), limits(), [], at(0)).0;
        for m in [&mut assigning, &mut assigned(), &mut running()] {
            let _ = m.on(event.clone(), at(3000));
            assert_eq!(m.job().state(), JobState::Failed);
            assert_eq!(m.job().reason, reason);
        }
        let mut m = waiting;
        let effects = m.on(event, at(3000));
        assert_eq!(effects, ending(&m, Outcome::Failed, 0));
    }
}

#[test]
fn a_party_lost_after_its_assignment_fails_the_job() {
    let mut m = assigned();
    m.on(accept("insurer"), at(100));
    let effects = m.on(offline("insurer"), at(200));
    assert_eq!(
        m.job().reason,
        "party insurer disconnected before accepting the job"
    );
    let insurer = party(&m, "insurer");
    assert_eq!(
        (insurer.state(), insurer.reason.as_str()),
        (PartyJobState::Failed, "disconnected")
    );
    assert_eq!(effects, ending(&m, Outcome::Failed, 0));

    let mut m = running();
    m.on(upload("hospital"), at(2000));
    // A party that has uploaded may go: its share is stored.
    assert_eq!(m.on(offline("hospital"), at(2100)), []);
    let effects = m.on(offline("bank"), at(2200));
    assert_eq!(
        m.job().reason,
        "party bank disconnected while the job was running"
    );
    assert_eq!(
        party_states(&m),
        [
            PartyJobState::Uploaded,
            PartyJobState::Aborted,
            PartyJobState::Failed
        ]
    );
    assert_eq!(effects, ending(&m, Outcome::Failed, 0));
}

#[test]
fn a_party_that_uploaded_and_restarts_does_not_stop_the_job() {
    let mut m = running();
    m.on(upload("hospital"), at(2000));
    assert!(m.on(offline("hospital"), at(2100)).is_empty());
    assert!(m.on(online("hospital"), at(2200)).is_empty());
    m.on(upload("insurer"), at(2300));
    m.on(upload("bank"), at(2400));
    assert_eq!(m.job().state(), JobState::Succeeded);
}

#[test]
fn a_failure_report_fails_the_job_once_assigned() {
    for mut m in [assigned(), running()] {
        let effects = m.on(failed("insurer", "out of memory"), at(5000));
        assert_eq!(m.job().reason, "party insurer failed: out of memory");
        let insurer = party(&m, "insurer");
        assert_eq!(
            (insurer.state(), insurer.reason.as_str()),
            (PartyJobState::Failed, "out of memory")
        );
        assert_eq!(effects, ending(&m, Outcome::Failed, 0));
    }
}

#[test]
fn a_party_gone_when_the_registry_answers_fails_the_job() {
    let (mut m, _) = JobLifecycle::start(submitted(), limits(), all_online(), at(0));
    assert!(m.on(offline("insurer"), at(0)).is_empty());
    let effects = m.on(Event::Registry(registry()), at(0));
    assert_eq!(m.job().reason, "party insurer disconnected");
    assert_eq!(party_states(&m), [PartyJobState::Pending; 3]);
    assert!(
        !sent(&effects)
            .iter()
            .any(|(_, e)| matches!(e, party_event::Event::Assign(_))),
        "{effects:?}"
    );
    // (No deadline to clear: none is set while the registry is read.)
    let mut expected = ending(&m, Outcome::Failed, 0);
    assert_eq!(expected.pop(), Some(Effect::Deadline(None)));
    assert_eq!(effects, expected);
}

#[test]
fn duplicate_and_out_of_order_events() {
    // Out of order: an upload or progress before the start, an answer after it.
    let mut m = assigned();
    assert!(m.on(upload("bank"), at(10)).is_empty());
    assert!(m.on(progress("bank", 0.5, 1), at(10)).is_empty());
    assert!(m.on(Event::Registry(registry()), at(10)).is_empty());
    // A repeated answer is recorded (and audited) again, as a party's last word.
    let first = m.on(accept("bank"), at(20));
    let again = m.on(accept("bank"), at(30));
    assert_eq!(first.len(), 3);
    assert_eq!(again.len(), 3);
    assert!(matches!(
        again[0],
        Effect::Audit(AuditEvent::PartyAnswer { .. })
    ));
    m.on(accept("hospital"), at(40));
    m.on(accept("insurer"), at(50));
    assert_eq!(m.job().state(), JobState::Running);
    for late in [accept("bank"), reject("bank", "no"), awaiting("bank")] {
        assert!(m.on(late, at(60)).is_empty());
    }
    // A repeated upload is stored once: not audited or counted twice.
    let first = m.on(upload("bank"), at(70));
    assert_eq!(first.len(), 3);
    let again = m.on(upload("bank"), at(80));
    assert_eq!(
        again,
        [Effect::Persist(Box::new(m.job().clone())), Effect::Notify]
    );
    m.on(upload("hospital"), at(90));
    assert_eq!(m.job().state(), JobState::Running);
    m.on(upload("insurer"), at(100));
    assert_eq!(m.job().state(), JobState::Succeeded);
}

#[test]
fn a_party_outside_the_job_changes_nothing() {
    let waiting = JobLifecycle::start(submitted(), limits(), [], at(0)).0;
    let assigning = JobLifecycle::start(submitted(), limits(), all_online(), at(0)).0;
    for mut m in [waiting, assigning, assigned(), running()] {
        let before = m.job().clone();
        for event in every_event() {
            let stranger = match &event {
                Event::Report { party, .. }
                | Event::Uploaded { party, .. }
                | Event::PartyOnline { party }
                | Event::PartyOffline { party } => party == "mallory",
                _ => false,
            };
            if stranger {
                assert!(m.on(event.clone(), at(1)).is_empty(), "{event:?}");
            }
        }
        assert_eq!(m.job(), &before);
        assert!(!m.is_final());
    }
}

#[test]
fn an_unfinished_job_recovered_at_restart_fails_and_releases_nothing() {
    let mut uploading = running();
    uploading.on(upload("bank"), at(2000));
    for record in [
        submitted(),
        assigned().job().clone(),
        running().job().clone(),
        uploading.job().clone(),
    ] {
        let (m, effects) = JobLifecycle::recover(record.clone(), limits(), at(9000));
        let job = m.job();
        assert_eq!(job.state(), JobState::Failed);
        assert_eq!(job.reason, RESTART_REASON);
        assert_eq!(
            (job.finished_at_ms, job.updated_at_ms),
            (WALL + 9000, WALL + 9000)
        );
        // The parties' states are left as they were.
        assert_eq!(job.parties, record.parties);
        assert_eq!(
            effects,
            [
                Effect::DeleteResults,
                Effect::Persist(Box::new(job.clone()))
            ]
        );
        assert_absorbing(m, 10_000);
    }
}

#[test]
fn a_final_job_recovered_at_restart_stays_as_it_is() {
    let mut done = running();
    for p in PARTIES {
        done.on(upload(p), at(3000));
    }
    let mut cancelled = assigned();
    cancelled.on(cancel(), at(10));
    for record in [done.job().clone(), cancelled.job().clone()] {
        let (m, effects) = JobLifecycle::recover(record.clone(), limits(), at(9000));
        assert!(effects.is_empty());
        assert_eq!(m.job(), &record);
        assert_absorbing(m, 10_000);
    }
}

#[test]
fn job_state_names() {
    assert_eq!(state_name(JobState::Succeeded), "succeeded");
    assert_eq!(state_name(JobState::Running), "running");
    assert!(is_final(JobState::Rejected));
    assert!(!is_final(JobState::Approved));
}

#[test]
fn a_flood_of_progress_reports_costs_a_bounded_number_of_commits() {
    let mut m = running();
    // 10,000 reports from every party over 10 s (one a millisecond): at most one commit per
    // `PROGRESS_PERSIST_INTERVAL`, however many come in.
    let mut commits = 0;
    let mut notified = 0;
    let reports = 10_000u64;
    for i in 0..reports {
        let p = PARTIES[(i % 3) as usize];
        let effects = m.on(progress(p, 0.5, i), at(1000 + i));
        commits += persisted(&effects).len();
        notified += effects.iter().filter(|e| **e == Effect::Notify).count();
    }
    let span = Duration::from_millis(reports);
    let bound = (span.as_millis() / PROGRESS_PERSIST_INTERVAL.as_millis()) as usize + 1;
    assert!(commits <= bound, "{commits} commits for {reports} reports");
    assert!(commits >= 1);
    assert_eq!(notified, commits, "watchers are told what is stored");
    // In memory the latest report counts...
    assert_eq!(party(&m, "bank").rounds, reports - 2);
    // ...and a state change persists it at once: a state change is never held back.
    let effects = m.on(upload("bank"), at(1000 + reports));
    let saved = persisted(&effects);
    assert_eq!(saved.len(), 1);
    let bank = saved[0].parties.iter().find(|p| p.party == "bank").unwrap();
    assert_eq!(bank.state(), PartyJobState::Uploaded);
    let insurer = saved[0]
        .parties
        .iter()
        .find(|p| p.party == "insurer")
        .unwrap();
    assert_eq!(insurer.rounds, reports - 3);
    // A failure right after a held-back report is persisted too.
    m.on(progress("insurer", 0.9, 1), at(1000 + reports + 1));
    let effects = m.on(failed("insurer", "disk"), at(1000 + reports + 2));
    let saved = persisted(&effects);
    assert_eq!(saved.last().map(Job::state), Some(JobState::Failed));
}
