//! What the coordinator's integration tests share: a real coordinator on a loopback port, the
//! client type, how long a test waits, and the protocol fixtures.

pub(crate) mod fixtures;

use std::time::Duration;

use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use treaty_coordinator::client::{COORDINATOR_TLS_NAME, Dial, connect};
use treaty_coordinator::tls::TlsIdentity;
use treaty_coordinator::{CoordinatorConfig, CoordinatorError, ServeOptions};
use treaty_proto::v1::coordinator_client::CoordinatorClient;

/// Upper bound on anything a test waits for.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// A gRPC client of the coordinator.
pub(crate) type Client = CoordinatorClient<Channel>;

/// A coordinator run by `treaty_coordinator::serve` on 127.0.0.1 (a port of its own), over a
/// fresh state folder, until [`Served::stop`].
pub(crate) struct Served {
    url: String,
    dir: TempDir,
    stop: CancellationToken,
    serving: JoinHandle<Result<(), CoordinatorError>>,
}

impl Served {
    /// Starts it with `config`: over TLS (mutual) with `tls`, plaintext without.
    pub(crate) async fn start(config: CoordinatorConfig, tls: Option<TlsIdentity>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let options = ServeOptions {
            state_dir: dir.path().join("state"),
            tls,
            config,
        };
        let serving = tokio::spawn(treaty_coordinator::serve(
            listener,
            options,
            stop.clone().cancelled_owned(),
        ));
        Self {
            url,
            dir,
            stop,
            serving,
        }
    }

    /// A client of it, holding the certificate `tls` (none for a plaintext coordinator).
    pub(crate) async fn dial(&self, tls: Option<&TlsIdentity>) -> Client {
        let dial = Dial {
            url: &self.url,
            tls,
            server_name: COORDINATOR_TLS_NAME,
        };
        connect(dial).await.unwrap()
    }

    /// The coordinator's own audit log so far.
    pub(crate) fn audit_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("state/audit/log.jsonl")).unwrap_or_default()
    }

    /// Shuts it down and checks that `serve` returned cleanly; gives back its folder (the
    /// state is in `state/` below it).
    pub(crate) async fn stop(self) -> TempDir {
        self.stop.cancel();
        let ended = tokio::time::timeout(PATIENCE, self.serving).await;
        assert!(
            matches!(ended, Ok(Ok(Ok(())))),
            "the coordinator did not stop cleanly: {ended:?}"
        );
        self.dir
    }
}
