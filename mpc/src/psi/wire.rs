//! The PSI protocols' fixed-flow messages as typed values: the two-party header ([`Header`])
//! and streaming batch ([`Batch`]), and the multi-party header round ([`MultiHeader`],
//! [`HeaderRound`]).
//!
//! Each message is encoded and decoded here alone, synchronously, and tested message by
//! message. Decoding checks what a peer declares — lengths, counts, the protocol version, the
//! set size bound — and that it agrees with this party's own parameters, before the driver
//! ([`super::run`], [`super::multi::run`]) uses any of it.

use super::multi::{MultiPsiMode, MultiPsiParams};
use super::{MAX_SET, POINT_LEN, PsiParams};
use crate::MpcError;
use crate::transport::PartyIndex;

/// Version byte of both headers.
pub const VERSION: u8 = 1;
/// Length of the two-party header.
pub const HEADER_LEN: usize = 16;
/// Length of the multi-party header.
pub const MULTI_HEADER_LEN: usize = 28;
/// Bytes of a count in a batch.
const COUNT_LEN: usize = 4;

/// The two-party header: version, mode, tag length, set size and batch size.
///
/// Layout (16 bytes): `version ‖ mode ‖ tag_len ‖ 0 ‖ set_size u64 LE ‖ batch u32 LE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Who learns what ([`super::PsiMode`]'s code).
    pub mode: u8,
    /// Bytes per tag.
    pub tag_len: u8,
    /// How many ids the sender has.
    pub set_size: u64,
    /// The sender's points per batch.
    pub batch: u32,
}

impl Header {
    /// This party's header for `params` and its `set_size` ids.
    #[must_use]
    pub fn ours(params: &PsiParams<'_>, set_size: u64) -> Self {
        Self {
            mode: params.mode.code(),
            tag_len: u8::try_from(params.tag_len).unwrap_or(u8::MAX),
            set_size,
            batch: u32::try_from(params.batch).unwrap_or(u32::MAX),
        }
    }

    /// The 16 bytes on the wire.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(HEADER_LEN);
        h.extend_from_slice(&[VERSION, self.mode, self.tag_len, 0]);
        h.extend_from_slice(&self.set_size.to_le_bytes());
        h.extend_from_slice(&self.batch.to_le_bytes());
        h
    }

    /// Reads peer `from`'s header (sent in `round`) and checks it agrees with `ours` and
    /// declares at most `max_set` ids (capped at 2^32).
    ///
    /// # Errors
    /// [`MpcError::MalformedMessage`] for the wrong length, a reserved byte not 0 or a batch
    /// size of 0;
    /// [`MpcError::ProtocolMismatch`] for another version, mode or tag length;
    /// [`MpcError::OverLimit`] for a set above the limit.
    pub fn decode(
        msg: &[u8],
        ours: &Self,
        max_set: u64,
        from: PartyIndex,
        round: u32,
    ) -> Result<Self, MpcError> {
        let malformed = |what| MpcError::MalformedMessage { from, round, what };
        let mismatch = |what| MpcError::ProtocolMismatch { from, what };
        let msg: &[u8; HEADER_LEN] = msg
            .try_into()
            .map_err(|_| malformed("PSI header has the wrong length"))?;
        let [version, mode, tag_len, reserved, rest @ ..] = *msg;
        let (set_size, batch) = rest.split_at(8);
        let set_size = u64::from_le_bytes(set_size.try_into().map_err(|_| malformed("header"))?);
        let batch = u32::from_le_bytes(batch.try_into().map_err(|_| malformed("header"))?);
        if version != VERSION {
            return Err(mismatch("PSI protocol version"));
        }
        if mode != ours.mode {
            return Err(mismatch("PSI mode (who learns what)"));
        }
        if tag_len != ours.tag_len {
            return Err(mismatch("PSI tag length"));
        }
        // One encoding per header: the traffic digests in the audit logs commit to these bytes.
        if reserved != 0 {
            return Err(malformed("PSI header's reserved byte is not 0"));
        }
        check_set_size(set_size, max_set, from)?;
        if batch == 0 {
            return Err(malformed("PSI batch size 0"));
        }
        Ok(Self {
            mode,
            tag_len,
            set_size,
            batch,
        })
    }
}

