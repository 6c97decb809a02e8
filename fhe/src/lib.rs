//! # treaty-fhe
//!
//! The homomorphic-encryption half of Treaty: one party's data encrypted under its own key while
//! another party evaluates its model on the ciphertexts (tfhe-rs 1.8 high-level integer API).
//!
//! - [`keys`]: the data owner's keys ([`OwnerKeys`]), the client-key wrapper ([`FheClientKey`]),
//!   server-key export/import with a size limit and a parameter-conformance check, and [`KeyId`].
//! - [`score`]: a linear score plus threshold evaluated on encrypted rows ([`LinearModel`],
//!   [`EncryptedRows`], [`Evaluator`]), validated for overflow before anything is encrypted.
//!
//! Parameters: tfhe's defaults (`ConfigBuilder::default()`: 2-bit message, 2-bit carry, PBS with
//! p_fail ≤ 2^-128), see [`keys::treaty_config`].
//!
//! ## Measured (release, 2 shared cores with another build running, so pessimistic)
//! Key generation 2.4 s; compressed server key 60 228 265 bytes (57 MiB) serialized;
//! import + decompress 1.1 s; one claim, 8 features of 16 bits, linear score + threshold on
//! `FheInt32`: 19 s wall (`latency_one_claim_eight_features`, ignored test). PBS are not counted
//! by default: build with `--features pbs-stats` to print tfhe's counter.
//!
//! Nothing in the workspace depends on this crate yet (issue 6 wires it into the party).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod circuit;
mod error;
pub mod keys;
pub mod mask;
pub mod model;
pub mod wire;

pub use circuit::{EncryptedRows, EncryptedScore, Evaluator};
pub use error::FheError;
pub use keys::{FheClientKey, KeyId, OwnerKeys, ServerKeyBytes, import_server_key};
pub use mask::{MaskedCiphertext, Masks, Release, RowResult};
pub use model::{Feature, FheModel, ModelSpec};

/// A ChaCha20 generator seeded from the operating system (masks and key tags).
///
/// # Errors
/// [`FheError::Entropy`] if the OS has no randomness.
pub fn os_rng() -> Result<rand_chacha::ChaCha20Rng, FheError> {
    use rand_core::SeedableRng;
    rand_chacha::ChaCha20Rng::try_from_rng(&mut rand::rngs::SysRng).map_err(|_| FheError::Entropy)
}

/// tfhe's process-wide count of programmable bootstraps so far (tfhe's `pbs-stats` counter).
///
/// Take the difference around a computation; it also counts other threads' bootstraps, so it
/// is exact only when nothing else runs tfhe in the process meanwhile.
#[must_use]
pub fn bootstraps() -> u64 {
    tfhe::get_pbs_count()
}
