//! The `stats` job: count, sum, mean and variance of numeric columns over horizontally split data.
//!
//! ## Protocol
//! Every party filters its own rows locally, encodes each value in fixed point (`f` fractional
//! bits, range-checked) and computes, exactly in 128-bit integers, its row count and per column the
//! sum `Σx̃` (scale 2^f) and the sum of squares `Σx̃²` (scale 2^2f). These local aggregates are
//! secret: no one else may learn them.
//!
//! 1. Round 0 — seeds: ephemeral Ristretto255 DH with every peer ([`crate::seeds::agree`]),
//!    32 bytes per peer.
//! 2. Local — each party adds its part of a zero-sharing over Z_2^128 to its aggregate vector. The
//!    result is an additive share of the joint totals; alone it is uniformly random.
//! 3. Each party seals its share to the recipient ([`crate::output`]); only the recipient, holding
//!    all `n` sealed shares, recovers the totals and derives mean and variance.
//!
//! Each party checks that its local aggregates stay below `2^126 / n` in magnitude, so the joint
//! totals are exact in Z_2^128 (they never wrap); a party whose data would break that bound refuses
//! with [`MpcError::AggregateOverflow`] naming the column.
//!
//! ## Error bound (vs. the same statistics in f64 on the unencoded data)
//! With `δ = 2^-(f+1)` the rounding error of one value and `N` the joint count:
//! count exact; sum ≤ `N·δ`; mean ≤ `δ`; sample variance ≤ `2(4δσ + 4δ²) + 8ε(σ² + μ²)` where `ε`
//! is f64's unit roundoff (the last term covers the final f64 division). [`ErrorBound`] computes
//! these, with a relative 10⁻¹² slack for the f64 reference itself.

use rand_core::CryptoRng;
use rayon::prelude::*;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::MpcError;
use crate::fixed::FixedPoint;
use crate::seeds::{self, SessionContext};
use crate::share::AdditiveShare;
use crate::transport::Channel;

/// Label of the zero-sharing that masks the output.
const OUTPUT_MASK_LABEL: &[u8] = b"stats/output-mask";

/// One party's local aggregates: row count, and per column Σx̃ and Σx̃². Secret; zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct LocalAggregates {
    count: u64,
    sums: Vec<i128>,
    sum_squares: Vec<i128>,
}

impl std::fmt::Debug for LocalAggregates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAggregates")
            .field("columns", &self.sums.len())
            .finish_non_exhaustive()
    }
}

impl LocalAggregates {
    /// Empty aggregates over `columns` columns.
    pub fn new(columns: usize) -> Self {
        Self {
            count: 0,
            sums: vec![0; columns],
            sum_squares: vec![0; columns],
        }
    }

    /// Aggregates fixed-point-encoded columns (column-major, equal lengths), in parallel.
    pub fn from_encoded(columns: &[Vec<i64>]) -> Result<Self, MpcError> {
        let rows = columns.first().map_or(0, Vec::len);
        if let Some(bad) = columns.iter().find(|c| c.len() != rows) {
            return Err(MpcError::LengthMismatch {
                what: "column lengths",
                expected: rows,
                got: bad.len(),
            });
        }
        let (sums, sum_squares): (Vec<i128>, Vec<i128>) = columns
            .par_iter()
            .map(|col| {
                col.iter().fold((0i128, 0i128), |(s, q), &x| {
                    let x = x as i128;
                    // |x| < 2^63: the sum cannot leave i128 before 2^64 rows. x² < 2^126 and the
                    // squares are non-negative, so saturation is monotone: an overflow stays at
                    // i128::MAX and fails the bound check in `to_ring`.
                    (s + x, q.saturating_add(x * x))
                })
            })
            .unzip();
        Ok(Self {
            count: rows as u64,
            sums,
            sum_squares,
        })
    }

    /// Number of rows aggregated.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Number of columns.
    pub fn columns(&self) -> usize {
        self.sums.len()
    }

