//! # treaty-fhe
//!
//! The homomorphic-encryption half of Treaty: one party's records encrypted under its own key
//! while another party evaluates its own model on the ciphertexts (tfhe-rs 1.8, high-level API),
//! and the result brought to the right party by masking. No I/O beyond key files, no gRPC.
//!
//! - [`keys`]: the owner's key pair ([`OwnerKeys`]: generated with a random key tag, saved with
//!   the client key 0600, loaded), the client key wrapper ([`FheClientKey`]: no `Debug` content,
//!   wiped on drop), the compressed server key on the wire (size limit, tfhe's versioned format,
//!   conformance with [`keys::treaty_config`]) and its [`KeyId`].
//! - [`model`]: the evaluator's models ([`ModelSpec`]: linear, scorecard, tree ensemble), validated
//!   against the owner's declared features with their overflow bound ([`FheModel`]), and their
//!   clear reference evaluation.
//! - [`circuit`]: every model as one boolean–clear dot product over the encrypted feature bits
//!   ([`EncryptedRows`], [`Evaluator`], one rayon pool per server key).
//! - [`mask`]: the masking conversion — to the evaluator ([`Masks::unmask`]) or to additive
//!   shares over Z_2^64 ([`Masks::evaluator_shares`]).
//! - [`wire`]: ciphertext batches both ways (seeded compressed bits up, compressed masked results
//!   down), every item checked for size, format, parameters and key tag.
//! - [`protocol`]: the two-party `fhe-score` protocol — its messages ([`protocol::KeyOffer`],
//!   [`protocol::KeyAnswer`], chunks of [`protocol::CHUNK_ROWS`] rows) and a synchronous typed
//!   core for the owner ([`protocol::OwnerOffered`] → … → [`protocol::OwnerDone`]) and for the
//!   evaluator ([`protocol::EvaluatorStart`] → … → [`protocol::EvaluatorDone`]), tested message
//!   by message; the party node drives them over its channel.
//!
//! Parameters: tfhe's defaults (`ConfigBuilder::default()`: 2-bit message, 2-bit carry, PBS with
//! p_fail ≤ 2^-128), see [`keys::treaty_config`]. tfhe's `pbs-stats` counter is on
//! ([`bootstraps`]): `treaty demo fhe` and `treaty bench fhe` report bootstraps per claim.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod circuit;
mod error;
pub mod fuzzing;
pub mod keys;
pub mod mask;
pub mod model;
pub mod protocol;
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
