//! The protocol's messages and both cores, message by message, without tfhe work: the owner's
//! decryption is stood in for by the values it would return (`OwnerBatch::accept`), the
//! evaluator's evaluation by masks of known words. A real job through both cores runs in
//! `tests/fhe.rs` with the binary's shared keys.

use std::ops::Range;

use super::*;
use crate::keys::ServerKeyBytes;
use crate::mask::{Masks, Release, RowResult};
use crate::model::Feature;
use crate::wire::Uploaded;

fn key() -> ServerKeyBytes {
    ServerKeyBytes::for_tests(vec![7; 1000])
}

/// The `what` of a protocol error.
fn what<T: std::fmt::Debug>(r: Result<T, FheError>) -> &'static str {
    match r {
        Err(FheError::Protocol { what, .. }) => what,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn a_key_offer_round_trips_and_refuses_a_wrong_length_or_an_oversized_key() {
    let offer = KeyOffer::of(&key());
    assert_eq!(offer.size, 1000);
    let bytes = offer.encode();
    assert_eq!(&bytes[..32], key().key_id().as_bytes());
    assert_eq!(&bytes[32..], &1000u64.to_le_bytes());
    assert_eq!(KeyOffer::decode(&bytes, 1000).unwrap(), offer);

    for len in [0, 32, 39, 41] {
        let mut msg = bytes.to_vec();
        msg.resize(len, 0);
        assert_eq!(
            what(KeyOffer::decode(&msg, u64::MAX)),
            "key offer is not 40 bytes",
            "{len} bytes"
        );
    }
    // Above the channel's limit, and above the server-key limit whatever the channel allows.
    assert!(matches!(
        KeyOffer::decode(&bytes, 999),
        Err(FheError::ServerKeyTooLarge {
            size: 1000,
            limit: 999
        })
    ));
    let huge = KeyOffer {
        size: SERVER_KEY_SIZE_LIMIT + 1,
        ..offer
    };
    assert!(matches!(
        KeyOffer::decode(&huge.encode(), u64::MAX),
        Err(FheError::ServerKeyTooLarge { limit, .. }) if limit == SERVER_KEY_SIZE_LIMIT
    ));
}

#[test]
fn a_key_answer_is_one_byte_zero_or_one() {
    for a in [KeyAnswer::Cached, KeyAnswer::Send] {
        assert_eq!(KeyAnswer::decode(&a.encode()).unwrap(), a);
    }
    assert_eq!(KeyAnswer::Cached.encode(), [1]);
    assert_eq!(KeyAnswer::Send.encode(), [0]);
    for bad in [&[][..], &[2], &[0, 0], &[1, 0]] {
        assert_eq!(
            what(KeyAnswer::decode(bad)),
            "key answer is not one byte 0 or 1",
            "{bad:?}"
        );
    }
}

#[test]
fn shares_sum_per_column_wrapping() {
    assert_eq!(sum_shares(&[]), [0, 0]);
    assert_eq!(sum_shares(&[u64::MAX, 1, 2, 3]), [1, 4]);
}

/// The chunks a job of `n` rows walks: full chunks, then one short chunk (maybe empty).
fn chunks_of(n: usize) -> Vec<Range<usize>> {
    (0..=n / CHUNK_ROWS)
        .map(|c| c * CHUNK_ROWS..((c + 1) * CHUNK_ROWS).min(n))
        .collect()
}

#[test]
fn the_owner_walks_its_rows_to_a_short_last_chunk() {
    for release in [Release::Scores, Release::Decisions, Release::Aggregate] {
        for n in [0, 1, 16, 17, 33] {
            let (owner, offer) = OwnerOffered::new(&key(), n, release);
            assert_eq!(offer, KeyOffer::of(&key()));
            let (answer, mut upload) = owner.answer(&KeyAnswer::Send.encode()).unwrap();
            assert_eq!(answer, KeyAnswer::Send);
            let per_row = release.values_per_row();
            let mut seen = Vec::new();
            let done = loop {
                let rows = upload.rows();
                assert_eq!(upload.is_last(), rows.len() < CHUNK_ROWS);
                seen.push(rows.clone());
                let batch = upload.uploaded(Uploaded::default());
                assert_eq!(batch.rows(), rows);
                // Row i's values: [i, 1] (scores, aggregate) or [i & 1] (decisions).
                let values: Vec<u64> = rows
                    .clone()
                    .flat_map(|i| [i as u64, 1].into_iter().take(per_row))
                    .map(|v| if per_row == 1 { v & 1 } else { v })
                    .collect();
                let (next, reply) = batch.accept(values.clone());
                match release {
                    Release::Aggregate => assert_eq!(reply, None),
                    _ => assert_eq!(reply, Some(encode_values(&values))),
                }
                match next {
                    OwnerNext::Upload(u) => upload = u,
                    OwnerNext::Done(d) => break d,
                }
            };
            assert_eq!(seen, chunks_of(n), "{release:?}, {n} rows");
            assert_eq!(done.rows(), n);
            let want =
                (release == Release::Aggregate).then(|| [(0..n as u64).sum::<u64>(), n as u64]);
            assert_eq!(done.aggregate_share(), want, "{n} rows");
        }
    }
}

fn features() -> Vec<Feature> {
    vec![Feature::new("a", 4).unwrap(), Feature::new("b", 3).unwrap()]
}

/// An upload's header for `rows` rows of [`features`] (7 ciphertexts each), then some bytes.
fn upload(rows: usize) -> Vec<u8> {
    let mut msg = ((rows * 7) as u32).to_le_bytes().to_vec();
    msg.extend_from_slice(b"ciphertexts");
    msg
}

fn evaluator(release: Release) -> EvaluatorUpload {
    let (offered, answer) = EvaluatorStart::new(&features(), release)
        .offer(&KeyOffer::of(&key()).encode(), u64::MAX, |_| false)
        .unwrap();
    assert_eq!(answer, KeyAnswer::Send);
    offered.key_checked(key().key_id()).unwrap()
}

#[test]
fn the_evaluator_walks_the_chunks_it_is_sent_to_a_short_last_one() {
    for release in [Release::Scores, Release::Decisions, Release::Aggregate] {
        for n in [0, 1, 16, 17, 33] {
            let mut state = EvaluatorNext::Upload(evaluator(release));
            let mut chunks = chunks_of(n).into_iter();
            let mut results = Vec::new();
            let done = loop {
                state = match state {
                    EvaluatorNext::Done(d) => break d,
                    EvaluatorNext::Upload(u) => {
                        let rows = chunks.next().expect("a chunk after the last");
                        let evaluating = u.upload(&upload(rows.len())).unwrap();
                        assert_eq!(evaluating.rows(), rows.len());
                        assert_eq!(evaluating.is_last(), rows.len() < CHUNK_ROWS);
                        // Masks: score mask 3, decision mask 1, offset 10.
                        let words = [3, 1].into_iter().cycle();
                        let words = match release {
                            Release::Decisions => vec![1; rows.len()],
                            _ => words.take(2 * rows.len()).collect(),
                        };
                        let masks = Masks::for_tests(release, 16, 10, words);
                        evaluating.evaluated(masks).unwrap()
                    }
                    EvaluatorNext::Values(v) => {
                        // The owner's values: score + mask − offset = 13, decision ⊕ 1 = 0.
                        let values = match release {
                            Release::Decisions => vec![0u64; v.rows()],
                            _ => [13u64, 0].repeat(v.rows()),
                        };
                        let (got, next) = v.receive(&encode_values(&values)).unwrap();
                        results.extend(got);
                        next
                    }
                }
            };
            assert!(
                chunks.next().is_none(),
                "{release:?}, {n} rows: chunks left"
            );
            assert_eq!(done.rows(), n);
            let want = RowResult {
                score: (release == Release::Scores).then_some(20),
                decision: true,
            };
            match release {
                Release::Aggregate => {
                    // Per row [offset − 3, −1].
                    let per_row = [7u64, u64::MAX];
                    let sum = [per_row[0] * n as u64, per_row[1].wrapping_mul(n as u64)];
                    assert_eq!(done.aggregate_share(), Some(sum));
                    assert!(results.is_empty());
                }
                _ => {
                    assert_eq!(done.aggregate_share(), None);
                    assert_eq!(results, vec![want; n], "{release:?}, {n} rows");
                }
            }
        }
    }
}

#[test]
fn the_evaluator_refuses_a_bad_row_count() {
    for bad in [
        vec![],
        vec![7, 0, 0],
        8u32.to_le_bytes().to_vec(),
        ((CHUNK_ROWS as u32 + 1) * 7).to_le_bytes().to_vec(),
        u32::MAX.to_le_bytes().to_vec(),
    ] {
        assert_eq!(
            what(evaluator(Release::Scores).upload(&bad)),
            "encrypted chunk has a bad row count",
            "{bad:?}"
        );
    }
    // No features, no rows: nothing divides by zero.
    let (offered, _) = EvaluatorStart::new(&[], Release::Scores)
        .offer(&KeyOffer::of(&key()).encode(), u64::MAX, |_| true)
        .unwrap();
    assert_eq!(
        what(offered.key_in_memory().unwrap().upload(&upload(0))),
        "encrypted chunk has a bad row count"
    );
}

/// The evaluator waiting for the values of a chunk of `rows` rows.
fn waiting_for_values(release: Release, rows: usize) -> EvaluatorValues {
    let evaluating = evaluator(release).upload(&upload(rows)).unwrap();
    let masks = Masks::for_tests(release, 16, 0, vec![0; rows * release.values_per_row()]);
    match evaluating.evaluated(masks).unwrap() {
        EvaluatorNext::Values(v) => v,
        other => panic!("expected to wait for values, got {other:?}"),
    }
}

#[test]
fn the_evaluator_refuses_values_of_the_wrong_length_or_width() {
    // Two rows of scores: four words.
    for (len, want) in [
        (31, "masked values are not 8-byte words"),
        (33, "masked values are not 8-byte words"),
        (24, "masked values: not the count the chunk's rows define"),
        (40, "masked values: not the count the chunk's rows define"),
        (0, "masked values: not the count the chunk's rows define"),
    ] {
        let v = waiting_for_values(Release::Scores, 2);
        assert_eq!(what(v.receive(&vec![0; len])), want, "{len} bytes");
    }
    let v = waiting_for_values(Release::Scores, 1);
    assert_eq!(
        what(v.receive(&encode_values(&[1 << 16, 0]))),
        "masked values: a value outside its masked width"
    );
    let v = waiting_for_values(Release::Decisions, 1);
    assert_eq!(
        what(v.receive(&encode_values(&[2]))),
        "masked values: a value outside its masked width"
    );
    let v = waiting_for_values(Release::Decisions, 2);
    assert_eq!(v.receive(&encode_values(&[1, 0])).unwrap().0.len(), 2);
}

#[test]
fn the_evaluator_refuses_another_key_and_steps_out_of_order() {
    let offer = KeyOffer::of(&key()).encode();
    let start = || EvaluatorStart::new(&features(), Release::Decisions);

    // The cache is asked about the offered key.
    let (offered, answer) = start()
        .offer(&offer, u64::MAX, |o| o.key_id == key().key_id())
        .unwrap();
    assert_eq!(
        (answer, offered.answer()),
        (KeyAnswer::Cached, KeyAnswer::Cached)
    );
    assert_eq!(offered.offer(), &KeyOffer::of(&key()));
    assert!(offered.key_in_memory().is_ok());

    // Another key than the offered one.
    let (offered, _) = start().offer(&offer, u64::MAX, |_| false).unwrap();
    let other = ServerKeyBytes::for_tests(vec![8; 1000]).key_id();
    assert!(matches!(
        offered.key_checked(other),
        Err(FheError::KeyMismatch { offered, received })
            if offered == key().key_id() && received == other
    ));

    // A key "in memory" after asking the owner to send it.
    let (offered, _) = start().offer(&offer, u64::MAX, |_| false).unwrap();
    assert!(matches!(
        offered.key_in_memory(),
        Err(FheError::OutOfOrder(_))
    ));

    // Masks of another chunk or release than the one evaluated.
    for masks in [
        Masks::for_tests(Release::Decisions, 16, 0, vec![0; 3]),
        Masks::for_tests(Release::Scores, 16, 0, vec![0; 4]),
    ] {
        let evaluating = evaluator(Release::Decisions).upload(&upload(2)).unwrap();
        assert!(matches!(
            evaluating.evaluated(masks),
            Err(FheError::OutOfOrder(_))
        ));
    }

    // A malformed or oversized offer.
    assert_eq!(
        what(start().offer(&offer[..39], u64::MAX, |_| true)),
        "key offer is not 40 bytes"
    );
    assert!(matches!(
        start().offer(&offer, 10, |_| true),
        Err(FheError::ServerKeyTooLarge {
            size: 1000,
            limit: 10
        })
    ));
}

#[test]
fn the_owner_refuses_a_malformed_key_answer() {
    for bad in [&[][..], &[2], &[1, 1]] {
        let (owner, _) = OwnerOffered::new(&key(), 3, Release::Scores);
        assert_eq!(what(owner.answer(bad)), "key answer is not one byte 0 or 1");
    }
    let (owner, _) = OwnerOffered::new(&key(), 3, Release::Scores);
    let (answer, upload) = owner.answer(&[1]).unwrap();
    assert_eq!((answer, upload.rows()), (KeyAnswer::Cached, 0..3));
}

#[test]
fn values_travel_as_little_endian_words() {
    let bytes = encode_values(&[1, u64::MAX]);
    assert_eq!(bytes.len(), 16);
    assert_eq!(&bytes[..8], &[1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(decode_values(&bytes, 2).unwrap(), [1, u64::MAX]);
}
