//! Dense packed boolean shares: many secret bits per 64-bit word, so an AND of `len_bits` bits
//! costs `⌈len_bits / 64⌉` words per party instead of one word per element. Used by the
//! carry-only MSB circuit ([`Rep3Session::msb`]); see the module docs of [`crate::rep3`].

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::boolean::Rep3Bits;
use super::session::Rep3Session;
use super::share::check_len;
use crate::MpcError;
use crate::transport::Transport;

/// A source position for [`permute_bits`] that yields a zero bit.
pub(crate) const ZERO_BIT: u32 = 64;

/// Party `i`'s replicated boolean share `(x_i, x_{i+1})` of a dense vector of `len_bits` bits:
/// bit `t` is bit `t % 64` of word `t / 64`. The bits past `len_bits` in the last word are zero.
///
/// Built from a [`Rep3Bits`] by [`PackedBits::pack`], which keeps the low `width` bits of every
/// word, element after element (bit `e·width + j` is bit `j` of word `e`); [`PackedBits::unpack`]
/// is its inverse. Zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub(crate) struct PackedBits {
    len_bits: usize,
    a: Vec<u64>,
    b: Vec<u64>,
}

impl std::fmt::Debug for PackedBits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedBits")
            .field("len_bits", &self.len_bits)
            .finish_non_exhaustive()
    }
}

/// The word with the low `width` bits set (`width ≤ 64`).
pub(crate) fn low_mask(width: u32) -> u64 {
    u64::MAX.checked_shr(64 - width).unwrap_or(0)
}

impl PackedBits {
    /// Number of bits.
    #[cfg(test)]
    pub(crate) fn len_bits(&self) -> usize {
        self.len_bits
    }

    /// The first component, `⌈len_bits / 64⌉` words. As secret as the share.
    #[cfg(test)]
    pub(crate) fn a(&self) -> &[u64] {
        &self.a
    }

    /// The second component. As secret as the share.
    #[cfg(test)]
    pub(crate) fn b(&self) -> &[u64] {
        &self.b
    }

    /// Gathers the low `width` bits (`1 ≤ width ≤ 64`) of every word of `x` into a dense vector
    /// of `x.len()·width` bits, element-major. Local.
    pub(crate) fn pack(x: &Rep3Bits, width: u32) -> Self {
        debug_assert!((1..=64).contains(&width));
        Self {
            len_bits: x.len() * width as usize,
            a: pack_words(x.a(), width),
            b: pack_words(x.b(), width),
        }
    }

    /// Scatters back: `len_bits / width` words holding the bits in their low `width` bits (the
    /// other bits zero). `width` must be the one given to [`Self::pack`]. Local.
    pub(crate) fn unpack(&self, width: u32) -> Rep3Bits {
        debug_assert!((1..=64).contains(&width));
        let n = self.len_bits / width as usize;
        Rep3Bits::new_unchecked(
            unpack_words(&self.a, width, n),
            unpack_words(&self.b, width, n),
        )
    }
}

/// Bit `e·width + j` of the output is bit `j` of `src[e]`.
fn pack_words(src: &[u64], width: u32) -> Vec<u64> {
    let w = width as usize;
    let mask = low_mask(width);
    let mut out = vec![0u64; (src.len() * w).div_ceil(64)];
    for (e, &v) in src.iter().enumerate() {
        let v = v & mask;
        let (q, r) = ((e * w) / 64, (e * w) % 64);
        out[q] |= v << r;
        if r + w > 64 {
            out[q + 1] |= v >> (64 - r);
        }
    }
    out
}

/// Inverse of [`pack_words`] for `n` words.
fn unpack_words(packed: &[u64], width: u32, n: usize) -> Vec<u64> {
    let w = width as usize;
    let mask = low_mask(width);
    (0..n)
        .map(|e| {
            let (q, r) = ((e * w) / 64, (e * w) % 64);
            let mut v = packed[q] >> r;
            if r + w > 64 {
                v |= packed[q + 1] << (64 - r);
            }
            v & mask
        })
        .collect()
}

