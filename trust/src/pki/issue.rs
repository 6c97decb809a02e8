//! Issuing: the deployment CA and the certificates it signs (`rcgen`), behind the `issue`
//! feature.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, DnsName, PrivateKeyDer};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{FileKind, PkiError, key_pem_error, validate_name, write_new_file};
use crate::cert::{PeerIdentity, Role};

/// How long a CA certificate made by [`Pki::generate`] is valid (10 years).
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// How long a leaf certificate made by [`Pki::issue`] is valid (730 days).
pub const LEAF_VALIDITY: Duration = Duration::from_secs(730 * 24 * 60 * 60);

/// Certificates are back-dated by this much to tolerate clock skew between nodes.
const CLOCK_SKEW: Duration = Duration::from_secs(60 * 60);

/// Longest X.520 common name (`ub-common-name`).
const MAX_COMMON_NAME_LEN: usize = 64;

/// File stem of the coordinator's identity in a deployment directory.
const COORDINATOR: &str = "coordinator";

/// File stem of the CA in a deployment directory.
const CA: &str = "ca";

/// A deployment certificate authority: the CA key and certificate.
///
/// The CA private key is held by rcgen's `KeyPair` (which does not zeroize on drop) and as PEM in
/// a [`Zeroizing`] string. `Debug` prints only the CA certificate's SHA-256 fingerprint.
pub struct Pki {
    issuer: Issuer<'static, KeyPair>,
    ca_cert_pem: String,
    ca_cert_sha256: [u8; 32],
    ca_key_pem: Zeroizing<String>,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("ca_cert_sha256", &hex::encode(self.ca_cert_sha256))
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Generates a new self-signed CA (ECDSA P-256, valid for [`CA_VALIDITY`]) whose subject
    /// common name is `common_name` (1 to 64 characters).
    ///
    /// The CA may only issue leaf certificates (path length 0).
    pub fn generate(common_name: &str) -> Result<Pki, PkiError> {
        validate_common_name(common_name)?;
        let key = KeyPair::generate().map_err(|source| PkiError::Certificate {
            action: "generate the CA key".to_owned(),
            source,
        })?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = ca_key_usages();
        set_validity(&mut params, CA_VALIDITY)?;
        let cert = params
            .self_signed(&key)
            .map_err(|source| PkiError::Certificate {
                action: format!("self-sign the CA certificate {common_name:?}"),
                source,
            })?;
        let ca_key_pem = Zeroizing::new(key.serialize_pem());
        Ok(Pki {
            ca_cert_sha256: Sha256::digest(cert.der()).into(),
            ca_cert_pem: cert.pem(),
            ca_key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from a PEM certificate file and a PEM (PKCS#8) private key file, such as the
    /// `ca.pem` and `ca.key` written by [`write_deployment`].
    ///
    /// Checks that the certificate is a CA, that the key belongs to it, and that certificates
    /// issued from it name it exactly as its own subject (so they chain to it).
    pub fn load(ca_cert_pem_path: &Path, ca_key_pem_path: &Path) -> Result<Pki, PkiError> {
        let cert_path = ca_cert_pem_path;
        let key_path = ca_key_pem_path;
        let ca_cert_pem = fs::read_to_string(cert_path).map_err(|source| PkiError::Read {
            what: "CA certificate",
            path: cert_path.to_owned(),
            source,
        })?;
        let ca_key_pem =
            Zeroizing::new(
                fs::read_to_string(key_path).map_err(|source| PkiError::Read {
                    what: "CA private key",
                    path: key_path.to_owned(),
                    source,
                })?,
            );

        let invalid_cert = |reason: String| PkiError::InvalidCaCert {
            path: cert_path.to_owned(),
            reason,
        };
        let der = CertificateDer::from_pem_slice(ca_cert_pem.as_bytes())
            .map_err(|e| invalid_cert(cert_pem_error(&e)))?;
        let info = der::parse_cert(&der)
            .ok_or_else(|| invalid_cert("not a well-formed X.509 certificate".to_owned()))?;

        let invalid_key = |reason| PkiError::InvalidCaKey {
            path: key_path.to_owned(),
            reason,
        };
        let key_der = Zeroizing::new(
            PrivateKeyDer::from_pem_slice(ca_key_pem.as_bytes())
                .map_err(|e| invalid_key(key_pem_error(&e)))?,
        );
        let key = KeyPair::try_from(&*key_der).map_err(|_| {
            invalid_key("not a PKCS#8 ECDSA P-256/P-384, Ed25519 or RSA private key")
        })?;
        if key.subject_public_key_info() != info.spki {
            return Err(PkiError::CaKeyMismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
            });
        }
        if !info.is_ca() {
            return Err(PkiError::NotACa {
                path: cert_path.to_owned(),
            });
        }

        let unsupported = || PkiError::UnsupportedCaSubject {
            path: cert_path.to_owned(),
        };
        let mut params = CertificateParams::default();
        params.distinguished_name = der::parse_name(info.subject).ok_or_else(unsupported)?;
        params.key_identifier_method = match info.subject_key_id() {
            Some(id) => KeyIdMethod::PreSpecified(id.to_vec()),
            None => KeyIdMethod::Sha256,
        };
        params.key_usages = ca_key_usages();
        let issuer = Issuer::new(params, key);

        // Issued certificates copy the issuer name from the rebuilt `DistinguishedName`; prove
        // that it re-encodes to the CA's subject byte for byte, or nothing would chain.
        let probe = CertificateParams::default()
            .signed_by(issuer.key(), &issuer)
            .map_err(|source| PkiError::Certificate {
                action: format!(
                    "sign a probe certificate with the CA {}",
                    cert_path.display()
                ),
                source,
            })?;
        let probe_info = der::parse_cert(probe.der()).ok_or_else(unsupported)?;
        if probe_info.issuer != info.subject {
            return Err(unsupported());
        }

        Ok(Pki {
            issuer,
            ca_cert_sha256: Sha256::digest(&der).into(),
            ca_cert_pem,
            ca_key_pem,
        })
    }

    /// The CA certificate, PEM-encoded.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// SHA-256 of the CA certificate's DER encoding.
    pub fn ca_cert_sha256(&self) -> [u8; 32] {
        self.ca_cert_sha256
    }

    /// Issues a leaf certificate (ECDSA P-256, valid for [`LEAF_VALIDITY`]) for the node `name`.
    ///
    /// `name` must be a single lowercase DNS label: 1 to 63 characters from `a-z`, `0-9` and `-`,
    /// not starting or ending with `-`, and not all digits. It becomes the common name and the
    /// first DNS subject alternative name, so peers dial the node with `name` as TLS server name.
    ///
    /// The subject alternative names are DNS `name`, DNS `localhost`, IP `127.0.0.1`, IP `::1`
    /// and each of `extra_sans` (an IP address literal or a DNS name, lowercased), without
    /// duplicates, and the URI `treaty://<role>/<name>` that every Treaty check reads (see
    /// [`crate::cert`]). The certificate is valid for both TLS server and client authentication.
    pub fn issue(
        &self,
        role: Role,
        name: &str,
        extra_sans: &[String],
    ) -> Result<IssuedCert, PkiError> {
        validate_name(name)?;
        let mut sans = leaf_sans(name, extra_sans)?;
        let uri = PeerIdentity::new(role, name).uri();
        let invalid = || PkiError::InvalidSan {
            name: name.to_owned(),
            san: uri.clone(),
        };
        sans.push(SanType::URI(uri.clone().try_into().map_err(|_| invalid())?));

        let key = KeyPair::generate().map_err(|source| PkiError::Certificate {
            action: format!("generate a key for {name:?}"),
            source,
        })?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, LEAF_VALIDITY)?;
        let cert =
            params
                .signed_by(&key, &self.issuer)
                .map_err(|source| PkiError::Certificate {
                    action: format!("sign the certificate for {name:?}"),
                    source,
                })?;
        Ok(IssuedCert {
            name: name.to_owned(),
            cert_sha256: Sha256::digest(cert.der()).into(),
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }
}

/// A leaf certificate and its private key, as issued by [`Pki::issue`].
///
/// `Debug` prints the node name and the certificate fingerprint, never the key.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate, PEM-encoded.
    pub cert_pem: String,
    key_pem: Zeroizing<String>,
    name: String,
    cert_sha256: [u8; 32],
}

impl IssuedCert {
    /// The private key, PEM-encoded (PKCS#8). Secret: write it only to a `0600` file or hand it
    /// straight to [`crate::tls::TlsIdentity::from_pem`].
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The node name the certificate was issued for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// SHA-256 of the certificate's DER encoding, as reported by
    /// [`crate::tls::peer_cert_sha256`] when this node connects.
    pub fn cert_sha256(&self) -> [u8; 32] {
        self.cert_sha256
    }
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("name", &self.name)
            .field("cert_sha256", &hex::encode(self.cert_sha256))
            .finish_non_exhaustive()
    }
}

/// The certificate and key files of one node in a deployment directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFiles {
    /// The node name (`coordinator`, a party id or an analyst id).
    pub name: String,
    /// `<dir>/<name>.pem`.
    pub cert: PathBuf,
    /// `<dir>/<name>.key` (mode `0600` on unix).
    pub key: PathBuf,
    /// SHA-256 of the certificate's DER encoding.
    pub cert_sha256: [u8; 32],
}

/// Every file written by [`write_deployment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentFiles {
    /// The deployment directory.
    pub dir: PathBuf,
    /// `<dir>/ca.pem`.
    pub ca_cert: PathBuf,
    /// `<dir>/ca.key` (mode `0600` on unix).
    pub ca_key: PathBuf,
    /// The coordinator's identity.
    pub coordinator: IdentityFiles,
    /// One identity per party, in the order given.
    pub parties: Vec<IdentityFiles>,
    /// One identity per analyst, in the order given.
    pub analysts: Vec<IdentityFiles>,
    /// One identity per auditor, in the order given.
    pub auditors: Vec<IdentityFiles>,
}

