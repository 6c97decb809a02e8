//! End-to-end checks of keys, wire formats, the three models on ciphertexts and the masking
//! conversion, each against the same model in the clear (release: `cargo test --release`).
//!
//! Key generation costs seconds, so the whole binary shares two key pairs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use tfhe::ConfigBuilder;
use tfhe::shortint::parameters::COMP_PARAM_MESSAGE_2_CARRY_2;
use treaty_fhe::keys::{import_server_key_for, treaty_config};
use treaty_fhe::protocol::{EvaluatorNext, EvaluatorStart, KeyAnswer, OwnerNext, OwnerOffered};
use treaty_fhe::wire::{OwnerResults, encode_masked, encrypt_chunk, encrypt_rows};
use treaty_fhe::{
    EncryptedRows, Evaluator, Feature, FheError, FheModel, MaskedCiphertext, ModelSpec, OwnerKeys,
    Release, RowResult, import_server_key,
};

struct Party {
    keys: OwnerKeys,
    /// The evaluator's view: the server key as imported from the wire.
    evaluator: Evaluator,
}

fn party(slot: &'static OnceLock<Party>) -> &'static Party {
    slot.get_or_init(|| {
        let keys = OwnerKeys::generate().unwrap();
        let bytes = keys.export_server_key().unwrap();
        let (server, id) = import_server_key(bytes.as_bytes()).unwrap();
        assert_eq!(id, bytes.key_id());
        Party {
            keys,
            evaluator: Evaluator::from_compressed(server).unwrap(),
        }
    })
}

fn hospital() -> &'static Party {
    static P: OnceLock<Party> = OnceLock::new();
    party(&P)
}

fn other_owner() -> &'static Party {
    static P: OnceLock<Party> = OnceLock::new();
    party(&P)
}

fn features() -> Vec<Feature> {
    vec![
        Feature::new("age", 7).unwrap(),
        Feature::new("amount", 16).unwrap(),
        Feature::new("prior_claims", 4).unwrap(),
    ]
}

fn rows() -> Vec<Vec<u16>> {
    vec![vec![40, 100, 2], vec![127, 65_535, 0], vec![0, 0, 15]]
}

/// Owner encrypts → wire → evaluator evaluates and masks → wire → owner decrypts the masked
/// values → evaluator unmasks; compared with the clear model row by row.
fn round_trip(spec: &str, release: Release) -> (FheModel, Vec<u64>, Vec<u64>) {
    let p = hospital();
    let spec: ModelSpec = serde_json::from_str(spec).unwrap();
    let model = FheModel::new(spec, &features()).unwrap();
    let rows = rows();
    let (upload, uploaded) = encrypt_chunk(model.features(), &rows, p.keys.client_key()).unwrap();
    assert_eq!(uploaded.len(), rows.len() * 27);
    let encrypted =
        EncryptedRows::from_wire(&upload, model.features(), rows.len(), &p.evaluator).unwrap();
    let results = p.evaluator.evaluate(&model, &encrypted).unwrap();
    let mut rng = treaty_fhe::os_rng().unwrap();
    let (masked, masks) = p.evaluator.mask(results, release, &mut rng);
    let back = encode_masked(&p.evaluator, &masked).unwrap();
    // The owner decompresses with its own (decompressed) server key.
    let values = OwnerResults::new(release)
        .decrypt(
            &back,
            rows.len(),
            &uploaded,
            &p.evaluator,
            p.keys.client_key(),
        )
        .unwrap();
    assert_eq!(values.len(), masked.len());
    let clear: Vec<(i32, bool)> = rows
        .iter()
        .map(|r| model.evaluate_clear(r).unwrap())
        .collect();
    match release {
        Release::Aggregate => {
            let shares = masks.evaluator_shares().unwrap();
            for (i, &(score, decision)) in clear.iter().enumerate() {
                assert_eq!(
                    values[2 * i].wrapping_add(shares[2 * i]),
                    score as i64 as u64
                );
                assert_eq!(
                    values[2 * i + 1].wrapping_add(shares[2 * i + 1]),
                    u64::from(decision)
                );
            }
        }
        _ => {
            let got = masks.unmask(&values).unwrap();
            for (g, &(score, decision)) in got.iter().zip(&clear) {
                assert_eq!(g.decision, decision);
                let want = (release == Release::Scores).then_some(score);
                assert_eq!(g.score, want);
            }
        }
    }
    (model, values, masks.evaluator_shares().unwrap_or_default())
}

