//! [`DigestedLink`]: running digests of a link's traffic, for the audit log.

use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::{Link, PartyIndex, Tag, TransportError};

/// What one party committed about its traffic with one peer during a session: running SHA-256
/// digests over every message sent to and received from it (each hashed as scope, round,
/// length, bytes), and the byte totals. For the audit log's cross-party check: what A commits as
/// sent to B must equal what B commits as received from A.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerTraffic {
    /// The peer's index.
    pub peer: PartyIndex,
    /// Digest of the messages sent to the peer.
    pub sent_sha256: [u8; 32],
    /// Payload bytes sent.
    pub sent_bytes: u64,
    /// Digest of the messages received from the peer.
    pub received_sha256: [u8; 32],
    /// Payload bytes received.
    pub received_bytes: u64,
}

/// One direction's running digest.
#[derive(Clone, Default)]
struct Running {
    hasher: Sha256,
    bytes: u64,
}

impl Running {
    fn add(&mut self, tag: Tag, msg: &[u8]) {
        self.hasher.update(tag.scope.0.to_le_bytes());
        self.hasher.update(tag.round.to_le_bytes());
        self.hasher.update((msg.len() as u64).to_le_bytes());
        self.hasher.update(msg);
        self.bytes += msg.len() as u64;
    }
}

/// A link that keeps, per peer, running digests of everything it sends and receives
/// ([`PeerTraffic`]); otherwise it is the link it wraps.
pub struct DigestedLink<L> {
    inner: L,
    sent: Vec<Mutex<Running>>,
    received: Vec<Mutex<Running>>,
}

impl<L> std::fmt::Debug for DigestedLink<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestedLink")
            .field("peers", &self.sent.len())
            .finish_non_exhaustive()
    }
}

/// Adds `msg` to a digest (a poisoned lock still holds a consistent digest: updates are single
/// calls).
fn add(d: Option<&Mutex<Running>>, tag: Tag, msg: &[u8]) {
    if let Some(d) = d {
        d.lock().unwrap_or_else(|p| p.into_inner()).add(tag, msg);
    }
}

impl<L: Link> DigestedLink<L> {
    /// Wraps `inner`; the digests start empty.
    pub fn new(inner: L) -> Self {
        let n = inner.parties();
        Self {
            inner,
            sent: (0..n).map(|_| Mutex::default()).collect(),
            received: (0..n).map(|_| Mutex::default()).collect(),
        }
    }

    /// The wrapped link.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// The digests so far, one per peer (not this party).
    pub fn traffic(&self) -> Vec<PeerTraffic> {
        let take = |m: &Mutex<Running>| {
            let r = m.lock().unwrap_or_else(|p| p.into_inner()).clone();
            (<[u8; 32]>::from(r.hasher.finalize()), r.bytes)
        };
        (0..self.sent.len())
            .filter(|&p| p != self.inner.me())
            .map(|peer| {
                let (sent_sha256, sent_bytes) = take(&self.sent[peer]);
                let (received_sha256, received_bytes) = take(&self.received[peer]);
                PeerTraffic {
                    peer,
                    sent_sha256,
                    sent_bytes,
                    received_sha256,
                    received_bytes,
                }
            })
            .collect()
    }
}

impl<L: Link> Link for DigestedLink<L> {
    fn me(&self) -> PartyIndex {
        self.inner.me()
    }

    fn parties(&self) -> usize {
        self.inner.parties()
    }

    async fn send(&self, to: PartyIndex, tag: Tag, msg: Vec<u8>) -> Result<(), TransportError> {
        add(self.sent.get(to), tag, &msg);
        self.inner.send(to, tag, msg).await
    }

    async fn recv(&self, from: PartyIndex, limit: usize) -> Result<(Tag, Vec<u8>), TransportError> {
        let (tag, msg) = self.inner.recv(from, limit).await?;
        add(self.received.get(from), tag, &msg);
        Ok((tag, msg))
    }
}
