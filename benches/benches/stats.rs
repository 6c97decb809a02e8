//! Criterion benches of the `stats` job, from encoding one value to a whole job over TLS.
//! See the crate docs (`benches/src/lib.rs`) for what each group measures.
//!
//! Communication does not fit criterion's time-only report, so every group prints one line per
//! input size (as it starts, outside the timed loop) with the rounds and payload bytes of one
//! run, read from the transport's counters or the coordinator's job record.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use tokio::runtime::Runtime;
use treaty_analyst as analyst;
use treaty_mpc::fixed::FixedPoint;
use treaty_mpc::output::{self, RecipientSecretKey};
use treaty_mpc::seeds::{self, SessionContext};
use treaty_mpc::share::AdditiveShare;
use treaty_mpc::stats::{self, LocalAggregates, StatsResult};
use treaty_mpc::transport::{Channel, CounterSnapshot, DEFAULT_MAX_MESSAGE, run_in_memory};
use treaty_party::config::{Limits, PartyConfig};
use treaty_party::dataset::DatasetConfig;
use treaty_party::stats as party_stats;
use treaty_proto::v1::{self as pb, JobState, job_spec};
use treaty_sandbox::demo::{self, DemoOptions};
use treaty_sandbox::sandbox::{Sandbox, SandboxOptions};
use treaty_sandbox::synthetic;

/// Columns aggregated by the local and protocol benches (the demo job has three).
const COLUMNS: usize = 3;

/// Rows per party of the end-to-end job (each size starts its own deployment).
const END_TO_END_ROWS: [usize; 1] = [10_000];

/// `n` pseudo-random claim amounts in `[0, 250 000)`, reproducible from `seed`.
fn amounts(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (rng.next_u64() >> 11) as f64 * (-53f64).exp2() * 250_000.0)
        .collect()
}

/// Encodes like `treaty_party::stats::local` does: one `encode_signed` per value.
fn encode_column(fixed: FixedPoint, xs: &[f64]) -> Vec<i64> {
    xs.iter()
        .map(|&x| fixed.encode_signed(x).expect("values are in range"))
        .collect()
}

fn column_names() -> Vec<String> {
    (0..COLUMNS).map(|c| format!("c{c}")).collect()
}

fn party_ids(n: usize) -> Vec<String> {
    (0..n).map(|p| format!("party-{p}")).collect()
}

fn fixed_point_encode(c: &mut Criterion) {
    let fixed = FixedPoint::default();
    let mut g = c.benchmark_group("fixed_point_encode");
    for n in [10_000usize, 100_000, 1_000_000] {
        g.throughput(Throughput::Elements(n as u64));
        let mut input = None;
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            let xs = input.get_or_insert_with(|| {
                eprintln!("fixed_point_encode/{n}: local only, rounds=0 bytes_sent=0");
                amounts(n, 1)
            });
            b.iter(|| encode_column(fixed, black_box(xs)));
        });
    }
    g.finish();
}

fn local_aggregates(c: &mut Criterion) {
    let fixed = FixedPoint::default();
    let mut g = c.benchmark_group("local_aggregates");
    for rows in [10_000usize, 100_000, 1_000_000] {
        g.throughput(Throughput::Elements(rows as u64));
        let mut input = None;
        g.bench_function(BenchmarkId::from_parameter(rows), |b| {
            let cols = input.get_or_insert_with(|| {
                eprintln!(
                    "local_aggregates/{rows}: {rows} rows x {COLUMNS} columns, local only, \
                     rounds=0 bytes_sent=0"
                );
                (0..COLUMNS as u64)
                    .map(|col| encode_column(fixed, &amounts(rows, 10 + col)))
                    .collect::<Vec<Vec<i64>>>()
            });
            b.iter(|| LocalAggregates::from_encoded(black_box(cols)).expect("equal lengths"));
        });
    }
    g.finish();
}

/// Runs `stats::run` (seed agreement + masking) for every party over the in-memory transport.
async fn stats_in_memory(
    locals: Arc<Vec<LocalAggregates>>,
) -> Vec<(AdditiveShare<u128>, CounterSnapshot)> {
    let n = locals.len();
    let ids = Arc::new(party_ids(n));
    let cols = Arc::new(column_names());
    run_in_memory(n, DEFAULT_MAX_MESSAGE, move |t: Channel| {
        let (locals, ids, cols) = (locals.clone(), ids.clone(), cols.clone());
        async move {
            let ctx = SessionContext {
                job_id: "bench-job",
                party_ids: &ids,
            };
            let mut rng = seeds::os_rng().expect("entropy");
            let share = stats::run(&t, ctx, &locals[t.me()], &cols, &mut rng)
                .await
                .expect("stats protocol");
            (share, t.counters().snapshot())
        }
    })
    .await
    .expect("no party panicked")
}

