//! Replicated boolean (XOR) sharing over 64-bit words: input sharing, reveal, the local XOR /
//! NOT / shift / mask operations and the one-round AND.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::session::{Rep3Session, draw, next_of, prev_of, xor_draw};
use super::share::check_len;
use crate::MpcError;
use crate::transport::PartyIndex;

/// Party `i`'s replicated boolean share of a vector of 64-bit words `x = x_0 ⊕ x_1 ⊕ x_2`: the
/// two components `(x_i, x_{i+1})` (indices mod 3), element-wise.
///
/// Each word carries 64 independent bits; single-bit results (comparisons) use bit 0 and keep the
/// other bits zero. Any one party's pair is independent of `x`. Zeroized on drop; `Debug` shows
/// only the length.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Rep3Bits {
    a: Vec<u64>,
    b: Vec<u64>,
}

impl std::fmt::Debug for Rep3Bits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rep3Bits")
            .field("len", &self.a.len())
            .finish_non_exhaustive()
    }
}

impl Rep3Bits {
    /// Wraps the components `(x_i, x_{i+1})` this party holds; both must have the same length.
    pub fn from_parts(a: Vec<u64>, b: Vec<u64>) -> Result<Self, MpcError> {
        check_len("rep3 boolean share components", a.len(), b.len())?;
        Ok(Self { a, b })
    }

    /// Built by this module only, where both lengths are equal by construction.
    pub(crate) fn new_unchecked(a: Vec<u64>, b: Vec<u64>) -> Self {
        debug_assert_eq!(a.len(), b.len());
        Self { a, b }
    }

    /// Number of words.
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

    /// Applies `f` to both components word by word (any map commuting with XOR: shifts, masks,
    /// rotations).
    pub(crate) fn map(&self, f: impl Fn(u64) -> u64) -> Self {
        Self::new_unchecked(
            self.a.iter().map(|v| f(*v)).collect(),
            self.b.iter().map(|v| f(*v)).collect(),
        )
    }

    /// The concatenation `[self, other]` (to batch several AND gates into one round).
    pub(crate) fn concat(&self, other: &Self) -> Self {
        let cat = |x: &[u64], y: &[u64]| [x, y].concat();
        Self::new_unchecked(cat(&self.a, &other.a), cat(&self.b, &other.b))
    }

    /// Splits into the first `mid` words and the rest. `mid ≤ len` by the caller.
    pub(crate) fn split(mut self, mid: usize) -> (Self, Self) {
        let tail = Self::new_unchecked(self.a.split_off(mid), self.b.split_off(mid));
        (self, tail)
    }

    /// The concatenation of `parts` (to batch several gates or conversions into one round).
    pub(crate) fn concat_all(parts: &[&Self]) -> Self {
        let cat =
            |f: fn(&Self) -> &[u64]| parts.iter().flat_map(|p| f(p).iter().copied()).collect();
        Self::new_unchecked(cat(|p| &p.a), cat(|p| &p.b))
    }
}

impl Rep3Session {
    /// Shares `owner`'s vector of `len` words as a boolean sharing: one round, `16·len` bytes sent
    /// by the owner (`8·len` to each peer), nothing by the others.
    ///
    /// As [`Rep3Session::share_input`] with XOR for `+`: the owner's two components come from the
    /// PRF streams and it sends `x_{o+2} = x ⊕ x_o ⊕ x_{o+1}` to both peers. `input` must be
    /// `Some` with `len` words at the owner and is ignored elsewhere.
    pub async fn share_bits_input(
        &mut self,
        owner: PartyIndex,
        input: Option<&[u64]>,
        len: usize,
    ) -> Result<Rep3Bits, MpcError> {
        if owner > 2 {
            return Err(MpcError::PartyCount {
                expected: "an input owner among parties 0, 1, 2",
                got: owner,
            });
        }
        if self.me == owner {
            let x = input.ok_or(MpcError::LengthMismatch {
                what: "rep3 boolean input at its owner",
                expected: len,
                got: 0,
            })?;
            check_len("rep3 boolean input", len, x.len())?;
            let mine = draw(&mut self.prev, len); // x_o, shared with o−1
            let next = draw(&mut self.next, len); // x_{o+1}, shared with o+1
            let mut last: Vec<u64> = x
                .iter()
                .zip(&mine)
                .zip(&next)
                .map(|((x, a), b)| x ^ a ^ b)
                .collect();
            let sends = [(next_of(owner), &last[..]), (prev_of(owner), &last[..])];
            self.round(&sends, None).await?;
            last.zeroize();
            Ok(Rep3Bits::new_unchecked(mine, next))
        } else if self.me == next_of(owner) {
            let a = draw(&mut self.prev, len);
            let b = self.recv_words(owner, len).await?;
            Ok(Rep3Bits::new_unchecked(a, b))
        } else {
            let b = draw(&mut self.next, len);
            let a = self.recv_words(owner, len).await?;
            Ok(Rep3Bits::new_unchecked(a, b))
        }
    }