#[test]
fn linear_model_on_ciphertexts_matches_the_clear_model() {
    let (model, ..) = round_trip(
        r#"{"kind":"linear","features":["age","amount","prior_claims"],
            "weights":[3,-2,1000],"bias":-50,"threshold":-1000}"#,
        Release::Scores,
    );
    // Both decisions occur, and a negative score survives the masking mod 2^32.
    let clear: Vec<_> = rows()
        .iter()
        .map(|r| model.evaluate_clear(r).unwrap())
        .collect();
    assert!(clear.iter().any(|c| c.1) && clear.iter().any(|c| !c.1));
    assert!(clear.iter().any(|c| c.0 < 0));
}

#[test]
fn scorecard_decisions_only_match_the_clear_model() {
    round_trip(
        r#"{"kind":"scorecard","features":["age","amount","prior_claims"],"base":600,
            "bins":[{"edges":[30,60],"points":[-10,0,15]},
                    {"edges":[1000,20000],"points":[20,0,-40]},
                    {"edges":[1],"points":[5,-25]}],
            "threshold":600}"#,
        Release::Decisions,
    );
}

#[test]
fn tree_ensemble_results_stay_additive_shares_that_sum_to_the_clear_result() {
    let (_, owner, evaluator) = round_trip(
        r#"{"kind":"tree","features":["age","amount","prior_claims"],"threshold":3,"trees":[
            {"nodes":[{"feature":0,"threshold":50,"left":1,"right":2},
                      {"feature":2,"threshold":3,"left":3,"right":4},
                      {"feature":1,"threshold":500,"left":5,"right":6},
                      {"leaf":-4},{"leaf":1},{"leaf":2},{"leaf":7}]},
            {"nodes":[{"feature":1,"threshold":50,"left":1,"right":2},{"leaf":0},{"leaf":-3}]}]}"#,
        Release::Aggregate,
    );
    // Neither side's shares are the results themselves.
    assert_eq!(owner.len(), evaluator.len());
    assert!(owner.iter().zip(&evaluator).all(|(o, e)| o != e));
}

#[test]
fn bad_inputs_are_refused_before_or_while_reading() {
    let p = hospital();
    // A value beyond its declared width: nothing is encrypted, the error names column and row.
    let bad = vec![vec![40, 100, 2], vec![128, 100, 2]];
    let err = encrypt_rows(&features(), &bad, p.keys.client_key()).unwrap_err();
    assert!(
        matches!(&err, FheError::ValueOutOfRange { column, row: 1, bits: 7 } if column == "age"),
        "{err}"
    );
    let upload = encrypt_rows(&features(), &rows()[..1], p.keys.client_key()).unwrap();
    // Truncated, wrong count, trailing bytes.
    let err = EncryptedRows::from_wire(&upload[..upload.len() - 7], &features(), 1, &p.evaluator)
        .err()
        .unwrap();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(EncryptedRows::from_wire(&upload, &features(), 2, &p.evaluator).is_err());
    let mut longer = upload.clone();
    longer.push(0);
    assert!(EncryptedRows::from_wire(&longer, &features(), 1, &p.evaluator).is_err());
    // Rows encrypted under another owner's key (same parameters) are refused by key tag.
    let foreign = encrypt_rows(&features(), &rows()[..1], other_owner().keys.client_key()).unwrap();
    let err = EncryptedRows::from_wire(&foreign, &features(), 1, &p.evaluator)
        .err()
        .unwrap();
    assert!(matches!(err, FheError::WrongKey { item: 0 }), "{err}");
    // A corrupted ciphertext body fails deserialization or conformance, naming the item.
    let mut corrupt = upload.clone();
    let at = 4 + 1 + 4 + 10;
    corrupt[at] ^= 0xff;
    let err = EncryptedRows::from_wire(&corrupt, &features(), 1, &p.evaluator)
        .err()
        .unwrap();
    assert!(matches!(err, FheError::Wire { item: Some(0), .. }), "{err}");
}

