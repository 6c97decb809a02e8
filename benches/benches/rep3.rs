//! Criterion benches of the three-party replicated engine (`treaty_mpc::rep3`) over the in-memory
//! transport: fixed-point multiplication, less-than and matrix products at the sizes of the rep3
//! issue.
//!
//! All three parties run in this one process (like three processes on the same 2 cores). Timing
//! starts after the inputs are shared, as in the SPU reference figures: each iteration sets up a
//! session and shares the inputs untimed, then times the operation at every party and takes the
//! slowest party. One line per size reports rounds and payload bytes per party of the operation.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use tokio::runtime::Runtime;
use treaty_mpc::fixed::FixedPoint;
use treaty_mpc::rep3::Rep3Session;
use treaty_mpc::seeds::SessionContext;
use treaty_mpc::transport::{CounterSnapshot, DEFAULT_MAX_MESSAGE, Transport, run_in_memory};

const FRAC_BITS: u32 = 16;

/// What one iteration computes.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Element-wise fixed-point product of two n-vectors.
    MulFixed { n: usize },
    /// Fixed-point `m×k · k×n` matrix product.
    MatmulFixed { m: usize, k: usize, n: usize },
    /// Element-wise `x < y` of two n-vectors (a boolean-shared bit per element).
    LessThan { n: usize },
}

impl Op {
    fn input_lens(self) -> (usize, usize) {
        match self {
            Op::MulFixed { n } | Op::LessThan { n } => (n, n),
            Op::MatmulFixed { m, k, n } => (m * k, k * n),
        }
    }
}

/// Fixed-point values in [-16, 16): products stay far inside the truncation's safe range.
fn values(len: usize, seed: u64) -> Vec<u64> {
    let fixed = FixedPoint::new(FRAC_BITS).expect("valid frac bits");
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..len)
        .map(|_| {
            let u = (rng.next_u64() >> 11) as f64 * (-53f64).exp2();
            fixed.encode(32.0 * u - 16.0).expect("in range")
        })
        .collect()
}

/// Runs `op` once over three in-process parties; returns the slowest party's time for the
/// operation alone and party 0's traffic during it.
fn run_once(rt: &Runtime, op: Op, xs: &[u64], ys: &[u64]) -> (Duration, CounterSnapshot) {
    let (xs, ys) = (xs.to_vec(), ys.to_vec());
    let out = rt
        .block_on(run_in_memory(3, DEFAULT_MAX_MESSAGE, move |t| {
            let (xs, ys) = (xs.clone(), ys.clone());
            async move {
                let ids: Vec<String> = (0..3).map(|p| format!("party-{p}")).collect();
                let ctx = SessionContext {
                    job_id: "bench",
                    party_ids: &ids,
                };
                let me = t.me();
                let mut rng = ChaCha20Rng::seed_from_u64(1000 + me as u64);
                let mut s = Rep3Session::setup(&t, ctx, 0, &mut rng)
                    .await
                    .expect("setup");
                let (lx, ly) = op.input_lens();
                let x = s
                    .share_input(0, (me == 0).then_some(&xs[..]), lx)
                    .await
                    .expect("input x");
                let y = s
                    .share_input(1, (me == 1).then_some(&ys[..]), ly)
                    .await
                    .expect("input y");
                let before = t.counters().snapshot();
                let start = Instant::now();
                match op {
                    Op::MulFixed { .. } => {
                        black_box(s.mul_fixed(&x, &y, FRAC_BITS).await.expect("mul"));
                    }
                    Op::MatmulFixed { m, k, n } => {
                        black_box(
                            s.matmul_fixed(&x, &y, m, k, n, FRAC_BITS)
                                .await
                                .expect("matmul"),
                        );
                    }
                    Op::LessThan { .. } => {
                        black_box(s.lt(&x, &y).await.expect("lt"));
                    }
                }
                let elapsed = start.elapsed();
                let after = t.counters().snapshot();
                (
                    elapsed,
                    CounterSnapshot {
                        rounds: after.rounds - before.rounds,
                        bytes_sent: after.bytes_sent - before.bytes_sent,
                        bytes_received: after.bytes_received - before.bytes_received,
                        messages_sent: after.messages_sent - before.messages_sent,
                        messages_received: after.messages_received - before.messages_received,
                    },
                )
            }
        }))
        .expect("parties ran");
    let slowest = out.iter().map(|(d, _)| *d).max().unwrap_or_default();
    (slowest, out[0].1)
}

fn bench_op(c: &mut Criterion, group: &str, cases: &[(String, Op, u64)], samples: usize) {
    let rt = Runtime::new().expect("tokio runtime");
    let mut g = c.benchmark_group(group);
    g.sample_size(samples);
    for (id, op, elements) in cases {
        let (lx, ly) = op.input_lens();
        let (xs, ys) = (values(lx, 1), values(ly, 2));
        let (_, traffic) = run_once(&rt, *op, &xs, &ys);
        eprintln!(
            "{group}/{id}: rounds={} bytes_sent_per_party={} ({:.1} B per output element)",
            traffic.rounds,
            traffic.bytes_sent,
            traffic.bytes_sent as f64 / *elements as f64
        );
        g.throughput(Throughput::Elements(*elements));
        g.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| run_once(&rt, *op, &xs, &ys).0)
                    .sum::<Duration>()
            })
        });
    }
    g.finish();
}

fn mul_fixed(c: &mut Criterion) {
    let cases: Vec<_> = [10_000usize, 100_000, 1_000_000]
        .into_iter()
        .map(|n| (n.to_string(), Op::MulFixed { n }, n as u64))
        .collect();
    bench_op(c, "rep3_mul_fixed", &cases, 10);
}

fn less_than(c: &mut Criterion) {
    let cases: Vec<_> = [10_000usize, 100_000, 1_000_000]
        .into_iter()
        .map(|n| (n.to_string(), Op::LessThan { n }, n as u64))
        .collect();
    bench_op(c, "rep3_less_than", &cases, 10);
}

fn matmul_fixed(c: &mut Criterion) {
    let cases = [
        (
            "1000x100x1".to_string(),
            Op::MatmulFixed {
                m: 1000,
                k: 100,
                n: 1,
            },
            1000,
        ),
        (
            "1000x1000x1000".to_string(),
            Op::MatmulFixed {
                m: 1000,
                k: 1000,
                n: 1000,
            },
            1_000_000,
        ),
    ];
    bench_op(c, "rep3_matmul_fixed", &cases, 10);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = mul_fixed, less_than, matmul_fixed
}
criterion_main!(benches);
