//! `treaty demo join`: a hospital, an insurer and a bank on loopback (coordinator + three party
//! nodes, mutual TLS). The hospital knows which patients are diabetic, the insurer knows their
//! claim amounts, and they share only part of their patients. A `psi` job aligns the common
//! patients, then a `stats` job with a `[join]` computes the mean claim amount at the insurer over
//! the patients the hospital flags as diabetic — the bank holds no data and only helps compute —
//! and the result is printed beside the same join, filter and statistics computed in the clear.
//! With `inline_psi` one `stats` job runs the PSI as its first phase instead.

use std::collections::{BTreeMap, HashMap};
use std::f64::consts::TAU;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::distr::OpenClosed01;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use treaty_mpc::fixed::FixedPoint;
use treaty_mpc::output::RecipientSecretKey;
use treaty_mpc::stats::StatsResult;
use treaty_mpc::{seeds, vstats};
use treaty_proto::v1::{self as pb, filter, job_spec};

use crate::demo_psi::{self, DATASET, ID_COLUMN};
use crate::error::io_err;
use crate::sandbox::{ANALYST, Sandbox, SandboxOptions};
use treaty_analyst as analyst;
use treaty_party::dataset::{self, ColumnDecl, ColumnType, DatasetConfig};

use crate::SandboxError;

/// The hospital, the insurer (data parties) and the bank (helper).
pub const PARTIES: [&str; 3] = ["hospital", "insurer", "bank"];
/// The job's columns.
pub const COLUMNS: [&str; 2] = ["insurer.claim_amount", "hospital.age"];
/// The job's filter: the hospital's diabetes flag.
pub const FILTER: (&str, &str) = ("hospital.diabetic", "1");

/// What the join demo runs.
#[derive(Debug, Clone)]
pub struct JoinDemoOptions {
    /// Patients per data party.
    pub rows: usize,
    /// Share of each data party's patients the other also has, in `[0, 1]`.
    pub overlap: f64,
    /// Seed of the synthetic data.
    pub seed: u64,
    /// Fixed-point fractional bits.
    pub frac_bits: u32,
    /// One `stats` job with the PSI inline, instead of a `psi` job and then the `stats` job.
    pub inline_psi: bool,
    /// Plaintext gRPC (development only).
    pub insecure: bool,
    /// Where data, keys and state go.
    pub work_dir: PathBuf,
}

impl JoinDemoOptions {
    /// The default: 100,000 patients per data party, 60% shared, 16 fractional bits.
    pub fn new(work_dir: PathBuf) -> Self {
        Self {
            rows: 100_000,
            overlap: 0.6,
            seed: 42,
            frac_bits: 16,
            inline_psi: false,
            insecure: false,
            work_dir,
        }
    }
}

/// What the join demo measured.
#[derive(Debug, Clone, Serialize)]
pub struct JoinDemoReport {
    /// The `psi` job whose intersection the `stats` job reused (none with `inline_psi`).
    pub psi_job_id: Option<String>,
    /// The `stats` job.
    pub job_id: String,
    /// Patients per data party.
    pub rows_per_party: usize,
    /// Patients both data parties hold (computed in the clear).
    pub intersection_size: usize,
    /// The secure result the analyst opened.
    pub result: StatsResult,
    /// The same join, filter and statistics in the clear (f64).
    pub plaintext: StatsResult,
    /// Largest absolute difference over all statistics.
    pub max_abs_error: f64,
    /// Whether every statistic is within the fixed-point bound (`treaty_mpc::vstats`).
    pub within_bound: bool,
    /// Data-plane rounds of the `stats` job (per party, the most of any).
    pub rounds: u64,
    /// Data-plane payload bytes sent in the `stats` job, per party.
    pub bytes_sent_per_party: BTreeMap<String, u64>,
    /// Seconds from the first submission to the opened result.
    pub seconds: f64,
    /// Seconds from the `stats` job's submission to the opened result (with an inline PSI, the
    /// PSI included).
    pub stats_seconds: f64,
    /// Fixed-point fractional bits.
    pub frac_bits: u32,
    /// Whether TLS was on.
    pub tls: bool,
}

/// One synthetic patient, the same at both data parties (drawn from the seed and the id).
struct Patient {
    age: u32,
    diabetic: bool,
    /// Claims of the year, in cents.
    claim_cents: u64,
}

