//! The models on ciphertexts.
//!
//! The owner encrypts each value bit by bit, as many `FheBool`s as its feature declares
//! ([`EncryptedRows`]). Every model is then one boolean–clear dot product: the evaluator builds
//! encrypted booleans `b_j` and computes `Σ c_j·b_j` with clear coefficients `c_j > 0`
//! (`FheUint16`/`FheUint32::dot_product`: tfhe packs two booleans per block and produces several
//! output blocks per programmable bootstrap), and the score is `K + Σ c_j·b_j` with `K` clear
//! ([`FheModel`]'s affine form). Per row it computes that sum and the decision
//! `Σ c_j·b_j ≥ threshold − K` ([`Evaluator::evaluate`]), in parallel over rows with rayon (tfhe
//! parallelises inside each operation too).
//!
//! ## The booleans, and what each costs in programmable bootstraps (PBS)
//! - **linear**: the feature bits themselves, `c = |w|·2^i` (a negative weight takes the negated
//!   bit): no PBS before the dot product.
//! - **scorecard**: one test `x ≥ e` per bin edge with a non-zero points step, on the bits:
//!   from the lowest set bit of `e` upwards, `r ← x_i ∧ r` where `e_i = 1` and `r ← x_i ∨ r`
//!   where `e_i = 0` (one PBS per bit above the lowest set bit of `e`; bits below are free).
//! - **tree**: the same test per split; a node's reach indicator is its parent's AND its branch
//!   (one PBS per node below depth 1; a NOT is free); one boolean per leaf.
//! - **decision**: one scalar comparison of the sum (about one PBS per block plus a reduction).
//!
//! The sum's width follows the model: 16 bits (8 blocks) when `Σ c_j < 2^16`, else 32.
//! `treaty bench fhe` reports the measured PBS per claim.

use rayon::prelude::*;
use tfhe::prelude::*;
use tfhe::{CompressedServerKey, FheBool, FheUint16, FheUint32, ServerKey, set_server_key};

use crate::FheError;
use crate::keys::FheClientKey;
use crate::model::{Feature, FheModel, FlatTree, ModelSpec, check_rows};

/// A batch of rows encrypted under the owner's client key: per row, every feature's bits
/// (least significant first), features in order.
pub struct EncryptedRows {
    pub(crate) features: Vec<Feature>,
    pub(crate) rows: Vec<Vec<FheBool>>,
}

/// The bits of one row, least significant first per feature, features in order.
pub(crate) fn row_bits(features: &[Feature], values: &[u16]) -> impl Iterator<Item = bool> {
    features
        .iter()
        .zip(values)
        .flat_map(|(f, &v)| (0..f.bits()).map(move |i| (v >> i) & 1 == 1))
        .collect::<Vec<_>>()
        .into_iter()
}

impl EncryptedRows {
    /// Checks every value against its column's declared width, then encrypts the batch
    /// (uncompressed, in memory: for the direct benchmark and tests; the wire format is
    /// [`crate::wire::encrypt_rows`]).
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
            .map(|values| {
                row_bits(features, values)
                    .map(|b| FheBool::encrypt(b, ck))
                    .collect()
            })
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

    /// Row `i`'s encrypted bits (least significant first per feature, features in order).
    #[must_use]
    pub fn row(&self, i: usize) -> Option<&[FheBool]> {
        self.rows.get(i).map(Vec::as_slice)
    }
}

/// The encrypted part of a score, `Σ c_j·b_j`, on the model's width.
pub enum EncryptedSum {
    /// `Σ c_j < 2^16`.
    U16(FheUint16),
    /// `Σ c_j < 2^32`.
    U32(FheUint32),
}

/// One row's encrypted result: `score = offset + sum`.
pub struct EncryptedScore {
    /// `Σ c_j·b_j`.
    pub sum: EncryptedSum,
    /// `K`, in the clear (the evaluator's; never sent).
    pub offset: i64,
    /// `score ≥ threshold`.
    pub decision: FheBool,
}

impl EncryptedScore {
    /// Decrypts `(score, decision)` with the owner's client key (tests and the direct
    /// benchmark; in a job the owner only ever decrypts masked values).
    #[must_use]
    pub fn decrypt(&self, key: &FheClientKey) -> (i32, bool) {
        let ck = key.reveal();
        let sum: u64 = match &self.sum {
            EncryptedSum::U16(v) => u64::from(FheDecrypt::<u16>::decrypt(v, ck)),
            EncryptedSum::U32(v) => u64::from(FheDecrypt::<u32>::decrypt(v, ck)),
        };
        // The model was validated: offset + sum fits an i32.
        let score = (self.offset + sum as i64) as i32;
        (score, self.decision.decrypt(ck))
    }
}

