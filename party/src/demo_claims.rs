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
use std::time::{Duration, Instant};

use serde::Serialize;
use treaty_mpc::glm::{self, GlmKind, Standardizer, TrainParams};
use treaty_mpc::output::RecipientSecretKey;
use treaty_mpc::seeds;
use treaty_proto::v1::{self as pb, job_spec};

use crate::dataset::{self, DatasetConfig};
use crate::join::{id_strings, intersection_path};
use crate::sandbox::{ANALYST, Sandbox, SandboxOptions};
use crate::synthetic_risk::{self, FEATURES, ID_COLUMN, LABEL_COLUMN, LABEL_PARTY, PARTIES};
use crate::train::{AUC_MAX_ROWS, TrainResult};
use crate::{PartyError, analyst};

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

/// The features as `party.column`, in model order (hospital, insurer, bank).
pub fn feature_names() -> Vec<String> {
    FEATURES
        .iter()
        .map(|f| format!("{}.{}", f.party, f.name))
        .collect()
}

/// The `train` job: every feature, the insurer's fraud flag, the PSI's stored intersection.
pub fn train_spec(opts: &ClaimsDemoOptions, psi_job: &str, key: Vec<u8>) -> pb::JobSpec {
    let p = &opts.params;
    pb::JobSpec {
        name: "demo: claim fraud model, hospital + insurer + bank".into(),
        inputs: PARTIES
            .iter()
            .map(|p| pb::JobInput {
                party: (*p).into(),
                dataset: synthetic_risk::DATASET.into(),
            })
            .collect(),
        output: Some(pb::JobOutput {
            recipient: ANALYST.into(),
            recipient_public_key: key,
        }),
        frac_bits: opts.frac_bits,
        join: Some(pb::JoinSpec {
            id_columns: PARTIES
                .iter()
                .map(|p| ((*p).to_string(), ID_COLUMN.to_string()))
                .collect(),
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
fn psi_spec(key: Vec<u8>) -> pb::JobSpec {
    pb::JobSpec {
        name: "demo: people the hospital, insurer and bank share".into(),
        inputs: PARTIES
            .iter()
            .map(|p| pb::JobInput {
                party: (*p).into(),
                dataset: synthetic_risk::DATASET.into(),
            })
            .collect(),
        output: Some(pb::JobOutput {
            recipient: ANALYST.into(),
            recipient_public_key: key,
        }),
        computation: Some(job_spec::Computation::Psi(pb::PsiJob {
            reveal: pb::PsiReveal::Intersection as i32,
            to: PARTIES.iter().map(|p| (*p).to_string()).collect(),
            id_columns: Default::default(),
        })),
        ..Default::default()
    }
}

/// Writes the synthetic data and starts the sandbox: the coordinator and the three parties with
/// their datasets, all online. Returns the sandbox and the datasets by party.
pub async fn start(
    opts: &ClaimsDemoOptions,
) -> Result<(Sandbox, Vec<(String, DatasetConfig)>), PartyError> {
    let data_opts = synthetic_risk::RiskDataOptions {
        rows: opts.rows,
        overlap: opts.overlap,
        seed: opts.seed,
        ..Default::default()
    };
    let data = synthetic_risk::write_risk_data(&opts.work_dir, &data_opts)?;
    let mut sandbox_opts = SandboxOptions::new(opts.work_dir.clone());
    sandbox_opts.insecure = opts.insecure;
    let parties = PARTIES.map(String::from);
    let mut sandbox = Sandbox::start(sandbox_opts, &parties).await?;
    let started = async {
        for party in &parties {
            let datasets = data
                .iter()
                .filter(|(p, _)| p == party)
                .map(|(_, d)| d.clone())
                .collect();
            sandbox.start_party(party, datasets).await?;
        }
        sandbox.wait_online(&parties, Duration::from_secs(60)).await
    }
    .await;
    match started {
        Ok(()) => Ok((sandbox, data)),
        Err(e) => {
            sandbox.shut_down().await;
            Err(e)
        }
    }
}

/// Runs the demo; `on_update` sees every state change of each job.
pub async fn run(
    opts: &ClaimsDemoOptions,
    mut on_update: impl FnMut(&pb::Job),
) -> Result<ClaimsDemoReport, PartyError> {
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
            .run_job_to_success(train_spec(opts, &psi.id, public), &mut on_update)
            .await?;
        let mut client = sandbox.analyst().await?;
        let result = analyst::fetch_train_result(&mut client, &job, &key).await?;
        let train_job_seconds = started.elapsed().as_secs_f64();
        // The common order, as the hospital stored it (the clear pipeline needs it; no real
        // deployment has one party's files, let alone all three).
        let order = stored_intersection(&sandbox, PARTIES[0], &psi.id)?;
        Ok::<_, PartyError>((psi, psi_seconds, job, result, train_job_seconds, order))
    }
    .await;
    sandbox.shut_down().await;
    let (psi, psi_seconds, job, result, train_job_seconds, order) = outcome?;

    let opts2 = opts.clone();
    let clear = tokio::task::spawn_blocking(move || clear_pipeline(&opts2, &data, &order))
        .await
        .map_err(|_| PartyError::Aborted("the clear pipeline panicked".into()))??;
    report(
        opts,
        psi,
        psi_seconds,
        job,
        result,
        train_job_seconds,
        clear,
    )
}

/// The intersection `party` stored for `psi_job`, in the common order.
pub fn stored_intersection(
    sandbox: &Sandbox,
    party: &str,
    psi_job: &str,
) -> Result<Vec<String>, PartyError> {
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
}

/// The pipeline in the clear from all three files (what no deployment can do): rows in the
/// PSI's common order `order`, features standardised over the training rows, the same schedule
/// and effective steps ([`glm::plain::train`]), the AUC on the same held-out rows.
pub fn clear_pipeline(
    opts: &ClaimsDemoOptions,
    data: &[(String, DatasetConfig)],
    order: &[String],
) -> Result<ClearRun, PartyError> {
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
        let ids = id_strings(&table, ID_COLUMN)?;
        for c in ds.columns.iter().filter(|c| c.name != ID_COLUMN) {
            let values = table.numeric(&c.name).ok_or_else(|| {
                PartyError::Rejected(format!("column {:?} is not numeric", c.name))
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
    let take = |name: &str| {
        columns
            .get(name)
            .cloned()
            .ok_or_else(|| PartyError::Rejected(format!("the clear pipeline misses {name:?}")))
    };
    let h = ((n as f64) * opts.holdout).floor() as usize;
    let train_rows = n - h;
    let mut features = Vec::new();
    for name in feature_names() {
        let raw = take(&name)?;
        let fit = Standardizer::fit(&raw[..train_rows])?;
        features.push(raw.iter().map(|&x| fit.apply(x)).collect::<Vec<_>>());
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
    })
}

fn report(
    opts: &ClaimsDemoOptions,
    psi: pb::Job,
    psi_seconds: f64,
    job: pb::Job,
    result: TrainResult,
    train_job_seconds: f64,
    clear: ClearRun,
) -> Result<ClaimsDemoReport, PartyError> {
    let secure_weights = result
        .weights
        .clone()
        .ok_or_else(|| PartyError::Rejected("the train job revealed no weights".into()))?;
    let secure_auc = result
        .value
        .ok_or_else(|| PartyError::Rejected("the train job computed no AUC".into()))?;
    if secure_weights.len() != clear.weights.len() || result.rows as usize != clear.rows {
        return Err(PartyError::Rejected(
            "the secure and clear pipelines disagree on the shape".into(),
        ));
    }
    let max_weight_error = secure_weights
        .iter()
        .zip(&clear.weights)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let within_bound =
        max_weight_error <= WEIGHT_BOUND && (secure_auc - clear.auc).abs() <= AUC_BOUND;
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
        within_bound,
        tls: !opts.insecure,
    })
}

#[cfg(test)]
mod tests;
