//! n-party additive secret sharing over Z_2^k.
//!
//! A secret vector `x` is split into `n` vectors that sum to `x` element-wise; any `n - 1` of them
//! are uniformly random and independent of `x`.

use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::MpcError;
use crate::ring::{self, RingElement};

/// One party's additive share of a vector. Zeroized on drop; `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct AdditiveShare<R: RingElement> {
    values: Vec<R>,
}

impl<R: RingElement> std::fmt::Debug for AdditiveShare<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdditiveShare")
            .field("len", &self.values.len())
            .field("ring_bits", &R::BITS)
            .finish_non_exhaustive()
    }
}

impl<R: RingElement> AdditiveShare<R> {
    /// Wraps share values this party computed.
    pub fn from_values(values: Vec<R>) -> Self {
        Self { values }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the share is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The share's values. A share alone reveals nothing, but it must only leave the party sealed
    /// to the recipient (see [`crate::output`]).
    pub fn values(&self) -> &[R] {
        &self.values
    }

    /// Adds `x` element-wise (e.g. a zero-sharing mask).
    pub fn add_assign(&mut self, x: &[R]) -> Result<(), MpcError> {
        if x.len() != self.values.len() {
            return Err(MpcError::LengthMismatch {
                what: "share addition",
                expected: self.values.len(),
                got: x.len(),
            });
        }
        ring::add_assign(&mut self.values, x);
        Ok(())
    }

    /// Serialises the share (little endian). The bytes are as secret as the share.
    pub fn to_bytes(&self) -> Vec<u8> {
        ring::encode(&self.values)
    }

    /// Parses bytes written by [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MpcError> {
        ring::decode(bytes)
            .map(Self::from_values)
            .ok_or(MpcError::Reconstruct(
                "share length is not a multiple of the element size",
            ))
    }
}

/// Splits `secret` into `n` additive shares.
pub fn share<R: RingElement, G: CryptoRng + ?Sized>(
    secret: &[R],
    n: usize,
    rng: &mut G,
) -> Result<Vec<AdditiveShare<R>>, MpcError> {
    if n == 0 {
        return Err(MpcError::PartyCount {
            expected: "at least 1",
            got: 0,
        });
    }
    let mut last = secret.to_vec();
    let mut shares = Vec::with_capacity(n);
    for _ in 1..n {
        let random: Vec<R> = (0..secret.len()).map(|_| R::random(rng)).collect();
        ring::sub_assign(&mut last, &random);
        shares.push(AdditiveShare::from_values(random));
    }
    shares.push(AdditiveShare::from_values(last));
    Ok(shares)
}

/// Sums shares back into the secret.
pub fn reconstruct<R: RingElement>(shares: &[AdditiveShare<R>]) -> Result<Vec<R>, MpcError> {
    let first = shares
        .first()
        .ok_or(MpcError::Reconstruct("no shares given"))?;
    let mut acc = first.values.clone();
    for s in &shares[1..] {
        if s.len() != acc.len() {
            return Err(MpcError::LengthMismatch {
                what: "reconstruction",
                expected: acc.len(),
                got: s.len(),
            });
        }
        ring::add_assign(&mut acc, &s.values);
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    proptest! {
        #[test]
        fn share_then_reconstruct_is_identity_u64(
            xs in proptest::collection::vec(any::<u64>(), 0..50),
            n in 1usize..8,
            seed in any::<u64>(),
        ) {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let shares = share(&xs, n, &mut rng).unwrap();
            prop_assert_eq!(shares.len(), n);
            prop_assert_eq!(reconstruct(&shares).unwrap(), xs);
        }

        #[test]
        fn share_then_reconstruct_is_identity_u128(
            xs in proptest::collection::vec(any::<u128>(), 1..50),
            n in 2usize..8,
            seed in any::<u64>(),
        ) {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let shares = share(&xs, n, &mut rng).unwrap();
            prop_assert_eq!(reconstruct(&shares).unwrap(), xs);
        }

        #[test]
        fn sharing_is_linear(
            a in proptest::collection::vec(any::<u64>(), 8),
            b in proptest::collection::vec(any::<u64>(), 8),
            seed in any::<u64>(),
        ) {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let sa = share(&a, 3, &mut rng).unwrap();
            let sb = share(&b, 3, &mut rng).unwrap();
            let sum: Vec<_> = sa.iter().zip(&sb).map(|(x, y)| {
                let mut s = x.clone();
                s.add_assign(y.values()).unwrap();
                s
            }).collect();
            let expected: Vec<u64> = a.iter().zip(&b).map(|(x, y)| x.wrapping_add(*y)).collect();
            prop_assert_eq!(reconstruct(&sum).unwrap(), expected);
        }
    }

    #[test]
    fn debug_hides_values() {
        let s = AdditiveShare::from_values(vec![0xdead_beef_u64]);
        let text = format!("{s:?}");
        assert!(
            !text.contains("3735928559") && !text.contains("deadbeef"),
            "{text}"
        );
        assert!(text.contains("len: 1"), "{text}");
    }

    #[test]
    fn reconstruct_rejects_mismatched_lengths() {
        let a = AdditiveShare::from_values(vec![1u64, 2]);
        let b = AdditiveShare::from_values(vec![1u64]);
        assert!(matches!(
            reconstruct(&[a, b]),
            Err(MpcError::LengthMismatch { .. })
        ));
        assert!(reconstruct::<u64>(&[]).is_err());
    }
}
