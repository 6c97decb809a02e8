//! Human approval of the jobs a policy admits only with one (`approval = true` in a rule).
//!
//! The node writes the request to `<state dir>/approvals/<job>.json` and tells the coordinator it
//! waits; an operator on the party's machine lists requests (`treaty approvals`) and answers
//! (`treaty approve JOB` / `treaty reject JOB --reason …`), which writes
//! `<job>.decision.json` next to it (atomically: temporary file, then rename). The node picks the
//! decision up, records it in its audit log with the policy version it approves under, and
//! accepts or refuses the job. Only whoever can write the party's state directory can approve:
//! the same people who can read its data.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::PartyError;
use crate::config::PartyConfig;
use crate::error::io_err;

pub use crate::error::ApprovalError;

/// How often the node looks for a decision.
const POLL: Duration = Duration::from_millis(200);

/// What an approver sees about a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// The job id.
    pub job: String,
    /// The job's name.
    pub name: String,
    /// The analyst who signed it.
    pub analyst: String,
    /// The job kind.
    pub kind: String,
    /// Every party of the job.
    pub parties: Vec<String>,
    /// This party's dataset in it ("" for none).
    pub dataset: String,
    /// The columns of that dataset it touches.
    pub columns: Vec<String>,
    /// The output recipient's label and key (hex).
    pub recipient: String,
    /// The recipient's HPKE key, hex.
    pub recipient_key: String,
    /// The policy version that admitted it (hex SHA-256).
    pub policy_sha256: String,
    /// When it arrived (ms since the epoch).
    pub received_at_ms: u64,
}

/// An approver's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Approved or rejected.
    pub approved: bool,
    /// Who decided.
    pub by: String,
    /// Why (shown to the analyst on a rejection).
    pub reason: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

/// The directory of pending approvals.
pub fn approvals_dir(cfg: &PartyConfig) -> PathBuf {
    cfg.state_dir().join("approvals")
}

/// Job ids name files here: only `job-` and lowercase letters, digits and dashes.
fn checked(job: &str) -> Result<&str, PartyError> {
    let ok = job.len() <= 64
        && job.starts_with("job-")
        && job
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(job)
    } else {
        Err(ApprovalError::NotAJobId {
            job: job.to_string(),
        }
        .into())
    }
}

fn pending_path(cfg: &PartyConfig, job: &str) -> Result<PathBuf, PartyError> {
    Ok(approvals_dir(cfg).join(format!("{}.json", checked(job)?)))
}

fn decision_path(cfg: &PartyConfig, job: &str) -> Result<PathBuf, PartyError> {
    Ok(approvals_dir(cfg).join(format!("{}.decision.json", checked(job)?)))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PartyError> {
    treaty_trust::pki::write_atomically(path, bytes)
        .map_err(|e| treaty_trust::TrustError::from(e).into())
}

/// Records a request for approval.
///
/// # Errors
/// I/O failures, a malformed job id.
pub fn request(cfg: &PartyConfig, pending: &PendingApproval) -> Result<(), PartyError> {
    let path = pending_path(cfg, &pending.job)?;
    let json = serde_json::to_vec_pretty(pending).map_err(|e| io_err(&path)(e.into()))?;
    write_atomic(&path, &json)
}

/// The requests waiting for a decision, oldest first.
///
/// # Errors
/// I/O failures; a request file that does not parse is named.
pub fn list(cfg: &PartyConfig) -> Result<Vec<PendingApproval>, PartyError> {
    let dir = approvals_dir(cfg);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_err(&dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(job) = name.strip_suffix(".json") else {
            continue;
        };
        if job.ends_with(".decision") || decision_path(cfg, job).is_ok_and(|d| d.exists()) {
            continue;
        }
        let text = std::fs::read(&path).map_err(io_err(&path))?;
        out.push(
            serde_json::from_slice(&text).map_err(|e| PartyError::Config {
                path: path.clone(),
                reason: format!("not an approval request: {e}"),
            })?,
        );
    }
    out.sort_by_key(|p: &PendingApproval| (p.received_at_ms, p.job.clone()));
    Ok(out)
}

/// Answers a pending request.
///
/// # Errors
/// No such pending job, already decided, a rejection without a reason, I/O failures.
pub fn decide(
    cfg: &PartyConfig,
    job: &str,
    approved: bool,
    by: &str,
    reason: &str,
) -> Result<PendingApproval, PartyError> {
    let pending = pending_path(cfg, job)?;
    let text = match std::fs::read(&pending) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApprovalError::NotPending {
                job: job.to_string(),
                party: cfg.id.clone(),
            }
            .into());
        }
        Err(e) => return Err(io_err(&pending)(e)),
    };
    let request: PendingApproval =
        serde_json::from_slice(&text).map_err(|e| PartyError::Config {
            path: pending.clone(),
            reason: format!("not an approval request: {e}"),
        })?;
    let path = decision_path(cfg, job)?;
    if path.exists() {
        return Err(ApprovalError::AlreadyDecided {
            job: job.to_string(),
        }
        .into());
    }
    if !approved && reason.trim().is_empty() {
        return Err(ApprovalError::NeedsReason.into());
    }
    let decision = Decision {
        approved,
        by: by.to_string(),
        reason: reason.to_string(),
        at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    let json = serde_json::to_vec_pretty(&decision).map_err(|e| io_err(&path)(e.into()))?;
    write_atomic(&path, &json)?;
    Ok(request)
}

