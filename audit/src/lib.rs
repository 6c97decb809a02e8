//! # treaty-audit: tamper-evident audit logs
//!
//! Tamper-evident audit logs: append-only, hash-chained entries with Ed25519-signed checkpoints,
//! and the offline verification an auditor runs.
//!
//! Each participant (every party node, and the coordinator) keeps one log: a file of JSON lines,
//! one [`AuditRecord`] per line. A record is an [`AuditEntry`] — sequence number, the previous
//! record's hash, time, who wrote it, the job, and an [`AuditEvent`] — plus its own hash:
//! `SHA-256("treaty-audit-entry-v1" ‖ canonical JSON of the entry)`. Changing a byte of any
//! entry changes its hash, which the next entry holds; deleting or reordering entries breaks the
//! sequence or the chain. After every job the writer appends a [`AuditEvent::Checkpoint`]: an
//! Ed25519 signature with its identity key over `(writer, seq, head hash)`; the coordinator keeps
//! each party's latest signed head ([`SignedHead`]), so a party that later rewrites or truncates
//! its history — even with valid hashes — no longer matches the head it signed.
//!
//! Events never carry a share, key, seed or raw value: job ids, kinds, policy hashes, counts,
//! byte totals and SHA-256 digests of data-plane traffic only.
//!
//! [`verify_log`] checks one log against its writer's public key (and the coordinator's record of
//! its head); [`cross_check`] checks, for every job and every pair of parties, that what A
//! committed as sent to B is what B committed as received from A; [`check_against_coordinator`]
//! checks the parties' logs against the heads and keys the coordinator's own log records for
//! them. Every failure names the writer and the entry.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use treaty_proto::JobKind;

pub mod registry;

pub use registry::Registry;

/// The writer name of the coordinator's own log (no party may take this id).
pub const COORDINATOR_WRITER: &str = "coordinator";

/// What can go wrong with an audit log file or an identity key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The identity key file is not a 32-byte Ed25519 seed.
    #[error("{} is not a 32-byte Ed25519 key", path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
    },
    /// The operating system gave no randomness for a new identity key.
    #[error("no OS randomness for the audit key")]
    NoRandomness,
    /// The log already on disk fails verification under its own key.
    #[error("the audit log {} fails verification: {}", path.display(), list(failures))]
    Tampered {
        /// The log file.
        path: PathBuf,
        /// Every problem found.
        failures: Vec<AuditFailure>,
    },
    /// A record could not be encoded.
    #[error("encoding an audit record: {0}")]
    Encode(#[from] serde_json::Error),
    /// A registry (the coordinator's record of keys and heads) is malformed.
    #[error("audit registry: {0}")]
    Registry(String),
}

fn list(failures: &[AuditFailure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Domain separation of entry hashes.
const ENTRY_DOMAIN: &[u8] = b"treaty-audit-entry-v1";
/// Domain separation of checkpoint signatures.
const CHECKPOINT_DOMAIN: &[u8] = b"treaty-audit-checkpoint-v1";

/// A SHA-256 digest, hex in JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest32(pub [u8; 32]);

impl fmt::Debug for Digest32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Display for Digest32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for Digest32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Digest32 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(Self(out))
    }
}

/// How a job ended at one writer, as [`AuditEvent::Completed`] records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The job ran to the end (at a party: its sealed share was uploaded).
    Succeeded,
    /// The job failed (at a party: here, or reported by a peer).
    Failed,
    /// The job was refused before it ran.
    Rejected,
    /// The job was stopped: cancelled, a peer failed, or the writer shut down.
    Aborted,
}

impl Outcome {
    /// The outcome's name in a log line: `succeeded`, `failed`, `rejected`, `aborted`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Rejected => "rejected",
            Outcome::Aborted => "aborted",
        }
    }

    /// The outcome of a job that ended in `state`; `None` while it has not ended.
    #[must_use]
    pub fn of_state(state: treaty_proto::v1::JobState) -> Option<Self> {
        use treaty_proto::v1::JobState;
        match state {
            JobState::Succeeded => Some(Outcome::Succeeded),
            JobState::Failed => Some(Outcome::Failed),
            JobState::Rejected => Some(Outcome::Rejected),
            JobState::Aborted => Some(Outcome::Aborted),
            JobState::Unspecified
            | JobState::Submitted
            | JobState::Approved
            | JobState::Running => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A job's kind in the log: its name (`stats`, `psi`, `train`, `score`, `fhe-score`), or `none`
/// for a spec that names no computation. Any other word is refused when a log is read.
mod job_kind {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use treaty_proto::JobKind;

    const NONE: &str = "none";

    pub(super) fn serialize<S: Serializer>(
        kind: &Option<JobKind>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.map_or(NONE, JobKind::name))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<JobKind>, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if name == NONE {
            return Ok(None);
        }
        JobKind::parse(&name)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("unknown job kind {name:?}")))
    }
}