#[test]
fn server_key_wire_format_is_checked() {
    let keys = &hospital().keys;
    let bytes = keys.export_server_key().unwrap();
    let raw = bytes.as_bytes();
    // A config with list compression enabled expects a compression key: not conformant.
    let other = ConfigBuilder::default()
        .enable_compression(COMP_PARAM_MESSAGE_2_CARRY_2)
        .build();
    let err = import_server_key_for(raw, other)
        .err()
        .expect("other params");
    assert!(matches!(err, FheError::KeyRejected { .. }), "{err}");
    assert!(err.to_string().contains("conformant"), "{err}");
    assert!(import_server_key_for(raw, treaty_config()).is_ok());
    let err = import_server_key(&raw[..raw.len() / 2])
        .err()
        .expect("truncated");
    assert!(matches!(err, FheError::KeyRejected { len, .. } if len == raw.len() / 2));
    assert!(import_server_key(&[]).is_err());
}

#[test]
fn key_pair_saved_with_private_permissions_and_loaded() {
    let keys = &hospital().keys;
    let dir = tempfile::tempdir().unwrap();
    assert!(OwnerKeys::load(dir.path()).unwrap().is_none());
    keys.save(dir.path()).unwrap();
    let loaded = OwnerKeys::load(dir.path()).unwrap().unwrap();
    assert_eq!(
        loaded.export_server_key().unwrap().key_id(),
        keys.export_server_key().unwrap().key_id()
    );
    // What the loaded client key encrypts, the original pair's evaluator accepts and reads.
    let upload = encrypt_rows(&features(), &rows()[..1], loaded.client_key()).unwrap();
    assert!(EncryptedRows::from_wire(&upload, &features(), 1, &hospital().evaluator).is_ok());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join(treaty_fhe::keys::CLIENT_KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = OwnerKeys::load(dir.path()).err().unwrap();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}

/// The owner decrypts only the release's layout: not its own uploaded bits (byte for byte,
/// decompressed, or as blocks of a wider value), not one item more, not another kind, not a
/// score width other than the job's first.
#[test]
fn owner_refuses_results_the_release_does_not_define() {
    let p = hospital();
    let spec: ModelSpec = serde_json::from_str(
        r#"{"kind":"linear","features":["age","amount","prior_claims"],
            "weights":[3,-2,1000],"bias":-50,"threshold":-1000}"#,
    )
    .unwrap();
    let model = FheModel::new(spec, &features()).unwrap();
    let rows = &rows()[..2];
    let (upload, uploaded) = encrypt_chunk(model.features(), rows, p.keys.client_key()).unwrap();
    let encrypted = EncryptedRows::from_wire(&upload, model.features(), 2, &p.evaluator).unwrap();
    let mut rng = treaty_fhe::os_rng().unwrap();
    let masked = |release| {
        p.evaluator
            .evaluate_masked(&model, &encrypted, release, &mut rng.clone())
            .unwrap()
            .0
    };
    let decrypt = |check: &mut OwnerResults, batch: &[u8], n| {
        check.decrypt(batch, n, &uploaded, &p.evaluator, p.keys.client_key())
    };
    let bit = |row: usize, i: usize| MaskedCiphertext::Bool(encrypted.row(row).unwrap()[i].clone());

    // The upload itself, re-framed as two items: refused by kind before anything is read.
    let mut verbatim = 2u32.to_le_bytes().to_vec();
    let mut at = 4;
    for _ in 0..2 {
        let len = u32::from_le_bytes(upload[at + 1..at + 5].try_into().unwrap()) as usize;
        verbatim.extend_from_slice(&upload[at..at + 5 + len]);
        at += 5 + len;
    }
    let err = decrypt(&mut OwnerResults::new(Release::Decisions), &verbatim, 2).unwrap_err();
    assert!(matches!(err, FheError::ResultKind { item: 0, .. }), "{err}");

    // Uploaded bits, decompressed, where decisions are expected.
    let echo = encode_masked(&p.evaluator, &[bit(0, 0), bit(1, 3)]).unwrap();
    let err = decrypt(&mut OwnerResults::new(Release::Decisions), &echo, 2).unwrap_err();
    assert!(matches!(err, FheError::EchoedCiphertext { .. }), "{err}");
    // ... or one of them second, after a genuine decision.
    let mut half = masked(Release::Decisions);
    half[1] = bit(1, 5);
    let batch = encode_masked(&p.evaluator, &half).unwrap();
    let err = decrypt(&mut OwnerResults::new(Release::Decisions), &batch, 2).unwrap_err();
    assert!(
        matches!(err, FheError::EchoedCiphertext { item: 1 }),
        "{err}"
    );

    // One item too many.
    let mut more = masked(Release::Decisions);
    more.push(bit(0, 1));
    let batch = encode_masked(&p.evaluator, &more).unwrap();
    let err = decrypt(&mut OwnerResults::new(Release::Decisions), &batch, 2).unwrap_err();
    assert!(
        matches!(
            err,
            FheError::ItemCount {
                got: 3,
                expected: 2
            }
        ),
        "{err}"
    );

    // Kinds the release does not define: scores under decisions, shares under scores, a score
    // where the decision goes.
    let scores = encode_masked(&p.evaluator, &masked(Release::Scores)).unwrap();
    let shares = encode_masked(&p.evaluator, &masked(Release::Aggregate)).unwrap();
    let err = decrypt(&mut OwnerResults::new(Release::Decisions), &scores, 4).unwrap_err();
    assert!(matches!(err, FheError::ResultKind { item: 0, .. }), "{err}");
    let err = decrypt(&mut OwnerResults::new(Release::Scores), &shares, 2).unwrap_err();
    assert!(matches!(err, FheError::ResultKind { item: 0, .. }), "{err}");
    let err = decrypt(&mut OwnerResults::new(Release::Aggregate), &scores, 2).unwrap_err();
    assert!(matches!(err, FheError::ResultKind { item: 0, .. }), "{err}");
    let mut swapped = masked(Release::Scores);
    swapped.swap(0, 1);
    let batch = encode_masked(&p.evaluator, &swapped).unwrap();
    let err = decrypt(&mut OwnerResults::new(Release::Scores), &batch, 2).unwrap_err();
    assert!(matches!(err, FheError::ResultKind { item: 0, .. }), "{err}");

    // The genuine batches are accepted; a job's score width stays the first batch's.
    let mut job = OwnerResults::new(Release::Scores);
    assert_eq!(decrypt(&mut job, &scores, 2).unwrap().len(), 4);
    let narrow = {
        let spec: ModelSpec = serde_json::from_str(
            r#"{"kind":"linear","features":["age","amount","prior_claims"],
                "weights":[1,0,0],"bias":0,"threshold":50}"#,
        )
        .unwrap();
        let m = FheModel::new(spec, &features()).unwrap();
        let (r, _) = p
            .evaluator
            .evaluate_masked(&m, &encrypted, Release::Scores, &mut rng)
            .unwrap();
        encode_masked(&p.evaluator, &r).unwrap()
    };
    let err = decrypt(&mut job, &narrow, 2).unwrap_err();
    assert!(matches!(err, FheError::ResultKind { item: 0, .. }), "{err}");
    assert_eq!(
        decrypt(&mut OwnerResults::new(Release::Aggregate), &shares, 2)
            .unwrap()
            .len(),
        4
    );
}