    /// Lays the aggregates out as `[count, Σ₀, Σ²₀, Σ₁, Σ²₁, …]` in Z_2^128, after checking that
    /// `parties` such vectors cannot overflow when added.
    pub fn to_ring(&self, column_names: &[String], parties: usize) -> Result<Vec<u128>, MpcError> {
        if column_names.len() != self.sums.len() {
            return Err(MpcError::LengthMismatch {
                what: "column names vs aggregates",
                expected: self.sums.len(),
                got: column_names.len(),
            });
        }
        let bound = (1u128 << 126) / parties.max(1) as u128;
        let mut out = Vec::with_capacity(1 + 2 * self.sums.len());
        out.push(self.count as u128);
        for (i, name) in column_names.iter().enumerate() {
            let (s, q) = (self.sums[i], self.sum_squares[i]);
            if s.unsigned_abs() >= bound || q.unsigned_abs() >= bound {
                return Err(MpcError::AggregateOverflow {
                    column: name.clone(),
                    parties,
                });
            }
            out.push(s as u128);
            out.push(q as u128);
        }
        Ok(out)
    }
}

/// Runs the `stats` protocol for this party and returns its additive share of the joint totals
/// (layout of [`LocalAggregates::to_ring`]). One round, 32 bytes to each peer.
pub async fn run<R: CryptoRng + ?Sized>(
    transport: &Channel,
    ctx: SessionContext<'_>,
    local: &LocalAggregates,
    column_names: &[String],
    rng: &mut R,
) -> Result<AdditiveShare<u128>, MpcError> {
    if transport.parties() < 2 {
        return Err(MpcError::PartyCount {
            expected: "at least 2",
            got: transport.parties(),
        });
    }
    // Check the bound before any message goes out, so a refusing party costs nobody a round.
    let values = local.to_ring(column_names, transport.parties())?;
    let seeds = seeds::agree(transport, ctx, rng).await?;
    let mask = seeds.zero_share::<u128>(OUTPUT_MASK_LABEL, values.len());
    let mut share = AdditiveShare::from_values(values);
    share.add_assign(&mask)?;
    Ok(share)
}

/// Statistics of one column.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ColumnStats {
    /// Column name.
    pub column: String,
    /// Sum.
    pub sum: f64,
    /// Mean (`None` when no row matched).
    pub mean: Option<f64>,
    /// Sample variance, divisor `N - 1` (`None` below two rows).
    pub variance: Option<f64>,
    /// Sample standard deviation.
    pub stddev: Option<f64>,
}

/// The released result of a `stats` job.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatsResult {
    /// Rows that passed the filter, over all parties.
    pub count: u64,
    /// Per column statistics, in the job's column order.
    pub columns: Vec<ColumnStats>,
}