/// Moves bits within every word: bit `k` of the output word is bit `src[k]` of the input word
/// (zero when `src[k] ≥ 64`, e.g. [`ZERO_BIT`]); bits `k ≥ src.len()` are zero. Local (a linear
/// map, applied to both components).
pub(crate) fn permute_bits(x: &Rep3Bits, src: &[u32]) -> Rep3Bits {
    debug_assert!(src.len() <= 64);
    let f = |v: &u64| {
        src.iter().enumerate().fold(0u64, |acc, (k, &s)| {
            acc | ((v.checked_shr(s).unwrap_or(0) & 1) << k)
        })
    };
    Rep3Bits::new_unchecked(x.a().iter().map(f).collect(), x.b().iter().map(f).collect())
}

impl<T: Transport> Rep3Session<'_, T> {
    /// `x & y` bit-wise on packed shares: one round, `8·⌈len_bits / 64⌉` bytes per party. The
    /// same protocol as [`Rep3Session::and`] on the packed words (every sent word is masked by a
    /// fresh PRF word its receiver lacks); the padding bits of the result are cleared.
    pub(crate) async fn and_packed(
        &mut self,
        x: &PackedBits,
        y: &PackedBits,
    ) -> Result<PackedBits, MpcError> {
        check_len("rep3 packed and", x.len_bits, y.len_bits)?;
        let xw = Rep3Bits::new_unchecked(x.a.clone(), x.b.clone());
        let yw = Rep3Bits::new_unchecked(y.a.clone(), y.b.clone());
        let (mut a, mut b) = self.and(&xw, &yw).await?.into_parts();
        let tail = (x.len_bits % 64) as u32;
        if tail != 0
            && let (Some(la), Some(lb)) = (a.last_mut(), b.last_mut())
        {
            *la &= low_mask(tail);
            *lb &= low_mask(tail);
        }
        Ok(PackedBits {
            len_bits: x.len_bits,
            a,
            b,
        })
    }

    /// Reshares 3-out-of-3 XOR sharings given as `(words, width)` parts, each word carrying
    /// `width` bits (the low bits; the others are ignored), into replicated sharings, with the
    /// bits of every part packed densely and all parts in ONE round ([`Self::reshare_bits`] on
    /// the concatenated packed words): `8·Σ ⌈len·width / 64⌉` bytes per party. The results' other
    /// bits are zero.
    pub(crate) async fn reshare_packed(
        &mut self,
        parts: &[(&[u64], u32)],
    ) -> Result<Vec<Rep3Bits>, MpcError> {
        let mut words = Vec::new();
        let mut spans = Vec::with_capacity(parts.len());
        for &(z, width) in parts {
            debug_assert!((1..=64).contains(&width));
            let packed = pack_words(z, width);
            spans.push((words.len(), packed.len(), z.len(), width));
            words.extend(packed);
        }
        let (a, b) = self.reshare_bits(words).await?.into_parts();
        Ok(spans
            .into_iter()
            .map(|(start, len, n, width)| {
                let r = start..start + len;
                Rep3Bits::new_unchecked(
                    unpack_words(&a[r.clone()], width, n),
                    unpack_words(&b[r], width, n),
                )
            })
            .collect())
    }

    /// `(x & y)` on the low `width` bits of every word (the other bits of the result zero), with
    /// the bits of all elements packed densely: one round, `8·⌈len·width / 64⌉` bytes per party.
    pub(crate) async fn and_low(
        &mut self,
        x: &Rep3Bits,
        y: &Rep3Bits,
        width: u32,
    ) -> Result<Rep3Bits, MpcError> {
        check_len("rep3 and (low bits)", x.len(), y.len())?;
        let z = self
            .and_packed(&PackedBits::pack(x, width), &PackedBits::pack(y, width))
            .await?;
        Ok(z.unpack(width))
    }
}
