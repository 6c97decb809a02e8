//! Criterion benches of the three-party replicated engine (`treaty_mpc::rep3`) over the in-memory
//! transport: every operation of `treaty_mpc::rep3::workload` (fixed-point multiplication,
//! less-than, matrix products) at the sizes of the rep3 issue. `treaty bench mpc` runs the same
//! workloads between three processes over gRPC with mutual TLS.
//!
//! All three parties run in this one process (like three processes on the same 2 cores). Each
//! iteration sets up a session and shares the inputs untimed, then `Case::measure` runs a barrier
//! round and times the operation at every party; the slowest party's time counts. One line per
//! case reports rounds and payload bytes per party of the operation.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use tokio::runtime::Runtime;
use treaty_mpc::rep3::Rep3Session;
use treaty_mpc::rep3::workload::{Case, DEFAULT_MATRICES, DEFAULT_NS, Op};
use treaty_mpc::seeds::SessionContext;
use treaty_mpc::transport::{CounterSnapshot, DEFAULT_MAX_MESSAGE, run_in_memory};

/// Runs `case` once over three in-process parties; returns the slowest party's time for the
/// operation alone and the most bytes any party sent during it (with that party's counters).
fn run_once(rt: &Runtime, case: Case) -> (Duration, CounterSnapshot) {
    let out = rt
        .block_on(run_in_memory(3, DEFAULT_MAX_MESSAGE, move |t| async move {
            let ids: Vec<String> = (0..3).map(|p| format!("party-{p}")).collect();
            let ctx = SessionContext {
                job_id: "bench",
                party_ids: &ids,
            };
            let me = t.me();
            let mut rng = ChaCha20Rng::seed_from_u64(1000 + me as u64);
            let mut s = Rep3Session::setup(&t, ctx, &mut rng).await.expect("setup");
            let inputs = case.inputs_for(me);
            let shared = case.share(&mut s, &inputs).await.expect("inputs");
            let (_, m) = case.measure(&mut s, &shared).await.expect("operation");
            m
        }))
        .expect("parties ran");
    let slowest = out.iter().map(|m| m.elapsed).max().unwrap_or_default();
    let busiest = out
        .iter()
        .map(|m| m.traffic)
        .max_by_key(|t| t.bytes_sent)
        .unwrap_or_default();
    (slowest, busiest)
}

fn bench_op(c: &mut Criterion, op: Op) {
    let rt = Runtime::new().expect("tokio runtime");
    let cases = Case::grid(&[op], &DEFAULT_NS, &DEFAULT_MATRICES).expect("valid default cases");
    let group = format!("rep3_{}", op.name());
    let mut g = c.benchmark_group(&group);
    g.sample_size(10);
    for case in cases {
        let (_, traffic) = run_once(&rt, case);
        let elements = case.out_len() as u64;
        eprintln!(
            "{group}/{}: rounds={} bytes_sent_per_party={} ({:.1} B per output element)",
            case.shape(),
            traffic.rounds,
            traffic.bytes_sent,
            traffic.bytes_sent as f64 / elements as f64
        );
        g.throughput(Throughput::Elements(elements));
        g.bench_function(BenchmarkId::from_parameter(case.shape()), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run_once(&rt, case).0).sum::<Duration>())
        });
    }
    g.finish();
}

fn rep3(c: &mut Criterion) {
    for &op in Op::ALL {
        bench_op(c, op);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = rep3
}
criterion_main!(benches);
