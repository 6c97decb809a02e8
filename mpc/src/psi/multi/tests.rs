//! Three to five parties in-process over `run_in_memory`; every outcome is compared with the
//! intersection computed in the clear. Misbehaving peers are written out message by message.

use std::collections::{BTreeSet, HashSet};

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::super::DEFAULT_MAX_PEER_SET;
use super::super::wire::MultiHeader;
use super::*;
use crate::transport::{CounterSnapshot, DEFAULT_MAX_MESSAGE, TransportError, run_in_memory};

type Outcome = Result<(MultiPsiOutcome, CounterSnapshot), MpcError>;

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Party `i` holds `"id-<k>"` for `k` in `ranges[i]`.
fn sets(ranges: &[std::ops::Range<usize>]) -> Vec<Vec<String>> {
    ranges
        .iter()
        .map(|r| r.clone().map(|k| format!("id-{k}")).collect())
        .collect()
}

fn clear_intersection(sets: &[Vec<String>]) -> HashSet<String> {
    let mut common: HashSet<String> = sets[0].iter().cloned().collect();
    for s in &sets[1..] {
        let s: HashSet<&String> = s.iter().collect();
        common.retain(|id| s.contains(id));
    }
    common
}

fn run_n(sets: &[Vec<String>], mode: MultiPsiMode, batch: usize) -> Vec<Outcome> {
    let sets = sets.to_vec();
    block_on(run_in_memory(sets.len(), DEFAULT_MAX_MESSAGE, move |t| {
        let ids = sets[t.me()].clone();
        async move {
            let mut params = MultiPsiParams::new("psi-multi-test", mode);
            params.batch = batch;
            let mut rng = ChaCha20Rng::from_seed([t.me() as u8 + 1; 32]);
            let out = run(&t, &params, &ids, &mut rng, |_| {}).await?;
            Ok((out, t.counters().snapshot()))
        }
    }))
    .unwrap()
}

fn matched_ids(ids: &[String], out: &MultiPsiOutcome) -> Vec<String> {
    out.matched
        .as_ref()
        .expect("this party learns the intersection")
        .iter()
        .map(|&i| ids[i].clone())
        .collect()
}

/// Checks every party's outcome against the clear intersection under `mode`.
fn check(sets: &[Vec<String>], mode: MultiPsiMode, out: &[Outcome]) {
    let clear = clear_intersection(sets);
    let sizes: Vec<u64> = sets.iter().map(|s| s.len() as u64).collect();
    let mut common_order: Option<Vec<String>> = None;
    for (p, o) in out.iter().enumerate() {
        let (o, _) = o
            .as_ref()
            .unwrap_or_else(|e| panic!("party {p} failed: {e}"));
        assert_eq!(o.set_sizes, sizes, "party {p}, mode {mode:?}");
        if mode.learns_intersection(p) {
            let got = matched_ids(&sets[p], o);
            assert_eq!(
                got.iter().cloned().collect::<HashSet<_>>(),
                clear,
                "party {p}, mode {mode:?}, sizes {sizes:?}"
            );
            assert_eq!(got.len(), clear.len(), "no id twice (party {p})");
            match &common_order {
                None => common_order = Some(got),
                Some(order) => assert_eq!(&got, order, "common order (party {p}, {mode:?})"),
            }
        } else {
            assert_eq!(o.matched, None, "party {p}, mode {mode:?}");
        }
        if mode.learns_size(p) {
            assert_eq!(o.size, Some(clear.len() as u64), "party {p}, mode {mode:?}");
        } else {
            assert_eq!(o.size, None, "party {p}, mode {mode:?}");
        }
    }
}

#[test]
fn three_parties_all_learn_the_intersection_in_the_same_order() {
    // X_1 ∩ X_2 = 10..50, the intersection 20..50; uneven batches of 7.
    let s = sets(&[0..50, 10..60, 20..75]);
    let mode = MultiPsiMode::IntersectionTo(PartySet::all(3));
    let out = run_n(&s, mode, 7);
    check(&s, mode, &out);
    assert_eq!(out[0].as_ref().unwrap().0.size, Some(30));
}

