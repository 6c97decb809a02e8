//! What the deployment tests share (`e2e.rs`, `roster.rs`): the binary without the caller's
//! environment, child processes that never outlive a failing test, free loopback ports.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// The `treaty` binary, without a coordinator, PKI or log filter from the environment.
pub(crate) fn treaty() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_treaty"));
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
