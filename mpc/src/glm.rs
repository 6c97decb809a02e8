//! Logistic and linear regression trained and applied on [`crate::rep3`] shares over vertically
//! split data: the parties hold different feature columns of the same records, aligned by PSI
//! (row `j` is the same person everywhere), and one of them holds the label. Nobody sees another
//! party's column, the label, a gradient or the weights; the trained weights stay secret-shared
//! ([`SharedModel`]) unless the job reveals them.
//!
//! ```text
//!   hospital  x_h (n×k_h) ─┐ share_input        ┌─ for each batch B (public rows, in order):
//!   insurer   x_i, y      ─┼─────────► X, y ────┤   z = X_B·w           matmul_fixed    2 r.
//!   bank      x_b (n×k_b) ─┘  (n×d, d = Σk + 1) │   p = σ(z)            sigmoid_precise 31 r.
//!                                               │   g = (p − y_B)ᵀ·X_B  matmul_fixed    2 r.
//!                                               │   W ← W − (c·g + δ·w)  trunc           1 r.
//!                                               └─  w = W / 2^8         trunc           1 r.
//! ```
//!
//! ## Protocol
//! 0. [`setup`]: the data parties agree on the number of aligned rows and an alignment digest
//!    (one round; a helper learns `n` and nothing else), then the rep3 seeds (one round).
//! 1. [`share`]: each data party, in index order, shares its standardised feature columns (and
//!    the label, at the label owner) in one [`Rep3Session::share_input`] round. The features
//!    become one row-major `n×d` sharing, the intercept's public column of ones last.
//! 2. [`train`]: mini-batch gradient descent over a public schedule ([`TrainParams::schedule`]:
//!    the rows in their aligned order, cut into batches of `batch_size`, the same every epoch; PSI's
//!    common order is already a pseudo-random order of the records). Weights start at zero. Per
//!    batch of `b` rows, with `f` fractional bits: `z = X_B·w` ([`Rep3Session::matmul_fixed`]),
//!    `p = σ(z)` ([`Rep3Session::sigmoid_precise`]: systematic error below `2·10^−5`, which
//!    matters as every evaluation adds to the weights; `p = z` for linear regression),
//!    `e = p − y_B`,
//!    `g = eᵀ·X_B` (a `1×b · b×d` matrix product, so no transpose is formed), then the update of
//!    the weight accumulator `W` (scale `2^{f+8}`, see below): `W ← W − trunc(g·C + w·D)` with
//!    public integers `C = round(c·2^K)` (`c` = learning rate / `b`) and `D = round(c·b·λ·2^K)`
//!    (L2 regularisation λ, not applied to the intercept), and finally `w = trunc(W, 8)` for the
//!    next forward pass. 37 rounds per batch for logistic regression (6 for linear).
//! 3. The caller reveals what the job allows: [`SharedModel::output_share`] seals the weights to
//!    a recipient, [`predict`] computes logits of other rows (scoring, or held-out evaluation of
//!    the opened logits with metrics such as [`plain::auc`]). To score many batches, truncate
//!    the weights once ([`SharedModel::scoring_weights`]) and call [`predict_with`] per batch
//!    (2 rounds, not 3).
//!
//! ## Precision
//! The weights accumulate in `W` with 8 more fractional bits than the features
//! ([`WEIGHT_EXTRA_BITS`]): every update is rounded at `2^{−(f+8)}`, so the rounding of a thousand
//! steps stays far below the `2^−f` of one, and the forward pass uses `w = W/2^8` at `2^−f`.
//! The step `c` is applied with [`STEP_BITS`] significant bits (`K` is chosen per batch size so
//! that `2^{14} ≤ C < 2^{15}`): the learning rate the protocol runs is `C·b/2^K`, within a relative
//! `2^−15` of the requested one, and [`TrainParams::schedule`] reports the effective values, which
//! the plaintext reference ([`plain::train`]) uses too.
//!
//! ## Truncation failures
//! Every truncation fails (one element becomes garbage) with probability `|v|/2^64` for the
//! untruncated value `v` ([`crate::rep3`], "Truncation"). Here `v` is `z·2^{2f}` for the forward
//! pass (`|z| ≤ 8` gives `2^{−29}` at `f = 16`), `g·2^{2f}` for the gradient sum of a batch, and
//! `c·(g + λ·b·w)·2^{f+K} < 2^{f+15}·|g + λ·b·w|` for the update; features are refused beyond
//! [`FEATURE_LIMIT`] standard deviations. For 100,000 rows, 10 epochs and batch 1024 this is
//! about `10^6·2^{−30} + 3·10^4·2^{−25} ≈ 2·10^{−3}` per training run: rare, but not negligible
//! over many runs (SPU's FM64 truncations at `f = 18` fail 4 times as often); a failed run
//! produces absurd weights, which held-out evaluation shows.

