//! One job's lifecycle as a pure state machine.
//!
//! [`JobLifecycle`] holds a job's record and decides everything that happens to it: which
//! [`Event`] moves it where, what is persisted, audited, sent to which party and when it times
//! out. It does no I/O, takes no locks and reads no clock: [`JobLifecycle::on`] takes the
//! event and the moment it is handled, and returns the [`Effect`]s to carry out, in order. The
//! job's driver in [`crate::service`] is the thin async loop that feeds it events (party
//! reports, uploads, connections, cancellations, its own deadline) and executes the effects.
//!
//! ```text
//!            all parties online        every party answered,        every party uploaded
//!  submitted ──────────────────► assigned ────────────────► approved ──► running ──► succeeded
//!      │                            │        none refused                    │
//!      │ offline timeout, cancel    │ refusals ──► rejected                  │ failure report,
//!      ▼                            ▼                                        ▼ party lost, timeout
//!   failed | aborted           failed | aborted                       failed | aborted
//! ```
//!
//! (`assigned` is the job still `submitted` with its parties assigned.) A job that does not
//! succeed releases nothing: its uploaded shares are deleted and every party is told to abort.
//! Final states are absorbing: once final, the machine ignores every event.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use treaty_audit::{AuditEvent, Digest32, Outcome};
use treaty_proto::v1::{
    self as pb, Job, JobState, PartyJobState, PartyJobStatus, job_report, party_event,
};

/// Progress reports are persisted at most once per this much (monotonic) time per job: a party
/// may report as often as it likes without costing a durable commit each. What was not
/// persisted is in the machine's record, and goes with its next [`Effect::Persist`] (any state
/// change, or the next progress report after the interval).
pub const PROGRESS_PERSIST_INTERVAL: Duration = Duration::from_secs(2);

/// The reason of a job the coordinator's shutdown interrupted.
pub const SHUTDOWN_REASON: &str = "the coordinator shut down while the job was in progress";

/// The reason of a job found unfinished when the coordinator starts again.
pub const RESTART_REASON: &str = "the coordinator restarted while the job was in progress";

/// Whether a job state is final.
pub fn is_final(state: JobState) -> bool {
    matches!(
        state,
        JobState::Succeeded | JobState::Failed | JobState::Rejected | JobState::Aborted
    )
}

/// A job state as the audit log and error messages name it (`succeeded`, `running`, ...).
pub fn state_name(state: JobState) -> String {
    state
        .as_str_name()
        .trim_start_matches("JOB_STATE_")
        .to_ascii_lowercase()
}

/// How long a job waits in each phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a submitted job waits for its parties to come online.
    pub offline_timeout: Duration,
    /// How long the parties have to accept or reject their assignment.
    pub accept_timeout: Duration,
    /// How long a job waits for a human approval at a party whose policy asks for one.
    pub approval_timeout: Duration,
    /// Longest a job may run once started.
    pub run_timeout: Duration,
}

/// A moment, as the caller reads its clocks once per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Wall-clock milliseconds since the Unix epoch: what the job record's timestamps say.
    pub wall_ms: i64,
    /// Monotonic time since an origin of the caller's choosing: what deadlines are measured
    /// in (a wall clock that jumps moves no deadline).
    pub mono: Duration,
}

/// What happened to a job, as told to its machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A party's report about the job (its answer, progress or failure).
    Report {
        /// The reporting party.
        party: String,
        /// What it reports.
        report: job_report::Report,
    },
    /// A party's sealed result for the job was stored.
    Uploaded {
        /// The uploading party.
        party: String,
        /// The stored size.
        bytes: u64,
        /// SHA-256 of the stored bytes.
        sha256: [u8; 32],
    },
    /// A party subscribed to its events (it can be sent assignments now).
    PartyOnline {
        /// The party.
        party: String,
    },
    /// A party's event stream ended.
    PartyOffline {
        /// The party.
        party: String,
    },
    /// The analyst cancelled the job.
    Cancel {
        /// Why, as the job's reason will say.
        reason: String,
    },
    /// The party registry, answering [`Effect::LoadRegistry`].
    Registry(Vec<pb::PartyInfo>),
    /// Time passed: the machine's deadline may have come.
    Tick,
    /// The coordinator is shutting down.
    Shutdown,
    /// The job cannot go on for a reason of the coordinator's own (the registry could not be
    /// read, ...): it fails with `internal: {reason}`.
    Internal(String),
}

