//! Conversions between arithmetic and boolean sharings: A2B through a Kogge–Stone adder, B2A for
//! whole words (ABY3's bit composition, the same full-adder layer and adder) and for single bits
//! (bit injection). See the module docs of [`crate::rep3`] for the costs.

use super::boolean::{Rep3Bits, component, xor_unchecked};
use super::session::{Rep3Session, draw};
use super::share::Rep3Share;
use crate::MpcError;
use crate::ring;

/// The Kogge–Stone levels: the span doubles each level, `log2(64) = 6` levels.
const KS_SHIFTS: [u32; 6] = [1, 2, 4, 8, 16, 32];

impl Rep3Session {
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
        let (s, c) = self.full_adder(&x0, &x1, &x2).await?;
        self.add_bits(&s, &c).await
    }

    /// One full-adder layer on three boolean summands of equal length: `(s, c)` with
    /// `s = x ⊕ y ⊕ z` and `c = maj(x, y, z) << 1`, so `x + y + z = s + c (mod 2^64)`. One round,
    /// `8·len` bytes per party: `maj = ((x ⊕ z) & (y ⊕ z)) ⊕ z`.
    pub(crate) async fn full_adder(
        &mut self,
        x: &Rep3Bits,
        y: &Rep3Bits,
        z: &Rep3Bits,
    ) -> Result<(Rep3Bits, Rep3Bits), MpcError> {
        let xz = self.xor(x, z)?;
        let yz = self.xor(y, z)?;
        let s = xor_unchecked(&xz, y);
        let maj = xor_unchecked(&self.and(&xz, &yz).await?, z);
        Ok((s, self.shl_bits(&maj, 1)))
    }

    /// Boolean to arithmetic for whole 64-bit words: an arithmetic sharing of the same words
    /// (exact, for every word). 9 rounds; `112·len` bytes at parties 0 and 2, `104·len` at party 1.
    ///
    /// ABY3's bit composition (Mohassel–Rindal, CCS 2018, §5.3): the components `x_1` and `x_2`
    /// of the result are drawn from the PRF streams (`x_1` from `k_{0,1}`, `x_2` from `k_{1,2}`),
    /// so their holders know them and each of `−x_1`, `−x_2` is locally a boolean sharing with one
    /// non-zero component (as in [`Self::a2b`]). A full-adder layer (as in A2B, 1
    /// round, 8 bytes) reduces `x + (−x_1) + (−x_2)` to two summands, [`Self::add_bits`] (7 rounds,
    /// 96 bytes) adds them, and the boolean sharing of `x_0 = x − x_1 − x_2` is opened to the two
    /// holders of `x_0` (1 round: party 2 sends its component `b_2` to party 0, party 0 sends `b_1`
    /// to party 2, 8 bytes each). `x_0` is uniform to each of them (each lacks one of `x_1`, `x_2`),
    /// and the component each receives is determined by `x_0` and its own two.
    pub async fn b2a(&mut self, x: &Rep3Bits) -> Result<Rep3Share, MpcError> {
        let me = self.me;
        let len = x.len();
        let zeros = || vec![0u64; len];
        let neg = |v: &[u64]| v.iter().map(|w| w.wrapping_neg()).collect::<Vec<u64>>();
        let bits = Rep3Bits::new_unchecked;
        // x_1 is shared by parties 0 and 1 (k_{0,1}), x_2 by parties 1 and 2 (k_{1,2}). Party i
        // holds components (i, i+1) of every sharing; `known` are the result's components this
        // party has already (party 0 still lacks x_0 as its first, party 2 as its second).
        let (n1, n2, known) = match me {
            0 => {
                let x1 = draw(&mut self.next, len);
                (bits(zeros(), neg(&x1)), bits(zeros(), zeros()), x1)
            }
            1 => {
                let x1 = draw(&mut self.prev, len);
                let x2 = draw(&mut self.next, len);
                let (n1, n2) = (bits(neg(&x1), zeros()), bits(zeros(), neg(&x2)));
                let (s, c) = self.full_adder(x, &n1, &n2).await?;
                self.add_bits(&s, &c).await?;
                self.round(&[], None).await?;
                return Ok(Rep3Share::new_unchecked(x1, x2));
            }
            _ => {
                let x2 = draw(&mut self.prev, len);
                (bits(zeros(), zeros()), bits(neg(&x2), zeros()), x2)
            }
        };
        let (s, c) = self.full_adder(x, &n1, &n2).await?;
        let sum = self.add_bits(&s, &c).await?;
        // Open x_0 to parties 0 and 2: each sends the component the other lacks.
        let (send, peer) = if me == 0 { (sum.b(), 2) } else { (sum.a(), 0) };
        let missing = self
            .round(&[(peer, send)], Some((peer, len)))
            .await?
            .ok_or(MpcError::Reconstruct("no message received"))?;
        let x0 = xor3(sum.a(), sum.b(), &missing);
        Ok(if me == 0 {
            Rep3Share::new_unchecked(x0, known)
        } else {
            Rep3Share::new_unchecked(known, x0)
        })
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
    /// arithmetic sharing of `b ∈ {0, 1}`. 2 rounds, `8·len` bytes per party.
    ///
    /// With `b = b_0 ⊕ b_1 ⊕ b_2`: party 0 knows `c = b_0 ⊕ b_1`, parties 1 and 2 know `b_2`, and
    /// `b = c ⊕ b_2 = c·(1 − 2b_2) + b_2`. Draw `r, ρ` from `k_{2,0}` and `σ` from `k_{0,1}`.
    /// - Round 1: party 0 sends `c − r` to party 1.
    /// - Now `b = y_1 + y_2` with `y_1 = (c − r)(1 − 2b_2) + b_2` known to party 1 and
    ///   `y_2 = r·(1 − 2b_2)` known to party 2. Round 2: party 1 sends `y_1 − σ` to party 2,
    ///   party 2 sends `y_2 − ρ` to party 1.
    /// - Result: components `(ρ, σ, (y_1 − σ) + (y_2 − ρ))`.
    ///
    /// Each message is masked by a stream its receiver lacks: `r` and `ρ` (from `k_{2,0}`) for
    /// party 1, `σ` (from `k_{0,1}`) for party 2; party 0 receives nothing. Two of three
    /// components are pseudorandom to each party, as in any fresh sharing. Half the bytes of
    /// composing the bit with two multiplications, and no local products.
    pub async fn b2a_bit(&mut self, b: &Rep3Bits) -> Result<Rep3Share, MpcError> {
        let len = b.len();
        match self.me {
            0 => {
                let r = draw(&mut self.prev, len);
                let rho = draw(&mut self.prev, len);
                let sigma = draw(&mut self.next, len);
                let m: Vec<u64> = b
                    .a()
                    .iter()
                    .zip(b.b())
                    .zip(&r)
                    .map(|((b0, b1), r)| ((b0 ^ b1) & 1).wrapping_sub(*r))
                    .collect();
                self.round(&[(1, &m[..])], None).await?;
                self.round(&[], None).await?;
                Ok(Rep3Share::new_unchecked(rho, sigma))
            }
            1 => {
                let sigma = draw(&mut self.prev, len);
                let m = self.recv_from(0, len).await?;
                let y1: Vec<u64> = m
                    .iter()
                    .zip(b.b())
                    .zip(&sigma)
                    .map(|((m, b2), s)| inject(*m, b2 & 1).wrapping_add(b2 & 1).wrapping_sub(*s))
                    .collect();
                let mut z2 = self.exchange(2, &y1).await?;
                ring::add_assign(&mut z2, &y1);
                Ok(Rep3Share::new_unchecked(sigma, z2))
            }
            _ => {
                let r = draw(&mut self.next, len);
                let rho = draw(&mut self.next, len);
                let y2: Vec<u64> = r
                    .iter()
                    .zip(b.a())
                    .zip(&rho)
                    .map(|((r, b2), rho)| inject(*r, b2 & 1).wrapping_sub(*rho))
                    .collect();
                self.round(&[], None).await?;
                let mut z2 = self.exchange(1, &y2).await?;
                ring::add_assign(&mut z2, &y2);
                Ok(Rep3Share::new_unchecked(z2, rho))
            }
        }
    }
}

/// `v·(1 − 2·bit)` for `bit ∈ {0, 1}`: `v` or `−v`.
fn inject(v: u64, bit: u64) -> u64 {
    v.wrapping_mul(1u64.wrapping_sub(bit << 1))
}

/// `a ⊕ b ⊕ c` word-wise.
fn xor3(a: &[u64], b: &[u64], c: &[u64]) -> Vec<u64> {
    a.iter()
        .zip(b)
        .zip(c)
        .map(|((a, b), c)| a ^ b ^ c)
        .collect()
}
