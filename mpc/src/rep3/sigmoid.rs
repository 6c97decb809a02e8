//! The logistic function `σ(x) = 1 / (1 + e^−x)` on fixed-point shares: exact sign and range
//! tests (two MSBs), a degree-6 minimax polynomial on `[0, B]`, and the symmetry
//! `σ(−a) = 1 − σ(a)`. See the module docs of [`crate::rep3`] for the costs.

use super::session::Rep3Session;
use super::share::Rep3Share;
use crate::MpcError;
use crate::fixed::FixedPoint;

/// Saturation bound `B`: for `|x| ≥ B` the result is exactly 0 or 1, off by
/// `1 − σ(B) = 7.10·10^−4` at most.
pub const SIGMOID_BOUND: f64 = 7.25;

/// The polynomial is evaluated as `q_0(u) + u^3·q_1(u)` (`poly_fixed_split`): 3 products
/// instead of the 5 of `poly_fixed`, in the same 7 rounds.
const SIGMOID_SPLIT: usize = 3;

/// Fewest fractional bits [`Rep3Session::sigmoid`] accepts (the fixed-point part of the error
/// doubles with every bit less and would break the `10^−3` bound below 15).
pub const SIGMOID_MIN_FRAC_BITS: u32 = 16;

/// Most fractional bits [`Rep3Session::sigmoid`] accepts: every truncation fails with probability
/// up to `2^{2f + 1 − 64}` (see the module docs), `2^−23` at 20.
pub const SIGMOID_MAX_FRAC_BITS: u32 = 20;

/// `p(u) ≈ σ(B·(u + 1)/2)` on `u ∈ [−1, 1]`, i.e. `σ(a)` for `a = B·(u + 1)/2 ∈ [0, B]`, in the
/// monomial basis (`SIGMOID_COEFFS[i]` multiplies `u^i`). Derived offline with numpy: Lawson's
/// iteratively reweighted least squares (6000 iterations, converging to the minimax fit) on 3001
/// Chebyshev points of `[−1, 1]`, `B = 7.25`, degree 6; the maximum error on a 200001-point grid
/// is `6.50·10^−4` (checked again by the plaintext test `sigmoid_polynomial_error_on_dense_grid`).
/// The coefficients stay below 1 in magnitude, so fixed-point errors are not amplified.
pub(crate) const SIGMOID_COEFFS: [f64; 7] = [
    0.9739407007259574,
    0.08692837976258946,
    -0.15443417806286006,
    0.21181101782787148,
    -0.13979208127048906,
    -0.04844454955151411,
    0.06993072290647458,
];

/// The pieces `[a_k, b_k)` of `|x|` in [`Rep3Session::sigmoid_precise`] (widths powers of two, so
/// the map to `u ∈ [−1, 1)` is exact in fixed point); `σ` is 1 beyond the last.
pub const SIGMOID_PIECES: [(f64, f64); 4] = [(0.0, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 16.0)];

/// Extra fractional bits of the coefficients in [`Rep3Session::sigmoid_precise`].
const SIGMOID_PRECISE_EXTRA: u32 = 2;

/// Per piece of [`SIGMOID_PIECES`], `p_k(u) ≈ σ(a_k + (u + 1)(b_k − a_k)/2)` on `u ∈ [−1, 1]`
/// in the monomial basis: Chebyshev interpolation at the 7 Chebyshev nodes, derived offline with
/// numpy (`chebfit` then `cheb2poly`); maximum errors on a dense grid `1.5·10^−6`, `2.5·10^−7`,
/// `6.9·10^−7`, `8.1·10^−7` (checked by the test `precise_sigmoid_pieces_on_dense_grid`).
pub(crate) const SIGMOID_PIECE_COEFFS: [[f64; 7]; 4] = [
    [
        0.731058578630005,
        0.19662186927555528,
        -0.045427034015375164,
        -0.005968337799408704,
        0.00513146192744095,
        -0.00025624708134219684,
        -0.00036473601985928885,
    ],
    [
        0.9525741268224335,
        0.04517501190203693,
        -0.020445603002363925,
        0.005501724152229532,
        -0.0007816367924108581,
        -6.814936225225882e-05,
        5.8523405187324436e-05,
    ],
    [
        0.9975273768433653,
        0.004937606531855709,
        -0.004909128159833493,
        0.0032031654503476502,
        -0.0015836251832749189,
        0.0006840301444762707,
        -0.000195350523310652,
    ],
    [
        0.9999938558253976,
        2.7776515619405353e-05,
        -5.063563155032634e-05,
        4.0557373024504824e-05,
        -5.390407307538964e-05,
        9.872592799965209e-05,
        -5.67976051475533e-05,
    ],
];

