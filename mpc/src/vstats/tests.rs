use super::*;
use crate::share::reconstruct;
use crate::transport::{Channel, CounterSnapshot, DEFAULT_MAX_MESSAGE, run_in_memory};
use rand::RngExt;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// The clear joined table of one test: per row, every column's value (real units) and, per
/// party, its filter bit.
#[derive(Clone)]
struct Joined {
    /// `values[c][j]`: column `c` at aligned row `j`.
    values: Vec<Vec<f64>>,
    /// `filters[p]`: party `p`'s indicator, if it has a filter.
    filters: [Option<Vec<bool>>; 3],
}

fn joined(rows: usize, columns: usize, filter_parties: &[usize], seed: u64) -> Joined {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let values = (0..columns)
        .map(|c| {
            (0..rows)
                .map(|_| match c % 3 {
                    0 => rng.random_range(20.0..250_000.0f64),
                    1 => rng.random_range(0.0..100.0f64).round(),
                    _ => rng.random_range(-1_000.0..1_000.0f64),
                })
                .collect()
        })
        .collect();
    let mut filters: [Option<Vec<bool>>; 3] = [None, None, None];
    for &p in filter_parties {
        filters[p] = Some((0..rows).map(|_| rng.random_bool(0.4)).collect());
    }
    Joined { values, filters }
}

fn names(layout: &VerticalLayout) -> Vec<String> {
    layout
        .column_owners
        .iter()
        .enumerate()
        .map(|(c, p)| format!("party{p}.c{c}"))
        .collect()
}

/// The reference: the same filter and statistics in f64 over the clear joined rows.
fn clear(data: &Joined, names: &[String]) -> StatsResult {
    let rows = data.values.first().map_or(0, Vec::len);
    let keep: Vec<bool> = (0..rows)
        .map(|j| data.filters.iter().flatten().all(|f| f[j]))
        .collect();
    let selected: Vec<Vec<f64>> = data
        .values
        .iter()
        .map(|col| {
            col.iter()
                .zip(&keep)
                .filter_map(|(x, k)| k.then_some(*x))
                .collect()
        })
        .collect();
    StatsResult::plaintext(names, &selected)
}

/// Each party's input for `data` under `layout`, with its own digest (`digests[p]`).
fn inputs(
    layout: &VerticalLayout,
    data: &Joined,
    rows: [usize; 3],
    fixed: FixedPoint,
) -> Vec<VerticalInput> {
    (0..3)
        .map(|p| {
            if !layout.data_parties.contains(&p) {
                return VerticalInput::helper();
            }
            let columns = (0..layout.column_owners.len())
                .filter(|&c| layout.column_owners[c] == p)
                .map(|c| {
                    data.values[c][..rows[p]]
                        .iter()
                        .map(|&x| fixed.encode_signed(x).unwrap())
                        .collect()
                })
                .collect();
            let filter = data.filters[p].as_ref().map(|f| f[..rows[p]].to_vec());
            VerticalInput::data(rows[p], filter, columns, [7; DIGEST_LEN]).unwrap()
        })
        .collect()
}

type PartyOutcome = (Result<VerticalOutcome, MpcError>, CounterSnapshot);

async fn run_all(layout: &VerticalLayout, inputs: Vec<VerticalInput>, f: u32) -> Vec<PartyOutcome> {
    let names = names(layout);
    let layout = layout.clone();
    let fixed = FixedPoint::new(f).unwrap();
    run_in_memory(3, DEFAULT_MAX_MESSAGE, move |t: Channel| {
        let (layout, names, input) = (layout.clone(), names.clone(), inputs[t.me()].clone());
        async move {
            let ids: Vec<String> = (0..3).map(|i| format!("p{i}")).collect();
            let ctx = SessionContext {
                job_id: "vstats-test",
                party_ids: &ids,
            };
            let mut rng = ChaCha20Rng::seed_from_u64(t.me() as u64 + 11);
            let out = run(&t, ctx, &layout, &input, &names, fixed, &mut rng).await;
            (out, t.counters().snapshot())
        }
    })
    .await
    .unwrap()
}

