//! Private set intersection among `m ≥ 3` parties by ECDH on Ristretto255, streamed in bounded
//! batches: the two-party protocol's group operations ([`super`]) arranged as a *shrinking chain*.
//!
//! This is SecretFlow's three-party ECDH-PSI ("ECDH-PSI (3P)" in the SecretFlow SPU PSI protocol
//! documentation: Alice and Bob intersect their doubly blinded sets, Alice hands the blinded
//! intersection to the receiver Charlie, whose own set was blinded by all three) generalised to `m`
//! parties, with one change: the candidate lists a party forwards are padded with random points to
//! a length computed from the set sizes, so that a single party — the *combiner* — learns partial
//! intersection sizes, and the receiver learns nothing beyond the intersection.
//!
//! # The chain
//! [`chain`] orders the parties `P_1, …, P_m`: the last, `P_m`, is the *final party* (the receiver;
//! with several receivers the highest-indexed one), the others follow in index order, so `P_1` —
//! the combiner — is the lowest-indexed party that is not final. `k_i` is `P_i`'s fresh secret
//! exponent, `X_i` its ids, `X^{[S]}` the points `(Π_{i∈S} k_i)·H(x)` for `x ∈ X`, `I_j` the
//! partial intersection `X_1 ∩ … ∩ X_j`, and `pad(·)` a list topped up with uniformly random points
//! to a public length and shuffled (the combiner remembers which entries are real).
//!
//! ```text
//!  step 1     P_1 ─X_1^{[1]}─► P_2 ─X_2^{[2]}─► P_1 ; P_j ─X_j^{[j]}─► P_{j−1} (j ≥ 3)
//!  step 2     P_2 ─shuffled X_1^{[1,2]}─► P_1     I_2^{[1,2]} = X_1^{[1,2]} ∩ X_2^{[1,2]} at P_1
//!  step h     X_j (3 ≤ j ≤ m−1) moves down the chain to P_1, re-blinded and shuffled at every hop;
//!             X_m moves down to P_1 and back up to P_m, re-blinded, in place (shuffled in the
//!             cardinality mode), arriving as X_m^{[1..m]}
//!  step 2j−3  P_1 ─pad(I_{j−1}^{[1..j−1]})─► P_j              (3 ≤ j ≤ m−1)
//!  step 2j−2  P_j ─pad(I_{j−1}^{[1..j]}), in place─► P_1      I_j = I_{j−1} ∩ X_j at P_1
//!  step 2m−3  P_1 ─pad(I_{m−1}^{[1..m−1]})─► P_m, which raises it to [1..m] and compares it with
//!             X_m^{[1..m]}: the intersection (or its size)
//!  step 2m−2  P_m ─sorted id tags of the intersection─► the other receivers (if any)
//! ```
//!
//! A party compares two lists only when they carry the same product of exponents, and every such
//! pair is one the protocol means to compare: `P_1` holds `[1..j]` lists of `X_j` and `I_{j−1}`
//! only, in orders it cannot link to ids (`P_2` shuffled `X_1`, the parties between `P_j` and `P_1`
//! shuffled `X_j`, and `P_1` cannot tell which of its ids is in `I_{j−1}`); nobody else ever holds
//! two lists under the same product, except `P_m` at `[1..m]`. The padded length for `P_j` is
//! `min(|X_1|, …, |X_{j−1}|)`, known to all from the header.
//!
//! # What each party learns (semi-honest, no collusion; DDH in the random-oracle model)
//! Everyone learns every party's set size (the header). Beyond that:
//! - [`MultiPsiMode::IntersectionTo`]`(R)`: every receiver in `R` learns `X_1 ∩ … ∩ X_m` (which of
//!   its ids), in the common order; the final party learns nothing else (the padded list hides
//!   `|I_{m−1}|`); the combiner `P_1` also learns `|X_1 ∩ X_2|, |X_1 ∩ X_2 ∩ X_3|, …, |I_{m−1}|`
//!   (one number for three parties) but not which ids; every other party learns nothing else.
//! - [`MultiPsiMode::CardinalityTo`]`(r)`: `r` (the final party) learns `|X_1 ∩ … ∩ X_m|` only —
//!   its own list comes back shuffled by every other party, so it cannot tell which of its ids
//!   matched; the combiner learns the same partial sizes as above.
//!
//! Collusion: a coalition learns at least what its members learn; in particular `P_2` with `P_m`
//! (or with any `P_j` that handles the padded list) can tell real from dummy entries and so learn
//! the partial sizes the combiner learns. Linking an honest party's positions to ids needs that
//! party's own permutation, and the shuffles of every party on the way; sizes are what a coalition
//! of the others can gain. Message lengths depend only on the set sizes, except the last step's,
//! which carries `16·|X_1 ∩ … ∩ X_m|` bytes to each other receiver (so the coordinator's byte
//! counters show the intersection size in that mode).
//!
//! # Alignment
//! The intersection is returned ordered by *id tag* — the first 16 bytes of
//! `SHA-512(domain ‖ job id ‖ id)` — so `matched[j]` is the same id at every receiver. The tags are
//! how the final party tells the other receivers which ids matched; a receiver refuses a tag that
//! is not one of its own ids, out of order or repeated (only a faulty final party sends one).
//!
//! # Rounds and bytes
//! One header round (version, mode, set size, batch size, party count; everyone checks they
//! agree; the round is [`super::wire::HeaderRound`], tested message by message), then `2m − 3` steps (`2m − 2` with receivers besides the final party). In every round of
//! a step *every* pair of parties exchanges one message — empty when there is nothing to move, so
//! that nobody waits on a peer for longer than one batch's work (the gRPC transport has a peer
//! timeout). A step takes `max(1, ⌈L/batch⌉)` rounds over the lists `L` it moves; the last step
//! `max(1, ⌈min_i |X_i| / batch⌉)`. A message holds, per list moved between the pair in that step,
//! a 4-byte count and that many 32-byte points; the last step's `8 + 4 + 16·count`.
//!
//! A list sent costs its sender `32` bytes per point plus `4` bytes per round of its step. Per
//! party, with `n_i = |X_i|` and `L_j = min(n_1, …, n_{j−1})`:
//! - `P_1` sends `X_1`, `X_m` (last hop up) and `pad(I_{j−1})` for `3 ≤ j ≤ m`:
//!   `32·(n_1 + n_m + Σ_j L_j)`;
//! - `P_2` sends `X_1` (re-blinded), `X_2` and every `X_j`, `j ≥ 3`, on its way: `32·Σ_i n_i`;
//! - `P_j`, `3 ≤ j ≤ m − 1`, sends `X_j`, every `X_{j'}` for `j' > j` on its way, and
//!   `pad(I_{j−1})` back: `32·(Σ_{i≥j} n_i + L_j)`;
//! - `P_m` sends `X_m` and, to each other receiver, `16` bytes per id of the intersection;
//!
//! plus `28` bytes of header to each peer. Curve work: one hash to the group and one scalar
//! multiplication per point a party blinds or re-blinds (one per point it receives, except its own
//! lists coming home), one decompression per point it receives, batch compression throughout
//! (rayon over every core). For `m = 3` and `n` ids each: `P_1` and `P_2` each send `3·32·n` bytes
//! and do `3n` scalar multiplications, `P_3` sends `32·n` and does `2n`.
//!
//! # Memory
//! A party keeps the lists it must forward (32 bytes per point, in full: a uniform shuffle needs
//! the whole list) and, at the combiner and the final party, 16-byte tags of the lists it compares.
//! The random points of a padded list are drawn batch by batch as it is sent.
//!
//! # Bad input
//! Duplicate or over-long ids are refused before anything is sent ([`validate_ids`]). A point that
//! does not decode, or is the identity, aborts the run naming its sender and its position in that
//! list; a message with the wrong count, length or round, a header that disagrees, or a peer that
//! disconnects, aborts it naming the peer.

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::traits::IsIdentity;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, SeedableRng};
use rayon::prelude::*;
use sha2::{Digest, Sha512};

