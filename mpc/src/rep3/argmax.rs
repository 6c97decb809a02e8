//! Argmax of a vector or of every row of a matrix: a tournament tree whose levels are one batched
//! less-than and one batched select over all pairs of all rows. See the module docs of
//! [`crate::rep3`] for the costs.

use super::mul::mul_dims;
use super::session::Rep3Session;
use super::share::{Rep3Share, check_len};
use crate::MpcError;

/// The result of [`Rep3Session::argmax_rows`] (one entry per row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rep3Argmax {
    /// The index of the maximum within its row (`0 ≤ index < n`), the lowest one on ties.
    pub index: Rep3Share,
    /// The maximum value of the row.
    pub max: Rep3Share,
    /// With [`Rep3Session::argmax_rows_one_hot`]: the `m×n` row-major one-hot matrix (`1` at
    /// `index`, `0` elsewhere). `None` otherwise.
    pub one_hot: Option<Rep3Share>,
}

impl Rep3Session {
    /// The argmax of a vector (see [`Self::argmax_rows`] with one row): the index of its largest
    /// element (the lowest index on ties) and that element, as one-element sharings. Fails with
    /// [`MpcError::Empty`] on an empty vector.
    pub async fn argmax(&mut self, x: &Rep3Share) -> Result<Rep3Argmax, MpcError> {
        self.argmax_rows(x, 1, x.len()).await
    }

    /// Per-row argmax of the row-major `m×n` matrix `x` (signed values): for every row the
    /// index of its largest element — the lowest such index on ties, like `numpy.argmax` — and
    /// the maximum, each as an `m`-element sharing. Exact when all differences within a row fit,
    /// `|x_a − x_b| < 2^63` (for instance every value in `[−2^62, 2^62)`), as for
    /// [`Self::lt`]. Fails with [`MpcError::Empty`] if `n = 0 < m`.
    ///
    /// Tournament: the `c` candidates of a row are paired `(2i, 2i+1)`, an odd last one passes
    /// through, for `⌈log2 n⌉` levels. At each level one [`Self::lt`] over the pairs of all rows
    /// gives `b = (left < right)`, [`Self::b2a_bit`] turns it into an arithmetic bit, and one
    /// batched multiplication selects `left + b·(right − left)` for the value and the index. The
    /// left candidate always holds the lower indices and wins unless the right one is strictly
    /// larger, hence the lowest index on ties. At the first level the indices are public
    /// (`2i + b` is local), so only values are multiplied.
    ///
    /// Cost: `11·⌈log2 n⌉` rounds. A level with `p` pairs per row (`p_0 = ⌊n/2⌋`, then
    /// `p_{l+1} = ⌊⌈c_l/2⌉/2⌋`) sends per party `msb(m·p) + 8·m·p` (comparison and bit
    /// injection) plus `8·m·p` at the first level and `16·m·p` at later ones (selects), where
    /// `msb(t) = 8·Σ_w ⌈w·t/64⌉` is the cost of [`Self::msb`]. Over the whole tree the `n − 1`
    /// pairs per row send about `(30.1 + 8 + 8)·m·(n − 1) + 8·m·(n − 1 − p_0)`, i.e.
    /// `≈ 50.1·m·n` bytes per party for large `n` (`1456` for `m = 3`, `n = 10`).
    pub async fn argmax_rows(
        &mut self,
        x: &Rep3Share,
        m: usize,
        n: usize,
    ) -> Result<Rep3Argmax, MpcError> {
        self.tournament(x, m, n, false).await
    }

    /// As [`Self::argmax_rows`], and also the one-hot matrix of the argmax (`m×n`, row-major:
    /// `1` at the winning index of each row, `0` elsewhere), with the index derived from it
    /// locally (`Σ_j j·onehot_j`).
    ///
    /// The one-hot is tracked through the tournament instead of the index: candidate `i` at level
    /// `l` covers the entries `[i·2^l, (i+1)·2^l)` of its row, and the select of a pair multiplies
    /// its bit `b` into each entry of the two segments (`left·(1 − b)`, `right·b`); the first
    /// level is local (`(1 − b, b)`). Same rounds as [`Self::argmax_rows`]; the index products
    /// (`8·m·p` bytes per level after the first) are replaced by one product per covered entry,
    /// `8·m·min(2p·2^l, n)` bytes at level `l ≥ 1`: about `8·m·n·(⌈log2 n⌉ − 1)` in all
    /// (`1984` instead of `1456` for `m = 3`, `n = 10`). Ask for it only if the one-hot is used.
    pub async fn argmax_rows_one_hot(
        &mut self,
        x: &Rep3Share,
        m: usize,
        n: usize,
    ) -> Result<Rep3Argmax, MpcError> {
        self.tournament(x, m, n, true).await
    }