use std::ops::Range;

use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::MpcError;
use crate::fixed::FixedPoint;
use crate::rep3::{Rep3Session, Rep3Share, SIGMOID_MAX_FRAC_BITS, SIGMOID_MIN_FRAC_BITS};
use crate::seeds::SessionContext;
use crate::share::AdditiveShare;
use crate::transport::{Channel, PartyIndex};
use crate::vstats::{DEFAULT_MAX_ROWS, DIGEST_LEN, agree_rows};

pub mod plain;

/// Extra fractional bits of the weight accumulator `W` over the features' `f`.
pub const WEIGHT_EXTRA_BITS: u32 = 8;

/// Significant bits of the public step multiplier `C` (`2^{STEP_BITS−1} ≤ C < 2^{STEP_BITS}`).
pub const STEP_BITS: u32 = 15;

/// Largest accepted magnitude of a standardised feature value (in standard deviations): larger
/// values make truncation failures likelier and are refused (clip or transform the column).
pub const FEATURE_LIMIT: f64 = 4096.0;

/// Which model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlmKind {
    /// Logistic regression: `P(y = 1) = σ(x·w)`, labels 0 or 1, log-loss gradient.
    Logistic,
    /// Linear regression: `y ≈ x·w`, squared-error gradient.
    Linear,
}

impl GlmKind {
    /// The name used in job specs: `logistic` or `linear`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Logistic => "logistic",
            Self::Linear => "linear",
        }
    }
}

/// Hyperparameters of [`train`] (public, part of the job spec).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainParams {
    /// The model.
    pub kind: GlmKind,
    /// Step size of gradient descent on the mean loss of a batch.
    pub learning_rate: f64,
    /// Passes over the training rows.
    pub epochs: u32,
    /// Rows per batch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// L2 regularisation strength λ (the gradient gains `λ·w`; the intercept is not regularised).
    pub l2: f64,
    /// Whether to learn an intercept (a weight on a public column of ones).
    pub fit_intercept: bool,
}

impl TrainParams {
    /// Defaults: learning rate 0.1, 10 epochs, batch 1024, no regularisation, an intercept.
    pub fn new(kind: GlmKind) -> Self {
        Self {
            kind,
            learning_rate: 0.1,
            epochs: 10,
            batch_size: 1024,
            l2: 0.0,
            fit_intercept: true,
        }
    }

    /// Checks the hyperparameters: a finite positive learning rate below 16, 1 to 10,000 epochs,
    /// a batch of 1 to 2^20 rows, a finite λ in `[0, 1]`.
    pub fn check(&self) -> Result<(), MpcError> {
        if !(self.learning_rate.is_finite()
            && self.learning_rate > 0.0
            && self.learning_rate < 16.0)
        {
            return Err(MpcError::BadParams(
                "train: the learning rate must be positive and below 16",
            ));
        }
        if !(1..=10_000).contains(&self.epochs) {
            return Err(MpcError::BadParams("train: epochs must be 1 to 10,000"));
        }
        if !(1..=1 << 20).contains(&self.batch_size) {
            return Err(MpcError::BadParams(
                "train: the batch size must be 1 to 2^20",
            ));
        }
        if !(self.l2.is_finite() && (0.0..=1.0).contains(&self.l2)) {
            return Err(MpcError::BadParams("train: λ (l2) must be in [0, 1]"));
        }
        Ok(())
    }

