//! Whole-word B2A, normalisation, reciprocal, division, inverse square root and square root: all
//! three parties in-process over `run_in_memory`, every result compared with a plaintext model
//! (exact for B2A and the normalisation, the documented error bound against `f64` for the
//! fixed-point functions, evaluated at the encoded inputs). Sessions use fixed seeds, so a rare
//! truncation failure cannot make a test flaky.

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::log::{ln_poly, log_bound_ulps};
use super::normalize::{POSITIVE, WordMap};
use super::recip::{
    RECIP_GUESS_ERR, RECIP_NEWTON_BOUND_ULPS, RSQRT_GUESS_ERR, RSQRT_NEWTON_BOUND_ULPS,
    recip_iterations, rsqrt_iterations,
};
use super::test_util::{col, open, open_bits, run3, word};
use super::{NONLINEAR_MAX_FRAC_BITS, NONLINEAR_MIN_FRAC_BITS, Rep3Bits};
use crate::MpcError;

/// Fractional bits the accuracy tests run at (every supported value would be slow; these cover
/// both ends, the default, and both iteration counts of each Newton loop).
const FRACS: [u32; 4] = [8, 12, 16, 20];

/// `2^{−f}`.
fn ulp(f: u32) -> f64 {
    (-f64::from(f)).exp2()
}

/// The real value of an encoded fixed-point word.
fn real(v: u64, f: u32) -> f64 {
    (v as i64) as f64 * ulp(f)
}

/// Encoded positive inputs `X ∈ [1, 2^max_bits)`: tiny values, every power of two with its
/// neighbours, the top of the range, then `n` random values with a log-uniform magnitude.
fn positive_inputs(seed: u64, n: usize, max_bits: u32) -> Vec<i64> {
    debug_assert!((1..=63).contains(&max_bits));
    let top = i64::MAX >> (63 - max_bits); // 2^max_bits − 1
    let mut v: Vec<i64> = vec![1, 2, 3, 5, 7];
    for k in 1..max_bits {
        v.extend([(1i64 << k) - 1, 1 << k, (1 << k) + 1]);
    }
    v.push(top);
    v.retain(|x| (1..=top).contains(x));
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let edges = v.len();
    while v.len() < edges + n {
        let bits = (rng.next_u64() % u64::from(max_bits)) as u32;
        let x = (1i64 << bits) | (rng.next_u64() as i64 & ((1i64 << bits) - 1));
        v.push(x);
    }
    v
}

/// `positive_inputs` with every other value negated.
fn signed_inputs(seed: u64, n: usize, max_bits: u32) -> Vec<i64> {
    positive_inputs(seed, n, max_bits)
        .into_iter()
        .enumerate()
        .map(|(j, x)| if j % 2 == 1 { -x } else { x })
        .collect()
}

fn words(v: &[i64]) -> Vec<u64> {
    v.iter().map(|x| *x as u64).collect()
}

/// Random inputs on top of the edge values (about 190 for the full range). At `f = 20` each
/// element's truncations fail with probability `≈ 2^{−18}`, so the fixed-seed runs stay clear of
/// that event by a wide margin.
const RANDOM: usize = 200;

/// Tracks the largest `error / bound` of a batch; every error must be within its bound.
#[derive(Default)]
struct Worst(f64);

impl Worst {
    fn check(&mut self, err: f64, bound: f64, what: impl FnOnce() -> String) {
        assert!(err <= bound, "{}: error {err:e} > bound {bound:e}", what());
        self.0 = self.0.max(err / bound);
    }

    /// The bound is not vacuous: some input comes within a factor 4 of it.
    fn assert_tight(&self, what: &str) {
        self.assert_within(4.0, what);
    }

    /// Some input comes within a factor `factor` of the bound.
    fn assert_within(&self, factor: f64, what: &str) {
        assert!(
            self.0 > 1.0 / factor,
            "{what}: worst error / bound = {}",
            self.0
        );
    }
}

// ---- whole-word B2A ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn b2a_is_exact(xs in proptest::collection::vec(word(), 0..40), owner in 0usize..3) {
        let n = xs.len();
        let out = run3!(None; [xs] |s| {
            let xb = s.share_bits_input(owner, (s.me() == owner).then_some(&xs[..]), n).await.unwrap();
            s.b2a(&xb).await.unwrap()
        });
        prop_assert_eq!(open(&out), xs, "owner={}", owner);
    }
}

