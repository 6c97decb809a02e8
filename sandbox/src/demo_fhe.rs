//! `treaty demo fhe`: a hospital and an insurer on loopback. The hospital's claims stay encrypted
//! under the hospital's own tfhe key; the insurer applies its own model to the ciphertexts; the
//! insurer learns each claim's score and decision, the hospital learns nothing (it only decrypts
//! masked values). Every decision is checked against the same model applied in the clear.
//!
//! The claims are the hospital's file of the synthetic claim-fraud data
//! ([`crate::synthetic_risk`]); eight of its columns are the encrypted features.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use treaty_fhe::{Feature, FheModel, ModelSpec};
use treaty_mpc::output::RecipientSecretKey;
use treaty_mpc::seeds;
use treaty_proto::v1::{self as pb, job_spec};

use crate::SandboxError;
use crate::error::io_err;
use crate::sandbox::{Sandbox, SandboxOptions};
use crate::synthetic_risk::{self, RiskDataOptions};
use treaty_analyst as analyst;
use treaty_analyst::FheScoreResult;
use treaty_party::dataset::DatasetConfig;
use treaty_party::fhe_score;

/// The data owner.
pub const OWNER: &str = "hospital";
/// The model holder.
pub const EVALUATOR: &str = "insurer";

/// The encrypted features: hospital column, bits, quantisation scale.
pub const FEATURES: [(&str, u32, f64); 8] = [
    ("age", 7, 1.0),
    ("bmi", 10, 10.0),
    ("chronic_conditions", 4, 1.0),
    ("smoker", 1, 1.0),
    ("admissions_12m", 4, 1.0),
    ("length_of_stay", 8, 1.0),
    ("er_visits_12m", 5, 1.0),
    ("prescriptions", 5, 1.0),
];

/// The insurer's models (integer coefficients on the quantised features), by kind.
///
/// # Errors
/// [`SandboxError::Failed`] for an unknown kind.
pub fn model(kind: &str) -> Result<ModelSpec, SandboxError> {
    let features: Vec<String> = FEATURES.iter().map(|f| f.0.to_string()).collect();
    let json = match kind {
        "linear" => serde_json::json!({
            "kind": "linear",
            "features": features,
            "weights": [-2, 1, -40, 15, -60, -3, 25, 18],
            "bias": 300,
            "threshold": 507,
        }),
        "scorecard" => serde_json::json!({
            "kind": "scorecard",
            "features": features,
            "base": 600,
            "bins": [
                {"edges": [35, 50, 65], "points": [15, 5, 0, -10]},
                {"edges": [250, 300, 350], "points": [0, 3, 8, 15]},
                {"edges": [2, 4], "points": [0, -10, -25]},
                {"edges": [1], "points": [0, 12]},
                {"edges": [1, 3], "points": [0, -15, -35]},
                {"edges": [4, 10], "points": [0, -5, -20]},
                {"edges": [2, 5], "points": [0, 10, 30]},
                {"edges": [5, 12], "points": [0, 8, 20]},
            ],
            "threshold": 615,
        }),
        "tree" => serde_json::json!({
            "kind": "tree",
            "features": features,
            "threshold": 5,
            "trees": [
                {"nodes": [
                    {"feature": 7, "threshold": 10, "left": 1, "right": 2},
                    {"feature": 6, "threshold": 3, "left": 3, "right": 4},
                    {"feature": 4, "threshold": 2, "left": 5, "right": 6},
                    {"leaf": -5}, {"leaf": 8}, {"leaf": 20}, {"leaf": 4},
                ]},
                {"nodes": [
                    {"feature": 0, "threshold": 45, "left": 1, "right": 2},
                    {"feature": 3, "threshold": 1, "left": 3, "right": 4},
                    {"feature": 2, "threshold": 3, "left": 5, "right": 6},
                    {"leaf": 0}, {"leaf": 9}, {"leaf": 2}, {"leaf": -12},
                ]},
                {"nodes": [
                    {"feature": 5, "threshold": 7, "left": 1, "right": 2},
                    {"leaf": 3}, {"leaf": -4},
                ]},
            ],
        }),
        other => {
            return Err(SandboxError::Failed(format!(
                "unknown model kind {other:?}; expected linear, scorecard or tree"
            )));
        }
    };
    serde_json::from_value(json)
        .map_err(|e| SandboxError::Failed(format!("built-in {kind} model: {e}")))
}

