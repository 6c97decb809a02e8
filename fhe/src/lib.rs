//! # treaty-fhe
//!
//! The homomorphic-encryption half of Treaty: one party's data encrypted under its own key while
//! another party evaluates its model on the ciphertexts (tfhe-rs high-level integer API).
//!
//! This crate is deliberately empty until the FHE issue lands: the foundation (control plane, data
//! plane, sharing, sealed results) does not need it, and tfhe costs several CPU-minutes to build.
//! Nothing in the workspace depends on it yet.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
