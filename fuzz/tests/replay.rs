//! Replays every corpus file through its target's function on stable: the inputs the fuzzer
//! kept (and every crash it found, saved under `corpus/<target>/`) stay regression tests.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        run(&std::fs::read(&path).unwrap());
        files += 1;
    }
    assert!(files > 0, "{} holds no corpus", dir.display());
}

#[test]
fn psi_wire() {
    replay("psi_wire", treaty_fuzz::psi_wire);
}

#[test]
fn sync_cores() {
    replay("sync_cores", treaty_fuzz::sync_cores);
}

#[test]
fn audit_log() {
    replay("audit_log", treaty_fuzz::audit_log);
}

#[test]
fn job_spec() {
    replay("job_spec", treaty_fuzz::job_spec);
}
