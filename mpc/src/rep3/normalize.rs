//! Normalisation of fixed-point values: the leading one bit of every element (A2B, then a
//! log-depth prefix-OR from the top, packed), and from its one-hot word the aligned mantissa (one
//! round) and any public table of the bit position (locally), converted to arithmetic sharings
//! together by one batched [`Rep3Session::b2a`]. Also the conditional negation that gives `|x|` on
//! boolean shares. See the module docs of [`crate::rep3`] for the protocol and costs.

use super::boolean::{Rep3Bits, xor_unchecked};
use super::packed::low_mask;
use super::session::Rep3Session;
use super::share::{Rep3Share, check_len};
use crate::MpcError;
use crate::fixed::MAX_FRAC_BITS;

/// The spans of the log-depth prefix networks over 64 bits (`log2 64 = 6` levels).
const SPANS: [u32; 6] = [1, 2, 4, 8, 16, 32];

/// Bits `0..=62`: the leading-one positions of positive 64-bit words.
pub(crate) const POSITIVE: u64 = (1 << 63) - 1;

/// A secret positive fixed-point vector split as `x = m · 2^e` (see [`Rep3Session::normalize`]).
#[derive(Clone, Debug)]
pub struct Normalized {
    /// The mantissa `m ∈ [0.5, 1)`, at the input's fractional bits.
    pub mantissa: Rep3Share,
    /// The exponent `e` as a plain (not fixed-point) integer.
    pub exponent: Rep3Share,
}

/// A GF(2)-linear map of 64-bit words, given by the images of the 64 unit words and evaluated a
/// byte at a time (8 table lookups per word). It commutes with XOR, so applied to both components
/// of a boolean sharing it is local. On a one-hot word with bit `p` set it returns `images(p)`: any
/// public table of the leading-one position (scale factors, exponents, `e·ln 2`), and `0` on the
/// zero word.
pub(crate) struct WordMap {
    tables: Vec<[u64; 256]>,
}

impl WordMap {
    /// The map sending unit word `p` (bit `p` set, `p < 64`) to `images(p)`.
    pub(crate) fn from_images(images: impl Fn(u32) -> u64) -> Self {
        let tables = (0..8u32)
            .map(|byte| {
                let mut t = [0u64; 256];
                for v in 1..256usize {
                    t[v] = t[v & (v - 1)] ^ images(8 * byte + v.trailing_zeros());
                }
                t
            })
            .collect();
        Self { tables }
    }

    fn word(&self, v: u64) -> u64 {
        self.tables
            .iter()
            .enumerate()
            .fold(0, |acc, (k, t)| acc ^ t[((v >> (8 * k)) & 0xff) as usize])
    }

    /// The map applied to every word of both components. Local.
    pub(crate) fn apply(&self, x: &Rep3Bits) -> Rep3Bits {
        x.map(|v| self.word(v))
    }
}

/// This party's part of a 3-out-of-3 sharing of [`Rep3Session::align`]'s result (equal lengths
/// by the caller). Output bit `i` is the GF(2) inner product `⊕_j h_j ∧ x_{j + i − c}` (summed
/// over the classes), so the party's cross terms are
/// `parity(h_i & (x_i ⊕ x_{i+1})') ⊕ parity(h_{i+1} & x_i')` of the shifted words
/// `x' = x >> (i − c)`, as for a dot product. Local.
pub(crate) fn align_cross(
    x: &Rep3Bits,
    h: &Rep3Bits,
    classes: &[(u64, u32)],
    width: u32,
) -> Vec<u64> {
    debug_assert_eq!(x.len(), h.len());
    (0..x.len())
        .map(|e| {
            let (xa, xb, ha, hb) = (x.a()[e], x.b()[e], h.a()[e], h.b()[e]);
            let xab = xa ^ xb;
            let mut out = 0u64;
            for &(mask, c) in classes {
                let (ham, hbm) = (ha & mask, hb & mask);
                for i in 0..width {
                    let s = i as i32 - c as i32;
                    let cross = (ham & shift(xab, s)) ^ (hbm & shift(xa, s));
                    out ^= u64::from(cross.count_ones() & 1) << i;
                }
            }
            out
        })
        .collect()
}

