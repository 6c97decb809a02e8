//! Comparisons and the functions built on them: MSB, less-than and friends, select, ReLU, max.
//! See the module docs of [`crate::rep3`] for the costs and the input range.

use super::boolean::Rep3Bits;
use super::session::Rep3Session;
use super::share::Rep3Share;
use crate::MpcError;
use crate::transport::Transport;

impl<T: Transport> Rep3Session<'_, T> {
    /// The most significant bit of each element (`1` iff `x < 0` as a signed 64-bit integer), as
    /// a boolean sharing of bit 0. Exact for every `x`. 8 rounds, `104·len` bytes per party
    /// (through [`Self::a2b`]).
    pub async fn msb(&mut self, x: &Rep3Share) -> Result<Rep3Bits, MpcError> {
        let bits = self.a2b(x).await?;
        Ok(self.bit(&bits, 63))
    }

    /// `x < y` (signed) as a boolean sharing of bit 0: `msb(x − y)`. Correct when
    /// `|x − y| < 2^63` as integers (e.g. both in `[−2^62, 2^62)`); otherwise the difference wraps.
    /// 8 rounds, `104·len` bytes per party.
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

    /// `bit ? x : y` element-wise, as `y + b·(x − y)` with `b` = [`Self::b2a_bit`]`(bit)` (bit 0
    /// of each word): 3 rounds, `24·len` bytes per party.
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
    /// `128·len` bytes per party.
    pub async fn relu(&mut self, x: &Rep3Share) -> Result<Rep3Share, MpcError> {
        let neg = self.msb(x).await?;
        let pos = self.not_bit(&neg);
        let b = self.b2a_bit(&pos).await?;
        self.mul(&b, x).await
    }

    /// `max(x, y)` (signed) element-wise, `lt(x, y) ? y : x`: same range as [`Self::lt`]. 11
    /// rounds, `128·len` bytes per party.
    pub async fn max(&mut self, x: &Rep3Share, y: &Rep3Share) -> Result<Rep3Share, MpcError> {
        let lt = self.lt(x, y).await?;
        self.select(&lt, y, x).await
    }
}
