//! Durable state: the party registry, jobs and sealed results, in one redb file.
//!
//! Values are the protobuf encodings of the wire types, so what is stored is exactly what is
//! served. Every write is its own ACID transaction; a crash or restart loses nothing committed.
//!
//! Besides the records, the store keeps indexes that let it answer without decoding every job:
//! jobs by submission time (all, and per analyst) for paginated listings, and succeeded jobs by
//! finish time for the result-retention sweep. [`Store::put_job`] maintains them in the same
//! transaction as the record; a store written before they existed gets them rebuilt at open.

use std::ops::Bound;
use std::path::Path;

use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use treaty_proto::v1::{AuditHead, Job, JobState, PartyInfo};

use crate::CoordinatorError;

const PARTIES: TableDefinition<&str, &[u8]> = TableDefinition::new("parties");
const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
/// Each audit writer's latest signed head, by writer.
const HEADS: TableDefinition<&str, &[u8]> = TableDefinition::new("audit_heads");
/// Key: `"{job_id}\0{party}"`.
const RESULTS: TableDefinition<&str, &[u8]> = TableDefinition::new("results");
/// Every job by [`cursor_bytes`] (submission time, id) → job id.
const JOBS_BY_TIME: TableDefinition<&[u8], &str> = TableDefinition::new("jobs_by_time");
/// Every job by [`analyst_prefix`] ‖ [`cursor_bytes`] → job id.
const JOBS_BY_ANALYST: TableDefinition<&[u8], &str> = TableDefinition::new("jobs_by_analyst");
/// Succeeded jobs whose results are kept, by (finish time, id) → job id.
const KEPT_RESULTS: TableDefinition<&[u8], &str> = TableDefinition::new("kept_results");
/// Jobs whose results the retention sweep deleted → when (ms since the epoch).
const EXPIRED_RESULTS: TableDefinition<&str, i64> = TableDefinition::new("expired_results");
/// `"schema"` → the layout version.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The layout version: 2 added the job and retention indexes.
const SCHEMA: u64 = 2;

/// File name of the database inside the state directory.
pub const DB_FILE: &str = "coordinator.redb";

/// Longest job id a page token may name (ids are `job-` and 16 hex digits; this is slack).
const MAX_TOKEN_ID: usize = 256;

/// The coordinator's embedded database.
#[derive(Debug)]
pub struct Store {
    db: Database,
}

fn db_err(e: impl Into<redb::Error>) -> CoordinatorError {
    CoordinatorError::Storage(e.into().to_string())
}

fn result_key(job_id: &str, party: &str) -> String {
    format!("{job_id}\0{party}")
}

/// The key range of every result of `job_id` (`"{job_id}\0"` up to `"{job_id}\x01"`).
fn result_range(job_id: &str) -> (String, String) {
    (format!("{job_id}\0"), format!("{job_id}\u{1}"))
}

/// A time as 8 bytes that sort like the signed number.
fn time_bytes(ms: i64) -> [u8; 8] {
    ((ms as u64) ^ (1 << 63)).to_be_bytes()
}

/// (time, id) as index key bytes: they sort by time, then id.
fn cursor_bytes(ms: i64, id: &str) -> Vec<u8> {
    let mut key = time_bytes(ms).to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

/// An analyst's part of the per-analyst index (length-prefixed, so no name is a prefix of
/// another's keys).
fn analyst_prefix(analyst: &str) -> Vec<u8> {
    let mut key = (analyst.len() as u32).to_be_bytes().to_vec();
    key.extend_from_slice(analyst.as_bytes());
    key
}

/// The smallest byte string greater than every string starting with `prefix` (`None`: none).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

/// A position in the newest-first job listing: the last job of a page. Clients see it as an
/// opaque page token (hex); one that does not decode is refused, never trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCursor {
    /// The job's submission time.
    pub submitted_at_ms: i64,
    /// The job's id.
    pub id: String,
}

