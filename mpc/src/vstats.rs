//! The `stats` job over vertically split data: the *data parties* hold different columns of the
//! same records, already aligned by PSI (row `j` is the same person at every data party: the
//! intersection's common order), and the remaining party of the three is a *helper* that holds
//! nothing and only computes. Three parties, replicated sharing over Z_2^64 ([`crate::rep3`]).
//!
//! ```text
//!   hospital  f_j (diabetic == 1) ──┐ share_input                       ┌─► z_0 ─ seal ─┐
//!   insurer   x̃_j, q_j ─────────────┼─────────►  f · [1 | x̃ | q]  ──────┼─► z_1 ─ seal ─┼─► analyst:
//!   bank      (helper, no data) ────┘          (one rep3 matmul)      └─► z_2 ─ seal ─┘  N, Σx, Σx²
//! ```
//!
//! ## Protocol
//! The [`VerticalLayout`] is public (derived from the job spec by every party): which parties
//! hold data, which party owns each value column and which parties hold a filter.
//!
//! 0. Header (one round, in the `rows` child of the channel): every data party sends the number `N` of aligned rows to both
//!    peers and a digest of its aligned id list to the other data party; everyone checks that the
//!    data parties agree. The helper thereby learns `N`, and nothing else.
//! 1. Seeds: [`Rep3Session::setup`], one round.
//! 2. Input: each data party, in index order, shares one column-major matrix in one
//!    [`Rep3Session::share_input`] round (`16·N·w` bytes from it, nothing from the others): its
//!    filter indicator `f_p ∈ {0, 1}` (the AND of its own filters, evaluated locally), if it has
//!    one, and per value column it owns `x̃ = round(x·2^f)` and `q = round(x̃² / 2^f)` — the
//!    square at scale `2^f`, computed exactly from `x̃` by the owner, so no product of secrets
//!    ever needs truncating.
//! 3. Filter: `f = Π_p f_p`, one [`Rep3Session::mul`] per filter party after the first (none for
//!    a single filter); the public all-ones vector when the job has no filter.
//! 4. Aggregates: one [`Rep3Session::matmul`] `f (1×N) · [1 | x̃_0 | q_0 | x̃_1 | …] (N×(1+2C))`,
//!    that is `1 + 2C` dot products in one round with `8·(1 + 2C)` bytes per party (only the
//!    outputs are reshared): `[Σf, Σf·x̃_0, Σf·q_0, …]`, the layout of
//!    [`crate::stats::LocalAggregates::to_ring`].
//! 5. Output: each party's own component `z_i` of the product's 3-out-of-3 sharing (masked by a
//!    fresh zero-sharing, so any two components are uniform) is its additive share of the
//!    aggregates; it seals it to the recipient like the horizontal `stats` job. [`totals`] turns
//!    the opened sum into the Z_2^128 totals [`crate::stats::StatsResult::from_totals`] decodes.
//!    Nothing is revealed to any party: not a row, not a filter bit, not an aggregate.
//!
//! Rounds: header 1, seeds 1, one per data party with a column or a filter, one per filter party
//! after the first, matmul 1 — 5 for a filter at one party and columns at the other.
//!
//! ## Range: the Z_2^64 sums never wrap
//! Before anything is sent, each data party checks, over **all** `N` aligned rows of every column
//! it owns, that `Σ|x̃| < 2^63` and `Σq < 2^63` (in real units: `Σ|x|` and `Σx²` below
//! `2^(63−f)`, ≈ 1.4·10^14 at `f = 16`). Any filtered subset has smaller sums, so `Σf·x̃` read as
//! an `i64` and `Σf·q` read as a `u64 < 2^63` are the exact integer sums. A column that breaks the
//! bound is refused with [`MpcError::ColumnRange`] (use fewer fractional bits).
//!
//! ## Error bound (vs. the same statistics in f64 on the unencoded joined rows)
//! With `δ = 2^-(f+1)` and `n` the count: count exact; sum ≤ `n·δ`; mean ≤ `δ`; sample variance
//! ≤ `2(4δσ + 4δ²) + 2δ + 8ε(σ² + μ²)`: the horizontal bound ([`crate::stats`]) plus `2δ`, as
//! rounding each square to scale `2^f` adds at most `δ` per row to `Σx²` (and `n/(n−1) ≤ 2`).
//! [`ErrorBound::for_vertical_column`] computes it.

