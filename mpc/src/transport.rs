//! The transport every protocol talks to, and its in-memory implementation.
//!
//! A protocol sends at most one (batched) message to each peer per round and tags it with the
//! round number; a receiver that gets a message for another round fails instead of guessing.
//! Implementations enforce a maximum message size and count bytes; [`exchange`] counts rounds.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, mpsc};

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
    /// A message for another round arrived.
    #[error("party {peer} sent a message for round {got}, expected round {expected}")]
    UnexpectedRound {
        /// The peer.
        peer: PartyIndex,
        /// Round expected.
        expected: u32,
        /// Round received.
        got: u32,
    },
    /// No such party in this session (or the party itself).
    #[error("no peer with index {peer} in this session")]
    UnknownPeer {
        /// The index asked for.
        peer: PartyIndex,
    },
    /// Nothing arrived in time.
    #[error("timed out waiting for party {peer} in round {round}")]
    Timeout {
        /// The peer.
        peer: PartyIndex,
        /// The round.
        round: u32,
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
}

impl TransportError {
    /// The peer the error concerns, if any.
    pub fn peer(&self) -> Option<PartyIndex> {
        match self {
            Self::PeerDisconnected { peer }
            | Self::MessageTooLarge { peer, .. }
            | Self::UnexpectedRound { peer, .. }
            | Self::UnknownPeer { peer }
            | Self::Timeout { peer, .. }
            | Self::Violation { peer, .. } => Some(*peer),
            Self::Aborted { .. } => None,
        }
    }
}

/// Per-session traffic counters. Bytes count protocol payload, not framing.
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
    /// Records one completed round.
    pub fn add_round(&self) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
    }
    /// Records a sent message.
    pub fn add_sent(&self, bytes: usize) {
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
        self.messages_sent.fetch_add(1, Ordering::Relaxed);
    }
    /// Records a received message.
    pub fn add_received(&self, bytes: usize) {
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

/// Point-to-point, round-tagged, size-limited message passing between the parties of a session.
pub trait Transport: Send + Sync {
    /// This party's index.
    fn me(&self) -> PartyIndex;
    /// Number of parties in the session.
    fn parties(&self) -> usize;
    /// Largest message this transport sends or accepts.
    fn max_message_len(&self) -> usize;
    /// The session's counters.
    fn counters(&self) -> &Counters;
    /// Sends `msg` to party `to` as its message for `round`.
    fn send(
        &self,
        to: PartyIndex,
        round: u32,
        msg: Vec<u8>,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Receives party `from`'s message for `round`.
    fn recv(
        &self,
        from: PartyIndex,
        round: u32,
    ) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send;
}

/// One round with every peer: sends `msg_for(peer)` to each, then receives one message from each.
/// Returns the received messages indexed by party (`None` at this party's own index).
pub async fn exchange<T: Transport>(
    transport: &T,
    round: u32,
    mut msg_for: impl FnMut(PartyIndex) -> Vec<u8>,
) -> Result<Vec<Option<Vec<u8>>>, TransportError> {
    let me = transport.me();
    let n = transport.parties();
    for peer in (0..n).filter(|&p| p != me) {
        transport.send(peer, round, msg_for(peer)).await?;
    }
    let mut received = vec![None; n];
    for (peer, slot) in received.iter_mut().enumerate() {
        if peer != me {
            *slot = Some(transport.recv(peer, round).await?);
        }
    }
    transport.counters().add_round();
    Ok(received)
}

/// A view of some parties of a session as a smaller session (e.g. a two-party PSI between two
/// of a job's three parties): party `k` of the view is `members[k]` of the underlying transport.
/// Messages, round tags and counters are the underlying session's; parties outside the view
/// simply see no traffic in those rounds.
#[derive(Debug)]
pub struct SubTransport<'a, T> {
    inner: &'a T,
    members: Vec<PartyIndex>,
    me: PartyIndex,
}

impl<'a, T: Transport> SubTransport<'a, T> {
    /// The view of `members` (distinct indices of `inner`, this party among them); `None` if this
    /// party is not a member or an index repeats or is out of range.
    pub fn new(inner: &'a T, members: &[PartyIndex]) -> Option<Self> {
        let n = inner.parties();
        let distinct = members
            .iter()
            .enumerate()
            .all(|(i, m)| *m < n && !members[..i].contains(m));
        let me = members.iter().position(|&m| m == inner.me())?;
        distinct.then(|| Self {
            inner,
            members: members.to_vec(),
            me,
        })
    }

    fn member(&self, k: PartyIndex) -> Result<PartyIndex, TransportError> {
        self.members
            .get(k)
            .copied()
            .ok_or(TransportError::UnknownPeer { peer: k })
    }
}

impl<T: Transport> Transport for SubTransport<'_, T> {
    fn me(&self) -> PartyIndex {
        self.me
    }

    fn parties(&self) -> usize {
        self.members.len()
    }

    fn max_message_len(&self) -> usize {
        self.inner.max_message_len()
    }

    fn counters(&self) -> &Counters {
        self.inner.counters()
    }

    async fn send(&self, to: PartyIndex, round: u32, msg: Vec<u8>) -> Result<(), TransportError> {
        self.inner.send(self.member(to)?, round, msg).await
    }

    async fn recv(&self, from: PartyIndex, round: u32) -> Result<Vec<u8>, TransportError> {
        self.inner.recv(self.member(from)?, round).await
    }
}

