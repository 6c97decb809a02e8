//! Pairwise seeds from an ephemeral Diffie–Hellman on Ristretto255, and the zero-sharings they give.
//!
//! At session start every party draws a fresh secret scalar `a_i` and sends `A_i = a_i·G` to every
//! peer (one round, 32 bytes per peer). Parties `i` and `j` then share the point `a_i·a_j·G`; hashed
//! with the job id, both party ids and both public keys it becomes a 32-byte seed that no one else
//! knows. A seed is expanded with ChaCha12 (`rand_chacha`, [`PrfStream`]) into masks; a zero-sharing adds the mask
//! for each higher-indexed peer and subtracts it for each lower one, so the parties' masks sum to
//! zero with no further messages.
//!
//! The data-plane links are mutually authenticated (TLS with certificates pinned by the registry),
//! which binds each ephemeral key to its party.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand_chacha::{ChaCha12Rng, ChaCha20Rng};
use rand_core::{CryptoRng, SeedableRng};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::MpcError;
use crate::ring::{self, RingElement};
use crate::transport::{Channel, PartyIndex, exchange};

const SEED_DOMAIN: &[u8] = b"treaty/v1/pairwise-seed";
const STREAM_DOMAIN: &[u8] = b"treaty/v1/seed-stream";

/// A generator seeded from the operating system's entropy.
pub fn os_rng() -> Result<ChaCha20Rng, MpcError> {
    ChaCha20Rng::try_from_rng(&mut rand::rngs::SysRng).map_err(|_| MpcError::Entropy)
}

/// Who is in the session: the job id and every party's id, by index.
#[derive(Debug, Clone, Copy)]
pub struct SessionContext<'a> {
    /// The job this session belongs to (domain separation).
    pub job_id: &'a str,
    /// Party ids by protocol index.
    pub party_ids: &'a [String],
}

/// An ephemeral Ristretto255 secret scalar; used once, zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct EphemeralSecret(Scalar);

impl std::fmt::Debug for EphemeralSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EphemeralSecret").finish_non_exhaustive()
    }
}

impl EphemeralSecret {
    /// Draws a fresh secret.
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self(Scalar::random(rng))
    }

    /// The public key `a·G`, compressed (32 bytes).
    pub fn public_key(&self) -> [u8; 32] {
        RistrettoPoint::mul_base(&self.0).compress().to_bytes()
    }

    /// Derives the seed shared with `peer` from its public key.
    pub fn agree(
        &self,
        ctx: SessionContext<'_>,
        me: PartyIndex,
        peer: PartyIndex,
        peer_public: &[u8],
    ) -> Result<PairwiseSeed, MpcError> {
        let invalid = MpcError::InvalidPublicKey { from: peer };
        let peer_point = CompressedRistretto::from_slice(peer_public)
            .map_err(|_| MpcError::InvalidPublicKey { from: peer })?
            .decompress()
            .ok_or(MpcError::InvalidPublicKey { from: peer })?;
        if peer_point.is_identity() {
            return Err(invalid);
        }
        let shared = (peer_point * self.0).compress();
        let my_public = self.public_key();
        // Order everything by party index so both sides hash the same transcript.
        let (lo, hi, lo_pk, hi_pk) = if me < peer {
            (me, peer, &my_public[..], peer_public)
        } else {
            (peer, me, peer_public, &my_public[..])
        };
        let id = |i: PartyIndex| ctx.party_ids.get(i).map(String::as_str).unwrap_or("");
        let mut h = Sha256::new();
        for part in [
            SEED_DOMAIN,
            ctx.job_id.as_bytes(),
            id(lo).as_bytes(),
            id(hi).as_bytes(),
            lo_pk,
            hi_pk,
            shared.as_bytes(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        Ok(PairwiseSeed(h.finalize().into()))
    }
}

/// A 32-byte seed shared by exactly two parties. Zeroized on drop; `Debug` prints nothing of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PairwiseSeed([u8; 32]);

impl std::fmt::Debug for PairwiseSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairwiseSeed").finish_non_exhaustive()
    }
}

impl PairwiseSeed {
    /// Wraps seed bytes (for tests and agreed-seed setups).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// An independent [`PrfStream`] for `label` (each use of the seed takes its own label).
    pub fn stream(&self, label: &[u8]) -> PrfStream {
        let mut h = Sha256::new();
        h.update(STREAM_DOMAIN);
        h.update(self.0);
        h.update((label.len() as u64).to_le_bytes());
        h.update(label);
        let mut key: [u8; 32] = h.finalize().into();
        let rng = PrfStream::from_seed(key);
        key.zeroize();
        rng
    }
}

