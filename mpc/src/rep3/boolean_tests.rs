//! Boolean sharing, conversions and comparisons: all three parties in-process over
//! `run_in_memory`, every result compared exactly with a plaintext model (Z_2^64 words, signed
//! `i64` comparisons).

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::Rep3Bits;
use super::packed::low_mask;
use super::test_util::{
    Cost, assert_look_uniform, block_on, col, measure, open, open_bits, run_tapped, run3, session,
    word,
};
use crate::MpcError;

/// Two equal-length word vectors.
fn word_pairs(max_len: usize) -> impl Strategy<Value = (Vec<u64>, Vec<u64>)> {
    (0..max_len).prop_flat_map(|n| {
        (
            proptest::collection::vec(word(), n),
            proptest::collection::vec(word(), n),
        )
    })
}

/// Bound on signed inputs to `lt` and friends: both in `[−B, B]` keeps `|x − y| < 2^63`.
const B: i64 = (1 << 62) - 1;

/// Signed values within `[−B, B]`: edge values, small values, and seeded random ones.
fn signed_inputs(seed: u64, n: usize) -> Vec<i64> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut v = vec![0, 1, -1, 2, -2, B, -B, B - 1, -B + 1, 1 << 40, -(1 << 40)];
    while v.len() < n {
        let r = rng.next_u64();
        let x = match r % 3 {
            0 => (r as i64) >> 1, // full range within [−2^62, 2^62)
            1 => (r as i64) >> 40,
            _ => (r as i64) >> 58,
        };
        v.push(x.clamp(-B, B));
    }
    v.truncate(n);
    v
}

/// `(x, y)` pairs covering equal values, neighbours, opposite signs and the range edges.
fn signed_pairs(seed: u64, n: usize) -> (Vec<i64>, Vec<i64>) {
    let mut xs = signed_inputs(seed, n);
    let mut ys = signed_inputs(seed + 1, n);
    ys.reverse();
    for j in 0..n {
        ys[j] = match j % 5 {
            0 => xs[j],
            1 => xs[j].saturating_add(1).min(B),
            2 => xs[j].saturating_sub(1).max(-B),
            3 => (-xs[j]).clamp(-B, B),
            _ => ys[j],
        };
    }
    let edges = [
        (B, -B),
        (-B, B),
        (B, B),
        (-B, -B),
        (0, -1),
        (-1, 0),
        (B, 0),
        (0, -B),
    ];
    // At indices ≡ 4 (mod 5), which the loop above leaves alone.
    for (j, (x, y)) in edges.into_iter().enumerate() {
        xs[5 * j + 4] = x;
        ys[5 * j + 4] = y;
    }
    (xs, ys)
}

/// Plaintext model of a boolean op on `(x, y, shift k, public word c)`.
type WordModel = fn(u64, u64, u32, u64) -> u64;

/// Plaintext model of a signed comparison.
type CmpModel = fn(&i64, &i64) -> bool;

fn to_u64(v: &[i64]) -> Vec<u64> {
    v.iter().map(|x| *x as u64).collect()
}

