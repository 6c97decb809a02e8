//! Reciprocal, division, inverse square root and square root of fixed-point shares: the
//! normalisation of [`super::normalize`], Newton–Raphson on the mantissa, and a secret power-of-two
//! rescaling by scale words taken from the one-hot word. See the module docs of [`crate::rep3`].

use super::boolean::{Rep3Bits, and_cross, xor_unchecked};
use super::normalize::{POSITIVE, WordMap, align_cross};
use super::session::Rep3Session;
use super::share::Rep3Share;
use crate::MpcError;
use crate::fixed::FixedPoint;

/// Fewest fractional bits [`Rep3Session::reciprocal`], [`Rep3Session::div`],
/// [`Rep3Session::rsqrt`] and [`Rep3Session::sqrt`] accept.
pub const NONLINEAR_MIN_FRAC_BITS: u32 = 8;

/// Most fractional bits the non-linear functions accept. Their fixed-point products carry values
/// up to `≈ 2^{2f+3}`, and each of their `≈ 10` probabilistic truncations fails with probability
/// `|v| / 2^64`: about `2^{−18}` per element at `f = 20` (`2^{−26}` at the default `f = 16`,
/// but already `2^{−10}` at `f = 24`).
pub const NONLINEAR_MAX_FRAC_BITS: u32 = 20;

/// Initial guess `y_0 = 2.9142 − 2m` for `1/m` on `m ∈ [0.5, 1]` (`2.9142 ≈ 1.5 + √2`):
/// `|1 − m·y_0| = |2m² − 2.9142m + 1| ≤ 0.0858`, the maximum taken at `m = 1`.
const RECIP_GUESS: f64 = 2.9142;
/// `max |1 − m·y_0|` of [`RECIP_GUESS`] on `[0.5, 1]`.
pub(crate) const RECIP_GUESS_ERR: f64 = 0.0858;

/// Initial guess `y_0 = 2.0184 − m` for `1/√m` on `m ∈ [0.25, 1]` (slope −1 keeps it local; the
/// intercept minimises `max |1 − m·y_0²|`, found by a grid search): `|1 − m·y_0²| ≤ 0.2182`.
const RSQRT_GUESS: f64 = 2.0184;
/// `max |1 − m·y_0²|` of [`RSQRT_GUESS`] on `[0.25, 1]` (`0.21820` rounded up).
pub(crate) const RSQRT_GUESS_ERR: f64 = 0.2182;

/// Bound on the Newton error `|1 − m·y_t|` for `1/m` that [`recip_iterations`] stops at, in
/// units of `u = 2^{−f}`.
pub(crate) const RECIP_NEWTON_BOUND_ULPS: f64 = 2.1;

/// Bound on the Newton error `|y_t·√m − 1|` for `1/√m` that [`rsqrt_iterations`] stops at, in
/// units of `u = 2^{−f}`.
pub(crate) const RSQRT_NEWTON_BOUND_ULPS: f64 = 2.7;

/// `(t, ε_t)`: Newton iterations for `1/m` at `f` fractional bits and the resulting bound on
/// `|1 − m·y_t|`. One fixed-point step gives `e_{k+1} = e_k² + m·y_k·δ_1 − m·δ_2` with truncation
/// errors `|δ_i| < u = 2^{−f}`, so `ε_{k+1} = ε_k² + (2 + ε_k)·u` from `ε_0 = 0.0858 + u/2` (the
/// guess, plus the rounding of 2.9142). `t` is the fewest iterations, at least 2, with
/// `ε_t ≤ 2.1u`: 2 for `f ≤ 9`, 3 for `10 ≤ f ≤ 20`.
pub(crate) fn recip_iterations(frac_bits: u32) -> (u32, f64) {
    let u = (-f64::from(frac_bits)).exp2();
    let mut e = RECIP_GUESS_ERR + u / 2.0;
    let mut t = 0;
    while e > RECIP_NEWTON_BOUND_ULPS * u || t < 2 {
        e = e * e + (2.0 + e) * u;
        t += 1;
    }
    (t, e)
}