/// One streaming message of the two-party PSI: a batch of the sender's blinded points and the
/// tags of the receiver's previous batch, each behind a 4-byte count.
///
/// Layout: `points u32 LE ‖ 32·points bytes ‖ tags u32 LE ‖ tag_len·tags bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch<'a> {
    /// The points, 32 bytes each.
    pub points: &'a [u8],
    /// The tags, `tag_len` bytes each.
    pub tags: &'a [u8],
}

impl<'a> Batch<'a> {
    /// The bytes on the wire for `points` and the first `tag_len` bytes (little-endian) of
    /// each of `tags`.
    #[must_use]
    pub fn encode(points: &[[u8; POINT_LEN]], tags: &[u128], tag_len: usize) -> Vec<u8> {
        let tag_len = tag_len.min(16);
        let mut out =
            Vec::with_capacity(2 * COUNT_LEN + points.len() * POINT_LEN + tags.len() * tag_len);
        out.extend_from_slice(&count(points.len()).to_le_bytes());
        points.iter().for_each(|p| out.extend_from_slice(p));
        out.extend_from_slice(&count(tags.len()).to_le_bytes());
        tags.iter()
            .for_each(|t| out.extend_from_slice(&t.to_le_bytes()[..tag_len]));
        out
    }

    /// Reads peer `from`'s message of `round`, which must hold exactly `points` points and
    /// `tags` tags of `tag_len` bytes.
    ///
    /// # Errors
    /// [`MpcError::MalformedMessage`] for a truncated message, another count of points or tags,
    /// or bytes beyond the last tag.
    pub fn decode(
        msg: &'a [u8],
        points: usize,
        tags: usize,
        tag_len: usize,
        from: PartyIndex,
        round: u32,
    ) -> Result<Self, MpcError> {
        let bad = |what| MpcError::MalformedMessage { from, round, what };
        let count_at = |at: usize| -> Result<usize, MpcError> {
            let b = msg
                .get(at..at.saturating_add(COUNT_LEN))
                .ok_or(bad("PSI batch truncated"))?;
            let b: [u8; COUNT_LEN] = b.try_into().map_err(|_| bad("PSI batch truncated"))?;
            Ok(u32::from_le_bytes(b) as usize)
        };
        if count_at(0)? != points {
            return Err(bad("PSI batch has the wrong number of points"));
        }
        let p_end = points
            .checked_mul(POINT_LEN)
            .and_then(|b| b.checked_add(COUNT_LEN))
            .ok_or(bad("PSI batch has the wrong number of points"))?;
        if count_at(p_end)? != tags {
            return Err(bad("PSI batch has the wrong number of tags"));
        }
        let t_end = tags
            .checked_mul(tag_len)
            .and_then(|b| b.checked_add(p_end + COUNT_LEN))
            .ok_or(bad("PSI batch has the wrong number of tags"))?;
        if msg.len() != t_end {
            return Err(bad("PSI batch has the wrong length"));
        }
        Ok(Self {
            points: &msg[COUNT_LEN..p_end],
            tags: &msg[p_end + COUNT_LEN..t_end],
        })
    }
}

/// A count on the wire (batches are bounded far below 2^32 by the message limit).
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The multi-party header: version, mode, set size, batch size and party count.
///
/// Layout (28 bytes): `version ‖ kind ‖ 0 ‖ 0 ‖ who u64 LE ‖ set_size u64 LE ‖ batch u32 LE ‖
/// parties u32 LE`, where `(kind, who)` is the mode (1 and the receivers' bit set, or 2 and the
/// receiver's index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiHeader {
    /// The mode's kind byte.
    pub kind: u8,
    /// The mode's receivers.
    pub who: u64,
    /// How many ids the sender has.
    pub set_size: u64,
    /// Points per list per message.
    pub batch: u32,
    /// Parties of the run.
    pub parties: u32,
}

