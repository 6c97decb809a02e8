//! `treaty bench train` and `treaty bench score`: secure logistic (or linear) regression
//! ([`treaty_mpc::glm`]) between three processes on synthetic vertically split data.
//!
//! **Data.** Every party generates the same synthetic table ([`plain::synthetic_table`]: ChaCha20
//! from a fixed seed, features on different units, labels from a known logistic model); feature
//! `c` belongs to party `c mod 3` and the label to party 1. Each party standardises the columns
//! it owns ([`Standardizer`], fitted on all rows), as a real party does before a job. Party 0
//! computes the plaintext reference that checks the result (it generates the columns it does not
//! own only for that).
//!
//! **train** ([`TrainCase`]). Untimed, once per case: [`glm::setup`] and [`glm::share`]. Every run:
//! a barrier round, then [`glm::train`] on all rows, timed at every party from the end of the
//! barrier to its share of the weights (a run's time is the slowest party's). Untimed after each
//! run: the weights are revealed to party 0 only ([`Rep3Session::reveal_to`]), which reports
//! their largest gap from [`plain::train`] on the same standardised rows (`max_weight_error`).
//!
//! **score** ([`ScoreCase`]), with a model whose weights are the synthetic table's known ones,
//! shared by party 0 and truncated to the features' scale once ([`SharedModel::scoring_weights`]),
//! both untimed: scoring then costs [`glm::predict_with`]'s 2 rounds instead of [`glm::predict`]'s
//! 3. Features are generated and standardised untimed.
//! - *batch* ([`ScoreCase::Batch`]): after a barrier round, timed: every party shares its feature
//!   columns ([`glm::share`], no label), [`glm::predict_with`], then the fast
//!   [`Rep3Session::sigmoid`] (error ≤ `10^−3`), chunk after chunk of `chunk` records. Reported:
//!   the median run time, records per second, rounds and bytes.
//! - *single* ([`ScoreCase::Single`]): `requests` sequential requests of one record each; each
//!   after its own (untimed) barrier round, timed at every party: the one-row share (each party
//!   its own features), [`glm::predict_with`] and [`Rep3Session::sigmoid`]. A request's latency
//!   is its slowest party's; the median, 99th percentile (nearest rank) and mean are reported over
//!   all requests of all timed runs.
//!
//! In both, the probabilities are revealed to party 0 afterwards (untimed), which reports the
//! largest gap from the f64 model (`max_score_error`) and the number of scores more than
//! [`SCORE_OFF`] away (`scores_off`: ABY3 truncation failures, about `2^−27` per record, see
//! [`treaty_mpc::glm`]; a failed element is garbage, so `max_score_error` is then large too).

use std::io::Write;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use treaty_mpc::fixed::FixedPoint;
use treaty_mpc::glm::{
    self, GlmInput, GlmKind, GlmLayout, SharedModel, Standardizer, TrainParams, WEIGHT_EXTRA_BITS,
    plain,
};
use treaty_mpc::rep3::workload::barrier;
use treaty_mpc::rep3::{Rep3Session, Rep3Share};
use treaty_mpc::seeds::{SessionContext, os_rng};
use treaty_mpc::transport::{Channel, CounterSnapshot, PartyIndex};
use treaty_mpc::vstats::DIGEST_LEN;

use super::{
    BenchPlan, JOB_ID, Reported, Reporter, RunReports, Runs, TRANSPORT, last_peak_rss, median,
    median_cpu_seconds, process_cpu_seconds,
};
use crate::BenchError;

/// Number of parties (rep3).
pub const PARTIES: usize = 3;

/// Fractional bits of the features.
pub const FRAC_BITS: u32 = 16;

/// Most rows (train) or records (score) a case accepts.
pub const MAX_ROWS: usize = 1 << 26;

/// Most features a case accepts.
pub const MAX_FEATURES: usize = 4096;

/// A probability further than this from the f64 model's is counted in `scores_off` (the fast
/// sigmoid is within `10^−3`, the logit's fixed-point error adds far less).
pub const SCORE_OFF: f64 = 0.01;

/// The party holding the label.
const LABEL_OWNER: PartyIndex = 1;

/// The party that checks results against the plaintext reference.
const CHECKER: PartyIndex = 0;

/// Seed of the synthetic training table.
const TRAIN_SEED: u64 = 77;

/// Seed of the synthetic records to score (other records than the training table's).
const SCORE_SEED: u64 = 78;

/// Intercept of the synthetic model (about a third of the labels are 1).
const BIAS: f64 = -1.0;

/// The layout of a case: feature `c` at party `c mod 3`, the label (if any) at [`LABEL_OWNER`].
fn layout(features: usize, label: bool) -> GlmLayout {
    GlmLayout {
        feature_owners: (0..features).map(|c| c % PARTIES).collect(),
        label_owner: label.then_some(LABEL_OWNER),
    }
}

