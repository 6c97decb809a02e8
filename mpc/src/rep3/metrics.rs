//! Evaluation metrics of a binary classifier on secret scores and secret labels, revealing
//! nothing but the metric (returned as a sharing): the accuracy at a public threshold and the
//! exact ROC AUC. See the module docs of [`crate::rep3`] for the costs.

use super::boolean::Rep3Bits;
use super::session::Rep3Session;
use super::share::{Rep3Share, check_len};
use crate::MpcError;
use crate::fixed::MAX_FRAC_BITS;

/// Unordered score pairs [`Rep3Session::auc`] compares per block: every block is one
/// [`Rep3Session::msb_is_zero`] and one [`Rep3Session::b2a_bit`] (10 rounds), and bounds the
/// memory (about 300 bytes per pair and party at the peak, some 300 MiB at `2^20`: 0.9 GB for
/// three in-process parties at `n = 1448`, measured by `timing_auc`; 2.3 s there on two
/// shared cores) and the largest message (`16` bytes per pair, the bit injection).
pub const AUC_BLOCK_PAIRS: usize = 1 << 20;

/// Most scores [`Rep3Session::auc`] accepts: its long division compares `2^8·rem` with
/// multiples of `2·P·N ≤ n²/2`, which must stay below `2^63`, so `n < 2^28`.
pub const AUC_MAX_LEN: usize = (1 << 28) - 1;

/// Most elements [`Rep3Session::accuracy`] accepts (the count times the scale factor must stay
/// far inside the ring).
pub const ACCURACY_MAX_LEN: usize = 1 << 32;

/// Most quotient bits per step of the long division: `2^8` comparisons a step.
const DIGIT_BITS: u32 = 8;

/// Bound on `f + k` in [`Rep3Session::accuracy`]: the truncated value stays below about
/// `2^40`, so the truncation fails with probability about `2^{−24}` at most.
const ACCURACY_SCALE_BITS: u32 = 40;