#[test]
fn four_parties_in_every_mode_match_the_clear_intersection() {
    let s = sets(&[0..40, 5..60, 10..45, 0..38]);
    let mut modes = vec![
        MultiPsiMode::IntersectionTo(PartySet::all(4)),
        MultiPsiMode::IntersectionTo(PartySet::new(&[0, 2]).unwrap()),
    ];
    for r in 0..4 {
        modes.push(MultiPsiMode::IntersectionTo(PartySet::new(&[r]).unwrap()));
        modes.push(MultiPsiMode::CardinalityTo(r));
    }
    for mode in modes {
        check(&s, mode, &run_n(&s, mode, 9));
    }
}

#[test]
fn five_parties_and_one_batch() {
    let s = sets(&[0..30, 3..33, 6..36, 9..39, 12..42]);
    let mode = MultiPsiMode::IntersectionTo(PartySet::all(5));
    check(&s, mode, &run_n(&s, mode, super::super::DEFAULT_BATCH));
}

#[test]
fn empty_sets_and_an_empty_intersection() {
    for ranges in [
        vec![0..0, 0..0, 0..0],
        vec![0..10, 0..0, 0..10],
        vec![0..10, 0..10, 0..0],
        vec![0..10, 10..20, 0..20],
        vec![0..10, 0..10, 10..20],
    ] {
        let s = sets(&ranges);
        for mode in [
            MultiPsiMode::IntersectionTo(PartySet::all(3)),
            MultiPsiMode::CardinalityTo(1),
        ] {
            let out = run_n(&s, mode, 4);
            check(&s, mode, &out);
        }
    }
}

/// Bytes and rounds as the module docs state, for three parties in chain order 0, 1, 2.
#[test]
fn cost_matches_the_documented_count() {
    let (n0, n1, n2, batch) = (50u64, 37u64, 61u64, 16u64);
    let s = sets(&[0..50, 20..57, 10..71]); // intersection 20..50
    let r = |n: u64| n.div_ceil(batch).max(1);
    let (r1, r2, r3) = (r(n0.max(n1).max(n2)), r(n0.max(n2)), r(n2.max(n0.min(n1))));
    let header = 28 * 2;
    let expect = [
        header + 32 * n0 + 4 * r1 + 32 * n2 + 4 * r3 + 32 * n0.min(n1) + 4 * r3,
        header + 32 * n1 + 4 * r1 + 32 * n0 + 4 * r2 + 32 * n2 + 4 * r2,
        header + 32 * n2 + 4 * r1,
    ];
    let to_final = MultiPsiMode::IntersectionTo(PartySet::new(&[2]).unwrap());
    let out = run_n(&s, to_final, batch as usize);
    for (p, o) in out.iter().enumerate() {
        let (o, c) = o.as_ref().unwrap();
        assert_eq!(c.bytes_sent, expect[p], "party {p}");
        assert_eq!(o.rounds as u64, 1 + r1 + r2 + r3, "party {p}");
        assert_eq!(c.rounds, 1 + r1 + r2 + r3, "party {p}");
    }
    // To all: the final party also hands each other receiver 16 bytes per id of the intersection.
    let out = run_n(
        &s,
        MultiPsiMode::IntersectionTo(PartySet::all(3)),
        batch as usize,
    );
    let r4 = r(n0.min(n1).min(n2));
    let (o, c) = out[2].as_ref().unwrap();
    assert_eq!(c.bytes_sent, expect[2] + 2 * (12 * r4 + 16 * 30));
    assert_eq!(o.rounds as u64, 1 + r1 + r2 + r3 + r4);
    assert_eq!(out[0].as_ref().unwrap().1.bytes_sent, expect[0]);
}

