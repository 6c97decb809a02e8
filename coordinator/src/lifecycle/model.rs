//! The machine against a small reference model, over random event sequences with injected
//! faults: parties lost, restarted (offline, then online), silent until a timeout, failing,
//! refusing; duplicate events, events from a party outside the job, cancellations, shutdowns,
//! a registry that cannot be read, and the coordinator restarting (the machine recovered from
//! the last record it persisted). At every step the machine must agree with the model and keep
//! its invariants.

use proptest::prelude::*;

use super::*;

const NAMES: [&str; 3] = ["p0", "p1", "p2"];
const STRANGER: &str = "mallory";
const REGISTRY_ERROR: &str = "storage: broken";

fn limits() -> Limits {
    Limits {
        offline_timeout: Duration::from_millis(500),
        accept_timeout: Duration::from_millis(1000),
        approval_timeout: Duration::from_millis(2500),
        run_timeout: Duration::from_millis(3000),
    }
}

fn at(mono: Duration) -> Now {
    Now {
        wall_ms: 1_700_000_000_000 + mono.as_millis() as i64,
        mono,
    }
}

/// What happens next; a party is an index (past the job's parties: a stranger).
#[derive(Debug, Clone)]
enum Step {
    Online(usize),
    Offline(usize),
    /// The party restarts: offline, then online again at once.
    Restart(usize),
    Accept(usize),
    Reject(usize),
    Await(usize),
    Fail(usize),
    Progress(usize),
    Upload(usize),
    Cancel,
    Shutdown,
    Tick,
    /// A tick exactly at the machine's deadline (if it has one).
    AtDeadline,
    /// A tick a millisecond before it.
    JustBefore,
    /// The previous event again.
    Repeat,
    /// The coordinator restarts: the machine is recovered from its last persisted record.
    CoordinatorRestart,
}

#[derive(Debug, Clone)]
struct Case {
    parties: usize,
    online: Vec<bool>,
    registry_fails: bool,
    steps: Vec<(u64, Step)>,
}

/// A step: with `faults`, anything; without, only what a healthy deployment does (parties
/// come online, answer, approve, report and upload; strangers and repeats still happen).
fn step(faults: bool) -> BoxedStrategy<Step> {
    // Mostly the job's parties; index 3 is always a stranger (and 2 is one in a 2-party job).
    let who = prop_oneof![9 => 0..3usize, 1 => Just(3usize)];
    let healthy = prop_oneof![
        12 => who.clone().prop_map(Step::Online),
        24 => who.clone().prop_map(Step::Accept),
        3 => who.clone().prop_map(Step::Await),
        4 => who.clone().prop_map(Step::Progress),
        24 => who.clone().prop_map(Step::Upload),
        2 => Just(Step::Tick),
        1 => Just(Step::JustBefore),
        4 => Just(Step::Repeat),
    ];
    if !faults {
        return healthy.boxed();
    }
    prop_oneof![
        60 => healthy,
        1 => who.clone().prop_map(Step::Offline),
        1 => who.clone().prop_map(Step::Restart),
        1 => who.clone().prop_map(Step::Reject),
        1 => who.prop_map(Step::Fail),
        1 => Just(Step::Cancel),
        1 => Just(Step::AtDeadline),
        1 => Just(Step::Shutdown),
        1 => Just(Step::CoordinatorRestart),
    ]
    .boxed()
}

fn case() -> impl Strategy<Value = Case> {
    let delay = prop_oneof![40 => 0u64..20, 1 => 0u64..4000];
    (
        2..=3usize,
        prop::collection::vec(prop::bool::weighted(0.8), 3),
        prop::bool::weighted(0.05),
        prop::bool::ANY,
    )
        .prop_flat_map(move |(parties, online, registry_fails, faults)| {
            prop::collection::vec((delay.clone(), step(faults)), 0..64).prop_map(move |steps| {
                Case {
                    parties,
                    online: online.clone(),
                    registry_fails,
                    steps,
                }
            })
        })
}

