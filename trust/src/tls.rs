//! Node identities for mutual TLS, and the tonic TLS configurations built from them.
//!
//! Every Treaty node (coordinator, party, analyst) holds one [`TlsIdentity`]: the deployment CA
//! certificate, its own leaf certificate and its private key (see [`crate::pki`]). The same
//! identity makes both sides of a connection:
//!
//! ```text
//!   TlsIdentity ──server_config()──────► ServerTlsConfig  (client certificate required, CA-checked)
//!               ──client_config(name)──► ClientTlsConfig  (server must present a cert for `name`)
//!   server handler: peer_cert_sha256(&request) ──► fingerprint of the caller's certificate
//! ```
//!
//! Who a peer *is* is decided by the caller's certificate fingerprint ([`peer_cert_sha256`]),
//! compared with fingerprints registered at enrolment; this module does not keep such a
//! registry, check revocation, or pin server certificates beyond the CA and server name.
//!
//! # Crypto provider
//!
//! tonic's `tls-ring` feature builds rustls with only its `ring` backend. tonic's client picks
//! `ring` explicitly when no process-wide provider is installed, and its server builds its
//! rustls config with `ServerConfig::builder()`, which installs the one provider enabled by
//! crate features. So no `CryptoProvider::install_default()` call is needed, and none is made.
//! If another dependency ever turns on rustls' `aws-lc-rs` feature too, the server panics with
//! "no process-level CryptoProvider available": then add a direct `rustls` dependency and call
//! `rustls::crypto::ring::default_provider().install_default()` once at start-up.
//!
//! # Secrets
//!
//! The private key PEM is held in a [`Zeroizing`] buffer, but tonic's `Identity` copies it into a
//! plain `Vec` each time a config is built, and rustls keeps its own copy for the life of the
//! config; those copies are not zeroized.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use zeroize::Zeroizing;

use crate::pki;

/// Longest a TLS handshake may take, on either side, before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a PEM input came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PemOrigin {
    /// Read from this file.
    File(PathBuf),
    /// Passed in memory (e.g. by `treaty demo`).
    Memory,
}

impl fmt::Display for PemOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemOrigin::File(path) => write!(f, "{}", path.display()),
            PemOrigin::Memory => f.write_str("in-memory PEM"),
        }
    }
}

/// Errors from loading a [`TlsIdentity`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {}", path.display())]
    Read {
        /// What the file should hold ("CA certificate", "certificate" or "private key").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The input is not valid PEM, or holds no block of the expected kind.
    #[error("invalid {what} ({origin}): {reason}")]
    InvalidPem {
        /// What the input should hold.
        what: &'static str,
        /// Where it came from.
        origin: PemOrigin,
        /// What is wrong (never any key material).
        reason: String,
    },
    /// A CERTIFICATE block is not a well-formed X.509 certificate.
    #[error(
        "invalid {what} ({origin}): certificate {index} is not a well-formed X.509 certificate"
    )]
    MalformedCertificate {
        /// What the input should hold.
        what: &'static str,
        /// Where it came from.
        origin: PemOrigin,
        /// Position of the bad certificate in the input, from 0.
        index: usize,
    },
    /// The private key does not belong to the leaf certificate.
    #[error("private key ({key}) does not match the certificate ({cert})")]
    KeyMismatch {
        /// Where the certificate came from.
        cert: PemOrigin,
        /// Where the key came from.
        key: PemOrigin,
    },
}

