//! Shared harness of the rep3 tests: all three parties in-process over `run_in_memory`, sessions
//! with real or fixed seeds, and reconstruction that checks both holders of every component agree.

use std::sync::{Arc, Mutex};

use proptest::prelude::*;

use super::{Rep3Bits, Rep3Session, Rep3Share};
use crate::seeds::{PairwiseSeed, PairwiseSeeds, SessionContext, os_rng};
use crate::transport::{Channel, InMemoryTransport, Link, PartyIndex, Tag, TransportError};

pub(super) fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

pub(super) fn party_ids() -> Vec<String> {
    (0..3).map(|i| format!("party-{i}")).collect()
}

/// Seeds fixed by `salt`, so a whole run is deterministic (used where a rare truncation failure
/// must not make a test flaky: the outcome is then the same on every run).
pub(super) fn fixed_seeds(me: PartyIndex, salt: u64) -> PairwiseSeeds {
    let seeds = (0..3)
        .map(|peer| {
            (peer != me).then(|| {
                let mut bytes = [0u8; 32];
                bytes[0] = me.min(peer) as u8;
                bytes[1] = me.max(peer) as u8;
                bytes[8..16].copy_from_slice(&salt.to_le_bytes());
                PairwiseSeed::from_bytes(bytes)
            })
        })
        .collect();
    PairwiseSeeds::new(me, seeds)
}

/// A session over `t`: fresh seeds from a real key agreement (`salt = None`) or fixed ones.
pub(super) async fn session(t: &Channel, salt: Option<u64>) -> Rep3Session {
    match salt {
        None => {
            let ids = party_ids();
            let ctx = SessionContext {
                job_id: "rep3-test",
                party_ids: &ids,
            };
            Rep3Session::setup(t, ctx, &mut os_rng().unwrap())
                .await
                .unwrap()
        }
        Some(salt) => Rep3Session::from_seeds(t, &fixed_seeds(t.me(), salt)).unwrap(),
    }
}

/// Runs `$body` at each of the three parties with `$s` bound to a session (seeds per `$salt`),
/// cloning the listed variables into each party; returns the three outputs in party order.
macro_rules! run3 {
    ($salt:expr; [$($v:ident),*] |$s:ident| $body:expr) => {{
        let salt: Option<u64> = $salt;
        $(let $v = $v.clone();)*
        $crate::rep3::test_util::block_on($crate::transport::run_in_memory(
            3,
            $crate::transport::DEFAULT_MAX_MESSAGE,
            move |t| {
                $(let $v = $v.clone();)*
                async move {
                    #[allow(unused_mut)]
                    let mut $s = $crate::rep3::test_util::session(&t, salt).await;
                    $body
                }
            },
        ))
        .expect("no party panicked")
    }};
}
pub(super) use run3;

/// `(rounds, bytes sent, messages sent)` of one party during one operation.
pub(super) type Cost = (u64, u64, u64);

/// Runs `$op` on session `$s` and returns what it cost this party, as a [`Cost`].
macro_rules! measure {
    ($s:ident, $op:expr) => {{
        let before = $s.channel().counters().snapshot();
        let _out = $op;
        let d = $s.channel().counters().snapshot().since(&before);
        let c: $crate::rep3::test_util::Cost = (d.rounds, d.bytes_sent, d.messages_sent);
        c
    }};
}
pub(super) use measure;

/// Reconstructs from the three parties' shares, checking that every component is held
/// identically by both of its holders (x_0: P0.a = P2.b, x_1: P1.a = P0.b, x_2: P2.a = P1.b).
pub(super) fn open(shares: &[Rep3Share]) -> Vec<u64> {
    assert_eq!(shares.len(), 3);
    for i in 0..3 {
        assert_eq!(
            shares[i].b(),
            shares[(i + 1) % 3].a(),
            "component x_{} differs between its holders",
            (i + 1) % 3
        );
    }
    (0..shares[0].len())
        .map(|j| {
            shares[0].a()[j]
                .wrapping_add(shares[1].a()[j])
                .wrapping_add(shares[2].a()[j])
        })
        .collect()
}

