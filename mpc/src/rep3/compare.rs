//! Comparisons and the functions built on them: MSB, less-than and friends, select, ReLU, max.
//! See the module docs of [`crate::rep3`] for the costs and the input range.

use super::boolean::{Rep3Bits, component, xor_unchecked};
use super::packed::{ZERO_BIT, low_mask, permute_bits};
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
    /// Per element, each round's AND bits sit in the low bits of one word, gathered across
    /// elements by `PackedBits::pack` and scattered back after the AND; the
    /// moves between levels are local bit permutations of the shares.
    pub async fn msb(&mut self, x: &Rep3Share) -> Result<Rep3Bits, MpcError> {
        let me = self.me;
        let [x0, x1, x2] = [0, 1, 2].map(|k| {
            let (a, b) = component(me, k, x.a(), x.b());
            Rep3Bits::new_unchecked(a, b)
        });
        let x02 = xor_unchecked(&x0, &x2);
        let x12 = xor_unchecked(&x1, &x2);
        let s = xor_unchecked(&x02, &x1);
        // Round 1: maj bits 0..=62 (c = maj << 1 then has bits 1..=63).
        let maj = self.and_low(&x02, &x12, 63).await?;
        let maj = xor_unchecked(&maj, &self.and_public_scalar(&x2, low_mask(63)));
        let c = self.shl_bits(&maj, 1);
        let sc = xor_unchecked(&s, &c);
        // Round 2: G_j = s_j & c_j for j = 1..=62, stored at position j − 1; P likewise.
        let mut g = self
            .and_low(&self.shr_bits(&s, 1), &self.shr_bits(&c, 1), 62)
            .await?;
        let mut p = self.and_public_scalar(&self.shr_bits(&sc, 1), low_mask(62));
        let mut m: u32 = 62;
        while m > 1 {
            let (g2, p2) = self.carry_level(&g, &p, m).await?;
            (g, p) = (g2, p2);
            m = m.div_ceil(2);
        }
        // msb = s_63 ⊕ c_63 ⊕ carry_63.
        Ok(xor_unchecked(
            &self.bit(&sc, 63),
            &self.and_public_scalar(&g, 1),
        ))
    }

    /// One level of the carry reduction tree over `m ≥ 2` groups per element (group `j` in bit
    /// `j` of the words `g`, `p`): returns the `⌈m/2⌉` combined groups. One round, `2·⌊m/2⌋ − 1`
    /// AND bits per element; the lowest group's `P` is left zero (never needed).
    async fn carry_level(
        &mut self,
        g: &Rep3Bits,
        p: &Rep3Bits,
        m: u32,
    ) -> Result<(Rep3Bits, Rep3Bits), MpcError> {
        let c = m / 2;
        let odd = m % 2 == 1;
        // Left operand: P_{2k+1} for k < c, then P_{2k+1} for 1 ≤ k < c.
        let left_src: Vec<u32> = (0..c).chain(1..c).map(|k| 2 * k + 1).collect();
        // Right operand: G_{2k} for k < c, then P_{2k} for 1 ≤ k < c (disjoint bit ranges).
        let g_src: Vec<u32> = (0..c).map(|k| 2 * k).collect();
        let p_src: Vec<u32> = (0..c)
            .map(|_| ZERO_BIT)
            .chain((1..c).map(|k| 2 * k))
            .collect();
        let left = permute_bits(p, &left_src);
        let right = xor_unchecked(&permute_bits(g, &g_src), &permute_bits(p, &p_src));
        let r = self.and_low(&left, &right, 2 * c - 1).await?;
        // G'_k = G_{2k+1} ⊕ (P_{2k+1} ∧ G_{2k}); an odd top group passes through to position c.
        let g_hi: Vec<u32> = (0..c)
            .map(|k| 2 * k + 1)
            .chain(odd.then_some(m - 1))
            .collect();
        let g_new = xor_unchecked(
            &permute_bits(g, &g_hi),
            &self.and_public_scalar(&r, low_mask(c)),
        );
        // P'_k = P_{2k+1} ∧ P_{2k} (bit c + k − 1 of r) for 1 ≤ k < c; P'_0 unused.
        let r_src: Vec<u32> = std::iter::once(ZERO_BIT)
            .chain((1..c).map(|k| c + k - 1))
            .collect();
        let p_top: Vec<u32> = (0..c)
            .map(|_| ZERO_BIT)
            .chain(odd.then_some(m - 1))
            .collect();
        let p_new = xor_unchecked(&permute_bits(&r, &r_src), &permute_bits(p, &p_top));
        Ok((g_new, p_new))
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
