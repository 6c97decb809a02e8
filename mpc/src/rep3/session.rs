//! The three-party session: transport, party index, round counter and the two PRF streams; input
//! sharing, reveal and the communication-free linear operations.

use rand_core::{CryptoRng, Rng};
use zeroize::Zeroize;

use super::share::{Rep3Share, check_len};
use crate::MpcError;
use crate::ring::{self, RingElement};
use crate::seeds::{self, PairwiseSeeds, PrfStream, SessionContext};
use crate::transport::{Channel, PartyIndex};

/// Label of the [`PrfStream`] each pair of parties draws its correlated randomness from.
const PRF_LABEL: &[u8] = b"rep3/prf";

/// The index of the party after `i` (mod 3).
pub(crate) const fn next_of(i: PartyIndex) -> PartyIndex {
    (i + 1) % 3
}

/// The index of the party before `i` (mod 3).
pub(crate) const fn prev_of(i: PartyIndex) -> PartyIndex {
    (i + 2) % 3
}

/// One party's view of a rep3 session.
///
/// Holds its own [`Channel`] (a `rep3` child of the channel it was set up on), this party's
/// index, and two [`PrfStream`]s: one keyed by the seed shared with the next party (`k_{i,i+1}`) and one with
/// the previous party (`k_{i-1,i}`). Both parties of a pair draw the same words in the same order
/// because every party runs the same sequence of operations.
///
/// After an error in a communication round the session's rounds and streams may be out of step
/// with the peers': it then refuses every further round with [`MpcError::SessionFailed`] (and
/// its channel's session refuses every further message with
/// [`crate::transport::TransportError::Poisoned`]).
pub struct Rep3Session {
    pub(crate) channel: Channel,
    pub(crate) me: PartyIndex,
    /// A round failed: no further round is attempted.
    failed: bool,
    /// Stream keyed by `k_{me, me+1}`.
    pub(crate) next: PrfStream,
    /// Stream keyed by `k_{me-1, me}`.
    pub(crate) prev: PrfStream,
}