impl DeploymentFiles {
    /// All paths written, CA first.
    pub fn paths(&self) -> Vec<&Path> {
        let mut paths = vec![self.ca_cert.as_path(), self.ca_key.as_path()];
        for id in std::iter::once(&self.coordinator)
            .chain(&self.parties)
            .chain(&self.analysts)
            .chain(&self.auditors)
        {
            paths.push(&id.cert);
            paths.push(&id.key);
        }
        paths
    }
}

/// Creates a deployment's CA and node identities in `dir`.
///
/// Creates `dir` (mode `0700` on unix, if it does not exist) and writes `ca.pem`, `ca.key`,
/// `coordinator.pem`/`coordinator.key` (with `coordinator_sans` as extra SANs, see
/// [`Pki::issue`]) and `<name>.pem`/`<name>.key` for every party, analyst and auditor (each
/// certificate stating its role, see [`crate::cert`]). Private keys get mode `0600` on unix.
///
/// Never overwrites: fails with [`PkiError::AlreadyInitialized`] if `dir` already holds
/// `ca.pem`, and with [`PkiError::FileExists`] if any other file is in the way. All names are
/// validated and every certificate is issued before the first file is written. Party, analyst
/// and auditor names must be distinct across all of them and must not be `ca` or `coordinator`.
pub fn write_deployment(
    dir: &Path,
    coordinator_sans: &[String],
    parties: &[String],
    analysts: &[String],
    auditors: &[String],
) -> Result<DeploymentFiles, PkiError> {
    let mut seen = BTreeSet::new();
    for name in parties.iter().chain(analysts).chain(auditors) {
        validate_name(name)?;
        if name == CA || name == COORDINATOR {
            return Err(PkiError::ReservedName { name: name.clone() });
        }
        if !seen.insert(name.as_str()) {
            return Err(PkiError::DuplicateName { name: name.clone() });
        }
    }

    let ca_cert = dir.join(format!("{CA}.pem"));
    let exists = ca_cert.try_exists().map_err(|source| PkiError::Read {
        what: "deployment directory",
        path: dir.to_owned(),
        source,
    })?;
    if exists {
        return Err(PkiError::AlreadyInitialized {
            dir: dir.to_owned(),
        });
    }

    let pki = Pki::generate("Treaty deployment CA")?;
    let coordinator = pki.issue(Role::Coordinator, COORDINATOR, coordinator_sans)?;
    let parties = parties
        .iter()
        .map(|name| pki.issue(Role::Party, name, &[]))
        .collect::<Result<Vec<_>, _>>()?;
    let analysts = analysts
        .iter()
        .map(|name| pki.issue(Role::Analyst, name, &[]))
        .collect::<Result<Vec<_>, _>>()?;
    let auditors = auditors
        .iter()
        .map(|name| pki.issue(Role::Auditor, name, &[]))
        .collect::<Result<Vec<_>, _>>()?;

    create_private_dir(dir)?;
    let ca_key = dir.join(format!("{CA}.key"));
    write_new_file(&ca_cert, pki.ca_cert_pem.as_bytes(), FileKind::Public)?;
    write_new_file(&ca_key, pki.ca_key_pem.as_bytes(), FileKind::Secret)?;
    let write = |issued: &IssuedCert| -> Result<IdentityFiles, PkiError> {
        let files = IdentityFiles {
            name: issued.name.clone(),
            cert: dir.join(format!("{}.pem", issued.name)),
            key: dir.join(format!("{}.key", issued.name)),
            cert_sha256: issued.cert_sha256,
        };
        write_new_file(&files.cert, issued.cert_pem.as_bytes(), FileKind::Public)?;
        write_new_file(&files.key, issued.key_pem.as_bytes(), FileKind::Secret)?;
        Ok(files)
    };
    Ok(DeploymentFiles {
        dir: dir.to_owned(),
        ca_cert,
        ca_key,
        coordinator: write(&coordinator)?,
        parties: parties.iter().map(write).collect::<Result<_, _>>()?,
        analysts: analysts.iter().map(write).collect::<Result<_, _>>()?,
        auditors: auditors.iter().map(write).collect::<Result<_, _>>()?,
    })
}