use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::MpcError;
use crate::fixed::FixedPoint;
use crate::rep3::{Rep3Session, Rep3Share};
use crate::seeds::SessionContext;
use crate::share::AdditiveShare;
use crate::stats::{ColumnStats, ErrorBound, StatsResult};
use crate::transport::{Channel, PartyIndex, exchange};

/// Length of the alignment digest the data parties compare.
pub const DIGEST_LEN: usize = 32;
/// Default of the most aligned rows a party accepts in a job ([`VerticalInput::with_max_rows`],
/// [`crate::glm::GlmInput::with_max_rows`]): the data parties declare the count and every party,
/// the helper included, then allocates shares for that many rows.
pub const DEFAULT_MAX_ROWS: usize = 1 << 24;

/// Who holds what in a vertical `stats` job. Public: every party derives it from the job spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerticalLayout {
    /// Parties holding rows of the join, ascending (the others are helpers).
    pub data_parties: Vec<PartyIndex>,
    /// The owner of each value column, in the job's column order.
    pub column_owners: Vec<PartyIndex>,
    /// Parties holding a filter (each evaluates the AND of its own filters), ascending.
    pub filter_parties: Vec<PartyIndex>,
}

impl VerticalLayout {
    /// Checks the layout: one or more data parties among 0, 1, 2, ascending; at least one column;
    /// every column and filter owned by a data party.
    pub fn check(&self) -> Result<(), MpcError> {
        let ascending = |v: &[PartyIndex]| v.windows(2).all(|w| w[0] < w[1]);
        if self.data_parties.is_empty()
            || !ascending(&self.data_parties)
            || self.data_parties.iter().any(|&p| p > 2)
        {
            return Err(MpcError::BadParams(
                "vertical stats: data parties must be distinct, ascending, among 0, 1, 2",
            ));
        }
        if self.column_owners.is_empty() {
            return Err(MpcError::BadParams("vertical stats: no value column"));
        }
        let owned = |p: &PartyIndex| self.data_parties.contains(p);
        if !self.column_owners.iter().all(owned)
            || !self.filter_parties.iter().all(owned)
            || !ascending(&self.filter_parties)
        {
            return Err(MpcError::BadParams(
                "vertical stats: every column and filter must belong to a data party",
            ));
        }
        Ok(())
    }

    /// Indices (in job order) of the columns party `p` owns.
    fn columns_of(&self, p: PartyIndex) -> Vec<usize> {
        (0..self.column_owners.len())
            .filter(|&c| self.column_owners[c] == p)
            .collect()
    }

    /// Width of the matrix party `p` shares: its filter (if any) and two words per column.
    fn width(&self, p: PartyIndex) -> usize {
        usize::from(self.filter_parties.contains(&p)) + 2 * self.columns_of(p).len()
    }
}

/// This party's aligned data: nothing at a helper; at a data party its rows in the common order
/// — the filter indicator (if the layout gives it a filter) and the encoded values of the
/// columns it owns — and a digest of its aligned id list. Secret; zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct VerticalInput {
    rows: usize,
    filter: Option<Vec<u64>>,
    columns: Vec<Vec<i64>>,
    digest: Option<[u8; DIGEST_LEN]>,
    max_rows: usize,
}

impl std::fmt::Debug for VerticalInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerticalInput")
            .field("rows", &self.rows)
            .field("filter", &self.filter.is_some())
            .field("columns", &self.columns.len())
            .finish_non_exhaustive()
    }
}

impl VerticalInput {
    /// A helper's input: nothing.
    pub fn helper() -> Self {
        Self {
            rows: 0,
            filter: None,
            columns: Vec::new(),
            digest: None,
            max_rows: DEFAULT_MAX_ROWS,
        }
    }

