//! The evaluator's models, validated against the owner's declared features, and their clear
//! reference evaluation.
//!
//! A model file (JSON, [`ModelSpec`]) names its features in the order the job declares them and
//! is one of:
//! - **linear**: `score = Σ w_i·x_i + bias`;
//! - **scorecard**: per feature, ascending bin edges `e_1 < … < e_k` and `k + 1` points (bin `j`
//!   holds `e_j ≤ x < e_{j+1}`), `score = base + Σ points_i(x_i)`;
//! - **tree**: an ensemble of binary trees whose nodes test `x_f ≥ threshold` (true: right), and
//!   `score = Σ` of the leaf each tree reaches.
//!
//! and every model decides `score ≥ threshold`. All values are integers: the evaluator quantises
//! its own coefficients, the owner quantises its columns (see the job's feature scales).
//!
//! [`FheModel::new`] checks the model against the features (names, widths, edge and threshold
//! ranges, tree shape) and brings it to the form the circuit evaluates: `score = K + Σ c_j·b_j`
//! with clear integers `K` and `c_j > 0` and encrypted booleans `b_j` (feature bits, bin tests,
//! leaf indicators, each possibly negated: a negative coefficient `c·b` is rewritten
//! `|c|·(¬b) − |c|`, and `¬` costs nothing). The encrypted part `Σ c_j·b_j` is unsigned and at
//! most `Σ c_j`; it is computed on 16 bits when `Σ c_j < 2^16`, else on 32 bits, and a model with
//! `Σ c_j ≥ 2^32` or a score outside `i32` is refused before anything is encrypted, so no
//! result can wrap.

use serde::{Deserialize, Serialize};

use crate::FheError;

/// Widest encrypted score, in bits (unsigned; the clear offset `K` is added after decryption).
pub const SCORE_BITS: u32 = 32;

/// Most features a model may use.
pub const MAX_FEATURES: usize = 64;
/// Most bin edges per scorecard feature.
pub const MAX_EDGES: usize = 32;
/// Most trees in an ensemble.
pub const MAX_TREES: usize = 64;
/// Deepest tree (root at depth 0; a leaf at depth `MAX_DEPTH` is the last allowed).
pub const MAX_DEPTH: usize = 8;
/// Most internal nodes over all trees.
pub const MAX_SPLITS: usize = 2048;

/// A declared input column: its name and the number of bits its (unsigned) values use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    name: String,
    bits: u32,
}

impl Feature {
    /// Declares a column whose values lie in `0..2^bits`, `bits` in `1..=16`.
    ///
    /// # Errors
    /// [`FheError::FeatureWidth`] for a width outside `1..=16`.
    pub fn new(name: impl Into<String>, bits: u32) -> Result<Self, FheError> {
        let name = name.into();
        if !(1..=16).contains(&bits) {
            return Err(FheError::FeatureWidth { column: name, bits });
        }
        Ok(Self { name, bits })
    }

    /// The column name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The declared bit width.
    #[must_use]
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The largest value the column may hold: `2^bits − 1`.
    #[must_use]
    pub fn max_value(&self) -> u16 {
        // bits ∈ 1..=16 (checked in `new`): the result fits a u16.
        u16::try_from((1u32 << self.bits) - 1).unwrap_or(u16::MAX)
    }
}

/// Checks each row's length and each value against its column's width.
pub(crate) fn check_rows<'a>(
    features: &[Feature],
    rows: impl IntoIterator<Item = &'a [u16]>,
) -> Result<(), FheError> {
    for (row, values) in rows.into_iter().enumerate() {
        if values.len() != features.len() {
            return Err(FheError::RowLength {
                row,
                expected: features.len(),
                got: values.len(),
            });
        }
        for (feature, &value) in features.iter().zip(values) {
            if value > feature.max_value() {
                return Err(FheError::ValueOutOfRange {
                    column: feature.name.clone(),
                    row,
                    bits: feature.bits,
                });
            }
        }
    }
    Ok(())
}