/// The pseudorandom stream a pairwise seed expands into: ChaCha with 12 rounds, the cipher
/// behind the `rand` crate's `StdRng`. The best published attacks reach 7 of ChaCha's rounds
/// (Aumasson, "Too Much Crypto", 2019, argues 8 suffice); 12 keeps a wide margin at 0.6 times
/// ChaCha20's cost, which matters as the rep3 engine draws two words per element of every
/// product. Keys (and the one-off OS-seeded generator of [`os_rng`]) stay on ChaCha20.
pub type PrfStream = ChaCha12Rng;

/// This party's seeds with every peer of the session.
#[derive(Debug)]
pub struct PairwiseSeeds {
    me: PartyIndex,
    seeds: Vec<Option<PairwiseSeed>>,
}

impl PairwiseSeeds {
    /// Builds from seeds indexed by peer (`None` at `me`).
    pub fn new(me: PartyIndex, seeds: Vec<Option<PairwiseSeed>>) -> Self {
        Self { me, seeds }
    }

    /// This party's index.
    pub fn me(&self) -> PartyIndex {
        self.me
    }

    /// The seed shared with `peer`.
    pub fn with(&self, peer: PartyIndex) -> Option<&PairwiseSeed> {
        self.seeds.get(peer).and_then(Option::as_ref)
    }

    /// This party's part of a zero-sharing of length `len`: the parts of all parties sum to zero.
    /// Each `label` must be used for one zero-sharing only.
    pub fn zero_share<R: RingElement>(&self, label: &[u8], len: usize) -> Vec<R> {
        let mut out = vec![R::ZERO; len];
        let mut mask = vec![R::ZERO; len];
        for (peer, seed) in self.seeds.iter().enumerate() {
            let Some(seed) = seed else { continue };
            let mut rng = seed.stream(label);
            for m in mask.iter_mut() {
                *m = R::random(&mut rng);
            }
            if self.me < peer {
                ring::add_assign(&mut out, &mask);
            } else {
                ring::sub_assign(&mut out, &mask);
            }
        }
        mask.zeroize();
        out
    }
}

/// Seed agreement at one party: it has drawn its ephemeral secret and sent its public key to
/// every peer, and collects the peers' keys one message at a time.
///
/// The synchronous core of [`agree`]: [`SeedAgreement::start`] gives the 32-byte message for
/// every peer, [`SeedAgreement::receive`] takes each peer's (refusing a malformed, invalid,
/// repeated or stray key), and [`SeedAgreement::finish`] gives the seeds once every peer's key
/// has arrived. The secret is wiped when the agreement is dropped.
#[derive(Debug)]
pub struct SeedAgreement {
    me: PartyIndex,
    secret: EphemeralSecret,
    seeds: Vec<Option<PairwiseSeed>>,
}

impl SeedAgreement {
    /// Party `me` of `parties` draws a fresh secret; returns the agreement and the public key to
    /// send every peer.
    ///
    /// # Errors
    /// [`MpcError::LengthMismatch`] if `ctx` does not name `parties` parties;
    /// [`MpcError::BadParams`] if `me` is not one of them.
    pub fn start<R: CryptoRng + ?Sized>(
        ctx: SessionContext<'_>,
        me: PartyIndex,
        parties: usize,
        rng: &mut R,
    ) -> Result<(Self, [u8; 32]), MpcError> {
        if ctx.party_ids.len() != parties {
            return Err(MpcError::LengthMismatch {
                what: "party ids vs transport parties",
                expected: parties,
                got: ctx.party_ids.len(),
            });
        }
        if me >= parties {
            return Err(MpcError::BadParams(
                "seed agreement: this party is not in the session",
            ));
        }
        let secret = EphemeralSecret::random(rng);
        let public = secret.public_key();
        let seeds = (0..parties).map(|_| None).collect();
        Ok((Self { me, secret, seeds }, public))
    }