use super::curve::{IdHasher, PsiKey, blind, reblind};
use super::wire::HeaderRound;
use super::{Batches, POINT_LEN, PsiProgress, tag_of, validate_ids};
use crate::MpcError;
use crate::transport::{Channel, PartyIndex, exchange};

/// Most parties of one multi-party PSI (the chain's cost grows with `m²`; see the module docs).
pub const MAX_PARTIES: usize = 16;
/// Bytes of the per-list count in a message.
const COUNT_LEN: usize = 4;
/// Bytes of an id tag (the intersection's common order and its hand-over).
const ID_TAG_LEN: usize = 16;
/// Domain of the id tags; the job id follows, length-prefixed, then the id.
const ID_TAG_DOMAIN: &[u8] = b"treaty/v1/psi-multi/id-tag";
/// Points per rayon task when checking or generating points.
const CHUNK: usize = 512;

type Point = [u8; POINT_LEN];

/// A set of parties by index (each below 64).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct PartySet(u64);

impl PartySet {
    /// The set of `parties`; `None` if an index is 64 or more.
    pub fn new(parties: &[PartyIndex]) -> Option<Self> {
        parties
            .iter()
            .try_fold(0u64, |acc, &p| (p < 64).then(|| acc | (1 << p)))
            .map(Self)
    }

