//! Accuracy and ROC AUC: all three parties in-process over `run_in_memory`, every result
//! compared with a plaintext model computed here (the exact count of correct predictions; the
//! Mann–Whitney pair count with ties as one half, checked against the mid-rank formula), within
//! the documented bound: `|r − count/n| ≤ 2^{−f}` for the accuracy, the exact floor
//! `⌊AUC·2^f⌋` for the AUC. Plus exact communication costs.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::boolean_tests::{lt_eq_bytes, msb_bytes};
use super::metrics::{accuracy_scale, digit_widths};
use super::test_util::{
    Cost, assert_look_uniform, block_on, measure, open, run_tapped, run3, session,
};
use crate::MpcError;

// ---- plaintext models ----

/// `(2U, 2·P·N)`: twice the Mann–Whitney count `Σ_{pos i, neg j} [s_i > s_j] + ½[s_i = s_j]`
/// and twice its denominator, by the O(n²) pair loop.
fn plain_auc2(scores: &[i64], labels: &[u64]) -> (u128, u128) {
    let (mut num, mut p) = (0u128, 0u128);
    for (i, si) in scores.iter().enumerate() {
        if labels[i] == 0 {
            continue;
        }
        p += 1;
        for (j, sj) in scores.iter().enumerate() {
            if labels[j] == 0 {
                num += 2 * u128::from(si > sj) + u128::from(si == sj);
            }
        }
    }
    let neg = scores.len() as u128 - p;
    (num, 2 * p * neg)
}

/// `2U` again by the mid-rank formula (scikit-learn's tie handling): with `R` the sum of the
/// positives' mid-ranks, `U = R − P(P+1)/2`; `2R` is an integer.
fn rank_auc2(scores: &[i64], labels: &[u64]) -> u128 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by_key(|&i| scores[i]);
    let mut twice_rank_sum = 0u128;
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        // Ranks start + 1 ..= end share the mid-rank (start + 1 + end) / 2.
        let twice_mid = (start + 1 + end) as u128;
        for &i in &order[start..end] {
            twice_rank_sum += twice_mid * u128::from(labels[i]);
        }
        start = end;
    }
    let p: u128 = labels.iter().map(|&y| u128::from(y)).sum();
    twice_rank_sum - p * (p + 1)
}

/// The documented result of `auc`: `⌊2U·2^f / 2PN⌋`, or `⌊2^f / 2⌋` for one class.
fn expected_auc(scores: &[i64], labels: &[u64], f: u32) -> u64 {
    let (num, den) = plain_auc2(scores, labels);
    assert_eq!(num, rank_auc2(scores, labels), "pair count vs mid-ranks");
    match (num << f).checked_div(den) {
        Some(q) => q as u64,
        None => (1u64 << f) >> 1,
    }
}

/// Correct predictions `[s ≥ t] = y`.
fn plain_correct(scores: &[i64], labels: &[u64], t: i64) -> u64 {
    scores
        .iter()
        .zip(labels)
        .map(|(s, y)| u64::from(u64::from(*s >= t) == *y))
        .sum()
}

/// Whether the accuracy result `r` (units of `2^{−f}`) is within the documented bound of
/// `count/n`: `|r·n − count·2^f| ≤ n` (one unit) when `n² ≤ 2^{41−f}`, else
/// `< n + n²/2^{k+1}` units of `1/n`.
fn accuracy_within_bound(r: u64, count: u64, n: u64, f: u32) -> bool {
    let err = (i128::from(r) * i128::from(n) - (i128::from(count) << f)).unsigned_abs();
    let (n, k) = (u128::from(n), accuracy_scale(n, f).1);
    if n * n <= 1 << (41 - f.min(41)) {
        err <= n
    } else {
        (err << (k + 1)) < (n << (k + 1)) + n * n
    }
}

// ---- random inputs ----

/// `n` labels with `P(y = 1) = pos_per_mille / 1000`.
fn random_labels(rng: &mut ChaCha20Rng, n: usize, pos_per_mille: u64) -> Vec<u64> {
    (0..n)
        .map(|_| u64::from(rng.next_u64() % 1000 < pos_per_mille))
        .collect()
}