    /// Takes peer `from`'s public key and derives the seed shared with it.
    ///
    /// # Errors
    /// [`MpcError::MalformedMessage`] for a key that is not 32 bytes, from this party itself or
    /// from no party of the session, or a second key from the same peer;
    /// [`MpcError::InvalidPublicKey`] for bytes that are not a Ristretto255 point, or the identity.
    pub fn receive(
        &mut self,
        ctx: SessionContext<'_>,
        from: PartyIndex,
        msg: &[u8],
    ) -> Result<(), MpcError> {
        let malformed = |what| MpcError::MalformedMessage {
            from,
            round: 0,
            what,
        };
        if from == self.me {
            return Err(malformed("a public key from this party itself"));
        }
        if self
            .seeds
            .get(from)
            .ok_or(malformed("a public key from no party of the session"))?
            .is_some()
        {
            return Err(malformed("a second public key"));
        }
        if msg.len() != 32 {
            return Err(malformed("public key is not 32 bytes"));
        }
        let seed = self.secret.agree(ctx, self.me, from, msg)?;
        if let Some(slot) = self.seeds.get_mut(from) {
            *slot = Some(seed);
        }
        Ok(())
    }

    /// The seeds with every peer, once each peer's key has arrived.
    ///
    /// # Errors
    /// [`MpcError::MalformedMessage`] naming the first peer whose key is missing.
    pub fn finish(mut self) -> Result<PairwiseSeeds, MpcError> {
        let me = self.me;
        if let Some(from) = (0..self.seeds.len()).find(|&p| p != me && self.seeds[p].is_none()) {
            return Err(MpcError::MalformedMessage {
                from,
                round: 0,
                what: "no public key",
            });
        }
        Ok(PairwiseSeeds::new(me, std::mem::take(&mut self.seeds)))
    }
}

