//! The roster: the members of one Treaty consortium, pinned by every node.
//!
//! Each organisation makes its own key and certificate on its own machine (`treaty init --org
//! NAME --role ROLE`), writes its entry (`treaty roster entry`), and the organisations agree on
//! one roster file that lists every member. Each node keeps its own copy and trusts it — never
//! the coordinator's word — about who its peers are: their certificates (the exact fingerprint
//! and the CA that issued it), their data-plane endpoints, and their keys.
//!
//! ```toml
//! version = 1                    # a change is a new version, accepted by each node's operator
//! consortium = "claims"          # a label
//!
//! [[members]]
//! role = "party"                 # party | analyst | coordinator | auditor
//! name = "hospital"              # the name in the certificate's treaty://party/hospital
//! endpoint = "https://10.0.0.5:7101"    # parties: data plane; the coordinator: control plane
//! cert_sha256 = "<64 hex: SHA-256 of the certificate's DER>"
//! audit_key = "<64 hex: Ed25519>"       # parties: signs audit heads and result shares
//! ca = """-----BEGIN CERTIFICATE----- ... (the CA that issued the member's certificate)"""
//!
//! [[members]]
//! role = "analyst"
//! name = "alice"
//! cert_sha256 = "..."
//! sign_key = "<64 hex: Ed25519>"        # analysts: signs submissions and cancellations
//! ca = """..."""
//! ```
//!
//! Names are unique across the roster (they are also TLS server names). A node accepts a roster
//! explicitly ([`accept`]): the version and SHA-256 of the file are pinned in its state
//! directory, and a node refuses to start on a roster it has not accepted — so an edited file,
//! even one that keeps its version number, is never used silently.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::TrustError;
use crate::cert::{PeerIdentity, Role};
use crate::pki::validate_name;

/// Largest roster file read (a consortium is small; this bounds parsing work).
pub const MAX_ROSTER_BYTES: u64 = 4 << 20;

/// Most members in one roster.
pub const MAX_MEMBERS: usize = 1024;

/// Name of the file in a node's state directory that pins the accepted roster.
pub const ACCEPTED_FILE: &str = "roster.accepted.json";

/// One member as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberEntry {
    /// `party`, `analyst`, `coordinator` or `auditor`.
    pub role: String,
    /// The member's name (a single lowercase DNS label).
    pub name: String,
    /// Parties: the data-plane URL peers dial. The coordinator: its control-plane URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    /// SHA-256 of the member's certificate (DER), 64 hex digits.
    pub cert_sha256: String,
    /// Parties: their Ed25519 audit identity key (signs audit heads and result shares).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub audit_key: String,
    /// Analysts: their Ed25519 submission key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sign_key: String,
    /// Analysts: the X25519 HPKE key results may be sealed to (optional).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub result_key: String,
    /// PEM of the CA certificate that issued the member's certificate.
    pub ca: String,
}

/// The file as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterFile {
    /// The roster's version: a changed roster carries a higher one.
    pub version: u64,
    /// A label for the consortium.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub consortium: String,
    /// Every member.
    #[serde(default)]
    pub members: Vec<MemberEntry>,
}

/// One member, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Who the member is.
    pub identity: PeerIdentity,
    /// Its endpoint ("" for analysts and auditors).
    pub endpoint: String,
    /// SHA-256 of its certificate's DER.
    pub cert_sha256: [u8; 32],
    /// The CA that issued its certificate, PEM.
    pub ca_pem: String,
    /// Parties: the audit/result signing key.
    pub audit_key: Option<VerifyingKey>,
    /// Analysts: the submission signing key.
    pub sign_key: Option<VerifyingKey>,
    /// Analysts: the HPKE result key, 64 hex digits ("" when none is listed).
    pub result_key: String,
}

/// A checked roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// Its version.
    pub version: u64,
    /// Its label.
    pub consortium: String,
    /// SHA-256 of the file's bytes: what a node pins.
    pub sha256: [u8; 32],
    members: Vec<Member>,
}

fn hex32(what: &str, who: &str, text: &str) -> Result<[u8; 32], TrustError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|_| TrustError::Roster(format!("{who}: {what} is not 64 hex digits")))?;
    Ok(out)
}

fn ed25519(what: &str, who: &str, text: &str) -> Result<Option<VerifyingKey>, TrustError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let bytes = hex32(what, who, text)?;
    VerifyingKey::from_bytes(&bytes)
        .map(Some)
        .map_err(|_| TrustError::Roster(format!("{who}: {what} is not an Ed25519 public key")))
}