    /// Parties `0..n` (`n` at most 64).
    pub fn all(n: usize) -> Self {
        Self(match n {
            64.. => u64::MAX,
            n => (1u64 << n) - 1,
        })
    }

    /// Whether `p` is in the set.
    pub fn contains(self, p: PartyIndex) -> bool {
        p < 64 && self.0 & (1 << p) != 0
    }

    /// The set as a bit mask (bit `p` for party `p`), as the header carries it.
    pub fn bits(self) -> u64 {
        self.0
    }

    /// Number of parties in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The parties, in increasing order.
    pub fn iter(self) -> impl Iterator<Item = PartyIndex> {
        (0..64).filter(move |&p| self.contains(p))
    }

    fn last(self) -> Option<PartyIndex> {
        self.iter().last()
    }
}

impl std::fmt::Debug for PartySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Who learns what in a multi-party PSI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultiPsiMode {
    /// These parties learn the intersection, in a common order; the others learn set sizes only
    /// (and the combiner partial intersection sizes; see the module docs).
    IntersectionTo(PartySet),
    /// The named party learns only the intersection's size.
    CardinalityTo(PartyIndex),
}

impl MultiPsiMode {
    /// Whether party `p` learns which of its ids are in the intersection.
    pub fn learns_intersection(self, p: PartyIndex) -> bool {
        matches!(self, Self::IntersectionTo(r) if r.contains(p))
    }

    /// Whether party `p` learns the intersection's size.
    pub fn learns_size(self, p: PartyIndex) -> bool {
        self.learns_intersection(p) || self == Self::CardinalityTo(p)
    }

    /// The final party of the chain: the receiver (the highest-indexed one of several).
    fn final_party(self) -> Option<PartyIndex> {
        match self {
            Self::IntersectionTo(r) => r.last(),
            Self::CardinalityTo(r) => Some(r),
        }
    }

    fn cardinality(self) -> bool {
        matches!(self, Self::CardinalityTo(_))
    }
}

/// The chain order of a run of `parties` parties in `mode`: the final party (the receiver) last,
/// the others in index order, so the first — the *combiner*, which learns the partial
/// intersection sizes — is the lowest-indexed party that is not final. `None` if the mode names no
/// party of the session.
pub fn chain(parties: usize, mode: MultiPsiMode) -> Option<Vec<PartyIndex>> {
    let last = mode.final_party().filter(|&f| f < parties)?;
    Some((0..parties).filter(|&p| p != last).chain([last]).collect())
}

/// The agreed parameters of one multi-party PSI run.
#[derive(Debug, Clone, Copy)]
pub struct MultiPsiParams<'a> {
    /// Job id (domain separation of the hash to the group and of the id tags).
    pub job_id: &'a str,
    /// Who learns what.
    pub mode: MultiPsiMode,
    /// Points per list per message; every party must use the same.
    pub batch: usize,
    /// The largest set this party accepts from any peer (capped at 2^32): a larger declared
    /// size is refused ([`MpcError::OverLimit`]) before anything is allocated for it.
    pub max_peer_set: u64,
}

impl<'a> MultiPsiParams<'a> {
    /// Defaults for `job_id` and `mode`.
    pub fn new(job_id: &'a str, mode: MultiPsiMode) -> Self {
        Self {
            job_id,
            mode,
            batch: super::DEFAULT_BATCH,
            max_peer_set: super::DEFAULT_MAX_PEER_SET,
        }
    }
}

/// What one party ends with.
#[derive(Clone, PartialEq, Eq)]
pub struct MultiPsiOutcome {
    /// `|X_1 ∩ … ∩ X_m|`, if this party learns it.
    pub size: Option<u64>,
    /// Indices into this party's ids of the intersection, in the common (id tag) order, if this
    /// party learns the intersection.
    pub matched: Option<Vec<usize>>,
    /// Every party's set size, by party index (this party's included).
    pub set_sizes: Vec<u64>,
    /// Rounds used (on the channel the run was given).
    pub rounds: u32,
}

impl std::fmt::Debug for MultiPsiOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiPsiOutcome")
            .field("size", &self.size)
            .field("matched", &self.matched.as_ref().map(Vec::len))
            .field("set_sizes", &self.set_sizes)
            .field("rounds", &self.rounds)
            .finish()
    }
}