    async fn tournament(
        &mut self,
        x: &Rep3Share,
        m: usize,
        n: usize,
        one_hot: bool,
    ) -> Result<Rep3Argmax, MpcError> {
        check_len("rep3 argmax input (m·n)", mul_dims(m, n)?, x.len())?;
        if n == 0 && m > 0 {
            return Err(MpcError::Empty {
                what: "rep3 argmax row",
            });
        }
        // Candidates per row; candidate i covers the entries [i·span, (i+1)·span) of its row.
        let mut c = n;
        let mut span = 1usize;
        let mut vals = x.clone();
        // The candidates' indices (index mode) or the one-hot matrix (one-hot mode); `None` at
        // the start, where candidate `i` is entry `i` (public).
        let mut idx: Option<Rep3Share> = None;
        let mut oh: Option<Rep3Share> = None;
        while c > 1 {
            let p = c / 2;
            let odd = c % 2 == 1;
            let pairs = m * p;
            let pos = |side: usize| -> Vec<usize> {
                (0..m)
                    .flat_map(|r| (0..p).map(move |i| r * c + 2 * i + side))
                    .collect()
            };
            let (left_pos, right_pos) = (pos(0), pos(1));
            let lv = gather(&vals, &left_pos);
            let rv = gather(&vals, &right_pos);
            let bit = self.lt(&lv, &rv).await?;
            let b = self.b2a_bit(&bit).await?;

            // One batched multiplication: b times (right − left) for the values, then the
            // indices' differences or the one-hot entries of every pair's segment.
            let mut lhs = vec![b.clone()];
            let mut rhs = vec![self.sub(&rv, &lv)?];
            // Entries of the one-hot covered by pairs: [0, covered) of each row.
            let covered = (2 * p * span).min(n);
            if let Some(idx) = &idx {
                let li = gather(idx, &left_pos);
                let ri = gather(idx, &right_pos);
                lhs.push(b.clone());
                rhs.push(self.sub(&ri, &li)?);
            }
            if let Some(oh) = &oh {
                let entries: Vec<usize> = (0..m).flat_map(|r| r * n..r * n + covered).collect();
                let owner: Vec<usize> = (0..m)
                    .flat_map(|r| (0..covered).map(move |e| r * p + e / (2 * span)))
                    .collect();
                lhs.push(gather(&b, &owner));
                rhs.push(gather(oh, &entries));
            }
            let prod = self.mul(&concat(&lhs), &concat(&rhs)).await?;

            // New values: left + b·(right − left); an odd last candidate passes through.
            let sel_v = slice(&prod, 0, pairs);
            let new_v = self.add(&lv, &sel_v)?;
            let next_c = p + usize::from(odd);
            let pass = |share: &Rep3Share, new: &Rep3Share| -> Rep3Share {
                interleave_rows(new, share, m, p, c, odd)
            };
            vals = pass(&vals, &new_v);
            let mut at = pairs;
            if one_hot {
                oh = Some(match &oh {
                    None => self.first_one_hot(&b, m, n, p, odd),
                    Some(old) => {
                        let q = slice(&prod, at, at + m * covered);
                        at += m * covered;
                        self.update_one_hot(old, &q, m, n, covered, span)?
                    }
                });
            } else {
                idx = Some(match &idx {
                    None => {
                        // 2i + b for pairs, n − 1 for the odd one (public).
                        let base: Vec<u64> =
                            (0..m).flat_map(|_| (0..p).map(|i| 2 * i as u64)).collect();
                        let new_i = self.add_public(&b, &base)?;
                        let last = self.public_share(&vec![(c - 1) as u64; m]);
                        interleave_rows(&new_i, &last, m, p, 1, odd)
                    }
                    Some(old) => {
                        let li = gather(old, &left_pos);
                        let sel_i = slice(&prod, at, at + pairs);
                        at += pairs;
                        let new_i = self.add(&li, &sel_i)?;
                        pass(old, &new_i)
                    }
                });
            }
            debug_assert_eq!(at, prod.len());
            c = next_c;
            span *= 2;
        }
        let oh = match (one_hot, oh) {
            (false, _) => None,
            // One candidate from the start (n ≤ 1): the one-hot is the public all-ones column.
            (true, None) => Some(self.public_share(&vec![1; m * n])),
            (true, Some(oh)) => Some(oh),
        };
        let index = match (&oh, idx) {
            (Some(oh), _) => self.weighted_row_sums(oh, m, n),
            (None, Some(idx)) => idx,
            (None, None) => self.public_share(&vec![0; m]),
        };
        Ok(Rep3Argmax {
            index,
            max: vals,
            one_hot: oh,
        })
    }