/// One scorecard feature: ascending bin edges and one more points than edges.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorecardBins {
    /// Ascending, distinct, each in `1..=2^bits − 1`.
    pub edges: Vec<u16>,
    /// `points[j]` for `edges[j−1] ≤ x < edges[j]` (with `edges[−1] = 0`, `edges[k] = ∞`).
    pub points: Vec<i32>,
}

/// One node of a decision tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum TreeNode {
    /// `x[feature] ≥ threshold` goes to `right`, otherwise to `left` (indices into the tree's
    /// node list).
    Split {
        /// Index of the tested feature.
        feature: usize,
        /// In `1..=2^bits − 1` of that feature.
        threshold: u16,
        /// Node index taken when the test is false.
        left: usize,
        /// Node index taken when the test is true.
        right: usize,
    },
    /// The tree's contribution to the score.
    Leaf {
        /// Leaf value.
        leaf: i32,
    },
}

/// One tree: `nodes[0]` is the root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    /// The nodes; children refer to them by index.
    pub nodes: Vec<TreeNode>,
}

/// What the evaluator's model file holds (JSON, tagged by `kind`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSpec {
    /// `Σ w_i·x_i + bias`.
    Linear {
        /// Feature names, in the job's order.
        features: Vec<String>,
        /// One weight per feature.
        weights: Vec<i32>,
        /// Added to the sum.
        bias: i32,
        /// Decision: `score ≥ threshold`.
        threshold: i32,
    },
    /// `base + Σ points_i(x_i)`.
    Scorecard {
        /// Feature names, in the job's order.
        features: Vec<String>,
        /// Added to the points.
        base: i32,
        /// One entry per feature.
        bins: Vec<ScorecardBins>,
        /// Decision: `score ≥ threshold`.
        threshold: i32,
    },
    /// `Σ` over trees of the reached leaf.
    Tree {
        /// Feature names, in the job's order.
        features: Vec<String>,
        /// The ensemble.
        trees: Vec<Tree>,
        /// Decision: `score ≥ threshold`.
        threshold: i32,
    },
}

impl ModelSpec {
    /// `"linear"`, `"scorecard"` or `"tree"`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Linear { .. } => "linear",
            Self::Scorecard { .. } => "scorecard",
            Self::Tree { .. } => "tree",
        }
    }

    fn feature_names(&self) -> &[String] {
        match self {
            Self::Linear { features, .. }
            | Self::Scorecard { features, .. }
            | Self::Tree { features, .. } => features,
        }
    }
}

/// A tree flattened for evaluation: its splits, and per leaf its value and path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FlatTree {
    /// `(feature, threshold)` per split, in node order.
    pub splits: Vec<(usize, u16)>,
    /// Per leaf: value and the path as `(split index, taken branch: true = right)`.
    pub leaves: Vec<(i32, Vec<(usize, bool)>)>,
}

/// A model checked against the owner's features, ready for clear or encrypted evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FheModel {
    pub(crate) spec: ModelSpec,
    pub(crate) features: Vec<Feature>,
    pub(crate) trees: Vec<FlatTree>,
    bound: u128,
    /// `K`: the score is `K + Σ c_j·b_j`.
    pub(crate) offset: i64,
    /// `Σ c_j`: the largest value of the encrypted part.
    pub(crate) range: u64,
}

fn overflow(bound: u128) -> FheError {
    FheError::ModelOverflow {
        bound,
        width: SCORE_BITS,
        max: i32::MAX.unsigned_abs().into(),
    }
}

fn invalid(reason: impl Into<String>) -> FheError {
    FheError::InvalidModel(reason.into())
}