/// `(t, ρ_t)`: Newton iterations for `1/√m` (`m ∈ [0.25, 1]`) at `f` fractional bits and the
/// resulting bound on the relative error `|y_t·√m − 1|`. With the truncation errors of the step
/// (`|δ| < u` each), `ρ_{k+1} = (3/2)ρ_k² + ρ_k³/2 + ((1 + ρ_k)² + (1 + ρ_k)/2 + 1 + u/2)·u`
/// from `ρ_0 = 1 − √(1 − 0.2182) + u/2`. `t` is the fewest iterations with `ρ_t ≤ 2.7u`: 3 for
/// `8 ≤ f ≤ 18`, 4 for `f = 19, 20`.
pub(crate) fn rsqrt_iterations(frac_bits: u32) -> (u32, f64) {
    let u = (-f64::from(frac_bits)).exp2();
    let mut r = 1.0 - (1.0 - RSQRT_GUESS_ERR).sqrt() + u / 2.0;
    let mut t = 0;
    while r > RSQRT_NEWTON_BOUND_ULPS * u {
        r = 1.5 * r * r
            + 0.5 * r * r * r
            + ((1.0 + r) * (1.0 + r) + (1.0 + r) / 2.0 + 1.0 + u / 2.0) * u;
        t += 1;
    }
    (t, r)
}

/// `Err(UnsupportedFracBits)` outside [`NONLINEAR_MIN_FRAC_BITS`]`..=`[`NONLINEAR_MAX_FRAC_BITS`].
pub(crate) fn check_nonlinear_frac_bits(op: &'static str, f: u32) -> Result<(), MpcError> {
    if (NONLINEAR_MIN_FRAC_BITS..=NONLINEAR_MAX_FRAC_BITS).contains(&f) {
        Ok(())
    } else {
        Err(MpcError::UnsupportedFracBits {
            op,
            min: NONLINEAR_MIN_FRAC_BITS,
            max: NONLINEAR_MAX_FRAC_BITS,
            got: f,
        })
    }
}

/// `2^k` as a word for `0 ≤ k < 64`, else `0` (a scale below the word's range).
fn pow2(k: i64) -> u64 {
    u32::try_from(k)
        .ok()
        .and_then(|k| 1u64.checked_shl(k))
        .unwrap_or(0)
}

/// The secret rescaling `v ↦ v·2^{e(p)}` by words of the leading-one position `p`: `up` is `2^e`
/// where `e ≥ 0` (an exact left shift, a plain product) and `0` elsewhere; for right shifts
/// `s = −e`, window `i` covers `K_{i−1} < s ≤ K_i` (`K_{−1} = 0`) with the word `2^{K_i − s}`
/// (a product truncated by `K_i` bits). Shifts beyond the last window give 0.
struct Scale {
    up: Rep3Share,
    downs: Vec<(Rep3Share, u32)>,
}

impl Scale {
    /// From the converted words `[up, down_0, …]` and the window ends.
    fn new(words: &[Rep3Share], windows: &[u32]) -> Result<Self, MpcError> {
        match words.split_first() {
            Some((up, downs)) if downs.len() == windows.len() => Ok(Self {
                up: up.clone(),
                downs: downs.iter().cloned().zip(windows.iter().copied()).collect(),
            }),
            _ => Err(MpcError::Reconstruct("scale words lost a part (internal)")),
        }
    }
}

/// The tables (images of the one-hot positions `p = 0..64`) of the scale words
/// `[up, down_0, down_1, …]` of `2^{e(p)}` (see [`Scale`]) for the windows ending at `windows`
/// (increasing); `e(p) = None` (no leading one at `p`, e.g. `p = 63`) gives 0 in every word.
fn scale_tables(e: impl Fn(u32) -> Option<i64>, windows: &[u32]) -> Vec<[u64; 64]> {
    let up: [u64; 64] = std::array::from_fn(|p| match e(p as u32) {
        Some(e) if e >= 0 => pow2(e),
        _ => 0,
    });
    let mut tables = vec![up];
    let mut lo = 0i64;
    for &k in windows {
        let k = i64::from(k);
        tables.push(std::array::from_fn(|p| match e(p as u32) {
            Some(e) if (lo + 1..=k).contains(&-e) => pow2(k + e),
            _ => 0,
        }));
        lo = k;
    }
    tables
}

/// The table applied to the one-hot word `h` (a local bit permutation).
fn lookup(h: &Rep3Bits, table: &[u64; 64]) -> Rep3Bits {
    WordMap::from_images(|p| table[p as usize]).apply(h)
}