/// The files of one organisation's own identity, as [`write_organisation`] writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganisationFiles {
    /// `<dir>/ca.pem`: the organisation's own CA, which the roster lists with its members.
    pub ca_cert: PathBuf,
    /// `<dir>/ca.key` (mode `0600` on unix): keep it offline.
    pub ca_key: PathBuf,
    /// The member's certificate and key.
    pub identity: IdentityFiles,
}

/// Creates one organisation's own CA and its member certificate (`role`, `name`) in `dir`: the
/// per-organisation set-up, where no one holds a key for the whole consortium. Each
/// organisation runs it on its own machine; the roster then pins every member's certificate
/// and lists its CA.
///
/// Never overwrites (see [`write_deployment`]).
///
/// # Errors
/// An invalid name or SAN, existing files, I/O failures.
pub fn write_organisation(
    dir: &Path,
    role: Role,
    name: &str,
    sans: &[String],
) -> Result<OrganisationFiles, PkiError> {
    validate_name(name)?;
    let ca_cert = dir.join(format!("{CA}.pem"));
    if ca_cert.try_exists().map_err(|source| PkiError::Read {
        what: "organisation directory",
        path: dir.to_owned(),
        source,
    })? {
        return Err(PkiError::AlreadyInitialized {
            dir: dir.to_owned(),
        });
    }
    let pki = Pki::generate(&format!("Treaty {role} {name} CA"))?;
    let issued = pki.issue(role, name, sans)?;
    create_private_dir(dir)?;
    let ca_key = dir.join(format!("{CA}.key"));
    write_new_file(&ca_cert, pki.ca_cert_pem.as_bytes(), FileKind::Public)?;
    write_new_file(&ca_key, pki.ca_key_pem.as_bytes(), FileKind::Secret)?;
    let identity = IdentityFiles {
        name: name.to_owned(),
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
        cert_sha256: issued.cert_sha256,
    };
    write_new_file(&identity.cert, issued.cert_pem.as_bytes(), FileKind::Public)?;
    write_new_file(&identity.key, issued.key_pem.as_bytes(), FileKind::Secret)?;
    Ok(OrganisationFiles {
        ca_cert,
        ca_key,
        identity,
    })
}