impl FheModel {
    /// Validates `spec` against the declared features (same names in the same order) and
    /// computes the bound on `|score|`.
    ///
    /// # Errors
    /// [`FheError::EmptyModel`], [`FheError::InvalidModel`] (names, lengths, edges, tree shape,
    /// with what is wrong), or [`FheError::ModelOverflow`] when the score could leave the
    /// [`SCORE_BITS`]-bit signed range.
    pub fn new(spec: ModelSpec, features: &[Feature]) -> Result<Self, FheError> {
        let names = spec.feature_names();
        if names.is_empty() || features.is_empty() {
            return Err(FheError::EmptyModel);
        }
        if names.len() > MAX_FEATURES {
            return Err(invalid(format!(
                "{} features; at most {MAX_FEATURES}",
                names.len()
            )));
        }
        let declared: Vec<&str> = features.iter().map(Feature::name).collect();
        if names
            .iter()
            .map(String::as_str)
            .ne(declared.iter().copied())
        {
            return Err(invalid(format!(
                "the model's features {names:?} are not the job's {declared:?} (same names, same order)"
            )));
        }
        let mut trees = Vec::new();
        let bound = match &spec {
            ModelSpec::Linear { weights, bias, .. } => {
                if weights.len() != features.len() {
                    return Err(FheError::WeightCount {
                        weights: weights.len(),
                        features: features.len(),
                    });
                }
                features
                    .iter()
                    .zip(weights)
                    .fold(u128::from(bias.unsigned_abs()), |acc, (f, w)| {
                        acc + u128::from(w.unsigned_abs()) * u128::from(f.max_value())
                    })
            }
            ModelSpec::Scorecard { base, bins, .. } => {
                if bins.len() != features.len() {
                    return Err(invalid(format!(
                        "{} bin lists for {} features",
                        bins.len(),
                        features.len()
                    )));
                }
                let mut bound = u128::from(base.unsigned_abs());
                for (f, b) in features.iter().zip(bins) {
                    check_bins(f, b)?;
                    let worst = b.points.iter().map(|p| p.unsigned_abs()).max().unwrap_or(0);
                    bound += u128::from(worst);
                }
                bound
            }
            ModelSpec::Tree { trees: spec, .. } => {
                if spec.is_empty() || spec.len() > MAX_TREES {
                    return Err(invalid(format!(
                        "{} trees; allowed 1..={MAX_TREES}",
                        spec.len()
                    )));
                }
                let mut bound = 0u128;
                for (t, tree) in spec.iter().enumerate() {
                    let flat = flatten(t, tree, features)?;
                    let worst = flat
                        .leaves
                        .iter()
                        .map(|(v, _)| v.unsigned_abs())
                        .max()
                        .unwrap_or(0);
                    bound += u128::from(worst);
                    trees.push(flat);
                }
                let splits: usize = trees.iter().map(|t| t.splits.len()).sum();
                if splits > MAX_SPLITS {
                    return Err(invalid(format!(
                        "{splits} splits in all; at most {MAX_SPLITS}"
                    )));
                }
                bound
            }
        };
        if bound > u128::from(i32::MAX.unsigned_abs()) {
            return Err(overflow(bound));
        }
        let mut model = Self {
            spec,
            features: features.to_vec(),
            trees,
            bound,
            offset: 0,
            range: 0,
        };
        let (offset, coefficients) = model.affine();
        let range: u128 = coefficients.iter().map(|&c| u128::from(c)).sum();
        if range >= 1 << SCORE_BITS {
            return Err(overflow(range));
        }
        model.offset = offset;
        model.range = range as u64;
        // A decision that is the same for every row needs no encryption and would travel as a
        // trivial ciphertext: refuse the model instead.
        let t = i64::from(model.threshold()) - offset;
        if t <= 0 || t > range as i64 {
            return Err(invalid(format!(
                "threshold {} is {} reached: scores lie in {}..={}",
                model.threshold(),
                if t <= 0 { "always" } else { "never" },
                offset,
                offset + range as i64
            )));
        }
        Ok(model)
    }