impl Rep3Session {
    /// The accuracy of the predictions `[score ≥ threshold]` against `labels`: a one-element
    /// sharing of `(number correct) / n` in fixed point with `frac_bits = f` fractional bits.
    ///
    /// `scores` are fixed-point sharings (`f` fractional bits, e.g. logits), `threshold` is the
    /// public encoded threshold at the same scale, `labels` are shared integers 0 or 1 (scale 1,
    /// not fixed point). Nothing but the result is computed in the clear; the result is a
    /// sharing (reveal it with [`Self::reveal_all`] or [`Self::reveal_to`]).
    ///
    /// **Protocol.** `pred = ¬msb(s − t)` ([`Self::msb`], 8 rounds), [`Self::b2a_bit`] (2
    /// rounds); `correct_j = 1 − (pred_j ⊕ y_j) = 1 − pred_j − y_j + 2·pred_j·y_j`, so the count
    /// is `n − Σ pred − Σ y + 2·Σ pred_j·y_j`: one dot product, whose 3-out-of-3 part is scaled
    /// by the public `c = round(2^{f+k} / n)` and truncated by `k` bits at once (as in
    /// [`Self::mul_fixed`], 2 rounds), with `k = min(2⌈log2 n⌉, 40 − f)`. When `n` is a power of
    /// two up to `2^f`, `c = 2^f / n` is exact, `k = 0`, and one resharing round replaces the
    /// truncation. **12 rounds** (11 for such `n`); `msb(n) + 8n + 8` bytes per party
    /// (`≈ 38.1n`; `8·Σ_w ⌈wn/64⌉` for the msb, see [`Self::msb`]), one message per round
    /// except one round of the bit injection and of the truncation.
    ///
    /// **Error.** The result `r` (in units of `2^{−f}`) is `⌊v⌋` or `⌈v⌉` for
    /// `v = count·c / 2^k`, and `|v − count·2^f/n| ≤ n / 2^{k+1}`. When that is at most `1/n`
    /// (`n² ≤ 2^{k+1}`, which holds for `n² ≤ 2^{41−f}`: `n ≤ 5792` at `f = 16`) `v` never
    /// crosses an integer that `count·2^f/n` does not reach (its fractional part is a multiple of
    /// `1/n`), so `|r·2^{−f} − count/n| ≤ 2^{−f}`; exact for `n` a power of two `≤ 2^f`.
    /// Otherwise `< 2^{−f} + n·2^{−(f+k+1)}` (`= 2^{−f} + n·2^{−41}`: `1.03·2^{−16}` at
    /// `n = 10^6`, `f = 16`). The truncation sees `count·c ≤ 2^{f+k} + n/2` and fails (garbage)
    /// with probability below `2^{f+k−64} + n·2^{−65} ≤ 2^{−24} + n·2^{−65}`.
    ///
    /// **Bad inputs.** Same range as [`Self::lt`] (`|s − t| < 2^63`); a label other than 0 or 1
    /// gives garbage. Fails with [`MpcError::LengthMismatch`] unless `labels` has the length of
    /// `scores`, [`MpcError::Empty`] for no scores, [`MpcError::BadFracBits`] above
    /// [`MAX_FRAC_BITS`](crate::fixed::MAX_FRAC_BITS), [`MpcError::BadParams`] for more than
    /// [`ACCURACY_MAX_LEN`] scores.
    pub async fn accuracy(
        &mut self,
        scores: &Rep3Share,
        labels: &Rep3Share,
        threshold: u64,
        frac_bits: u32,
    ) -> Result<Rep3Share, MpcError> {
        let f = frac_bits;
        check_frac_bits(f)?;
        let n = scores.len();
        check_len("rep3 accuracy labels", n, labels.len())?;
        if n == 0 {
            return Err(MpcError::Empty {
                what: "rep3 accuracy",
            });
        }
        if n > ACCURACY_MAX_LEN {
            return Err(MpcError::BadParams(
                "rep3 accuracy takes at most 2^32 scores",
            ));
        }
        let (c, k) = accuracy_scale(n as u64, f);
        let diff = self.add_public_scalar(scores, threshold.wrapping_neg());
        let below = self.msb(&diff).await?;
        let pred = self.b2a_bit(&self.not_bit(&below)).await?;
        // 3-out-of-3 part of the count: 2·(cross terms of Σ pred·y) + the first component of the
        // linear part n − Σ pred − Σ y (the public n in component 0, party 0's first).
        let public_n = if self.me == 0 { n as u64 } else { 0 };
        let lin = public_n
            .wrapping_sub(wrapping_sum(pred.a()))
            .wrapping_sub(wrapping_sum(labels.a()));
        let count = dot_cross(&pred, labels).wrapping_mul(2).wrapping_add(lin);
        // The mask is added after the scaling (`c·α` would not be uniform for even `c`).
        let mut z = self.zero_share(1);
        z[0] = z[0].wrapping_add(count.wrapping_mul(c));
        if k == 0 {
            self.reshare(z).await
        } else {
            self.trunc_additive(z, k).await
        }
    }