/// Fixed-point logits (`f = 16`) that lean towards the label: `±1.5 + noise in [−4, 4)`, or on
/// a grid of `grid` values (many ties) when `grid > 0`.
fn random_scores(rng: &mut ChaCha20Rng, labels: &[u64], grid: u64) -> Vec<i64> {
    labels
        .iter()
        .map(|&y| {
            let lean = if y == 1 { 3 << 15 } else { -(3 << 15) };
            if grid > 0 {
                ((rng.next_u64() % grid) as i64 - (grid as i64) / 2 + i64::from(y == 1)) << 16
            } else {
                lean + ((rng.next_u64() % (8 << 16)) as i64 - (4 << 16))
            }
        })
        .collect()
}

fn words(v: &[i64]) -> Vec<u64> {
    v.iter().map(|x| *x as u64).collect()
}

/// One case: scores, labels and (for the accuracy) the threshold.
#[derive(Clone, Debug)]
struct Case {
    scores: Vec<i64>,
    labels: Vec<u64>,
    threshold: i64,
}

/// Cases of the random tests: n = 1..=5 with every labelling (scores with ties, some equal to
/// the threshold), ~200 random with and without ties, imbalanced (1 positive in 100, 1 negative
/// in 100), all tied, and one class.
fn cases(seed: u64) -> Vec<Case> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    let small = [1i64 << 16, -(1 << 16), 1 << 16, 0, 3 << 15];
    for n in 1..=5 {
        for mask in 0..1u64 << n {
            out.push(Case {
                scores: small[..n].to_vec(),
                labels: (0..n).map(|i| (mask >> i) & 1).collect(),
                threshold: 0,
            });
        }
    }
    for (n, per_mille, grid) in [(200, 500, 0), (199, 300, 5), (256, 500, 3), (150, 800, 0)] {
        let labels = random_labels(&mut rng, n, per_mille);
        let scores = random_scores(&mut rng, &labels, grid);
        out.push(Case {
            scores,
            labels,
            threshold: 0,
        });
    }
    // Imbalanced: one positive (or one negative) among 100, ranked anywhere.
    for (pos, at) in [(1u64, 37usize), (0, 99), (1, 0)] {
        let mut labels = vec![1 - pos; 100];
        labels[at] = pos;
        let scores = random_scores(&mut rng, &labels, 7);
        out.push(Case {
            scores,
            labels,
            threshold: 1 << 15,
        });
    }
    // All scores tied (AUC ½), on the threshold.
    let labels = random_labels(&mut rng, 64, 500);
    out.push(Case {
        scores: vec![5 << 14; 64],
        labels,
        threshold: 5 << 14,
    });
    out
}

/// Runs `auc` (`block_pairs` per block) and `accuracy` on every case in ONE session (fixed
/// seeds); returns the opened `[auc, accuracy]` per case.
fn run_cases(cases: &[Case], f: u32, block_pairs: usize, salt: u64) -> Vec<[u64; 2]> {
    let cases = cases.to_vec();
    let out = run3!(Some(salt); [cases] |s| {
        let me = s.me();
        let mut res = Vec::new();
        for c in &cases {
            let n = c.scores.len();
            let sw = words(&c.scores);
            let x = s.share_input(0, (me == 0).then_some(&sw[..]), n).await.unwrap();
            let y = s.share_input(1, (me == 1).then_some(&c.labels[..]), n).await.unwrap();
            let auc = s.auc_blocked(&x, &y, f, block_pairs).await.unwrap();
            let acc = s.accuracy(&x, &y, c.threshold as u64, f).await.unwrap();
            res.push([auc, acc]);
        }
        res
    });
    (0..cases.len())
        .map(|c| {
            let get = |m: usize| open(&out.iter().map(|o| o[c][m].clone()).collect::<Vec<_>>())[0];
            [get(0), get(1)]
        })
        .collect()
}

