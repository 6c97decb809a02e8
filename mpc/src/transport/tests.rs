//! The channel layer over in-memory links; attack tests use a raw link as a hostile peer that
//! sends whatever tags and lengths it likes.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use super::*;

/// A channel for party 1 and a raw link for party 0 (the fake peer) of a two-party network.
fn victim_and_fake(max: usize) -> (Channel, InMemoryTransport) {
    let mut net = InMemoryTransport::network(2);
    let victim = Channel::new(Arc::new(net.pop().unwrap()), max);
    (victim, net.pop().unwrap())
}

fn tag(path: &str, round: u32) -> Tag {
    Tag {
        scope: ScopeId::of(path),
        round,
    }
}

#[tokio::test]
async fn a_message_of_another_scope_is_refused_by_scope() {
    let (victim, fake) = victim_and_fake(DEFAULT_MAX_MESSAGE);
    let batch = victim.child("psi").child("batch");
    // A release-barrier message where a PSI batch is expected.
    fake.send(1, tag("barrier", 0), vec![0; 32]).await.unwrap();
    assert_eq!(
        batch.recv(0).await,
        Err(TransportError::UnexpectedScope {
            peer: 0,
            expected: "psi/batch".into(),
            got: ScopeId::of("barrier").0,
        })
    );
}

#[tokio::test]
async fn a_message_of_another_round_is_refused_by_round() {
    let (victim, fake) = victim_and_fake(DEFAULT_MAX_MESSAGE);
    let psi = victim.child("psi");
    fake.send(1, tag("psi", 1), vec![1]).await.unwrap();
    assert_eq!(
        psi.recv(0).await,
        Err(TransportError::UnexpectedRound {
            peer: 0,
            expected: 0,
            got: 1
        })
    );
}

#[tokio::test]
async fn an_oversize_message_is_refused_both_ways_and_not_counted() {
    let (victim, fake) = victim_and_fake(4);
    let ch = victim.child("psi");
    fake.send(1, tag("psi", 0), vec![0; 5]).await.unwrap();
    assert_eq!(
        ch.recv(0).await,
        Err(TransportError::MessageTooLarge {
            peer: 0,
            len: 5,
            max: 4
        })
    );
    assert_eq!(victim.counters().snapshot(), CounterSnapshot::default());

    let (sender, fake) = victim_and_fake(4);
    assert_eq!(
        sender.send(0, vec![0; 5]).await,
        Err(TransportError::MessageTooLarge {
            peer: 0,
            len: 5,
            max: 4
        })
    );
    assert_eq!(sender.counters().snapshot(), CounterSnapshot::default());
    // Nothing reached the link: once the sender is gone, the peer sees only the disconnect.
    drop(sender);
    assert_eq!(
        fake.recv(1, usize::MAX).await,
        Err(TransportError::PeerDisconnected { peer: 1 })
    );
}

#[tokio::test]
async fn a_failed_session_refuses_every_channel_without_touching_the_link() {
    let (victim, fake) = victim_and_fake(DEFAULT_MAX_MESSAGE);
    let psi = victim.child("psi");
    fake.send(1, tag("psi", 7), vec![1]).await.unwrap();
    assert!(matches!(
        psi.recv(0).await,
        Err(TransportError::UnexpectedRound { .. })
    ));
    // A well-formed message is now waiting; no channel of the session may read it.
    fake.send(1, tag("psi", 0), vec![2]).await.unwrap();
    assert!(victim.is_poisoned());
    assert_eq!(psi.recv(0).await, Err(TransportError::Poisoned));
    assert_eq!(psi.send(0, vec![3]).await, Err(TransportError::Poisoned));
    let barrier = victim.child("barrier");
    assert_eq!(barrier.recv(0).await, Err(TransportError::Poisoned));
    assert_eq!(
        exchange(&barrier, |_| vec![0; 32]).await,
        Err(TransportError::Poisoned)
    );
    assert_eq!(victim.counters().snapshot(), CounterSnapshot::default());
    // Nothing was sent: once the victim is gone, the fake peer sees only the disconnect.
    drop((psi, barrier, victim));
    assert_eq!(
        fake.recv(1, usize::MAX).await,
        Err(TransportError::PeerDisconnected { peer: 1 })
    );
}

#[tokio::test]
async fn poison_marks_the_session_failed() {
    let (victim, _fake) = victim_and_fake(DEFAULT_MAX_MESSAGE);
    let a = victim.child("a");
    a.poison();
    assert_eq!(
        victim.child("b").send(0, vec![]).await,
        Err(TransportError::Poisoned)
    );
}

#[tokio::test]
async fn repeated_child_names_get_distinct_deterministic_paths() {
    let out = run_in_memory(2, DEFAULT_MAX_MESSAGE, |root| async move {
        let first = root.child("psi");
        let second = root.child("psi");
        let nested = second.child("batch");
        let paths = [
            first.path().to_string(),
            second.path().to_string(),
            nested.path().to_string(),
            root.child("psi").path().to_string(),
        ];
        // Messages of the two `psi` children cannot be confused: a `psi#1` message arrives
        // where `psi` was expected.
        let peer = 1 - root.me();
        if root.me() == 0 {
            second.send(peer, vec![1]).await.unwrap();
            (paths, None)
        } else {
            (paths, Some(first.recv(peer).await))
        }
    })
    .await
    .unwrap();
    for (paths, _) in &out {
        assert_eq!(paths, &["psi", "psi#1", "psi#1/batch", "psi#2"]);
    }
    assert_eq!(
        out[1].1,
        Some(Err(TransportError::UnexpectedScope {
            peer: 0,
            expected: "psi".into(),
            got: ScopeId::of("psi#1").0
        }))
    );
}