/// Runs a passing case and returns (secure, clear, counters).
async fn secure_vs_clear(
    layout: &VerticalLayout,
    data: &Joined,
    f: u32,
) -> (StatsResult, StatsResult, Vec<CounterSnapshot>) {
    let fixed = FixedPoint::new(f).unwrap();
    let rows = data.values[0].len();
    let out = run_all(layout, inputs(layout, data, [rows; 3], fixed), f).await;
    let mut shares = Vec::new();
    let mut counters = Vec::new();
    for (p, (r, c)) in out.into_iter().enumerate() {
        let r = r.unwrap_or_else(|e| panic!("party {p}: {e}"));
        assert_eq!(r.rows, rows);
        shares.push(r.share);
        counters.push(c);
    }
    let names = names(layout);
    let words = reconstruct(&shares).unwrap();
    let totals = totals(&words, names.len(), fixed).unwrap();
    let secure = StatsResult::from_totals(&totals, &names, fixed).unwrap();
    (secure, clear(data, &names), counters)
}

#[tokio::test]
async fn filters_at_both_data_parties_match_the_clear_join() {
    // Hospital (0) holds a filter and a column, the bank (1) helps, the insurer (2) holds a
    // filter and two columns.
    let layout = VerticalLayout {
        data_parties: vec![0, 2],
        column_owners: vec![2, 0, 2],
        filter_parties: vec![0, 2],
    };
    for (rows, seed, f) in [(1, 1, 16), (2_000, 2, 16), (5_000, 3, 8), (300, 4, 0)] {
        let data = joined(rows, 3, &layout.filter_parties, seed);
        let (secure, clear, counters) = secure_vs_clear(&layout, &data, f).await;
        let (err, ok) = compare(&secure, &clear, FixedPoint::new(f).unwrap());
        assert!(
            ok,
            "rows {rows} seed {seed} f {f}: max error {err}\nsecure {secure:?}\nclear {clear:?}"
        );
        // Header, seeds, two inputs, one filter product, the matmul: 6 rounds everywhere.
        assert!(counters.iter().all(|c| c.rounds == 6), "{counters:?}");
        // The helper sends 32 bytes to each peer (seeds), 8 per row (filter product) and
        // 8·(1 + 2·3) (matmul); nothing in the header or the input rounds.
        let helper = counters[1].bytes_sent;
        assert_eq!(helper, 64 + 8 * rows as u64 + 8 * 7, "helper {helper}");
    }
}

#[tokio::test]
async fn one_filter_or_none_and_any_helper_index() {
    // Helper 0; data parties 1 and 2; a filter at 1 only.
    let layout = VerticalLayout {
        data_parties: vec![1, 2],
        column_owners: vec![2],
        filter_parties: vec![1],
    };
    let data = joined(3_000, 1, &layout.filter_parties, 9);
    let (secure, clear, counters) = secure_vs_clear(&layout, &data, 16).await;
    let (err, ok) = compare(&secure, &clear, FixedPoint::default());
    assert!(ok, "max error {err}: {secure:?} vs {clear:?}");
    assert!(secure.count > 1000 && secure.count < 1500, "{secure:?}");
    // No filter product: header, seeds, two inputs, matmul.
    assert!(counters.iter().all(|c| c.rounds == 5), "{counters:?}");

    // No filter: the count is the number of aligned rows; the hospital only holds the ids.
    let layout = VerticalLayout {
        data_parties: vec![0, 1],
        column_owners: vec![1, 1],
        filter_parties: vec![],
    };
    let data = joined(500, 2, &[], 5);
    let (secure, clear, counters) = secure_vs_clear(&layout, &data, 16).await;
    let (err, ok) = compare(&secure, &clear, FixedPoint::default());
    assert!(ok, "max error {err}: {secure:?} vs {clear:?}");
    assert_eq!(secure.count, 500);
    // Header, seeds, one input (party 0 shares nothing), matmul.
    assert!(counters.iter().all(|c| c.rounds == 4), "{counters:?}");
}

