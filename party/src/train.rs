//! The `train` job at a party node: logistic or linear regression over a join, on
//! [`treaty_mpc::glm`].
//!
//! ```text
//!   aligned rows (PSI) ─► own features standardised on the training rows (locally) ─► glm::share
//!        ─► glm::train on rows 0..n−h ─► metric on the held-out rows n−h..n (AUC or accuracy)
//!        ─► each party stores its share of the weights under the model id; the recipient gets
//!           the metric (and the weights, if the job reveals them), sealed
//! ```
//!
//! Standardisation is local: each feature belongs to one party, which computes its mean and
//! standard deviation over its own training rows and keeps them with its part of the model (to
//! standardise the records it scores later). Nothing about a column leaves its owner.

use std::path::PathBuf;
use std::time::Instant;

use rand_chacha::rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use treaty_job::ProblemKind;
use treaty_job::validate::is_job_id;
use treaty_mpc::glm::{self, GlmInput, GlmKind, GlmLayout, Standardizer, TrainParams};
use treaty_mpc::rep3::Rep3Share;
use treaty_mpc::seeds::SessionContext;
use treaty_mpc::transport::Channel;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::PartyError;
use crate::artefact::Staged;
use crate::config::{Limits, PartyConfig};
use crate::error::io_err;
use crate::join::{JoinPlan, JoinTable};
use crate::refusal::Refusal;

/// Most held-out rows the AUC is computed on (it compares every pair: `m(m−1)/2` comparisons,
/// one block of [`treaty_mpc::rep3::AUC_BLOCK_PAIRS`] at 1448 rows, ≈ 54 bytes per pair);
/// larger holdouts are evaluated on their first `AUC_MAX_ROWS` rows, and the result says how
/// many rows it used.
pub const AUC_MAX_ROWS: usize = 1448;

/// The evaluation of a `train` job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// No evaluation.
    None,
    /// ROC AUC on the held-out rows (ties count ½).
    Auc,
    /// Accuracy of `[σ(x·w) ≥ 0.5]` on the held-out rows.
    Accuracy,
}

impl Metric {
    /// The name in specs and results.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Auc => "auc",
            Self::Accuracy => "accuracy",
        }
    }
}

/// What a `train` job asks, derived from the spec and its [`JoinPlan`] (whose columns are the
/// features, then the label).
#[derive(Debug, Clone)]
pub struct TrainPlan {
    /// Hyperparameters (defaults filled in).
    pub params: TrainParams,
    /// Feature and label owners.
    pub layout: GlmLayout,
    /// The features as `party.column`, in model order.
    pub features: Vec<String>,
    /// Share of the aligned rows held out.
    pub holdout: f64,
    /// The evaluation.
    pub metric: Metric,
    /// Where every party stores its share of the model.
    pub model_id: String,
    /// Whether the recipient gets the weights.
    pub reveal_weights: bool,
    /// Fixed-point fractional bits.
    pub frac_bits: u32,
}

impl TrainPlan {
    /// Checks the job's size once the aligned row count `rows` is agreed, before any row is
    /// shared: at most `[limits] max_job_rows` rows and `max_train_steps` steps (epochs ×
    /// batches of the training rows). Every party computes the same, the helper included.
    ///
    /// # Errors
    /// [`Refusal::OverBudget`]; [`Refusal::NoTrainingRows`] when the hold-out leaves none.
    pub fn check_budget(&self, rows: usize, limits: &Limits) -> Result<usize, PartyError> {
        limits.check_rows(rows)?;
        let (train_rows, _) = self.split(rows);
        if train_rows == 0 {
            return Err(Refusal::NoTrainingRows { aligned: rows }.into());
        }
        let steps = self.params.schedule(train_rows)?.len() as u64;
        if steps > limits.max_train_steps {
            return Err(Refusal::OverBudget {
                what: "training steps",
                key: "max_train_steps",
                needed: steps,
                limit: limits.max_train_steps,
            }
            .into());
        }
        Ok(train_rows)
    }

