//! # treaty-sandbox: Treaty in one process
//!
//! A throwaway deployment on loopback ([`sandbox::Sandbox`]: a PKI in a temporary directory,
//! the real coordinator and real party nodes as tasks, the real gRPC planes between them), the
//! synthetic data the demos and benches use ([`synthetic`], [`synthetic_risk`]), and the demos
//! `treaty demo` runs ([`demo`], [`demo_psi`], [`demo_join`], [`demo_claims`], `demo_fhe`), each
//! checked against the same computation in the clear.
//!
//! Not published: only the `treaty` binary, the bench harnesses and tests depend on it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod demo;
pub mod demo_claims;
#[cfg(feature = "fhe")]
pub mod demo_fhe;
pub mod demo_join;
pub mod demo_psi;
pub mod error;
pub mod sandbox;
pub mod synthetic;
pub mod synthetic_risk;

pub use error::SandboxError;
pub use sandbox::{Sandbox, SandboxOptions};
