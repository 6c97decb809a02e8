//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the trust layer. Never holds key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file or value is malformed (a key file, an analysts file, a URL).
    #[error("{0}")]
    Invalid(String),
    /// A signed submission is malformed or its signature does not verify.
    #[error("submission: {0}")]
    Submission(String),
    /// A party's result share is not signed by that party for this job and recipient (or no
    /// key is trusted for it): nothing of the result is opened.
    #[error("the result share of party {party:?} is refused: {fault}")]
    ResultSignature {
        /// The party whose share failed.
        party: String,
        /// Why.
        fault: crate::result::ResultFault,
    },
    /// The operating system gave no randomness.
    #[error("no OS randomness")]
    Randomness,
    /// A certificate names no Treaty role and name, or names them wrongly.
    #[error("certificate: {0}")]
    Certificate(String),
    /// A roster file is malformed or inconsistent.
    #[error("roster: {0}")]
    Roster(String),
    /// The roster is not the one this node's operator accepted.
    #[error(
        "roster version {version} (sha256 {sha256}) is not the one accepted here{}: review it \
         and run `treaty roster accept`",
        match pinned { Some((v, s)) => format!(" (version {v}, sha256 {s} is)"), None => " (none is)".to_string() }
    )]
    RosterNotAccepted {
        /// The roster's version.
        version: u64,
        /// Its SHA-256, hex.
        sha256: String,
        /// The pinned version and SHA-256, if any.
        pinned: Option<(u64, String)>,
    },
    /// A changed roster does not carry a higher version than the accepted one.
    #[error(
        "the roster changed but its version {version} is not above the accepted version {pinned}"
    )]
    RosterVersion {
        /// The new file's version.
        version: u64,
        /// The accepted version.
        pinned: u64,
    },
    /// TLS material could not be loaded or used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// Certificates could not be issued.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// The gRPC channel failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}