/// Runs multi-party ECDH-PSI over `t` (3 to [`MAX_PARTIES`] parties) on this party's `ids`.
///
/// `rng` draws the secret exponent, the shuffles and the padding. `progress` is called after every
/// streaming round with this party's points sent (`own_*`) and received (`peer_*`) so far and in
/// total. Every party must pass the same `params`.
pub async fn run<I, R>(
    t: &Channel,
    params: &MultiPsiParams<'_>,
    ids: &[I],
    rng: &mut R,
    mut progress: impl FnMut(PsiProgress),
) -> Result<MultiPsiOutcome, MpcError>
where
    I: AsRef<[u8]> + Sync,
    R: CryptoRng + ?Sized,
{
    check_params(t, params)?;
    validate_ids(ids)?;
    let (m, me, mode) = (t.parties(), t.me(), params.mode);
    let chain = chain(m, mode).ok_or(MpcError::BadParams("PSI receiver out of range"))?;
    let pos = chain
        .iter()
        .position(|&p| p == me)
        .ok_or(MpcError::BadParams("this party is not in the PSI chain"))?;
    let batch = params.batch as u64;

    let key = PsiKey::random(rng);
    let hasher = IdHasher::new(params.job_id);
    let mut perm: Vec<usize> = (0..ids.len()).collect();
    perm.shuffle(rng);
    let shuffled: Vec<&I> = perm.iter().map(|&i| &ids[i]).collect();

    // Header: everyone's set size, and agreement on everything else.
    let first_round = t.round();
    let (mut headers, own_header) =
        HeaderRound::start(params, m, me, ids.len() as u64, first_round);
    let got = exchange(t, |_| own_header.clone()).await?;
    for (p, msg) in got.iter().enumerate() {
        if let Some(msg) = msg {
            headers.receive(p, msg)?;
        }
    }
    let set_sizes = headers.finish()?;

    let sizes: Vec<u64> = chain.iter().map(|&p| set_sizes[p]).collect();
    let steps = schedule(&sizes);
    let mut prog = PsiProgress::default();
    for tr in steps.iter().flatten() {
        if tr.from == pos {
            prog.own_total += tr.len;
        }
        if tr.to == pos {
            prog.peer_total += tr.len;
        }
    }
    let ctx = Ctx {
        t,
        chain: &chain,
        pos,
        batch,
        key: &key,
        hasher: &hasher,
        own: &shuffled,
    };
    let cardinality = mode.cardinality();

    // Lists this party forwards next step, by owner position.
    let mut held: HashMap<usize, Vec<Point>> = HashMap::new();
    // The combiner: X_1 back from P_2, tags of the X_j it compares, the current candidates (real
    // entries of the last padded list), and which entries of the padded list in flight are real.
    let mut x1: Vec<Point> = Vec::new();
    let mut pass_tags: HashMap<usize, Vec<u128>> = HashMap::new();
    let mut cand: Vec<Point> = Vec::new();
    let mut real: Vec<bool> = Vec::new();
    // P_j, 3 ≤ j ≤ m−1: the padded list it raises and returns.
    let mut trip: Vec<Point> = Vec::new();
    // The final party: its own list at [1..m] and the tags of the padded candidate list.
    let mut own_final: Vec<Point> = Vec::new();
    let mut final_tags: Vec<u128> = Vec::new();

    for (s, step) in steps.iter().enumerate() {
        let mut out = Vec::new();
        for (i, tr) in step.iter().enumerate().filter(|(_, tr)| tr.from == pos) {
            let source = match tr.stream {
                Stream::Pass { hop: 1, .. } => Source::Own,
                Stream::Pass { owner, .. } => {
                    Source::Points(held.remove(&owner).unwrap_or_default())
                }
                Stream::CandOut { .. } | Stream::Final => {
                    let padded = Padded::new(std::mem::take(&mut cand), tr.len, batch, rng)?;
                    real.clone_from(&padded.real);
                    Source::Padded(Box::new(padded))
                }
                Stream::CandBack { .. } => Source::Points(std::mem::take(&mut trip)),
            };
            out.push((i, source));
        }
        let received = ctx.step(step, &mut out, &mut prog, &mut progress).await?;
        for (i, mut points) in received {
            match step[i].stream {
                Stream::Pass { owner, hop } if hop + 1 == pass_path(owner, m).len() => {
                    match owner {
                        0 => x1 = points,
                        o if o + 1 == m => own_final = points,
                        o => {
                            pass_tags.insert(o, sorted_tags(&points));
                        }
                    }
                }
                Stream::Pass { owner, .. } => {
                    if owner + 1 < m || cardinality {
                        points.shuffle(rng);
                    }
                    held.insert(owner, points);
                }
                Stream::CandOut { .. } => trip = points,
                Stream::CandBack { at } => {
                    let reals = points.into_iter().zip(&real).filter(|(_, r)| **r);
                    let tags = pass_tags.remove(&at).unwrap_or_default();
                    cand = reals.map(|(p, _)| p).filter(|p| member(&tags, p)).collect();
                }
                Stream::Final => final_tags = sorted_tags(&points),
            }
        }
        if pos == 0 && s == 1 {
            let tags = pass_tags.remove(&1).unwrap_or_default();
            cand = std::mem::take(&mut x1)
                .into_iter()
                .filter(|p| member(&tags, p))
                .collect();
        }
    }

    // The final party compares; the intersection (as id tags) goes to the other receivers.
    let last = m - 1;
    let (size, mut hits) = if pos == last {
        let matched: Vec<usize> = own_final
            .par_iter()
            .enumerate()
            .filter(|(_, p)| member(&final_tags, p))
            .map(|(i, _)| i)
            .collect();
        if cardinality {
            (Some(matched.len() as u64), None)
        } else {
            let prefix = id_tag_prefix(params.job_id);
            let mut hits: Vec<(u128, usize)> = matched
                .par_iter()
                .map(|&i| (id_tag(&prefix, shuffled[i].as_ref()), perm[i]))
                .collect();
            hits.par_sort_unstable();
            (Some(hits.len() as u64), Some(hits))
        }
    } else {
        (None, None)
    };
    if let MultiPsiMode::IntersectionTo(receivers) = mode
        && receivers.len() > 1
    {
        let bound = set_sizes.iter().copied().min().unwrap_or(0);
        let rounds = Batches::new(bound, batch).count().max(1);
        let from_final = hand_over(&ctx, rounds, receivers, hits.as_deref()).await?;
        if let Some(tags) = from_final {
            hits = Some(match_tags(
                params.job_id,
                ids,
                &tags,
                chain[last],
                t.round(),
            )?);
        }
    }
    let rounds = t.round().wrapping_sub(first_round);
    let matched: Option<Vec<usize>> = hits.map(|h| h.into_iter().map(|(_, i)| i).collect());
    Ok(MultiPsiOutcome {
        size: size.or(matched.as_ref().map(|m| m.len() as u64)),
        matched,
        set_sizes,
        rounds,
    })
}