    /// The exact ROC AUC of `scores` against `labels` (Mann–Whitney, ties counted one half, as
    /// scikit-learn's `roc_auc_score`): a one-element sharing of `⌊AUC·2^f⌋`, the AUC in fixed
    /// point with `frac_bits = f` fractional bits, rounded down. With `P = Σ y`, `N = n − P`,
    ///
    /// ```text
    ///   AUC = Σ_{i,j} y_i (1 − y_j) ([s_i > s_j] + ½[s_i = s_j]) / (P·N).
    /// ```
    ///
    /// `scores` are sharings of signed words (e.g. fixed-point logits; only their order
    /// matters), `labels` shared integers 0 or 1. Nothing but the result is computed in the
    /// clear: not `P`, no score, no comparison.
    ///
    /// **Protocol.** Write `ℓ_ij = [s_i < s_j]`, `e_ij = [s_i = s_j]`. As
    /// `[s_i > s_j] + [s_i ≥ s_j] = 1 + ℓ_ji − ℓ_ij` for `i ≠ j` and `y_i (1 − y_i) = 0`,
    /// twice the numerator is `PN + Σ_{i≠j} ℓ_ij (y_j − y_i)` (swap `i`, `j` in the `ℓ_ji` term:
    /// `y_j (1 − y_i) − y_i (1 − y_j) = y_j − y_i`); pairing `(i, j)` with `(j, i)` and
    /// `ℓ_ji = 1 − ℓ_ij − e_ij`,
    ///
    /// ```text
    ///   2U = P·N + Σ_{i<j} (2ℓ_ij + e_ij − 1)·(y_j − y_i),
    /// ```
    ///
    /// one three-way comparison per unordered pair and a dot product with a local linear
    /// function of `y`. The `m = n(n−1)/2` pairs run in blocks of [`AUC_BLOCK_PAIRS`]: per block
    /// one [`Self::msb_is_zero`] of the differences `s_i − s_j` (8 rounds) and one
    /// [`Self::b2a_bit`] of `ℓ` and `e` (2 rounds); the cross terms of the dot product are
    /// summed locally over all blocks, and only the sum is reshared, in one round together with
    /// `P·N`. The first block also compares `P − 1` and `n − 1 − P`, whose msbs are `[P = 0]`
    /// and `[P = n]`; their sum `z` is 1 exactly when all labels are one class. Then
    /// `num = 2U + z`, `den = 2PN + 2z`, and an exact long division in radix `2^r`: `S =
    /// max(1, ⌈f/8⌉)` digits of `r_k ≤ 8` bits (`f` split evenly); digit `k` counts the
    /// thresholds `j = 1..=2^{r_k}` with `2^{r_k}·rem − j·den ≥ 0` (`j = 2^{r_k}` holds only in
    /// the first digit, for an AUC of 1, as later `rem < den`), one [`Self::msb`] over them and
    /// one [`Self::b2a_bit`]; `rem ← 2^{r_k}·rem − digit·den` (one [`Self::mul`], not after the
    /// last digit), `rem_0 = num`. The digits are `⌊num·2^f / den⌋`.
    ///
    /// **Cost.** With `B = max(1, ⌈m / 2^20⌉)` blocks of `m_b` pairs: **`10B + 11S` rounds**
    /// (`10B + 22` at `f = 16`: 32 for `n ≤ 1448`). Bytes per party:
    /// `Σ_b (lt_eq(m_b + 2δ_b) + 16m_b + 16δ_b) + 16 + Σ_k (msb(J_k) + 8J_k) + 8(S − 1)`, with
    /// `δ_b = 1` for the first block only, `J_k = 2^{r_k}` the thresholds of digit `k` (256 and
    /// 256 at `f = 16`: the division is 19528 bytes), `lt_eq(t) ≈ 38t` the cost of
    /// [`Self::msb_is_zero`] and `msb(t) ≈ 30.1t` that of [`Self::msb`]: about `27n²` for large
    /// `n` (`54` bytes per unordered pair). One message per round except one round of each bit
    /// injection.
    ///
    /// **Error.** None beyond the rounding down: `0 ≤ AUC − r·2^{−f} < 2^{−f}`. Every step is
    /// exact (comparisons, bit injections, products of integers), with no probabilistic
    /// truncation, so no failure probability either.
    ///
    /// **One class.** If all labels are equal (`P·N = 0`, including `n = 1`) the AUC is
    /// undefined; the result is then exactly ½ (`2^{f−1}`; 0 at `f = 0`), the AUC of an
    /// uninformative score, and indistinguishable from a genuine AUC of ½ (nothing more is
    /// revealed).
    ///
    /// **Bad inputs.** Same range as [`Self::lt`] (`|s_i − s_j| < 2^63`, e.g. all scores in
    /// `[−2^62, 2^62)`); a label other than 0 or 1 gives garbage. Fails with
    /// [`MpcError::LengthMismatch`] unless `labels` has the length of `scores`,
    /// [`MpcError::Empty`] for no scores, [`MpcError::BadFracBits`] above
    /// [`MAX_FRAC_BITS`](crate::fixed::MAX_FRAC_BITS), [`MpcError::BadParams`] for more than
    /// [`AUC_MAX_LEN`] scores.
    pub async fn auc(
        &mut self,
        scores: &Rep3Share,
        labels: &Rep3Share,
        frac_bits: u32,
    ) -> Result<Rep3Share, MpcError> {
        self.auc_blocked(scores, labels, frac_bits, AUC_BLOCK_PAIRS)
            .await
    }

