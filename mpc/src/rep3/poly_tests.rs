//! Polynomial evaluation on shares: all three parties in-process, every result compared with an
//! f64 model of the polynomial at the encoded input within the documented error bound, plus the
//! exact rounds and bytes.

use proptest::prelude::*;

use super::test_util::{open, run3};
use super::{MAX_POLY_DEGREE, Rep3Share};
use crate::MpcError;
use crate::fixed::FixedPoint;
use crate::transport::Transport;

const F: u32 = 16;

fn fp() -> FixedPoint {
    FixedPoint::new(F).unwrap()
}

fn encode_all(xs: &[f64]) -> Vec<u64> {
    xs.iter().map(|&x| fp().encode(x).unwrap()).collect()
}

fn decode_all(vs: &[u64]) -> Vec<f64> {
    vs.iter().map(|&v| fp().decode(v)).collect()
}

fn horner(coeffs: &[f64], x: f64) -> f64 {
    coeffs.iter().rev().fold(0.0, |acc, c| acc * x + c)
}

/// The documented bound of `poly_fixed` for `|x| ≤ 1`, plus a second-order allowance.
fn poly_bound(coeffs: &[f64]) -> f64 {
    let u = (-(F as f64)).exp2();
    let first: f64 = coeffs
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, c)| **c != 0.0)
        .map(|(i, c)| c.abs() * (i as f64 - 1.0) + 0.5)
        .sum();
    let d = coeffs.len() as f64;
    u * (1.0 + first + 0.5) + d * d * u * u * coeffs.iter().map(|c| c.abs()).sum::<f64>()
}

/// Shares `xs` (owner 1) and evaluates `coeffs` on them with a fixed seed `salt`.
fn eval_poly(xs: &[f64], coeffs: &[f64], salt: u64) -> Vec<f64> {
    let enc = encode_all(xs);
    let n = enc.len();
    let coeffs = coeffs.to_vec();
    let out = run3!(Some(salt); [enc, coeffs] |s| {
        let me = s.me();
        let x = s.share_input(1, (me == 1).then_some(&enc[..]), n).await.unwrap();
        s.poly_fixed(&x, &coeffs, F).await.unwrap()
    });
    decode_all(&open(&out))
}

fn unit() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1.0f64..=1.0,
        Just(0.0),
        Just(1.0),
        Just(-1.0),
        Just(0.5),
        Just(-(-(F as f64)).exp2()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn poly_matches_f64_within_bound(
        xs in proptest::collection::vec(unit(), 1..24),
        coeffs in proptest::collection::vec(
            prop_oneof![-4.0f64..4.0, Just(0.0)], 1..10),
        salt in 0u64..1000,
    ) {
        let got = eval_poly(&xs, &coeffs, salt);
        let bound = poly_bound(&coeffs);
        for (j, &x) in xs.iter().enumerate() {
            let xe = fp().decode(fp().encode(x).unwrap());
            let want = horner(&coeffs, xe);
            prop_assert!(
                (got[j] - want).abs() <= bound,
                "x={} coeffs={:?}: got {} want {} (bound {})", x, coeffs, got[j], want, bound
            );
        }
    }
}

#[test]
fn powers_match_f64_within_bound() {
    let xs = [0.0, 1.0, -1.0, 0.999, -0.7, 0.3, 2f64.powi(-16)];
    let enc = encode_all(&xs);
    let n = xs.len();
    let exps = [0usize, 1, 2, 3, 5, 8, 13, 16, 17];
    let out = run3!(Some(3); [enc] |s| {
        let me = s.me();
        let x = s.share_input(0, (me == 0).then_some(&enc[..]), n).await.unwrap();
        s.powers_fixed(&x, &exps, F).await.unwrap()
    });
    let u = (-(F as f64)).exp2();
    for (i, &e) in exps.iter().enumerate() {
        let shares: Vec<Rep3Share> = out.iter().map(|o| o[i].clone()).collect();
        let got = decode_all(&open(&shares));
        for (j, &x) in xs.iter().enumerate() {
            let want = fp().decode(fp().encode(x).unwrap()).powi(e as i32);
            let bound = (e.max(1) - 1) as f64 * u * 1.01;
            assert!(
                (got[j] - want).abs() <= bound,
                "x={x} e={e}: got {} want {want} (bound {bound})",
                got[j]
            );
        }
    }
}