fn check_params(t: &Channel, p: &MultiPsiParams<'_>) -> Result<(), MpcError> {
    let m = t.parties();
    if !(3..=MAX_PARTIES).contains(&m) {
        return Err(MpcError::PartyCount {
            expected: "3 to 16 (multi-party PSI)",
            got: m,
        });
    }
    if p.batch == 0 {
        return Err(MpcError::BadParams("PSI batch size must be at least 1"));
    }
    // A message carries at most one segment per list moved between the pair in a step (fewer
    // than m), or one batch of id tags.
    let largest = p
        .batch
        .checked_mul(POINT_LEN)
        .and_then(|b| b.checked_add(COUNT_LEN))
        .and_then(|b| b.checked_mul(m));
    if largest.is_none_or(|b| b > t.max_message_len()) {
        return Err(MpcError::BadParams(
            "PSI batch size too large for the transport's message limit",
        ));
    }
    match p.mode {
        MultiPsiMode::IntersectionTo(r) if r.is_empty() || r.iter().any(|q| q >= m) => Err(
            MpcError::BadParams("PSI receivers must be a non-empty set of the session's parties"),
        ),
        MultiPsiMode::CardinalityTo(r) if r >= m => {
            Err(MpcError::BadParams("PSI receiver out of range"))
        }
        _ => Ok(()),
    }
}

/// What a list in a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    /// Hop `hop` (from 1) of the set of chain position `owner` along [`pass_path`].
    Pass { owner: usize, hop: usize },
    /// The padded candidate list on its way from the combiner to chain position `at`.
    CandOut { at: usize },
    /// The same list, raised by `at`, on its way back.
    CandBack { at: usize },
    /// The last padded candidate list, to the final party.
    Final,
}

/// One list moved in a step, between chain positions.
#[derive(Debug, Clone, Copy)]
struct Transfer {
    from: usize,
    to: usize,
    len: u64,
    stream: Stream,
}

/// The chain positions the set of position `owner` visits (`m` parties).
fn pass_path(owner: usize, m: usize) -> Vec<usize> {
    match owner {
        0 => vec![0, 1, 0],
        o if o + 1 == m => (0..m).rev().chain([o]).collect(),
        o => (0..=o).rev().collect(),
    }
}

/// The public schedule: the lists moved in each step, from the set sizes in chain order.
fn schedule(sizes: &[u64]) -> Vec<Vec<Transfer>> {
    let m = sizes.len();
    let mut steps = vec![Vec::new(); 2 * m - 3];
    for (owner, &len) in sizes.iter().enumerate() {
        let path = pass_path(owner, m);
        for (h, hop) in path.windows(2).enumerate() {
            steps[h].push(Transfer {
                from: hop[0],
                to: hop[1],
                len,
                stream: Stream::Pass { owner, hop: h + 1 },
            });
        }
    }
    // The padded length for position j: the smallest of the sets before it.
    let padded = |j: usize| sizes[..j].iter().copied().min().unwrap_or(0);
    for at in 2..m - 1 {
        let len = padded(at);
        steps[2 * at - 2].push(Transfer {
            from: 0,
            to: at,
            len,
            stream: Stream::CandOut { at },
        });
        steps[2 * at - 1].push(Transfer {
            from: at,
            to: 0,
            len,
            stream: Stream::CandBack { at },
        });
    }
    steps[2 * m - 4].push(Transfer {
        from: 0,
        to: m - 1,
        len: padded(m - 1),
        stream: Stream::Final,
    });
    steps
}