impl JobCursor {
    fn of(job: &Job) -> Self {
        Self {
            submitted_at_ms: job.submitted_at_ms,
            id: job.id.clone(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        cursor_bytes(self.submitted_at_ms, &self.id)
    }

    /// The page token a client passes back.
    #[must_use]
    pub fn to_token(&self) -> String {
        hex::encode(self.bytes())
    }

    /// Reads a page token.
    ///
    /// # Errors
    /// [`CoordinatorError::InvalidRequest`] for anything [`JobCursor::to_token`] does not make.
    pub fn from_token(token: &str) -> Result<Self, CoordinatorError> {
        let bad = |why: &str| CoordinatorError::InvalidRequest(format!("page_token: {why}"));
        if token.len() > 2 * (8 + MAX_TOKEN_ID) {
            return Err(bad("too long"));
        }
        let bytes = hex::decode(token).map_err(|_| bad("not a token this coordinator made"))?;
        let (time, id) = bytes
            .split_first_chunk::<8>()
            .ok_or_else(|| bad("too short"))?;
        let id = std::str::from_utf8(id).map_err(|_| bad("not a token this coordinator made"))?;
        if id.is_empty() {
            return Err(bad("names no job"));
        }
        Ok(Self {
            submitted_at_ms: (u64::from_be_bytes(*time) ^ (1 << 63)) as i64,
            id: id.to_string(),
        })
    }
}

/// One page of jobs, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    /// The jobs.
    pub jobs: Vec<Job>,
    /// Where the next page starts (`None`: this was the last).
    pub next: Option<JobCursor>,
}

/// What the retention sweep deleted for one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredResults {
    /// The job.
    pub job_id: String,
    /// The parties whose sealed results were deleted.
    pub parties: Vec<String>,
    /// Their total size.
    pub bytes: u64,
}

fn decode_job(key: &str, bytes: &[u8]) -> Result<Job, CoordinatorError> {
    Job::decode(bytes)
        .map_err(|e| CoordinatorError::Storage(format!("corrupt record {key:?}: {e}")))
}

/// Where `job` sits in the retention index, if its results are kept (it succeeded).
fn kept_key(job: &Job) -> Option<Vec<u8>> {
    (job.state() == JobState::Succeeded).then(|| cursor_bytes(job.finished_at_ms, &job.id))
}

/// Adds (or, `insert` false, removes) `job`'s index entries within `txn`.
fn index_job(
    txn: &redb::WriteTransaction,
    job: &Job,
    insert: bool,
) -> Result<(), CoordinatorError> {
    let mut by_time = txn.open_table(JOBS_BY_TIME).map_err(db_err)?;
    let mut by_analyst = txn.open_table(JOBS_BY_ANALYST).map_err(db_err)?;
    let mut kept = txn.open_table(KEPT_RESULTS).map_err(db_err)?;
    let time = cursor_bytes(job.submitted_at_ms, &job.id);
    let mut analyst = analyst_prefix(&job.analyst);
    analyst.extend_from_slice(&time);
    let finish = kept_key(job);
    if insert {
        by_time
            .insert(time.as_slice(), job.id.as_str())
            .map_err(db_err)?;
        by_analyst
            .insert(analyst.as_slice(), job.id.as_str())
            .map_err(db_err)?;
        if let Some(k) = &finish {
            kept.insert(k.as_slice(), job.id.as_str()).map_err(db_err)?;
        }
    } else {
        by_time.remove(time.as_slice()).map_err(db_err)?;
        by_analyst.remove(analyst.as_slice()).map_err(db_err)?;
        if let Some(k) = &finish {
            kept.remove(k.as_slice()).map_err(db_err)?;
        }
    }
    Ok(())
}