#[test]
fn b2a_round_trips_through_a2b_on_edge_words() {
    let mut xs: Vec<u64> = vec![
        0,
        1,
        u64::MAX,
        1 << 63,
        (1 << 63) - 1,
        0x5555_5555_5555_5555,
    ];
    let mut rng = ChaCha20Rng::seed_from_u64(40);
    xs.extend((0..200).map(|_| rng.next_u64()));
    let n = xs.len();
    let out = run3!(Some(41); [xs] |s| {
        let x = s.share_input(1, (s.me() == 1).then_some(&xs[..]), n).await.unwrap();
        let xb = s.a2b(&x).await.unwrap();
        s.b2a(&xb).await.unwrap()
    });
    assert_eq!(open(&out), xs);
}

// ---- local maps and alignment on plain words ----

/// A share whose first component holds `words` and second zero (enough for local maps).
fn plain(words: &[u64]) -> Rep3Bits {
    Rep3Bits::from_parts(words.to_vec(), vec![0; words.len()]).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn word_map_is_the_linear_extension_of_its_table(v in word(), seed in any::<u64>()) {
        let table: Vec<u64> = {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            (0..64).map(|_| rng.next_u64()).collect()
        };
        let map = WordMap::from_images(|p| table[p as usize]);
        let expected = (0..64).filter(|p| v >> p & 1 == 1).fold(0, |acc, p| acc ^ table[p]);
        prop_assert_eq!(map.apply(&plain(&[v])).a()[0], expected);
    }
}

#[test]
fn align_moves_the_leading_one() {
    // Every position p, with random low bits, to targets 0..=63 by a one-round protocol.
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let xs: Vec<u64> = (0..64u32)
        .map(|p| (1u64 << p) | (rng.next_u64() & ((1u64 << p) - 1)))
        .collect();
    let hs: Vec<u64> = (0..64).map(|p| 1u64 << p).collect();
    let n = xs.len();
    for (c, width) in [(15u32, 16u32), (0, 1), (62, 64), (40, 41)] {
        let out = run3!(Some(43); [xs, hs] |s| {
            let x = s.share_bits_input(0, (s.me() == 0).then_some(&xs[..]), n).await.unwrap();
            let h = s.share_bits_input(2, (s.me() == 2).then_some(&hs[..]), n).await.unwrap();
            // Positions 0..=62 go to c, position 63 is in no class.
            s.align(&x, &h, &[(POSITIVE, c)], width).await.unwrap()
        });
        let got = open_bits(&out);
        let mask = super::packed::low_mask(width);
        for p in 0..64usize {
            let want = if p == 63 {
                0
            } else if c as usize >= p {
                xs[p] << (c as usize - p)
            } else {
                xs[p] >> (p - c as usize)
            } & mask;
            assert_eq!(
                got[p], want,
                "align p={p} c={c} width={width} x={:#x}",
                xs[p]
            );
        }
    }
}

// ---- normalisation ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn leading_one_and_abs_are_exact(xs in proptest::collection::vec(word(), 0..40)) {
        let n = xs.len();
        let out = run3!(None; [xs] |s| {
            let x = s.share_bits_input(1, (s.me() == 1).then_some(&xs[..]), n).await.unwrap();
            let (abs, sign) = s.abs_bits(&x).await.unwrap();
            [s.leading_one(&x).await.unwrap(), abs, sign]
        });
        let (h, abs, sign) = (open_bits(&col(&out, 0)), open_bits(&col(&out, 1)), open_bits(&col(&out, 2)));
        for j in 0..n {
            let x = xs[j];
            let want_h = if x == 0 { 0 } else { 1u64 << (63 - x.leading_zeros()) };
            prop_assert_eq!(h[j], want_h, "leading one x={:#x}", x);
            prop_assert_eq!(abs[j], (x as i64).unsigned_abs(), "abs x={:#x}", x);
            prop_assert_eq!(sign[j], x >> 63, "sign x={:#x}", x);
        }
    }

    #[test]
    fn normalize_matches_the_plaintext_split(xs in proptest::collection::vec(word(), 0..30), f in 1u32..=40) {
        let n = xs.len();
        let out = run3!(None; [xs] |s| {
            let x = s.share_input(0, (s.me() == 0).then_some(&xs[..]), n).await.unwrap();
            let r = s.normalize(&x, f).await.unwrap();
            [r.mantissa, r.exponent]
        });
        let (m, e) = (open(&col(&out, 0)), open(&col(&out, 1)));
        for j in 0..n {
            let x = xs[j] as i64;
            let want = if x <= 0 {
                (0, 0)
            } else {
                let p = 63 - i64::from(x.leading_zeros());
                let shift = i64::from(f) - 1 - p;
                let mm = if shift >= 0 { x << shift } else { x >> -shift };
                (mm as u64, (p + 1 - i64::from(f)) as u64)
            };
            prop_assert_eq!((m[j], e[j]), want, "normalize x={} f={}", x, f);
        }
    }
}