/// The evaluating party: an owner's decompressed server key, and the models on ciphertexts.
///
/// tfhe's server key is thread-local, and tfhe parallelises inside each operation on rayon.
/// Each evaluator therefore owns a rayon pool whose start handler installs its key on every
/// worker thread, and runs all its work inside that pool ([`Evaluator::install`]): two
/// evaluators with different keys in one process (two jobs, or an owner and an evaluator in
/// one test) never see each other's key.
pub struct Evaluator {
    server_key: ServerKey,
    pool: rayon::ThreadPool,
}

impl Evaluator {
    /// An evaluator with an owner's server key (decompressed: ≈ 170 MiB in memory) and its own
    /// pool of one worker per core.
    ///
    /// # Errors
    /// [`FheError::ThreadPool`] if the worker threads cannot be started.
    pub fn new(server_key: ServerKey) -> Result<Self, FheError> {
        let key = server_key.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("treaty-fhe-{i}"))
            .start_handler(move |_| set_server_key(key.clone()))
            .build()
            .map_err(|e| FheError::ThreadPool(e.to_string()))?;
        Ok(Self { server_key, pool })
    }

    /// An evaluator with a compressed server key received from an owner (as
    /// [`crate::import_server_key`] read it): decompressed here, where a key whose seeds tfhe
    /// cannot expand is refused rather than crashing the evaluator.
    ///
    /// # Errors
    /// [`FheError::KeyRejected`] for a key that does not decompress, [`FheError::ThreadPool`].
    pub fn from_compressed(key: CompressedServerKey) -> Result<Self, FheError> {
        let server_key = crate::error::untrusted(|| key.decompress())
            .map_err(|reason| FheError::KeyRejected { len: 0, reason })?;
        Self::new(server_key)
    }

    /// The server key.
    #[must_use]
    pub fn server_key(&self) -> &ServerKey {
        &self.server_key
    }

    /// Runs `f` on this evaluator's pool, where every thread has its server key installed.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    /// Evaluates `model` on every row, in parallel over rows.
    ///
    /// # Errors
    /// [`FheError::SchemaMismatch`] if the rows were encrypted for other features than the
    /// model's.
    pub fn evaluate(
        &self,
        model: &FheModel,
        rows: &EncryptedRows,
    ) -> Result<Vec<EncryptedScore>, FheError> {
        if rows.features != model.features {
            return Err(FheError::SchemaMismatch);
        }
        Ok(self.install(|| {
            rows.rows
                .par_iter()
                .map(|row| evaluate_row(model, row))
                .collect()
        }))
    }
}

/// Splits a row's bits by feature.
fn feature_bits<'a>(model: &FheModel, row: &'a [FheBool]) -> Vec<&'a [FheBool]> {
    let mut at = 0;
    model
        .features
        .iter()
        .map(|f| {
            let bits = &row[at..at + f.bits() as usize];
            at += f.bits() as usize;
            bits
        })
        .collect()
}

/// `x ≥ e` for `1 ≤ e < 2^bits`, on `x`'s bits (least significant first).
fn ge_const(bits: &[FheBool], e: u16) -> FheBool {
    let low = e.trailing_zeros() as usize;
    // Bit `low` of `e` is set: `r = x_low ∧ true`.
    let mut r = bits[low].clone();
    for (i, bit) in bits.iter().enumerate().skip(low + 1) {
        r = if (e >> i) & 1 == 1 {
            bit & &r
        } else {
            bit | &r
        };
    }
    r
}

/// One row on ciphertexts; the server key is installed on this thread.
pub(crate) fn evaluate_row(model: &FheModel, row: &[FheBool]) -> EncryptedScore {
    let sum = row_sum(model, row);
    let decision = decide(model, &sum);
    EncryptedScore {
        sum,
        offset: model.offset,
        decision,
    }
}

/// `score ≥ threshold`, i.e. `Σ c_j·b_j ≥ threshold − K`, on the encrypted sum.
pub(crate) fn decide(model: &FheModel, sum: &EncryptedSum) -> FheBool {
    let threshold = i64::from(model.threshold()) - model.offset;
    let range = i64::try_from(model.range).unwrap_or(i64::MAX);
    // `FheModel::new` refused thresholds outside 1..=range: `0 < t ≤ range < 2^W`.
    let t = threshold.clamp(1, range);
    match sum {
        EncryptedSum::U16(s) => s.ge(t as u16),
        EncryptedSum::U32(s) => s.ge(t as u32),
    }
}

