//! Two-party private set intersection by ECDH on Ristretto255 (the Meadows / Huberman–Franklin–Hogg
//! protocol, as in SecretFlow's ECDH-PSI), streamed in bounded batches.
//!
//! ```text
//!   party A (ids X, secret a)                         party B (ids Y, secret b)
//!   shuffle X; a·H(x) ──────── batches of 32-byte points ───────► b·(a·H(x))  → tags of X
//!   a·(b·H(y)) ◄──────── batches of 32-byte points ──────── b·H(y); shuffle Y
//!   tags of Y  ─────── truncated tags, in B's order (if B learns) ─────►
//!              ◄────── truncated tags, in A's order (if A learns) ──────
//! ```
//!
//! `H` hashes an id to Ristretto255 (SHA-512 and the Elligator-based `from_hash`), domain-separated
//! by the job id. Each party draws a fresh secret exponent per job (`PsiKey`, zeroized on
//! drop). A *tag* is the first `tag_len` bytes of `compress(a·b·H(id))`; an id is in the intersection
//! iff its tag is among the other side's tags (false positives with probability at most
//! `|X|·|Y| / 2^(8·tag_len)`: below `2^−49` for 10^7 × 10^7 ids at the default 12 bytes).
//!
//! # Rounds
//! One header round (protocol version, mode, tag length, set size, batch size; both sides check
//! they agree), then `K + 1` rounds for `K = max(⌈|X|/batch⌉, ⌈|Y|/batch⌉)`: in round `k` each
//! party sends its blinded batch `k` and, if the peer learns the intersection, the tags of the
//! peer's batch `k − 1` (re-blinded in the previous round), so blinding, re-blinding and the
//! network overlap across the two parties. [`PsiMode::CardinalityTo`] adds `⌈|R|/batch⌉` rounds in
//! which the other party returns the receiver's tags **sorted** (never in the receiver's order).
//! Memory is bounded by the tags kept (`16` bytes per id in a `Vec<u128>`) plus one batch.
//!
//! The header and the streaming messages are typed values ([`wire::Header`], [`wire::Batch`]),
//! decoded and checked synchronously, and tested message by message in [`wire`].
//!
//! # What each party learns (semi-honest; under the DDH assumption in the random-oracle model)
//! - [`PsiMode::IntersectionTo`]`(r)`: `r` learns which of its ids are in the intersection and the
//!   other set's size; the other party learns `r`'s set size only.
//! - [`PsiMode::IntersectionToBoth`]: both learn the intersection (and both sizes).
//! - [`PsiMode::CardinalityTo`]`(r)`: `r` learns `|X ∩ Y|` and the other set's size, not which ids;
//!   the other party learns `r`'s set size only.
//!
//! Points are sent in a uniformly shuffled order, so positions carry nothing; a received point that
//! does not decode (or is the identity) aborts the protocol naming its sender and position.
//!
//! # Alignment
//! The intersection is returned ordered by tag: both parties of [`PsiMode::IntersectionToBoth`]
//! hold the same tags for the same ids, so `matched[j]` at A and at B refer to the same person and
//! each party can lay out its own rows in that common order for a following MPC job.
//!
//! # Cost per party
//! Curve work: one hash to the group and one scalar multiplication per own id, one decompression
//! and one scalar multiplication per peer id (all batch-compressed, across every core with rayon).
//! Bytes sent: `32` per own id, plus `tag_len` per peer id if the peer learns the result.
//!
//! # Three or more parties
//! [`multi`] runs the same group operations as a shrinking chain among `m ≥ 3` parties (and says
//! what each party learns there).

mod curve;
pub mod multi;
pub mod wire;

#[cfg(test)]
mod tests;

use rand::seq::SliceRandom;
use rand_core::CryptoRng;
use rayon::prelude::*;

pub use curve::POINT_LEN;
use curve::{IdHasher, PsiKey, blind, reblind};

use crate::MpcError;
use crate::transport::{Channel, PartyIndex};
use wire::{Batch, Header};

/// Longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// Default tag length in bytes (see the module docs for the false-positive bound).
pub const DEFAULT_TAG_LEN: usize = 12;
/// Default ids per batch (≈ 1.4 MiB messages at the default tag length).
pub const DEFAULT_BATCH: usize = 1 << 15;
/// Smallest and largest tag length accepted.
pub const TAG_LEN_RANGE: std::ops::RangeInclusive<usize> = 8..=16;
/// Largest set size a peer may announce, whatever a party's own limit says (counts travel as
/// `u32` per batch).
const MAX_SET: u64 = 1 << 32;
/// Default for the largest set a party accepts from a peer ([`PsiParams::max_peer_set`]):
/// 2^24 ≈ 16.8 million ids, about 0.5 GiB of points and 0.3 GiB of tags held for them.
pub const DEFAULT_MAX_PEER_SET: u64 = 1 << 24;

/// Who learns what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsiMode {
    /// The named party learns the intersection; the other learns only the set sizes.
    IntersectionTo(PartyIndex),
    /// Both parties learn the intersection, in a common order.
    IntersectionToBoth,
    /// The named party learns only the intersection's size.
    CardinalityTo(PartyIndex),
}

impl PsiMode {
    fn code(self) -> u8 {
        match self {
            Self::IntersectionTo(p) => 0x10 | (p as u8 & 0x0f),
            Self::IntersectionToBoth => 0x20,
            Self::CardinalityTo(p) => 0x30 | (p as u8 & 0x0f),
        }
    }

    /// Whether party `p` learns which of its ids are in the intersection.
    pub fn learns_intersection(self, p: PartyIndex) -> bool {
        match self {
            Self::IntersectionTo(r) => r == p,
            Self::IntersectionToBoth => true,
            Self::CardinalityTo(_) => false,
        }
    }

    /// Whether party `p` learns the intersection's size.
    pub fn learns_size(self, p: PartyIndex) -> bool {
        self.learns_intersection(p) || self == Self::CardinalityTo(p)
    }

    fn receiver_index(self) -> Option<PartyIndex> {
        match self {
            Self::IntersectionTo(r) | Self::CardinalityTo(r) => Some(r),
            Self::IntersectionToBoth => None,
        }
    }
}

/// The agreed parameters of one PSI run.
#[derive(Debug, Clone, Copy)]
pub struct PsiParams<'a> {
    /// Job id (domain separation of the hash to the group).
    pub job_id: &'a str,
    /// Who learns what.
    pub mode: PsiMode,
    /// Tag length in bytes, within [`TAG_LEN_RANGE`].
    pub tag_len: usize,
    /// Ids per batch (per message).
    pub batch: usize,
    /// The largest set this party accepts from the peer (capped at 2^32): a larger declared
    /// size is refused ([`MpcError::OverLimit`]) before anything is allocated for it.
    pub max_peer_set: u64,
}

impl<'a> PsiParams<'a> {
    /// Defaults for `job_id` and `mode`.
    pub fn new(job_id: &'a str, mode: PsiMode) -> Self {
        Self {
            job_id,
            mode,
            tag_len: DEFAULT_TAG_LEN,
            batch: DEFAULT_BATCH,
            max_peer_set: DEFAULT_MAX_PEER_SET,
        }
    }
}

/// Progress after a round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PsiProgress {
    /// Own ids blinded and sent so far.
    pub own_sent: u64,
    /// Own set size.
    pub own_total: u64,
    /// Peer points re-blinded so far.
    pub peer_done: u64,
    /// Peer set size.
    pub peer_total: u64,
}

/// What one party ends with.
#[derive(Clone, PartialEq, Eq)]
pub struct PsiOutcome {
    /// `|X ∩ Y|`, if this party learns it.
    pub size: Option<u64>,
    /// Indices into this party's ids of the intersection, in the common (tag) order, if this
    /// party learns the intersection.
    pub matched: Option<Vec<usize>>,
    /// The other party's set size.
    pub peer_set_size: u64,
    /// Rounds used (on the channel the run was given).
    pub rounds: u32,
}

impl std::fmt::Debug for PsiOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PsiOutcome")
            .field("size", &self.size)
            .field("matched", &self.matched.as_ref().map(Vec::len))
            .field("peer_set_size", &self.peer_set_size)
            .field("rounds", &self.rounds)
            .finish()
    }
}