fn check_cases(cases: &[Case], got: &[[u64; 2]], f: u32) {
    for (c, [auc, acc]) in cases.iter().zip(got) {
        let n = c.scores.len();
        let what = || {
            if n <= 8 {
                format!("scores={:?} labels={:?} f={f}", c.scores, c.labels)
            } else {
                let p: u64 = c.labels.iter().sum();
                format!("n={n} P={p} first scores={:?} f={f}", &c.scores[..8])
            }
        };
        assert_eq!(
            *auc,
            expected_auc(&c.scores, &c.labels, f),
            "auc {}",
            what()
        );
        let count = plain_correct(&c.scores, &c.labels, c.threshold);
        assert!(
            accuracy_within_bound(*acc, count, n as u64, f),
            "accuracy {acc} vs {count}/{n}, {}",
            what()
        );
        if n.is_power_of_two() && n.trailing_zeros() <= f {
            assert_eq!(
                *acc,
                (count << f) >> n.trailing_zeros(),
                "exact accuracy {}",
                what()
            );
        }
    }
}

// ---- accuracy and AUC ----

#[test]
fn metrics_match_plaintext_on_random_and_tied_inputs() {
    let cases = cases(70);
    let got = run_cases(&cases, 16, super::AUC_BLOCK_PAIRS, 71);
    check_cases(&cases, &got, 16);
    // The AUC is a real fraction in most cases, and the models agree with the f64 definition.
    let c = &cases[cases.len() - 8];
    let (num, den) = plain_auc2(&c.scores, &c.labels);
    let auc = num as f64 / den as f64;
    assert!(auc > 0.6 && auc < 1.0, "n=200 AUC {auc}");
    assert!((got[cases.len() - 8][0] as f64 / 65536.0 - auc).abs() < 1.0 / 65536.0);
}

#[test]
fn metrics_match_plaintext_in_small_blocks() {
    // Blocks of 1, 7 and 100 pairs: every block boundary position, the one-class tests in the
    // first block, sums across blocks.
    let all = cases(72);
    let cases: Vec<Case> = all
        .iter()
        .filter(|c| c.scores.len() >= 4 && c.scores.len() <= 5)
        .step_by(5)
        .chain(all.iter().filter(|c| c.scores.len() == 100).take(1))
        .cloned()
        .collect();
    for (block, salt) in [(1, 73), (7, 74), (100, 75)] {
        let got = run_cases(&cases, 16, block, salt);
        check_cases(&cases, &got, 16);
    }
}

#[test]
fn metrics_at_other_frac_bits() {
    // f = 0 (one quotient bit), odd digit splits, the largest f: the AUC digits are exact at
    // every f, the accuracy's scale factor changes with f.
    let all = cases(76);
    let cases: Vec<Case> = all.iter().step_by(9).cloned().collect();
    for (f, salt) in [
        (0u32, 77u64),
        (1, 78),
        (9, 79),
        (20, 80),
        (31, 81),
        (40, 82),
    ] {
        // Scores and thresholds are integers scaled by 2^16 here; fine at any f (only the
        // order matters).
        let got = run_cases(&cases, f, super::AUC_BLOCK_PAIRS, salt);
        check_cases(&cases, &got, f);
    }
}

#[test]
fn auc_of_one_class_is_one_half() {
    let mut cases = Vec::new();
    for (n, y) in [(1, 0), (1, 1), (5, 0), (5, 1), (100, 0), (100, 1)] {
        let mut rng = ChaCha20Rng::seed_from_u64(83 + n as u64);
        let labels = vec![y; n];
        let scores = random_scores(&mut rng, &labels, 0);
        cases.push(Case {
            scores,
            labels,
            threshold: 0,
        });
    }
    for (f, salt) in [(16, 84), (0, 85), (1, 86)] {
        let got = run_cases(&cases, f, super::AUC_BLOCK_PAIRS, salt);
        for (c, [auc, _]) in cases.iter().zip(&got) {
            assert_eq!(
                *auc,
                (1u64 << f) >> 1,
                "one class n={} y={} f={f}",
                c.scores.len(),
                c.labels[0]
            );
        }
        check_cases(&cases, &got, f);
    }
}

#[test]
fn auc_of_extreme_scores() {
    // The range of lt: differences up to 2^63 − 1 in magnitude.
    let b = (1i64 << 62) - 1;
    let cases = vec![
        Case {
            scores: vec![b, -b, b, -b, 0, b - 1, -b + 1],
            labels: vec![1, 0, 0, 1, 1, 0, 1],
            threshold: b,
        },
        Case {
            scores: vec![-b, b],
            labels: vec![1, 0],
            threshold: -b,
        },
    ];
    let got = run_cases(&cases, 16, super::AUC_BLOCK_PAIRS, 87);
    check_cases(&cases, &got, 16);
    assert_eq!(got[1][0], 0, "perfectly inverted");
}

