//! Fixed-point truncation: ABY3's share truncation Π_trunc1 (Mohassel–Rindal, CCS 2018, §5.1.1),
//! built on SecureML's two-party local truncation (Mohassel–Zhang, S&P 2017, Theorem 1).
//! See the module docs of [`crate::rep3`] for the protocol, its cost and its error.

use super::session::{Rep3Session, draw};
use super::share::{Rep3Share, check_len};
use crate::MpcError;
use crate::fixed::MAX_FRAC_BITS;

impl Rep3Session {
    /// `x / 2^d` (probabilistic, see the module docs): one round, party 1 sends `8·len` bytes to
    /// party 0, the others send nothing.
    pub async fn trunc(&mut self, x: &Rep3Share, d: u32) -> Result<Rep3Share, MpcError> {
        check_frac_bits(d)?;
        self.trunc_by(x, Shifts::All(d)).await
    }

    /// `x_j / 2^{d_j}` element-wise with a public shift per element (`d_j < 64`), otherwise as
    /// [`Self::trunc`]: one round, party 1 sends `8·len` bytes. The error bound of the module
    /// docs holds element by element (`|v_j| < 2^ℓ` fails with probability below `2^{ℓ−64}`).
    pub(crate) async fn trunc_each(
        &mut self,
        x: &Rep3Share,
        d: &[u32],
    ) -> Result<Rep3Share, MpcError> {
        check_len("rep3 trunc shifts", x.len(), d.len())?;
        if let Some(&bad) = d.iter().find(|&&d| d >= 64) {
            return Err(MpcError::BadFracBits { max: 63, got: bad });
        }
        self.trunc_by(x, Shifts::Each(d)).await
    }

    async fn trunc_by(&mut self, x: &Rep3Share, d: Shifts<'_>) -> Result<Rep3Share, MpcError> {
        let len = x.len();
        match self.me {
            0 => {
                let t0 = trunc_low(x.a(), d);
                let c1 = self.recv_from(1, len).await?;
                Ok(Rep3Share::new_unchecked(t0, c1))
            }
            1 => {
                let r = draw(&mut self.next, len);
                let c1 = masked_high(x.a(), Some(x.b()), &r, d);
                self.round(&[(0, &c1[..])], None).await?;
                Ok(Rep3Share::new_unchecked(c1, r))
            }
            _ => {
                let r = draw(&mut self.prev, len);
                let t0 = trunc_low(x.b(), d);
                self.round(&[], None).await?;
                Ok(Rep3Share::new_unchecked(r, t0))
            }
        }
    }

    /// Fixed-point `x · y / 2^frac_bits` element-wise: two rounds, each party sends `8·len` bytes
    /// in total (party 2 and party 0 in the first round, party 1 in the second).
    pub async fn mul_fixed(
        &mut self,
        x: &Rep3Share,
        y: &Rep3Share,
        frac_bits: u32,
    ) -> Result<Rep3Share, MpcError> {
        check_frac_bits(frac_bits)?;
        let z = self.mul_local(x, y)?;
        self.trunc_additive(z, frac_bits).await
    }

    /// Fixed-point matrix product `x (m×k) · y (k×n) / 2^frac_bits`, row-major: two rounds, each
    /// party sends `8·m·n` bytes in total.
    pub async fn matmul_fixed(
        &mut self,
        x: &Rep3Share,
        y: &Rep3Share,
        m: usize,
        k: usize,
        n: usize,
        frac_bits: u32,
    ) -> Result<Rep3Share, MpcError> {
        check_frac_bits(frac_bits)?;
        let z = self.matmul_local(x, y, m, k, n)?;
        self.trunc_additive(z, frac_bits).await
    }

    /// Truncates a 3-out-of-3 sharing `z = z_0 + z_1 + z_2` (party `i` holds `z_i`) into a
    /// replicated sharing of `≈ z / 2^d`.
    ///
    /// Round 1: party 2 sends `z_2` to party 1; party 0 sends `T_0 = ⌊z_0 / 2^d⌋` to party 2.
    /// Round 2: party 1 computes `T_1 = −⌊(−(z_1 + z_2)) / 2^d⌋`, draws `r` from `k_{1,2}` and
    /// sends `T_1 − r` to party 0. Result: components `(T_0, T_1 − r, r)`.
    pub(crate) async fn trunc_additive(
        &mut self,
        z: Vec<u64>,
        d: u32,
    ) -> Result<Rep3Share, MpcError> {
        let len = z.len();
        match self.me {
            0 => {
                let t0 = trunc_low(&z, Shifts::All(d));
                self.round(&[(2, &t0[..])], None).await?;
                let c1 = self.recv_from(1, len).await?;
                Ok(Rep3Share::new_unchecked(t0, c1))
            }
            1 => {
                let z2 = self.recv_from(2, len).await?;
                let r = draw(&mut self.next, len);
                let c1 = masked_high(&z, Some(&z2), &r, Shifts::All(d));
                self.round(&[(0, &c1[..])], None).await?;
                Ok(Rep3Share::new_unchecked(c1, r))
            }
            _ => {
                let r = draw(&mut self.prev, len);
                let t0 = self
                    .round(&[(1, &z[..])], Some((0, len)))
                    .await?
                    .ok_or(MpcError::Reconstruct("no message received"))?;
                self.round(&[], None).await?;
                Ok(Rep3Share::new_unchecked(r, t0))
            }
        }
    }
}

fn check_frac_bits(d: u32) -> Result<(), MpcError> {
    if d > MAX_FRAC_BITS {
        return Err(MpcError::BadFracBits {
            max: MAX_FRAC_BITS,
            got: d,
        });
    }
    Ok(())
}

/// The shift amounts of a truncation: one for all elements, or one per element (each `< 64`).
#[derive(Clone, Copy)]
enum Shifts<'a> {
    All(u32),
    Each(&'a [u32]),
}

impl Shifts<'_> {
    fn at(self, j: usize) -> u32 {
        match self {
            Shifts::All(d) => d,
            Shifts::Each(d) => d[j],
        }
    }
}

/// The first 2-out-of-2 party's truncation: `⌊a / 2^d⌋` (logical shift).
fn trunc_low(a: &[u64], d: Shifts<'_>) -> Vec<u64> {
    a.iter().enumerate().map(|(j, v)| v >> d.at(j)).collect()
}

/// The second 2-out-of-2 party's truncation of `b = b1 (+ b2)`, minus the mask `r`:
/// `−⌊(−b) / 2^d⌋ − r`.
fn masked_high(b1: &[u64], b2: Option<&[u64]>, r: &[u64], d: Shifts<'_>) -> Vec<u64> {
    b1.iter()
        .enumerate()
        .map(|(j, v)| {
            let b = v.wrapping_add(b2.map_or(0, |b2| b2[j]));
            (b.wrapping_neg() >> d.at(j))
                .wrapping_neg()
                .wrapping_sub(r[j])
        })
        .collect()
}
