//! The plaintext reference: the same mini-batch gradient descent as [`super::train`] in `f64`,
//! with the same batch schedule, initialisation (zeros) and effective step sizes
//! ([`TrainParams::schedule`]), and the exact logistic function. Tests, demos and benches compare
//! the secure weights with these.

use super::{GlmKind, TrainParams};
use crate::MpcError;

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
