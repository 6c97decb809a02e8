//! What the recipient gets from `train`, `score` and `fhe-score` jobs, decoded from every
//! party's opened report (their shares sum to the revealed words).

use serde::Serialize;
use treaty_mpc::fixed::FixedPoint;
use treaty_mpc::glm::SharedModel;
use treaty_proto::v1 as pb;

use crate::AnalystError;

/// The recipient's view of a `train` job: the metric and, if revealed, the weights, from every
/// party's opened report.
#[derive(Debug, Clone, Serialize)]
pub struct TrainResult {
    /// The model id.
    pub model_id: String,
    /// Aligned rows, training rows, held-out rows evaluated.
    pub rows: u64,
    /// Rows the model was trained on.
    pub train_rows: u64,
    /// Held-out rows the metric was computed on.
    pub holdout_rows: u64,
    /// `auc`, `accuracy`, or empty.
    pub metric: String,
    /// The metric's value.
    pub value: Option<f64>,
    /// The features (weight order).
    pub features: Vec<String>,
    /// The weights (features, then the intercept if any), if revealed.
    pub weights: Option<Vec<f64>>,
    /// Gradient steps.
    pub steps: u64,
    /// The slowest party's training time.
    pub train_seconds: f64,
}

impl TrainResult {
    /// Combines the parties' opened reports (their shares sum to the revealed words).
    pub fn combine(
        reports: &[pb::TrainPartyResult],
        reveal_weights: bool,
    ) -> Result<Self, AnalystError> {
        let bad = |m: &str| AnalystError::Malformed(format!("train result: {m}"));
        let first = reports.first().ok_or_else(|| bad("no party report"))?;
        let len = first.share.len();
        if len % 8 != 0 || reports.iter().any(|r| r.share.len() != len) {
            return Err(bad("the parties' shares differ in length"));
        }
        let mut words = vec![0u64; len / 8];
        for r in reports {
            if r.model_id != first.model_id || r.rows != first.rows || r.metric != first.metric {
                return Err(bad("the parties disagree on the model"));
            }
            for (w, c) in words.iter_mut().zip(r.share.chunks_exact(8)) {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                *w = w.wrapping_add(u64::from_le_bytes(b));
            }
        }
        let fixed = FixedPoint::new(first.frac_bits)?;
        let has_metric = !first.metric.is_empty();
        let value = has_metric.then(|| fixed.decode(words[0]));
        let rest = &words[usize::from(has_metric)..];
        let d = first.features.len() + usize::from(first.intercept);
        let weights = if reveal_weights {
            if rest.len() != d {
                return Err(bad("the weights have the wrong length"));
            }
            Some(SharedModel::decode_weights(rest, first.frac_bits))
        } else {
            None
        };
        Ok(Self {
            model_id: first.model_id.clone(),
            rows: first.rows,
            train_rows: first.train_rows,
            holdout_rows: first.holdout_rows,
            metric: first.metric.clone(),
            value,
            features: first.features.clone(),
            weights,
            steps: first.steps,
            train_seconds: reports.iter().map(|r| r.train_seconds).fold(0.0, f64::max),
        })
    }
}

/// The recipient's view of a `score` job.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreResult {
    /// The model applied.
    pub model_id: String,
    /// Records scored.
    pub rows: u64,
    /// The aligned record ids (from the `ids_from` party), in result order.
    pub ids: Vec<String>,
    /// `σ(x·w)` (logistic) or `x·w` (linear) per record, if asked.
    pub scores: Option<Vec<f64>>,
    /// `[score ≥ threshold]` per record, if asked.
    pub decisions: Option<Vec<bool>>,
    /// The slowest party's seconds from shared inputs to shared results.
    pub score_seconds: f64,
}