impl MultiHeader {
    /// This party's header for `params`, `parties` parties and its `set_size` ids.
    #[must_use]
    pub fn ours(params: &MultiPsiParams<'_>, parties: usize, set_size: u64) -> Self {
        let (kind, who) = mode_code(params.mode);
        Self {
            kind,
            who,
            set_size,
            batch: u32::try_from(params.batch).unwrap_or(u32::MAX),
            parties: u32::try_from(parties).unwrap_or(u32::MAX),
        }
    }

    /// The 28 bytes on the wire.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(MULTI_HEADER_LEN);
        h.extend_from_slice(&[VERSION, self.kind, 0, 0]);
        h.extend_from_slice(&self.who.to_le_bytes());
        h.extend_from_slice(&self.set_size.to_le_bytes());
        h.extend_from_slice(&self.batch.to_le_bytes());
        h.extend_from_slice(&self.parties.to_le_bytes());
        h
    }

    /// Reads peer `from`'s header (sent in `round`) and checks it agrees with `ours` and
    /// declares at most `max_set` ids (capped at 2^32).
    ///
    /// # Errors
    /// [`MpcError::MalformedMessage`] for the wrong length; [`MpcError::ProtocolMismatch`] for
    /// another version, mode, batch size or party count; [`MpcError::OverLimit`] for a set
    /// above the limit.
    pub fn decode(
        msg: &[u8],
        ours: &Self,
        max_set: u64,
        from: PartyIndex,
        round: u32,
    ) -> Result<Self, MpcError> {
        let malformed = |what| MpcError::MalformedMessage { from, round, what };
        let mismatch = |what| MpcError::ProtocolMismatch { from, what };
        let msg: &[u8; MULTI_HEADER_LEN] = msg
            .try_into()
            .map_err(|_| malformed("PSI header has the wrong length"))?;
        let word = |at: usize, len: usize| -> u64 {
            let mut b = [0u8; 8];
            b[..len].copy_from_slice(&msg[at..at + len]);
            u64::from_le_bytes(b)
        };
        let got = Self {
            kind: msg[1],
            who: word(4, 8),
            set_size: word(12, 8),
            batch: u32::try_from(word(20, 4)).unwrap_or(u32::MAX),
            parties: u32::try_from(word(24, 4)).unwrap_or(u32::MAX),
        };
        if msg[0] != VERSION {
            return Err(mismatch("PSI protocol version"));
        }
        if msg[2..4] != [0, 0] || (got.kind, got.who) != (ours.kind, ours.who) {
            return Err(mismatch("PSI mode (who learns what)"));
        }
        if got.batch != ours.batch {
            return Err(mismatch("PSI batch size"));
        }
        if got.parties != ours.parties {
            return Err(mismatch("number of PSI parties"));
        }
        check_set_size(got.set_size, max_set, from)?;
        Ok(got)
    }
}

/// Refuses a declared set above `max_set` (capped at 2^32).
fn check_set_size(declared: u64, max_set: u64, from: PartyIndex) -> Result<(), MpcError> {
    let limit = max_set.min(MAX_SET);
    if declared > limit {
        return Err(MpcError::OverLimit {
            from,
            what: "ids in its PSI set",
            declared,
            limit,
        });
    }
    Ok(())
}

fn mode_code(mode: MultiPsiMode) -> (u8, u64) {
    match mode {
        MultiPsiMode::IntersectionTo(r) => (1, r.bits()),
        MultiPsiMode::CardinalityTo(r) => (2, r as u64),
    }
}