impl Store {
    /// Opens (or creates) the database in `state_dir`; a store of an older layout gets its
    /// indexes built.
    pub fn open(state_dir: &Path) -> Result<Self, CoordinatorError> {
        std::fs::create_dir_all(state_dir).map_err(|e| CoordinatorError::Io {
            path: state_dir.to_path_buf(),
            source: e,
        })?;
        let db = Database::create(state_dir.join(DB_FILE)).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        for table in [PARTIES, JOBS, RESULTS, HEADS] {
            txn.open_table(table).map_err(db_err)?;
        }
        for table in [JOBS_BY_TIME, JOBS_BY_ANALYST, KEPT_RESULTS] {
            txn.open_table(table).map_err(db_err)?;
        }
        txn.open_table(EXPIRED_RESULTS).map_err(db_err)?;
        let schema = txn
            .open_table(META)
            .map_err(db_err)?
            .get("schema")
            .map_err(db_err)?
            .map_or(0, |v| v.value());
        if schema < SCHEMA {
            Self::rebuild_indexes(&txn)?;
            txn.open_table(META)
                .map_err(db_err)?
                .insert("schema", SCHEMA)
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(Self { db })
    }

    /// Builds every index from the job records (once, for a store that predates them).
    fn rebuild_indexes(txn: &redb::WriteTransaction) -> Result<(), CoordinatorError> {
        for table in [JOBS_BY_TIME, JOBS_BY_ANALYST, KEPT_RESULTS] {
            txn.open_table(table)
                .map_err(db_err)?
                .retain(|_, _| false)
                .map_err(db_err)?;
        }
        let jobs = {
            let table = txn.open_table(JOBS).map_err(db_err)?;
            let mut jobs = Vec::new();
            for entry in table.iter().map_err(db_err)? {
                let (k, v) = entry.map_err(db_err)?;
                jobs.push(decode_job(k.value(), v.value())?);
            }
            jobs
        };
        tracing::info!(jobs = jobs.len(), "building the job indexes");
        for job in &jobs {
            index_job(txn, job, true)?;
        }
        Ok(())
    }

    fn put<M: Message>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &M,
    ) -> Result<(), CoordinatorError> {
        let bytes = value.encode_to_vec();
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(table)
            .map_err(db_err)?
            .insert(key, bytes.as_slice())
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    fn get<M: Message + Default>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<M>, CoordinatorError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(table).map_err(db_err)?;
        match table.get(key).map_err(db_err)? {
            None => Ok(None),
            Some(v) => M::decode(v.value())
                .map(Some)
                .map_err(|e| CoordinatorError::Storage(format!("corrupt record {key:?}: {e}"))),
        }
    }