    /// The plan of `train` over `join` (built with the features then the label as columns).
    pub fn new(
        train: &treaty_proto::v1::TrainJob,
        join: &JoinPlan,
        job_id: &str,
        frac_bits: u32,
    ) -> Result<Self, PartyError> {
        let reject = |field: &str, kind| Err(Refusal::spec(field, kind).into());
        let kind = match train.model.as_str() {
            "" | "logistic" => GlmKind::Logistic,
            "linear" => GlmKind::Linear,
            other => {
                return reject(
                    "train.model",
                    ProblemKind::NotOneOf {
                        value: other.to_string(),
                        allowed: &["logistic", "linear"],
                    },
                );
            }
        };
        let k = train.features.len();
        if join.columns.len() != k + 1 {
            return reject(
                "train.features",
                ProblemKind::WrongCount {
                    got: join.columns.len() as u64,
                    min: k as u64 + 1,
                    max: k as u64 + 1,
                    of: "join columns (the features and the label)",
                },
            );
        }
        let owners: Vec<usize> = join.columns.iter().map(|(i, _)| *i).collect();
        let mut params = TrainParams::new(kind);
        if train.learning_rate != 0.0 {
            params.learning_rate = train.learning_rate;
        }
        if train.epochs != 0 {
            params.epochs = train.epochs;
        }
        if train.batch_size != 0 {
            params.batch_size = train.batch_size as usize;
        }
        params.l2 = train.l2;
        params.fit_intercept = !train.no_intercept;
        params.check()?;
        if !(train.holdout.is_finite() && (0.0..=0.5).contains(&train.holdout)) {
            return reject(
                "train.holdout",
                ProblemKind::BadValue {
                    value: train.holdout.to_string(),
                    expected: "a number in [0, 0.5]",
                },
            );
        }
        let metric = match (train.metric.as_str(), train.holdout > 0.0, kind) {
            ("none", _, _) | ("", false, _) | ("", _, GlmKind::Linear) => Metric::None,
            ("" | "auc", true, GlmKind::Logistic) => Metric::Auc,
            ("accuracy", true, GlmKind::Logistic) => Metric::Accuracy,
            (other, _, _) => {
                return reject(
                    "train.metric",
                    ProblemKind::BadValue {
                        value: format!("{other:?}"),
                        expected: "\"auc\", \"accuracy\" or \"none\" (a metric needs \
                                   logistic regression and held-out rows)",
                    },
                );
            }
        };
        let model_id = if train.model_id.is_empty() {
            job_id.to_string()
        } else {
            train.model_id.clone()
        };
        if !is_job_id(&model_id) {
            return reject(
                "train.model_id",
                ProblemKind::BadValue {
                    value: format!("{model_id:?}"),
                    expected: "an id (`job-` and lowercase letters, digits and dashes)",
                },
            );
        }
        Ok(Self {
            params,
            layout: GlmLayout {
                feature_owners: owners[..k].to_vec(),
                label_owner: Some(owners[k]),
            },
            features: train.features.clone(),
            holdout: train.holdout,
            metric,
            model_id,
            reveal_weights: train.reveal_weights,
            frac_bits,
        })
    }

    /// `(training rows, held-out rows)` of `n` aligned rows: the last `⌊n·holdout⌋` are held out.
    pub fn split(&self, n: usize) -> (usize, usize) {
        let h = ((n as f64) * self.holdout).floor() as usize;
        (n - h.min(n), h.min(n))
    }
}

/// Where models are stored: `<state dir>/models/<model id>.json`.
pub fn model_path(cfg: &PartyConfig, model_id: &str) -> PathBuf {
    cfg.state_dir()
        .join("models")
        .join(format!("{model_id}.json"))
}

/// One party's part of a trained model, as stored (mode 0600): the public description, this
/// party's share of the weights, and the standardisation of the features it owns. Zeroized on
/// drop; `Debug` shows no share.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct StoredModel {
    /// The model id.
    pub model_id: String,
    /// The job that trained it.
    pub job_id: String,
    /// `logistic` or `linear`.
    pub kind: String,
    /// Fixed-point fractional bits of the features.
    pub frac_bits: u32,
    /// Whether the last weight is an intercept.
    pub intercept: bool,
    /// The features as `party.column`, in weight order.
    pub features: Vec<String>,
    /// The parties of the training job, in protocol order.
    pub parties: Vec<String>,
    /// This party's index among them.
    pub index: usize,
    /// This party's share of the weights: its two replicated components.
    pub share_a: Vec<u64>,
    /// See `share_a`.
    pub share_b: Vec<u64>,
    /// `(feature, mean, scale)` for every feature this party owns.
    pub standardizers: Vec<(String, f64, f64)>,
    /// The analyst whose job trained it ("" in models stored before it was recorded): a
    /// policy's `reuse` rule decides who else may score with it.
    #[serde(default)]
    pub analyst: String,
}

impl std::fmt::Debug for StoredModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredModel")
            .field("model_id", &self.model_id)
            .field("kind", &self.kind)
            .field("features", &self.features.len())
            .finish_non_exhaustive()
    }
}

