//! `treaty demo claims`: the job Treaty exists for. A hospital, an insurer and a bank on loopback
//! (coordinator + three party nodes, mutual TLS) each hold part of the picture of the same people
//! ([`crate::synthetic_risk`]: 10 clinical, 10 claim and 10 payment features; the insurer's
//! confirmed-fraud flag, drawn from a known logistic model over all 30). A `psi` job aligns the
//! people all three hold; a `train` job fits a logistic regression on secret shares and evaluates
//! its AUC on held-out rows; the same pipeline runs in the clear in f64 (same rows, order,
//! standardisation, schedule) and the two are printed side by side.
//!
//! The demo reveals the weights to the analyst so that they can be compared with the clear ones;
//! a deployment keeps them secret-shared (the default of a `train` job).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use treaty_mpc::glm::{self, GlmKind, Standardizer, TrainParams};
use treaty_mpc::output::RecipientSecretKey;
use treaty_mpc::seeds;
use treaty_proto::v1::{self as pb, job_spec};

use crate::sandbox::{ANALYST, Sandbox, SandboxOptions};
use crate::synthetic_risk::{self, FEATURES, ID_COLUMN, LABEL_COLUMN, LABEL_PARTY, PARTIES};
use treaty_analyst as analyst;
use treaty_analyst::ScoreResult;
use treaty_analyst::TrainResult;
use treaty_party::dataset::{self, DatasetConfig};
use treaty_party::join::id_strings;
use treaty_party::psi::intersection_path;
use treaty_party::train::AUC_MAX_ROWS;

use crate::SandboxError;

/// What the claims demo runs.
#[derive(Debug, Clone)]
pub struct ClaimsDemoOptions {
    /// People per party.
    pub rows: usize,
    /// Share of each party's people that all three hold.
    pub overlap: f64,
    /// Seed of the synthetic data.
    pub seed: u64,
    /// Share of the aligned rows held out for the AUC.
    pub holdout: f64,
    /// New people per party whose claims the trained model scores (a second dataset, drawn
    /// with another seed).
    pub score_rows: usize,
    /// Training hyperparameters (logistic regression).
    pub params: TrainParams,
    /// Fixed-point fractional bits.
    pub frac_bits: u32,
    /// Plaintext gRPC (development only).
    pub insecure: bool,
    /// Where data, keys and state go.
    pub work_dir: PathBuf,
}

impl ClaimsDemoOptions {
    /// The default: 20,000 people per party, 70% held by all three, 15% of the aligned rows held
    /// out, batch 256, 10 epochs, learning rate 0.1, 16 fractional bits.
    pub fn new(work_dir: PathBuf) -> Self {
        let mut params = TrainParams::new(GlmKind::Logistic);
        params.batch_size = 256;
        Self {
            rows: 20_000,
            overlap: 0.7,
            seed: 42,
            holdout: 0.15,
            score_rows: 5_000,
            params,
            frac_bits: 16,
            insecure: false,
            work_dir,
        }
    }
}

