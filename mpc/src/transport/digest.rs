//! [`DigestedLink`]: running digests of a link's traffic, for the audit log.

use std::collections::VecDeque;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::{Link, PartyIndex, Tag, TransportError};

/// What one party committed about its traffic with one peer during a session: running SHA-256
/// digests over every message sent to and received from it (each hashed as scope, round,
/// length, bytes), and the byte totals. For the audit log's cross-party check: what A commits as
/// sent to B must equal what B commits as received from A.
///
/// A job can end (fail, or be aborted) with messages still in flight: sent, never received. So
/// the sent side also keeps where its stream stood before each of its last [`SENT_PREFIXES`]
/// messages: a peer's received digest that equals one of them is the sent stream cut at that
/// message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerTraffic {
    /// The peer's index.
    pub peer: PartyIndex,
    /// Digest of the messages sent to the peer.
    pub sent_sha256: [u8; 32],
    /// Payload bytes sent.
    pub sent_bytes: u64,
    /// The sent stream before each of its last messages (at most [`SENT_PREFIXES`], oldest
    /// first): the first is the empty stream as long as at most that many were sent.
    pub sent_prefixes: Vec<TrafficPrefix>,
    /// Digest of the messages received from the peer.
    pub received_sha256: [u8; 32],
    /// Payload bytes received.
    pub received_bytes: u64,
}

/// How many starting points of its last sent messages a party keeps per peer.
pub const SENT_PREFIXES: usize = 16;

/// A stream of messages cut at a message boundary: its digest and payload bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrafficPrefix {
    /// Payload bytes before the cut.
    pub bytes: u64,
    /// The running digest at the cut.
    pub sha256: [u8; 32],
}

/// One direction's running digest.
#[derive(Clone, Default)]
struct Running {
    hasher: Sha256,
    bytes: u64,
    /// Whether to keep [`Running::prefixes`] (the sent side).
    keep_prefixes: bool,
    prefixes: VecDeque<TrafficPrefix>,
}

impl Running {
    fn keeping_prefixes() -> Self {
        Self {
            keep_prefixes: true,
            ..Self::default()
        }
    }

    fn now(&self) -> TrafficPrefix {
        TrafficPrefix {
            bytes: self.bytes,
            sha256: self.hasher.clone().finalize().into(),
        }
    }

    fn add(&mut self, tag: Tag, msg: &[u8]) {
        if self.keep_prefixes {
            if self.prefixes.len() == SENT_PREFIXES {
                self.prefixes.pop_front();
            }
            let here = self.now();
            self.prefixes.push_back(here);
        }
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
            sent: (0..n)
                .map(|_| Mutex::new(Running::keeping_prefixes()))
                .collect(),
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
            let r = m.lock().unwrap_or_else(|p| p.into_inner());
            (r.now(), r.prefixes.iter().copied().collect::<Vec<_>>())
        };
        (0..self.sent.len())
            .filter(|&p| p != self.inner.me())
            .map(|peer| {
                let (sent, sent_prefixes) = take(&self.sent[peer]);
                let (received, _) = take(&self.received[peer]);
                PeerTraffic {
                    peer,
                    sent_sha256: sent.sha256,
                    sent_bytes: sent.bytes,
                    sent_prefixes,
                    received_sha256: received.sha256,
                    received_bytes: received.bytes,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{InMemoryTransport, ScopeId};

    /// What a peer received before a job was cut short is one of the sender's kept prefixes;
    /// the sender keeps only the last [`SENT_PREFIXES`], the receiver none.
    #[tokio::test]
    async fn a_receiver_cut_short_holds_one_of_the_senders_prefixes() {
        let mut links = InMemoryTransport::network(2).into_iter();
        let a = DigestedLink::new(links.next().unwrap());
        let b = DigestedLink::new(links.next().unwrap());
        for round in 0..20u32 {
            let tag = Tag {
                scope: ScopeId(7),
                round,
            };
            a.send(1, tag, vec![round as u8; round as usize + 1])
                .await
                .unwrap();
        }
        for _ in 0..7 {
            b.recv(0, 1 << 10).await.unwrap();
        }
        let sent = a.traffic().remove(0);
        let got = b.traffic().remove(0);
        assert_eq!(sent.sent_prefixes.len(), SENT_PREFIXES);
        assert_ne!(
            (sent.sent_bytes, sent.sent_sha256),
            (got.received_bytes, got.received_sha256)
        );
        // Prefixes before messages 4..20 are kept; 7 received is the one before message 7.
        let cut = TrafficPrefix {
            bytes: got.received_bytes,
            sha256: got.received_sha256,
        };
        assert_eq!(sent.sent_prefixes[3], cut);
        assert_eq!(cut.bytes, (1..=7).sum::<u64>());
        for _ in 7..20 {
            b.recv(0, 1 << 10).await.unwrap();
        }
        let got = b.traffic().remove(0);
        assert_eq!(
            (sent.sent_bytes, sent.sent_sha256),
            (got.received_bytes, got.received_sha256)
        );
        assert!(got.sent_prefixes.is_empty());
    }
}