impl StoredModel {
    /// Stages the model for [`model_path`] (mode 0600 on Unix; see [`crate::artefact`]: it
    /// counts once the job commits it after the release barrier); refuses to replace one.
    pub fn stage(&self, cfg: &PartyConfig, staged: &mut Staged) -> Result<PathBuf, PartyError> {
        let path = model_path(cfg, &self.model_id);
        let json =
            zeroize::Zeroizing::new(serde_json::to_vec(self).map_err(|e| PartyError::Io {
                path: path.clone(),
                source: std::io::Error::other(e),
            })?);
        staged.stage(path.clone(), &json)?;
        Ok(path)
    }

    /// Writes the model to [`model_path`] at once (staged and committed); refuses to replace
    /// one.
    pub fn save(&self, cfg: &PartyConfig) -> Result<PathBuf, PartyError> {
        let mut staged = Staged::default();
        let path = self.stage(cfg, &mut staged)?;
        let _kept = staged.commit()?;
        Ok(path)
    }

    /// Reads a stored model.
    pub fn load(cfg: &PartyConfig, model_id: &str) -> Result<Self, PartyError> {
        if !is_job_id(model_id) {
            return Err(Refusal::BadModelId {
                model_id: model_id.to_string(),
            }
            .into());
        }
        Self::read(&model_path(cfg, model_id))
    }