/// The multi-party header round at one party: it has sent its header to every peer and
/// collects theirs, one message at a time, learning every party's set size.
#[derive(Debug)]
pub struct HeaderRound {
    me: PartyIndex,
    round: u32,
    ours: MultiHeader,
    max_set: u64,
    sizes: Vec<Option<u64>>,
}

impl HeaderRound {
    /// Party `me` of `parties`, with `set_size` ids, starts the header round (`round` of its
    /// channel); returns the round and the message to send every peer.
    #[must_use]
    pub fn start(
        params: &MultiPsiParams<'_>,
        parties: usize,
        me: PartyIndex,
        set_size: u64,
        round: u32,
    ) -> (Self, Vec<u8>) {
        let ours = MultiHeader::ours(params, parties, set_size);
        let mut sizes = vec![None; parties];
        if let Some(own) = sizes.get_mut(me) {
            *own = Some(set_size);
        }
        let msg = ours.encode();
        (
            Self {
                me,
                round,
                ours,
                max_set: params.max_peer_set,
                sizes,
            },
            msg,
        )
    }

    /// Takes peer `from`'s header.
    ///
    /// # Errors
    /// [`MultiHeader::decode`]'s, and [`MpcError::MalformedMessage`] for a header from this
    /// party itself, from no party of the run, or a second one from the same peer.
    pub fn receive(&mut self, from: PartyIndex, msg: &[u8]) -> Result<(), MpcError> {
        let malformed = |what| MpcError::MalformedMessage {
            from,
            round: self.round,
            what,
        };
        if from == self.me {
            return Err(malformed("a PSI header from this party itself"));
        }
        match self.sizes.get(from) {
            None => return Err(malformed("a PSI header from no party of the run")),
            Some(Some(_)) => return Err(malformed("a second PSI header")),
            Some(None) => {}
        }
        let header = MultiHeader::decode(msg, &self.ours, self.max_set, from, self.round)?;
        if let Some(slot) = self.sizes.get_mut(from) {
            *slot = Some(header.set_size);
        }
        Ok(())
    }