    /// `K` and the coefficients `c_j` of `score = K + Σ c_j·b_j`, in the order the circuit
    /// builds its booleans (zero coefficients dropped).
    pub(crate) fn affine(&self) -> (i64, Vec<u64>) {
        let mut k = 0i64;
        let mut c = Vec::new();
        let mut term = |coefficient: i64, k: &mut i64| {
            if coefficient < 0 {
                *k += coefficient;
            }
            if coefficient != 0 {
                c.push(coefficient.unsigned_abs());
            }
        };
        match &self.spec {
            ModelSpec::Linear { weights, bias, .. } => {
                k += i64::from(*bias);
                for (f, &w) in self.features.iter().zip(weights) {
                    for b in 0..f.bits() {
                        term(i64::from(w) << b, &mut k);
                    }
                }
            }
            ModelSpec::Scorecard { base, bins, .. } => {
                k += i64::from(*base);
                for b in bins {
                    k += i64::from(b.points[0]);
                    for j in 0..b.edges.len() {
                        term(i64::from(b.points[j + 1]) - i64::from(b.points[j]), &mut k);
                    }
                }
            }
            ModelSpec::Tree { .. } => {
                for tree in &self.trees {
                    for (value, path) in &tree.leaves {
                        if path.is_empty() {
                            k += i64::from(*value);
                        } else {
                            term(i64::from(*value), &mut k);
                        }
                    }
                }
            }
        }
        (k, c)
    }

    /// Width in bits of the encrypted part of the score: 16 or 32.
    #[must_use]
    pub fn score_bits(&self) -> u32 {
        if self.range < 1 << 16 { 16 } else { 32 }
    }

    /// Total encrypted bits per row (the sum of the declared widths).
    #[must_use]
    pub fn row_bits(&self) -> usize {
        self.features.iter().map(|f| f.bits() as usize).sum()
    }

    /// The declared features, in column order.
    #[must_use]
    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    /// The validated spec.
    #[must_use]
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// `"linear"`, `"scorecard"` or `"tree"`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        self.spec.kind()
    }

    /// The bound on `|score|` over the declared feature ranges.
    #[must_use]
    pub fn bound(&self) -> u128 {
        self.bound
    }

    /// The decision threshold.
    #[must_use]
    pub fn threshold(&self) -> i32 {
        match &self.spec {
            ModelSpec::Linear { threshold, .. }
            | ModelSpec::Scorecard { threshold, .. }
            | ModelSpec::Tree { threshold, .. } => *threshold,
        }
    }

    /// The same model in the clear: `(score, score ≥ threshold)` for one row.
    ///
    /// # Errors
    /// [`FheError::RowLength`] or [`FheError::ValueOutOfRange`] (reported as row 0).
    pub fn evaluate_clear(&self, row: &[u16]) -> Result<(i32, bool), FheError> {
        check_rows(&self.features, [row])?;
        let score: i64 = match &self.spec {
            ModelSpec::Linear { weights, bias, .. } => weights
                .iter()
                .zip(row)
                .fold(i64::from(*bias), |acc, (&w, &x)| {
                    acc + i64::from(w) * i64::from(x)
                }),
            ModelSpec::Scorecard { base, bins, .. } => {
                bins.iter().zip(row).fold(i64::from(*base), |acc, (b, &x)| {
                    let bin = b.edges.iter().take_while(|&&e| x >= e).count();
                    acc + i64::from(b.points[bin])
                })
            }
            ModelSpec::Tree { trees, .. } => trees
                .iter()
                .map(|tree| {
                    let mut at = 0;
                    loop {
                        match tree.nodes[at] {
                            TreeNode::Leaf { leaf } => break i64::from(leaf),
                            TreeNode::Split {
                                feature,
                                threshold,
                                left,
                                right,
                            } => {
                                at = if row[feature] >= threshold {
                                    right
                                } else {
                                    left
                                }
                            }
                        }
                    }
                })
                .sum(),
        };
        // |score| ≤ bound ≤ i32::MAX for in-range rows (both checked).
        let score = i32::try_from(score).map_err(|_| overflow(self.bound))?;
        Ok((score, score >= self.threshold()))
    }
}