#[tokio::test]
async fn mismatched_row_counts_and_digests_fail_everywhere() {
    let layout = VerticalLayout {
        data_parties: vec![0, 2],
        column_owners: vec![2],
        filter_parties: vec![0],
    };
    let fixed = FixedPoint::default();
    let data = joined(100, 1, &layout.filter_parties, 1);
    let out = run_all(&layout, inputs(&layout, &data, [100, 0, 99], fixed), 16).await;
    for (p, (r, _)) in out.iter().enumerate() {
        match r {
            Err(MpcError::ProtocolMismatch { what, .. }) => {
                assert!(what.contains("aligned rows"), "party {p}: {what}")
            }
            other => panic!("party {p}: {other:?}"),
        }
    }
    let mut ins = inputs(&layout, &data, [100; 3], fixed);
    ins[2].digest = Some([8; DIGEST_LEN]);
    let out = run_all(&layout, ins, 16).await;
    for p in [0, 2] {
        match &out[p].0 {
            Err(MpcError::ProtocolMismatch { what, .. }) => {
                assert!(
                    what.contains("different intersections"),
                    "party {p}: {what}"
                )
            }
            other => panic!("party {p}: {other:?}"),
        }
    }
    // The helper cannot compare ids; it fails when the data parties leave.
    assert!(out[1].0.is_err());
}

#[tokio::test]
async fn an_empty_intersection_is_refused_by_all() {
    let layout = VerticalLayout {
        data_parties: vec![0, 2],
        column_owners: vec![2],
        filter_parties: vec![0],
    };
    let data = joined(0, 1, &layout.filter_parties, 1);
    let out = run_all(
        &layout,
        inputs(&layout, &data, [0; 3], FixedPoint::default()),
        16,
    )
    .await;
    for (p, (r, c)) in out.iter().enumerate() {
        assert!(
            matches!(r, Err(MpcError::EmptyIntersection)),
            "party {p}: {r:?}"
        );
        assert_eq!(c.rounds, 1, "only the header ran");
    }
}

#[tokio::test]
async fn a_column_that_could_wrap_is_refused_before_anything_is_sent() {
    let layout = VerticalLayout {
        data_parties: vec![0, 2],
        column_owners: vec![2],
        filter_parties: vec![0],
    };
    let fixed = FixedPoint::default();
    // 2^16 at f = 16 squares to q = 2^32 · 2^16 per row: 2^15 rows reach 2^63.
    let mut data = joined(1 << 15, 1, &layout.filter_parties, 1);
    data.values[0].iter_mut().for_each(|x| *x = 65_536.0);
    let out = run_all(&layout, inputs(&layout, &data, [1 << 15; 3], fixed), 16).await;
    match &out[2] {
        (Err(MpcError::ColumnRange { column, rows, .. }), c) => {
            assert_eq!((column.as_str(), *rows), ("party2.c0", 1 << 15));
            assert_eq!(c.messages_sent, 0);
        }
        other => panic!("{:?}", other.0),
    }
    assert!(out[0].0.is_err() && out[1].0.is_err());
    // One row fewer fits.
    let mut ok = Vec::new();
    let rows = (1 << 15) - 1;
    encode_column("c", &vec![-(1i64 << 32); rows], fixed, &mut ok).unwrap();
    assert_eq!(ok.len(), 2 * rows);
    assert_eq!(ok[rows], 1 << 48);
    // A single value whose square alone is too large.
    assert!(encode_column("c", &[1i64 << 56], fixed, &mut ok).is_err());
}