impl std::fmt::Debug for Rep3Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rep3Session")
            .field("me", &self.me)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl Rep3Session {
    /// Sets up a session on a `rep3` child of `parent`: one round of [`seeds::agree`] (in its
    /// `seeds` child), 32 bytes to each peer. Fails with [`MpcError::PartyCount`] unless the
    /// channel has exactly three parties.
    pub async fn setup<R: CryptoRng + ?Sized>(
        parent: &Channel,
        ctx: SessionContext<'_>,
        rng: &mut R,
    ) -> Result<Self, MpcError> {
        check_three(parent)?;
        let channel = parent.child("rep3");
        let seeds = seeds::agree(&channel.child("seeds"), ctx, rng).await?;
        Self::on(channel, &seeds)
    }

    /// A session on a `rep3` child of `parent` from already agreed pairwise seeds (no
    /// communication).
    pub fn from_seeds(parent: &Channel, seeds: &PairwiseSeeds) -> Result<Self, MpcError> {
        check_three(parent)?;
        Self::on(parent.child("rep3"), seeds)
    }

    fn on(channel: Channel, seeds: &PairwiseSeeds) -> Result<Self, MpcError> {
        let me = channel.me();
        let stream = |peer: PartyIndex| {
            seeds
                .with(peer)
                .map(|s| s.stream(PRF_LABEL))
                .ok_or(MpcError::LengthMismatch {
                    what: "pairwise seed missing for peer (got = peer index)",
                    expected: 3,
                    got: peer,
                })
        };
        Ok(Self {
            channel,
            me,
            failed: false,
            next: stream(next_of(me))?,
            prev: stream(prev_of(me))?,
        })
    }

    /// This party's index (0, 1 or 2).
    pub fn me(&self) -> PartyIndex {
        self.me
    }

    /// The session's channel (e.g. for its counters, or for a sibling sub-protocol).
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Whether a round of this session has failed (every further round is refused).
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Marks the session (and its channel's session) failed after an error in a round run
    /// outside [`Self::round`].
    pub(crate) fn fail(&mut self) {
        self.failed = true;
        self.channel.poison();
    }

    /// One communication round: sends each `(peer, words)` as one message, then, if `recv` is
    /// `Some((from, len))`, receives exactly `len` words from `from`. Counts one round whether or
    /// not this party sends or receives, so all parties' round tags stay in step. Any failure
    /// marks the session failed; a failed session refuses the round with
    /// [`MpcError::SessionFailed`] before touching the transport.
    pub(crate) async fn round(
        &mut self,
        sends: &[(PartyIndex, &[u64])],
        recv: Option<(PartyIndex, usize)>,
    ) -> Result<Option<Vec<u64>>, MpcError> {
        if self.failed {
            return Err(MpcError::SessionFailed);
        }
        let result = self.round_once(sends, recv).await;
        if result.is_err() {
            self.fail();
        }
        result
    }

    async fn round_once(
        &mut self,
        sends: &[(PartyIndex, &[u64])],
        recv: Option<(PartyIndex, usize)>,
    ) -> Result<Option<Vec<u64>>, MpcError> {
        let round = self.channel.round();
        for &(to, words) in sends {
            self.channel.send(to, ring::encode(words)).await?;
        }
        let got = match recv {
            None => None,
            Some((from, len)) => {
                let mut bytes = self.channel.recv(from).await?;
                let words = if Some(bytes.len()) == len.checked_mul(8) {
                    ring::decode::<u64>(&bytes)
                } else {
                    None
                };
                zeroize_words(&mut bytes);
                Some(words.ok_or(MpcError::MalformedMessage {
                    from,
                    round,
                    what: "wrong number of ring elements",
                })?)
            }
        };
        self.channel.end_round();
        Ok(got)
    }

    /// A round in which this party only receives `len` words from `from`.
    pub(crate) async fn recv_from(
        &mut self,
        from: PartyIndex,
        len: usize,
    ) -> Result<Vec<u64>, MpcError> {
        self.round(&[], Some((from, len)))
            .await?
            .ok_or(MpcError::Reconstruct("no message received"))
    }

    /// A round in which this party and `peer` swap equal-length vectors.
    pub(crate) async fn exchange(
        &mut self,
        peer: PartyIndex,
        words: &[u64],
    ) -> Result<Vec<u64>, MpcError> {
        self.round(&[(peer, words)], Some((peer, words.len())))
            .await?
            .ok_or(MpcError::Reconstruct("no message received"))
    }

    /// This party's part `α_i = PRF(k_{i,i+1}) − PRF(k_{i−1,i})` of a 3-out-of-3 zero-sharing.
    pub(crate) fn zero_share(&mut self, len: usize) -> Vec<u64> {
        let mut out = draw(&mut self.next, len);
        let prev = draw(&mut self.prev, len);
        ring::sub_assign(&mut out, &prev);
        out
    }

    /// Shares `owner`'s vector of `len` elements: one round, `16·len` bytes sent by the owner
    /// (`8·len` to each peer), nothing by the others.
    ///
    /// With `o` the owner, `x_o = PRF(k_{o−1,o})` and `x_{o+1} = PRF(k_{o,o+1})` cost nothing;
    /// the owner sends `x_{o+2} = x − x_o − x_{o+1}` to both peers. `input` must be `Some` with
    /// `len` elements at the owner and is ignored elsewhere.
    pub async fn share_input(
        &mut self,
        owner: PartyIndex,
        input: Option<&[u64]>,
        len: usize,
    ) -> Result<Rep3Share, MpcError> {
        if owner > 2 {
            return Err(MpcError::PartyCount {
                expected: "an input owner among parties 0, 1, 2",
                got: owner,
            });
        }
        if self.me == owner {
            let x = input.ok_or(MpcError::LengthMismatch {
                what: "rep3 input at its owner",
                expected: len,
                got: 0,
            })?;
            check_len("rep3 input", len, x.len())?;
            let mine = draw(&mut self.prev, len); // x_o, shared with o−1
            let next = draw(&mut self.next, len); // x_{o+1}, shared with o+1
            let last: Vec<u64> = x
                .iter()
                .zip(&mine)
                .zip(&next)
                .map(|((x, a), b)| x.wrapping_sub(*a).wrapping_sub(*b))
                .collect();
            let sends = [(next_of(owner), &last[..]), (prev_of(owner), &last[..])];
            self.round(&sends, None).await?;
            // `last` is a component of the share now held by both peers; zeroize our copy.
            let mut last = last;
            last.zeroize();
            Ok(Rep3Share::new_unchecked(mine, next))
        } else if self.me == next_of(owner) {
            // Holds (x_{o+1}, x_{o+2}).
            let a = draw(&mut self.prev, len);
            let b = self.recv_one(owner, len).await?;
            Ok(Rep3Share::new_unchecked(a, b))
        } else {
            // me = o−1 = o+2, holds (x_{o+2}, x_o).
            let b = draw(&mut self.next, len);
            let a = self.recv_one(owner, len).await?;
            Ok(Rep3Share::new_unchecked(a, b))
        }
    }

    async fn recv_one(&mut self, from: PartyIndex, len: usize) -> Result<Vec<u64>, MpcError> {
        // `round` returns `Some` whenever it is asked to receive.
        self.round(&[], Some((from, len)))
            .await?
            .ok_or(MpcError::Reconstruct("no message received"))
    }

    /// Reveals `x` to all three parties: one round, each party sends its second component
    /// `x_{i+1}` to party `i−1` (the one component that party lacks): `8·len` bytes per party.
    pub async fn reveal_all(&mut self, x: &Rep3Share) -> Result<Vec<u64>, MpcError> {
        let sends = [(prev_of(self.me), x.b())];
        let missing = self
            .round(&sends, Some((next_of(self.me), x.len())))
            .await?
            .ok_or(MpcError::Reconstruct("no message received"))?;
        Ok(sum3(x.a(), x.b(), &missing))
    }

    /// Reveals `x` to party `to` only: one round, party `to+1` sends `x_{to+2}` (`8·len` bytes);
    /// returns `Some` at `to` and `None` elsewhere.
    pub async fn reveal_to(
        &mut self,
        to: PartyIndex,
        x: &Rep3Share,
    ) -> Result<Option<Vec<u64>>, MpcError> {
        if to > 2 {
            return Err(MpcError::PartyCount {
                expected: "a reveal target among parties 0, 1, 2",
                got: to,
            });
        }
        if self.me == to {
            let missing = self.recv_one(next_of(to), x.len()).await?;
            Ok(Some(sum3(x.a(), x.b(), &missing)))
        } else if self.me == next_of(to) {
            self.round(&[(to, x.b())], None).await?;
            Ok(None)
        } else {
            self.round(&[], None).await?;
            Ok(None)
        }
    }

    /// The sharing of the public vector `c`: all of it in component `x_0` (party 0's first and
    /// party 2's second component), zero elsewhere. Local.
    pub(crate) fn public_share(&self, c: &[u64]) -> Rep3Share {
        let x0 = |holds: bool| if holds { c.to_vec() } else { vec![0; c.len()] };
        Rep3Share::new_unchecked(x0(self.me == 0), x0(self.me == 2))
    }

    /// `x + y`. Local.
    pub fn add(&self, x: &Rep3Share, y: &Rep3Share) -> Result<Rep3Share, MpcError> {
        x.check_same_len(y, "rep3 add")?;
        Ok(Rep3Share::new_unchecked(
            zip_map(x.a(), y.a(), u64::wrapping_add),
            zip_map(x.b(), y.b(), u64::wrapping_add),
        ))
    }

    /// `x − y`. Local.
    pub fn sub(&self, x: &Rep3Share, y: &Rep3Share) -> Result<Rep3Share, MpcError> {
        x.check_same_len(y, "rep3 sub")?;
        Ok(Rep3Share::new_unchecked(
            zip_map(x.a(), y.a(), u64::wrapping_sub),
            zip_map(x.b(), y.b(), u64::wrapping_sub),
        ))
    }

    /// `−x`. Local.
    pub fn neg(&self, x: &Rep3Share) -> Rep3Share {
        Rep3Share::new_unchecked(
            x.a().iter().map(|v| v.wrapping_neg()).collect(),
            x.b().iter().map(|v| v.wrapping_neg()).collect(),
        )
    }

    /// `x + c` for a public vector `c`. Local: `c` goes into component `x_0`, which party 0 holds
    /// as its first component and party 2 as its second.
    pub fn add_public(&self, x: &Rep3Share, c: &[u64]) -> Result<Rep3Share, MpcError> {
        check_len("rep3 add_public", x.len(), c.len())?;
        Ok(match self.me {
            0 => Rep3Share::new_unchecked(zip_map(x.a(), c, u64::wrapping_add), x.b().to_vec()),
            2 => Rep3Share::new_unchecked(x.a().to_vec(), zip_map(x.b(), c, u64::wrapping_add)),
            _ => x.clone(),
        })
    }

    /// `x + c` for a public scalar `c` added to every element. Local.
    pub fn add_public_scalar(&self, x: &Rep3Share, c: u64) -> Rep3Share {
        let add = |v: &[u64]| v.iter().map(|v| v.wrapping_add(c)).collect();
        match self.me {
            0 => Rep3Share::new_unchecked(add(x.a()), x.b().to_vec()),
            2 => Rep3Share::new_unchecked(x.a().to_vec(), add(x.b())),
            _ => x.clone(),
        }
    }

    /// `x · c` element-wise for a public vector `c`. Local.
    pub fn mul_public(&self, x: &Rep3Share, c: &[u64]) -> Result<Rep3Share, MpcError> {
        check_len("rep3 mul_public", x.len(), c.len())?;
        Ok(Rep3Share::new_unchecked(
            zip_map(x.a(), c, u64::wrapping_mul),
            zip_map(x.b(), c, u64::wrapping_mul),
        ))
    }

    /// `x · c` for a public scalar `c`. Local.
    pub fn mul_public_scalar(&self, x: &Rep3Share, c: u64) -> Rep3Share {
        Rep3Share::new_unchecked(
            x.a().iter().map(|v| v.wrapping_mul(c)).collect(),
            x.b().iter().map(|v| v.wrapping_mul(c)).collect(),
        )
    }
}

fn check_three(transport: &Channel) -> Result<(), MpcError> {
    if transport.parties() == 3 {
        Ok(())
    } else {
        Err(MpcError::PartyCount {
            expected: "exactly 3",
            got: transport.parties(),
        })
    }
}

/// `len` words from a PRF stream, generated in bulk (whole ChaCha blocks, 4 KiB at a time).
/// Both parties of a pair draw through this function with the same lengths, so their streams stay
/// in step.
pub(crate) fn draw(rng: &mut PrfStream, len: usize) -> Vec<u64> {
    const WORDS: usize = 512;
    let mut out = Vec::with_capacity(len);
    let mut buf = [0u8; WORDS * 8];
    while out.len() < len {
        let take = (len - out.len()).min(WORDS);
        let bytes = &mut buf[..take * 8];
        rng.fill_bytes(bytes);
        out.extend(bytes.chunks_exact(8).map(u64::read_le));
    }
    buf.zeroize();
    out
}

/// XORs the next `out.len()` words of a PRF stream into `out`: the words [`draw`] would return
/// for that length (same stream positions, so a peer may [`draw`] them), without allocating.
pub(crate) fn xor_draw(rng: &mut PrfStream, out: &mut [u64]) {
    const WORDS: usize = 512;
    let mut buf = [0u8; WORDS * 8];
    for chunk in out.chunks_mut(WORDS) {
        let bytes = &mut buf[..chunk.len() * 8];
        rng.fill_bytes(bytes);
        for (o, b) in chunk.iter_mut().zip(bytes.chunks_exact(8)) {
            *o ^= u64::read_le(b);
        }
    }
    buf.zeroize();
}

/// Zeroizes a received message as 64-bit words where aligned (`zeroize` writes element by
/// element, so bytes would take eight times as many volatile writes), then empties it. The spare
/// capacity is left alone: the transport never wrote message bytes there.
fn zeroize_words(bytes: &mut Vec<u8>) {
    let (head, words, tail) = bytemuck::pod_align_to_mut::<u8, u64>(bytes);
    head.zeroize();
    words.zeroize();
    tail.zeroize();
    bytes.clear();
}

fn zip_map(x: &[u64], y: &[u64], f: impl Fn(u64, u64) -> u64) -> Vec<u64> {
    x.iter().zip(y).map(|(a, b)| f(*a, *b)).collect()
}

fn sum3(a: &[u64], b: &[u64], c: &[u64]) -> Vec<u64> {
    a.iter()
        .zip(b)
        .zip(c)
        .map(|((a, b), c)| a.wrapping_add(*b).wrapping_add(*c))
        .collect()
}
