//! How parties exchange messages: raw [`Link`]s below, scoped [`Channel`]s above.
//!
//! ```text
//!   protocol code ──► Channel "job/psi/batch"  ┐  size limit, tag check, counters,
//!                     Channel "job/barrier"    ┘  poisoning: one layer, every link
//!                              │  (tag = scope hash of the path, round in the channel)
//!                              ▼
//!                     Link: InMemoryTransport | GrpcTransport (party) | DigestedLink<L>
//!                           moves tagged bytes to and from a peer, in order
//! ```
//!
//! A [`Link`] only moves `(Tag, bytes)` to and from a peer, in order. Everything else happens in
//! one place, [`Channel`], whatever the link: the maximum message size (on send and on receive),
//! the check that a message is the one expected (its scope and round), the traffic
//! [`Counters`], and poisoning (after any error every channel of the session refuses further use
//! with [`TransportError::Poisoned`]).
//!
//! Every sub-protocol runs on its own channel: [`Channel::child`] gives a scope whose path extends
//! the parent's (`psi`, `psi/header`, `barrier`), so two parts of a job can never take each
//! other's messages: a message of another scope or round is a typed error
//! ([`TransportError::UnexpectedScope`], [`TransportError::UnexpectedRound`]), never a
//! misdelivery. Rounds are numbered per channel from 0 and advance with [`Channel::end_round`]
//! (or [`exchange`]); no protocol numbers rounds by hand.
//!
//! Links keep strict per-peer order and there is no demultiplexing: channels of one session are
//! used one after another (as a job's sub-protocols run), not concurrently. The tag is a check,
//! not an address, so no message is ever buffered for later.

mod channel;
mod digest;
mod memory;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

pub use channel::{Channel, exchange};
pub use digest::{DigestedLink, PeerTraffic, SENT_PREFIXES, TrafficPrefix};
pub use memory::{InMemoryTransport, run_in_memory};

/// Index of a party within a session (0 ..= n-1).
pub type PartyIndex = usize;

/// Default largest message accepted by a transport (256 MiB).
pub const DEFAULT_MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// What can go wrong moving a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer's link closed before the expected message arrived.
    #[error("party {peer} disconnected")]
    PeerDisconnected {
        /// The peer.
        peer: PartyIndex,
    },
    /// A message exceeds the session's size limit.
    #[error("message of {len} bytes for/from party {peer} exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// The peer.
        peer: PartyIndex,
        /// Message length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A message of the expected scope but for another round arrived.
    #[error("party {peer} sent a message for round {got}, expected round {expected}")]
    UnexpectedRound {
        /// The peer.
        peer: PartyIndex,
        /// Round expected.
        expected: u32,
        /// Round received.
        got: u32,
    },
    /// A message of another scope (another sub-protocol) arrived.
    #[error("party {peer} sent a message of scope {got:#018x}, expected scope {expected:?}")]
    UnexpectedScope {
        /// The peer.
        peer: PartyIndex,
        /// Path of the channel that expected the message.
        expected: String,
        /// Scope id the message carried ([`ScopeId`] of some other path).
        got: u64,
    },
    /// No such party in this session (or the party itself).
    #[error("no peer with index {peer} in this session")]
    UnknownPeer {
        /// The index asked for.
        peer: PartyIndex,
    },
    /// Nothing arrived in time.
    #[error("timed out waiting for party {peer}")]
    Timeout {
        /// The peer.
        peer: PartyIndex,
    },
    /// The peer or the coordinator aborted the session.
    #[error("session aborted: {reason}")]
    Aborted {
        /// Why.
        reason: String,
    },
    /// The peer broke the framing rules of the link.
    #[error("protocol violation by party {peer}: {what}")]
    Violation {
        /// The peer.
        peer: PartyIndex,
        /// What it did (shape only).
        what: String,
    },
    /// An earlier operation of this session failed: its links may be out of step with the
    /// peers', so every channel of the session refuses further use.
    #[error("the session failed earlier and refuses further use")]
    Poisoned,
}

impl TransportError {
    /// The peer the error concerns, if any.
    pub fn peer(&self) -> Option<PartyIndex> {
        match self {
            Self::PeerDisconnected { peer }
            | Self::MessageTooLarge { peer, .. }
            | Self::UnexpectedRound { peer, .. }
            | Self::UnexpectedScope { peer, .. }
            | Self::UnknownPeer { peer }
            | Self::Timeout { peer }
            | Self::Violation { peer, .. } => Some(*peer),
            Self::Aborted { .. } | Self::Poisoned => None,
        }
    }
}