/// Reconstructs a boolean sharing, checking both holders of every component agree.
pub(super) fn open_bits(shares: &[Rep3Bits]) -> Vec<u64> {
    assert_eq!(shares.len(), 3);
    for i in 0..3 {
        assert_eq!(shares[i].b(), shares[(i + 1) % 3].a(), "component differs");
    }
    (0..shares[0].len())
        .map(|j| shares[0].a()[j] ^ shares[1].a()[j] ^ shares[2].a()[j])
        .collect()
}

/// Column `i` of per-party tuples of outputs.
pub(super) fn col<S: Clone, const N: usize>(out: &[[S; N]], i: usize) -> Vec<S> {
    out.iter().map(|o| o[i].clone()).collect()
}

/// A ring word, with the edge values drawn often.
pub(super) fn word() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        Just(0u64),
        Just(u64::MAX),
        Just(i64::MIN as u64),
        Just(i64::MAX as u64),
        Just(1u64),
    ]
}

/// A link that records every message it receives (for the leakage smoke tests).
pub(super) struct Tap {
    pub(super) inner: InMemoryTransport,
    pub(super) received: Mutex<Vec<Vec<u8>>>,
}

impl Tap {
    pub(super) fn new(inner: InMemoryTransport) -> Self {
        Self {
            inner,
            received: Mutex::new(Vec::new()),
        }
    }

    /// The words received since the last call, concatenated.
    pub(super) fn take_words(&self) -> Vec<u64> {
        std::mem::take(&mut *self.received.lock().unwrap())
            .iter()
            .flat_map(|m| crate::ring::decode::<u64>(m).unwrap())
            .collect()
    }
}

impl Link for Tap {
    fn me(&self) -> PartyIndex {
        self.inner.me()
    }
    fn parties(&self) -> usize {
        self.inner.parties()
    }
    async fn send(&self, to: PartyIndex, tag: Tag, msg: Vec<u8>) -> Result<(), TransportError> {
        self.inner.send(to, tag, msg).await
    }
    async fn recv(&self, from: PartyIndex, limit: usize) -> Result<(Tag, Vec<u8>), TransportError> {
        let (tag, msg) = self.inner.recv(from, limit).await?;
        self.received.lock().unwrap().push(msg.clone());
        Ok((tag, msg))
    }
}

/// As [`crate::transport::run_in_memory`] for three parties, with each party's link a [`Tap`]:
/// `party` gets the tap and the root channel over it.
pub(super) async fn run_tapped<F, Fut, O>(party: F) -> Result<Vec<O>, TransportError>
where
    F: Fn(Arc<Tap>, Channel) -> Fut,
    Fut: Future<Output = O> + Send + 'static,
    O: Send + 'static,
{
    let handles: Vec<_> = InMemoryTransport::network(3)
        .into_iter()
        .map(|link| {
            let tap = Arc::new(Tap::new(link));
            let ch = Channel::new(tap.clone(), crate::transport::DEFAULT_MAX_MESSAGE);
            tokio::spawn(party(tap, ch))
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.map_err(|_| TransportError::Aborted {
            reason: "a party panicked".into(),
        })?);
    }
    Ok(out)
}

/// The security smoke check on the words one party received: each of the low `bits` bit
/// positions is set in 40%..60% of them (many standard deviations for uniform bits at the sizes
/// the tests use, so this cannot flake), no word repeats, and none is one of `secrets`.
pub(super) fn assert_look_uniform(words: &[u64], bits: u32, secrets: &[u64], what: &str) {
    let total = words.len();
    for bit in 0..bits {
        let set = words.iter().filter(|w| (*w >> bit) & 1 == 1).count();
        assert!(
            (total * 4 / 10..=total * 6 / 10).contains(&set),
            "{what}: bit {bit} set in {set}/{total} received words"
        );
    }
    let distinct: std::collections::HashSet<_> = words.iter().collect();
    assert_eq!(distinct.len(), total, "{what}: repeated received words");
    for secret in secrets {
        assert!(
            !words.contains(secret),
            "{what}: received the plaintext {secret:#x}"
        );
    }
}
