//! The `score` job at a party node: a model stored by an earlier `train` job applied to the
//! records of a join, on shares.
//!
//! ```text
//!   aligned records (PSI) ─► own features standardised as in training (stored with the model)
//!        ─► glm::share ─► z = X·w (in chunks of SCORE_CHUNK rows) ─► σ(z) and/or [z ≥ logit(t)]
//!        ─► each party seals its additive share of the results (and the `ids_from` party the
//!           aligned ids) to the recipient
//! ```
//!
//! With a stored model, every party of the job must be the training job's party of the same
//! index: each holds the weight share of its index. With a model one party holds in the clear
//! ([`ClearModel`], `weights_party`), that party shares the weights as its input and first sends
//! each feature owner the standardisation of its features (one round). Scores use the engine's fast sigmoid ([`Rep3Session::sigmoid`],
//! error ≤ 10⁻³); decisions compare the logit with the threshold's logit exactly (no sigmoid
//! error), so a decision is the clear model's decision on the same fixed-point inputs.

use std::time::Instant;

use rand_chacha::rand_core::CryptoRng;
use treaty_mpc::fixed::FixedPoint;
use treaty_mpc::glm::{self, GlmInput, GlmKind, GlmLayout, SharedModel};
use treaty_mpc::rep3::{Rep3Session, Rep3Share};
use treaty_mpc::seeds::SessionContext;
use treaty_mpc::transport::Channel;
use treaty_proto::v1 as pb;
use zeroize::Zeroize;

use crate::PartyError;
use crate::join::{JoinPlan, JoinTable};
use crate::refusal::Refusal;
use crate::train::StoredModel;
use treaty_job::ProblemKind;

/// Records per chunk of the secure computation (bounds memory; larger chunks are not faster).
pub const SCORE_CHUNK: usize = 1 << 17;

/// A model held in the clear by one party (`<state dir>/models/<model id>.clear.json`): weights
/// on standardised features (the intercept last, if any) and each feature's standardisation.
/// Zeroized on drop; `Debug` shows no weight.
#[derive(Clone, serde::Serialize, serde::Deserialize, Zeroize, zeroize::ZeroizeOnDrop)]
pub struct ClearModel {
    /// `logistic` or `linear`.
    pub kind: String,
    /// Whether the last weight is an intercept.
    pub intercept: bool,
    /// The features as `party.column`, in weight order.
    pub features: Vec<String>,
    /// The weights.
    pub weights: Vec<f64>,
    /// `(mean, scale)` per feature: the model applies to `(x − mean) / scale`.
    pub standardizers: Vec<(f64, f64)>,
}

impl std::fmt::Debug for ClearModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClearModel")
            .field("kind", &self.kind)
            .field("features", &self.features.len())
            .finish_non_exhaustive()
    }
}

