//! Equality and zero test: one input round that turns "is `x` zero" into "are two 64-bit words
//! equal", then a packed log-depth AND tree over the 64 bits. See the module docs of
//! [`crate::rep3`] for the protocol, its cost and what each party sees.

use zeroize::Zeroize;

use super::boolean::Rep3Bits;
use super::packed::Planes;
use super::session::{Rep3Session, draw, next_of, prev_of};
use super::share::Rep3Share;
use crate::MpcError;
use crate::transport::PartyIndex;

/// Widths of the AND-tree levels: level `h` ANDs bits `0..h` with bits `h..2h` of every word.
pub(crate) const EQ_LEVELS: [u32; 6] = [32, 16, 8, 4, 2, 1];

/// The role of element `j` in the input round: which arithmetic component stays local.
fn role(j: usize) -> PartyIndex {
    j % 3
}

/// How many of `n` elements have role `k`.
pub(crate) fn role_count(n: usize, k: PartyIndex) -> usize {
    (n + 2 - k) / 3
}

impl Rep3Session {
    /// `x == y` element-wise, as a boolean sharing of bit 0 (the other bits zero): exact for all
    /// words (no range condition; equality in Z_2^64, so also for signed values). As
    /// [`Self::is_zero`]`(x − y)`: 7 rounds, about `10.5·len` bytes per party.
    pub async fn eq(&mut self, x: &Rep3Share, y: &Rep3Share) -> Result<Rep3Bits, MpcError> {
        let d = self.sub(x, y)?;
        self.is_zero(&d).await
    }

    /// `x == 0` element-wise, as a boolean sharing of bit 0 (the other bits zero). Exact for
    /// every word.
    ///
    /// 7 rounds. Bytes per party: `8·c_{i−1}` in round 1, where `c_k = ⌈(len − k)/3⌉` counts the
    /// elements of role `k` (`j mod 3 = k`), plus `8·Σ_h ⌈len·h/64⌉` over the tree widths
    /// `h ∈ {32, 16, 8, 4, 2, 1}` (63 AND bits per element): about `(8/3 + 63/8)·len ≈ 10.5·len`
    /// (`416` at parties 0 and 2, `424` at party 1 for `len = 37`).
    ///
    /// Round 1 (input): for element `j` of role `k = j mod 3`, `x = 0` iff `x_k = v` with
    /// `v = −(x_{k+1} + x_{k+2})`. Party `k+1` holds both `x_{k+1}`, `x_{k+2}`, so it knows `v`;
    /// parties `k` and `k−1` both hold `x_k`. The boolean sharing of `x_k ⊕ v` takes component
    /// `k` = `x_k` (local), component `k+1` = `r` from the stream `k_{k,k+1}` (local to parties
    /// `k` and `k+1`) and component `k+2` = `v ⊕ r`, which party `k+1` computes and sends to
    /// party `k+2`. Each party sends to the next one, for the third of the elements it is
    /// party `k+1` of. Rounds 2–7: `w = ¬(x_k ⊕ v)` is all ones iff `x = 0`; six AND levels
    /// `w ← (w & (w >> h)) & (2^h − 1)` for `h = 32, 16, …, 1` leave the answer in bit 0. They
    /// run on bit planes (64 elements per word, see `Planes`), where `w >> h` is a choice of
    /// words; each level sends `⌈h·len/64⌉` words.
    pub async fn is_zero(&mut self, x: &Rep3Share) -> Result<Rep3Bits, MpcError> {
        let input = self.zero_test_input(x).await?;
        let e = self.not(&input);
        // Bit planes (`Planes`): level h ANDs planes 0..h with planes h..2h.
        let mut w = [Planes::from_words(e.a()), Planes::from_words(e.b())];
        drop(e);
        for h in EQ_LEVELS {
            let h = h as usize;
            let [lo, hi] = [0..h, h..2 * h].map(|r| {
                w.each_ref()
                    .map(|p| Planes::map(&[p], h, |q, d| d.copy_from_slice(&q[0][r.clone()])))
            });
            let (a, b) = self.and_planes((&lo[0], &lo[1]), (&hi[0], &hi[1])).await?;
            w = [a, b];
        }
        let [a, b] = w.each_ref().map(Planes::plane0_words);
        Ok(Rep3Bits::new_unchecked(a, b))
    }

    /// Round 1 of [`Self::is_zero`]: the boolean sharing of `x_k ⊕ v` per element, with role
    /// `k = j mod 3` and `v = −(x_{k+1} + x_{k+2})`; each party sends to the next one.
    async fn zero_test_input(&mut self, x: &Rep3Share) -> Result<Rep3Bits, MpcError> {
        let me = self.me;
        let (prev, next) = (prev_of(me), next_of(me));
        let n = x.len();
        // Roles relative to me: `me` (x_k is my first component, r is on my next stream),
        // `prev` (I am party k+1: r on my prev stream, I compute v ⊕ r and send it to `next`),
        // `next` (I am party k+2: I receive v ⊕ r from `prev`, x_k is my second component).
        let mut r_next = draw(&mut self.next, role_count(n, me));
        let mut r_prev = draw(&mut self.prev, role_count(n, prev));
        let mut sent: Vec<u64> = (0..n)
            .filter(|&j| role(j) == prev)
            .zip(&r_prev)
            .map(|(j, r)| x.a()[j].wrapping_add(x.b()[j]).wrapping_neg() ^ r)
            .collect();
        let got = self
            .round(&[(next, &sent[..])], Some((prev, role_count(n, next))))
            .await?
            .ok_or(MpcError::Reconstruct("no message received"))?;
        let mut a = Vec::with_capacity(n);
        let mut b = Vec::with_capacity(n);
        let (mut i_next, mut i_prev, mut i_got) = (0, 0, 0);
        for j in 0..n {
            let k = role(j);
            if k == me {
                a.push(x.a()[j]);
                b.push(r_next[i_next]);
                i_next += 1;
            } else if k == prev {
                a.push(r_prev[i_prev]);
                b.push(sent[i_prev]);
                i_prev += 1;
            } else {
                a.push(got[i_got]);
                b.push(x.b()[j]);
                i_got += 1;
            }
        }
        let mut got = got;
        for v in [&mut r_next, &mut r_prev, &mut sent, &mut got] {
            v.zeroize();
        }
        Ok(Rep3Bits::new_unchecked(a, b))
    }
}