    /// Reads a stored model from `path`.
    pub fn read(path: &std::path::Path) -> Result<Self, PartyError> {
        let bytes = zeroize::Zeroizing::new(std::fs::read(path).map_err(io_err(path))?);
        serde_json::from_slice(&bytes).map_err(|e| {
            PartyError::from(Refusal::CorruptModel {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        })
    }
}

/// What one party ends a `train` job with.
#[derive(Debug)]
pub struct TrainOutcome {
    /// The report sealed to the recipient.
    pub report: treaty_proto::v1::TrainPartyResult,
    /// This party's part of the model, to store.
    pub model: StoredModel,
}

/// Runs the `train` protocol at this party over aligned rows: `table` and `matched` at a data
/// party (its rows in the common order), `None` at a helper. Runs on `transport` (a channel of
/// its own: the protocol's sub-protocols are its children).
#[allow(clippy::too_many_arguments)]
pub async fn run<R: CryptoRng + ?Sized>(
    transport: &Channel,
    party_ids: &[String],
    job_id: &str,
    plan: &TrainPlan,
    aligned: Option<(&JoinTable, &[usize])>,
    limits: &Limits,
    rng: &mut R,
    mut on_step: impl FnMut(usize, usize),
) -> Result<TrainOutcome, PartyError> {
    let me = transport.me();
    // Local input: own features standardised over the training rows; the label if owned.
    let mut standardizers = Vec::new();
    let input = match aligned {
        None => GlmInput::helper(),
        Some((table, matched)) => {
            let (columns, digest) = table.aligned(matched, job_id);
            let n = matched.len();
            let (train_rows, _) = plan.split(n);
            let mine = plan.layout.features_of(me);
            let mut features = Vec::with_capacity(mine.len());
            let mut label = None;
            // The table's columns are this party's job columns in job order: its features (in
            // model order), then the label if it owns it.
            for (k, (name, values)) in columns.into_iter().enumerate() {
                if k < mine.len() {
                    let fit = if train_rows == 0 {
                        Standardizer::identity()
                    } else {
                        Standardizer::fit(&values[..train_rows]).map_err(|e| {
                            PartyError::from(Refusal::Unstandardisable {
                                dataset: table.dataset().to_string(),
                                column: name.to_string(),
                                problem: match e {
                                    treaty_mpc::MpcError::Empty { .. } => "is empty",
                                    _ => "holds a value that is not finite",
                                },
                            })
                        })?
                    };
                    features.push(values.iter().map(|&x| fit.apply(x)).collect());
                    standardizers.push((plan.features[mine[k]].clone(), fit.mean, fit.scale));
                } else {
                    label = Some(values);
                }
            }
            GlmInput::data(n, features, label, digest)?
        }
    }
    .with_max_rows(limits.max_rows());
    let ctx = SessionContext { job_id, party_ids };
    let (mut s, n) = glm::setup(transport, ctx, &plan.layout, &input, rng).await?;
    let train_rows = plan.check_budget(n, limits)?;
    let holdout_rows = n - train_rows;
    let data = glm::share(
        &mut s,
        n,
        &plan.layout,
        &input,
        &plan.features,
        plan.params.kind,
        plan.params.fit_intercept,
        plan.frac_bits,
    )
    .await?;
    drop(input);
    let started = Instant::now();
    let model = glm::train(
        &mut s,
        &data,
        0..train_rows,
        &plan.params,
        plan.frac_bits,
        &mut on_step,
    )
    .await?;
    let train_seconds = started.elapsed().as_secs_f64();
    let steps = plan.params.schedule(train_rows)?.len() as u64;

    // Evaluation on the held-out rows, revealed to nobody but the recipient.
    let mut words: Vec<u64> = Vec::new();
    let mut evaluated = 0;
    if plan.metric != Metric::None && holdout_rows > 0 {
        let rows = match plan.metric {
            Metric::Auc => holdout_rows.min(AUC_MAX_ROWS),
            _ => holdout_rows,
        };
        let test = train_rows..train_rows + rows;
        let logits = glm::predict(&mut s, &model, &data, test.clone()).await?;
        let label = data.label().ok_or(Refusal::spec(
            "train.label",
            ProblemKind::Missing {
                hint: "the label's column",
            },
        ))?;
        let y = Rep3Share::from_parts(label.a()[test.clone()].to_vec(), label.b()[test].to_vec())?;
        // The labels as integers 0/1 (exact: they are multiples of 2^f).
        let y = s.trunc(&y, plan.frac_bits).await?;
        let metric = match plan.metric {
            Metric::Auc => s.auc(&logits, &y, plan.frac_bits).await?,
            _ => s.accuracy(&logits, &y, 0, plan.frac_bits).await?,
        };
        words.extend_from_slice(metric.a());
        evaluated = rows;
    }
    if plan.reveal_weights {
        words.extend_from_slice(model.output_share().values());
    }
    let mut share = Vec::with_capacity(words.len() * 8);
    for w in &words {
        share.extend_from_slice(&w.to_le_bytes());
    }
    words.zeroize();
    let weights = model.weights();
    let stored = StoredModel {
        model_id: plan.model_id.clone(),
        job_id: job_id.to_string(),
        kind: plan.params.kind.name().to_string(),
        frac_bits: plan.frac_bits,
        intercept: plan.params.fit_intercept,
        features: plan.features.clone(),
        parties: party_ids.to_vec(),
        index: me,
        share_a: weights.a().to_vec(),
        share_b: weights.b().to_vec(),
        standardizers,
        analyst: String::new(),
    };
    Ok(TrainOutcome {
        report: treaty_proto::v1::TrainPartyResult {
            model_id: plan.model_id.clone(),
            rows: n as u64,
            train_rows: train_rows as u64,
            holdout_rows: evaluated as u64,
            metric: if evaluated > 0 {
                plan.metric.name().to_string()
            } else {
                String::new()
            },
            share,
            features: plan.features.clone(),
            intercept: plan.params.fit_intercept,
            frac_bits: plan.frac_bits,
            steps,
            train_seconds,
        },
        model: stored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(epochs: u32, batch_size: usize) -> TrainPlan {
        let mut params = TrainParams::new(GlmKind::Logistic);
        params.epochs = epochs;
        params.batch_size = batch_size;
        TrainPlan {
            params,
            layout: GlmLayout {
                feature_owners: vec![0, 1],
                label_owner: Some(0),
            },
            features: vec!["a.x".into(), "b.y".into()],
            holdout: 0.2,
            metric: Metric::Auc,
            model_id: "job-0000000000000001".into(),
            reveal_weights: false,
            frac_bits: 16,
        }
    }

    /// A valid spec of 10,000 epochs of single-row batches over a million aligned rows is 8·10^9
    /// steps: refused at every party (helper included) before any row is shared, naming the
    /// limit; an ordinary job passes.
    #[test]
    fn a_job_over_the_step_or_row_budget_is_refused_before_sharing() {
        let limits = Limits::default();
        assert_eq!(plan(20, 64).check_budget(100_000, &limits).unwrap(), 80_000);
        let refused = |r: Result<usize, PartyError>| match r {
            Err(PartyError::Refused(Refusal::OverBudget {
                key, needed, limit, ..
            })) => (key, needed, limit),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(plan(10_000, 1).check_budget(1_000_000, &limits)),
            ("max_train_steps", 8_000_000_000, limits.max_train_steps)
        );
        assert_eq!(
            refused(plan(1, 1024).check_budget(1 << 30, &limits)),
            ("max_job_rows", 1 << 30, limits.max_job_rows)
        );
        let mut all_held_out = plan(1, 1);
        all_held_out.holdout = 1.0;
        assert!(matches!(
            all_held_out.check_budget(5, &limits),
            Err(PartyError::Refused(Refusal::NoTrainingRows { aligned: 5 }))
        ));
    }
}