// ---- boolean sharing ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn boolean_share_reveal_xor_and_are_exact((xs, ys) in word_pairs(20), k in 0u32..64, c in word()) {
        let n = xs.len();
        let out = run3!(Some(11); [xs, ys] |s| {
            let me = s.me();
            let x = s.share_bits_input(0, (me == 0).then_some(&xs[..]), n).await.unwrap();
            let y = s.share_bits_input(2, (me == 2).then_some(&ys[..]), n).await.unwrap();
            let revealed = s.reveal_bits_all(&x).await.unwrap();
            let shares = [
                s.xor(&x, &y).unwrap(),
                s.and(&x, &y).await.unwrap(),
                s.xor_public_scalar(&x, c),
                s.xor_public(&x, &ys).unwrap(),
                s.not(&x),
                s.shl_bits(&x, k),
                s.shr_bits(&x, k),
                s.and_public_scalar(&x, c),
                s.bit(&x, k),
                s.not_bit(&x),
            ];
            (revealed, shares)
        });
        for o in &out {
            prop_assert_eq!(&o.0, &xs, "reveal_bits_all");
        }
        let shares: Vec<[Rep3Bits; 10]> = out.into_iter().map(|o| o.1).collect();
        let models: [(&str, WordModel); 10] = [
            ("xor", |x, y, _, _| x ^ y),
            ("and", |x, y, _, _| x & y),
            ("xor_public_scalar", |x, _, _, c| x ^ c),
            ("xor_public", |x, y, _, _| x ^ y),
            ("not", |x, _, _, _| !x),
            ("shl_bits", |x, _, k, _| x << k),
            ("shr_bits", |x, _, k, _| x >> k),
            ("and_public_scalar", |x, _, _, c| x & c),
            ("bit", |x, _, k, _| (x >> k) & 1),
            ("not_bit", |x, _, _, _| x ^ 1),
        ];
        for (i, (name, f)) in models.iter().enumerate() {
            let got = open_bits(&col(&shares, i));
            for j in 0..n {
                prop_assert_eq!(got[j], f(xs[j], ys[j], k, c), "{} x={} y={} k={} c={}", name, xs[j], ys[j], k, c);
            }
        }
    }

    #[test]
    fn add_bits_and_a2b_are_exact((xs, ys) in word_pairs(20)) {
        let n = xs.len();
        let out = run3!(Some(12); [xs, ys] |s| {
            let me = s.me();
            let xb = s.share_bits_input(1, (me == 1).then_some(&xs[..]), n).await.unwrap();
            let yb = s.share_bits_input(2, (me == 2).then_some(&ys[..]), n).await.unwrap();
            let x = s.share_input(0, (me == 0).then_some(&xs[..]), n).await.unwrap();
            [s.add_bits(&xb, &yb).await.unwrap(), s.a2b(&x).await.unwrap()]
        });
        let sum = open_bits(&col(&out, 0));
        let a2b = open_bits(&col(&out, 1));
        for j in 0..n {
            prop_assert_eq!(sum[j], xs[j].wrapping_add(ys[j]), "add_bits x={} y={}", xs[j], ys[j]);
            prop_assert_eq!(a2b[j], xs[j], "a2b x={}", xs[j]);
        }
    }
}

// ---- packed bits and the carry-only msb ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn packed_and_is_exact((xs, ys) in word_pairs(150), width in 1u32..=64) {
        // Up to 150 elements: two full blocks of 64 and a partial one.
        let n = xs.len();
        let out = run3!(Some(16); [xs, ys] |s| {
            let me = s.me();
            let x = s.share_bits_input(0, (me == 0).then_some(&xs[..]), n).await.unwrap();
            let y = s.share_bits_input(2, (me == 2).then_some(&ys[..]), n).await.unwrap();
            s.and_low(&x, &y, width).await.unwrap()
        });
        let m = low_mask(width);
        let got = open_bits(&out);
        for j in 0..n {
            prop_assert_eq!(got[j], xs[j] & ys[j] & m, "x={:#x} y={:#x} width={}", xs[j], ys[j], width);
        }
    }

    #[test]
    fn msb_is_the_top_bit_and_matches_a2b(xs in proptest::collection::vec(word(), 0..40), owner in 0usize..3) {
        let n = xs.len();
        let out = run3!(None; [xs] |s| {
            let x = s.share_input(owner, (s.me() == owner).then_some(&xs[..]), n).await.unwrap();
            let via_a2b = s.a2b(&x).await.unwrap();
            [s.msb(&x).await.unwrap(), s.bit(&via_a2b, 63)]
        });
        let msb = open_bits(&col(&out, 0));
        let old = open_bits(&col(&out, 1));
        for j in 0..n {
            prop_assert_eq!(msb[j], xs[j] >> 63, "msb x={:#x}", xs[j]);
            prop_assert_eq!(msb[j], old[j], "msb vs a2b x={:#x}", xs[j]);
        }
    }
}

