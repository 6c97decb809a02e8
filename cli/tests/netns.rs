//! Faults across hosts: the real `treaty` binary as a coordinator and three party processes, each
//! in its own network namespace, wired as a full mesh of veth pairs (one link per pair of hosts,
//! each host reachable at its own address). A training job runs; once every party is exchanging
//! data, the link between the hospital and the insurer is cut — both still reach the coordinator.
//! The job must fail everywhere within the peer timeout, release nothing, and after the link is
//! healed the next job must succeed.
//!
//! The test makes its namespaces and links itself (`ip` from iproute2, as root) and removes them
//! at the end; where they cannot be made (not root, no `ip`, a kernel without namespaces) it says
//! so and passes without running.
#![allow(clippy::unwrap_used)]

mod deploy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use deploy::{clean, party_config, run_ok, spawn, wait_online_with};

/// The hosts, in address order: host `i` is `10.77.0.{i + 1}`.
const HOSTS: [&str; 4] = ["coordinator", "hospital", "insurer", "bank"];
const PARTIES: [&str; 3] = ["hospital", "insurer", "bank"];
/// Seconds a party waits for a silent peer (the examples' 60, shortened for the test).
const PEER_TIMEOUT_SECS: u64 = 5;

/// Runs `ip args`; the error is its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The test's network: one namespace per host, removed (with its links) when dropped.
struct Net {
    names: Vec<String>,
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

impl Net {
    /// Makes the namespaces, a veth pair between every two hosts (`to-<host>` at each end, the
    /// pair's own /30) and a route to every host's address over its link.
    fn make() -> Result<Self, String> {
        let pid = std::process::id();
        let mut net = Self { names: Vec::new() };
        for (i, host) in HOSTS.iter().enumerate() {
            let ns = format!("treaty{pid}-{host}");
            ip(&["netns", "add", &ns])?;
            net.names.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/32", addr(i)),
                "dev",
                "lo",
            ])?;
        }
        for (k, (i, j)) in pairs().enumerate() {
            let k = k + 1;
            let (a, b) = (&net.names[i], &net.names[j]);
            let (to_j, to_i) = (format!("to-{}", HOSTS[j]), format!("to-{}", HOSTS[i]));
            ip(&[
                "link", "add", &to_j, "netns", a, "type", "veth", "peer", "name", &to_i, "netns", b,
            ])?;
            let (ai, bi) = (format!("10.77.{k}.1"), format!("10.77.{k}.2"));
            ip(&["-n", a, "addr", "add", &format!("{ai}/30"), "dev", &to_j])?;
            ip(&["-n", b, "addr", "add", &format!("{bi}/30"), "dev", &to_i])?;
            ip(&["-n", a, "link", "set", &to_j, "up"])?;
            ip(&["-n", b, "link", "set", &to_i, "up"])?;
            ip(&[
                "-n",
                a,
                "route",
                "add",
                &format!("{}/32", addr(j)),
                "via",
                &bi,
            ])?;
            ip(&[
                "-n",
                b,
                "route",
                "add",
                &format!("{}/32", addr(i)),
                "via",
                &ai,
            ])?;
        }
        Ok(net)
    }

    fn ns(&self, host: &str) -> &str {
        let i = HOSTS.iter().position(|h| *h == host).unwrap();
        &self.names[i]
    }

    /// The `treaty` binary inside `host`'s namespace.
    fn treaty(&self, host: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.ns(host), env!("CARGO_BIN_EXE_treaty")]);
        clean(c)
    }

    /// Cuts the link between `a` and `b` at `b`'s end: `a`'s packets to `b` vanish without an
    /// error (its end stays up, without a carrier), `b` loses its route to `a`.
    fn cut(&self, a: &str, b: &str) {
        ip(&["-n", self.ns(b), "link", "set", &format!("to-{a}"), "down"]).unwrap();
    }

    /// Waits (up to 30 s) until `from` opens a TCP connection to `to`'s data plane (port 7101),
    /// so a healed link carries traffic before the test relies on it (the link comes up and
    /// the neighbour entries are resolved again asynchronously).
    fn wait_connects(&self, from: &str, to: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let probe = format!("exec 3<>/dev/tcp/{}/7101", addr(host(to)));
        loop {
            let ok = Command::new("ip")
                .args(["netns", "exec", self.ns(from), "bash", "-c", &probe])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{from} cannot reach {to} after the heal"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Heals what [`Net::cut`] cut, route included.
    fn heal(&self, a: &str, b: &str) {
        let (i, j) = (host(a), host(b));
        let dev = format!("to-{a}");
        ip(&["-n", self.ns(b), "link", "set", &dev, "up"]).unwrap();
        // The pair's /30 (the `k`-th link made): the lower host's end is .1.
        let (lo, hi) = (i.min(j), i.max(j));
        let k = pairs().position(|p| p == (lo, hi)).unwrap() + 1;
        let via = format!("10.77.{k}.{}", if i < j { 1 } else { 2 });
        ip(&[
            "-n",
            self.ns(b),
            "route",
            "replace",
            &format!("{}/32", addr(i)),
            "via",
            &via,
            "dev",
            &dev,
        ])
        .unwrap();
    }
}

/// Every pair of hosts `(i, j)`, `i < j`, in the order their links are made.
fn pairs() -> impl Iterator<Item = (usize, usize)> {
    (0..HOSTS.len()).flat_map(|i| (i + 1..HOSTS.len()).map(move |j| (i, j)))
}

fn host(name: &str) -> usize {
    HOSTS.iter().position(|h| *h == name).unwrap()
}

fn addr(i: usize) -> String {
    format!("10.77.0.{}", i + 1)
}

/// The analyst, in the coordinator's namespace.
struct Analyst<'a> {
    net: &'a Net,
    coordinator: String,
    pki: PathBuf,
}

