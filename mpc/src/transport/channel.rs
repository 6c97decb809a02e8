//! [`Channel`]: the one layer every protocol talks to, over any [`Link`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use super::{Counters, Link, PartyIndex, ScopeId, Tag, TransportError};

type LinkFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, TransportError>> + Send + 'a>>;

/// [`Link`] as a trait object (one boxed future per message; nothing next to a message's own
/// cost), so that channels and the protocols over them are not generic over the link.
trait DynLink: Send + Sync {
    fn send(&self, to: PartyIndex, tag: Tag, msg: Vec<u8>) -> LinkFuture<'_, ()>;
    fn recv(&self, from: PartyIndex, limit: usize) -> LinkFuture<'_, (Tag, Vec<u8>)>;
}

impl<L: Link> DynLink for L {
    fn send(&self, to: PartyIndex, tag: Tag, msg: Vec<u8>) -> LinkFuture<'_, ()> {
        Box::pin(Link::send(self, to, tag, msg))
    }
    fn recv(&self, from: PartyIndex, limit: usize) -> LinkFuture<'_, (Tag, Vec<u8>)> {
        Box::pin(Link::recv(self, from, limit))
    }
}

/// What all channels of one session share: the link, the limit, the counters, the poison flag.
struct Session {
    link: Arc<dyn DynLink>,
    max_message: usize,
    counters: Counters,
    poisoned: AtomicBool,
}

/// A scoped, size-limited, counted, self-poisoning view of a session: what protocols talk to.
///
/// - **Scope.** A channel has a path (`""` for the root, then `psi`, `psi/header`, ...) and
///   tags every message with the path's [`ScopeId`] and the channel's current round. A received
///   message must carry exactly the tag the receiving channel expects, or the receive fails with
///   [`TransportError::UnexpectedScope`] / [`TransportError::UnexpectedRound`].
/// - **Rounds** start at 0 in every channel and advance with [`Channel::end_round`] (which also
///   counts the round). A protocol sends at most one message per peer per round.
/// - **Children.** [`Channel::child`] gives a sub-protocol its own scope. Children of one parent
///   get distinct paths: the first `child("x")` is `…/x`, the next ones `…/x#1`, `…/x#2`, in
///   the order they are made. Every party makes the same children in the same order (protocols
///   are deterministic), so the paths agree; if they do not, the tag check says so.
/// - **Views.** [`Channel::among`] turns a channel into one between some of the session's
///   parties (party `k` of the view is `members[k]` of the channel).
/// - **Limit and counters.** Every message sent or received is checked against the session's
///   maximum message length and counted in the session's [`Counters`] (payload only).
/// - **Poisoning.** Any error (or [`Channel::poison`]) marks the whole session failed: the links'
///   state may be out of step with the peers', so every later operation on any channel of the
///   session fails with [`TransportError::Poisoned`] without touching the link.
///
/// Channels of one session must not be used concurrently with the same peer: links keep strict
/// order and do not demultiplex (a message for a concurrent sibling would fail the tag check).
pub struct Channel {
    session: Arc<Session>,
    path: String,
    scope: ScopeId,
    round: AtomicU32,
    children: Mutex<HashMap<&'static str, u32>>,
    /// View index → link index.
    members: Arc<[PartyIndex]>,
    /// This party's view index.
    me: PartyIndex,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("path", &self.path)
            .field("me", &self.me)
            .field("parties", &self.members.len())
            .field("round", &self.round())
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// The root channel (path `""`) of a session over `link`, accepting messages of at most
    /// `max_message` bytes. Keep a clone of `link` to reach the link itself afterwards (e.g. to
    /// close it).
    pub fn new<L: Link>(link: Arc<L>, max_message: usize) -> Self {
        let n = link.parties();
        let me = link.me();
        let session = Session {
            link,
            max_message,
            counters: Counters::default(),
            poisoned: AtomicBool::new(false),
        };
        Self::scoped(Arc::new(session), String::new(), (0..n).collect(), me)
    }

    fn scoped(
        session: Arc<Session>,
        path: String,
        members: Arc<[PartyIndex]>,
        me: PartyIndex,
    ) -> Self {
        Self {
            session,
            scope: ScopeId::of(&path),
            path,
            round: AtomicU32::new(0),
            children: Mutex::default(),
            members,
            me,
        }
    }

    /// This party's index (in this channel's view).
    pub fn me(&self) -> PartyIndex {
        self.me
    }

    /// Number of parties (in this channel's view).
    pub fn parties(&self) -> usize {
        self.members.len()
    }

    /// Largest message sent or accepted.
    pub fn max_message_len(&self) -> usize {
        self.session.max_message
    }

    /// The session's counters (shared by all its channels).
    pub fn counters(&self) -> &Counters {
        &self.session.counters
    }

    /// This channel's scope path (`""` for the root).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The current round within this channel (0 for a new channel).
    pub fn round(&self) -> u32 {
        self.round.load(Ordering::Relaxed)
    }

    /// Whether the session has failed (every operation is refused).
    pub fn is_poisoned(&self) -> bool {
        self.session.poisoned.load(Ordering::Relaxed)
    }

    /// Marks the session failed, e.g. after a malformed message that the transport could not see:
    /// every later operation of every channel of the session fails with
    /// [`TransportError::Poisoned`].
    pub fn poison(&self) {
        self.session.poisoned.store(true, Ordering::Relaxed);
    }