    /// Reveals a boolean sharing to all three parties: one round, `8·len` bytes per party (each
    /// sends `x_{i+1}` to party `i−1`).
    pub async fn reveal_bits_all(&mut self, x: &Rep3Bits) -> Result<Vec<u64>, MpcError> {
        let missing = self
            .round(
                &[(prev_of(self.me), x.b())],
                Some((next_of(self.me), x.len())),
            )
            .await?
            .ok_or(MpcError::Reconstruct("no message received"))?;
        Ok(x.a
            .iter()
            .zip(&x.b)
            .zip(&missing)
            .map(|((a, b), c)| a ^ b ^ c)
            .collect())
    }

    /// `x ⊕ y`. Local.
    pub fn xor(&self, x: &Rep3Bits, y: &Rep3Bits) -> Result<Rep3Bits, MpcError> {
        check_len("rep3 xor", x.len(), y.len())?;
        Ok(xor_unchecked(x, y))
    }

    /// `x ⊕ c` for a public vector `c`. Local: `c` goes into component `x_0` (party 0's first,
    /// party 2's second).
    pub fn xor_public(&self, x: &Rep3Bits, c: &[u64]) -> Result<Rep3Bits, MpcError> {
        check_len("rep3 xor_public", x.len(), c.len())?;
        let mut out = x.clone();
        match self.me {
            0 => out.a.iter_mut().zip(c).for_each(|(v, c)| *v ^= c),
            2 => out.b.iter_mut().zip(c).for_each(|(v, c)| *v ^= c),
            _ => {}
        }
        Ok(out)
    }

    /// `x ⊕ c` for a public word `c` applied to every element. Local.
    pub fn xor_public_scalar(&self, x: &Rep3Bits, c: u64) -> Rep3Bits {
        let mut out = x.clone();
        match self.me {
            0 => out.a.iter_mut().for_each(|v| *v ^= c),
            2 => out.b.iter_mut().for_each(|v| *v ^= c),
            _ => {}
        }
        out
    }

    /// Bitwise NOT of every word (`x ⊕ 0xff…ff`). Local. For a single-bit result in bit 0 use
    /// [`Rep3Session::not_bit`].
    pub fn not(&self, x: &Rep3Bits) -> Rep3Bits {
        self.xor_public_scalar(x, u64::MAX)
    }

    /// NOT of a single-bit sharing (bit 0 flipped, other bits untouched). Local.
    pub fn not_bit(&self, x: &Rep3Bits) -> Rep3Bits {
        self.xor_public_scalar(x, 1)
    }

    /// `x & m` for a public mask `m` applied to every word. Local.
    pub fn and_public_scalar(&self, x: &Rep3Bits, m: u64) -> Rep3Bits {
        x.map(|v| v & m)
    }

    /// `x << k` (logical) for every word; `k ≥ 64` gives zero. Local.
    pub fn shl_bits(&self, x: &Rep3Bits, k: u32) -> Rep3Bits {
        x.map(|v| v.checked_shl(k).unwrap_or(0))
    }

    /// `x >> k` (logical) for every word; `k ≥ 64` gives zero. Local.
    pub fn shr_bits(&self, x: &Rep3Bits, k: u32) -> Rep3Bits {
        x.map(|v| v.checked_shr(k).unwrap_or(0))
    }

    /// Bit `k` of every word, moved to bit 0 (the other bits zero). Local.
    pub fn bit(&self, x: &Rep3Bits, k: u32) -> Rep3Bits {
        x.map(|v| v.checked_shr(k).unwrap_or(0) & 1)
    }