/// What the claims demo measured.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimsDemoReport {
    /// The `psi` job.
    pub psi_job_id: String,
    /// The `train` job.
    pub train_job_id: String,
    /// Aligned rows (people all three parties hold).
    pub rows: u64,
    /// Rows the model was trained on.
    pub train_rows: u64,
    /// Held-out rows the AUC was computed on.
    pub holdout_rows: u64,
    /// Features (over all parties).
    pub features: usize,
    /// The secure model's AUC on the held-out rows, computed inside MPC.
    pub secure_auc: f64,
    /// The f64 model's AUC on the same rows.
    pub plaintext_auc: f64,
    /// Largest difference between a secure and an f64 weight.
    pub max_weight_error: f64,
    /// The secure weights (features, then the intercept).
    pub secure_weights: Vec<f64>,
    /// The f64 weights.
    pub plaintext_weights: Vec<f64>,
    /// The features as `party.column`.
    pub feature_names: Vec<String>,
    /// Gradient steps.
    pub steps: u64,
    /// The slowest party's training time (shares in, weights out), seconds.
    pub train_seconds: f64,
    /// The `train` job from submission to the opened result, seconds.
    pub train_job_seconds: f64,
    /// The `psi` job from submission to success, seconds.
    pub psi_seconds: f64,
    /// Data-plane rounds of the `train` job (most of any party).
    pub rounds: u64,
    /// Data-plane payload bytes sent in the `train` job, per party.
    pub bytes_sent_per_party: std::collections::BTreeMap<String, u64>,
    /// The `score` job: new records scored (the people all three hold in the new dataset).
    pub scored_records: u64,
    /// Largest difference between a secure score and the f64 model's σ(x·w) on the same record.
    pub max_score_error: f64,
    /// Records whose secure decision (score ≥ 0.5) differs from the f64 model's.
    pub decision_mismatches: u64,
    /// Of those, records whose f64 logit is more than 10⁻³ from the threshold (should be 0).
    pub clear_decision_mismatches: u64,
    /// The slowest party's seconds from shared inputs to shared scores.
    pub score_seconds: f64,
    /// The `score` job (inline PSI included) from submission to the opened result, seconds.
    pub score_job_seconds: f64,
    /// One application (one record at each party) scored through the coordinator: submission
    /// to the decision opened by the recipient, seconds.
    pub single_record_seconds: f64,
    /// The decision for that application (score ≥ 0.5), and whether it matches the f64 model's.
    pub single_record_decision: bool,
    /// Whether the secure run is within the bounds: weights within 5e-4 and AUC within
    /// 0.001 of the f64 pipeline.
    pub within_bound: bool,
    /// Whether TLS was on.
    pub tls: bool,
}

/// The accepted gap between secure and f64 weights.
pub const WEIGHT_BOUND: f64 = 5e-4;
/// The accepted gap between secure and f64 AUC.
pub const AUC_BOUND: f64 = 1e-3;
/// The accepted gap between a secure score and the f64 model's: the fast sigmoid's 10⁻³ plus
/// the logit's difference from the weights' (≤ 5·10⁻⁴ each, times Σ|x| over the features).
pub const SCORE_BOUND: f64 = 2e-3;

/// The features as `party.column`, in model order (hospital, insurer, bank).
pub fn feature_names() -> Vec<String> {
    FEATURES
        .iter()
        .map(|f| format!("{}.{}", f.party, f.name))
        .collect()
}

/// Every party's `dataset`, in [`PARTIES`] order.
fn inputs(dataset: &str) -> Vec<pb::JobInput> {
    PARTIES
        .iter()
        .map(|p| pb::JobInput {
            party: (*p).into(),
            dataset: dataset.into(),
        })
        .collect()
}

/// The analyst, with its public key.
fn output(key: Vec<u8>) -> Option<pb::JobOutput> {
    Some(pb::JobOutput {
        recipient: ANALYST.into(),
        recipient_public_key: key,
    })
}

/// Every party's id column, for a `[join]` of all three.
fn id_columns() -> HashMap<String, String> {
    PARTIES
        .iter()
        .map(|p| ((*p).to_string(), ID_COLUMN.to_string()))
        .collect()
}

/// The `train` job: every feature, the insurer's fraud flag, the PSI's stored intersection.
pub fn train_spec(opts: &ClaimsDemoOptions, psi_job: &str, key: Vec<u8>) -> pb::JobSpec {
    let p = &opts.params;
    pb::JobSpec {
        name: "demo: claim fraud model, hospital + insurer + bank".into(),
        inputs: inputs(synthetic_risk::DATASET),
        output: output(key),
        frac_bits: opts.frac_bits,
        join: Some(pb::JoinSpec {
            id_columns: id_columns(),
            psi_job: psi_job.into(),
        }),
        computation: Some(job_spec::Computation::Train(pb::TrainJob {
            model: "logistic".into(),
            features: feature_names(),
            label: format!("{LABEL_PARTY}.{LABEL_COLUMN}"),
            learning_rate: p.learning_rate,
            epochs: p.epochs,
            batch_size: p.batch_size as u32,
            l2: p.l2,
            no_intercept: !p.fit_intercept,
            holdout: opts.holdout,
            metric: "auc".into(),
            model_id: String::new(),
            reveal_weights: true,
        })),
        ..Default::default()
    }
}