/// A node's TLS identity: trusted CA certificate(s), its certificate chain and its private key.
///
/// `Debug` prints only the SHA-256 fingerprint of the leaf certificate.
#[derive(Clone)]
pub struct TlsIdentity {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Zeroizing<Vec<u8>>,
    cert_sha256: [u8; 32],
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_sha256", &fingerprint_hex(&self.cert_sha256))
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Loads an identity from PEM files: the CA certificate(s) to trust, this node's certificate
    /// (leaf first, then any intermediates) and its private key. Errors name the file at fault.
    ///
    /// Validates as [`TlsIdentity::from_pem`] does.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |what, path: &Path| {
            fs::read(path).map_err(|source| TlsError::Read {
                what,
                path: path.to_owned(),
                source,
            })
        };
        let ca_pem = read("CA certificate", ca)?;
        let cert_pem = read("certificate", cert)?;
        let key_pem = Zeroizing::new(read("private key", key)?);
        Self::parse(
            ca_pem,
            cert_pem,
            key_pem,
            [ca, cert, key].map(|p| PemOrigin::File(p.to_owned())),
        )
    }

    /// Builds an identity from in-memory PEM (as returned by [`crate::pki::Pki::ca_cert_pem`],
    /// [`crate::pki::IssuedCert::cert_pem`] and [`crate::pki::IssuedCert::key_pem`]).
    ///
    /// Checks that `ca_pem` and `cert_pem` hold at least one well-formed certificate each, that
    /// `key_pem` holds a private key, and, when the key is a PKCS#8 ECDSA, Ed25519 or RSA key,
    /// that it belongs to the first certificate of `cert_pem`. (Other key encodings are checked
    /// by rustls when a config is used.)
    pub fn from_pem(
        ca_pem: impl AsRef<[u8]>,
        cert_pem: impl AsRef<[u8]>,
        key_pem: impl AsRef<[u8]>,
    ) -> Result<Self, TlsError> {
        Self::parse(
            ca_pem.as_ref().to_vec(),
            cert_pem.as_ref().to_vec(),
            Zeroizing::new(key_pem.as_ref().to_vec()),
            [PemOrigin::Memory, PemOrigin::Memory, PemOrigin::Memory],
        )
    }

    fn parse(
        ca_pem: Vec<u8>,
        cert_pem: Vec<u8>,
        key_pem: Zeroizing<Vec<u8>>,
        [ca_origin, cert_origin, key_origin]: [PemOrigin; 3],
    ) -> Result<Self, TlsError> {
        parse_certificates(&ca_pem, "CA certificate", &ca_origin)?;
        let chain = parse_certificates(&cert_pem, "certificate", &cert_origin)?;
        // `parse_certificates` returns at least one certificate.
        let leaf = chain.first().ok_or_else(|| TlsError::InvalidPem {
            what: "certificate",
            origin: cert_origin.clone(),
            reason: "no CERTIFICATE PEM block".to_owned(),
        })?;

        let key = Zeroizing::new(PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            TlsError::InvalidPem {
                what: "private key",
                origin: key_origin.clone(),
                reason: pki::key_pem_error(&e).to_owned(),
            }
        })?);
        let public = rustls::crypto::ring::sign::any_supported_type(&key)
            .ok()
            .and_then(|signer| signer.public_key().map(|k| k.as_ref().to_vec()));
        if let Some(public) = public {
            // `parse_certificates` already checked that every certificate parses.
            if pki::cert_spki(leaf) != Some(public.as_slice()) {
                return Err(TlsError::KeyMismatch {
                    cert: cert_origin,
                    key: key_origin,
                });
            }
        }

        Ok(TlsIdentity {
            cert_sha256: Sha256::digest(leaf).into(),
            ca_pem,
            cert_pem,
            key_pem,
        })
    }

    /// The same identity trusting `ca_pem` (one or more CA certificates) instead of its own CA:
    /// a node with a roster trusts, for each connection, only the CAs of the members it expects
    /// there.
    ///
    /// # Errors
    /// `ca_pem` holds no well-formed certificate.
    pub fn with_ca(&self, ca_pem: impl AsRef<[u8]>) -> Result<Self, TlsError> {
        parse_certificates(ca_pem.as_ref(), "CA certificate", &PemOrigin::Memory)?;
        Ok(Self {
            ca_pem: ca_pem.as_ref().to_vec(),
            ..self.clone()
        })
    }

    /// This node's certificate chain, PEM.
    pub fn cert_pem(&self) -> &[u8] {
        &self.cert_pem
    }

    /// The CA certificate(s) this identity trusts, PEM.
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// SHA-256 of the DER encoding of this node's leaf certificate (the first CERTIFICATE block),
    /// as a server sees it through [`peer_cert_sha256`].
    pub fn cert_sha256(&self) -> [u8; 32] {
        self.cert_sha256
    }

    /// The tonic server TLS config: this identity as server certificate, and a client
    /// certificate chaining to the CA **required** from every client. The handshake must finish
    /// within [`HANDSHAKE_TIMEOUT`].
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.tonic_identity())
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            // tonic 0.14 defaults to `false` (required) already; stated so it never drifts.
            .client_auth_optional(false)
            .timeout(HANDSHAKE_TIMEOUT)
    }

    /// The tonic client TLS config for dialing the node named `server_name`: the server must
    /// present a certificate chaining to the CA and valid for `server_name` (a node name such as
    /// `coordinator`, or any other SAN in its certificate), whatever address is dialed. This
    /// identity is presented as the client certificate.
    pub fn client_config(&self, server_name: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(self.tonic_identity())
            .domain_name(server_name)
            .timeout(HANDSHAKE_TIMEOUT)
    }

    fn tonic_identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, self.key_pem.as_slice())
    }
}