/// An odd polynomial skips the even powers it does not need, and a constant costs nothing.
#[test]
fn odd_and_constant_polynomials() {
    let xs = [0.25, -0.5, 0.0, 1.0, -1.0];
    let odd = [0.0, 1.5, 0.0, -0.75, 0.0, 0.25, 0.0, -0.125];
    let got = eval_poly(&xs, &odd, 4);
    for (j, &x) in xs.iter().enumerate() {
        let want = horner(&odd, x);
        assert!((got[j] - want).abs() <= poly_bound(&odd), "x={x}");
    }
    let got = eval_poly(&xs, &[0.3], 5);
    let c = fp().decode(fp().encode(0.3).unwrap());
    assert!(got.iter().all(|&v| v == c), "{got:?}");
    let got = eval_poly(&xs, &[], 5);
    assert!(got.iter().all(|&v| v == 0.0), "{got:?}");
}

#[test]
fn bad_degree_and_coefficients_are_rejected() {
    let out = run3!(Some(6); [] |s| {
        let x = s.share_input(0, Some(&[1u64][..]), 1).await.unwrap();
        let mut long = vec![0.0; MAX_POLY_DEGREE + 2];
        long[MAX_POLY_DEGREE + 1] = 1.0;
        (
            matches!(s.poly_fixed(&x, &long, F).await, Err(MpcError::PolyDegree { .. })),
            matches!(s.poly_fixed(&x, &[1.0, f64::NAN], F).await, Err(MpcError::NotFinite)),
            matches!(s.poly_fixed(&x, &[1.0e300], F).await, Err(MpcError::OutOfRange { .. })),
            matches!(s.poly_fixed(&x, &[1.0], 41).await, Err(MpcError::BadFracBits { .. })),
            matches!(
                s.powers_fixed(&x, &[MAX_POLY_DEGREE + 1], F).await,
                Err(MpcError::PolyDegree { .. })
            ),
        )
    });
    assert!(
        out.iter().all(|o| *o == (true, true, true, true, true)),
        "{out:?}"
    );
}

// ---- communication ----

/// `(rounds, bytes sent, messages sent)` of one party during one operation.
type Cost = (u64, u64, u64);

const N: usize = 37;

/// Measures `$op` on a shared `N`-element `x` at every party.
macro_rules! cost {
    (|$s:ident, $x:ident| $op:expr) => {{
        run3!(Some(9); [] |$s| {
            let $x = $s.share_input(0, Some(&vec![3u64; N][..]), N).await.unwrap();
            let before = $s.transport().counters().snapshot();
            let _out = $op;
            let after = $s.transport().counters().snapshot();
            let c: Cost = (
                after.rounds - before.rounds,
                after.bytes_sent - before.bytes_sent,
                after.messages_sent - before.messages_sent,
            );
            c
        })
    }};
}

#[test]
fn cost_poly_fixed() {
    let n = N as u64;
    // Odd degree 7: x^2 | x^3, x^4 | x^5, x^7 — 3 levels (6 rounds), 5 products, then 1 trunc.
    let odd = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
    let out = cost!(|s, x| s.poly_fixed(&x, &odd, F).await.unwrap());
    // mul_fixed: each party sends one message per level; trunc: party 1 sends 8n.
    assert_eq!(
        out,
        vec![(7, 40 * n, 3), (7, 48 * n, 4), (7, 40 * n, 3)],
        "odd degree 7"
    );
    // Dense degree 4: x^2 | x^3, x^4 — 2 levels, 3 products.
    let out = cost!(|s, x| s.poly_fixed(&x, &[1.0; 5], F).await.unwrap());
    assert_eq!(out, vec![(5, 24 * n, 2), (5, 32 * n, 3), (5, 24 * n, 2)]);
    // Linear: the final truncation only. Constant: free.
    let out = cost!(|s, x| s.poly_fixed(&x, &[1.0, 2.0], F).await.unwrap());
    assert_eq!(out, vec![(1, 0, 0), (1, 8 * n, 1), (1, 0, 0)]);
    let out = cost!(|s, x| s.poly_fixed(&x, &[1.0, 0.0, 0.0], F).await.unwrap());
    assert_eq!(out, vec![(0, 0, 0); 3]);
}

#[test]
fn cost_powers_fixed() {
    let n = N as u64;
    // x^2 | x^3, x^4 | x^8 (from x^4·x^4) — 3 levels, 4 products, no final truncation.
    let out = cost!(|s, x| s.powers_fixed(&x, &[3, 8], F).await.unwrap());
    assert_eq!(out, vec![(6, 32 * n, 3); 3]);
}
