use super::*;
use crate::share::reconstruct;
use crate::transport::{Channel, DEFAULT_MAX_MESSAGE, run_in_memory};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn names(k: usize) -> Vec<String> {
    (0..k).map(|i| format!("c{i}")).collect()
}

/// Runs the protocol for `parties` (each: column-major f64 data) and returns the secure result,
/// the plaintext reference, and every party's counters.
async fn secure_vs_clear(
    parties: Vec<Vec<Vec<f64>>>,
    fixed: FixedPoint,
) -> (
    StatsResult,
    StatsResult,
    Vec<crate::transport::CounterSnapshot>,
) {
    let n = parties.len();
    let k = parties[0].len();
    let cols = names(k);
    let ids: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
    let inputs = parties.clone();
    let out = run_in_memory(n, DEFAULT_MAX_MESSAGE, move |t: Channel| {
        let data = inputs[t.me()].clone();
        let (cols, ids) = (names(k), ids.clone());
        async move {
            let encoded: Vec<Vec<i64>> = data
                .iter()
                .map(|c| c.iter().map(|&x| fixed.encode_signed(x).unwrap()).collect())
                .collect();
            let local = LocalAggregates::from_encoded(&encoded).unwrap();
            let ctx = SessionContext {
                job_id: "stats-test",
                party_ids: &ids,
            };
            let mut rng = ChaCha20Rng::seed_from_u64(t.me() as u64 + 100);
            let share = run(&t, ctx, &local, &cols, &mut rng).await.unwrap();
            (share, t.counters().snapshot())
        }
    })
    .await
    .unwrap();
    let (shares, counters): (Vec<_>, Vec<_>) = out.into_iter().unzip();
    let totals = reconstruct(&shares).unwrap();
    let secure = StatsResult::from_totals(&totals, &cols, fixed).unwrap();
    let mut all: Vec<Vec<f64>> = vec![Vec::new(); k];
    for p in &parties {
        for (c, col) in p.iter().enumerate() {
            all[c].extend_from_slice(col);
        }
    }
    let clear = StatsResult::plaintext(&cols, &all);
    (secure, clear, counters)
}

#[tokio::test]
async fn three_parties_match_plaintext_and_cost_one_round() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    use rand::RngExt;
    let parties: Vec<Vec<Vec<f64>>> = (0..3)
        .map(|p| {
            let rows = 500 + 100 * p;
            vec![
                (0..rows)
                    .map(|_| rng.random_range(-5_000.0..250_000.0))
                    .collect(),
                (0..rows)
                    .map(|_| rng.random_range(0.0..100.0f64).round())
                    .collect(),
            ]
        })
        .collect();
    let fixed = FixedPoint::default();
    let (secure, clear, counters) = secure_vs_clear(parties, fixed).await;
    let (err, ok) = secure.compare(&clear, fixed);
    assert!(ok, "secure {secure:?} vs clear {clear:?}: max error {err}");
    assert_eq!(secure.count, 1800);
    for c in &counters {
        assert_eq!(c.rounds, 1);
        assert_eq!(c.bytes_sent, 2 * 32);
        assert_eq!(c.messages_sent, 2);
    }
}

#[tokio::test]
async fn empty_and_single_row_parties() {
    let fixed = FixedPoint::new(20).unwrap();
    let (secure, clear, _) =
        secure_vs_clear(vec![vec![vec![]], vec![vec![3.25]], vec![vec![]]], fixed).await;
    assert_eq!(secure.count, 1);
    assert_eq!(secure.columns[0].mean, Some(3.25));
    assert_eq!(secure.columns[0].variance, None);
    assert!(secure.compare(&clear, fixed).1);
    let (secure, _, _) = secure_vs_clear(vec![vec![vec![]], vec![vec![]]], fixed).await;
    assert_eq!((secure.count, secure.columns[0].mean), (0, None));
}

#[test]
fn a_local_total_past_the_bound_is_refused_naming_the_column() {
    let big = i64::MAX;
    let local = LocalAggregates::from_encoded(&[vec![1, 2, 3], vec![big, big]]);
    // Ragged columns are an error of their own.
    assert!(matches!(local, Err(MpcError::LengthMismatch { .. })));
    let local = LocalAggregates::from_encoded(&[vec![1, 2, 3], vec![big, big, big]]).unwrap();
    match local.to_ring(&names(2), 3) {
        Err(MpcError::AggregateOverflow { column, parties }) => {
            assert_eq!((column.as_str(), parties), ("c1", 3));
        }
        other => panic!("expected overflow, got {other:?}"),
    }
}

#[test]
fn debug_shows_shape_only() {
    let local = LocalAggregates::from_encoded(&[vec![123_456_789]]).unwrap();
    let text = format!("{local:?}");
    assert!(!text.contains("123456789"), "{text}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_inputs_within_bound(
        data in proptest::collection::vec(
            proptest::collection::vec(-1.0e7f64..1.0e7, 0..40), 2..5),
        frac_bits in 8u32..=24,
    ) {
        let parties: Vec<Vec<Vec<f64>>> = data.into_iter().map(|c| vec![c]).collect();
        let fixed = FixedPoint::new(frac_bits).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (secure, clear, _) = rt.block_on(secure_vs_clear(parties.clone(), fixed));
        let (err, ok) = secure.compare(&clear, fixed);
        prop_assert!(ok, "inputs {parties:?}: secure {secure:?} clear {clear:?} err {err}");
    }
}
