//! `mpc_peers`: one honest party runs a real protocol over a [`Link`] whose peers say what the
//! fuzzer wrote — the row agreement and vertical statistics (as a data party or the helper),
//! and rep3 rounds (multiplication, truncation, comparison, sigmoid, opening).
//!
//! The input is `[scenario, me, script…]`. The script is the peers' messages to the honest
//! party, in the order it receives them: each `[from, mode, len (u16 LE), tag?, bytes]`. Mode
//! bit 0 set: an explicit tag follows (scope u64 LE, round u32 LE); otherwise the message is
//! tagged as the honest party's last sent message, its round moved on by `(mode >> 1) & 3`. A
//! peer whose script ran out has disconnected. What the honest party sends is dropped.
//!
//! [`peer_seeds`] records the scripts of real three-party runs, so the fuzzer starts from
//! messages an honest peer sends.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use treaty_mpc::fixed::FixedPoint;
use treaty_mpc::rep3::{Rep3Session, Rep3Share};
use treaty_mpc::seeds::{PairwiseSeed, PairwiseSeeds, SessionContext};
use treaty_mpc::transport::{
    Channel, InMemoryTransport, Link, PartyIndex, ScopeId, Tag, TransportError,
};
use treaty_mpc::vstats::{self, VerticalInput, VerticalLayout};

/// The most aligned rows the honest party accepts.
const MAX_ROWS: usize = 64;
/// The largest message the honest party accepts.
const MAX_MESSAGE: usize = 1 << 16;
/// Elements of the rep3 scenario's vectors.
const WIDTH: usize = 4;
const PARTIES: usize = 3;
/// The last sent tag before anything was sent.
const NO_TAG: Tag = Tag {
    scope: ScopeId(0),
    round: 0,
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Peers that say what the script says (see the module docs).
struct ScriptedLink {
    me: PartyIndex,
    inbound: Mutex<Vec<VecDeque<(Option<Tag>, u32, Vec<u8>)>>>,
    last_sent: Mutex<Tag>,
}

impl ScriptedLink {
    fn new(me: PartyIndex, mut script: &[u8]) -> Self {
        let mut inbound = vec![VecDeque::new(); PARTIES];
        while let [from, mode, lo, hi, rest @ ..] = script {
            let mut rest = rest;
            let tag = if mode & 1 == 1 {
                let Some((t, after)) = rest.split_at_checked(12) else {
                    break;
                };
                let mut scope = [0; 8];
                scope.copy_from_slice(&t[..8]);
                let mut round = [0; 4];
                round.copy_from_slice(&t[8..]);
                rest = after;
                Some(Tag {
                    scope: ScopeId(u64::from_le_bytes(scope)),
                    round: u32::from_le_bytes(round),
                })
            } else {
                None
            };
            let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(rest.len());
            let from = usize::from(*from) % PARTIES;
            if from != me {
                inbound[from].push_back((tag, u32::from((mode >> 1) & 3), rest[..len].to_vec()));
            }
            script = &rest[len..];
        }
        Self {
            me,
            inbound: Mutex::new(inbound),
            last_sent: Mutex::new(NO_TAG),
        }
    }
}

impl Link for ScriptedLink {
    fn me(&self) -> PartyIndex {
        self.me
    }

    fn parties(&self) -> usize {
        PARTIES
    }

    async fn send(&self, _to: PartyIndex, tag: Tag, _msg: Vec<u8>) -> Result<(), TransportError> {
        *lock(&self.last_sent) = tag;
        Ok(())
    }

    async fn recv(
        &self,
        from: PartyIndex,
        _limit: usize,
    ) -> Result<(Tag, Vec<u8>), TransportError> {
        let next = lock(&self.inbound)
            .get_mut(from)
            .and_then(VecDeque::pop_front);
        let (tag, shift, msg) = next.ok_or(TransportError::PeerDisconnected { peer: from })?;
        let tag = tag.unwrap_or_else(|| {
            let last = *lock(&self.last_sent);
            Tag {
                scope: last.scope,
                round: last.round.wrapping_add(shift),
            }
        });
        Ok((tag, msg))
    }
}

/// A real link that writes what peers send to its party as a script (see the module docs).
struct Recording<L> {
    inner: L,
    script: Arc<Mutex<Vec<u8>>>,
    last_sent: Mutex<Tag>,
}

impl<L: Link> Link for Recording<L> {
    fn me(&self) -> PartyIndex {
        self.inner.me()
    }

    fn parties(&self) -> usize {
        self.inner.parties()
    }

    async fn send(&self, to: PartyIndex, tag: Tag, msg: Vec<u8>) -> Result<(), TransportError> {
        *lock(&self.last_sent) = tag;
        self.inner.send(to, tag, msg).await
    }

    async fn recv(&self, from: PartyIndex, limit: usize) -> Result<(Tag, Vec<u8>), TransportError> {
        let (tag, msg) = self.inner.recv(from, limit).await?;
        let last = *lock(&self.last_sent);
        let shift = tag.round.wrapping_sub(last.round);
        let mut out = lock(&self.script);
        out.push(from as u8);
        let len = u16::try_from(msg.len()).unwrap_or(u16::MAX);
        if tag.scope == last.scope && shift < 4 {
            out.push((shift as u8) << 1);
            out.extend_from_slice(&len.to_le_bytes());
        } else {
            out.push(1);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&tag.scope.0.to_le_bytes());
            out.extend_from_slice(&tag.round.to_le_bytes());
        }
        out.extend_from_slice(&msg[..usize::from(len)]);
        Ok((tag, msg))
    }
}