/// The bits strictly above the set bit of every one-hot word (`−v ⊕ v` in two's complement; 0 for
/// 0): `v ↦ prefix-XOR(v << 1)`, linear, so local on shares.
fn strictly_above(v: &Rep3Bits) -> Rep3Bits {
    v.map(|w| {
        let mut w = w << 1;
        for k in [1, 2, 4, 8, 16, 32] {
            w ^= w << k;
        }
        w
    })
}

/// Bit 0 broadcast to all 64 bits (linear, local).
fn broadcast(b: &Rep3Bits) -> Rep3Bits {
    b.map(|w| (w & 1).wrapping_neg())
}

impl Rep3Session {
    /// `1/x` in fixed point with `frac_bits = f` fractional bits, for `x ≠ 0` of either sign.
    ///
    /// **Protocol.** Normalisation by a secret power of two (Catrina–Saxena style; the
    /// Newton–Raphson step as in SPU's and CrypTen's reciprocal, see the module docs):
    /// [`Self::a2b`] (8 rounds); with `s` the sign bit, the ones' complement `w = x ⊕ s…s`
    /// (`|x| − s`, local); the leading one `p` of `w` (6 rounds), and from its one-hot word, by
    /// local bit permutations, the scale words `U = 2^{f−1−p}` (`p < f`, else 0) and
    /// `D = 2^{2f−p}` (`f ≤ p ≤ 2f`, else 0) — `2^{f−1−p}` split into an exact left shift and a
    /// right shift by `(f + 1) − (2f − p)` bits; one round of ANDs with `s` turns them into `σU`,
    /// `σD` (`σ = ±1` the sign: in two's complement `−2^j` is the bits from `j` up, linear in the
    /// one-hot word); one [`Self::b2a`] of `[σU, σD]` (9 rounds); the mantissa
    /// `m = x·(σU·2^{f+1} + σD) / 2^{f+1} = |x|·2^{f−1−p} ∈ [0.5, 1]` (one product, one
    /// truncation, 2 rounds; `m = 1` exactly when `|x|` is a power of two, as then `p` is one
    /// less); Newton–Raphson `y ← y·(2 − m·y)` from `y_0 = 2.9142 − 2m`, `t` iterations of two
    /// [`Self::mul_fixed`] (4 rounds each; `t = 3` for `10 ≤ f ≤ 20`, 2 below); finally
    /// `1/x = y·σU + trunc(y·σD, f + 1)` (one [`Self::mul`] of both, one [`Self::trunc`]).
    /// `28 + 4t` rounds: **40 at `f = 16`**. Bytes per party at `f = 16`, `n` elements: `104n`
    /// (A2B) `+ 8·Σ_s ⌈(64−s)n/64⌉` (leading one, `≈ 40.1n`) `+ 16n` (sign ANDs) `+ 224n` (B2A;
    /// `208n` at party 1) `+ 8n` (mantissa) `+ 48n` (Newton) `+ 16n` (rescaling; `+ 8n` at party
    /// 1): about `456n` (`448n` at party 1).
    ///
    /// **Error.** With `u = 2^{−f}` and `x` the encoded input, for `2^{−f} ≤ |x| < 2^{63−f}`:
    /// `|r − 1/x| ≤ 4.2·u·|1/x| + u`. The Newton error is `|1 − m·y_t| ≤ ε_t ≤ 2.1u` (see
    /// `recip_iterations`: `ε_{k+1} = ε_k² + (2 + ε_k)u`); for `|x| ≥ 1` the mantissa's
    /// truncation adds a relative `2u` and the final truncation `u`; for `|x| < 1` both are exact,
    /// so the error is relative, `2.1u·|1/x|` (`1/x` has more significant bits there than the
    /// `f`-bit mantissa). As a relative error: `≤ 2.1u` for `|x| < 1`, `≤ (4.2 + |x|)·u` for
    /// `1 ≤ |x| ≤ 2^f` (at `|x| = 2^f`, where `1/x` is one unit, only its order of magnitude is
    /// right). `|x| > 2^{f+1}` gives 0 (the true value is below `u/2`). The `2t + 2`
    /// truncations see values below `2^{2f+2}` and fail (garbage) with probability below
    /// `(2t + 2)·2^{2f+2−64}` per element (`2^{−27}` at `f = 16`).
    ///
    /// **Bad inputs.** `x = 0` gives 0 (no leading one: every scale word is 0); so does
    /// `x = i64::MIN`. Fails with [`MpcError::UnsupportedFracBits`] outside `8 ≤ f ≤ 20`.
    pub async fn reciprocal(
        &mut self,
        x: &Rep3Share,
        frac_bits: u32,
    ) -> Result<Rep3Share, MpcError> {
        let f = frac_bits;
        check_nonlinear_frac_bits("rep3 reciprocal", f)?;
        let xb = self.a2b(x).await?;
        let sign = broadcast(&self.bit(&xb, 63));
        let w = xor_unchecked(&xb, &sign);
        let none = self.none_above(&w).await?;
        let h = self.one_hot(&none);
        let windows = [f + 1];
        let tables = scale_tables(
            |p| (p < 63).then(|| i64::from(f) - 1 - i64::from(p)),
            &windows,
        );
        // w = 0 with s = 1 is x = −1 (|x| = 1, p = 0): `none` bit 0 flags w = 0, and the sign
        // ANDs add the negated p = 0 entry, −T(0), for it.
        let zero = broadcast(&none);
        let mut words = Vec::with_capacity(tables.len());
        let mut cross = Vec::with_capacity(tables.len());
        for table in &tables {
            let word = lookup(&h, table);
            let fix = zero.map(|z| z & table[0].wrapping_neg());
            cross.push(and_cross(
                &sign,
                &xor_unchecked(&strictly_above(&word), &fix),
            ));
            words.push(word);
        }
        let parts: Vec<(&[u64], u32)> = cross.iter().map(|z| (&z[..], 64)).collect();
        let negated = self.reshare_packed(&parts).await?;
        let signed: Vec<Rep3Bits> = words
            .iter()
            .zip(&negated)
            .map(|(w, n)| xor_unchecked(w, n))
            .collect();
        let conv = self.b2a_batch(&signed.iter().collect::<Vec<_>>()).await?;
        let scale = Scale::new(&conv, &windows)?;
        // m = x·(σU·2^{f+1} + σD) / 2^{f+1}: both products in one 3-out-of-3 sum, one truncation.
        let mut z = self.mul_local(x, &scale.up)?;
        let zd = self.mul_local(x, &scale.downs[0].0)?;
        for (a, b) in z.iter_mut().zip(&zd) {
            *a = a.wrapping_shl(f + 1).wrapping_add(*b);
        }
        let m = self.trunc_additive(z, f + 1).await?;
        let y = self.recip_newton(&m, None, f).await?;
        self.rescale(&y, &scale).await
    }