fn step_rounds(step: &[Transfer], batch: u64) -> u64 {
    step.iter()
        .map(|tr| Batches::new(tr.len, batch).count())
        .max()
        .unwrap_or(0)
        .max(1)
}

/// Where an outgoing list comes from.
enum Source {
    /// This party's own ids, blinded batch by batch as they go.
    Own,
    /// Points already at hand.
    Points(Vec<Point>),
    /// A padded candidate list, its random points drawn batch by batch as they go.
    Padded(Box<Padded>),
}

/// The candidates `cand` (shuffled) at the positions `real` marks, uniformly random points
/// elsewhere: `real` has `cand.len()` marks among `len` positions, uniformly placed.
struct Padded {
    cand: Vec<Point>,
    real: Vec<bool>,
    /// Candidates before each batch.
    before: Vec<usize>,
    rng: ChaCha20Rng,
}

impl Padded {
    fn new<R: CryptoRng + ?Sized>(
        mut cand: Vec<Point>,
        len: u64,
        batch: u64,
        rng: &mut R,
    ) -> Result<Self, MpcError> {
        let len = len as usize;
        if cand.len() > len {
            return Err(MpcError::LengthMismatch {
                what: "PSI candidates (more than the smallest set)",
                expected: len,
                got: cand.len(),
            });
        }
        cand.shuffle(rng);
        let mut real = vec![false; len];
        real[..cand.len()].fill(true);
        real.shuffle(rng);
        let before = (0..Batches::new(len as u64, batch).count())
            .scan(0usize, |seen, k| {
                let start = *seen;
                let range = Batches::new(len as u64, batch).range(k);
                *seen += real[range].iter().filter(|r| **r).count();
                Some(start)
            })
            .collect();
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Ok(Self {
            cand,
            real,
            before,
            rng: ChaCha20Rng::from_seed(seed),
        })
    }

    /// The entries at `range` (batch `k`).
    fn batch(&mut self, k: u64, range: std::ops::Range<usize>) -> Vec<Point> {
        let real = &self.real[range];
        let mut next = self.before.get(k as usize).copied().unwrap_or(0);
        let mut random = random_points(real.iter().filter(|r| !**r).count(), &mut self.rng);
        real.iter()
            .map(|&r| {
                if r {
                    next += 1;
                    self.cand[next - 1]
                } else {
                    random.pop().unwrap_or_default()
                }
            })
            .collect()
    }
}

/// What a party needs to move lists.
struct Ctx<'a, I> {
    t: &'a Channel,
    chain: &'a [PartyIndex],
    pos: usize,
    batch: u64,
    key: &'a PsiKey,
    hasher: &'a IdHasher,
    own: &'a [&'a I],
}

