//! `treaty demo`: a whole deployment in one process — a coordinator and party nodes on loopback
//! with TLS, synthetic claims data per party, one analyst — running a `stats` job end to end and
//! checking it against the same statistics computed in the clear.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use treaty_mpc::fixed::FixedPoint;
use treaty_mpc::output::RecipientSecretKey;
use treaty_mpc::seeds;
use treaty_mpc::stats::StatsResult;
use treaty_proto::v1::{self as pb, filter, job_spec};

use crate::error::io_err;
use crate::sandbox::{ANALYST, AuditSummary, Sandbox, SandboxOptions};
use treaty_analyst as analyst;
use treaty_party::dataset::{self, DatasetConfig, Predicate};

use crate::{SandboxError, synthetic};

/// Name of the dataset every demo party offers.
pub const DATASET: &str = "claims";

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Rows per party.
    pub rows: usize,
    /// Seed of the synthetic data.
    pub seed: u64,
    /// Party ids.
    pub parties: Vec<String>,
    /// Fixed-point fractional bits.
    pub frac_bits: u32,
    /// Numeric columns to aggregate.
    pub columns: Vec<String>,
    /// Optional filter: column and predicate.
    pub filter: Option<(String, Predicate)>,
    /// Plaintext gRPC (development only).
    pub insecure: bool,
    /// Where data, keys and state go.
    pub work_dir: PathBuf,
}

impl DemoOptions {
    /// The default demo: three organisations, 100,000 claims each, diabetes claims only.
    pub fn new(work_dir: PathBuf) -> Self {
        Self {
            rows: 100_000,
            seed: 42,
            parties: ["hospital", "insurer", "bank"].map(String::from).to_vec(),
            frac_bits: 16,
            columns: ["claim_amount", "paid_amount", "length_of_stay"]
                .map(String::from)
                .to_vec(),
            filter: Some((
                "diagnosis_group".into(),
                Predicate::Equals("diabetes".into()),
            )),
            insecure: false,
            work_dir,
        }
    }
}

/// What the demo measured.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// The job's id.
    pub job_id: String,
    /// The secure result the analyst opened.
    pub result: StatsResult,
    /// The same statistics computed in the clear.
    pub plaintext: StatsResult,
    /// Largest absolute difference over all statistics.
    pub max_abs_error: f64,
    /// Whether every statistic is within its fixed-point error bound.
    pub within_bound: bool,
    /// Communication rounds on the data plane (per party).
    pub rounds: u64,
    /// Data-plane payload bytes sent, per party.
    pub bytes_sent_per_party: BTreeMap<String, u64>,
    /// Data-plane payload bytes received, per party.
    pub bytes_received_per_party: BTreeMap<String, u64>,
    /// Seconds from submission to the opened result.
    pub seconds: f64,
    /// Seconds spent generating the synthetic data.
    pub data_seconds: f64,
    /// Rows per party.
    pub rows_per_party: usize,
    /// Fixed-point fractional bits.
    pub frac_bits: u32,
    /// Whether TLS was on.
    pub tls: bool,
    /// The auditor's check of every node's audit log after the job.
    pub audit: AuditSummary,
}

/// The demo's job spec.
pub fn stats_spec(opts: &DemoOptions, recipient_public_key: Vec<u8>) -> pb::JobSpec {
    pb::JobSpec {
        name: "demo: claims statistics across organisations".into(),
        protocol: String::new(),
        inputs: opts
            .parties
            .iter()
            .map(|p| pb::JobInput {
                party: p.clone(),
                dataset: DATASET.into(),
            })
            .collect(),
        output: Some(pb::JobOutput {
            recipient: ANALYST.into(),
            recipient_public_key,
        }),
        frac_bits: opts.frac_bits,
        computation: Some(job_spec::Computation::Stats(pb::StatsJob {
            columns: opts.columns.clone(),
            filter: opts.filter.as_ref().map(|(column, p)| pb::Filter {
                column: column.clone(),
                predicate: Some(match p {
                    Predicate::Equals(v) => filter::Predicate::Equals(v.clone()),
                    Predicate::Range { min, max } => filter::Predicate::Range(pb::NumericRange {
                        min: *min,
                        max: *max,
                    }),
                }),
            }),
            filters: Vec::new(),
        })),
        join: None,
    }
}

/// Writes each party's synthetic claims file (in parallel) and returns the dataset configs.
pub fn write_data(opts: &DemoOptions) -> Result<Vec<(String, DatasetConfig)>, SandboxError> {
    let dir = &opts.work_dir;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let data: Vec<(String, DatasetConfig)> = opts
        .parties
        .iter()
        .map(|p| {
            let path = dir.join(format!("{p}-claims.csv"));
            (p.clone(), synthetic::claims_schema(DATASET, path))
        })
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = data
            .iter()
            .map(|(p, ds)| {
                s.spawn(move || {
                    synthetic::write_claims_csv(&ds.path, p, opts.rows, opts.seed)
                        .map_err(io_err(&ds.path))
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .map_err(|_| SandboxError::Aborted("data generation panicked".into()))?
        })
    })?;
    Ok(data)
}