impl Analyst<'_> {
    /// `treaty <args>` with the analyst's coordinator and PKI.
    fn treaty(&self, args: &[&str]) -> Command {
        let mut c = self.net.treaty("coordinator");
        c.args(args)
            .args(["--coordinator", &self.coordinator])
            .arg("--pki")
            .arg(&self.pki);
        c
    }

    /// Submits the job file `file`; returns the job's id.
    fn submit(&self, file: &Path) -> String {
        let mut cmd = self.treaty(&["submit", "--json"]);
        cmd.arg(file)
            .arg("--recipient-key")
            .arg(self.pki.join("analyst.hpke.pub"));
        let submitted: serde_json::Value =
            serde_json::from_slice(&run_ok(&mut cmd).stdout).unwrap();
        submitted["job_id"].as_str().unwrap().to_string()
    }

    /// The job `id` as `treaty jobs --json` lists it.
    fn job(&self, id: &str) -> serde_json::Value {
        let out = run_ok(&mut self.treaty(&["jobs", "--json"]));
        let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id)
            .cloned()
            .unwrap()
    }

    /// Polls the job until `done` holds of it, for at most two minutes.
    fn wait(&self, id: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let j = self.job(id);
            if done(&j) {
                return j;
            }
            assert!(Instant::now() < deadline, "the job did not get there: {j}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn a_link_cut_between_two_parties_fails_the_job_everywhere_and_the_next_one_runs() {
    let net = match Net::make() {
        Ok(net) => net,
        Err(why) => {
            eprintln!("skipped: network namespaces cannot be made here ({why})");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let pki = d.join("treaty-pki");
    let coordinator = format!("https://{}:7000", addr(0));

    run_ok(net.treaty("coordinator").arg("init").arg("--out").arg(&pki));
    run_ok(
        net.treaty("coordinator")
            .args(["synth-risk", "--rows", "1500", "--overlap", "0.8", "--out"])
            .arg(d.join("data/risk")),
    );
    for p in PARTIES {
        run_ok(
            net.treaty("coordinator")
                .args(["synth", "--party", p, "--rows", "500", "--out"])
                .arg(d.join(format!("data/{p}-claims.csv"))),
        );
    }
    let _coordinator = spawn(
        net.treaty("coordinator")
            .args(["coordinator", "--listen", &format!("{}:7000", addr(0))])
            .arg("--pki")
            .arg(&pki)
            .arg("--state-dir")
            .arg(d.join("state")),
        &d.join("coordinator.log"),
    );
    let configs = d.join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    let mut parties = Vec::new();
    for (i, p) in PARTIES.iter().enumerate() {
        // The shipped example, listening on this host's address, with a short peer timeout.
        let cfg = party_config(&examples, &configs, p, |text| {
            let text = text
                .replace(
                    &format!("127.0.0.1:{}", 7101 + i),
                    &format!("{}:7101", addr(host(p))),
                )
                .replace("https://127.0.0.1:7000", &coordinator)
                .replace(
                    "peer_timeout_secs = 60",
                    &format!("peer_timeout_secs = {PEER_TIMEOUT_SECS}"),
                );
            assert!(text.contains(&format!("peer_timeout_secs = {PEER_TIMEOUT_SECS}")));
            text
        });
        parties.push(spawn(
            net.treaty(p).arg("party").arg("--config").arg(&cfg),
            &d.join(format!("{p}.log")),
        ));
    }
    let analyst = Analyst {
        net: &net,
        coordinator: coordinator.clone(),
        pki: pki.clone(),
    };
    let as_analyst = |cmd: &mut Command| {
        cmd.args(["--coordinator", &coordinator])
            .arg("--pki")
            .arg(&pki);
    };
    let logs = ["coordinator", "hospital", "insurer", "bank"];
    wait_online_with(|| net.treaty("coordinator"), 3, as_analyst, d, &logs);

    // A training job long enough that it is still running when the link goes.
    let long = std::fs::read_to_string(examples.join("train-job.toml"))
        .unwrap()
        .replace("epochs = 10", "epochs = 5000")
        .replace("batch_size = 1024", "batch_size = 32")
        .replace("claim-fraud-v1", "claim-fraud-cut");
    assert!(long.contains("epochs = 5000") && long.contains("claim-fraud-cut"));
    let long_job = configs.join("long-train-job.toml");
    std::fs::write(&long_job, long).unwrap();
    let id = analyst.submit(&long_job);
    // Every party is past the join and into the training steps (its progress beyond 0.3): the
    // links are in use.
    analyst.wait(&id, |j| {
        j["state"] == "running"
            && j["parties"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["progress"].as_f64().unwrap_or(0.0) > 0.3)
    });
    let cut_at = Instant::now();
    net.cut("hospital", "insurer");
    let failed = analyst.wait(&id, |j| j["state"] != "running");
    // The analyst's view first: the job failed, and said why.
    assert!(
        failed["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{failed}"
    );
    let took = cut_at.elapsed();
    assert_eq!(failed["state"], "failed", "{failed}");
    for p in failed["parties"].as_array().unwrap() {
        assert_ne!(p["state"], "uploaded", "a share was released: {failed}");
    }
    // Within the peer timeout (the silent side's deadline), with room for reporting.
    assert!(
        took < Duration::from_secs(4 * PEER_TIMEOUT_SECS),
        "the job took {took:?} to fail after the cut"
    );
    // Nothing released: no result, and no party kept a model share.
    let mut fetch = analyst.treaty(&["result", &id, "--key"]);
    fetch.arg(pki.join("analyst.hpke.key"));
    assert!(
        !fetch.output().unwrap().status.success(),
        "a result was served"
    );
    for p in PARTIES {
        let models = d.join(format!("party-state/{p}/models"));
        let kept: Vec<_> = std::fs::read_dir(&models)
            .map(|r| r.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            kept.iter()
                .all(|f| !f.to_string_lossy().contains("claim-fraud-cut")),
            "{p} kept {kept:?}"
        );
    }

    // Healed, the next job runs.
    net.heal("hospital", "insurer");
    net.wait_connects("hospital", "insurer");
    net.wait_connects("insurer", "hospital");
    let next = analyst.submit(&examples.join("stats-job.toml"));
    let done = analyst.wait(&next, |j| {
        matches!(
            j["state"].as_str(),
            Some("succeeded" | "failed" | "rejected" | "aborted")
        )
    });
    assert_eq!(done["state"], "succeeded", "{done}");
    drop(parties);
}
