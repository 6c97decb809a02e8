//! Equality, zero test and argmax: all three parties in-process over `run_in_memory`, every
//! result compared exactly with a plaintext model (Z_2^64 equality, signed `i64` argmax with
//! numpy's lowest-index tie rule), plus exact communication costs and a leakage smoke test.

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::boolean_tests::msb_bytes;
use super::equality::{EQ_LEVELS, role_count};
use super::test_util::{
    Cost, assert_look_uniform, block_on, col, measure, open, open_bits, run_tapped, run3, session,
    word,
};
use super::{Rep3Argmax, Rep3Share};
use crate::MpcError;

/// `(x, y)` word pairs, equal in about a third of the elements and otherwise differing in one
/// bit, by one, or anywhere.
fn eq_pairs(max_len: usize) -> impl Strategy<Value = (Vec<u64>, Vec<u64>)> {
    proptest::collection::vec((word(), word(), 0u8..4, 0u32..64), 0..max_len).prop_map(|v| {
        v.into_iter()
            .map(|(x, y, kind, bit)| match kind {
                0 => (x, x),
                1 => (x, x ^ (1 << bit)),
                2 => (x, x.wrapping_add(1)),
                _ => (x, y),
            })
            .unzip()
    })
}

/// Shares `xs` (owner 0) and `ys` (owner 1) and returns `[eq(x, y), is_zero(x)]` opened.
fn eq_and_is_zero(xs: &[u64], ys: &[u64], salt: Option<u64>) -> [Vec<u64>; 2] {
    let n = xs.len();
    let (xs, ys) = (xs.to_vec(), ys.to_vec());
    let out = run3!(salt; [xs, ys] |s| {
        let me = s.me();
        let x = s.share_input(0, (me == 0).then_some(&xs[..]), n).await.unwrap();
        let y = s.share_input(1, (me == 1).then_some(&ys[..]), n).await.unwrap();
        [s.eq(&x, &y).await.unwrap(), s.is_zero(&x).await.unwrap()]
    });
    [open_bits(&col(&out, 0)), open_bits(&col(&out, 1))]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn eq_and_is_zero_are_exact((xs, ys) in eq_pairs(40)) {
        let [eq, zero] = eq_and_is_zero(&xs, &ys, Some(31));
        for j in 0..xs.len() {
            prop_assert_eq!(eq[j], u64::from(xs[j] == ys[j]), "eq x={:#x} y={:#x}", xs[j], ys[j]);
            prop_assert_eq!(zero[j], u64::from(xs[j] == 0), "is_zero x={:#x}", xs[j]);
        }
    }
}

#[test]
fn eq_detects_every_single_bit_difference() {
    // Every bit position, in every element role (j mod 3), with fresh seeds; plus equal pairs
    // and the edge words.
    let mut rng = ChaCha20Rng::seed_from_u64(32);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for bit in 0..64 {
        for _ in 0..3 {
            let x = rng.next_u64();
            xs.extend([x, x]);
            ys.extend([x ^ (1 << bit), x]);
        }
    }
    let edges = [0, 1, u64::MAX, i64::MIN as u64, i64::MAX as u64];
    for x in edges {
        for y in edges {
            xs.push(x);
            ys.push(y);
        }
    }
    let [eq, zero] = eq_and_is_zero(&xs, &ys, None);
    assert!(xs.contains(&0));
    for j in 0..xs.len() {
        assert_eq!(
            eq[j],
            u64::from(xs[j] == ys[j]),
            "eq x={:#x} y={:#x}",
            xs[j],
            ys[j]
        );
        assert_eq!(zero[j], u64::from(xs[j] == 0), "is_zero x={:#x}", xs[j]);
    }
}

// ---- argmax ----

/// numpy's argmax of a row: the first index of the maximum.
fn plain_argmax(row: &[i64]) -> (usize, i64) {
    let mut best = 0;
    for (j, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = j;
        }
    }
    (best, row[best])
}