    /// `x / y` in fixed point for `y ≠ 0` of either sign: [`Self::reciprocal`]'s normalisation
    /// and Newton iteration on `y`, with the numerator folded into the last iteration
    /// (`x·y_{t−1}` joins the multiplication `m·y_{t−1}`), so `x` multiplies the mantissa's
    /// reciprocal before the secret rescaling and a large `1/y` amplifies no truncation error.
    /// As `y` may be large, the right shifts go up to `63 − f` bits, in windows of `f + 1` (three
    /// down words at `f = 16`), and the mantissa comes from the boolean domain instead of a
    /// product: `|y|` by a conditional negation (6 rounds), the mantissa aligned in one round
    /// together with the sign ANDs, one [`Self::b2a`] of `[m, σU, σD_1, …]`. `32 + 4t` rounds:
    /// **44 at `f = 16`**; about `866n` bytes per party at `f = 16` (`850n` at party 1).
    ///
    /// **Error.** `|q − x/y| ≤ u·(3.1·|x/y| + 2.1/|y| + 1)` (`u = 2^{−f}`) for
    /// `2^{−f} ≤ |y| < 2^{63−f}` and `|x| < 2^{61−2f}` (so the products fit). The `2.1u/|y|`
    /// term is the truncation of `x·y_{t−1}` rescaled by `2^{f−1−p}`; it is about four times the
    /// uncertainty `u/(2|y|)` that the rounding of `x` itself causes. The truncations fail with
    /// probability below `(2t + 3)·max(1, |x|)·2^{2f+2−64}` per element, as for
    /// [`Self::mul_fixed`]`(x, 2)`: keep `|x|` moderate.
    ///
    /// **Bad inputs.** `y = 0` gives 0. Fails with [`MpcError::LengthMismatch`] unless `x` and
    /// `y` have the same length.
    pub async fn div(
        &mut self,
        x: &Rep3Share,
        y: &Rep3Share,
        frac_bits: u32,
    ) -> Result<Rep3Share, MpcError> {
        let f = frac_bits;
        check_nonlinear_frac_bits("rep3 div", f)?;
        x.check_same_len(y, "rep3 div")?;
        let yb = self.a2b(y).await?;
        let (abs, sign) = self.abs_bits(&yb).await?;
        let sign = broadcast(&sign);
        let h = self.leading_one(&abs).await?;
        // Right shifts s = p + 1 − f up to 63 − f, in windows of f + 1.
        let windows: Vec<u32> = (1..=(63 - f).div_ceil(f + 1))
            .map(|i| i * (f + 1))
            .collect();
        let tables = scale_tables(
            |p| (p < 63).then(|| i64::from(f) - 1 - i64::from(p)),
            &windows,
        );
        let words: Vec<Rep3Bits> = tables.iter().map(|t| lookup(&h, t)).collect();
        let mut cross = vec![align_cross(&abs, &h, &[(POSITIVE, f - 1)], f)];
        for word in &words {
            cross.push(and_cross(&sign, &strictly_above(word)));
        }
        let parts: Vec<(&[u64], u32)> = cross
            .iter()
            .enumerate()
            .map(|(i, z)| (&z[..], if i == 0 { f } else { 64 }))
            .collect();
        let mut shared = self.reshare_packed(&parts).await?.into_iter();
        let m = shared
            .next()
            .ok_or(MpcError::Reconstruct("reshare lost a part (internal)"))?;
        let signed: Vec<Rep3Bits> = words
            .iter()
            .zip(shared)
            .map(|(w, n)| xor_unchecked(w, &n))
            .collect();
        let mut batch = vec![&m];
        batch.extend(&signed);
        let conv = self.b2a_batch(&batch).await?;
        let (m, rest) = conv
            .split_first()
            .ok_or(MpcError::Reconstruct("b2a batch lost a part (internal)"))?;
        let scale = Scale::new(rest, &windows)?;
        let z = self.recip_newton(m, Some(x), f).await?;
        self.rescale(&z, &scale).await
    }

