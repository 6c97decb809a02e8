//! Conversions between arithmetic and boolean sharings: A2B through a Kogge–Stone adder, and B2A
//! for single bits (bit injection). See the module docs of [`crate::rep3`] for the costs.

use super::boolean::{Rep3Bits, component, xor_unchecked};
use super::session::Rep3Session;
use super::share::Rep3Share;
use crate::MpcError;
use crate::transport::Transport;

/// The Kogge–Stone levels: the span doubles each level, `log2(64) = 6` levels.
const KS_SHIFTS: [u32; 6] = [1, 2, 4, 8, 16, 32];

impl<T: Transport> Rep3Session<'_, T> {
    /// Arithmetic to boolean: a boolean sharing of the same 64-bit words. 8 rounds, `104·len`
    /// bytes per party (13 AND words per element).
    ///
    /// The components `x_0, x_1, x_2` are each known to two parties, so each is locally a boolean
    /// sharing with one non-zero component. A full-adder layer (1 round: the carry
    /// `maj(x_0, x_1, x_2) = ((x_0 ⊕ x_2) & (x_1 ⊕ x_2)) ⊕ x_2`) leaves two summands
    /// `s = x_0 ⊕ x_1 ⊕ x_2` and `c = maj << 1`, added by [`Self::add_bits`] (7 rounds).
    pub async fn a2b(&mut self, x: &Rep3Share) -> Result<Rep3Bits, MpcError> {
        let me = self.me;
        let [x0, x1, x2] = [0, 1, 2].map(|k| {
            let (a, b) = component(me, k, x.a(), x.b());
            Rep3Bits::new_unchecked(a, b)
        });
        let x02 = xor_unchecked(&x0, &x2);
        let x12 = xor_unchecked(&x1, &x2);
        let s = xor_unchecked(&x02, &x1);
        let maj = xor_unchecked(&self.and(&x02, &x12).await?, &x2);
        let c = self.shl_bits(&maj, 1);
        self.add_bits(&s, &c).await
    }

    /// `x + y mod 2^64` on boolean sharings, with a Kogge–Stone parallel-prefix adder: 7 rounds,
    /// `96·len` bytes per party.
    ///
    /// Round 1: generate `g = x & y` (propagate `p = x ⊕ y` is local). Then six levels with span
    /// `k = 1, 2, …, 32`: `g ← g ⊕ (p & (g << k))`, `p ← p & (p << k)`, both ANDs of a level in
    /// one round (the last level skips `p`). The sum is `(x ⊕ y) ⊕ (g << 1)`: `g` ends as the
    /// carry out of every bit. (`g` and `p & …` are never both set, so XOR serves as OR.)
    pub async fn add_bits(&mut self, x: &Rep3Bits, y: &Rep3Bits) -> Result<Rep3Bits, MpcError> {
        let p0 = self.xor(x, y)?;
        let mut g = self.and(x, y).await?;
        let mut p = p0.clone();
        for (level, &k) in KS_SHIFTS.iter().enumerate() {
            let g_shift = self.shl_bits(&g, k);
            if level + 1 < KS_SHIFTS.len() {
                let p_shift = self.shl_bits(&p, k);
                let (gp, pp) = self.and2((&p, &g_shift), (&p, &p_shift)).await?;
                g = xor_unchecked(&g, &gp);
                p = pp;
            } else {
                let gp = self.and(&p, &g_shift).await?;
                g = xor_unchecked(&g, &gp);
            }
        }
        Ok(xor_unchecked(&p0, &self.shl_bits(&g, 1)))
    }

    /// Boolean to arithmetic for single bits (bit 0 of each word; the other bits are ignored): an
    /// arithmetic sharing of `b ∈ {0, 1}`. 2 rounds, `16·len` bytes per party.
    ///
    /// Each component `b_k` is known to two parties, so its arithmetic sharing (one non-zero
    /// component) is local. Then `t = b_0 ⊕ b_1 = b_0 + b_1 − 2·b_0·b_1` and
    /// `b = t ⊕ b_2 = t + b_2 − 2·t·b_2`: two multiplications in sequence.
    pub async fn b2a_bit(&mut self, b: &Rep3Bits) -> Result<Rep3Share, MpcError> {
        let me = self.me;
        let low = self.and_public_scalar(b, 1);
        let [b0, b1, b2] = [0, 1, 2].map(|k| {
            let (a, b) = component(me, k, low.a(), low.b());
            Rep3Share::new_unchecked(a, b)
        });
        let t = self.xor_arith(&b0, &b1).await?;
        self.xor_arith(&t, &b2).await
    }

    /// `x ⊕ y = x + y − 2·x·y` for arithmetic sharings of bits: one round, `8·len` bytes per party.
    async fn xor_arith(&mut self, x: &Rep3Share, y: &Rep3Share) -> Result<Rep3Share, MpcError> {
        let xy = self.mul(x, y).await?;
        let sum = self.add(x, y)?;
        self.sub(&sum, &self.mul_public_scalar(&xy, 2))
    }
}