/// Runs `argmax_rows` and `argmax_rows_one_hot` on the row-major `m×n` matrix `xs` and checks
/// both against the plaintext model.
fn check_argmax(xs: &[i64], m: usize, n: usize, salt: Option<u64>) -> Result<(), TestCaseError> {
    let words: Vec<u64> = xs.iter().map(|v| *v as u64).collect();
    let len = words.len();
    let out = run3!(salt; [words] |s| {
        let x = s.share_input(2, (s.me() == 2).then_some(&words[..]), len).await.unwrap();
        [
            s.argmax_rows(&x, m, n).await.unwrap(),
            s.argmax_rows_one_hot(&x, m, n).await.unwrap(),
        ]
    });
    for (v, name) in [(0, "argmax_rows"), (1, "argmax_rows_one_hot")] {
        let res: Vec<Rep3Argmax> = col(&out, v);
        let index = open(&res.iter().map(|r| r.index.clone()).collect::<Vec<_>>());
        let max = open(&res.iter().map(|r| r.max.clone()).collect::<Vec<_>>());
        prop_assert_eq!(index.len(), m);
        prop_assert_eq!(max.len(), m);
        let one_hot: Option<Vec<Rep3Share>> = res.iter().map(|r| r.one_hot.clone()).collect();
        prop_assert_eq!(one_hot.is_some(), v == 1, "{} one-hot presence", name);
        let one_hot = one_hot.map(|s| open(&s));
        for r in 0..m {
            let row = &xs[r * n..(r + 1) * n];
            let (want_i, want_max) = plain_argmax(row);
            prop_assert_eq!(index[r], want_i as u64, "{} index of row {:?}", name, row);
            prop_assert_eq!(max[r] as i64, want_max, "{} max of row {:?}", name, row);
            if let Some(oh) = &one_hot {
                for j in 0..n {
                    prop_assert_eq!(
                        oh[r * n + j],
                        u64::from(j == want_i),
                        "{} one-hot entry {} of row {:?}",
                        name,
                        j,
                        row
                    );
                }
            }
        }
    }
    Ok(())
}

/// Bound on argmax inputs: values in `[−B, B]` keep every difference below `2^63`.
const B: i64 = (1 << 62) - 1;

/// A matrix value: small (many ties), the range edges, or anywhere in range.
fn argmax_value() -> impl Strategy<Value = i64> {
    prop_oneof![
        -3i64..=3,
        Just(B),
        Just(-B),
        Just(0),
        -B..=B,
        (-B..=B).prop_map(|v| v >> 30),
    ]
}