    /// A data party's input: `rows` aligned rows, its filter indicator (`None` if it has no
    /// filter), the fixed-point encoded values of the columns it owns (in job order) and the
    /// digest of its aligned ids (compared with the other data party's, never sent to a helper).
    pub fn data(
        rows: usize,
        filter: Option<Vec<bool>>,
        columns: Vec<Vec<i64>>,
        digest: [u8; DIGEST_LEN],
    ) -> Result<Self, MpcError> {
        let lens = filter
            .iter()
            .map(Vec::len)
            .chain(columns.iter().map(Vec::len));
        for len in lens {
            if len != rows {
                return Err(MpcError::LengthMismatch {
                    what: "aligned column vs aligned rows",
                    expected: rows,
                    got: len,
                });
            }
        }
        Ok(Self {
            rows,
            filter: filter.map(|f| f.into_iter().map(u64::from).collect()),
            columns,
            digest: Some(digest),
            max_rows: DEFAULT_MAX_ROWS,
        })
    }

    /// The most aligned rows this party accepts ([`DEFAULT_MAX_ROWS`] unless set): a larger
    /// count, declared by a data party or its own, fails the job ([`MpcError::OverLimit`])
    /// before anything is allocated for it.
    #[must_use]
    pub fn with_max_rows(mut self, max_rows: usize) -> Self {
        self.max_rows = max_rows;
        self
    }

    fn is_data(&self) -> bool {
        self.digest.is_some()
    }
}

/// What one party ends with.
#[derive(Debug)]
pub struct VerticalOutcome {
    /// This party's additive share (over Z_2^64) of `[count, Σx̃_0, Σq_0, …]`, for the recipient.
    pub share: AdditiveShare<u64>,
    /// The number of aligned rows (the intersection's size), agreed by the data parties.
    pub rows: usize,
}

/// Runs the vertical `stats` protocol for this party (three parties; see the module docs).
///
/// `column_names` (job order) name columns in range errors. Fails with
/// [`MpcError::EmptyIntersection`] at every party when the data parties have no aligned row.
#[allow(clippy::too_many_arguments)]
pub async fn run<R: CryptoRng + ?Sized>(
    transport: &Channel,
    ctx: SessionContext<'_>,
    layout: &VerticalLayout,
    input: &VerticalInput,
    column_names: &[String],
    fixed: FixedPoint,
    rng: &mut R,
) -> Result<VerticalOutcome, MpcError> {
    if transport.parties() != 3 {
        return Err(MpcError::PartyCount {
            expected: "exactly 3 (vertical stats on rep3)",
            got: transport.parties(),
        });
    }
    layout.check()?;
    if column_names.len() != layout.column_owners.len() {
        return Err(MpcError::LengthMismatch {
            what: "column names vs layout",
            expected: layout.column_owners.len(),
            got: column_names.len(),
        });
    }
    let me = transport.me();
    let mine = layout.columns_of(me);
    let is_data = layout.data_parties.contains(&me);
    if is_data != input.is_data()
        || input.columns.len() != mine.len()
        || input.filter.is_some() != layout.filter_parties.contains(&me)
    {
        return Err(MpcError::BadParams(
            "vertical stats: this party's input does not match its role in the layout",
        ));
    }
    // Range check before any message leaves, so a refusing party costs nobody a round.
    let mut matrix = Zeroizing::new(Vec::new());
    if is_data {
        matrix.reserve(input.rows.saturating_mul(layout.width(me)));
        if let Some(f) = &input.filter {
            matrix.extend_from_slice(f);
        }
        for (k, &c) in mine.iter().enumerate() {
            encode_column(&column_names[c], &input.columns[k], fixed, &mut matrix)?;
        }
    }

    let mine = input.digest.as_ref().map(|d| (input.rows, d));
    let rows = agree_rows(
        &transport.child("rows"),
        &layout.data_parties,
        mine,
        input.max_rows,
    )
    .await?;
    if rows == 0 {
        return Err(MpcError::EmptyIntersection);
    }
    let mut session = Rep3Session::setup(transport, ctx, rng).await?;

    // Every data party with something to share shares its matrix (column-major), in index order.
    let mut shared: [Option<Rep3Share>; 3] = [None, None, None];
    for &p in &layout.data_parties {
        let width = layout.width(p);
        if width == 0 {
            continue;
        }
        let len = rows.checked_mul(width).ok_or(MpcError::LengthMismatch {
            what: "aligned rows × columns overflow usize",
            expected: usize::MAX,
            got: rows,
        })?;
        let own = (p == me).then_some(&matrix[..]);
        shared[p] = Some(session.share_input(p, own, len).await?);
    }
    drop(matrix);
    let column = |p: PartyIndex, k: usize| -> Result<Rep3Share, MpcError> {
        let s = shared[p].as_ref().ok_or(MpcError::BadParams(
            "vertical stats: a data party shared nothing",
        ))?;
        let r = k * rows..(k + 1) * rows;
        Rep3Share::from_parts(s.a()[r.clone()].to_vec(), s.b()[r].to_vec())
    };

    // The combined filter: the product of the parties' indicators, or public ones.
    let zero = Rep3Share::from_parts(vec![0; rows], vec![0; rows])?;
    let ones = session.add_public_scalar(&zero, 1);
    let mut filter: Option<Rep3Share> = None;
    for &p in &layout.filter_parties {
        let fp = column(p, 0)?;
        filter = Some(match filter {
            None => fp,
            Some(g) => session.mul(&g, &fp).await?,
        });
    }
    let filter = filter.unwrap_or_else(|| ones.clone());

    // The right operand, row-major N × (1 + 2C): [1 | x̃_0 | q_0 | x̃_1 | q_1 | …].
    let mut parts = vec![ones];
    for (c, &p) in layout.column_owners.iter().enumerate() {
        // Column c is its owner's `before`-th: after the filter (if any), two words per column.
        let before = layout.column_owners[..c]
            .iter()
            .filter(|&&o| o == p)
            .count();
        let at = usize::from(layout.filter_parties.contains(&p)) + 2 * before;
        parts.push(column(p, at)?);
        parts.push(column(p, at + 1)?);
    }
    let width = parts.len();
    let interleave = |get: fn(&Rep3Share) -> &[u64]| -> Vec<u64> {
        let mut out = Vec::with_capacity(rows * width);
        for j in 0..rows {
            out.extend(parts.iter().map(|s| get(s)[j]));
        }
        out
    };
    let y = Rep3Share::from_parts(interleave(Rep3Share::a), interleave(Rep3Share::b))?;
    drop(parts);
    let out = session.matmul(&filter, &y, 1, rows, width).await?;
    Ok(VerticalOutcome {
        share: AdditiveShare::from_values(out.a().to_vec()),
        rows,
    })
}

