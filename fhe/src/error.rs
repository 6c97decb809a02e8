//! The crate's one error type.

use crate::keys::KeyId;

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
    /// A model file is malformed or does not fit the job's features.
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// An unknown `release`.
    #[error("unknown release {0:?}; expected \"scores\", \"decisions\" or \"aggregate\"")]
    Release(String),
    /// The owner's masked values do not match the masks (count or width).
    #[error("masked values: {0}")]
    MaskedValues(String),
    /// A ciphertext batch is malformed, truncated, oversized or for other parameters.
    #[error("ciphertext batch{}: {reason}", item.map(|i| format!(", item {i}")).unwrap_or_default())]
    Wire {
        /// The zero-based item, when one is to blame.
        item: Option<usize>,
        /// What is wrong (tfhe's description for header, size or conformance failures).
        reason: String,
    },
    /// A batch holds another number of ciphertexts than the protocol defines for it (checked
    /// before any ciphertext is read).
    #[error("ciphertext batch: {got} ciphertexts where {expected} were expected")]
    ItemCount {
        /// The count the batch declares.
        got: usize,
        /// The count the protocol defines.
        expected: usize,
    },
    /// A masked result is not of the kind the job's release defines at its position (checked
    /// for every item before any ciphertext is read).
    #[error("masked result {item} is {got} where the release defines {expected}")]
    ResultKind {
        /// The zero-based item.
        item: usize,
        /// What it is.
        got: &'static str,
        /// What the release defines there.
        expected: &'static str,
    },
    /// A masked result contains one of the ciphertexts the owner uploaded (its own encrypted
    /// feature bit sent back for it to decrypt).
    #[error("masked result {item} contains one of the owner's own uploaded ciphertexts")]
    EchoedCiphertext {
        /// The zero-based item.
        item: usize,
    },
    /// A ciphertext was encrypted under another key than the expected one (tags differ).
    #[error("ciphertext {item} was encrypted under another key than this job's")]
    WrongKey {
        /// The zero-based item.
        item: usize,
    },
    /// A key file cannot be read or written.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The evaluator's worker threads could not be started.
    #[error("cannot start the FHE worker threads: {0}")]
    ThreadPool(String),
    /// The operating system's randomness failed.
    #[error("no randomness from the operating system")]
    Entropy,
    /// A peer's message breaks the `fhe-score` protocol ([`crate::protocol`]): a malformed key
    /// offer or answer, an upload with a bad row count, masked results the release does not
    /// define, masked values of the wrong length or width. The driver fails the job as a
    /// malformed message from that peer, with `what`.
    #[error("{what}{}", cause.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Protocol {
        /// What is wrong with the message (a fixed phrase, for the peer's error).
        what: &'static str,
        /// The finer error behind it, if any (for logs).
        cause: Option<Box<FheError>>,
    },
    /// The owner offers a server key larger than the evaluator accepts.
    #[error("the owner offers a {size}-byte server key, above the limit of {limit} bytes")]
    ServerKeyTooLarge {
        /// The size offered, in bytes.
        size: u64,
        /// The limit: [`crate::keys::SERVER_KEY_SIZE_LIMIT`] or the caller's, the smaller.
        limit: u64,
    },
    /// The server key received is not the one the owner offered.
    #[error("the server key received ({received}) is not the one offered ({offered})")]
    KeyMismatch {
        /// The offered key's id.
        offered: KeyId,
        /// The received key's id.
        received: KeyId,
    },
    /// A step of the `fhe-score` protocol taken out of order (the driver's mistake, not a
    /// peer's).
    #[error("fhe-score protocol step out of order: {0}")]
    OutOfOrder(&'static str),
}

impl FheError {
    /// A protocol error with no finer cause.
    pub(crate) fn protocol(what: &'static str) -> Self {
        Self::Protocol { what, cause: None }
    }
}

/// Runs `f`, a tfhe operation on data from another organisation (decompressing what it sent),
/// turning a panic into an error. tfhe's conformance check does not cover everything it then
/// trusts: a seeded ciphertext whose seed carries an out-of-range generator offset passes it and
/// then panics (an index out of bounds in tfhe-csprng, no memory unsafety) when decompressed —
/// found by `tests/fhe.rs` `mutated_uploads_results_and_keys_are_refused_without_a_panic`. The
/// panic is the sender's fault and is refused like any malformed item.
pub(crate) fn untrusted<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let what: String = what.chars().take(200).collect();
        format!("does not decompress: {}", what.escape_debug())
    })
}
