//! `treaty bench psi` as shipped: the real binary starts two party processes of itself, which
//! run ECDH-PSI over gRPC with mutual TLS on loopback. The reports must carry the intersection
//! size of the synthetic sets and exactly the bytes the protocol documents (no timing is
//! asserted), and the party processes must never outlive the command (see [`support`]).
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::{json_lines, refused};

/// Ids per batch and tag length (`treaty_mpc::psi::{DEFAULT_BATCH, DEFAULT_TAG_LEN}`).
const BATCH: u64 = 1 << 15;
const TAG_LEN: u64 = 12;

/// Payload bytes each party sends in one run with `n` ids per party, as `mpc/src/psi/mod.rs`
/// documents them: a 16-byte header; `K + 1` streaming rounds (`K = ⌈n/batch⌉`), each message two
/// 4-byte counts around 32 bytes per own id and, if the peer learns the intersection, `tag_len`
/// bytes per peer id; for the size only, the other party returns the receiver's tags in
/// `⌈n/batch⌉` more messages (4 + 4 bytes of counts each). Also the rounds.
fn psi_cost(n: u64, mode: &str) -> ([u64; 2], u64) {
    let k = n.div_ceil(BATCH);
    let base = 16 + 8 * (k + 1) + 32 * n;
    let tags = TAG_LEN * n;
    let sorted_back = 8 * k + tags;
    match mode {
        "one" => ([base, base + tags], k + 2),
        "both" => ([base + tags, base + tags], k + 2),
        "size" => ([base, base + sorted_back], 2 * k + 2),
        _ => unreachable!("{mode}"),
    }
}

#[test]
fn json_lines_carry_the_intersection_and_the_documented_bytes() {
    let lines = json_lines(&[
        "bench",
        "psi",
        "--json",
        "--n",
        "2000",
        "--overlap",
        "0.3",
        "--mode",
        "one,both,size",
        "--repeat",
        "2",
    ]);
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, mode) in lines.iter().zip(["one", "both", "size"]) {
        let ([b0, b1], rounds) = psi_cost(2000, mode);
        assert_eq!(line["op"], "psi", "{line}");
        assert_eq!(line["mode"], mode, "{line}");
        assert_eq!(line["n"], 2000, "{line}");
        assert_eq!(line["intersection"], 600, "{line}");
        assert_eq!(line["rounds"], rounds, "{line}");
        assert_eq!(line["bytes_per_party"], b0.max(b1), "{line}");
        assert_eq!(line["bytes_total"], b0 + b1, "{line}");
        assert_eq!(line["transport"], "grpc+tls", "{line}");
        assert_eq!(
            (line["parties"].as_u64(), line["repeat"].as_u64()),
            (Some(2), Some(2))
        );
        assert_eq!(line["warmup"], 1, "{line}");
        let runs = line["run_seconds"].as_array().unwrap();
        assert_eq!(runs.len(), 2, "{line}");
        let seconds = line["seconds"].as_f64().unwrap();
        assert!(seconds.is_finite() && seconds >= 0.0, "{line}");
        let rss = line["peak_rss_bytes"].as_array().unwrap();
        assert_eq!(rss.len(), 2, "{line}");
        let cpu = line["cpu_seconds"].as_array().unwrap();
        assert_eq!(cpu.len(), 2, "{line}");
        if cfg!(target_os = "linux") {
            // A process that ran TLS and PSI holds at least a megabyte.
            assert!(rss.iter().all(|b| b.as_u64() > Some(1 << 20)), "{line}");
            assert!(cpu.iter().all(|s| s.as_f64() >= Some(0.0)), "{line}");
        }
    }
    // 2000 ids in one batch: the costs spelled out once.
    assert_eq!(psi_cost(2000, "one"), ([64_032, 88_032], 3));
}

#[test]
fn several_sizes_without_warm_up() {
    let lines = json_lines(&[
        "bench", "psi", "--json", "--n", "1,700", "--repeat", "1", "--warmup", "0",
    ]);
    let got: Vec<(Value, Value, Value)> = lines
        .iter()
        .map(|l| {
            (
                l["n"].clone(),
                l["intersection"].clone(),
                l["warmup"].clone(),
            )
        })
        .collect();
    // round(0.5·1) = 1 (half away from zero): the single ids are the same.
    assert_eq!(
        got,
        [
            (1.into(), 1.into(), 0.into()),
            (700.into(), 350.into(), 0.into())
        ]
    );
    assert_eq!(lines[1]["bytes_total"], {
        let ([a, b], _) = psi_cost(700, "one");
        a + b
    });
}

#[test]
fn bad_arguments_are_refused_before_anything_starts() {
    refused(
        &["bench", "psi"],
        &[
            &["--mode", "all"],
            &["--overlap", "1.5"],
            &["--n", "0"],
            &["--repeat", "0"],
        ],
    );
}

/// Process hygiene; reads `/proc`.
#[cfg(target_os = "linux")]
mod hygiene {
    use super::support::hygiene;

    /// A long run: far more repeats than a test waits for.
    const LONG_RUN: &[&str] = &[
        "bench", "psi", "--json", "--n", "2000", "--repeat", "1000000",
    ];

    #[test]
    fn ctrl_c_stops_the_parties_and_says_so() {
        hygiene::ctrl_c_stops_the_parties(LONG_RUN, 2);
    }

    #[test]
    fn the_parties_stop_when_the_parent_is_killed() {
        hygiene::the_parties_stop_when_the_parent_is_killed(LONG_RUN, 2);
    }

    #[test]
    fn a_dead_party_is_named_and_the_others_are_stopped() {
        hygiene::a_dead_party_is_named_and_the_others_are_stopped(LONG_RUN, 2);
    }
}