fn validate_common_name(name: &str) -> Result<(), PkiError> {
    let reason = if name.trim().is_empty() {
        "it is empty"
    } else if name.chars().count() > MAX_COMMON_NAME_LEN {
        "it is longer than 64 characters"
    } else {
        return Ok(());
    };
    Err(PkiError::InvalidCommonName {
        name: name.to_owned(),
        reason,
    })
}

/// The SANs of a leaf for `name`: DNS `name`, `localhost`, loopback IPs, then `extra`.
fn leaf_sans(name: &str, extra: &[String]) -> Result<Vec<SanType>, PkiError> {
    let invalid = |san: &str| PkiError::InvalidSan {
        name: name.to_owned(),
        san: san.to_owned(),
    };
    let dns = |s: &str| -> Result<SanType, PkiError> {
        // Validate the way rustls will when a peer dials this name.
        DnsName::try_from(s).map_err(|_| invalid(s))?;
        let ia5 = s.to_owned().try_into().map_err(|_| invalid(s))?;
        Ok(SanType::DnsName(ia5))
    };
    let mut sans = vec![
        dns(name)?,
        dns("localhost")?,
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    for san in extra {
        let san = san.trim();
        let parsed = match san.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) if san.ends_with('.') => return Err(invalid(san)),
            Err(_) => dns(&san.to_ascii_lowercase())?,
        };
        if !sans.contains(&parsed) {
            sans.push(parsed);
        }
    }
    Ok(sans)
}