/// The `psi` job: the people all three hold, revealed to all three (stored for the `train` job).
pub fn psi_spec(key: Vec<u8>) -> pb::JobSpec {
    pb::JobSpec {
        name: "demo: people the hospital, insurer and bank share".into(),
        inputs: inputs(synthetic_risk::DATASET),
        output: output(key),
        computation: Some(job_spec::Computation::Psi(pb::PsiJob {
            reveal: pb::PsiReveal::Intersection as i32,
            to: PARTIES.iter().map(|p| (*p).to_string()).collect(),
            id_columns: Default::default(),
        })),
        ..Default::default()
    }
}

/// The dataset of new records to score, at every party.
pub const NEW_DATASET: &str = "risk-new";
/// The dataset holding one application, at every party.
pub const APPLICATION_DATASET: &str = "application";

/// Writes the synthetic data (training records, new records to score and one application) and
/// starts the sandbox: the coordinator and the three parties with their datasets, all online.
/// Returns the sandbox and the training datasets by party.
pub async fn start(
    opts: &ClaimsDemoOptions,
) -> Result<(Sandbox, Vec<(String, DatasetConfig)>), SandboxError> {
    let (data, extra) = write_data(opts)?;
    let mut sandbox_opts = SandboxOptions::new(opts.work_dir.clone());
    sandbox_opts.insecure = opts.insecure;
    let all: Vec<(String, DatasetConfig)> = data.iter().chain(&extra).cloned().collect();
    let parties = PARTIES.map(String::from);
    let sandbox = Sandbox::start_with_datasets(sandbox_opts, &parties, &all).await?;
    Ok((sandbox, data))
}

/// Writes the synthetic data under `opts.work_dir`: the training records ([`synthetic_risk::DATASET`],
/// returned first), then the new records to score ([`NEW_DATASET`]) and one application
/// ([`APPLICATION_DATASET`]), each as `(party, dataset)` pairs.
///
/// # Errors
/// A file cannot be written.
#[allow(clippy::type_complexity)]
pub fn write_data(
    opts: &ClaimsDemoOptions,
) -> Result<(Vec<(String, DatasetConfig)>, Vec<(String, DatasetConfig)>), SandboxError> {
    let data_opts = synthetic_risk::RiskDataOptions {
        rows: opts.rows,
        overlap: opts.overlap,
        seed: opts.seed,
        ..Default::default()
    };
    let data = synthetic_risk::write_risk_data(&opts.work_dir, &data_opts)?;
    let new_opts = synthetic_risk::RiskDataOptions {
        rows: opts.score_rows,
        seed: opts.seed.wrapping_add(1),
        ..data_opts
    };
    let mut extra = synthetic_risk::write_risk_data(&opts.work_dir.join("new"), &new_opts)?;
    for (_, ds) in &mut extra {
        ds.name = NEW_DATASET.into();
    }
    extra.extend(write_application(opts, &extra)?);
    Ok((data, extra))
}