    fn all<M: Message + Default>(
        &self,
        table: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<M>, CoordinatorError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(table).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (k, v) = entry.map_err(db_err)?;
            out.push(M::decode(v.value()).map_err(|e| {
                CoordinatorError::Storage(format!("corrupt record {:?}: {e}", k.value()))
            })?);
        }
        Ok(out)
    }

    /// Inserts or replaces a party.
    pub fn put_party(&self, party: &PartyInfo) -> Result<(), CoordinatorError> {
        self.put(PARTIES, &party.id, party)
    }

    /// A party by id.
    pub fn party(&self, id: &str) -> Result<Option<PartyInfo>, CoordinatorError> {
        self.get(PARTIES, id)
    }

    /// All parties, ordered by id.
    pub fn parties(&self) -> Result<Vec<PartyInfo>, CoordinatorError> {
        self.all(PARTIES)
    }

    /// Inserts or replaces a job, and its index entries, in one transaction.
    pub fn put_job(&self, job: &Job) -> Result<(), CoordinatorError> {
        let bytes = job.encode_to_vec();
        let txn = self.db.begin_write().map_err(db_err)?;
        let old = txn
            .open_table(JOBS)
            .map_err(db_err)?
            .insert(job.id.as_str(), bytes.as_slice())
            .map_err(db_err)?
            .map(|v| decode_job(&job.id, v.value()))
            .transpose()?;
        if let Some(old) = &old {
            index_job(&txn, old, false)?;
        }
        index_job(&txn, job, true)?;
        txn.commit().map_err(db_err)
    }

    /// A job by id.
    pub fn job(&self, id: &str) -> Result<Option<Job>, CoordinatorError> {
        self.get(JOBS, id)
    }

    /// All jobs (unordered).
    pub fn jobs(&self) -> Result<Vec<Job>, CoordinatorError> {
        self.all(JOBS)
    }

    /// At most `limit` jobs, newest first (submission time, then id, both descending), of
    /// `analyst` (`None`: everybody's), after `after` (`None`: from the newest), and no more
    /// than `max_bytes` of encoded jobs (but at least one). Reads the index and decodes only
    /// the jobs returned.
    pub fn jobs_page(
        &self,
        analyst: Option<&str>,
        after: Option<&JobCursor>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<JobPage, CoordinatorError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let jobs = txn.open_table(JOBS).map_err(db_err)?;
        let (table, prefix) = match analyst {
            Some(a) => (JOBS_BY_ANALYST, analyst_prefix(a)),
            None => (JOBS_BY_TIME, Vec::new()),
        };
        let index = txn.open_table(table).map_err(db_err)?;
        let lower = if prefix.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Included(prefix.clone())
        };
        let upper = match after {
            Some(c) => {
                let mut key = prefix.clone();
                key.extend_from_slice(&c.bytes());
                Bound::Excluded(key)
            }
            None if prefix.is_empty() => Bound::Unbounded,
            None => successor(&prefix).map_or(Bound::Unbounded, Bound::Excluded),
        };
        let bounds = (
            lower.as_ref().map(Vec::as_slice),
            upper.as_ref().map(Vec::as_slice),
        );
        let mut page = Vec::new();
        let mut bytes = 0usize;
        let mut more = false;
        for entry in index.range::<&[u8]>(bounds).map_err(db_err)?.rev() {
            let (_, id) = entry.map_err(db_err)?;
            if page.len() >= limit {
                more = true;
                break;
            }
            let id = id.value();
            // The index and the records are written in one transaction: a miss is a bug,
            // skipped rather than failing every listing.
            let Some(v) = jobs.get(id).map_err(db_err)? else {
                continue;
            };
            bytes = bytes.saturating_add(v.value().len());
            if !page.is_empty() && bytes > max_bytes {
                more = true;
                break;
            }
            page.push(decode_job(id, v.value())?);
        }
        let next = if more {
            page.last().map(JobCursor::of)
        } else {
            None
        };
        Ok(JobPage { jobs: page, next })
    }

    /// Replaces a writer's latest signed head.
    pub fn put_head(&self, head: &AuditHead) -> Result<(), CoordinatorError> {
        self.put(HEADS, &head.writer, head)
    }

    /// A writer's latest signed head.
    pub fn head(&self, writer: &str) -> Result<Option<AuditHead>, CoordinatorError> {
        self.get(HEADS, writer)
    }

    /// Forgets a writer's head (its audit key changed: its new log starts afresh).
    pub fn delete_head(&self, writer: &str) -> Result<(), CoordinatorError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(HEADS)
            .map_err(db_err)?
            .remove(writer)
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    /// Stores one party's sealed result for a job, once: the check that none is stored yet and
    /// the write are one transaction, so a second upload (even a concurrent one) never replaces
    /// the first.
    ///
    /// # Errors
    /// [`CoordinatorError::ResultExists`] when the party's result is already stored.
    pub fn put_result(
        &self,
        job_id: &str,
        party: &str,
        sealed: &[u8],
    ) -> Result<(), CoordinatorError> {
        let key = result_key(job_id, party);
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(RESULTS).map_err(db_err)?;
            if table.get(key.as_str()).map_err(db_err)?.is_some() {
                return Err(CoordinatorError::ResultExists {
                    job: job_id.to_string(),
                    party: party.to_string(),
                });
            }
            table.insert(key.as_str(), sealed).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// One party's sealed result for a job.
    pub fn result(&self, job_id: &str, party: &str) -> Result<Option<Vec<u8>>, CoordinatorError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(RESULTS).map_err(db_err)?;
        Ok(table
            .get(result_key(job_id, party).as_str())
            .map_err(db_err)?
            .map(|v| v.value().to_vec()))
    }

    /// Whether `party`'s result for the job is stored (without reading it).
    pub fn has_result(&self, job_id: &str, party: &str) -> Result<bool, CoordinatorError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(RESULTS).map_err(db_err)?;
        Ok(table
            .get(result_key(job_id, party).as_str())
            .map_err(db_err)?
            .is_some())
    }

    /// Deletes every sealed result of a job (a failed job releases nothing).
    pub fn delete_results(&self, job_id: &str) -> Result<(), CoordinatorError> {
        let (from, to) = result_range(job_id);
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(RESULTS).map_err(db_err)?;
            table
                .retain_in::<&str, _>(from.as_str()..to.as_str(), |_, _| false)
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Deletes the sealed results of at most `batch` succeeded jobs that finished at or before
    /// `cutoff_ms` (oldest first), marks each as expired at `now_ms`, and says what went (for
    /// each job swept; `parties` is empty if none of its results was left). One transaction:
    /// the results, the index entry and the mark go together.
    pub fn expire_results(
        &self,
        cutoff_ms: i64,
        now_ms: i64,
        batch: usize,
    ) -> Result<Vec<ExpiredResults>, CoordinatorError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let mut expired = Vec::new();
        {
            let mut kept = txn.open_table(KEPT_RESULTS).map_err(db_err)?;
            let mut results = txn.open_table(RESULTS).map_err(db_err)?;
            let mut marks = txn.open_table(EXPIRED_RESULTS).map_err(db_err)?;
            // Everything finished at or before the cutoff: keys below (cutoff + 1, "").
            let upper = time_bytes(cutoff_ms.saturating_add(1));
            let mut due = Vec::new();
            for entry in kept.range::<&[u8]>(..upper.as_slice()).map_err(db_err)? {
                let (k, id) = entry.map_err(db_err)?;
                due.push((k.value().to_vec(), id.value().to_string()));
                if due.len() == batch {
                    break;
                }
            }
            for (key, job_id) in due {
                let (from, to) = result_range(&job_id);
                let mut gone = ExpiredResults {
                    job_id: job_id.clone(),
                    parties: Vec::new(),
                    bytes: 0,
                };
                for entry in results
                    .extract_from_if::<&str, _>(from.as_str()..to.as_str(), |_, _| true)
                    .map_err(db_err)?
                {
                    let (k, v) = entry.map_err(db_err)?;
                    let party = k.value().get(from.len()..).unwrap_or_default().to_string();
                    gone.parties.push(party);
                    gone.bytes += v.value().len() as u64;
                }
                kept.remove(key.as_slice()).map_err(db_err)?;
                if !gone.parties.is_empty() {
                    marks.insert(job_id.as_str(), now_ms).map_err(db_err)?;
                }
                expired.push(gone);
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(expired)
    }

    /// When the retention sweep deleted the job's results (`None`: it did not).
    pub fn results_expired_at(&self, job_id: &str) -> Result<Option<i64>, CoordinatorError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(EXPIRED_RESULTS).map_err(db_err)?;
        Ok(table.get(job_id).map_err(db_err)?.map(|v| v.value()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .put_party(&PartyInfo {
                    id: "bank".into(),
                    endpoint: "https://127.0.0.1:1".into(),
                    ..Default::default()
                })
                .unwrap();
            store
                .put_job(&Job {
                    id: "j1".into(),
                    state: 4,
                    ..Default::default()
                })
                .unwrap();
            store.put_result("j1", "bank", b"sealed").unwrap();
            store.put_result("j10", "bank", b"other").unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.party("bank").unwrap().unwrap().endpoint,
            "https://127.0.0.1:1"
        );
        assert_eq!(store.job("j1").unwrap().unwrap().state, 4);
        assert_eq!(store.result("j1", "bank").unwrap().unwrap(), b"sealed");
        store.delete_results("j1").unwrap();
        assert!(store.result("j1", "bank").unwrap().is_none());
        assert_eq!(store.result("j10", "bank").unwrap().unwrap(), b"other");
        assert!(store.party("nobody").unwrap().is_none());
    }

    fn job(id: &str, analyst: &str, at: i64) -> Job {
        Job {
            id: id.into(),
            analyst: analyst.into(),
            submitted_at_ms: at,
            state: JobState::Running as i32,
            ..Default::default()
        }
    }

    fn ids(page: &JobPage) -> Vec<&str> {
        page.jobs.iter().map(|j| j.id.as_str()).collect()
    }

    /// Every page of `analyst`'s listing, `limit` at a time.
    fn walk(store: &Store, analyst: Option<&str>, limit: usize) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut after: Option<JobCursor> = None;
        loop {
            // Through the token, as a client would pass it back.
            let token = after.as_ref().map(JobCursor::to_token);
            let cursor = token.map(|t| JobCursor::from_token(&t).unwrap());
            let page = store
                .jobs_page(analyst, cursor.as_ref(), limit, usize::MAX)
                .unwrap();
            pages.push(ids(&page).iter().map(ToString::to_string).collect());
            match page.next {
                Some(next) => after = Some(next),
                None => return pages,
            }
        }
    }

    #[test]
    fn jobs_page_newest_first_per_analyst_without_gaps_or_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Equal times are ordered by id, descending; a negative time sorts before all others.
        let jobs = [
            ("a1", "alice", 10),
            ("b1", "bob", 20),
            ("a2", "alice", 20),
            ("a3", "alice", 30),
            ("a0", "alice", -5),
            ("x", "alic", 40),
        ];
        for (id, analyst, at) in jobs {
            store.put_job(&job(id, analyst, at)).unwrap();
        }
        // A state change rewrites the record; the index follows, without duplicates.
        let mut a3 = job("a3", "alice", 30);
        a3.set_state(JobState::Succeeded);
        store.put_job(&a3).unwrap();
        assert_eq!(
            walk(&store, Some("alice"), 2),
            [vec!["a3", "a2"], vec!["a1", "a0"]]
        );
        assert_eq!(
            walk(&store, None, 4),
            [vec!["x", "a3", "b1", "a2"], vec!["a1", "a0"]]
        );
        assert_eq!(walk(&store, Some("bob"), 5), [vec!["b1"]]);
        assert_eq!(walk(&store, Some("nobody"), 5), [Vec::<String>::new()]);
        assert_eq!(walk(&store, Some("alic"), 5), [vec!["x"]]);
    }

    #[test]
    fn a_malformed_page_token_is_refused() {
        let good = JobCursor {
            submitted_at_ms: 7,
            id: "job-1".into(),
        };
        assert_eq!(JobCursor::from_token(&good.to_token()).unwrap(), good);
        let long = "ab".repeat(8 + MAX_TOKEN_ID + 1);
        let not_utf8 = format!("{}ff", hex::encode([0u8; 8]));
        let no_id = hex::encode([0u8; 8]);
        for token in ["zz", "abc", "", "00", &no_id, &not_utf8, &long, "é"] {
            assert!(
                matches!(
                    JobCursor::from_token(token),
                    Err(CoordinatorError::InvalidRequest(_))
                ),
                "{token:?}"
            );
        }
    }

    proptest::proptest! {
        /// Any text as a page token is either refused or a cursor that makes that very token
        /// again; every cursor's token reads back as itself.
        #[test]
        fn page_tokens_round_trip_and_anything_else_is_refused(
            token in ".{0,80}|[0-9a-f]{0,150}",
            at in proptest::prelude::any::<i64>(),
            id in "[a-zA-Z0-9_-]{1,64}",
        ) {
            match JobCursor::from_token(&token) {
                Ok(cursor) => proptest::prop_assert_eq!(cursor.to_token(), token.to_ascii_lowercase()),
                Err(e) => proptest::prop_assert!(matches!(e, CoordinatorError::InvalidRequest(_))),
            }
            let cursor = JobCursor { submitted_at_ms: at, id };
            proptest::prop_assert_eq!(JobCursor::from_token(&cursor.to_token()).unwrap(), cursor);
        }
    }

    #[test]
    fn a_store_without_indexes_gets_them_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            // The previous layout: records only.
            let db = Database::create(dir.path().join(DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut table = txn.open_table(JOBS).unwrap();
                for (id, at) in [("j1", 1), ("j2", 2)] {
                    let bytes = job(id, "alice", at).encode_to_vec();
                    table.insert(id, bytes.as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(walk(&store, Some("alice"), 10), [vec!["j2", "j1"]]);
        assert_eq!(walk(&store, None, 10), [vec!["j2", "j1"]]);
    }

    #[test]
    fn a_result_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put_result("j1", "bank", b"first").unwrap();
        assert!(matches!(
            store.put_result("j1", "bank", b"second"),
            Err(CoordinatorError::ResultExists { .. })
        ));
        assert_eq!(store.result("j1", "bank").unwrap().unwrap(), b"first");
        assert!(store.has_result("j1", "bank").unwrap());
        store.put_result("j1", "clinic", b"other party").unwrap();
    }

    #[test]
    fn expired_results_go_with_their_index_entry_and_leave_a_mark() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let done = |id: &str, finished: i64| {
            let mut j = job(id, "alice", 0);
            j.set_state(JobState::Succeeded);
            j.finished_at_ms = finished;
            j
        };
        for (id, finished) in [("old", 100), ("new", 200)] {
            store.put_result(id, "bank", b"12345").unwrap();
            store.put_result(id, "clinic", b"123").unwrap();
            store.put_job(&done(id, finished)).unwrap();
        }
        assert!(store.expire_results(99, 1000, 10).unwrap().is_empty());
        let gone = store.expire_results(100, 1000, 10).unwrap();
        assert_eq!(
            gone,
            [ExpiredResults {
                job_id: "old".into(),
                parties: vec!["bank".into(), "clinic".into()],
                bytes: 8,
            }]
        );
        assert!(store.result("old", "bank").unwrap().is_none());
        assert_eq!(store.results_expired_at("old").unwrap(), Some(1000));
        assert_eq!(store.results_expired_at("new").unwrap(), None);
        assert!(store.result("new", "bank").unwrap().is_some());
        // Swept once: nothing more to do for it.
        assert!(store.expire_results(100, 2000, 10).unwrap().is_empty());
        assert_eq!(store.expire_results(i64::MAX, 3000, 10).unwrap().len(), 1);
    }
}