impl Rep3Session {
    /// The logistic function `σ(x) = 1 / (1 + e^−x)` element-wise, on fixed-point shares with
    /// `frac_bits` fractional bits ([`SIGMOID_MIN_FRAC_BITS`] to [`SIGMOID_MAX_FRAC_BITS`],
    /// otherwise [`MpcError::UnsupportedFracBits`]).
    ///
    /// **Domain and error.** Every ring element is a valid input (every representable `x`, and
    /// even `−2^63`): the sign and range tests are exact. For `|x| ≥ B = 7.25` the result is
    /// exactly 0 or 1 (error `≤ 1 − σ(B) = 7.10·10^−4`); for `|x| < B` it is the polynomial
    /// below: error `≤ 6.50·10^−4` (fit) `+ 11·2^−f` (fixed point: the split evaluation's
    /// `6.8·2^−f` for these coefficients, and `u`'s `4.6·2^−f` — truncation plus the rounding
    /// of `2/B` — times the slope `≤ B/8`), so `≤ 8.2·10^−4` at `f = 16`. Hence
    /// `|err| ≤ 10^−3` for every `x` at every supported `f` (the tests assert it). Except with
    /// probability about `2^{2f − 61}` per element (ABY3 truncation failures of the five
    /// truncations on in-range values, `2^−29` at `f = 16`), when that element is garbage.
    ///
    /// **Protocol.** With `f = frac_bits`, `T = round(B·2^f)`:
    /// 1. `s = msb(x)` ([`Self::msb`]), `S = b2a(s)` ([`Self::b2a_bit`]);
    ///    `a = |x| = x − 2·S·x` ([`Self::mul`], exact, `a ∈ [0, 2^63]`).
    /// 2. `in = msb(a − T)` (`1` iff `|x| < B`; `a − T` cannot wrap), `IN = b2a(in)`,
    ///    `V = IN·(1 − 2S)` ([`Self::mul`]; `V ∈ {0, 1, −1}`).
    /// 3. `u = (a·round(2^f·2/B) − 2^{2f}) / 2^f` ([`Self::trunc`]), `u ∈ [−1, 1]` in range;
    ///    `P = p(u) = q_0(u) + u^3·q_1(u)` (degree 6: `u^2`, `u^3` from
    ///    [`Self::powers_fixed`], a truncation of `q_1`, then `u^3·q_1` and the untruncated
    ///    `q_0` truncated together: 3 products in 7 rounds).
    /// 4. `σ = (1 − S) + V·(P − 1)` ([`Self::mul`], integer times fixed point, exact): `P` for
    ///    `0 ≤ x < B`, `1 − P = σ(x)` for `−B < x < 0` (as `σ(−a) = 1 − σ(a)`), `1 − S`
    ///    (0 or 1) outside. Out-of-range elements make `u` and `P` garbage, multiplied by `V = 0`.
    ///
    /// **Cost.** 31 rounds (`8 + 2 + 1 + 8 + 2 + 1 + 1 + 7 + 1`); bytes per party:
    /// `2·8·241·⌈n/64⌉` (two bit-sliced MSBs, `2·30.125·n` for `n` a multiple of 64)
    /// `+ (2·8 + 3·8 + 3·8)·n` (two B2A, three multiplications, the polynomial's three
    /// products), so `124.25·n` in the limit, plus `16·n` at party 1 (the truncations of `u` and
    /// of `q_1`).
    ///
    /// The suggested alternative — one MSB over the concatenated `(x − B, x + B)` — costs the same
    /// MSB work, but `x ∓ B` wraps for `|x|` within `B` of `2^63`, and those two edge cases cannot
    /// be told apart without the sign of `x`: so the sign comes first here.
    pub async fn sigmoid(&mut self, x: &Rep3Share, frac_bits: u32) -> Result<Rep3Share, MpcError> {
        check_sigmoid_frac_bits(frac_bits)?;
        let fp = FixedPoint::new(frac_bits)?;
        let one = fp.encode(1.0)?;
        // 1. Sign and absolute value.
        let (sign, abs) = self.sign_abs(x).await?;
        // 2. Range: in = [|x| < B]; V = IN·(1 − 2S).
        let bound = fp.encode(SIGMOID_BOUND)?;
        let inside = self
            .msb(&self.add_public_scalar(&abs, bound.wrapping_neg()))
            .await?;
        let inside = self.b2a_bit(&inside).await?;
        let inside_neg = self.mul(&inside, &sign).await?;
        let v = self.sub(&inside, &self.mul_public_scalar(&inside_neg, 2))?;
        // 3. u = 2|x|/B − 1, then P = p(u).
        let scale = fp.encode(2.0 / SIGMOID_BOUND)?;
        let u = self.add_public_scalar(
            &self.mul_public_scalar(&abs, scale),
            one.wrapping_shl(frac_bits).wrapping_neg(),
        );
        let u = self.trunc(&u, frac_bits).await?;
        let p = self
            .poly_fixed_split(&u, &SIGMOID_COEFFS, frac_bits, 0, SIGMOID_SPLIT)
            .await?;
        // 4. σ = (1 − S) + V·(P − 1).
        let vp = self
            .mul(&v, &self.add_public_scalar(&p, one.wrapping_neg()))
            .await?;
        let base = self.add_public_scalar(&self.neg(&self.mul_public_scalar(&sign, one)), one);
        self.add(&base, &vp)
    }

