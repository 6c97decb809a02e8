//! All three parties in-process over `run_in_memory`; every result is compared with a plaintext
//! model (exact in Z_2^64, or within the documented truncation bound for fixed point).

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::test_util::{
    assert_look_uniform, block_on, measure, open, run_tapped, run3, session, word,
};
use super::{Rep3Session, Rep3Share};
use crate::MpcError;
use crate::fixed::FixedPoint;
use crate::seeds::{PairwiseSeeds, SessionContext, os_rng};
use crate::transport::{DEFAULT_MAX_MESSAGE, run_in_memory};

fn words(max_len: usize) -> impl Strategy<Value = Vec<u64>> {
    proptest::collection::vec(word(), 0..max_len)
}

fn plain_matmul(x: &[u64], y: &[u64], m: usize, k: usize, n: usize) -> Vec<u64> {
    let mut out = vec![0u64; m * n];
    for i in 0..m {
        for j in 0..n {
            for l in 0..k {
                out[i * n + j] =
                    out[i * n + j].wrapping_add(x[i * k + l].wrapping_mul(y[l * n + j]));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn share_then_reveal_round_trips(xs in words(40), owner in 0usize..3, to in 0usize..3) {
        let len = xs.len();
        let out = run3!(Some(1); [xs] |s| {
            let input = (s.me() == owner).then_some(&xs[..]);
            let x = s.share_input(owner, input, len).await.unwrap();
            let all = s.reveal_all(&x).await.unwrap();
            let one = s.reveal_to(to, &x).await.unwrap();
            (x, all, one)
        });
        let shares: Vec<Rep3Share> = out.iter().map(|o| o.0.clone()).collect();
        prop_assert_eq!(&open(&shares), &xs, "owner={} xs={:?}", owner, xs);
        for (p, (_, all, one)) in out.iter().enumerate() {
            prop_assert_eq!(all, &xs, "reveal_all at party {} owner={}", p, owner);
            if p == to {
                prop_assert_eq!(one.as_ref(), Some(&xs), "reveal_to({}) owner={}", to, owner);
            } else {
                prop_assert_eq!(one, &None, "reveal_to({}) leaked to party {}", to, p);
            }
        }
    }

    #[test]
    fn linear_ops_are_exact(
        (xs, ys, cs) in (0usize..24).prop_flat_map(|n| (
            proptest::collection::vec(word(), n),
            proptest::collection::vec(word(), n),
            proptest::collection::vec(word(), n),
        )),
        k in word(),
    ) {
        let n = xs.len();
        let out = run3!(None; [xs, ys, cs] |s| {
            let me = s.me();
            let x = s.share_input(0, (me == 0).then_some(&xs[..]), n).await.unwrap();
            let y = s.share_input(2, (me == 2).then_some(&ys[..]), n).await.unwrap();
            let add = s.add(&x, &y).unwrap();
            let sub = s.sub(&x, &y).unwrap();
            let neg = s.neg(&x);
            let add_pub = s.add_public(&x, &cs).unwrap();
            let add_scalar = s.add_public_scalar(&x, k);
            let mul_pub = s.mul_public(&x, &cs).unwrap();
            let mul_scalar = s.mul_public_scalar(&x, k);
            // A composite: k·(x − y) + c − x.
            let comp = s.sub(&s.add_public(&s.mul_public_scalar(&sub, k), &cs).unwrap(), &x).unwrap();
            let before = s.channel().counters().snapshot();
            let opened = s.reveal_all(&comp).await.unwrap();
            let after = s.channel().counters().snapshot();
            ([add, sub, neg, add_pub, add_scalar, mul_pub, mul_scalar, comp], opened, before, after)
        });
        let col = |i: usize| -> Vec<Rep3Share> { out.iter().map(|o| o.0[i].clone()).collect() };
        let map2 = |f: &dyn Fn(u64, u64) -> u64, a: &[u64], b: &[u64]| -> Vec<u64> {
            a.iter().zip(b).map(|(a, b)| f(*a, *b)).collect()
        };
        let ctx = format!("xs={xs:?} ys={ys:?} cs={cs:?} k={k}");
        prop_assert_eq!(open(&col(0)), map2(&u64::wrapping_add, &xs, &ys), "add {}", ctx);
        prop_assert_eq!(open(&col(1)), map2(&u64::wrapping_sub, &xs, &ys), "sub {}", ctx);
        prop_assert_eq!(open(&col(2)), xs.iter().map(|v| v.wrapping_neg()).collect::<Vec<_>>(), "neg {}", ctx);
        prop_assert_eq!(open(&col(3)), map2(&u64::wrapping_add, &xs, &cs), "add_public {}", ctx);
        prop_assert_eq!(open(&col(4)), xs.iter().map(|v| v.wrapping_add(k)).collect::<Vec<_>>(), "add_public_scalar {}", ctx);
        prop_assert_eq!(open(&col(5)), map2(&u64::wrapping_mul, &xs, &cs), "mul_public {}", ctx);
        prop_assert_eq!(open(&col(6)), xs.iter().map(|v| v.wrapping_mul(k)).collect::<Vec<_>>(), "mul_public_scalar {}", ctx);
        let comp: Vec<u64> = (0..n)
            .map(|j| k.wrapping_mul(xs[j].wrapping_sub(ys[j])).wrapping_add(cs[j]).wrapping_sub(xs[j]))
            .collect();
        prop_assert_eq!(open(&col(7)), comp.clone(), "composite {}", ctx);
        for (_, opened, _, _) in &out {
            prop_assert_eq!(opened, &comp, "composite revealed {}", ctx);
        }
    }

    #[test]
    fn mul_and_dot_are_exact(
        (xs, ys) in (0usize..24).prop_flat_map(|n| (
            proptest::collection::vec(word(), n),
            proptest::collection::vec(word(), n),
        )),
    ) {
        let n = xs.len();
        let out = run3!(None; [xs, ys] |s| {
            let me = s.me();
            let x = s.share_input(1, (me == 1).then_some(&xs[..]), n).await.unwrap();
            let y = s.share_input(2, (me == 2).then_some(&ys[..]), n).await.unwrap();
            let prod = s.mul(&x, &y).await.unwrap();
            let square = s.mul(&x, &x).await.unwrap();
            let dot = s.dot(&x, &y).await.unwrap();
            [prod, square, dot]
        });
        let col = |i: usize| -> Vec<Rep3Share> { out.iter().map(|o| o[i].clone()).collect() };
        let ctx = format!("xs={xs:?} ys={ys:?}");
        let prod: Vec<u64> = xs.iter().zip(&ys).map(|(a, b)| a.wrapping_mul(*b)).collect();
        let square: Vec<u64> = xs.iter().map(|a| a.wrapping_mul(*a)).collect();
        let dot = prod.iter().fold(0u64, |acc, v| acc.wrapping_add(*v));
        prop_assert_eq!(open(&col(0)), prod, "mul {}", ctx);
        prop_assert_eq!(open(&col(1)), square, "mul(x, x) {}", ctx);
        prop_assert_eq!(open(&col(2)), vec![dot], "dot {}", ctx);
    }

    #[test]
    fn matmul_is_exact(
        (m, k, n, xs, ys) in (0usize..5, 0usize..5, 0usize..5).prop_flat_map(|(m, k, n)| (
            Just(m), Just(k), Just(n),
            proptest::collection::vec(word(), m * k),
            proptest::collection::vec(word(), k * n),
        )),
    ) {
        let out = run3!(None; [xs, ys] |s| {
            let me = s.me();
            let x = s.share_input(0, (me == 0).then_some(&xs[..]), m * k).await.unwrap();
            let y = s.share_input(1, (me == 1).then_some(&ys[..]), k * n).await.unwrap();
            s.matmul(&x, &y, m, k, n).await.unwrap()
        });
        prop_assert_eq!(
            open(&out),
            plain_matmul(&xs, &ys, m, k, n),
            "matmul {}x{}·{}x{} xs={:?} ys={:?}", m, k, k, n, xs, ys
        );
    }
}

#[test]
fn matmul_large_enough_for_rayon_is_exact() {
    let (m, k, n) = (40, 50, 40);
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let xs: Vec<u64> = (0..m * k).map(|_| rng.next_u64()).collect();
    let ys: Vec<u64> = (0..k * n).map(|_| rng.next_u64()).collect();
    let out = run3!(Some(2); [xs, ys] |s| {
        let me = s.me();
        let x = s.share_input(2, (me == 2).then_some(&xs[..]), m * k).await.unwrap();
        let y = s.share_input(0, (me == 0).then_some(&ys[..]), k * n).await.unwrap();
        s.matmul(&x, &y, m, k, n).await.unwrap()
    });
    assert_eq!(
        open(&out),
        plain_matmul(&xs, &ys, m, k, n),
        "seeded 40x50·50x40"
    );
}

// ---- fixed point ----

const F: u32 = 16;

/// Checks a truncated result `t` against the exact integer `v / 2^d`: `|t − v/2^d| < 1`.
fn assert_within_one_ulp(t: u64, v: i128, d: u32, what: &str) {
    let exact = v as f64 / (d as f64).exp2();
    let got = t as i64 as f64;
    assert!(
        (got - exact).abs() < 1.0,
        "{what}: got {got}, exact {exact} (more than one unit in the last place off)"
    );
}

/// Seeded inputs in `[-bound, bound]` plus edge values at the bound, zero and one ulp.
fn fixed_inputs(seed: u64, n: usize, bound: f64) -> Vec<f64> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let ulp = (-(F as f64)).exp2();
    let mut v = vec![
        0.0,
        ulp,
        -ulp,
        bound,
        -bound,
        bound - ulp,
        -(bound - ulp),
        1.0,
        -1.0,
    ];
    while v.len() < n {
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        v.push((2.0 * u - 1.0) * bound);
    }
    v.truncate(n);
    v
}

#[test]
fn mul_fixed_is_within_one_ulp_of_the_truncated_product() {
    let fp = FixedPoint::new(F).unwrap();
    // Documented example range: |x·y| < 2^8 with f = 16, failure probability < 2^-24 per element.
    // Seeds and inputs are fixed, so the outcome is the same on every run.
    let n = 600;
    let xf = fixed_inputs(21, n, 16.0);
    let mut yf = fixed_inputs(22, n, 15.99);
    yf.reverse();
    let xs = fp.encode_slice(&xf).unwrap();
    let ys = fp.encode_slice(&yf).unwrap();
    let out = run3!(Some(3); [xs, ys] |s| {
        let me = s.me();
        let x = s.share_input(0, (me == 0).then_some(&xs[..]), n).await.unwrap();
        let y = s.share_input(1, (me == 1).then_some(&ys[..]), n).await.unwrap();
        let prod = s.mul_fixed(&x, &y, F).await.unwrap();
        // The same through plain mul + Π_trunc1 on the replicated product.
        let exact = s.mul(&x, &y).await.unwrap();
        let trunc = s.trunc(&exact, F).await.unwrap();
        [prod, trunc]
    });
    let col = |i: usize| -> Vec<Rep3Share> { out.iter().map(|o| o[i].clone()).collect() };
    for (name, got) in [("mul_fixed", open(&col(0))), ("mul + trunc", open(&col(1)))] {
        for j in 0..n {
            let (x, y) = (xf[j], yf[j]);
            let v = xs[j] as i64 as i128 * ys[j] as i64 as i128;
            let what = format!("{name} x={x} y={y}");
            assert_within_one_ulp(got[j], v, F, &what);
            // Against f64: one ulp from truncation plus the inputs' encoding error.
            let half = fp.resolution_error();
            let bound = 2.0 * half + x.abs() * half + y.abs() * half + half * half + 1e-12;
            let err = (fp.decode(got[j]) - x * y).abs();
            assert!(err <= bound, "{what}: error {err} > bound {bound}");
        }
    }
}

#[test]
fn trunc_handles_negative_and_large_values() {
    // |v| < 2^40 (ℓ = 40): failure probability < 2^-24 per element; seeds fixed.
    let vals: Vec<u64> = [
        0i64,
        1,
        -1,
        (1 << 40) - 1,
        -(1 << 40) + 1,
        123_456_789,
        -987_654_321,
        65_536,
        -65_536,
        65_535,
        -65_537,
    ]
    .iter()
    .map(|v| *v as u64)
    .collect();
    let n = vals.len();
    for d in [0, 1, 16, 20, 40] {
        let out = run3!(Some(4); [vals] |s| {
            let x = s.share_input(2, (s.me() == 2).then_some(&vals[..]), n).await.unwrap();
            s.trunc(&x, d).await.unwrap()
        });
        let got = open(&out);
        for j in 0..n {
            assert_within_one_ulp(
                got[j],
                vals[j] as i64 as i128,
                d,
                &format!("trunc v={} d={d}", vals[j] as i64),
            );
        }
    }
}

#[test]
fn matmul_fixed_is_within_one_ulp_of_the_truncated_product() {
    let fp = FixedPoint::new(F).unwrap();
    let (m, k, n) = (7, 9, 5);
    // |x|, |y| ≤ 4, k = 9 terms: |Σ x·y| ≤ 144 < 2^8.
    let xf = fixed_inputs(31, m * k, 4.0);
    let yf = fixed_inputs(32, k * n, 4.0);
    let xs = fp.encode_slice(&xf).unwrap();
    let ys = fp.encode_slice(&yf).unwrap();
    let out = run3!(Some(5); [xs, ys] |s| {
        let me = s.me();
        let x = s.share_input(1, (me == 1).then_some(&xs[..]), m * k).await.unwrap();
        let y = s.share_input(2, (me == 2).then_some(&ys[..]), k * n).await.unwrap();
        s.matmul_fixed(&x, &y, m, k, n, F).await.unwrap()
    });
    let got = open(&out);
    let half = fp.resolution_error();
    for i in 0..m {
        for j in 0..n {
            let v: i128 = (0..k)
                .map(|l| xs[i * k + l] as i64 as i128 * ys[l * n + j] as i64 as i128)
                .sum();
            let what = format!(
                "matmul_fixed ({i},{j}) row={:?} col={:?}",
                &xf[i * k..(i + 1) * k],
                (0..k).map(|l| yf[l * n + j]).collect::<Vec<_>>()
            );
            assert_within_one_ulp(got[i * n + j], v, F, &what);
            let reference: f64 = (0..k).map(|l| xf[i * k + l] * yf[l * n + j]).sum();
            let bound: f64 = 2.0 * half
                + (0..k)
                    .map(|l| (xf[i * k + l].abs() + yf[l * n + j].abs()) * half + half * half)
                    .sum::<f64>()
                + 1e-12;
            let err = (fp.decode(got[i * n + j]) - reference).abs();
            assert!(err <= bound, "{what}: error {err} > bound {bound}");
        }
    }
}

#[test]
fn bad_frac_bits_are_rejected() {
    let out = run3!(Some(6); [] |s| {
        let x = s.share_input(0, Some(&[1u64][..]), 1).await.unwrap();
        (
            matches!(s.trunc(&x, 64).await, Err(MpcError::BadFracBits { .. })),
            matches!(s.mul_fixed(&x, &x, 41).await, Err(MpcError::BadFracBits { .. })),
        )
    });
    assert!(out.iter().all(|o| *o == (true, true)));
}

// ---- communication ----

/// Shares an `lx`-element `x` (owner 0) and an `ly`-element `y` (owner 1), then measures `$op`.
macro_rules! cost {
    (|$s:ident, $x:ident, $y:ident| $op:expr, ($lx:expr, $ly:expr)) => {{
        let (lx, ly): (usize, usize) = ($lx, $ly);
        run3!(Some(9); [] |$s| {
            let $x = $s.share_input(0, Some(&vec![3u64; lx][..]), lx).await.unwrap();
            let $y = $s.share_input(1, Some(&vec![5u64; ly][..]), ly).await.unwrap();
            let _ = (&$x, &$y);
            measure!($s, $op)
        })
    }};
}

#[test]
fn setup_costs_one_round_and_32_bytes_per_peer() {
    let out = run3!(None; [] |s| {
        let c = s.channel().counters().snapshot();
        (c.rounds, c.bytes_sent, s.channel().path().to_string(), s.channel().round())
    });
    // The seeds round ran in `rep3/seeds`; the session's own rounds start at 0.
    assert!(
        out.iter().all(|o| *o == (1, 64, "rep3".to_string(), 0)),
        "{out:?}"
    );
}

#[test]
fn cost_share_input() {
    let n = 37;
    let out = cost!(
        |s, x, y| s.share_input(2, Some(&vec![7u64; n][..]), n).await.unwrap(),
        (1, 1)
    );
    assert_eq!(out, vec![(1, 0, 0), (1, 0, 0), (1, 16 * n as u64, 2)]);
}

#[test]
fn cost_reveal_all() {
    let n = 37;
    let out = cost!(|s, x, y| s.reveal_all(&x).await.unwrap(), (n, 1));
    assert_eq!(out, vec![(1, 8 * n as u64, 1); 3]);
}

#[test]
fn cost_reveal_to() {
    let n = 37;
    let out = cost!(|s, x, y| s.reveal_to(2, &x).await.unwrap(), (n, 1));
    assert_eq!(out, vec![(1, 8 * n as u64, 1), (1, 0, 0), (1, 0, 0)]);
}

#[test]
fn cost_linear_ops_is_zero() {
    let n = 37;
    let out = cost!(
        |s, x, y| {
            let c = vec![9u64; n];
            let t = s.add(&x, &y).unwrap();
            let t = s.sub(&t, &y).unwrap();
            let t = s.neg(&t);
            let t = s.add_public(&t, &c).unwrap();
            let t = s.add_public_scalar(&t, 4);
            let t = s.mul_public(&t, &c).unwrap();
            s.mul_public_scalar(&t, 3)
        },
        (n, n)
    );
    assert_eq!(out, vec![(0, 0, 0); 3]);
}

#[test]
fn cost_mul() {
    let n = 37;
    let out = cost!(|s, x, y| s.mul(&x, &y).await.unwrap(), (n, n));
    assert_eq!(out, vec![(1, 8 * n as u64, 1); 3]);
}

#[test]
fn cost_dot() {
    let n = 37;
    let out = cost!(|s, x, y| s.dot(&x, &y).await.unwrap(), (n, n));
    assert_eq!(out, vec![(1, 8, 1); 3]);
}

#[test]
fn cost_matmul_reshares_only_outputs() {
    let (m, k, n) = (6, 11, 4);
    let out = cost!(
        |s, x, y| s.matmul(&x, &y, m, k, n).await.unwrap(),
        (m * k, k * n)
    );
    assert_eq!(out, vec![(1, 8 * (m * n) as u64, 1); 3]);
}

#[test]
fn cost_trunc() {
    let n = 37;
    let out = cost!(|s, x, y| s.trunc(&x, F).await.unwrap(), (n, 1));
    assert_eq!(out, vec![(1, 0, 0), (1, 8 * n as u64, 1), (1, 0, 0)]);
}

#[test]
fn cost_mul_fixed() {
    let n = 37;
    let out = cost!(|s, x, y| s.mul_fixed(&x, &y, F).await.unwrap(), (n, n));
    assert_eq!(out, vec![(2, 8 * n as u64, 1); 3]);
}

#[test]
fn cost_matmul_fixed() {
    let (m, k, n) = (6, 11, 4);
    let out = cost!(
        |s, x, y| s.matmul_fixed(&x, &y, m, k, n, F).await.unwrap(),
        (m * k, k * n)
    );
    assert_eq!(out, vec![(2, 8 * (m * n) as u64, 1); 3]);
}

// ---- errors and hygiene ----

#[test]
fn wrong_party_count_is_an_error() {
    for n in [2, 4] {
        let out = block_on(run_in_memory(n, DEFAULT_MAX_MESSAGE, move |t| async move {
            let ids: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
            let ctx = SessionContext {
                job_id: "j",
                party_ids: &ids,
            };
            let setup = Rep3Session::setup(&t, ctx, &mut os_rng().unwrap()).await;
            let seeds = PairwiseSeeds::new(t.me(), vec![None; n]);
            let from_seeds = Rep3Session::from_seeds(&t, &seeds);
            (
                matches!(setup, Err(MpcError::PartyCount { got, .. }) if got == n),
                matches!(from_seeds, Err(MpcError::PartyCount { got, .. }) if got == n),
                t.counters().snapshot().bytes_sent,
            )
        }))
        .unwrap();
        assert!(out.iter().all(|o| *o == (true, true, 0)), "n={n}: {out:?}");
    }
}

#[test]
fn mismatched_lengths_are_errors() {
    let out = run3!(Some(7); [] |s| {
        let x = s.share_input(0, Some(&[1u64, 2][..]), 2).await.unwrap();
        let y = s.share_input(0, Some(&[1u64, 2, 3][..]), 3).await.unwrap();
        [
            matches!(s.add(&x, &y), Err(MpcError::LengthMismatch { .. })),
            matches!(s.mul_public(&x, &[1]), Err(MpcError::LengthMismatch { .. })),
            matches!(s.mul(&x, &y).await, Err(MpcError::LengthMismatch { .. })),
            matches!(s.matmul(&x, &y, 2, 2, 1).await, Err(MpcError::LengthMismatch { .. })),
        ]
    });
    assert!(out.iter().flatten().all(|ok| *ok), "{out:?}");
}

#[test]
fn debug_shows_only_the_length() {
    let share = Rep3Share::from_parts(vec![0xdead_beef; 3], vec![0x1234_5678; 3]).unwrap();
    let dbg = format!("{share:?}");
    assert_eq!(dbg, "Rep3Share { len: 3, .. }");
    assert!(Rep3Share::from_parts(vec![1], vec![]).is_err());
}

// ---- security smoke test ----

/// Words each party received during `mul` and `mul_fixed` of `len` copies of `v · v`, over
/// `runs` sessions with fresh seeds; also checks the results.
fn received_words(v: u64, len: usize, runs: usize) -> [[Vec<u64>; 3]; 2] {
    let mut acc: [[Vec<u64>; 3]; 2] = Default::default();
    for _ in 0..runs {
        let out = block_on(run_tapped(move |tap, t| async move {
            let mut s = session(&t, None).await;
            let xs = vec![v; len];
            let x = s.share_input(0, Some(&xs[..]), len).await.unwrap();
            let y = s.share_input(1, Some(&xs[..]), len).await.unwrap();
            tap.received.lock().unwrap().clear();
            let z = s.mul(&x, &y).await.unwrap();
            let in_mul = std::mem::take(&mut *tap.received.lock().unwrap());
            let zf = s.mul_fixed(&x, &y, F).await.unwrap();
            let in_fixed = std::mem::take(&mut *tap.received.lock().unwrap());
            (z, zf, in_mul, in_fixed)
        }))
        .unwrap();
        let z: Vec<Rep3Share> = out.iter().map(|o| o.0.clone()).collect();
        assert_eq!(open(&z), vec![v.wrapping_mul(v); len], "mul v={v}");
        for (p, o) in out.iter().enumerate() {
            for (k, msgs) in [&o.2, &o.3].into_iter().enumerate() {
                for m in msgs {
                    acc[k][p].extend(crate::ring::decode::<u64>(m).unwrap());
                }
            }
        }
    }
    acc
}

#[test]
fn received_multiplication_messages_look_uniform_and_hide_the_inputs() {
    // 64 runs × 64 elements = 4096 words per party and input. Each bit must be set in 40%..60%
    // of them: for a uniform bit that is 12.8 standard deviations, so this cannot flake.
    let (runs, len) = (64, 64);
    let total = runs * len;
    for v in [0u64, 12345] {
        let [in_mul, in_fixed] = received_words(v, len, runs);
        for (op, words, p) in (0..3)
            .map(|p| ("mul", &in_mul[p], p))
            .chain((0..3).map(|p| ("mul_fixed", &in_fixed[p], p)))
        {
            assert_eq!(words.len(), total, "{op} party {p} v={v}");
            // Party 2 receives ⌊z_0 / 2^f⌋ in mul_fixed: its top f bits are zero by construction.
            let bits = if op == "mul_fixed" && p == 2 {
                64 - F
            } else {
                64
            };
            let secrets = [v, v.wrapping_mul(v), v.wrapping_mul(v) >> F, 0];
            assert_look_uniform(
                words,
                bits,
                &secrets,
                &format!("{op} at party {p}, x=y={v}"),
            );
        }
    }
}

/// A session whose round failed refuses every further round without touching the transport: its
/// round tags and streams may be out of step with the peers'. (Before, the next round simply
/// read the peer's next message.)
#[test]
fn a_failed_session_refuses_further_use() {
    let out = run3!(Some(5); [] |s| {
        match s.me() {
            // Party 1 sends party 0 a message of the wrong length for this round, then a
            // well-formed one for the next round.
            1 => {
                s.channel().send(0, vec![0; 5]).await.unwrap();
                s.channel().end_round();
                s.channel().send(0, vec![0; 8]).await.unwrap();
                (None, None, false, 0, None)
            }
            0 => {
                let first = s.recv_from(1, 1).await.unwrap_err();
                let second = s.recv_from(1, 1).await.unwrap_err();
                let received = s.channel().counters().snapshot().messages_received;
                // The channel's session refuses too, even a sibling channel.
                let raw = s.channel().child("x").recv(1).await.unwrap_err();
                (Some(first), Some(second), s.failed(), received, Some(raw))
            }
            _ => (None, None, s.failed(), 0, None),
        }
    });
    let (first, second, failed, received, raw) = &out[0];
    assert_eq!(raw, &Some(crate::transport::TransportError::Poisoned));
    assert!(
        matches!(first, Some(MpcError::MalformedMessage { from: 1, .. })),
        "{first:?}"
    );
    assert!(
        matches!(second, Some(MpcError::SessionFailed)),
        "{second:?}"
    );
    assert!(failed);
    // Only the malformed message was read; the next one stays unread.
    assert_eq!(*received, 1);
    assert!(!out[2].2, "party 2 ran no round and did not fail");
}
