//! # treaty-mpc: the secure computation core of Treaty
//!
//! ```text
//!   party data (f64) ──encode──► fixed point in Z_2^64 ──lift──► Z_2^128 aggregates
//!                                                                   │ + zero-sharing mask
//!   pairwise seeds ◄── Ristretto255 DH over the Transport ◄────────┘   (pairwise ChaCha20)
//!                                                                   ▼
//!                                     additive share ──HPKE seal──► recipient opens + sums
//! ```
//!
//! What is here:
//! - [`ring`]: the rings Z_2^64 and Z_2^128 as wrapping `u64`/`u128` with byte codecs;
//! - [`fixed`]: two's-complement fixed-point encoding with a configurable number of fractional bits
//!   and a range check that refuses, never wraps;
//! - [`share`]: n-party additive sharing ([`share::AdditiveShare`] zeroizes on drop);
//! - [`seeds`]: pairwise seeds from an ephemeral Diffie–Hellman on Ristretto255, bound to the job and
//!   both party ids, expanded with ChaCha20 into zero-sharings that cost no messages;
//! - [`transport`]: the scoped [`transport::Channel`] every protocol talks to (one child channel
//!   per sub-protocol; tag checks, size limit, per-session round and byte
//!   [`transport::Counters`], poisoning), over raw [`transport::Link`]s, and the in-memory link;
//! - [`stats`]: the `stats` job (count, sum, mean, variance over horizontally split data);
//! - [`vstats`]: the same over vertically split data aligned by PSI, on [`rep3`] (two data
//!   parties and a helper);
//! - [`rep3`]: three-party replicated sharing (ABY3-style): mul, matmul, fixed-point truncation;
//! - [`glm`]: logistic and linear regression trained and applied on [`rep3`] shares over
//!   vertically split data, with a plaintext reference;
//! - [`psi`]: ECDH-PSI on Ristretto255 (two parties, or three or more in [`psi::multi`]), streamed
//!   in batches, with a common order of the intersection for aligning vertically split rows;
//! - [`output`]: sealing an output share to the recipient with HPKE (RFC 9180) and opening it.
//!
//! What is *not* here: gRPC, files, configuration or job scheduling. The party node provides a
//! gRPC link; tests run all parties in one process over [`transport::InMemoryTransport`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod barrier;
pub mod error;
pub mod fixed;
pub mod glm;
pub mod output;
pub mod psi;
pub mod rep3;
pub mod ring;
pub mod seeds;
pub mod share;
pub mod stats;
pub mod transport;
pub mod vstats;

pub use error::MpcError;
