//! # treaty-party: the party node
//!
//! ```text
//!   party.toml ─► datasets (CSV + declared schema) ─► local aggregates (fixed point)
//!        │                                                  │
//!        ▼                                                  ▼
//!   coordinator ◄─ register · subscribe · report · upload   treaty_mpc protocol over
//!   (control plane)                                          GrpcTransport ◄──► peers (data plane)
//! ```
//!
//! A node registers its data-plane endpoint, TLS fingerprint and dataset *schemas* (never rows),
//! follows its job stream, checks every assignment against its own datasets, runs the protocol
//! with its peers over mutually authenticated `PartyLink` streams, seals its output share to the
//! recipient (HPKE) and uploads only the sealed bytes. Protocol math lives in `treaty-mpc`; this
//! crate is I/O, configuration and orchestration.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod approval;
pub mod artefact;
pub mod audit_log;
mod checks;
pub mod config;
pub mod dataset;
pub mod error;
#[cfg(feature = "fhe")]
pub mod fhe_score;
pub mod job;
pub mod join;
pub mod link;
pub mod membership;
pub mod node;
pub mod policy;
pub mod psi;
pub mod refusal;
pub mod score;
pub mod stats;
pub mod train;

pub use config::PartyConfig;
pub use error::PartyError;
pub use refusal::Refusal;