#[test]
fn normalize_is_exact() {
    for f in [1u32, 8, 16, 24, 40] {
        let mut xs = positive_inputs(44 + u64::from(f), 200, 63);
        xs.extend([0, -1, -5, i64::MIN, i64::MAX]);
        let n = xs.len();
        let ws = words(&xs);
        let out = run3!(Some(45); [ws] |s| {
            let x = s.share_input(0, (s.me() == 0).then_some(&ws[..]), n).await.unwrap();
            let r = s.normalize(&x, f).await.unwrap();
            [r.mantissa, r.exponent]
        });
        let (m, e) = (open(&col(&out, 0)), open(&col(&out, 1)));
        for j in 0..n {
            let x = xs[j];
            let (want_m, want_e) = if x <= 0 {
                (0, 0)
            } else {
                let p = 63 - x.leading_zeros() as i64;
                let shift = i64::from(f) - 1 - p;
                let mm = if shift >= 0 { x << shift } else { x >> -shift };
                (mm as u64, (p + 1 - i64::from(f)) as u64)
            };
            assert_eq!((m[j], e[j]), (want_m, want_e), "normalize x={x} f={f}");
            if x > 0 {
                let mr = real(m[j], f);
                assert!((0.5..1.0).contains(&mr), "mantissa {mr} x={x} f={f}");
            }
        }
    }
}

// ---- reciprocal and division ----

#[test]
fn newton_bounds_behind_the_documented_constants() {
    for f in NONLINEAR_MIN_FRAC_BITS..=NONLINEAR_MAX_FRAC_BITS {
        let u = ulp(f);
        let (t, eps) = recip_iterations(f);
        assert!(t >= 2 && eps <= RECIP_NEWTON_BOUND_ULPS * u, "f={f}");
        assert_eq!(t, if f <= 9 { 2 } else { 3 }, "recip iterations f={f}");
        // reciprocal: ε_t + η(1 + ε_t) ≤ 4.2u, with the mantissa's relative rounding error
        // |η| < u/m ≤ u/(0.5 − u).
        let eta = u / (0.5 - u);
        assert!(eps + eta * (1.0 + eps) <= 4.2 * u, "reciprocal bound f={f}");
        // div: relative 2u + |E|(1 + 2u), |E| ≤ ε_{t−1}² + (1 + ε_{t−1})u; absolute (2 + ε + u)u.
        let mut e = RECIP_GUESS_ERR + u / 2.0;
        for _ in 0..t - 1 {
            e = e * e + (2.0 + e) * u;
        }
        let big_e = e * e + (1.0 + e) * u;
        assert!(
            2.0 * u + big_e * (1.0 + 2.0 * u) <= 3.1 * u,
            "div relative f={f}"
        );
        assert!(2.0 + e + u <= 2.1, "div absolute f={f}");
        // rsqrt / sqrt.
        let (tr, rho) = rsqrt_iterations(f);
        assert!(rho <= RSQRT_NEWTON_BOUND_ULPS * u, "f={f}");
        assert_eq!(tr, if f <= 18 { 3 } else { 4 }, "rsqrt iterations f={f}");
        assert!(rho + 2.0 * u * (1.0 + rho) <= 4.7 * u, "rsqrt bound f={f}");
        assert!(rho + 4.0 * u <= 6.7 * u, "sqrt bound f={f}");
    }
    // The initial guesses' errors, on a dense grid (the documented maxima are upper bounds).
    let recip = (0..=100_000)
        .map(|i| 0.5 + 0.5 * f64::from(i) / 1e5)
        .map(|m| (1.0 - m * (2.9142 - 2.0 * m)).abs())
        .fold(0.0, f64::max);
    assert!(
        recip <= RECIP_GUESS_ERR && recip > RECIP_GUESS_ERR - 1e-4,
        "{recip}"
    );
    let rsqrt = (0..=100_000)
        .map(|i| 0.25 + 0.75 * f64::from(i) / 1e5)
        .map(|m| (1.0 - m * (2.0184 - m).powi(2)).abs())
        .fold(0.0, f64::max);
    assert!(
        rsqrt <= RSQRT_GUESS_ERR && rsqrt > RSQRT_GUESS_ERR - 1e-4,
        "{rsqrt}"
    );
}

