//! Packed boolean shares for ANDs of a few bits per element, stored bit-sliced: the elements
//! are taken 64 at a time and each block is stored as bit planes (plane `j` holds bit `j` of the
//! block's 64 elements, element `e` in bit `e % 64`). A circuit that works on bit positions —
//! moving bit `j` of every element to position `k`, ANDing bit `j` with bit `k` — then works on
//! whole words, with no per-element bit shuffling: only the input is transposed (once) and the
//! output extracted. Used by the carry-only MSB ([`Rep3Session::msb`]) and the equality tree
//! ([`Rep3Session::is_zero`]); see the module docs of [`crate::rep3`].
//!
//! An AND of `w` planes per block sends `w` words per full block and the last block's planes
//! (`t < 64` elements) packed densely, `⌈w·t/64⌉` words: `8·⌈w·n/64⌉` bytes per party, as if
//! the `w` bits of all `n` elements were packed back to back.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::boolean::Rep3Bits;
use super::session::{Rep3Session, draw, next_of, prev_of, xor_draw};
use super::share::check_len;
use crate::MpcError;

/// Elements per block (bits per plane).
const BLOCK: usize = 64;

/// The word with the low `width` bits set (`width ≤ 64`).
pub(crate) fn low_mask(width: u32) -> u64 {
    u64::MAX.checked_shr(64 - width).unwrap_or(0)
}

/// One component of a bit-sliced share: `w` planes per block, block after block, for `n`
/// elements. In the last block (`n % 64` elements if not zero) the bits past the last element
/// are zero. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Planes {
    n: usize,
    w: usize,
    words: Vec<u64>,
}

impl std::fmt::Debug for Planes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planes")
            .field("n", &self.n)
            .field("w", &self.w)
            .finish_non_exhaustive()
    }
}

impl Planes {
    /// Number of blocks for `n` elements.
    fn blocks(n: usize) -> usize {
        n.div_ceil(BLOCK)
    }

    /// The planes of `x` (one word per element): all 64 bits, transposed block by block.
    pub(crate) fn from_words(x: &[u64]) -> Self {
        Self::from_low_bits(x, 64)
    }

    /// The low `w` planes of `x` (bits `0..w` of every word, `1 ≤ w ≤ 64`).
    pub(crate) fn from_low_bits(x: &[u64], w: usize) -> Self {
        debug_assert!((1..=BLOCK).contains(&w));
        let n = x.len();
        let mut words = Vec::with_capacity(Self::blocks(n) * w);
        let mut block = [0u64; BLOCK];
        for src in x.chunks(BLOCK) {
            block[..src.len()].copy_from_slice(src);
            block[src.len()..].fill(0);
            transpose64(&mut block);
            words.extend_from_slice(&block[..w]);
        }
        block.zeroize();
        Self { n, w, words }
    }

    /// Back to one word per element: bit `j < w` of word `e` is bit `e % 64` of plane `j` of
    /// its block, the other bits zero.
    pub(crate) fn to_words(&self) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.n);
        let mut block = [0u64; BLOCK];
        for (b, planes) in self.words.chunks_exact(self.w).enumerate() {
            block[..self.w].copy_from_slice(planes);
            block[self.w..].fill(0);
            transpose64(&mut block);
            out.extend_from_slice(&block[..BLOCK.min(self.n - b * BLOCK)]);
        }
        block.zeroize();
        out
    }

    /// All-zero planes (`w` per block).
    pub(crate) fn zeros(n: usize, w: usize) -> Self {
        Self {
            n,
            w,
            words: vec![0; Self::blocks(n) * w],
        }
    }

    /// `w` planes per block with the bits of every present element set (a public constant: XORed
    /// into one component it negates a sharing).
    pub(crate) fn ones(n: usize, w: usize) -> Self {
        let mut out = Self::zeros(n, w);
        let t = n % BLOCK;
        for (b, planes) in out.words.chunks_exact_mut(w).enumerate() {
            let last = b + 1 == Self::blocks(n) && t != 0;
            planes.fill(if last { low_mask(t as u32) } else { u64::MAX });
        }
        out
    }

    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// Planes per block.
    pub(crate) fn width(&self) -> usize {
        self.w
    }

    /// New planes, `w` per block: `f(inputs' planes of the block, output planes of the block)`
    /// for every block. `f` must be linear over XOR (it is applied to each component alone)
    /// and keep the bits of absent elements zero (any bitwise map without constants does).
    pub(crate) fn map(inputs: &[&Planes], w: usize, f: impl Fn(&[&[u64]], &mut [u64])) -> Self {
        let n = inputs.first().map_or(0, |p| p.n);
        debug_assert!(w >= 1 && inputs.iter().all(|p| p.n == n));
        let mut out = Self::zeros(n, w);
        let mut src: Vec<&[u64]> = Vec::with_capacity(inputs.len());
        for (b, dst) in out.words.chunks_exact_mut(w).enumerate() {
            src.clear();
            src.extend(inputs.iter().map(|p| &p.words[b * p.w..(b + 1) * p.w]));
            f(&src, dst);
        }
        out
    }

    /// Plane 0 as one word per element (the bit in bit 0, the other bits zero).
    pub(crate) fn plane0_words(&self) -> Vec<u64> {
        (0..self.n)
            .map(|e| (self.words[(e / BLOCK) * self.w] >> (e % BLOCK)) & 1)
            .collect()
    }
}

