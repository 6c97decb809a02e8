//! A small deployment certificate authority, used by `treaty init` and `treaty demo`; and what
//! every node needs without issuing anything (names, key files, crash-safe writes).
//!
//! One [`Pki`] per deployment: a self-signed ECDSA P-256 CA that issues one leaf certificate per
//! node (coordinator, each party, each analyst). Every leaf is valid for both TLS server and client
//! authentication, so the same identity serves gRPC and dials peers over mutual TLS (see
//! [`crate::tls`]).
//!
//! ```text
//!   Pki::generate / Pki::load ──► Pki ──issue(name, sans)──► IssuedCert { cert_pem, key_pem }
//!                                  │
//!   write_deployment(dir, ..) ─────┴──► dir/ca.pem ca.key coordinator.{pem,key} <name>.{pem,key}
//! ```
//!
//! Node names (party ids, analyst ids) are used as TLS server names, so they must be single
//! lowercase DNS labels (see [`Pki::issue`]).
//!
//! What this module does *not* do: revocation (no CRL or OCSP), certificate renewal, or
//! encrypting private keys at rest. Key files are written with mode `0600` on unix and are
//! otherwise protected only by the filesystem.
//!
//! Issuing (the CA, [`Pki`], [`write_deployment`], [`write_organisation`]) needs the `issue`
//! feature, which brings in `rcgen`; a party node and the coordinator only load and check
//! certificates and are built without it.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustls_pki_types::pem;

#[cfg(feature = "issue")]
mod issue;
#[cfg(feature = "issue")]
pub use issue::*;

/// Errors from creating, loading or using the deployment CA.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A node name is not a single lowercase DNS label.
    #[error(
        "invalid node name {name:?}: {reason} (node names are used as TLS server names: \
         1 to 63 lowercase letters, digits or '-', not starting or ending with '-')"
    )]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The CA common name is empty or too long.
    #[error("invalid CA common name {name:?}: {reason}")]
    InvalidCommonName {
        /// The rejected common name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An extra subject alternative name is neither an IP address nor a DNS name.
    #[error(
        "invalid subject alternative name {san:?} for {name:?}: \
         expected an IP address or a DNS name"
    )]
    InvalidSan {
        /// The node the certificate was for.
        name: String,
        /// The rejected SAN.
        san: String,
    },
    /// The same node name appears twice in one deployment.
    #[error("node name {name:?} appears more than once in the deployment")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A party or analyst name clashes with a file the deployment writes for itself.
    #[error("node name {name:?} is reserved (it would clash with {name}.pem/{name}.key)")]
    ReservedName {
        /// The reserved name.
        name: String,
    },
    /// The system clock reads earlier than 1970.
    #[error("the system clock is set before the Unix epoch; cannot compute certificate validity")]
    Clock,
    /// rcgen failed to generate a key or sign a certificate.
    #[cfg(feature = "issue")]
    #[error("cannot {action}")]
    Certificate {
        /// What was being done, naming the node.
        action: String,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// A file could not be read.
    #[error("cannot read {what} {}", path.display())]
    Read {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The CA certificate file does not hold a usable certificate.
    #[error("invalid CA certificate {}: {reason}", path.display())]
    InvalidCaCert {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA key file does not hold a usable private key.
    #[error("invalid CA private key {}: {reason}", path.display())]
    InvalidCaKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (never any key material).
        reason: &'static str,
    },
    /// The CA key is not the key of the CA certificate.
    #[error(
        "CA private key {} does not belong to CA certificate {}",
        key.display(),
        cert.display()
    )]
    CaKeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The CA certificate is not marked as a CA (basicConstraints cA=TRUE).
    #[error("{} is not a CA certificate (basicConstraints cA is not set)", path.display())]
    NotACa {
        /// The file.
        path: PathBuf,
    },
    /// The CA subject uses an encoding this module cannot reproduce when issuing.
    #[error(
        "cannot issue under CA certificate {}: its subject name uses an encoding Treaty \
         cannot reproduce (multi-valued or unusual string types)",
        path.display()
    )]
    UnsupportedCaSubject {
        /// The file.
        path: PathBuf,
    },
    /// The deployment directory already holds a CA.
    #[error(
        "{} already holds a deployment CA (ca.pem); refusing to overwrite keys",
        dir.display()
    )]
    AlreadyInitialized {
        /// The directory.
        dir: PathBuf,
    },
    /// A file to be written already exists.
    #[error("refusing to overwrite existing file {}", path.display())]
    FileExists {
        /// The file.
        path: PathBuf,
    },
    /// A directory could not be created.
    #[error("cannot create directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Checks that `name` is a single lowercase DNS label that rustls also accepts as a server name.
/// Party ids must pass it: they are the TLS names peers expect.
///
/// # Errors
/// [`PkiError::InvalidName`] with the reason ([`crate::cert::name_problem`]).
pub fn validate_name(name: &str) -> Result<(), PkiError> {
    let reason = crate::cert::name_problem(name);
    match reason {
        Some(reason) => Err(PkiError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A description of a PEM error in a private key file that never echoes file content.
pub(crate) fn key_pem_error(e: &pem::Error) -> &'static str {
    match e {
        pem::Error::NoItemsFound => "no PRIVATE KEY PEM block",
        pem::Error::MissingSectionEnd { .. } => "malformed PEM: a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "malformed PEM: bad BEGIN line",
        pem::Error::Base64Decode(_) => "malformed PEM: invalid base64",
        pem::Error::SectionTooLarge => "malformed PEM: section too large",
        _ => "malformed PEM",
    }
}

/// Who may read a file [`write_new_file`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// Anyone (`0644` on unix): certificates, public keys.
    Public,
    /// Its owner only (`0600` on unix): private keys.
    Secret,
}

/// Replaces `path` with `bytes` so that a crash leaves the old file or the new one, never half of
/// one: a temporary file beside it, synced, renamed over it, then the folder synced (creating
/// the folder if needed).
///
/// # Errors
/// I/O failures, naming the file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    let write = |path: &Path| {
        let path = path.to_owned();
        move |source| PkiError::Write { path, source }
    };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    fs::create_dir_all(&dir).map_err(|source| PkiError::CreateDir {
        path: dir.clone(),
        source,
    })?;
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(write(&tmp))?;
    f.write_all(bytes).map_err(write(&tmp))?;
    f.sync_all().map_err(write(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(write(path))?;
    if let Ok(d) = fs::File::open(&dir) {
        // Best effort: some filesystems refuse to sync a directory.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes `contents` to a file that must not exist yet (`0600` on unix for secrets) and syncs it.
///
/// # Errors
/// [`PkiError::FileExists`] when something is in the way; other I/O failures.
pub fn write_new_file(path: &Path, contents: &[u8], kind: FileKind) -> Result<(), PkiError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(match kind {
            FileKind::Secret => 0o600,
            FileKind::Public => 0o644,
        });
    }
    #[cfg(not(unix))]
    let _ = kind;
    let write_error = |source| PkiError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = options.open(path).map_err(|source| match source.kind() {
        io::ErrorKind::AlreadyExists => PkiError::FileExists {
            path: path.to_owned(),
        },
        _ => write_error(source),
    })?;
    file.write_all(contents).map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

/// SubjectPublicKeyInfo (full DER) of the certificate `der`, if it parses.
pub(crate) fn cert_spki(der: &[u8]) -> Option<&[u8]> {
    use x509_parser::prelude::FromDer;
    x509_parser::certificate::X509Certificate::from_der(der)
        .ok()
        .map(|(_, cert)| cert.tbs_certificate.subject_pki.raw)
}
