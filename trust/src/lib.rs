//! # treaty-trust: who is who in a Treaty deployment
//!
//! ```text
//!  pki      deployment CA (`treaty init`), per-organisation CAs (`treaty init --party NAME`)
//!  tls      TLS identities, tonic configs, the peer certificate of a request
//!  cert     roles and names in certificates (`treaty://party/hospital`), read from a peer's DER
//!  roster   the membership every node pins: parties, coordinator, analysts, auditors
//!  identity analysts' signed submissions and cancellations
//!  result   each party's signature over its sealed result share
//!  result   parties' signatures over the output shares they seal to the recipient
//!  client   channels to the coordinator and to peers
//! ```
//!
//! The coordinator, the party node and the CLI depend on this crate; it depends only on
//! `treaty-proto`. Nothing here trusts the coordinator: a node decides who its peers are from its
//! own roster and from what the analyst signed.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cert;
pub mod client;
pub mod error;
pub mod identity;
pub mod pki;
pub mod result;
pub mod roster;
pub mod tls;

pub use cert::{PeerIdentity, Role};
pub use error::TrustError;