    /// `x & y` word-wise: one round, `8·len` bytes per party (to the previous party).
    ///
    /// Party `i` computes `z_i = x_i&y_i ⊕ x_i&y_{i+1} ⊕ x_{i+1}&y_i ⊕ α_i` with the XOR
    /// zero-sharing `α_i = PRF(k_{i,i+1}) ⊕ PRF(k_{i−1,i})`, a 3-out-of-3 sharing of `x & y`, and
    /// sends it to party `i−1`, which does not know `PRF(k_{i,i+1})`.
    pub async fn and(&mut self, x: &Rep3Bits, y: &Rep3Bits) -> Result<Rep3Bits, MpcError> {
        check_len("rep3 and", x.len(), y.len())?;
        let (a, b) = self.and_words((&x.a, &x.b), (&y.a, &y.b)).await?;
        Ok(Rep3Bits::new_unchecked(a, b))
    }

    /// [`Self::and`] on raw components `(x_i, x_{i+1})`, `(y_i, y_{i+1})`, all four of the same
    /// length (checked by the caller): the two components of the result.
    pub(crate) async fn and_words(
        &mut self,
        (xa, xb): (&[u64], &[u64]),
        (ya, yb): (&[u64], &[u64]),
    ) -> Result<(Vec<u64>, Vec<u64>), MpcError> {
        let len = xa.len();
        debug_assert!(xb.len() == len && ya.len() == len && yb.len() == len);
        let mut z = draw(&mut self.next, len);
        xor_draw(&mut self.prev, &mut z);
        for (((zj, xa), xb), (ya, yb)) in z.iter_mut().zip(xa).zip(xb).zip(ya.iter().zip(yb)) {
            *zj ^= (xa & (ya ^ yb)) ^ (xb & ya);
        }
        let me = self.me;
        let got = self
            .round(&[(prev_of(me), &z[..])], Some((next_of(me), len)))
            .await?
            .ok_or(MpcError::Reconstruct("no message received"))?;
        Ok((z, got))
    }

    /// `[x_1 & y_1, x_2 & y_2]` in one round (the two ANDs batched into one message per party).
    pub(crate) async fn and2(
        &mut self,
        (x1, y1): (&Rep3Bits, &Rep3Bits),
        (x2, y2): (&Rep3Bits, &Rep3Bits),
    ) -> Result<(Rep3Bits, Rep3Bits), MpcError> {
        check_len("rep3 and (batched)", x1.len(), y1.len())?;
        check_len("rep3 and (batched)", x2.len(), y2.len())?;
        let z = self.and(&x1.concat(x2), &y1.concat(y2)).await?;
        Ok(z.split(x1.len()))
    }

    async fn recv_words(&mut self, from: PartyIndex, len: usize) -> Result<Vec<u64>, MpcError> {
        self.round(&[], Some((from, len)))
            .await?
            .ok_or(MpcError::Reconstruct("no message received"))
    }
}

/// This party's cross terms `x_i&y_i ⊕ x_i&y_{i+1} ⊕ x_{i+1}&y_i` of `x & y`: its part of a
/// 3-out-of-3 XOR sharing of the AND, before a reshare (`reshare_packed`) masks and distributes it.
/// Equal lengths by the caller. Local.
pub(crate) fn and_cross(x: &Rep3Bits, y: &Rep3Bits) -> Vec<u64> {
    debug_assert_eq!(x.len(), y.len());
    (0..x.len())
        .map(|j| {
            let (xa, xb, ya, yb) = (x.a[j], x.b[j], y.a[j], y.b[j]);
            (xa & (ya ^ yb)) ^ (xb & ya)
        })
        .collect()
}

/// `x ⊕ y` for shares of equal length (checked by the caller).
pub(crate) fn xor_unchecked(x: &Rep3Bits, y: &Rep3Bits) -> Rep3Bits {
    debug_assert_eq!(x.len(), y.len());
    let xor = |p: &[u64], q: &[u64]| p.iter().zip(q).map(|(p, q)| p ^ q).collect();
    Rep3Bits::new_unchecked(xor(&x.a, &y.a), xor(&x.b, &y.b))
}

/// Party `me`'s share of the sharing whose only non-zero component is `x_k` (a component `me`
/// holds when `k = me` — its first — or `k = me+1` — its second; otherwise `me` holds two zeros).
/// `a`, `b` are this party's components `(x_me, x_{me+1})`. Local, no randomness: the holders of
/// `x_k` know it already, and the third party learns nothing.
pub(crate) fn component(
    me: PartyIndex,
    k: PartyIndex,
    a: &[u64],
    b: &[u64],
) -> (Vec<u64>, Vec<u64>) {
    let zeros = vec![0u64; a.len()];
    if k == me {
        (a.to_vec(), zeros)
    } else if k == next_of(me) {
        (zeros, b.to_vec())
    } else {
        (zeros.clone(), zeros)
    }
}
