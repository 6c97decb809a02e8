//! Two parties in-process over `run_in_memory`; every outcome is compared with the intersection
//! computed in the clear.

use std::collections::HashSet;

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::transport::{DEFAULT_MAX_MESSAGE, TransportError, run_in_memory};

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Two sets of `"id-<k>"` over `0..a` and `shift..shift + b` (overlap `a − shift` when positive).
fn sets(a: usize, b: usize, shift: usize) -> [Vec<String>; 2] {
    [
        (0..a).map(|k| format!("id-{k}")).collect(),
        (shift..shift + b).map(|k| format!("id-{k}")).collect(),
    ]
}

fn clear_intersection(x: &[String], y: &[String]) -> HashSet<String> {
    let y: HashSet<&String> = y.iter().collect();
    x.iter().filter(|v| y.contains(v)).cloned().collect()
}

/// Runs PSI with `mode` and `batch` on the two sets; returns each party's outcome and traffic.
fn run2(
    sets: &[Vec<String>; 2],
    mode: PsiMode,
    batch: usize,
) -> Vec<Result<(PsiOutcome, u64, u64), MpcError>> {
    let sets = sets.clone();
    block_on(run_in_memory(2, DEFAULT_MAX_MESSAGE, move |t| {
        let ids = sets[t.me()].clone();
        async move {
            let mut params = PsiParams::new("psi-test", mode);
            params.batch = batch;
            let mut rng = ChaCha20Rng::from_seed([t.me() as u8 + 1; 32]);
            let out = run(&t, &params, &ids, &mut rng, |_| {}).await?;
            let c = t.counters().snapshot();
            Ok((out, c.rounds, c.bytes_sent))
        }
    }))
    .unwrap()
}

fn matched_ids(ids: &[String], out: &PsiOutcome) -> Vec<String> {
    out.matched
        .as_ref()
        .unwrap()
        .iter()
        .map(|&i| ids[i].clone())
        .collect()
}

#[test]
fn both_learn_the_same_intersection_in_the_same_order() {
    let s = sets(50, 23, 40); // overlap 10, uneven batches of 7
    let out = run2(&s, PsiMode::IntersectionToBoth, 7);
    let (a, b) = (out[0].as_ref().unwrap(), out[1].as_ref().unwrap());
    let (ma, mb) = (matched_ids(&s[0], &a.0), matched_ids(&s[1], &b.0));
    assert_eq!(ma, mb, "common order: row j is the same id at both parties");
    let clear = clear_intersection(&s[0], &s[1]);
    assert_eq!(ma.iter().cloned().collect::<HashSet<_>>(), clear);
    assert_eq!(ma.len(), 10);
    assert_eq!((a.0.size, b.0.size), (Some(10), Some(10)));
    assert_eq!((a.0.peer_set_size, b.0.peer_set_size), (23, 50));
}

#[test]
fn intersection_to_one_party_tells_the_other_nothing() {
    for r in 0..2 {
        let s = sets(30, 64, 12);
        let out = run2(&s, PsiMode::IntersectionTo(r), 16);
        let got = out[r].as_ref().unwrap();
        let other = out[1 - r].as_ref().unwrap();
        assert_eq!(
            matched_ids(&s[r], &got.0)
                .into_iter()
                .collect::<HashSet<_>>(),
            clear_intersection(&s[0], &s[1])
        );
        assert_eq!(other.0.size, None);
        assert_eq!(other.0.matched, None);
    }
}

#[test]
fn cardinality_reveals_only_the_size() {
    for r in 0..2 {
        let s = sets(40, 33, 25); // overlap 15
        let out = run2(&s, PsiMode::CardinalityTo(r), 8);
        let got = &out[r].as_ref().unwrap().0;
        assert_eq!(got.size, Some(15));
        assert_eq!(got.matched, None);
        let other = &out[1 - r].as_ref().unwrap().0;
        assert_eq!((other.size, other.matched.as_ref()), (None, None));
    }
}