impl Roster {
    /// Parses and checks a roster from the file's bytes.
    ///
    /// # Errors
    /// [`TrustError::Roster`] naming the member and field at fault.
    pub fn parse(bytes: &[u8]) -> Result<Self, TrustError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| TrustError::Roster("the roster is not UTF-8 text".into()))?;
        let file: RosterFile =
            toml::from_str(text).map_err(|e| TrustError::Roster(e.to_string()))?;
        if file.members.len() > MAX_MEMBERS {
            return Err(TrustError::Roster(format!(
                "{} members, at most {MAX_MEMBERS}",
                file.members.len()
            )));
        }
        let mut members = Vec::with_capacity(file.members.len());
        for (i, e) in file.members.iter().enumerate() {
            let who = format!("members[{i}] ({:?})", e.name);
            let role: Role = e
                .role
                .parse()
                .map_err(|_| TrustError::Roster(format!("{who}: unknown role {:?}", e.role)))?;
            validate_name(&e.name).map_err(|err| TrustError::Roster(format!("{who}: {err}")))?;
            let cert_sha256 = hex32("cert_sha256", &who, &e.cert_sha256)?;
            let ca = CertificateDer::pem_slice_iter(e.ca.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| TrustError::Roster(format!("{who}: ca is not PEM")))?;
            if ca.is_empty() {
                return Err(TrustError::Roster(format!(
                    "{who}: ca holds no CERTIFICATE"
                )));
            }
            let audit_key = ed25519("audit_key", &who, &e.audit_key)?;
            let sign_key = ed25519("sign_key", &who, &e.sign_key)?;
            if !e.result_key.is_empty() {
                hex32("result_key", &who, &e.result_key)?;
            }
            match role {
                Role::Party | Role::Coordinator if e.endpoint.is_empty() => {
                    return Err(TrustError::Roster(format!(
                        "{who}: a {role} needs an endpoint"
                    )));
                }
                Role::Party if audit_key.is_none() => {
                    return Err(TrustError::Roster(format!(
                        "{who}: a party needs its audit_key"
                    )));
                }
                Role::Analyst if sign_key.is_none() => {
                    return Err(TrustError::Roster(format!(
                        "{who}: an analyst needs its sign_key"
                    )));
                }
                _ => {}
            }
            if members.iter().any(|m: &Member| m.identity.name == e.name) {
                return Err(TrustError::Roster(format!(
                    "{who}: the name {:?} appears twice (names are unique across roles)",
                    e.name
                )));
            }
            if members
                .iter()
                .any(|m: &Member| m.cert_sha256 == cert_sha256)
            {
                return Err(TrustError::Roster(format!(
                    "{who}: its certificate is already another member's"
                )));
            }
            members.push(Member {
                identity: PeerIdentity::new(role, e.name.clone()),
                endpoint: e.endpoint.clone(),
                cert_sha256,
                ca_pem: e.ca.clone(),
                audit_key,
                sign_key,
                result_key: e.result_key.trim().to_string(),
            });
        }
        let coordinators = members
            .iter()
            .filter(|m| m.identity.role == Role::Coordinator)
            .count();
        if coordinators != 1 {
            return Err(TrustError::Roster(format!(
                "a roster names exactly one coordinator, this one {coordinators}"
            )));
        }
        Ok(Self {
            version: file.version,
            consortium: file.consortium,
            sha256: Sha256::digest(bytes).into(),
            members,
        })
    }

    /// Reads and checks a roster file.
    ///
    /// # Errors
    /// I/O failures, a file over [`MAX_ROSTER_BYTES`], and what [`Roster::parse`] refuses.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let io = |source| TrustError::Io {
            path: path.to_owned(),
            source,
        };
        let len = fs::metadata(path).map_err(io)?.len();
        if len > MAX_ROSTER_BYTES {
            return Err(TrustError::Roster(format!(
                "{}: {len} bytes, at most {MAX_ROSTER_BYTES}",
                path.display()
            )));
        }
        let bytes = fs::read(path).map_err(io)?;
        Self::parse(&bytes).map_err(|e| TrustError::Roster(format!("{}: {e}", path.display())))
    }

    /// Every member.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member with this role and name.
    pub fn member(&self, role: Role, name: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.identity.role == role && m.identity.name == name)
    }

    /// The party named `name`.
    pub fn party(&self, name: &str) -> Option<&Member> {
        self.member(Role::Party, name)
    }

    /// The coordinator.
    pub fn coordinator(&self) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.identity.role == Role::Coordinator)
    }

    /// Who presents the certificate `der`: the member whose pinned fingerprint it is, and whose
    /// role and name the certificate itself states.
    ///
    /// # Errors
    /// [`TrustError::Certificate`] for a certificate no member holds, or one whose stated identity
    /// is not the member's.
    pub fn identify(&self, der: &[u8]) -> Result<&Member, TrustError> {
        let fp: [u8; 32] = Sha256::digest(der).into();
        let stated = PeerIdentity::of_der(der)?;
        let member = self
            .members
            .iter()
            .find(|m| m.cert_sha256 == fp)
            .ok_or_else(|| {
                TrustError::Certificate(format!(
                    "the certificate of {stated} is not the one the roster pins for anyone"
                ))
            })?;
        if member.identity != stated {
            return Err(TrustError::Certificate(format!(
                "the certificate states {stated} but the roster pins it for {}",
                member.identity
            )));
        }
        Ok(member)
    }

    /// The PEM bundle of the CAs that issued the certificates of members with one of `roles`
    /// (each CA once), for a TLS trust store.
    pub fn ca_bundle(&self, roles: &[Role]) -> String {
        let mut seen = Vec::<&str>::new();
        for m in self
            .members
            .iter()
            .filter(|m| roles.contains(&m.identity.role))
        {
            if !seen.contains(&m.ca_pem.as_str()) {
                seen.push(&m.ca_pem);
            }
        }
        seen.iter().fold(String::new(), |mut out, pem| {
            out.push_str(pem.trim_end());
            out.push('\n');
            out
        })
    }

    /// The parties' audit keys (party id → key), for verifying audit logs and result shares.
    pub fn party_keys(&self) -> BTreeMap<String, VerifyingKey> {
        self.members
            .iter()
            .filter(|m| m.identity.role == Role::Party)
            .filter_map(|m| Some((m.identity.name.clone(), m.audit_key?)))
            .collect()
    }
}