fn patient(seed: u64, id: &str) -> Patient {
    let mut h = Sha256::new();
    h.update(b"treaty/demo-join/v1");
    h.update(seed.to_le_bytes());
    h.update(id.as_bytes());
    let mut rng = ChaCha20Rng::from_seed(h.finalize().into());
    let age = rng.random_range(18..=90u32);
    // Diabetes grows more common with age: 4% at 18 to about 22% at 90.
    let diabetic = rng.random_bool(0.04 + 0.0025 * f64::from(age - 18));
    // Lognormal claims (median ≈ 1,800), higher with age and about twice as high for diabetics.
    let z = {
        let u: f64 = rng.sample(OpenClosed01);
        let v: f64 = rng.random();
        (-2.0 * u.ln()).sqrt() * (TAU * v).cos()
    };
    let factor = (1.0 + f64::from(age - 18) / 72.0) * if diabetic { 1.9 } else { 1.0 };
    let amount = (7.5 + 0.8 * z).exp() * factor;
    let claim_cents = (amount * 100.0).round().clamp(2_000.0, 50_000_000.0) as u64;
    Patient {
        age,
        diabetic,
        claim_cents,
    }
}

fn decl(name: &str, ty: ColumnType) -> ColumnDecl {
    ColumnDecl {
        name: name.into(),
        ty,
    }
}

/// Writes the hospital's file (`patient_id`, `age`, `diabetic`) and the insurer's
/// (`patient_id`, `claim_amount`) for `rows` patients each, `overlap` of them shared; returns the
/// dataset configs by party.
pub fn write_data(opts: &JoinDemoOptions) -> Result<Vec<(String, DatasetConfig)>, SandboxError> {
    let dir = &opts.work_dir;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let [hospital_ids, insurer_ids] = demo_psi::synthetic_ids(opts.rows, opts.overlap, opts.seed);
    let write = |path: &Path, header: &str, ids: &[String], line: &dyn Fn(&Patient) -> String| {
        let mut text = String::with_capacity(ids.len() * 32 + header.len());
        text.push_str(header);
        for id in ids {
            text.push_str(id);
            text.push(',');
            text.push_str(&line(&patient(opts.seed, id)));
            text.push('\n');
        }
        let mut f = std::fs::File::create(path).map_err(io_err(path))?;
        f.write_all(text.as_bytes()).map_err(io_err(path))
    };
    let hospital = dir.join("hospital-patients.csv");
    write(
        &hospital,
        "patient_id,age,diabetic\n",
        &hospital_ids,
        &|p| format!("{},{}", p.age, u8::from(p.diabetic)),
    )?;
    let insurer = dir.join("insurer-patients.csv");
    write(&insurer, "patient_id,claim_amount\n", &insurer_ids, &|p| {
        format!("{}.{:02}", p.claim_cents / 100, p.claim_cents % 100)
    })?;
    let ds = |path: PathBuf, columns: Vec<ColumnDecl>| DatasetConfig {
        name: DATASET.into(),
        path,
        id_column: ID_COLUMN.into(),
        columns,
    };
    Ok(vec![
        (
            PARTIES[0].to_string(),
            ds(
                hospital,
                vec![
                    decl(ID_COLUMN, ColumnType::String),
                    decl("age", ColumnType::Int),
                    decl("diabetic", ColumnType::Int),
                ],
            ),
        ),
        (
            PARTIES[1].to_string(),
            ds(
                insurer,
                vec![
                    decl(ID_COLUMN, ColumnType::String),
                    decl("claim_amount", ColumnType::Float),
                ],
            ),
        ),
    ])
}

/// The demo's `stats` job with a join: reusing `psi_job`'s intersection, or running the PSI
/// inline when `None`.
pub fn join_spec(
    frac_bits: u32,
    psi_job: Option<&str>,
    recipient_public_key: Vec<u8>,
) -> pb::JobSpec {
    pb::JobSpec {
        name: "demo: mean claim amount of the hospital's diabetic patients".into(),
        inputs: PARTIES
            .iter()
            .map(|&p| pb::JobInput {
                party: p.into(),
                dataset: if p == "bank" { "" } else { DATASET }.into(),
            })
            .collect(),
        output: Some(pb::JobOutput {
            recipient: ANALYST.into(),
            recipient_public_key,
        }),
        frac_bits,
        join: Some(pb::JoinSpec {
            id_columns: PARTIES[..2]
                .iter()
                .map(|p| (p.to_string(), ID_COLUMN.to_string()))
                .collect(),
            psi_job: psi_job.unwrap_or_default().into(),
        }),
        computation: Some(job_spec::Computation::Stats(pb::StatsJob {
            columns: COLUMNS.map(String::from).to_vec(),
            filter: Some(pb::Filter {
                column: FILTER.0.into(),
                predicate: Some(filter::Predicate::Equals(FILTER.1.into())),
            }),
            filters: Vec::new(),
        })),
        ..Default::default()
    }
}