/// Parses every CERTIFICATE block in `pem`; there must be at least one, all well-formed.
fn parse_certificates(
    pem: &[u8],
    what: &'static str,
    origin: &PemOrigin,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let invalid = |reason: String| TlsError::InvalidPem {
        what,
        origin: origin.clone(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| invalid(format!("malformed PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid("no CERTIFICATE PEM block".to_owned()));
    }
    if let Some(index) = certs.iter().position(|c| pki::cert_spki(c).is_none()) {
        return Err(TlsError::MalformedCertificate {
            what,
            origin: origin.clone(),
            index,
        });
    }
    Ok(certs)
}

/// SHA-256 of the DER of the first certificate the client presented on this request's mTLS
/// connection; `None` on a plaintext connection or when the client sent no certificate.
///
/// Works on a request inside a tonic server (including in an interceptor) served over TLS with
/// a TCP listener. Compare the result with [`TlsIdentity::cert_sha256`] of enrolled nodes.
pub fn peer_cert_sha256<T>(request: &tonic::Request<T>) -> Option<[u8; 32]> {
    let certs = request.peer_certs()?;
    let leaf = certs.first()?;
    Some(Sha256::digest(leaf).into())
}

/// A fingerprint as 64 lowercase hex digits.
pub fn fingerprint_hex(fp: &[u8; 32]) -> String {
    hex::encode(fp)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use tokio::net::TcpListener;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic::service::interceptor::InterceptedService;
    use tonic::transport::{Channel, Server};
    use tonic::{Request, Status};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;
    use crate::pki::{Pki, write_deployment};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Bound on every connection attempt, so a hung handshake fails the test instead of hanging.
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

    /// A health server on 127.0.0.1:0 over mTLS that records the caller's fingerprint.
    struct TestServer {
        addr: SocketAddr,
        seen: Arc<Mutex<Vec<Option<[u8; 32]>>>>,
        shutdown: Option<oneshot::Sender<()>>,
        task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    }

    impl TestServer {
        async fn start(identity: &TlsIdentity) -> Result<Self, Box<dyn std::error::Error>> {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let seen = Arc::new(Mutex::new(Vec::new()));
            let record = Arc::clone(&seen);
            let (_reporter, health) = tonic_health::server::health_reporter();
            let health = InterceptedService::new(health, move |request: Request<()>| {
                record
                    .lock()
                    .map_err(|_| Status::internal("poisoned"))?
                    .push(peer_cert_sha256(&request));
                Ok(request)
            });
            let (shutdown, stop) = oneshot::channel::<()>();
            let router = Server::builder()
                .tls_config(identity.server_config())?
                .add_service(health);
            let task = tokio::spawn(router.serve_with_incoming_shutdown(
                TcpListenerStream::new(listener),
                async {
                    // Either a send or a dropped sender stops the server.
                    let _ = stop.await;
                },
            ));
            Ok(TestServer {
                addr,
                seen,
                shutdown: Some(shutdown),
                task: Some(task),
            })
        }

        fn seen(&self) -> Vec<Option<[u8; 32]>> {
            self.seen.lock().map(|v| v.clone()).unwrap_or_default()
        }

        async fn stop(mut self) -> TestResult {
            if let Some(shutdown) = self.shutdown.take() {
                let _ = shutdown.send(());
            }
            if let Some(task) = self.task.take() {
                tokio::time::timeout(ATTEMPT_TIMEOUT, task).await???;
            }
            Ok(())
        }
    }

    /// Connects with `config` and makes one health check; any failure is an `Err`.
    async fn check(addr: SocketAddr, config: ClientTlsConfig) -> TestResult {
        let attempt = async {
            let channel = Channel::from_shared(format!("https://{addr}"))?
                .tls_config(config)?
                .connect()
                .await?;
            let response = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await?;
            if response.into_inner().status != ServingStatus::Serving as i32 {
                return Err("server is not serving".into());
            }
            Ok(())
        };
        tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await?
    }

    /// Asserts that `result` failed with a TLS error whose chain mentions `reason` (a rustls
    /// alert or certificate error name), so the case cannot pass for an unrelated failure.
    fn assert_refused(result: TestResult, reason: &str, case: &str) {
        match result {
            Ok(()) => panic!("{case}: the connection was accepted"),
            Err(e) => {
                let chain = format!("{e:?}");
                assert!(
                    chain.contains(reason),
                    "{case}: expected {reason}, got {chain}"
                );
            }
        }
    }

    fn identity(
        pki: &Pki,
        name: &str,
        sans: &[String],
    ) -> Result<TlsIdentity, Box<dyn std::error::Error>> {
        let issued = pki.issue(crate::Role::Party, name, sans)?;
        Ok(TlsIdentity::from_pem(
            pki.ca_cert_pem(),
            &issued.cert_pem,
            issued.key_pem(),
        )?)
    }

    #[tokio::test]
    async fn mtls_round_trip_from_deployment_files() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let files = write_deployment(
            &tmp.path().join("deploy"),
            &["coord.example.org".to_owned()],
            &["hospital-a".to_owned()],
            &[],
            &[],
        )?;
        let c = &files.coordinator;
        let server_id = TlsIdentity::load(&files.ca_cert, &c.cert, &c.key)?;
        assert_eq!(server_id.cert_sha256(), c.cert_sha256);
        let p = &files.parties[0];
        let client = TlsIdentity::load(&files.ca_cert, &p.cert, &p.key)?;
        assert_eq!(client.cert_sha256(), p.cert_sha256);

        let server = TestServer::start(&server_id).await?;
        check(server.addr, client.client_config("coordinator")).await?;
        // Any SAN of the coordinator certificate works as server name.
        check(server.addr, client.client_config("coord.example.org")).await?;
        check(server.addr, client.client_config("localhost")).await?;

        // The server saw the client's certificate fingerprint on every call.
        let expected = Some(client.cert_sha256());
        assert_eq!(server.seen(), vec![expected; 3]);

        // A CA loaded back from disk issues certificates the running server accepts.
        let pki = Pki::load(&files.ca_cert, &files.ca_key)?;
        let late = identity(&pki, "late-party", &[])?;
        check(server.addr, late.client_config("coordinator")).await?;
        assert_eq!(server.seen().last(), Some(&Some(late.cert_sha256())));

        server.stop().await
    }

    #[tokio::test]
    async fn mtls_rejects_wrong_ca_missing_cert_and_wrong_name() -> TestResult {
        let pki = Pki::generate("Test CA")?;
        let server_id = identity(&pki, "coordinator", &[])?;
        let client = identity(&pki, "alice", &[])?;
        let server = TestServer::start(&server_id).await?;
        check(server.addr, client.client_config("coordinator")).await?;

        // (a) A client certificate from another CA (the client still trusts the right CA, so
        // only the server's check of the client can fail).
        let other = Pki::generate("Other CA")?;
        let forged = other.issue(crate::Role::Party, "alice", &[])?;
        let outsider =
            TlsIdentity::from_pem(pki.ca_cert_pem(), &forged.cert_pem, forged.key_pem())?;
        let result = check(server.addr, outsider.client_config("coordinator")).await;
        assert_refused(
            result,
            "UnknownCA",
            "client with a foreign CA's certificate",
        );

        // (b) No client certificate at all.
        let anonymous = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(pki.ca_cert_pem()))
            .domain_name("coordinator");
        let result = check(server.addr, anonymous).await;
        assert_refused(
            result,
            "CertificateRequired",
            "client without a certificate",
        );

        // (c) The server's certificate is not valid for the expected name.
        let result = check(server.addr, client.client_config("bob")).await;
        assert_refused(
            result,
            "NotValidForName",
            "server name not in its certificate",
        );

        // (d) The server is checked against the client's CA: a client of another deployment
        // refuses it even with a valid certificate of its own.
        let stranger = identity(&other, "alice", &[])?;
        let result = check(server.addr, stranger.client_config("coordinator")).await;
        assert_refused(
            result,
            "UnknownIssuer",
            "server certificate from another CA",
        );

        // Only the one good call reached the service.
        assert_eq!(server.seen(), vec![Some(client.cert_sha256())]);
        server.stop().await
    }

    #[test]
    fn peer_cert_is_none_without_tls() {
        assert_eq!(peer_cert_sha256(&Request::new(())), None);
    }

    #[test]
    fn from_pem_validates_inputs() -> TestResult {
        let pki = Pki::generate("Test CA")?;
        let alice = pki.issue(crate::Role::Party, "alice", &[])?;
        let bob = pki.issue(crate::Role::Party, "bob", &[])?;
        let ca = pki.ca_cert_pem();

        let id = TlsIdentity::from_pem(ca, &alice.cert_pem, alice.key_pem())?;
        assert_eq!(id.cert_sha256(), alice.cert_sha256());
        let debug = format!("{id:?}");
        assert!(!debug.contains("PRIVATE"), "Debug leaks the key: {debug}");
        assert!(debug.contains(&fingerprint_hex(&alice.cert_sha256())));

        assert!(matches!(
            TlsIdentity::from_pem(ca, &alice.cert_pem, bob.key_pem()),
            Err(TlsError::KeyMismatch { .. })
        ));
        assert!(matches!(
            TlsIdentity::from_pem("", &alice.cert_pem, alice.key_pem()),
            Err(TlsError::InvalidPem {
                what: "CA certificate",
                ..
            })
        ));
        assert!(matches!(
            TlsIdentity::from_pem(ca, alice.key_pem(), alice.key_pem()),
            Err(TlsError::InvalidPem {
                what: "certificate",
                ..
            })
        ));
        assert!(matches!(
            TlsIdentity::from_pem(ca, &alice.cert_pem, &alice.cert_pem),
            Err(TlsError::InvalidPem {
                what: "private key",
                ..
            })
        ));
        let junk = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            TlsIdentity::from_pem(junk, &alice.cert_pem, alice.key_pem()),
            Err(TlsError::MalformedCertificate { index: 0, .. })
        ));

        // A corrupt key body must not be echoed into the error.
        let corrupt = alice.key_pem().replacen('M', "!", 1);
        let err = TlsIdentity::from_pem(ca, &alice.cert_pem, &corrupt)
            .err()
            .ok_or("corrupt key accepted")?;
        let shown = format!("{err} {err:?}");
        let body: String = alice.key_pem().lines().nth(1).unwrap_or_default().into();
        assert!(
            !shown.contains(&body[..16]),
            "error leaks key text: {shown}"
        );
        Ok(())
    }

    #[test]
    fn load_names_the_missing_file() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let files = write_deployment(&tmp.path().join("d"), &[], &[], &[], &[])?;
        let missing = tmp.path().join("missing.key");
        let c = &files.coordinator;
        match TlsIdentity::load(&files.ca_cert, &c.cert, &missing) {
            Err(e @ TlsError::Read { .. }) => {
                assert!(e.to_string().contains("missing.key"), "{e}");
                assert!(e.to_string().contains("private key"), "{e}");
            }
            other => panic!("missing key file: {other:?}"),
        }
        match TlsIdentity::load(&files.ca_cert, &c.key, &c.key) {
            Err(TlsError::InvalidPem { origin, .. }) => {
                assert_eq!(origin, PemOrigin::File(c.key.clone()));
            }
            other => panic!("key given as certificate: {other:?}"),
        }
        assert_eq!(fingerprint_hex(&[0xab; 32]), "ab".repeat(32));
        Ok(())
    }
}