/// Polls `futures` to the end, in turn, with a no-op waker (every link here is ready at once
/// or driven by another of `futures`). Gives up after a bound: a stuck protocol is not a crash.
fn run_all(mut futures: Vec<Pin<Box<dyn Future<Output = ()> + '_>>>) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut done = vec![false; futures.len()];
    for _ in 0..1_000_000 {
        for (f, d) in futures.iter_mut().zip(done.iter_mut()) {
            if !*d && f.as_mut().poll(&mut cx) == Poll::Ready(()) {
                *d = true;
            }
        }
        if done.iter().all(|d| *d) {
            return;
        }
    }
}

/// What party `me` runs in `scenario`; checks what must hold of an accepted result. Returns
/// whether the protocol ran to its end.
async fn honest(scenario: u8, channel: Channel) -> bool {
    let me = channel.me();
    let ids: Vec<String> = ["hospital", "insurer", "bank"].map(String::from).to_vec();
    let ctx = SessionContext {
        job_id: "fuzz",
        party_ids: &ids,
    };
    let mut rng = ChaCha20Rng::seed_from_u64(me as u64);
    if scenario % 2 == 0 {
        let layout = VerticalLayout {
            data_parties: vec![0, 2],
            column_owners: vec![0, 2],
            filter_parties: vec![2],
        };
        let fixed = FixedPoint::default();
        let input = match me {
            1 => VerticalInput::helper(),
            _ => {
                let column = (1..=3).map(|v| fixed.encode_signed(f64::from(v)).unwrap_or(0));
                let filter = (me == 2).then(|| vec![true, false, true]);
                VerticalInput::data(3, filter, vec![column.collect()], [7; 32])
                    .unwrap_or_else(|_| VerticalInput::helper())
            }
        }
        .with_max_rows(MAX_ROWS);
        let names = vec!["a".to_string(), "b".to_string()];
        if let Ok(out) = vstats::run(&channel, ctx, &layout, &input, &names, fixed, &mut rng).await
        {
            assert!(out.rows <= MAX_ROWS, "more rows than the limit");
            assert_eq!(out.share.len(), 1 + 2 * names.len());
            return true;
        }
    } else {
        let seeds = (0..PARTIES)
            .map(|p| {
                let (lo, hi) = (me.min(p), me.max(p));
                (p != me).then(|| PairwiseSeed::from_bytes([(lo * 3 + hi) as u8; 32]))
            })
            .collect();
        let Ok(mut s) = Rep3Session::from_seeds(&channel, &PairwiseSeeds::new(me, seeds)) else {
            return false;
        };
        let part = |k: u64| (0..WIDTH as u64).map(|i| (i + k) << 16).collect::<Vec<_>>();
        let Ok(x) = Rep3Share::from_parts(part(me as u64), part(me as u64 + 1)) else {
            return false;
        };
        let ops = async {
            let y = s.mul(&x, &x).await?;
            let y = s.trunc(&y, 16).await?;
            let lt = s.lt(&x, &y).await?;
            let z = s.b2a_bit(&lt).await?;
            let z = s.sigmoid(&z, 16).await?;
            s.reveal_all(&z).await
        };
        if let Ok(revealed) = ops.await {
            assert_eq!(revealed.len(), WIDTH);
            return true;
        }
    }
    false
}

/// The `mpc_peers` target.
pub fn mpc_peers(data: &[u8]) {
    replay_peers(data);
}

/// Runs `data` as [`mpc_peers`] does; returns whether the honest party's protocol ran to its
/// end (a recorded seed must).
pub fn replay_peers(data: &[u8]) -> bool {
    let [scenario, me, script @ ..] = data else {
        return false;
    };
    let me = usize::from(*me) % PARTIES;
    let link = ScriptedLink::new(me, script);
    let channel = Channel::new(Arc::new(link), MAX_MESSAGE);
    let mut completed = false;
    run_all(vec![Box::pin(async {
        completed = honest(*scenario, channel).await;
    })]);
    completed
}

/// Seeds of `mpc_peers`: for each scenario and each party, the script of what its peers sent it
/// in a real three-party run.
pub fn peer_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for scenario in 0..2u8 {
        for me in 0..PARTIES {
            let script = Arc::new(Mutex::new(Vec::new()));
            let channels: Vec<Channel> = InMemoryTransport::network(PARTIES)
                .into_iter()
                .map(|link| {
                    if link.me() == me {
                        let recording = Recording {
                            inner: link,
                            script: script.clone(),
                            last_sent: Mutex::new(NO_TAG),
                        };
                        Channel::new(Arc::new(recording), MAX_MESSAGE)
                    } else {
                        Channel::new(Arc::new(link), MAX_MESSAGE)
                    }
                })
                .collect();
            run_all(
                channels
                    .into_iter()
                    .map(|c| {
                        Box::pin(async move {
                            assert!(honest(scenario, c).await, "an honest run failed");
                        }) as Pin<Box<dyn Future<Output = ()>>>
                    })
                    .collect(),
            );
            let mut seed = vec![scenario, me as u8];
            seed.extend_from_slice(&lock(&script));
            let name = if scenario == 0 { "vstats" } else { "rep3" };
            seeds.push((format!("{name}-party{me}"), seed));
        }
    }
    seeds
}
