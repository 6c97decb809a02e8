//! `treaty bench mpc` as shipped: the real binary starts three party processes of itself, which
//! talk gRPC with mutual TLS on loopback. The reports must carry the documented costs (no timing
//! is asserted), and the party processes must never outlive the command: not on SIGINT, not on
//! SIGKILL of the parent; a party that dies is named in the error.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::Value;

fn treaty() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_treaty"));
    c.env_remove("TREATY_LOG");
    c
}

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
    let out = treaty()
        .args([
            "bench", "mpc", "--json", "--ops", "mul,lt", "--n", "1000", "--repeat", "1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed:\n{stdout}\n{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
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
    let out = treaty()
        .args([
            "bench", "mpc", "--json", "--ops", "matmul", "--shapes", "20x30x10", "--repeat", "2",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: Value = serde_json::from_str(stdout.trim()).unwrap();
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
    for args in [
        &["--ops", "sigmoidx"][..],
        &["--repeat", "0"],
        &["--n", "0"],
        &["--shapes", "10x10"],
    ] {
        let out = treaty().args(["bench", "mpc"]).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    }
}

/// Process hygiene; reads `/proc`.
#[cfg(target_os = "linux")]
mod hygiene {
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::treaty;

    /// The parent, killed (and reaped) when dropped.
    struct Parent(Child);

    impl Drop for Parent {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A long run: far more repeats than a test waits for.
    fn start_long_run() -> Parent {
        Parent(
            treaty()
                .args([
                    "bench", "mpc", "--json", "--ops", "mul", "--n", "1000", "--repeat", "1000000",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    }

    /// `(pid, ppid, state)` of every process.
    fn processes() -> Vec<(u32, u32, char)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
            let ppid = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            out.push((pid, ppid, state));
        }
        out
    }

    /// Live (not zombie) children of `parent`.
    fn children(parent: u32) -> Vec<u32> {
        processes()
            .into_iter()
            .filter(|&(_, ppid, state)| ppid == parent && state != 'Z')
            .map(|(pid, _, _)| pid)
            .collect()
    }

    fn alive(pid: u32) -> bool {
        processes()
            .into_iter()
            .any(|(p, _, state)| p == pid && state != 'Z')
    }

    /// Waits until `parent` has its three party processes, and a little more so they are connected.
    fn party_pids(parent: &Parent) -> Vec<u32> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let kids = children(parent.0.id());
            if kids.len() == 3 {
                std::thread::sleep(Duration::from_millis(1500));
                return kids;
            }
            assert!(
                Instant::now() < deadline,
                "no three party processes: {kids:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn assert_all_gone(pids: &[u32]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while pids.iter().any(|&p| alive(p)) {
            assert!(
                Instant::now() < deadline,
                "orphaned party processes: {:?}",
                pids.iter().filter(|&&p| alive(p)).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(pid: u32, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill {sig} {pid}");
    }

    /// Waits for the parent's exit; returns whether it succeeded and its stderr.
    fn finish(mut parent: Parent) -> (bool, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = parent.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the parent did not exit");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        if let Some(mut e) = parent.0.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        (status.success(), stderr)
    }

    #[test]
    fn ctrl_c_stops_the_parties_and_says_so() {
        let parent = start_long_run();
        let kids = party_pids(&parent);
        signal(parent.0.id(), "-INT");
        let (ok, stderr) = finish(parent);
        assert!(!ok, "an interrupted run must fail");
        assert!(stderr.contains("interrupted"), "{stderr}");
        assert_all_gone(&kids);
    }

    #[test]
    fn the_parties_stop_when_the_parent_is_killed() {
        let parent = start_long_run();
        let kids = party_pids(&parent);
        // SIGKILL: no handler runs in the parent; the parties see their stdin close.
        signal(parent.0.id(), "-KILL");
        drop(parent);
        assert_all_gone(&kids);
    }

    #[test]
    fn a_dead_party_is_named_and_the_others_are_stopped() {
        let parent = start_long_run();
        let kids = party_pids(&parent);
        let victim = kids
            .iter()
            .copied()
            .find(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
                args.windows(2).any(|w| w[0] == b"--index" && w[1] == b"1")
            })
            .expect("the process of party 1");
        signal(victim, "-KILL");
        let (ok, stderr) = finish(parent);
        assert!(!ok, "a run with a dead party must fail");
        assert!(stderr.contains("party-1"), "{stderr}");
        assert_all_gone(&kids);
    }
}
