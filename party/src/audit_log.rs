//! This node's audit log ([`treaty_audit::AuditFile`]) under
//! `<state dir>/audit/`: `log.jsonl`, one hash-chained record per line, with an Ed25519
//! checkpoint after every job signed by the node's audit identity key (`identity.key`, 32 bytes,
//! mode 0600, generated on first start; its public half is registered with the coordinator and is
//! what an auditor verifies against: `treaty audit key --config party.toml`).
//!
//! At start the node verifies its own log (chain, hashes, checkpoint signatures) and refuses to
//! run on a log that fails: an operator must look at a log that was altered.

use std::path::PathBuf;

use treaty_audit::AuditFile;

use crate::PartyError;
use crate::config::PartyConfig;

/// The node's audit directory under the state directory.
pub fn audit_dir(cfg: &PartyConfig) -> PathBuf {
    cfg.state_dir().join("audit")
}

/// Opens (or starts) this node's log and verifies what is already there.
///
/// # Errors
/// I/O failures, or an existing log that fails verification (the error lists why).
pub fn open(cfg: &PartyConfig) -> Result<AuditFile, PartyError> {
    Ok(AuditFile::open(&cfg.id, &audit_dir(cfg))?)
}