/// Checks a set of ids before it is used: every id at most [`MAX_ID_LEN`] bytes (the error names
/// the first offending position), no id twice (the error gives how many repeats, never an id).
/// An empty set is valid: its intersection is empty.
pub fn validate_ids<I: AsRef<[u8]> + Sync>(ids: &[I]) -> Result<(), MpcError> {
    if let Some((index, id)) = ids
        .iter()
        .enumerate()
        .find(|(_, id)| id.as_ref().len() > MAX_ID_LEN)
    {
        return Err(MpcError::IdTooLong {
            index,
            len: id.as_ref().len(),
            max: MAX_ID_LEN,
        });
    }
    let mut sorted: Vec<&[u8]> = ids.iter().map(AsRef::as_ref).collect();
    sorted.par_sort_unstable();
    let repeats = sorted.windows(2).filter(|w| w[0] == w[1]).count();
    if repeats > 0 {
        return Err(MpcError::DuplicateIds { count: repeats });
    }
    Ok(())
}

/// Runs two-party ECDH-PSI over `t` (exactly two parties) on this party's `ids`.
///
/// `rng` draws the secret exponent and the shuffle. `progress` is called after every streaming
/// round. Both parties must pass the same `params` except for their ids and batch size.
pub async fn run<I, R>(
    t: &Channel,
    params: &PsiParams<'_>,
    ids: &[I],
    rng: &mut R,
    mut progress: impl FnMut(PsiProgress),
) -> Result<PsiOutcome, MpcError>
where
    I: AsRef<[u8]> + Sync,
    R: CryptoRng + ?Sized,
{
    if t.parties() != 2 {
        return Err(MpcError::PartyCount {
            expected: "exactly 2 (two-party PSI)",
            got: t.parties(),
        });
    }
    check_params(t, params)?;
    validate_ids(ids)?;
    let me = t.me();
    let peer = 1 - me;
    let mode = params.mode;
    let tag_len = params.tag_len;
    let first_round = t.round();

    let key = PsiKey::random(rng);
    let hasher = IdHasher::new(params.job_id);
    let mut perm: Vec<usize> = (0..ids.len()).collect();
    perm.shuffle(rng);
    let shuffled: Vec<&I> = perm.iter().map(|&i| &ids[i]).collect();

    // Header.
    let own = Batches::new(ids.len() as u64, params.batch as u64);
    let ours = Header::ours(params, own.n);
    t.send(peer, ours.encode()).await?;
    let msg = t.recv(peer).await?;
    let theirs = Header::decode(&msg, &ours, params.max_peer_set, peer, first_round)?;
    let peer_b = Batches::new(theirs.set_size, u64::from(theirs.batch));
    t.end_round();

    let i_learn = mode.learns_intersection(me) || mode == PsiMode::CardinalityTo(me);
    let peer_learns = mode.learns_intersection(peer);
    let mut own_tags: Vec<u128> = Vec::new();
    let mut peer_tags: Vec<u128> = Vec::new();
    let mut for_peer_sorted: Vec<u128> = Vec::new();
    let mut pending: Vec<u128> = Vec::new();
    let mut prog = PsiProgress {
        own_total: own.n,
        peer_total: peer_b.n,
        ..PsiProgress::default()
    };

    let k_max = own.count().max(peer_b.count());
    for k in 0..=k_max {
        let round = t.round();
        let mine = own.range(k);
        let blinded = blind(&key, &hasher, &shuffled[mine.clone()]);
        t.send(peer, Batch::encode(&blinded, &pending, tag_len))
            .await?;

        let msg = t.recv(peer).await?;
        let expect_tags = if mode.learns_intersection(me) && k > 0 {
            own.len(k - 1)
        } else {
            0
        };
        let Batch { points, tags } =
            Batch::decode(&msg, peer_b.len(k), expect_tags, tag_len, peer, round)?;
        let fresh = reblind(&key, points).map_err(|index| MpcError::InvalidPoint {
            from: peer,
            index: peer_b.range(k).start as u64 + index as u64,
        })?;
        let fresh: Vec<u128> = fresh.iter().map(|p| tag_of(p, tag_len)).collect();
        own_tags.extend(tags.chunks_exact(tag_len).map(read_tag));
        if i_learn {
            peer_tags.extend_from_slice(&fresh);
        }
        if mode == PsiMode::CardinalityTo(peer) {
            for_peer_sorted.extend_from_slice(&fresh);
        }
        pending = if peer_learns { fresh } else { Vec::new() };
        t.end_round();
        prog.own_sent += mine.len() as u64;
        prog.peer_done += peer_b.len(k) as u64;
        progress(prog);
    }

    // Cardinality: the receiver's tags come back sorted, in batches of the receiver's size.
    if let Some(r) = mode
        .receiver_index()
        .filter(|_| matches!(mode, PsiMode::CardinalityTo(_)))
    {
        let recv_b = if r == me { own } else { peer_b };
        for_peer_sorted.par_sort_unstable();
        for k in 0..recv_b.count() {
            let round = t.round();
            if r == me {
                let msg = t.recv(peer).await?;
                let Batch { tags, .. } =
                    Batch::decode(&msg, 0, recv_b.len(k), tag_len, peer, round)?;
                own_tags.extend(tags.chunks_exact(tag_len).map(read_tag));
            } else {
                let part = &for_peer_sorted[recv_b.range(k)];
                t.send(peer, Batch::encode(&[], part, tag_len)).await?;
            }
            t.end_round();
        }
    }

    let round = t.round();
    let rounds = round.wrapping_sub(first_round);
    if !i_learn {
        return Ok(PsiOutcome {
            size: None,
            matched: None,
            peer_set_size: peer_b.n,
            rounds,
        });
    }
    if own_tags.len() as u64 != own.n {
        return Err(MpcError::MalformedMessage {
            from: peer,
            round,
            what: "fewer tags returned than ids sent",
        });
    }
    peer_tags.par_sort_unstable();
    let in_peer = |tag: &u128| peer_tags.binary_search(tag).is_ok();
    if mode == PsiMode::CardinalityTo(me) {
        let size = own_tags.par_iter().filter(|t| in_peer(t)).count() as u64;
        return Ok(PsiOutcome {
            size: Some(size),
            matched: None,
            peer_set_size: peer_b.n,
            rounds,
        });
    }
    let mut hits: Vec<(u128, usize)> = own_tags
        .par_iter()
        .zip(perm.par_iter())
        .filter(|(tag, _)| in_peer(tag))
        .map(|(tag, &i)| (*tag, i))
        .collect();
    hits.par_sort_unstable();
    Ok(PsiOutcome {
        size: Some(hits.len() as u64),
        matched: Some(hits.into_iter().map(|(_, i)| i).collect()),
        peer_set_size: peer_b.n,
        rounds,
    })
}

