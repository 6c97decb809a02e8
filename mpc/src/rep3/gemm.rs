//! The local kernel of the rep3 matrix product: `out += a_1·b_1 + a_2·b_2` over Z_2^64, as one
//! fused product `[a_1 | a_2] · [b_1; b_2]` (inner dimension `2k`), cache-blocked, on rayon, and
//! vectorised.
//!
//! Layout follows the usual GEMM scheme (Goto–van de Geijn, "Anatomy of high-performance matrix
//! multiplication", TOMS 2008): the right operand is packed once into column panels of `NR`
//! columns (`2k × NR`, row after row); each rayon task owns `MC` rows of the output, packs its
//! rows of the left operand `KC` columns at a time into row panels of `MR` rows, and runs an
//! `MR × NR` micro-kernel whose accumulators stay in registers. The micro-kernel is plain Rust
//! over fixed-size arrays that LLVM vectorises; [`multiversion`] compiles it for AVX-512
//! (`vpmullq`), AVX2 and the baseline and picks one at run time. Wrapping arithmetic, so the
//! result is exact in every version and in any order.

use multiversion::multiversion;
use rayon::prelude::*;

/// Rows of the micro-kernel's output tile.
const MR: usize = 8;
/// Columns of the micro-kernel's output tile (two 512-bit vectors of `u64`).
const NR: usize = 16;
/// Inner-dimension block: a `KC × NR` panel of the right operand is 32 KiB (L1 size).
const KC: usize = 256;
/// Output rows per rayon task; its `MC × KC` block of the left operand (128 KiB) stays in L2.
const MC: usize = 64;

/// Below this many multiply-adds (or with fewer than `NR` output columns) the simple row-wise
/// loop is used: packing would cost more than it saves.
const BLOCKED_THRESHOLD: usize = 1 << 18;

/// Above this many multiply-adds the simple loop runs its rows on rayon. Local scheduling only:
/// the result is the same either way, so parties need not agree on it.
const PAR_THRESHOLD: usize = 1 << 16;

/// `out += xa·(ya + yb) + xb·ya`, row-major: `xa`, `xb` are `m×k`, `ya`, `yb` are `k×n`, `out`
/// is `m×n`. Lengths are checked by the caller.
pub(crate) fn matmul_cross_acc(
    out: &mut [u64],
    (xa, xb): (&[u64], &[u64]),
    (ya, yb): (&[u64], &[u64]),
    (m, k, n): (usize, usize, usize),
) {
    debug_assert_eq!(out.len(), m * n);
    debug_assert_eq!((xa.len(), xb.len()), (m * k, m * k));
    debug_assert_eq!((ya.len(), yb.len()), (k * n, k * n));
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let work = m.saturating_mul(k).saturating_mul(n);
    if work < BLOCKED_THRESHOLD || n < NR {
        let y_sum: Vec<u64> = ya.iter().zip(yb).map(|(a, b)| a.wrapping_add(*b)).collect();
        simple_acc(out, xa, &y_sum, (k, n), work >= PAR_THRESHOLD);
        simple_acc(out, xb, ya, (k, n), work >= PAR_THRESHOLD);
        return;
    }
    let k2 = 2 * k;
    let panels = n.div_ceil(NR);
    // Packed right operand: panel p holds rows 0..2k of columns p·NR..(p+1)·NR (zero padded);
    // rows 0..k are ya + yb, rows k..2k are ya.
    let mut packed_b = vec![0u64; panels * k2 * NR];
    packed_b
        .par_chunks_mut(k2 * NR)
        .enumerate()
        .for_each(|(p, panel)| pack_b(panel, ya, yb, (k, n), p * NR));
    let packed_b = &packed_b[..];
    out.par_chunks_mut(MC * n)
        .enumerate()
        .for_each(|(blk, rows)| block(rows, xa, xb, packed_b, k, n, blk * MC));
}

/// Packs columns `j0..j0+NR` of `[ya + yb; ya]` (zero past column `n`) row after row.
fn pack_b(panel: &mut [u64], ya: &[u64], yb: &[u64], (k, n): (usize, usize), j0: usize) {
    let cols = NR.min(n - j0);
    for (kk, dst) in panel.chunks_exact_mut(NR).enumerate() {
        let (r, with_yb) = if kk < k { (kk, true) } else { (kk - k, false) };
        let src = r * n + j0..r * n + j0 + cols;
        if with_yb {
            for ((d, a), b) in dst.iter_mut().zip(&ya[src.clone()]).zip(&yb[src]) {
                *d = a.wrapping_add(*b);
            }
        } else {
            dst[..cols].copy_from_slice(&ya[src]);
        }
    }
}