/// What a party sends and receives depends on the set sizes only (the intersection goes to the
/// final party alone here, so no message carries it).
#[test]
fn traffic_does_not_depend_on_the_intersection() {
    let a = sets(&[0..40, 0..40, 0..40]); // everything shared
    let b = sets(&[0..40, 40..80, 80..120]); // nothing shared
    let c = sets(&[0..40, 20..60, 30..70]); // some
    for mode in [
        MultiPsiMode::IntersectionTo(PartySet::new(&[1]).unwrap()),
        MultiPsiMode::CardinalityTo(0),
    ] {
        let traffic = |s: &[Vec<String>]| -> Vec<(u64, u64, u64)> {
            run_n(s, mode, 8)
                .into_iter()
                .map(|o| {
                    let c = o.unwrap().1;
                    (c.bytes_sent, c.bytes_received, c.messages_sent)
                })
                .collect()
        };
        let ta = traffic(&a);
        assert_eq!(ta, traffic(&b), "{mode:?}");
        assert_eq!(ta, traffic(&c), "{mode:?}");
    }
}

/// The design's invariant, checked on the schedule for 3 to 8 parties: a party holds two lists
/// under the same product of exponents only where the protocol compares them — its own set with
/// `X_2` at the combiner (`[1,2]`), `X_j` with the candidates at the combiner (`[1..j]`), and the
/// final party's own set with the last candidates (`[1..m]`).
#[test]
fn nobody_holds_two_lists_under_the_same_exponents_unless_meant_to() {
    for m in 3..=8usize {
        let steps = schedule(&vec![10; m]);
        // (party, product) -> labels of the lists that party holds under that product.
        let mut held: HashMap<(usize, BTreeSet<usize>), BTreeSet<String>> = HashMap::new();
        let mut note = |party: usize, product: BTreeSet<usize>, label: String| {
            held.entry((party, product)).or_default().insert(label);
        };
        for j in 0..m {
            note(j, BTreeSet::from([j]), format!("X{j}"));
        }
        for tr in steps.iter().flatten() {
            let (label, before): (String, BTreeSet<usize>) = match tr.stream {
                Stream::Pass { owner, hop } => (
                    format!("X{owner}"),
                    pass_path(owner, m)[..hop].iter().copied().collect(),
                ),
                Stream::CandOut { at } => ("cand".into(), (0..at).collect()),
                Stream::CandBack { at } => ("cand".into(), (0..=at).collect()),
                Stream::Final => ("cand".into(), (0..m - 1).collect()),
            };
            // The sender holds it before; the receiver sees it and, re-blinding, holds it after.
            note(tr.from, before.clone(), label.clone());
            note(tr.to, before.clone(), label.clone());
            let mut after = before;
            after.insert(tr.to);
            note(tr.to, after, label);
        }
        for ((party, product), labels) in &held {
            if labels.len() < 2 {
                continue;
            }
            let top = product.iter().max().copied().unwrap_or(0);
            let meant = match (party, product.len()) {
                (0, 2) if product == &BTreeSet::from([0, 1]) => {
                    BTreeSet::from(["X0".into(), "X1".into(), "cand".into()])
                }
                (0, k) if k == top + 1 && top < m - 1 => {
                    BTreeSet::from([format!("X{top}"), "cand".to_string()])
                }
                (p, k) if *p == m - 1 && k == m => {
                    BTreeSet::from([format!("X{}", m - 1), "cand".to_string()])
                }
                _ => BTreeSet::new(),
            };
            assert!(
                labels.is_subset(&meant),
                "m = {m}: party at chain position {party} holds {labels:?} under {product:?}"
            );
        }
    }
}

#[test]
fn duplicates_are_refused_before_anything_is_sent() {
    let mut s = sets(&[0..5, 0..5, 0..5]);
    s[1].push("id-3".into());
    let out = run_n(&s, MultiPsiMode::IntersectionTo(PartySet::all(3)), 4);
    assert!(
        matches!(out[1], Err(MpcError::DuplicateIds { count: 1 })),
        "{:?}",
        out[1]
    );
    for p in [0, 2] {
        assert!(
            matches!(out[p], Err(MpcError::Transport(_))),
            "{:?}",
            out[p]
        );
    }
}

