//! Comparisons and the functions built on them: MSB, less-than and friends, select, ReLU, max.
//! See the module docs of [`crate::rep3`] for the costs and the input range.

use zeroize::Zeroize;

use super::boolean::Rep3Bits;
use super::packed::{PackedBits, even_bits, low_mask};
use super::session::Rep3Session;
use super::share::Rep3Share;
use crate::MpcError;
use crate::transport::Transport;

impl<T: Transport> Rep3Session<'_, T> {
    /// The most significant bit of each element (`1` iff `x < 0` as a signed 64-bit integer), as
    /// a boolean sharing of bit 0. Exact for every `x`. 8 rounds, 241 AND bits per element:
    /// `8·(⌈63n/64⌉ + ⌈62n/64⌉ + ⌈61n/64⌉ + ⌈29n/64⌉ + ⌈15n/64⌉ + ⌈7n/64⌉ + ⌈3n/64⌉ + ⌈n/64⌉)`
    /// bytes per party, about `30.1·n` (`1144` for `n = 37`).
    ///
    /// Carry-only circuit: as in [`Self::a2b`], a full-adder layer turns `x_0 + x_1 + x_2` into
    /// `s + c` with `s = x_0 ⊕ x_1 ⊕ x_2`, `c = maj(x_0, x_1, x_2) << 1`; then
    /// `msb(x) = s_63 ⊕ c_63 ⊕ carry_63`, where `carry_63` is the carry out of bits `0..=62` of
    /// `s + c`. Since `c_0 = 0`, bit 0 generates no carry, so `carry_63` is the group generate of
    /// the 62 pairs `(G_j, P_j) = (s_j ∧ c_j, s_j ⊕ c_j)`, `j = 1..=62`, reduced by a binary tree
    /// of `(G_h, P_h) ∘ (G_l, P_l) = (G_h ⊕ (P_h ∧ G_l), P_h ∧ P_l)` (the XOR is exact: `G_h` and
    /// `P_h` are never both set). The lowest group's `P` is never needed. Rounds, with every AND
    /// of a round packed densely (`PackedBits`, one message per round):
    ///
    /// 1. `maj` bits `0..=62` (63 AND bits per element);
    /// 2. `G_1..G_62` (62 bits);
    /// 3. – 8. six tree levels over `62 → 31 → 16 → 8 → 4 → 2 → 1` groups; a level with `m`
    ///    groups pairs `(2k+1, 2k)`, `k < ⌊m/2⌋`, and passes an odd top group through: `⌊m/2⌋`
    ///    `G` ANDs plus `⌊m/2⌋ − 1` `P` ANDs, together `61 + 29 + 15 + 7 + 3 + 1 = 116` bits.
    ///
    /// Per element, each round's AND operands are computed into the low bits of one word and
    /// gathered across elements into a dense `PackedBits` as they are computed; the moves between
    /// levels are gathers of the even or odd bits of a word (a few shifts and masks, applied to
    /// both components of the share).
    pub async fn msb(&mut self, x: &Rep3Share) -> Result<Rep3Bits, MpcError> {
        let n = x.len();
        let (xa, xb) = (x.a(), x.b());
        // The boolean sharings of x_0 ⊕ x_2, x_1 ⊕ x_2 and x_2 (each component known to its
        // holders) are this party's components masked: see `summand_masks`.
        let [m02, m12, m2] = summand_masks(self.me);
        let (m62, m63) = (low_mask(62), low_mask(63));
        // Round 1: maj bits 0..=62 of the full adder, maj = (x02 ∧ x12) ⊕ x2.
        let x02 = PackedBits::pack_with(n, 63, |e| (xa[e] & m02.0, xb[e] & m02.1));
        let x12 = PackedBits::pack_with(n, 63, |e| (xa[e] & m12.0, xb[e] & m12.1));
        let and1 = self.and_packed(&x02, &x12).await?;
        let maj = |e: usize| {
            let (a, b) = and1.get(63, e);
            (a ^ (xa[e] & m2.0 & m63), b ^ (xb[e] & m2.1 & m63))
        };
        // s = x_0 ⊕ x_1 ⊕ x_2 is (xa, xb) itself, c = maj << 1. Round 2: G_j = s_j ∧ c_j for
        // j = 1..=62, at position j − 1 (c >> 1 = maj); P likewise, local.
        let s_hi = PackedBits::pack_with(n, 62, |e| (xa[e] >> 1, xb[e] >> 1));
        let c_hi = PackedBits::pack_with(n, 62, maj);
        let (mut pa, mut pb) = (Vec::with_capacity(n), Vec::with_capacity(n));
        // s_63 ⊕ c_63, the part of the msb outside the carry.
        let (mut ta, mut tb) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for e in 0..n {
            let (ma, mb) = maj(e);
            pa.push(((xa[e] >> 1) ^ ma) & m62);
            pb.push(((xb[e] >> 1) ^ mb) & m62);
            ta.push((xa[e] >> 63) ^ ((ma >> 62) & 1));
            tb.push((xb[e] >> 63) ^ ((mb >> 62) & 1));
        }
        drop(and1);
        let g = self.and_packed(&s_hi, &c_hi).await?.unpack(62);
        let (mut ga, mut gb) = g.into_parts();
        // Rounds 3–8: the carry tree over 62 → 31 → 16 → 8 → 4 → 2 → 1 groups.
        let mut m: u32 = 62;
        while m > 1 {
            let (c, odd) = (m / 2, m % 2 == 1);
            let w = 2 * c - 1;
            let left = PackedBits::pack_with(n, w, |e| (tree_left(pa[e], c), tree_left(pb[e], c)));
            let right = PackedBits::pack_with(n, w, |e| {
                (tree_right(ga[e], pa[e], c), tree_right(gb[e], pb[e], c))
            });
            let r = self.and_packed(&left, &right).await?;
            for e in 0..n {
                let (ra, rb) = r.get(w, e);
                (ga[e], pa[e]) = tree_next(ga[e], pa[e], ra, c, odd);
                (gb[e], pb[e]) = tree_next(gb[e], pb[e], rb, c, odd);
            }
            m = m.div_ceil(2);
        }
        // msb = s_63 ⊕ c_63 ⊕ carry_63.
        for (t, g) in ta.iter_mut().zip(&ga).chain(tb.iter_mut().zip(&gb)) {
            *t ^= g & 1;
        }
        for v in [&mut ga, &mut gb, &mut pa, &mut pb] {
            v.zeroize();
        }
        Ok(Rep3Bits::new_unchecked(ta, tb))
    }

    /// `x < y` (signed) as a boolean sharing of bit 0: `msb(x − y)`. Correct when
    /// `|x − y| < 2^63` as integers (e.g. both in `[−2^62, 2^62)`); otherwise the difference wraps.
    /// 8 rounds, about `30.1·len` bytes per party (as [`Self::msb`]).
    pub async fn lt(&mut self, x: &Rep3Share, y: &Rep3Share) -> Result<Rep3Bits, MpcError> {
        let d = self.sub(x, y)?;
        self.msb(&d).await
    }

    /// `x > y` (signed), as [`Self::lt`]`(y, x)`: same range and cost.
    pub async fn gt(&mut self, x: &Rep3Share, y: &Rep3Share) -> Result<Rep3Bits, MpcError> {
        self.lt(y, x).await
    }

    /// `x ≥ y` (signed), `NOT lt(x, y)`: same range and cost.
    pub async fn ge(&mut self, x: &Rep3Share, y: &Rep3Share) -> Result<Rep3Bits, MpcError> {
        let lt = self.lt(x, y).await?;
        Ok(self.not_bit(&lt))
    }

    /// `x ≤ y` (signed), `NOT gt(x, y)`: same range and cost.
    pub async fn le(&mut self, x: &Rep3Share, y: &Rep3Share) -> Result<Rep3Bits, MpcError> {
        let gt = self.gt(x, y).await?;
        Ok(self.not_bit(&gt))
    }

    /// `bit ? x : y` element-wise, as `y + b·(x − y)` with `b` = [`Self::b2a_bit`]`(bit)` (bit 0
    /// of each word): 3 rounds, `24·len` bytes per party.
    pub async fn select(
        &mut self,
        bit: &Rep3Bits,
        x: &Rep3Share,
        y: &Rep3Share,
    ) -> Result<Rep3Share, MpcError> {
        let d = self.sub(x, y)?;
        if bit.len() != d.len() {
            return Err(MpcError::LengthMismatch {
                what: "rep3 select condition",
                expected: d.len(),
                got: bit.len(),
            });
        }
        let b = self.b2a_bit(bit).await?;
        let bd = self.mul(&b, &d).await?;
        self.add(y, &bd)
    }

    /// `max(x, 0)` (signed) element-wise, as `(1 − msb(x))·x`: exact for every `x`. 11 rounds,
    /// about `54.1·len` bytes per party ([`Self::msb`] plus `24·len`).
    pub async fn relu(&mut self, x: &Rep3Share) -> Result<Rep3Share, MpcError> {
        let neg = self.msb(x).await?;
        let pos = self.not_bit(&neg);
        let b = self.b2a_bit(&pos).await?;
        self.mul(&b, x).await
    }

    /// `max(x, y)` (signed) element-wise, `lt(x, y) ? y : x`: same range as [`Self::lt`]. 11
    /// rounds, about `54.1·len` bytes per party ([`Self::lt`] plus `24·len`).
    pub async fn max(&mut self, x: &Rep3Share, y: &Rep3Share) -> Result<Rep3Share, MpcError> {
        let lt = self.lt(x, y).await?;
        self.select(&lt, y, x).await
    }
}