#[test]
fn reciprocal_is_within_its_bound() {
    for f in FRACS {
        let u = ulp(f);
        // Every representable magnitude, both signs: 2^{−f} ≤ |x| < 2^{63−f}.
        let xs = signed_inputs(50 + u64::from(f), RANDOM, 63);
        let n = xs.len();
        let ws = words(&xs);
        let out = run3!(Some(51); [ws] |s| {
            let x = s.share_input(0, (s.me() == 0).then_some(&ws[..]), n).await.unwrap();
            s.reciprocal(&x, f).await.unwrap()
        });
        let got = open(&out);
        let (mut worst, mut small) = (Worst::default(), Worst::default());
        for j in 0..n {
            let x = xs[j] as f64 * u;
            let (r, want) = (real(got[j], f), 1.0 / x);
            worst.check((r - want).abs(), 4.2 * u * want.abs() + u, || {
                format!("reciprocal x={x:e} f={f}: got {r:e}, want {want:e}")
            });
            // Below 1 the mantissa and the rescaling are exact: only the Newton error remains.
            if x.abs() < 1.0 {
                small.check((r - want).abs(), 2.1 * u * want.abs(), || {
                    format!("reciprocal (|x| < 1) x={x:e} f={f}: got {r:e}, want {want:e}")
                });
            }
        }
        small.assert_tight(&format!("reciprocal |x| < 1, f={f}"));
        worst.assert_tight(&format!("reciprocal f={f}"));
    }
}

#[test]
fn div_is_within_its_bound() {
    for f in FRACS {
        let u = ulp(f);
        let ys = signed_inputs(52 + u64::from(f), RANDOM, 63);
        // Numerators of both signs, including 0, with |x| < 2^8 (|x| < 1 for f > 16): the
        // truncations fail with probability ∝ |x|·2^{2f+2−64}, as for `mul_fixed(x, 2)`.
        let x_bits = if f <= 16 { f + 8 } else { f };
        let base = signed_inputs(53 + u64::from(f), 50, x_bits);
        let mut xs: Vec<i64> = (0..ys.len()).map(|j| base[(7 * j) % base.len()]).collect();
        xs[0] = 0;
        let n = ys.len();
        let (wx, wy) = (words(&xs), words(&ys));
        let out = run3!(Some(54); [wx, wy] |s| {
            let x = s.share_input(2, (s.me() == 2).then_some(&wx[..]), n).await.unwrap();
            let y = s.share_input(0, (s.me() == 0).then_some(&wy[..]), n).await.unwrap();
            s.div(&x, &y, f).await.unwrap()
        });
        let got = open(&out);
        let mut worst = Worst::default();
        for j in 0..n {
            let (x, y) = (xs[j] as f64 * u, ys[j] as f64 * u);
            let (q, want) = (real(got[j], f), x / y);
            let bound = u * (3.1 * want.abs() + 2.1 / y.abs() + 1.0);
            worst.check((q - want).abs(), bound, || {
                format!("div x={x:e} y={y:e} f={f}: got {q:e}, want {want:e}")
            });
        }
        worst.assert_tight(&format!("div f={f}"));
    }
}

