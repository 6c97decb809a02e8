//! Polynomial evaluation on shares: all three parties in-process, every result compared with an
//! f64 model of the polynomial at the encoded input within the documented error bound, plus the
//! exact rounds and bytes.

use proptest::prelude::*;

use super::boolean_tests::msb_bytes;
use super::exp::EXP_COEFFS;
use super::sigmoid::{SIGMOID_COEFFS, SIGMOID_PIECE_COEFFS, SIGMOID_PIECES};
use super::test_util::{measure, open, run3};
use super::{
    EXP_MAX, EXP_MAX_FRAC_BITS, EXP_MIN, EXP_MIN_FRAC_BITS, MAX_POLY_DEGREE, Rep3Share,
    SIGMOID_BOUND, SIGMOID_MAX_FRAC_BITS, SIGMOID_MIN_FRAC_BITS,
};
use crate::MpcError;
use crate::fixed::FixedPoint;

const F: u32 = 16;

/// The error of `exp` as documented: `(16·δ + 61·u)·e^x + 45·u` with `δ` the fit's relative
/// error and `u = 2^−f`.
const EXP_FIT: f64 = 3.02e-6;
const EXP_REL_UNITS: f64 = 61.0;
const EXP_ABS_UNITS: f64 = 45.0;

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

/// The documented bound of `poly_fixed_split` for `|x| ≤ 1` (coefficients at `f + extra` bits),
/// plus a second-order allowance.
fn split_bound(coeffs: &[f64], k: usize, extra: u32) -> f64 {
    let u = (-(F as f64)).exp2();
    let rounding = coeffs.len() as f64 / f64::from(1u32 << (extra + 1));
    let q0: f64 = (1..k).map(|i| coeffs[i].abs() * (i as f64 - 1.0)).sum();
    let q1_abs: f64 = coeffs[k..].iter().map(|c| c.abs()).sum();
    let q1_powers: f64 = (k..coeffs.len())
        .map(|i| coeffs[i].abs() * (i as f64 - k as f64 - 1.0).max(0.0))
        .sum();
    let d = coeffs.len() as f64;
    u * (2.0 + rounding + q0 + (k as f64 - 1.0) * q1_abs + q1_powers)
        + d * d * u * u * coeffs.iter().map(|c| c.abs()).sum::<f64>()
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn split_poly_matches_f64_within_bound(
        xs in proptest::collection::vec(unit(), 1..24),
        (k, coeffs) in (1usize..5).prop_flat_map(|k| (
            Just(k),
            proptest::collection::vec(prop_oneof![-2.0f64..2.0, Just(0.0)], k + 1..=2 * k + 1),
        )),
        extra in 0u32..5,
        salt in 0u64..1000,
    ) {
        let enc = encode_all(&xs);
        let n = enc.len();
        let cs = coeffs.clone();
        let out = run3!(Some(salt); [enc, cs] |s| {
            let me = s.me();
            let x = s.share_input(1, (me == 1).then_some(&enc[..]), n).await.unwrap();
            s.poly_fixed_split(&x, &cs, F, extra, k).await.unwrap()
        });
        let got = decode_all(&open(&out));
        let bound = split_bound(&coeffs, k, extra);
        for (j, &x) in xs.iter().enumerate() {
            let xe = fp().decode(fp().encode(x).unwrap());
            let want = horner(&coeffs, xe);
            prop_assert!(
                (got[j] - want).abs() <= bound,
                "x={} k={} coeffs={:?}: got {} want {} (bound {})", x, k, coeffs, got[j], want, bound
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

// ---- sigmoid ----

fn sigmoid_f64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Applies `op` (0: sigmoid, 1: exp, 2: precise sigmoid) to the raw ring words `raw` with a fixed seed `salt`.
fn eval_nl(op: u8, raw: &[u64], f: u32, salt: u64) -> Vec<f64> {
    let raw = raw.to_vec();
    let n = raw.len();
    let out = run3!(Some(salt); [raw] |s| {
        let me = s.me();
        let x = s.share_input(2, (me == 2).then_some(&raw[..]), n).await.unwrap();
        match op {
            0 => s.sigmoid(&x, f).await.unwrap(),
            2 => s.sigmoid_precise(&x, f).await.unwrap(),
            _ => s.exp(&x, f).await.unwrap(),
        }
    });
    let fmt = FixedPoint::new(f).unwrap();
    open(&out).iter().map(|&v| fmt.decode(v)).collect()
}

/// The largest sigmoid error the docs promise (and the brief asks for).
const SIGMOID_MAX_ERR: f64 = 1e-3;

/// Raw inputs around every edge of the sigmoid at `f` fractional bits: 0, ±1 unit, ±B and its
/// neighbours, large values, and the ends of the ring.
fn sigmoid_edges(f: u32) -> Vec<u64> {
    let b = FixedPoint::new(f).unwrap().encode(SIGMOID_BOUND).unwrap() as i64;
    let mut v: Vec<i64> = vec![0, 1, -1, 1 << f, -(1 << f), 1 << 40, -(1 << 40)];
    for d in [-2i64, -1, 0, 1, 2] {
        v.extend([b + d, -(b + d)]);
    }
    v.extend([i64::MAX, i64::MIN + 1, i64::MIN, i64::MAX - b, i64::MIN + b]);
    v.into_iter().map(|x| x as u64).collect()
}

fn check_sigmoid(raw: &[u64], f: u32, salt: u64) -> Result<(), String> {
    let got = eval_nl(0, raw, f, salt);
    let fmt = FixedPoint::new(f).unwrap();
    for (&r, &g) in raw.iter().zip(&got) {
        let x = fmt.decode(r);
        let err = (g - sigmoid_f64(x)).abs();
        if err > SIGMOID_MAX_ERR {
            return Err(format!(
                "sigmoid(x = {x}, raw {r:#x}, f = {f}) = {g}: error {err}"
            ));
        }
    }
    Ok(())
}

/// The committed polynomial is within `6.6·10^−4` of `σ` on `[0, B]` (dense grid), and the
/// saturation error `1 − σ(B)` is within budget too.
#[test]
fn sigmoid_polynomial_error_on_dense_grid() {
    let steps = 1_000_000;
    let worst = (0..=steps)
        .map(|i| {
            let u = -1.0 + 2.0 * i as f64 / steps as f64;
            (horner(&SIGMOID_COEFFS, u) - sigmoid_f64(SIGMOID_BOUND * (u + 1.0) / 2.0)).abs()
        })
        .fold(0.0, f64::max);
    assert!(worst <= 6.6e-4, "fit error {worst}");
    assert!(1.0 - sigmoid_f64(SIGMOID_BOUND) <= 7.2e-4);
    // Coefficients below 1: the fixed-point error of the split evaluation stays below 7.8 units.
    assert!(SIGMOID_COEFFS.iter().all(|c| c.abs() < 1.0));
    let split = split_bound(&SIGMOID_COEFFS, 3, 0);
    assert!(split <= 7.8 * (-(F as f64)).exp2(), "{split}");
    // The error of u (truncation plus the rounding of 2/B, 4.6 units) times the slope B/8.
    let u_err = 4.6 * (-(F as f64)).exp2() * SIGMOID_BOUND / 8.0;
    assert!(worst + split + u_err < 8.4e-4);
}

#[test]
fn sigmoid_edges_every_supported_frac_bits() {
    for f in SIGMOID_MIN_FRAC_BITS..=SIGMOID_MAX_FRAC_BITS {
        check_sigmoid(&sigmoid_edges(f), f, 11 + u64::from(f)).unwrap();
    }
}

/// A dense sweep of `[−9, 9]` at `f = 16` (the region where the polynomial and the saturation
/// meet), with a fixed seed.
#[test]
fn sigmoid_sweep() {
    let raw: Vec<u64> = (-9000..=9000)
        .map(|i| fp().encode(i as f64 / 1000.0).unwrap())
        .collect();
    check_sigmoid(&raw, F, 12).unwrap();
}

fn sigmoid_input() -> impl Strategy<Value = u64> {
    prop_oneof![
        (-10.0f64..10.0).prop_map(|x| fp().encode(x).unwrap()),
        (-7.3f64..-7.2).prop_map(|x| fp().encode(x).unwrap()),
        (7.2f64..7.3).prop_map(|x| fp().encode(x).unwrap()),
        any::<u64>(),
        any::<i32>().prop_map(|x| x as i64 as u64),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn sigmoid_matches_f64(
        raw in proptest::collection::vec(sigmoid_input(), 1..32),
        f in SIGMOID_MIN_FRAC_BITS..=SIGMOID_MAX_FRAC_BITS,
        salt in 0u64..1000,
    ) {
        prop_assert!(check_sigmoid(&raw, f, salt).is_ok(), "{:?}", check_sigmoid(&raw, f, salt));
    }
}

// ---- precise sigmoid ----

/// The precise sigmoid's systematic error budget: interpolation, saturation and coefficient
/// rounding (see its docs).
const PRECISE_SYSTEMATIC: f64 = 1.6e-6 + 1.2e-7 + 7.0 * 1.5258789e-5 / 8.0;

#[test]
fn precise_sigmoid_pieces_on_dense_grid() {
    let steps = 200_000;
    let fc = FixedPoint::new(F + 2).unwrap();
    for (k, &(a, b)) in SIGMOID_PIECES.iter().enumerate() {
        // The coefficients as the protocol encodes them at f = 16 (+2 bits).
        let rounded: Vec<f64> = SIGMOID_PIECE_COEFFS[k]
            .iter()
            .map(|&c| fc.decode(fc.encode(c).unwrap()))
            .collect();
        for (coeffs, bound) in [
            (&SIGMOID_PIECE_COEFFS[k][..], 1.6e-6),
            (&rounded[..], PRECISE_SYSTEMATIC),
        ] {
            let worst = (0..=steps)
                .map(|i| {
                    let u = -1.0 + 2.0 * i as f64 / steps as f64;
                    (horner(coeffs, u) - sigmoid_f64(a + (u + 1.0) * (b - a) / 2.0)).abs()
                })
                .fold(0.0, f64::max);
            assert!(worst <= bound, "piece {k}: error {worst}");
        }
        assert!(SIGMOID_PIECE_COEFFS[k].iter().all(|c| c.abs() < 1.0));
    }
    assert!(1.0 - sigmoid_f64(16.0) <= 1.2e-7);
}

/// Every element within the systematic budget plus 8 units; the mean signed error over a dense
/// sweep within the systematic budget (the truncation errors are unbiased).
#[test]
fn precise_sigmoid_sweep_and_edges() {
    for f in [SIGMOID_MIN_FRAC_BITS, SIGMOID_MAX_FRAC_BITS] {
        let fmt = FixedPoint::new(f).unwrap();
        let mut raw: Vec<u64> = (-20_000..=20_000)
            .map(|i| fmt.encode(i as f64 / 1000.0).unwrap())
            .collect();
        raw.extend(sigmoid_edges(f));
        for b in [2.0, 4.0, 8.0, 16.0] {
            let e = fmt.encode(b).unwrap() as i64;
            for d in [-1i64, 0, 1] {
                raw.extend([(e + d) as u64, (-(e + d)) as u64]);
            }
        }
        let got = eval_nl(2, &raw, f, 40 + u64::from(f));
        let unit = (-(f as f64)).exp2();
        let mut signed = 0.0;
        for (&r, &g) in raw.iter().zip(&got) {
            let x = fmt.decode(r);
            let err = g - sigmoid_f64(x);
            signed += err;
            assert!(
                err.abs() <= PRECISE_SYSTEMATIC + 8.0 * unit,
                "precise sigmoid(x = {x}, f = {f}) = {g}: error {err}"
            );
        }
        let mean = signed / raw.len() as f64;
        assert!(
            mean.abs() <= PRECISE_SYSTEMATIC,
            "mean error {mean} at f = {f}"
        );
    }
}

// ---- exp ----

/// The committed polynomial's relative error on `[−1, 1]` (dense grid).
#[test]
fn exp_polynomial_error_on_dense_grid() {
    let steps = 1_000_000;
    let worst = (0..=steps)
        .map(|i| {
            let s = -1.0 + 2.0 * i as f64 / steps as f64;
            (horner(&EXP_COEFFS, s) / (s - 0.5).exp() - 1.0).abs()
        })
        .fold(0.0, f64::max);
    assert!(worst <= EXP_FIT, "fit relative error {worst}");
}

/// `|got − e^x| ≤ (16·δ + 61·u)·e^x + 45·u`, the documented bound.
fn exp_bound(x: f64, f: u32) -> f64 {
    let u = (-(f as f64)).exp2();
    (16.0 * EXP_FIT + EXP_REL_UNITS * u) * x.exp() + EXP_ABS_UNITS * u
}

fn check_exp(raw: &[u64], f: u32, salt: u64) -> Result<(), String> {
    let got = eval_nl(1, raw, f, salt);
    let fmt = FixedPoint::new(f).unwrap();
    for (&r, &g) in raw.iter().zip(&got) {
        let x = fmt.decode(r);
        let err = (g - x.exp()).abs();
        if err > exp_bound(x, f) {
            return Err(format!(
                "exp(x = {x}, f = {f}) = {g}, want {}: error {err}",
                x.exp()
            ));
        }
    }
    Ok(())
}

#[test]
fn exp_sweep_and_edges() {
    for f in EXP_MIN_FRAC_BITS..=EXP_MAX_FRAC_BITS {
        let fmt = FixedPoint::new(f).unwrap();
        let mut raw: Vec<u64> = (-4000..=800)
            .map(|i| fmt.encode(i as f64 / 100.0).unwrap())
            .collect();
        raw.extend([
            0,
            1,
            u64::MAX,
            fmt.encode(EXP_MIN).unwrap(),
            fmt.encode(EXP_MAX).unwrap(),
        ]);
        check_exp(&raw, f, 30 + u64::from(f)).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn exp_matches_f64(
        xs in proptest::collection::vec(EXP_MIN..=EXP_MAX, 1..32),
        f in EXP_MIN_FRAC_BITS..=EXP_MAX_FRAC_BITS,
        salt in 0u64..1000,
    ) {
        let fmt = FixedPoint::new(f).unwrap();
        let raw: Vec<u64> = xs.iter().map(|&x| fmt.encode(x).unwrap()).collect();
        prop_assert!(check_exp(&raw, f, salt).is_ok(), "{:?}", check_exp(&raw, f, salt));
    }
}

#[test]
fn nonlinear_bad_frac_bits_are_rejected() {
    let out = run3!(Some(6); [] |s| {
        let x = s.share_input(0, Some(&[1u64][..]), 1).await.unwrap();
        let mut ok = true;
        for f in [0, SIGMOID_MIN_FRAC_BITS - 1, SIGMOID_MAX_FRAC_BITS + 1, 40, 64] {
            ok &= matches!(s.sigmoid(&x, f).await, Err(MpcError::UnsupportedFracBits { .. }));
        }
        for f in [0, EXP_MIN_FRAC_BITS - 1, EXP_MAX_FRAC_BITS + 1, 40, 64] {
            ok &= matches!(s.exp(&x, f).await, Err(MpcError::UnsupportedFracBits { .. }));
        }
        ok
    });
    assert!(out.iter().all(|o| *o), "{out:?}");
}

// ---- communication ----

const N: usize = 37;

/// Measures `$op` on a shared `N`-element `x` at every party.
macro_rules! cost {
    (|$s:ident, $x:ident| $op:expr) => {{
        run3!(Some(9); [] |$s| {
            let $x = $s.share_input(0, Some(&vec![3u64; N][..]), N).await.unwrap();
            measure!($s, $op)
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
fn cost_poly_fixed_split() {
    let n = N as u64;
    // Degree 6, k = 3: x^2 | x^3 (2 levels), the truncation of q_1 (n), one fixed-point product.
    let out = cost!(|s, x| s.poly_fixed_split(&x, &[1.0; 7], F, 0, 3).await.unwrap());
    assert_eq!(out, vec![(7, 24 * n, 3), (7, 32 * n, 4), (7, 24 * n, 3)]);
    // k must satisfy k ≤ d ≤ 2k.
    let out = run3!(Some(6); [] |s| {
        let x = s.share_input(0, Some(&[1u64][..]), 1).await.unwrap();
        matches!(
            s.poly_fixed_split(&x, &[1.0; 8], F, 0, 3).await,
            Err(MpcError::PolyDegree { .. })
        )
    });
    assert!(out.iter().all(|o| *o));
}

#[test]
fn cost_powers_fixed() {
    let n = N as u64;
    // x^2 | x^3, x^4 | x^8 (from x^4·x^4) — 3 levels, 4 products, no final truncation.
    let out = cost!(|s, x| s.powers_fixed(&x, &[3, 8], F).await.unwrap());
    assert_eq!(out, vec![(6, 32 * n, 3); 3]);
}

#[test]
fn cost_sigmoid() {
    let n = N as u64;
    let out = cost!(|s, x| s.sigmoid(&x, F).await.unwrap());
    // Two MSBs, two B2A (8 B, one message each), three multiplications and three polynomial
    // products (8 B each); party 1 also sends the truncations of u and of q_1.
    let common = 2 * msb_bytes(n) + (2 * 8 + 3 * 8 + 3 * 8) * n;
    assert_eq!(
        out,
        vec![
            (31, common, 24),
            (31, common + 16 * n, 26),
            (31, common, 24)
        ]
    );
    assert_eq!(common, 4656);
}

#[test]
fn cost_exp() {
    let n = N as u64;
    let out = cost!(|s, x| s.exp(&x, F).await.unwrap());
    // Five polynomial products and four squarings (8 B each); party 1 also sends the truncations
    // of s and of the polynomial.
    assert_eq!(out, vec![(16, 72 * n, 7), (16, 88 * n, 9), (16, 72 * n, 7)]);
}

#[test]
fn cost_sigmoid_precise() {
    let n = N as u64;
    let out = cost!(|s, x| s.sigmoid_precise(&x, F).await.unwrap());
    // msb(n) + msb(4n), B2A of n and 4n bits, mul S·x (n), V (4n), three polynomial products
    // and the final product (4n each); party 1 also truncates u and q_1 (4n each).
    let common = msb_bytes(n) + msb_bytes(4 * n) + 8 * (1 + 1 + 4 + 4 + 3 * 4 + 4) * n;
    assert_eq!(
        out,
        vec![
            (31, common, 24),
            (31, common + 64 * n, 26),
            (31, common, 24)
        ]
    );
}