/// One task: `rows` (`MC` or fewer output rows starting at row `i0`) `+= [xa | xb] · B`, with
/// `B` packed by [`pack_b`].
#[multiversion(targets(
    "x86_64+avx+avx2+fma+avx512f+avx512dq+avx512vl+avx512bw+avx512cd",
    "x86_64+avx+avx2+fma",
))]
fn block(
    rows: &mut [u64],
    xa: &[u64],
    xb: &[u64],
    packed_b: &[u64],
    k: usize,
    n: usize,
    i0: usize,
) {
    let m_here = rows.len() / n;
    let k2 = 2 * k;
    let row_panels = m_here.div_ceil(MR);
    let mut packed_a = vec![0u64; row_panels * MR * KC];
    for pc in (0..k2).step_by(KC) {
        let kc = KC.min(k2 - pc);
        // Row panel q holds rows q·MR..(q+1)·MR of A' = [xa | xb], columns pc..pc+kc, column
        // after column (MR values each), zero padded past the last row.
        for q in 0..row_panels {
            let dst = &mut packed_a[q * MR * KC..][..kc * MR];
            for r in 0..MR {
                let i = q * MR + r;
                if i >= m_here {
                    for kk in 0..kc {
                        dst[kk * MR + r] = 0;
                    }
                    continue;
                }
                let row = i0 + i;
                for kk in 0..kc {
                    let col = pc + kk;
                    dst[kk * MR + r] = if col < k {
                        xa[row * k + col]
                    } else {
                        xb[row * k + col - k]
                    };
                }
            }
        }
        for (p, b_panel) in packed_b.chunks_exact(k2 * NR).enumerate() {
            let b = &b_panel[pc * NR..(pc + kc) * NR];
            let j0 = p * NR;
            let cols = NR.min(n - j0);
            for q in 0..row_panels {
                let a = &packed_a[q * MR * KC..][..kc * MR];
                let acc = micro(a, b);
                for (r, acc_row) in acc.iter().enumerate().take(m_here - (q * MR).min(m_here)) {
                    let out = &mut rows[(q * MR + r) * n + j0..][..cols];
                    for (o, v) in out.iter_mut().zip(acc_row) {
                        *o = o.wrapping_add(*v);
                    }
                }
            }
        }
    }
}

/// The `MR × NR` tile `Σ_kk a[kk] ⊗ b[kk]` of packed panels (`a`: `MR` values per `kk`, `b`:
/// `NR` values per `kk`). Inlined into each version of [`block`].
#[inline(always)]
fn micro(a: &[u64], b: &[u64]) -> [[u64; NR]; MR] {
    let mut acc = [[0u64; NR]; MR];
    let (a, _) = a.as_chunks::<MR>();
    let (b, _) = b.as_chunks::<NR>();
    for (av, bv) in a.iter().zip(b) {
        for (acc_row, &x) in acc.iter_mut().zip(av) {
            for (c, &y) in acc_row.iter_mut().zip(bv) {
                *c = c.wrapping_add(x.wrapping_mul(y));
            }
        }
    }
    acc
}

/// `out += a · b`, row by row (`a` is `m×k`, `b` is `k×n`).
fn simple_acc(out: &mut [u64], a: &[u64], b: &[u64], (k, n): (usize, usize), par: bool) {
    let row = |(i, out_row): (usize, &mut [u64])| simple_row(out_row, &a[i * k..(i + 1) * k], b, n);
    if par {
        out.par_chunks_mut(n).enumerate().for_each(row);
    } else {
        out.chunks_mut(n).enumerate().for_each(row);
    }
}

/// `out_row += a_row · b` for one output row.
#[multiversion(targets(
    "x86_64+avx+avx2+fma+avx512f+avx512dq+avx512vl+avx512bw+avx512cd",
    "x86_64+avx+avx2+fma",
))]
fn simple_row(out_row: &mut [u64], a_row: &[u64], b: &[u64], n: usize) {
    for (kk, &aik) in a_row.iter().enumerate() {
        let b_row = &b[kk * n..(kk + 1) * n];
        for (o, &bkj) in out_row.iter_mut().zip(b_row) {
            *o = o.wrapping_add(aik.wrapping_mul(bkj));
        }
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};

    use super::*;

    fn naive(
        xa: &[u64],
        xb: &[u64],
        ya: &[u64],
        yb: &[u64],
        m: usize,
        k: usize,
        n: usize,
    ) -> Vec<u64> {
        let mut out = vec![0u64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0u64;
                for kk in 0..k {
                    let s = ya[kk * n + j].wrapping_add(yb[kk * n + j]);
                    acc = acc
                        .wrapping_add(xa[i * k + kk].wrapping_mul(s))
                        .wrapping_add(xb[i * k + kk].wrapping_mul(ya[kk * n + j]));
                }
                out[i * n + j] = acc;
            }
        }
        out
    }

    #[test]
    fn blocked_and_simple_kernels_match_the_naive_product() {
        let mut rng = ChaCha20Rng::seed_from_u64(40);
        // Shapes on both sides of the thresholds, with ragged edges in every dimension.
        for (m, k, n) in [
            (1, 1, 1),
            (3, 5, 2),
            (70, 130, 17),
            (9, 300, 100),
            (130, 70, 33),
            (65, 129, 16),
            (200, 64, 48),
        ] {
            let mut draw = |len: usize| (0..len).map(|_| rng.next_u64()).collect::<Vec<_>>();
            let (xa, xb) = (draw(m * k), draw(m * k));
            let (ya, yb) = (draw(k * n), draw(k * n));
            let init = draw(m * n);
            let mut out = init.clone();
            matmul_cross_acc(&mut out, (&xa, &xb), (&ya, &yb), (m, k, n));
            let want = naive(&xa, &xb, &ya, &yb, m, k, n);
            for j in 0..m * n {
                assert_eq!(
                    out[j],
                    init[j].wrapping_add(want[j]),
                    "m={m} k={k} n={n} at {j}"
                );
            }
        }
    }
}
