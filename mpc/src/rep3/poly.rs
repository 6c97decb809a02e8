//! Fixed-point polynomial evaluation on shares: the powers a polynomial needs, with log depth and
//! every product of a level in one multiplication, then `Σ c_i·x^i` with one truncation.
//! See the module docs of [`crate::rep3`] for the costs.

use super::session::Rep3Session;
use super::share::Rep3Share;
use crate::MpcError;
use crate::fixed::FixedPoint;

/// Largest exponent [`Rep3Session::powers_fixed`] and [`Rep3Session::poly_fixed`] accept. Fixed
/// point loses `≈ log2(k)` bits to the truncations of `x^k` (see the error bound), so degrees
/// beyond a few dozen are not useful; the cap bounds the bookkeeping.
pub const MAX_POLY_DEGREE: usize = 64;

impl Rep3Session {
    /// The fixed-point powers `x^e` for each `e` in `exponents` (in that order; `x^0` is the
    /// public constant 1), all at `frac_bits` fractional bits.
    ///
    /// **Protocol.** Let `d` be the largest exponent and `N` the closure of the requested
    /// exponents under `k ↦ {h, k − h}`, `h = 2^⌈log2 k⌉ / 2` (the largest power of two below
    /// `k`). Level `L = 0, 1, …` computes every needed `x^k` with `2^L < k ≤ 2^{L+1}` as
    /// `x^{2^L} · x^{k − 2^L}`: both factors are known after the previous levels, so all products
    /// of a level go into ONE [`Self::mul_fixed`] call over the concatenated vectors.
    ///
    /// **Cost.** `⌈log2 d⌉` levels (0 for `d ≤ 1`), each 2 rounds; `8·m·len` bytes per party in
    /// total, where `m = |N \ {0, 1}|` is the number of products (`d − 1` for a dense polynomial,
    /// fewer for sparse ones: `{1, 3, 5, 7}` needs `x^2, x^3, x^4, x^5, x^7`, 5 products in 3
    /// levels).
    ///
    /// **Error.** For `|x| ≤ 1` (as a real), each [`Self::mul_fixed`] adds less than one unit
    /// `u = 2^−frac_bits`, so by induction on `k = h + (k − h)` the computed `x^k` is within
    /// `(k − 1)·u` of the true power of the encoded input (up to second-order terms
    /// `O(k²·u²)`). Each product's truncation fails (garbage result) with probability at most
    /// `|X^h·X^{k−h}| / 2^64 ≤ 2^{2·frac_bits − 64}` for `|x| ≤ 1`; larger `|x|` raises both the
    /// error (`≈ k·|x|^{k−1}·u`) and the failure probability (`|x|^k·2^{2·frac_bits − 64}`), and
    /// `|x|^k` must stay below `2^{63 − frac_bits}`. Evaluate in a scaled variable `|x| ≤ 1`.
    pub async fn powers_fixed(
        &mut self,
        x: &Rep3Share,
        exponents: &[usize],
        frac_bits: u32,
    ) -> Result<Vec<Rep3Share>, MpcError> {
        let table = self
            .power_table(x, &needed_powers(exponents)?, frac_bits)
            .await?;
        let one = FixedPoint::new(frac_bits)?.encode(1.0)?;
        exponents
            .iter()
            .map(|&e| match e {
                0 => Ok(self.constant(x.len(), one)),
                _ => table[e].clone().ok_or(MpcError::Reconstruct(
                    "power table misses a needed power (internal)",
                )),
            })
            .collect()
    }

