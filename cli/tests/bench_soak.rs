//! `treaty bench soak`, small: the real binary runs `treaty init`, a coordinator and three party
//! processes of itself; two analysts submit 16 mixed jobs; the bank's node and then the
//! coordinator are killed with SIGKILL and restarted mid-run. Asserted, with no timing: every
//! succeeded result matched the clear computation, every audit log verified, no job failed
//! outside a fault, jobs succeeded after the faults, and the figures are all there.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)] // this test uses only the binary
mod support;

use serde_json::Value;
use support::treaty;

#[test]
fn a_killed_node_and_a_killed_coordinator_lose_no_result_and_break_no_log() {
    let dir = tempfile::tempdir().unwrap();
    let out = treaty()
        .args([
            "bench",
            "soak",
            "--json",
            // Enough that jobs are still queued at the last kill (at 60%, 9 ended: at most 4
            // in flight, the rest start only after it), so some are submitted after it.
            "--jobs",
            "16",
            "--analysts",
            "2",
            "--in-flight",
            "2",
            "--rows",
            "400",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let logs: String = ["coordinator", "hospital", "insurer", "bank"]
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(dir.path().join(format!("{p}.log"))).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            format!(
                "--- {p}.log (end)\n{}\n",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect();
    assert!(
        out.status.success(),
        "the soak failed:\n{stdout}\n{}\n{logs}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(stdout.trim()).unwrap();

    assert_eq!(r["jobs"], 16, "{r}");
    assert_eq!(r["mismatches"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["unexpected_failures"], 0, "{r}");
    assert!(r["succeeded_after_faults"].as_u64().unwrap() > 0, "{r}");
    // Every succeeded job was opened and checked; every job is accounted for.
    let succeeded = r["succeeded"].as_u64().unwrap();
    assert_eq!(r["checked"].as_u64().unwrap(), succeeded, "{r}");
    assert_eq!(succeeded + r["failed"].as_u64().unwrap(), 16, "{r}");
    let per_kind: u64 = r["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["jobs"].as_u64().unwrap())
        .sum();
    assert_eq!(per_kind, 16, "{r}");
    // Both faults happened, the bank's node and the coordinator each lived twice.
    let faults: Vec<&str> = r["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["process"].as_str().unwrap())
        .collect();
    assert_eq!(faults, ["bank", "coordinator"], "{r}");
    for p in r["processes"].as_array().unwrap() {
        let lives = if ["bank", "coordinator"].contains(&p["process"].as_str().unwrap()) {
            2
        } else {
            1
        };
        assert_eq!(p["lives"], lives, "{p}");
        assert!(p["peak_rss_bytes"].as_u64().unwrap() > 0, "{p}");
    }
    // The four logs (three parties and the coordinator) verified after the kills.
    assert_eq!(r["audit"]["logs"], 4, "{r}");
    assert_eq!(r["audit"]["failures"].as_array().unwrap().len(), 0, "{r}");
    assert!(r["p99_seconds"].as_f64().unwrap() >= r["p50_seconds"].as_f64().unwrap());
}
