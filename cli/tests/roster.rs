//! The per-organisation deployment with the real `treaty` binary: the coordinator's operator,
//! three data owners and an analyst each make their own CA and certificate, write their roster
//! entries, assemble and accept one roster; then a coordinator and three party processes run a
//! job for the analyst over loopback. A node started with the analyst's certificate is refused,
//! with a message that says why. The example configs and policies are used as shipped (only
//! ports and paths are rewritten).
#![allow(clippy::unwrap_used)]

mod deploy;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use deploy::{Proc, free_port, run_ok, spawn, treaty, wait_online};

const PARTIES: [&str; 3] = ["hospital", "insurer", "bank"];
const ROWS: usize = 2_000;

/// `treaty roster entry ARGS` written to `entries/NAME.toml`.
fn entry(d: &Path, name: &str, args: &mut Command) -> PathBuf {
    let out = run_ok(args);
    let path = d.join(format!("entries/{name}.toml"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

#[test]
fn three_organisations_agree_on_a_roster_and_run_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");

    // 1. Each organisation makes its own keys, on its own machine.
    let keys = |role: &str, name: &str, out: &Path| {
        run_ok(
            treaty()
                .args(["roster", "keys", "--role", role, "--name", name, "--out"])
                .arg(out),
        );
    };
    keys("coordinator", "coordinator", &d.join("coord"));
    keys("analyst", "analyst", &d.join("analyst"));
    for p in PARTIES {
        keys("party", p, &d.join(format!("{p}/pki")));
        run_ok(
            treaty()
                .args(["synth", "--party", p, "--rows", &ROWS.to_string(), "--out"])
                .arg(d.join(format!("data/{p}-claims.csv"))),
        );
    }

    // 2. Node configs: the shipped examples, with this test's ports, the organisation's own
    //    PKI and the roster.
    let coord_port = free_port();
    let coordinator = format!("https://127.0.0.1:{coord_port}");
    let mut configs = Vec::new();
    for (i, p) in PARTIES.iter().enumerate() {
        let text = std::fs::read_to_string(examples.join(format!("{p}.toml")))
            .unwrap()
            .replace(
                &format!("127.0.0.1:{}", 7101 + i),
                &format!("127.0.0.1:{}", free_port()),
            )
            .replace("https://127.0.0.1:7000", &coordinator)
            .replace("../treaty-pki/", "pki/")
            .replace(
                &format!("policy = \"{p}-policy.toml\""),
                &format!("policy = \"{p}-policy.toml\"\nroster = \"../roster.toml\""),
            );
        let cfg = d.join(format!("{p}/{p}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let policy = std::fs::read_to_string(examples.join(format!("{p}-policy.toml")))
            .unwrap()
            .replace("../treaty-pki/analysts.toml", "../analysts.toml");
        std::fs::write(d.join(format!("{p}/{p}-policy.toml")), policy).unwrap();
        configs.push(cfg);
    }

    // 3. Entries, the roster, its analysts, and each node's acceptance.
    let mut entries = Vec::new();
    for (p, cfg) in PARTIES.iter().zip(&configs) {
        entries.push(entry(
            d,
            p,
            treaty().args(["roster", "entry", "--config"]).arg(cfg),
        ));
    }
    entries.push(entry(
        d,
        "coordinator",
        treaty()
            .args([
                "roster",
                "entry",
                "--role",
                "coordinator",
                "--name",
                "coordinator",
            ])
            .args(["--endpoint", &coordinator, "--cert"])
            .arg(d.join("coord/coordinator.pem"))
            .arg("--ca")
            .arg(d.join("coord/ca.pem")),
    ));
    entries.push(entry(
        d,
        "analyst",
        treaty()
            .args([
                "roster", "entry", "--role", "analyst", "--name", "analyst", "--cert",
            ])
            .arg(d.join("analyst/analyst.pem"))
            .arg("--ca")
            .arg(d.join("analyst/ca.pem"))
            .arg("--sign-pub")
            .arg(d.join("analyst/analyst.sign.pub"))
            .arg("--result-pub")
            .arg(d.join("analyst/analyst.hpke.pub")),
    ));
    let roster = d.join("roster.toml");
    let out = run_ok(
        treaty()
            .args([
                "roster",
                "assemble",
                "--version",
                "1",
                "--consortium",
                "claims",
                "--out",
            ])
            .arg(&roster)
            .args(&entries),
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("roster version 1 (claims) sha256"),
        "{shown}"
    );
    run_ok(
        treaty()
            .args(["roster", "analysts"])
            .arg(&roster)
            .arg("--out")
            .arg(d.join("analysts.toml")),
    );

    // A node whose operator has not accepted the roster does not start.
    let out = treaty()
        .arg("party")
        .arg("--config")
        .arg(&configs[0])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("treaty roster accept"), "{stderr}");
    for cfg in &configs {
        run_ok(
            treaty()
                .args(["roster", "accept", "--by", "ops", "--config"])
                .arg(cfg),
        );
    }

    // 4. The coordinator and the three nodes.
    let _coordinator = spawn(
        treaty()
            .args([
                "coordinator",
                "--listen",
                &format!("127.0.0.1:{coord_port}"),
            ])
            .arg("--roster")
            .arg(&roster)
            .arg("--tls-ca")
            .arg(d.join("coord/ca.pem"))
            .arg("--tls-cert")
            .arg(d.join("coord/coordinator.pem"))
            .arg("--tls-key")
            .arg(d.join("coord/coordinator.key"))
            .arg("--analysts")
            .arg(d.join("analysts.toml"))
            .arg("--state-dir")
            .arg(d.join("coordinator-state")),
        &d.join("coordinator.log"),
    );
    let _parties: Vec<Proc> = PARTIES
        .iter()
        .zip(&configs)
        .map(|(p, cfg)| {
            spawn(
                treaty().arg("party").arg("--config").arg(cfg),
                &d.join(format!("{p}.log")),
            )
        })
        .collect();

    // 5. The analyst: its own certificate; the roster says whom to trust as the coordinator
    //    and which keys the parties sign their shares with.
    let as_analyst = |cmd: &mut Command| {
        cmd.args(["--coordinator", &coordinator, "--as", "analyst"])
            .arg("--pki")
            .arg(d.join("analyst"))
            .arg("--roster")
            .arg(&roster);
    };
    let analyst = |cmd: &mut Command| -> Output {
        as_analyst(cmd);
        run_ok(cmd)
    };
    wait_online(
        3,
        as_analyst,
        d,
        &["coordinator", "hospital", "insurer", "bank"],
    );
    let out = analyst(
        treaty()
            .args(["submit", "--json"])
            .arg(examples.join("stats-job.toml"))
            .arg("--recipient-key")
            .arg(d.join("analyst/analyst.hpke.pub")),
    );
    let submitted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let job = submitted["job_id"].as_str().unwrap().to_string();
    analyst(treaty().args(["watch", &job]));
    let out = analyst(
        treaty()
            .args(["result", &job, "--json", "--key"])
            .arg(d.join("analyst/analyst.hpke.key")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("warning"),
        "the shares were not verified with the roster's keys: {stderr}"
    );
    let opened: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let count = opened["result"]["count"].as_u64().unwrap();
    assert!(count > 0 && count < 3 * ROWS as u64, "{opened}");

    // 6. Mallory: a node with the analyst's certificate (trusting the coordinator's CA) under
    //    a party id of its choosing is refused by the coordinator, and says why.
    let mallory = d.join("mallory.toml");
    std::fs::write(
        &mallory,
        format!(
            "id = \"mallory\"\nlisten = \"127.0.0.1:{}\"\ncoordinator = \"{coordinator}\"\n\
             [tls]\nca = \"coord/ca.pem\"\ncert = \"analyst/analyst.pem\"\nkey = \"analyst/analyst.key\"\n",
            free_port()
        ),
    )
    .unwrap();
    let out = treaty()
        .arg("party")
        .arg("--config")
        .arg(&mallory)
        .output()
        .unwrap();
    assert!(!out.status.success(), "mallory's node was not refused");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("analyst") && stderr.contains("mallory"),
        "the refusal does not say why: {stderr}"
    );
    let out = analyst(treaty().args(["parties", "--json"]));
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(!list.contains("mallory"), "mallory was registered: {list}");
}
