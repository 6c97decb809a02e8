//! The plaintext reference: the same mini-batch gradient descent as [`super::train`] in `f64`,
//! with the same batch schedule, initialisation (zeros) and effective step sizes
//! ([`TrainParams::schedule`]), and the exact logistic function. Tests, demos and benches compare
//! the secure weights with these.
//!
//! Also a synthetic table with a known logistic model ([`synthetic_table`]), the same on every
//! machine and in every process that asks for it, column by column if need be
//! ([`synthetic_column`]).

use rand::RngExt;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::{GlmKind, TrainParams};
use crate::MpcError;

/// `(shift, scale)` of synthetic feature `c` is `SYNTHETIC_UNITS[c % 3]`: different units per
/// column, which the parties' standardisation has to handle.
pub const SYNTHETIC_UNITS: [(f64, f64); 3] = [(0.0, 1.0), (50.0, 12.0), (1000.0, 400.0)];

/// A synthetic table: raw feature columns (`columns[c][j]`) and 0/1 labels.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticTable {
    /// The feature columns, on their [`SYNTHETIC_UNITS`].
    pub columns: Vec<Vec<f64>>,
    /// Labels drawn from the model of [`synthetic_model`].
    pub label: Vec<f64>,
}

/// ChaCha20 seeded with `seed` on stream `stream` (the model, each column and the labels draw
/// from their own streams, so a column can be generated alone).
fn synthetic_rng(seed: u64, stream: u64) -> ChaCha20Rng {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// The known model of [`synthetic_table`]: a coefficient in `[−1.5, 1.5)` per feature (on the
/// feature's `(x − shift)/scale`, see [`SYNTHETIC_UNITS`]), then the intercept `bias`.
pub fn synthetic_model(features: usize, bias: f64, seed: u64) -> Vec<f64> {
    let mut rng = synthetic_rng(seed, 0);
    let mut beta: Vec<f64> = (0..features).map(|_| rng.random_range(-1.5..1.5)).collect();
    beta.push(bias);
    beta
}

/// Feature column `c` of [`synthetic_table`] (the first `rows` values of the column's own
/// stream): `shift + scale·t`, `t` triangular on `[−2.4, 2.4]` (a sum of two uniforms), with
/// `(shift, scale)` from [`SYNTHETIC_UNITS`].
pub fn synthetic_column(rows: usize, c: usize, seed: u64) -> Vec<f64> {
    let mut rng = synthetic_rng(seed, 1 + c as u64);
    let (shift, scale) = SYNTHETIC_UNITS[c % 3];
    (0..rows)
        .map(|_| shift + scale * (rng.random::<f64>() + rng.random::<f64>() - 1.0) * 2.4)
        .collect()
}

/// `rows` records of `features` columns ([`synthetic_column`]) and labels drawn from the
/// logistic model [`synthetic_model`] (`bias` negative for rare positives). Deterministic in
/// `seed` (ChaCha20).
pub fn synthetic_table(rows: usize, features: usize, bias: f64, seed: u64) -> SyntheticTable {
    let beta = synthetic_model(features, bias, seed);
    let columns: Vec<Vec<f64>> = (0..features)
        .map(|c| synthetic_column(rows, c, seed))
        .collect();
    let mut rng = synthetic_rng(seed, 1 + features as u64);
    let label = (0..rows)
        .map(|j| {
            let z = (0..features).fold(bias, |z, c| {
                let (shift, scale) = SYNTHETIC_UNITS[c % 3];
                z + beta[c] * (columns[c][j] - shift) / scale
            });
            f64::from(u8::from(rng.random::<f64>() < sigmoid(z)))
        })
        .collect();
    SyntheticTable { columns, label }
}

/// `σ(x) = 1 / (1 + e^−x)`, computed without overflow for large `|x|`.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Trains on the rows `rows` of the standardised feature columns `columns` (`columns[c][j]`) and
/// the labels `label`; returns the weights in [`super::SharedModel`]'s order: one per column,
/// then the intercept (if `params.fit_intercept`).
pub fn train(
    columns: &[Vec<f64>],
    label: &[f64],
    rows: std::ops::Range<usize>,
    params: &TrainParams,
) -> Result<Vec<f64>, MpcError> {
    params.check()?;
    let n = label.len();
    if rows.end > n || columns.iter().any(|c| c.len() != n) {
        return Err(MpcError::LengthMismatch {
            what: "plaintext training rows",
            expected: n,
            got: rows.end,
        });
    }
    let k = columns.len();
    let d = k + usize::from(params.fit_intercept);
    let mut w = vec![0.0; d];
    let row = |j: usize, out: &mut Vec<f64>| {
        out.clear();
        out.extend(columns.iter().map(|c| c[j]));
        if params.fit_intercept {
            out.push(1.0);
        }
    };
    let mut x = Vec::with_capacity(d);
    let mut grad = vec![0.0; d];
    for step in params.schedule(rows.end - rows.start)? {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let batch = step.rows.start + rows.start..step.rows.end + rows.start;
        for (j, y) in batch.clone().zip(&label[batch]) {
            row(j, &mut x);
            let z: f64 = x.iter().zip(&w).map(|(a, b)| a * b).sum();
            let p = match params.kind {
                GlmKind::Logistic => sigmoid(z),
                GlmKind::Linear => z,
            };
            let e = p - y;
            for (g, xi) in grad.iter_mut().zip(&x) {
                *g += e * xi;
            }
        }
        for (i, (wi, g)) in w.iter_mut().zip(&grad).enumerate() {
            let decay = if params.fit_intercept && i == k {
                0.0
            } else {
                step.decay
            };
            *wi -= step.rate * g + decay * *wi;
        }
    }
    Ok(w)
}

/// The logits `x·w` of rows `rows` (weights as [`train`] returns them).
pub fn logits(
    columns: &[Vec<f64>],
    weights: &[f64],
    rows: std::ops::Range<usize>,
    fit_intercept: bool,
) -> Vec<f64> {
    rows.map(|j| {
        let dot: f64 = columns.iter().zip(weights).map(|(c, w)| c[j] * w).sum();
        if fit_intercept {
            dot + weights[columns.len()]
        } else {
            dot
        }
    })
    .collect()
}

/// ROC AUC of `scores` against 0/1 `labels` (Mann–Whitney, ties count ½, as scikit-learn's
/// `roc_auc_score`); `None` if only one class is present.
pub fn auc(scores: &[f64], labels: &[f64]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over ties, then the rank-sum statistic of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += order[i..=j].iter().filter(|&&r| labels[r] == 1.0).count() as f64 * rank;
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&y| y == 1.0).count() as f64;
    let neg = labels.len() as f64 - pos;
    (pos > 0.0 && neg > 0.0).then(|| (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Fraction of rows whose prediction `[score ≥ threshold]` equals the 0/1 label.
pub fn accuracy(scores: &[f64], labels: &[f64], threshold: f64) -> f64 {
    let right = scores
        .iter()
        .zip(labels)
        .filter(|(s, y)| (**s >= threshold) == (**y == 1.0))
        .count();
    right as f64 / scores.len().max(1) as f64
}