    /// The public schedule over `rows` training rows: every batch of every epoch with the step
    /// it runs (the effective values, after the rounding of `C` and `D` described in the module
    /// docs), made one step at a time as it is walked: nothing is held for the steps ahead,
    /// whatever the epochs and batch size. Fails on bad parameters or `rows = 0`.
    pub fn schedule(&self, rows: usize) -> Result<Schedule<'_>, MpcError> {
        self.check()?;
        if rows == 0 {
            return Err(MpcError::EmptyIntersection);
        }
        let per_epoch = rows.div_ceil(self.batch_size);
        let total = per_epoch
            .checked_mul(self.epochs as usize)
            .ok_or(MpcError::BadParams(
                "train: more steps than this machine can count",
            ))?;
        Ok(Schedule {
            params: self,
            rows,
            per_epoch,
            next: 0,
            total,
        })
    }

    fn step(&self, rows: Range<usize>) -> Step {
        let b = (rows.end - rows.start) as f64;
        let c = self.learning_rate / b;
        // 2^{STEP_BITS−1} ≤ c·2^K < 2^{STEP_BITS}; c < 16 and c ≥ 2^-24 (lr > 0 is tiny at worst)
        // keep K within 0..64 for any accepted parameters with a sane learning rate.
        let k = (STEP_BITS as i32 - 1 - c.log2().floor() as i32).clamp(0, 62) as u32;
        let scale = f64::from(k).exp2();
        let c_int = (c * scale).round() as u64;
        let d_int = (c * b * self.l2 * scale).round() as u64;
        Step {
            rows,
            rate: c_int as f64 / scale,
            decay: d_int as f64 / scale,
            c_int,
            d_int,
            shift: k,
        }
    }
}

/// The steps of [`train`], in order ([`TrainParams::schedule`]): an iterator that knows its
/// length and makes each step when it is reached.
#[derive(Debug, Clone)]
pub struct Schedule<'a> {
    params: &'a TrainParams,
    rows: usize,
    per_epoch: usize,
    next: usize,
    total: usize,
}

impl Iterator for Schedule<'_> {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        if self.next >= self.total {
            return None;
        }
        let start = (self.next % self.per_epoch) * self.params.batch_size;
        let end = start.saturating_add(self.params.batch_size).min(self.rows);
        self.next += 1;
        Some(self.params.step(start..end))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.total - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Schedule<'_> {}

/// One batch of the schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The batch's rows, relative to the start of the training rows.
    pub rows: Range<usize>,
    /// The effective multiplier of the gradient sum: `C/2^K ≈ learning rate / b`.
    pub rate: f64,
    /// The effective weight decay per step: `D/2^K ≈ learning rate · λ`.
    pub decay: f64,
    c_int: u64,
    d_int: u64,
    shift: u32,
}

/// Who holds what. Public: every party derives it from the job spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlmLayout {
    /// The owner of each feature, in the model's feature order.
    pub feature_owners: Vec<PartyIndex>,
    /// The owner of the label (`None` when only scoring).
    pub label_owner: Option<PartyIndex>,
}

impl GlmLayout {
    /// Checks the layout: at least one feature, owners among 0, 1, 2.
    pub fn check(&self) -> Result<(), MpcError> {
        if self.feature_owners.is_empty() {
            return Err(MpcError::BadParams("glm: no feature"));
        }
        if self
            .feature_owners
            .iter()
            .chain(&self.label_owner)
            .any(|&p| p > 2)
        {
            return Err(MpcError::BadParams(
                "glm: owners must be among parties 0, 1, 2",
            ));
        }
        Ok(())
    }

    /// The parties that hold rows (own a feature or the label), ascending.
    pub fn data_parties(&self) -> Vec<PartyIndex> {
        (0..3)
            .filter(|p| self.feature_owners.contains(p) || self.label_owner == Some(*p))
            .collect()
    }

    /// Indices (model order) of the features party `p` owns.
    pub fn features_of(&self, p: PartyIndex) -> Vec<usize> {
        (0..self.feature_owners.len())
            .filter(|&c| self.feature_owners[c] == p)
            .collect()
    }

    /// Width of the matrix party `p` shares: its features and, at the label owner, the label.
    fn width(&self, p: PartyIndex) -> usize {
        self.features_of(p).len() + usize::from(self.label_owner == Some(p))
    }
}

/// Standardisation of one column by its owner, on its own rows (so nothing about the column
/// leaves the owner): `(x − mean) / scale`. Kept with the owner's part of a model, to apply the
/// same transform to the records it scores later.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standardizer {
    /// The column's mean over the training rows.
    pub mean: f64,
    /// The column's population standard deviation, or 1 for a constant column (which then
    /// standardises to zeros instead of dividing by zero).
    pub scale: f64,
}