#[test]
fn parties_that_disagree_on_the_mode_all_stop() {
    let s = sets(&[0..5, 0..5, 0..5]);
    let out = block_on(run_in_memory(3, DEFAULT_MAX_MESSAGE, move |t| {
        let ids = s[t.me()].clone();
        async move {
            let mode = if t.me() == 2 {
                MultiPsiMode::CardinalityTo(2)
            } else {
                MultiPsiMode::IntersectionTo(PartySet::new(&[2]).unwrap())
            };
            let mut rng = ChaCha20Rng::from_seed([9; 32]);
            let params = MultiPsiParams::new("j", mode);
            run(&t, &params, &ids, &mut rng, |_| {}).await
        }
    }))
    .unwrap();
    for o in out {
        assert!(matches!(o, Err(MpcError::ProtocolMismatch { .. })), "{o:?}");
    }
}

/// Party 2 (the final party of chain 0, 1, 2) announces 3 ids and sends `points` (with `count`
/// as its count) as the first hop of its set, then stays until party 1 hangs up.
fn run_with_bad_final_party(count: u32, points: Vec<u8>) -> Vec<Result<(), MpcError>> {
    let s = sets(&[0..4, 0..4, 0..0]);
    block_on(run_in_memory(3, DEFAULT_MAX_MESSAGE, move |t| {
        let ids = s[t.me()].clone();
        let points = points.clone();
        async move {
            let mode = MultiPsiMode::IntersectionTo(PartySet::new(&[2]).unwrap());
            let params = MultiPsiParams::new("j", mode);
            if t.me() != 2 {
                let mut rng = ChaCha20Rng::from_seed([t.me() as u8; 32]);
                return run(&t, &params, &ids, &mut rng, |_| {}).await.map(|_| ());
            }
            let h = MultiHeader::ours(&params, 3, 3).encode();
            exchange(&t, |_| h.clone()).await?;
            t.send(0, Vec::new()).await?;
            let mut msg = count.to_le_bytes().to_vec();
            msg.extend_from_slice(&points);
            t.send(1, msg).await?;
            t.recv(0).await?;
            t.recv(1).await?;
            t.end_round();
            let _ = t.recv(1).await; // until party 1 stops
            Ok(())
        }
    }))
    .unwrap()
}

#[test]
fn a_point_that_does_not_decode_aborts_naming_sender_and_position() {
    let good = curve25519_dalek::constants::RISTRETTO_BASEPOINT_COMPRESSED.to_bytes();
    let mut points = [good, good].concat();
    points.extend_from_slice(&[0xff; 32]);
    let out = run_with_bad_final_party(3, points.clone());
    assert!(
        matches!(out[1], Err(MpcError::InvalidPoint { from: 2, index: 2 })),
        "{:?}",
        out[1]
    );
    // The identity is refused too.
    points[32..64].fill(0);
    let out = run_with_bad_final_party(3, points);
    assert!(
        matches!(out[1], Err(MpcError::InvalidPoint { from: 2, index: 1 })),
        "{:?}",
        out[1]
    );
}

#[test]
fn a_batch_with_the_wrong_count_aborts_naming_the_sender() {
    let good = curve25519_dalek::constants::RISTRETTO_BASEPOINT_COMPRESSED.to_bytes();
    let out = run_with_bad_final_party(2, [good, good].concat());
    assert!(
        matches!(out[1], Err(MpcError::MalformedMessage { from: 2, .. })),
        "{:?}",
        out[1]
    );
    let out = run_with_bad_final_party(3, [good, good].concat());
    assert!(
        matches!(out[1], Err(MpcError::MalformedMessage { from: 2, .. })),
        "{:?}",
        out[1]
    );
}

