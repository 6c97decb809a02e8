//! End-to-end checks of keys and the encrypted linear score (release: `cargo test --release`).
//!
//! Key generation costs seconds, so the whole binary shares one [`OwnerKeys`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;
use std::time::Instant;

use tfhe::ConfigBuilder;
use tfhe::shortint::parameters::COMP_PARAM_MESSAGE_2_CARRY_2;
use treaty_fhe::keys::{import_server_key_for, treaty_config};
use treaty_fhe::{
    EncryptedRows, Evaluator, Feature, FheError, LinearModel, OwnerKeys, import_server_key,
};

fn keys() -> &'static OwnerKeys {
    static KEYS: OnceLock<OwnerKeys> = OnceLock::new();
    KEYS.get_or_init(OwnerKeys::generate)
}

fn features() -> Vec<Feature> {
    vec![
        Feature::new("age", 7).unwrap(),
        Feature::new("amount", 16).unwrap(),
        Feature::new("prior_claims", 4).unwrap(),
    ]
}

#[test]
fn encrypted_score_matches_clear_model() {
    let keys = keys();
    // The evaluator's side goes through the wire format.
    let bytes = keys.export_server_key().unwrap();
    let (server, id) = import_server_key(bytes.as_bytes()).unwrap();
    assert_eq!(id, bytes.key_id());
    let evaluator = Evaluator::new(&server);

    let model = LinearModel::new(features(), vec![3, -2, 1000], -50, -1000).unwrap();
    let rows = vec![vec![40, 100, 2], vec![127, 65_535, 0], vec![0, 0, 15]];
    let encrypted = EncryptedRows::encrypt(model.features(), &rows, keys.client_key()).unwrap();
    let results = evaluator.score(&model, &encrypted).unwrap();
    assert_eq!(results.len(), rows.len());
    for (row, result) in rows.iter().zip(&results) {
        assert_eq!(
            result.decrypt(keys.client_key()),
            model.evaluate_clear(row).unwrap()
        );
    }
    // Both decisions occur, and a negative score survives the signed width.
    let clear: Vec<_> = rows
        .iter()
        .map(|r| model.evaluate_clear(r).unwrap())
        .collect();
    assert!(clear.iter().any(|c| c.1) && clear.iter().any(|c| !c.1));
    assert!(clear.iter().any(|c| c.0 < 0));
}

#[test]
fn value_beyond_width_is_refused_naming_column_and_row() {
    let rows = vec![vec![40, 100, 2], vec![128, 100, 2]];
    let err = EncryptedRows::encrypt(&features(), &rows, keys().client_key())
        .err()
        .expect("age 128 does not fit 7 bits");
    assert!(
        matches!(&err, FheError::ValueOutOfRange { column, row: 1, bits: 7 } if column == "age")
    );
    let message = err.to_string();
    assert!(
        message.contains("\"age\"") && message.contains("row 1"),
        "{message}"
    );

    let short = vec![vec![1, 2]];
    let err = EncryptedRows::encrypt(&features(), &short, keys().client_key()).err();
    assert!(matches!(
        err,
        Some(FheError::RowLength {
            row: 0,
            expected: 3,
            got: 2
        })
    ));
    assert!(matches!(
        Feature::new("wide", 17),
        Err(FheError::FeatureWidth { bits: 17, .. })
    ));
}

#[test]
fn overflowing_model_is_refused_with_bound() {
    // 127·2^20 + 65535·2^15 + 15 + 1 > 2^31 − 1.
    let err = LinearModel::new(features(), vec![1 << 20, -(1 << 15), 1], 1, 0).unwrap_err();
    let expected: u128 = 127 * (1 << 20) + 65_535 * (1 << 15) + 15 + 1;
    assert!(matches!(err, FheError::ModelOverflow { bound, width: 32, .. } if bound == expected));
    assert!(err.to_string().contains(&expected.to_string()));
    // Just under the limit is accepted, and reports its bound.
    let ok = LinearModel::new(features(), vec![1 << 14, -(1 << 14), 1], 7, 0).unwrap();
    assert_eq!(ok.bound(), 127 * (1 << 14) + 65_535 * (1 << 14) + 15 + 7);
    assert!(matches!(
        LinearModel::new(features(), vec![1, 2], 0, 0),
        Err(FheError::WeightCount {
            weights: 2,
            features: 3
        })
    ));
}

#[test]
fn server_key_roundtrip_and_rejections() {
    let bytes = keys().export_server_key().unwrap();
    let raw = bytes.as_bytes();
    let (_, id) = import_server_key(raw).unwrap();
    assert_eq!(id, bytes.key_id());
    assert_eq!(id.to_hex().len(), 64);

    // Another parameter set (same blocks, list compression enabled) does not accept this key.
    let other = ConfigBuilder::default()
        .enable_compression(COMP_PARAM_MESSAGE_2_CARRY_2)
        .build();
    let err = import_server_key_for(raw, other)
        .err()
        .expect("other params");
    assert!(matches!(err, FheError::KeyRejected { .. }), "{err}");
    assert!(err.to_string().contains("conformant"), "{err}");
    assert!(import_server_key_for(raw, treaty_config()).is_ok());

    // Truncated and empty streams.
    let err = import_server_key(&raw[..raw.len() / 2])
        .err()
        .expect("truncated");
    assert!(matches!(err, FheError::KeyRejected { len, .. } if len == raw.len() / 2));
    assert!(import_server_key(&[]).is_err());
}

/// Measures key generation, server-key size and per-claim latency (8 features, linear score +
/// threshold). `cargo test --release -p treaty-fhe -- --ignored --nocapture`; add
/// `--features pbs-stats` to count bootstraps.
#[test]
#[ignore = "measurement; slow"]
fn latency_one_claim_eight_features() {
    let start = Instant::now();
    let keys = OwnerKeys::generate();
    let keygen = start.elapsed();
    let bytes = keys.export_server_key().unwrap();
    let start = Instant::now();
    let (server, _) = import_server_key(bytes.as_bytes()).unwrap();
    let evaluator = Evaluator::new(&server);
    let import = start.elapsed();

    let features: Vec<_> = (0..8)
        .map(|i| Feature::new(format!("f{i}"), 16).unwrap())
        .collect();
    let model =
        LinearModel::new(features, vec![3, -7, 100, 1, -1, 250, 4000, -12], -9, 1_000).unwrap();
    let row = vec![vec![1, 2, 3, 4, 5, 6, 7, 65_535]];
    let encrypted = EncryptedRows::encrypt(model.features(), &row, keys.client_key()).unwrap();

    #[cfg(feature = "pbs-stats")]
    tfhe::reset_pbs_count();
    let start = Instant::now();
    let result = evaluator.score(&model, &encrypted).unwrap();
    let per_claim = start.elapsed();
    #[cfg(feature = "pbs-stats")]
    println!("PBS per claim: {}", tfhe::get_pbs_count());
    assert_eq!(
        result[0].decrypt(keys.client_key()),
        model.evaluate_clear(&row[0]).unwrap()
    );
    println!(
        "keygen {keygen:?}; compressed server key {} bytes; import+decompress {import:?}; \
         one claim (8 features) {per_claim:?}",
        bytes.as_bytes().len()
    );
}