/// What happened. Counts, hashes and names only. (Field names must differ from
/// [`AuditEntry`]'s — `seq`, `prev`, `time_ms`, `writer`, `job` — since the event is flattened
/// into the entry.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuditEvent {
    /// A job arrived (its kind, the SHA-256 of its spec's encoding, who signed it and the
    /// SHA-256 of the signed submission, from which the job id derives).
    JobReceived {
        /// `stats`, `psi`, `train`, `score`, `fhe-score` (`none`: the spec names no computation).
        #[serde(with = "job_kind")]
        kind: Option<JobKind>,
        /// SHA-256 of the spec.
        spec_sha256: Digest32,
        /// The analyst who signed the submission.
        #[serde(default)]
        analyst: String,
        /// SHA-256 of the signed submission bytes.
        #[serde(default)]
        submission_sha256: Digest32,
    },
    /// The writer's policy admitted or refused the job.
    PolicyDecision {
        /// Whether the job may run.
        admitted: bool,
        /// SHA-256 of the policy version that decided.
        policy_sha256: Digest32,
        /// Why (empty when admitted).
        reason: String,
        /// Admitted once a human approves it.
        #[serde(default)]
        needs_approval: bool,
    },
    /// A human approved or rejected the job.
    Approval {
        /// Who.
        by: String,
        /// The verdict.
        approved: bool,
        /// Their reason.
        reason: String,
        /// The policy version the approval was given under.
        #[serde(default)]
        policy_sha256: Digest32,
    },
    /// Coordinator: a party's answer to an assignment.
    PartyAnswer {
        /// The party.
        party: String,
        /// Whether it accepted.
        admitted: bool,
        /// The policy version it reported admitting the job under (zeros when refused).
        policy_sha256: Digest32,
        /// Who approved it there ("" when no approval was needed).
        approved_by: String,
        /// Its reason for refusing (or for waiting for approval).
        reason: String,
    },
    /// Coordinator: a party's sealed output share was stored.
    ResultStored {
        /// The party.
        party: String,
        /// Its size.
        bytes: u64,
        /// SHA-256 of the stored bytes (the party's signed upload).
        sealed_sha256: Digest32,
    },
    /// Coordinator: the job's stored sealed results were deleted, its result retention having
    /// passed since it finished (the analyst can no longer fetch them).
    ResultsExpired {
        /// The parties whose sealed results were deleted.
        parties: Vec<String>,
        /// Their total size.
        bytes: u64,
    },
    /// Coordinator: a writer registered this audit key (first time, or a new one).
    WriterKey {
        /// The writer (a party).
        party: String,
        /// Ed25519 public key, hex.
        public_key: String,
    },
    /// Coordinator: a writer's signed head was recorded (the verification key is the one the
    /// writer registered).
    HeadRecorded {
        /// The writer (a party).
        party: String,
        /// The head's sequence number.
        head_seq: u64,
        /// The head's hash.
        head: Digest32,
    },
    /// The writer runs with this roster (recorded when a version is first used): who it
    /// trusts as its peers, coordinator and analysts.
    RosterAccepted {
        /// The roster's version.
        version: u64,
        /// SHA-256 of the roster file.
        sha256: Digest32,
        /// Every member, as `treaty://ROLE/NAME`.
        members: Vec<String>,
    },
    /// The protocol started with these peers.
    ProtocolStart {
        /// Party ids in protocol order.
        peers: Vec<String>,
    },
    /// Per peer, the running digests of every data-plane message of the job (committed when it
    /// ends).
    PeerTraffic {
        /// The peer.
        peer: String,
        /// SHA-256 over the messages sent to the peer, in order, each length-prefixed.
        sent_sha256: Digest32,
        /// Bytes sent.
        sent_bytes: u64,
        /// Where the sent stream stood before each of its last messages (at most 16, oldest
        /// first), committed when the job did not succeed here: messages may have been in
        /// flight when it ended, and a peer that received the stream up to one of these cuts
        /// agrees with it. Empty (and absent from the line) otherwise.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        sent_prefixes: Vec<TrafficPrefix>,
        /// SHA-256 over the messages received from the peer.
        received_sha256: Digest32,
        /// Bytes received.
        received_bytes: u64,
    },
    /// The job ended at this participant.
    Completed {
        /// How it ended.
        outcome: Outcome,
        /// Rounds run.
        rounds: u64,
        /// Why it failed (empty on success).
        reason: String,
    },
    /// When the writer started, its log ended in a torn line (bytes after the last newline: a
    /// crash in the middle of a write, before the write counted) and it cut them off; every
    /// whole line before them verified.
    TailRecovered {
        /// Bytes cut.
        dropped_bytes: u64,
        /// SHA-256 of the bytes cut (they are not kept).
        dropped_sha256: Digest32,
    },
    /// The output share was sealed to a recipient.
    ResultSealed {
        /// The recipient's label.
        recipient: String,
        /// SHA-256 of the bytes uploaded (the signed, sealed share: what the coordinator's
        /// `ResultStored` records).
        sealed_sha256: Digest32,
    },
    /// A signed checkpoint over the head before it.
    Checkpoint {
        /// The signed head: the hash of the previous record.
        head: Digest32,
        /// Its sequence number.
        head_seq: u64,
        /// Ed25519 over `(writer, head_seq, head)`, hex.
        signature: String,
    },
}

/// One entry, before hashing. (No `deny_unknown_fields`: serde does not support it with the
/// flattened event; the event's own tag and fields are checked, and any other change shows as a
/// hash mismatch.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 0, 1, 2, … without gaps.
    pub seq: u64,
    /// Hash of the previous record (zeros for the first).
    pub prev: Digest32,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Who wrote the log.
    pub writer: String,
    /// The job, if the event belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub event: AuditEvent,
}

impl AuditEntry {
    /// `SHA-256(domain ‖ canonical JSON)`.
    #[must_use]
    pub fn hash(&self) -> Digest32 {
        // serde_json writes struct fields in declaration order: the encoding is canonical.
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut h = Sha256::new();
        h.update(ENTRY_DOMAIN);
        h.update(&json);
        Digest32(h.finalize().into())
    }
}

/// A stored line: the entry and its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// The entry.
    pub entry: AuditEntry,
    /// Its hash.
    pub hash: Digest32,
}

/// A participant's signed head, as the coordinator stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    /// The writer.
    pub writer: String,
    /// The head's sequence number.
    pub seq: u64,
    /// The head's hash.
    pub head: Digest32,
    /// Ed25519 signature, hex.
    pub signature: String,
}

impl SignedHead {
    /// The wire form.
    #[must_use]
    pub fn to_proto(&self) -> treaty_proto::v1::AuditHead {
        treaty_proto::v1::AuditHead {
            writer: self.writer.clone(),
            seq: self.seq,
            head: self.head.0.to_vec(),
            signature: hex::decode(&self.signature).unwrap_or_default(),
        }
    }

    /// From the wire form.
    ///
    /// # Errors
    /// A head that is not 32 bytes or a signature that is not 64.
    pub fn from_proto(p: &treaty_proto::v1::AuditHead) -> Result<Self, String> {
        let head: [u8; 32] = p
            .head
            .as_slice()
            .try_into()
            .map_err(|_| "an audit head must be 32 bytes".to_string())?;
        if p.signature.len() != 64 {
            return Err("an audit head's signature must be 64 bytes".into());
        }
        Ok(Self {
            writer: p.writer.clone(),
            seq: p.seq,
            head: Digest32(head),
            signature: hex::encode(&p.signature),
        })
    }
}

fn checkpoint_message(writer: &str, seq: u64, head: &Digest32) -> Vec<u8> {
    let mut m = CHECKPOINT_DOMAIN.to_vec();
    m.extend_from_slice(&(writer.len() as u64).to_le_bytes());
    m.extend_from_slice(writer.as_bytes());
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(&head.0);
    m
}

/// Checks a signed head against the writer's public key.
#[must_use]
pub fn head_signature_valid(head: &SignedHead, key: &VerifyingKey) -> bool {
    let mut sig = [0u8; 64];
    hex::decode_to_slice(&head.signature, &mut sig).is_ok()
        && key
            .verify(
                &checkpoint_message(&head.writer, head.seq, &head.head),
                &Signature::from_bytes(&sig),
            )
            .is_ok()
}

/// An in-memory audit log being written (the party or coordinator persists each record as one
/// JSON line as it is appended).
pub struct AuditLog {
    writer: String,
    records: Vec<AuditRecord>,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("writer", &self.writer)
            .field("records", &self.records.len())
            .finish()
    }
}

impl AuditLog {
    /// An empty log for `writer`.
    #[must_use]
    pub fn new(writer: impl Into<String>) -> Self {
        Self {
            writer: writer.into(),
            records: Vec::new(),
        }
    }

    /// Continues a log from its stored records (check them with [`verify_log`] first).
    #[must_use]
    pub fn from_records(writer: impl Into<String>, records: Vec<AuditRecord>) -> Self {
        Self {
            writer: writer.into(),
            records,
        }
    }

    /// The records so far.
    #[must_use]
    pub fn records(&self) -> &[AuditRecord] {
        &self.records
    }