#[test]
fn a_peer_that_disconnects_mid_run_is_an_error() {
    let s = sets(&[0..64, 0..64, 0..64]);
    let out = block_on(run_in_memory(3, DEFAULT_MAX_MESSAGE, move |t| {
        let ids = s[t.me()].clone();
        async move {
            let mode = MultiPsiMode::IntersectionTo(PartySet::all(3));
            let mut params = MultiPsiParams::new("j", mode);
            params.batch = 8;
            if t.me() == 1 {
                // Header and the first round's messages, then gone.
                let h = MultiHeader::ours(&params, 3, 64).encode();
                exchange(&t, |_| h.clone()).await?;
                t.send(0, 0u32.to_le_bytes().to_vec()).await?;
                return Ok(None);
            }
            let mut rng = ChaCha20Rng::from_seed([t.me() as u8; 32]);
            run(&t, &params, &ids, &mut rng, |_| {}).await.map(Some)
        }
    }))
    .unwrap();
    // Party 0 names party 1 (it sees the short batch or the closed link); party 2 may see
    // either peer go.
    assert!(
        matches!(
            out[0],
            Err(MpcError::Transport(TransportError::PeerDisconnected {
                peer: 1
            })) | Err(MpcError::MalformedMessage { from: 1, .. })
        ),
        "{:?}",
        out[0]
    );
    assert!(
        matches!(
            out[2],
            Err(MpcError::Transport(TransportError::PeerDisconnected { .. }))
        ),
        "{:?}",
        out[2]
    );
}

#[test]
fn a_hand_over_naming_a_foreign_or_unordered_id_is_refused() {
    let ids: Vec<String> = (0..20).map(|k| format!("id-{k}")).collect();
    let prefix = id_tag_prefix("j");
    let mut tags: Vec<u128> = ids[..5]
        .iter()
        .map(|id| id_tag(&prefix, id.as_bytes()))
        .collect();
    tags.sort_unstable();
    let got = match_tags("j", &ids, &tags, 2, 9).unwrap();
    let names: BTreeSet<usize> = got.iter().map(|(_, i)| *i).collect();
    assert_eq!(names, (0..5).collect());
    let mut unordered = tags.clone();
    unordered.swap(0, 1);
    assert!(matches!(
        match_tags("j", &ids, &unordered, 2, 9),
        Err(MpcError::MalformedMessage { from: 2, .. })
    ));
    let mut foreign = tags.clone();
    foreign.push(id_tag(&prefix, b"not-mine"));
    foreign.sort_unstable();
    assert!(matches!(
        match_tags("j", &ids, &foreign, 2, 9),
        Err(MpcError::MalformedMessage { from: 2, .. })
    ));
}

#[test]
fn bad_parameters_are_refused_up_front() {
    let out = block_on(run_in_memory(2, DEFAULT_MAX_MESSAGE, |t| async move {
        let params = MultiPsiParams::new("j", MultiPsiMode::CardinalityTo(0));
        let ids: Vec<String> = Vec::new();
        run(
            &t,
            &params,
            &ids,
            &mut ChaCha20Rng::from_seed([0; 32]),
            |_| {},
        )
        .await
    }))
    .unwrap();
    assert!(matches!(out[0], Err(MpcError::PartyCount { got: 2, .. })));
    let out = block_on(run_in_memory(3, DEFAULT_MAX_MESSAGE, |t| async move {
        let params = MultiPsiParams::new("j", MultiPsiMode::CardinalityTo(3));
        let ids: Vec<String> = Vec::new();
        run(
            &t,
            &params,
            &ids,
            &mut ChaCha20Rng::from_seed([0; 32]),
            |_| {},
        )
        .await
    }))
    .unwrap();
    assert!(matches!(out[0], Err(MpcError::BadParams(_))));
    assert_eq!(PartySet::new(&[1, 64]), None);
    assert_eq!(
        chain(
            4,
            MultiPsiMode::IntersectionTo(PartySet::new(&[0, 2]).unwrap())
        ),
        Some(vec![0, 1, 3, 2])
    );
}