/// What the machine asks its driver to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// The job is ending: route no more events to it. Comes once, in the final step, before
    /// anything else of the ending (results deleted, final record persisted, parties told).
    Detach,
    /// Read the party registry and answer with [`Event::Registry`] (or [`Event::Internal`])
    /// once this step's other effects are carried out, before any other event.
    LoadRegistry,
    /// Write the job record (the machine's record after this step).
    Persist(Box<Job>),
    /// Tell the job's watchers that its record changed (always after the [`Effect::Persist`]
    /// of that change).
    Notify,
    /// Send `event` on `party`'s event stream (nothing happens if it is offline).
    Send {
        /// One of the job's parties.
        party: String,
        /// The assignment, the start or the abort.
        event: Box<party_event::Event>,
    },
    /// Append to the coordinator's audit log, under the job.
    Audit(AuditEvent),
    /// Checkpoint the coordinator's audit log (after a job ended).
    Checkpoint,
    /// Delete every sealed result stored for the job (it did not succeed: nothing is released).
    DeleteResults,
    /// From now on, deliver [`Event::Tick`] at this monotonic time (`None`: no deadline).
    Deadline(Option<Duration>),
}

/// Where a job is in its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Submitted: waiting for every party to be online.
    Online,
    /// Every party is online: waiting for the registry to build the assignment.
    Assigning,
    /// Assigned: waiting for every party's answer (`None`: accepted, `Some`: refused, why).
    Answers {
        answered: BTreeMap<String, Option<String>>,
        /// Parties that said a human must approve first (each extends the deadline once).
        awaiting: BTreeSet<String>,
    },
    /// Started: waiting for every party's sealed result.
    Running,
    /// Final.
    Done,
}

/// One job's lifecycle: its record, what it waits for, and until when.
#[derive(Debug, Clone)]
pub struct JobLifecycle {
    job: Job,
    limits: Limits,
    phase: Phase,
    /// Which of the job's parties are online.
    online: BTreeSet<String>,
    deadline: Option<Duration>,
    /// When a progress report was last persisted.
    progress_saved: Option<Duration>,
}

impl JobLifecycle {
    /// The machine of a just-submitted job (state `submitted`, every party pending), given
    /// which parties are online when it starts; and its first effects (its deadline, and the
    /// registry request if every party is online already).
    pub fn start(
        job: Job,
        limits: Limits,
        online: impl IntoIterator<Item = String>,
        now: Now,
    ) -> (Self, Vec<Effect>) {
        let online = online
            .into_iter()
            .filter(|p| job.parties.iter().any(|s| s.party == *p))
            .collect();
        let mut machine = Self {
            job,
            limits,
            phase: Phase::Online,
            online,
            deadline: Some(now.mono + limits.offline_timeout),
            progress_saved: None,
        };
        let mut effects = Vec::new();
        machine.assign_if_all_online(&mut effects);
        if machine.deadline.is_some() {
            effects.push(Effect::Deadline(machine.deadline));
        }
        (machine, effects)
    }

    /// The machine of a job record read back from the store when the coordinator starts. A
    /// final job stays as it is (no effects). An unfinished one lost its coordinator mid-job:
    /// it fails, its partial results are deleted, and the effects are exactly
    /// [`Effect::DeleteResults`] and [`Effect::Persist`] (nobody is connected yet to be told).
    pub fn recover(job: Job, limits: Limits, now: Now) -> (Self, Vec<Effect>) {
        let mut machine = Self {
            job,
            limits,
            phase: Phase::Done,
            online: BTreeSet::new(),
            deadline: None,
            progress_saved: None,
        };
        if is_final(machine.job.state()) {
            return (machine, Vec::new());
        }
        machine.job.set_state(JobState::Failed);
        machine.job.reason = RESTART_REASON.into();
        machine.job.finished_at_ms = now.wall_ms;
        machine.job.updated_at_ms = now.wall_ms;
        let effects = vec![
            Effect::DeleteResults,
            Effect::Persist(Box::new(machine.job.clone())),
        ];
        (machine, effects)
    }

    /// The job's record as the machine last persisted it.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// Whether the job is final (the machine ignores every further event).
    pub fn is_final(&self) -> bool {
        self.phase == Phase::Done
    }