/// The declared features of [`FEATURES`].
///
/// # Errors
/// Never for the built-in table (widths are in range).
pub fn features() -> Result<Vec<Feature>, SandboxError> {
    FEATURES
        .iter()
        .map(|&(c, bits, _)| Feature::new(c, bits).map_err(|e| SandboxError::Failed(e.to_string())))
        .collect()
}

/// The job spec: `kind`'s model stored at the insurer as `model_id`.
pub fn spec(model_id: &str, release: &str, recipient_public_key: Vec<u8>) -> pb::JobSpec {
    pb::JobSpec {
        name: "fhe demo: the insurer scores the hospital's encrypted claims".into(),
        protocol: "fhe".into(),
        inputs: vec![
            pb::JobInput {
                party: OWNER.into(),
                dataset: "risk".into(),
            },
            pb::JobInput {
                party: EVALUATOR.into(),
                dataset: String::new(),
            },
        ],
        output: Some(pb::JobOutput {
            recipient: "insurer analyst".into(),
            recipient_public_key,
        }),
        computation: Some(job_spec::Computation::FheScore(pb::FheScoreJob {
            owner: OWNER.into(),
            evaluator: EVALUATOR.into(),
            model_id: model_id.into(),
            features: FEATURES
                .iter()
                .map(|&(column, bits, scale)| pb::FheFeature {
                    column: column.into(),
                    bits,
                    scale,
                })
                .collect(),
            release: release.into(),
            id_column: synthetic_risk::ID_COLUMN.into(),
        })),
        ..Default::default()
    }
}

/// What `treaty demo fhe` does.
#[derive(Debug, Clone)]
pub struct FheDemoOptions {
    /// Working directory (data, configs, state).
    pub work_dir: PathBuf,
    /// Claims scored.
    pub claims: usize,
    /// `linear`, `scorecard` or `tree`.
    pub model: String,
    /// `scores`, `decisions` or `aggregate`.
    pub release: String,
    /// Data seed.
    pub seed: u64,
    /// Plain TCP instead of mutual TLS.
    pub insecure: bool,
}

impl FheDemoOptions {
    /// 100 claims, the linear model, release `scores`, under `work_dir`.
    pub fn new(work_dir: PathBuf) -> Self {
        Self {
            work_dir,
            claims: 100,
            model: "linear".into(),
            release: "scores".into(),
            seed: 42,
            insecure: false,
        }
    }
}

/// What the demo measured and checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FheDemoReport {
    /// Claims scored.
    pub claims: u64,
    /// The model kind.
    pub model: String,
    /// The release.
    pub release: String,
    /// Decisions (and, under `scores`, scores) that differ from the clear model's.
    pub mismatches: u64,
    /// Positive decisions (clear model).
    pub positives: u64,
    /// The evaluator's seconds on ciphertexts per claim (evaluation, masking, compression).
    pub seconds_per_claim: f64,
    /// Programmable bootstraps per claim at the evaluator.
    pub bootstraps_per_claim: f64,
    /// The hospital's compressed server key, serialized.
    pub server_key_bytes: u64,
    /// Whether the job sent it (false: the insurer had it cached).
    pub server_key_sent: bool,
    /// Bytes of encrypted claims uploaded, and per claim.
    pub ciphertext_bytes: u64,
    /// `ciphertext_bytes / claims`.
    pub ciphertext_bytes_per_claim: f64,
    /// The hospital's seconds encrypting.
    pub encrypt_seconds: f64,
    /// Submission to opened result.
    pub job_seconds: f64,
    /// Rounds and bytes on the data plane, per party.
    pub rounds: u64,
    /// Bytes each party sent.
    pub bytes_sent_per_party: Vec<(String, u64)>,
    /// The job's id.
    pub job_id: String,
    /// The recipient's result (scores and decisions, or the aggregate).
    #[serde(skip)]
    pub result: Option<FheScoreResult>,
}

/// Writes the insurer's model file under its state directory.
///
/// # Errors
/// I/O failures.
pub fn write_model(state_dir: &Path, model_id: &str, spec: &ModelSpec) -> Result<(), SandboxError> {
    let path = state_dir
        .join("fhe-models")
        .join(format!("{model_id}.json"));
    let dir = state_dir.join("fhe-models");
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let json =
        serde_json::to_vec_pretty(spec).map_err(|e| SandboxError::Failed(format!("model: {e}")))?;
    std::fs::write(&path, json).map_err(io_err(&path))
}