    /// The fixed-point polynomial `Σ_i coeffs[i]·x^i` element-wise, at `frac_bits` fractional bits
    /// (public `f64` coefficients, secret `x`). Powers whose coefficient is zero are computed only
    /// when a higher needed power is built from them (an odd degree-7 polynomial needs
    /// `x^2, x^3, x^4, x^5, x^7` but not `x^6`).
    ///
    /// **Protocol.** [`Self::powers_fixed`] for the exponents with `coeffs[i] ≠ 0`, `i ≥ 1`; then
    /// locally `S = Σ_i C_i·X^i + C_0·2^f` with `C_i = round(coeffs[i]·2^f)` (a product with a
    /// public constant is local; `S` carries `2f` fractional bits) and one [`Self::trunc`] by `f`.
    ///
    /// **Cost.** With `d` the largest `i` with `coeffs[i] ≠ 0` and `m` the products of
    /// [`Self::powers_fixed`]: `2·⌈log2 d⌉ + 1` rounds; `8·m·len` bytes per party plus `8·len` at
    /// party 1 for the final truncation. Degree 7 odd: 7 rounds, `40·len` bytes (`48·len` at party
    /// 1). A polynomial of degree ≤ 0 is a public constant (0 rounds, 0 bytes).
    ///
    /// **Error.** For `|x| ≤ 1`, with `u = 2^−f`: the result is within
    /// `u·(1 + Σ_{i≥1} (|coeffs[i]|·(i − 1) + 1/2) + 1/2)` of the polynomial at the encoded
    /// input (the power errors of [`Self::powers_fixed`] amplified by `|c_i|`, the coefficients'
    /// rounding `u/2` each, the final truncation `u`), up to second-order terms. So coefficients
    /// must be moderate — evaluate in a scaled variable `t = x / B` rather than `x`. Besides the
    /// powers' failure probabilities, the final truncation fails with probability at most
    /// `Σ |coeffs[i]|·2^{2f − 64}` for `|x| ≤ 1`; the result must satisfy `|p(x)| < 2^{63 − 2f}`.
    /// Fails with [`MpcError::PolyDegree`] above [`MAX_POLY_DEGREE`] and with
    /// [`MpcError::OutOfRange`] / [`MpcError::NotFinite`] for a coefficient that does not encode.
    pub async fn poly_fixed(
        &mut self,
        x: &Rep3Share,
        coeffs: &[f64],
        frac_bits: u32,
    ) -> Result<Rep3Share, MpcError> {
        self.poly_fixed_extra(x, coeffs, frac_bits, 0).await
    }

    /// [`Self::poly_fixed`] with the coefficients encoded at `frac_bits + extra` fractional bits:
    /// the sum carries `2·frac_bits + extra` bits and the one truncation removes
    /// `frac_bits + extra`. The coefficients' rounding error drops from `u/2` to `u/2^{extra+1}`
    /// each, the final truncation's failure probability grows to `Σ|c_i|·2^{2f + extra − 64}`.
    /// Same cost.
    pub(crate) async fn poly_fixed_extra(
        &mut self,
        x: &Rep3Share,
        coeffs: &[f64],
        frac_bits: u32,
        extra: u32,
    ) -> Result<Rep3Share, MpcError> {
        let fp = FixedPoint::new(frac_bits)?;
        let fc = FixedPoint::new(frac_bits + extra)?;
        let enc: Vec<u64> = coeffs
            .iter()
            .map(|&c| fc.encode(c))
            .collect::<Result<_, _>>()?;
        // Terms whose coefficient encodes to zero are skipped. Without any other term the sum
        // would be a public constant, whose sharing is not random enough to truncate.
        let exps: Vec<usize> = (1..enc.len()).filter(|&i| enc[i] != 0).collect();
        if exps.is_empty() {
            // The rounded constant c_0 at f bits, with no truncation.
            let c0 = coeffs.first().map_or(Ok(0), |&c| fp.encode(c))?;
            return Ok(self.constant(x.len(), c0));
        }
        // c_0 at 2f + extra fractional bits: C_0 · 2^f (wrapping; only its value mod 2^64 matters).
        let c0 = enc.first().map_or(0, |c| c.wrapping_shl(frac_bits));
        let table = self
            .power_table(x, &needed_powers(&exps)?, frac_bits)
            .await?;
        let len = x.len();
        let (mut a, mut b) = (vec![0u64; len], vec![0u64; len]);
        for &i in &exps {
            let p = table[i].as_ref().ok_or(MpcError::Reconstruct(
                "power table misses a needed power (internal)",
            ))?;
            let c = enc[i];
            for (acc, v) in a.iter_mut().zip(p.a()) {
                *acc = acc.wrapping_add(c.wrapping_mul(*v));
            }
            for (acc, v) in b.iter_mut().zip(p.b()) {
                *acc = acc.wrapping_add(c.wrapping_mul(*v));
            }
        }
        let sum = self.add_public_scalar(&Rep3Share::new_unchecked(a, b), c0);
        self.trunc(&sum, frac_bits + extra).await
    }