/// A job of one row through both sides of the protocol, message by message: the key offered,
/// asked for, received and checked; one (short, hence last) chunk uploaded, evaluated, decrypted
/// and unmasked into the clear model's decision. The owner's core refuses its own upload sent
/// back as a malformed message, naming it.
#[test]
fn one_row_through_both_protocol_cores() {
    let p = hospital();
    let spec: ModelSpec = serde_json::from_str(
        r#"{"kind":"linear","features":["age","amount","prior_claims"],
            "weights":[3,-2,1000],"bias":-50,"threshold":-1000}"#,
    )
    .unwrap();
    let model = FheModel::new(spec, &features()).unwrap();
    let rows = &rows()[..1];
    let server_key = p.keys.export_server_key().unwrap();

    // Key: offer, answer (not cached), the key itself.
    let (owner, offer) = OwnerOffered::new(&server_key, rows.len(), Release::Decisions);
    let (offered, answer) = EvaluatorStart::new(model.features(), Release::Decisions)
        .offer(&offer.encode(), u64::MAX, |_| false)
        .unwrap();
    let (answer, upload) = owner.answer(&answer.encode()).unwrap();
    assert_eq!(answer, KeyAnswer::Send);
    let (_key, waiting) = offered.receive_key(server_key.as_bytes()).unwrap();

    // The one chunk: it is short, so it is the last.
    assert_eq!((upload.rows(), upload.is_last()), (0..1, true));
    let (batch, sent) = encrypt_chunk(model.features(), rows, p.keys.client_key()).unwrap();
    let owner = upload.uploaded(sent);
    let evaluating = waiting.upload(&batch).unwrap();
    assert_eq!((evaluating.rows(), evaluating.is_last()), (1, true));
    let encrypted = EncryptedRows::from_wire(&batch, model.features(), 1, &p.evaluator).unwrap();
    let mut rng = treaty_fhe::os_rng().unwrap();
    let (masked, masks) = p
        .evaluator
        .evaluate_masked(&model, &encrypted, Release::Decisions, &mut rng)
        .unwrap();
    let EvaluatorNext::Values(values_wait) = evaluating.evaluated(masks).unwrap() else {
        panic!("decisions wait for the owner's values");
    };
    let reply = encode_masked(&p.evaluator, &masked).unwrap();
    let (next, values) = owner
        .receive(&reply, &p.evaluator, p.keys.client_key())
        .unwrap();
    let OwnerNext::Done(done) = next else {
        panic!("the owner is done after its short chunk");
    };
    assert_eq!((done.rows(), done.aggregate_share()), (1, None));
    let values = values.expect("decisions are sent back");
    assert_eq!(values.len(), 8);
    let (results, next) = values_wait.receive(&values).unwrap();
    let EvaluatorNext::Done(done) = next else {
        panic!("the evaluator is done after the short chunk");
    };
    assert_eq!(done.rows(), 1);
    let clear = model.evaluate_clear(&rows[0]).unwrap();
    assert_eq!(
        results,
        vec![RowResult {
            score: None,
            decision: clear.1
        }],
        "row {:?}",
        rows[0]
    );

    // The owner's own upload sent back instead of the masked results.
    let (owner, _) = OwnerOffered::new(&server_key, 1, Release::Decisions);
    let (_, upload) = owner.answer(&KeyAnswer::Cached.encode()).unwrap();
    let (batch, sent) = encrypt_chunk(model.features(), rows, p.keys.client_key()).unwrap();
    let mut echo = 1u32.to_le_bytes().to_vec();
    let len = u32::from_le_bytes(batch[5..9].try_into().unwrap()) as usize;
    echo.extend_from_slice(&batch[4..9 + len]);
    let err = upload
        .uploaded(sent)
        .receive(&echo, &p.evaluator, p.keys.client_key())
        .unwrap_err();
    assert!(
        matches!(
            &err,
            FheError::Protocol {
                what: "masked results: an item of a kind the release does not define at its position",
                cause: Some(c),
            } if matches!(**c, FheError::ResultKind { item: 0, .. })
        ),
        "{err}"
    );
}

