//! The exponential `e^x` on fixed-point shares: `e^x = p(x/16)^16` with a degree-6 polynomial
//! and four squarings, multiplications only (no comparison). See the module docs of
//! [`crate::rep3`] for the costs.

use super::session::Rep3Session;
use super::share::Rep3Share;
use crate::MpcError;

/// Number of squarings `k`: `e^x = (e^{x/2^k})^{2^k}`.
const EXP_SQUARINGS: u32 = 4;

/// Smallest `x` of the domain of [`Rep3Session::exp`] (`s = x/16 + 1/2 ≥ −2`): the polynomial
/// is fitted on `s ∈ [−1, 1]` and stays in `(0.08, 0.23]` on `[−2, −1]`, where `e^x < 4·10^−11`.
pub const EXP_MIN: f64 = -40.0;

/// Largest `x` of the domain of [`Rep3Session::exp`]: `x/16 + 1/2 ≤ 1`, the right end of the
/// polynomial's interval (`e^8 ≈ 2981`).
pub const EXP_MAX: f64 = 8.0;

/// Fewest fractional bits [`Rep3Session::exp`] accepts (the error bound is stated for 16 and
/// doubles with every bit less).
pub const EXP_MIN_FRAC_BITS: u32 = 16;

/// Most fractional bits [`Rep3Session::exp`] accepts (the truncation failure probability grows
/// as `2^{2f}`, see [`Rep3Session::exp`]).
pub const EXP_MAX_FRAC_BITS: u32 = 20;

/// Extra fractional bits of the polynomial's coefficients (see `poly_fixed_extra`): their rounding
/// error, amplified 16-fold by the squarings, drops from `3.5·2^−f` to `0.22·2^−f`.
const EXP_COEFF_EXTRA_BITS: u32 = 4;

/// `p(s) ≈ e^{s − 1/2}` on `s ∈ [−1, 1]` (so `p(x/16 + 1/2) ≈ e^{x/16}` for `x ∈ [−24, 8]`), in
/// the monomial basis. Derived offline with numpy: Lawson's iteratively reweighted least squares
/// (4000 iterations, converging to the minimax fit) of the relative error on 3001 Chebyshev points
/// of `[−1, 1]`, degree 6; the maximum relative error on a 200001-point grid is `3.0·10^−6`
/// (checked again by the plaintext test `exp_polynomial_error_on_dense_grid`).
pub(crate) const EXP_COEFFS: [f64; 7] = [
    0.6065320636569309,
    0.6065402689021085,
    0.30323938692298413,
    0.10099670664019961,
    0.025335662327031154,
    0.005255756554142609,
    0.0008164523979531631,
];

impl Rep3Session {
    /// The exponential `e^x` element-wise, on fixed-point shares with `frac_bits` fractional bits
    /// ([`EXP_MIN_FRAC_BITS`] to [`EXP_MAX_FRAC_BITS`], otherwise
    /// [`MpcError::UnsupportedFracBits`]).
    ///
    /// **Method.** `e^x = p(s)^16` with `s = x/16 + 1/2` and `p(s) ≈ e^{s − 1/2}` a degree-6
    /// relative-minimax polynomial on `[−1, 1]`:
    /// 1. `s = (x + 8) / 16` ([`Self::trunc`] by 4 bits; `|ŝ − s| < 2^−f`);
    /// 2. `y = p(s)` (`poly_fixed` with the coefficients at `f + 4` bits: 5 products in 3
    ///    levels, 1 truncation);
    /// 3. four squarings `y ← y²` ([`Self::mul_fixed`]).
    ///
    /// **Domain.** `x ∈ [EXP_MIN, EXP_MAX] = [−40, 8]`. On `[−24, 8]` (`s ∈ [−1, 1]`) the
    /// polynomial is the fit; on `[−40, −24)` (`s ∈ [−2, −1)`) it stays in `(0.08, 0.23]`, so the
    /// result is within a unit or two of `e^x < 4·10^−11`. Outside the domain the result is
    /// unspecified: the polynomial leaves that range and the squarings blow it up (clamp first
    /// where that can happen, e.g. the `x − max` of a softmax). Truncation failures (garbage)
    /// have probability per element about `e^{max(x, 0)}·2^{2f − 64}` (the last squaring) plus
    /// `2^{2f − 58}` (the others, `|s| ≤ 2`): at `f = 16`, `2^−20.5` at `x = 8`, `2^−25` at
    /// `x = 4` and below `2^−26` for `x ≤ 0`; each extra fractional bit multiplies them by 4.
    ///
    /// **Error** (`u = 2^−f`). `ŝ` is within `u` of `s`; `poly_fixed` adds `η ≤ 1.83·u` for
    /// `|s| ≤ 1` (powers `0.61·u`, coefficients at `f + 4` bits `0.22·u`, final truncation `u`);
    /// the fit is within `δ = 3.02·10^−6` relative. So `y_0 = e^{x/16}·(1 + ε_0)` with
    /// `|ε_0| ≤ δ + u + η·e^{−x/16}`, which the squarings multiply by 16, and each squaring adds
    /// less than `u`, weighted `2^{4−j}·y_4/y_j`:
    /// `|ŷ − e^x| ≤ (16·δ + 61·u)·e^x + 45·u` on the whole domain (first-order terms), i.e. at
    /// `f = 16` a relative error below `9.8·10^−4` plus an absolute `6.9·10^−4` that only
    /// matters for `x < 0` (below `x ≈ −11`, `e^x < 2^−16` and the output is a few units `u`).
    /// Measured at `f = 16` on a sweep of the domain: `4.1·10^−4` relative for `x ≥ 0`, and
    /// within `10^−3·e^x + u` everywhere.
    ///
    /// **Cost.** 16 rounds (`1 + 7 + 4·2`); `72` bytes per element and party (9 products), plus
    /// `16` at party 1 (the truncations of `s` and of the polynomial).
    pub async fn exp(&mut self, x: &Rep3Share, frac_bits: u32) -> Result<Rep3Share, MpcError> {
        if !(EXP_MIN_FRAC_BITS..=EXP_MAX_FRAC_BITS).contains(&frac_bits) {
            return Err(MpcError::UnsupportedFracBits {
                op: "rep3 exp",
                min: EXP_MIN_FRAC_BITS,
                max: EXP_MAX_FRAC_BITS,
                got: frac_bits,
            });
        }
        // s = (x + 2^k / 2) / 2^k.
        let offset = 1u64 << (frac_bits + EXP_SQUARINGS - 1);
        let s = self
            .trunc(&self.add_public_scalar(x, offset), EXP_SQUARINGS)
            .await?;
        let mut y = self
            .poly_fixed_extra(&s, &EXP_COEFFS, frac_bits, EXP_COEFF_EXTRA_BITS)
            .await?;
        for _ in 0..EXP_SQUARINGS {
            y = self.mul_fixed(&y, &y, frac_bits).await?;
        }
        Ok(y)
    }
}