/// What one party committed about its traffic with one peer during a session: running SHA-256
/// digests over every message sent to and received from it (each hashed as round, length,
/// bytes), and the byte totals. For the audit log's cross-party check: what A commits as sent to
/// B must equal what B commits as received from A.
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
    fn add(&mut self, round: u32, msg: &[u8]) {
        self.hasher.update(round.to_le_bytes());
        self.hasher.update((msg.len() as u64).to_le_bytes());
        self.hasher.update(msg);
        self.bytes += msg.len() as u64;
    }
}

/// A transport that keeps, per peer, running digests of everything it sends and receives
/// ([`PeerTraffic`]); otherwise it is the transport it wraps.
pub struct DigestedTransport<'a, T> {
    inner: &'a T,
    sent: Vec<std::sync::Mutex<Running>>,
    received: Vec<std::sync::Mutex<Running>>,
}

impl<T> std::fmt::Debug for DigestedTransport<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestedTransport")
            .field("peers", &self.sent.len())
            .finish_non_exhaustive()
    }
}

impl<'a, T: Transport> DigestedTransport<'a, T> {
    /// Wraps `inner`; the digests start empty.
    pub fn new(inner: &'a T) -> Self {
        let n = inner.parties();
        Self {
            inner,
            sent: (0..n).map(|_| std::sync::Mutex::default()).collect(),
            received: (0..n).map(|_| std::sync::Mutex::default()).collect(),
        }
    }

    /// The digests so far, one per peer (not this party).
    pub fn traffic(&self) -> Vec<PeerTraffic> {
        let take = |m: &std::sync::Mutex<Running>| {
            // A poisoned lock still holds a consistent digest (updates are single calls).
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

impl<T: Transport> Transport for DigestedTransport<'_, T> {
    fn me(&self) -> PartyIndex {
        self.inner.me()
    }

    fn parties(&self) -> usize {
        self.inner.parties()
    }

    fn max_message_len(&self) -> usize {
        self.inner.max_message_len()
    }

    fn counters(&self) -> &Counters {
        self.inner.counters()
    }

    async fn send(&self, to: PartyIndex, round: u32, msg: Vec<u8>) -> Result<(), TransportError> {
        if let Some(d) = self.sent.get(to) {
            d.lock().unwrap_or_else(|p| p.into_inner()).add(round, &msg);
        }
        self.inner.send(to, round, msg).await
    }

    async fn recv(&self, from: PartyIndex, round: u32) -> Result<Vec<u8>, TransportError> {
        let msg = self.inner.recv(from, round).await?;
        if let Some(d) = self.received.get(from) {
            d.lock().unwrap_or_else(|p| p.into_inner()).add(round, &msg);
        }
        Ok(msg)
    }
}

type Envelope = (u32, Vec<u8>);

/// All parties in one process, connected by unbounded channels. For tests and benches.
pub struct InMemoryTransport {
    me: PartyIndex,
    max_message: usize,
    senders: Vec<Option<mpsc::UnboundedSender<Envelope>>>,
    receivers: Vec<Option<Mutex<mpsc::UnboundedReceiver<Envelope>>>>,
    counters: Counters,
}

impl std::fmt::Debug for InMemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryTransport")
            .field("me", &self.me)
            .field("parties", &self.senders.len())
            .finish_non_exhaustive()
    }
}

