//! The crate's one error type.

/// Everything that can go wrong in `treaty-fhe`.
///
/// Variants carry shape (sizes, names, bounds), never key material or plaintexts beyond what the
/// caller already holds (an out-of-range value is reported by column and row, not by value).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FheError {
    /// Serializing a server key failed (for example it exceeds the size limit).
    #[error("cannot serialize the compressed server key (limit {limit} bytes): {reason}")]
    KeySerialize {
        /// The size limit in bytes.
        limit: u64,
        /// tfhe's description.
        reason: String,
    },
    /// Received server-key bytes were truncated, oversized, of another type, or for another
    /// parameter set than Treaty's.
    #[error("rejected compressed server key ({len} bytes): {reason}")]
    KeyRejected {
        /// Length of the received bytes.
        len: usize,
        /// tfhe's description (header, size limit or conformance failure).
        reason: String,
    },
    /// A model must have at least one feature.
    #[error("the model has no features")]
    EmptyModel,
    /// The model's weights do not match its declared features.
    #[error("the model has {weights} weights for {features} features")]
    WeightCount {
        /// Number of weights.
        weights: usize,
        /// Number of declared features.
        features: usize,
    },
    /// A feature declares a bit width Treaty cannot encrypt as `FheUint16`.
    #[error("feature {column:?} declares {bits} bits; allowed 1..=16")]
    FeatureWidth {
        /// The feature's name.
        column: String,
        /// Its declared width.
        bits: u32,
    },
    /// `|Σ w_i·x_i + b|` can exceed the ciphertext integer width.
    #[error(
        "the model can overflow: |Σ w·x + b| ≤ {bound} over the declared feature ranges, \
         but the encrypted score is {width}-bit signed (max {max})"
    )]
    ModelOverflow {
        /// The bound computed from the weights, bias and feature ranges.
        bound: u128,
        /// The ciphertext width in bits.
        width: u32,
        /// The largest representable magnitude.
        max: u128,
    },
    /// A row has the wrong number of values.
    #[error("row {row} has {got} values; the model declares {expected} features")]
    RowLength {
        /// Zero-based row index.
        row: usize,
        /// Number of declared features.
        expected: usize,
        /// Number of values in the row.
        got: usize,
    },
    /// The rows were encrypted for other features (names, widths or order) than the model's.
    #[error("the encrypted rows were declared with other features than the model's")]
    SchemaMismatch,
    /// A value does not fit its feature's declared bit width (checked before anything is
    /// encrypted).
    #[error("column {column:?}, row {row}: value does not fit the declared {bits} bits")]
    ValueOutOfRange {
        /// The feature's name.
        column: String,
        /// Zero-based row index.
        row: usize,
        /// The declared width.
        bits: u32,
    },
}