    /// A sub-channel for a sub-protocol, with path `<path>/<name>` (`<name>#k` for the `k`-th
    /// repeat of a name on this channel, `k ≥ 1`) and its own rounds from 0. `name` is a fixed
    /// identifier of the code (not containing `/` or `#`), never outside input.
    pub fn child(&self, name: &'static str) -> Channel {
        debug_assert!(!name.is_empty() && !name.contains(['/', '#']), "{name:?}");
        let repeat = {
            // Each update is one insert: a poisoned map is still consistent.
            let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
            let count = children.entry(name).or_insert(0);
            let k = *count;
            *count += 1;
            k
        };
        let mut path = self.path.clone();
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(name);
        if repeat > 0 {
            path.push('#');
            path.push_str(&repeat.to_string());
        }
        Self::scoped(self.session.clone(), path, self.members.clone(), self.me)
    }

    /// This channel between `members` only (distinct indices of this channel's view, this party
    /// among them): party `k` of the result is `members[k]` here. Scope and round stay; parties
    /// outside the view see no traffic. `None` if this party is not a member or an index
    /// repeats or is out of range.
    pub fn among(self, members: &[PartyIndex]) -> Option<Channel> {
        let n = self.parties();
        let distinct = members
            .iter()
            .enumerate()
            .all(|(i, m)| *m < n && !members[..i].contains(m));
        if !distinct {
            return None;
        }
        let me = members.iter().position(|&m| m == self.me)?;
        let mapped: Arc<[PartyIndex]> = members.iter().map(|&m| self.members[m]).collect();
        Some(Self {
            members: mapped,
            me,
            ..self
        })
    }

    /// Ends the current round: the next messages carry the next round number, and the session
    /// counts one round (whether or not this party sent or received in it, so that all parties'
    /// counts agree).
    pub fn end_round(&self) {
        self.round.fetch_add(1, Ordering::Relaxed);
        self.session.counters.add_round();
    }

    /// The link index of view party `k` (not this party).
    fn link_index(&self, k: PartyIndex) -> Result<PartyIndex, TransportError> {
        match self.members.get(k) {
            Some(&p) if k != self.me => Ok(p),
            _ => Err(TransportError::UnknownPeer { peer: k }),
        }
    }

    /// Runs `op` unless the session is poisoned; poisons it if `op` fails.
    async fn guarded<T>(
        &self,
        op: impl Future<Output = Result<T, TransportError>>,
    ) -> Result<T, TransportError> {
        if self.is_poisoned() {
            return Err(TransportError::Poisoned);
        }
        let out = op.await;
        if out.is_err() {
            self.poison();
        }
        out
    }

    fn tag(&self) -> Tag {
        Tag {
            scope: self.scope,
            round: self.round(),
        }
    }

    /// Sends `msg` to party `to` as this channel's message of the current round.
    ///
    /// # Errors
    /// [`TransportError::MessageTooLarge`] above the session's limit (nothing is sent),
    /// [`TransportError::UnknownPeer`], the link's errors, [`TransportError::Poisoned`].
    pub async fn send(&self, to: PartyIndex, msg: Vec<u8>) -> Result<(), TransportError> {
        self.guarded(async {
            let peer = self.link_index(to)?;
            let max = self.session.max_message;
            if msg.len() > max {
                return Err(TransportError::MessageTooLarge {
                    peer,
                    len: msg.len(),
                    max,
                });
            }
            let len = msg.len();
            self.session.link.send(peer, self.tag(), msg).await?;
            self.session.counters.add_sent(len);
            Ok(())
        })
        .await
    }

    /// Receives party `from`'s message of this channel's current round.
    ///
    /// # Errors
    /// [`TransportError::MessageTooLarge`] above the session's limit,
    /// [`TransportError::UnexpectedScope`] for a message of another channel,
    /// [`TransportError::UnexpectedRound`] for one of another round of this channel,
    /// [`TransportError::UnknownPeer`], the link's errors, [`TransportError::Poisoned`].
    pub async fn recv(&self, from: PartyIndex) -> Result<Vec<u8>, TransportError> {
        self.guarded(async {
            let peer = self.link_index(from)?;
            let max = self.session.max_message;
            let (tag, msg) = self.session.link.recv(peer, max).await?;
            if msg.len() > max {
                return Err(TransportError::MessageTooLarge {
                    peer,
                    len: msg.len(),
                    max,
                });
            }
            let expected = self.tag();
            if tag.scope != expected.scope {
                return Err(TransportError::UnexpectedScope {
                    peer,
                    expected: self.path.clone(),
                    got: tag.scope.0,
                });
            }
            if tag.round != expected.round {
                return Err(TransportError::UnexpectedRound {
                    peer,
                    expected: expected.round,
                    got: tag.round,
                });
            }
            self.session.counters.add_received(msg.len());
            Ok(msg)
        })
        .await
    }
}

/// One round with every peer of `channel`: sends `msg_for(peer)` to each, then receives one
/// message from each, then ends the round. Returns the received messages indexed by party
/// (`None` at this party's own index).
pub async fn exchange(
    channel: &Channel,
    mut msg_for: impl FnMut(PartyIndex) -> Vec<u8>,
) -> Result<Vec<Option<Vec<u8>>>, TransportError> {
    let me = channel.me();
    let n = channel.parties();
    for peer in (0..n).filter(|&p| p != me) {
        channel.send(peer, msg_for(peer)).await?;
    }
    let mut received = vec![None; n];
    for (peer, slot) in received.iter_mut().enumerate() {
        if peer != me {
            *slot = Some(channel.recv(peer).await?);
        }
    }
    channel.end_round();
    Ok(received)
}