/// The reference: the job's state, its parties' states and its deadline, by the rules alone.
#[derive(Debug)]
struct Model {
    parties: Vec<String>,
    online: BTreeSet<String>,
    registry_fails: bool,
    phase: ModelPhase,
    state: JobState,
    reason: String,
    states: BTreeMap<String, PartyJobState>,
    answers: BTreeMap<String, Option<String>>,
    awaiting: BTreeSet<String>,
    deadline: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelPhase {
    Waiting,
    Answering,
    Running,
    Final,
}

impl Model {
    fn new(parties: &[String], online: &[String], registry_fails: bool, now: Duration) -> Self {
        let mut model = Self {
            parties: parties.to_vec(),
            online: online.iter().cloned().collect(),
            registry_fails,
            phase: ModelPhase::Waiting,
            state: JobState::Submitted,
            reason: String::new(),
            states: parties
                .iter()
                .map(|p| (p.clone(), PartyJobState::Pending))
                .collect(),
            answers: BTreeMap::new(),
            awaiting: BTreeSet::new(),
            deadline: Some(now + limits().offline_timeout),
        };
        model.assign_if_ready(now);
        model
    }

    fn is_party(&self, p: &str) -> bool {
        self.parties.iter().any(|q| q == p)
    }

    fn all(&self, state: PartyJobState) -> bool {
        self.states.values().all(|s| *s == state)
    }

    fn set_all(&mut self, state: PartyJobState) {
        for s in self.states.values_mut() {
            *s = state;
        }
    }

    fn assign_if_ready(&mut self, now: Duration) {
        if self.phase != ModelPhase::Waiting
            || !self.parties.iter().all(|p| self.online.contains(p))
        {
            return;
        }
        if self.registry_fails {
            return self.end(JobState::Failed, format!("internal: {REGISTRY_ERROR}"));
        }
        self.set_all(PartyJobState::Assigned);
        self.phase = ModelPhase::Answering;
        self.deadline = Some(now + limits().accept_timeout);
    }

    fn end(&mut self, state: JobState, reason: String) {
        if state != JobState::Succeeded {
            for s in self.states.values_mut() {
                if matches!(
                    s,
                    PartyJobState::Assigned | PartyJobState::Accepted | PartyJobState::Running
                ) {
                    *s = PartyJobState::Aborted;
                }
            }
        }
        self.state = state;
        self.reason = reason;
        self.phase = ModelPhase::Final;
        self.deadline = None;
    }

    fn in_order(&self, keep: impl Fn(&str) -> bool) -> String {
        let names: Vec<&str> = self
            .parties
            .iter()
            .map(String::as_str)
            .filter(|p| keep(p))
            .collect();
        names.join(", ")
    }

    fn time_out(&mut self) {
        let l = limits();
        let reason = match self.phase {
            ModelPhase::Waiting => format!(
                "party {} offline: not connected within {} s",
                self.in_order(|p| !self.online.contains(p)),
                l.offline_timeout.as_secs_f64()
            ),
            ModelPhase::Answering => {
                let silent = self.in_order(|p| !self.answers.contains_key(p));
                if self
                    .parties
                    .iter()
                    .any(|p| !self.answers.contains_key(p) && self.awaiting.contains(p))
                {
                    format!(
                        "party {silent}: no answer (approval pending) within {} s",
                        l.approval_timeout.as_secs_f64()
                    )
                } else {
                    format!(
                        "party {silent} did not answer the assignment within {} s",
                        l.accept_timeout.as_secs_f64()
                    )
                }
            }
            ModelPhase::Running => format!(
                "the job exceeded its run time of {} s",
                l.run_timeout.as_secs_f64()
            ),
            ModelPhase::Final => return,
        };
        self.end(JobState::Failed, reason);
    }

    fn lose(&mut self, p: &str, when: &str) {
        self.states.insert(p.into(), PartyJobState::Failed);
        self.end(JobState::Failed, format!("party {p} disconnected {when}"));
    }

    fn answered(&mut self, now: Duration) {
        if self.answers.len() < self.parties.len() {
            return;
        }
        let refusals: Vec<String> = self
            .parties
            .iter()
            .filter_map(|p| self.answers[p].as_ref().map(|r| format!("{p}: {r}")))
            .collect();
        if !refusals.is_empty() {
            return self.end(JobState::Rejected, refusals.join("; "));
        }
        self.set_all(PartyJobState::Running);
        self.state = JobState::Running;
        self.phase = ModelPhase::Running;
        self.deadline = Some(now + limits().run_timeout);
    }