fn ca_key_usages() -> Vec<KeyUsagePurpose> {
    vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ]
}

/// Sets `not_before` to now minus [`CLOCK_SKEW`] and `not_after` to now plus `validity`.
fn set_validity(params: &mut CertificateParams, validity: Duration) -> Result<(), PkiError> {
    // rcgen's timestamps are `time::OffsetDateTime`; build them from the epoch with std durations
    // so this crate needs no direct `time` dependency.
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| PkiError::Clock)?;
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + since_epoch.saturating_sub(CLOCK_SKEW);
    params.not_after = epoch + since_epoch + validity;
    Ok(())
}

/// A description of a PEM error in a certificate file (certificates are public).
fn cert_pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::NoItemsFound => "no CERTIFICATE PEM block".to_owned(),
        other => format!("malformed PEM: {other}"),
    }
}

/// Creates `dir` and its missing parents, `0700` on unix.
fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| PkiError::CreateDir {
        path: dir.to_owned(),
        source,
    })
}

/// The fields of an X.509 certificate this module needs, read with `x509-parser` (rcgen writes
/// certificates but does not read them without its own optional copy of that parser).
mod der {
    use rcgen::string::{Ia5String, PrintableString};
    use rcgen::{DistinguishedName, DnType, DnValue};
    use x509_parser::der_parser::asn1_rs::Tag;
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

