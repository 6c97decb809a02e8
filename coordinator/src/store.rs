//! Durable state: the party registry, jobs and sealed results, in one redb file.
//!
//! Values are the protobuf encodings of the wire types, so what is stored is exactly what is
//! served. Every write is its own ACID transaction; a crash or restart loses nothing committed.

use std::path::Path;

use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use treaty_proto::v1::{AuditHead, Job, PartyInfo};

use crate::CoordinatorError;

const PARTIES: TableDefinition<&str, &[u8]> = TableDefinition::new("parties");
const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
/// Each audit writer's latest signed head, by writer.
const HEADS: TableDefinition<&str, &[u8]> = TableDefinition::new("audit_heads");
/// Key: `"{job_id}\0{party}"`.
const RESULTS: TableDefinition<&str, &[u8]> = TableDefinition::new("results");

/// File name of the database inside the state directory.
pub const DB_FILE: &str = "coordinator.redb";

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

impl Store {
    /// Opens (or creates) the database in `state_dir`.
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
        txn.commit().map_err(db_err)?;
        Ok(Self { db })
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

    /// Inserts or replaces a job.
    pub fn put_job(&self, job: &Job) -> Result<(), CoordinatorError> {
        self.put(JOBS, &job.id, job)
    }

    /// A job by id.
    pub fn job(&self, id: &str) -> Result<Option<Job>, CoordinatorError> {
        self.get(JOBS, id)
    }

    /// All jobs (unordered).
    pub fn jobs(&self) -> Result<Vec<Job>, CoordinatorError> {
        self.all(JOBS)
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

    /// Stores one party's sealed result for a job.
    pub fn put_result(
        &self,
        job_id: &str,
        party: &str,
        sealed: &[u8],
    ) -> Result<(), CoordinatorError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(RESULTS)
            .map_err(db_err)?
            .insert(result_key(job_id, party).as_str(), sealed)
            .map_err(db_err)?;
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

    /// Deletes every sealed result of a job (a failed job releases nothing).
    pub fn delete_results(&self, job_id: &str) -> Result<(), CoordinatorError> {
        let prefix = format!("{job_id}\0");
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(RESULTS).map_err(db_err)?;
            table
                .retain(|k, _| !k.starts_with(&prefix))
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
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
}
