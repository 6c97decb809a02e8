//! Getting an encrypted result to the right party: the masking conversion.
//!
//! The evaluator holds `Enc(score)` and `Enc(decision)` under the owner's key; it must learn the
//! result (or only a share of it) and the owner must learn nothing. The evaluator adds fresh
//! uniform masks on the ciphertexts, the owner decrypts the masked values and returns them, and
//! the evaluator removes the masks ([`Masks::unmask`]). Equivalently, the masked value is the
//! owner's additive share and the negated mask the evaluator's ([`Masks::evaluator_shares`]), which
//! chains an FHE step into secret-shared computation.
//!
//! The encrypted part of the score is `sum = score − K` on `W` = 16 or 32 bits (see
//! [`crate::circuit`]); `K` is the evaluator's, in the clear.
//!
//! | release | ciphertexts per row | owner decrypts | evaluator learns |
//! | --- | --- | --- | --- |
//! | [`Release::Scores`] | `sum + r` mod 2^W, decision `⊕ b` | uniform W-bit value, uniform bit | score, decision |
//! | [`Release::Decisions`] | decision `⊕ b` | uniform bit | decision |
//! | [`Release::Aggregate`] | `sum + r`, `decision + r'` mod 2^64 | uniform `u64`s | its shares `K − r`, `−r'` only |
//!
//! Every mask is uniform over its whole ring (a one-time pad), so a masked value is independent
//! of the result: perfect hiding, not statistical. The sum is masked by addition, not XOR: the
//! addition's carry propagation ends every block in a bootstrap, while tfhe's XOR with a clear
//! value leaves a block that is a trivial encryption (the high blocks of a sum whose range needs
//! fewer bits) trivial — readable without the key and refused by the conformance check. The
//! decision is computed at the same time as the masking ([`Evaluator::evaluate_masked`]). In [`Release::Aggregate`] the owner's masked
//! values and the evaluator's `K − r`, `−r'` are additive shares of the score and the decision
//! over Z_2^64 — the ring of Treaty's MPC — exactly, with no wrap correction (`sum` and the
//! decision are zero-extended to 64 bits, which costs no bootstrap).
//!
//! Circuit privacy: the masked ciphertexts come out of tfhe operations whose last step on every
//! block is a programmable bootstrap (the mask addition propagates carries through every block;
//! the XOR with a clear bit is applied before the decision's final bootstrap is compressed), so
//! their noise comes from the bootstrapping key, not from the evaluated model. See SECURITY.md
//! for what this does and does not guarantee.

use rand_core::CryptoRng;
use rayon::prelude::*;
use tfhe::prelude::*;
use tfhe::{FheBool, FheUint16, FheUint32, FheUint64};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::FheError;
use crate::circuit::{EncryptedRows, EncryptedScore, EncryptedSum, Evaluator, decide, row_sum};
use crate::keys::FheClientKey;
use crate::model::FheModel;

/// What leaves an `fhe-score` job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// The evaluator learns each row's score and decision.
    Scores,
    /// The evaluator learns each row's decision only.
    Decisions,
    /// Nobody learns a row's result: both parties keep additive shares of score and decision
    /// over Z_2^64.
    Aggregate,
}

impl Release {
    /// Parses a job's `release` ("" means "scores").
    ///
    /// # Errors
    /// [`FheError::InvalidModel`]-free: [`FheError::Release`] for anything else.
    pub fn parse(s: &str) -> Result<Self, FheError> {
        match s {
            "" | "scores" => Ok(Self::Scores),
            "decisions" => Ok(Self::Decisions),
            "aggregate" => Ok(Self::Aggregate),
            other => Err(FheError::Release(other.to_string())),
        }
    }

    /// The job-file spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scores => "scores",
            Self::Decisions => "decisions",
            Self::Aggregate => "aggregate",
        }
    }

    /// Masked values per row.
    #[must_use]
    pub fn values_per_row(self) -> usize {
        match self {
            Self::Decisions => 1,
            Self::Scores | Self::Aggregate => 2,
        }
    }
}

/// One masked ciphertext, as it travels to the owner.
pub enum MaskedCiphertext {
    /// A masked bit.
    Bool(FheBool),
    /// A masked 16-bit value.
    U16(FheUint16),
    /// A masked 32-bit value.
    U32(FheUint32),
    /// A masked 64-bit value.
    U64(FheUint64),
}