/// Mutates `good` in one of the ways a hostile peer or a broken link would: flipped bytes, a cut,
/// inserted bytes, a length field overwritten, a duplicated tail.
fn mutant(good: &[u8], rng: &mut rand_chacha::ChaCha20Rng) -> Vec<u8> {
    use rand::RngExt;
    let mut m = good.to_vec();
    let at = rng.random_range(0..m.len());
    match rng.random_range(0..5) {
        0 => {
            for _ in 0..rng.random_range(1..8) {
                let i = rng.random_range(0..m.len());
                m[i] ^= rng.random_range(1..=255u8);
            }
        }
        1 => m.truncate(at),
        2 => {
            let junk: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
            m.splice(at..at, junk);
        }
        3 => {
            let end = (at + 4).min(m.len());
            let word: u32 = rng.random();
            m[at..end].copy_from_slice(&word.to_le_bytes()[..end - at]);
        }
        _ => {
            let tail = m[at..].to_vec();
            m.extend_from_slice(&tail);
        }
    }
    m
}

/// Every decoder of bytes from another organisation (an owner's upload at the evaluator, the
/// evaluator's masked results at the owner, a server key) takes hundreds of mutants of real
/// bytes without a panic, and what it accepts has the agreed shape. (Treaty's framing is fuzzed
/// in `fuzz/`; these reach tfhe's versioned deserialisation, which a sanitizer build of tfhe
/// would make too slow for CI.)
#[test]
fn mutated_uploads_results_and_keys_are_refused_without_a_panic() {
    use rand_chacha::rand_core::SeedableRng;
    let p = hospital();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(17);
    let rows = &rows()[..1];
    let (upload, uploaded) = encrypt_chunk(&features(), rows, p.keys.client_key()).unwrap();
    let mut accepted = 0;
    for _ in 0..200 {
        let m = mutant(&upload, &mut rng);
        if let Ok(e) = EncryptedRows::from_wire(&m, &features(), 1, &p.evaluator) {
            assert_eq!(e.len(), 1);
            accepted += 1;
        }
    }
    assert!(accepted < 200, "every mutant of an upload was accepted");

    let spec: ModelSpec = serde_json::from_str(
        r#"{"kind":"linear","features":["age","amount","prior_claims"],
            "weights":[3,-2,1000],"bias":-50,"threshold":-1000}"#,
    )
    .unwrap();
    let model = FheModel::new(spec, &features()).unwrap();
    let encrypted = EncryptedRows::from_wire(&upload, &features(), 1, &p.evaluator).unwrap();
    let results = p.evaluator.evaluate(&model, &encrypted).unwrap();
    let (masked, _) = p.evaluator.mask(results, Release::Scores, &mut rng);
    let back = encode_masked(&p.evaluator, &masked).unwrap();
    for _ in 0..100 {
        let m = mutant(&back, &mut rng);
        let client = p.keys.client_key();
        let mut owner = OwnerResults::new(Release::Scores);
        if let Ok(values) = owner.decrypt(&m, 1, &uploaded, &p.evaluator, client) {
            assert_eq!(values.len(), masked.len());
        }
    }

    let key = p.keys.export_server_key().unwrap();
    let key = key.as_bytes();
    for _ in 0..8 {
        // Mutations within the versioned header and the first parameters, where a decoder
        // would trust a length.
        let head = mutant(&key[..4096], &mut rng);
        let mut m = head;
        m.extend_from_slice(&key[4096..]);
        if let Ok((imported, _)) = import_server_key(&m) {
            let _ = Evaluator::from_compressed(imported);
        }
    }
}

/// Every file of `fuzz/corpus/fhe_wire/` through [`treaty_fhe::fuzzing::wire_items`] (the fuzz
/// target `fhe_wire` needs an instrumented tfhe, too slow to build in CI: its corpus replays
/// here, on stable). `TREATY_WRITE_SEEDS=1` writes the real seeds first.
#[test]
fn the_fhe_wire_corpus_replays_without_a_panic() {
    use treaty_fhe::fuzzing::{WireFixture, wire_items};
    let fixture = WireFixture::new().unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/fhe_wire");
    if std::env::var_os("TREATY_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in fixture.seeds().unwrap().iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
        }
    }
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        wire_items(&fixture, &bytes);
        files += 1;
    }
    assert!(files >= 3, "the corpus holds a seed per decoder");
    // The seeds are real: the upload and the masked scores are accepted, the key's first
    // 4 KiB alone are refused.
    let accepted: Vec<bool> = fixture
        .seeds()
        .unwrap()
        .iter()
        .map(|s| wire_items(&fixture, s))
        .collect();
    assert_eq!(accepted, [true, true, false]);
}