    /// Appends an event; returns the new record (to persist).
    pub fn append(&mut self, time_ms: u64, job: Option<&str>, event: AuditEvent) -> &AuditRecord {
        let entry = AuditEntry {
            seq: self.records.len() as u64,
            prev: self.records.last().map(|r| r.hash).unwrap_or_default(),
            time_ms,
            writer: self.writer.clone(),
            job: job.map(str::to_string),
            event,
        };
        let hash = entry.hash();
        self.records.push(AuditRecord { entry, hash });
        // Just pushed.
        &self.records[self.records.len() - 1]
    }

    /// Signs the current head and appends the checkpoint; returns the signed head (for the
    /// coordinator). `None` for an empty log.
    pub fn checkpoint(&mut self, time_ms: u64, key: &SigningKey) -> Option<SignedHead> {
        let last = self.records.last()?;
        let (seq, head) = (last.entry.seq, last.hash);
        let signature = hex::encode(
            key.sign(&checkpoint_message(&self.writer, seq, &head))
                .to_bytes(),
        );
        self.append(
            time_ms,
            None,
            AuditEvent::Checkpoint {
                head,
                head_seq: seq,
                signature: signature.clone(),
            },
        );
        Some(SignedHead {
            writer: self.writer.clone(),
            seq,
            head,
            signature,
        })
    }

    /// The log as JSON lines.
    #[must_use]
    pub fn to_jsonl(&self) -> String {
        self.records
            .iter()
            .filter_map(|r| serde_json::to_string(r).ok())
            .map(|l| l + "\n")
            .collect()
    }
}

/// One problem an auditor must see, with where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditFailure {
    /// Whose log.
    pub writer: String,
    /// The entry (sequence number or, for unparseable lines, the 1-based line).
    pub entry: Option<u64>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for AuditFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.entry {
            Some(e) => write!(f, "{}: entry {e}: {}", self.writer, self.problem),
            None => write!(f, "{}: {}", self.writer, self.problem),
        }
    }
}

/// Parses and verifies one exported log: every line parses, sequence numbers run 0, 1, 2, …,
/// each entry's hash is its content's and each `prev` the previous hash, every checkpoint's
/// signature verifies under `key` for the head it names, and — given the coordinator's record of
/// the writer's latest signed head — that head's signature is valid and the log contains exactly
/// that entry (a log replaced by an older copy, or rewritten after the head, fails).
///
/// Returns the parsed records (as far as they parse) and every failure found.
#[must_use]
pub fn verify_log(
    writer: &str,
    jsonl: &str,
    key: &VerifyingKey,
    coordinator_head: Option<&SignedHead>,
) -> (Vec<AuditRecord>, Vec<AuditFailure>) {
    let fail = |entry: Option<u64>, problem: String| AuditFailure {
        writer: writer.to_string(),
        entry,
        problem,
    };
    let mut failures = Vec::new();
    let mut records: Vec<AuditRecord> = Vec::new();
    for (i, line) in jsonl
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str::<AuditRecord>(line) {
            Ok(r) => records.push(r),
            Err(e) => failures.push(fail(
                None,
                format!("line {} does not parse as an audit record: {e}", i + 1),
            )),
        }
    }
    let mut prev = Digest32::default();
    for (i, r) in records.iter().enumerate() {
        let e = &r.entry;
        let at = Some(e.seq);
        if e.seq != i as u64 {
            failures.push(fail(
                at,
                format!("found at position {i}: an entry is missing, added or out of order"),
            ));
        }
        if e.writer != writer {
            failures.push(fail(at, format!("written by {:?}", e.writer)));
        }
        if e.hash() != r.hash {
            failures.push(fail(
                at,
                "its content does not match its hash (altered)".into(),
            ));
        }
        if e.prev != prev {
            failures.push(fail(
                at,
                "does not chain to the previous entry (deleted, inserted or reordered)".into(),
            ));
        }
        if let AuditEvent::Checkpoint {
            head,
            head_seq,
            signature,
        } = &e.event
        {
            let signed = SignedHead {
                writer: writer.to_string(),
                seq: *head_seq,
                head: *head,
                signature: signature.clone(),
            };
            let names_previous = *head_seq + 1 == e.seq && *head == e.prev;
            if !names_previous {
                failures.push(fail(
                    at,
                    "checkpoint does not sign the entry before it".into(),
                ));
            }
            if !head_signature_valid(&signed, key) {
                failures.push(fail(at, "checkpoint signature is not valid".into()));
            }
        }
        prev = r.hash;
    }
    if let Some(head) = coordinator_head {
        if !head_signature_valid(head, key) {
            failures.push(fail(
                Some(head.seq),
                "the coordinator's record of this log's head has an invalid signature".into(),
            ));
        }
        match records.get(head.seq as usize) {
            Some(r) if r.entry.seq == head.seq && r.hash == head.head => {}
            Some(_) => failures.push(fail(
                Some(head.seq),
                "differs from the head the writer signed and the coordinator holds (history \
                 rewritten)"
                    .into(),
            )),
            None => failures.push(fail(
                Some(head.seq),
                format!(
                    "missing: the log ends at {} entries but the coordinator holds a signed head \
                     at entry {} (an older copy, or truncated)",
                    records.len(),
                    head.seq
                ),
            )),
        }
    }
    (records, failures)
}

/// A stream of data-plane messages cut at a message boundary: the running digest there and
/// the payload bytes before it (see [`AuditEvent::PeerTraffic`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficPrefix {
    /// Payload bytes before the cut.
    pub bytes: u64,
    /// The running digest at the cut.
    pub sha256: Digest32,
}

