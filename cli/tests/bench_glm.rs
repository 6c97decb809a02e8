//! `treaty bench train` and `treaty bench score` as shipped: the real binary starts three party
//! processes of itself, which train and apply secure logistic regression over gRPC with mutual
//! TLS on loopback. The reports must carry the documented rounds and a result that matches the
//! f64 reference (no timing is asserted), and the party processes must never outlive the
//! command (see [`support`]).
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::{json_lines, refused};

/// Rounds of one batch of logistic regression (`treaty_mpc::glm` module docs).
const ROUNDS_PER_BATCH: u64 = 37;

/// Rounds of scoring one chunk: three input rounds (one per party), the logits' matrix product
/// (2) and the fast sigmoid (31).
const ROUNDS_PER_CHUNK: u64 = 3 + 2 + 31;

/// The fields every glm report has, for three parties.
fn common(line: &Value) {
    assert_eq!(line["parties"], 3, "{line}");
    assert_eq!(line["transport"], "grpc+tls", "{line}");
    assert_eq!(line["frac_bits"], 16, "{line}");
    assert_eq!(
        (line["repeat"].as_u64(), line["warmup"].as_u64()),
        (Some(1), Some(0))
    );
    for field in ["cpu_seconds", "peak_rss_bytes"] {
        let per_party = line[field].as_array().unwrap();
        assert_eq!(per_party.len(), 3, "{field}: {line}");
        if cfg!(target_os = "linux") {
            assert!(per_party.iter().all(|v| v.as_f64() >= Some(0.0)), "{line}");
        }
    }
}

#[test]
fn train_matches_the_f64_reference_in_the_documented_rounds() {
    let lines = json_lines(&[
        "bench",
        "train",
        "--rows",
        "2000",
        "--features",
        "6",
        "--epochs",
        "1",
        "--batch",
        "256",
        "--json",
    ]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    common(l);
    assert_eq!(l["workload"], "train", "{l}");
    assert_eq!(l["model"], "logistic", "{l}");
    assert_eq!(
        (&l["rows"], &l["features"], &l["batch"], &l["epochs"]),
        (&2000.into(), &6.into(), &256.into(), &1.into())
    );
    // ⌈2000/256⌉ = 8 batches.
    assert_eq!(l["steps"], 8, "{l}");
    assert_eq!(l["rounds"], 8 * ROUNDS_PER_BATCH, "{l}");
    let error = l["max_weight_error"].as_f64().unwrap();
    assert!(error < 5e-4, "max_weight_error {error}: {l}");
    let seconds = l["seconds"].as_f64().unwrap();
    assert!(seconds.is_finite() && seconds > 0.0, "{l}");
    assert_eq!(l["run_seconds"].as_array().unwrap().len(), 1, "{l}");
    let (per_party, total) = (
        l["bytes_per_party"].as_u64().unwrap(),
        l["bytes_total"].as_u64().unwrap(),
    );
    assert!(
        per_party > 0 && total > per_party && total <= 3 * per_party,
        "{l}"
    );
}

#[test]
fn score_reports_throughput_latency_and_checked_scores() {
    let lines = json_lines(&[
        "bench",
        "score",
        "--records",
        "5000",
        "--requests",
        "20",
        "--json",
    ]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (batch, single) = (&lines[0], &lines[1]);
    for l in &lines {
        common(l);
        assert_eq!(l["workload"], "score", "{l}");
        assert_eq!(l["features"], 30, "{l}");
        // The fast sigmoid is within 1e-3; a truncation failure (about 2^-27 per record, so
        // 5·10^-5 for this test) would show as a score off.
        assert_eq!(l["scores_off"], 0, "{l}");
        let error = l["max_score_error"].as_f64().unwrap();
        assert!(error < 2e-3, "max_score_error {error}: {l}");
    }
    assert_eq!(batch["mode"], "batch", "{batch}");
    assert_eq!(batch["records"], 5000, "{batch}");
    // One chunk: the default chunk is larger than 5000 records.
    assert_eq!(batch["chunk"], 5000, "{batch}");
    assert_eq!(batch["rounds"], ROUNDS_PER_CHUNK, "{batch}");
    assert!(batch["records_per_second"].as_f64() > Some(0.0), "{batch}");

    assert_eq!(single["mode"], "single", "{single}");
    assert_eq!(single["requests"], 20, "{single}");
    assert_eq!(single["rounds"], ROUNDS_PER_CHUNK, "{single}");
    let ms = |f: &str| single[f].as_f64().unwrap();
    assert!(ms("median_ms") > 0.0, "{single}");
    assert!(
        ms("median_ms") <= ms("p99_ms") && ms("p99_ms") <= ms("max_ms"),
        "{single}"
    );
    assert!(ms("mean_ms") <= ms("max_ms"), "{single}");
}

#[test]
fn bad_arguments_are_refused_before_anything_starts() {
    refused(
        &["bench", "train"],
        &[
            &["--rows", "0"],
            &["--features", "0"],
            &["--batch", "0"],
            &["--epochs", "0"],
            &["--learning-rate=-1"],
            &["--l2", "2"],
            &["--repeat", "0"],
        ],
    );
    refused(
        &["bench", "score"],
        &[
            &["--records", "0", "--requests", "0"],
            &["--features", "0"],
            &["--chunk", "0"],
        ],
    );
}

/// Process hygiene of the glm workloads (their own session per case and reveal after each run);
/// reads `/proc`.
#[cfg(target_os = "linux")]
mod hygiene {
    use super::support::hygiene;

    /// A long run: far more repeats of a tiny training than a test waits for.
    const LONG_RUN: &[&str] = &[
        "bench",
        "train",
        "--json",
        "--rows",
        "300",
        "--features",
        "3",
        "--batch",
        "100",
        "--epochs",
        "1",
        "--repeat",
        "1000000",
    ];

    #[test]
    fn ctrl_c_stops_the_parties_and_says_so() {
        hygiene::ctrl_c_stops_the_parties(LONG_RUN, 3);
    }

    #[test]
    fn the_parties_stop_when_the_parent_is_killed() {
        hygiene::the_parties_stop_when_the_parent_is_killed(LONG_RUN, 3);
    }

    #[test]
    fn a_dead_party_is_named_and_the_others_are_stopped() {
        hygiene::a_dead_party_is_named_and_the_others_are_stopped(LONG_RUN, 3);
    }
}