/// Appends `x̃` as ring words, then `q = round(x̃²/2^f)`, to `out`, after checking `Σ|x̃| < 2^63`
/// and `Σq < 2^63` over all rows.
fn encode_column(
    name: &str,
    x: &[i64],
    fixed: FixedPoint,
    out: &mut Vec<u64>,
) -> Result<(), MpcError> {
    let f = fixed.frac_bits();
    let half = if f == 0 { 0 } else { 1u128 << (f - 1) };
    // |x̃| ≤ 2^63, so x̃² ≤ 2^126: no overflow in u128.
    let square = |v: i64| {
        let m = u128::from(v.unsigned_abs());
        (m * m + half) >> f
    };
    let limit = 1u128 << 63;
    let (mut abs_sum, mut sq_sum) = (0u128, 0u128);
    for &v in x {
        abs_sum += u128::from(v.unsigned_abs());
        sq_sum += square(v);
        if abs_sum >= limit || sq_sum >= limit {
            return Err(MpcError::ColumnRange {
                column: name.to_string(),
                rows: x.len(),
                frac_bits: f,
            });
        }
    }
    out.extend(x.iter().map(|&v| v as u64));
    // Below 2^63 after the check above.
    out.extend(x.iter().map(|&v| square(v) as u64));
    Ok(())
}