    /// `1/√x` for `x > 0` in fixed point with `frac_bits = f` fractional bits.
    ///
    /// **Protocol.** With `X = x·2^f`, `p = ⌊log2 X⌋`, `t = p + 1 − f` and `k = ⌈t/2⌉`, write
    /// `x = m·4^k` with `m ∈ [0.25, 1)`: the mantissa `m = X·2^{−2k}` has its leading one at bit
    /// `f − 1` (even `t`) or `f − 2` (odd `t`), so the exponent's parity only selects between two
    /// alignment targets of the one-round alignment (two classes of one-hot positions), and
    /// `1/√x = (1/√m)·2^{−k}` needs only power-of-two scale words: `U = 2^{−k}` (`k ≤ 0`) and
    /// `D = 2^{f+1−k}` (`1 ≤ k ≤ f + 1`). [`Self::a2b`], leading one, alignment, one
    /// [`Self::b2a`] of `[m, U, D]` (24 rounds); Newton `y ← y·(3 − m·y²)/2` from
    /// `y_0 = 2.0184 − m`, each iteration one [`Self::mul_fixed`] of `[m·y, y·y]` and the fused
    /// `(3·2^f·y − (my)·(y²)) / 2^{f+1}` (a local product, one truncation; 2 rounds, `8n` bytes);
    /// `t = 3` iterations for `f ≤ 18`, 4 for `f = 19, 20`; then `y·U + trunc(y·D, f + 1)`.
    /// `26 + 4t` rounds: **38 at `f = 16`**; about `570n` bytes per party at `f = 16` (`554n` at
    /// party 1).
    ///
    /// **Error.** `|r − 1/√x| ≤ 4.7·u/√x + u` (`u = 2^{−f}`) for `2^{−f} ≤ x < 2^{63−f}`: the
    /// Newton bound `|y_t·√m − 1| ≤ 2.7u` (see `rsqrt_iterations`), `2u` for the mantissa's
    /// truncated bits, `u` for the final truncation. The truncations (`3t + 1`, values below
    /// `2^{2f+3}`) fail with probability below `(3t + 1)·2^{2f+3−64}` per element.
    ///
    /// **Bad inputs.** `x = 0` and negative `x` give 0.
    pub async fn rsqrt(&mut self, x: &Rep3Share, frac_bits: u32) -> Result<Rep3Share, MpcError> {
        check_nonlinear_frac_bits("rep3 rsqrt", frac_bits)?;
        self.sqrt_core(x, frac_bits, false).await
    }