#[test]
fn ratio_floor_is_exact() {
    let mut rng = ChaCha20Rng::seed_from_u64(88);
    let mut pairs: Vec<(u64, u64)> = vec![(0, 1), (1, 1), (1, 2), (1, 3), (2, 3), (5, 7)];
    for bits in [4u32, 20, 40, 54] {
        for _ in 0..4 {
            let den = rng.next_u64() % (1 << bits) + 1;
            pairs.push((rng.next_u64() % (den + 1), den));
        }
        let den = (1u64 << bits) - 1;
        pairs.extend([(den, den), (den - 1, den), (1, den), (0, den)]);
    }
    let len = pairs.len();
    for f in [0u32, 1, 7, 8, 9, 16, 17, 33, 40] {
        let pairs = pairs.clone();
        let out = run3!(Some(89); [pairs] |s| {
            let me = s.me();
            let (nums, dens): (Vec<u64>, Vec<u64>) = pairs.iter().copied().unzip();
            let x = s.share_input(2, (me == 2).then_some(&nums[..]), len).await.unwrap();
            let y = s.share_input(1, (me == 1).then_some(&dens[..]), len).await.unwrap();
            let mut q = Vec::new();
            for k in 0..len {
                let one = |v: &super::Rep3Share| {
                    super::Rep3Share::from_parts(vec![v.a()[k]], vec![v.b()[k]]).unwrap()
                };
                q.push(s.ratio_floor(&one(&x), &one(&y), f).await.unwrap());
            }
            super::Rep3Share::concat_all(&q.iter().collect::<Vec<_>>())
        });
        let got = open(&out);
        for (k, &(num, den)) in pairs.iter().enumerate() {
            let want = (u128::from(num) << f) / u128::from(den);
            assert_eq!(u128::from(got[k]), want, "⌊{num}·2^{f} / {den}⌋");
        }
    }
}

#[test]
fn accuracy_scale_meets_its_bound() {
    // The plaintext side of the accuracy bound: for every count, both results the truncation can
    // give, ⌊count·c / 2^k⌋ and ⌈count·c / 2^k⌉, are within the bound, and the truncated value
    // is below 2^{f+k} + n/2 (the failure probability). Every count for n ≤ 300 and a few large
    // n; counts sampled for n = 10^6.
    let mut ns: Vec<u64> = (1..=300).collect();
    ns.extend([
        1024, 4095, 4096, 4097, 5792, 5793, 10_000, 65_536, 99_991, 1_000_000,
    ]);
    for f in [0u32, 1, 8, 16, 20, 30, 39, 40] {
        for &n in &ns {
            let (c, k) = accuracy_scale(n, f);
            assert!(f + k <= 40, "n={n} f={f}");
            let counts: Vec<u64> = if n <= 10_000 {
                (0..=n).collect()
            } else {
                (0..=n).step_by(97).chain([n - 1, n]).collect()
            };
            for count in counts {
                let v = u128::from(count) * u128::from(c);
                assert!(v <= (1u128 << (f + k)) + u128::from(n / 2), "n={n} f={f}");
                for r in [v >> k, (v + (1 << k) - 1) >> k] {
                    assert!(
                        accuracy_within_bound(r as u64, count, n, f),
                        "r={r} count={count} n={n} f={f} (c={c}, k={k})"
                    );
                }
            }
        }
    }
    // Exact for powers of two up to 2^f; k = 2⌈log2 n⌉ while f + k ≤ 40.
    assert_eq!(accuracy_scale(64, 16), (1 << 10, 0));
    assert_eq!(accuracy_scale(200, 16), (((1 << 32) + 100) / 200, 16));
    assert_eq!(accuracy_scale(5000, 16).1, 24);
    assert_eq!(digit_widths(16), [8, 8]);
    assert_eq!(digit_widths(20), [7, 7, 6]);
    assert_eq!(digit_widths(0), [0]);
    assert_eq!(digit_widths(40), [8; 5]);
}

