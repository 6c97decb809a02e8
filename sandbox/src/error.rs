//! The sandbox's one error type.

use std::path::{Path, PathBuf};

use treaty_mpc::MpcError;
use treaty_mpc::transport::TransportError;
use treaty_party::PartyError;

/// What can go wrong starting a sandbox, generating data or running a demo.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// A party node failed.
    #[error(transparent)]
    Party(#[from] PartyError),
    /// The coordinator failed.
    #[error(transparent)]
    Coordinator(#[from] treaty_coordinator::CoordinatorError),
    /// Fetching, verifying or opening a result failed.
    #[error(transparent)]
    Analyst(#[from] treaty_analyst::AnalystError),
    /// Identities, certificates, signatures.
    #[error(transparent)]
    Trust(#[from] treaty_trust::TrustError),
    /// A protocol, fixed-point or sealing step failed.
    #[error(transparent)]
    Mpc(#[from] MpcError),
    /// A call to the coordinator failed (the status message is the whole story).
    #[error("coordinator call failed: {}", .0.message())]
    Rpc(tonic::Status),
    /// A job ended in a state other than the one expected, or its stream ended.
    #[error("aborted: {0}")]
    Aborted(String),
    /// A demo's inputs, its result or its comparison with the clear computation failed.
    #[error("{0}")]
    Failed(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl From<tonic::Status> for SandboxError {
    fn from(status: tonic::Status) -> Self {
        Self::Rpc(status)
    }
}

impl From<treaty_party::dataset::DatasetError> for SandboxError {
    fn from(e: treaty_party::dataset::DatasetError) -> Self {
        Self::Party(e.into())
    }
}

impl From<TransportError> for SandboxError {
    fn from(e: TransportError) -> Self {
        Self::Party(e.into())
    }
}

impl From<tonic::transport::Error> for SandboxError {
    fn from(e: tonic::transport::Error) -> Self {
        Self::Party(e.into())
    }
}

impl From<treaty_audit::AuditError> for SandboxError {
    fn from(e: treaty_audit::AuditError) -> Self {
        Self::Party(e.into())
    }
}

impl From<treaty_job::JobError> for SandboxError {
    fn from(e: treaty_job::JobError) -> Self {
        Self::Party(e.into())
    }
}

/// Maps an I/O error on `path` to [`SandboxError::Io`].
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SandboxError + '_ {
    move |e| SandboxError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}
