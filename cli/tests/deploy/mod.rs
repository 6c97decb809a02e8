//! What the deployment tests share (`e2e.rs`, `roster.rs`): the binary without the caller's
//! environment, child processes that never outlive a failing test, free loopback ports.
// Each test binary uses a part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `treaty` binary, without a coordinator, PKI or log filter from the environment.
pub(crate) fn treaty() -> Command {
    clean(Command::new(env!("CARGO_BIN_EXE_treaty")))
}

/// `c` without a coordinator, PKI or log filter from the environment.
pub(crate) fn clean(mut c: Command) -> Command {
    c.env_remove("TREATY_COORDINATOR")
        .env_remove("TREATY_PKI")
        .env_remove("TREATY_LOG");
    c
}

/// A child process killed when dropped, so a failing test leaves nothing running.
pub(crate) struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd`, which must succeed.
pub(crate) fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A loopback port free at the time of asking.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `cmd` with its stderr in `log`.
pub(crate) fn spawn(cmd: &mut Command, log: &Path) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    Proc(cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap())
}

/// Polls `treaty parties --json` (with the analyst's options added by `as_analyst`) until `n`
/// parties are online. The coordinator may not listen yet, so a failed call is retried like an
/// incomplete list; after 120 s the test fails with the last answer and the logs in `dir` named
/// `logs` (`<name>.log`).
pub(crate) fn wait_online(n: usize, as_analyst: impl Fn(&mut Command), dir: &Path, logs: &[&str]) {
    wait_online_with(treaty, n, as_analyst, dir, logs);
}

/// [`wait_online`] with the binary as `treaty` makes it (e.g. run inside a network namespace).
pub(crate) fn wait_online_with(
    treaty: impl Fn() -> Command,
    n: usize,
    as_analyst: impl Fn(&mut Command),
    dir: &Path,
    logs: &[&str],
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut cmd = treaty();
        as_analyst(cmd.args(["parties", "--json"]));
        let out = cmd.output().unwrap();
        let last = if out.status.success() {
            let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let online = list
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["online"] == true)
                .count();
            if online == n {
                return;
            }
            list.to_string()
        } else {
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        if Instant::now() >= deadline {
            let logs: String = logs
                .iter()
                .map(|n| std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap_or_default())
                .collect();
            panic!("parties did not come online: {last}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Writes party `p`'s config into `configs/` from the shipped `examples/<p>.toml`, changed by
/// `edit`, beside a copy of its example policy; returns the config's path.
pub(crate) fn party_config(
    examples: &Path,
    configs: &Path,
    p: &str,
    edit: impl FnOnce(String) -> String,
) -> std::path::PathBuf {
    let text = std::fs::read_to_string(examples.join(format!("{p}.toml"))).unwrap();
    let cfg = configs.join(format!("{p}.toml"));
    std::fs::write(&cfg, edit(text)).unwrap();
    std::fs::copy(
        examples.join(format!("{p}-policy.toml")),
        configs.join(format!("{p}-policy.toml")),
    )
    .unwrap();
    cfg
}