#[test]
fn empty_sets_give_an_empty_intersection() {
    for (a, b) in [(0, 0), (0, 9), (9, 0)] {
        let s = sets(a, b, 0);
        let out = run2(&s, PsiMode::IntersectionToBoth, 4);
        for o in &out {
            let o = &o.as_ref().unwrap().0;
            assert_eq!(o.size, Some(0));
            assert_eq!(o.matched.as_deref(), Some(&[][..]));
        }
    }
}

/// Bytes and rounds as the module docs state: header 16 B, per streaming round 8 B of counts,
/// 32 B per own id, `tag_len` per peer id when the peer learns; `1 + K + 1` rounds.
#[test]
fn cost_matches_the_documented_count() {
    let s = sets(100, 37, 80);
    let batch = 16;
    let k = 100usize.div_ceil(batch) as u64; // 7 batches for party 0, 3 for party 1
    let out = run2(&s, PsiMode::IntersectionToBoth, batch);
    let (_, rounds0, bytes0) = out[0].as_ref().unwrap();
    let (_, rounds1, bytes1) = out[1].as_ref().unwrap();
    assert_eq!((*rounds0, *rounds1), (k + 2, k + 2));
    assert_eq!(*bytes0, 16 + 8 * (k + 1) + 32 * 100 + 12 * 37);
    assert_eq!(*bytes1, 16 + 8 * (k + 1) + 32 * 37 + 12 * 100);
    let out = run2(&s, PsiMode::IntersectionTo(1), batch);
    let (_, _, bytes1) = out[1].as_ref().unwrap();
    assert_eq!(
        *bytes1,
        16 + 8 * (k + 1) + 32 * 37,
        "receiver returns no tags"
    );
    let (out, ..) = out[0].as_ref().unwrap();
    assert_eq!(out.rounds as u64, k + 2);
}

#[test]
fn duplicates_and_long_ids_are_refused_before_anything_is_sent() {
    let dup = vec!["a".to_string(), "b".into(), "a".into(), "a".into()];
    assert!(matches!(
        validate_ids(&dup),
        Err(MpcError::DuplicateIds { count: 2 })
    ));
    let long = vec!["ok".to_string(), "x".repeat(MAX_ID_LEN + 1)];
    assert!(matches!(
        validate_ids(&long),
        Err(MpcError::IdTooLong { index: 1, .. })
    ));
    let out = run2(
        &[dup, vec!["a".into()]],
        PsiMode::IntersectionToBoth,
        DEFAULT_BATCH,
    );
    assert!(matches!(out[0], Err(MpcError::DuplicateIds { count: 2 })));
    // The honest peer sees its partner vanish, not a hang.
    assert!(matches!(out[1], Err(MpcError::Transport(_))));
}

#[test]
fn parties_that_disagree_on_the_mode_both_stop() {
    let s = sets(5, 5, 0);
    let out = block_on(run_in_memory(2, DEFAULT_MAX_MESSAGE, move |t| {
        let ids = s[t.me()].clone();
        async move {
            let mode = if t.me() == 0 {
                PsiMode::IntersectionToBoth
            } else {
                PsiMode::CardinalityTo(1)
            };
            let mut rng = ChaCha20Rng::from_seed([9; 32]);
            run(&t, &PsiParams::new("j", mode), &ids, &mut rng, |_| {}).await
        }
    }))
    .unwrap();
    for o in out {
        assert!(matches!(o, Err(MpcError::ProtocolMismatch { .. })), "{o:?}");
    }
}

