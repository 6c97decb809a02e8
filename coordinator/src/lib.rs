//! # treaty-coordinator: Treaty's control plane
//!
//! ```text
//!  analyst ──SubmitJob/WatchJob/FetchResult──► coordinator ◄──Register/Subscribe/Report/Upload── parties
//!                                                 │ registry · jobs · sealed results (redb)
//! ```
//!
//! The coordinator keeps the party registry (ids, data-plane endpoints, TLS fingerprints, dataset
//! schemas), validates job specs, drives each job's state machine and relays sealed results. It
//! never receives a share, a key, a seed or a raw value: what it stores is job specs, schemas,
//! states, counters and HPKE-sealed bytes only the recipient can open.
//!
//! Who may call what is decided by the caller's certificate (its `treaty://ROLE/NAME` URI, see
//! [`treaty_trust::cert`]); [`pki`], [`tls`], [`identity`] and [`client`] are re-exported from
//! `treaty-trust`, where they live.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod lifecycle;
pub mod service;
pub mod store;

pub use treaty_trust::{client, identity, pki, tls};

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use treaty_proto::v1::coordinator_server::CoordinatorServer;

pub use error::CoordinatorError;
pub use service::{Clock, CoordinatorConfig, CoordinatorService, ManualClock, SystemClock};

/// Everything `serve` needs besides the listener.
#[derive(Debug)]
pub struct ServeOptions {
    /// Directory of the embedded database.
    pub state_dir: PathBuf,
    /// The coordinator's TLS identity; `None` serves plaintext (`--insecure`).
    pub tls: Option<tls::TlsIdentity>,
    /// Timeouts and limits.
    pub config: CoordinatorConfig,
}

/// Serves the coordinator on `listener` until `shutdown` resolves. On shutdown unfinished jobs
/// are marked failed, party streams closed, and calls in flight get
/// [`CoordinatorConfig::shutdown_grace`] to finish before their connections are cut. It returns
/// once the database and the audit file are closed (the state folder can be opened again).
pub async fn serve(
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CoordinatorError> {
    let store = store::Store::open(&options.state_dir)?;
    let token = CancellationToken::new();
    let tasks = TaskTracker::new();
    let mut config = options.config;
    let grace = config.shutdown_grace;
    let service_roster = config.roster.clone();
    config.require_tls_identity = options.tls.is_some();
    let audit = treaty_audit::AuditFile::open(
        treaty_audit::COORDINATOR_WRITER,
        &options.state_dir.join("audit"),
    )?;
    let service = CoordinatorService::new(store, audit, config, token.clone(), tasks.clone())?;
    service.spawn_retention_sweep();
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<CoordinatorServer<CoordinatorService>>()
        .await;

    let mut builder = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .tcp_keepalive(Some(Duration::from_secs(20)))
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .concurrency_limit_per_connection(256);
    if let Some(tls) = &options.tls {
        // With a roster, clients are trusted under the CAs it lists (each organisation's own);
        // who they are is then the member whose certificate it pins (`CoordinatorService::caller`).
        let tls = match &service_roster {
            Some(roster) => tls.with_ca(roster.ca_bundle(&treaty_trust::Role::ALL))?,
            None => tls.clone(),
        };
        builder = builder.tls_config(tls.server_config())?;
    }
    let sever = treaty_proto::sever::Sever::new();
    let signal = {
        let (token, tasks, service) = (token.clone(), tasks.clone(), service.clone());
        let sever = sever.clone();
        async move {
            shutdown.await;
            tracing::info!("coordinator shutting down");
            token.cancel();
            tasks.close();
            tasks.wait().await;
            service.disconnect_all();
            // The server now drains the calls in flight; past the grace they are cut.
            sever.after(grace);
        }
    };
    let closed = service.closed();
    let incoming = TcpListenerStream::new(listener).map(|conn| conn.map(|conn| sever.wrap(conn)));
    builder
        .add_service(health_service)
        .add_service(
            CoordinatorServer::new(service)
                .max_decoding_message_size(treaty_proto::MAX_CONTROL_MESSAGE)
                .max_encoding_message_size(treaty_proto::MAX_CONTROL_MESSAGE),
        )
        .serve_with_incoming_shutdown(incoming, signal)
        .await?;
    // Connections cut at the grace drop their calls (and with them the service's last clones)
    // as their tasks next run.
    if tokio::time::timeout(grace.max(Duration::from_secs(1)), closed)
        .await
        .is_err()
    {
        tracing::warn!("the coordinator's state is still in use after the shutdown");
    }
    Ok(())
}