fn check_params(t: &Channel, p: &PsiParams<'_>) -> Result<(), MpcError> {
    if !TAG_LEN_RANGE.contains(&p.tag_len) {
        return Err(MpcError::BadParams("PSI tag length must be 8 to 16 bytes"));
    }
    if p.batch == 0 {
        return Err(MpcError::BadParams("PSI batch size must be at least 1"));
    }
    let largest = p
        .batch
        .checked_mul(POINT_LEN + p.tag_len)
        .and_then(|b| b.checked_add(8));
    if largest.is_none_or(|b| b > t.max_message_len()) {
        return Err(MpcError::BadParams(
            "PSI batch size too large for the transport's message limit",
        ));
    }
    match p.mode.receiver_index() {
        Some(r) if r > 1 => Err(MpcError::BadParams("PSI receiver must be party 0 or 1")),
        _ => Ok(()),
    }
}

/// A set split into batches.
#[derive(Debug, Clone, Copy)]
struct Batches {
    n: u64,
    batch: u64,
}

impl Batches {
    fn new(n: u64, batch: u64) -> Self {
        Self { n, batch }
    }

    fn count(self) -> u64 {
        self.n.div_ceil(self.batch)
    }

    /// Positions of batch `k` (empty past the end).
    fn range(self, k: u64) -> std::ops::Range<usize> {
        let start = (k.saturating_mul(self.batch)).min(self.n);
        let end = (start.saturating_add(self.batch)).min(self.n);
        start as usize..end as usize
    }

    fn len(self, k: u64) -> usize {
        self.range(k).len()
    }
}

fn tag_of(point: &[u8; POINT_LEN], tag_len: usize) -> u128 {
    read_tag(&point[..tag_len])
}

fn read_tag(bytes: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    b[..bytes.len()].copy_from_slice(bytes);
    u128::from_le_bytes(b)
}