impl<I: AsRef<[u8]> + Sync> Ctx<'_, I> {
    /// Runs one step: in each of its rounds, sends every peer its batch of each list `out` holds
    /// for it (by index into `step`), then receives a batch of each list every peer sends this
    /// party, re-blinding it unless the list is coming home. Returns the lists received.
    async fn step(
        &self,
        step: &[Transfer],
        out: &mut [(usize, Source)],
        prog: &mut PsiProgress,
        progress: &mut impl FnMut(PsiProgress),
    ) -> Result<Vec<(usize, Vec<Point>)>, MpcError> {
        let m = self.chain.len();
        for (i, source) in out.iter() {
            if let Source::Points(points) = source
                && points.len() as u64 != step[*i].len
            {
                return Err(MpcError::LengthMismatch {
                    what: "PSI list to send",
                    expected: step[*i].len as usize,
                    got: points.len(),
                });
            }
        }
        let mut received: Vec<(usize, Vec<Point>)> = step
            .iter()
            .enumerate()
            .filter(|(_, tr)| tr.to == self.pos)
            // Grown as batches arrive: what a peer declares is never reserved up front.
            .map(|(i, _)| (i, Vec::new()))
            .collect();
        for k in 0..step_rounds(step, self.batch) {
            let round = self.t.round();
            for q in (0..m).filter(|&q| q != self.pos) {
                let mut msg = Vec::new();
                for (i, source) in out.iter_mut().filter(|(i, _)| step[*i].to == q) {
                    let range = Batches::new(step[*i].len, self.batch).range(k);
                    let made;
                    let points: &[Point] = match source {
                        Source::Own => {
                            made = blind(self.key, self.hasher, &self.own[range]);
                            &made
                        }
                        Source::Points(points) => &points[range],
                        Source::Padded(padded) => {
                            made = padded.batch(k, range);
                            &made
                        }
                    };
                    msg.reserve(COUNT_LEN + points.len() * POINT_LEN);
                    msg.extend_from_slice(&(points.len() as u32).to_le_bytes());
                    points.iter().for_each(|p| msg.extend_from_slice(p));
                    prog.own_sent += points.len() as u64;
                }
                self.t.send(self.chain[q], msg).await?;
            }
            for p in (0..m).filter(|&p| p != self.pos) {
                let from = self.chain[p];
                let msg = self.t.recv(from).await?;
                let mut rest = msg.as_slice();
                for (i, list) in received.iter_mut().filter(|(i, _)| step[*i].from == p) {
                    let tr = step[*i];
                    let batch = Batches::new(tr.len, self.batch);
                    let points = take_segment(&mut rest, batch.len(k), from, round)?;
                    let start = batch.range(k).start as u64;
                    let bad = |index: usize| MpcError::InvalidPoint {
                        from,
                        index: start + index as u64,
                    };
                    let coming_home = match tr.stream {
                        Stream::Pass { owner, .. } => owner == tr.to,
                        Stream::CandBack { .. } => true,
                        Stream::CandOut { .. } | Stream::Final => false,
                    };
                    if coming_home {
                        check_points(points).map_err(bad)?;
                        list.extend(points.chunks_exact(POINT_LEN).map(to_point));
                    } else {
                        list.extend(reblind(self.key, points).map_err(bad)?);
                    }
                    prog.peer_done += batch.len(k) as u64;
                }
                if !rest.is_empty() {
                    return Err(MpcError::MalformedMessage {
                        from,
                        round,
                        what: "PSI message longer than its lists",
                    });
                }
            }
            self.t.end_round();
            progress(*prog);
        }
        Ok(received)
    }
}

/// Takes one list's batch (a count, then the points) off the front of `rest`, checking the count.
fn take_segment<'m>(
    rest: &mut &'m [u8],
    expected: usize,
    from: PartyIndex,
    round: u32,
) -> Result<&'m [u8], MpcError> {
    let bad = |what| MpcError::MalformedMessage { from, round, what };
    let (count, tail) = rest
        .split_first_chunk::<COUNT_LEN>()
        .ok_or(bad("PSI message truncated"))?;
    if u32::from_le_bytes(*count) as usize != expected {
        return Err(bad("PSI batch has the wrong number of points"));
    }
    let len = expected * POINT_LEN;
    if tail.len() < len {
        return Err(bad("PSI message truncated"));
    }
    let (points, tail) = tail.split_at(len);
    *rest = tail;
    Ok(points)
}

fn to_point(bytes: &[u8]) -> Point {
    let mut p = [0u8; POINT_LEN];
    p.copy_from_slice(bytes);
    p
}

/// `Err(i)` for the first point (by position) that does not decode or is the identity.
fn check_points(points: &[u8]) -> Result<(), usize> {
    let bad = points
        .par_chunks(POINT_LEN * CHUNK)
        .enumerate()
        .find_map_first(|(c, chunk)| {
            chunk
                .chunks_exact(POINT_LEN)
                .position(|b| {
                    CompressedRistretto::from_slice(b)
                        .ok()
                        .and_then(|p| p.decompress())
                        .is_none_or(|p| p.is_identity())
                })
                .map(|j| c * CHUNK + j)
        });
    bad.map_or(Ok(()), Err)
}

fn sorted_tags(points: &[Point]) -> Vec<u128> {
    let mut tags: Vec<u128> = points.par_iter().map(|p| tag_of(p, 16)).collect();
    tags.par_sort_unstable();
    tags
}

fn member(sorted: &[u128], point: &Point) -> bool {
    sorted.binary_search(&tag_of(point, 16)).is_ok()
}

/// `count` uniformly random points (each from 64 random bytes, as `from_uniform_bytes` maps them),
/// compressed.
fn random_points<R: CryptoRng + ?Sized>(count: usize, rng: &mut R) -> Vec<Point> {
    let mut seeds = vec![[0u8; 64]; count];
    seeds.iter_mut().for_each(|s| rng.fill_bytes(s));
    seeds
        .par_chunks(CHUNK)
        .flat_map_iter(|chunk| {
            let points: Vec<RistrettoPoint> = chunk
                .iter()
                .map(RistrettoPoint::from_uniform_bytes)
                .collect();
            RistrettoPoint::double_and_compress_batch(&points)
                .into_iter()
                .map(|c| c.to_bytes())
        })
        .collect()
}

