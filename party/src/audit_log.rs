//! This node's audit log (`treaty_coordinator::audit`): `<state dir>/audit/log.jsonl`, one
//! hash-chained record per line, appended and flushed as events happen, with an Ed25519
//! checkpoint after every job signed by the node's audit identity key
//! (`<state dir>/audit/identity.key`, 32 bytes, mode 0600, generated on first start; its public
//! half is what an auditor verifies against: `treaty audit key --config party.toml`).
//!
//! At start the node verifies its own log (chain, hashes, checkpoint signatures) and refuses to
//! run on a log that fails: an operator must look at a log that was altered.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use treaty_coordinator::audit::{AuditEvent, AuditLog, SignedHead, verify_log};

use crate::PartyError;
use crate::config::PartyConfig;
use crate::error::io_err;

/// The audit log's file under the state directory.
pub fn log_path(cfg: &PartyConfig) -> PathBuf {
    cfg.state_dir().join("audit").join("log.jsonl")
}

/// The audit identity key's file under the state directory.
pub fn key_path(cfg: &PartyConfig) -> PathBuf {
    cfg.state_dir().join("audit").join("identity.key")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Loads the identity key, creating it (0600) if missing.
///
/// # Errors
/// I/O failures, a key file of the wrong size, or no OS randomness.
pub fn identity_key(path: &Path) -> Result<SigningKey, PartyError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                PartyError::Rejected(format!("{} is not a 32-byte Ed25519 key", path.display()))
            })?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = zeroize::Zeroizing::new([0u8; 32]);
            rand::Rng::fill_bytes(&mut treaty_mpc::seeds::os_rng()?, seed.as_mut_slice());
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io_err(dir))?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(path).map_err(io_err(path))?;
            file.write_all(seed.as_slice()).map_err(io_err(path))?;
            file.sync_all().map_err(io_err(path))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The node's audit log, shared by its jobs.
pub struct PartyAudit {
    path: PathBuf,
    key: SigningKey,
    log: Mutex<AuditLog>,
}

impl std::fmt::Debug for PartyAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartyAudit")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl PartyAudit {
    /// Opens (or starts) this node's log and verifies what is already there.
    ///
    /// # Errors
    /// I/O failures, or an existing log that fails verification (the error lists why).
    pub fn open(cfg: &PartyConfig) -> Result<Self, PartyError> {
        let key = identity_key(&key_path(cfg))?;
        let path = log_path(cfg);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let (records, failures) = verify_log(&cfg.id, &text, &key.verifying_key(), None);
        if !failures.is_empty() {
            let list: Vec<String> = failures.iter().map(ToString::to_string).collect();
            return Err(PartyError::Rejected(format!(
                "the audit log {} fails verification: {}",
                path.display(),
                list.join("; ")
            )));
        }
        Ok(Self {
            path,
            key,
            log: Mutex::new(AuditLog::from_records(cfg.id.clone(), records)),
        })
    }

    /// The public key auditors verify this log with (hex).
    #[must_use]
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// Appends an event and writes its line (flushed to disk).
    ///
    /// # Errors
    /// I/O failures.
    pub fn record(&self, job: Option<&str>, event: AuditEvent) -> Result<(), PartyError> {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let line = serde_json::to_string(log.append(now_ms(), job, event))
            .map_err(|e| PartyError::Rejected(format!("audit record: {e}")))?;
        self.write_line(&line)
    }

    /// Signs the head and appends the checkpoint; returns the signed head.
    ///
    /// # Errors
    /// I/O failures.
    pub fn checkpoint(&self) -> Result<Option<SignedHead>, PartyError> {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let Some(head) = log.checkpoint(now_ms(), &self.key) else {
            return Ok(None);
        };
        let line = log
            .records()
            .last()
            .and_then(|r| serde_json::to_string(r).ok())
            .unwrap_or_default();
        self.write_line(&line)?;
        Ok(Some(head))
    }

    fn write_line(&self, line: &str) -> Result<(), PartyError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        file.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(io_err(&self.path))
    }
}