    /// The logistic function with a systematic error below `2·10^−5` instead of
    /// [`Self::sigmoid`]'s `6.5·10^−4`, for training, where the error of every evaluation adds
    /// up in the weights (most visibly in the intercept when labels are imbalanced and `σ` is
    /// small). Same inputs, frac bits and 31 rounds; about 2.9 times the bytes.
    ///
    /// **Protocol.** As [`Self::sigmoid`], with `|x|` cut into the pieces
    /// [`SIGMOID_PIECES`] `[0, 2), [2, 4), [4, 8), [8, 16)`, a degree-6 polynomial on each, and
    /// exactly 0 or 1 beyond 16:
    /// 1. `S`, `|x|` as in [`Self::sigmoid`] (11 rounds);
    /// 2. `in_k = msb(|x| − b_k)` for the four upper ends in ONE [`Self::msb`] over `4n`
    ///    elements (8 rounds), `IN_k = b2a(in_k)` (2 rounds); the pieces are nested, so the
    ///    indicator of piece `k` is `I_k = IN_k − IN_{k−1}` (local);
    /// 3. `V_k = I_k·(1 − 2S)` (one [`Self::mul`] over `4n`) and, in parallel,
    ///    `u_k = (|x| − a_k)·2/(b_k − a_k) − 1 ∈ [−1, 1)` on piece `k` (the widths are powers of
    ///    two, so `2/(b_k − a_k)` is exact; one [`Self::trunc`] over `4n`);
    /// 4. `P_k = p_k(u_k)` for all pieces at once (`poly_fixed_split_pieces`, 7 rounds,
    ///    coefficients at `f + 2` bits);
    /// 5. `σ = (1 − S) + Σ_k V_k·(P_k − 1)` (one [`Self::mul`] over `4n`).
    ///
    /// **Error.** The interpolants are within `1.6·10^−6` of `σ` on their pieces (Chebyshev
    /// interpolation at 7 nodes, checked on a dense grid by `precise_sigmoid_pieces_on_dense_grid`),
    /// `1 − σ(16) = 1.1·10^−7` beyond, and rounding the coefficients to `2^{−(f+2)}` adds at most
    /// `7·2^{−(f+3)}` (`1.3·10^−5` at `f = 16`): that is the systematic part. The truncations
    /// add at most `8·2^{−f}` more (`1.2·10^−4` at `f = 16`), but unbiased: ABY3's truncation
    /// error has mean zero over the uniform share, so it averages out over the rows of a
    /// gradient. Truncation failures as for [`Self::sigmoid`] (`2^{2f+2−64}` for the final one).
    ///
    /// **Cost.** 31 rounds; bytes per party `2·msb` replaced by `msb(n) + msb(4n)`, and
    /// `8·(1 + 1 + 4 + 4 + 3·4 + 4)·n`: `≈ 358.6·n` (`+ 64·n` at party 1, the truncations of
    /// `u` and `q_1`).
    pub async fn sigmoid_precise(
        &mut self,
        x: &Rep3Share,
        frac_bits: u32,
    ) -> Result<Rep3Share, MpcError> {
        check_sigmoid_frac_bits(frac_bits)?;
        let fp = FixedPoint::new(frac_bits)?;
        let one = fp.encode(1.0)?;
        let n = x.len();
        let m = SIGMOID_PIECES.len();
        let (sign, abs) = self.sign_abs(x).await?;
        // 2. Nested range tests and piece indicators.
        let mut shifted = Vec::with_capacity(m);
        for &(_, b) in &SIGMOID_PIECES {
            shifted.push(self.add_public_scalar(&abs, fp.encode(b)?.wrapping_neg()));
        }
        let inside = self
            .msb(&Rep3Share::concat_all(&shifted.iter().collect::<Vec<_>>()))
            .await?;
        let inside = self.b2a_bit(&inside).await?;
        let mut ind = inside.split_equal(m);
        for k in (1..m).rev() {
            ind[k] = self.sub(&ind[k], &ind[k - 1])?;
        }
        let ind = Rep3Share::concat_all(&ind.iter().collect::<Vec<_>>());
        // 3. V_k = I_k·(1 − 2S), and u_k.
        let signs = Rep3Share::concat_all(&vec![&sign; m]);
        let is = self.mul(&ind, &signs).await?;
        let v = self.sub(&ind, &self.mul_public_scalar(&is, 2))?;
        let mut us = Vec::with_capacity(m);
        for &(a, b) in &SIGMOID_PIECES {
            let scale = fp.encode(2.0 / (b - a))?;
            let offset = fp.encode(1.0 + 2.0 * a / (b - a))?;
            us.push(self.add_public_scalar(
                &self.mul_public_scalar(&abs, scale),
                offset.wrapping_shl(frac_bits).wrapping_neg(),
            ));
        }
        let u = self
            .trunc(
                &Rep3Share::concat_all(&us.iter().collect::<Vec<_>>()),
                frac_bits,
            )
            .await?;
        // 4. Every piece's polynomial at once.
        let coeffs: Vec<&[f64]> = SIGMOID_PIECE_COEFFS.iter().map(|c| &c[..]).collect();
        let p = self
            .poly_fixed_split_pieces(&u, &coeffs, frac_bits, SIGMOID_PRECISE_EXTRA, SIGMOID_SPLIT)
            .await?;
        // 5. σ = (1 − S) + Σ_k V_k·(P_k − 1).
        let vp = self
            .mul(&v, &self.add_public_scalar(&p, one.wrapping_neg()))
            .await?;
        let base = self.add_public_scalar(&self.neg(&self.mul_public_scalar(&sign, one)), one);
        let mut out = base;
        for piece in vp.split_equal(m) {
            out = self.add(&out, &piece)?;
        }
        debug_assert_eq!(out.len(), n);
        Ok(out)
    }

    /// `S = b2a(msb(x))` and `|x| = x − 2·S·x` (exact, in `[0, 2^63]`): 11 rounds.
    async fn sign_abs(&mut self, x: &Rep3Share) -> Result<(Rep3Share, Rep3Share), MpcError> {
        let s = self.msb(x).await?;
        let sign = self.b2a_bit(&s).await?;
        let sx = self.mul(&sign, x).await?;
        let abs = self.sub(x, &self.mul_public_scalar(&sx, 2))?;
        Ok((sign, abs))
    }
}

fn check_sigmoid_frac_bits(frac_bits: u32) -> Result<(), MpcError> {
    if (SIGMOID_MIN_FRAC_BITS..=SIGMOID_MAX_FRAC_BITS).contains(&frac_bits) {
        Ok(())
    } else {
        Err(MpcError::UnsupportedFracBits {
            op: "rep3 sigmoid",
            min: SIGMOID_MIN_FRAC_BITS,
            max: SIGMOID_MAX_FRAC_BITS,
            got: frac_bits,
        })
    }
}