/// For every job and ordered pair of writers where the sender committed traffic to the other:
/// what A committed as sent to B must be what B committed as received from A (digest and
/// bytes), or — if the job did not succeed at A, so messages may have been in flight when it
/// ended — one of the cuts A committed (`sent_prefixes`). A receiver whose log ended the job
/// without committing traffic, or never had the job, received nothing; one whose log has the
/// job but never ended it (the writer stopped mid-job, e.g. killed) committed nothing to
/// compare with, and is skipped. Writers whose logs are not given are skipped.
#[must_use]
pub fn cross_check(logs: &[(String, Vec<AuditRecord>)]) -> Vec<AuditFailure> {
    /// What a sender committed: the whole stream, its cuts, the entry.
    struct Sent<'a> {
        whole: TrafficPrefix,
        cuts: &'a [TrafficPrefix],
        seq: u64,
    }
    // (job, from, to) → as the sender and as the receiver committed.
    let mut sent: BTreeMap<(String, String, String), Sent<'_>> = BTreeMap::new();
    let mut received: BTreeMap<(String, String, String), (TrafficPrefix, u64)> = BTreeMap::new();
    // (writer, job) of every job a writer's log has, and of every job it ended.
    let mut seen = std::collections::BTreeSet::new();
    let mut ended = std::collections::BTreeSet::new();
    for (writer, records) in logs {
        for r in records {
            let Some(job) = &r.entry.job else { continue };
            seen.insert((writer.clone(), job.clone()));
            match &r.entry.event {
                AuditEvent::Completed { .. } => {
                    ended.insert((writer.clone(), job.clone()));
                }
                AuditEvent::PeerTraffic {
                    peer,
                    sent_sha256,
                    sent_bytes,
                    sent_prefixes,
                    received_sha256,
                    received_bytes,
                } => {
                    sent.insert(
                        (job.clone(), writer.clone(), peer.clone()),
                        Sent {
                            whole: TrafficPrefix {
                                bytes: *sent_bytes,
                                sha256: *sent_sha256,
                            },
                            cuts: sent_prefixes,
                            seq: r.entry.seq,
                        },
                    );
                    received.insert(
                        (job.clone(), peer.clone(), writer.clone()),
                        (
                            TrafficPrefix {
                                bytes: *received_bytes,
                                sha256: *received_sha256,
                            },
                            r.entry.seq,
                        ),
                    );
                }
                _ => {}
            }
        }
    }
    let nothing = TrafficPrefix {
        bytes: 0,
        sha256: Digest32(Sha256::new().finalize().into()),
    };
    let mut failures = Vec::new();
    for (key @ (job, from, to), s) in &sent {
        let (got, rseq) = match received.get(key) {
            Some((got, rseq)) => (*got, Some(*rseq)),
            None if !logs.iter().any(|(w, _)| w == to) => continue,
            // Stopped mid-job: nothing committed to compare with.
            None if seen.contains(&(to.clone(), job.clone()))
                && !ended.contains(&(to.clone(), job.clone())) =>
            {
                continue;
            }
            None => (nothing, None),
        };
        if got == s.whole || s.cuts.contains(&got) {
            continue;
        }
        let problem = match rseq {
            Some(rseq) => format!(
                "job {job}: sent {} bytes to {to}, but {to} (entry {rseq}) committed {} bytes \
                 received from {from} with another digest",
                s.whole.bytes, got.bytes
            ),
            None => {
                format!("job {job}: traffic to {to} that {to}'s log does not commit as received")
            }
        };
        failures.push(AuditFailure {
            writer: from.clone(),
            entry: Some(s.seq),
            problem,
        });
    }
    failures
}

/// Checks the given writers' logs against what the coordinator's own (verified) log records
/// about them:
///
/// - for every [`AuditEvent::HeadRecorded`] of a writer whose log is given, that log holds the
///   recorded entry with the recorded hash (else the writer's log was replaced by an older copy,
///   truncated, or rewritten after the coordinator recorded its head);
/// - for every writer in `keys`, the key the auditor verified its log with is the last one the
///   coordinator logged it registering ([`AuditEvent::WriterKey`]), if it logged any.
///
/// Failures name the writer and, where there is one, the entry of its log.
#[must_use]
pub fn check_against_coordinator(
    coordinator: &[AuditRecord],
    logs: &[(String, Vec<AuditRecord>)],
    keys: &[(String, VerifyingKey)],
) -> Vec<AuditFailure> {
    let mut failures = Vec::new();
    // writer → (coordinator entry, public key hex) of the last WriterKey.
    let mut registered: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
    for r in coordinator {
        match &r.entry.event {
            AuditEvent::HeadRecorded {
                party,
                head_seq,
                head,
            } => {
                let Some((_, records)) = logs.iter().find(|(w, _)| w == party) else {
                    continue;
                };
                let at = r.entry.seq;
                let problem = match records.get(*head_seq as usize) {
                    Some(x) if x.entry.seq == *head_seq && x.hash == *head => continue,
                    Some(_) => format!(
                        "differs from the head the coordinator recorded (coordinator entry {at}): \
                         history rewritten"
                    ),
                    None => format!(
                        "missing: the log ends at {} entries, so it differs from the head the \
                         coordinator recorded (coordinator entry {at}): an older copy, or truncated",
                        records.len()
                    ),
                };
                failures.push(AuditFailure {
                    writer: party.clone(),
                    entry: Some(*head_seq),
                    problem,
                });
            }
            AuditEvent::WriterKey { party, public_key } => {
                registered.insert(party.as_str(), (r.entry.seq, public_key.as_str()));
            }
            _ => {}
        }
    }
    for (writer, key) in keys {
        let Some((at, logged)) = registered.get(writer.as_str()) else {
            continue;
        };
        let used = hex::encode(key.to_bytes());
        if !used.eq_ignore_ascii_case(logged) {
            failures.push(AuditFailure {
                writer: writer.clone(),
                entry: None,
                problem: format!(
                    "verified with audit key {used}, but the last key the coordinator logged it \
                     registering (coordinator entry {at}) is {logged}"
                ),
            });
        }
    }
    failures
}

/// One exported log as an auditor holds it: whose, its text, the writer's key and the signed
/// head the coordinator holds for it (if any).
#[derive(Debug)]
pub struct ExportedLog<'a> {
    /// The writer (a party id, or [`COORDINATOR_WRITER`]).
    pub writer: &'a str,
    /// The JSON lines.
    pub text: &'a str,
    /// The writer's audit key.
    pub key: VerifyingKey,
    /// The coordinator's record of the writer's head.
    pub head: Option<SignedHead>,
}

/// Everything an auditor checks over a set of exported logs: each log with [`verify_log`], the
/// parties' logs against the coordinator's own when it is among them
/// ([`check_against_coordinator`]), and the cross-party traffic ([`cross_check`]). Returns
/// every writer's parsed records and every failure.
#[must_use]
pub fn verify_logs(
    logs: &[ExportedLog<'_>],
) -> (Vec<(String, Vec<AuditRecord>)>, Vec<AuditFailure>) {
    let mut failures = Vec::new();
    let mut parsed = Vec::with_capacity(logs.len());
    for log in logs {
        let (records, found) = verify_log(log.writer, log.text, &log.key, log.head.as_ref());
        failures.extend(found);
        parsed.push((log.writer.to_string(), records));
    }
    if let Some((_, coordinator)) = parsed.iter().find(|(w, _)| w == COORDINATOR_WRITER) {
        let parties: Vec<(String, Vec<AuditRecord>)> = parsed
            .iter()
            .filter(|(w, _)| w != COORDINATOR_WRITER)
            .cloned()
            .collect();
        let keys: Vec<(String, VerifyingKey)> = logs
            .iter()
            .filter(|l| l.writer != COORDINATOR_WRITER)
            .map(|l| (l.writer.to_string(), l.key))
            .collect();
        failures.extend(check_against_coordinator(coordinator, &parties, &keys));
    }
    failures.extend(cross_check(&parsed));
    (parsed, failures)
}

/// A log kept in a file (`<dir>/log.jsonl`, one record per line, appended and flushed as events
/// happen) with its Ed25519 identity key (`<dir>/identity.key`, 32 bytes, mode 0600, created on
/// first use). Opening verifies what is already there and refuses a log that fails: an operator
/// must look at a log that was altered. Party nodes and the coordinator each keep one.
pub struct AuditFile {
    path: PathBuf,
    key: SigningKey,
    log: Mutex<AuditLog>,
}

impl fmt::Debug for AuditFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |e| AuditError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The log file in an audit directory.
#[must_use]
pub fn log_file(dir: &Path) -> PathBuf {
    dir.join("log.jsonl")
}

/// Loads the identity key `<dir>/identity.key`, creating it (0600) from OS randomness if
/// missing.
///
/// # Errors
/// I/O failures, a key file of the wrong size, or no OS randomness.
pub fn identity_key(dir: &Path) -> Result<SigningKey, AuditError> {
    let path = dir.join("identity.key");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let seed = zeroize::Zeroizing::new(bytes);
            let seed: [u8; 32] = seed
                .as_slice()
                .try_into()
                .map_err(|_| AuditError::BadKey { path: path.clone() })?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = zeroize::Zeroizing::new([0u8; 32]);
            let mut rng = ChaCha20Rng::try_from_rng(&mut rand::rngs::SysRng)
                .map_err(|_| AuditError::NoRandomness)?;
            rng.fill_bytes(seed.as_mut_slice());
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&path).map_err(io_err(&path))?;
            file.write_all(seed.as_slice()).map_err(io_err(&path))?;
            file.sync_all().map_err(io_err(&path))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(io_err(&path)(e)),
    }
}

