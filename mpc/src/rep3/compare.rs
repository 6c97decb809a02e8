//! Comparisons and the functions built on them: MSB, less-than and friends, select, ReLU, max.
//! See the module docs of [`crate::rep3`] for the costs and the input range.

use super::boolean::Rep3Bits;
use super::packed::Planes;
use super::session::Rep3Session;
use super::share::Rep3Share;
use crate::MpcError;

impl Rep3Session {
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
    /// of a round packed (one message per round):
    ///
    /// 1. `maj` bits `0..=62` (63 AND bits per element);
    /// 2. `G_1..G_62` (62 bits);
    /// 3. – 8. six tree levels over `62 → 31 → 16 → 8 → 4 → 2 → 1` groups; a level with `m`
    ///    groups pairs `(2k+1, 2k)`, `k < ⌊m/2⌋`, and passes an odd top group through: `⌊m/2⌋`
    ///    `G` ANDs plus `⌊m/2⌋ − 1` `P` ANDs, together `61 + 29 + 15 + 7 + 3 + 1 = 116` bits.
    ///
    /// The circuit runs bit-sliced (see `Planes`): both components of the share are transposed
    /// once into bit planes, 64 elements per word; every AND operand, and every move between
    /// levels, is then a choice of plane words, and the result is plane 0 of the last XOR.
    pub async fn msb(&mut self, x: &Rep3Share) -> Result<Rep3Bits, MpcError> {
        Ok(self.msb_core(x, false).await?.0)
    }

    /// `(msb(x), x == 0)` element-wise, both as boolean sharings of bit 0: [`Self::msb`]'s
    /// circuit with the zero test riding along, exact for every word. 8 rounds, 304 AND bits per
    /// element: `8·(⌈63n/64⌉ + ⌈62n/64⌉ + ⌈93n/64⌉ + ⌈45n/64⌉ + ⌈23n/64⌉ + ⌈11n/64⌉ +
    /// ⌈5n/64⌉ + ⌈2n/64⌉)` bytes per party, `38n` for large `n` (`1440` for `n = 37`; the msb
    /// alone is `≈ 30.1n`, [`Self::is_zero`] alone `≈ 10.5n` in 7 more rounds).
    ///
    /// With `(s, c)` the two summands of the full-adder layer, `x = s + c (mod 2^64)`, and
    /// `s + c ≡ 0` iff `s ⊕ c = (s ∨ c) << 1`: if every sum bit is zero, the carry into bit `j`
    /// is `s_j ⊕ c_j` and the carry out is then `maj(s_j, c_j, s_j ⊕ c_j) = s_j ∨ c_j`; conversely
    /// the equation makes every sum bit zero, by induction from `carry_0 = 0`. After round 2 of
    /// the msb circuit every bit of both sides is local: `(s ⊕ c)_j` is `P_j` (`s_0` at `j = 0`,
    /// `s_63 ⊕ c_63` at the top), `(s ∨ c)_j = P_j ⊕ G_j` (`s_0` at `j = 0`, as `c_0 = 0`). The
    /// 64 XNORs are reduced by an AND tree `64 → 32 → … → 1` whose six levels share the six
    /// rounds of the carry tree (one packed AND per round carries both).
    pub async fn msb_is_zero(&mut self, x: &Rep3Share) -> Result<(Rep3Bits, Rep3Bits), MpcError> {
        match self.msb_core(x, true).await? {
            (msb, Some(zero)) => Ok((msb, zero)),
            (_, None) => Err(MpcError::Reconstruct("msb lost the zero test (internal)")),
        }
    }