#[test]
fn a2b_is_exact_on_edge_and_random_words() {
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let mut xs: Vec<u64> = vec![
        0,
        1,
        u64::MAX,
        i64::MIN as u64,
        i64::MAX as u64,
        1 << 32,
        (1 << 32) - 1,
        0x5555_5555_5555_5555,
        0xaaaa_aaaa_aaaa_aaaa,
    ];
    xs.extend((0..500).map(|_| rng.next_u64()));
    let n = xs.len();
    // Fresh seeds: the components x_0, x_1, x_2 differ from run to run.
    for owner in 0..3 {
        let out = run3!(None; [xs] |s| {
            let x = s.share_input(owner, (s.me() == owner).then_some(&xs[..]), n).await.unwrap();
            s.a2b(&x).await.unwrap()
        });
        let got = open_bits(&out);
        for j in 0..n {
            assert_eq!(got[j], xs[j], "a2b x={:#x} owner={owner}", xs[j]);
        }
    }
}

// ---- comparisons ----

#[test]
fn msb_is_exact_for_every_word() {
    let mut rng = ChaCha20Rng::seed_from_u64(14);
    let mut xs: Vec<u64> = vec![0, 1, u64::MAX, i64::MIN as u64, i64::MAX as u64];
    xs.extend((0..300).map(|_| rng.next_u64()));
    let n = xs.len();
    let out = run3!(None; [xs] |s| {
        let x = s.share_input(1, (s.me() == 1).then_some(&xs[..]), n).await.unwrap();
        s.msb(&x).await.unwrap()
    });
    let got = open_bits(&out);
    for j in 0..n {
        assert_eq!(got[j], xs[j] >> 63, "msb x={}", xs[j] as i64);
    }
}

#[test]
fn comparisons_match_signed_plaintext_within_range() {
    let n = 400;
    let (xi, yi) = signed_pairs(15, n);
    let (xs, ys) = (to_u64(&xi), to_u64(&yi));
    let out = run3!(None; [xs, ys] |s| {
        let me = s.me();
        let x = s.share_input(0, (me == 0).then_some(&xs[..]), n).await.unwrap();
        let y = s.share_input(1, (me == 1).then_some(&ys[..]), n).await.unwrap();
        [
            s.lt(&x, &y).await.unwrap(),
            s.gt(&x, &y).await.unwrap(),
            s.ge(&x, &y).await.unwrap(),
            s.le(&x, &y).await.unwrap(),
        ]
    });
    let models: [(&str, CmpModel); 4] = [
        ("lt", i64::lt),
        ("gt", i64::gt),
        ("ge", i64::ge),
        ("le", i64::le),
    ];
    let mut equal = 0;
    for (i, (name, f)) in models.iter().enumerate() {
        let got = open_bits(&col(&out, i));
        for j in 0..n {
            let (x, y) = (xi[j], yi[j]);
            equal += usize::from(i == 0 && x == y);
            assert_eq!(got[j], u64::from(f(&x, &y)), "{name} x={x} y={y}");
        }
    }
    assert!(equal >= n / 5, "equal pairs are covered ({equal})");
}