/// The 64-bit id of a channel's scope path, as it travels on the wire.
///
/// `ScopeId::of(path)` is the first 8 bytes (little endian) of
/// `SHA-256("treaty/channel/v1" ‖ 0x00 ‖ path)`.
///
/// **Why 64 bits are enough.** The id only has to tell apart the scopes of one session, which
/// are chosen by Treaty's code (fixed names, `#k` for a repeated name), never by a peer: a job
/// has at most some thousands of them (one per sub-protocol and per repeated child), so an
/// accidental collision between two of them has probability below `k²/2⁶⁵ < 10⁻¹²` for
/// `k = 10⁴`. A peer gains nothing from a collision either: it controls the bytes it sends under
/// the expected tag anyway; the tag guards against two honest parts of a job taking each other's
/// messages, not against a peer lying (the protocols' own checks do that).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScopeId(pub u64);

impl ScopeId {
    /// The id of `path`.
    pub fn of(path: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"treaty/channel/v1\0");
        h.update(path.as_bytes());
        let d = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&d[..8]);
        Self(u64::from_le_bytes(first))
    }
}

/// What a message carries besides its bytes: the scope of the channel that sent it and its
/// round within that channel. Fixed size (12 bytes) on every link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tag {
    /// The sending channel's [`ScopeId`].
    pub scope: ScopeId,
    /// The round within that channel (from 0).
    pub round: u32,
}

/// A raw connection of one party to the others of a session: moves tagged messages to and from
/// each peer, in order, and nothing else.
///
/// A link does not check tags, does not enforce the session's message limit and does not count
/// traffic: [`Channel`] does all of that, once, for every link. The one thing a link must do
/// with the limit is not allocate past it while it assembles a message from pieces (see
/// [`Link::recv`]).
pub trait Link: Send + Sync + 'static {
    /// This party's index.
    fn me(&self) -> PartyIndex;
    /// Number of parties in the session.
    fn parties(&self) -> usize;
    /// Sends `msg` tagged `tag` to party `to`.
    fn send(
        &self,
        to: PartyIndex,
        tag: Tag,
        msg: Vec<u8>,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Receives the next message from party `from`, whatever its tag.
    ///
    /// `limit` is the largest message the caller accepts: a link that assembles a message from
    /// pieces stops with [`TransportError::MessageTooLarge`] as soon as the message declares or
    /// reaches more, before allocating for it. A link that receives whole messages may return
    /// a longer one: the caller checks again.
    fn recv(
        &self,
        from: PartyIndex,
        limit: usize,
    ) -> impl Future<Output = Result<(Tag, Vec<u8>), TransportError>> + Send;
}

/// Per-session traffic counters, kept by [`Channel`]. Bytes count protocol payload, not framing
/// (tags, chunk headers).
#[derive(Debug, Default)]
pub struct Counters {
    rounds: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    messages_sent: AtomicU64,
    messages_received: AtomicU64,
}

/// A copy of [`Counters`] at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Communication rounds completed.
    pub rounds: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
}

impl CounterSnapshot {
    /// What was counted between `earlier` and this snapshot (saturating, field by field).
    pub fn since(&self, earlier: &CounterSnapshot) -> CounterSnapshot {
        CounterSnapshot {
            rounds: self.rounds.saturating_sub(earlier.rounds),
            bytes_sent: self.bytes_sent.saturating_sub(earlier.bytes_sent),
            bytes_received: self.bytes_received.saturating_sub(earlier.bytes_received),
            messages_sent: self.messages_sent.saturating_sub(earlier.messages_sent),
            messages_received: self
                .messages_received
                .saturating_sub(earlier.messages_received),
        }
    }
}

impl Counters {
    fn add_round(&self) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
    }

    fn add_sent(&self, bytes: usize) {
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
        self.messages_sent.fetch_add(1, Ordering::Relaxed);
    }

    fn add_received(&self, bytes: usize) {
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.messages_received.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads all counters.
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            rounds: self.rounds.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            messages_sent: self.messages_sent.load(Ordering::Relaxed),
            messages_received: self.messages_received.load(Ordering::Relaxed),
        }
    }
}