// ---- inverse square root and square root ----

#[test]
fn rsqrt_and_sqrt_are_within_their_bounds() {
    for f in FRACS {
        let u = ulp(f);
        let mut xs = positive_inputs(55 + u64::from(f), RANDOM, 63);
        let n_pos = xs.len();
        xs.extend([0, -1, -(1 << 40), i64::MIN]);
        let n = xs.len();
        let ws = words(&xs);
        let out = run3!(Some(56); [ws] |s| {
            let x = s.share_input(1, (s.me() == 1).then_some(&ws[..]), n).await.unwrap();
            [s.rsqrt(&x, f).await.unwrap(), s.sqrt(&x, f).await.unwrap()]
        });
        let (rs, sq) = (open(&col(&out, 0)), open(&col(&out, 1)));
        let (mut worst_r, mut worst_s) = (Worst::default(), Worst::default());
        for j in 0..n_pos {
            let x = xs[j] as f64 * u;
            let (r, want) = (real(rs[j], f), 1.0 / x.sqrt());
            worst_r.check((r - want).abs(), 4.7 * u * want + u, || {
                format!("rsqrt x={x:e} f={f}: got {r:e}, want {want:e}")
            });
            let (s, want) = (real(sq[j], f), x.sqrt());
            worst_s.check((s - want).abs(), 6.7 * u * want + u, || {
                format!("sqrt x={x:e} f={f}: got {s:e}, want {want:e}")
            });
        }
        worst_r.assert_tight(&format!("rsqrt f={f}"));
        worst_s.assert_tight(&format!("sqrt f={f}"));
        // Zero and negative inputs: exactly 0 (√0 = 0 is the one that matters).
        for j in n_pos..n {
            assert_eq!((rs[j], sq[j]), (0, 0), "x={} f={f}", xs[j]);
        }
    }
}

// ---- logarithm ----

#[test]
fn log_polynomials_and_bounds() {
    for f in NONLINEAR_MIN_FRAC_BITS..=NONLINEAR_MAX_FRAC_BITS {
        let (coeffs, approx) = ln_poly();
        // The f64 polynomial against ln(0.75 + v/4) on a dense grid of [−1, 1].
        let worst = (0..=200_000)
            .map(|i| -1.0 + f64::from(i) / 1e5)
            .map(|v: f64| {
                let p = coeffs.iter().rev().fold(0.0, |acc, c| acc * v + c);
                (p - (0.75 + v / 4.0).ln()).abs()
            })
            .fold(0.0, f64::max);
        assert!(
            worst <= approx,
            "ln polynomial f={f}: {worst:e} > {approx:e}"
        );
        assert!(
            log_bound_ulps(f) <= 7.9,
            "log bound f={f}: {}",
            log_bound_ulps(f)
        );
    }
}

#[test]
fn log_is_within_its_bound() {
    for f in FRACS {
        let u = ulp(f);
        let mut xs = positive_inputs(59 + u64::from(f), RANDOM, 63);
        let n_pos = xs.len();
        xs.extend([0, -1, -(1 << 40), i64::MIN]);
        let n = xs.len();
        let ws = words(&xs);
        let out = run3!(Some(61); [ws] |s| {
            let x = s.share_input(2, (s.me() == 2).then_some(&ws[..]), n).await.unwrap();
            s.log(&x, f).await.unwrap()
        });
        let got = open(&out);
        let bound = log_bound_ulps(f) * u;
        let mut worst = Worst::default();
        for j in 0..n_pos {
            let x = xs[j] as f64 * u;
            let (l, want) = (real(got[j], f), x.ln());
            worst.check((l - want).abs(), bound, || {
                format!("log x={x:e} f={f}: got {l}, want {want}")
            });
        }
        // The evaluation part of the bound assumes every coefficient's rounding error adds up.
        worst.assert_within(8.0, &format!("log f={f}"));
        // x ≤ 0: ln(0.375·2^{−f}), below the log of the smallest positive input.
        let floor = (0.375 * u).ln();
        for j in n_pos..n {
            let l = real(got[j], f);
            assert!(
                (l - floor).abs() <= 2.0 * u,
                "log x={} f={f}: got {l}, want {floor}",
                xs[j]
            );
            assert!(l < u.ln());
        }
    }
}