#[test]
fn progress_reaches_the_totals() {
    let s = sets(&[0..20, 5..45, 0..33]);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    block_on(run_in_memory(3, DEFAULT_MAX_MESSAGE, move |t| {
        let ids = s[t.me()].clone();
        let seen = seen2.clone();
        async move {
            let mut params =
                MultiPsiParams::new("j", MultiPsiMode::IntersectionTo(PartySet::all(3)));
            params.batch = 10;
            let mut rng = ChaCha20Rng::from_seed([t.me() as u8; 32]);
            run(&t, &params, &ids, &mut rng, |p| {
                if t.me() == 1 {
                    seen.lock().unwrap().push(p);
                }
            })
            .await
            .unwrap();
        }
    }))
    .unwrap();
    let seen = seen.lock().unwrap();
    let last = seen.last().unwrap();
    // Party 1 (P_2) sends X_2, X_1 re-blinded and X_3 on its way; receives X_1 and X_3.
    assert_eq!(
        (
            last.own_sent,
            last.own_total,
            last.peer_done,
            last.peer_total
        ),
        (40 + 20 + 33, 40 + 20 + 33, 20 + 33, 20 + 33)
    );
    assert!(seen.windows(2).all(|w| w[0].own_sent <= w[1].own_sent));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    #[test]
    fn random_sets_match_the_clear_intersection(
        sets in proptest::collection::vec(
            proptest::collection::hash_set("[a-f0-9]{1,3}", 0..50), 3..5),
        batch in 1usize..20,
        mode in 0u8..3,
        who in 0usize..4,
    ) {
        let sets: Vec<Vec<String>> = sets.into_iter().map(|s| s.into_iter().collect()).collect();
        let m = sets.len();
        let mode = match mode {
            0 => MultiPsiMode::IntersectionTo(PartySet::all(m)),
            1 => MultiPsiMode::IntersectionTo(PartySet::new(&[who % m]).unwrap()),
            _ => MultiPsiMode::CardinalityTo(who % m),
        };
        check(&sets, mode, &run_n(&sets, mode, batch));
    }
}

#[test]
fn a_padded_list_holds_every_candidate_once_among_fresh_random_points() {
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    let cand = random_points(13, &mut rng);
    let mut padded = Padded::new(cand.clone(), 40, 7, &mut rng).unwrap();
    let real = padded.real.clone();
    let list: Vec<Point> = (0..6u64)
        .flat_map(|k| padded.batch(k, Batches::new(40, 7).range(k)))
        .collect();
    assert_eq!(list.len(), 40);
    assert_eq!(real.iter().filter(|r| **r).count(), 13);
    let reals: HashSet<Point> = list
        .iter()
        .zip(&real)
        .filter(|(_, r)| **r)
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(reals, cand.iter().copied().collect());
    assert_eq!(
        list.iter().collect::<HashSet<_>>().len(),
        40,
        "dummies are fresh"
    );
    assert_eq!(
        check_points(&list.concat()),
        Ok(()),
        "dummies are valid points"
    );
    assert!(
        Padded::new(cand, 12, 7, &mut rng).is_err(),
        "more candidates than room"
    );
}

/// Two fake peers announce 2^32 ids each (at the old hard cap) and send nothing more: the real
/// party refuses the declared size against its limit before allocating anything for their lists
/// (it used to reserve 32 bytes per announced id, 128 GiB, and the allocation failure aborted
/// the process).
#[test]
fn a_declared_set_above_the_limit_is_refused_before_allocating() {
    let out = block_on(run_in_memory(3, DEFAULT_MAX_MESSAGE, move |t| async move {
        let mode = MultiPsiMode::IntersectionTo(PartySet::all(3));
        let params = MultiPsiParams::new("j", mode);
        if t.me() == 0 {
            let ids: Vec<String> = (0..4).map(|k| format!("id-{k}")).collect();
            let mut rng = ChaCha20Rng::from_seed([1; 32]);
            return run(&t, &params, &ids, &mut rng, |_| {}).await.map(|_| ());
        }
        let h = MultiHeader::ours(&params, 3, 1 << 32).encode();
        exchange(&t, |_| h.clone()).await?;
        let _ = t.recv(0).await; // until party 0 stops
        Ok(())
    }))
    .unwrap();
    assert!(
        matches!(
            out[0],
            Err(MpcError::OverLimit {
                from: 1 | 2,
                declared: 4_294_967_296,
                limit: DEFAULT_MAX_PEER_SET,
                ..
            })
        ),
        "{:?}",
        out[0]
    );
}