fn argmax_matrix() -> impl Strategy<Value = (usize, usize, Vec<i64>)> {
    (0usize..4, 1usize..12).prop_flat_map(|(m, n)| {
        (
            Just(m),
            Just(n),
            proptest::collection::vec(argmax_value(), m * n),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn argmax_matches_numpy_with_ties((m, n, xs) in argmax_matrix()) {
        check_argmax(&xs, m, n, Some(33))?;
    }
}

#[test]
fn argmax_ties_pick_the_lowest_index() {
    // Rows of 17 (odd at several levels): all equal, two maxima in different subtrees, the
    // maximum at the ends, and the range edges.
    let n = 17;
    let mut rows: Vec<Vec<i64>> = vec![
        vec![5; n],
        vec![-B; n],
        vec![B; n],
        (0..n as i64).collect(),
        (0..n as i64).rev().collect(),
    ];
    for (a, b) in [(0, 16), (3, 12), (7, 8), (15, 16), (1, 2)] {
        let mut row = vec![-1; n];
        row[a] = B;
        row[b] = B;
        rows.push(row);
    }
    let mut edge = vec![-B; n];
    edge[16] = B;
    rows.push(edge);
    let m = rows.len();
    let xs: Vec<i64> = rows.concat();
    check_argmax(&xs, m, n, None).unwrap();
    // A plain vector through `argmax` as well.
    let v: Vec<u64> = [3i64, 9, -4, 9, 9, 0, 2]
        .iter()
        .map(|v| *v as u64)
        .collect();
    let out = run3!(None; [v] |s| {
        let x = s.share_input(0, (s.me() == 0).then_some(&v[..]), v.len()).await.unwrap();
        s.argmax(&x).await.unwrap()
    });
    assert_eq!(open(&col_index(&out)), vec![1]);
    assert_eq!(
        open(&out.iter().map(|r| r.max.clone()).collect::<Vec<_>>()),
        vec![9]
    );
    assert!(out.iter().all(|r| r.one_hot.is_none()));
}

fn col_index(out: &[Rep3Argmax]) -> Vec<Rep3Share> {
    out.iter().map(|r| r.index.clone()).collect()
}

#[test]
fn argmax_of_single_and_empty_rows() {
    check_argmax(&[7, -3, 0], 3, 1, Some(34)).unwrap();
    check_argmax(&[], 0, 5, Some(34)).unwrap();
    let out = run3!(Some(35); [] |s| {
        let x = s.share_input(0, Some(&[1u64, 2, 3][..]), 3).await.unwrap();
        let empty = s.share_input(0, Some(&[][..]), 0).await.unwrap();
        [
            matches!(s.argmax(&empty).await, Err(MpcError::Empty { .. })),
            matches!(s.argmax_rows(&empty, 2, 0).await, Err(MpcError::Empty { .. })),
            matches!(s.argmax_rows(&x, 2, 2).await, Err(MpcError::LengthMismatch { .. })),
            matches!(
                s.argmax_rows_one_hot(&x, usize::MAX, 2).await,
                Err(MpcError::LengthMismatch { .. })
            ),
            matches!(s.eq(&x, &empty).await, Err(MpcError::LengthMismatch { .. })),
        ]
    });
    assert!(out.iter().flatten().all(|ok| *ok), "{out:?}");
}

// ---- communication ----

/// Shares `n`-element `x` (owner 0) and `y` (owner 1), then measures `$op` at every party.
macro_rules! cost {
    (|$s:ident, $x:ident, $y:ident| $op:expr, $n:expr) => {{
        let n: usize = $n;
        run3!(Some(36); [] |$s| {
            let $x = $s.share_input(0, Some(&vec![3u64; n][..]), n).await.unwrap();
            let $y = $s.share_input(1, Some(&vec![5u64; n][..]), n).await.unwrap();
            let _ = (&$x, &$y);
            measure!($s, $op)
        })
    }};
}

/// Bytes party `me` sends in `is_zero` of `n` elements: its third of the input round, then the
/// packed AND tree.
fn eq_bytes(n: u64, me: usize) -> u64 {
    let tree: u64 = EQ_LEVELS
        .iter()
        .map(|&h| 8 * (n * u64::from(h)).div_ceil(64))
        .sum();
    8 * role_count(n as usize, (me + 2) % 3) as u64 + tree
}

#[test]
fn cost_eq_and_is_zero() {
    for n in [37usize, 1000] {
        let expected: Vec<Cost> = (0..3).map(|p| (7, eq_bytes(n as u64, p), 7)).collect();
        let eq = cost!(|s, x, y| s.eq(&x, &y).await.unwrap(), n);
        assert_eq!(eq, expected, "eq n={n}");
        let zero = cost!(|s, x, y| s.is_zero(&x).await.unwrap(), n);
        assert_eq!(zero, expected, "is_zero n={n}");
    }
    // Input round 8·⌈(n − k)/3⌉ (party i sends role i − 1), tree 8·(19 + 10 + 5 + 3 + 2 + 1).
    assert_eq!(
        (0..3).map(|p| eq_bytes(37, p)).collect::<Vec<_>>(),
        [416, 424, 416]
    );
    // 63 AND bits and 8/3 input bytes per element: ≈ 10.54 bytes per element and party.
    assert_eq!(
        (0..3).map(|p| eq_bytes(1000, p)).collect::<Vec<_>>(),
        [10_552, 10_560, 10_552]
    );
}

/// Bytes per party of argmax over `m` rows of `n`: per level, `lt` and `b2a_bit` over the pairs,
/// then one multiplication batch (values, plus indices or one-hot entries after level 0).
fn argmax_bytes(m: u64, n: u64, one_hot: bool) -> u64 {
    let (mut c, mut span, mut total) = (n, 1, 0);
    while c > 1 {
        let pairs = m * (c / 2);
        total += msb_bytes(pairs) + 8 * pairs + 8 * pairs;
        if span > 1 {
            total += 8 * if one_hot {
                m * (2 * (c / 2) * span).min(n)
            } else {
                pairs
            };
        }
        c = c.div_ceil(2);
        span *= 2;
    }
    total
}

#[test]
fn cost_argmax() {
    for (m, n) in [(3usize, 10usize), (1, 37), (4, 1), (2, 2), (5, 64)] {
        let x_len = m * n;
        let rounds = 11 * u64::from(n.next_power_of_two().trailing_zeros());
        for one_hot in [false, true] {
            let got = cost!(
                |s, x, y| if one_hot {
                    s.argmax_rows_one_hot(&x, m, n).await.unwrap()
                } else {
                    s.argmax_rows(&x, m, n).await.unwrap()
                },
                x_len
            );
            let bytes = argmax_bytes(m as u64, n as u64, one_hot);
            assert_eq!(
                got,
                // Per level: msb 8 rounds, B2A 2 rounds (one message), multiplication 1.
                vec![(rounds, bytes, rounds - rounds / 11); 3],
                "argmax m={m} n={n} one_hot={one_hot}"
            );
        }
    }
    // m = 3, n = 10: pairs per row 5, 2, 1, 1; msb bytes 480 + 208 + 120 + 120, bit injection
    // 8·27, selects 8·15 + 16·(6 + 3 + 3) for indices or 8·15 + 8·(24 + 24 + 30) one-hot.
    assert_eq!(argmax_bytes(3, 10, false), 1456);
    assert_eq!(argmax_bytes(3, 10, true), 1984);
}

// ---- security smoke test ----

/// Words each party received during `eq` of `len` copies of `(v, w)`, over `runs` sessions with
/// fresh seeds; also checks the results.
fn received_eq_words(v: u64, w: u64, len: usize, runs: usize) -> [Vec<u64>; 3] {
    let mut acc: [Vec<u64>; 3] = Default::default();
    for _ in 0..runs {
        let out = block_on(run_tapped(move |tap, t| async move {
            let mut s = session(&t, None).await;
            let x = s
                .share_input(0, Some(&vec![v; len][..]), len)
                .await
                .unwrap();
            let y = s
                .share_input(1, Some(&vec![w; len][..]), len)
                .await
                .unwrap();
            tap.take_words();
            let z = s.eq(&x, &y).await.unwrap();
            (z, tap.take_words())
        }))
        .unwrap();
        let z: Vec<_> = out.iter().map(|o| o.0.clone()).collect();
        assert_eq!(
            open_bits(&z),
            vec![u64::from(v == w); len],
            "eq v={v:#x} w={w:#x}"
        );
        for (p, o) in out.into_iter().enumerate() {
            acc[p].extend(o.1);
        }
    }
    acc
}

#[test]
fn received_eq_messages_look_uniform_and_hide_the_inputs() {
    // 48 runs × (21 or 22 input words + 63 tree words) ≈ 4000 words per party and input; each
    // bit must be set in 40%..60% of them (more than 12 standard deviations for a uniform bit).
    let (runs, len) = (48, 64);
    for (v, w) in [
        (0u64, 0u64),
        (7, 7),
        (0x0123_4567_89ab_cdef, 0x0123_4567_89ab_cdee),
    ] {
        let received = received_eq_words(v, w, len, runs);
        for (p, words) in received.iter().enumerate() {
            let per_run = role_count(len, (p + 1) % 3) + 63;
            let total = runs * per_run;
            assert_eq!(words.len(), total, "party {p} v={v:#x} w={w:#x}");
            let secrets = [v, w, v.wrapping_sub(w), w.wrapping_sub(v)];
            let what = format!("eq at party {p}, v={v:#x} w={w:#x}");
            assert_look_uniform(words, 64, &secrets, &what);
        }
    }
}

/// Words each party received during `lt` of `len` copies of `(v, w)`, over `runs` sessions with
/// fresh seeds; also checks the results.
fn received_lt_words(v: i64, w: i64, len: usize, runs: usize) -> [Vec<u64>; 3] {
    let mut acc: [Vec<u64>; 3] = Default::default();
    for _ in 0..runs {
        let out = block_on(run_tapped(move |tap, t| async move {
            let mut s = session(&t, None).await;
            let x = s
                .share_input(0, Some(&vec![v as u64; len][..]), len)
                .await
                .unwrap();
            let y = s
                .share_input(2, Some(&vec![w as u64; len][..]), len)
                .await
                .unwrap();
            tap.take_words();
            let z = s.lt(&x, &y).await.unwrap();
            (z, tap.take_words())
        }))
        .unwrap();
        let z: Vec<_> = out.iter().map(|o| o.0.clone()).collect();
        assert_eq!(open_bits(&z), vec![u64::from(v < w); len], "lt v={v} w={w}");
        for (p, o) in out.into_iter().enumerate() {
            acc[p].extend(o.1);
        }
    }
    acc
}

#[test]
fn received_lt_messages_look_uniform_and_hide_the_inputs() {
    // The bit-sliced AND rounds of msb: 128 elements (two whole blocks, 482 words per run) and
    // 100 (a partial block packed back to back, 381 words, 8 of them with zero padding bits);
    // 12 runs. Each bit must be set in 40%..60% of the words (more than 10 standard deviations
    // for a uniform bit; the padding moves the mean by at most 1%).
    for len in [128usize, 100] {
        for (v, w) in [(0i64, 0i64), (-5, 7), (1 << 40, -(1 << 40))] {
            let received = received_lt_words(v, w, len, 12);
            for (p, words) in received.iter().enumerate() {
                let total = words.len();
                assert_eq!(total, 12 * msb_bytes(len as u64) as usize / 8, "party {p}");
                assert_look_uniform(words, 64, &[], &format!("lt at party {p}, v={v} w={w}"));
            }
        }
    }
}