/// Transposes a 64×64 bit matrix in place: afterwards bit `e` of word `j` is what bit `j` of
/// word `e` was. Six rounds of swapping the off-diagonal blocks (Warren, "Hacker's Delight",
/// §7–3), on words with bit 0 as the first column.
fn transpose64(a: &mut [u64; BLOCK]) {
    let mut s = 32;
    let mut m: u64 = 0x0000_0000_ffff_ffff;
    while s != 0 {
        for base in (0..BLOCK).step_by(2 * s) {
            for k in base..base + s {
                let t = ((a[k] >> s) ^ a[k + s]) & m;
                a[k + s] ^= t;
                a[k] ^= t << s;
            }
        }
        s >>= 1;
        m ^= m << s;
    }
}

/// Words of the message carrying planes `z` (`w` per block): the full blocks as they are, the
/// last block's planes (`t` elements) packed densely, `⌈w·t/64⌉` words.
fn to_message(z: &[u64], n: usize, w: usize) -> Vec<u64> {
    let (full, t) = (n / BLOCK, n % BLOCK);
    let mut msg = Vec::with_capacity((n * w).div_ceil(64));
    msg.extend_from_slice(&z[..full * w]);
    if t != 0 {
        let tail = &z[full * w..(full + 1) * w];
        let (mut acc, mut used) = (0u64, 0usize);
        for &plane in tail {
            let v = plane & low_mask(t as u32);
            acc |= v << used;
            if used + t >= 64 {
                msg.push(acc);
                acc = v.checked_shr((64 - used) as u32).unwrap_or(0);
                used = used + t - 64;
            } else {
                used += t;
            }
        }
        if used > 0 {
            msg.push(acc);
        }
    }
    msg
}

/// Inverse of [`to_message`]. `msg` has exactly `⌈w·n/64⌉` words (checked by the transport).
fn from_message(msg: &[u64], n: usize, w: usize) -> Vec<u64> {
    let (full, t) = (n / BLOCK, n % BLOCK);
    let mut z = Vec::with_capacity(Planes::blocks(n) * w);
    z.extend_from_slice(&msg[..full * w]);
    if t != 0 {
        let tail = &msg[full * w..];
        for j in 0..w {
            let bit = j * t;
            let (q, r) = (bit / 64, bit % 64);
            let mut v = tail[q] >> r;
            if r + t > 64 {
                v |= tail[q + 1] << (64 - r);
            }
            z.push(v & low_mask(t as u32));
        }
    }
    z
}

impl Rep3Session {
    /// `x & y` plane by plane (the components `(x_i, x_{i+1})` and `(y_i, y_{i+1})`, all with the
    /// same `n` and width `w`): one round, `8·⌈w·n/64⌉` bytes per party. The protocol of
    /// [`Rep3Session::and`] on the plane words, each masked by fresh PRF output its receiver
    /// lacks; only the bits of present elements are sent.
    pub(crate) async fn and_planes(
        &mut self,
        (xa, xb): (&Planes, &Planes),
        (ya, yb): (&Planes, &Planes),
    ) -> Result<(Planes, Planes), MpcError> {
        let (n, w) = (xa.n, xa.w);
        debug_assert!([xb, ya, yb].iter().all(|p| p.n == n && p.w == w));
        let words = xa
            .words
            .iter()
            .zip(&xb.words)
            .zip(ya.words.iter().zip(&yb.words))
            .map(|((xa, xb), (ya, yb))| (xa & (ya ^ yb)) ^ (xb & ya))
            .collect();
        let mut out = self.reshare_planes(vec![Planes { n, w, words }]).await?;
        out.pop()
            .ok_or(MpcError::Reconstruct("no message received"))
    }