    /// `Σ_i coeffs[i]·x^i` split once (Paterson–Stockmeyer with one block):
    /// `p = q_0(x) + x^k·q_1(x)` with `q_0 = Σ_{i<k} c_i x^i` and `q_1 = Σ_{i≥k} c_i x^{i−k}`,
    /// for `k ≤ d ≤ 2k` (`d = coeffs.len() − 1`). Coefficients are encoded at `f + extra` bits
    /// (`C_i`) as in `poly_fixed_extra`; when `q_1` is a constant this is `poly_fixed_extra`.
    ///
    /// 1. The powers `x^2..x^k` ([`Self::powers_fixed`]).
    /// 2. `Q_1 = Σ_{i≥k} C_i·X^{i−k}` and `Q_0 = Σ_{i<k} C_i·X^i`, summed locally at `2f + extra`
    ///    bits; `q_1 = Q_1 / 2^{f+extra}` ([`Self::trunc`], 1 round, party 1 sends `8·len`).
    /// 3. Each party's part of `x^k·q_1` (a 3-out-of-3 sharing at `2f` bits) times `2^extra`,
    ///    plus its component of `Q_0`, truncated by `f + extra` bits (2 rounds, `8·len` bytes per
    ///    party): `q_0` is never truncated on its own.
    ///
    /// Fewer products than [`Self::poly_fixed`] for the same rounds: degree 6 with `k = 3` needs
    /// `x^2, x^3, x^3·q_1` (3 products, `2·2 + 1 + 2 = 7` rounds, `24·len` bytes per party plus
    /// `8·len` at party 1) instead of 5 products. The error, for `|x| ≤ 1`: the truncation of
    /// `q_1` (`u`, weighted by `|x^k| ≤ 1`) and the final one (`u`), the coefficients' rounding
    /// (`u/2^{extra+1}` each), and the powers' errors weighted by the coefficients
    /// (`(i − 1)·u·|c_i|` in `q_0`, `(k − 1)·u·|q_1|` for `x^k`). The final truncation is of a
    /// value at `2f + extra` bits, like `poly_fixed_extra`'s.
    pub(crate) async fn poly_fixed_split(
        &mut self,
        x: &Rep3Share,
        coeffs: &[f64],
        frac_bits: u32,
        extra: u32,
        k: usize,
    ) -> Result<Rep3Share, MpcError> {
        let d = coeffs.len().saturating_sub(1);
        if k == 0 || d < k || d > 2 * k {
            return Err(MpcError::PolyDegree { max: 2 * k, got: d });
        }
        // A constant q_1 (no term above x^k) needs no split: the direct sum has the same powers.
        let fc = FixedPoint::new(frac_bits + extra)?;
        if coeffs[k + 1..]
            .iter()
            .map(|&c| fc.encode(c))
            .collect::<Result<Vec<_>, _>>()?
            .iter()
            .all(|&c| c == 0)
        {
            return self.poly_fixed_extra(x, coeffs, frac_bits, extra).await;
        }
        self.poly_fixed_split_pieces(x, &[coeffs], frac_bits, extra, k)
            .await
    }

    /// [`Self::poly_fixed_split`] with a different polynomial per piece: `x` is the
    /// concatenation of `pieces.len()` equal-length vectors and piece `s` is evaluated with
    /// `pieces[s]` (all of the same degree `d`, `k ≤ d ≤ 2k`). Same rounds as one polynomial;
    /// the bytes of one polynomial on the whole concatenation.
    pub(crate) async fn poly_fixed_split_pieces(
        &mut self,
        x: &Rep3Share,
        pieces: &[&[f64]],
        frac_bits: u32,
        extra: u32,
        k: usize,
    ) -> Result<Rep3Share, MpcError> {
        let d = pieces.first().map_or(0, |c| c.len().saturating_sub(1));
        if k == 0 || d < k || d > 2 * k || pieces.iter().any(|c| c.len() != d + 1) {
            return Err(MpcError::PolyDegree { max: 2 * k, got: d });
        }
        if !x.len().is_multiple_of(pieces.len()) {
            return Err(MpcError::LengthMismatch {
                what: "polynomial pieces vs input length",
                expected: pieces.len(),
                got: x.len(),
            });
        }
        let fc = FixedPoint::new(frac_bits + extra)?;
        let enc: Vec<Vec<u64>> = pieces
            .iter()
            .map(|c| c.iter().map(|&c| fc.encode(c)).collect())
            .collect::<Result<_, _>>()?;
        let exps: Vec<usize> = (1..=k).collect();
        let pw = self.powers_fixed(x, &exps, frac_bits).await?;
        let len = x.len();
        let n = len / pieces.len();
        // Q_1 = Σ_{i≥k} C_i·X^{i−k} and Q_0 = Σ_{i<k} C_i·X^i at 2f + extra bits (the constant
        // terms C·2^f added as public values), each piece with its own coefficients.
        let mut halves = [
            (vec![0u64; len], vec![0u64; len]),
            (vec![0u64; len], vec![0u64; len]),
        ];
        for (s, enc) in enc.iter().enumerate() {
            let r = s * n..(s + 1) * n;
            for (i, &c) in enc.iter().enumerate() {
                let (half, e) = if i < k { (0, i) } else { (1, i - k) };
                let (a, b) = &mut halves[half];
                if e == 0 {
                    // The constant term, as a public value in component x_0.
                    let c = c.wrapping_shl(frac_bits);
                    let target = match self.me {
                        0 => &mut a[r.clone()],
                        2 => &mut b[r.clone()],
                        _ => continue,
                    };
                    target.iter_mut().for_each(|v| *v = v.wrapping_add(c));
                    continue;
                }
                if c == 0 {
                    continue;
                }
                let p = &pw[e - 1];
                for (acc, v) in a[r.clone()].iter_mut().zip(&p.a()[r.clone()]) {
                    *acc = acc.wrapping_add(c.wrapping_mul(*v));
                }
                for (acc, v) in b[r.clone()].iter_mut().zip(&p.b()[r.clone()]) {
                    *acc = acc.wrapping_add(c.wrapping_mul(*v));
                }
            }
        }
        let [(a0, b0), (a1, b1)] = halves;
        let q0 = Rep3Share::new_unchecked(a0, b0);
        let q1 = self
            .trunc(&Rep3Share::new_unchecked(a1, b1), frac_bits + extra)
            .await?;
        // x^k·q_1 (3-out-of-3, 2f bits) · 2^extra + Q_0 (this party's component), then one
        // truncation back to f bits.
        let mut z = self.mul_local(&pw[k - 1], &q1)?;
        for (zj, q) in z.iter_mut().zip(q0.a()) {
            *zj = zj.wrapping_shl(extra).wrapping_add(*q);
        }
        self.trunc_additive(z, frac_bits + extra).await
    }