/// One round of `transport`: exchange fresh ephemeral public keys with every peer and derive
/// pairwise seeds ([`SeedAgreement`] driven over the channel). Costs 32 bytes per peer each way.
///
/// # Errors
/// The transport's errors, or the core's refusal of a peer's key.
pub async fn agree<R: CryptoRng + ?Sized>(
    transport: &Channel,
    ctx: SessionContext<'_>,
    rng: &mut R,
) -> Result<PairwiseSeeds, MpcError> {
    let (mut agreement, public) =
        SeedAgreement::start(ctx, transport.me(), transport.parties(), rng)?;
    let round = transport.round();
    let received = exchange(transport, |_| public.to_vec()).await?;
    for (from, msg) in received.iter().enumerate() {
        if let Some(msg) = msg {
            agreement.receive(ctx, from, msg).map_err(|e| match e {
                MpcError::MalformedMessage { from, what, .. } => {
                    MpcError::MalformedMessage { from, round, what }
                }
                other => other,
            })?;
        }
    }
    agreement.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{DEFAULT_MAX_MESSAGE, run_in_memory};

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("party-{i}")).collect()
    }

    #[tokio::test]
    async fn zero_shares_sum_to_zero_and_seeds_match() {
        for n in 2..=5 {
            let out = run_in_memory(n, DEFAULT_MAX_MESSAGE, move |t| async move {
                let ids = ids(n);
                let ctx = SessionContext {
                    job_id: "job-1",
                    party_ids: &ids,
                };
                let mut rng = os_rng().unwrap();
                let seeds = agree(&t, ctx, &mut rng).await.unwrap();
                let z: Vec<u128> = seeds.zero_share(b"test", 10);
                let probe: Vec<u64> = (0..n)
                    .map(|p| {
                        seeds
                            .with(p)
                            .map(|s| s.stream(b"probe").next_u64())
                            .unwrap_or(0)
                    })
                    .collect();
                (z, probe, t.counters().snapshot())
            })
            .await
            .unwrap();
            let mut sum = vec![0u128; 10];
            for (z, _, _) in &out {
                ring::add_assign(&mut sum, z);
            }
            assert_eq!(sum, vec![0u128; 10], "n={n}");
            // Both ends of every pair derived the same seed, and different pairs differ.
            for i in 0..n {
                for j in 0..n {
                    if i != j {
                        assert_eq!(out[i].1[j], out[j].1[i], "n={n} pair ({i},{j})");
                    }
                }
            }
            // A zero share on its own is not zero (it is masked).
            assert_ne!(out[0].0, vec![0u128; 10]);
            let c = out[0].2;
            assert_eq!((c.rounds, c.bytes_sent), (1, 32 * (n as u64 - 1)));
        }
    }

    use rand_core::Rng;

    #[test]
    fn seeds_are_bound_to_the_job() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let a = EphemeralSecret::random(&mut rng);
        let b = EphemeralSecret::random(&mut rng);
        let ids = ids(2);
        let ctx1 = SessionContext {
            job_id: "job-1",
            party_ids: &ids,
        };
        let ctx2 = SessionContext {
            job_id: "job-2",
            party_ids: &ids,
        };
        let s1 = a.agree(ctx1, 0, 1, &b.public_key()).unwrap();
        let s1b = b.agree(ctx1, 1, 0, &a.public_key()).unwrap();
        let s2 = a.agree(ctx2, 0, 1, &b.public_key()).unwrap();
        assert_eq!(s1.0, s1b.0);
        assert_ne!(s1.0, s2.0);
    }

    #[test]
    fn invalid_and_identity_points_are_rejected() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let a = EphemeralSecret::random(&mut rng);
        let ids = ids(2);
        let ctx = SessionContext {
            job_id: "j",
            party_ids: &ids,
        };
        assert!(matches!(
            a.agree(ctx, 0, 1, &[0xff; 32]),
            Err(MpcError::InvalidPublicKey { from: 1 })
        ));
        assert!(matches!(
            a.agree(ctx, 0, 1, &[0u8; 32]),
            Err(MpcError::InvalidPublicKey { from: 1 })
        ));
        assert!(a.agree(ctx, 0, 1, &[1u8; 5]).is_err());
    }

    #[test]
    fn three_parties_agree_message_by_message() {
        let ids = ids(3);
        let ctx = SessionContext {
            job_id: "job-1",
            party_ids: &ids,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut parties = Vec::new();
        let mut keys = Vec::new();
        for me in 0..3 {
            let (a, public) = SeedAgreement::start(ctx, me, 3, &mut rng).unwrap();
            parties.push(a);
            keys.push(public);
        }
        let seeds: Vec<PairwiseSeeds> = parties
            .into_iter()
            .enumerate()
            .map(|(me, mut a)| {
                for (from, key) in keys.iter().enumerate().filter(|(p, _)| *p != me) {
                    a.receive(ctx, from, key).unwrap();
                }
                a.finish().unwrap()
            })
            .collect();
        for i in 0..3 {
            assert!(seeds[i].with(i).is_none());
            for j in (0..3).filter(|&j| j != i) {
                let (a, b) = (seeds[i].with(j).unwrap(), seeds[j].with(i).unwrap());
                assert_eq!(a.0, b.0, "pair ({i},{j})");
            }
        }
        assert_ne!(seeds[0].with(1).unwrap().0, seeds[0].with(2).unwrap().0);
    }

    fn malformed(r: Result<(), MpcError>) -> (PartyIndex, &'static str) {
        match r {
            Err(MpcError::MalformedMessage { from, what, .. }) => (from, what),
            other => panic!("expected a malformed message, got {other:?}"),
        }
    }

    #[test]
    fn a_malformed_repeated_stray_or_missing_key_is_refused() {
        let ids = ids(3);
        let ctx = SessionContext {
            job_id: "j",
            party_ids: &ids,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let peer = EphemeralSecret::random(&mut rng).public_key();
        let (mut a, own) = SeedAgreement::start(ctx, 0, 3, &mut rng).unwrap();
        assert_eq!(
            malformed(a.receive(ctx, 1, &peer[..31])),
            (1, "public key is not 32 bytes")
        );
        assert_eq!(
            malformed(a.receive(ctx, 1, &[peer.as_slice(), &[0]].concat())),
            (1, "public key is not 32 bytes")
        );
        assert_eq!(
            malformed(a.receive(ctx, 0, &own)),
            (0, "a public key from this party itself")
        );
        assert_eq!(
            malformed(a.receive(ctx, 3, &peer)),
            (3, "a public key from no party of the session")
        );
        assert!(matches!(
            a.receive(ctx, 2, &[0u8; 32]),
            Err(MpcError::InvalidPublicKey { from: 2 })
        ));
        a.receive(ctx, 1, &peer).unwrap();
        assert_eq!(
            malformed(a.receive(ctx, 1, &peer)),
            (1, "a second public key")
        );
        assert_eq!(malformed(a.finish().map(|_| ())), (2, "no public key"));
    }

    #[test]
    fn a_session_that_does_not_name_every_party_is_refused() {
        let ids = ids(2);
        let ctx = SessionContext {
            job_id: "j",
            party_ids: &ids,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        assert!(matches!(
            SeedAgreement::start(ctx, 0, 3, &mut rng),
            Err(MpcError::LengthMismatch {
                expected: 3,
                got: 2,
                ..
            })
        ));
        assert!(matches!(
            SeedAgreement::start(ctx, 2, 2, &mut rng),
            Err(MpcError::BadParams(_))
        ));
    }

    #[test]
    fn debug_prints_no_secret() {
        let seed = PairwiseSeed::from_bytes([0xab; 32]);
        let text = format!("{seed:?}");
        assert!(!text.contains("171") && !text.contains("ab"), "{text}");
    }
}
