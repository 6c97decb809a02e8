//! The crate's one error type, and its single mapping onto gRPC status codes.

use std::path::PathBuf;

/// Everything that can go wrong in the coordinator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinatorError {
    /// A job spec failed validation; every problem is listed.
    #[error("invalid job spec: {}", .0.join("; "))]
    InvalidSpec(Vec<String>),
    /// A request was malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The job does not exist.
    #[error("unknown job {0:?}")]
    UnknownJob(String),
    /// The party is not registered.
    #[error("unknown party {0:?}")]
    UnknownParty(String),
    /// The party id is taken by another identity (or is online elsewhere).
    #[error("party id {id:?} is already registered {how}")]
    DuplicateParty {
        /// The id.
        id: String,
        /// Why the registration is refused.
        how: &'static str,
    },
    /// The caller's TLS identity does not match the party it claims to be.
    #[error("caller is not authenticated as party {0:?}")]
    NotAuthenticated(String),
    /// The caller is authenticated but not allowed (unknown or revoked analyst, stale or
    /// forged submission, a head that does not verify).
    #[error("not authorized: {0}")]
    NotAuthorized(String),
    /// The same signed submission was already submitted.
    #[error(
        "this signed submission was already submitted as job {0} (sign it again for a new job)"
    )]
    AlreadySubmitted(String),
    /// The operation does not fit the job's state.
    #[error("job {job} is {state}: {what}")]
    WrongState {
        /// The job.
        job: String,
        /// Its state.
        state: String,
        /// What was attempted.
        what: &'static str,
    },
    /// A sealed result exceeds the size limit.
    #[error("sealed result for job {job} exceeds {max} bytes")]
    ResultTooLarge {
        /// The job.
        job: String,
        /// The limit.
        max: usize,
    },
    /// The embedded database failed.
    #[error("storage: {0}")]
    Storage(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Identities, certificates, signatures or TLS material.
    #[error(transparent)]
    Trust(#[from] treaty_trust::TrustError),
    /// The gRPC server or channel failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl From<CoordinatorError> for tonic::Status {
    fn from(e: CoordinatorError) -> Self {
        use CoordinatorError as E;
        let msg = e.to_string();
        match e {
            E::InvalidSpec(_) | E::InvalidRequest(_) => tonic::Status::invalid_argument(msg),
            E::UnknownJob(_) | E::UnknownParty(_) => tonic::Status::not_found(msg),
            E::DuplicateParty { .. } => tonic::Status::already_exists(msg),
            E::NotAuthenticated(_) | E::NotAuthorized(_) => tonic::Status::permission_denied(msg),
            E::AlreadySubmitted(_) => tonic::Status::already_exists(msg),
            E::WrongState { .. } => tonic::Status::failed_precondition(msg),
            E::ResultTooLarge { .. } => tonic::Status::resource_exhausted(msg),
            E::Trust(
                treaty_trust::TrustError::Submission(_) | treaty_trust::TrustError::Invalid(_),
            ) => tonic::Status::invalid_argument(msg),
            E::Trust(treaty_trust::TrustError::Certificate(_)) => {
                tonic::Status::permission_denied(msg)
            }
            E::Storage(_) | E::Io { .. } | E::Trust(_) | E::Transport(_) => {
                tonic::Status::internal(msg)
            }
        }
    }
}

impl From<treaty_trust::tls::TlsError> for CoordinatorError {
    fn from(e: treaty_trust::tls::TlsError) -> Self {
        Self::Trust(e.into())
    }
}

impl From<treaty_trust::pki::PkiError> for CoordinatorError {
    fn from(e: treaty_trust::pki::PkiError) -> Self {
        Self::Trust(e.into())
    }
}
