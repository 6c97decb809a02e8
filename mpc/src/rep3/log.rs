//! Natural logarithm of fixed-point shares: the normalisation of [`super::normalize`] gives the
//! mantissa `m ∈ [0.5, 1)` and, as a local table of the leading-one position, `e·ln 2`; a
//! polynomial ([`Rep3Session::poly_fixed`]) gives `ln m`. See the module docs of [`crate::rep3`].

use super::boolean::xor_unchecked;
use super::normalize::{POSITIVE, WordMap};
use super::recip::check_nonlinear_frac_bits;
use super::session::Rep3Session;
use super::share::Rep3Share;
use crate::MpcError;

/// `ln(0.75 + v/4)` on `v ∈ [−1, 1]` (so `m = 0.75 + v/4 ∈ [0.5, 1]`), degree 7, lowest
/// coefficient first: a near-minimax fit at Chebyshev nodes (`mpmath.chebyfit`, 40 digits), max
/// error `2.56e−7` on a dense grid (see the tests). Coefficients below 1 in magnitude, so
/// [`Rep3Session::poly_fixed`]'s error stays small.
const LN_DEGREE_7: [f64; 8] = [
    -0.287_681_893_354_133_36,
    0.333_333_280_044_371_2,
    -0.055_561_270_637_483_8,
    0.012_347_379_383_213_803,
    -0.003_058_276_005_231_878_7,
    0.000_814_674_602_374_958_4,
    -0.000_271_953_490_695_068,
    7.819_757_513_932_547e-5,
];

/// The polynomial for `ln(0.75 + v/4)` and its maximum approximation error (`≤ 0.27·2^{−f}` for
/// every supported `f`).
pub(crate) fn ln_poly() -> (&'static [f64], f64) {
    (&LN_DEGREE_7, 2.56e-7)
}

/// [`Rep3Session::log`]'s error bound in units of `u = 2^{−f}`: the approximation error, the
/// polynomial evaluation of [`Rep3Session::poly_fixed`] for `|v| ≤ 1`
/// (`1 + Σ_{i≥1} (|c_i|·(i − 1) + 1/2) + 1/2`), `2` for the mantissa's truncated bits (`ln` has
/// slope at most 2 on `[0.5, 1]`) and `1/2` for the rounding of `e·ln 2`.
#[cfg(test)]
pub(crate) fn log_bound_ulps(frac_bits: u32) -> f64 {
    let (coeffs, approx) = ln_poly();
    let eval: f64 = coeffs
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, c)| c.abs() * (i as f64 - 1.0) + 0.5)
        .sum();
    approx * f64::from(frac_bits).exp2() + 1.0 + eval + 0.5 + 2.0 + 0.5
}

impl Rep3Session {
    /// The natural logarithm `ln x` of positive fixed-point `x` at `frac_bits = f` fractional
    /// bits.
    ///
    /// **Protocol.** `x = m·2^e` with `m ∈ [0.5, 1)` and `e = p + 1 − f` (`p` the leading one of
    /// the encoding): [`Self::a2b`] (8 rounds), the leading one (6 rounds), the mantissa aligned
    /// in one round, and `round(e·ln 2·2^f)` as a local table of the one-hot word (exact to half
    /// a unit, no product with `ln 2`); one [`Self::b2a`] of both words (9 rounds); then
    /// `ln x = e·ln 2 + ln m` with `ln m = P(v)`, `v = 4m − 3 ∈ [−1, 1)` (local), `P` a degree-7
    /// near-minimax polynomial evaluated by [`Self::poly_fixed`] (7 rounds). **31 rounds**;
    /// bytes per party at
    /// `f = 16`: `104n + 8·Σ_s ⌈(64−s)n/64⌉ + 2n + 224n + 48n` (`≈ 418n`; party 1 `208n` for the
    /// B2A and `+ 8n` for the polynomial's truncation). (CrypTen evaluates `ln` by Householder
    /// iterations around an `exp` guess, accurate to about 2% on `[10^{−4}, 250]`; here the bound
    /// below holds for every positive representable `x`.)
    ///
    /// **Error.** `|l − ln x| ≤ 7.9·2^{−f}` for every
    /// `x` with `2^{−f} ≤ x < 2^{63−f}` (absolute: `ln x` is near 0 around `x = 1`). The terms:
    /// the polynomial's approximation error (`2.6e−7`, at most `0.27u`), its fixed-point
    /// evaluation (`5.1u` by [`Self::poly_fixed`]'s bound), `2u` for the
    /// mantissa's truncated bits and `u/2` for `e·ln 2`. The polynomial's truncations fail with
    /// probability below `2^{2f+1−64}` each (7 of them).
    ///
    /// **Bad inputs.** For `x ≤ 0` (no leading one among bits `0..=62`) the mantissa is set to
    /// `0.75` and the table adds `−(f + 1)·ln 2`: the result is
    /// `ln 0.75 − (f + 1)·ln 2 = ln(0.375·2^{−f})`, below `ln x` of every positive input. Fails with
    /// [`MpcError::UnsupportedFracBits`] outside `8 ≤ f ≤ 20`.
    pub async fn log(&mut self, x: &Rep3Share, frac_bits: u32) -> Result<Rep3Share, MpcError> {
        let f = frac_bits;
        check_nonlinear_frac_bits("rep3 log", f)?;
        let xb = self.a2b(x).await?;
        let none = self.none_above(&xb).await?;
        let h = self.one_hot(&none);
        let m = self.align(&xb, &h, &[(POSITIVE, f - 1)], f).await?;
        // x ≤ 0: no leading one in 0..=62, i.e. x = 0 (bit 0 of `none`) or bit 63 set; the flag
        // is linear in the shares, and so is XORing 0.75·2^f into the (then zero) mantissa.
        let flag = xor_unchecked(&none, &self.bit(&h, 63));
        let three_quarters = 3u64 << (f - 2);
        let m = xor_unchecked(&m, &flag.map(|z| (z & 1).wrapping_neg() & three_quarters));
        // e·ln 2 for e = p + 1 − f, offset by −c0 so that x ≤ 0 (table entry 0) gives c0.
        let ln2 = std::f64::consts::LN_2 * f64::from(f).exp2();
        let c0 = (-(f64::from(f) + 1.0) * ln2).round() as i64;
        let table = WordMap::from_images(|p| {
            if p < 63 {
                let e = f64::from(p) + 1.0 - f64::from(f);
                ((e * ln2).round() as i64).wrapping_sub(c0) as u64
            } else {
                0
            }
        });
        let t = table.apply(&h);
        let conv = self.b2a_batch(&[&m, &t]).await?;
        let [m, t] = &conv[..] else {
            return Err(MpcError::Reconstruct("b2a batch lost a part (internal)"));
        };
        // v = 4m − 3 (at f fractional bits).
        let v = self.add_public_scalar(&self.mul_public_scalar(m, 4), (3u64 << f).wrapping_neg());
        let (coeffs, _) = ln_poly();
        let ln_m = self.poly_fixed(&v, coeffs, f).await?;
        let sum = self.add(&ln_m, t)?;
        Ok(self.add_public_scalar(&sum, c0 as u64))
    }
}
