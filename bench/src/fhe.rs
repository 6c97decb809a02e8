//! `treaty bench fhe`: the FHE path measured end to end, beside the same circuits run directly
//! on tfhe-rs with the same parameters.
//!
//! - **Keys**: generation time, the compressed server key's serialized size, and the evaluator's
//!   import (size limit, conformance check, decompression).
//! - **Upload**: the first job sends the server key, later ones find it cached; the difference
//!   between a cold and a warm one-claim job is the key's upload (57 MiB over mutual TLS).
//! - **Per model** (linear, scorecard, tree on the demo's 8 claim features): one claim's latency
//!   and a batch's throughput, *direct* (the same circuit in one process: encrypt, evaluate and
//!   mask, decrypt the masked values, unmask — no serialization, transport or scheduling) and
//!   *Treaty* (an `fhe-score` job: coordinator, two
//!   nodes on loopback with mutual TLS, seeded compressed upload, evaluation, masking,
//!   compressed return, the owner's decryption, unmasking, sealing, opening), and the ratio —
//!   Treaty's overhead is everything but the circuit. Bootstraps per claim from tfhe's counter.
//!
//! Every result is checked against the clear model; a mismatch fails the bench.

use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;
use treaty_fhe::{EncryptedRows, Evaluator, FheModel, OwnerKeys, Release, import_server_key};
use treaty_mpc::output::RecipientSecretKey;
use treaty_mpc::seeds;

use crate::BenchError;
use treaty_analyst as analyst;
use treaty_party::fhe_score;
use treaty_sandbox::demo_fhe::{self, EVALUATOR, OWNER};
use treaty_sandbox::sandbox::{Sandbox, SandboxOptions};
use treaty_sandbox::synthetic_risk::{self, RiskDataOptions};

/// What to run.
#[derive(Debug, Clone)]
pub struct FheBenchOptions {
    /// Working directory.
    pub work_dir: PathBuf,
    /// Model kinds.
    pub models: Vec<String>,
    /// Claims per batch.
    pub batch: usize,
    /// Timed one-claim runs per model (the median is reported).
    pub repeat: usize,
}

/// One model's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FheBenchCase {
    /// The model kind.
    pub model: String,
    /// Bootstraps per claim: evaluation and masking (tfhe's counter, direct run).
    pub bootstraps_per_claim: f64,
    /// One claim, the same circuit directly on tfhe: encrypt, evaluate and mask, decrypt,
    /// unmask (median seconds).
    pub direct_claim_seconds: f64,
    /// One claim through an `fhe-score` job, submission to opened result (median seconds).
    pub treaty_claim_seconds: f64,
    /// `treaty / direct`.
    pub claim_ratio: f64,
    /// Claims per second over a batch, direct.
    pub direct_claims_per_second: f64,
    /// Claims per second over a batch, through a job.
    pub treaty_claims_per_second: f64,
    /// `direct / treaty` throughput.
    pub batch_ratio: f64,
}

/// The bench's report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FheBenchReport {
    /// Seconds to generate a key pair.
    pub keygen_seconds: f64,
    /// The compressed server key, serialized.
    pub server_key_bytes: u64,
    /// The evaluator's import: limit, conformance, decompression.
    pub server_key_import_seconds: f64,
    /// A cold one-claim job minus a warm one: the key's upload and import.
    pub key_upload_seconds: f64,
    /// Claims per batch.
    pub batch: usize,
    /// Per model.
    pub cases: Vec<FheBenchCase>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the bench; `progress` hears what is being measured.