impl InMemoryTransport {
    /// A fully connected network of `n` parties with the default message limit.
    pub fn network(n: usize) -> Vec<Self> {
        Self::network_with_limit(n, DEFAULT_MAX_MESSAGE)
    }

    /// A fully connected network of `n` parties with a message limit.
    pub fn network_with_limit(n: usize, max_message: usize) -> Vec<Self> {
        let mut senders: Vec<Vec<Option<mpsc::UnboundedSender<Envelope>>>> =
            (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
        let mut receivers: Vec<Vec<Option<Mutex<mpsc::UnboundedReceiver<Envelope>>>>> =
            (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
        for from in 0..n {
            for to in (0..n).filter(|&t| t != from) {
                let (tx, rx) = mpsc::unbounded_channel();
                senders[from][to] = Some(tx);
                receivers[to][from] = Some(Mutex::new(rx));
            }
        }
        senders
            .into_iter()
            .zip(receivers)
            .enumerate()
            .map(|(me, (senders, receivers))| Self {
                me,
                max_message,
                senders,
                receivers,
                counters: Counters::default(),
            })
            .collect()
    }
}

impl Transport for InMemoryTransport {
    fn me(&self) -> PartyIndex {
        self.me
    }

    fn parties(&self) -> usize {
        self.senders.len()
    }

    fn max_message_len(&self) -> usize {
        self.max_message
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }

    async fn send(&self, to: PartyIndex, round: u32, msg: Vec<u8>) -> Result<(), TransportError> {
        if msg.len() > self.max_message {
            return Err(TransportError::MessageTooLarge {
                peer: to,
                len: msg.len(),
                max: self.max_message,
            });
        }
        let tx = self
            .senders
            .get(to)
            .and_then(Option::as_ref)
            .ok_or(TransportError::UnknownPeer { peer: to })?;
        let len = msg.len();
        tx.send((round, msg))
            .map_err(|_| TransportError::PeerDisconnected { peer: to })?;
        self.counters.add_sent(len);
        Ok(())
    }

    async fn recv(&self, from: PartyIndex, round: u32) -> Result<Vec<u8>, TransportError> {
        let rx = self
            .receivers
            .get(from)
            .and_then(Option::as_ref)
            .ok_or(TransportError::UnknownPeer { peer: from })?;
        let (got, msg) = rx
            .lock()
            .await
            .recv()
            .await
            .ok_or(TransportError::PeerDisconnected { peer: from })?;
        if got != round {
            return Err(TransportError::UnexpectedRound {
                peer: from,
                expected: round,
                got,
            });
        }
        if msg.len() > self.max_message {
            return Err(TransportError::MessageTooLarge {
                peer: from,
                len: msg.len(),
                max: self.max_message,
            });
        }
        self.counters.add_received(msg.len());
        Ok(msg)
    }
}

/// Runs `party` for each of `n` parties concurrently over a fresh in-memory network and returns
/// the outputs in party order. A panicking party is reported as an error naming it.
pub async fn run_in_memory<F, Fut, O>(
    n: usize,
    max_message: usize,
    party: F,
) -> Result<Vec<O>, TransportError>
where
    F: Fn(InMemoryTransport) -> Fut,
    Fut: Future<Output = O> + Send + 'static,
    O: Send + 'static,
{
    let handles: Vec<_> = InMemoryTransport::network_with_limit(n, max_message)
        .into_iter()
        .map(|t| tokio::spawn(party(t)))
        .collect();
    let mut out = Vec::with_capacity(n);
    for (index, h) in handles.into_iter().enumerate() {
        out.push(h.await.map_err(|_| TransportError::Aborted {
            reason: format!("party {index} panicked"),
        })?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sub_transport_maps_indices_and_shares_counters() {
        let out = run_in_memory(3, DEFAULT_MAX_MESSAGE, |t| async move {
            if t.me() == 1 {
                assert!(SubTransport::new(&t, &[0, 2]).is_none());
                assert!(SubTransport::new(&t, &[1, 1]).is_none());
                assert!(SubTransport::new(&t, &[1, 3]).is_none());
                return (t.counters().snapshot().messages_sent, Vec::new());
            }
            let sub = SubTransport::new(&t, &[2, 0]).unwrap();
            assert_eq!(sub.parties(), 2);
            let got = exchange(&sub, 5, |peer| vec![sub.me() as u8, peer as u8])
                .await
                .unwrap();
            assert!(sub.send(2, 6, vec![]).await.is_err());
            let snap = t.counters().snapshot();
            (snap.messages_sent, got[1 - sub.me()].clone().unwrap())
        })
        .await
        .unwrap();
        // Party 0 is member 1 of the view, party 2 member 0; party 1 saw nothing.
        assert_eq!(out[0], (1, vec![0, 1]));
        assert_eq!(out[1], (0, vec![]));
        assert_eq!(out[2], (1, vec![1, 0]));
    }

    #[tokio::test]
    async fn digests_of_sent_and_received_traffic_agree_across_peers() {
        let tasks: Vec<_> = InMemoryTransport::network(3)
            .into_iter()
            .map(|t| {
                tokio::spawn(async move {
                    let d = DigestedTransport::new(&t);
                    let me = d.me() as u8;
                    for round in 1..=3u32 {
                        exchange(&d, round, |peer| [me, peer as u8, round as u8].repeat(5))
                            .await
                            .unwrap();
                    }
                    d.traffic()
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        for (a, traffic) in results.iter().enumerate() {
            assert_eq!(traffic.len(), 2);
            for t in traffic {
                let mirror = results[t.peer].iter().find(|u| u.peer == a).unwrap();
                assert_eq!(t.sent_sha256, mirror.received_sha256);
                assert_eq!((t.sent_bytes, mirror.received_bytes), (45, 45));
                // Different directions carry different messages, so different digests.
                assert_ne!(t.sent_sha256, t.received_sha256);
            }
        }
    }

    #[tokio::test]
    async fn exchange_delivers_and_counts() {
        let results = run_in_memory(3, DEFAULT_MAX_MESSAGE, |t| async move {
            let got = exchange(&t, 0, |peer| vec![t.me() as u8, peer as u8, 7]).await;
            (got, t.counters().snapshot())
        })
        .await
        .unwrap();
        for (me, (got, counters)) in results.into_iter().enumerate() {
            for (peer, msg) in got.unwrap().into_iter().enumerate() {
                if peer == me {
                    assert!(msg.is_none());
                } else {
                    assert_eq!(msg.unwrap(), vec![peer as u8, me as u8, 7]);
                }
            }
            assert_eq!(counters.rounds, 1);
            assert_eq!(counters.bytes_sent, 6);
            assert_eq!(counters.bytes_received, 6);
            assert_eq!(counters.messages_sent, 2);
        }
    }

    #[tokio::test]
    async fn oversized_wrong_round_and_disconnect_are_errors() {
        let mut net = InMemoryTransport::network_with_limit(2, 4);
        assert!(matches!(
            net[0].send(1, 0, vec![0; 5]).await,
            Err(TransportError::MessageTooLarge { len: 5, max: 4, .. })
        ));
        net[0].send(1, 3, vec![1]).await.unwrap();
        assert_eq!(
            net[1].recv(0, 2).await,
            Err(TransportError::UnexpectedRound {
                peer: 0,
                expected: 2,
                got: 3
            })
        );
        assert!(matches!(
            net[0].send(0, 0, vec![]).await,
            Err(TransportError::UnknownPeer { peer: 0 })
        ));
        let p1 = net.pop().unwrap();
        drop(net);
        assert_eq!(
            p1.recv(0, 0).await,
            Err(TransportError::PeerDisconnected { peer: 0 })
        );
    }
}