/// `v · 2^{−s}` for `s ≥ 0`, `v · 2^{|s|}` for `s < 0` (logical shifts; `|s| ≥ 64` gives 0).
fn shift(v: u64, s: i32) -> u64 {
    if s >= 0 {
        v.checked_shr(s.unsigned_abs()).unwrap_or(0)
    } else {
        v.checked_shl(s.unsigned_abs()).unwrap_or(0)
    }
}

impl Rep3Session {
    /// The one-hot word of the leading one bit of every word of `x` (bit `p` set where `p` is the
    /// position of the highest set bit, reading the word as unsigned; the zero word gives zero).
    /// 6 rounds; `321` AND bits per element: `8·Σ_s ⌈(64 − s)·len / 64⌉` bytes per party,
    /// `s ∈ {1, 2, 4, 8, 16, 32}` (`≈ 40.1·len`). See [`Self::none_above`] and [`one_hot`].
    pub(crate) async fn leading_one(&mut self, x: &Rep3Bits) -> Result<Rep3Bits, MpcError> {
        let none = self.none_above(x).await?;
        Ok(self.one_hot(&none))
    }

    /// `none` with bit `j` set iff `x` has no set bit at positions `≥ j` (so bit 0 says `x = 0`):
    /// a log-depth prefix-OR from the top, on the complement. Start from `¬x` ("no set bit in
    /// `[j, j+1)`"); the level with span `s` sets `none_j ← none_j ∧ none_{j+s}` for
    /// `j < 64 − s` (the window grows to `[j, j+2s)`; higher `j` already reach bit 63), all
    /// `64 − s` ANDs of an element packed into one round. 6 rounds, 321 AND bits per element.
    pub(crate) async fn none_above(&mut self, x: &Rep3Bits) -> Result<Rep3Bits, MpcError> {
        let mut none = self.not(x);
        for s in SPANS {
            let w = 64 - s;
            let low = self.and_low(&none, &self.shr_bits(&none, s), w).await?;
            none = xor_unchecked(&low, &self.and_public_scalar(&none, !low_mask(w)));
        }
        Ok(none)
    }

    /// The one-hot word of the leading one from [`Self::none_above`]'s word:
    /// `h_j = none_{j+1} ⊕ none_j` with `none_64 = 1` (`none_j` implies `none_{j+1}`, so the XOR
    /// is `none_{j+1} ∧ ¬none_j`). Local.
    pub(crate) fn one_hot(&self, none: &Rep3Bits) -> Rep3Bits {
        let above = self.xor_public_scalar(&self.shr_bits(none, 1), 1 << 63);
        xor_unchecked(&above, none)
    }

    /// `(|x|, sign)` for two's-complement words: `sign` is bit 63 moved to bit 0 and
    /// `|x| = (x ⊕ S) + sign` with `S` the sign broadcast to all bits (`i64::MIN` gives `2^63`).
    /// 6 rounds, 321 AND bits per element (as [`Self::leading_one`]).
    ///
    /// The increment is a carry chain: the carry into bit `j` is `sign ∧ w_0 ∧ … ∧ w_{j−1}` for
    /// `w = x ⊕ S`, i.e. the prefix-AND from the bottom of `v = (w << 1) ⊕ sign`, computed with
    /// spans `1, 2, …, 32` (`P_j ← P_j ∧ P_{j−s}` for `j ≥ s`, packed as above).
    pub(crate) async fn abs_bits(
        &mut self,
        x: &Rep3Bits,
    ) -> Result<(Rep3Bits, Rep3Bits), MpcError> {
        let sign = self.bit(x, 63);
        let w = x.map(|v| v ^ (v >> 63).wrapping_neg());
        let mut carry = xor_unchecked(&self.shl_bits(&w, 1), &sign);
        for s in SPANS {
            let r = self
                .and_low(&self.shr_bits(&carry, s), &carry, 64 - s)
                .await?;
            carry = xor_unchecked(
                &self.shl_bits(&r, s),
                &self.and_public_scalar(&carry, low_mask(s)),
            );
        }
        Ok((xor_unchecked(&w, &carry), sign))
    }

