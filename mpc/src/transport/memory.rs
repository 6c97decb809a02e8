//! [`InMemoryTransport`]: all parties in one process, for tests and benches.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};

use super::{Channel, Link, PartyIndex, Tag, TransportError};

type Envelope = (Tag, Vec<u8>);

/// A [`Link`] between parties in one process, over unbounded channels. For tests and benches.
pub struct InMemoryTransport {
    me: PartyIndex,
    senders: Vec<Option<mpsc::UnboundedSender<Envelope>>>,
    receivers: Vec<Option<Mutex<mpsc::UnboundedReceiver<Envelope>>>>,
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
    /// The links of a fully connected network of `n` parties, by party.
    pub fn network(n: usize) -> Vec<Self> {
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
                senders,
                receivers,
            })
            .collect()
    }

    /// The root [`Channel`]s of a fully connected network of `n` parties accepting messages of
    /// at most `max_message` bytes, by party.
    pub fn channels(n: usize, max_message: usize) -> Vec<Channel> {
        Self::network(n)
            .into_iter()
            .map(|link| Channel::new(Arc::new(link), max_message))
            .collect()
    }
}

impl Link for InMemoryTransport {
    fn me(&self) -> PartyIndex {
        self.me
    }

    fn parties(&self) -> usize {
        self.senders.len()
    }

    async fn send(&self, to: PartyIndex, tag: Tag, msg: Vec<u8>) -> Result<(), TransportError> {
        let tx = self
            .senders
            .get(to)
            .and_then(Option::as_ref)
            .ok_or(TransportError::UnknownPeer { peer: to })?;
        tx.send((tag, msg))
            .map_err(|_| TransportError::PeerDisconnected { peer: to })
    }

    /// Whole messages: `limit` is left to the channel.
    async fn recv(&self, from: PartyIndex, _limit: usize) -> Result<Envelope, TransportError> {
        let rx = self
            .receivers
            .get(from)
            .and_then(Option::as_ref)
            .ok_or(TransportError::UnknownPeer { peer: from })?;
        rx.lock()
            .await
            .recv()
            .await
            .ok_or(TransportError::PeerDisconnected { peer: from })
    }
}

/// Runs `party` for each of `n` parties concurrently over a fresh in-memory network (root
/// channels accepting messages of at most `max_message` bytes) and returns the outputs in party
/// order. A panicking party is reported as an error naming it.
pub async fn run_in_memory<F, Fut, O>(
    n: usize,
    max_message: usize,
    party: F,
) -> Result<Vec<O>, TransportError>
where
    F: Fn(Channel) -> Fut,
    Fut: Future<Output = O> + Send + 'static,
    O: Send + 'static,
{
    let handles: Vec<_> = InMemoryTransport::channels(n, max_message)
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