/// Runs the demo; `on_update` sees every state change of each job.
pub async fn run(
    opts: &ClaimsDemoOptions,
    mut on_update: impl FnMut(&pb::Job),
) -> Result<ClaimsDemoReport, SandboxError> {
    let (sandbox, data) = start(opts).await?;
    let outcome = async {
        let key = RecipientSecretKey::generate(&mut seeds::os_rng()?);
        let public = key.public_key()?.to_vec();
        let started = Instant::now();
        let psi = sandbox
            .run_job_to_success(psi_spec(public.clone()), &mut on_update)
            .await?;
        let psi_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let job = sandbox
            .run_job_to_success(train_spec(opts, &psi.id, public.clone()), &mut on_update)
            .await?;
        let mut client = sandbox.analyst().await?;
        let result =
            analyst::fetch_train_result(&mut client, &job, &key, &sandbox.party_keys()).await?;
        let train_job_seconds = started.elapsed().as_secs_f64();
        // Score the new records with the stored model, then one application on its own.
        let started = Instant::now();
        let scored = sandbox
            .run_job_to_success(
                score_spec(&job.id, NEW_DATASET, public.clone()),
                &mut on_update,
            )
            .await?;
        let scores =
            analyst::fetch_score_result(&mut client, &scored, &key, &sandbox.party_keys()).await?;
        let score_job_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let one = sandbox
            .run_job_to_success(
                score_spec(&job.id, APPLICATION_DATASET, public.clone()),
                &mut on_update,
            )
            .await?;
        let application =
            analyst::fetch_score_result(&mut client, &one, &key, &sandbox.party_keys()).await?;
        let single_record_seconds = started.elapsed().as_secs_f64();
        let scoring = Scoring {
            scores,
            score_job_seconds,
            application,
            single_record_seconds,
        };
        // The common order, as the hospital stored it (the clear pipeline needs it; no real
        // deployment has one party's files, let alone all three).
        let order = stored_intersection(&sandbox, PARTIES[0], &psi.id)?;
        Ok::<_, SandboxError>((
            psi,
            psi_seconds,
            job,
            result,
            train_job_seconds,
            order,
            scoring,
        ))
    }
    .await;
    sandbox.shut_down().await;
    let (psi, psi_seconds, job, result, train_job_seconds, order, scoring) = outcome?;

    let opts2 = opts.clone();
    let clear = tokio::task::spawn_blocking(move || clear_pipeline(&opts2, &data, &order))
        .await
        .map_err(|_| SandboxError::Aborted("the clear pipeline panicked".into()))??;
    let clear_scores = {
        let (opts2, ids) = (opts.clone(), scoring.scores.ids.clone());
        let app = scoring.application.ids.clone();
        let new = new_datasets(opts)?;
        let weights = clear.weights.clone();
        let stds = clear.standardizers.clone();
        tokio::task::spawn_blocking(move || {
            Ok::<_, SandboxError>((
                clear_logits(&opts2, &new, &ids, &weights, &stds)?,
                clear_logits(&opts2, &new, &app, &weights, &stds)?,
            ))
        })
        .await
        .map_err(|_| SandboxError::Aborted("the clear scoring panicked".into()))??
    };
    report(
        opts,
        Timings {
            psi_seconds,
            train_job_seconds,
        },
        (psi, job, result),
        clear,
        scoring,
        clear_scores,
    )
}

/// The `score` jobs' opened results and timings.
struct Scoring {
    scores: ScoreResult,
    score_job_seconds: f64,
    application: ScoreResult,
    single_record_seconds: f64,
}

/// Wall times of the `psi` and `train` jobs.
struct Timings {
    psi_seconds: f64,
    train_job_seconds: f64,
}

/// The f64 model `clear` applied to the new records `ids` (of [`NEW_DATASET`], as [`write_data`]
/// wrote them): their logits, in the order of `ids`.
///
/// # Errors
/// A file cannot be read, or lacks a feature.
pub fn clear_new_logits(
    opts: &ClaimsDemoOptions,
    ids: &[String],
    clear: &ClearRun,
) -> Result<Vec<f64>, SandboxError> {
    clear_logits(
        opts,
        &new_datasets(opts)?,
        ids,
        &clear.weights,
        &clear.standardizers,
    )
}