    /// `√x` for `x ≥ 0` in fixed point with `frac_bits = f` fractional bits; `√0 = 0` exactly.
    ///
    /// **Protocol.** As [`Self::rsqrt`] up to `y ≈ 1/√m`, then `g = m·y ≈ √m ∈ [0.5, 1)` (one
    /// [`Self::mul_fixed`]) and `√x = g·2^k` with the scale words `U = 2^k` (`k ≥ 0`) and
    /// `D = 2^{⌊f/2⌋+k}` (`k < 0`). `28 + 4t` rounds: **40 at `f = 16`**; about `578n` bytes per
    /// party (`562n` at party 1).
    ///
    /// **Error.** `|s − √x| ≤ 6.7·u·√x + u` (`u = 2^{−f}`) for `0 ≤ x < 2^{63−f}`: the Newton
    /// bound `2.7u`, `2u` for the mantissa's truncated bits, `2u` for the truncation of `m·y`
    /// (relative to `√m ≥ 0.5`), and `u` absolute for the final truncation. For `x = 0` the
    /// mantissa and both scale words are exact zeros, and so is the result.
    ///
    /// **Bad inputs.** Negative `x` gives 0.
    pub async fn sqrt(&mut self, x: &Rep3Share, frac_bits: u32) -> Result<Rep3Share, MpcError> {
        check_nonlinear_frac_bits("rep3 sqrt", frac_bits)?;
        self.sqrt_core(x, frac_bits, true).await
    }

    /// Newton–Raphson for `1/m`, `m ∈ [0.5, 1]`: `t` iterations `y ← y·(2 − m·y)`, each two
    /// [`Self::mul_fixed`] (4 rounds). Returns `y_t`, or `x·y_t` for a numerator `x`: then
    /// `x·y_{t−1}` joins the last iteration's product `m·y_{t−1}` (`8n` bytes more, no rounds)
    /// and the last step computes `(x·y_{t−1})·(2 − m·y_{t−1})`.
    async fn recip_newton(
        &mut self,
        m: &Rep3Share,
        num: Option<&Rep3Share>,
        f: u32,
    ) -> Result<Rep3Share, MpcError> {
        let fp = FixedPoint::new(f)?;
        let guess = fp.encode(RECIP_GUESS)?;
        let two = fp.encode(2.0)?;
        let (t, _) = recip_iterations(f);
        let mut y = self.add_public_scalar(&self.mul_public_scalar(m, 2u64.wrapping_neg()), guess);
        for k in 0..t {
            let mut left = vec![m];
            let mut right = vec![&y];
            let last = k + 1 == t;
            if let (true, Some(x)) = (last, num) {
                left.push(x);
                right.push(&y);
            }
            let parts = left.len();
            let prods = self
                .mul_fixed(
                    &Rep3Share::concat_all(&left),
                    &Rep3Share::concat_all(&right),
                    f,
                )
                .await?
                .split_equal(parts);
            let (a, rest) = prods
                .split_first()
                .ok_or(MpcError::Reconstruct("empty product batch (internal)"))?;
            let two_minus_a = self.add_public_scalar(&self.neg(a), two);
            let factor = rest.first().unwrap_or(&y);
            y = self.mul_fixed(factor, &two_minus_a, f).await?;
        }
        Ok(y)
    }

    /// `v·2^{e(p)}` as `v·up + Σ_i trunc(v·down_i, K_i)`: one [`Self::mul`] of all products
    /// (`8·(1 + k)·n` bytes per party for `k` windows), one [`Self::trunc_each`] of the `k`
    /// windows (`8kn` bytes at party 1): 2 rounds.
    async fn rescale(&mut self, v: &Rep3Share, scale: &Scale) -> Result<Rep3Share, MpcError> {
        let k = scale.downs.len();
        let mut right = vec![&scale.up];
        right.extend(scale.downs.iter().map(|(d, _)| d));
        let prods = self
            .mul(
                &Rep3Share::concat_all(&vec![v; 1 + k]),
                &Rep3Share::concat_all(&right),
            )
            .await?
            .split_equal(1 + k);
        let (vu, vd) = prods.split_first().ok_or(MpcError::Reconstruct(
            "product batch lost a part (internal)",
        ))?;
        if vd.is_empty() {
            return Ok(vu.clone());
        }
        let shifts: Vec<u32> = scale
            .downs
            .iter()
            .flat_map(|&(_, shift)| std::iter::repeat_n(shift, v.len()))
            .collect();
        let parts: Vec<&Rep3Share> = vd.iter().collect();
        let low = self
            .trunc_each(&Rep3Share::concat_all(&parts), &shifts)
            .await?
            .split_equal(k);
        low.iter().try_fold(vu.clone(), |acc, t| self.add(&acc, t))
    }