fn check_bins(f: &Feature, b: &ScorecardBins) -> Result<(), FheError> {
    if b.edges.len() > MAX_EDGES {
        return Err(invalid(format!(
            "feature {:?}: {} bin edges; at most {MAX_EDGES}",
            f.name(),
            b.edges.len()
        )));
    }
    if b.points.len() != b.edges.len() + 1 {
        return Err(invalid(format!(
            "feature {:?}: {} edges need {} points, got {}",
            f.name(),
            b.edges.len(),
            b.edges.len() + 1,
            b.points.len()
        )));
    }
    if b.edges.windows(2).any(|w| w[0] >= w[1]) {
        return Err(invalid(format!(
            "feature {:?}: bin edges must be strictly ascending",
            f.name()
        )));
    }
    if let Some(&e) = b.edges.iter().find(|&&e| e == 0 || e > f.max_value()) {
        return Err(invalid(format!(
            "feature {:?}: bin edge {e} outside 1..={} ({} bits)",
            f.name(),
            f.max_value(),
            f.bits()
        )));
    }
    Ok(())
}

/// Checks one tree (every node reached exactly once from the root, depth, split ranges) and
/// flattens it into splits and leaf paths.
fn flatten(t: usize, tree: &Tree, features: &[Feature]) -> Result<FlatTree, FheError> {
    let n = tree.nodes.len();
    if n == 0 {
        return Err(invalid(format!("tree {t} has no nodes")));
    }
    let mut seen = vec![false; n];
    let mut split_index = vec![usize::MAX; n];
    let mut flat = FlatTree {
        splits: Vec::new(),
        leaves: Vec::new(),
    };
    // Depth-first from the root, carrying the path.
    let mut stack: Vec<(usize, Vec<(usize, bool)>)> = vec![(0, Vec::new())];
    while let Some((at, path)) = stack.pop() {
        if at >= n {
            return Err(invalid(format!("tree {t}: child index {at} out of range")));
        }
        if std::mem::replace(&mut seen[at], true) {
            return Err(invalid(format!(
                "tree {t}: node {at} is reached twice (not a tree)"
            )));
        }
        if path.len() > MAX_DEPTH {
            return Err(invalid(format!("tree {t}: deeper than {MAX_DEPTH}")));
        }
        match tree.nodes[at] {
            TreeNode::Leaf { leaf } => flat.leaves.push((leaf, path)),
            TreeNode::Split {
                feature,
                threshold,
                left,
                right,
            } => {
                let f = features.get(feature).ok_or_else(|| {
                    invalid(format!(
                        "tree {t}, node {at}: feature index {feature} out of range"
                    ))
                })?;
                if threshold == 0 || threshold > f.max_value() {
                    return Err(invalid(format!(
                        "tree {t}, node {at}: threshold {threshold} outside 1..={} for {:?}",
                        f.max_value(),
                        f.name()
                    )));
                }
                split_index[at] = flat.splits.len();
                flat.splits.push((feature, threshold));
                let s = split_index[at];
                let mut l = path.clone();
                l.push((s, false));
                let mut r = path;
                r.push((s, true));
                stack.push((right, r));
                stack.push((left, l));
            }
        }
    }
    if let Some(orphan) = seen.iter().position(|s| !s) {
        return Err(invalid(format!(
            "tree {t}: node {orphan} is not reachable from the root"
        )));
    }
    Ok(flat)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features() -> Vec<Feature> {
        vec![
            Feature::new("age", 7).unwrap(),
            Feature::new("amount", 16).unwrap(),
        ]
    }

    #[test]
    fn parses_the_three_kinds_and_evaluates_them_in_the_clear() {
        let linear: ModelSpec = serde_json::from_str(
            r#"{"kind":"linear","features":["age","amount"],"weights":[3,-2],"bias":5,"threshold":0}"#,
        )
        .unwrap();
        let m = FheModel::new(linear, &features()).unwrap();
        assert_eq!(m.evaluate_clear(&[10, 20]).unwrap(), (-5, false));
        assert_eq!(m.bound(), 3 * 127 + 2 * 65_535 + 5);

        let card: ModelSpec = serde_json::from_str(
            r#"{"kind":"scorecard","features":["age","amount"],"base":100,
                "bins":[{"edges":[30,60],"points":[-5,0,10]},{"edges":[1000],"points":[0,-20]}],
                "threshold":100}"#,
        )
        .unwrap();
        let m = FheModel::new(card, &features()).unwrap();
        assert_eq!(m.evaluate_clear(&[29, 999]).unwrap(), (95, false));
        assert_eq!(m.evaluate_clear(&[30, 1000]).unwrap(), (80, false));
        assert_eq!(m.evaluate_clear(&[60, 0]).unwrap(), (110, true));

        let tree: ModelSpec = serde_json::from_str(
            r#"{"kind":"tree","features":["age","amount"],"threshold":1,"trees":[
                {"nodes":[{"feature":0,"threshold":50,"left":1,"right":2},
                          {"leaf":-1},
                          {"feature":1,"threshold":500,"left":3,"right":4},
                          {"leaf":2},{"leaf":7}]},
                {"nodes":[{"leaf":-3}]}]}"#,
        )
        .unwrap();
        let m = FheModel::new(tree, &features()).unwrap();
        assert_eq!(m.evaluate_clear(&[49, 9999]).unwrap(), (-4, false));
        assert_eq!(m.evaluate_clear(&[50, 499]).unwrap(), (-1, false));
        assert_eq!(m.evaluate_clear(&[50, 500]).unwrap(), (4, true));
        assert_eq!(m.trees[0].splits, vec![(0, 50), (1, 500)]);
        assert_eq!(m.trees[0].leaves.len(), 3);
    }

    #[test]
    fn refuses_malformed_models_saying_what_is_wrong() {
        let f = features();
        let err = |spec: &str| {
            let spec: ModelSpec = serde_json::from_str(spec).unwrap();
            FheModel::new(spec, &f).unwrap_err().to_string()
        };
        assert!(err(r#"{"kind":"linear","features":["amount","age"],"weights":[1,1],"bias":0,"threshold":0}"#)
            .contains("same order"));
        assert!(err(r#"{"kind":"linear","features":["age","amount"],"weights":[1],"bias":0,"threshold":0}"#)
            .contains("1 weights"));
        // 40000 · 65535 > 2^31.
        assert!(err(r#"{"kind":"linear","features":["age","amount"],"weights":[1,40000],"bias":0,"threshold":0}"#)
            .contains("overflow"));
        assert!(err(r#"{"kind":"scorecard","features":["age","amount"],"base":0,
                "bins":[{"edges":[60,30],"points":[0,0,0]},{"edges":[],"points":[0]}],"threshold":0}"#)
            .contains("ascending"));
        assert!(
            err(r#"{"kind":"scorecard","features":["age","amount"],"base":0,
                "bins":[{"edges":[200],"points":[0,0]},{"edges":[],"points":[0]}],"threshold":0}"#)
            .contains("outside 1..=127")
        );
        assert!(
            err(
                r#"{"kind":"tree","features":["age","amount"],"threshold":0,"trees":[
                {"nodes":[{"feature":0,"threshold":5,"left":1,"right":1},{"leaf":1}]}]}"#
            )
            .contains("reached twice")
        );
        assert!(
            err(
                r#"{"kind":"tree","features":["age","amount"],"threshold":0,"trees":[
                {"nodes":[{"leaf":1},{"leaf":2}]}]}"#
            )
            .contains("not reachable")
        );
        assert!(
            err(
                r#"{"kind":"tree","features":["age","amount"],"threshold":0,"trees":[
                {"nodes":[{"feature":2,"threshold":5,"left":1,"right":2},{"leaf":1},{"leaf":2}]}]}"#
            )
            .contains("feature index 2")
        );
        // A threshold every row (or no row) reaches.
        assert!(err(r#"{"kind":"linear","features":["age","amount"],"weights":[1,1],"bias":0,"threshold":0}"#)
            .contains("always reached"));
        assert!(err(r#"{"kind":"linear","features":["age","amount"],"weights":[1,1],"bias":0,"threshold":70000}"#)
            .contains("never reached"));
        // Unknown fields are refused by serde.
        assert!(
            serde_json::from_str::<ModelSpec>(
                r#"{"kind":"linear","features":["age"],"weights":[1],"bias":0,"threshold":0,"x":1}"#
            )
            .is_err()
        );
    }
}
