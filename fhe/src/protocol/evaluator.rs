//! The evaluator's side: answer the key offer, check the server key, then per chunk read the
//! upload's row count, take the masks of its evaluation, and unmask the owner's values or keep
//! the shares.

use std::fmt;

use tfhe::CompressedServerKey;

use super::{CHUNK_ROWS, KeyAnswer, KeyOffer, add_sums, decode_values, sum_shares, upload_rows};
use crate::FheError;
use crate::keys::{KeyId, import_server_key};
use crate::mask::{Masks, Release, RowResult};
use crate::model::Feature;

/// The evaluator before the owner's key offer.
#[derive(Debug, Clone)]
pub struct EvaluatorStart {
    /// Ciphertexts per row: one per declared feature bit.
    bits_per_row: usize,
    release: Release,
}

impl EvaluatorStart {
    /// An evaluator of rows of `features` (one ciphertext per declared bit) under `release`.
    #[must_use]
    pub fn new(features: &[Feature], release: Release) -> Self {
        Self {
            bits_per_row: features.iter().map(|f| f.bits() as usize).sum(),
            release,
        }
    }

    /// Takes the owner's [`KeyOffer`] (`max_size`: the largest message this side accepts) and
    /// answers it: [`KeyAnswer::Cached`] if `is_cached` says the offered key is at hand (in
    /// memory or on disk), [`KeyAnswer::Send`] otherwise.
    ///
    /// # Errors
    /// As [`KeyOffer::decode`]: [`FheError::Protocol`] for a malformed offer,
    /// [`FheError::ServerKeyTooLarge`] for one above the limits.
    pub fn offer(
        self,
        msg: &[u8],
        max_size: u64,
        is_cached: impl FnOnce(&KeyOffer) -> bool,
    ) -> Result<(EvaluatorOffered, KeyAnswer), FheError> {
        let offer = KeyOffer::decode(msg, max_size)?;
        let answer = if is_cached(&offer) {
            KeyAnswer::Cached
        } else {
            KeyAnswer::Send
        };
        Ok((
            EvaluatorOffered {
                start: self,
                offer,
                answer,
            },
            answer,
        ))
    }
}

/// The evaluator after answering the key offer, waiting for the server key (from the owner
/// after [`KeyAnswer::Send`], from its own cache after [`KeyAnswer::Cached`]).
#[derive(Debug)]
pub struct EvaluatorOffered {
    start: EvaluatorStart,
    offer: KeyOffer,
    answer: KeyAnswer,
}

impl EvaluatorOffered {
    /// The owner's offer.
    #[must_use]
    pub fn offer(&self) -> &KeyOffer {
        &self.offer
    }

    /// The answer given.
    #[must_use]
    pub fn answer(&self) -> KeyAnswer {
        self.answer
    }

    /// Reads the server key's bytes — received from the owner, or read from the evaluator's
    /// cache — as [`import_server_key`] does (size limit, format, Treaty's parameters), and
    /// checks they are the offered key. Returns the key and the evaluator before the first
    /// chunk.
    ///
    /// # Errors
    /// [`FheError::KeyRejected`] for bytes that are not a conforming server key;
    /// [`FheError::KeyMismatch`] for another key than the offered one.
    pub fn receive_key(
        self,
        bytes: &[u8],
    ) -> Result<(CompressedServerKey, EvaluatorUpload), FheError> {
        let (key, id) = import_server_key(bytes)?;
        Ok((key, self.key_checked(id)?))
    }

    /// Goes on with the offered key already at hand (decompressed in memory from bytes checked
    /// by [`EvaluatorOffered::receive_key`] in an earlier job): only after
    /// [`KeyAnswer::Cached`].
    ///
    /// # Errors
    /// [`FheError::OutOfOrder`] after [`KeyAnswer::Send`]: the owner is sending the key, which
    /// must be received.
    pub fn key_in_memory(self) -> Result<EvaluatorUpload, FheError> {
        match self.answer {
            KeyAnswer::Cached => Ok(self.first_chunk()),
            KeyAnswer::Send => Err(FheError::OutOfOrder(
                "a key in memory after asking the owner to send it",
            )),
        }
    }

    /// Checks the id of the key received against the offer.
    pub(super) fn key_checked(self, received: KeyId) -> Result<EvaluatorUpload, FheError> {
        if received != self.offer.key_id {
            return Err(FheError::KeyMismatch {
                offered: self.offer.key_id,
                received,
            });
        }
        Ok(self.first_chunk())
    }

    fn first_chunk(self) -> EvaluatorUpload {
        EvaluatorUpload(Walk {
            bits_per_row: self.start.bits_per_row,
            release: self.start.release,
            rows_done: 0,
            aggregate: [0; 2],
        })
    }
}

/// Where the evaluator is in the job.
struct Walk {
    bits_per_row: usize,
    release: Release,
    /// Rows of the chunks before the current one.
    rows_done: usize,
    /// The evaluator's shares summed so far (aggregate).
    aggregate: [u64; 2],
}