impl Standardizer {
    /// Fits on `values`; fails on a non-finite value or an empty column.
    pub fn fit(values: &[f64]) -> Result<Self, MpcError> {
        if values.is_empty() {
            return Err(MpcError::Empty { what: "column" });
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(MpcError::NotFinite);
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let sd = var.sqrt();
        // A spread at the level of f64 rounding of the mean is a constant column.
        let scale = if sd > 1e-12 * mean.abs().max(1.0) {
            sd
        } else {
            1.0
        };
        Ok(Self { mean, scale })
    }

    /// The identity (for columns that are already on a sensible scale).
    pub fn identity() -> Self {
        Self {
            mean: 0.0,
            scale: 1.0,
        }
    }

    /// `(x − mean) / scale`.
    pub fn apply(&self, x: f64) -> f64 {
        (x - self.mean) / self.scale
    }
}

/// This party's aligned input: nothing at a helper; at a data party the standardised values of
/// the features it owns (model order), the label at the label owner, and the digest of its
/// aligned ids. Secret; zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct GlmInput {
    rows: usize,
    columns: Vec<Vec<f64>>,
    label: Option<Vec<f64>>,
    digest: Option<[u8; DIGEST_LEN]>,
    max_rows: usize,
}

impl std::fmt::Debug for GlmInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlmInput")
            .field("rows", &self.rows)
            .field("columns", &self.columns.len())
            .field("label", &self.label.is_some())
            .finish_non_exhaustive()
    }
}

impl GlmInput {
    /// A helper's input: nothing.
    pub fn helper() -> Self {
        Self {
            rows: 0,
            columns: Vec::new(),
            label: None,
            digest: None,
            max_rows: DEFAULT_MAX_ROWS,
        }
    }

