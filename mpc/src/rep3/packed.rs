//! Dense packed boolean shares: many secret bits per 64-bit word, so an AND of `len_bits` bits
//! costs `⌈len_bits / 64⌉` words per party instead of one word per element. Used by the
//! carry-only MSB circuit ([`Rep3Session::msb`]); see the module docs of [`crate::rep3`].

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::boolean::Rep3Bits;
use super::session::Rep3Session;
use super::share::check_len;
use crate::MpcError;
use crate::transport::Transport;

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
        let (a, b) = (x.a(), x.b());
        Self::pack_with(x.len(), width, |e| (a[e], b[e]))
    }

    /// As [`Self::pack`] for the `n` words `f(0), …, f(n−1)` (each a pair: first and second
    /// component), computed on the fly instead of read from a share. Local.
    pub(crate) fn pack_with(n: usize, width: u32, f: impl Fn(usize) -> (u64, u64)) -> Self {
        debug_assert!((1..=64).contains(&width));
        let words = (n * width as usize).div_ceil(64);
        let (mut a, mut b) = (Packer::new(words, width), Packer::new(words, width));
        for e in 0..n {
            let (va, vb) = f(e);
            a.push(va);
            b.push(vb);
        }
        Self {
            len_bits: n * width as usize,
            a: a.finish(),
            b: b.finish(),
        }
    }

    /// Scatters back: `len_bits / width` words holding the bits in their low `width` bits (the
    /// other bits zero). `width` must be the one given to [`Self::pack`]. Local.
    pub(crate) fn unpack(&self, width: u32) -> Rep3Bits {
        debug_assert!((1..=64).contains(&width));
        let n = self.len_bits / width as usize;
        Rep3Bits::new_unchecked(
            (0..n).map(|e| unpack_at(&self.a, width, e)).collect(),
            (0..n).map(|e| unpack_at(&self.b, width, e)).collect(),
        )
    }

    /// Word `e` of [`Self::unpack`], both components, without unpacking the others.
    /// `e < len_bits / width` by the caller.
    #[inline]
    pub(crate) fn get(&self, width: u32, e: usize) -> (u64, u64) {
        (unpack_at(&self.a, width, e), unpack_at(&self.b, width, e))
    }
}

/// Appends `width`-bit values to a dense bit vector, element after element.
struct Packer {
    out: Vec<u64>,
    width: u32,
    mask: u64,
    /// The partly filled word, of which the low `used` bits are set (`used < 64`).
    acc: u64,
    used: u32,
}

impl Packer {
    fn new(words: usize, width: u32) -> Self {
        Self {
            out: Vec::with_capacity(words),
            width,
            mask: low_mask(width),
            acc: 0,
            used: 0,
        }
    }

    #[inline]
    fn push(&mut self, v: u64) {
        let v = v & self.mask;
        self.acc |= v << self.used;
        let total = self.used + self.width;
        if total >= 64 {
            self.out.push(self.acc);
            // The bits of `v` that did not fit (none if `used = 0`).
            self.acc = v.checked_shr(64 - self.used).unwrap_or(0);
            self.used = total - 64;
        } else {
            self.used = total;
        }
    }

    fn finish(mut self) -> Vec<u64> {
        if self.used > 0 {
            self.out.push(self.acc);
        }
        self.out
    }
}

/// Bits `e·width .. (e+1)·width` of `packed`, in the low bits of the result.
#[inline]
fn unpack_at(packed: &[u64], width: u32, e: usize) -> u64 {
    let bit = e * width as usize;
    let (q, r) = (bit / 64, (bit % 64) as u32);
    let mut v = packed[q] >> r;
    if r + width > 64 {
        v |= packed[q + 1] << (64 - r);
    }
    v & low_mask(width)
}

/// The even bits of `x` (`x_0, x_2, …, x_62`) gathered into its low 32 bits, the rest zero
/// (`even_bits(x >> 1)` gathers the odd ones). A bit permutation, hence XOR-linear: applied to
/// both components of a share it acts on the secret. A few shifts and masks per word, where a
/// general permutation costs a loop over the bits.
#[inline]
pub(crate) fn even_bits(x: u64) -> u64 {
    let mut x = x & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0f0f_0f0f_0f0f_0f0f;
    x = (x | (x >> 4)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x >> 8)) & 0x0000_ffff_0000_ffff;
    (x | (x >> 16)) & 0x0000_0000_ffff_ffff
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
        let (mut a, mut b) = self.and_words((&x.a, &x.b), (&y.a, &y.b)).await?;
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