/// The new-record datasets as written by [`write_data`] (paths under the work directory).
fn new_datasets(opts: &ClaimsDemoOptions) -> Result<Vec<(String, DatasetConfig)>, SandboxError> {
    let dir = opts.work_dir.join("new");
    PARTIES
        .iter()
        .map(|p| {
            synthetic_risk::risk_schema(p, dir.join(format!("{p}.csv")))
                .map(|ds| (p.to_string(), ds))
                .ok_or_else(|| SandboxError::Failed(format!("no schema for {p:?}")))
        })
        .collect()
}

/// The f64 model's logits for the records `ids` of the new files: features standardised with the
/// training standardisation.
fn clear_logits(
    opts: &ClaimsDemoOptions,
    data: &[(String, DatasetConfig)],
    ids: &[String],
    weights: &[f64],
    standardizers: &[Standardizer],
) -> Result<Vec<f64>, SandboxError> {
    let columns = aligned_columns(opts, data, ids)?;
    let mut features = Vec::new();
    for (name, fit) in feature_names().iter().zip(standardizers) {
        let raw = columns
            .get(name)
            .ok_or_else(|| SandboxError::Failed(format!("the new records miss {name:?}")))?;
        features.push(raw.iter().map(|&x| fit.apply(x)).collect::<Vec<_>>());
    }
    Ok(glm::plain::logits(
        &features,
        weights,
        0..ids.len(),
        opts.params.fit_intercept,
    ))
}

/// Writes the application: each party's row of one person all three hold in the new records
/// (the first id of the hospital's new file that the other two also have), as a one-row dataset
/// [`APPLICATION_DATASET`].
fn write_application(
    opts: &ClaimsDemoOptions,
    new: &[(String, DatasetConfig)],
) -> Result<Vec<(String, DatasetConfig)>, SandboxError> {
    let read = |ds: &DatasetConfig| {
        let path = opts.work_dir.join(&ds.path);
        std::fs::read_to_string(&path).map_err(crate::error::io_err(&path))
    };
    let texts = new
        .iter()
        .map(|(_, ds)| read(ds))
        .collect::<Result<Vec<_>, _>>()?;
    let id_of = |line: &str| line.split(',').next().unwrap_or("").to_string();
    let held = |t: &str, id: &str| t.lines().skip(1).any(|l| id_of(l) == id);
    let id = texts
        .first()
        .and_then(|t| {
            t.lines()
                .skip(1)
                .map(id_of)
                .find(|id| texts[1..].iter().all(|o| held(o, id)))
        })
        .ok_or_else(|| SandboxError::Failed("no person is held by all three".into()))?;
    let dir = opts.work_dir.join("application");
    std::fs::create_dir_all(&dir).map_err(crate::error::io_err(&dir))?;
    let mut out = Vec::new();
    for ((party, ds), text) in new.iter().zip(&texts) {
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let row = lines.find(|l| id_of(l) == id).unwrap_or_default();
        let path = dir.join(format!("{party}.csv"));
        std::fs::write(&path, format!("{header}\n{row}\n")).map_err(crate::error::io_err(&path))?;
        let mut app = ds.clone();
        app.name = APPLICATION_DATASET.into();
        app.path = path;
        out.push((party.clone(), app));
    }
    Ok(out)
}

