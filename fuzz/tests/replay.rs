//! Replays every corpus file through its target's function on stable: the inputs the fuzzer
//! kept (and every crash it found, saved under `corpus/<target>/`) stay regression tests.

use std::path::{Path, PathBuf};

/// `corpus/<target>/`.
fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

fn replay(target: &str, run: fn(&[u8])) {
    let dir = corpus(target);
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

#[test]
fn trust_inputs() {
    replay("trust_inputs", treaty_fuzz::trust_inputs);
}

#[test]
fn party_inputs() {
    replay("party_inputs", treaty_fuzz::party_inputs);
}

#[test]
fn mpc_peers() {
    replay("mpc_peers", treaty_fuzz::mpc_peers);
}

/// The recorded peer scripts are in the corpus (rerun with `TREATY_WRITE_SEEDS=1` when a
/// protocol's messages change).
#[test]
fn mpc_peer_seeds_are_in_the_corpus() {
    let dir = corpus("mpc_peers");
    let seeds = treaty_fuzz::peer_seeds();
    assert_eq!(seeds.len(), 6, "every seed was made");
    for (name, bytes) in seeds {
        assert!(bytes.len() > 100, "{name}: the run recorded no messages");
        assert!(
            treaty_fuzz::replay_peers(&bytes),
            "{name}: the honest party does not get to the end of its recorded script"
        );
        check_seed(&dir, &name, &bytes);
    }
}

/// Writes `bytes` as `dir/seed-<name>` with `TREATY_WRITE_SEEDS` set; checks the stored file is
/// `bytes`.
fn check_seed(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(format!("seed-{name}"));
    if std::env::var_os("TREATY_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        stored,
        bytes,
        "{} is stale: rerun with TREATY_WRITE_SEEDS=1",
        path.display()
    );
}

/// The generated seeds are in the corpus, and each is accepted where it should be (so the
/// fuzzer starts past the signature checks).
#[test]
fn trust_seeds_are_in_the_corpus() {
    use prost::Message;

    let dir = corpus("trust_inputs");
    let seeds = treaty_fuzz::trust_seeds();
    assert_eq!(seeds.len(), 5, "every seed was made");
    let (_, submission) = &seeds[0];
    let signed = treaty_proto::v1::SignedSubmission::decode(&submission[1..]).unwrap();
    assert!(treaty_trust::identity::verify_submission(&signed).is_ok());
    for (name, bytes) in seeds {
        check_seed(&dir, name, &bytes);
    }
}