/// The zero test riding on the msb circuit: `a + b ≡ 0 (mod 2^64)` iff
/// `a ⊕ b = (a ∨ b) << 1`, on the plaintext (the identity behind `msb_is_zero`).
#[test]
fn sum_is_zero_iff_xor_is_shifted_or() {
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    let check = |a: u64, b: u64| {
        assert_eq!(
            a.wrapping_add(b) == 0,
            a ^ b == (a | b) << 1,
            "a={a:#x} b={b:#x}"
        );
    };
    for _ in 0..20_000 {
        let a = rng.next_u64();
        check(a, a.wrapping_neg());
        check(a, a.wrapping_neg() ^ (1 << (rng.next_u64() % 64)));
        check(a, rng.next_u64());
    }
    for a in 0..=255u64 {
        for b in 0..=255u64 {
            // 8-bit words embedded at the top: carries out of bit 63 are dropped.
            check(a << 56, b << 56);
            check(a, b.wrapping_neg());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn msb_is_zero_is_exact((xs, ys) in word_pairs(150), owner in 0usize..3) {
        // Zero in about half the elements (x − x), any word otherwise; two full blocks of 64 and
        // a partial one.
        let n = xs.len();
        let xs: Vec<u64> = xs.iter().zip(&ys).map(|(x, y)| if y & 1 == 0 { 0 } else { *x }).collect();
        let out = run3!(None; [xs] |s| {
            let x = s.share_input(owner, (s.me() == owner).then_some(&xs[..]), n).await.unwrap();
            let (msb, zero) = s.msb_is_zero(&x).await.unwrap();
            [msb, zero]
        });
        let (msb, zero) = (open_bits(&col(&out, 0)), open_bits(&col(&out, 1)));
        for j in 0..n {
            prop_assert_eq!(msb[j], xs[j] >> 63, "msb x={:#x}", xs[j]);
            prop_assert_eq!(zero[j], u64::from(xs[j] == 0), "is_zero x={:#x}", xs[j]);
        }
    }
}

#[test]
fn lt_eq_matches_signed_plaintext() {
    let n = 400;
    let (xi, yi) = signed_pairs(18, n);
    let (mut xs, mut ys) = (to_u64(&xi), to_u64(&yi));
    // Equality is exact for every word, also beyond the range of lt: one bit apart, and equal.
    let mut rng = ChaCha20Rng::seed_from_u64(19);
    for bit in 0..64 {
        let x = rng.next_u64();
        xs.extend([x, x, i64::MIN as u64]);
        ys.extend([x ^ (1 << bit), x, i64::MIN as u64 ^ (1 << bit)]);
    }
    let len = xs.len();
    let out = run3!(None; [xs, ys] |s| {
        let me = s.me();
        let x = s.share_input(0, (me == 0).then_some(&xs[..]), len).await.unwrap();
        let y = s.share_input(2, (me == 2).then_some(&ys[..]), len).await.unwrap();
        let (lt, eq) = s.lt_eq(&x, &y).await.unwrap();
        [lt, eq]
    });
    let (lt, eq) = (open_bits(&col(&out, 0)), open_bits(&col(&out, 1)));
    for j in 0..len {
        let (x, y) = (xs[j] as i64, ys[j] as i64);
        assert_eq!(eq[j], u64::from(x == y), "eq x={x} y={y}");
        if j < n {
            assert_eq!(lt[j], u64::from(x < y), "lt x={x} y={y}");
        }
    }
}

// ---- B2A, select, ReLU, max ----

#[test]
fn b2a_select_relu_max_are_exact() {
    let n = 300;
    let (xi, yi) = signed_pairs(16, n);
    let (xs, ys) = (to_u64(&xi), to_u64(&yi));
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    // Bits in bit 0, with junk in the upper bits (ignored by b2a_bit and select).
    let bits: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
    let out = run3!(None; [xs, ys, bits] |s| {
        let me = s.me();
        let x = s.share_input(0, (me == 0).then_some(&xs[..]), n).await.unwrap();
        let y = s.share_input(2, (me == 2).then_some(&ys[..]), n).await.unwrap();
        let b = s.share_bits_input(1, (me == 1).then_some(&bits[..]), n).await.unwrap();
        [
            s.b2a_bit(&b).await.unwrap(),
            s.select(&b, &x, &y).await.unwrap(),
            s.relu(&x).await.unwrap(),
            s.max(&x, &y).await.unwrap(),
        ]
    });
    let [b2a, sel, relu, max] = [0, 1, 2, 3].map(|i| open(&col(&out, i)));
    for j in 0..n {
        let (x, y, bit) = (xi[j], yi[j], bits[j] & 1);
        assert_eq!(b2a[j], bit, "b2a_bit b={:#x}", bits[j]);
        let want = if bit == 1 { x } else { y };
        assert_eq!(sel[j] as i64, want, "select b={bit} x={x} y={y}");
        assert_eq!(relu[j] as i64, x.max(0), "relu x={x}");
        assert_eq!(max[j] as i64, x.max(y), "max x={x} y={y}");
    }
}

#[test]
fn relu_is_exact_on_extreme_words() {
    let xs: Vec<u64> = vec![
        0,
        1,
        u64::MAX,
        i64::MIN as u64,
        i64::MAX as u64,
        1 << 63 | 5,
    ];
    let n = xs.len();
    let out = run3!(Some(18); [xs] |s| {
        let x = s.share_input(2, (s.me() == 2).then_some(&xs[..]), n).await.unwrap();
        s.relu(&x).await.unwrap()
    });
    let got = open(&out);
    for j in 0..n {
        assert_eq!(
            got[j] as i64,
            (xs[j] as i64).max(0),
            "relu x={}",
            xs[j] as i64
        );
    }
}

#[test]
fn mismatched_lengths_are_errors() {
    let out = run3!(Some(19); [] |s| {
        let x = s.share_bits_input(0, Some(&[1u64, 2][..]), 2).await.unwrap();
        let y = s.share_bits_input(0, Some(&[1u64, 2, 3][..]), 3).await.unwrap();
        let a = s.share_input(0, Some(&[1u64, 2, 3][..]), 3).await.unwrap();
        [
            matches!(s.xor(&x, &y), Err(MpcError::LengthMismatch { .. })),
            matches!(s.xor_public(&x, &[1]), Err(MpcError::LengthMismatch { .. })),
            matches!(s.and(&x, &y).await, Err(MpcError::LengthMismatch { .. })),
            matches!(s.select(&x, &a, &a).await, Err(MpcError::LengthMismatch { .. })),
        ]
    });
    assert!(out.iter().flatten().all(|ok| *ok), "{out:?}");
}

#[test]
fn debug_shows_only_the_length() {
    let share = Rep3Bits::from_parts(vec![0xdead_beef; 3], vec![0x1234_5678; 3]).unwrap();
    assert_eq!(format!("{share:?}"), "Rep3Bits { len: 3, .. }");
    assert!(Rep3Bits::from_parts(vec![1], vec![]).is_err());
}

// ---- communication ----

/// Shares `n`-element arithmetic `x` (owner 0), `y` (owner 1) and boolean `bx` (owner 2), `by`
/// (owner 0), then measures `$op`.
macro_rules! cost {
    (|$s:ident, $x:ident, $y:ident, $bx:ident, $by:ident| $op:expr, $n:expr) => {{
        let n: usize = $n;
        run3!(Some(20); [] |$s| {
            let $x = $s.share_input(0, Some(&vec![3u64; n][..]), n).await.unwrap();
            let $y = $s.share_input(1, Some(&vec![5u64; n][..]), n).await.unwrap();
            let $bx = $s.share_bits_input(2, Some(&vec![6u64; n][..]), n).await.unwrap();
            let $by = $s.share_bits_input(0, Some(&vec![9u64; n][..]), n).await.unwrap();
            let _ = (&$x, &$y, &$bx, &$by);
            measure!($s, $op)
        })
    }};
}

const N: usize = 37;

/// Every party: `rounds` rounds, `bytes_per_elem · N` bytes in one message per round.
fn each(rounds: u64, bytes_per_elem: u64) -> Vec<Cost> {
    vec![(rounds, bytes_per_elem * N as u64, rounds); 3]
}

#[test]
fn cost_share_bits_input() {
    let out = cost!(
        |s, x, y, bx, by| s
            .share_bits_input(1, Some(&vec![1u64; N][..]), N)
            .await
            .unwrap(),
        1
    );
    assert_eq!(out, vec![(1, 0, 0), (1, 16 * N as u64, 2), (1, 0, 0)]);
}

#[test]
fn cost_reveal_bits_all() {
    let out = cost!(|s, x, y, bx, by| s.reveal_bits_all(&bx).await.unwrap(), N);
    assert_eq!(out, each(1, 8));
}

#[test]
fn cost_local_boolean_ops_is_zero() {
    let out = cost!(
        |s, x, y, bx, by| {
            let t = s.xor(&bx, &by).unwrap();
            let t = s.xor_public(&t, &vec![1u64; N]).unwrap();
            let t = s.xor_public_scalar(&t, 7);
            let t = s.not(&t);
            let t = s.not_bit(&t);
            let t = s.shl_bits(&t, 3);
            let t = s.shr_bits(&t, 5);
            let t = s.and_public_scalar(&t, 0xff);
            s.bit(&t, 2)
        },
        N
    );
    assert_eq!(out, vec![(0, 0, 0); 3]);
}

#[test]
fn cost_and() {
    let out = cost!(|s, x, y, bx, by| s.and(&bx, &by).await.unwrap(), N);
    assert_eq!(out, each(1, 8));
}

#[test]
fn cost_add_bits() {
    let out = cost!(|s, x, y, bx, by| s.add_bits(&bx, &by).await.unwrap(), N);
    assert_eq!(out, each(7, 96));
}

#[test]
fn cost_a2b() {
    let out = cost!(|s, x, y, bx, by| s.a2b(&x).await.unwrap(), N);
    assert_eq!(out, each(8, 104));
}

#[test]
fn cost_msb_and_comparisons() {
    for op in 0..5 {
        let out = cost!(
            |s, x, y, bx, by| match op {
                0 => s.msb(&x).await.unwrap(),
                1 => s.lt(&x, &y).await.unwrap(),
                2 => s.gt(&x, &y).await.unwrap(),
                3 => s.ge(&x, &y).await.unwrap(),
                _ => s.le(&x, &y).await.unwrap(),
            },
            N
        );
        assert_eq!(out, vec![(8, MSB_BYTES_37, 8); 3], "comparison {op}");
    }
    // A larger batch: the packed rounds fill whole words.
    let out = cost!(|s, x, y, bx, by| s.lt(&x, &y).await.unwrap(), 1000);
    assert_eq!(out, vec![(8, msb_bytes(1000), 8); 3]);
    assert_eq!(msb_bytes(1000), 30_160);
    assert_eq!(msb_bytes(37), MSB_BYTES_37);
    // 241 AND bits per element: 30.125 bytes per element and party in the limit.
    assert_eq!(msb_bytes(1 << 20), 241 * (1 << 20) / 8);
}

#[test]
fn cost_msb_is_zero_and_lt_eq() {
    let out = cost!(|s, x, y, bx, by| s.msb_is_zero(&x).await.unwrap(), N);
    assert_eq!(out, vec![(8, lt_eq_bytes(N as u64), 8); 3]);
    let out = cost!(|s, x, y, bx, by| s.lt_eq(&x, &y).await.unwrap(), 1000);
    assert_eq!(out, vec![(8, lt_eq_bytes(1000), 8); 3]);
    // 8·(37 + 36 + 54 + 27 + 14 + 7 + 3 + 2); 304 AND bits per element: 38 bytes in the limit.
    assert_eq!(lt_eq_bytes(37), 1440);
    assert_eq!(lt_eq_bytes(1 << 20), 38 * (1 << 20));
}

/// Bytes per party of `msb_is_zero` (and `lt_eq`) on `n` elements: the msb's packed AND
/// rounds, the last six each carrying a level of the zero test's tree (`32, 16, …, 1` bits).
pub(super) fn lt_eq_bytes(n: u64) -> u64 {
    [63u64, 62, 61 + 32, 29 + 16, 15 + 8, 7 + 4, 3 + 2, 1 + 1]
        .iter()
        .map(|w| 8 * (n * w).div_ceil(64))
        .sum()
}

/// Bytes per party of `msb` on `n` elements: one packed AND round per width.
pub(super) fn msb_bytes(n: u64) -> u64 {
    [63u64, 62, 61, 29, 15, 7, 3, 1]
        .iter()
        .map(|w| 8 * (n * w).div_ceil(64))
        .sum()
}

/// `msb_bytes(37)`: `8·(37 + 36 + 36 + 17 + 9 + 5 + 2 + 1)`.
const MSB_BYTES_37: u64 = 1144;

#[test]
fn cost_b2a_bit() {
    // Two rounds, but each party sends in only one of them.
    let out = cost!(|s, x, y, bx, by| s.b2a_bit(&bx).await.unwrap(), N);
    assert_eq!(out, vec![(2, 8 * N as u64, 1); 3]);
}

#[test]
fn cost_select() {
    // B2A (2 rounds, one message of 8 bytes per element), then one multiplication.
    let out = cost!(|s, x, y, bx, by| s.select(&bx, &x, &y).await.unwrap(), N);
    assert_eq!(out, vec![(3, 16 * N as u64, 2); 3]);
}

#[test]
fn cost_relu_and_max() {
    // msb / lt, then B2A (8 bytes per element, one message in two rounds) and one
    // multiplication (8).
    let expected = vec![(11, MSB_BYTES_37 + 16 * N as u64, 10); 3];
    let relu = cost!(|s, x, y, bx, by| s.relu(&x).await.unwrap(), N);
    assert_eq!(relu, expected);
    assert_eq!(expected[0].1, 1736);
    let max = cost!(|s, x, y, bx, by| s.max(&x, &y).await.unwrap(), N);
    assert_eq!(max, expected);
}

// ---- security smoke test ----

/// Words each party received during `and` of `len` copies of `v & w`, over `runs` sessions with
/// fresh seeds; also checks the results. With `packed = Some(width)`, the AND is
/// `and_low` on the low `width` bits of each word, packed.
fn received_and_words(
    v: u64,
    w: u64,
    len: usize,
    runs: usize,
    packed: Option<u32>,
) -> [Vec<u64>; 3] {
    let mut acc: [Vec<u64>; 3] = Default::default();
    for _ in 0..runs {
        let out = block_on(run_tapped(move |tap, t| async move {
            let mut s = session(&t, None).await;
            let x = s
                .share_bits_input(0, Some(&vec![v; len][..]), len)
                .await
                .unwrap();
            let y = s
                .share_bits_input(1, Some(&vec![w; len][..]), len)
                .await
                .unwrap();
            tap.received.lock().unwrap().clear();
            let z = match packed {
                None => s.and(&x, &y).await.unwrap(),
                Some(width) => s.and_low(&x, &y, width).await.unwrap(),
            };
            let got = std::mem::take(&mut *tap.received.lock().unwrap());
            (z, got)
        }))
        .unwrap();
        let z: Vec<Rep3Bits> = out.iter().map(|o| o.0.clone()).collect();
        let mask = packed.map_or(u64::MAX, low_mask);
        assert_eq!(
            open_bits(&z),
            vec![v & w & mask; len],
            "and v={v:#x} w={w:#x}"
        );
        for (p, o) in out.iter().enumerate() {
            for m in &o.1 {
                acc[p].extend(crate::ring::decode::<u64>(m).unwrap());
            }
        }
    }
    acc
}

#[test]
fn received_and_messages_look_uniform_and_hide_the_inputs() {
    // 64 runs × 64 words = 4096 words per party and input. Each bit must be set in 40%..60% of
    // them: for a uniform bit that is 12.8 standard deviations, so this cannot flake.
    let (runs, len) = (64, 64);
    let total = runs * len;
    for (v, w) in [
        (0u64, 0u64),
        (u64::MAX, u64::MAX),
        (0x0123_4567_89ab_cdef, u64::MAX),
    ] {
        let received = received_and_words(v, w, len, runs, None);
        for (p, words) in received.iter().enumerate() {
            assert_eq!(words.len(), total, "party {p} v={v:#x} w={w:#x}");
            let what = format!("and at party {p}, v={v:#x} w={w:#x}");
            assert_look_uniform(words, 64, &[v, w, v & w], &what);
        }
    }
}

#[test]
fn received_packed_and_messages_look_uniform_and_hide_the_inputs() {
    // 64 runs × ⌈64·61/64⌉ = 61 words: 3904 words per party and input, 40%..60% per bit (12.5
    // standard deviations). Width 61 leaves padding bits in no word (64·61 is a multiple of 64)
    // but straddles word boundaries; width 37 with 63 elements leaves a partial last word.
    for (width, len) in [(61u32, 64usize), (37, 63)] {
        let runs = 64;
        let total = runs * (len * width as usize).div_ceil(64);
        for (v, w) in [
            (0u64, 0u64),
            (u64::MAX, u64::MAX),
            (0x0123_4567_89ab_cdef, u64::MAX),
        ] {
            let received = received_and_words(v, w, len, runs, Some(width));
            for (p, words) in received.iter().enumerate() {
                assert_eq!(words.len(), total, "party {p} width {width}");
                let what = format!("packed and at party {p}, width {width} v={v:#x} w={w:#x}");
                assert_look_uniform(words, 64, &[], &what);
            }
        }
    }
}

#[test]
fn received_b2a_bit_messages_look_uniform_and_hide_the_bits() {
    // Bits all 0, all 1, and alternating (with junk above bit 0), 16 runs of 128 elements:
    // party 1 receives `c − r` and `y_2 − ρ` (4096 words), party 2 `y_1 − σ` (2048), party 0
    // nothing. Each bit of what is received must be set in 40%..60% of the words (over 9
    // standard deviations for a uniform bit) and no word may repeat.
    let (runs, len) = (16, 128);
    for pattern in [0u64, 1, 2] {
        let bits: Vec<u64> = (0..len as u64)
            .map(|j| match pattern {
                0 => j << 8,
                1 => 1 | (j << 8),
                _ => (j & 1) | (j << 8),
            })
            .collect();
        let mut acc: [Vec<u64>; 3] = Default::default();
        for _ in 0..runs {
            let shared = std::sync::Arc::new(bits.clone());
            let out = block_on(run_tapped(move |tap, t| {
                let bits = shared.clone();
                async move {
                    let mut s = session(&t, None).await;
                    let b = s.share_bits_input(0, Some(&bits[..]), len).await.unwrap();
                    tap.take_words();
                    let a = s.b2a_bit(&b).await.unwrap();
                    (a, tap.take_words())
                }
            }))
            .unwrap();
            let a: Vec<_> = out.iter().map(|o| o.0.clone()).collect();
            let want: Vec<u64> = bits.iter().map(|b| b & 1).collect();
            assert_eq!(open(&a), want, "b2a_bit pattern {pattern}");
            for (p, o) in out.into_iter().enumerate() {
                acc[p].extend(o.1);
            }
        }
        assert!(acc[0].is_empty(), "party 0 receives nothing");
        for (p, words) in acc.iter().enumerate().skip(1) {
            let total = words.len();
            assert_eq!(total, runs * len * if p == 1 { 2 } else { 1 }, "party {p}");
            assert_look_uniform(words, 64, &[], &format!("b2a_bit at party {p}"));
        }
    }
}