impl AuditFile {
    /// Opens (or starts) `writer`'s log in `dir` and verifies what is already there.
    ///
    /// A line counts once it ends in a newline (each record is written as one line and synced
    /// before it counts). Bytes after the last newline are a torn write from a crash: once
    /// every whole line verifies, they are cut off, and the cut is recorded
    /// ([`AuditEvent::TailRecovered`]) and signed with a checkpoint.
    ///
    /// # Errors
    /// I/O failures, or whole lines that fail verification (the error lists why).
    pub fn open(writer: &str, dir: &Path) -> Result<Self, AuditError> {
        let key = identity_key(dir)?;
        let path = log_file(dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let whole = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |newline| newline + 1);
        let (text, torn) = bytes.split_at(whole);
        let text = std::str::from_utf8(text).map_err(|e| AuditError::Tampered {
            path: path.clone(),
            failures: vec![AuditFailure {
                writer: writer.to_string(),
                entry: None,
                problem: format!("not UTF-8 at byte {}", e.valid_up_to()),
            }],
        })?;
        let (records, failures) = verify_log(writer, text, &key.verifying_key(), None);
        if !failures.is_empty() {
            return Err(AuditError::Tampered { path, failures });
        }
        let file = Self {
            path,
            key,
            log: Mutex::new(AuditLog::from_records(writer, records)),
        };
        if !torn.is_empty() {
            file.cut_to(whole as u64)?;
            file.record(
                None,
                AuditEvent::TailRecovered {
                    dropped_bytes: torn.len() as u64,
                    dropped_sha256: Digest32(Sha256::digest(torn).into()),
                },
            )?;
            file.checkpoint()?;
        }
        Ok(file)
    }

