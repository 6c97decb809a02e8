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
//! Every party of the job must be the training job's party of the same index: each holds the
//! weight share of its index. Scores use the engine's fast sigmoid ([`Rep3Session::sigmoid`],
//! error ≤ 10⁻³); decisions compare the logit with the threshold's logit exactly (no sigmoid
//! error), so a decision is the clear model's decision on the same fixed-point inputs.

use std::time::Instant;

use rand_chacha::rand_core::CryptoRng;
use treaty_mpc::fixed::FixedPoint;
use treaty_mpc::glm::{self, GlmInput, GlmKind, GlmLayout, SharedModel};
use treaty_mpc::rep3::{Rep3Session, Rep3Share};
use treaty_mpc::seeds::SessionContext;
use treaty_mpc::transport::Transport;
use treaty_proto::v1 as pb;
use zeroize::Zeroize;

use crate::PartyError;
use crate::join::{JOIN_ROUND, JoinPlan, JoinTable};
use crate::train::StoredModel;

/// Records per chunk of the secure computation (bounds memory; larger chunks are not faster).
pub const SCORE_CHUNK: usize = 1 << 17;

/// What a `score` job asks of this party.
#[derive(Debug, Clone)]
pub struct ScorePlan {
    /// This party's part of the model.
    pub model: StoredModel,
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
    /// The plan of `score` for this party (`me` among `peers`), from its stored `model` and the
    /// job's `join` over the model's features ([`JoinPlan::new`] with `model.features`).
    pub fn new(
        score: &pb::ScoreJob,
        join: &JoinPlan,
        model: StoredModel,
        me: usize,
        peers: &[String],
    ) -> Result<Self, PartyError> {
        let reject = |m: String| Err(PartyError::Rejected(m));
        if model.parties != peers || model.index != me {
            return reject(format!(
                "score: model {:?} was trained by {} (this party as #{}); the job's parties must \
                 be the same, in the same order",
                model.model_id,
                model.parties.join(", "),
                model.index
            ));
        }
        let kind = match model.kind.as_str() {
            "logistic" => GlmKind::Logistic,
            "linear" => GlmKind::Linear,
            other => return reject(format!("score: stored model kind {other:?} is unknown")),
        };
        let (scores, decisions) = match score.output.as_str() {
            "" | "score" => (true, false),
            "decision" => (false, true),
            "both" => (true, true),
            other => return reject(format!("score: unknown output {other:?}")),
        };
        let threshold = score.threshold.unwrap_or(match kind {
            GlmKind::Logistic => 0.5,
            GlmKind::Linear => 0.0,
        });
        if !threshold.is_finite()
            || (kind == GlmKind::Logistic && !(threshold > 0.0 && threshold < 1.0))
        {
            return reject(format!(
                "score: threshold {threshold} must lie in (0, 1) for logistic regression"
            ));
        }
        let ids_from = if score.ids_from.is_empty() {
            join.data_parties().first().copied().unwrap_or(0)
        } else {
            peers
                .iter()
                .position(|p| *p == score.ids_from)
                .filter(|i| join.data_parties().contains(i))
                .ok_or_else(|| {
                    PartyError::Rejected(format!(
                        "score: ids_from {:?} is not a data party",
                        score.ids_from
                    ))
                })?
        };
        let owners: Vec<usize> = join.columns.iter().map(|(i, _)| *i).collect();
        let width = model.features.len() + usize::from(model.intercept);
        if owners.len() != model.features.len() || model.share_a.len() != width {
            return reject("score: the stored model does not match its features".into());
        }
        Ok(Self {
            kind,
            layout: GlmLayout {
                feature_owners: owners,
                label_owner: None,
            },
            scores,
            decisions,
            threshold,
            ids_from,
            model,
        })
    }
}

/// Runs the `score` protocol at this party over aligned records: `table` and `matched` at a
/// data party, `None` at a helper. Returns the report to seal and the next free round.
pub async fn run<T: Transport, R: CryptoRng + ?Sized>(
    transport: &T,
    party_ids: &[String],
    job_id: &str,
    plan: &ScorePlan,
    aligned: Option<(&JoinTable, &[usize])>,
    rng: &mut R,
) -> Result<(pb::ScorePartyResult, u32), PartyError> {
    let me = transport.me();
    let model = &plan.model;
    let mut ids = Vec::new();
    let input = match aligned {
        None => GlmInput::helper(),
        Some((table, matched)) => {
            let (columns, digest) = table.aligned(matched, job_id);
            let mut features = Vec::with_capacity(columns.len());
            for ((name, values), &c) in columns.into_iter().zip(&plan.layout.features_of(me)) {
                let feature = &model.features[c];
                let (_, mean, scale) = model
                    .standardizers
                    .iter()
                    .find(|(f, _, _)| f == feature)
                    .ok_or_else(|| {
                        PartyError::Rejected(format!(
                            "score: the stored model has no standardisation of {feature:?} \
                             (column {name:?})"
                        ))
                    })?;
                let fit = glm::Standardizer {
                    mean: *mean,
                    scale: *scale,
                };
                features.push(values.iter().map(|&x| fit.apply(x)).collect());
            }
            if me == plan.ids_from {
                ids = table.aligned_ids(matched);
            }
            GlmInput::data(matched.len(), features, None, digest)?
        }
    };
    let ctx = SessionContext { job_id, party_ids };
    let (mut s, n) = glm::setup(transport, ctx, JOIN_ROUND, &plan.layout, &input, rng).await?;
    let data = glm::share(
        &mut s,
        n,
        &plan.layout,
        &input,
        &model.features,
        plan.kind,
        model.intercept,
        model.frac_bits,
    )
    .await?;
    drop(input);
    let started = Instant::now();
    let shared = SharedModel::from_share(
        plan.kind,
        model.frac_bits,
        model.intercept,
        Rep3Share::from_parts(model.share_a.clone(), model.share_b.clone())?,
    );
    let w = shared.scoring_weights(&mut s).await?;
    let fixed = FixedPoint::new(model.frac_bits)?;
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
        let (sc, dc) = outputs(&mut s, plan, &z, cut, model.frac_bits).await?;
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
    Ok((
        pb::ScorePartyResult {
            model_id: model.model_id.clone(),
            rows: n as u64,
            share,
            scores: plan.scores,
            decisions: plan.decisions,
            frac_bits: model.frac_bits,
            ids,
            score_seconds,
        },
        s.next_round(),
    ))
}

/// The scores and decisions of one chunk of logits `z`: `σ(z)` (or `z` for linear regression)
/// and `[z ≥ cut]` as 0/1 integers (`¬lt`, then one bit injection).
async fn outputs<T: Transport>(
    s: &mut Rep3Session<'_, T>,
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

/// The recipient's view of a `score` job.
#[derive(Debug, Clone, serde::Serialize)]
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
    pub fn combine(reports: &[pb::ScorePartyResult]) -> Result<Self, PartyError> {
        let bad = |m: &str| PartyError::Rejected(format!("score result: {m}"));
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
