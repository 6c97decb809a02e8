//! The data owner's side: offer the server key, then walk the rows chunk by chunk — upload,
//! decrypt what the release defines, send the masked values back or keep them as shares.

use std::fmt;
use std::ops::Range;

use super::{CHUNK_ROWS, KeyAnswer, KeyOffer, add_sums, encode_values, sum_shares};
use crate::FheError;
use crate::circuit::Evaluator;
use crate::keys::{FheClientKey, ServerKeyBytes};
use crate::mask::Release;
use crate::wire::{OwnerResults, Uploaded};

/// The owner after its key offer, waiting for the evaluator's [`KeyAnswer`].
#[derive(Debug)]
pub struct OwnerOffered {
    rows: usize,
    release: Release,
}

impl OwnerOffered {
    /// The owner of `rows` rows, under `release`, offers its serialized server key `key`:
    /// returns the waiting owner and the offer to send.
    #[must_use]
    pub fn new(key: &ServerKeyBytes, rows: usize, release: Release) -> (Self, KeyOffer) {
        (Self { rows, release }, KeyOffer::of(key))
    }

    /// Takes the evaluator's answer: whether to send the server key now (on
    /// [`KeyAnswer::Send`], before the first chunk), and the owner before its first chunk.
    ///
    /// # Errors
    /// [`FheError::Protocol`] for an answer that is not one byte 0 or 1.
    pub fn answer(self, msg: &[u8]) -> Result<(KeyAnswer, OwnerUpload), FheError> {
        let answer = KeyAnswer::decode(msg)?;
        let walk = Walk {
            total: self.rows,
            start: 0,
            release: self.release,
            results: OwnerResults::new(self.release),
            uploaded: Uploaded::default(),
            aggregate: [0; 2],
        };
        Ok((answer, OwnerUpload(walk)))
    }
}

/// Where the owner is in its rows, and what it has seen so far.
struct Walk {
    /// The job's rows.
    total: usize,
    /// The current chunk's first row.
    start: usize,
    release: Release,
    /// What the evaluator may send back (the release's layout, the score width once seen).
    results: OwnerResults,
    /// Every ciphertext uploaded in the job so far, refused if it comes back.
    uploaded: Uploaded,
    /// The owner's shares summed so far (aggregate).
    aggregate: [u64; 2],
}

impl Walk {
    fn rows(&self) -> Range<usize> {
        self.start..self.start.saturating_add(CHUNK_ROWS).min(self.total)
    }
}

impl fmt::Debug for Walk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Walk")
            .field("total", &self.total)
            .field("rows", &self.rows())
            .field("release", &self.release)
            .field("uploaded", &self.uploaded.len())
            .finish_non_exhaustive()
    }
}

/// The owner before a chunk's upload.
#[derive(Debug)]
pub struct OwnerUpload(Walk);

impl OwnerUpload {
    /// The chunk's rows, as a range of the job's rows: the next [`CHUNK_ROWS`], or fewer (maybe
    /// none) for the last chunk.
    #[must_use]
    pub fn rows(&self) -> Range<usize> {
        self.0.rows()
    }

    /// Whether this is the last chunk: it has fewer than [`CHUNK_ROWS`] rows, possibly none.
    #[must_use]
    pub fn is_last(&self) -> bool {
        self.rows().len() < CHUNK_ROWS
    }

    /// The chunk's rows were encrypted ([`crate::wire::encrypt_chunk`]) and the batch sent:
    /// records its ciphertexts (`sent`), which the owner refuses to decrypt if they come back,
    /// and waits for the evaluator's masked results.
    #[must_use]
    pub fn uploaded(self, sent: Uploaded) -> OwnerBatch {
        let mut walk = self.0;
        walk.uploaded.extend(sent);
        OwnerBatch(walk)
    }
}

/// The owner waiting for the evaluator's masked results of a chunk.
#[derive(Debug)]
pub struct OwnerBatch(Walk);

impl OwnerBatch {
    /// The chunk's rows.
    #[must_use]
    pub fn rows(&self) -> Range<usize> {
        self.0.rows()
    }

    /// Takes the evaluator's masked results for the chunk and decrypts them
    /// ([`OwnerResults::decrypt`], with `own`, the owner's own decompressed server key, and its
    /// client key `key`). Returns what comes next and the message to send back: the decrypted
    /// masked values under [`Release::Scores`] and [`Release::Decisions`]; nothing under
    /// [`Release::Aggregate`], where they are added to the owner's shares.
    ///
    /// # Errors
    /// [`FheError::Protocol`] for a batch the release does not define (count, kind, one of the
    /// owner's own ciphertexts) or that does not read under this job's key: nothing of it is
    /// decrypted. Other failures as [`OwnerResults::decrypt`].
    pub fn receive(
        self,
        masked: &[u8],
        own: &Evaluator,
        key: &FheClientKey,
    ) -> Result<(OwnerNext, Option<Vec<u8>>), FheError> {
        let mut walk = self.0;
        let rows = walk.rows().len();
        let values = walk
            .results
            .decrypt(masked, rows, &walk.uploaded, own, key)
            .map_err(refused)?;
        Ok(OwnerBatch(walk).accept(values))
    }

    /// Takes the chunk's decrypted masked values (as many as the release defines for its rows).
    pub(super) fn accept(self, values: Vec<u64>) -> (OwnerNext, Option<Vec<u8>>) {
        let mut walk = self.0;
        let reply = match walk.release {
            Release::Aggregate => {
                add_sums(&mut walk.aggregate, sum_shares(&values));
                None
            }
            Release::Scores | Release::Decisions => Some(encode_values(&values)),
        };
        let rows = walk.rows();
        let next = if rows.len() < CHUNK_ROWS {
            OwnerNext::Done(OwnerDone {
                rows: walk.total,
                aggregate: (walk.release == Release::Aggregate).then_some(walk.aggregate),
            })
        } else {
            walk.start = rows.end;
            OwnerNext::Upload(OwnerUpload(walk))
        };
        (next, reply)
    }
}

/// The owner's refusal of the evaluator's masked results: a batch the release does not define,
/// or that does not read, is a malformed message from the evaluator.
fn refused(e: FheError) -> FheError {
    let what = match &e {
        FheError::ItemCount { .. } => "masked results: not the count the release defines",
        FheError::ResultKind { .. } => {
            "masked results: an item of a kind the release does not define at its position"
        }
        FheError::EchoedCiphertext { .. } => {
            "masked results: one of the owner's own uploaded ciphertexts"
        }
        FheError::Wire { .. } | FheError::WrongKey { .. } => {
            "masked results: a ciphertext that does not read under this job's key"
        }
        _ => return e,
    };
    FheError::Protocol {
        what,
        cause: Some(Box::new(e)),
    }
}

/// What follows a chunk at the owner.
#[derive(Debug)]
pub enum OwnerNext {
    /// The next chunk.
    Upload(OwnerUpload),
    /// That was the last chunk.
    Done(OwnerDone),
}

/// The owner after its last chunk.
pub struct OwnerDone {
    rows: usize,
    aggregate: Option<[u64; 2]>,
}

impl OwnerDone {
    /// The rows the job scored.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Under [`Release::Aggregate`], the owner's additive shares over Z_2^64 of `[Σ scores,
    /// Σ decisions]` (the sums of the values it decrypted); `None` under the other releases.
    #[must_use]
    pub fn aggregate_share(&self) -> Option<[u64; 2]> {
        self.aggregate
    }
}

impl fmt::Debug for OwnerDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerDone")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}