/// The alignment digest every data party presents (the rows are aligned by construction).
fn digest(what: &str, rows: usize, features: usize) -> [u8; DIGEST_LEN] {
    let mut h = Sha256::new();
    h.update(b"treaty bench glm\0");
    h.update(what.as_bytes());
    h.update((rows as u64).to_le_bytes());
    h.update((features as u64).to_le_bytes());
    h.finalize().into()
}

/// `values` standardised over themselves.
fn standardise(values: &[f64]) -> Result<Vec<f64>, BenchError> {
    let s = Standardizer::fit(values)?;
    Ok(values.iter().map(|&x| s.apply(x)).collect())
}

/// Column names for errors.
fn names(features: usize) -> Vec<String> {
    (0..features).map(|c| format!("x{c}")).collect()
}

fn max_gap(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn check_size(what: &str, n: usize, max: usize) -> Result<(), BenchError> {
    if n == 0 || n > max {
        return Err(BenchError::Failed(format!(
            "{what}: {n}; must be 1 to {max}"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cases and results.

/// One training case: the table's shape and the hyperparameters (no L2 on the intercept, which
/// is always learnt).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainCase {
    /// Training rows.
    pub rows: usize,
    /// Features (feature `c` at party `c mod 3`).
    pub features: usize,
    /// Rows per batch.
    pub batch: usize,
    /// Passes over the rows.
    pub epochs: u32,
    /// Learning rate.
    pub learning_rate: f64,
    /// L2 regularisation λ.
    pub l2: f64,
    /// Linear instead of logistic regression.
    pub linear: bool,
}

impl TrainCase {
    /// The hyperparameters.
    pub fn params(&self) -> TrainParams {
        let kind = if self.linear {
            GlmKind::Linear
        } else {
            GlmKind::Logistic
        };
        TrainParams {
            learning_rate: self.learning_rate,
            epochs: self.epochs,
            batch_size: self.batch,
            l2: self.l2,
            ..TrainParams::new(kind)
        }
    }

    /// Refuses sizes beyond [`MAX_ROWS`] or [`MAX_FEATURES`] and bad hyperparameters
    /// ([`TrainParams::check`]).
    pub fn check(&self) -> Result<(), BenchError> {
        check_size("train: rows", self.rows, MAX_ROWS)?;
        check_size("train: features", self.features, MAX_FEATURES)?;
        self.params()
            .check()
            .map_err(|e| BenchError::Failed(e.to_string()))
    }

    /// Batches over all epochs.
    pub fn steps(&self) -> usize {
        self.rows.div_ceil(self.batch.max(1)) * self.epochs as usize
    }
}

/// One scoring case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ScoreCase {
    /// Throughput: `records` records scored in chunks of `chunk`.
    Batch {
        /// Records per run.
        records: usize,
        /// Features per record.
        features: usize,
        /// Records per share–predict–sigmoid pass.
        chunk: usize,
    },
    /// Latency: `requests` sequential one-record requests.
    Single {
        /// Requests per run.
        requests: usize,
        /// Features per record.
        features: usize,
    },
}

impl ScoreCase {
    /// Refuses sizes of 0 or beyond [`MAX_ROWS`] and [`MAX_FEATURES`].
    pub fn check(&self) -> Result<(), BenchError> {
        match *self {
            Self::Batch {
                records,
                features,
                chunk,
            } => {
                check_size("score: records", records, MAX_ROWS)?;
                check_size("score: features", features, MAX_FEATURES)?;
                check_size("score: chunk", chunk, MAX_ROWS)
            }
            Self::Single { requests, features } => {
                check_size("score: requests", requests, MAX_ROWS)?;
                check_size("score: features", features, MAX_FEATURES)
            }
        }
    }

    fn features(&self) -> usize {
        match *self {
            Self::Batch { features, .. } | Self::Single { features, .. } => features,
        }
    }

    /// Records scored per run.
    fn records(&self) -> usize {
        match *self {
            Self::Batch { records, .. } => records,
            Self::Single { requests, .. } => requests,
        }
    }
}

/// One training case's figures, as `treaty bench train --json` prints them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainResult {
    /// `"train"`.
    pub workload: &'static str,
    /// `"logistic"` or `"linear"`.
    pub model: &'static str,
    /// Training rows.
    pub rows: usize,
    /// Features (the model has one more weight, the intercept).
    pub features: usize,
    /// Rows per batch.
    pub batch: usize,
    /// Passes over the rows.
    pub epochs: u32,
    /// Learning rate.
    pub learning_rate: f64,
    /// L2 regularisation λ.
    pub l2: f64,
    /// Batches (gradient steps) over all epochs.
    pub steps: usize,
    /// Median over the timed runs of the slowest party's training time, in seconds.
    pub seconds: f64,
    /// Every timed run's time (slowest party), in run order.
    pub run_seconds: Vec<f64>,
    /// Communication rounds of one training run.
    pub rounds: u64,
    /// Most payload bytes any party sent in one training run.
    pub bytes_per_party: u64,
    /// Payload bytes the three parties sent in one training run (the most over the runs).
    pub bytes_total: u64,
    /// Largest gap between a secure weight and the f64 reference's, over the timed runs
    /// (`null` if the checking party did not report one).
    pub max_weight_error: Option<f64>,
    /// Each party's CPU time for one training run (median over the runs; `null` where
    /// unavailable; see [`super::process_cpu_seconds`]).
    pub cpu_seconds: Vec<Option<f64>>,
    /// Peak resident set size of each party process up to the end of this case, in bytes
    /// (`null` where unavailable; see [`super::peak_rss_bytes`]).
    pub peak_rss_bytes: Vec<Option<u64>>,
    /// Timed runs.
    pub repeat: usize,
    /// Untimed runs before them.
    pub warmup: usize,
    /// Fixed-point fractional bits of the features.
    pub frac_bits: u32,
    /// Number of parties (processes).
    pub parties: usize,
    /// [`TRANSPORT`].
    pub transport: &'static str,
}

/// Batch scoring's figures, as `treaty bench score --json` prints them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreBatchResult {
    /// `"score"`.
    pub workload: &'static str,
    /// `"batch"`.
    pub mode: &'static str,
    /// Records per run.
    pub records: usize,
    /// Features per record.
    pub features: usize,
    /// Records per share–predict–sigmoid pass.
    pub chunk: usize,
    /// Median over the timed runs of the slowest party's time, in seconds.
    pub seconds: f64,
    /// Every timed run's time (slowest party), in run order.
    pub run_seconds: Vec<f64>,
    /// `records / seconds`.
    pub records_per_second: f64,
    /// Communication rounds of one run.
    pub rounds: u64,
    /// Most payload bytes any party sent in one run.
    pub bytes_per_party: u64,
    /// Payload bytes the three parties sent in one run (the most over the runs).
    pub bytes_total: u64,
    /// Largest gap between a secure probability and the f64 model's, over the timed runs.
    pub max_score_error: Option<f64>,
    /// Scores further than [`SCORE_OFF`] from the f64 model's, over the timed runs.
    pub scores_off: Option<u64>,
    /// Each party's CPU time for one run (median over the runs; `null` where unavailable).
    pub cpu_seconds: Vec<Option<f64>>,
    /// Peak resident set size of each party process up to the end of this case, in bytes.
    pub peak_rss_bytes: Vec<Option<u64>>,
    /// Timed runs.
    pub repeat: usize,
    /// Untimed runs before them.
    pub warmup: usize,
    /// Fixed-point fractional bits of the features.
    pub frac_bits: u32,
    /// Number of parties (processes).
    pub parties: usize,
    /// [`TRANSPORT`].
    pub transport: &'static str,
}

/// Single-record scoring's figures, as `treaty bench score --json` prints them. Latencies are
/// per request, each its slowest party's, over every request of every timed run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreSingleResult {
    /// `"score"`.
    pub workload: &'static str,
    /// `"single"`.
    pub mode: &'static str,
    /// Requests per run.
    pub requests: usize,
    /// Features per record.
    pub features: usize,
    /// Median latency, in milliseconds.
    pub median_ms: f64,
    /// 99th percentile (nearest rank), in milliseconds.
    pub p99_ms: f64,
    /// Mean latency, in milliseconds.
    pub mean_ms: f64,
    /// Slowest request, in milliseconds.
    pub max_ms: f64,
    /// Communication rounds of one request.
    pub rounds: u64,
    /// Most payload bytes any party sent for one request.
    pub bytes_per_party: u64,
    /// Largest gap between a secure probability and the f64 model's, over the timed runs.
    pub max_score_error: Option<f64>,
    /// Scores further than [`SCORE_OFF`] from the f64 model's, over the timed runs.
    pub scores_off: Option<u64>,
    /// Each party's CPU time for all requests of one run, barriers included (median over the
    /// runs; `null` where unavailable).
    pub cpu_seconds: Vec<Option<f64>>,
    /// Peak resident set size of each party process up to the end of this case, in bytes.
    pub peak_rss_bytes: Vec<Option<u64>>,
    /// Timed runs.
    pub repeat: usize,
    /// Untimed runs before them.
    pub warmup: usize,
    /// Fixed-point fractional bits of the features.
    pub frac_bits: u32,
    /// Number of parties (processes).
    pub parties: usize,
    /// [`TRANSPORT`].
    pub transport: &'static str,
}

// ---------------------------------------------------------------------------------------------
// Summaries.

/// Most rounds, most bytes one party sent, most bytes all sent in one run.
fn traffic(runs: &[RunReports]) -> (u64, u64, u64) {
    let per_party = || runs.iter().flatten().flatten();
    (
        per_party().map(|m| m.rounds).max().unwrap_or(0),
        per_party().map(|m| m.bytes_sent).max().unwrap_or(0),
        runs.iter()
            .map(|r| r.iter().flatten().map(|m| m.bytes_sent).sum())
            .max()
            .unwrap_or(0),
    )
}

/// The largest reported error and the total of the reported counts beyond the tolerance
/// (`None` if no party reported any).
fn errors(runs: &[RunReports]) -> (Option<f64>, Option<u64>) {
    let reports = || runs.iter().flatten().flatten();
    let max = reports().filter_map(|m| m.max_error).reduce(f64::max);
    let off = reports().filter_map(|m| m.off).reduce(|a, b| a + b);
    (max, off)
}

/// The figures of a training case from its complete runs.
pub(super) fn summarise_train(
    case: &TrainCase,
    plan: &BenchPlan,
    runs: &[RunReports],
) -> TrainResult {
    let run_seconds = super::run_seconds(runs);
    let (rounds, bytes_per_party, bytes_total) = traffic(runs);
    TrainResult {
        workload: "train",
        model: case.params().kind.name(),
        rows: case.rows,
        features: case.features,
        batch: case.batch,
        epochs: case.epochs,
        learning_rate: case.learning_rate,
        l2: case.l2,
        steps: case.steps(),
        seconds: median(&run_seconds),
        run_seconds,
        rounds,
        bytes_per_party,
        bytes_total,
        max_weight_error: errors(runs).0,
        cpu_seconds: median_cpu_seconds(runs),
        peak_rss_bytes: last_peak_rss(runs),
        repeat: plan.repeat,
        warmup: plan.warmup,
        frac_bits: FRAC_BITS,
        parties: PARTIES,
        transport: TRANSPORT,
    }
}

/// One scoring case's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ScoreResult {
    /// Throughput.
    Batch(ScoreBatchResult),
    /// Latency.
    Single(ScoreSingleResult),
}