#[test]
fn layouts_and_inputs_are_checked() {
    let bad = [
        (vec![], vec![0], vec![]),
        (vec![2, 0], vec![0], vec![]),
        (vec![0, 3], vec![0], vec![]),
        (vec![0, 2], vec![], vec![]),
        (vec![0, 2], vec![1], vec![]),
        (vec![0, 2], vec![0], vec![1]),
        (vec![0, 2], vec![0], vec![2, 0]),
    ];
    for (data_parties, column_owners, filter_parties) in bad {
        let l = VerticalLayout {
            data_parties,
            column_owners,
            filter_parties,
        };
        assert!(l.check().is_err(), "{l:?}");
    }
    assert!(VerticalInput::data(3, Some(vec![true; 2]), vec![], [0; DIGEST_LEN]).is_err());
    assert!(VerticalInput::data(3, None, vec![vec![1; 4]], [0; DIGEST_LEN]).is_err());
    let input = VerticalInput::data(3, None, vec![vec![1; 3]], [0; DIGEST_LEN]).unwrap();
    assert_eq!(
        format!("{input:?}"),
        "VerticalInput { rows: 3, filter: false, columns: 1, .. }"
    );
}

#[test]
fn totals_lift_and_check_the_words() {
    let fixed = FixedPoint::new(4).unwrap();
    let t = totals(&[3, (-5i64) as u64, 7], 1, fixed).unwrap();
    assert_eq!(t, vec![3, (-5i128) as u128, 7 << 4]);
    assert!(totals(&[3, 1, 1 << 63], 1, fixed).is_err());
    assert!(totals(&[3, 1], 1, fixed).is_err());
}

/// Two fake data parties declare 2^40 aligned rows (with matching digests, so the count is all
/// that is wrong): every honest party refuses the count at the header, naming the declarer,
/// before it sets up a session or allocates a share for a row. A data party whose own count is
/// over its limit refuses before it sends anything.
#[tokio::test]
async fn a_declared_row_count_above_the_limit_is_refused_at_the_header() {
    let huge: u64 = 1 << 40;
    let limit = 1000;
    let out = run_in_memory(3, DEFAULT_MAX_MESSAGE, move |t: Channel| async move {
        if t.me() == 1 {
            // The honest helper.
            let ids: Vec<String> = (0..3).map(|i| format!("p{i}")).collect();
            let ctx = SessionContext {
                job_id: "vstats-test",
                party_ids: &ids,
            };
            let layout = VerticalLayout {
                data_parties: vec![0, 2],
                column_owners: vec![2],
                filter_parties: vec![],
            };
            let input = VerticalInput::helper().with_max_rows(limit);
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            let names = vec!["c".to_string()];
            let r = run(
                &t,
                ctx,
                &layout,
                &input,
                &names,
                FixedPoint::default(),
                &mut rng,
            )
            .await;
            Some(r.map(|o| o.rows))
        } else {
            // A fake data party: the real header format, a huge count.
            let sent = exchange(&t.child("rows"), |peer| {
                let mut m = huge.to_le_bytes().to_vec();
                if peer != 1 {
                    m.extend_from_slice(&[7; DIGEST_LEN]);
                }
                m
            })
            .await;
            // The helper may refuse (and leave) before this fake hears from it.
            drop(sent);
            None
        }
    })
    .await
    .unwrap();
    match &out[1] {
        Some(Err(MpcError::OverLimit {
            from,
            what,
            declared,
            limit: l,
        })) => {
            assert_eq!(
                (*from, *what, *declared, *l),
                (0, "aligned rows", huge, 1000)
            );
        }
        other => panic!("the helper: {other:?}"),
    }

    // A data party over its own limit sends nothing.
    let layout = VerticalLayout {
        data_parties: vec![0, 2],
        column_owners: vec![2],
        filter_parties: vec![],
    };
    let data = joined(100, 1, &[], 1);
    let mut ins = inputs(&layout, &data, [100; 3], FixedPoint::default());
    ins[2] = ins[2].clone().with_max_rows(99);
    let out = run_all(&layout, ins, 16).await;
    match &out[2] {
        (Err(MpcError::OverLimit { from: 2, .. }), c) => assert_eq!(c.bytes_sent, 0),
        other => panic!("party 2: {other:?}"),
    }
    for p in [0, 1] {
        assert!(out[p].0.is_err(), "party {p} went on without party 2");
    }
}