    fn on(&mut self, event: &Event, now: Duration) {
        if self.phase == ModelPhase::Final {
            return;
        }
        if self.deadline.is_some_and(|d| now >= d) {
            return self.time_out();
        }
        let phase = self.phase;
        match event {
            Event::Cancel { reason } => self.end(JobState::Aborted, reason.clone()),
            Event::Shutdown => self.end(JobState::Failed, SHUTDOWN_REASON.into()),
            Event::PartyOnline { party } if self.is_party(party) => {
                self.online.insert(party.clone());
                self.assign_if_ready(now);
            }
            Event::PartyOffline { party } if self.is_party(party) => {
                self.online.remove(party);
                match phase {
                    ModelPhase::Answering => self.lose(party, "before accepting the job"),
                    ModelPhase::Running if self.states[party] != PartyJobState::Uploaded => {
                        self.lose(party, "while the job was running");
                    }
                    _ => {}
                }
            }
            Event::Report { party, report }
                if self.is_party(party)
                    && matches!(phase, ModelPhase::Answering | ModelPhase::Running) =>
            {
                let answering = phase == ModelPhase::Answering;
                match report {
                    job_report::Report::Failed(why) => {
                        self.states.insert(party.clone(), PartyJobState::Failed);
                        self.end(JobState::Failed, format!("party {party} failed: {why}"));
                    }
                    job_report::Report::Accepted(_) if answering => {
                        self.states.insert(party.clone(), PartyJobState::Accepted);
                        self.answers.insert(party.clone(), None);
                        self.answered(now);
                    }
                    job_report::Report::Rejected(why) if answering => {
                        self.states.insert(party.clone(), PartyJobState::Rejected);
                        self.answers.insert(party.clone(), Some(why.clone()));
                        self.answered(now);
                    }
                    job_report::Report::AwaitingApproval(_)
                        if answering && !self.answers.contains_key(party) =>
                    {
                        self.states
                            .insert(party.clone(), PartyJobState::AwaitingApproval);
                        if self.awaiting.insert(party.clone()) {
                            self.deadline =
                                self.deadline.max(Some(now + limits().approval_timeout));
                        }
                    }
                    _ => {}
                }
            }
            Event::Uploaded { party, .. }
                if self.is_party(party) && phase == ModelPhase::Running =>
            {
                self.states.insert(party.clone(), PartyJobState::Uploaded);
                if self.all(PartyJobState::Uploaded) {
                    self.end(JobState::Succeeded, String::new());
                }
            }
            _ => {}
        }
    }

