//! Opening gRPC channels to the coordinator and to peers, with TLS and Treaty's limits.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use treaty_proto::v1::coordinator_client::CoordinatorClient;

use crate::TrustError;
use crate::tls::TlsIdentity;

/// TLS server name the coordinator's certificate carries by default.
pub const COORDINATOR_TLS_NAME: &str = "coordinator";

/// How to reach a gRPC server: its URL and, unless insecure, the TLS identity to present and the
/// name the server's certificate must carry.
#[derive(Debug, Clone, Copy)]
pub struct Dial<'a> {
    /// `https://host:port` (or `http://` when insecure).
    pub url: &'a str,
    /// Our identity and trust root; `None` for plaintext (`--insecure`).
    pub tls: Option<&'a TlsIdentity>,
    /// Name the server's certificate must carry.
    pub server_name: &'a str,
}

/// Builds a channel with TCP/HTTP2 keep-alives (so a dead peer is noticed), lazily connected.
pub fn endpoint(dial: Dial<'_>) -> Result<Endpoint, TrustError> {
    let mut ep = Endpoint::from_shared(dial.url.to_string())
        .map_err(|e| TrustError::Invalid(format!("bad URL {:?}: {e}", dial.url)))?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .tcp_keepalive(Some(Duration::from_secs(20)))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true);
    if let Some(tls) = dial.tls {
        ep = ep.tls_config(tls.client_config(dial.server_name))?;
    }
    Ok(ep)
}

/// Connects to the coordinator.
pub async fn connect(dial: Dial<'_>) -> Result<CoordinatorClient<Channel>, TrustError> {
    let channel = endpoint(dial)?.connect().await?;
    Ok(CoordinatorClient::new(channel)
        .max_decoding_message_size(treaty_proto::MAX_CONTROL_MESSAGE)
        .max_encoding_message_size(treaty_proto::MAX_CONTROL_MESSAGE))
}