fn stats_protocol_in_memory(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let fixed = FixedPoint::default();
    let mut g = c.benchmark_group("stats_protocol_in_memory");
    for parties in [2usize, 3, 5] {
        // The documented cost: one round, a 32-byte public key to every peer.
        let total = 32 * (parties * (parties - 1)) as u64;
        g.throughput(Throughput::Bytes(total));
        let mut input = None;
        g.bench_function(BenchmarkId::from_parameter(parties), |b| {
            let locals = input.get_or_insert_with(|| {
                // The protocol's cost does not depend on the rows: 100 rows per party will do.
                let locals: Arc<Vec<LocalAggregates>> = Arc::new(
                    (0..parties as u64)
                        .map(|p| {
                            let cols: Vec<Vec<i64>> = (0..COLUMNS as u64)
                                .map(|col| encode_column(fixed, &amounts(100, 100 * p + col)))
                                .collect();
                            LocalAggregates::from_encoded(&cols).expect("equal lengths")
                        })
                        .collect(),
                );
                let once = rt.block_on(stats_in_memory(locals.clone()));
                let c0 = once[0].1;
                let sent: u64 = once.iter().map(|(_, c)| c.bytes_sent).sum();
                assert_eq!(sent, total, "payload differs from the documented cost");
                eprintln!(
                    "stats_protocol_in_memory/{parties}: rounds={} bytes_sent={} \
                     bytes_received={} per party, {sent} bytes in all; output share {} x u128",
                    c0.rounds,
                    c0.bytes_sent,
                    c0.bytes_received,
                    once[0].0.len()
                );
                locals
            });
            b.iter(|| rt.block_on(stats_in_memory(locals.clone())));
        });
    }
    g.finish();
}

fn seal_open(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let key = RecipientSecretKey::generate(&mut rng);
    let public = key.public_key().expect("public key");
    // 1 + 2 * 3 columns: the output share of a 3-column stats job.
    let elements = 1 + 2 * COLUMNS;
    let values: Vec<u128> = (0..elements)
        .map(|_| (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64()))
        .collect();
    let plain = AdditiveShare::from_values(values).to_bytes();
    let sealed =
        output::seal(&public, "bench-job", "party-0", &plain, &mut rng).expect("sealed share");
    let mut g = c.benchmark_group("seal_open");
    g.throughput(Throughput::Bytes(plain.len() as u64));
    let mut printed = false;
    g.bench_with_input(BenchmarkId::new("seal", elements), &plain, |b, plain| {
        if !std::mem::replace(&mut printed, true) {
            eprintln!(
                "seal_open/seal/{elements}: local only, rounds=0; {} plaintext bytes -> {} sealed \
                 bytes (uploaded by each party)",
                plain.len(),
                sealed.len()
            );
        }
        b.iter(|| {
            output::seal(&public, "bench-job", "party-0", black_box(plain), &mut rng)
                .expect("sealed")
        });
    });
    g.bench_with_input(BenchmarkId::new("open", elements), &sealed, |b, sealed| {
        b.iter(|| output::open(&key, "bench-job", "party-0", black_box(sealed)).expect("opened"));
    });
    g.finish();
}

/// The `stats` part of the demo's job spec (columns claim_amount, paid_amount, length_of_stay;
/// filter diagnosis_group = diabetes).
fn demo_stats_job(work_dir: &Path) -> pb::StatsJob {
    let spec = demo::stats_spec(&DemoOptions::new(work_dir.to_path_buf()), Vec::new());
    match spec.computation {
        Some(job_spec::Computation::Stats(s)) => s,
        _ => unreachable!("the demo spec is a stats job"),
    }
}

/// A minimal party config serving `ds` (only `base_dir` and the dataset matter to
/// `treaty_party::stats::local`).
fn party_config(dir: &Path, ds: DatasetConfig) -> PartyConfig {
    PartyConfig {
        id: "hospital".into(),
        listen: "127.0.0.1:0".parse().expect("socket address"),
        advertise: None,
        coordinator: "http://127.0.0.1:1".into(),
        coordinator_name: "coordinator".into(),
        insecure: true,
        tls: None,
        limits: Limits::default(),
        datasets: vec![ds],
        policy: None,
        state_dir: None,
        roster: None,
        base_dir: dir.to_path_buf(),
    }
}

