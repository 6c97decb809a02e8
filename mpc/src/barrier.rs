//! The release barrier: nobody releases (uploads its sealed share) until every party of the
//! job has sealed its own, so a party that fails mid-protocol leaves no share anywhere.
//!
//! One round: each party sends every peer the 32-byte digest of what it is about to release
//! and waits for every peer's. The core ([`Barrier`]) is synchronous and typed — it takes the
//! peers' messages one by one and refuses a malformed, repeated or stray one — and [`run`]
//! drives it over a [`Channel`].

use crate::MpcError;
use crate::transport::{Channel, PartyIndex, exchange};

/// Length of a barrier message: a SHA-256 digest.
pub const DIGEST_LEN: usize = 32;

/// A party waiting at the barrier: it has sent its digest and collects the peers'.
#[derive(Debug)]
pub struct Barrier {
    me: PartyIndex,
    received: Vec<Option<[u8; DIGEST_LEN]>>,
}

/// A passed barrier: every peer's digest, by party index (this party's own at its index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    /// The digests, one per party.
    pub digests: Vec<[u8; DIGEST_LEN]>,
}

impl Barrier {
    /// Party `me` of `parties` arrives with `digest`; returns the waiting barrier and the
    /// message to send every peer.
    #[must_use]
    pub fn arrive(
        me: PartyIndex,
        parties: usize,
        digest: [u8; DIGEST_LEN],
    ) -> (Self, [u8; DIGEST_LEN]) {
        let mut received = vec![None; parties];
        if let Some(own) = received.get_mut(me) {
            *own = Some(digest);
        }
        (Self { me, received }, digest)
    }

    /// Takes peer `from`'s message.
    ///
    /// # Errors
    /// [`MpcError::MalformedMessage`] for a message that is not one digest, from this party
    /// itself or from no party of the session, or a second one from the same peer.
    pub fn receive(&mut self, from: PartyIndex, msg: &[u8]) -> Result<(), MpcError> {
        let malformed = |what| MpcError::MalformedMessage {
            from,
            round: 0,
            what,
        };
        if from == self.me {
            return Err(malformed("a barrier message from this party itself"));
        }
        let slot = self
            .received
            .get_mut(from)
            .ok_or(malformed("a barrier message from no party of the session"))?;
        if slot.is_some() {
            return Err(malformed("a second barrier message"));
        }
        let digest: [u8; DIGEST_LEN] = msg
            .try_into()
            .map_err(|_| malformed("barrier digest is not 32 bytes"))?;
        *slot = Some(digest);
        Ok(())
    }

    /// Leaves the barrier once every peer's digest has arrived.
    ///
    /// # Errors
    /// [`MpcError::MalformedMessage`] naming the first peer whose digest is missing.
    pub fn pass(self) -> Result<Passed, MpcError> {
        let mut digests = Vec::with_capacity(self.received.len());
        for (from, d) in self.received.into_iter().enumerate() {
            digests.push(d.ok_or(MpcError::MalformedMessage {
                from,
                round: 0,
                what: "no barrier message",
            })?);
        }
        Ok(Passed { digests })
    }
}

/// Runs the barrier on `channel` (one round with every peer) with this party's `digest`.
///
/// # Errors
/// The transport's errors, or the core's refusal of a peer's message.
pub async fn run(channel: &Channel, digest: [u8; DIGEST_LEN]) -> Result<Passed, MpcError> {
    let (mut barrier, msg) = Barrier::arrive(channel.me(), channel.parties(), digest);
    let got = exchange(channel, |_| msg.to_vec()).await?;
    for (from, m) in got.iter().enumerate() {
        if let Some(m) = m {
            barrier.receive(from, m)?;
        }
    }
    barrier.pass()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{DEFAULT_MAX_MESSAGE, run_in_memory};

    fn malformed(r: Result<(), MpcError>) -> (usize, &'static str) {
        match r {
            Err(MpcError::MalformedMessage { from, what, .. }) => (from, what),
            other => panic!("expected a malformed message, got {other:?}"),
        }
    }

    #[test]
    fn three_parties_pass_message_by_message() {
        let (mut b, msg) = Barrier::arrive(1, 3, [1; 32]);
        assert_eq!(msg, [1; 32]);
        b.receive(0, &[0; 32]).unwrap();
        b.receive(2, &[2; 32]).unwrap();
        assert_eq!(b.pass().unwrap().digests, [[0; 32], [1; 32], [2; 32]]);
    }

    #[test]
    fn a_malformed_repeated_or_stray_message_is_refused() {
        let (mut b, _) = Barrier::arrive(0, 3, [0; 32]);
        assert_eq!(
            malformed(b.receive(1, &[1; 31])),
            (1, "barrier digest is not 32 bytes")
        );
        assert_eq!(
            malformed(b.receive(1, &[1; 33])),
            (1, "barrier digest is not 32 bytes")
        );
        assert_eq!(
            malformed(b.receive(0, &[0; 32])),
            (0, "a barrier message from this party itself")
        );
        assert_eq!(
            malformed(b.receive(3, &[3; 32])),
            (3, "a barrier message from no party of the session")
        );
        b.receive(1, &[1; 32]).unwrap();
        assert_eq!(
            malformed(b.receive(1, &[9; 32])),
            (1, "a second barrier message")
        );
    }

    #[test]
    fn a_missing_peer_keeps_the_barrier_closed() {
        let (mut b, _) = Barrier::arrive(0, 3, [0; 32]);
        b.receive(2, &[2; 32]).unwrap();
        assert_eq!(malformed(b.pass().map(|_| ())), (1, "no barrier message"));
    }

    #[tokio::test]
    async fn every_party_learns_every_digest_in_one_round() {
        let out = run_in_memory(3, DEFAULT_MAX_MESSAGE, |root| async move {
            let ch = root.child("barrier");
            let me = u8::try_from(ch.me()).unwrap();
            let passed = run(&ch, [me; 32]).await.unwrap();
            (passed, ch.counters().snapshot())
        })
        .await
        .unwrap();
        for (passed, c) in out {
            assert_eq!(passed.digests, [[0; 32], [1; 32], [2; 32]]);
            assert_eq!((c.rounds, c.bytes_sent, c.bytes_received), (1, 64, 64));
        }
    }
}