    /// [`Self::auc`] with `block_pairs` unordered pairs per block (`≥ 1`).
    pub(crate) async fn auc_blocked(
        &mut self,
        scores: &Rep3Share,
        labels: &Rep3Share,
        frac_bits: u32,
        block_pairs: usize,
    ) -> Result<Rep3Share, MpcError> {
        let f = frac_bits;
        check_frac_bits(f)?;
        let n = scores.len();
        check_len("rep3 auc labels", n, labels.len())?;
        if n == 0 {
            return Err(MpcError::Empty { what: "rep3 auc" });
        }
        if n > AUC_MAX_LEN {
            return Err(MpcError::BadParams(
                "rep3 auc takes fewer than 2^28 scores (its long division needs 2^7·n² < 2^63)",
            ));
        }
        if block_pairs == 0 {
            return Err(MpcError::BadParams(
                "rep3 auc needs at least one pair per block",
            ));
        }
        let me = self.me;
        let n_word = n as u64;
        // P = Σ y and N = n − P (local); the one-class tests P − 1 and n − 1 − P.
        let p = Rep3Share::new_unchecked(
            vec![wrapping_sum(labels.a())],
            vec![wrapping_sum(labels.b())],
        );
        let n_minus_p = self.add_public_scalar(&self.neg(&p), n_word);
        let class_tests = Rep3Share::concat_all(&[
            &self.add_public_scalar(&p, u64::MAX),
            &self.add_public_scalar(&self.neg(&p), n_word.wrapping_sub(1)),
        ]);
        let pairs_total = n_word * (n_word - 1) / 2;
        let block = block_pairs as u64;
        let blocks = pairs_total.div_ceil(block).max(1);
        // Party `me`'s public −1 of `2ℓ + e − 1` sits in component 0: its first component at
        // party 0, its second at party 2.
        let (minus_a, minus_b) = (u64::from(me == 0), u64::from(me == 2));
        let mut cursor = Pairs::new(n);
        let mut cross = 0u64;
        let mut one_class = None;
        for k in 0..blocks {
            let len = block.min(pairs_total - k * block) as usize;
            let start = cursor;
            let extra = if k == 0 { class_tests.len() } else { 0 };
            let (mut da, mut db) = (
                Vec::with_capacity(len + extra),
                Vec::with_capacity(len + extra),
            );
            for (i, j) in cursor.by_ref().take(len) {
                da.push(scores.a()[i].wrapping_sub(scores.a()[j]));
                db.push(scores.b()[i].wrapping_sub(scores.b()[j]));
            }
            if k == 0 {
                da.extend_from_slice(class_tests.a());
                db.extend_from_slice(class_tests.b());
            }
            let d = Rep3Share::new_unchecked(da, db);
            let (lt, eq) = self.msb_is_zero(&d).await?;
            drop(d);
            let (eq, _) = eq.split(len);
            let bits = self.b2a_bit(&Rep3Bits::concat_all(&[&lt, &eq])).await?;
            drop((lt, eq));
            // bits = [ℓ (len), class tests (extra), e (len)].
            let (a, b) = (bits.a(), bits.b());
            let e0 = len + extra;
            let v = |x: &[u64], minus: u64, t: usize| {
                x[t].wrapping_mul(2)
                    .wrapping_add(x[e0 + t])
                    .wrapping_sub(minus)
            };
            let va = (0..len).map(|t| v(a, minus_a, t));
            let vb = (0..len).map(|t| v(b, minus_b, t));
            cross = cross.wrapping_add(pair_cross(va, vb, start.take(len), labels));
            if k == 0 {
                let sum = |x: &[u64]| x[len..e0].iter().fold(0u64, |s, v| s.wrapping_add(*v));
                one_class = Some(Rep3Share::new_unchecked(vec![sum(a)], vec![sum(b)]));
            }
        }
        let z = one_class.ok_or(MpcError::Reconstruct("auc lost its class test (internal)"))?;
        // Reshare [2U − PN, PN] in one round: both 3-out-of-3 parts carry fresh masks.
        let mut parts = self.zero_share(1);
        parts[0] = parts[0].wrapping_add(cross);
        parts.extend(self.mul_local(&p, &n_minus_p)?);
        let shared = self.reshare(parts).await?.split_equal(2);
        let [rest, pn] = &shared[..] else {
            return Err(MpcError::Reconstruct("auc lost a part (internal)"));
        };
        // num = 2U + z, den = 2PN + 2z.
        let num = self.add(&self.add(rest, pn)?, &z)?;
        let den = self.mul_public_scalar(&self.add(pn, &z)?, 2);
        self.ratio_floor(&num, &den, f).await
    }