// ---- bad inputs and parameters ----

#[test]
fn zero_and_out_of_domain_inputs_give_zero() {
    let f = 16;
    let xs: Vec<i64> = vec![0, 0, -3 << 16, i64::MIN, -1, 1];
    let ys: Vec<i64> = vec![0, 5 << 16, 0, 0, 0, 0];
    let n = xs.len();
    let (wx, wy) = (words(&xs), words(&ys));
    let out = run3!(Some(57); [wx, wy] |s| {
        let x = s.share_input(0, (s.me() == 0).then_some(&wx[..]), n).await.unwrap();
        let y = s.share_input(1, (s.me() == 1).then_some(&wy[..]), n).await.unwrap();
        [s.reciprocal(&x, f).await.unwrap(), s.div(&y, &x, f).await.unwrap()]
    });
    let (r, d) = (open(&col(&out, 0)), open(&col(&out, 1)));
    // reciprocal(0) = 0 and reciprocal(i64::MIN) = 0; div(y, 0) = 0.
    assert_eq!((r[0], r[3]), (0, 0));
    assert_eq!((d[0], d[1]), (0, 0));
    // The smallest magnitudes are fine: 1/(±2^{−16}) = ±2^{16}, and 1/(−3·2^{−16}).
    assert!(
        (real(r[4], f) + 65536.0).abs() <= 4.2 * 65536.0 / 65536.0,
        "{}",
        real(r[4], f)
    );
    assert!(
        (real(r[5], f) - 65536.0).abs() <= 4.2 * 65536.0 / 65536.0,
        "{}",
        real(r[5], f)
    );
    assert!((real(r[2], f) + 1.0 / 3.0).abs() < 1e-4);
}

#[test]
fn unsupported_frac_bits_are_errors() {
    let out = run3!(Some(58); [] |s| {
        let x = s.share_input(0, Some(&[1u64 << 20][..]), 1).await.unwrap();
        let two = s.share_input(0, Some(&[1, 2][..]), 2).await.unwrap();
        let bad = |r: Result<super::Rep3Share, MpcError>| {
            matches!(r, Err(MpcError::UnsupportedFracBits { .. }))
        };
        [
            bad(s.reciprocal(&x, 7).await),
            bad(s.reciprocal(&x, 25).await),
            bad(s.div(&x, &x, 30).await),
            bad(s.rsqrt(&x, 0).await),
            bad(s.sqrt(&x, 41).await),
            bad(s.normalize(&x, 0).await.map(|r| r.mantissa)),
            bad(s.normalize(&x, 41).await.map(|r| r.mantissa)),
            matches!(
                s.div(&x, &two, 16).await,
                Err(MpcError::LengthMismatch { .. })
            ),
        ]
    });
    assert!(out.iter().flatten().all(|ok| *ok), "{out:?}");
}

// ---- communication ----

const N: u64 = 37;
const F: u32 = 16;

/// Bytes per party of one packed AND round of `width` bits per element.
fn packed(width: u64) -> u64 {
    8 * (N * width).div_ceil(64)
}

/// The leading one (and the conditional negation): 6 packed rounds.
fn prefix() -> u64 {
    [63, 62, 60, 56, 48, 32].into_iter().map(packed).sum()
}

/// `[party 0, party 1, party 2]` bytes of a B2A of `k` words per element.
fn b2a(k: u64) -> [u64; 3] {
    [112 * k * N, 104 * k * N, 112 * k * N]
}

/// `(rounds, bytes sent)` of each party during `$op` on `x` (owner 0, positive values), `y`
/// (owner 1) and the boolean `b` (owner 2), all `N` elements.
macro_rules! cost {
    (|$s:ident, $x:ident, $y:ident, $b:ident| $op:expr) => {{
        run3!(Some(60); [] |$s| {
            let xs: Vec<u64> = (1..=N).map(|v| v << 13).collect();
            let $x = $s.share_input(0, Some(&xs[..]), N as usize).await.unwrap();
            let $y = $s.share_input(1, Some(&xs[..]), N as usize).await.unwrap();
            let $b = $s.share_bits_input(2, Some(&xs[..]), N as usize).await.unwrap();
            let _ = (&$x, &$y, &$b);
            let before = $s.channel().counters().snapshot();
            let _out = $op;
            let after = $s.channel().counters().snapshot();
            (after.rounds - before.rounds, after.bytes_sent - before.bytes_sent)
        })
    }};
}

