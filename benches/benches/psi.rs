//! Criterion benches of two-party ECDH-PSI (`treaty_mpc::psi`) over the in-memory transport, and
//! of the curve-arithmetic floor it is measured against.
//!
//! `psi_in_memory`: both parties in this one process (as two processes on the same 2 cores), sets
//! of `n` ids per side with half of them shared, [`PsiMode::IntersectionToBoth`] (the costliest
//! mode: every tag travels back). Prints once per size the rounds and bytes sent per party.
//!
//! `psi_multi_in_memory`: three parties (`treaty_mpc::psi::multi`, the shrinking chain), `n` ids
//! each, half of them held by all three, intersection to all. Prints once per size the rounds and
//! the bytes each party sent (the chain is uneven: the combiner and its partner send the most).
//!
//! `psi_curve_floor`: the group work PSI cannot avoid, per id, with every core busy (rayon over
//! chunks, as the protocol does): for an own id one hash to the group and one scalar
//! multiplication; for a peer id one decompression and one scalar multiplication; each output
//! batch-compressed. Two parties on two cores do `2·n` of each, so the floor for a run is
//! `2·n·(own + peer)` CPU time divided by the cores.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use rayon::prelude::*;
use sha2::{Digest, Sha512};
use tokio::runtime::Runtime;
use treaty_mpc::psi::multi::{self, MultiPsiMode, MultiPsiParams, PartySet};
use treaty_mpc::psi::{PsiMode, PsiParams, run};
use treaty_mpc::transport::{DEFAULT_MAX_MESSAGE, run_in_memory};

/// Ids of party `p`: `n` ids, the first half shared with the other party.
fn ids(p: usize, n: usize) -> Vec<String> {
    (0..n)
        .map(|k| {
            if k < n / 2 {
                format!("patient-{k:09}")
            } else {
                format!("party{p}-only-{k:09}")
            }
        })
        .collect()
}

fn psi_once(rt: &Runtime, sets: &[Vec<String>; 2]) -> (usize, u64, u64) {
    let sets = sets.clone();
    let out = rt
        .block_on(run_in_memory(2, DEFAULT_MAX_MESSAGE, move |t| {
            let ids = sets[t.me()].clone();
            async move {
                let params = PsiParams::new("bench", PsiMode::IntersectionToBoth);
                let mut rng = ChaCha20Rng::from_seed([t.me() as u8 + 7; 32]);
                let out = run(&t, &params, &ids, &mut rng, |_| {}).await.expect("psi");
                let c = t.counters().snapshot();
                (out.size.unwrap_or(0) as usize, c.rounds, c.bytes_sent)
            }
        }))
        .expect("parties ran");
    out[0]
}

fn psi_in_memory(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let mut g = c.benchmark_group("psi_in_memory");
    g.sample_size(10);
    for log_n in [12u32, 16] {
        let n = 1usize << log_n;
        let sets = [ids(0, n), ids(1, n)];
        let (size, rounds, bytes) = psi_once(&rt, &sets);
        assert_eq!(size, n / 2, "half the ids are shared");
        eprintln!(
            "psi_in_memory/2^{log_n}: rounds={rounds} bytes_sent_per_party={bytes} ({:.1} B per id)",
            bytes as f64 / n as f64
        );
        g.throughput(Throughput::Elements(2 * n as u64));
        g.bench_function(BenchmarkId::from_parameter(format!("2^{log_n}")), |b| {
            b.iter(|| black_box(psi_once(&rt, &sets)))
        });
    }
    g.finish();
}

/// One three-party run: the intersection size and, per party, (rounds, bytes sent).
fn multi_once(rt: &Runtime, sets: &[Vec<String>]) -> (usize, Vec<(u64, u64)>) {
    let sets = sets.to_vec();
    let m = sets.len();
    let out = rt
        .block_on(run_in_memory(m, DEFAULT_MAX_MESSAGE, move |t| {
            let ids = sets[t.me()].clone();
            async move {
                let mode = MultiPsiMode::IntersectionTo(PartySet::all(m));
                let params = MultiPsiParams::new("bench", mode);
                let mut rng = ChaCha20Rng::from_seed([t.me() as u8 + 7; 32]);
                let out = multi::run(&t, &params, &ids, &mut rng, |_| {})
                    .await
                    .expect("psi");
                let c = t.counters().snapshot();
                (out.size.unwrap_or(0) as usize, (c.rounds, c.bytes_sent))
            }
        }))
        .expect("parties ran");
    (out[0].0, out.iter().map(|o| o.1).collect())
}

fn psi_multi_in_memory(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let mut g = c.benchmark_group("psi_multi_in_memory");
    g.sample_size(10);
    for log_n in [12u32, 16] {
        let n = 1usize << log_n;
        let sets: Vec<Vec<String>> = (0..3).map(|p| ids(p, n)).collect();
        let (size, cost) = multi_once(&rt, &sets);
        assert_eq!(size, n / 2, "half the ids are held by all three");
        let bytes: Vec<String> = cost.iter().map(|(_, b)| b.to_string()).collect();
        eprintln!(
            "psi_multi_in_memory/3x2^{log_n}: rounds={} bytes_sent_per_party=[{}]",
            cost[0].0,
            bytes.join(", ")
        );
        g.throughput(Throughput::Elements(3 * n as u64));
        g.bench_function(BenchmarkId::from_parameter(format!("3x2^{log_n}")), |b| {
            b.iter(|| black_box(multi_once(&rt, &sets)))
        });
    }
    g.finish();
}

fn psi_curve_floor(c: &mut Criterion) {
    const N: usize = 1 << 13;
    const CHUNK: usize = 512;
    let mut g = c.benchmark_group("psi_curve_floor");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    let k = Scalar::from_bytes_mod_order([7u8; 32]);
    let own = ids(0, N);
    g.bench_function("own_id_hash_mul_compress", |b| {
        b.iter(|| {
            own.par_chunks(CHUNK)
                .map(|chunk| {
                    let pts: Vec<RistrettoPoint> = chunk
                        .iter()
                        .map(|id| k * RistrettoPoint::from_hash(Sha512::new_with_prefix(id)))
                        .collect();
                    RistrettoPoint::double_and_compress_batch(&pts).len()
                })
                .sum::<usize>()
        })
    });
    let peer: Vec<[u8; 32]> = own
        .iter()
        .map(|id| {
            RistrettoPoint::hash_from_bytes::<Sha512>(id.as_bytes())
                .compress()
                .to_bytes()
        })
        .collect();
    g.bench_function("peer_point_decompress_mul_compress", |b| {
        b.iter(|| {
            peer.par_chunks(CHUNK)
                .map(|chunk| {
                    let pts: Vec<RistrettoPoint> = chunk
                        .iter()
                        .map(|p| k * CompressedRistretto(*p).decompress().expect("valid point"))
                        .collect();
                    RistrettoPoint::double_and_compress_batch(&pts).len()
                })
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = psi_curve_floor, psi_in_memory, psi_multi_in_memory
}
criterion_main!(benches);
