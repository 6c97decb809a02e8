//! Roles and names in certificates.
//!
//! Every Treaty certificate states who holds it as one subject-alternative-name URI,
//! `treaty://<role>/<name>`: `treaty://party/hospital`, `treaty://analyst/alice`,
//! `treaty://coordinator/coordinator`, `treaty://auditor/kim`. Every check of a connection reads
//! that URI ([`PeerIdentity::of_der`]), never the common name or a DNS name alone:
//!
//! - the coordinator admits `RegisterParty` only from a party certificate whose name is the party
//!   id, analyst calls only from analyst (or, read-only, auditor) certificates;
//! - the data plane accepts a peer's stream only from the party certificate whose name is the
//!   sender its hello claims, and (with a roster) whose fingerprint the roster pins.
//!
//! A certificate with no such URI, with two of them, or with an unknown role names nobody and is
//! refused: a deployment made before roles existed must be re-issued (`treaty init`).

use std::fmt;
use std::str::FromStr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use rustls_pki_types::DnsName;

use crate::TrustError;

/// Longest DNS label (RFC 1035 §2.3.4), and so the longest node name.
const MAX_NAME_LEN: usize = 63;

/// URI scheme of a Treaty identity.
pub const URI_SCHEME: &str = "treaty://";

/// What a certificate's holder may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A data owner's node: registers, runs jobs, speaks the data plane.
    Party,
    /// Submits, watches, cancels its own jobs and fetches their results.
    Analyst,
    /// The coordinator: serves the control plane.
    Coordinator,
    /// Reads every job and audit record, changes nothing.
    Auditor,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Party, Role::Analyst, Role::Coordinator, Role::Auditor];

    /// The role's word in URIs and files.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Party => "party",
            Role::Analyst => "analyst",
            Role::Coordinator => "coordinator",
            Role::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = TrustError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| TrustError::Certificate(format!("unknown role {s:?}")))
    }
}

/// Who a certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    /// The holder's role.
    pub role: Role,
    /// The holder's name (a party id, an analyst's name, ...): a single lowercase DNS label.
    pub name: String,
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.role, self.name)
    }
}

impl PeerIdentity {
    /// An identity.
    pub fn new(role: Role, name: impl Into<String>) -> Self {
        Self {
            role,
            name: name.into(),
        }
    }

    /// The SAN URI that states this identity, `treaty://<role>/<name>`.
    pub fn uri(&self) -> String {
        format!("{URI_SCHEME}{}/{}", self.role, self.name)
    }

    /// Parses `treaty://<role>/<name>`.
    ///
    /// # Errors
    /// [`TrustError::Certificate`] for another scheme, an unknown role or an invalid name.
    pub fn parse_uri(uri: &str) -> Result<Self, TrustError> {
        let rest = uri
            .strip_prefix(URI_SCHEME)
            .ok_or_else(|| TrustError::Certificate(format!("{uri:?} is not a treaty:// URI")))?;
        let (role, name) = rest
            .split_once('/')
            .ok_or_else(|| TrustError::Certificate(format!("{uri:?} names no role")))?;
        let role = role.parse()?;
        if let Some(reason) = name_problem(name) {
            return Err(TrustError::Certificate(format!(
                "{uri:?}: invalid node name {name:?}: {reason}"
            )));
        }
        Ok(Self::new(role, name))
    }

