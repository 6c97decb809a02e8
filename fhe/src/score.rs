//! A linear score plus threshold evaluated on encrypted rows.
//!
//! The owner declares its columns ([`Feature`]: name and bit width ≤ 16), checks every value
//! against its width and only then encrypts ([`EncryptedRows::encrypt`], one `FheUint16` per
//! value). The evaluator holds a [`LinearModel`] (clear integer weights, bias, threshold) that was
//! validated against the same feature declarations, and computes per row
//! `score = Σ w_i·x_i + b` and `decision = score ≥ threshold` on ciphertexts
//! ([`Evaluator::score`]), in parallel over rows with rayon.
//!
//! ## Ciphertext width: `FheInt32`
//! The score is a signed 32-bit ciphertext. Signed, because weights and bias are signed (scorecard
//! and logistic coefficients are negative as often as positive) and a signed score compares
//! directly with a signed threshold; 32 bits, because 8 features of up to 16 bits with weights of
//! ~2^12 need ~2^31, while `FheInt64` doubles the blocks (and roughly the PBS count) of every
//! operation. [`LinearModel::new`] rejects a model whose bound
//! `Σ |w_i|·(2^bits_i − 1) + |b|` exceeds `i32::MAX`; every partial sum is bounded by the same
//! quantity, so no intermediate can wrap.
//!
//! ## Cost (default parameters, 16 two-bit blocks per `FheInt32`)
//! Per row: the `FheUint16 → FheInt32` casts are free (zero blocks appended, no PBS); each non-zero
//! weight other than 1 costs one scalar multiplication (shift-and-add, a few carry propagations:
//! tens of PBS); the sum is one multi-operand addition (one final carry propagation), the bias one
//! scalar addition, the threshold one scalar comparison (≈ 16 + log₂16 PBS). tfhe counts PBS only
//! with its `pbs-stats` feature (see the ignored `latency_one_claim_eight_features` test).

use rayon::prelude::*;
use tfhe::prelude::*;
use tfhe::{CompressedServerKey, FheBool, FheInt32, FheUint16, ServerKey, set_server_key};

use crate::FheError;
use crate::keys::FheClientKey;

/// Width in bits of the encrypted score.
pub const SCORE_BITS: u32 = 32;

/// A declared input column: its name and the number of bits its (unsigned) values use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    name: String,
    bits: u32,
}

impl Feature {
    /// Declares a column whose values lie in `0..2^bits`, `bits` in `1..=16`.
    ///
    /// # Errors
    /// [`FheError::FeatureWidth`] for a width outside `1..=16`.
    pub fn new(name: impl Into<String>, bits: u32) -> Result<Self, FheError> {
        let name = name.into();
        if !(1..=16).contains(&bits) {
            return Err(FheError::FeatureWidth { column: name, bits });
        }
        Ok(Self { name, bits })
    }

    /// The column name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The declared bit width.
    #[must_use]
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The largest value the column may hold: `2^bits − 1`.
    #[must_use]
    pub fn max_value(&self) -> u16 {
        // bits ∈ 1..=16 (checked in `new`), so the shift does not overflow a u32 and the result
        // fits a u16.
        u16::try_from((1u32 << self.bits) - 1).unwrap_or(u16::MAX)
    }
}

/// Checks each row's length and each value against its column's width.
fn check_rows<'a>(
    features: &[Feature],
    rows: impl IntoIterator<Item = &'a [u16]>,
) -> Result<(), FheError> {
    for (row, values) in rows.into_iter().enumerate() {
        if values.len() != features.len() {
            return Err(FheError::RowLength {
                row,
                expected: features.len(),
                got: values.len(),
            });
        }
        for (feature, &value) in features.iter().zip(values) {
            if value > feature.max_value() {
                return Err(FheError::ValueOutOfRange {
                    column: feature.name.clone(),
                    row,
                    bits: feature.bits,
                });
            }
        }
    }
    Ok(())
}

/// The evaluator's model: `score = Σ w_i·x_i + bias`, `decision = score ≥ threshold`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinearModel {
    features: Vec<Feature>,
    weights: Vec<i32>,
    bias: i32,
    threshold: i32,
    bound: u128,
}

impl LinearModel {
    /// Validates a model against the declared features.
    ///
    /// # Errors
    /// [`FheError::EmptyModel`], [`FheError::WeightCount`], or [`FheError::ModelOverflow`] when
    /// `Σ |w_i|·(2^bits_i − 1) + |bias|` exceeds `i32::MAX` (the score is an `FheInt32`).
    pub fn new(
        features: Vec<Feature>,
        weights: Vec<i32>,
        bias: i32,
        threshold: i32,
    ) -> Result<Self, FheError> {
        if features.is_empty() {
            return Err(FheError::EmptyModel);
        }
        if weights.len() != features.len() {
            return Err(FheError::WeightCount {
                weights: weights.len(),
                features: features.len(),
            });
        }
        // Each term is < 2^31 · 2^16 and there are at most usize terms: u128 cannot overflow for
        // any realistic feature count; saturate anyway.
        let bound =
            features
                .iter()
                .zip(&weights)
                .fold(u128::from(bias.unsigned_abs()), |acc, (f, w)| {
                    acc.saturating_add(u128::from(w.unsigned_abs()) * u128::from(f.max_value()))
                });
        let max = i32::MAX.unsigned_abs().into();
        if bound > max {
            return Err(FheError::ModelOverflow {
                bound,
                width: SCORE_BITS,
                max,
            });
        }
        Ok(Self {
            features,
            weights,
            bias,
            threshold,
            bound,
        })
    }