    /// Truncates the log file to `len` bytes, synced.
    fn cut_to(&self, len: u64) -> Result<(), AuditError> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        file.set_len(len)
            .and_then(|()| file.sync_all())
            .map_err(io_err(&self.path))
    }

    fn log(&self) -> std::sync::MutexGuard<'_, AuditLog> {
        // Every update is an append followed by a write; a poisoned log is still a valid chain.
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The public key auditors verify this log with.
    #[must_use]
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Runs `sign` with this writer's identity key (the key [`Self::public_key`] verifies),
    /// which never leaves this value: a party signs its output share with it (see
    /// `treaty_trust::result`), and the analyst checks the share against the party's audit key
    /// before opening anything.
    pub fn sign_with<R>(&self, sign: impl FnOnce(&SigningKey) -> R) -> R {
        sign(&self.key)
    }

    /// The log's file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an event and writes its line (synced to disk). The record counts only once
    /// written: on a failure it is dropped again, in memory and from the file, so the next
    /// record chains to the last one on disk.
    ///
    /// # Errors
    /// I/O failures.
    pub fn record(&self, job: Option<&str>, event: AuditEvent) -> Result<(), AuditError> {
        let mut log = self.log();
        let line = serde_json::to_string(log.append(now_ms(), job, event))?;
        self.write_line(&line).inspect_err(|_| {
            log.records.pop();
        })
    }

    /// Signs the head, appends the checkpoint and returns the signed head (`None` for an empty
    /// log).
    ///
    /// # Errors
    /// I/O failures.
    pub fn checkpoint(&self) -> Result<Option<SignedHead>, AuditError> {
        let mut log = self.log();
        let Some(head) = log.checkpoint(now_ms(), &self.key) else {
            return Ok(None);
        };
        let line = log
            .records()
            .last()
            .map(serde_json::to_string)
            .transpose()?
            .unwrap_or_default();
        self.write_line(&line).inspect_err(|_| {
            log.records.pop();
        })?;
        Ok(Some(head))
    }

    /// The newest checkpoint's signed head (`None` before the first).
    #[must_use]
    pub fn latest_head(&self) -> Option<SignedHead> {
        let log = self.log();
        log.records()
            .iter()
            .rev()
            .find_map(|r| match &r.entry.event {
                AuditEvent::Checkpoint {
                    head,
                    head_seq,
                    signature,
                } => Some(SignedHead {
                    writer: log.writer.clone(),
                    seq: *head_seq,
                    head: *head,
                    signature: signature.clone(),
                }),
                _ => None,
            })
    }

    /// Every record so far (a copy).
    #[must_use]
    pub fn records(&self) -> Vec<AuditRecord> {
        self.log().records().to_vec()
    }

    /// Appends `line` and a newline, synced; on a failure, cuts the file back to where it was
    /// (what cannot be cut is a torn tail, cut when the log is next opened).
    fn write_line(&self, line: &str) -> Result<(), AuditError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        let before = file.metadata().map_err(io_err(&self.path))?.len();
        file.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| {
                let _ = file.set_len(before).and_then(|()| file.sync_data());
                io_err(&self.path)(e)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn traffic(
        peer: &str,
        sent: u8,
        sent_bytes: u64,
        received: u8,
        received_bytes: u64,
    ) -> AuditEvent {
        AuditEvent::PeerTraffic {
            peer: peer.into(),
            sent_sha256: Digest32([sent; 32]),
            sent_bytes,
            sent_prefixes: Vec::new(),
            received_sha256: Digest32([received; 32]),
            received_bytes,
        }
    }

    /// Two parties' logs of one job, each with a checkpoint: (logs, heads).
    fn job_logs() -> (Vec<(String, AuditLog)>, Vec<SignedHead>) {
        let mut logs = Vec::new();
        let mut heads = Vec::new();
        for (i, (me, peer)) in [("hospital", "insurer"), ("insurer", "hospital")]
            .into_iter()
            .enumerate()
        {
            let mut log = AuditLog::new(me);
            log.append(
                1,
                Some("job-1"),
                AuditEvent::JobReceived {
                    kind: Some(JobKind::Stats),
                    spec_sha256: Digest32([9; 32]),
                    analyst: "analyst".into(),
                    submission_sha256: Digest32([8; 32]),
                },
            );
            log.append(
                2,
                Some("job-1"),
                AuditEvent::PolicyDecision {
                    admitted: true,
                    policy_sha256: Digest32([7; 32]),
                    reason: String::new(),
                    needs_approval: false,
                },
            );
            // hospital sent A (100 bytes) and received B (50); insurer the mirror.
            let event = if i == 0 {
                traffic(peer, 0xA, 100, 0xB, 50)
            } else {
                traffic(peer, 0xB, 50, 0xA, 100)
            };
            log.append(3, Some("job-1"), event);
            log.append(
                4,
                Some("job-1"),
                AuditEvent::Completed {
                    outcome: Outcome::Succeeded,
                    rounds: 2,
                    reason: String::new(),
                },
            );
            heads.push(log.checkpoint(5, &key(i as u8 + 1)).unwrap());
            logs.push((me.to_string(), log));
        }
        (logs, heads)
    }

    fn verify(writer: &str, text: &str, head: &SignedHead) -> Vec<AuditFailure> {
        let k = if writer == "hospital" { key(1) } else { key(2) };
        verify_log(writer, text, &k.verifying_key(), Some(head)).1
    }

    #[test]
    fn outcomes_are_written_as_the_words_earlier_logs_hold() {
        for (outcome, word) in [
            (Outcome::Succeeded, "succeeded"),
            (Outcome::Failed, "failed"),
            (Outcome::Rejected, "rejected"),
            (Outcome::Aborted, "aborted"),
        ] {
            let event = AuditEvent::Completed {
                outcome,
                rounds: 3,
                reason: String::new(),
            };
            let line = serde_json::to_string(&event).unwrap();
            assert!(line.contains(&format!("\"outcome\":\"{word}\"")), "{line}");
            assert_eq!(serde_json::from_str::<AuditEvent>(&line).unwrap(), event);
            assert_eq!(outcome.to_string(), word);
        }
        let unknown = r#"{"event":"completed","outcome":"exploded","rounds":0,"reason":""}"#;
        assert!(serde_json::from_str::<AuditEvent>(unknown).is_err());
        assert_eq!(
            Outcome::of_state(treaty_proto::v1::JobState::Running),
            None,
            "a running job has no outcome"
        );
    }

    #[test]
    fn job_kinds_are_written_as_the_words_earlier_logs_hold() {
        let words = ["stats", "psi", "train", "score", "fhe-score"];
        let kinds = JobKind::ALL.map(Some).into_iter().chain([None]);
        for (kind, word) in kinds.zip(words.into_iter().chain(["none"])) {
            let event = AuditEvent::JobReceived {
                kind,
                spec_sha256: Digest32([1; 32]),
                analyst: "alice".into(),
                submission_sha256: Digest32([2; 32]),
            };
            let line = serde_json::to_string(&event).unwrap();
            assert!(line.contains(&format!("\"kind\":\"{word}\"")), "{line}");
            assert_eq!(serde_json::from_str::<AuditEvent>(&line).unwrap(), event);
        }
        let unknown = serde_json::to_string(&AuditEvent::JobReceived {
            kind: Some(JobKind::Psi),
            spec_sha256: Digest32([1; 32]),
            analyst: String::new(),
            submission_sha256: Digest32([2; 32]),
        })
        .unwrap()
        .replace("\"psi\"", "\"exfiltrate\"");
        let e = serde_json::from_str::<AuditEvent>(&unknown).unwrap_err();
        assert!(e.to_string().contains("unknown job kind"), "{e}");
    }

    #[test]
    fn intact_logs_verify_and_cross_check() {
        let (logs, heads) = job_logs();
        let mut parsed = Vec::new();
        for ((w, log), head) in logs.iter().zip(&heads) {
            let text = log.to_jsonl();
            let k = if w == "hospital" { key(1) } else { key(2) };
            let (records, failures) = verify_log(w, &text, &k.verifying_key(), Some(head));
            assert!(failures.is_empty(), "{failures:?}");
            assert_eq!(records.len(), 5);
            parsed.push((w.clone(), records));
        }
        assert!(cross_check(&parsed).is_empty());
        // Nothing secret: the lines hold names, counts and digests.
        assert!(logs[0].1.to_jsonl().contains("\"event\":\"peer_traffic\""));
    }

    /// Every event kind survives the JSON-lines round trip and verifies (an event field named
    /// like an entry field would collide in the flattened encoding).
    #[test]
    fn every_event_kind_round_trips_through_a_log() {
        let d = Digest32([4; 32]);
        let events = vec![
            AuditEvent::JobReceived {
                kind: Some(JobKind::Stats),
                spec_sha256: d,
                analyst: "a".into(),
                submission_sha256: d,
            },
            AuditEvent::PolicyDecision {
                admitted: false,
                policy_sha256: d,
                reason: "r".into(),
                needs_approval: true,
            },
            AuditEvent::Approval {
                by: "op".into(),
                approved: true,
                reason: String::new(),
                policy_sha256: d,
            },
            AuditEvent::PartyAnswer {
                party: "p".into(),
                admitted: true,
                policy_sha256: d,
                approved_by: "op".into(),
                reason: String::new(),
            },
            AuditEvent::ResultStored {
                party: "p".into(),
                bytes: 3,
                sealed_sha256: d,
            },
            AuditEvent::ResultsExpired {
                parties: vec!["p".into(), "q".into()],
                bytes: 11,
            },
            AuditEvent::WriterKey {
                party: "p".into(),
                public_key: "00".into(),
            },
            AuditEvent::HeadRecorded {
                party: "p".into(),
                head_seq: 9,
                head: d,
            },
            AuditEvent::RosterAccepted {
                version: 2,
                sha256: d,
                members: vec!["treaty://party/p".into()],
            },
            AuditEvent::ProtocolStart {
                peers: vec!["p".into()],
            },
            traffic("p", 1, 2, 3, 4),
            AuditEvent::ResultSealed {
                recipient: "a".into(),
                sealed_sha256: d,
            },
            AuditEvent::TailRecovered {
                dropped_bytes: 12,
                dropped_sha256: d,
            },
            AuditEvent::Completed {
                outcome: Outcome::Succeeded,
                rounds: 2,
                reason: String::new(),
            },
        ];
        let mut log = AuditLog::new("w");
        for e in &events {
            log.append(1, Some("job-1"), e.clone());
        }
        let head = log.checkpoint(2, &key(1)).unwrap();
        let (records, failures) =
            verify_log("w", &log.to_jsonl(), &key(1).verifying_key(), Some(&head));
        assert!(failures.is_empty(), "{failures:?}");
        let parsed: Vec<AuditEvent> = records.into_iter().map(|r| r.entry.event).collect();
        assert_eq!(parsed[..events.len()], events[..]);
    }

    #[test]
    fn each_kind_of_tampering_is_detected_naming_the_entry() {
        let (logs, heads) = job_logs();
        let text = logs[0].1.to_jsonl();
        let lines: Vec<&str> = text.lines().collect();
        let join = |ls: &[&str]| ls.iter().map(|l| format!("{l}\n")).collect::<String>();

        // One byte of an entry changed (the job's round count).
        let altered = text.replacen("\"rounds\":2", "\"rounds\":3", 1);
        let f = verify("hospital", &altered, &heads[0]);
        assert!(
            f.iter()
                .any(|f| f.entry == Some(3) && f.problem.contains("altered")),
            "{f:?}"
        );

        // An entry deleted.
        let deleted = join(&[lines[0], lines[2], lines[3], lines[4]]);
        let f = verify("hospital", &deleted, &heads[0]);
        assert!(
            f.iter()
                .any(|f| f.entry == Some(2) && f.problem.contains("missing")),
            "{f:?}"
        );

        // Two entries swapped.
        let swapped = join(&[lines[0], lines[2], lines[1], lines[3], lines[4]]);
        let f = verify("hospital", &swapped, &heads[0]);
        assert!(
            f.iter()
                .any(|f| f.entry == Some(2) && f.problem.contains("out of order")),
            "{f:?}"
        );

        // An older copy of the log (before the job ended): the coordinator's head is missing.
        let older = join(&lines[..2]);
        let f = verify("hospital", &older, &heads[0]);
        assert!(
            f.iter()
                .any(|f| f.entry == Some(3) && f.problem.contains("older copy")),
            "{f:?}"
        );

        // History rewritten consistently (rehashed, re-chained, re-signed with another key):
        // every hash checks out, but the head differs from the one the coordinator holds and the
        // forged checkpoint does not verify under the registered key.
        let mut forged = AuditLog::new("hospital");
        for r in &logs[0].1.records()[..4] {
            let mut event = r.entry.event.clone();
            if let AuditEvent::Completed { rounds, .. } = &mut event {
                *rounds = 9;
            }
            forged.append(r.entry.time_ms, r.entry.job.as_deref(), event);
        }
        forged.checkpoint(5, &key(99));
        let f = verify("hospital", &forged.to_jsonl(), &heads[0]);
        assert!(
            f.iter()
                .any(|f| f.entry == Some(4) && f.problem.contains("signature is not valid")),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|f| f.entry == Some(3) && f.problem.contains("history rewritten")),
            "{f:?}"
        );

        // A forged head at the coordinator.
        let mut bad_head = heads[0].clone();
        bad_head.signature = hex::encode([0u8; 64]);
        let f = verify("hospital", &text, &bad_head);
        assert!(
            f.iter().any(|f| f.problem.contains("invalid signature")),
            "{f:?}"
        );
    }

    /// The coordinator's log of the two parties of [`job_logs`]: their keys, then their heads.
    fn coordinator_log(heads: &[SignedHead], keys: &[VerifyingKey]) -> Vec<AuditRecord> {
        let mut log = AuditLog::new("coordinator");
        for (h, k) in heads.iter().zip(keys) {
            log.append(
                1,
                None,
                AuditEvent::WriterKey {
                    party: h.writer.clone(),
                    public_key: hex::encode(k.to_bytes()),
                },
            );
        }
        for h in heads {
            log.append(
                6,
                None,
                AuditEvent::HeadRecorded {
                    party: h.writer.clone(),
                    head_seq: h.seq,
                    head: h.head,
                },
            );
        }
        log.records().to_vec()
    }

    fn parsed(logs: &[(String, AuditLog)]) -> Vec<(String, Vec<AuditRecord>)> {
        logs.iter()
            .map(|(w, l)| (w.clone(), l.records().to_vec()))
            .collect()
    }

    #[test]
    fn consistent_logs_agree_with_the_coordinator() {
        let (logs, heads) = job_logs();
        let keys = [key(1).verifying_key(), key(2).verifying_key()];
        let coordinator = coordinator_log(&heads, &keys);
        let used = vec![
            ("hospital".to_string(), keys[0]),
            ("insurer".to_string(), keys[1]),
        ];
        let f = check_against_coordinator(&coordinator, &parsed(&logs), &used);
        assert!(f.is_empty(), "{f:?}");
        // A writer whose log is not given is not checked.
        let f = check_against_coordinator(&coordinator, &parsed(&logs[..1]), &used[..1]);
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn a_party_log_rewritten_after_a_recorded_head_is_named() {
        let (logs, heads) = job_logs();
        let keys = [key(1).verifying_key(), key(2).verifying_key()];
        let coordinator = coordinator_log(&heads, &keys);

        // Rewritten consistently and re-signed with its own key: valid on its own.
        let mut forged = AuditLog::new("hospital");
        for r in &logs[0].1.records()[..4] {
            let mut event = r.entry.event.clone();
            if let AuditEvent::Completed { rounds, .. } = &mut event {
                *rounds = 9;
            }
            forged.append(r.entry.time_ms, r.entry.job.as_deref(), event);
        }
        forged.checkpoint(5, &key(1));
        let (_, own) = verify_log("hospital", &forged.to_jsonl(), &keys[0], None);
        assert!(own.is_empty(), "{own:?}");
        let mut records = parsed(&logs);
        records[0].1 = forged.records().to_vec();
        let f = check_against_coordinator(&coordinator, &records, &[]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].writer.as_str(), f[0].entry), ("hospital", Some(3)));
        assert!(
            f[0].problem
                .contains("differs from the head the coordinator recorded"),
            "{}",
            f[0]
        );

        // An older copy: the recorded entry is missing.
        records[0].1 = logs[0].1.records()[..2].to_vec();
        let f = check_against_coordinator(&coordinator, &records, &[]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].writer.as_str(), f[0].entry), ("hospital", Some(3)));
        assert!(f[0].problem.contains("older copy"), "{}", f[0]);
    }

    #[test]
    fn a_key_other_than_the_logged_writer_key_is_named() {
        let (logs, heads) = job_logs();
        let keys = [key(1).verifying_key(), key(2).verifying_key()];
        let mut coordinator = coordinator_log(&heads, &keys);
        // The insurer later registered a new key: the last one counts.
        let mut log = AuditLog::from_records("coordinator", coordinator.clone());
        log.append(
            7,
            None,
            AuditEvent::WriterKey {
                party: "insurer".into(),
                public_key: hex::encode(key(3).verifying_key().to_bytes()),
            },
        );
        coordinator = log.records().to_vec();
        let used = vec![
            ("hospital".to_string(), keys[0]),
            ("insurer".to_string(), keys[1]),
        ];
        let f = check_against_coordinator(&coordinator, &parsed(&logs), &used);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].writer.as_str(), f[0].entry), ("insurer", None));
        assert!(f[0].problem.contains("coordinator entry 4"), "{}", f[0]);
        let used = vec![("insurer".to_string(), key(3).verifying_key())];
        assert!(check_against_coordinator(&coordinator, &parsed(&logs), &used).is_empty());
    }

    #[test]
    fn a_sent_digest_that_the_peer_did_not_receive_is_named() {
        let (logs, _) = job_logs();
        let mut records: Vec<(String, Vec<AuditRecord>)> = logs
            .iter()
            .map(|(w, l)| (w.clone(), l.records().to_vec()))
            .collect();
        // The insurer's log commits a different digest received from the hospital.
        if let AuditEvent::PeerTraffic {
            received_sha256, ..
        } = &mut records[1].1[2].entry.event
        {
            *received_sha256 = Digest32([0xC; 32]);
        }
        let f = cross_check(&records);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].writer.as_str(), f[0].entry), ("hospital", Some(2)));
        assert!(
            f[0].problem.contains("insurer (entry 2) committed"),
            "{}",
            f[0]
        );
    }

    /// The records of [`job_logs`], by writer (hospital, insurer).
    fn job_records() -> Vec<(String, Vec<AuditRecord>)> {
        job_logs()
            .0
            .iter()
            .map(|(w, l)| (w.clone(), l.records().to_vec()))
            .collect()
    }

    /// Sets the traffic entry (index 2) of `records[w]`: the sent stream's cuts, or what was
    /// received.
    fn set_traffic(
        records: &mut [(String, Vec<AuditRecord>)],
        w: usize,
        cuts: Option<Vec<TrafficPrefix>>,
        got: Option<TrafficPrefix>,
    ) {
        if let AuditEvent::PeerTraffic {
            sent_prefixes,
            received_sha256,
            received_bytes,
            ..
        } = &mut records[w].1[2].entry.event
        {
            if let Some(cuts) = cuts {
                *sent_prefixes = cuts;
            }
            if let Some(got) = got {
                (*received_sha256, *received_bytes) = (got.sha256, got.bytes);
            }
        }
    }

    /// A job that ended with messages in flight (the coordinator restarted after every party
    /// had sent its barrier digest, found by `treaty bench soak`): the receiver committed less
    /// than was sent. It agrees when the sender, whose job did not succeed, committed that cut;
    /// a received digest that is none of the cuts is still named, and so is a cut stream when
    /// the sender committed none.
    #[test]
    fn a_stream_cut_short_agrees_only_at_a_cut_the_sender_committed() {
        let cut = TrafficPrefix {
            bytes: 60,
            sha256: Digest32([0xD; 32]),
        };
        let mut records = job_records();
        set_traffic(&mut records, 1, None, Some(cut));
        // Before: the hospital committed no cuts, so the insurer's 60 bytes disagree.
        let f = cross_check(&records);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].writer.as_str(), f[0].entry), ("hospital", Some(2)));
        let other = TrafficPrefix {
            bytes: 20,
            sha256: Digest32([0xE; 32]),
        };
        set_traffic(&mut records, 0, Some(vec![other, cut]), None);
        assert!(cross_check(&records).is_empty());
        // A received digest that is no cut of the sent stream.
        set_traffic(
            &mut records,
            1,
            None,
            Some(TrafficPrefix {
                bytes: 60,
                sha256: Digest32([0xF; 32]),
            }),
        );
        let f = cross_check(&records);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].problem.contains("60 bytes received"), "{}", f[0]);
    }

    /// A receiver killed mid-job committed nothing: its log has the job but never ends it, and
    /// there is nothing to compare. One that ended the job without traffic, or never had it,
    /// received nothing: the sender's traffic is named unless the sender committed the empty
    /// stream as a cut.
    #[test]
    fn traffic_to_a_writer_without_a_receipt_is_compared_unless_it_stopped_mid_job() {
        let mut records = job_records();
        // The insurer stopped mid-job: received and admitted the job, no traffic, no end.
        records[1].1.truncate(2);
        assert!(cross_check(&records).is_empty());
        // It ended the job without traffic.
        let mut ended = job_records();
        ended[1].1.remove(2);
        let f = cross_check(&ended);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].problem.contains("does not commit as received"),
            "{}",
            f[0]
        );
        // It never had the job.
        let mut never = job_records();
        never[1].1.clear();
        assert_eq!(cross_check(&never).len(), 1);
        // The sender's job failed having sent little: the empty stream is among its cuts.
        let nothing = TrafficPrefix {
            bytes: 0,
            sha256: Digest32(Sha256::new().finalize().into()),
        };
        set_traffic(&mut ended, 0, Some(vec![nothing]), None);
        assert!(cross_check(&ended).is_empty());
    }

    fn protocol_start() -> AuditEvent {
        AuditEvent::ProtocolStart {
            peers: vec!["hospital".into(), "insurer".into()],
        }
    }

    /// A crash in the middle of a write leaves a torn last line: the node starts (it used to
    /// refuse to, forever), cuts the torn bytes, records the cut and signs it; the log verifies
    /// and goes on.
    #[test]
    fn a_torn_last_line_is_cut_recorded_and_signed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditFile::open("hospital", dir.path()).unwrap();
        log.record(Some("job-1"), protocol_start()).unwrap();
        log.checkpoint().unwrap();
        drop(log);
        let path = log_file(dir.path());
        let whole = std::fs::read(&path).unwrap();
        for torn in [
            &b"{\"seq\":2,\"prev\":\"ab"[..],
            &[0u8; 64][..],
            &[0xff, 0xfe][..],
        ] {
            std::fs::write(&path, [whole.as_slice(), torn].concat()).unwrap();
            let log = AuditFile::open("hospital", dir.path()).unwrap();
            let records = log.records();
            assert_eq!(records.len(), 4, "two kept, the cut and its checkpoint");
            assert_eq!(
                records[2].entry.event,
                AuditEvent::TailRecovered {
                    dropped_bytes: torn.len() as u64,
                    dropped_sha256: Digest32(Sha256::digest(torn).into()),
                }
            );
            assert!(matches!(
                records[3].entry.event,
                AuditEvent::Checkpoint { .. }
            ));
            let text = std::fs::read_to_string(&path).unwrap();
            let (_, failures) = verify_log("hospital", &text, &log.public_key(), None);
            assert!(failures.is_empty(), "{failures:?}");
            log.record(Some("job-2"), protocol_start()).unwrap();
            drop(log);
            assert_eq!(
                AuditFile::open("hospital", dir.path())
                    .unwrap()
                    .records()
                    .len(),
                5
            );
        }
        // A whole line that does not verify is tampering, not a torn write: still refused.
        std::fs::write(&path, [whole.as_slice(), b"{}\n"].concat()).unwrap();
        assert!(matches!(
            AuditFile::open("hospital", dir.path()),
            Err(AuditError::Tampered { .. })
        ));
    }

    /// A record whose write fails does not count: the next record chains to the last one on
    /// disk, and the log still opens (the failed record used to stay in memory, so every later
    /// line chained to an entry the file never had).
    #[test]
    fn a_record_that_failed_to_write_does_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditFile::open("hospital", dir.path()).unwrap();
        log.record(Some("job-1"), protocol_start()).unwrap();
        let path = log_file(dir.path());
        let kept = std::fs::read(&path).unwrap();
        // The log's file becomes a directory: appending to it fails.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(matches!(
            log.record(Some("job-2"), protocol_start()),
            Err(AuditError::Io { .. })
        ));
        assert!(matches!(log.checkpoint(), Err(AuditError::Io { .. })));
        assert_eq!(log.records().len(), 1);
        std::fs::remove_dir(&path).unwrap();
        std::fs::write(&path, &kept).unwrap();
        log.record(Some("job-3"), protocol_start()).unwrap();
        log.checkpoint().unwrap();
        drop(log);
        let reopened = AuditFile::open("hospital", dir.path()).unwrap();
        assert_eq!(reopened.records().len(), 3);
        assert_eq!(reopened.records()[1].entry.job.as_deref(), Some("job-3"));
    }
}