/// The `q`-quantile of `sorted` by nearest rank (`q` in `(0, 1]`); 0 for no values.
pub fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Every request's latency (its slowest party's), over all runs in order.
fn request_latencies(runs: &[RunReports]) -> Vec<f64> {
    let mut out = Vec::new();
    for run in runs {
        let parties: Vec<&[f64]> = run
            .iter()
            .map(|r| {
                r.as_ref()
                    .and_then(|m| m.latencies.as_deref())
                    .unwrap_or(&[])
            })
            .collect();
        let requests = parties.iter().map(|l| l.len()).max().unwrap_or(0);
        out.extend((0..requests).map(|j| {
            parties
                .iter()
                .filter_map(|l| l.get(j))
                .fold(0.0, |a: f64, &b| a.max(b))
        }));
    }
    out
}

/// The figures of a scoring case from its complete runs.
pub(super) fn summarise_score(
    case: &ScoreCase,
    plan: &BenchPlan,
    runs: &[RunReports],
) -> ScoreResult {
    let (rounds, bytes_per_party, bytes_total) = traffic(runs);
    let (max_score_error, scores_off) = errors(runs);
    match *case {
        ScoreCase::Batch {
            records,
            features,
            chunk,
        } => {
            let run_seconds = super::run_seconds(runs);
            let seconds = median(&run_seconds);
            ScoreResult::Batch(ScoreBatchResult {
                workload: "score",
                mode: "batch",
                records,
                features,
                chunk,
                seconds,
                run_seconds,
                records_per_second: if seconds > 0.0 {
                    records as f64 / seconds
                } else {
                    0.0
                },
                rounds,
                bytes_per_party,
                bytes_total,
                max_score_error,
                scores_off,
                cpu_seconds: median_cpu_seconds(runs),
                peak_rss_bytes: last_peak_rss(runs),
                repeat: plan.repeat,
                warmup: plan.warmup,
                frac_bits: FRAC_BITS,
                parties: PARTIES,
                transport: TRANSPORT,
            })
        }
        ScoreCase::Single { requests, features } => {
            let mut ms: Vec<f64> = request_latencies(runs)
                .into_iter()
                .map(|s| s * 1e3)
                .collect();
            ms.sort_by(f64::total_cmp);
            let per_request = |v: u64| v / requests.max(1) as u64;
            ScoreResult::Single(ScoreSingleResult {
                workload: "score",
                mode: "single",
                requests,
                features,
                median_ms: median(&ms),
                p99_ms: nearest_rank(&ms, 0.99),
                mean_ms: ms.iter().sum::<f64>() / ms.len().max(1) as f64,
                max_ms: ms.last().copied().unwrap_or(0.0),
                rounds: per_request(rounds),
                bytes_per_party: per_request(bytes_per_party),
                max_score_error,
                scores_off,
                cpu_seconds: median_cpu_seconds(runs),
                peak_rss_bytes: last_peak_rss(runs),
                repeat: plan.repeat,
                warmup: plan.warmup,
                frac_bits: FRAC_BITS,
                parties: PARTIES,
                transport: TRANSPORT,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child.

/// This party's side of every training case over `transport`; each case on its own session.
pub(super) async fn run_train<W: Write>(
    transport: &Channel,
    party_ids: &[String],
    cases: &[TrainCase],
    runs: Runs,
    out: &mut Reporter<W>,
) -> Result<(), BenchError> {
    let me = transport.me();
    for (c, case) in cases.iter().enumerate() {
        case.check()?;
        let params = case.params();
        let layout = layout(case.features, true);
        // Everyone generates the whole table (the label depends on every column).
        let table = plain::synthetic_table(case.rows, case.features, BIAS, TRAIN_SEED);
        let columns = table
            .columns
            .iter()
            .map(|c| standardise(c))
            .collect::<Result<Vec<_>, _>>()?;
        let input = if layout.data_parties().contains(&me) {
            let own = layout
                .features_of(me)
                .iter()
                .map(|&c| columns[c].clone())
                .collect();
            let label = (me == LABEL_OWNER).then(|| table.label.clone());
            let digest = digest("train", case.rows, case.features);
            GlmInput::data(case.rows, own, label, digest)?
        } else {
            GlmInput::helper()
        };
        let reference = if me == CHECKER {
            Some(plain::train(&columns, &table.label, 0..case.rows, &params)?)
        } else {
            None
        };
        drop((table, columns));
        let ctx = SessionContext {
            job_id: JOB_ID,
            party_ids,
        };
        let (mut s, rows) = glm::setup(
            &transport.child("case"),
            ctx,
            &layout,
            &input,
            &mut os_rng()?,
        )
        .await?;
        let data = glm::share(
            &mut s,
            rows,
            &layout,
            &input,
            &names(case.features),
            params.kind,
            params.fit_intercept,
            FRAC_BITS,
        )
        .await?;
        drop(input);
        for run in runs.iter() {
            let (model, mut report) = timed(&mut s, async |s| {
                glm::train(s, &data, 0..rows, &params, FRAC_BITS, |_, _| {}).await
            })
            .await?;
            let opened = s.reveal_to(CHECKER, model.weights()).await?;
            if let (Some(words), Some(reference)) = (opened, &reference) {
                let weights = SharedModel::decode_weights(&words, FRAC_BITS);
                report.max_error = Some(max_gap(&weights, reference));
            }
            if let Some(run) = run {
                out.run(c, run, report)?;
            }
        }
    }
    Ok(())
}

/// A barrier round, then `op` timed with its traffic and this process's CPU time.
async fn timed<R>(
    s: &mut Rep3Session,
    op: impl AsyncFnOnce(&mut Rep3Session) -> Result<R, treaty_mpc::MpcError>,
) -> Result<(R, Reported), BenchError> {
    barrier(s).await?;
    let before = s.channel().counters().snapshot();
    // The CPU time includes the tail of the barrier (mostly idle).
    let cpu_start = process_cpu_seconds();
    let start = Instant::now();
    let result = op(s).await?;
    let elapsed = start.elapsed();
    let traffic = s.channel().counters().snapshot().since(&before);
    Ok((result, Reported::new(elapsed, traffic, cpu_start, None)))
}

/// The scoring model: the synthetic table's known weights (features, then the intercept),
/// encoded and shared by [`CHECKER`], at the scale [`SharedModel`] stores (`2^{f+8}`). Returns
/// the model and the weights as f64 (at the checker; rounded as encoded).
async fn scoring_model(
    s: &mut Rep3Session,
    features: usize,
) -> Result<(SharedModel, Option<Vec<f64>>), BenchError> {
    let beta = plain::synthetic_model(features, BIAS, SCORE_SEED);
    let fixed = FixedPoint::new(FRAC_BITS + WEIGHT_EXTRA_BITS)?;
    let words = fixed.encode_slice(&beta).map_err(|(_, e)| e)?;
    let mine = s.me() == CHECKER;
    let share = s
        .share_input(CHECKER, mine.then_some(&words[..]), words.len())
        .await?;
    let model = SharedModel::from_share(GlmKind::Logistic, FRAC_BITS, true, share);
    let weights = mine.then(|| SharedModel::decode_weights(&words, FRAC_BITS));
    Ok((model, weights))
}

/// The f64 probabilities of the `records` records to score under `weights` (every column
/// generated and standardised as its owner does, one at a time).
fn reference_scores(
    records: usize,
    features: usize,
    weights: &[f64],
) -> Result<Vec<f64>, BenchError> {
    let mut z = vec![weights.get(features).copied().unwrap_or(0.0); records];
    for (c, w) in weights.iter().enumerate().take(features) {
        let column = standardise(&plain::synthetic_column(records, c, SCORE_SEED))?;
        for (z, x) in z.iter_mut().zip(&column) {
            *z += w * x;
        }
    }
    Ok(z.into_iter().map(plain::sigmoid).collect())
}

/// This party's standardised feature columns for the records to score, cut into inputs of
/// `chunk` records each (one column generated at a time). A helper gets helper inputs.
fn score_inputs(
    layout: &GlmLayout,
    me: PartyIndex,
    records: usize,
    chunk: usize,
) -> Result<Vec<(usize, GlmInput)>, BenchError> {
    let features = layout.feature_owners.len();
    let starts: Vec<usize> = (0..records).step_by(chunk).collect();
    let len = |start: usize| chunk.min(records - start);
    if !layout.data_parties().contains(&me) {
        return Ok(starts
            .iter()
            .map(|&a| (len(a), GlmInput::helper()))
            .collect());
    }
    let mut parts: Vec<Vec<Vec<f64>>> = vec![Vec::new(); starts.len()];
    for c in layout.features_of(me) {
        let column = standardise(&plain::synthetic_column(records, c, SCORE_SEED))?;
        for (part, &a) in parts.iter_mut().zip(&starts) {
            part.push(column[a..a + len(a)].to_vec());
        }
    }
    let digest = digest("score", records, features);
    starts
        .iter()
        .zip(parts)
        .map(|(&a, columns)| Ok((len(a), GlmInput::data(len(a), columns, None, digest)?)))
        .collect()
}

/// The largest gap between the opened probabilities `words` and `reference`, and how many are
/// further than [`SCORE_OFF`].
fn score_errors(words: &[u64], reference: &[f64]) -> Result<(f64, u64), BenchError> {
    let fixed = FixedPoint::new(FRAC_BITS)?;
    let mut worst = 0.0f64;
    let mut off = 0;
    for (&w, &r) in words.iter().zip(reference) {
        let gap = (fixed.decode(w) - r).abs();
        worst = worst.max(gap);
        off += u64::from(gap > SCORE_OFF);
    }
    Ok((worst, off))
}

/// One share of all of `parts`, in order.
fn concat(parts: &[Rep3Share]) -> Result<Rep3Share, BenchError> {
    let a = parts.iter().flat_map(|p| p.a().iter().copied()).collect();
    let b = parts.iter().flat_map(|p| p.b().iter().copied()).collect();
    Ok(Rep3Share::from_parts(a, b)?)
}

/// This party's side of every scoring case over `transport`; each case on its own session.
pub(super) async fn run_score<W: Write>(
    transport: &Channel,
    party_ids: &[String],
    cases: &[ScoreCase],
    runs: Runs,
    out: &mut Reporter<W>,
) -> Result<(), BenchError> {
    let me = transport.me();
    for (c, case) in cases.iter().enumerate() {
        case.check()?;
        let (features, records) = (case.features(), case.records());
        let layout = layout(features, false);
        let chunk = match *case {
            ScoreCase::Batch { chunk, .. } => chunk,
            ScoreCase::Single { .. } => 1,
        };
        let inputs = score_inputs(&layout, me, records, chunk)?;
        // `setup` only needs the row count and the digest.
        let whole = if layout.data_parties().contains(&me) {
            GlmInput::data(
                records,
                Vec::new(),
                None,
                digest("score", records, features),
            )?
        } else {
            GlmInput::helper()
        };
        let ctx = SessionContext {
            job_id: JOB_ID,
            party_ids,
        };
        let (mut s, _) = glm::setup(
            &transport.child("case"),
            ctx,
            &layout,
            &whole,
            &mut os_rng()?,
        )
        .await?;
        let (model, weights) = scoring_model(&mut s, features).await?;
        let reference = match &weights {
            Some(w) => Some(reference_scores(records, features, w)?),
            None => None,
        };
        let w = model.scoring_weights(&mut s).await?;
        let names = names(features);
        // One chunk: share, logits, probabilities.
        let score = async |s: &mut Rep3Session, (rows, input): &(usize, GlmInput)| {
            let data = glm::share(
                s,
                *rows,
                &layout,
                input,
                &names,
                GlmKind::Logistic,
                true,
                FRAC_BITS,
            )
            .await?;
            let z = glm::predict_with(s, &w, &data, 0..*rows).await?;
            s.sigmoid(&z, FRAC_BITS).await
        };
        for run in runs.iter() {
            let (scores, mut report) = match case {
                ScoreCase::Batch { .. } => {
                    timed(&mut s, async |s| {
                        let mut scores = Vec::with_capacity(inputs.len());
                        for input in &inputs {
                            scores.push(score(s, input).await?);
                        }
                        Ok(scores)
                    })
                    .await?
                }
                ScoreCase::Single { .. } => single_requests(&mut s, &inputs, &score).await?,
            };
            let opened = s.reveal_to(CHECKER, &concat(&scores)?).await?;
            if let (Some(words), Some(reference)) = (opened, &reference) {
                let (worst, off) = score_errors(&words, reference)?;
                report.max_error = Some(worst);
                report.off = Some(off);
            }
            if let Some(run) = run {
                out.run(c, run, report)?;
            }
        }
    }
    Ok(())
}

/// One request per input, each after a barrier round and timed alone; the report sums their
/// times and traffic, lists every latency, and has the CPU time of the whole loop.
async fn single_requests(
    s: &mut Rep3Session,
    inputs: &[(usize, GlmInput)],
    score: &impl AsyncFn(
        &mut Rep3Session,
        &(usize, GlmInput),
    ) -> Result<Rep3Share, treaty_mpc::MpcError>,
) -> Result<(Vec<Rep3Share>, Reported), BenchError> {
    let cpu_start = process_cpu_seconds();
    let mut total = CounterSnapshot::default();
    let mut elapsed = Duration::ZERO;
    let mut latencies = Vec::with_capacity(inputs.len());
    let mut scores = Vec::with_capacity(inputs.len());
    for input in inputs {
        let (p, r) = timed(s, async |s| score(s, input).await).await?;
        total.rounds += r.rounds;
        total.bytes_sent += r.bytes_sent;
        elapsed += Duration::from_secs_f64(r.seconds);
        latencies.push(r.seconds);
        scores.push(p);
    }
    let mut report = Reported::new(elapsed, total, cpu_start, None);
    report.latencies = Some(latencies);
    Ok((scores, report))
}

#[cfg(test)]
mod tests {
    use super::super::Workload;
    use super::*;

    fn plan(workload: Workload) -> BenchPlan {
        BenchPlan {
            workload,
            repeat: 2,
            warmup: 0,
            timeout: Duration::from_secs(1),
        }
    }

    fn rep(seconds: f64, bytes_sent: u64, max_error: Option<f64>) -> Option<Reported> {
        Some(Reported {
            seconds,
            rounds: 40,
            bytes_sent,
            cpu_seconds: Some(seconds / 2.0),
            peak_rss: Some(bytes_sent << 10),
            max_error,
            off: max_error.map(|e| u64::from(e > SCORE_OFF)),
            ..Reported::default()
        })
    }

    fn train_case() -> TrainCase {
        TrainCase {
            rows: 1000,
            features: 6,
            batch: 128,
            epochs: 2,
            learning_rate: 0.1,
            l2: 0.0,
            linear: false,
        }
    }

    #[test]
    fn a_training_case_is_summarised_by_its_slowest_party_and_the_checker() {
        let case = train_case();
        let runs = [
            vec![
                rep(2.0, 100, Some(1e-5)),
                rep(3.0, 120, None),
                rep(1.0, 90, None),
            ],
            vec![
                rep(5.0, 100, Some(3e-5)),
                rep(4.0, 120, None),
                rep(1.0, 90, None),
            ],
        ];
        let r = summarise_train(&case, &plan(Workload::Train(vec![case])), &runs);
        assert_eq!(r.run_seconds, [3.0, 5.0]);
        assert_eq!(r.seconds, 4.0);
        assert_eq!((r.rounds, r.bytes_per_party, r.bytes_total), (40, 120, 310));
        assert_eq!(r.max_weight_error, Some(3e-5));
        assert_eq!(r.steps, 16);
        assert_eq!(r.cpu_seconds, [Some(1.75), Some(1.75), Some(0.5)]);
        assert_eq!(
            r.peak_rss_bytes,
            [Some(100 << 10), Some(120 << 10), Some(90 << 10)]
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["workload"], "train");
        assert_eq!(json["model"], "logistic");
        assert_eq!(json["transport"], "grpc+tls");
        // Without a report from the checker the error is unknown, not zero.
        let runs = [vec![
            rep(1.0, 1, None),
            rep(1.0, 1, None),
            rep(1.0, 1, None),
        ]];
        assert_eq!(
            summarise_train(&case, &plan(Workload::Train(vec![case])), &runs).max_weight_error,
            None
        );
    }

    #[test]
    fn batch_scoring_reports_throughput_and_failed_scores() {
        let case = ScoreCase::Batch {
            records: 1000,
            features: 6,
            chunk: 256,
        };
        let runs = [
            vec![
                rep(0.5, 100, Some(8e-4)),
                rep(0.25, 100, None),
                rep(0.1, 100, None),
            ],
            vec![
                rep(0.5, 100, Some(0.9)),
                rep(0.1, 100, None),
                rep(0.1, 100, None),
            ],
        ];
        let ScoreResult::Batch(r) =
            summarise_score(&case, &plan(Workload::Score(vec![case])), &runs)
        else {
            panic!("not a batch result");
        };
        assert_eq!(r.seconds, 0.5);
        assert_eq!(r.records_per_second, 2000.0);
        assert_eq!((r.max_score_error, r.scores_off), (Some(0.9), Some(1)));
        assert_eq!(r.bytes_total, 300);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            (json["workload"].as_str(), json["mode"].as_str()),
            (Some("score"), Some("batch"))
        );
    }

    #[test]
    fn single_record_latency_is_per_request_at_the_slowest_party() {
        let case = ScoreCase::Single {
            requests: 4,
            features: 6,
        };
        let with = |lat: &[f64], err| {
            let mut r = rep(lat.iter().sum(), 400, err);
            if let Some(r) = &mut r {
                r.rounds = 4 * 36;
                r.latencies = Some(lat.to_vec());
            }
            r
        };
        let runs = [
            vec![
                with(&[0.001, 0.004, 0.002, 0.003], Some(1e-4)),
                with(&[0.002, 0.001, 0.002, 0.001], None),
                with(&[0.001, 0.001, 0.005, 0.001], None),
            ],
            vec![
                with(&[0.001, 0.001, 0.001, 0.010], Some(2e-4)),
                with(&[0.001, 0.001, 0.001, 0.001], None),
                with(&[0.001, 0.001, 0.001, 0.001], None),
            ],
        ];
        // Per request: 2, 4, 5, 3 ms, then 1, 1, 1, 10 ms.
        assert_eq!(
            request_latencies(&runs),
            [0.002, 0.004, 0.005, 0.003, 0.001, 0.001, 0.001, 0.010]
        );
        let ScoreResult::Single(r) =
            summarise_score(&case, &plan(Workload::Score(vec![case])), &runs)
        else {
            panic!("not a single-record result");
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(r.median_ms, 2.5), "{}", r.median_ms);
        assert!(close(r.p99_ms, 10.0) && close(r.max_ms, 10.0));
        assert!(close(r.mean_ms, 27.0 / 8.0));
        assert_eq!((r.rounds, r.bytes_per_party), (36, 100));
        assert_eq!((r.max_score_error, r.scores_off), (Some(2e-4), Some(0)));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["mode"], "single");
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 0.99), 99.0);
        assert_eq!(nearest_rank(&v, 0.5), 50.0);
        assert_eq!(nearest_rank(&v[..10], 0.99), 10.0);
        assert_eq!(nearest_rank(&[], 0.99), 0.0);
        assert_eq!(nearest_rank(&[7.0], 0.01), 7.0);
    }

    #[test]
    fn cases_are_checked() {
        assert!(train_case().check().is_ok());
        for bad in [
            TrainCase {
                rows: 0,
                ..train_case()
            },
            TrainCase {
                features: 0,
                ..train_case()
            },
            TrainCase {
                batch: 0,
                ..train_case()
            },
            TrainCase {
                epochs: 0,
                ..train_case()
            },
            TrainCase {
                learning_rate: -1.0,
                ..train_case()
            },
            TrainCase {
                l2: f64::NAN,
                ..train_case()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        assert!(
            ScoreCase::Batch {
                records: 10,
                features: 3,
                chunk: 0
            }
            .check()
            .is_err()
        );
        assert!(
            ScoreCase::Single {
                requests: 0,
                features: 3
            }
            .check()
            .is_err()
        );
        assert!(
            ScoreCase::Single {
                requests: 1,
                features: 3
            }
            .check()
            .is_ok()
        );
        assert_eq!(layout(4, true).feature_owners, [0, 1, 2, 0]);
        assert_eq!(layout(1, true).data_parties(), [0, 1]);
    }

    #[test]
    fn score_inputs_cut_own_columns_into_chunks() {
        let layout = layout(5, false);
        let chunks = score_inputs(&layout, 1, 10, 4).unwrap();
        assert_eq!(chunks.iter().map(|c| c.0).collect::<Vec<_>>(), [4, 4, 2]);
        assert_eq!(
            format!("{:?}", chunks[2].1),
            "GlmInput { rows: 2, columns: 2, label: false, .. }"
        );
        // With fewer features than parties, party 2 is a helper.
        let helper = score_inputs(&super::layout(2, false), 2, 10, 4).unwrap();
        assert_eq!(
            format!("{:?}", helper[0].1),
            "GlmInput { rows: 0, columns: 0, label: false, .. }"
        );
    }
}