    /// [`Self::rsqrt`] (`want_sqrt = false`) or [`Self::sqrt`].
    async fn sqrt_core(
        &mut self,
        x: &Rep3Share,
        f: u32,
        want_sqrt: bool,
    ) -> Result<Rep3Share, MpcError> {
        let xb = self.a2b(x).await?;
        let h = self.leading_one(&xb).await?;
        let fi = i64::from(f);
        // t = p + 1 − f; k = ⌈t/2⌉ = ⌊(p + 2 − f)/2⌋.
        let k_of = |p: u32| (i64::from(p) + 2 - fi).div_euclid(2);
        let even: u64 = (0..63)
            .filter(|&p| (i64::from(p) + 1 - fi).rem_euclid(2) == 0)
            .fold(0, |acc, p| acc | 1 << p);
        let m = self
            .align(&xb, &h, &[(even, f - 1), (POSITIVE & !even, f - 2)], f)
            .await?;
        // rsqrt scales by 2^{−k} (right shifts up to f + 1 matter), sqrt by 2^{k} (right shifts
        // up to ⌊f/2⌋ occur).
        let (sgn, window) = if want_sqrt { (1, f / 2) } else { (-1, f + 1) };
        let exp = |p: u32| (p < 63).then(|| sgn * k_of(p));
        let scale: Vec<Rep3Bits> = scale_tables(exp, &[window])
            .iter()
            .map(|t| lookup(&h, t))
            .collect();
        let mut words = vec![&m];
        words.extend(&scale);
        let conv = self.b2a_batch(&words).await?;
        let (m, rest) = conv
            .split_first()
            .ok_or(MpcError::Reconstruct("b2a batch lost a part (internal)"))?;
        let scale = Scale::new(rest, &[window])?;
        let y = self.rsqrt_newton(m, f).await?;
        if want_sqrt {
            let g = self.mul_fixed(m, &y, f).await?;
            self.rescale(&g, &scale).await
        } else {
            self.rescale(&y, &scale).await
        }
    }

    /// Newton–Raphson for `1/√m`, `m ∈ [0.25, 1]`: `t` iterations `y ← y(3 − m·y²)/2`, each one
    /// [`Self::mul_fixed`] of `[m·y, y·y]` (2 rounds, `16n` bytes) and the fused
    /// `(3·2^f·y − (my)·(y²)) / 2^{f+1}`: a local 3-out-of-3 product plus a local linear term,
    /// truncated once by `f + 1` bits (2 rounds, `8n` bytes per party).
    async fn rsqrt_newton(&mut self, m: &Rep3Share, f: u32) -> Result<Rep3Share, MpcError> {
        let fp = FixedPoint::new(f)?;
        let guess = fp.encode(RSQRT_GUESS)?;
        let three = 3u64 << f;
        let mut y = self.add_public_scalar(&self.neg(m), guess);
        for _ in 0..rsqrt_iterations(f).0 {
            let prods = self
                .mul_fixed(
                    &Rep3Share::concat_all(&[m, &y]),
                    &Rep3Share::concat_all(&[&y, &y]),
                    f,
                )
                .await?
                .split_equal(2);
            let [my, yy] = &prods[..] else {
                return Err(MpcError::Reconstruct(
                    "product batch lost a part (internal)",
                ));
            };
            // Party i's part of 3·2^f·y − (my)·(yy) (at 2f fractional bits): y_i is its first
            // component of y.
            let mut z = self.mul_local(my, yy)?;
            for (zj, yj) in z.iter_mut().zip(y.a()) {
                *zj = three.wrapping_mul(*yj).wrapping_sub(*zj);
            }
            y = self.trunc_additive(z, f + 1).await?;
        }
        Ok(y)
    }
}
