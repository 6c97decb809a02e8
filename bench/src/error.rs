//! The bench harnesses' one error type.

use std::path::PathBuf;

use treaty_mpc::MpcError;
use treaty_mpc::transport::TransportError;
use treaty_party::PartyError;

/// What can go wrong running a bench.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A party process (mpc, psi, train, score) failed, or found a wrong result.
    #[error("bench party {party} (index {index}) {what}")]
    Party {
        /// Its party id.
        party: String,
        /// Its index.
        index: usize,
        /// What happened, with the end of its stderr when there is one.
        what: String,
    },
    /// The data plane or a node component failed (peers named by party id).
    #[error(transparent)]
    Node(#[from] PartyError),
    /// The in-process deployment or its data failed.
    #[error(transparent)]
    Sandbox(#[from] treaty_sandbox::SandboxError),
    /// Opening a result failed.
    #[error(transparent)]
    Analyst(#[from] treaty_analyst::AnalystError),
    /// The bench was interrupted, or a process went away.
    #[error("aborted: {0}")]
    Aborted(String),
    /// A plan, a report or a result is not what the bench expects.
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

impl BenchError {
    /// Names the peer of a data-plane error by its party id (`ids` by protocol index).
    #[must_use]
    pub fn with_peer_names(self, ids: &[String]) -> Self {
        match self {
            Self::Node(e) => Self::Node(e.with_peer_names(ids)),
            other => other,
        }
    }
}

/// Maps an I/O error on `path` to [`BenchError::Io`].
#[cfg(feature = "fhe")]
pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl From<tonic::transport::Error> for BenchError {
    fn from(e: tonic::transport::Error) -> Self {
        Self::Node(e.into())
    }
}

impl From<MpcError> for BenchError {
    fn from(e: MpcError) -> Self {
        Self::Node(e.into())
    }
}

impl From<TransportError> for BenchError {
    fn from(e: TransportError) -> Self {
        Self::Node(e.into())
    }
}

impl From<treaty_trust::TrustError> for BenchError {
    fn from(e: treaty_trust::TrustError) -> Self {
        Self::Node(e.into())
    }
}

impl From<tonic::Status> for BenchError {
    fn from(e: tonic::Status) -> Self {
        Self::Node(e.into())
    }
}