/// Starts the sandbox: the coordinator, the two data parties with their datasets and the bank
/// with none, and waits until all are online.
pub async fn start(
    opts: &JoinDemoOptions,
    data: &[(String, DatasetConfig)],
) -> Result<Sandbox, SandboxError> {
    let mut sandbox_opts = SandboxOptions::new(opts.work_dir.clone());
    sandbox_opts.insecure = opts.insecure;
    Sandbox::start_with_datasets(sandbox_opts, &PARTIES.map(String::from), data).await
}

/// Runs the demo; `on_update` sees every state change of each job.
pub async fn run(
    opts: &JoinDemoOptions,
    mut on_update: impl FnMut(&pb::Job),
) -> Result<JoinDemoReport, SandboxError> {
    let data = write_data(opts)?;
    let sandbox = start(opts, &data).await?;
    let outcome = async {
        let key = RecipientSecretKey::generate(&mut seeds::os_rng()?);
        let public = key.public_key()?.to_vec();
        let started = Instant::now();
        let psi_job = if opts.inline_psi {
            None
        } else {
            let parties = [PARTIES[0].to_string(), PARTIES[1].to_string()];
            let spec = demo_psi::psi_spec(&parties, public.clone());
            let job = sandbox.run_job_to_success(spec, &mut on_update).await?;
            Some(job.id)
        };
        let stats_started = Instant::now();
        let spec = join_spec(opts.frac_bits, psi_job.as_deref(), public);
        let job = sandbox.run_job_to_success(spec, &mut on_update).await?;
        let mut client = sandbox.analyst().await?;
        let result =
            analyst::fetch_stats_result(&mut client, &job, &key, &sandbox.party_keys()).await?;
        let seconds = (
            started.elapsed().as_secs_f64(),
            stats_started.elapsed().as_secs_f64(),
        );
        Ok::<_, SandboxError>((psi_job, job, result, seconds))
    }
    .await;
    sandbox.shut_down().await;
    let (psi_job_id, job, result, (seconds, stats_seconds)) = outcome?;

    let (plaintext, intersection_size) =
        tokio::task::spawn_blocking(move || clear_reference(&data))
            .await
            .map_err(|_| SandboxError::Aborted("reference computation panicked".into()))??;
    let fixed = FixedPoint::new(opts.frac_bits)?;
    let (max_abs_error, within_bound) = vstats::compare(&result, &plaintext, fixed);
    Ok(JoinDemoReport {
        psi_job_id,
        job_id: job.id.clone(),
        rows_per_party: opts.rows,
        intersection_size,
        result,
        plaintext,
        max_abs_error,
        within_bound,
        rounds: crate::demo::max_rounds(&job),
        bytes_sent_per_party: crate::demo::bytes_sent(&job),
        seconds,
        stats_seconds,
        frac_bits: opts.frac_bits,
        tls: !opts.insecure,
    })
}

/// The job computed in the clear from both files (what no real deployment can do): join by
/// `patient_id`, keep the hospital's diabetic patients, statistics of the insurer's claim amount
/// and the hospital's age in f64. Returns the statistics and the intersection size.
pub fn clear_reference(
    data: &[(String, DatasetConfig)],
) -> Result<(StatsResult, usize), SandboxError> {
    let load = |party: &str, columns: &[&str]| {
        let (_, ds) = data
            .iter()
            .find(|(p, _)| p == party)
            .ok_or_else(|| SandboxError::Failed(format!("the demo has no data for {party:?}")))?;
        Ok::<_, SandboxError>(dataset::load_columns(ds, &ds.path, columns)?)
    };
    let hospital = load(PARTIES[0], &[ID_COLUMN, "age", "diabetic"])?;
    let insurer = load(PARTIES[1], &[ID_COLUMN, "claim_amount"])?;
    let missing = || SandboxError::Failed("a demo column did not load".into());
    let claims: HashMap<&str, f64> = insurer
        .text(ID_COLUMN)
        .ok_or_else(missing)?
        .iter()
        .map(String::as_str)
        .zip(
            insurer
                .numeric("claim_amount")
                .ok_or_else(missing)?
                .iter()
                .copied(),
        )
        .collect();
    let ids = hospital.text(ID_COLUMN).ok_or_else(missing)?;
    let age = hospital.numeric("age").ok_or_else(missing)?;
    let diabetic = hospital.numeric("diabetic").ok_or_else(missing)?;
    let mut intersection = 0;
    let mut columns = vec![Vec::new(), Vec::new()];
    for (j, id) in ids.iter().enumerate() {
        let Some(&claim) = claims.get(id.as_str()) else {
            continue;
        };
        intersection += 1;
        if diabetic[j] == 1.0 {
            columns[0].push(claim);
            columns[1].push(age[j]);
        }
    }
    let names = COLUMNS.map(String::from);
    Ok((StatsResult::plaintext(&names, &columns), intersection))
}

#[cfg(test)]
mod tests;