/// The demo's job as the parties read it.
fn demo_plan() -> Result<fhe_score::FhePlan, SandboxError> {
    match spec("demo", "", Vec::new()).computation {
        Some(job_spec::Computation::FheScore(job)) => Ok(fhe_score::FhePlan::new(
            &job,
            &[OWNER.to_string(), EVALUATOR.to_string()],
        )?),
        _ => Err(SandboxError::Failed(
            "the demo spec is not fhe-score".into(),
        )),
    }
}

/// Runs the demo: data, coordinator + two nodes on loopback, the job, the clear check.
///
/// # Errors
/// Any failure of the data, the nodes or the job; a result that does not decode.
pub async fn run(
    opts: &FheDemoOptions,
    mut on_update: impl FnMut(&pb::Job),
) -> Result<FheDemoReport, SandboxError> {
    let spec_model = model(&opts.model)?;
    // Check the model against the features before starting anything.
    let checked = FheModel::new(spec_model.clone(), &features()?)
        .map_err(|e| SandboxError::Failed(e.to_string()))?;
    let data_opts = RiskDataOptions {
        rows: opts.claims,
        overlap: 1.0,
        seed: opts.seed,
        ..RiskDataOptions::default()
    };
    let data = synthetic_risk::generate(&data_opts)?;
    let files = synthetic_risk::write_risk_files(&opts.work_dir.join("data"), &data)?;
    let hospital: Vec<(String, DatasetConfig)> =
        files.into_iter().filter(|(p, _)| p == OWNER).collect();
    let (_, ds) = hospital
        .first()
        .cloned()
        .ok_or_else(|| SandboxError::Failed("no hospital file".into()))?;
    let plan = demo_plan()?;
    let rows = fhe_score::load_rows(&ds.path, &ds, &plan)?;

    let mut sandbox_opts = SandboxOptions::new(opts.work_dir.clone());
    sandbox_opts.insecure = opts.insecure;
    let parties = [OWNER.to_string(), EVALUATOR.to_string()];
    let sandbox = Sandbox::start_with_datasets(sandbox_opts, &parties, &hospital).await?;
    let outcome = async {
        let model_id = format!("claims-{}", opts.model);
        let state = sandbox.dir().join(format!("{EVALUATOR}-state"));
        write_model(&state, &model_id, &spec_model)?;
        let key = RecipientSecretKey::generate(&mut seeds::os_rng()?);
        let started = Instant::now();
        let job = sandbox
            .run_job_to_success(
                spec(&model_id, &opts.release, key.public_key()?.to_vec()),
                |j| on_update(j),
            )
            .await?;
        let mut client = sandbox.analyst().await?;
        let result =
            analyst::fetch_fhe_score_result(&mut client, &job, &key, &sandbox.party_keys()).await?;
        Ok::<_, SandboxError>((job, result, started.elapsed()))
    }
    .await;
    sandbox.shut_down().await;
    let (job, result, elapsed) = outcome?;
    report(opts, &checked, &rows.rows, job, result, elapsed)
}