    /// The declared features, in column order.
    #[must_use]
    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    /// The bound on `|Σ w_i·x_i + b|` (and on every partial sum) over the declared ranges.
    #[must_use]
    pub fn bound(&self) -> u128 {
        self.bound
    }

    /// The same model in the clear: `(score, score ≥ threshold)` for one row.
    ///
    /// # Errors
    /// [`FheError::RowLength`] or [`FheError::ValueOutOfRange`] (reported as row 0).
    pub fn evaluate_clear(&self, row: &[u16]) -> Result<(i32, bool), FheError> {
        check_rows(&self.features, [row])?;
        let score = self
            .weights
            .iter()
            .zip(row)
            .fold(i64::from(self.bias), |acc, (&w, &x)| {
                acc + i64::from(w) * i64::from(x)
            });
        // |score| ≤ bound ≤ i32::MAX, checked in `new`, for in-range rows (checked above).
        let score = i32::try_from(score).map_err(|_| FheError::ModelOverflow {
            bound: self.bound,
            width: SCORE_BITS,
            max: i32::MAX.unsigned_abs().into(),
        })?;
        Ok((score, score >= self.threshold))
    }
}

/// A batch of rows encrypted under the owner's client key: one `FheUint16` per value.
pub struct EncryptedRows {
    features: Vec<Feature>,
    rows: Vec<Vec<FheUint16>>,
}

impl EncryptedRows {
    /// Checks every value against its column's declared width, then encrypts the batch.
    ///
    /// Nothing is encrypted if any row is malformed.
    ///
    /// # Errors
    /// [`FheError::RowLength`], or [`FheError::ValueOutOfRange`] naming the column and row.
    pub fn encrypt(
        features: &[Feature],
        rows: &[Vec<u16>],
        key: &FheClientKey,
    ) -> Result<Self, FheError> {
        check_rows(features, rows.iter().map(Vec::as_slice))?;
        let ck = key.reveal();
        let rows = rows
            .par_iter()
            .map(|values| values.iter().map(|&v| FheUint16::encrypt(v, ck)).collect())
            .collect();
        Ok(Self {
            features: features.to_vec(),
            rows,
        })
    }

    /// The declared features.
    #[must_use]
    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    /// Number of rows.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the batch has no rows.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// One row's encrypted result, decryptable only by the owner.
pub struct EncryptedScore {
    /// `Σ w_i·x_i + b`.
    pub score: FheInt32,
    /// `score ≥ threshold`.
    pub decision: FheBool,
}

impl EncryptedScore {
    /// Decrypts `(score, decision)` with the owner's client key.
    #[must_use]
    pub fn decrypt(&self, key: &FheClientKey) -> (i32, bool) {
        let ck = key.reveal();
        (self.score.decrypt(ck), self.decision.decrypt(ck))
    }
}

/// The evaluating party: a decompressed server key and the model evaluation.
pub struct Evaluator {
    server_key: ServerKey,
}

impl Evaluator {
    /// Decompresses an owner's server key (≈ a second of CPU, ≈ 170 MiB in memory).
    #[must_use]
    pub fn new(key: &CompressedServerKey) -> Self {
        Self {
            server_key: key.decompress(),
        }
    }

    /// Evaluates `model` on every row, in parallel over rows on rayon's pool.
    ///
    /// tfhe's server key is thread-local, so each row task installs it on the worker thread
    /// running it (a cheap `Arc` clone). It is never uninstalled: a task blocked inside tfhe may
    /// run another row's task on the same thread (work stealing), which must still find the key.
    ///
    /// # Errors
    /// [`FheError::SchemaMismatch`] if the rows were encrypted for other features than the
    /// model's.
    pub fn score(
        &self,
        model: &LinearModel,
        rows: &EncryptedRows,
    ) -> Result<Vec<EncryptedScore>, FheError> {
        if rows.features != model.features {
            return Err(FheError::SchemaMismatch);
        }
        Ok(rows
            .rows
            .par_iter()
            .map(|row| {
                set_server_key(self.server_key.clone());
                score_row(model, row)
            })
            .collect())
    }
}

/// One row on ciphertexts; the server key is installed on this thread.
fn score_row(model: &LinearModel, row: &[FheUint16]) -> EncryptedScore {
    let terms: Vec<FheInt32> = row
        .iter()
        .zip(&model.weights)
        .filter(|&(_, &w)| w != 0)
        .map(|(x, &w)| {
            let x = FheInt32::cast_from(x.clone());
            if w == 1 { x } else { x * w }
        })
        .collect();
    let mut score = if terms.is_empty() {
        FheInt32::encrypt_trivial(0i32)
    } else {
        terms.iter().sum::<FheInt32>()
    };
    if model.bias != 0 {
        score += model.bias;
    }
    let decision = score.ge(model.threshold);
    EncryptedScore { score, decision }
}
