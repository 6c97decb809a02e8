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
    /// An operation supports only a narrower range of fractional bits than the format allows.
    #[error("{op} supports {min} to {max} fractional bits, got {got}")]
    UnsupportedFracBits {
        /// The operation.
        op: &'static str,
        /// The fewest fractional bits it supports.
        min: u32,
        /// The most fractional bits it supports.
        max: u32,
        /// What was asked for.
        got: u32,
    },
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
    /// Shares that must be combined do not fit together.
    #[error("shares do not fit together: {0}")]
    Reconstruct(&'static str),
    /// The transport failed (peer gone, oversized or out-of-order message, ...).
    #[error(transparent)]
    Transport(#[from] TransportError),
}