    /// `⌊num·2^f / den⌋` for one-element sharings with `0 ≤ num ≤ den`, `1 ≤ den` and
    /// `2^8·den < 2^63`: exact long division in radix `2^r` ([`digit_widths`]), one
    /// [`Self::msb`] over the thresholds and one [`Self::b2a_bit`] per digit and a
    /// [`Self::mul`] between digits: `11S − 1` rounds for `S` digits.
    pub(crate) async fn ratio_floor(
        &mut self,
        num: &Rep3Share,
        den: &Rep3Share,
        f: u32,
    ) -> Result<Rep3Share, MpcError> {
        check_len("rep3 ratio numerator", 1, num.len())?;
        check_len("rep3 ratio denominator", 1, den.len())?;
        let widths = digit_widths(f);
        let mut rem = num.clone();
        let mut q = Rep3Share::new_unchecked(vec![0], vec![0]);
        let mut done = 0;
        for (k, &r) in widths.iter().enumerate() {
            let thresholds = 1u64 << r;
            let scaled = self.mul_public_scalar(&rem, 1u64 << r);
            // c_j = 2^r·rem − j·den for j = 1..=thresholds.
            let cand = |s: u64, d: u64| -> Vec<u64> {
                (1..=thresholds)
                    .map(|j| s.wrapping_sub(j.wrapping_mul(d)))
                    .collect()
            };
            let c = Rep3Share::new_unchecked(
                cand(scaled.a()[0], den.a()[0]),
                cand(scaled.b()[0], den.b()[0]),
            );
            let below = self.msb(&c).await?;
            let ge = self.b2a_bit(&self.not_bit(&below)).await?;
            let digit =
                Rep3Share::new_unchecked(vec![wrapping_sum(ge.a())], vec![wrapping_sum(ge.b())]);
            done += r;
            q = self.add(&q, &self.mul_public_scalar(&digit, 1u64 << (f - done)))?;
            if k + 1 < widths.len() {
                let prod = self.mul(&digit, den).await?;
                rem = self.sub(&scaled, &prod)?;
            }
        }
        Ok(q)
    }
}

