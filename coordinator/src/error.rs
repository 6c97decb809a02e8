//! The crate's one error type, and its single mapping onto gRPC status codes.

use std::path::PathBuf;

/// Everything that can go wrong in the coordinator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinatorError {
    /// A job spec failed validation.
    #[error(transparent)]
    InvalidSpec(#[from] treaty_job::JobError),
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
    /// A TLS caller's certificate states no valid Treaty identity (no `treaty://ROLE/NAME` URI,
    /// two of them, or an unknown role): it names nobody, so it may call nothing.
    #[error(
        "the client certificate has no treaty:// role and name ({0}); re-issue it with `treaty init`"
    )]
    NoIdentity(String),
    /// The caller's certificate is not the one identity this call needs (a party certificate
    /// of another name, an analyst registering as a party, ...).
    #[error("{what} ({expected}); this certificate is {found}")]
    WrongIdentity {
        /// The rule broken.
        what: &'static str,
        /// The identity needed, as its URI (`treaty://party/mallory`).
        expected: String,
        /// The identity the certificate states (`analyst "analyst"`).
        found: String,
    },
    /// The caller's role may not make this call (a party submitting, an auditor cancelling).
    #[error("{what}; this certificate is {found}")]
    WrongRole {
        /// The rule broken.
        what: &'static str,
        /// The identity the certificate states.
        found: String,
    },
    /// A party reported on or uploaded for a job it is not a party of.
    #[error("party {party:?} is not a party of job {job}")]
    NotJobParty {
        /// The job.
        job: String,
        /// The caller.
        party: String,
    },
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
    /// The party's sealed result for the job is already stored: one upload per party and job.
    #[error(
        "party {party:?} already uploaded its result for job {job}; an upload is never replaced"
    )]
    ResultExists {
        /// The job.
        job: String,
        /// The party.
        party: String,
    },
    /// The job's sealed results were deleted by the retention sweep.
    #[error(
        "the results of job {job} expired: deleted at {expired_at_ms} ms since the epoch, \
         {retention_secs} s after the job finished (the coordinator's result retention)"
    )]
    ResultsExpired {
        /// The job.
        job: String,
        /// When they were deleted (ms since the epoch).
        expired_at_ms: i64,
        /// The retention in force when asked.
        retention_secs: u64,
    },
    /// The analyst already has as many unfinished jobs as the coordinator allows.
    #[error(
        "analyst {analyst:?} has {max} unfinished jobs, the most this coordinator allows; \
         wait for one to end (or cancel one) and submit again"
    )]
    TooManyJobs {
        /// The analyst.
        analyst: String,
        /// The limit (`max_jobs_in_flight_per_analyst`).
        max: usize,
    },
    /// The analyst submits faster than the coordinator allows.
    #[error(
        "analyst {analyst:?} submits too fast: at most {per_minute} submissions a minute \
         (bursts of {burst}); try again in {retry_after_ms} ms"
    )]
    RateLimited {
        /// The analyst.
        analyst: String,
        /// The sustained rate.
        per_minute: u32,
        /// The burst.
        burst: u32,
        /// When the next submission would be admitted.
        retry_after_ms: u64,
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
    /// The audit log or its key.
    #[error(transparent)]
    Audit(#[from] treaty_audit::AuditError),
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
        if let E::InvalidSpec(treaty_job::JobError::InvalidSpec(problems)) = &e {
            // The problems travel typed in the status's details, so a client need not parse `msg`.
            let details = treaty_proto::v1::SpecProblems {
                problems: problems
                    .iter()
                    .map(treaty_job::SpecProblem::to_proto)
                    .collect(),
            };
            return tonic::Status::with_details(
                tonic::Code::InvalidArgument,
                msg,
                prost::Message::encode_to_vec(&details).into(),
            );
        }
        match e {
            E::InvalidSpec(_) | E::InvalidRequest(_) => tonic::Status::invalid_argument(msg),
            E::UnknownJob(_) | E::UnknownParty(_) | E::ResultsExpired { .. } => {
                tonic::Status::not_found(msg)
            }
            E::DuplicateParty { .. } => tonic::Status::already_exists(msg),
            E::NotAuthenticated(_)
            | E::NotAuthorized(_)
            | E::NoIdentity(_)
            | E::WrongIdentity { .. }
            | E::WrongRole { .. }
            | E::NotJobParty { .. } => tonic::Status::permission_denied(msg),
            E::AlreadySubmitted(_) | E::ResultExists { .. } => tonic::Status::already_exists(msg),
            E::WrongState { .. } => tonic::Status::failed_precondition(msg),
            E::ResultTooLarge { .. } | E::TooManyJobs { .. } | E::RateLimited { .. } => {
                tonic::Status::resource_exhausted(msg)
            }
            E::Trust(
                treaty_trust::TrustError::Submission(_) | treaty_trust::TrustError::Invalid(_),
            ) => tonic::Status::invalid_argument(msg),
            E::Trust(treaty_trust::TrustError::Certificate(_)) => {
                tonic::Status::permission_denied(msg)
            }
            E::Storage(_) | E::Io { .. } | E::Audit(_) | E::Trust(_) | E::Transport(_) => {
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