/// Waits for the decision on `job`; `None` when `abort` fires first. The request and decision
/// files are removed once read.
///
/// # Errors
/// I/O failures; a decision file that does not parse.
pub async fn wait(
    cfg: &PartyConfig,
    job: &str,
    abort: &CancellationToken,
) -> Result<Option<Decision>, PartyError> {
    let path = decision_path(cfg, job)?;
    loop {
        match tokio::fs::read(&path).await {
            Ok(bytes) => {
                let decision = serde_json::from_slice(&bytes).map_err(|e| PartyError::Config {
                    path: path.clone(),
                    reason: format!("not an approval decision: {e}"),
                })?;
                forget(cfg, job);
                return Ok(Some(decision));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = abort.cancelled() => {
                forget(cfg, job);
                return Ok(None);
            }
        }
    }
}

/// Removes a job's request and decision files (best effort).
pub fn forget(cfg: &PartyConfig, job: &str) {
    for path in [pending_path(cfg, job), decision_path(cfg, job)]
        .into_iter()
        .flatten()
    {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path) -> PartyConfig {
        let mut cfg: PartyConfig = toml::from_str(
            "id = \"h\"\nlisten = \"127.0.0.1:1\"\ncoordinator = \"x\"\ninsecure = true",
        )
        .unwrap();
        cfg.base_dir = dir.to_path_buf();
        cfg
    }

    fn pending(job: &str, at: u64) -> PendingApproval {
        PendingApproval {
            job: job.into(),
            name: "n".into(),
            analyst: "ana".into(),
            kind: "stats".into(),
            parties: vec!["h".into(), "i".into()],
            dataset: "claims".into(),
            columns: vec!["age".into()],
            recipient: "ana".into(),
            recipient_key: "00".repeat(32),
            policy_sha256: "11".repeat(32),
            received_at_ms: at,
        }
    }

    #[tokio::test]
    async fn request_list_decide_wait() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = cfg(dir.path());
        request(&cfg, &pending("job-b", 2)).unwrap();
        request(&cfg, &pending("job-a", 1)).unwrap();
        let jobs: Vec<String> = list(&cfg).unwrap().into_iter().map(|p| p.job).collect();
        assert_eq!(jobs, ["job-a", "job-b"]);

        let e = decide(&cfg, "job-a", false, "op", " ").unwrap_err();
        assert!(
            matches!(e, PartyError::Approval(ApprovalError::NeedsReason)),
            "{e}"
        );
        decide(&cfg, "job-a", true, "op", "").unwrap();
        assert!(matches!(
            decide(&cfg, "job-a", false, "op", "no"),
            Err(PartyError::Approval(ApprovalError::AlreadyDecided { .. }))
        ));
        assert_eq!(
            list(&cfg).unwrap().len(),
            1,
            "a decided job is no longer listed"
        );
        let d = wait(&cfg, "job-a", &CancellationToken::new())
            .await
            .unwrap()
            .unwrap();
        assert!(d.approved);
        assert_eq!(d.by, "op");
        assert!(
            matches!(
                decide(&cfg, "job-a", true, "op", ""),
                Err(PartyError::Approval(ApprovalError::NotPending { .. }))
            ),
            "files are gone"
        );

        let cancel = CancellationToken::new();
        cancel.cancel();
        assert_eq!(wait(&cfg, "job-b", &cancel).await.unwrap(), None);
        assert!(list(&cfg).unwrap().is_empty());
    }

    #[test]
    fn job_ids_cannot_escape_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = cfg(dir.path());
        for bad in ["../etc/passwd", "job-../../x", "JOB-1", "job-a/b", ""] {
            assert!(
                matches!(
                    decide(&cfg, bad, true, "op", ""),
                    Err(PartyError::Approval(ApprovalError::NotAJobId { .. }))
                ),
                "{bad}"
            );
        }
    }
}