    /// Reshares 3-out-of-3 XOR sharings held as planes (party `i` holds `z_i`, e.g. its cross
    /// terms of an AND) into replicated ones, all parts in ONE round: each `z_i` is masked with
    /// the XOR zero-sharing `α_i = PRF(k_{i,i+1}) ⊕ PRF(k_{i−1,i})` and sent to party `i−1`, which
    /// does not know `PRF(k_{i,i+1})`; only the bits of present elements travel, so a part costs
    /// `8·⌈w·n/64⌉` bytes per party.
    pub(crate) async fn reshare_planes(
        &mut self,
        mut parts: Vec<Planes>,
    ) -> Result<Vec<(Planes, Planes)>, MpcError> {
        let total: usize = parts.iter().map(|p| p.words.len()).sum();
        let mut mask = draw(&mut self.next, total);
        xor_draw(&mut self.prev, &mut mask);
        let mut msg = Vec::new();
        let mut spans = Vec::with_capacity(parts.len());
        let mut offset = 0;
        for p in &mut parts {
            let len = p.words.len();
            for (z, m) in p.words.iter_mut().zip(&mask[offset..offset + len]) {
                *z ^= m;
            }
            offset += len;
            // Clear the bits of absent elements, so both holders of this component agree on them.
            let t = p.n % BLOCK;
            if t == 0 {
                msg.extend_from_slice(&p.words);
            } else {
                let start = (p.n / BLOCK) * p.w;
                p.words[start..]
                    .iter_mut()
                    .for_each(|v| *v &= low_mask(t as u32));
                msg.extend(to_message(&p.words, p.n, p.w));
            }
            spans.push(msg.len());
        }
        mask.zeroize();
        let me = self.me;
        let got = self
            .round(&[(prev_of(me), &msg[..])], Some((next_of(me), msg.len())))
            .await?
            .ok_or(MpcError::Reconstruct("no message received"));
        msg.zeroize();
        let mut got = got?;
        let mut start = 0;
        let out = parts
            .into_iter()
            .zip(spans)
            .map(|(z, end)| {
                let part = &got[start..end];
                start = end;
                let words = if z.n % BLOCK == 0 {
                    part.to_vec()
                } else {
                    from_message(part, z.n, z.w)
                };
                let other = Planes {
                    n: z.n,
                    w: z.w,
                    words,
                };
                (z, other)
            })
            .collect();
        got.zeroize();
        Ok(out)
    }

    /// Reshares 3-out-of-3 XOR sharings given as `(words, width)` parts — each word carrying
    /// `width` bits in its low bits, the others ignored — into replicated sharings whose other
    /// bits are zero, all parts in ONE round ([`Self::reshare_planes`]):
    /// `8·Σ ⌈len·width / 64⌉` bytes per party.
    pub(crate) async fn reshare_packed(
        &mut self,
        parts: &[(&[u64], u32)],
    ) -> Result<Vec<Rep3Bits>, MpcError> {
        let planes = parts
            .iter()
            .map(|&(z, width)| {
                debug_assert!((1..=64).contains(&width));
                Planes::from_low_bits(z, width as usize)
            })
            .collect();
        Ok(self
            .reshare_planes(planes)
            .await?
            .into_iter()
            .map(|(a, b)| Rep3Bits::new_unchecked(a.to_words(), b.to_words()))
            .collect())
    }

    /// `(x & y)` on the low `width` bits of every word (`1 ≤ width ≤ 64`; the other bits of the
    /// result zero), packed: one round, `8·⌈len·width / 64⌉` bytes per party. The word-level
    /// entry point to [`Self::and_planes`]; hot circuits stay on planes between rounds.
    pub(crate) async fn and_low(
        &mut self,
        x: &Rep3Bits,
        y: &Rep3Bits,
        width: u32,
    ) -> Result<Rep3Bits, MpcError> {
        check_len("rep3 and (low bits)", x.len(), y.len())?;
        let w = width as usize;
        let [xa, xb, ya, yb] = [x.a(), x.b(), y.a(), y.b()].map(|v| Planes::from_low_bits(v, w));
        let (a, b) = self.and_planes((&xa, &xb), (&ya, &yb)).await?;
        Ok(Rep3Bits::new_unchecked(a.to_words(), b.to_words()))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn transpose_moves_bit_j_of_word_e_to_bit_e_of_word_j(
            words in proptest::collection::vec(any::<u64>(), 64),
        ) {
            let mut a: [u64; 64] = words.clone().try_into().unwrap();
            transpose64(&mut a);
            for (e, word) in words.iter().enumerate() {
                for (j, plane) in a.iter().enumerate() {
                    prop_assert_eq!((plane >> e) & 1, (word >> j) & 1, "e={} j={}", e, j);
                }
            }
        }

        #[test]
        fn message_round_trips_and_has_the_dense_length(
            n in 0usize..300,
            w in 1usize..=64,
            seed in any::<u64>(),
        ) {
            let blocks = n.div_ceil(64);
            let t = n % 64;
            let z: Vec<u64> = (0..blocks * w)
                .map(|i| {
                    let v = seed.wrapping_mul(i as u64 + 1).rotate_left(i as u32 % 64);
                    if t != 0 && i >= (n / 64) * w { v & low_mask(t as u32) } else { v }
                })
                .collect();
            let msg = to_message(&z, n, w);
            prop_assert_eq!(msg.len(), (n * w).div_ceil(64));
            prop_assert_eq!(from_message(&msg, n, w), z);
        }

        #[test]
        fn planes_hold_the_bits_of_the_words(
            x in proptest::collection::vec(any::<u64>(), 0..200),
            w in 1usize..=64,
        ) {
            let low = Planes::from_low_bits(&x, w);
            let masked: Vec<u64> = x.iter().map(|v| v & low_mask(w as u32)).collect();
            prop_assert_eq!(low.to_words(), masked);
            let p = Planes::from_words(&x);
            for (e, v) in x.iter().enumerate() {
                for j in 0..64 {
                    prop_assert_eq!((p.words[(e / 64) * 64 + j] >> (e % 64)) & 1, (v >> j) & 1);
                }
            }
            let bit0: Vec<u64> = x.iter().map(|v| v & 1).collect();
            prop_assert_eq!(p.plane0_words(), bit0);
        }
    }
}
