//! Multiplication, dot product and matrix product: local cross terms plus a zero-sharing give a
//! 3-out-of-3 sharing of the product, and one resharing round turns it back into a replicated one.

use super::gemm::matmul_cross_acc;
use super::session::{Rep3Session, next_of, prev_of};
use super::share::{Rep3Share, check_len};
use crate::MpcError;

impl Rep3Session {
    /// Element-wise `x · y`: one round, each party sends `8·len` bytes (to the previous party).
    pub async fn mul(&mut self, x: &Rep3Share, y: &Rep3Share) -> Result<Rep3Share, MpcError> {
        let z = self.mul_local(x, y)?;
        self.reshare(z).await
    }

    /// `Σ_j x_j · y_j` as a one-element sharing: one round, 8 bytes per party.
    pub async fn dot(&mut self, x: &Rep3Share, y: &Rep3Share) -> Result<Rep3Share, MpcError> {
        let z = self.dot_local(x, y)?;
        self.reshare(z).await
    }

    /// The row-major product of `x` (`m×k`) and `y` (`k×n`): one round, each party sends `8·m·n`
    /// bytes; only the outputs are reshared.
    pub async fn matmul(
        &mut self,
        x: &Rep3Share,
        y: &Rep3Share,
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<Rep3Share, MpcError> {
        let z = self.matmul_local(x, y, m, k, n)?;
        self.reshare(z).await
    }

    /// This party's part of a 3-out-of-3 sharing of `x · y` (element-wise):
    /// `z_i = x_i·y_i + x_i·y_{i+1} + x_{i+1}·y_i + α_i`. Local.
    pub(crate) fn mul_local(&mut self, x: &Rep3Share, y: &Rep3Share) -> Result<Vec<u64>, MpcError> {
        x.check_same_len(y, "rep3 mul")?;
        let mut z = self.zero_share(x.len());
        for (j, zj) in z.iter_mut().enumerate() {
            let (xa, xb, ya, yb) = (x.a()[j], x.b()[j], y.a()[j], y.b()[j]);
            *zj = zj
                .wrapping_add(xa.wrapping_mul(ya.wrapping_add(yb)))
                .wrapping_add(xb.wrapping_mul(ya));
        }
        Ok(z)
    }

    /// This party's part of a 3-out-of-3 sharing of `Σ_j x_j · y_j` (one element). Local.
    pub(crate) fn dot_local(&mut self, x: &Rep3Share, y: &Rep3Share) -> Result<Vec<u64>, MpcError> {
        x.check_same_len(y, "rep3 dot")?;
        let mut z = self.zero_share(1);
        let mut acc = 0u64;
        for j in 0..x.len() {
            let (xa, xb, ya, yb) = (x.a()[j], x.b()[j], y.a()[j], y.b()[j]);
            acc = acc
                .wrapping_add(xa.wrapping_mul(ya.wrapping_add(yb)))
                .wrapping_add(xb.wrapping_mul(ya));
        }
        z[0] = z[0].wrapping_add(acc);
        Ok(z)
    }

    /// This party's part of a 3-out-of-3 sharing of the `m×n` product
    /// `X_i·(Y_i + Y_{i+1}) + X_{i+1}·Y_i + α_i`. Local.
    pub(crate) fn matmul_local(
        &mut self,
        x: &Rep3Share,
        y: &Rep3Share,
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<Vec<u64>, MpcError> {
        check_len("rep3 matmul left operand (m·k)", mul_dims(m, k)?, x.len())?;
        check_len("rep3 matmul right operand (k·n)", mul_dims(k, n)?, y.len())?;
        let out_len = mul_dims(m, n)?;
        let mut z = self.zero_share(out_len);
        matmul_cross_acc(&mut z, (x.a(), x.b()), (y.a(), y.b()), (m, k, n));
        Ok(z)
    }

    /// Turns a 3-out-of-3 sharing into a replicated one: party `i` sends `z_i` to party `i−1` and
    /// receives `z_{i+1}` from party `i+1`. One round, `8·len` bytes per party.
    pub(crate) async fn reshare(&mut self, z: Vec<u64>) -> Result<Rep3Share, MpcError> {
        let me = self.me;
        let len = z.len();
        let got = self
            .round(&[(prev_of(me), &z[..])], Some((next_of(me), len)))
            .await?
            .ok_or(MpcError::Reconstruct("no message received"))?;
        Ok(Rep3Share::new_unchecked(z, got))
    }
}

/// `a · b` for matrix dimensions, refusing overflow.
pub(crate) fn mul_dims(a: usize, b: usize) -> Result<usize, MpcError> {
    a.checked_mul(b).ok_or(MpcError::LengthMismatch {
        what: "matrix dimensions overflow usize",
        expected: usize::MAX,
        got: a,
    })
}