    /// The coordinator restarted: an unfinished job fails, its parties' states as they were.
    fn restart(&mut self) {
        if self.phase != ModelPhase::Final {
            self.state = JobState::Failed;
            self.reason = RESTART_REASON.into();
            self.phase = ModelPhase::Final;
            self.deadline = None;
        }
    }
}

/// Whether the machine may go from `from` to `to` (within one step or across steps).
fn allowed(from: JobState, to: JobState) -> bool {
    from == to
        || match from {
            JobState::Submitted => matches!(
                to,
                JobState::Approved | JobState::Failed | JobState::Rejected | JobState::Aborted
            ),
            JobState::Approved => to == JobState::Running,
            JobState::Running => matches!(
                to,
                JobState::Succeeded | JobState::Failed | JobState::Aborted
            ),
            _ => false,
        }
}

/// What the harness knows across steps.
struct Harness {
    parties: Vec<String>,
    registry_fails: bool,
    /// The record as last persisted (the store's copy).
    stored: Job,
    completed: usize,
    results_stored: BTreeSet<String>,
    detached: bool,
}

impl Harness {
    /// Runs one step's effects (answering a registry request at once, as the driver does) and
    /// checks the machine's invariants on them.
    fn step(
        &mut self,
        m: &mut JobLifecycle,
        model: &Model,
        effects: Vec<Effect>,
        before: (&Job, bool, Option<Duration>),
        now: Duration,
    ) -> Result<(), TestCaseError> {
        let (job_before, final_before, deadline_before) = before;
        let mut effects = effects;
        // The registry request is answered once the step's effects are carried out.
        if effects.contains(&Effect::LoadRegistry) {
            let answer = if self.registry_fails {
                Event::Internal(REGISTRY_ERROR.into())
            } else {
                Event::Registry(
                    self.parties
                        .iter()
                        .map(|p| pb::PartyInfo {
                            id: p.clone(),
                            endpoint: format!("https://{p}"),
                            ..Default::default()
                        })
                        .collect(),
                )
            };
            effects.extend(m.on(answer, at(now)));
        }
        if final_before {
            prop_assert!(effects.is_empty(), "a final job moved: {:?}", effects);
            prop_assert_eq!(m.job(), job_before);
            return Ok(());
        }
        let mut last_persisted: Option<&Job> = None;
        let mut deadline = deadline_before;
        for (i, effect) in effects.iter().enumerate() {
            match effect {
                Effect::Persist(job) => {
                    prop_assert_eq!(
                        is_final(job.state()),
                        self.detached,
                        "the final record is persisted once no more events come in"
                    );
                    prop_assert!(
                        allowed(self.stored.state(), job.state()),
                        "{:?} -> {:?}",
                        self.stored.state(),
                        job.state()
                    );
                    self.stored = (**job).clone();
                    last_persisted = Some(job);
                }
                Effect::Notify => prop_assert!(
                    i > 0 && matches!(effects[i - 1], Effect::Persist(_)),
                    "a notification without the record persisted just before: {:?}",
                    effects
                ),
                Effect::Send { party, event } => {
                    prop_assert!(self.parties.contains(party), "sent to {}", party);
                    let Some(record) = last_persisted else {
                        return Err(TestCaseError::fail(format!(
                            "{party} told before anything was persisted: {effects:?}"
                        )));
                    };
                    match &**event {
                        party_event::Event::Assign(_) => {
                            let assigned = record
                                .parties
                                .iter()
                                .any(|p| p.party == *party && p.state() == PartyJobState::Assigned);
                            prop_assert!(assigned, "assigned before persisted: {:?}", record);
                        }
                        party_event::Event::Start(_) => {
                            prop_assert_eq!(record.state(), JobState::Running);
                        }
                        party_event::Event::Abort(abort) => {
                            prop_assert!(is_final(record.state()));
                            prop_assert_ne!(record.state(), JobState::Succeeded);
                            prop_assert_eq!(&abort.reason, &record.reason);
                        }
                    }
                }
                Effect::Detach => {
                    prop_assert!(!self.detached, "detached twice");
                    self.detached = true;
                }
                Effect::DeleteResults => {
                    prop_assert!(m.is_final() && m.job().state() != JobState::Succeeded);
                }
                Effect::Audit(AuditEvent::Completed { outcome, .. }) => {
                    self.completed += 1;
                    prop_assert_eq!(Some(*outcome), Outcome::of_state(m.job().state()));
                }
                Effect::Audit(AuditEvent::ResultStored { party, .. }) => {
                    prop_assert!(self.parties.contains(party));
                    prop_assert!(self.results_stored.insert(party.clone()), "stored twice");
                }
                Effect::Audit(AuditEvent::PartyAnswer { party, .. }) => {
                    prop_assert!(self.parties.contains(party));
                }
                Effect::Audit(other) => prop_assert!(false, "unexpected audit {:?}", other),
                Effect::Checkpoint => prop_assert!(m.is_final()),
                Effect::LoadRegistry => {}
                Effect::Deadline(at) => deadline = *at,
            }
        }
        // The deadline effects say when the machine wants its tick.
        prop_assert_eq!(deadline, m.deadline());
        // What is in memory is what is stored, except progress not persisted yet (progress
        // reports are persisted at most once per `PROGRESS_PERSIST_INTERVAL`; the next
        // persist carries them).
        if effects.iter().any(|e| matches!(e, Effect::Persist(_))) {
            prop_assert_eq!(m.job(), &self.stored);
        } else {
            prop_assert_eq!(without_progress(m.job()), without_progress(&self.stored));
        }
        if m.is_final() {
            prop_assert!(self.detached);
            prop_assert!(effects.contains(&Effect::Checkpoint));
            prop_assert_eq!(self.completed, 1);
            // What does not succeed releases nothing.
            let succeeded = m.job().state() == JobState::Succeeded;
            prop_assert_eq!(effects.contains(&Effect::DeleteResults), !succeeded);
        }
        self.agree(m, model)
    }