fn id_tag_prefix(job_id: &str) -> Sha512 {
    let mut h = Sha512::new();
    h.update(ID_TAG_DOMAIN);
    h.update((job_id.len() as u64).to_le_bytes());
    h.update(job_id.as_bytes());
    h
}

fn id_tag(prefix: &Sha512, id: &[u8]) -> u128 {
    let mut h = prefix.clone();
    h.update(id);
    let digest = h.finalize();
    let mut b = [0u8; ID_TAG_LEN];
    b.copy_from_slice(&digest[..ID_TAG_LEN]);
    u128::from_le_bytes(b)
}

/// The last step: the final party sends every other receiver the sorted id tags of the
/// intersection, `batch` per round over `rounds` rounds (a message: total, count, tags); every
/// other pair exchanges empty messages. Returns the tags, at a receiver other than the final party.
async fn hand_over<I>(
    ctx: &Ctx<'_, I>,
    rounds: u64,
    receivers: PartySet,
    hits: Option<&[(u128, usize)]>,
) -> Result<Option<Vec<u128>>, MpcError> {
    let (t, m, batch) = (ctx.t, ctx.chain.len(), ctx.batch);
    let last = m - 1;
    let me = ctx.chain[ctx.pos];
    let final_party = ctx.chain[last];
    let tags_to = |q: PartyIndex| q != final_party && receivers.contains(q);
    let mut got: Option<(u64, Vec<u128>)> = None;
    for k in 0..rounds {
        let round = t.round();
        for q in (0..m).map(|q| ctx.chain[q]).filter(|&q| q != me) {
            let mut msg = Vec::new();
            if let Some(hits) = hits.filter(|_| tags_to(q)) {
                let part = &hits[Batches::new(hits.len() as u64, batch).range(k)];
                msg.extend_from_slice(&(hits.len() as u64).to_le_bytes());
                msg.extend_from_slice(&(part.len() as u32).to_le_bytes());
                part.iter()
                    .for_each(|(tag, _)| msg.extend_from_slice(&tag.to_le_bytes()));
            }
            t.send(q, msg).await?;
        }
        for p in (0..m).map(|p| ctx.chain[p]).filter(|&p| p != me) {
            let msg = t.recv(p).await?;
            let bad = |what| MpcError::MalformedMessage {
                from: p,
                round,
                what,
            };
            if p != final_party || !tags_to(me) {
                if !msg.is_empty() {
                    return Err(bad("unexpected PSI message"));
                }
                continue;
            }
            let (total, rest) = msg
                .split_first_chunk::<8>()
                .ok_or(bad("PSI intersection message truncated"))?;
            let total = u64::from_le_bytes(*total);
            let (count, rest) = rest
                .split_first_chunk::<COUNT_LEN>()
                .ok_or(bad("PSI intersection message truncated"))?;
            let count = u32::from_le_bytes(*count) as usize;
            let (seen, tags) = got.get_or_insert_with(|| (total, Vec::new()));
            let expected = Batches::new(total, batch).len(k);
            if *seen != total || total > rounds.saturating_mul(batch) {
                return Err(bad("PSI intersection size inconsistent"));
            }
            if count != expected || rest.len() != count * ID_TAG_LEN {
                return Err(bad("PSI intersection batch has the wrong number of tags"));
            }
            tags.extend(rest.chunks_exact(ID_TAG_LEN).map(super::read_tag));
        }
        t.end_round();
    }
    Ok(got.map(|(_, tags)| tags))
}

/// Maps the final party's id tags back to this party's ids (positions in `ids`), checking that
/// each is one of its ids and that they come strictly increasing.
fn match_tags<I: AsRef<[u8]> + Sync>(
    job_id: &str,
    ids: &[I],
    tags: &[u128],
    from: PartyIndex,
    round: u32,
) -> Result<Vec<(u128, usize)>, MpcError> {
    let prefix = id_tag_prefix(job_id);
    let mut mine: Vec<(u128, usize)> = ids
        .par_iter()
        .enumerate()
        .map(|(i, id)| (id_tag(&prefix, id.as_ref()), i))
        .collect();
    mine.par_sort_unstable();
    let bad = |what| MpcError::MalformedMessage { from, round, what };
    if tags.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad("PSI intersection not strictly ordered"));
    }
    tags.iter()
        .map(|tag| {
            mine.binary_search_by_key(tag, |(t, _)| *t)
                .map(|at| mine[at])
                .map_err(|_| bad("PSI intersection names an id this party does not hold"))
        })
        .collect()
}
