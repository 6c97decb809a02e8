//! The crate's one error type.

use std::path::{Path, PathBuf};

use treaty_mpc::MpcError;
use treaty_mpc::transport::TransportError;

use crate::dataset::DatasetError;
use crate::refusal::Refusal;

/// Everything that can go wrong in a party node. Messages never contain data values or secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartyError {
    /// The node's configuration file is unusable.
    #[error("config {}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A dataset could not be read or does not match its schema.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// A value cannot be used in the computation (e.g. out of the fixed-point range).
    #[error("dataset {dataset:?}, column {column:?}, row {row}: {source}")]
    Value {
        /// The dataset.
        dataset: String,
        /// The column.
        column: String,
        /// 1-based data row.
        row: usize,
        /// Why.
        source: MpcError,
    },
    /// The job does not fit this party's datasets, models, policy or assignment.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// An operator's approval command fails.
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// Homomorphic encryption: the owner's keys, a model, ciphertexts (shapes only: sizes,
    /// names, bounds).
    #[cfg(feature = "fhe")]
    #[error(transparent)]
    Fhe(#[from] treaty_fhe::FheError),
    /// The secure computation failed.
    #[error(transparent)]
    Mpc(#[from] MpcError),
    /// The data plane failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The data plane failed with a named peer.
    #[error("data plane with {party}: {error}")]
    Peer {
        /// The peer's party id.
        party: String,
        /// What happened (the peer appears there by its index). Not a `source`: the message
        /// already includes it, and a source would print it twice in an error chain.
        error: TransportError,
    },
    /// This node's audit log or identity key.
    #[error(transparent)]
    Audit(#[from] treaty_audit::AuditError),
    /// A job spec fails the checks every spec must pass.
    #[error(transparent)]
    Job(#[from] treaty_job::JobError),
    /// Identities, certificates, the roster or signatures.
    #[error(transparent)]
    Trust(#[from] treaty_trust::TrustError),
    /// A gRPC call failed (the status message is the whole story: no source chain).
    #[error("coordinator call failed: {}", .0.message())]
    Rpc(tonic::Status),
    /// The gRPC transport failed.
    #[error("network: {0}")]
    Network(#[from] tonic::transport::Error),
    /// The job was aborted (by the coordinator, a peer, or shutdown).
    #[error("aborted: {0}")]
    Aborted(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl From<tonic::Status> for PartyError {
    fn from(status: tonic::Status) -> Self {
        Self::Rpc(status)
    }
}

impl PartyError {
    /// Names the peer of a data-plane error by its party id (`ids` by protocol index).
    pub fn with_peer_names(self, ids: &[String]) -> Self {
        let transport = match self {
            Self::Transport(e) | Self::Mpc(MpcError::Transport(e)) => e,
            other => return other,
        };
        match transport.peer().and_then(|i| ids.get(i)) {
            Some(party) => Self::Peer {
                party: party.clone(),
                error: transport,
            },
            None => Self::Transport(transport),
        }
    }
}

/// Why an operator's approval command fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// The name given is not a job id (job ids name files here).
    #[error("{job:?} is not a job id")]
    NotAJobId {
        /// The name given.
        job: String,
    },
    /// No request for that job is waiting.
    #[error("job {job} is not waiting for an approval at {party} (see `treaty approvals`)")]
    NotPending {
        /// The job.
        job: String,
        /// This party.
        party: String,
    },
    /// The job was already approved or rejected.
    #[error("job {job} was already decided")]
    AlreadyDecided {
        /// The job.
        job: String,
    },
    /// A rejection without a reason.
    #[error("a rejection needs a reason (--reason): the analyst sees it")]
    NeedsReason,
}

/// Maps an I/O error on `path` to [`PartyError::Io`].
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PartyError + '_ {
    move |e| PartyError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}