    /// When the machine times out unless something happens first (monotonic time).
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// Handles `event` at `now`: returns what to do, in order. An event at or after the
    /// deadline finds the job timed out; an event about a party outside the job, or any event
    /// after the job is final, changes nothing and returns no effects.
    pub fn on(&mut self, event: Event, now: Now) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.is_final() {
            return effects;
        }
        let deadline = self.deadline;
        if deadline.is_some_and(|d| now.mono >= d) {
            self.time_out(now, &mut effects);
        } else {
            self.handle(event, now, &mut effects);
        }
        if self.deadline != deadline {
            effects.push(Effect::Deadline(self.deadline));
        }
        effects
    }

    fn handle(&mut self, event: Event, now: Now, effects: &mut Vec<Effect>) {
        match event {
            Event::Tick => {}
            Event::Cancel { reason } => self.finish(JobState::Aborted, reason, now, effects),
            Event::Shutdown => self.finish(JobState::Failed, SHUTDOWN_REASON.into(), now, effects),
            Event::Internal(why) => {
                self.finish(JobState::Failed, format!("internal: {why}"), now, effects);
            }
            Event::Registry(registry) => {
                if self.phase == Phase::Assigning {
                    self.assign(&registry, now, effects);
                }
            }
            Event::PartyOnline { party } => {
                if self.is_party(&party) {
                    self.online.insert(party);
                    if self.phase == Phase::Online {
                        self.assign_if_all_online(effects);
                    }
                }
            }
            Event::PartyOffline { party } => {
                if self.is_party(&party) {
                    self.online.remove(&party);
                    self.party_lost(&party, now, effects);
                }
            }
            Event::Report { party, report } => {
                if self.is_party(&party) {
                    self.report(party, report, now, effects);
                }
            }
            Event::Uploaded {
                party,
                bytes,
                sha256,
            } => {
                if self.phase == Phase::Running && self.is_party(&party) {
                    self.uploaded(party, bytes, sha256, now, effects);
                }
            }
        }
    }

    fn is_party(&self, party: &str) -> bool {
        self.job.parties.iter().any(|p| p.party == party)
    }

    fn status(&mut self, party: &str) -> Option<&mut PartyJobStatus> {
        self.job.parties.iter_mut().find(|p| p.party == party)
    }

    fn set_party(&mut self, party: &str, state: PartyJobState, reason: &str) {
        if let Some(p) = self.status(party) {
            p.set_state(state);
            p.reason = reason.to_string();
        }
    }

    /// Persists the record and then tells the watchers.
    fn save(&mut self, now: Now, effects: &mut Vec<Effect>) {
        self.job.updated_at_ms = now.wall_ms;
        effects.push(Effect::Persist(Box::new(self.job.clone())));
        effects.push(Effect::Notify);
    }

    fn send_all(&self, event: &party_event::Event, effects: &mut Vec<Effect>) {
        for p in &self.job.parties {
            effects.push(Effect::Send {
                party: p.party.clone(),
                event: Box::new(event.clone()),
            });
        }
    }

    fn assign_if_all_online(&mut self, effects: &mut Vec<Effect>) {
        if self
            .job
            .parties
            .iter()
            .all(|p| self.online.contains(&p.party))
        {
            self.phase = Phase::Assigning;
            self.deadline = None;
            effects.push(Effect::LoadRegistry);
        }
    }

    /// Every party checks the job against its own datasets: each is sent its assignment with
    /// every peer's data-plane endpoint and certificate, as the registry has them now.
    fn assign(&mut self, registry: &[pb::PartyInfo], now: Now, effects: &mut Vec<Effect>) {
        if let Some(gone) = self
            .job
            .parties
            .iter()
            .find(|p| !self.online.contains(&p.party))
        {
            let reason = format!("party {} disconnected", gone.party);
            return self.finish(JobState::Failed, reason, now, effects);
        }
        let peers: Vec<pb::JobPeer> = self
            .job
            .parties
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let info = registry.iter().find(|i| i.id == p.party);
                pb::JobPeer {
                    party: p.party.clone(),
                    index: index as u32,
                    endpoint: info.map(|i| i.endpoint.clone()).unwrap_or_default(),
                    tls_cert_sha256: info.map(|i| i.tls_cert_sha256.clone()).unwrap_or_default(),
                }
            })
            .collect();
        for p in &mut self.job.parties {
            p.set_state(PartyJobState::Assigned);
            p.reason.clear();
        }
        self.save(now, effects);
        let assignment = party_event::Event::Assign(pb::JobAssignment {
            job_id: self.job.id.clone(),
            spec: self.job.spec.clone(),
            peers,
            submission: self.job.submission.clone(),
        });
        self.send_all(&assignment, effects);
        self.phase = Phase::Answers {
            answered: BTreeMap::new(),
            awaiting: BTreeSet::new(),
        };
        self.deadline = Some(now.mono + self.limits.accept_timeout);
    }

    fn report(
        &mut self,
        party: String,
        report: job_report::Report,
        now: Now,
        effects: &mut Vec<Effect>,
    ) {
        if matches!(self.phase, Phase::Online | Phase::Assigning) {
            // Nothing was asked of the parties yet.
            return;
        }
        match report {
            job_report::Report::Failed(reason) => {
                self.set_party(&party, PartyJobState::Failed, &reason);
                let reason = format!("party {party} failed: {reason}");
                self.finish(JobState::Failed, reason, now, effects);
            }
            job_report::Report::Accepted(admission) => {
                if !matches!(self.phase, Phase::Answers { .. }) {
                    return;
                }
                self.set_party(&party, PartyJobState::Accepted, "");
                effects.push(Effect::Audit(AuditEvent::PartyAnswer {
                    party: party.clone(),
                    admitted: true,
                    policy_sha256: Digest32(admission.policy_sha256.try_into().unwrap_or_default()),
                    approved_by: admission.approved_by,
                    reason: String::new(),
                }));
                self.answered(party, None, now, effects);
            }
            job_report::Report::Rejected(reason) => {
                if !matches!(self.phase, Phase::Answers { .. }) {
                    return;
                }
                self.set_party(&party, PartyJobState::Rejected, &reason);
                effects.push(Effect::Audit(AuditEvent::PartyAnswer {
                    party: party.clone(),
                    admitted: false,
                    policy_sha256: Digest32::default(),
                    approved_by: String::new(),
                    reason: reason.clone(),
                }));
                self.answered(party, Some(reason), now, effects);
            }
            job_report::Report::AwaitingApproval(note) => {
                let Phase::Answers { answered, awaiting } = &mut self.phase else {
                    return;
                };
                if answered.contains_key(&party) {
                    return;
                }
                if awaiting.insert(party.clone()) {
                    let approval = now.mono + self.limits.approval_timeout;
                    self.deadline = self.deadline.max(Some(approval));
                }
                self.set_party(&party, PartyJobState::AwaitingApproval, &note);
                self.save(now, effects);
            }
            job_report::Report::Progress(progress) => {
                if self.phase != Phase::Running {
                    return;
                }
                if let Some(s) = self.status(&party) {
                    s.progress = progress.fraction.clamp(0.0, 1.0);
                    s.rounds = progress.rounds;
                    s.bytes_sent = progress.bytes_sent;
                    s.bytes_received = progress.bytes_received;
                }
                // Not a state change: persisted (and watchers told) at most once per interval.
                let due = self
                    .progress_saved
                    .is_none_or(|at| now.mono >= at + PROGRESS_PERSIST_INTERVAL);
                if due {
                    self.progress_saved = Some(now.mono);
                    self.save(now, effects);
                }
            }
        }
    }

    /// Records `party`'s answer (a later answer replaces an earlier one); once every party has
    /// answered, the job is rejected if any refused, and approved and started otherwise.
    fn answered(
        &mut self,
        party: String,
        refusal: Option<String>,
        now: Now,
        effects: &mut Vec<Effect>,
    ) {
        let Phase::Answers { answered, .. } = &mut self.phase else {
            return;
        };
        answered.insert(party, refusal);
        let all = answered.len() >= self.job.parties.len();
        let refusals: Vec<String> = self
            .job
            .parties
            .iter()
            .filter_map(|p| match answered.get(&p.party) {
                Some(Some(reason)) => Some(format!("{}: {reason}", p.party)),
                _ => None,
            })
            .collect();
        self.save(now, effects);
        if !all {
            return;
        }
        if !refusals.is_empty() {
            return self.finish(JobState::Rejected, refusals.join("; "), now, effects);
        }
        self.job.set_state(JobState::Approved);
        self.save(now, effects);
        for p in &mut self.job.parties {
            p.set_state(PartyJobState::Running);
            p.reason.clear();
        }
        self.job.started_at_ms = now.wall_ms;
        self.job.set_state(JobState::Running);
        self.save(now, effects);
        let start = party_event::Event::Start(pb::JobStart {
            job_id: self.job.id.clone(),
        });
        self.send_all(&start, effects);
        self.phase = Phase::Running;
        self.deadline = Some(now.mono + self.limits.run_timeout);
    }

    fn uploaded(
        &mut self,
        party: String,
        bytes: u64,
        sha256: [u8; 32],
        now: Now,
        effects: &mut Vec<Effect>,
    ) {
        if let Some(s) = self.status(&party)
            && s.state() != PartyJobState::Uploaded
        {
            s.set_state(PartyJobState::Uploaded);
            s.progress = 1.0;
            effects.push(Effect::Audit(AuditEvent::ResultStored {
                party,
                bytes,
                sealed_sha256: Digest32(sha256),
            }));
        }
        self.save(now, effects);
        if self
            .job
            .parties
            .iter()
            .all(|p| p.state() == PartyJobState::Uploaded)
        {
            self.finish(JobState::Succeeded, String::new(), now, effects);
        }
    }

    /// A party's stream ended: fatal once it was assigned the job, until it uploaded.
    fn party_lost(&mut self, party: &str, now: Now, effects: &mut Vec<Effect>) {
        let phase = match self.phase {
            Phase::Answers { .. } => "before accepting the job",
            Phase::Running
                if self
                    .job
                    .parties
                    .iter()
                    .any(|p| p.party == party && p.state() != PartyJobState::Uploaded) =>
            {
                "while the job was running"
            }
            _ => return,
        };
        self.set_party(party, PartyJobState::Failed, "disconnected");
        let reason = format!("party {party} disconnected {phase}");
        self.finish(JobState::Failed, reason, now, effects);
    }

    fn time_out(&mut self, now: Now, effects: &mut Vec<Effect>) {
        let secs = |d: Duration| d.as_secs_f64();
        let reason = match &self.phase {
            Phase::Online => {
                let missing: Vec<&str> = self
                    .job
                    .parties
                    .iter()
                    .map(|p| p.party.as_str())
                    .filter(|p| !self.online.contains(*p))
                    .collect();
                format!(
                    "party {} offline: not connected within {} s",
                    missing.join(", "),
                    secs(self.limits.offline_timeout)
                )
            }
            Phase::Answers { answered, awaiting } => {
                let silent: Vec<&str> = self
                    .job
                    .parties
                    .iter()
                    .map(|p| p.party.as_str())
                    .filter(|p| !answered.contains_key(*p))
                    .collect();
                if silent.iter().any(|p| awaiting.contains(*p)) {
                    format!(
                        "party {}: no answer (approval pending) within {} s",
                        silent.join(", "),
                        secs(self.limits.approval_timeout)
                    )
                } else {
                    format!(
                        "party {} did not answer the assignment within {} s",
                        silent.join(", "),
                        secs(self.limits.accept_timeout)
                    )
                }
            }
            Phase::Running => format!(
                "the job exceeded its run time of {} s",
                secs(self.limits.run_timeout)
            ),
            // No deadline is set while assigning, and a final job has none.
            Phase::Assigning | Phase::Done => return,
        };
        self.finish(JobState::Failed, reason, now, effects);
    }

    /// Ends the job. One that does not succeed releases nothing: its results are deleted, the
    /// parties that were working on it are marked aborted (a party never assigned stays
    /// pending, a failing or refusing one keeps its own state) and every party is told to
    /// abort, once the final record is persisted.
    fn finish(&mut self, state: JobState, reason: String, now: Now, effects: &mut Vec<Effect>) {
        effects.push(Effect::Detach);
        let succeeded = state == JobState::Succeeded;
        if !succeeded {
            for p in &mut self.job.parties {
                if matches!(
                    p.state(),
                    PartyJobState::Assigned | PartyJobState::Accepted | PartyJobState::Running
                ) {
                    p.set_state(PartyJobState::Aborted);
                }
            }
            effects.push(Effect::DeleteResults);
        }
        self.job.reason = reason;
        self.job.finished_at_ms = now.wall_ms;
        self.job.set_state(state);
        self.save(now, effects);
        if !succeeded {
            let abort = party_event::Event::Abort(pb::JobAbort {
                job_id: self.job.id.clone(),
                reason: self.job.reason.clone(),
            });
            self.send_all(&abort, effects);
        }
        effects.push(Effect::Audit(AuditEvent::Completed {
            // `state` is final here: `finish` is only called with an ending.
            outcome: Outcome::of_state(state).unwrap_or(Outcome::Failed),
            rounds: self.job.parties.iter().map(|p| p.rounds).max().unwrap_or(0),
            reason: self.job.reason.clone(),
        }));
        effects.push(Effect::Checkpoint);
        self.phase = Phase::Done;
        self.deadline = None;
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod model;
