//! `treaty bench mpc` as shipped: the real binary starts three party processes of itself, which
//! talk gRPC with mutual TLS on loopback. The reports must carry the documented costs (no timing
//! is asserted), and the party processes must never outlive the command (see [`support`]).
#![allow(clippy::unwrap_used)]

mod support;

use support::{json_lines, refused};

/// Bytes per party of `lt` on `n` elements, as documented in `mpc/src/rep3/compare.rs`: one
/// packed AND round per width, `8·Σ_w ⌈wn/64⌉`.
fn lt_bytes(n: u64) -> u64 {
    [63u64, 62, 61, 29, 15, 7, 3, 1]
        .iter()
        .map(|w| 8 * (n * w).div_ceil(64))
        .sum()
}

#[test]
fn json_lines_carry_the_documented_costs() {
    let lines = json_lines(&[
        "bench", "mpc", "--json", "--ops", "mul,lt", "--n", "1000", "--repeat", "1",
    ]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, (op, rounds, bytes)) in lines.iter().zip([
        // mul_fixed: 2 rounds, 8·n bytes per party.
        ("mul", 2, 8 * 1000),
        // lt: 8 rounds, the packed MSB's bytes.
        ("lt", 8, lt_bytes(1000)),
    ]) {
        assert_eq!(line["op"], op, "{line}");
        assert_eq!(line["n"], 1000, "{line}");
        assert_eq!(line["rounds"], rounds, "{line}");
        assert_eq!(line["bytes_per_party"], bytes, "{line}");
        assert_eq!(line["transport"], "grpc+tls", "{line}");
        assert_eq!(line["parties"], 3, "{line}");
        assert_eq!(line["repeat"], 1, "{line}");
        let seconds = line["seconds"].as_f64().unwrap();
        assert!(seconds.is_finite() && seconds >= 0.0, "{line}");
        assert_eq!(line["run_seconds"].as_array().unwrap().len(), 1, "{line}");
        assert!(line.get("shape").is_none(), "{line}");
    }
    assert_eq!(lt_bytes(1000), 30_160);
}

#[test]
fn a_matrix_product_reports_its_shape_and_output_elements() {
    let lines = json_lines(&[
        "bench", "mpc", "--json", "--ops", "matmul", "--shapes", "20x30x10", "--repeat", "2",
    ]);
    let [line] = &lines[..] else {
        panic!("{lines:?}")
    };
    assert_eq!(line["op"], "matmul");
    assert_eq!(line["n"], 200);
    assert_eq!(line["shape"], serde_json::json!([20, 30, 10]));
    // matmul_fixed: 2 rounds, 8·m·n bytes per party.
    assert_eq!(line["rounds"], 2);
    assert_eq!(line["bytes_per_party"], 8 * 200);
    assert_eq!(line["run_seconds"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_arguments_are_refused_before_anything_starts() {
    refused(
        &["bench", "mpc"],
        &[
            &["--ops", "sigmoidx"],
            &["--repeat", "0"],
            &["--n", "0"],
            &["--shapes", "10x10"],
        ],
    );
}

/// Process hygiene; reads `/proc`.
#[cfg(target_os = "linux")]
mod hygiene {
    use super::support::hygiene;

    /// A long run: far more repeats than a test waits for.
    const LONG_RUN: &[&str] = &[
        "bench", "mpc", "--json", "--ops", "mul", "--n", "1000", "--repeat", "1000000",
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