impl Roster {
    /// Checks that `key` is the signing key this roster lists for analyst `analyst`.
    ///
    /// # Errors
    /// [`TrustError::Roster`]: the analyst is not in the roster, or signs with another key.
    pub fn check_signer(&self, analyst: &str, key: &[u8; 32]) -> Result<(), TrustError> {
        let member = self.member(Role::Analyst, analyst).ok_or_else(|| {
            TrustError::Roster(format!("analyst {analyst:?} is not in the roster"))
        })?;
        if member.sign_key.map(|k| k.to_bytes()) == Some(*key) {
            Ok(())
        } else {
            Err(TrustError::Roster(format!(
                "the submission is not signed with the key the roster lists for analyst \
                 {analyst:?}"
            )))
        }
    }

    /// The roster's analysts as an analysts list (what a policy's `analysts_file` holds).
    pub fn analysts(&self) -> crate::identity::AnalystList {
        crate::identity::AnalystList {
            analysts: self
                .members
                .iter()
                .filter(|m| m.identity.role == Role::Analyst)
                .filter_map(|m| {
                    Some(crate::identity::Analyst {
                        name: m.identity.name.clone(),
                        key: hex::encode(m.sign_key?.to_bytes()),
                        result_key: (!m.result_key.is_empty()).then(|| m.result_key.clone()),
                        groups: Vec::new(),
                        revoked: false,
                    })
                })
                .collect(),
        }
    }
}

/// The roster a node accepted: its version and the SHA-256 of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// The accepted version.
    pub version: u64,
    /// SHA-256 of the accepted file, 64 hex digits.
    pub sha256: String,
    /// Who accepted it (the operator's name).
    pub by: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// What `state_dir` pins, if anything.
///
/// # Errors
/// I/O failures other than a missing file, and a malformed pin.
pub fn accepted(state_dir: &Path) -> Result<Option<Accepted>, TrustError> {
    let path = state_dir.join(ACCEPTED_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(TrustError::Io { path, source }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| TrustError::Roster(format!("{}: {e}", path.display())))
}

/// Checks that `roster` is the one `state_dir` pins.
///
/// # Errors
/// [`TrustError::RosterNotAccepted`] when none is pinned or another one is.
pub fn check_accepted(state_dir: &Path, roster: &Roster) -> Result<(), TrustError> {
    let sha = hex::encode(roster.sha256);
    match accepted(state_dir)? {
        Some(a) if a.sha256 == sha && a.version == roster.version => Ok(()),
        pinned => Err(TrustError::RosterNotAccepted {
            version: roster.version,
            sha256: sha,
            pinned: pinned.map(|a| (a.version, a.sha256)),
        }),
    }
}

/// Pins `roster` in `state_dir` as accepted by `by` (written to a temporary file, synced, then
/// renamed over the old pin: a crash leaves the old pin or the new one, never half of one).
///
/// A roster with the same content is accepted again as a no-op. A different roster must carry a
/// higher version than the pinned one: a rewritten file under an old version number, or an older
/// version, is refused.
///
/// # Errors
/// [`TrustError::RosterNotAccepted`] for a version that does not increase; I/O failures.
pub fn accept(
    state_dir: &Path,
    roster: &Roster,
    by: &str,
    now_ms: u64,
) -> Result<Accepted, TrustError> {
    let sha = hex::encode(roster.sha256);
    if let Some(old) = accepted(state_dir)? {
        if old.sha256 == sha {
            return Ok(old);
        }
        if roster.version <= old.version {
            return Err(TrustError::RosterVersion {
                version: roster.version,
                pinned: old.version,
            });
        }
    }
    let pin = Accepted {
        version: roster.version,
        sha256: sha,
        by: by.to_string(),
        at_ms: now_ms,
    };
    let json = serde_json::to_vec_pretty(&pin)
        .map_err(|e| TrustError::Roster(format!("cannot encode the pin: {e}")))?;
    crate::pki::write_atomically(&state_dir.join(ACCEPTED_FILE), &json)?;
    Ok(pin)
}

#[cfg(test)]
mod tests;