    fn agree(&self, m: &JobLifecycle, model: &Model) -> Result<(), TestCaseError> {
        let job = m.job();
        prop_assert_eq!(m.is_final(), model.phase == ModelPhase::Final);
        prop_assert_eq!(m.deadline(), model.deadline);
        prop_assert_eq!(job.state(), model.state);
        prop_assert_eq!(&job.reason, &model.reason);
        let states: BTreeMap<String, PartyJobState> = job
            .parties
            .iter()
            .map(|p| (p.party.clone(), p.state()))
            .collect();
        prop_assert_eq!(&states, &model.states);
        if job.state() == JobState::Succeeded {
            // Released only when every party accepted and uploaded.
            prop_assert!(model.answers.values().all(Option::is_none));
            prop_assert_eq!(model.answers.len(), self.parties.len());
            prop_assert_eq!(self.results_stored.len(), self.parties.len());
            prop_assert!(states.values().all(|s| *s == PartyJobState::Uploaded));
        }
        Ok(())
    }
}

/// `job` without what a progress report changes.
fn without_progress(job: &Job) -> Job {
    let mut job = job.clone();
    job.updated_at_ms = 0;
    for p in &mut job.parties {
        p.progress = 0.0;
        p.rounds = 0;
        p.bytes_sent = 0;
        p.bytes_received = 0;
    }
    job
}

fn job(parties: &[String]) -> Job {
    Job {
        id: "job".into(),
        state: JobState::Submitted as i32,
        parties: parties
            .iter()
            .map(|p| PartyJobStatus {
                party: p.clone(),
                state: PartyJobState::Pending as i32,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn name(parties: &[String], i: usize) -> String {
    parties.get(i).cloned().unwrap_or_else(|| STRANGER.into())
}

/// The events of `step` at `now`, and when each happens (`deadline`: the machine's).
fn events(
    step: &Step,
    parties: &[String],
    now: Duration,
    deadline: Option<Duration>,
) -> Vec<(Event, Duration)> {
    let who = |i: &usize| name(parties, *i);
    let report = |i: &usize, report| {
        vec![(
            Event::Report {
                party: who(i),
                report,
            },
            now,
        )]
    };
    match step {
        Step::Online(i) => vec![(Event::PartyOnline { party: who(i) }, now)],
        Step::Offline(i) => vec![(Event::PartyOffline { party: who(i) }, now)],
        Step::Restart(i) => vec![
            (Event::PartyOffline { party: who(i) }, now),
            (Event::PartyOnline { party: who(i) }, now),
        ],
        Step::Accept(i) => report(
            i,
            job_report::Report::Accepted(pb::Admission {
                policy_sha256: vec![1; 32],
                approved_by: String::new(),
            }),
        ),
        Step::Reject(i) => report(
            i,
            job_report::Report::Rejected(format!("no from {}", who(i))),
        ),
        Step::Await(i) => report(i, job_report::Report::AwaitingApproval("wait".into())),
        Step::Fail(i) => report(i, job_report::Report::Failed("boom".into())),
        Step::Progress(i) => report(
            i,
            job_report::Report::Progress(pb::JobProgress {
                fraction: 0.5,
                rounds: 3,
                ..Default::default()
            }),
        ),
        Step::Upload(i) => vec![(
            Event::Uploaded {
                party: who(i),
                bytes: 8,
                sha256: [1; 32],
            },
            now,
        )],
        Step::Cancel => vec![(
            Event::Cancel {
                reason: "cancelled by the analyst".into(),
            },
            now,
        )],
        Step::Shutdown => vec![(Event::Shutdown, now)],
        Step::Tick => vec![(Event::Tick, now)],
        Step::AtDeadline => vec![(Event::Tick, deadline.unwrap_or(now).max(now))],
        Step::JustBefore => match deadline {
            Some(d) if d > now + Duration::from_millis(1) => {
                vec![(Event::Tick, d - Duration::from_millis(1))]
            }
            _ => vec![(Event::Tick, now)],
        },
        Step::Repeat | Step::CoordinatorRestart => Vec::new(),
    }
}

fn run(case: &Case) -> Result<(), TestCaseError> {
    let parties: Vec<String> = NAMES[..case.parties]
        .iter()
        .map(|p| p.to_string())
        .collect();
    let online: Vec<String> = parties
        .iter()
        .zip(&case.online)
        .filter(|(_, on)| **on)
        .map(|(p, _)| p.clone())
        .collect();
    let mut now = Duration::ZERO;
    let record = job(&parties);
    let (mut m, effects) = JobLifecycle::start(record.clone(), limits(), online.clone(), at(now));
    let mut model = Model::new(&parties, &online, case.registry_fails, now);
    let mut h = Harness {
        parties: parties.clone(),
        registry_fails: case.registry_fails,
        stored: record.clone(),
        completed: 0,
        results_stored: BTreeSet::new(),
        detached: false,
    };
    h.step(&mut m, &model, effects, (&record, false, None), now)?;
    let mut previous: Vec<(Event, Duration)> = Vec::new();
    for (delay, step) in &case.steps {
        now += Duration::from_millis(*delay);
        if let Step::CoordinatorRestart = step {
            let stored = h.stored.clone();
            let (recovered, effects) = JobLifecycle::recover(stored.clone(), limits(), at(now));
            if is_final(stored.state()) {
                prop_assert!(effects.is_empty());
                prop_assert_eq!(recovered.job(), &stored);
            } else {
                prop_assert_eq!(
                    &effects,
                    &vec![
                        Effect::DeleteResults,
                        Effect::Persist(Box::new(recovered.job().clone()))
                    ]
                );
                prop_assert_eq!(&recovered.job().parties, &stored.parties);
                h.stored = recovered.job().clone();
            }
            m = recovered;
            model.restart();
            h.agree(&m, &model)?;
            continue;
        }
        let batch = match step {
            Step::Repeat => previous.clone(),
            _ => events(step, &parties, now, m.deadline()),
        };
        for (event, when) in &batch {
            now = now.max(*when);
            let before = (m.job().clone(), m.is_final(), m.deadline());
            let timed_out = before.2.is_some_and(|d| now >= d);
            let effects = m.on(event.clone(), at(now));
            model.on(event, now);
            if timed_out {
                prop_assert!(m.is_final(), "the deadline passed and nothing happened");
            }
            if matches!(step, Step::JustBefore) && before.2.is_some_and(|d| now < d) {
                prop_assert!(
                    effects.is_empty(),
                    "a tick before the deadline did something"
                );
            }
            h.step(
                &mut m,
                &model,
                effects,
                (&before.0, before.1, before.2),
                now,
            )?;
        }
        if !batch.is_empty() {
            previous = batch;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_machine_agrees_with_the_model_under_faults(case in case()) {
        run(&case)?;
    }
}

/// The generated cases reach every ending (else the property above proves little).
#[test]
fn the_cases_reach_every_ending() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeMap::new();
    for _ in 0..2000 {
        let case = case().new_tree(&mut runner).map(|t| t.current());
        let Ok(case) = case else { continue };
        let parties: Vec<String> = NAMES[..case.parties]
            .iter()
            .map(|p| p.to_string())
            .collect();
        let online: Vec<String> = parties
            .iter()
            .zip(&case.online)
            .filter(|(_, on)| **on)
            .map(|(p, _)| p.clone())
            .collect();
        let mut now = Duration::ZERO;
        let mut model = Model::new(&parties, &online, case.registry_fails, now);
        for (delay, step) in &case.steps {
            now += Duration::from_millis(*delay);
            for (event, when) in events(step, &parties, now, model.deadline) {
                now = now.max(when);
                model.on(&event, now);
            }
        }
        let why = [
            "offline:",
            "did not answer",
            "approval pending",
            "run time",
            "before accepting",
            "while the job was running",
            "failed:",
            "shut down",
            "internal",
        ]
        .into_iter()
        .find(|w| model.reason.contains(w))
        .unwrap_or("");
        *seen.entry((state_name(model.state), why)).or_insert(0) += 1;
    }
    let states: BTreeSet<&str> = seen.keys().map(|(s, _)| s.as_str()).collect();
    for state in [
        "submitted",
        "running",
        "succeeded",
        "failed",
        "rejected",
        "aborted",
    ] {
        assert!(states.contains(state), "no case ends {state}: {seen:?}");
    }
    let succeeded = seen.get(&("succeeded".to_string(), "")).copied();
    assert!(succeeded >= Some(100), "too few successes: {seen:?}");
    let failures = seen.keys().filter(|(s, _)| s == "failed").count();
    assert!(failures >= 8, "too few kinds of failure: {seen:?}");
}
