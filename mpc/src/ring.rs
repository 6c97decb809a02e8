//! The rings Z_2^64 and Z_2^128: wrapping machine integers with little-endian byte codecs.
//!
//! All share arithmetic is wrapping by definition; two's complement gives signed fixed point for
//! free. `u64` is the ring of the MPC engine; `u128` carries exact aggregates (sums of squares of
//! 64-bit fixed-point values) so statistics never overflow silently.

use rand_core::Rng;

/// An element of Z_2^k, k ∈ {64, 128}.
pub trait RingElement:
    Copy + Default + Eq + Send + Sync + std::fmt::Debug + zeroize::Zeroize + bytemuck::Pod + 'static
{
    /// Bytes in the little-endian encoding.
    const BYTES: usize;
    /// Bits in the ring.
    const BITS: u32;
    /// Zero.
    const ZERO: Self;
    /// a + b mod 2^k.
    fn add(self, other: Self) -> Self;
    /// a - b mod 2^k.
    fn sub(self, other: Self) -> Self;
    /// -a mod 2^k.
    fn neg(self) -> Self;
    /// a · b mod 2^k.
    fn mul(self, other: Self) -> Self;
    /// A uniformly random element.
    fn random<R: Rng + ?Sized>(rng: &mut R) -> Self;
    /// Appends the little-endian encoding.
    fn write_le(self, out: &mut Vec<u8>);
    /// Reads from exactly [`Self::BYTES`] little-endian bytes.
    fn read_le(bytes: &[u8]) -> Self;
}

macro_rules! ring_impl {
    ($t:ty, $bytes:expr) => {
        impl RingElement for $t {
            const BYTES: usize = $bytes;
            const BITS: u32 = <$t>::BITS;
            const ZERO: Self = 0;
            #[inline]
            fn add(self, other: Self) -> Self {
                self.wrapping_add(other)
            }
            #[inline]
            fn sub(self, other: Self) -> Self {
                self.wrapping_sub(other)
            }
            #[inline]
            fn neg(self) -> Self {
                self.wrapping_neg()
            }
            #[inline]
            fn mul(self, other: Self) -> Self {
                self.wrapping_mul(other)
            }
            #[inline]
            fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
                let mut buf = [0u8; $bytes];
                rng.fill_bytes(&mut buf);
                <$t>::from_le_bytes(buf)
            }
            #[inline]
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            #[inline]
            fn read_le(bytes: &[u8]) -> Self {
                let mut buf = [0u8; $bytes];
                buf.copy_from_slice(&bytes[..$bytes]);
                <$t>::from_le_bytes(buf)
            }
        }
    };
}

ring_impl!(u64, 8);
ring_impl!(u128, 16);

/// Element-wise `acc += x` over equal-length slices.
pub fn add_assign<R: RingElement>(acc: &mut [R], x: &[R]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a = a.add(*b);
    }
}

/// Element-wise `acc -= x` over equal-length slices.
pub fn sub_assign<R: RingElement>(acc: &mut [R], x: &[R]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a = a.sub(*b);
    }
}

/// Encodes a slice of ring elements, little endian, back to back. On little-endian targets the
/// encoding is the memory layout, copied in one pass.
pub fn encode<R: RingElement>(xs: &[R]) -> Vec<u8> {
    if cfg!(target_endian = "little") {
        return bytemuck::cast_slice::<R, u8>(xs).to_vec();
    }
    let mut out = Vec::with_capacity(xs.len() * R::BYTES);
    for x in xs {
        x.write_le(&mut out);
    }
    out
}

/// Decodes a byte string written by [`encode`]; `None` if the length is not a multiple of the
/// element size.
pub fn decode<R: RingElement>(bytes: &[u8]) -> Option<Vec<R>> {
    if !bytes.len().is_multiple_of(R::BYTES) {
        return None;
    }
    if cfg!(target_endian = "little") {
        return Some(bytemuck::pod_collect_to_vec::<u8, R>(bytes));
    }
    Some(bytes.chunks_exact(R::BYTES).map(R::read_le).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn codec_round_trips_u64(xs in proptest::collection::vec(any::<u64>(), 0..64)) {
            prop_assert_eq!(decode::<u64>(&encode(&xs)), Some(xs));
        }

        #[test]
        fn codec_round_trips_u128(xs in proptest::collection::vec(any::<u128>(), 0..64)) {
            prop_assert_eq!(decode::<u128>(&encode(&xs)), Some(xs));
        }

        #[test]
        fn add_then_sub_is_identity(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(a.add(b).sub(b), a);
            prop_assert_eq!(a.add(a.neg()), 0);
        }

        #[test]
        fn ring_laws_u128(a in any::<u128>(), b in any::<u128>(), c in any::<u128>()) {
            prop_assert_eq!(a.add(b), b.add(a));
            prop_assert_eq!(a.mul(b.add(c)), a.mul(b).add(a.mul(c)));
        }
    }

    #[test]
    fn decode_rejects_ragged_input() {
        assert_eq!(decode::<u64>(&[0u8; 9]), None);
        assert_eq!(decode::<u128>(&[0u8; 8]), None);
    }
}