///
/// # Errors
/// Any failure, or a result that differs from the clear model.
pub async fn run(
    opts: &FheBenchOptions,
    mut progress: impl FnMut(&str),
) -> Result<FheBenchReport, BenchError> {
    let features = demo_fhe::features()?;
    let models: Vec<FheModel> = opts
        .models
        .iter()
        .map(|k| {
            FheModel::new(demo_fhe::model(k)?, &features)
                .map_err(|e| BenchError::Failed(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    // Data: the demo's hospital claims.
    let data = synthetic_risk::generate(&RiskDataOptions {
        rows: opts.batch.max(1),
        overlap: 1.0,
        ..RiskDataOptions::default()
    })?;
    let files = synthetic_risk::write_risk_files(&opts.work_dir.join("data"), &data)?;
    let hospital: Vec<_> = files.into_iter().filter(|(p, _)| p == OWNER).collect();
    let ds = hospital
        .first()
        .map(|(_, d)| d.clone())
        .ok_or_else(|| BenchError::Failed("no hospital file".into()))?;
    let spec = demo_fhe::spec("x", "", Vec::new());
    let plan = match &spec.computation {
        Some(treaty_proto::v1::job_spec::Computation::FheScore(j)) => {
            fhe_score::FhePlan::new(j, &[OWNER.to_string(), EVALUATOR.to_string()])?
        }
        _ => return Err(BenchError::Failed("bench spec".into())),
    };
    let rows = fhe_score::load_rows(&ds.path, &ds, &plan)?.rows;

    // Keys, direct.
    progress("key generation");
    let t = Instant::now();
    let keys = tokio::task::spawn_blocking(OwnerKeys::generate)
        .await
        .map_err(|_| BenchError::Aborted("key generation panicked".into()))?
        .map_err(|e| BenchError::Failed(e.to_string()))?;
    let keygen_seconds = t.elapsed().as_secs_f64();
    let bytes = keys
        .export_server_key()
        .map_err(|e| BenchError::Failed(e.to_string()))?;
    let t = Instant::now();
    let (server, _) =
        import_server_key(bytes.as_bytes()).map_err(|e| BenchError::Failed(e.to_string()))?;
    let evaluator =
        Evaluator::from_compressed(server).map_err(|e| BenchError::Failed(e.to_string()))?;
    let server_key_import_seconds = t.elapsed().as_secs_f64();

    // Direct runs.
    let mut cases = Vec::new();
    for model in &models {
        progress(&format!("{}: direct on tfhe", model.kind()));
        let (one, pbs) = direct(&evaluator, &keys, model, &rows[..1], opts.repeat)?;
        let (batch, _) = direct(&evaluator, &keys, model, &rows, 1)?;
        cases.push(FheBenchCase {
            model: model.kind().into(),
            bootstraps_per_claim: pbs,
            direct_claim_seconds: one,
            treaty_claim_seconds: f64::NAN,
            claim_ratio: f64::NAN,
            direct_claims_per_second: rows.len() as f64 / batch,
            treaty_claims_per_second: f64::NAN,
            batch_ratio: f64::NAN,
        });
    }
    drop(evaluator);

    // Through jobs.
    let one_claim: Vec<_> = {
        // A one-claim copy of the hospital file for the latency jobs.
        let mut ds1 = ds.clone();
        ds1.name = "risk1".into();
        ds1.path = opts.work_dir.join("data").join("hospital-1.csv");
        let text = std::fs::read_to_string(&ds.path).map_err(crate::error::io_err(&ds.path))?;
        let head: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        std::fs::write(&ds1.path, head).map_err(crate::error::io_err(&ds1.path))?;
        vec![(OWNER.to_string(), ds.clone()), (OWNER.to_string(), ds1)]
    };
    let sandbox = Sandbox::start_with_datasets(
        SandboxOptions::new(opts.work_dir.clone()),
        &[OWNER.to_string(), EVALUATOR.to_string()],
        &one_claim,
    )
    .await?;
    let outcome = async {
        let state = sandbox.dir().join(format!("{EVALUATOR}-state"));
        let key = RecipientSecretKey::generate(&mut seeds::os_rng()?);
        let job = |model_id: String, dataset: &'static str| {
            let mut spec = demo_fhe::spec(
                &model_id,
                "scores",
                key.public_key().map(|k| k.to_vec()).unwrap_or_default(),
            );
            spec.inputs[0].dataset = dataset.into();
            let sandbox = &sandbox;
            let key = &key;
            async move {
                let t = Instant::now();
                let job = sandbox.run_job_to_success(spec, |_| {}).await?;
                let mut client = sandbox.analyst().await?;
                let result =
                    analyst::fetch_fhe_score_result(&mut client, &job, key, &sandbox.party_keys())
                        .await?;
                Ok::<_, BenchError>((t.elapsed().as_secs_f64(), result))
            }
        };
        let mut upload = f64::NAN;
        for (model, case) in models.iter().zip(&mut cases) {
            let model_id = format!("bench-{}", model.kind());
            demo_fhe::write_model(&state, &model_id, model.spec())?;
            progress(&format!("{}: one claim through a job", model.kind()));
            let mut times = Vec::new();
            for run in 0..=opts.repeat {
                let (secs, result) = job(model_id.clone(), "risk1").await?;
                check(model, &rows[..1], &result)?;
                if run == 0 && upload.is_nan() {
                    // Cold: the key travels; keep it out of the latency.
                    upload = secs;
                    continue;
                }
                times.push(secs);
            }
            case.treaty_claim_seconds = median(times);
            case.claim_ratio = case.treaty_claim_seconds / case.direct_claim_seconds;
            progress(&format!(
                "{}: {} claims through a job",
                model.kind(),
                rows.len()
            ));
            let (secs, result) = job(model_id, "risk").await?;
            check(model, &rows, &result)?;
            case.treaty_claims_per_second = rows.len() as f64 / secs;
            case.batch_ratio = case.direct_claims_per_second / case.treaty_claims_per_second;
        }
        let warm = cases.first().map_or(f64::NAN, |c| c.treaty_claim_seconds);
        Ok::<_, BenchError>(upload - warm)
    }
    .await;
    sandbox.shut_down().await;
    let key_upload_seconds = outcome?;
    Ok(FheBenchReport {
        keygen_seconds,
        server_key_bytes: bytes.as_bytes().len() as u64,
        server_key_import_seconds,
        key_upload_seconds,
        batch: rows.len(),
        cases,
    })
}

/// The same circuit as a job runs, directly on tfhe in one process, `repeat` times: encrypt,
/// evaluate and mask (`evaluate_masked`, release `scores`), decrypt the masked values, unmask.
/// Returns the median seconds and the bootstraps per claim (evaluation and masking); checks every
/// result against the clear model.
fn direct(
    evaluator: &Evaluator,
    keys: &OwnerKeys,
    model: &FheModel,
    rows: &[Vec<u16>],
    repeat: usize,
) -> Result<(f64, f64), BenchError> {
    let err = |e: treaty_fhe::FheError| BenchError::Failed(e.to_string());
    let mut times = Vec::new();
    let mut pbs = 0;
    let mut rng = treaty_fhe::os_rng().map_err(err)?;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let encrypted =
            EncryptedRows::encrypt(model.features(), rows, keys.client_key()).map_err(err)?;
        let before = treaty_fhe::bootstraps();
        let (masked, masks) = evaluator
            .evaluate_masked(model, &encrypted, Release::Scores, &mut rng)
            .map_err(err)?;
        pbs = treaty_fhe::bootstraps() - before;
        let values: Vec<u64> = masked
            .par_iter()
            .map(|m| m.decrypt(keys.client_key()))
            .collect();
        let got = masks.unmask(&values).map_err(err)?;
        times.push(t.elapsed().as_secs_f64());
        for (row, got) in rows.iter().zip(got) {
            let (score, decision) = model.evaluate_clear(row).map_err(err)?;
            if got.score != Some(score) || got.decision != decision {
                return Err(BenchError::Failed(format!(
                    "{}: a direct result differs from the clear model",
                    model.kind()
                )));
            }
        }
    }
    Ok((median(times), pbs as f64 / rows.len() as f64))
}

fn check(
    model: &FheModel,
    rows: &[Vec<u16>],
    result: &treaty_analyst::FheScoreResult,
) -> Result<(), BenchError> {
    let scores = result.scores.as_deref().unwrap_or_default();
    let decisions = result.decisions.as_deref().unwrap_or_default();
    let ok = scores.len() == rows.len()
        && rows.iter().enumerate().all(|(i, r)| {
            model
                .evaluate_clear(r)
                .is_ok_and(|(s, d)| i64::from(s) == scores[i] && d == decisions[i])
        });
    if ok {
        Ok(())
    } else {
        Err(BenchError::Failed(format!(
            "{}: a job's result differs from the clear model",
            model.kind()
        )))
    }
}