/// Every party: `rounds` rounds, and `common` bytes plus its part of `per_party`.
fn expected(rounds: u64, common: u64, per_party: [u64; 3]) -> Vec<(u64, u64)> {
    per_party.iter().map(|b| (rounds, common + b)).collect()
}

/// `a + b` element-wise.
fn plus(a: [u64; 3], b: [u64; 3]) -> [u64; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// The final truncation of a rescaling: `8N` bytes at party 1 only.
const TRUNC: [u64; 3] = [0, 8 * N, 0];

#[test]
fn cost_b2a() {
    let out = cost!(|s, x, y, b| s.b2a(&b).await.unwrap());
    assert_eq!(out, expected(9, 0, b2a(1)));
    assert_eq!(out[0].1, 112 * 37);
}

#[test]
fn cost_normalize() {
    let out = cost!(|s, x, y, b| s.normalize(&x, F).await.unwrap());
    // A2B 8 + leading one 6 + alignment 1 + B2A of [m, e] 9.
    assert_eq!(out, expected(24, 104 * N + prefix() + packed(16), b2a(2)));
}

#[test]
fn cost_reciprocal_and_div() {
    // A2B 8, leading one of the ones' complement 6, the sign ANDs of the two scale words 1
    // (2 × 64 bits), B2A of [σU, σD] 9, the mantissa 2 (one product, one truncation), Newton 12
    // (3 iterations × 2 mul_fixed), rescaling 2 (a mul of 2N products, a truncation of N).
    let out = cost!(|s, x, y, b| s.reciprocal(&x, F).await.unwrap());
    let common = 104 * N + prefix() + 16 * N + 8 * N + 3 * 2 * 8 * N + 16 * N;
    assert_eq!(out, expected(40, common, plus(b2a(2), TRUNC)));
    assert_eq!(out[0].1, 16_896);
    // Division: A2B 8, |y| 6, leading one 6, mantissa alignment with the sign ANDs of 4 scale
    // words 1 (16 + 4 × 64 bits), B2A of [m, σU, σD_1, σD_2, σD_3] 9, Newton 12 (x·y joins the
    // last iteration: 8N), rescaling 2 (a mul of 4N products, a truncation of 3N).
    let out = cost!(|s, x, y, b| s.div(&y, &x, F).await.unwrap());
    let div = 104 * N + 2 * prefix() + packed(16) + 4 * 8 * N + 3 * 2 * 8 * N + 8 * N + 32 * N;
    assert_eq!(out, expected(44, div, plus(b2a(5), [0, 3 * 8 * N, 0])));
    assert_eq!(out[0].1, 32_096);
}

#[test]
fn cost_rsqrt_and_sqrt() {
    // A2B, leading one, alignment, B2A of [m, U, D], Newton (3 iterations of a mul_fixed of 2N
    // products and a fused multiply-truncate of N), then the rescaling.
    let common = 104 * N + prefix() + packed(16) + 3 * (16 * N + 8 * N) + 16 * N;
    let out = cost!(|s, x, y, b| s.rsqrt(&x, F).await.unwrap());
    assert_eq!(out, expected(38, common, plus(b2a(3), TRUNC)));
    // sqrt: one more mul_fixed (m·y).
    let out = cost!(|s, x, y, b| s.sqrt(&x, F).await.unwrap());
    assert_eq!(out, expected(40, common + 8 * N, plus(b2a(3), TRUNC)));
}

#[test]
fn cost_log() {
    // A2B 8, leading one 6, alignment 1, B2A of [m, e·ln 2] 9, degree-7 polynomial 7 (6
    // products in 3 levels, one truncation).
    let out = cost!(|s, x, y, b| s.log(&x, F).await.unwrap());
    let common = 104 * N + prefix() + packed(16) + 6 * 8 * N;
    assert_eq!(out, expected(31, common, plus(b2a(2), TRUNC)));
}