#[test]
fn metric_errors() {
    let out = run3!(Some(90); [] |s| {
        let x = s.share_input(0, Some(&[1u64, 2, 3][..]), 3).await.unwrap();
        let y = s.share_input(1, Some(&[1u64, 0][..]), 2).await.unwrap();
        let empty = s.share_input(0, Some(&[][..]), 0).await.unwrap();
        [
            matches!(s.auc(&x, &y, 16).await, Err(MpcError::LengthMismatch { .. })),
            matches!(s.accuracy(&x, &y, 0, 16).await, Err(MpcError::LengthMismatch { .. })),
            matches!(s.auc(&empty, &empty, 16).await, Err(MpcError::Empty { .. })),
            matches!(s.accuracy(&empty, &empty, 0, 16).await, Err(MpcError::Empty { .. })),
            matches!(s.auc(&x, &x, 41).await, Err(MpcError::BadFracBits { .. })),
            matches!(s.accuracy(&x, &x, 0, 41).await, Err(MpcError::BadFracBits { .. })),
            matches!(s.auc_blocked(&x, &x, 16, 0).await, Err(MpcError::BadParams(_))),
        ]
    });
    assert!(out.iter().flatten().all(|ok| *ok), "{out:?}");
}

// ---- communication ----

/// Shares `n` scores (owner 0) and labels (owner 1), then measures `$op` at every party.
macro_rules! cost {
    (|$s:ident, $x:ident, $y:ident| $op:expr, $n:expr) => {{
        let n: usize = $n;
        run3!(Some(91); [] |$s| {
            let sw: Vec<u64> = (0..n as u64).map(|i| (i % 7) << 16).collect();
            let yw: Vec<u64> = (0..n as u64).map(|i| i % 2).collect();
            let $x = $s.share_input(0, Some(&sw[..]), n).await.unwrap();
            let $y = $s.share_input(1, Some(&yw[..]), n).await.unwrap();
            measure!($s, $op)
        })
    }};
}

/// `(rounds, bytes, messages)` per party of `auc` on `n` scores with `block` pairs per block at
/// `f` fractional bits: per block an msb with zero test and a bit injection of `2·pairs`
/// elements (plus the two class tests in the first block), one resharing of two words, then
/// per digit an msb and a bit injection over the thresholds and a product between digits.
fn auc_cost(n: u64, block: u64, f: u32) -> Cost {
    let pairs = n * (n - 1) / 2;
    let blocks = pairs.div_ceil(block).max(1);
    let (mut rounds, mut bytes, mut messages) = (0, 0, 0);
    for b in 0..blocks {
        let len = block.min(pairs - b * block) + if b == 0 { 2 } else { 0 };
        let conv = 2 * len - if b == 0 { 2 } else { 0 };
        rounds += 10;
        bytes += lt_eq_bytes(len) + 8 * conv;
        messages += 9;
    }
    rounds += 1;
    bytes += 16;
    messages += 1;
    let widths = digit_widths(f);
    for (k, &r) in widths.iter().enumerate() {
        let j = 1 << r;
        let last = k + 1 == widths.len();
        rounds += 10 + u64::from(!last);
        bytes += msb_bytes(j) + 8 * j + if last { 0 } else { 8 };
        messages += 9 + u64::from(!last);
    }
    (rounds, bytes, messages)
}

#[test]
fn cost_accuracy() {
    // msb 8, bit injection 2 (one message), the scaled count truncated 2 (one message).
    let out = cost!(|s, x, y| s.accuracy(&x, &y, 3 << 16, 16).await.unwrap(), 37);
    assert_eq!(out, vec![(12, msb_bytes(37) + 8 * 37 + 8, 10); 3]);
    assert_eq!(out[0].1, 1448);
    // n a power of two: exact, one resharing instead of the truncation.
    let out = cost!(|s, x, y| s.accuracy(&x, &y, 3 << 16, 16).await.unwrap(), 64);
    assert_eq!(out, vec![(11, msb_bytes(64) + 8 * 64 + 8, 10); 3]);
}