impl MaskedCiphertext {
    /// Decrypts with the owner's key (what the owner sees is uniform).
    #[must_use]
    pub fn decrypt(&self, key: &FheClientKey) -> u64 {
        let ck = key.reveal();
        match self {
            Self::Bool(b) => u64::from(b.decrypt(ck)),
            Self::U16(v) => u64::from(FheDecrypt::<u16>::decrypt(v, ck)),
            Self::U32(v) => u64::from(FheDecrypt::<u32>::decrypt(v, ck)),
            Self::U64(v) => v.decrypt(ck),
        }
    }
}

/// The evaluator's masks, row by row (`values_per_row` words each). Wiped on drop; `Debug`
/// shows the shape only.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Masks {
    #[zeroize(skip)]
    release: Release,
    /// Width of the masked sum under [`Release::Scores`]: 16 or 32.
    #[zeroize(skip)]
    bits: u32,
    /// The model's clear offset `K`.
    offset: i64,
    words: Vec<u64>,
}

impl std::fmt::Debug for Masks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masks")
            .field("release", &self.release)
            .field("words", &self.words.len())
            .finish()
    }
}

/// One row's result as the evaluator learns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowResult {
    /// The score (`None` under [`Release::Decisions`]).
    pub score: Option<i32>,
    /// `score ≥ threshold`.
    pub decision: bool,
}

impl Masks {
    /// Which release the masks are for.
    #[must_use]
    pub fn release(&self) -> Release {
        self.release
    }

    /// Number of rows.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.words.len() / self.release.values_per_row()
    }

    /// Removes the masks from the values the owner decrypted (`values_per_row` per row, in row
    /// order).
    ///
    /// # Errors
    /// [`FheError::MaskedValues`] if the count is wrong or a value is outside its masked
    /// width (a bit that is not 0/1, a 32-bit value beyond `u32`); not for aggregate.
    pub fn unmask(&self, values: &[u64]) -> Result<Vec<RowResult>, FheError> {
        if values.len() != self.words.len() {
            return Err(FheError::MaskedValues(format!(
                "{} masked values for {} expected",
                values.len(),
                self.words.len()
            )));
        }
        let bit = |v: u64, m: u64| match v {
            0 | 1 => Ok((v ^ m) == 1),
            _ => Err(FheError::MaskedValues(
                "a masked decision is not a bit".into(),
            )),
        };
        match self.release {
            Release::Decisions => values
                .iter()
                .zip(&self.words)
                .map(|(&v, &m)| {
                    Ok(RowResult {
                        score: None,
                        decision: bit(v, m)?,
                    })
                })
                .collect(),
            Release::Scores => values
                .chunks_exact(2)
                .zip(self.words.chunks_exact(2))
                .map(|(v, m)| {
                    let modulus = 1u64 << self.bits;
                    if v[0] >= modulus {
                        return Err(FheError::MaskedValues(format!(
                            "a masked score is wider than {} bits",
                            self.bits
                        )));
                    }
                    let sum = v[0].wrapping_sub(m[0]) & (modulus - 1);
                    // The model was validated: offset + sum fits an i32.
                    let score = (self.offset + sum as i64) as i32;
                    Ok(RowResult {
                        score: Some(score),
                        decision: bit(v[1], m[1])?,
                    })
                })
                .collect(),
            Release::Aggregate => Err(FheError::MaskedValues(
                "aggregate results stay shared; use evaluator_shares".into(),
            )),
        }
    }

    /// Under [`Release::Aggregate`]: the evaluator's additive shares over Z_2^64, `[score,
    /// decision]` per row (the negated masks); the owner's are the values it decrypted.
    ///
    /// # Errors
    /// [`FheError::MaskedValues`] under another release.
    pub fn evaluator_shares(&self) -> Result<Vec<u64>, FheError> {
        if self.release != Release::Aggregate {
            return Err(FheError::MaskedValues(
                "only an aggregate release leaves shares".into(),
            ));
        }
        // [K − r, −r'] per row.
        Ok(self
            .words
            .chunks_exact(2)
            .flat_map(|m| [(self.offset as u64).wrapping_sub(m[0]), m[1].wrapping_neg()])
            .collect())
    }
}

#[cfg(test)]
impl Masks {
    /// Masks of known words, standing in for an evaluation's.
    pub(crate) fn for_tests(release: Release, bits: u32, offset: i64, words: Vec<u64>) -> Self {
        Self {
            release,
            bits,
            offset,
            words,
        }
    }
}