/// One round of `transport`: every data party announces its number `N` of aligned rows to both peers
/// and its alignment digest to the other data parties; everyone checks that the data parties
/// agree. `mine` is `Some((N, digest))` at a data party and `None` at a helper (which learns `N`
/// and nothing else). Returns `N`, at most `max_rows`: a larger count (declared by a peer, or
/// this party's own, checked before anything is sent) is [`MpcError::OverLimit`].
pub(crate) async fn agree_rows(
    transport: &Channel,
    data_parties: &[PartyIndex],
    mine: Option<(usize, &[u8; DIGEST_LEN])>,
    max_rows: usize,
) -> Result<usize, MpcError> {
    let me = transport.me();
    let is_data = |p: PartyIndex| data_parties.contains(&p);
    if is_data(me) != mine.is_some() {
        return Err(MpcError::BadParams(
            "this party's input does not match its role (data party or helper)",
        ));
    }
    let over = |from: PartyIndex, declared: u64| MpcError::OverLimit {
        from,
        what: "aligned rows",
        declared,
        limit: max_rows as u64,
    };
    if let Some((rows, _)) = mine
        && rows > max_rows
    {
        return Err(over(me, rows as u64));
    }
    let round = transport.round();
    let got = exchange(transport, |peer| match mine {
        None => Vec::new(),
        Some((rows, digest)) => {
            let mut m = (rows as u64).to_le_bytes().to_vec();
            if is_data(peer) {
                m.extend_from_slice(digest);
            }
            m
        }
    })
    .await?;
    let mut rows = mine.map(|(rows, _)| rows);
    for (from, msg) in got.iter().enumerate() {
        let Some(msg) = msg else { continue };
        if !is_data(from) {
            if !msg.is_empty() {
                return Err(MpcError::MalformedMessage {
                    from,
                    round,
                    what: "a helper's header must be empty",
                });
            }
            continue;
        }
        let expected = if is_data(me) { 8 + DIGEST_LEN } else { 8 };
        if msg.len() != expected {
            return Err(MpcError::MalformedMessage {
                from,
                round,
                what: "header of the wrong length",
            });
        }
        let mut n = [0u8; 8];
        n.copy_from_slice(&msg[..8]);
        let n = u64::from_le_bytes(n);
        if n > max_rows as u64 {
            return Err(over(from, n));
        }
        // At most `max_rows`, a usize.
        let n = n as usize;
        match rows {
            Some(r) if r != n => {
                return Err(MpcError::ProtocolMismatch {
                    from,
                    what: "number of aligned rows (the size of the intersection)",
                });
            }
            _ => rows = Some(n),
        }
        if let Some((_, digest)) = mine {
            // Both sides know the ids; a plain comparison leaks nothing new.
            if msg[8..] != digest[..] {
                return Err(MpcError::ProtocolMismatch {
                    from,
                    what: "aligned ids (the data parties hold different intersections)",
                });
            }
        }
    }
    rows.ok_or(MpcError::BadParams("no data party"))
}

/// Turns the reconstructed words `[count, Σx̃_0, Σq_0, …]` (Z_2^64) into the Z_2^128 totals of
/// [`StatsResult::from_totals`]: `Σx̃` sign-extended, `Σq` (scale `2^f`) shifted to scale `2^2f`.
/// Fails if a word is outside the range the protocol guarantees (wrong key or corrupt shares).
pub fn totals(words: &[u64], columns: usize, fixed: FixedPoint) -> Result<Vec<u128>, MpcError> {
    let expected = 1 + 2 * columns;
    if words.len() != expected {
        return Err(MpcError::LengthMismatch {
            what: "vertical stats totals",
            expected,
            got: words.len(),
        });
    }
    let f = fixed.frac_bits();
    let mut out = Vec::with_capacity(expected);
    out.push(u128::from(words[0]));
    for pair in words[1..].chunks_exact(2) {
        if pair[1] >= 1 << 63 || words[0] >= 1 << 63 {
            return Err(MpcError::Reconstruct(
                "a vertical stats total is outside the guaranteed range",
            ));
        }
        out.push(i128::from(pair[0] as i64) as u128);
        out.push(u128::from(pair[1]) << f);
    }
    Ok(out)
}

impl ErrorBound {
    /// Bounds for a column of a vertical `stats` job: those of [`ErrorBound::for_column`] with
    /// `2δ` more on the variance (the squares are rounded to scale `2^f`; see [`crate::vstats`]).
    pub fn for_vertical_column(reference: &ColumnStats, count: u64, fixed: FixedPoint) -> Self {
        let mut b = Self::for_column(reference, count, fixed);
        b.variance += 2.0 * fixed.resolution_error();
        b
    }
}

/// [`StatsResult::compare`] with the vertical bounds: `(max_abs_error, within_bound)`.
pub fn compare(secure: &StatsResult, reference: &StatsResult, fixed: FixedPoint) -> (f64, bool) {
    secure.compare_with(reference, |c, n| {
        ErrorBound::for_vertical_column(c, n, fixed)
    })
}

#[cfg(test)]
mod tests;