    /// A data party's input: `rows` aligned rows of its standardised feature columns (model
    /// order), its label column if it owns the label, and the digest of its aligned ids.
    pub fn data(
        rows: usize,
        columns: Vec<Vec<f64>>,
        label: Option<Vec<f64>>,
        digest: [u8; DIGEST_LEN],
    ) -> Result<Self, MpcError> {
        for len in columns.iter().chain(&label).map(Vec::len) {
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
            columns,
            label,
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
}

/// The shared data of a job: the row-major `n×d` features (the intercept's ones last, if any)
/// and the label (if the layout has one). Zeroized on drop (the shares are).
#[derive(Debug)]
pub struct GlmData {
    x: Rep3Share,
    y: Option<Rep3Share>,
    rows: usize,
    width: usize,
    fit_intercept: bool,
}

impl GlmData {
    /// Aligned rows `n`.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns `d` of the shared matrix (features, plus one for the intercept).
    pub fn width(&self) -> usize {
        self.width
    }

    /// The shared label, if the layout has one.
    pub fn label(&self) -> Option<&Rep3Share> {
        self.y.as_ref()
    }

    /// The shared rows `rows` (row-major, `width` columns).
    pub fn features(&self, rows: Range<usize>) -> Rep3Share {
        slice(&self.x, rows.start * self.width..rows.end * self.width)
    }
}

/// A trained model whose weights are secret-shared: `d` weights (features in model order, then
/// the intercept) at scale `2^{f + WEIGHT_EXTRA_BITS}`. Zeroized on drop (the share is).
#[derive(Debug, Clone)]
pub struct SharedModel {
    /// The model.
    pub kind: GlmKind,
    /// Fractional bits of the features (`f`).
    pub frac_bits: u32,
    /// Whether the last weight is an intercept.
    pub fit_intercept: bool,
    weights: Rep3Share,
}

impl SharedModel {
    /// Rebuilds a stored model from this party's share of its weights (at scale
    /// `2^{frac_bits + WEIGHT_EXTRA_BITS}`).
    pub fn from_share(
        kind: GlmKind,
        frac_bits: u32,
        fit_intercept: bool,
        weights: Rep3Share,
    ) -> Self {
        Self {
            kind,
            frac_bits,
            fit_intercept,
            weights,
        }
    }

    /// This party's share of the weights (to store; as secret as the share).
    pub fn weights(&self) -> &Rep3Share {
        &self.weights
    }

    /// This party's additive share of the weights for a recipient (its first component: the
    /// three parties' first components sum to the weights). Decode the sum with
    /// [`SharedModel::decode_weights`].
    pub fn output_share(&self) -> AdditiveShare<u64> {
        AdditiveShare::from_values(self.weights.a().to_vec())
    }

    /// The weights from the reconstructed words of [`SharedModel::output_share`].
    pub fn decode_weights(words: &[u64], frac_bits: u32) -> Vec<f64> {
        words
            .iter()
            .map(|&w| FixedPoint::decode_wide(i128::from(w as i64), frac_bits + WEIGHT_EXTRA_BITS))
            .collect()
    }
}

/// Steps 0 of the protocol: agrees the aligned row count (one round, in a `rows` child of
/// `transport`) and sets up the rep3 session (one round, in a `rep3` child). Returns the session and `n`. Fails with
/// [`MpcError::EmptyIntersection`] at every party when there is no aligned row.
pub async fn setup<R: CryptoRng + ?Sized>(
    transport: &Channel,
    ctx: SessionContext<'_>,
    layout: &GlmLayout,
    input: &GlmInput,
    rng: &mut R,
) -> Result<(Rep3Session, usize), MpcError> {
    layout.check()?;
    let mine = input.digest.as_ref().map(|d| (input.rows, d));
    let rows = agree_rows(
        &transport.child("rows"),
        &layout.data_parties(),
        mine,
        input.max_rows,
    )
    .await?;
    if rows == 0 {
        return Err(MpcError::EmptyIntersection);
    }
    let session = Rep3Session::setup(transport, ctx, rng).await?;
    Ok((session, rows))
}

/// Step 1: every data party shares its columns (one round each). `column_names` (model order)
/// name columns in errors. Values are checked before anything is sent: finite, within
/// [`FEATURE_LIMIT`], labels 0 or 1 for logistic regression.
#[allow(clippy::too_many_arguments)]
pub async fn share(
    session: &mut Rep3Session,
    rows: usize,
    layout: &GlmLayout,
    input: &GlmInput,
    column_names: &[String],
    kind: GlmKind,
    fit_intercept: bool,
    frac_bits: u32,
) -> Result<GlmData, MpcError> {
    layout.check()?;
    if column_names.len() != layout.feature_owners.len() {
        return Err(MpcError::LengthMismatch {
            what: "feature names vs layout",
            expected: layout.feature_owners.len(),
            got: column_names.len(),
        });
    }
    let fixed = FixedPoint::new(frac_bits)?;
    let me = session.me();
    let mine = layout.features_of(me);
    if input.columns.len() != mine.len()
        || input.label.is_some() != (layout.label_owner == Some(me))
    {
        return Err(MpcError::BadParams(
            "glm: this party's input does not match its role in the layout",
        ));
    }
    // Encode and check before any message leaves.
    let mut own = Zeroizing::new(Vec::new());
    if layout.data_parties().contains(&me) {
        own.reserve(rows.saturating_mul(layout.width(me)));
        for (k, &c) in mine.iter().enumerate() {
            encode_column(&column_names[c], &input.columns[k], fixed, &mut own)?;
        }
        if let Some(label) = &input.label {
            encode_label(label, kind, fixed, &mut own)?;
        }
    }
    let mut shared: [Option<Rep3Share>; 3] = [None, None, None];
    for p in layout.data_parties() {
        let len = rows
            .checked_mul(layout.width(p))
            .ok_or(MpcError::LengthMismatch {
                what: "aligned rows × columns overflow usize",
                expected: usize::MAX,
                got: rows,
            })?;
        let input = (p == me).then_some(&own[..]);
        shared[p] = Some(session.share_input(p, input, len).await?);
    }
    drop(own);
    let column = |p: PartyIndex, k: usize| -> Result<Range<usize>, MpcError> {
        shared[p]
            .as_ref()
            .map(|_| k * rows..(k + 1) * rows)
            .ok_or(MpcError::BadParams("glm: a data party shared nothing"))
    };
    // Row-major n×d: feature c of row j from its owner's column-major block.
    let features = layout.feature_owners.len();
    let width = features + usize::from(fit_intercept);
    let mut sources = Vec::with_capacity(features);
    for (c, &p) in layout.feature_owners.iter().enumerate() {
        let k = layout
            .features_of(p)
            .iter()
            .position(|&x| x == c)
            .unwrap_or(0);
        sources.push((p, column(p, k)?));
    }
    let one = fixed.encode(1.0)?;
    let ones = session.constant(rows, one);
    let interleave = |get: fn(&Rep3Share) -> &[u64], ones: &[u64]| -> Vec<u64> {
        let mut out = Vec::with_capacity(rows * width);
        for (j, one) in ones.iter().enumerate() {
            for (p, r) in &sources {
                // `shared[p]` is Some for every source (checked by `column`).
                out.push(shared[*p].as_ref().map_or(0, |s| get(s)[r.start + j]));
            }
            if fit_intercept {
                out.push(*one);
            }
        }
        out
    };
    let x = Rep3Share::from_parts(
        interleave(Rep3Share::a, ones.a()),
        interleave(Rep3Share::b, ones.b()),
    )?;
    let y = match layout.label_owner {
        None => None,
        Some(p) => {
            let k = layout.features_of(p).len();
            let r = column(p, k)?;
            shared[p].as_ref().map(|s| slice(s, r))
        }
    };
    Ok(GlmData {
        x,
        y,
        rows,
        width,
        fit_intercept,
    })
}

/// Step 2: trains on the rows `rows` of `data` (see the module docs). `on_step(done, total)` is
/// called after every batch. Fails on bad parameters, rows out of range, or a layout without a
/// label.
pub async fn train(
    session: &mut Rep3Session,
    data: &GlmData,
    rows: Range<usize>,
    params: &TrainParams,
    frac_bits: u32,
    mut on_step: impl FnMut(usize, usize),
) -> Result<SharedModel, MpcError> {
    if params.kind == GlmKind::Logistic
        && !(SIGMOID_MIN_FRAC_BITS..=SIGMOID_MAX_FRAC_BITS).contains(&frac_bits)
    {
        return Err(MpcError::UnsupportedFracBits {
            op: "logistic regression",
            min: SIGMOID_MIN_FRAC_BITS,
            max: SIGMOID_MAX_FRAC_BITS,
            got: frac_bits,
        });
    }
    if params.fit_intercept != data.fit_intercept {
        return Err(MpcError::BadParams(
            "train: the data was shared for a different intercept setting",
        ));
    }
    if rows.end > data.rows || rows.start >= rows.end {
        return Err(MpcError::LengthMismatch {
            what: "training rows",
            expected: data.rows,
            got: rows.end,
        });
    }
    let y = data
        .y
        .as_ref()
        .ok_or(MpcError::BadParams("train: the layout has no label"))?;
    let schedule = params.schedule(rows.end - rows.start)?;
    let d = data.width;
    let features = d - usize::from(params.fit_intercept);
    let mut acc = session.constant(d, 0);
    let mut w = session.constant(d, 0);
    let total = schedule.len();
    for (done, step) in schedule.enumerate() {
        let batch = rows.start + step.rows.start..rows.start + step.rows.end;
        let b = batch.end - batch.start;
        let xb = data.features(batch.clone());
        let z = session.matmul_fixed(&xb, &w, b, d, 1, frac_bits).await?;
        let p = match params.kind {
            GlmKind::Logistic => session.sigmoid_precise(&z, frac_bits).await?,
            GlmKind::Linear => z,
        };
        let e = session.sub(&p, &slice(y, batch))?;
        let g = session.matmul_fixed(&e, &xb, 1, b, d, frac_bits).await?;
        // c·g + c·b·λ·w at scale 2^{f+K}, truncated to the accumulator's 2^{f+8}.
        let mut decay = vec![step.d_int; d];
        decay[features..].fill(0);
        let update = session.add(
            &session.mul_public_scalar(&g, step.c_int),
            &session.mul_public(&w, &decay)?,
        )?;
        let delta = session
            .trunc(&update, step.shift.saturating_sub(WEIGHT_EXTRA_BITS))
            .await?;
        acc = session.sub(&acc, &delta)?;
        w = session.trunc(&acc, WEIGHT_EXTRA_BITS).await?;
        on_step(done + 1, total);
    }
    Ok(SharedModel {
        kind: params.kind,
        frac_bits,
        fit_intercept: params.fit_intercept,
        weights: acc,
    })
}

/// The weights of a [`SharedModel`] truncated once to the features' scale `2^f`
/// ([`SharedModel::scoring_weights`]), for scoring many batches of records with [`predict_with`]
/// without truncating them again for each. Secret; zeroized on drop (the share is).
#[derive(Debug, Clone)]
pub struct ScoringWeights {
    w: Rep3Share,
    frac_bits: u32,
    fit_intercept: bool,
}

impl SharedModel {
    /// `w = W / 2^WEIGHT_EXTRA_BITS`, the weights at the features' scale: one truncation (one
    /// round, `8·d` bytes from party 1).
    pub async fn scoring_weights(
        &self,
        session: &mut Rep3Session,
    ) -> Result<ScoringWeights, MpcError> {
        Ok(ScoringWeights {
            w: session.trunc(&self.weights, WEIGHT_EXTRA_BITS).await?,
            frac_bits: self.frac_bits,
            fit_intercept: self.fit_intercept,
        })
    }
}

/// The logits `x·w` (scale `2^f`) of the rows `rows` of `data` under `model`: one truncation of
/// the weights to `2^f` ([`SharedModel::scoring_weights`]), then [`predict_with`]: 3 rounds,
/// `8·(d + len)` bytes per party.
pub async fn predict(
    session: &mut Rep3Session,
    model: &SharedModel,
    data: &GlmData,
    rows: Range<usize>,
) -> Result<Rep3Share, MpcError> {
    check_width(model.weights.len(), model.fit_intercept, data)?;
    let w = model.scoring_weights(session).await?;
    predict_with(session, &w, data, rows).await
}

/// The logits `x·w` (scale `2^f`) of the rows `rows` of `data` under weights already truncated
/// by [`SharedModel::scoring_weights`]: one fixed-point matrix product (2 rounds, `8·len` bytes
/// per party).
pub async fn predict_with(
    session: &mut Rep3Session,
    weights: &ScoringWeights,
    data: &GlmData,
    rows: Range<usize>,
) -> Result<Rep3Share, MpcError> {
    let d = data.width;
    check_width(weights.w.len(), weights.fit_intercept, data)?;
    if rows.end > data.rows || rows.start > rows.end {
        return Err(MpcError::LengthMismatch {
            what: "rows to score",
            expected: data.rows,
            got: rows.end,
        });
    }
    let x = data.features(rows.clone());
    session
        .matmul_fixed(
            &x,
            &weights.w,
            rows.end - rows.start,
            d,
            1,
            weights.frac_bits,
        )
        .await
}

/// Refuses weights that do not fit the shared columns (count, intercept).
fn check_width(weights: usize, fit_intercept: bool, data: &GlmData) -> Result<(), MpcError> {
    if weights != data.width || fit_intercept != data.fit_intercept {
        return Err(MpcError::LengthMismatch {
            what: "model weights vs shared columns",
            expected: data.width,
            got: weights,
        });
    }
    Ok(())
}

/// Appends a column's encoded values to `out`, refusing non-finite values and values beyond
/// [`FEATURE_LIMIT`] (the error names the column and the aligned row, never the value).
fn encode_column(
    name: &str,
    values: &[f64],
    fixed: FixedPoint,
    out: &mut Vec<u64>,
) -> Result<(), MpcError> {
    for (j, &v) in values.iter().enumerate() {
        if !v.is_finite() || v.abs() > FEATURE_LIMIT {
            return Err(MpcError::FeatureRange {
                column: name.to_string(),
                row: j,
                limit: FEATURE_LIMIT,
            });
        }
        out.push(fixed.encode_signed(v)? as u64);
    }
    Ok(())
}

/// Appends the encoded label: 0 or 1 for logistic regression, any value within
/// [`FEATURE_LIMIT`] for linear regression.
fn encode_label(
    label: &[f64],
    kind: GlmKind,
    fixed: FixedPoint,
    out: &mut Vec<u64>,
) -> Result<(), MpcError> {
    if kind == GlmKind::Logistic
        && let Some(j) = label.iter().position(|&y| y != 0.0 && y != 1.0)
    {
        return Err(MpcError::BadLabel { row: j });
    }
    encode_column("label", label, fixed, out)
}

/// The elements `r` of a share.
fn slice(s: &Rep3Share, r: Range<usize>) -> Rep3Share {
    Rep3Share::new_unchecked(s.a()[r.clone()].to_vec(), s.b()[r].to_vec())
}

#[cfg(test)]
mod tests;
