//! The two-party `fhe-score` protocol between the data owner and the evaluator: its messages
//! and a synchronous typed core for each side ([`OwnerOffered`] → [`OwnerDone`], [`EvaluatorStart`] → [`EvaluatorDone`]).
//!
//! No I/O here: a driver (the party node's `fhe_score::run`) moves the bytes on its channel,
//! runs the tfhe work (encrypting, evaluating, decrypting) off its async runtime, and keeps the
//! key caches. The cores decide what each message must be, what comes next, and when the job is
//! done; they refuse a peer's malformed message with [`FheError::Protocol`] (the driver blames
//! that peer), and their states make a step out of order impossible to express (what the types
//! cannot rule out is refused with [`FheError::OutOfOrder`]).
//!
//! ## Rounds
//! On the job's channel, with two child channels:
//!
//! ```text
//!  owner                                                    evaluator
//!  ── key, round 0 ───────────────────────────────────────────────────────
//!  OwnerOffered::new       ── KeyOffer (40 bytes) ──▶      EvaluatorStart::offer
//!  OwnerOffered::answer    ◀── KeyAnswer (1 byte) ──
//!  ── key, round 1 (only after KeyAnswer::Send) ──────────────────────────
//!                          ── server key ──────────▶      EvaluatorOffered::receive_key
//!  ── chunks, per chunk of CHUNK_ROWS rows ───────────────────────────────
//!  OwnerUpload::uploaded   ── encrypted rows ──────▶      EvaluatorUpload::upload
//!  OwnerBatch::receive     ◀── masked results ─────       EvaluatorEvaluating::evaluated
//!  (scores, decisions: one more round)
//!                          ── masked values ───────▶      EvaluatorValues::receive
//! ```
//!
//! 1. `key` round 0: the owner offers its server key by [`KeyOffer`] (the 32-byte [`KeyId`] and
//!    the size as a `u64`, little-endian); the evaluator answers [`KeyAnswer`] (one byte: 1 if
//!    it has that key cached, 0 if the owner must send it).
//! 2. `key` round 1, only when asked: the compressed server key, which the evaluator checks
//!    against the offered id ([`EvaluatorOffered::receive_key`]).
//! 3. `chunks`: per chunk of [`CHUNK_ROWS`] rows, one round with the owner's encrypted rows (a
//!    [`crate::wire`] batch: its first 4 bytes, little-endian, count the ciphertexts, one per
//!    feature bit of every row) and the evaluator's masked results; then, unless the release is
//!    [`Release::Aggregate`] (where the owner's decrypted values stay its shares), one round with
//!    the owner's decrypted masked values as `u64` little-endian words. A chunk of fewer than
//!    [`CHUNK_ROWS`] rows — possibly none — is the last: `n` rows take `n / CHUNK_ROWS + 1`
//!    chunks.
//!
//! [`Release::Aggregate`]: crate::Release::Aggregate

mod evaluator;
mod owner;
#[cfg(test)]
mod tests;

pub use evaluator::{
    EvaluatorDone, EvaluatorEvaluating, EvaluatorNext, EvaluatorOffered, EvaluatorStart,
    EvaluatorUpload, EvaluatorValues,
};
pub use owner::{OwnerBatch, OwnerDone, OwnerNext, OwnerOffered, OwnerUpload};

use crate::FheError;
use crate::keys::{KeyId, SERVER_KEY_SIZE_LIMIT, ServerKeyBytes};

/// Rows per encrypted chunk (one upload, one masked batch back); both parties use it.
///
/// The owner waits for a chunk's masked results under the data plane's peer timeout
/// (`peer_timeout_secs`, 60 s by default), so a chunk must be evaluated well within it: 16 rows
/// of the demo's models take 5–31 s on two cores (0.3–1.9 s per row, see `treaty bench fhe`).
/// A model costing more than about `peer_timeout / 16` per row needs a longer timeout.
pub const CHUNK_ROWS: usize = 16;

/// Length of an encoded [`KeyOffer`].
pub const KEY_OFFER_LEN: usize = 40;

/// The owner's offer of its server key: which key, and how many bytes it would send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyOffer {
    /// The key's id (SHA-256 of its serialized bytes).
    pub key_id: KeyId,
    /// Its serialized size in bytes.
    pub size: u64,
}

impl KeyOffer {
    /// The offer of a serialized server key.
    #[must_use]
    pub fn of(key: &ServerKeyBytes) -> Self {
        Self {
            key_id: key.key_id(),
            size: key.as_bytes().len() as u64,
        }
    }

