//! The real `treaty` binary as a coordinator and three party processes on loopback: init, synth,
//! submit, watch and result through the CLI, compared with the same statistics in the clear.
//! The example configs and job file under `examples/` are used as they are shipped (only ports
//! and paths are rewritten).
#![allow(clippy::unwrap_used)]

mod deploy;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use deploy::{free_port, party_config, run_ok, spawn, treaty, wait_online};

use treaty_mpc::fixed::FixedPoint;
use treaty_mpc::stats::StatsResult;
use treaty_party::dataset::{self, Predicate};
use treaty_sandbox::synthetic;

const PARTIES: [&str; 3] = ["hospital", "insurer", "bank"];
const ROWS: usize = 3_000;

#[test]
fn coordinator_and_three_party_processes_match_the_clear_computation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let pki = d.join("treaty-pki");

    run_ok(treaty().arg("init").arg("--out").arg(&pki));
    for p in PARTIES {
        run_ok(
            treaty()
                .args(["synth", "--party", p, "--rows", &ROWS.to_string(), "--out"])
                .arg(d.join(format!("data/{p}-claims.csv"))),
        );
    }

    let coord_port = free_port();
    let coordinator = format!("https://127.0.0.1:{coord_port}");
    let _coordinator = spawn(
        treaty()
            .args([
                "coordinator",
                "--listen",
                &format!("127.0.0.1:{coord_port}"),
            ])
            .arg("--pki")
            .arg(&pki)
            .arg("--state-dir")
            .arg(d.join("state")),
        &d.join("coordinator.log"),
    );
    let mut parties = Vec::new();
    let configs = d.join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    for (i, p) in PARTIES.iter().enumerate() {
        // The shipped example, with this test's ports (paths stay relative: configs/ mirrors
        // examples/ one level below the directory holding treaty-pki/ and data/).
        let cfg = party_config(&examples, &configs, p, |text| {
            text.replace(
                &format!("127.0.0.1:{}", 7101 + i),
                &format!("127.0.0.1:{}", free_port()),
            )
            .replace("https://127.0.0.1:7000", &coordinator)
        });
        parties.push(spawn(
            treaty().arg("party").arg("--config").arg(&cfg),
            &d.join(format!("{p}.log")),
        ));
    }

    let as_analyst = |cmd: &mut Command| {
        cmd.args(["--coordinator", &coordinator])
            .arg("--pki")
            .arg(&pki);
    };
    let analyst = |cmd: &mut Command| -> Output {
        as_analyst(cmd);
        run_ok(cmd)
    };
    // Wait for all three parties to be registered and online.
    wait_online(3, as_analyst, d, &["coordinator"]);

    // examples/stats-job.toml, submitted as the analyst; returns the job id.
    let submit_stats = || -> String {
        let out = analyst(
            treaty()
                .args(["submit", "--json"])
                .arg(examples.join("stats-job.toml"))
                .arg("--recipient-key")
                .arg(pki.join("analyst.hpke.pub")),
        );
        let submitted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        submitted["job_id"].as_str().unwrap().to_string()
    };
    let job_id = submit_stats();

    analyst(treaty().args(["watch", &job_id]));
    let out = analyst(
        treaty()
            .args(["result", &job_id, "--json", "--key"])
            .arg(pki.join("analyst.hpke.key")),
    );
    let opened: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let secure: StatsResult = serde_json::from_value(opened["result"].clone()).unwrap();

    // The same statistics in the clear, from the same files.
    let columns: Vec<String> = ["claim_amount", "paid_amount", "length_of_stay"]
        .map(String::from)
        .to_vec();
    let mut all: Vec<Vec<f64>> = vec![Vec::new(); columns.len()];
    for p in PARTIES {
        let path = d.join(format!("data/{p}-claims.csv"));
        let ds = synthetic::claims_schema("claims", path.clone());
        let mut wanted: Vec<&str> = columns.iter().map(String::as_str).collect();
        wanted.push("diagnosis_group");
        let table = dataset::load_columns(&ds, &path, &wanted).unwrap();
        let mask = dataset::filter_mask(
            &table,
            &ds,
            "diagnosis_group",
            &Predicate::Equals("diabetes".into()),
        )
        .unwrap();
        for (i, c) in columns.iter().enumerate() {
            all[i].extend(dataset::select(table.numeric(c).unwrap(), &mask));
        }
    }
    let clear = StatsResult::plaintext(&columns, &all);
    let (err, ok) = secure.compare(&clear, FixedPoint::new(16).unwrap());
    assert!(ok, "secure {secure:?}\nclear {clear:?}\nmax error {err}");
    assert!(
        secure.count > 0 && secure.count < 3 * ROWS as u64,
        "{secure:?}"
    );

    // The job listing shows it succeeded with two data-plane rounds per party.
    let out = analyst(treaty().args(["jobs", "--json"]));
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let job = &jobs.as_array().unwrap()[0];
    assert_eq!(job["id"], job_id.as_str());
    assert_eq!(job["state"], "succeeded");
    for p in job["parties"].as_array().unwrap() {
        assert_eq!(p["rounds"], 2, "{p}");
    }

    // A claim-fraud model across the three, as shipped in examples/train-job.toml (on its
    // synthetic data), then a score job on the same people with the stored model.
    run_ok(
        treaty()
            .args(["synth-risk", "--rows", "1500", "--overlap", "0.8", "--out"])
            .arg(d.join("data/risk")),
    );
    let submit = |file: &Path| -> String {
        let out = analyst(
            treaty()
                .args(["submit", "--json"])
                .arg(file)
                .arg("--recipient-key")
                .arg(pki.join("analyst.hpke.pub")),
        );
        let submitted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = submitted["job_id"].as_str().unwrap().to_string();
        analyst(treaty().args(["watch", &id]));
        id
    };
    let open = |id: &str| -> serde_json::Value {
        let out = analyst(
            treaty()
                .args(["result", id, "--json", "--key"])
                .arg(pki.join("analyst.hpke.key")),
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["result"].clone()
    };
    let trained = open(&submit(&examples.join("train-job.toml")));
    assert_eq!(trained["model_id"], "claim-fraud-v1");
    assert_eq!(trained["rows"], 1200, "{trained}");
    assert_eq!(trained["metric"], "auc");
    let auc = trained["value"].as_f64().unwrap();
    assert!(auc > 0.7 && auc <= 1.0, "{trained}");
    assert!(
        trained["weights"].is_null(),
        "the weights stay secret-shared"
    );
    let score_job = d.join("configs/score-job.toml");
    let inputs: String = PARTIES
        .iter()
        .map(|p| format!("[[inputs]]\nparty = \"{p}\"\ndataset = \"risk\"\n"))
        .collect();
    std::fs::write(
        &score_job,
        format!(
            "{inputs}\n[join]\nid_columns = {{ hospital = \"person_id\", insurer = \"person_id\", \
             bank = \"person_id\" }}\n\n[score]\nmodel_id = \"claim-fraud-v1\"\noutput = \"both\"\n\
             ids_from = \"insurer\"\n\n[output]\nrecipient = \"analyst\"\n"
        ),
    )
    .unwrap();
    let scored = open(&submit(&score_job));
    assert_eq!(scored["rows"], 1200, "{scored}");
    let scores = scored["scores"].as_array().unwrap();
    let decisions = scored["decisions"].as_array().unwrap();
    assert_eq!((scores.len(), decisions.len()), (1200, 1200));
    for (s, d) in scores.iter().zip(decisions) {
        let s = s.as_f64().unwrap();
        assert!((0.0..=1.0).contains(&s), "{s}");
        // Decisions compare the exact logit, scores carry the sigmoid's ≤ 10⁻³.
        if (s - 0.5).abs() > 2e-3 {
            assert_eq!(d.as_bool().unwrap(), s >= 0.5, "{s}");
        }
    }
    assert!(scored["ids"][0].as_str().unwrap().starts_with("P-"));

    // The insurer scores the hospital's claims under encryption, as shipped in
    // examples/fhe-score-job.toml with examples/fhe-models/claims-linear.json.
    run_ok(
        treaty()
            .args(["synth-risk", "--rows", "3", "--out"])
            .arg(d.join("data/fhe")),
    );
    let models = d.join("party-state/insurer/fhe-models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::copy(
        examples.join("fhe-models/claims-linear.json"),
        models.join("claims-linear.json"),
    )
    .unwrap();
    let fhe = open(&submit(&examples.join("fhe-score-job.toml")));
    assert_eq!(fhe["rows"], 3, "{fhe}");
    assert_eq!(fhe["model_kind"], "linear");
    assert_eq!(fhe["server_key_sent"], true);
    // The same model in the clear, from the hospital's file.
    let csv = std::fs::read_to_string(d.join("data/fhe/hospital.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let features = [
        ("age", 1.0, -2),
        ("bmi", 10.0, 1),
        ("chronic_conditions", 1.0, -40),
        ("smoker", 1.0, 15),
        ("admissions_12m", 1.0, -60),
        ("length_of_stay", 1.0, -3),
        ("er_visits_12m", 1.0, 25),
        ("prescriptions", 1.0, 18),
    ];
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        let score: i64 = 300
            + features
                .iter()
                .map(|(c, scale, w)| {
                    let at = header.iter().position(|h| h == c).unwrap();
                    let x: f64 = cells[at].parse().unwrap();
                    w * (x * scale).round() as i64
                })
                .sum::<i64>();
        assert_eq!(fhe["scores"][i], score, "{fhe}");
        assert_eq!(fhe["decisions"][i], score >= 507, "{fhe}");
        assert_eq!(fhe["ids"][i], cells[0], "{fhe}");
    }

    // The auditor: every party's log verifies offline under its key, and the traffic each party
    // committed as sent is what its peers committed as received; one altered byte is named.
    let mut args: Vec<String> = vec!["audit".into(), "verify".into()];
    for p in PARTIES {
        let out = run_ok(
            treaty()
                .args(["audit", "key", "--config"])
                .arg(configs.join(format!("{p}.toml"))),
        );
        let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let log = d.join(format!("party-state/{p}/audit/log.jsonl"));
        args.push("--log".into());
        args.push(format!("{p}={}", log.display()));
        args.push("--key".into());
        args.push(format!("{p}={key}"));
    }
    let out = run_ok(treaty().args(&args));
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(report.starts_with("ok: 3 logs"), "{report}");
    let hospital_log = d.join("party-state/hospital/audit/log.jsonl");
    let text = std::fs::read_to_string(&hospital_log).unwrap();
    assert!(text.contains("\"event\":\"peer_traffic\""));
    assert!(text.contains("\"event\":\"checkpoint\""));
    let tampered = d.join("hospital-tampered.jsonl");
    std::fs::write(
        &tampered,
        text.replacen("\"outcome\":\"succeeded\"", "\"outcome\":\"failed\"", 1),
    )
    .unwrap();
    // The same arguments with the hospital's log replaced by another file.
    let hospital_log_as = |args: &[String], file: &Path| -> Vec<String> {
        let (from, to) = (
            hospital_log.display().to_string(),
            file.display().to_string(),
        );
        args.iter().map(|a| a.replace(&from, &to)).collect()
    };
    let args = hospital_log_as(&args, &tampered);
    let out = treaty().args(&args).output().unwrap();
    assert!(!out.status.success());
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report.contains("FAIL hospital: entry") && report.contains("altered"),
        "{report}"
    );

    // A human approval through the real binary: the insurer's policy now holds stats jobs for
    // its operator (the node re-reads the policy per job), who approves from the command line.
    let policy = configs.join("insurer-policy.toml");
    let text = std::fs::read_to_string(&policy).unwrap();
    assert!(text.contains("min_cohort = 10"));
    std::fs::write(
        &policy,
        text.replacen("min_cohort = 10", "min_cohort = 10\napproval = true", 1),
    )
    .unwrap();
    let insurer_cfg = configs.join("insurer.toml");
    let pending = || -> Vec<String> {
        let out = run_ok(
            treaty()
                .args(["approvals", "--json", "--config"])
                .arg(&insurer_cfg),
        );
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|p| p["job"].as_str().unwrap().to_string())
            .collect()
    };
    let wait_pending = |job: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !pending().iter().any(|p| p == job) {
            assert!(
                Instant::now() < deadline,
                "job {job} never waited for approval at the insurer\ninsurer log:\n{}",
                std::fs::read_to_string(d.join("insurer.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let approved_job = submit_stats();
    wait_pending(&approved_job);
    run_ok(
        treaty()
            .args(["approve", &approved_job, "--by", "e2e-operator", "--config"])
            .arg(&insurer_cfg),
    );
    analyst(treaty().args(["watch", &approved_job]));

    // The analyst withdraws a job still waiting for approval (a signed cancellation): it ends
    // aborted and leaves the insurer's list of pending approvals.
    let withdrawn = submit_stats();
    wait_pending(&withdrawn);
    let out = analyst(treaty().args(["cancel", &withdrawn, "--json", "--reason", "not needed"]));
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["state"], "aborted", "{job}");
    assert_eq!(
        job["reason"], "cancelled by the analyst: not needed",
        "{job}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while pending().contains(&withdrawn) {
        assert!(
            Instant::now() < deadline,
            "the withdrawn job is still pending"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let coordinator_log = d.join("state/audit/log.jsonl");
    let mut logs: Vec<String> = vec![
        "--log".into(),
        format!("coordinator={}", coordinator_log.display()),
    ];
    for p in PARTIES {
        logs.push("--log".into());
        logs.push(format!(
            "{p}={}",
            d.join(format!("party-state/{p}/audit/log.jsonl")).display()
        ));
    }
    let out = run_ok(treaty().args(["audit", "show", &approved_job]).args(&logs));
    let timeline = String::from_utf8(out.stdout).unwrap();
    assert!(timeline.contains("e2e-operator"), "{timeline}");
    assert!(
        timeline.contains("received stats job from analyst"),
        "{timeline}"
    );
    let out = run_ok(
        treaty()
            .args(["audit", "show", &approved_job, "--json"])
            .args(&logs),
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["summary"]["approvals"][0]["by"], "e2e-operator");
    assert_eq!(
        shown["summary"]["outcomes"]["insurer"]["outcome"],
        "succeeded"
    );

    // The registry the coordinator holds (every writer's key and its latest signed head),
    // saved by the auditor; all four logs verify against it. Parties send their heads right
    // after a job ends, so the registry is fetched again until it has caught up.
    let registry = d.join("registry.json");
    let verify = |logs: &[String]| -> Output {
        treaty()
            .args(["audit", "verify", "--registry"])
            .arg(&registry)
            .args(logs)
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = analyst(treaty().args(["audit", "registry"]));
        std::fs::write(&registry, &out.stdout).unwrap();
        let out = verify(&logs);
        let report = String::from_utf8(out.stdout).unwrap();
        if out.status.success() && report.starts_with("ok: 4 logs") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{report}\n{}\nregistry: {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&registry).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // An older copy of the hospital's log no longer holds the head the coordinator keeps.
    let older = d.join("hospital-older.jsonl");
    let text = std::fs::read_to_string(&hospital_log).unwrap();
    std::fs::write(
        &older,
        text.lines()
            .take(5)
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let logs = hospital_log_as(&logs, &older);
    let out = verify(&logs);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report.contains("FAIL hospital") && report.contains("older copy"),
        "{report}"
    );
}