/// Runs the demo; `on_update` sees every state change of the job.
pub async fn run(
    opts: &DemoOptions,
    mut on_update: impl FnMut(&pb::Job),
) -> Result<DemoReport, SandboxError> {
    let started = Instant::now();
    let data = write_data(opts)?;
    let data_seconds = started.elapsed().as_secs_f64();

    let mut sandbox_opts = SandboxOptions::new(opts.work_dir.clone());
    sandbox_opts.insecure = opts.insecure;
    let mut sandbox = Sandbox::start(sandbox_opts, &opts.parties).await?;
    let outcome = async {
        for (party, ds) in &data {
            sandbox.start_party(party, vec![ds.clone()]).await?;
        }
        sandbox
            .wait_online(&opts.parties, Duration::from_secs(60))
            .await?;
        analyst_side(opts, &sandbox, &data, &mut on_update).await
    }
    .await;
    sandbox.shut_down().await;
    let mut report = outcome?;
    report.data_seconds = data_seconds;
    Ok(report)
}

async fn analyst_side(
    opts: &DemoOptions,
    sandbox: &Sandbox,
    data: &[(String, DatasetConfig)],
    on_update: &mut impl FnMut(&pb::Job),
) -> Result<DemoReport, SandboxError> {
    let key = RecipientSecretKey::generate(&mut seeds::os_rng()?);
    let spec = stats_spec(opts, key.public_key()?.to_vec());
    let started = Instant::now();
    let job = sandbox.run_job_to_success(spec, |j| on_update(j)).await?;
    let mut client = sandbox.analyst().await?;
    let result =
        analyst::fetch_stats_result(&mut client, &job, &key, &sandbox.party_keys()).await?;
    let seconds = started.elapsed().as_secs_f64();

    // The same figures in the clear, from the same files.
    let plaintext = tokio::task::spawn_blocking({
        let (opts, data) = (opts.clone(), data.to_vec());
        move || clear_reference(&opts, &data)
    })
    .await
    .map_err(|_| SandboxError::Aborted("reference computation panicked".into()))??;
    let fixed = FixedPoint::new(opts.frac_bits)?;
    let (max_abs_error, within_bound) = result.compare(&plaintext, fixed);
    let audit = sandbox.verify_audit(Duration::from_secs(10)).await?;
    Ok(DemoReport {
        audit,
        job_id: job.id.clone(),
        result,
        plaintext,
        max_abs_error,
        within_bound,
        rounds: max_rounds(&job),
        bytes_sent_per_party: bytes_sent(&job),
        bytes_received_per_party: job
            .parties
            .iter()
            .map(|p| (p.party.clone(), p.bytes_received))
            .collect(),
        seconds,
        data_seconds: 0.0,
        rows_per_party: opts.rows,
        frac_bits: opts.frac_bits,
        tls: !opts.insecure,
    })
}

/// Computes the job's statistics in the clear over every party's file (what no real deployment
/// can do — the demo owns all the data).
pub fn clear_reference(
    opts: &DemoOptions,
    data: &[(String, DatasetConfig)],
) -> Result<StatsResult, SandboxError> {
    let mut columns: Vec<Vec<f64>> = vec![Vec::new(); opts.columns.len()];
    for (_, ds) in data {
        let mut wanted: Vec<&str> = opts.columns.iter().map(String::as_str).collect();
        if let Some((c, _)) = &opts.filter {
            wanted.push(c);
        }
        let table = dataset::load_columns(ds, &ds.path, &wanted)?;
        let mask = match &opts.filter {
            Some((c, p)) => dataset::filter_mask(&table, ds, c, p)?,
            None => vec![true; table.rows()],
        };
        for (i, c) in opts.columns.iter().enumerate() {
            let values = table
                .numeric(c)
                .ok_or_else(|| SandboxError::Failed(format!("column {c:?} is not numeric")))?;
            columns[i].extend(dataset::select(values, &mask));
        }
    }
    Ok(StatsResult::plaintext(&opts.columns, &columns))
}

/// The most data-plane rounds any party of `job` ran.
pub(crate) fn max_rounds(job: &pb::Job) -> u64 {
    job.parties.iter().map(|p| p.rounds).max().unwrap_or(0)
}

/// Data-plane payload bytes each party of `job` sent.
pub(crate) fn bytes_sent(job: &pb::Job) -> BTreeMap<String, u64> {
    job.parties
        .iter()
        .map(|p| (p.party.clone(), p.bytes_sent))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default demo, small: the secure figures match the clear ones, and an auditor's check
    /// of all four logs (three parties and the coordinator) against the coordinator's record
    /// passes, with the parties' committed traffic agreeing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_demo_matches_the_clear_figures_and_its_audit_logs_verify() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = DemoOptions::new(dir.path().to_path_buf());
        opts.rows = 500;
        let report = run(&opts, |_| {}).await.unwrap();
        assert!(report.within_bound, "{report:?}");
        assert_eq!(report.result.count, report.plaintext.count);
        assert!(report.audit.failures.is_empty(), "{:?}", report.audit);
        assert_eq!(report.audit.logs, 4, "{:?}", report.audit);
        // Per party at least: received, decision, start, 2 peers' traffic, sealed, completed,
        // checkpoint.
        assert!(report.audit.entries >= 3 * 9, "{:?}", report.audit);
    }
}