#[test]
fn a_point_that_does_not_decode_aborts_naming_sender_and_position() {
    let out = block_on(run_in_memory(2, DEFAULT_MAX_MESSAGE, move |t| async move {
        let params = PsiParams::new("j", PsiMode::IntersectionToBoth);
        if t.me() == 0 {
            let ids: Vec<String> = (0..4).map(|k| k.to_string()).collect();
            let mut rng = ChaCha20Rng::from_seed([1; 32]);
            run(&t, &params, &ids, &mut rng, |_| {}).await.map(|_| ())
        } else {
            // A peer that announces 3 ids and sends garbage for the third.
            t.send(0, Header::ours(&params, 3).encode()).await?;
            t.recv(0).await?;
            let mut msg = 3u32.to_le_bytes().to_vec();
            let good = curve25519_dalek::constants::RISTRETTO_BASEPOINT_COMPRESSED.to_bytes();
            msg.extend_from_slice(&good);
            msg.extend_from_slice(&good);
            msg.extend_from_slice(&[0xffu8; 32]);
            msg.extend_from_slice(&0u32.to_le_bytes());
            t.end_round();
            t.send(0, msg).await?;
            t.recv(0).await?; // stay until party 0 has sent its batch
            Ok(())
        }
    }))
    .unwrap();
    assert!(
        matches!(out[0], Err(MpcError::InvalidPoint { from: 1, index: 2 })),
        "{:?}",
        out[0]
    );
}

#[test]
fn a_peer_that_disconnects_mid_stream_is_an_error() {
    let s = sets(64, 64, 0);
    let out = block_on(run_in_memory(2, DEFAULT_MAX_MESSAGE, move |t| {
        let ids = s[t.me()].clone();
        async move {
            let mut params = PsiParams::new("j", PsiMode::IntersectionToBoth);
            params.batch = 8;
            if t.me() == 1 {
                // Header and one batch, then gone.
                let mut rng = ChaCha20Rng::from_seed([2; 32]);
                let key = PsiKey::random(&mut rng);
                let h = IdHasher::new("j");
                t.send(0, Header::ours(&params, 64).encode()).await?;
                t.recv(0).await?;
                let refs: Vec<&String> = ids.iter().take(8).collect();
                let mut msg = 8u32.to_le_bytes().to_vec();
                blind(&key, &h, &refs)
                    .iter()
                    .for_each(|p| msg.extend_from_slice(p));
                msg.extend_from_slice(&0u32.to_le_bytes());
                t.end_round();
                t.send(0, msg).await?;
                return Ok(None);
            }
            let mut rng = ChaCha20Rng::from_seed([1; 32]);
            run(&t, &params, &ids, &mut rng, |_| {}).await.map(Some)
        }
    }))
    .unwrap();
    assert!(
        matches!(
            out[0],
            Err(MpcError::Transport(TransportError::PeerDisconnected { .. }))
        ),
        "{:?}",
        out[0]
    );
}

#[test]
fn progress_reaches_both_totals() {
    let s = sets(20, 45, 3);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    block_on(run_in_memory(2, DEFAULT_MAX_MESSAGE, move |t| {
        let ids = s[t.me()].clone();
        let seen = seen2.clone();
        async move {
            let mut params = PsiParams::new("j", PsiMode::IntersectionToBoth);
            params.batch = 10;
            let mut rng = ChaCha20Rng::from_seed([t.me() as u8; 32]);
            run(&t, &params, &ids, &mut rng, |p| {
                if t.me() == 0 {
                    seen.lock().unwrap().push(p);
                }
            })
            .await
            .unwrap();
        }
    }))
    .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 6, "K + 1 streaming rounds with K = 5");
    let last = seen.last().unwrap();
    assert_eq!(
        (
            last.own_sent,
            last.own_total,
            last.peer_done,
            last.peer_total
        ),
        (20, 20, 45, 45)
    );
    assert!(seen.windows(2).all(|w| w[0].peer_done <= w[1].peer_done));
}