/// Fresh mask words for `rows` rows: per row `values_per_row` words, each uniform over its ring.
fn draw<R: CryptoRng + ?Sized>(rows: usize, release: Release, bits: u32, rng: &mut R) -> Vec<u64> {
    let per_row = release.values_per_row();
    (0..rows * per_row)
        .map(|i| match (release, i % per_row) {
            (Release::Decisions, _) | (Release::Scores, 1) => rng.next_u64() & 1,
            (Release::Scores, _) => rng.next_u64() & ((1u64 << bits) - 1),
            (Release::Aggregate, _) => rng.next_u64(),
        })
        .collect()
}

impl Evaluator {
    /// Masks every row's result for `release` with fresh uniform masks from `rng`: what goes
    /// to the owner, and what the evaluator keeps.
    pub fn mask<R: CryptoRng + ?Sized>(
        &self,
        results: Vec<EncryptedScore>,
        release: Release,
        rng: &mut R,
    ) -> (Vec<MaskedCiphertext>, Masks) {
        let bits = match results.first().map(|r| &r.sum) {
            Some(EncryptedSum::U32(_)) => 32,
            _ => 16,
        };
        let offset = results.first().map_or(0, |r| r.offset);
        let mut words = draw(results.len(), release, bits, rng);
        let per_row = release.values_per_row();
        let masked = self.install(|| {
            results
                .into_par_iter()
                .zip(words.par_chunks(per_row))
                .flat_map_iter(|(r, m)| apply(&r.sum, || r.decision.clone(), release, m))
                .collect()
        });
        let masks = Masks {
            release,
            bits,
            offset,
            words: std::mem::take(&mut words),
        };
        (masked, masks)
    }

    /// Evaluates `model` on every row and masks the results for `release` in one pass: per row
    /// the encrypted sum, then its comparison with the threshold and its masking side by side
    /// (what a job runs; [`Evaluator::evaluate`] then [`Evaluator::mask`] give the same result
    /// one step after the other).
    ///
    /// # Errors
    /// [`FheError::SchemaMismatch`] if the rows were encrypted for other features than the
    /// model's.
    pub fn evaluate_masked<R: CryptoRng + ?Sized>(
        &self,
        model: &FheModel,
        rows: &EncryptedRows,
        release: Release,
        rng: &mut R,
    ) -> Result<(Vec<MaskedCiphertext>, Masks), FheError> {
        if rows.features != model.features {
            return Err(FheError::SchemaMismatch);
        }
        let bits = model.score_bits();
        let mut words = draw(rows.len(), release, bits, rng);
        let per_row = release.values_per_row();
        let masked = self.install(|| {
            rows.rows
                .par_iter()
                .zip(words.par_chunks(per_row))
                .flat_map_iter(|(row, m)| {
                    let sum = row_sum(model, row);
                    apply(&sum, || decide(model, &sum), release, m)
                })
                .collect()
        });
        let masks = Masks {
            release,
            bits,
            offset: model.offset,
            words: std::mem::take(&mut words),
        };
        Ok((masked, masks))
    }
}

/// Masks one row: the decision (from `decision`) and the sum side by side; the server key is
/// installed on this thread.
fn apply(
    sum: &EncryptedSum,
    decision: impl FnOnce() -> FheBool + Send,
    release: Release,
    m: &[u64],
) -> Vec<MaskedCiphertext> {
    let flip = |d: FheBool, b: u64| if b == 1 { !d } else { d };
    match release {
        Release::Decisions => vec![MaskedCiphertext::Bool(flip(decision(), m[0]))],
        Release::Scores => {
            // `m[0]` was drawn below 2^bits.
            let (sum, decision) = rayon::join(
                || match sum {
                    EncryptedSum::U16(s) => MaskedCiphertext::U16(s + (m[0] as u16)),
                    EncryptedSum::U32(s) => MaskedCiphertext::U32(s + (m[0] as u32)),
                },
                decision,
            );
            vec![sum, MaskedCiphertext::Bool(flip(decision, m[1]))]
        }
        Release::Aggregate => {
            let (sum, decision) = rayon::join(
                || {
                    let wide = match sum {
                        EncryptedSum::U16(s) => FheUint64::cast_from(s.clone()),
                        EncryptedSum::U32(s) => FheUint64::cast_from(s.clone()),
                    };
                    wide + m[0]
                },
                || FheUint64::cast_from(decision()) + m[1],
            );
            vec![MaskedCiphertext::U64(sum), MaskedCiphertext::U64(decision)]
        }
    }
}