    /// Moves the leading one of every word of `x` to a fixed position: with `h` the one-hot word
    /// of `x`'s leading one (bit `p`), returns the low `width` bits of `x · 2^{c − p}` (a left
    /// shift for `c ≥ p`, otherwise a right shift that drops the low bits), where `c` is the
    /// target of the class whose `mask` contains bit `p`; `0` when no class contains `p` (or
    /// `h = 0`). One round, `width` AND bits per element: `8·⌈width·len / 64⌉` bytes per party.
    /// The local part is [`align_cross`].
    pub(crate) async fn align(
        &mut self,
        x: &Rep3Bits,
        h: &Rep3Bits,
        classes: &[(u64, u32)],
        width: u32,
    ) -> Result<Rep3Bits, MpcError> {
        check_len("rep3 align (one-hot word)", x.len(), h.len())?;
        let z = align_cross(x, h, classes, width);
        let mut out = self.reshare_packed(&[(&z, width)]).await?;
        out.pop()
            .ok_or(MpcError::Reconstruct("reshare lost a part (internal)"))
    }

    /// Whole-word [`Self::b2a`] of several equal-length boolean sharings in one batch (the same
    /// 9 rounds; bytes add up).
    pub(crate) async fn b2a_batch(
        &mut self,
        words: &[&Rep3Bits],
    ) -> Result<Vec<Rep3Share>, MpcError> {
        let all = self.b2a(&Rep3Bits::concat_all(words)).await?;
        Ok(all.split_equal(words.len().max(1)))
    }

    /// `x = m · 2^e` for positive fixed-point `x` (at `frac_bits` fractional bits): the mantissa
    /// `m ∈ [0.5, 1)` at `frac_bits` fractional bits and the integer exponent `e`. Exact: with
    /// `X = x·2^f` the encoded input and `p = ⌊log2 X⌋`, `e = p + 1 − f` and
    /// `m = ⌊X · 2^{f−1−p}⌋ / 2^f` (the top `f` bits of `X`: exact when `p < f`, truncated
    /// otherwise, so `0 ≤ x·2^{−e} − m < 2^{−f}`). Every positive `x` is supported.
    ///
    /// **Protocol.** [`Self::a2b`] (8 rounds); the leading one's one-hot word `h` by a packed
    /// log-depth prefix-OR (6 rounds, 321 AND bits); the mantissa bits as GF(2) inner products of
    /// `h` with shifted copies of `x` (1 round, `f` bits); the exponent's binary encoding as a
    /// local linear map of `h` (bit `b` of `e` is the XOR of the `h_p` with bit `b` of `p + 1 − f`
    /// set); one [`Self::b2a`] of both words (9 rounds). 24 rounds; bytes per party
    /// `104n + 8·Σ_s ⌈(64 − s)n/64⌉ + 8⌈fn/64⌉ + 224n` (`208n` at party 1), about `370n` at
    /// `f = 16`.
    ///
    /// **Bad inputs.** `x = 0` gives `m = 0, e = 0`; a negative `x` (bit 63 set) gives
    /// `m = 0, e = 0` too. Fails with [`MpcError::UnsupportedFracBits`] unless
    /// `1 ≤ frac_bits ≤ 40`.
    pub async fn normalize(
        &mut self,
        x: &Rep3Share,
        frac_bits: u32,
    ) -> Result<Normalized, MpcError> {
        let f = frac_bits;
        if !(1..=MAX_FRAC_BITS).contains(&f) {
            return Err(MpcError::UnsupportedFracBits {
                op: "rep3 normalize",
                min: 1,
                max: MAX_FRAC_BITS,
                got: f,
            });
        }
        let xb = self.a2b(x).await?;
        let h = self.leading_one(&xb).await?;
        let m = self.align(&xb, &h, &[(POSITIVE, f - 1)], f).await?;
        let e = WordMap::from_images(|p| {
            if p < 63 {
                (i64::from(p) + 1 - i64::from(f)) as u64
            } else {
                0
            }
        })
        .apply(&h);
        let mut out = self.b2a_batch(&[&m, &e]).await?.into_iter();
        match (out.next(), out.next()) {
            (Some(mantissa), Some(exponent)) => Ok(Normalized { mantissa, exponent }),
            _ => Err(MpcError::Reconstruct("b2a batch lost a part (internal)")),
        }
    }
}