/// Compares the result with the clear model and collects the figures.
fn report(
    opts: &FheDemoOptions,
    model: &FheModel,
    rows: &[Vec<u16>],
    job: pb::Job,
    result: FheScoreResult,
    elapsed: Duration,
) -> Result<FheDemoReport, SandboxError> {
    let clear: Vec<(i32, bool)> = rows
        .iter()
        .map(|r| model.evaluate_clear(r))
        .collect::<Result<_, _>>()
        .map_err(|e| SandboxError::Failed(e.to_string()))?;
    if result.rows as usize != clear.len() {
        return Err(SandboxError::Failed(format!(
            "{} claims scored for {} in the file",
            result.rows,
            clear.len()
        )));
    }
    let mut mismatches = 0u64;
    for (i, &(score, decision)) in clear.iter().enumerate() {
        let bad_decision = result.decisions.as_ref().is_some_and(|d| d[i] != decision);
        let bad_score = result
            .scores
            .as_ref()
            .is_some_and(|s| s[i] != i64::from(score));
        mismatches += u64::from(bad_decision || bad_score);
    }
    if let Some(agg) = &result.aggregate {
        let sum: i64 = clear.iter().map(|c| i64::from(c.0)).sum();
        let positives = clear.iter().filter(|c| c.1).count() as u64;
        mismatches += u64::from(agg.sum != sum) + u64::from(agg.positives != positives);
    }
    let claims = result.rows;
    Ok(FheDemoReport {
        claims,
        model: opts.model.clone(),
        release: result.release.clone(),
        mismatches,
        positives: clear.iter().filter(|c| c.1).count() as u64,
        seconds_per_claim: if claims == 0 {
            0.0
        } else {
            result.evaluate_seconds / claims as f64
        },
        bootstraps_per_claim: result.bootstraps_per_claim,
        server_key_bytes: result.server_key_bytes,
        server_key_sent: result.server_key_sent,
        ciphertext_bytes: result.ciphertext_bytes,
        ciphertext_bytes_per_claim: if claims == 0 {
            0.0
        } else {
            result.ciphertext_bytes as f64 / claims as f64
        },
        encrypt_seconds: result.encrypt_seconds,
        job_seconds: elapsed.as_secs_f64(),
        rounds: job.parties.iter().map(|p| p.rounds).max().unwrap_or(0),
        bytes_sent_per_party: job
            .parties
            .iter()
            .map(|p| (p.party.clone(), p.bytes_sent))
            .collect(),
        job_id: job.id,
        result: Some(result),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo end to end (scores), then on the same nodes: the key is found cached, the other
    /// releases and models agree with the clear model, and bad jobs fail saying why.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fhe_score_jobs_match_the_clear_model_and_refuse_bad_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = FheDemoOptions::new(dir.path().to_path_buf());
        o.claims = 3;
        o.insecure = true;
        let report = run(&o, |_| {}).await.unwrap();
        assert_eq!((report.claims, report.mismatches), (3, 0), "{report:#?}");
        assert!(report.server_key_sent);
        let result = report.result.unwrap();
        assert_eq!(result.ids.len(), 3);
        assert_eq!(result.scores.as_ref().map(Vec::len), Some(3));
        // The hospital's client key is stored 0600 under its state directory.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let key = dir.path().join("hospital-state/fhe/owner/client.key");
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // Same directory again: new nodes, the insurer's disk cache has the hospital's key.
        let data = synthetic_risk::generate(&RiskDataOptions {
            rows: 3,
            overlap: 1.0,
            ..RiskDataOptions::default()
        })
        .unwrap();
        let files = synthetic_risk::write_risk_files(&dir.path().join("data"), &data).unwrap();
        let hospital: Vec<_> = files.into_iter().filter(|(p, _)| p == OWNER).collect();
        let rows = fhe_score::load_rows(&hospital[0].1.path, &hospital[0].1, &demo_plan().unwrap())
            .unwrap()
            .rows;
        let mut sopts = SandboxOptions::new(dir.path().to_path_buf());
        sopts.insecure = true;
        let parties = [OWNER.to_string(), EVALUATOR.to_string()];
        let sandbox = Sandbox::start_with_datasets(sopts, &parties, &hospital)
            .await
            .unwrap();
        let state = dir.path().join(format!("{EVALUATOR}-state"));
        let key = RecipientSecretKey::generate(&mut seeds::os_rng().unwrap());
        let public = key.public_key().unwrap().to_vec();
        let fetch = |job: pb::Job| {
            let (sandbox, key) = (&sandbox, &key);
            async move {
                let mut c = sandbox.analyst().await.unwrap();
                analyst::fetch_fhe_score_result(&mut c, &job, key, &sandbox.party_keys())
                    .await
                    .unwrap()
            }
        };
        let features = features().unwrap();

        // Aggregate release of the tree: only sums open, and they are the clear model's.
        let tree = model("tree").unwrap();
        write_model(&state, "t1", &tree).unwrap();
        let job = sandbox
            .run_job_to_success(spec("t1", "aggregate", public.clone()), |_| {})
            .await
            .unwrap();
        let r = fetch(job).await;
        assert!(!r.server_key_sent, "the key should be cached");
        assert!(r.scores.is_none() && r.decisions.is_none());
        let m = FheModel::new(tree, &features).unwrap();
        let clear: Vec<(i32, bool)> = rows.iter().map(|x| m.evaluate_clear(x).unwrap()).collect();
        let agg = r.aggregate.unwrap();
        assert_eq!(agg.count, 3);
        assert_eq!(agg.sum, clear.iter().map(|c| i64::from(c.0)).sum::<i64>());
        assert_eq!(agg.positives, clear.iter().filter(|c| c.1).count() as u64);

        // Decisions only, scorecard.
        let card = model("scorecard").unwrap();
        write_model(&state, "c1", &card).unwrap();
        let job = sandbox
            .run_job_to_success(spec("c1", "decisions", public.clone()), |_| {})
            .await
            .unwrap();
        let r = fetch(job).await;
        let m = FheModel::new(card, &features).unwrap();
        let want: Vec<bool> = rows
            .iter()
            .map(|x| m.evaluate_clear(x).unwrap().1)
            .collect();
        assert_eq!(r.decisions.unwrap(), want);
        assert!(r.scores.is_none());

        // A model the insurer does not hold: refused before anything runs, naming it.
        let job = sandbox
            .run_job(spec("nope", "", public.clone()), |_| {})
            .await
            .unwrap();
        assert_ne!(job.state(), pb::JobState::Succeeded);
        assert!(
            job.reason.contains("no FHE model \"nope\""),
            "{}",
            job.reason
        );

        // A model whose sum could overflow 32 bits: refused with the bound.
        let mut huge = serde_json::to_value(model("linear").unwrap()).unwrap();
        huge["weights"][1] = serde_json::json!(i32::MAX);
        write_model(&state, "huge", &serde_json::from_value(huge).unwrap()).unwrap();
        let job = sandbox
            .run_job(spec("huge", "", public.clone()), |_| {})
            .await
            .unwrap();
        assert_ne!(job.state(), pb::JobState::Succeeded);
        assert!(job.reason.contains("overflow"), "{}", job.reason);

        // A value beyond its declared width: the hospital fails naming column and row, before
        // anything is encrypted.
        write_model(&state, "l1", &model("linear").unwrap()).unwrap();
        let mut narrow = spec("l1", "", public.clone());
        if let Some(job_spec::Computation::FheScore(f)) = &mut narrow.computation {
            f.features[0].bits = 5; // age up to 31
        }
        let job = sandbox.run_job(narrow, |_| {}).await.unwrap();
        assert_eq!(job.state(), pb::JobState::Failed, "{}", job.reason);
        assert!(
            job.reason.contains("\"age\"") && job.reason.contains("row 1"),
            "{}",
            job.reason
        );
        sandbox.shut_down().await;
    }

    /// The shipped example model is the demo's linear model, and it fits the example job's
    /// features.
    #[test]
    fn the_shipped_example_model_is_the_demos() {
        let shipped: ModelSpec =
            serde_json::from_str(include_str!("../../examples/fhe-models/claims-linear.json"))
                .unwrap();
        assert_eq!(shipped, model("linear").unwrap());
        assert!(FheModel::new(shipped, &features().unwrap()).is_ok());
    }

    /// Every built-in model flags a sensible share of the synthetic claims (neither none nor
    /// all), so the demo's decisions are informative.
    #[test]
    fn built_in_models_flag_some_claims_but_not_all() {
        let dir = tempfile::tempdir().unwrap();
        let data = synthetic_risk::generate(&RiskDataOptions {
            rows: 2000,
            overlap: 1.0,
            ..RiskDataOptions::default()
        })
        .unwrap();
        let files = synthetic_risk::write_risk_files(dir.path(), &data).unwrap();
        let (_, ds) = files.into_iter().find(|(p, _)| p == OWNER).unwrap();
        let rows = fhe_score::load_rows(&ds.path, &ds, &demo_plan().unwrap())
            .unwrap()
            .rows;
        for kind in ["linear", "scorecard", "tree"] {
            let m = FheModel::new(model(kind).unwrap(), &features().unwrap()).unwrap();
            let mut scores: Vec<i32> = rows
                .iter()
                .map(|r| m.evaluate_clear(r).unwrap().0)
                .collect();
            let flagged = rows
                .iter()
                .filter(|r| m.evaluate_clear(r).unwrap().1)
                .count() as f64
                / rows.len() as f64;
            scores.sort_unstable();
            let q = |p: f64| scores[((scores.len() - 1) as f64 * p) as usize];
            eprintln!(
                "{kind}: flagged {flagged:.3}; quantiles 10/25/50/75/90: {} {} {} {} {}",
                q(0.1),
                q(0.25),
                q(0.5),
                q(0.75),
                q(0.9)
            );
            assert!((0.1..=0.5).contains(&flagged), "{kind}: {flagged}");
        }
    }
}