impl ScoreResult {
    /// Combines the parties' opened reports (their shares sum to the results).
    pub fn combine(reports: &[pb::ScorePartyResult]) -> Result<Self, AnalystError> {
        let bad = |m: &str| AnalystError::Malformed(format!("score result: {m}"));
        let first = reports.first().ok_or_else(|| bad("no party report"))?;
        let n = first.rows as usize;
        let per = usize::from(first.scores) + usize::from(first.decisions);
        for r in reports {
            if r.model_id != first.model_id
                || r.rows != first.rows
                || (r.scores, r.decisions) != (first.scores, first.decisions)
                || r.share.len() != 8 * n * per
            {
                return Err(bad("the parties' reports disagree"));
            }
        }
        let mut words = vec![0u64; n * per];
        for r in reports {
            for (w, c) in words.iter_mut().zip(r.share.chunks_exact(8)) {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                *w = w.wrapping_add(u64::from_le_bytes(b));
            }
        }
        let ids = reports
            .iter()
            .find(|r| !r.ids.is_empty())
            .map(|r| r.ids.clone())
            .unwrap_or_default();
        if !ids.is_empty() && ids.len() != n {
            return Err(bad("the ids do not match the records"));
        }
        let fixed = FixedPoint::new(first.frac_bits)?;
        let (score_words, decision_words) = words.split_at(if first.scores { n } else { 0 });
        let decisions = if first.decisions {
            let d = decision_words
                .iter()
                .map(|&w| match w {
                    0 => Ok(false),
                    1 => Ok(true),
                    _ => Err(bad("a decision is neither 0 nor 1")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(d)
        } else {
            None
        };
        Ok(Self {
            model_id: first.model_id.clone(),
            rows: first.rows,
            ids,
            scores: first
                .scores
                .then(|| score_words.iter().map(|&w| fixed.decode(w)).collect()),
            decisions,
            score_seconds: reports.iter().map(|r| r.score_seconds).fold(0.0, f64::max),
        })
    }
}

/// The recipient's view of an `fhe-score` job.
#[derive(Debug, Clone, Serialize)]
pub struct FheScoreResult {
    /// The evaluator's model and its kind.
    pub model_id: String,
    /// `"linear"`, `"scorecard"` or `"tree"`.
    pub model_kind: String,
    /// `"scores"`, `"decisions"` or `"aggregate"`.
    pub release: String,
    /// Rows scored.
    pub rows: u64,
    /// The owner's record ids (with `id_column`), in row order.
    pub ids: Vec<String>,
    /// Per row (release "scores").
    pub scores: Option<Vec<i64>>,
    /// Per row (release "scores" or "decisions").
    pub decisions: Option<Vec<bool>>,
    /// Release "aggregate": the sum of the scores and the number of positive decisions, opened
    /// from both parties' shares.
    pub aggregate: Option<FheAggregate>,
    /// Evaluator: seconds on ciphertexts and bootstraps per claim.
    pub evaluate_seconds: f64,
    /// Programmable bootstraps per claim at the evaluator (tfhe's counter).
    pub bootstraps_per_claim: f64,
    /// Owner: seconds encrypting, bytes of ciphertext uploaded.
    pub encrypt_seconds: f64,
    /// Bytes of encrypted rows the owner uploaded.
    pub ciphertext_bytes: u64,
    /// The owner's compressed server key: size, and whether this job sent it.
    pub server_key_bytes: u64,
    /// False when the evaluator had the key cached.
    pub server_key_sent: bool,
    /// Hex SHA-256 of the serialized compressed server key.
    pub key_id: String,
}

/// An `fhe-score` aggregate: what the chained shares open to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FheAggregate {
    /// Rows.
    pub count: u64,
    /// `Σ score`.
    pub sum: i64,
    /// `Σ score / count` (NaN for no rows).
    pub mean: f64,
    /// Rows with `score ≥ threshold`.
    pub positives: u64,
}

impl FheScoreResult {
    /// Combines the owner's and the evaluator's opened reports.
    ///
    /// # Errors
    /// [`AnalystError::Malformed`] if the reports are missing or disagree.
    pub fn combine(reports: &[pb::FheScorePartyResult]) -> Result<Self, AnalystError> {
        let bad = |m: &str| AnalystError::Malformed(format!("fhe-score result: {m}"));
        let evaluator = reports
            .iter()
            .find(|r| !r.model_kind.is_empty())
            .ok_or_else(|| bad("no evaluator report"))?;
        let owner = reports
            .iter()
            .find(|r| !r.key_id.is_empty())
            .ok_or_else(|| bad("no owner report"))?;
        if reports.len() != 2
            || owner.rows != evaluator.rows
            || owner.release != evaluator.release
            || owner.model_id != evaluator.model_id
        {
            return Err(bad("the parties' reports disagree"));
        }
        let n = evaluator.rows as usize;
        let release = evaluator.release.as_str();
        if !matches!(release, "scores" | "decisions" | "aggregate") {
            return Err(bad("unknown release"));
        }
        let decisions = (release != "aggregate")
            .then(|| {
                (evaluator.decisions.len() == n)
                    .then(|| evaluator.decisions.iter().map(|&d| d == 1).collect())
                    .ok_or_else(|| bad("decisions missing"))
            })
            .transpose()?;
        let scores = (release == "scores")
            .then(|| {
                (evaluator.scores.len() == n)
                    .then(|| evaluator.scores.clone())
                    .ok_or_else(|| bad("scores missing"))
            })
            .transpose()?;
        let aggregate = (release == "aggregate")
            .then(|| {
                let (o, e) = (&owner.aggregate_share, &evaluator.aggregate_share);
                if o.len() != 2 || e.len() != 2 {
                    return Err(bad("aggregate shares missing"));
                }
                let sum = o[0].wrapping_add(e[0]) as i64;
                Ok(FheAggregate {
                    count: n as u64,
                    sum,
                    mean: if n == 0 {
                        f64::NAN
                    } else {
                        sum as f64 / n as f64
                    },
                    positives: o[1].wrapping_add(e[1]),
                })
            })
            .transpose()?;
        if !owner.ids.is_empty() && owner.ids.len() != n {
            return Err(bad("the owner's ids do not match the rows"));
        }
        Ok(Self {
            model_id: evaluator.model_id.clone(),
            model_kind: evaluator.model_kind.clone(),
            release: evaluator.release.clone(),
            rows: evaluator.rows,
            ids: owner.ids.clone(),
            scores,
            decisions,
            aggregate,
            evaluate_seconds: evaluator.evaluate_seconds,
            bootstraps_per_claim: evaluator.bootstraps_per_claim,
            encrypt_seconds: owner.encrypt_seconds,
            ciphertext_bytes: owner.ciphertext_bytes,
            server_key_bytes: owner.server_key_bytes,
            server_key_sent: owner.server_key_sent,
            key_id: owner.key_id.clone(),
        })
    }
}
