//! The crate's one error type. Variants carry shape and place, never secret content.

use crate::transport::TransportError;

/// Everything that can go wrong in `treaty-mpc`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MpcError {
    /// A value cannot be represented in the fixed-point format (it would wrap).
    #[error(
        "value out of the fixed-point range (|x| < {limit:e} with {frac_bits} fractional bits)"
    )]
    OutOfRange {
        /// The largest magnitude representable.
        limit: f64,
        /// Fractional bits in use.
        frac_bits: u32,
    },
    /// A value is NaN or infinite.
    #[error("value is not a finite number")]
    NotFinite,
    /// The configured number of fractional bits is unusable.
    #[error("fractional bits must be between 0 and {max}, got {got}")]
    BadFracBits {
        /// The maximum allowed.
        max: u32,
        /// What was asked for.
        got: u32,
    },
    /// An operation does not support the requested number of fractional bits (its error bound or
    /// truncation failure probability would be unusable outside the range).
    #[error("{op} supports {min} to {max} fractional bits, got {got}")]
    UnsupportedFracBits {
        /// The operation.
        op: &'static str,
        /// The smallest number of fractional bits accepted.
        min: u32,
        /// The largest number of fractional bits accepted.
        max: u32,
        /// What was asked for.
        got: u32,
    },
    /// A party's local aggregate would let the joint total overflow the ring.
    #[error(
        "local aggregate of column {column:?} exceeds the bound that keeps the {parties}-party total exact"
    )]
    AggregateOverflow {
        /// The column whose aggregate is too large.
        column: String,
        /// Number of parties the bound was computed for.
        parties: usize,
    },
    /// A feature value is not finite or beyond the accepted range (after standardisation).
    #[error(
        "column {column:?}, aligned row {row}: value is not finite or beyond ±{limit} (standardised)"
    )]
    FeatureRange {
        /// The column.
        column: String,
        /// The aligned row (0-based).
        row: usize,
        /// The largest magnitude accepted.
        limit: f64,
    },
    /// A logistic-regression label that is not 0 or 1.
    #[error("label at aligned row {row} is not 0 or 1")]
    BadLabel {
        /// The aligned row (0-based).
        row: usize,
    },
    /// A column of a vertical `stats` job whose sums could leave the 64-bit ring.
    #[error(
        "column {column:?}: Σ|x| or Σx² over the {rows} aligned rows exceeds the exact 64-bit range \
         at {frac_bits} fractional bits; use fewer fractional bits"
    )]
    ColumnRange {
        /// The column.
        column: String,
        /// Aligned rows checked.
        rows: usize,
        /// Fractional bits in use.
        frac_bits: u32,
    },
    /// The rows of a join have nothing in common: nothing to compute over.
    #[error("the join's intersection is empty: the data parties have no record in common")]
    EmptyIntersection,
    /// A polynomial's degree (or a requested power) exceeds what the engine evaluates.
    #[error("polynomial degree {got} exceeds the maximum {max}")]
    PolyDegree {
        /// The largest degree accepted.
        max: usize,
        /// What was asked for.
        got: usize,
    },
    /// Two lengths that must agree do not.
    #[error("length mismatch in {what}: expected {expected}, got {got}")]
    LengthMismatch {
        /// What was being checked.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A peer sent a message that does not parse.
    #[error("malformed message from party {from} in round {round}: {what}")]
    MalformedMessage {
        /// Index of the sending party.
        from: usize,
        /// Protocol round.
        round: u32,
        /// What was wrong (shape only).
        what: &'static str,
    },
    /// A peer declares more of something (ids in its set, …) than this party accepts: refused
    /// before anything is allocated for it.
    #[error("party {from} declares {declared} {what}, above this party's limit of {limit}")]
    OverLimit {
        /// Index of the declaring party.
        from: usize,
        /// What is counted.
        what: &'static str,
        /// The count declared.
        declared: u64,
        /// This party's limit.
        limit: u64,
    },
    /// A peer's Diffie–Hellman public key is not a valid Ristretto255 point.
    #[error("party {from} sent an invalid Ristretto255 public key")]
    InvalidPublicKey {
        /// Index of the sending party.
        from: usize,
    },
    /// A protocol needs a different number of parties.
    #[error("protocol needs {expected} parties, the session has {got}")]
    PartyCount {
        /// What the protocol needs (e.g. "at least 2").
        expected: &'static str,
        /// What the session has.
        got: usize,
    },
    /// The operating system gave no entropy to seed a generator.
    #[error("no entropy from the operating system")]
    Entropy,
    /// Sealing or opening a result failed (opaque on purpose).
    #[error("sealed result could not be {0}")]
    Seal(&'static str),
    /// An operation that needs at least one element got none (e.g. the argmax of an empty row).
    #[error("{what} needs at least one element, got none")]
    Empty {
        /// What was empty.
        what: &'static str,
    },
    /// Shares that must be combined do not fit together.
    #[error("shares do not fit together: {0}")]
    Reconstruct(&'static str),
    /// A PSI id is longer than the limit.
    #[error("id at position {index} is {len} bytes long; the limit is {max}")]
    IdTooLong {
        /// Position of the id in the input.
        index: usize,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A PSI input holds the same id more than once.
    #[error("{count} duplicate id(s) in the input set; ids must be unique")]
    DuplicateIds {
        /// How many ids repeat an earlier one.
        count: usize,
    },
    /// A peer sent a group element that does not decode (or is the identity).
    #[error("party {from} sent an invalid Ristretto255 point at position {index}")]
    InvalidPoint {
        /// Index of the sending party.
        from: usize,
        /// Position of the point in the peer's stream.
        index: u64,
    },
    /// A peer runs the protocol with different parameters.
    #[error("party {from} disagrees on the {what}")]
    ProtocolMismatch {
        /// Index of the disagreeing party.
        from: usize,
        /// Which parameter differs.
        what: &'static str,
    },
    /// Protocol parameters that cannot work.
    #[error("bad protocol parameters: {0}")]
    BadParams(&'static str),
    /// A benchmark workload that cannot run: a shape that does not fit its operation, or sizes
    /// that are zero or overflow.
    #[error("invalid workload: {0}")]
    Workload(String),
    /// An earlier operation of this session failed: its round tags and randomness streams may be
    /// out of step with the peers', so it refuses further use (start a new session).
    #[error("the session failed earlier and refuses further use")]
    SessionFailed,
    /// The transport failed (peer gone, oversized or out-of-order message, ...).
    #[error(transparent)]
    Transport(#[from] TransportError),
}