    /// The fields of a certificate this module uses; slices borrow the certificate DER.
    pub(super) struct CertInfo<'a> {
        /// The issuer Name, whole encoding.
        pub(super) issuer: &'a [u8],
        /// The subject Name, whole encoding.
        pub(super) subject: &'a [u8],
        /// The SubjectPublicKeyInfo, whole encoding.
        pub(super) spki: &'a [u8],
        ca: bool,
        subject_key_id: Option<Vec<u8>>,
    }

    impl CertInfo<'_> {
        /// Whether basicConstraints says cA=TRUE.
        pub(super) fn is_ca(&self) -> bool {
            self.ca
        }

        /// The subjectKeyIdentifier, if present.
        pub(super) fn subject_key_id(&self) -> Option<&[u8]> {
            self.subject_key_id.as_deref()
        }
    }

    /// The fields of [`CertInfo`] of one DER certificate (nothing may follow it).
    pub(super) fn parse_cert(der: &[u8]) -> Option<CertInfo<'_>> {
        let (rest, cert) = X509Certificate::from_der(der).ok()?;
        if !rest.is_empty() {
            return None;
        }
        let tbs = &cert.tbs_certificate;
        let ca = tbs
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        let subject_key_id = tbs
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            });
        Some(CertInfo {
            issuer: tbs.issuer.as_raw(),
            subject: tbs.subject.as_raw(),
            spki: tbs.subject_pki.raw,
            ca,
            subject_key_id,
        })
    }

    /// Rebuilds an rcgen `DistinguishedName` from a DER Name (single-valued RDNs holding
    /// UTF8String, PrintableString or IA5String values; anything else gives `None`).
    pub(super) fn parse_name(name: &[u8]) -> Option<DistinguishedName> {
        let (_, name) = X509Name::from_der(name).ok()?;
        let mut dn = DistinguishedName::new();
        for rdn in name.iter() {
            let [atv] = rdn.iter().collect::<Vec<_>>()[..] else {
                return None;
            };
            let arcs: Vec<u64> = atv.attr_type().iter()?.collect();
            let value = atv.attr_value();
            let text = std::str::from_utf8(value.data).ok()?;
            let value = match value.tag() {
                Tag::Utf8String => DnValue::Utf8String(text.to_owned()),
                Tag::PrintableString => {
                    DnValue::PrintableString(PrintableString::try_from(text).ok()?)
                }
                Tag::Ia5String => DnValue::Ia5String(Ia5String::try_from(text).ok()?),
                _ => return None,
            };
            dn.push(DnType::from_oid(&arcs), value);
        }
        Some(dn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn generate_and_issue_chain_to_the_ca() -> TestResult {
        let pki = Pki::generate("Test CA")?;
        let ca_der = CertificateDer::from_pem_slice(pki.ca_cert_pem().as_bytes())?;
        let ca = der::parse_cert(&ca_der).ok_or("CA certificate does not parse")?;
        assert!(ca.is_ca(), "generated CA must have cA=TRUE");
        assert_eq!(
            pki.ca_cert_sha256(),
            <[u8; 32]>::from(Sha256::digest(&ca_der))
        );

        let leaf = pki.issue(
            Role::Party,
            "alice",
            &strings(&["alice.example.org", "10.0.0.7"]),
        )?;
        assert_eq!(leaf.name(), "alice");
        let leaf_der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes())?;
        let info = der::parse_cert(&leaf_der).ok_or("leaf does not parse")?;
        assert_eq!(info.issuer, ca.subject, "leaf issuer must equal CA subject");
        assert!(!info.is_ca(), "leaf must not be a CA");
        assert_eq!(
            leaf.cert_sha256(),
            <[u8; 32]>::from(Sha256::digest(&leaf_der))
        );

        // The key is a PKCS#8 key matching the certificate.
        let key = KeyPair::from_pem(leaf.key_pem())?;
        assert_eq!(key.subject_public_key_info(), info.spki);
        assert!(leaf.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));

        // Every SAN is in the certificate: DNS names as IA5 text, IPs as raw octets.
        let contains = |needle: &[u8]| leaf_der.windows(needle.len()).any(|w| w == needle);
        for dns in ["alice", "localhost", "alice.example.org"] {
            assert!(contains(dns.as_bytes()), "SAN {dns} missing");
        }
        assert!(contains(&[0x87, 4, 127, 0, 0, 1]), "SAN 127.0.0.1 missing");
        assert!(contains(&[0x87, 4, 10, 0, 0, 7]), "SAN 10.0.0.7 missing");
        let mut v6 = vec![0x87, 16];
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        assert!(contains(&v6), "SAN ::1 missing");

        // Debug shows neither key.
        let debug = format!("{pki:?} {leaf:?}");
        assert!(!debug.contains("PRIVATE"), "Debug leaks a key: {debug}");
        assert!(debug.contains(&hex::encode(leaf.cert_sha256())));
        Ok(())
    }

    #[test]
    fn issue_rejects_invalid_names() -> TestResult {
        let pki = Pki::generate("Test CA")?;
        let long = "a".repeat(64);
        for bad in [
            "", "Alice", "al ice", "al.ice", "al_ice", "-alice", "alice-", "123", "0x1f", "é",
            &long,
        ] {
            match pki.issue(Role::Party, bad, &[]) {
                Err(PkiError::InvalidName { name, .. }) => assert_eq!(name, bad),
                other => panic!("name {bad:?} was not rejected: {other:?}"),
            }
        }
        for good in ["a", "party-1", "p2", "1a", &"b".repeat(63)] {
            pki.issue(Role::Party, good, &[])
                .map_err(|e| format!("name {good:?} rejected: {e}"))?;
        }
        for bad_san in ["", "*.example.org", "exa mple.org", "example.org.", "a..b"] {
            assert!(
                matches!(
                    pki.issue(Role::Party, "alice", &strings(&[bad_san])),
                    Err(PkiError::InvalidSan { .. })
                ),
                "SAN {bad_san:?} was not rejected"
            );
        }
        let err = pki
            .issue(Role::Party, "Bob", &[])
            .err()
            .ok_or("Bob accepted")?;
        assert!(
            err.to_string().contains("\"Bob\""),
            "error names the input: {err}"
        );
        assert!(matches!(
            Pki::generate(""),
            Err(PkiError::InvalidCommonName { .. })
        ));
        Ok(())
    }

    #[test]
    fn write_deployment_writes_everything_once() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("deploy");
        let parties = strings(&["hospital-a", "hospital-b"]);
        let analysts = strings(&["alice"]);
        let auditors = strings(&["kim"]);
        let files = write_deployment(
            &dir,
            &strings(&["coord.example.org"]),
            &parties,
            &analysts,
            &auditors,
        )?;

        let expected: Vec<PathBuf> = [
            "ca.pem",
            "ca.key",
            "coordinator.pem",
            "coordinator.key",
            "hospital-a.pem",
            "hospital-a.key",
            "hospital-b.pem",
            "hospital-b.key",
            "alice.pem",
            "alice.key",
            "kim.pem",
            "kim.key",
        ]
        .iter()
        .map(|f| dir.join(f))
        .collect();
        assert_eq!(
            files.paths(),
            expected.iter().map(PathBuf::as_path).collect::<Vec<_>>()
        );
        for path in &expected {
            assert!(fs::metadata(path)?.len() > 0, "{} is empty", path.display());
        }
        assert_eq!(files.parties[1].name, "hospital-b");
        assert_eq!(files.analysts[0].key, dir.join("alice.key"));
        assert_eq!(files.auditors[0].cert, dir.join("kim.pem"));
        for (files, role) in [
            (&files.parties[0], Role::Party),
            (&files.analysts[0], Role::Analyst),
            (&files.auditors[0], Role::Auditor),
        ] {
            let der = CertificateDer::from_pem_slice(&fs::read(&files.cert)?)?;
            let id = PeerIdentity::of_der(&der)?;
            assert_eq!(id, PeerIdentity::new(role, files.name.clone()));
        }

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for path in expected
                .iter()
                .filter(|p| p.extension() == Some("key".as_ref()))
            {
                let mode = fs::metadata(path)?.permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
            }
            let dir_mode = fs::metadata(&dir)?.permissions().mode() & 0o777;
            assert_eq!(dir_mode, 0o700);
        }

        // The written CA loads back, and what it issues chains to the written ca.pem.
        let loaded = Pki::load(&files.ca_cert, &files.ca_key)?;
        assert_eq!(loaded.ca_cert_pem(), fs::read_to_string(&files.ca_cert)?);
        let leaf = loaded.issue(Role::Party, "late-party", &[])?;
        let leaf_der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes())?;
        let ca_der = CertificateDer::from_pem_slice(loaded.ca_cert_pem().as_bytes())?;
        let (leaf, ca) = (der::parse_cert(&leaf_der), der::parse_cert(&ca_der));
        assert_eq!(leaf.map(|l| l.issuer), ca.map(|c| c.subject));

        // A second run refuses, and leaves the keys alone.
        let ca_key = fs::read(&files.ca_key)?;
        match write_deployment(&dir, &[], &parties, &analysts, &auditors) {
            Err(PkiError::AlreadyInitialized { dir: d }) => assert_eq!(d, dir),
            other => panic!("second run was not refused: {other:?}"),
        }
        assert_eq!(fs::read(&files.ca_key)?, ca_key);
        Ok(())
    }

    #[test]
    fn write_deployment_rejects_bad_node_lists_before_writing() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("deploy");
        let cases = [
            (strings(&["p1", "p1"]), vec![], vec![]),
            (strings(&["p1"]), strings(&["p1"]), vec![]),
            (strings(&["p1"]), vec![], strings(&["p1"])),
            (vec![], strings(&["kim"]), strings(&["kim"])),
            (strings(&["coordinator"]), vec![], vec![]),
            (vec![], strings(&["ca"]), vec![]),
            (vec![], vec![], strings(&["coordinator"])),
            (strings(&["P1"]), vec![], vec![]),
        ];
        for (parties, analysts, auditors) in cases {
            let result = write_deployment(&dir, &[], &parties, &analysts, &auditors);
            assert!(
                matches!(
                    result,
                    Err(PkiError::DuplicateName { .. }
                        | PkiError::ReservedName { .. }
                        | PkiError::InvalidName { .. })
                ),
                "parties {parties:?}, analysts {analysts:?}, auditors {auditors:?}: {result:?}"
            );
            assert!(!dir.exists(), "nothing may be written for {parties:?}");
        }
        let result = write_deployment(&dir, &strings(&["not a name"]), &[], &[], &[]);
        assert!(matches!(result, Err(PkiError::InvalidSan { .. })));
        assert!(!dir.exists());

        // A stray key file is never overwritten.
        fs::create_dir(&dir)?;
        fs::write(dir.join("p1.key"), "keep me")?;
        match write_deployment(&dir, &[], &strings(&["p1"]), &[], &[]) {
            Err(PkiError::FileExists { path }) => assert_eq!(path, dir.join("p1.key")),
            other => panic!("stray file was not protected: {other:?}"),
        }
        assert_eq!(fs::read_to_string(dir.join("p1.key"))?, "keep me");
        Ok(())
    }

    #[test]
    fn load_rejects_mismatched_or_non_ca_files() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("deploy");
        let files = write_deployment(&dir, &[], &strings(&["p1"]), &[], &[])?;
        let p1 = &files.parties[0];

        match Pki::load(&files.ca_cert, &p1.key) {
            Err(PkiError::CaKeyMismatch { cert, key }) => {
                assert_eq!((cert, key), (files.ca_cert.clone(), p1.key.clone()));
            }
            other => panic!("mismatched key accepted: {other:?}"),
        }
        assert!(matches!(
            Pki::load(&p1.cert, &p1.key),
            Err(PkiError::NotACa { .. })
        ));
        assert!(matches!(
            Pki::load(&files.ca_key, &files.ca_key),
            Err(PkiError::InvalidCaCert { .. })
        ));
        match Pki::load(&files.ca_cert, &files.ca_cert) {
            Err(e @ PkiError::InvalidCaKey { .. }) => {
                assert!(
                    e.to_string().contains("ca.pem"),
                    "error names the file: {e}"
                );
            }
            other => panic!("certificate accepted as key: {other:?}"),
        }
        let missing = dir.join("nope.key");
        match Pki::load(&files.ca_cert, &missing) {
            Err(PkiError::Read { path, .. }) => assert_eq!(path, missing),
            other => panic!("missing file: {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn ca_names_rebuild_only_when_they_re_encode_exactly() -> TestResult {
        let pki = Pki::generate("Test CA")?;
        let ca_der = CertificateDer::from_pem_slice(pki.ca_cert_pem().as_bytes())?;
        let ca = der::parse_cert(&ca_der).ok_or("CA certificate does not parse")?;
        let dn = der::parse_name(ca.subject).ok_or("the CA's own subject must rebuild")?;
        assert!(matches!(
            dn.get(&DnType::CommonName),
            Some(rcgen::DnValue::Utf8String(cn)) if cn == "Test CA"
        ));
        // CN as a BMPString, and one RDN holding two attributes: neither can be re-encoded.
        let bmp = [
            0x30, 0x0d, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x03, 0x1e, 0x02, 0x00,
            0x41,
        ];
        let multi = [
            0x30, 0x16, 0x31, 0x14, 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x01, 0x41,
            0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x01, 0x42,
        ];
        assert!(der::parse_name(&bmp).is_none());
        assert!(der::parse_name(&multi).is_none());
        assert!(der::parse_name(&[0x30, 0x05]).is_none());
        assert!(der::parse_cert(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_none());
        Ok(())
    }
}
