//! Criterion benches of secure logistic regression (`treaty_mpc::glm`) over the in-memory
//! transport, all three parties in this process: one epoch of training on 10,000 × 30 rows
//! (batch 1024, 10 batches of 37 rounds each) and scoring one record (share, `x·w`, sigmoid).
//! `treaty bench train` and `treaty bench score` run the full workloads (100,000 × 30, 10 epochs;
//! 10⁶ records and 1,000 single requests) between three processes over gRPC with mutual TLS.
//!
//! Each iteration sets up the sessions and shares the inputs untimed; the slowest party's time
//! for the operation counts.

use std::ops::Range;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use tokio::runtime::Runtime;
use treaty_mpc::glm::{self, GlmInput, GlmKind, GlmLayout, Standardizer, TrainParams};
use treaty_mpc::seeds::SessionContext;
use treaty_mpc::transport::{DEFAULT_MAX_MESSAGE, run_in_memory};

const FEATURES: usize = 30;
const FRAC_BITS: u32 = 16;

/// What is timed after the inputs are shared.
#[derive(Clone, Copy)]
enum Work {
    /// One epoch of training on all rows.
    TrainEpoch,
    /// The logits and sigmoid of the first row.
    ScoreOne,
}

/// Runs `work` on `rows` synthetic rows; returns the slowest party's time for it.
fn run_once(rt: &Runtime, rows: usize, work: Work) -> Duration {
    let table = glm::plain::synthetic_table(rows, FEATURES, -1.0, 7);
    let layout = GlmLayout {
        feature_owners: (0..FEATURES).map(|c| c % 3).collect(),
        label_owner: Some(1),
    };
    let out = rt
        .block_on(run_in_memory(3, DEFAULT_MAX_MESSAGE, move |t| {
            let me = t.me();
            let layout = layout.clone();
            let own: Vec<Vec<f64>> = layout
                .features_of(me)
                .iter()
                .map(|&c| {
                    let col = &table.columns[c];
                    let fit = Standardizer::fit(col).expect("finite column");
                    col.iter().map(|&x| fit.apply(x)).collect()
                })
                .collect();
            let label = (me == 1).then(|| table.label.clone());
            async move {
                let input = GlmInput::data(rows, own, label, [0; 32]).expect("input");
                let ids: Vec<String> = (0..3).map(|p| format!("party-{p}")).collect();
                let ctx = SessionContext {
                    job_id: "bench",
                    party_ids: &ids,
                };
                let mut rng = ChaCha20Rng::seed_from_u64(1000 + me as u64);
                let (mut s, n) = glm::setup(&t, ctx, &layout, &input, &mut rng)
                    .await
                    .expect("setup");
                let names: Vec<String> = (0..FEATURES).map(|c| format!("c{c}")).collect();
                let data = glm::share(
                    &mut s,
                    n,
                    &layout,
                    &input,
                    &names,
                    GlmKind::Logistic,
                    true,
                    FRAC_BITS,
                )
                .await
                .expect("share");
                let mut params = TrainParams::new(GlmKind::Logistic);
                params.epochs = 1;
                let all: Range<usize> = 0..n;
                match work {
                    Work::TrainEpoch => {
                        let start = Instant::now();
                        glm::train(&mut s, &data, all, &params, FRAC_BITS, |_, _| {})
                            .await
                            .expect("train");
                        start.elapsed()
                    }
                    Work::ScoreOne => {
                        params.batch_size = n;
                        let model = glm::train(&mut s, &data, all, &params, FRAC_BITS, |_, _| {})
                            .await
                            .expect("train");
                        let w = model.scoring_weights(&mut s).await.expect("weights");
                        let start = Instant::now();
                        let z = glm::predict_with(&mut s, &w, &data, 0..1)
                            .await
                            .expect("predict");
                        s.sigmoid(&z, FRAC_BITS).await.expect("sigmoid");
                        start.elapsed()
                    }
                }
            }
        }))
        .expect("parties ran");
    out.into_iter().max().unwrap_or_default()
}

fn bench_glm(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let mut g = c.benchmark_group("glm");
    g.sample_size(10);
    g.bench_function("train_epoch_10000x30_batch1024", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| run_once(&rt, 10_000, Work::TrainEpoch))
                .sum()
        })
    });
    g.bench_function("score_one_record_30_features", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run_once(&rt, 64, Work::ScoreOne)).sum())
    });
    g.finish();
}

criterion_group!(benches, bench_glm);
criterion_main!(benches);
