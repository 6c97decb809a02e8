//! One party's replicated share of a vector.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::MpcError;

/// Party `i`'s replicated share of a secret vector `x = x_0 + x_1 + x_2` over Z_2^64: the two
/// components `(x_i, x_{i+1})` (indices mod 3), element-wise.
///
/// Any one party's pair is independent of `x`; any two parties together hold all three
/// components. Zeroized on drop; `Debug` shows only the length.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Rep3Share {
    a: Vec<u64>,
    b: Vec<u64>,
}

impl std::fmt::Debug for Rep3Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rep3Share")
            .field("len", &self.a.len())
            .finish_non_exhaustive()
    }
}

impl Rep3Share {
    /// Wraps the components `(x_i, x_{i+1})` this party holds; both must have the same length.
    pub fn from_parts(a: Vec<u64>, b: Vec<u64>) -> Result<Self, MpcError> {
        if a.len() != b.len() {
            return Err(MpcError::LengthMismatch {
                what: "rep3 share components",
                expected: a.len(),
                got: b.len(),
            });
        }
        Ok(Self { a, b })
    }

    /// Built by this module only, where both lengths are equal by construction.
    pub(crate) fn new_unchecked(a: Vec<u64>, b: Vec<u64>) -> Self {
        debug_assert_eq!(a.len(), b.len());
        Self { a, b }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.a.len()
    }

    /// Whether the share is empty.
    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    /// This party's first component `x_i`. As secret as the share.
    pub fn a(&self) -> &[u64] {
        &self.a
    }

    /// This party's second component `x_{i+1}`. As secret as the share.
    pub fn b(&self) -> &[u64] {
        &self.b
    }

    /// The concatenation of `parts` (to batch several multiplications into one round).
    pub(crate) fn concat_all(parts: &[&Self]) -> Self {
        let cat =
            |f: fn(&Self) -> &[u64]| parts.iter().flat_map(|p| f(p).iter().copied()).collect();
        Self::new_unchecked(cat(|p| &p.a), cat(|p| &p.b))
    }

    /// Splits into `parts` consecutive pieces of equal length (`parts > 0` dividing the length,
    /// by the caller). Inverse of [`Self::concat_all`] for equal-length parts; empty pieces for an
    /// empty share.
    pub(crate) fn split_equal(&self, parts: usize) -> Vec<Self> {
        debug_assert!(parts > 0 && self.len().is_multiple_of(parts));
        let n = self.len() / parts;
        (0..parts)
            .map(|k| {
                let r = k * n..(k + 1) * n;
                Self::new_unchecked(self.a[r.clone()].to_vec(), self.b[r].to_vec())
            })
            .collect()
    }

    /// Checks that `other` has the same length (for binary operations).
    pub(crate) fn check_same_len(&self, other: &Self, what: &'static str) -> Result<(), MpcError> {
        check_len(what, self.len(), other.len())
    }
}

/// `Err(LengthMismatch)` unless `got == expected`.
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), MpcError> {
    if expected == got {
        Ok(())
    } else {
        Err(MpcError::LengthMismatch {
            what,
            expected,
            got,
        })
    }
}
