//! What the `treaty bench` tests share: the binary, JSON-line output, and process hygiene (the
//! party processes must never outlive the command: not on SIGINT, not on SIGKILL of the parent;
//! a party that dies is named in the error).

use std::process::Command;

use serde_json::Value;

/// The `treaty` binary, without a log filter from the environment.
pub(crate) fn treaty() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_treaty"));
    c.env_remove("TREATY_LOG");
    c
}

/// Runs `treaty ARGS`, which must succeed, and parses every stdout line as one JSON object.
pub(crate) fn json_lines(args: &[&str]) -> Vec<Value> {
    let out = treaty().args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed:\n{stdout}\n{stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// Every `args` must be refused (non-zero exit, a message on stderr).
pub(crate) fn refused(command: &[&str], bad: &[&[&str]]) {
    for args in bad {
        let out = treaty().args(command).args(*args).output().unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    }
}

/// Process hygiene; reads `/proc`. `args` must start a run far longer than a test waits for
/// (e.g. `--repeat 1000000`), with `parties` party processes.
#[cfg(target_os = "linux")]
pub(crate) mod hygiene {
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

    fn start_long_run(args: &[&str]) -> Parent {
        Parent(
            treaty()
                .args(args)
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

    /// Waits until `parent` has its party processes, and a little more so they are connected.
    fn party_pids(parent: &Parent, parties: usize) -> Vec<u32> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let kids = children(parent.0.id());
            if kids.len() == parties {
                std::thread::sleep(Duration::from_millis(1500));
                return kids;
            }
            assert!(
                Instant::now() < deadline,
                "not {parties} party processes: {kids:?}"
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

    /// SIGINT to the parent stops every party and the parent says it was interrupted.
    pub(crate) fn ctrl_c_stops_the_parties(args: &[&str], parties: usize) {
        let parent = start_long_run(args);
        let kids = party_pids(&parent, parties);
        signal(parent.0.id(), "-INT");
        let (ok, stderr) = finish(parent);
        assert!(!ok, "an interrupted run must fail");
        assert!(stderr.contains("interrupted"), "{stderr}");
        assert_all_gone(&kids);
    }

    /// SIGKILL to the parent (no handler runs): the parties see their stdin close and stop.
    pub(crate) fn the_parties_stop_when_the_parent_is_killed(args: &[&str], parties: usize) {
        let parent = start_long_run(args);
        let kids = party_pids(&parent, parties);
        signal(parent.0.id(), "-KILL");
        drop(parent);
        assert_all_gone(&kids);
    }

    /// SIGKILL to party 1: the parent fails naming it, and stops the others.
    pub(crate) fn a_dead_party_is_named_and_the_others_are_stopped(args: &[&str], parties: usize) {
        let parent = start_long_run(args);
        let kids = party_pids(&parent, parties);
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