/// `Err(BadFracBits)` above [`MAX_FRAC_BITS`].
fn check_frac_bits(f: u32) -> Result<(), MpcError> {
    if f > MAX_FRAC_BITS {
        return Err(MpcError::BadFracBits {
            max: MAX_FRAC_BITS,
            got: f,
        });
    }
    Ok(())
}

/// `(c, k)` of [`Rep3Session::accuracy`] for `1 ≤ n ≤ 2^32` and `f ≤ 40`: `(2^f / n, 0)` for a
/// power of two `n ≤ 2^f`, else `k = min(2⌈log2 n⌉, 40 − f)` and `c = round(2^{f+k} / n)`.
pub(crate) fn accuracy_scale(n: u64, f: u32) -> (u64, u32) {
    if n.is_power_of_two() && n.trailing_zeros() <= f {
        return ((1u64 << f) >> n.trailing_zeros(), 0);
    }
    // n ≥ 2 here.
    let log = 64 - (n - 1).leading_zeros();
    let k = (2 * log).min(ACCURACY_SCALE_BITS.saturating_sub(f));
    let scale = 1u128 << (f + k);
    let c = (scale + u128::from(n / 2)) / u128::from(n);
    // c ≤ 2^{f+k} ≤ 2^40.
    (c as u64, k)
}

/// Quotient bits per digit of [`Rep3Session::ratio_floor`]: `S = max(1, ⌈f/8⌉)` digits, `f`
/// split evenly (the first ones one bit wider), e.g. `[8, 8]` at `f = 16`, `[7, 7, 6]` at 20,
/// `[0]` at 0.
pub(crate) fn digit_widths(f: u32) -> Vec<u32> {
    let s = f.div_ceil(DIGIT_BITS).max(1);
    (0..s).map(|k| f / s + u32::from(k < f % s)).collect()
}

/// The unordered pairs `(i, j)`, `i < j < n`, in lexicographic order.
#[derive(Clone, Copy, Debug)]
struct Pairs {
    n: usize,
    i: usize,
    j: usize,
}

impl Pairs {
    fn new(n: usize) -> Self {
        Self { n, i: 0, j: 1 }
    }
}

impl Iterator for Pairs {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.j >= self.n {
            return None;
        }
        let out = (self.i, self.j);
        self.j += 1;
        if self.j == self.n {
            self.i += 1;
            self.j = self.i + 1;
        }
        Some(out)
    }
}

/// This party's cross terms of `Σ_t v_t·(y_j − y_i)` over the pairs `(i, j)` (indices into `y`),
/// `v` given by its components: its unmasked part of a 3-out-of-3 sharing of the dot product.
fn pair_cross(
    va: impl Iterator<Item = u64>,
    vb: impl Iterator<Item = u64>,
    pairs: impl Iterator<Item = (usize, usize)>,
    y: &Rep3Share,
) -> u64 {
    let (ya, yb) = (y.a(), y.b());
    va.zip(vb).zip(pairs).fold(0u64, |acc, ((va, vb), (i, j))| {
        let wa = ya[j].wrapping_sub(ya[i]);
        let wb = yb[j].wrapping_sub(yb[i]);
        acc.wrapping_add(va.wrapping_mul(wa.wrapping_add(wb)))
            .wrapping_add(vb.wrapping_mul(wa))
    })
}

/// This party's cross terms of `Σ x_j·y_j` (equal lengths by the caller), unmasked.
fn dot_cross(x: &Rep3Share, y: &Rep3Share) -> u64 {
    (0..x.len()).fold(0u64, |acc, j| {
        let (xa, xb, ya, yb) = (x.a()[j], x.b()[j], y.a()[j], y.b()[j]);
        acc.wrapping_add(xa.wrapping_mul(ya.wrapping_add(yb)))
            .wrapping_add(xb.wrapping_mul(ya))
    })
}

/// `Σ x` in the ring.
fn wrapping_sum(x: &[u64]) -> u64 {
    x.iter().fold(0, |s, v| s.wrapping_add(*v))
}