fn csv_load_and_aggregate(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let stats_job = demo_stats_job(dir.path());
    let fixed = FixedPoint::new(DemoOptions::new(dir.path().into()).frac_bits).expect("frac bits");
    let mut g = c.benchmark_group("csv_load_and_aggregate");
    g.sample_size(20);
    for rows in [10_000usize, 100_000] {
        g.throughput(Throughput::Elements(rows as u64));
        let mut input = None;
        g.bench_function(BenchmarkId::from_parameter(rows), |b| {
            // The file is written once, outside the timed loop.
            let (cfg, ds) = input.get_or_insert_with(|| {
                let path = dir.path().join(format!("claims-{rows}.csv"));
                synthetic::write_claims_csv(&path, "hospital", rows, 42).expect("csv written");
                let ds = synthetic::claims_schema(demo::DATASET, path.clone());
                let cfg = party_config(dir.path(), ds.clone());
                let local = party_stats::local(&cfg, &ds, &stats_job, fixed).expect("local stats");
                let bytes = std::fs::metadata(&path).expect("csv metadata").len();
                eprintln!(
                    "csv_load_and_aggregate/{rows}: {bytes} byte file, {} of {rows} rows match \
                     the filter, {} columns; local only, rounds=0 bytes_sent=0",
                    local.count(),
                    local.columns()
                );
                (cfg, ds)
            });
            b.iter(|| party_stats::local(cfg, ds, &stats_job, fixed).expect("local stats"));
        });
    }
    g.finish();
}

/// One job through the running sandbox: submit, follow to the end, fetch and open the result.
async fn one_job(
    sandbox: &Sandbox,
    spec: pb::JobSpec,
    key: &RecipientSecretKey,
) -> (pb::Job, StatsResult) {
    let job = sandbox.run_job(spec, |_| {}).await.expect("job ran");
    assert_eq!(
        job.state(),
        JobState::Succeeded,
        "job failed: {}",
        job.reason
    );
    let mut client = sandbox.analyst().await.expect("analyst client");
    let result = analyst::fetch_stats_result(&mut client, &job, key, &sandbox.party_keys())
        .await
        .expect("result opened");
    (job, result)
}

/// A running deployment with the demo's data, and the job to run on it.
struct Deployment {
    sandbox: Sandbox,
    key: RecipientSecretKey,
    spec: pb::JobSpec,
}

/// Writes the demo data, starts the coordinator and party nodes (mutual TLS), runs the job once
/// to check it against the clear reference, and prints its communication.
fn deploy(rt: &Runtime, work_dir: &Path, rows: usize) -> Deployment {
    let mut opts = DemoOptions::new(work_dir.to_path_buf());
    opts.rows = rows;
    let data = demo::write_data(&opts).expect("synthetic data");
    let sandbox = rt.block_on(async {
        let mut sandbox = Sandbox::start(SandboxOptions::new(opts.work_dir.clone()), &opts.parties)
            .await
            .expect("sandbox");
        for (party, ds) in &data {
            sandbox
                .start_party(party, vec![ds.clone()])
                .await
                .expect("party node");
        }
        sandbox
            .wait_online(&opts.parties, Duration::from_secs(60))
            .await
            .expect("parties online");
        sandbox
    });
    let key = RecipientSecretKey::generate(&mut seeds::os_rng().expect("entropy"));
    let spec = demo::stats_spec(&opts, key.public_key().expect("public key").to_vec());

    let (job, result) = rt.block_on(one_job(&sandbox, spec.clone(), &key));
    let reference = demo::clear_reference(&opts, &data).expect("clear reference");
    let fixed = FixedPoint::new(opts.frac_bits).expect("frac bits");
    let (max_err, ok) = result.compare(&reference, fixed);
    assert!(ok, "secure result off by {max_err}");
    for p in &job.parties {
        eprintln!(
            "end_to_end_stats_job/{rows}: {} rounds={} bytes_sent={} bytes_received={} \
             (data plane, TLS on; {} of {} rows matched; max abs error {max_err:.3e})",
            p.party,
            p.rounds,
            p.bytes_sent,
            p.bytes_received,
            result.count,
            rows * opts.parties.len()
        );
    }
    Deployment { sandbox, key, spec }
}

fn end_to_end_stats_job(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let parties = DemoOptions::new(dir.path().into()).parties.len();
    let mut g = c.benchmark_group("end_to_end_stats_job");
    g.sample_size(10);
    for rows in END_TO_END_ROWS {
        g.throughput(Throughput::Elements((rows * parties) as u64));
        let mut deployment = None;
        g.bench_function(
            BenchmarkId::new(format!("{parties}_parties_tls"), rows),
            |b| {
                // Data, PKI, coordinator and party nodes are set up once, outside the timed loop.
                let d = deployment.get_or_insert_with(|| {
                    deploy(&rt, &dir.path().join(format!("rows-{rows}")), rows)
                });
                b.iter(|| rt.block_on(one_job(&d.sandbox, d.spec.clone(), &d.key)));
            },
        );
        if let Some(d) = deployment {
            rt.block_on(d.sandbox.shut_down());
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    fixed_point_encode,
    local_aggregates,
    stats_protocol_in_memory,
    seal_open,
    csv_load_and_aggregate,
    end_to_end_stats_job
);
criterion_main!(benches);