/// A `score` job of the model `model_id` over `dataset` at all three parties (inline PSI),
/// scores and decisions at 0.5, the insurer's record ids.
pub fn score_spec(model_id: &str, dataset: &str, key: Vec<u8>) -> pb::JobSpec {
    pb::JobSpec {
        name: format!("demo: score {dataset} with {model_id}"),
        inputs: inputs(dataset),
        output: output(key),
        join: Some(pb::JoinSpec {
            id_columns: id_columns(),
            psi_job: String::new(),
        }),
        computation: Some(job_spec::Computation::Score(pb::ScoreJob {
            model_id: model_id.into(),
            output: "both".into(),
            threshold: Some(0.5),
            ids_from: LABEL_PARTY.into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The intersection `party` stored for `psi_job`, in the common order.
pub fn stored_intersection(
    sandbox: &Sandbox,
    party: &str,
    psi_job: &str,
) -> Result<Vec<String>, SandboxError> {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let cfg = sandbox.party_config(party, loopback, Vec::new());
    let path = intersection_path(&cfg, psi_job);
    Ok(std::fs::read_to_string(&path)
        .map_err(crate::error::io_err(&path))?
        .lines()
        .map(str::to_owned)
        .collect())
}

/// The f64 pipeline's outcome.
#[derive(Debug, Clone)]
pub struct ClearRun {
    /// Weights (features, then the intercept).
    pub weights: Vec<f64>,
    /// AUC on the same held-out rows as the secure run.
    pub auc: f64,
    /// Aligned rows.
    pub rows: usize,
    /// The training standardisation of every feature (model order).
    pub standardizers: Vec<Standardizer>,
}

/// The pipeline in the clear from all three files (what no deployment can do): rows in the
/// PSI's common order `order`, features standardised over the training rows, the same schedule
/// and effective steps ([`glm::plain::train`]), the AUC on the same held-out rows.
pub fn clear_pipeline(
    opts: &ClaimsDemoOptions,
    data: &[(String, DatasetConfig)],
    order: &[String],
) -> Result<ClearRun, SandboxError> {
    let n = order.len();
    let columns = aligned_columns(opts, data, order)?;
    let take = |name: &str| {
        columns
            .get(name)
            .cloned()
            .ok_or_else(|| SandboxError::Failed(format!("the clear pipeline misses {name:?}")))
    };
    let h = ((n as f64) * opts.holdout).floor() as usize;
    let train_rows = n - h;
    let mut features = Vec::new();
    let mut standardizers = Vec::new();
    for name in feature_names() {
        let raw = take(&name)?;
        let fit = Standardizer::fit(&raw[..train_rows])?;
        features.push(raw.iter().map(|&x| fit.apply(x)).collect::<Vec<_>>());
        standardizers.push(fit);
    }
    let label = take(&format!("{LABEL_PARTY}.{LABEL_COLUMN}"))?;
    let weights = glm::plain::train(&features, &label, 0..train_rows, &opts.params)?;
    let test = train_rows..train_rows + h.min(AUC_MAX_ROWS);
    let logits = glm::plain::logits(&features, &weights, test.clone(), opts.params.fit_intercept);
    let auc = glm::plain::auc(&logits, &label[test]).unwrap_or(f64::NAN);
    Ok(ClearRun {
        weights,
        auc,
        rows: n,
        standardizers,
    })
}

/// Every column of the files `data` (as `party.column`), at the rows of `order`'s ids in that
/// order (NaN where a file lacks an id).
fn aligned_columns(
    opts: &ClaimsDemoOptions,
    data: &[(String, DatasetConfig)],
    order: &[String],
) -> Result<HashMap<String, Vec<f64>>, SandboxError> {
    let n = order.len();
    let position: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(k, id)| (id.as_str(), k))
        .collect();
    let mut columns: HashMap<String, Vec<f64>> = HashMap::new();
    for (party, ds) in data {
        let path = opts.work_dir.join(&ds.path);
        let wanted: Vec<&str> = ds.columns.iter().map(|c| c.name.as_str()).collect();
        let table = dataset::load_columns(ds, &path, &wanted)?;
        let ids = id_strings(&table, &ds.name, ID_COLUMN)?;
        for c in ds.columns.iter().filter(|c| c.name != ID_COLUMN) {
            let values = table.numeric(&c.name).ok_or_else(|| {
                SandboxError::Failed(format!("column {:?} is not numeric", c.name))
            })?;
            let mut aligned = vec![f64::NAN; n];
            for (id, v) in ids.iter().zip(values) {
                if let Some(&k) = position.get(id.as_str()) {
                    aligned[k] = *v;
                }
            }
            columns.insert(format!("{party}.{}", c.name), aligned);
        }
    }
    Ok(columns)
}

fn report(
    opts: &ClaimsDemoOptions,
    t: Timings,
    (psi, job, result): (pb::Job, pb::Job, TrainResult),
    clear: ClearRun,
    scoring: Scoring,
    (clear_logits, clear_app): (Vec<f64>, Vec<f64>),
) -> Result<ClaimsDemoReport, SandboxError> {
    let (psi_seconds, train_job_seconds) = (t.psi_seconds, t.train_job_seconds);
    let secure_weights = result
        .weights
        .clone()
        .ok_or_else(|| SandboxError::Failed("the train job revealed no weights".into()))?;
    let secure_auc = result
        .value
        .ok_or_else(|| SandboxError::Failed("the train job computed no AUC".into()))?;
    if secure_weights.len() != clear.weights.len() || result.rows as usize != clear.rows {
        return Err(SandboxError::Failed(
            "the secure and clear pipelines disagree on the shape".into(),
        ));
    }
    let max_weight_error = secure_weights
        .iter()
        .zip(&clear.weights)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    // Scores: the secure σ (≤ 10⁻³ off) of secure logits against σ of the f64 logits.
    let secure_scores = scoring.scores.scores.clone().unwrap_or_default();
    let secure_decisions = scoring.scores.decisions.clone().unwrap_or_default();
    if secure_scores.len() != clear_logits.len() || secure_decisions.len() != clear_logits.len() {
        return Err(SandboxError::Failed(
            "the score job returned the wrong number of results".into(),
        ));
    }
    let max_score_error = secure_scores
        .iter()
        .zip(&clear_logits)
        .map(|(s, z)| (s - glm::plain::sigmoid(*z)).abs())
        .fold(0.0, f64::max);
    let mismatched: Vec<usize> = (0..clear_logits.len())
        .filter(|&i| secure_decisions[i] != (clear_logits[i] >= 0.0))
        .collect();
    let clear_decision_mismatches = mismatched
        .iter()
        .filter(|&&i| clear_logits[i].abs() > 1e-3)
        .count() as u64;
    let single_record_decision = scoring
        .application
        .decisions
        .as_ref()
        .and_then(|d| d.first().copied())
        .ok_or_else(|| SandboxError::Failed("the application got no decision".into()))?;
    let app_matches = clear_app
        .first()
        .is_some_and(|z| (*z >= 0.0) == single_record_decision || z.abs() <= 1e-3);
    let within_bound = max_weight_error <= WEIGHT_BOUND
        && (secure_auc - clear.auc).abs() <= AUC_BOUND
        && max_score_error <= SCORE_BOUND
        && clear_decision_mismatches == 0
        && app_matches;
    Ok(ClaimsDemoReport {
        psi_job_id: psi.id,
        train_job_id: job.id.clone(),
        rows: result.rows,
        train_rows: result.train_rows,
        holdout_rows: result.holdout_rows,
        features: result.features.len(),
        secure_auc,
        plaintext_auc: clear.auc,
        max_weight_error,
        secure_weights,
        plaintext_weights: clear.weights,
        feature_names: result.features.clone(),
        steps: result.steps,
        train_seconds: result.train_seconds,
        train_job_seconds,
        psi_seconds,
        rounds: crate::demo::max_rounds(&job),
        bytes_sent_per_party: crate::demo::bytes_sent(&job),
        scored_records: scoring.scores.rows,
        max_score_error,
        decision_mismatches: mismatched.len() as u64,
        clear_decision_mismatches,
        score_seconds: scoring.scores.score_seconds,
        score_job_seconds: scoring.score_job_seconds,
        single_record_seconds: scoring.single_record_seconds,
        single_record_decision,
        within_bound,
        tls: !opts.insecure,
    })
}

#[cfg(test)]
mod tests;