/// Masks selecting, in this party's two slots (components `me` and `me+1` of a boolean
/// sharing), the summands of the full adder: `x_0 ⊕ x_2`, `x_1 ⊕ x_2` and `x_2`, where the
/// boolean sharing of an arithmetic component `x_k` has `x_k` at position `k` and zeros
/// elsewhere. Party `me` holds `x_me` and `x_{me+1}` as its arithmetic components, so a slot
/// holds the component itself or zero.
fn summand_masks(me: usize) -> [(u64, u64); 3] {
    let has = |set: &[usize], slot: usize| {
        if set.contains(&(slot % 3)) {
            u64::MAX
        } else {
            0
        }
    };
    [&[0, 2][..], &[1, 2], &[2]].map(|set| (has(set, me), has(set, me + 1)))
}

/// Left operand of a carry-tree level with `c` pairs (one component word): `P_{2k+1}` at bit
/// `k` for `k < c`, then `P_{2k+1}` for `1 ≤ k < c` at bits `c..2c−1`.
#[inline]
fn tree_left(p: u64, c: u32) -> u64 {
    let odd = even_bits(p >> 1) & low_mask(c);
    odd | ((odd >> 1) << c)
}

/// Right operand: `G_{2k}` at bit `k` for `k < c`, then `P_{2k}` for `1 ≤ k < c` at bits
/// `c..2c−1`.
#[inline]
fn tree_right(g: u64, p: u64, c: u32) -> u64 {
    (even_bits(g) & low_mask(c)) | (((even_bits(p) >> 1) & low_mask(c - 1)) << c)
}

/// The next level's `(G', P')` from `(G, P)` and the level's AND bits `r`:
/// `G'_k = G_{2k+1} ⊕ r_k`, `P'_k = r_{c+k−1}` for `1 ≤ k < c` (`P'_0` is never needed and left
/// zero), and with an odd group count the top group `2c` passes through to position `c`.
#[inline]
fn tree_next(g: u64, p: u64, r: u64, c: u32, odd: bool) -> (u64, u64) {
    let top = if odd { 1u64 << c } else { 0 };
    let g2 = ((even_bits(g >> 1) ^ r) & low_mask(c)) | (even_bits(g) & top);
    let p2 = ((r >> (c - 1)) & low_mask(c) & !1) | (even_bits(p) & top);
    (g2, p2)
}