impl Walk {
    /// What follows a chunk of `rows` rows.
    fn after(mut self, rows: usize) -> EvaluatorNext {
        self.rows_done += rows;
        if rows < CHUNK_ROWS {
            EvaluatorNext::Done(EvaluatorDone {
                rows: self.rows_done,
                aggregate: (self.release == Release::Aggregate).then_some(self.aggregate),
            })
        } else {
            EvaluatorNext::Upload(EvaluatorUpload(self))
        }
    }
}

impl fmt::Debug for Walk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Walk")
            .field("bits_per_row", &self.bits_per_row)
            .field("release", &self.release)
            .field("rows_done", &self.rows_done)
            .finish_non_exhaustive()
    }
}

/// The evaluator waiting for the owner's next encrypted chunk.
#[derive(Debug)]
pub struct EvaluatorUpload(Walk);

impl EvaluatorUpload {
    /// Takes the owner's encrypted chunk: checks its header (the first 4 bytes, little-endian,
    /// count the ciphertexts) holds a whole number of rows, at most [`CHUNK_ROWS`]. Returns the
    /// evaluator with the chunk's row count ([`EvaluatorEvaluating::rows`]), to read the batch
    /// with [`crate::EncryptedRows::from_wire`] and evaluate it.
    ///
    /// # Errors
    /// [`FheError::Protocol`] for a bad row count.
    pub fn upload(self, msg: &[u8]) -> Result<EvaluatorEvaluating, FheError> {
        let rows = upload_rows(msg, self.0.bits_per_row)?;
        Ok(EvaluatorEvaluating { walk: self.0, rows })
    }
}

/// The evaluator evaluating a chunk.
#[derive(Debug)]
pub struct EvaluatorEvaluating {
    walk: Walk,
    rows: usize,
}

impl EvaluatorEvaluating {
    /// The chunk's rows.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Whether this is the last chunk: it has fewer than [`CHUNK_ROWS`] rows, possibly none.
    #[must_use]
    pub fn is_last(&self) -> bool {
        self.rows < CHUNK_ROWS
    }

    /// The chunk was evaluated and masked ([`crate::Evaluator::evaluate_masked`]) and the
    /// masked results sent: takes the `masks`. Under [`Release::Aggregate`] the evaluator's
    /// shares are added to its sums; under the other releases it waits for the owner's masked
    /// values ([`EvaluatorNext::Values`]).
    ///
    /// # Errors
    /// [`FheError::OutOfOrder`] for masks of another release or row count than the chunk's.
    pub fn evaluated(self, masks: Masks) -> Result<EvaluatorNext, FheError> {
        let mut walk = self.walk;
        if masks.release() != walk.release || masks.rows() != self.rows {
            return Err(FheError::OutOfOrder(
                "masks of another release or row count than the chunk's",
            ));
        }
        match walk.release {
            Release::Aggregate => {
                add_sums(&mut walk.aggregate, sum_shares(&masks.evaluator_shares()?));
                Ok(walk.after(self.rows))
            }
            Release::Scores | Release::Decisions => Ok(EvaluatorNext::Values(EvaluatorValues {
                walk,
                rows: self.rows,
                masks,
            })),
        }
    }
}

/// The evaluator waiting for the owner's masked values of a chunk (scores, decisions).
#[derive(Debug)]
pub struct EvaluatorValues {
    walk: Walk,
    rows: usize,
    masks: Masks,
}

impl EvaluatorValues {
    /// The chunk's rows.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Takes the owner's masked values for the chunk (`u64` little-endian words, as many as the
    /// release defines per row) and removes the masks: one result per row, and what follows.
    ///
    /// # Errors
    /// [`FheError::Protocol`] for a message that is not 8-byte words, holds another count, or a
    /// value outside its masked width (a decision that is not a bit, a score wider than its
    /// mask).
    pub fn receive(self, msg: &[u8]) -> Result<(Vec<RowResult>, EvaluatorNext), FheError> {
        let expected = self.rows * self.walk.release.values_per_row();
        let values = decode_values(msg, expected)?;
        let results = self.masks.unmask(&values).map_err(|e| FheError::Protocol {
            what: "masked values: a value outside its masked width",
            cause: Some(Box::new(e)),
        })?;
        Ok((results, self.walk.after(self.rows)))
    }
}

/// What the evaluator waits for next.
#[derive(Debug)]
pub enum EvaluatorNext {
    /// The owner's next encrypted chunk.
    Upload(EvaluatorUpload),
    /// The owner's masked values of the chunk just evaluated.
    Values(EvaluatorValues),
    /// Nothing: that was the last chunk.
    Done(EvaluatorDone),
}

/// The evaluator after the last chunk.
pub struct EvaluatorDone {
    rows: usize,
    aggregate: Option<[u64; 2]>,
}

impl EvaluatorDone {
    /// The rows the job scored.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Under [`Release::Aggregate`], the evaluator's additive shares over Z_2^64 of `[Σ scores,
    /// Σ decisions]` (the sums of its negated masks and the model's offset); `None` under the
    /// other releases.
    #[must_use]
    pub fn aggregate_share(&self) -> Option<[u64; 2]> {
        self.aggregate
    }
}

impl fmt::Debug for EvaluatorDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvaluatorDone")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}