#[test]
fn cost_auc() {
    // n = 20 at f = 16: one block of 190 pairs, 10 + 1 + 21 = 32 rounds.
    let out = cost!(|s, x, y| s.auc(&x, &y, 16).await.unwrap(), 20);
    assert_eq!(out, vec![auc_cost(20, 1 << 20, 16); 3]);
    assert_eq!(
        auc_cost(20, 1 << 20, 16),
        (32, 7296 + 3056 + 16 + 19_528, 29)
    );
    // Four blocks of at most 50 pairs: 40 + 1 + 21 rounds.
    let out = cost!(|s, x, y| s.auc_blocked(&x, &y, 16, 50).await.unwrap(), 20);
    assert_eq!(out, vec![auc_cost(20, 50, 16); 3]);
    assert_eq!(out[0].0, 62);
    // n = 1: no pairs, a block of the two class tests; f = 20: three digits.
    let out = cost!(|s, x, y| s.auc(&x, &y, 20).await.unwrap(), 1);
    assert_eq!(out, vec![auc_cost(1, 1 << 20, 20); 3]);
    assert_eq!(out[0].0, 10 + 1 + 32);
    // 54 bytes per unordered pair for large n: 27n².
    let big = auc_cost(4000, 1 << 20, 16).1 as f64;
    assert!((big / (27.0 * 4000.0 * 4000.0) - 1.0).abs() < 0.01, "{big}");
}

// ---- security smoke test ----

#[test]
fn received_metric_messages_look_uniform_and_hide_the_inputs() {
    // 8 runs with fresh seeds of auc on 20 scores (190 pairs and the two class tests: three
    // whole blocks of 64 in every packed round; the division's batches are 256) and accuracy on
    // 64 (whole blocks): every word a party receives (2900 to 3700 per run) looks uniform, none
    // repeats, none is an input, P, N, P·N or a result. (Partial blocks send their present bits
    // packed, the last word possibly with only a few of them, which could repeat by chance.)
    let scores: Vec<i64> = (0..64).map(|i| ((i * 7) % 5 - 2) << 16).collect();
    let labels: Vec<u64> = (0..64).map(|i| u64::from(i % 3 == 0)).collect();
    let (sw, lw) = (words(&scores), labels.clone());
    let mut received: [Vec<u64>; 3] = Default::default();
    for _ in 0..8 {
        let (sw, lw) = (sw.clone(), lw.clone());
        let out = block_on(run_tapped(move |tap, t| {
            let (sw, lw) = (sw.clone(), lw.clone());
            async move {
                let mut s = session(&t, None).await;
                let x = s.share_input(0, Some(&sw[..]), 64).await.unwrap();
                let y = s.share_input(1, Some(&lw[..]), 64).await.unwrap();
                let first = |v: &super::Rep3Share| {
                    super::Rep3Share::from_parts(v.a()[..20].to_vec(), v.b()[..20].to_vec())
                        .unwrap()
                };
                let (x20, y20) = (first(&x), first(&y));
                tap.take_words();
                let auc = s.auc(&x20, &y20, 16).await.unwrap();
                let acc = s.accuracy(&x, &y, 0, 16).await.unwrap();
                ([auc, acc], tap.take_words())
            }
        }))
        .unwrap();
        let get = |m: usize| open(&out.iter().map(|o| o.0[m].clone()).collect::<Vec<_>>())[0];
        assert_eq!(get(0), expected_auc(&scores[..20], &labels[..20], 16));
        assert_eq!(
            get(1),
            plain_correct(&scores, &labels, 0) << 10,
            "64 scores: exact"
        );
        for (p, o) in out.into_iter().enumerate() {
            received[p].extend(o.1);
        }
    }
    let mut secrets: Vec<u64> = sw.clone();
    for m in [20, 64] {
        let p: u64 = labels[..m].iter().sum();
        let q = m as u64 - p;
        secrets.extend([p, q, p * q, plain_correct(&scores[..m], &labels[..m], 0)]);
    }
    secrets.push(expected_auc(&scores[..20], &labels[..20], 16));
    for (p, words) in received.iter().enumerate() {
        assert!(words.len() > 8 * 2500, "party {p}: {}", words.len());
        assert_look_uniform(words, 64, &secrets, &format!("metrics at party {p}"));
    }
}