#[test]
fn what_is_sent_is_fresh_per_run_and_not_in_input_order() {
    // Party 1 is a recorder: it captures party 0's first blinded batch. The same ids under two
    // seeds share no point (a fresh exponent per run); the same seed reproduces the batch.
    let s = sets(32, 32, 0);
    let capture = |seed: u8| {
        let s = s.clone();
        block_on(run_in_memory(2, DEFAULT_MAX_MESSAGE, move |t| {
            let ids = s[t.me()].clone();
            async move {
                let params = PsiParams::new("j", PsiMode::IntersectionTo(1));
                if t.me() == 0 {
                    let mut rng = ChaCha20Rng::from_seed([seed; 32]);
                    run(&t, &params, &ids, &mut rng, |_| {}).await.unwrap();
                    Vec::new()
                } else {
                    t.send(0, Header::ours(&params, 0).encode()).await.unwrap();
                    t.recv(0).await.unwrap();
                    t.end_round();
                    let msg = t.recv(0).await.unwrap();
                    let mut empty = 0u32.to_le_bytes().to_vec();
                    empty.extend_from_slice(&0u32.to_le_bytes());
                    t.send(0, empty.clone()).await.unwrap();
                    t.end_round();
                    t.recv(0).await.unwrap();
                    t.send(0, empty).await.unwrap();
                    msg
                }
            }
        }))
        .unwrap()
        .remove(1)
    };
    let (a, b, a2) = (capture(1), capture(2), capture(1));
    assert_eq!(a, a2, "deterministic for a fixed seed");
    let pa: HashSet<&[u8]> = a[4..4 + 32 * 32].chunks(32).collect();
    let pb: HashSet<&[u8]> = b[4..4 + 32 * 32].chunks(32).collect();
    assert!(pa.is_disjoint(&pb), "a fresh exponent changes every point");
}

/// A fake peer announces one id more than the real party's limit: the run fails at the header,
/// naming the peer and both numbers, before a batch is sent or anything is kept for the peer.
#[test]
fn a_peer_set_above_the_limit_is_refused_at_the_header() {
    let out = block_on(run_in_memory(2, DEFAULT_MAX_MESSAGE, |t| async move {
        let mut params = PsiParams::new("j", PsiMode::IntersectionToBoth);
        params.max_peer_set = 1000;
        if t.me() == 0 {
            let ids: Vec<String> = (0..10).map(|k| format!("id-{k}")).collect();
            let mut rng = ChaCha20Rng::from_seed([3; 32]);
            return run(&t, &params, &ids, &mut rng, |_| {}).await.map(|_| 0);
        }
        t.send(0, Header::ours(&params, 1001).encode()).await?;
        t.recv(0).await?;
        t.end_round();
        // Whatever party 0 sends after its header: none is expected.
        let more = t.recv(0).await.map(|m| m.len()).unwrap_or(0);
        Ok(more)
    }))
    .unwrap();
    assert!(
        matches!(
            out[0],
            Err(MpcError::OverLimit {
                from: 1,
                declared: 1001,
                limit: 1000,
                ..
            })
        ),
        "{:?}",
        out[0]
    );
    assert!(matches!(out[1], Ok(0)), "{:?}", out[1]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn random_sets_match_the_clear_intersection(
        a in proptest::collection::hash_set("[a-z0-9]{1,12}", 0..60),
        b in proptest::collection::hash_set("[a-z0-9]{1,12}", 0..60),
        batch in 1usize..20,
        mode in 0u8..3,
    ) {
        let s = [a.into_iter().collect::<Vec<_>>(), b.into_iter().collect::<Vec<_>>()];
        let clear = clear_intersection(&s[0], &s[1]);
        let mode = match mode {
            0 => PsiMode::IntersectionToBoth,
            1 => PsiMode::IntersectionTo(1),
            _ => PsiMode::CardinalityTo(0),
        };
        let out = run2(&s, mode, batch);
        for p in 0..2 {
            let o = &out[p].as_ref().unwrap().0;
            if mode.learns_intersection(p) {
                let got: HashSet<String> = matched_ids(&s[p], o).into_iter().collect();
                prop_assert_eq!(&got, &clear);
            }
            if mode.learns_size(p) {
                prop_assert_eq!(o.size, Some(clear.len() as u64));
            } else {
                prop_assert_eq!(o.size, None);
            }
        }
    }
}