    /// Every party's set size, by index, once each peer's header has arrived.
    ///
    /// # Errors
    /// [`MpcError::MalformedMessage`] naming the first peer whose header is missing.
    pub fn finish(self) -> Result<Vec<u64>, MpcError> {
        let round = self.round;
        self.sizes
            .into_iter()
            .enumerate()
            .map(|(from, s)| {
                s.ok_or(MpcError::MalformedMessage {
                    from,
                    round,
                    what: "no PSI header",
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::multi::PartySet;
    use super::super::{DEFAULT_MAX_PEER_SET, PsiMode};
    use super::*;

    fn pair_params() -> PsiParams<'static> {
        PsiParams::new("j", PsiMode::IntersectionToBoth)
    }

    #[test]
    fn a_header_reads_back_and_every_disagreement_is_named() {
        let p = pair_params();
        let ours = Header::ours(&p, 5);
        let theirs = Header::ours(&p, 1 << 20);
        let bytes = theirs.encode();
        assert_eq!(bytes.len(), HEADER_LEN);
        assert_eq!(
            Header::decode(&bytes, &ours, u64::MAX, 1, 0).unwrap(),
            theirs
        );
        let with = |at: usize, v: u8| {
            let mut b = bytes.clone();
            b[at] = v;
            Header::decode(&b, &ours, u64::MAX, 1, 0)
        };
        let mismatch = |r: Result<Header, MpcError>| match r {
            Err(MpcError::ProtocolMismatch { from: 1, what }) => what,
            other => panic!("expected a mismatch, got {other:?}"),
        };
        assert_eq!(mismatch(with(0, 2)), "PSI protocol version");
        assert_eq!(mismatch(with(1, 0x11)), "PSI mode (who learns what)");
        assert_eq!(mismatch(with(2, 13)), "PSI tag length");
        let malformed = |r: Result<Header, MpcError>| match r {
            Err(MpcError::MalformedMessage { from: 1, what, .. }) => what,
            other => panic!("expected a malformed message, got {other:?}"),
        };
        assert_eq!(
            malformed(Header::decode(&bytes[..15], &ours, u64::MAX, 1, 0)),
            "PSI header has the wrong length"
        );
        assert_eq!(
            malformed(Header::decode(
                &[bytes.as_slice(), &[0]].concat(),
                &ours,
                u64::MAX,
                1,
                0
            )),
            "PSI header has the wrong length"
        );
        let huge = Header {
            set_size: MAX_SET + 1,
            ..theirs
        };
        let over = |r: Result<Header, MpcError>| match r {
            Err(MpcError::OverLimit {
                from: 1,
                declared,
                limit,
                ..
            }) => (declared, limit),
            other => panic!("expected an over-limit refusal, got {other:?}"),
        };
        assert_eq!(
            over(Header::decode(&huge.encode(), &ours, u64::MAX, 1, 0)),
            (MAX_SET + 1, MAX_SET)
        );
        // This party's own limit: its bound passes, one more id does not.
        assert!(Header::decode(&bytes, &ours, 1 << 20, 1, 0).is_ok());
        assert_eq!(
            over(Header::decode(&bytes, &ours, (1 << 20) - 1, 1, 0)),
            (1 << 20, (1 << 20) - 1)
        );
        // Found by the psi_wire fuzz target: a header with its reserved byte set was accepted.
        let mut reserved = bytes.clone();
        reserved[3] = 51;
        assert_eq!(
            malformed(Header::decode(&reserved, &ours, u64::MAX, 1, 0)),
            "PSI header's reserved byte is not 0"
        );
        let empty_batch = Header { batch: 0, ..theirs };
        assert_eq!(
            malformed(Header::decode(&empty_batch.encode(), &ours, u64::MAX, 1, 0)),
            "PSI batch size 0"
        );
        // The peer's batch size is its own: another one is fine.
        let other_batch = Header { batch: 7, ..theirs };
        assert_eq!(
            Header::decode(&other_batch.encode(), &ours, u64::MAX, 1, 0).unwrap(),
            other_batch
        );
    }

    #[test]
    fn a_batch_reads_back_with_exactly_its_counts() {
        let points = [[1u8; POINT_LEN], [2u8; POINT_LEN]];
        let tags = [0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10u128];
        let bytes = Batch::encode(&points, &tags, 12);
        assert_eq!(bytes.len(), 4 + 64 + 4 + 12);
        let b = Batch::decode(&bytes, 2, 1, 12, 0, 3).unwrap();
        assert_eq!(b.points, [[1u8; 32], [2u8; 32]].concat());
        assert_eq!(b.tags, &tags[0].to_le_bytes()[..12]);
        let malformed = |r: Result<Batch<'_>, MpcError>| match r {
            Err(MpcError::MalformedMessage {
                from: 0,
                round: 3,
                what,
            }) => what,
            other => panic!("expected a malformed message, got {other:?}"),
        };
        assert_eq!(
            malformed(Batch::decode(&bytes, 3, 1, 12, 0, 3)),
            "PSI batch has the wrong number of points"
        );
        assert_eq!(
            malformed(Batch::decode(&bytes, 2, 0, 12, 0, 3)),
            "PSI batch has the wrong number of tags"
        );
        assert_eq!(
            malformed(Batch::decode(&bytes[..bytes.len() - 1], 2, 1, 12, 0, 3)),
            "PSI batch has the wrong length"
        );
        assert_eq!(
            malformed(Batch::decode(&bytes[..40], 2, 1, 12, 0, 3)),
            "PSI batch truncated"
        );
        assert_eq!(
            malformed(Batch::decode(&[], 0, 0, 12, 0, 3)),
            "PSI batch truncated"
        );
        // A count the peer inflates does not make the reader allocate or read past the end.
        let mut lying = bytes.clone();
        lying[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            malformed(Batch::decode(&lying, 2, 1, 12, 0, 3)),
            "PSI batch has the wrong number of points"
        );
        let empty = Batch::encode(&[], &[], 12);
        assert_eq!(empty, [0u8; 8]);
        assert_eq!(
            Batch::decode(&empty, 0, 0, 12, 1, 0).unwrap(),
            Batch {
                points: &[],
                tags: &[]
            }
        );
    }

    fn multi_params() -> MultiPsiParams<'static> {
        MultiPsiParams::new(
            "j",
            MultiPsiMode::IntersectionTo(PartySet::new(&[0, 2]).unwrap()),
        )
    }

    #[test]
    fn three_parties_learn_every_set_size_message_by_message() {
        let p = multi_params();
        let (mut r, msg) = HeaderRound::start(&p, 3, 1, 20, 0);
        assert_eq!(msg.len(), MULTI_HEADER_LEN);
        r.receive(0, &MultiHeader::ours(&p, 3, 10).encode())
            .unwrap();
        r.receive(2, &MultiHeader::ours(&p, 3, 30).encode())
            .unwrap();
        assert_eq!(r.finish().unwrap(), [10, 20, 30]);
    }

    #[test]
    fn a_multi_header_that_disagrees_repeats_strays_or_is_missing_is_refused() {
        let p = multi_params();
        let good = MultiHeader::ours(&p, 3, 10);
        let (mut r, own) = HeaderRound::start(&p, 3, 0, 5, 7);
        let mismatch = |r: Result<(), MpcError>| match r {
            Err(MpcError::ProtocolMismatch { from: 1, what }) => what,
            other => panic!("expected a mismatch, got {other:?}"),
        };
        let mut other_mode = good;
        other_mode.who = PartySet::new(&[1, 2]).unwrap().bits();
        assert_eq!(
            mismatch(r.receive(1, &other_mode.encode())),
            "PSI mode (who learns what)"
        );
        let cardinality = MultiHeader {
            kind: 2,
            who: 2,
            ..good
        };
        assert_eq!(
            mismatch(r.receive(1, &cardinality.encode())),
            "PSI mode (who learns what)"
        );
        assert_eq!(
            mismatch(r.receive(1, &MultiHeader { batch: 8, ..good }.encode())),
            "PSI batch size"
        );
        assert_eq!(
            mismatch(r.receive(1, &MultiHeader { parties: 4, ..good }.encode())),
            "number of PSI parties"
        );
        let mut v2 = good.encode();
        v2[0] = 2;
        assert_eq!(mismatch(r.receive(1, &v2)), "PSI protocol version");
        let malformed = |r: Result<(), MpcError>| match r {
            Err(MpcError::MalformedMessage {
                from,
                round: 7,
                what,
            }) => (from, what),
            other => panic!("expected a malformed message, got {other:?}"),
        };
        assert_eq!(
            malformed(r.receive(1, &good.encode()[..27])),
            (1, "PSI header has the wrong length")
        );
        let huge = MultiHeader {
            set_size: MAX_SET + 1,
            ..good
        };
        assert!(matches!(
            r.receive(1, &huge.encode()),
            Err(MpcError::OverLimit { from: 1, declared, limit, .. })
                if declared == MAX_SET + 1 && limit == DEFAULT_MAX_PEER_SET
        ));
        assert_eq!(
            malformed(r.receive(0, &own)),
            (0, "a PSI header from this party itself")
        );
        assert_eq!(
            malformed(r.receive(3, &good.encode())),
            (3, "a PSI header from no party of the run")
        );
        r.receive(1, &good.encode()).unwrap();
        assert_eq!(
            malformed(r.receive(1, &good.encode())),
            (1, "a second PSI header")
        );
        assert_eq!(malformed(r.finish().map(|_| ())), (2, "no PSI header"));
    }
}