#[tokio::test]
async fn rounds_start_at_zero_in_each_channel_and_advance_per_round() {
    let out = run_in_memory(2, DEFAULT_MAX_MESSAGE, |root| async move {
        let a = root.child("a");
        for i in 0..3u8 {
            exchange(&a, |_| vec![i]).await.unwrap();
        }
        let b = root.child("b");
        let got = exchange(&b, |_| vec![9]).await.unwrap();
        (a.round(), b.round(), got, root.counters().snapshot().rounds)
    })
    .await
    .unwrap();
    for (me, (a, b, got, rounds)) in out.into_iter().enumerate() {
        assert_eq!((a, b, rounds), (3, 1, 4));
        assert_eq!(got[1 - me], Some(vec![9]));
    }
}

#[tokio::test]
async fn a_view_maps_indices_and_shares_counters() {
    let out = run_in_memory(3, DEFAULT_MAX_MESSAGE, |t| async move {
        let psi = t.child("psi");
        if t.me() == 1 {
            return (t.counters().snapshot().messages_sent, Vec::new());
        }
        let sub = psi.among(&[2, 0]).unwrap();
        assert_eq!(sub.parties(), 2);
        let got = exchange(&sub, |peer| vec![sub.me() as u8, peer as u8])
            .await
            .unwrap();
        // A view of a view composes.
        assert!(sub.child("x").among(&[1 - sub.me()]).is_none());
        assert!(sub.send(2, vec![]).await.is_err());
        let snap = t.counters().snapshot();
        (snap.messages_sent, got[1 - sub.me()].clone().unwrap())
    })
    .await
    .unwrap();
    // Party 0 is member 1 of the view, party 2 member 0; party 1 saw nothing.
    assert_eq!(out[0], (1, vec![0, 1]));
    assert_eq!(out[1], (0, vec![]));
    assert_eq!(out[2], (1, vec![1, 0]));
}

#[tokio::test]
async fn a_view_refuses_outsiders_and_repeats() {
    let mut chans = InMemoryTransport::channels(3, DEFAULT_MAX_MESSAGE);
    let c1 = chans.remove(1);
    assert!(c1.child("a").among(&[0, 2]).is_none());
    assert!(c1.child("b").among(&[1, 1]).is_none());
    assert!(c1.child("c").among(&[1, 3]).is_none());
    // A view of a view maps through both.
    let v = c1
        .child("d")
        .among(&[2, 1, 0])
        .unwrap()
        .among(&[1, 2])
        .unwrap();
    assert_eq!((v.me(), v.parties()), (0, 2));
}

#[tokio::test]
async fn digests_of_sent_and_received_traffic_agree_across_peers() {
    let tasks: Vec<_> = InMemoryTransport::network(3)
        .into_iter()
        .map(|link| {
            tokio::spawn(async move {
                let link = Arc::new(DigestedLink::new(link));
                let ch = Channel::new(link.clone(), DEFAULT_MAX_MESSAGE);
                let me = ch.me() as u8;
                for round in 1..=3u8 {
                    exchange(&ch, |peer| [me, peer as u8, round].repeat(5))
                        .await
                        .unwrap();
                }
                link.traffic()
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    for (a, traffic) in results.iter().enumerate() {
        assert_eq!(traffic.len(), 2);
        for t in traffic {
            let mirror = results[t.peer].iter().find(|u| u.peer == a).unwrap();
            assert_eq!(t.sent_sha256, mirror.received_sha256);
            assert_eq!((t.sent_bytes, mirror.received_bytes), (45, 45));
            // Different directions carry different messages, so different digests.
            assert_ne!(t.sent_sha256, t.received_sha256);
        }
    }
}

#[tokio::test]
async fn exchange_delivers_and_counts_exactly() {
    let results = run_in_memory(3, DEFAULT_MAX_MESSAGE, |t| async move {
        let got = exchange(&t, |peer| vec![t.me() as u8, peer as u8, 7]).await;
        (got, t.counters().snapshot())
    })
    .await
    .unwrap();
    for (me, (got, counters)) in results.into_iter().enumerate() {
        for (peer, msg) in got.unwrap().into_iter().enumerate() {
            if peer == me {
                assert!(msg.is_none());
            } else {
                assert_eq!(msg.unwrap(), vec![peer as u8, me as u8, 7]);
            }
        }
        assert_eq!(
            counters,
            CounterSnapshot {
                rounds: 1,
                bytes_sent: 6,
                bytes_received: 6,
                messages_sent: 2,
                messages_received: 2,
            }
        );
    }
}

#[tokio::test]
async fn unknown_peers_and_disconnects_are_errors() {
    let mut chans = InMemoryTransport::channels(2, DEFAULT_MAX_MESSAGE);
    assert_eq!(
        chans[0].send(0, vec![]).await,
        Err(TransportError::UnknownPeer { peer: 0 })
    );
    let p1 = chans.pop().unwrap();
    drop(chans);
    assert_eq!(
        p1.recv(0).await,
        Err(TransportError::PeerDisconnected { peer: 0 })
    );
}