    /// Reads the identity a DER certificate states: exactly one `treaty://` SAN URI.
    ///
    /// This says what the certificate claims; whether to believe it is the caller's check (the
    /// TLS handshake verified the chain to a trusted CA; a roster pins the fingerprint).
    ///
    /// # Errors
    /// [`TrustError::Certificate`] when the DER does not parse, or states no identity or two.
    pub fn of_der(der: &[u8]) -> Result<Self, TrustError> {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|_| TrustError::Certificate("not a well-formed X.509 certificate".into()))?;
        if !rest.is_empty() {
            return Err(TrustError::Certificate(
                "trailing bytes after the certificate".into(),
            ));
        }
        let san = cert
            .subject_alternative_name()
            .map_err(|_| TrustError::Certificate("malformed subject alternative names".into()))?;
        let mut found: Option<PeerIdentity> = None;
        for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
            if let GeneralName::URI(uri) = name
                && uri.starts_with(URI_SCHEME)
            {
                let id = Self::parse_uri(uri)?;
                if found.replace(id).is_some() {
                    return Err(TrustError::Certificate(
                        "the certificate states two Treaty identities".into(),
                    ));
                }
            }
        }
        found.ok_or_else(|| {
            TrustError::Certificate(
                "the certificate states no Treaty role and name (a treaty://ROLE/NAME URI); \
                 it was issued before roles existed or outside Treaty: re-issue it"
                    .into(),
            )
        })
    }

    /// The identity the client certificate of this request states; `None` on a plaintext
    /// connection or when the client presented no certificate.
    pub fn of_request<T>(request: &tonic::Request<T>) -> Option<Result<Self, TrustError>> {
        let certs = request.peer_certs()?;
        let leaf = certs.first()?;
        Some(Self::of_der(leaf))
    }

    /// Checks that this identity is `role` named `name`.
    ///
    /// # Errors
    /// [`TrustError::Certificate`] naming both.
    pub fn expect(&self, role: Role, name: &str) -> Result<(), TrustError> {
        if self.role == role && self.name == name {
            Ok(())
        } else {
            Err(TrustError::Certificate(format!(
                "the certificate is {self}, not {role} {name:?}"
            )))
        }
    }
}

/// Why `name` is not a node name — a single lowercase DNS label that rustls also accepts as a
/// server name — or `None` if it is one. Party ids must be node names: they are the TLS names
/// peers expect.
#[must_use]
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 63 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("it contains a character other than a-z, 0-9 or '-'")
    } else if name.starts_with('-') || name.ends_with('-') {
        Some("it starts or ends with '-'")
    } else if DnsName::try_from(name).is_err() {
        // rustls refuses all-numeric (and `0x…` hex) final labels: they look like IPv4 addresses.
        Some("it looks like a number, which TLS does not accept as a server name")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Pki;

    #[test]
    fn uris_round_trip_and_bad_ones_are_refused() {
        for role in Role::ALL {
            let id = PeerIdentity::new(role, "hospital");
            assert_eq!(PeerIdentity::parse_uri(&id.uri()).ok(), Some(id));
        }
        for bad in [
            "https://party/hospital",
            "treaty://party",
            "treaty://root/hospital",
            "treaty://party/Hospital",
            "treaty://party/a/b",
            "treaty://party/",
        ] {
            assert!(
                matches!(
                    PeerIdentity::parse_uri(bad),
                    Err(TrustError::Certificate(_))
                ),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn an_issued_certificate_states_its_role_and_name() -> Result<(), Box<dyn std::error::Error>> {
        let pki = Pki::generate("test CA")?;
        for role in Role::ALL {
            let issued = pki.issue(role, "alice", &[])?;
            let der = rustls_pki_types::CertificateDer::from_pem_slice(issued.cert_pem.as_bytes())?;
            let id = PeerIdentity::of_der(&der)?;
            assert_eq!(id, PeerIdentity::new(role, "alice"));
            id.expect(role, "alice")?;
            assert!(id.expect(role, "bob").is_err());
        }
        Ok(())
    }

    #[test]
    fn a_certificate_without_a_treaty_uri_names_nobody() -> Result<(), Box<dyn std::error::Error>> {
        let key = rcgen::KeyPair::generate()?;
        let params = rcgen::CertificateParams::new(vec!["hospital".to_string()])?;
        let cert = params.self_signed(&key)?;
        assert!(matches!(
            PeerIdentity::of_der(cert.der()),
            Err(TrustError::Certificate(_))
        ));
        assert!(matches!(
            PeerIdentity::of_der(b"not a certificate"),
            Err(TrustError::Certificate(_))
        ));
        Ok(())
    }

    use rustls_pki_types::pem::PemObject;
}