    /// The one-hot matrix after the first level: `(1 − b, b)` per pair, `1` for an odd last
    /// entry. Local.
    fn first_one_hot(&self, b: &Rep3Share, m: usize, n: usize, p: usize, odd: bool) -> Rep3Share {
        let one_minus_b = self.add_public_scalar(&self.neg(b), 1);
        let mut pos = Vec::with_capacity(m * n);
        // Sources: one_minus_b (0..m·p), b (m·p..2m·p), the public one (2m·p..).
        for r in 0..m {
            for i in 0..p {
                pos.push(r * p + i);
                pos.push(m * p + r * p + i);
            }
            if odd {
                pos.push(2 * m * p + r);
            }
        }
        let ones = self.public_share(&vec![1; m]);
        gather(&concat(&[one_minus_b, b.clone(), ones]), &pos)
    }

    /// The one-hot matrix after a level `≥ 1`: in each row, the pairs' entries `[0, covered)`
    /// become `old − q` in left segments and `q` in right segments (`q = b·old`); the rest (an
    /// odd last candidate's segment) is unchanged. Local.
    fn update_one_hot(
        &self,
        old: &Rep3Share,
        q: &Rep3Share,
        m: usize,
        n: usize,
        covered: usize,
        span: usize,
    ) -> Result<Rep3Share, MpcError> {
        let covered_pos: Vec<usize> = (0..m).flat_map(|r| r * n..r * n + covered).collect();
        let kept = gather(old, &covered_pos);
        let left = self.sub(&kept, q)?;
        // Entry e of a row is in a right segment iff (e / span) is odd.
        let mut pos = Vec::with_capacity(m * n);
        let total = m * covered;
        for r in 0..m {
            for e in 0..n {
                pos.push(if e >= covered {
                    2 * total + r * n + e
                } else if (e / span) % 2 == 1 {
                    total + r * covered + e
                } else {
                    r * covered + e
                });
            }
        }
        Ok(gather(&concat(&[left, q.clone(), old.clone()]), &pos))
    }

    /// `Σ_j j·x[r·n + j]` for every row `r`. Local.
    fn weighted_row_sums(&self, x: &Rep3Share, m: usize, n: usize) -> Rep3Share {
        let sum = |v: &[u64]| -> Vec<u64> {
            (0..m)
                .map(|r| {
                    v[r * n..(r + 1) * n]
                        .iter()
                        .enumerate()
                        .fold(0u64, |acc, (j, e)| {
                            acc.wrapping_add((j as u64).wrapping_mul(*e))
                        })
                })
                .collect()
        };
        Rep3Share::new_unchecked(sum(x.a()), sum(x.b()))
    }
}

/// The elements of `x` at `pos`, in that order. Positions are in range by the caller.
fn gather(x: &Rep3Share, pos: &[usize]) -> Rep3Share {
    let pick = |v: &[u64]| pos.iter().map(|&i| v[i]).collect();
    Rep3Share::new_unchecked(pick(x.a()), pick(x.b()))
}

/// The concatenation of `parts`.
fn concat(parts: &[Rep3Share]) -> Rep3Share {
    let cat =
        |f: fn(&Rep3Share) -> &[u64]| parts.iter().flat_map(|s| f(s).iter().copied()).collect();
    Rep3Share::new_unchecked(cat(Rep3Share::a), cat(Rep3Share::b))
}

/// Elements `from..to` of `x`.
fn slice(x: &Rep3Share, from: usize, to: usize) -> Rep3Share {
    Rep3Share::new_unchecked(x.a()[from..to].to_vec(), x.b()[from..to].to_vec())
}

/// The next level's `m × (p + odd)` candidates: row `r` is `new[r·p .. (r+1)·p]`, then, if
/// `odd`, element `r·c + c − 1` of `old` (the last candidate of the row, passing through).
fn interleave_rows(
    new: &Rep3Share,
    old: &Rep3Share,
    m: usize,
    p: usize,
    c: usize,
    odd: bool,
) -> Rep3Share {
    if !odd {
        return new.clone();
    }
    let both = concat(&[new.clone(), old.clone()]);
    let base = m * p;
    let pos: Vec<usize> = (0..m)
        .flat_map(|r| (r * p..(r + 1) * p).chain(std::iter::once(base + r * c + c - 1)))
        .collect();
    gather(&both, &pos)
}