    /// The message: the key id, then the size as a little-endian `u64`.
    #[must_use]
    pub fn encode(&self) -> [u8; KEY_OFFER_LEN] {
        let mut out = [0u8; KEY_OFFER_LEN];
        out[..32].copy_from_slice(self.key_id.as_bytes());
        out[32..].copy_from_slice(&self.size.to_le_bytes());
        out
    }

    /// Reads an offer, refusing a key larger than [`SERVER_KEY_SIZE_LIMIT`] or `max_size` (the
    /// largest message the evaluator's channel accepts).
    ///
    /// # Errors
    /// [`FheError::Protocol`] for a message that is not [`KEY_OFFER_LEN`] bytes;
    /// [`FheError::ServerKeyTooLarge`] for an offer above either limit.
    pub fn decode(bytes: &[u8], max_size: u64) -> Result<Self, FheError> {
        let bad = || FheError::protocol("key offer is not 40 bytes");
        let (id, size) = bytes.split_first_chunk::<32>().ok_or_else(bad)?;
        let size = <[u8; 8]>::try_from(size)
            .map(u64::from_le_bytes)
            .map_err(|_| bad())?;
        let limit = SERVER_KEY_SIZE_LIMIT.min(max_size);
        if size > limit {
            return Err(FheError::ServerKeyTooLarge { size, limit });
        }
        Ok(Self {
            key_id: KeyId::from_bytes(*id),
            size,
        })
    }
}

/// The evaluator's answer to a [`KeyOffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAnswer {
    /// It has the offered key cached: the owner does not send it (byte 1).
    Cached,
    /// The owner sends the key (byte 0).
    Send,
}

impl KeyAnswer {
    /// The message: one byte, 1 for [`KeyAnswer::Cached`], 0 for [`KeyAnswer::Send`].
    #[must_use]
    pub fn encode(self) -> [u8; 1] {
        [u8::from(self == Self::Cached)]
    }

    /// Reads an answer.
    ///
    /// # Errors
    /// [`FheError::Protocol`] for anything but one byte 0 or 1.
    pub fn decode(bytes: &[u8]) -> Result<Self, FheError> {
        match bytes {
            [1] => Ok(Self::Cached),
            [0] => Ok(Self::Send),
            _ => Err(FheError::protocol("key answer is not one byte 0 or 1")),
        }
    }
}

/// `[Σ scores, Σ decisions]` of per-row `[score, decision]` shares, wrapping in Z_2^64 (a
/// trailing odd word is ignored).
#[must_use]
pub fn sum_shares(words: &[u64]) -> [u64; 2] {
    let mut sum = [0u64; 2];
    for pair in words.chunks_exact(2) {
        sum[0] = sum[0].wrapping_add(pair[0]);
        sum[1] = sum[1].wrapping_add(pair[1]);
    }
    sum
}

/// Adds `more` to the running sums `acc`, wrapping.
fn add_sums(acc: &mut [u64; 2], more: [u64; 2]) {
    acc[0] = acc[0].wrapping_add(more[0]);
    acc[1] = acc[1].wrapping_add(more[1]);
}

/// The owner's decrypted masked values as the message: `u64` little-endian words.
fn encode_values(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Reads the owner's masked values: `expected` little-endian `u64` words.
fn decode_values(bytes: &[u8], expected: usize) -> Result<Vec<u64>, FheError> {
    if !bytes.len().is_multiple_of(8) {
        return Err(FheError::protocol("masked values are not 8-byte words"));
    }
    if bytes.len() / 8 != expected {
        return Err(FheError::protocol(
            "masked values: not the count the chunk's rows define",
        ));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .collect())
}

/// The rows of an encrypted chunk, from its header (the first 4 bytes, little-endian, count
/// the ciphertexts): a whole number of rows of `bits_per_row` ciphertexts, at most
/// [`CHUNK_ROWS`].
fn upload_rows(upload: &[u8], bits_per_row: usize) -> Result<usize, FheError> {
    let bad = || FheError::protocol("encrypted chunk has a bad row count");
    let items = upload
        .first_chunk::<4>()
        .map(|c| u32::from_le_bytes(*c) as usize)
        .ok_or_else(bad)?;
    if bits_per_row == 0 || !items.is_multiple_of(bits_per_row) {
        return Err(bad());
    }
    let rows = items / bits_per_row;
    if rows > CHUNK_ROWS {
        return Err(bad());
    }
    Ok(rows)
}