/// `Σ c_j·b_j` for one row.
pub(crate) fn row_sum(model: &FheModel, row: &[FheBool]) -> EncryptedSum {
    let x = feature_bits(model, row);
    // (boolean, signed coefficient) in the order of `FheModel::affine`.
    let terms: Vec<(FheBool, i64)> = match &model.spec {
        ModelSpec::Linear { weights, .. } => weights
            .iter()
            .zip(&x)
            .flat_map(|(&w, bits)| {
                bits.iter()
                    .enumerate()
                    .map(move |(i, b)| (b.clone(), i64::from(w) << i))
            })
            .filter(|(_, c)| *c != 0)
            .collect(),
        ModelSpec::Scorecard { bins, .. } => {
            let tests: Vec<(usize, u16, i64)> = bins
                .iter()
                .enumerate()
                .flat_map(|(f, b)| {
                    b.edges.iter().enumerate().map(move |(j, &e)| {
                        (f, e, i64::from(b.points[j + 1]) - i64::from(b.points[j]))
                    })
                })
                .filter(|&(_, _, step)| step != 0)
                .collect();
            tests
                .par_iter()
                .map(|&(f, e, step)| (ge_const(x[f], e), step))
                .collect()
        }
        ModelSpec::Tree { .. } => model
            .trees
            .iter()
            .flat_map(|tree| tree_leaves(tree, &x))
            .collect(),
    };
    let (bools, coefficients): (Vec<FheBool>, Vec<u32>) = terms
        .into_par_iter()
        .map(|(b, c)| {
            // The model was validated: Σ |c| < 2^32.
            let magnitude = c.unsigned_abs() as u32;
            if c < 0 {
                (!b, magnitude)
            } else {
                (b, magnitude)
            }
        })
        .unzip();
    if model.score_bits() == 16 {
        EncryptedSum::U16(if bools.is_empty() {
            FheUint16::encrypt_trivial(0u16)
        } else {
            let c16: Vec<u16> = coefficients.iter().map(|&c| c as u16).collect();
            FheUint16::dot_product(&bools, &c16)
        })
    } else {
        EncryptedSum::U32(if bools.is_empty() {
            FheUint32::encrypt_trivial(0u32)
        } else {
            FheUint32::dot_product(&bools, &coefficients)
        })
    }
}

/// Per leaf of `tree` that is reached conditionally: its reach indicator and value, in leaf
/// order (a tree that is one leaf is part of the model's offset).
fn tree_leaves(tree: &FlatTree, x: &[&[FheBool]]) -> Vec<(FheBool, i64)> {
    let splits: Vec<FheBool> = tree
        .splits
        .par_iter()
        .map(|&(f, threshold)| ge_const(x[f], threshold))
        .collect();
    // Reach indicator of every path prefix, computed once per prefix, level by level.
    let mut reach: std::collections::HashMap<Vec<(usize, bool)>, FheBool> =
        std::collections::HashMap::new();
    let mut prefixes: Vec<Vec<(usize, bool)>> = tree
        .leaves
        .iter()
        .flat_map(|(_, path)| (1..=path.len()).map(|k| path[..k].to_vec()))
        .collect();
    prefixes.sort();
    prefixes.dedup();
    let depth = prefixes.iter().map(Vec::len).max().unwrap_or(0);
    for len in 1..=depth {
        let level: Vec<&Vec<(usize, bool)>> = prefixes.iter().filter(|p| p.len() == len).collect();
        let computed: Vec<FheBool> = level
            .par_iter()
            .map(|p| {
                let (split, right) = p[len - 1];
                let test = if right {
                    splits[split].clone()
                } else {
                    !&splits[split]
                };
                match reach.get(&p[..len - 1]) {
                    Some(parent) => parent & &test,
                    None => test,
                }
            })
            .collect();
        for (p, r) in level.into_iter().zip(computed) {
            reach.insert(p.clone(), r);
        }
    }
    tree.leaves
        .iter()
        .filter(|(value, path)| !path.is_empty() && *value != 0)
        .map(|(value, path)| (reach[path].clone(), i64::from(*value)))
        .collect()
}