impl StatsResult {
    /// Derives the statistics from reconstructed totals (layout of [`LocalAggregates::to_ring`]).
    pub fn from_totals(
        totals: &[u128],
        column_names: &[String],
        fixed: FixedPoint,
    ) -> Result<Self, MpcError> {
        let expected = 1 + 2 * column_names.len();
        if totals.len() != expected {
            return Err(MpcError::LengthMismatch {
                what: "stats totals",
                expected,
                got: totals.len(),
            });
        }
        let count = u64::try_from(totals[0])
            .map_err(|_| MpcError::Reconstruct("row count does not fit in 64 bits"))?;
        let f = fixed.frac_bits();
        let columns = column_names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let s = totals[1 + 2 * i] as i128;
                let q = totals[2 + 2 * i] as i128;
                let sum = FixedPoint::decode_wide(s, f);
                let n = count as f64;
                let mean = (count > 0).then(|| sum / n);
                let variance = (count > 1).then(|| {
                    // (Σx² − (Σx)²/N) / (N − 1), in real units.
                    let q = FixedPoint::decode_wide(q, 2 * f);
                    ((q - sum * sum / n) / (n - 1.0)).max(0.0)
                });
                ColumnStats {
                    column: name.clone(),
                    sum,
                    mean,
                    variance,
                    stddev: variance.map(f64::sqrt),
                }
            })
            .collect();
        Ok(Self { count, columns })
    }

    /// The same statistics computed in the clear in f64 (compensated sums, two-pass variance):
    /// the reference every secure run is compared with. `columns[c]` holds all rows of column `c`
    /// across all parties.
    pub fn plaintext(column_names: &[String], columns: &[Vec<f64>]) -> Self {
        let count = columns.first().map_or(0, Vec::len) as u64;
        let n = count as f64;
        let columns = column_names
            .iter()
            .zip(columns)
            .map(|(name, xs)| {
                let sum = neumaier_sum(xs.iter().copied());
                let mean = (count > 0).then(|| sum / n);
                let variance = (count > 1).then(|| {
                    let m = sum / n;
                    neumaier_sum(xs.iter().map(|x| (x - m) * (x - m))) / (n - 1.0)
                });
                ColumnStats {
                    column: name.clone(),
                    sum,
                    mean,
                    variance,
                    stddev: variance.map(f64::sqrt),
                }
            })
            .collect();
        Self { count, columns }
    }

    /// The largest absolute difference from `other`, each statistic measured against its own
    /// bound: returns `(max_abs_error, within_bound)`.
    pub fn compare(&self, other: &StatsResult, fixed: FixedPoint) -> (f64, bool) {
        self.compare_with(other, |c, n| ErrorBound::for_column(c, n, fixed))
    }

    /// [`Self::compare`] with the bounds `bound(reference column, count)`.
    pub fn compare_with(
        &self,
        other: &StatsResult,
        bound: impl Fn(&ColumnStats, u64) -> ErrorBound,
    ) -> (f64, bool) {
        let mut max_err: f64 = 0.0;
        let mut ok = self.count == other.count && self.columns.len() == other.columns.len();
        for (a, b) in self.columns.iter().zip(&other.columns) {
            let bound = bound(b, self.count);
            let mut check = |x: Option<f64>, y: Option<f64>, bound: f64| match (x, y) {
                (Some(x), Some(y)) => {
                    let e = (x - y).abs();
                    max_err = max_err.max(e);
                    ok &= e <= bound;
                }
                (None, None) => {}
                _ => ok = false,
            };
            check(Some(a.sum), Some(b.sum), bound.sum);
            check(a.mean, b.mean, bound.mean);
            check(a.variance, b.variance, bound.variance);
        }
        (max_err, ok)
    }
}

/// Allowed absolute error per statistic (see the module docs for the derivation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorBound {
    /// Bound on the sum.
    pub sum: f64,
    /// Bound on the mean.
    pub mean: f64,
    /// Bound on the sample variance.
    pub variance: f64,
}

impl ErrorBound {
    /// Bounds for a column with reference statistics `reference` over `count` rows.
    pub fn for_column(reference: &ColumnStats, count: u64, fixed: FixedPoint) -> Self {
        const REL: f64 = 1e-12;
        let delta = fixed.resolution_error();
        let n = count as f64;
        let mean = reference.mean.unwrap_or(0.0);
        let var = reference.variance.unwrap_or(0.0);
        let sigma = var.sqrt();
        let eps = f64::EPSILON / 2.0;
        Self {
            sum: n * delta + REL * reference.sum.abs().max(1.0),
            mean: delta + REL * mean.abs().max(1.0),
            variance: 2.0 * (4.0 * delta * sigma + 4.0 * delta * delta)
                + 8.0 * eps * (var + mean * mean)
                + REL * var.max(1.0),
        }
    }
}

/// Σ with Neumaier's compensation (error ≈ ε·|Σ|, independent of the number of terms).
fn neumaier_sum(xs: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut comp) = (0.0f64, 0.0f64);
    for x in xs {
        let t = sum + x;
        comp += if sum.abs() >= x.abs() {
            (sum - t) + x
        } else {
            (x - t) + sum
        };
        sum = t;
    }
    sum + comp
}

#[cfg(test)]
mod tests;