impl ClearModel {
    /// Reads `<state dir>/models/<model_id>.clear.json` and checks its shape.
    pub fn load(cfg: &crate::PartyConfig, model_id: &str) -> Result<Self, PartyError> {
        if !treaty_job::validate::is_job_id(model_id) {
            return Err(Refusal::BadModelId {
                model_id: model_id.to_string(),
            }
            .into());
        }
        let path = clear_model_path(cfg, model_id);
        let bytes =
            zeroize::Zeroizing::new(std::fs::read(&path).map_err(crate::error::io_err(&path))?);
        let m: Self = serde_json::from_slice(&bytes).map_err(|e| {
            PartyError::from(Refusal::CorruptModel {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        })?;
        let k = m.features.len();
        let finite = m.weights.iter().all(|w| w.is_finite())
            && m.standardizers
                .iter()
                .all(|(a, b)| a.is_finite() && b.is_finite() && *b > 0.0);
        if m.weights.len() != k + usize::from(m.intercept) || m.standardizers.len() != k || !finite
        {
            return Err(Refusal::CorruptModel {
                path: path.to_path_buf(),
                reason: "it needs one finite weight per feature (and the intercept) and a \
                         positive scale per feature"
                    .into(),
            }
            .into());
        }
        Ok(m)
    }
}

/// Where a clear model is stored: `<state dir>/models/<model id>.clear.json`.
pub fn clear_model_path(cfg: &crate::PartyConfig, model_id: &str) -> std::path::PathBuf {
    cfg.state_dir()
        .join("models")
        .join(format!("{model_id}.clear.json"))
}

/// Where a `score` job's model comes from, at this party.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// This party's share of a model stored by a `train` job.
    Shared(StoredModel),
    /// A model one party (`weights_party`) holds in the clear; `Some` at that party.
    Clear {
        /// The party holding the weights.
        weights_party: usize,
        /// The model, at that party only.
        model: Option<ClearModel>,
    },
}

/// What a `score` job asks of this party.
#[derive(Debug, Clone)]
pub struct ScorePlan {
    /// The model id.
    pub model_id: String,
    /// Where the weights come from.
    pub source: ModelSource,
    /// The model's features as `party.column`.
    pub features: Vec<String>,
    /// Whether the model has an intercept.
    pub intercept: bool,
    /// Fixed-point fractional bits.
    pub frac_bits: u32,
    /// The model's kind.
    pub kind: GlmKind,
    /// Feature owners (no label).
    pub layout: GlmLayout,
    /// Whether the recipient gets scores.
    pub scores: bool,
    /// Whether the recipient gets decisions.
    pub decisions: bool,
    /// The decision threshold on the score.
    pub threshold: f64,
    /// The party index whose aligned ids go to the recipient.
    pub ids_from: usize,
}

impl ScorePlan {
    /// The plan of `score` for this party (`me` among `peers`) with the model from `source`
    /// and the job's `join` over the model's features ([`JoinPlan::new`] with them).
    pub fn new(
        score: &pb::ScoreJob,
        join: &JoinPlan,
        source: ModelSource,
        me: usize,
        peers: &[String],
        frac_bits: u32,
    ) -> Result<Self, PartyError> {
        let reject = |field: &str, kind| Err(Refusal::spec(field, kind).into());
        let (kind, features, intercept, frac_bits, width) = match &source {
            ModelSource::Shared(model) => {
                if model.parties != peers || model.index != me {
                    return reject(
                        "inputs",
                        ProblemKind::WrongParties {
                            expected: model.parties.clone(),
                        },
                    );
                }
                (
                    model.kind.clone(),
                    model.features.clone(),
                    model.intercept,
                    model.frac_bits,
                    model.share_a.len(),
                )
            }
            ModelSource::Clear { model, .. } => {
                let kind = match score.model.as_str() {
                    "" => "logistic",
                    k => k,
                };
                let intercept = !score.no_intercept;
                if let Some(m) = model
                    && (m.features != score.features || m.kind != kind || m.intercept != intercept)
                {
                    return reject(
                        "score.model_id",
                        ProblemKind::Invalid {
                            reason: "the clear model's features, kind or intercept are not the \
                                     job's"
                                .into(),
                        },
                    );
                }
                let width = score.features.len() + usize::from(intercept);
                (
                    kind.to_string(),
                    score.features.clone(),
                    intercept,
                    frac_bits,
                    width,
                )
            }
        };
        let kind = match kind.as_str() {
            "logistic" => GlmKind::Logistic,
            "linear" => GlmKind::Linear,
            other => {
                return reject(
                    "score.model_id",
                    ProblemKind::NotOneOf {
                        value: other.to_string(),
                        allowed: &["logistic", "linear"],
                    },
                );
            }
        };
        let (scores, decisions) = match score.output.as_str() {
            "" | "score" => (true, false),
            "decision" => (false, true),
            "both" => (true, true),
            other => {
                return reject(
                    "score.output",
                    ProblemKind::NotOneOf {
                        value: other.to_string(),
                        allowed: &["score", "decision", "both"],
                    },
                );
            }
        };
        let threshold = score.threshold.unwrap_or(match kind {
            GlmKind::Logistic => 0.5,
            GlmKind::Linear => 0.0,
        });
        if !threshold.is_finite()
            || (kind == GlmKind::Logistic && !(threshold > 0.0 && threshold < 1.0))
        {
            return reject(
                "score.threshold",
                ProblemKind::BadValue {
                    value: threshold.to_string(),
                    expected: "a number in (0, 1) for logistic regression",
                },
            );
        }
        let ids_from = if score.ids_from.is_empty() {
            join.data_parties().first().copied().unwrap_or(0)
        } else {
            peers
                .iter()
                .position(|p| *p == score.ids_from)
                .filter(|i| join.data_parties().contains(i))
                .ok_or_else(|| {
                    Refusal::spec(
                        "score.ids_from",
                        ProblemKind::NotADataParty {
                            name: score.ids_from.clone(),
                            party: score.ids_from.clone(),
                        },
                    )
                })?
        };
        let owners: Vec<usize> = join.columns.iter().map(|(i, _)| *i).collect();
        if owners.len() != features.len() || width != features.len() + usize::from(intercept) {
            return reject(
                "score.features",
                ProblemKind::WrongCount {
                    got: owners.len() as u64,
                    min: features.len() as u64,
                    max: features.len() as u64,
                    of: "join columns (one per feature of the model)",
                },
            );
        }
        Ok(Self {
            model_id: score.model_id.clone(),
            source,
            features,
            intercept,
            frac_bits,
            kind,
            layout: GlmLayout {
                feature_owners: owners,
                label_owner: None,
            },
            scores,
            decisions,
            threshold,
            ids_from,
        })
    }
}

/// Runs the `score` protocol at this party over aligned records: `table` and `matched` at a
/// data party, `None` at a helper, on `transport` (a channel of its own). Returns the report to
/// seal.
pub async fn run<R: CryptoRng + ?Sized>(
    transport: &Channel,
    party_ids: &[String],
    job_id: &str,
    plan: &ScorePlan,
    aligned: Option<(&JoinTable, &[usize])>,
    limits: &crate::config::Limits,
    rng: &mut R,
) -> Result<pb::ScorePartyResult, PartyError> {
    let me = transport.me();
    // 1. The standardisation of this party's features: stored with its model share, or sent by
    //    the party holding a clear model (one round, before anything is shared).
    let standardizers: Vec<(f64, f64)> = match &plan.source {
        ModelSource::Shared(model) => plan
            .layout
            .features_of(me)
            .iter()
            .map(|&c| {
                let feature = &plan.features[c];
                model
                    .standardizers
                    .iter()
                    .find(|(f, _, _)| f == feature)
                    .map(|(_, m, s)| (*m, *s))
                    .ok_or_else(|| {
                        PartyError::from(Refusal::NoStandardisation {
                            model_id: model.model_id.clone(),
                            feature: feature.clone(),
                        })
                    })
            })
            .collect::<Result<_, _>>()?,
        ModelSource::Clear {
            weights_party,
            model,
        } => {
            let ch = transport.child("standardizers");
            standardizers_from(&ch, plan, *weights_party, model.as_ref()).await?
        }
    };
    let mut ids = Vec::new();
    let input = match aligned {
        None => GlmInput::helper(),
        Some((table, matched)) => {
            let (columns, digest) = table.aligned(matched, job_id);
            let mut features = Vec::with_capacity(columns.len());
            for ((_, values), &(mean, scale)) in columns.into_iter().zip(&standardizers) {
                let fit = glm::Standardizer { mean, scale };
                features.push(values.iter().map(|&x| fit.apply(x)).collect());
            }
            if me == plan.ids_from {
                ids = table.aligned_ids(matched);
            }
            GlmInput::data(matched.len(), features, None, digest)?
        }
    }
    .with_max_rows(limits.max_rows());
    let ctx = SessionContext { job_id, party_ids };
    let (mut s, n) = glm::setup(transport, ctx, &plan.layout, &input, rng).await?;
    let data = glm::share(
        &mut s,
        n,
        &plan.layout,
        &input,
        &plan.features,
        plan.kind,
        plan.intercept,
        plan.frac_bits,
    )
    .await?;
    drop(input);
    let started = Instant::now();
    // 2. The weights: this party's stored share, or the clear model's weights shared by their
    //    holder (one round, at scale 2^{f+8} like a trained model's).
    let weights = match &plan.source {
        ModelSource::Shared(model) => {
            Rep3Share::from_parts(model.share_a.clone(), model.share_b.clone())?
        }
        ModelSource::Clear {
            weights_party,
            model,
        } => {
            let width = plan.features.len() + usize::from(plan.intercept);
            let scale = FixedPoint::new(plan.frac_bits + glm::WEIGHT_EXTRA_BITS)?;
            let own = match model {
                Some(m) if me == *weights_party => Some(zeroize::Zeroizing::new(
                    m.weights
                        .iter()
                        .map(|&w| scale.encode(w))
                        .collect::<Result<Vec<u64>, _>>()?,
                )),
                _ => None,
            };
            s.share_input(*weights_party, own.as_ref().map(|w| &w[..]), width)
                .await?
        }
    };
    let shared = SharedModel::from_share(plan.kind, plan.frac_bits, plan.intercept, weights);
    let w = shared.scoring_weights(&mut s).await?;
    let fixed = FixedPoint::new(plan.frac_bits)?;
    let cut = match plan.kind {
        GlmKind::Logistic => (plan.threshold / (1.0 - plan.threshold)).ln(),
        GlmKind::Linear => plan.threshold,
    };
    let cut = fixed.encode(cut)?;
    let mut scores = Vec::new();
    let mut decisions = Vec::new();
    let mut start = 0;
    while start < n {
        let rows = start..(start + SCORE_CHUNK).min(n);
        let z = glm::predict_with(&mut s, &w, &data, rows.clone()).await?;
        let (sc, dc) = outputs(&mut s, plan, &z, cut, plan.frac_bits).await?;
        scores.extend_from_slice(sc.as_ref().map_or(&[][..], Rep3Share::a));
        decisions.extend_from_slice(dc.as_ref().map_or(&[][..], Rep3Share::a));
        start = rows.end;
    }
    let score_seconds = started.elapsed().as_secs_f64();
    let mut share = Vec::with_capacity(8 * (scores.len() + decisions.len()));
    for w in scores.iter().chain(&decisions) {
        share.extend_from_slice(&w.to_le_bytes());
    }
    scores.zeroize();
    decisions.zeroize();
    Ok(pb::ScorePartyResult {
        model_id: plan.model_id.clone(),
        rows: n as u64,
        share,
        scores: plan.scores,
        decisions: plan.decisions,
        frac_bits: plan.frac_bits,
        ids,
        score_seconds,
    })
}

/// One round of `transport`: the party holding a clear model sends every other party the `(mean,
/// scale)` of that party's features (16 bytes per feature, nothing to a party without
/// features); returns this party's own. Refuses a malformed message.
async fn standardizers_from(
    transport: &Channel,
    plan: &ScorePlan,
    weights_party: usize,
    model: Option<&ClearModel>,
) -> Result<Vec<(f64, f64)>, PartyError> {
    let me = transport.me();
    let of = |p: usize| -> Vec<(f64, f64)> {
        model.map_or_else(Vec::new, |m| {
            plan.layout
                .features_of(p)
                .iter()
                .map(|&c| m.standardizers[c])
                .collect()
        })
    };
    let round = transport.round();
    let got = treaty_mpc::transport::exchange(transport, |peer| {
        if me != weights_party {
            return Vec::new();
        }
        of(peer)
            .iter()
            .flat_map(|(m, s)| m.to_le_bytes().into_iter().chain(s.to_le_bytes()))
            .collect()
    })
    .await?;
    if me == weights_party {
        return Ok(of(me));
    }
    let want = plan.layout.features_of(me).len();
    let msg = got
        .get(weights_party)
        .and_then(Option::as_ref)
        .filter(|m| m.len() == 16 * want)
        .ok_or(treaty_mpc::MpcError::MalformedMessage {
            from: weights_party,
            round,
            what: "standardisation of the wrong length",
        })?;
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        f64::from_le_bytes(w)
    };
    let pairs: Vec<(f64, f64)> = msg
        .chunks_exact(16)
        .map(|c| (word(&c[..8]), word(&c[8..])))
        .collect();
    if pairs
        .iter()
        .any(|(m, s)| !m.is_finite() || !s.is_finite() || *s <= 0.0)
    {
        return Err(treaty_mpc::MpcError::MalformedMessage {
            from: weights_party,
            round,
            what: "a standardisation that is not finite or not positive",
        }
        .into());
    }
    Ok(pairs)
}

/// The scores and decisions of one chunk of logits `z`: `σ(z)` (or `z` for linear regression)
/// and `[z ≥ cut]` as 0/1 integers (`¬lt`, then one bit injection).
async fn outputs(
    s: &mut Rep3Session,
    plan: &ScorePlan,
    z: &Rep3Share,
    cut: u64,
    frac_bits: u32,
) -> Result<(Option<Rep3Share>, Option<Rep3Share>), PartyError> {
    let scores = match (plan.scores, plan.kind) {
        (false, _) => None,
        (true, GlmKind::Logistic) => Some(s.sigmoid(z, frac_bits).await?),
        (true, GlmKind::Linear) => Some(z.clone()),
    };
    let decisions = if plan.decisions {
        let below = s.msb(&s.add_public_scalar(z, cut.wrapping_neg())).await?;
        let below = s.b2a_bit(&below).await?;
        // [z ≥ cut] = 1 − [z < cut].
        Some(s.add_public_scalar(&s.neg(&below), 1))
    } else {
        None
    };
    Ok((scores, decisions))
}