    /// `x^k` for every `k` with `need[k]` (`need` closed under the level split, `need[1]` set if
    /// anything is), at index `k` of the returned table; `None` elsewhere.
    async fn power_table(
        &mut self,
        x: &Rep3Share,
        need: &[bool],
        frac_bits: u32,
    ) -> Result<Vec<Option<Rep3Share>>, MpcError> {
        let degree = need.len().saturating_sub(1);
        let mut table: Vec<Option<Rep3Share>> = vec![None; need.len()];
        if degree >= 1 {
            table[1] = Some(x.clone());
        }
        let len = x.len();
        let mut h = 1;
        while h < degree {
            let ks: Vec<usize> = (h + 1..=(2 * h).min(degree)).filter(|&k| need[k]).collect();
            if !ks.is_empty() {
                let missing = || MpcError::Reconstruct("power table misses a factor (internal)");
                let high = table[h].as_ref().ok_or_else(missing)?;
                let lows = ks
                    .iter()
                    .map(|&k| table[k - h].as_ref().ok_or_else(missing))
                    .collect::<Result<Vec<_>, _>>()?;
                let left = concat(std::iter::repeat_n(high, ks.len()));
                let right = concat(lows.into_iter());
                let prod = self.mul_fixed(&left, &right, frac_bits).await?;
                for (j, &k) in ks.iter().enumerate() {
                    table[k] = Some(Rep3Share::new_unchecked(
                        prod.a()[j * len..(j + 1) * len].to_vec(),
                        prod.b()[j * len..(j + 1) * len].to_vec(),
                    ));
                }
            }
            h *= 2;
        }
        Ok(table)
    }

    /// The public constant `c` (a ring word) as a sharing of `len` equal elements: `c` sits in
    /// component `x_0` (party 0's first and party 2's second component). Local.
    pub(crate) fn constant(&self, len: usize, c: u64) -> Rep3Share {
        self.public_share(&vec![c; len])
    }
}

/// The closure of `exponents` under the level split `k ↦ {h, k − h}` (`h` the largest power of
/// two below `k`), as a table `need[k]` of length `max + 1`. `0` is dropped (a constant).
fn needed_powers(exponents: &[usize]) -> Result<Vec<bool>, MpcError> {
    let degree = exponents.iter().copied().max().unwrap_or(0);
    if degree > MAX_POLY_DEGREE {
        return Err(MpcError::PolyDegree {
            max: MAX_POLY_DEGREE,
            got: degree,
        });
    }
    let mut need = vec![false; degree + 1];
    for &e in exponents {
        need[e] = e > 0;
    }
    for k in (2..=degree).rev() {
        if need[k] {
            let h = k.next_power_of_two() / 2;
            need[h] = true;
            need[k - h] = true;
        }
    }
    Ok(need)
}

/// The concatenation of shares (to batch the products of one level into one call).
fn concat<'a>(parts: impl Iterator<Item = &'a Rep3Share>) -> Rep3Share {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for p in parts {
        a.extend_from_slice(p.a());
        b.extend_from_slice(p.b());
    }
    Rep3Share::new_unchecked(a, b)
}