    /// The circuit of [`Self::msb`] and, if `with_zero`, the zero test of
    /// [`Self::msb_is_zero`] in the same rounds.
    async fn msb_core(
        &mut self,
        x: &Rep3Share,
        with_zero: bool,
    ) -> Result<(Rep3Bits, Option<Rep3Bits>), MpcError> {
        let n = x.len();
        // Bit planes of this party's components (x_me, x_{me+1}); s = x_0 ⊕ x_1 ⊕ x_2 is the
        // pair itself. The boolean sharings of x_0 ⊕ x_2, x_1 ⊕ x_2 and x_2 hold each slot's
        // component or zero (see `summand_slots`).
        let s = [Planes::from_words(x.a()), Planes::from_words(x.b())];
        let [in02, in12, in2] = summand_slots(self.me);
        let low = |slot: usize, on: bool, w: usize| -> Planes {
            if on {
                Planes::map(&[&s[slot]], w, |p, d| d.copy_from_slice(&p[0][..w]))
            } else {
                Planes::zeros(n, w)
            }
        };
        // Round 1: maj bits 0..=62 of the full adder, maj = (x02 ∧ x12) ⊕ x2.
        let x02 = [low(0, in02[0], 63), low(1, in02[1], 63)];
        let x12 = [low(0, in12[0], 63), low(1, in12[1], 63)];
        let (r0, r1) = self
            .and_planes((&x02[0], &x02[1]), (&x12[0], &x12[1]))
            .await?;
        let maj = [(r0, 0), (r1, 1)].map(|(r, slot)| {
            let x2 = low(slot, in2[slot], 63);
            Planes::map(&[&r, &x2], 63, |p, d| {
                for (j, d) in d.iter_mut().enumerate() {
                    *d = p[0][j] ^ p[1][j];
                }
            })
        });
        // c = maj << 1. Round 2: G_j = s_j ∧ c_j for j = 1..=62, at plane j − 1; P likewise
        // (local), and s_63 ⊕ c_63, the part of the msb outside the carry.
        let s_hi =
            [0, 1].map(|i| Planes::map(&[&s[i]], 62, |p, d| d.copy_from_slice(&p[0][1..63])));
        let c_hi =
            [0, 1].map(|i| Planes::map(&[&maj[i]], 62, |p, d| d.copy_from_slice(&p[0][..62])));
        let mut p = [0, 1].map(|i| {
            Planes::map(&[&s[i], &maj[i]], 62, |q, d| {
                for (j, d) in d.iter_mut().enumerate() {
                    *d = q[0][j + 1] ^ q[1][j];
                }
            })
        });
        let top =
            [0, 1].map(|i| Planes::map(&[&s[i], &maj[i]], 1, |q, d| d[0] = q[0][63] ^ q[1][62]));
        let s0 = with_zero.then(|| [0, 1].map(|i| Planes::map(&[&s[i]], 1, |q, d| d[0] = q[0][0])));
        drop((s, maj, x02, x12));
        let (g0, g1) = self
            .and_planes((&s_hi[0], &s_hi[1]), (&c_hi[0], &c_hi[1]))
            .await?;
        let mut g = [g0, g1];
        // The zero test's 64 XNOR planes, `¬((s ⊕ c)_j ⊕ (s ∨ c)_{j−1})`: the NOT flips
        // component 0 only (this party's first slot at party 0, its second at party 2).
        let mut zero = s0.map(|s0| {
            [0, 1].map(|i| {
                let flip = (self.me + i).is_multiple_of(3);
                zero_test_planes(&s0[i], &p[i], &g[i], &top[i], flip)
            })
        });
        // Rounds 3–8: the carry tree over 62 → 31 → 16 → 8 → 4 → 2 → 1 groups, and the zero
        // test's AND tree over 64 → 32 → … → 1 planes, in the same packed ANDs.
        while g[0].width() > 1 {
            let m = g[0].width();
            let (c, odd) = (m / 2, m % 2 == 1);
            let w = 2 * c - 1;
            let mut left = [0, 1].map(|i| Planes::map(&[&p[i]], w, |q, d| tree_left(q[0], d, c)));
            let mut right = [0, 1]
                .map(|i| Planes::map(&[&g[i], &p[i]], w, |q, d| tree_right(q[0], q[1], d, c)));
            let h = zero.as_ref().map_or(0, |z| z[0].width() / 2);
            if let Some(z) = &zero {
                left = [0, 1].map(|i| append_planes(&left[i], &z[i], 0..h));
                right = [0, 1].map(|i| append_planes(&right[i], &z[i], h..2 * h));
            }
            let (r0, r1) = self
                .and_planes((&left[0], &left[1]), (&right[0], &right[1]))
                .await?;
            let r = [r0, r1];
            if zero.is_some() {
                zero = Some(
                    [0, 1].map(|i| Planes::map(&[&r[i]], h, |q, d| d.copy_from_slice(&q[0][w..]))),
                );
            }
            let next_w = c + usize::from(odd);
            let g_next = [0, 1].map(|i| {
                Planes::map(&[&g[i], &r[i]], next_w, |q, d| {
                    tree_next_g(q[0], q[1], d, c, odd)
                })
            });
            let p_next = [0, 1].map(|i| {
                Planes::map(&[&p[i], &r[i]], next_w, |q, d| {
                    tree_next_p(q[0], q[1], d, c, odd)
                })
            });
            (g, p) = (g_next, p_next);
        }
        // msb = s_63 ⊕ c_63 ⊕ carry_63.
        let [a, b] = [0, 1].map(|i| {
            Planes::map(&[&top[i], &g[i]], 1, |q, d| d[0] = q[0][0] ^ q[1][0]).plane0_words()
        });
        let zero = zero.map(|z| {
            let [a, b] = z.each_ref().map(Planes::plane0_words);
            Rep3Bits::new_unchecked(a, b)
        });
        Ok((Rep3Bits::new_unchecked(a, b), zero))
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

    /// `(x < y, x == y)` (signed less-than, equality in Z_2^64) as boolean sharings of bit 0, in
    /// the rounds of one comparison: [`Self::msb_is_zero`]`(x − y)`. The less-than is correct when
    /// `|x − y| < 2^63` (as [`Self::lt`]), the equality for all words. 8 rounds, `≈ 38·len` bytes
    /// per party (`1440` for `len = 37`): a three-way comparison for less than two
    /// [`Self::lt`]s, and in one round trip less than [`Self::lt`] and [`Self::eq`].
    pub async fn lt_eq(
        &mut self,
        x: &Rep3Share,
        y: &Rep3Share,
    ) -> Result<(Rep3Bits, Rep3Bits), MpcError> {
        let d = self.sub(x, y)?;
        self.msb_is_zero(&d).await
    }

    /// `bit ? x : y` element-wise, as `y + b·(x − y)` with `b` = [`Self::b2a_bit`]`(bit)` (bit 0
    /// of each word): 3 rounds, `16·len` bytes per party.
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
    /// about `46.1·len` bytes per party ([`Self::msb`] plus `16·len`).
    pub async fn relu(&mut self, x: &Rep3Share) -> Result<Rep3Share, MpcError> {
        let neg = self.msb(x).await?;
        let pos = self.not_bit(&neg);
        let b = self.b2a_bit(&pos).await?;
        self.mul(&b, x).await
    }

    /// `max(x, y)` (signed) element-wise, `lt(x, y) ? y : x`: same range as [`Self::lt`]. 11
    /// rounds, about `46.1·len` bytes per party ([`Self::lt`] plus `16·len`).
    pub async fn max(&mut self, x: &Rep3Share, y: &Rep3Share) -> Result<Rep3Share, MpcError> {
        let lt = self.lt(x, y).await?;
        self.select(&lt, y, x).await
    }
}

/// Which of this party's two slots (components `me` and `me+1` of a boolean sharing) hold the
/// summands of the full adder `x_0 ⊕ x_2`, `x_1 ⊕ x_2` and `x_2`, where the boolean sharing of
/// an arithmetic component `x_k` has `x_k` at position `k` and zeros elsewhere. Party `me` holds
/// `x_me` and `x_{me+1}` as its arithmetic components, so a slot holds the component itself or
/// zero.
fn summand_slots(me: usize) -> [[bool; 2]; 3] {
    let has = |set: &[usize], slot: usize| set.contains(&(slot % 3));
    [&[0, 2][..], &[1, 2], &[2]].map(|set| [has(set, me), has(set, me + 1)])
}

/// Left operand planes of a carry-tree level with `c` pairs: `P_{2k+1}` for `k < c`, then
/// `P_{2k+1}` for `1 ≤ k < c`.
fn tree_left(p: &[u64], d: &mut [u64], c: usize) {
    for k in 0..c {
        d[k] = p[2 * k + 1];
    }
    for k in 1..c {
        d[c + k - 1] = p[2 * k + 1];
    }
}

/// Right operand planes: `G_{2k}` for `k < c`, then `P_{2k}` for `1 ≤ k < c`.
fn tree_right(g: &[u64], p: &[u64], d: &mut [u64], c: usize) {
    for k in 0..c {
        d[k] = g[2 * k];
    }
    for k in 1..c {
        d[c + k - 1] = p[2 * k];
    }
}

/// `G'_k = G_{2k+1} ⊕ r_k` for `k < c`; with an odd group count the top group `2c` passes
/// through to `c`.
fn tree_next_g(g: &[u64], r: &[u64], d: &mut [u64], c: usize, odd: bool) {
    for k in 0..c {
        d[k] = g[2 * k + 1] ^ r[k];
    }
    if odd {
        d[c] = g[2 * c];
    }
}

/// `P'_k = r_{c+k−1}` for `1 ≤ k < c` (`P'_0` is never needed and stays zero); an odd top
/// group passes through.
fn tree_next_p(p: &[u64], r: &[u64], d: &mut [u64], c: usize, odd: bool) {
    for k in 1..c {
        d[k] = r[c + k - 1];
    }
    if odd {
        d[c] = p[2 * c];
    }
}

/// One component's 64 XNOR planes of the zero test (see [`Rep3Session::msb_is_zero`]):
/// `u_j = (s ⊕ c)_j ⊕ (s ∨ c)_{j−1}` from `s_0`, `P_j` (plane `j − 1` of `p`, `j = 1..=62`),
/// `G_j` (plane `j − 1` of `g`) and `top = s_63 ⊕ c_63`; negated (`¬u_j`, all 64 planes of the
/// present elements flipped) when `flip`, for the holders of component 0.
fn zero_test_planes(s0: &Planes, p: &Planes, g: &Planes, top: &Planes, flip: bool) -> Planes {
    let u = Planes::map(&[s0, p, g, top], 64, |q, d| {
        let (s0, p, g, top) = (q[0][0], q[1], q[2], q[3][0]);
        d[0] = s0;
        d[1] = p[0] ^ s0;
        for j in 2..63 {
            d[j] = p[j - 1] ^ p[j - 2] ^ g[j - 2];
        }
        d[63] = top ^ p[61] ^ g[61];
    });
    if flip {
        let ones = Planes::ones(u.len(), 64);
        Planes::map(&[&u, &ones], 64, |q, d| {
            for (j, d) in d.iter_mut().enumerate() {
                *d = q[0][j] ^ q[1][j];
            }
        })
    } else {
        u
    }
}

/// `x`'s planes followed by planes `range` of `z` (same elements), one AND operand for both.
fn append_planes(x: &Planes, z: &Planes, range: std::ops::Range<usize>) -> Planes {
    let w = x.width();
    Planes::map(&[x, z], w + range.len(), |q, d| {
        d[..w].copy_from_slice(q[0]);
        d[w..].copy_from_slice(&q[1][range.clone()]);
    })
}
