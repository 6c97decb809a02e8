#![allow(clippy::unwrap_used)]
//! Data-owner policies, analyst signatures, human approvals and the coordinator's record of
//! audit heads, against a whole deployment in one process (the [`Sandbox`]: a real coordinator
//! and real party nodes over loopback gRPC with mutual TLS) on synthetic claims.
//!
//! Every refusal is checked for its reason as the analyst sees it; every admitted job must
//! succeed. Timeouts are upper bounds so a broken run fails fast; no verdict depends on timing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use tempfile::TempDir;
use treaty_audit::{AuditEvent, AuditRecord, SignedHead, verify_log};
use treaty_mpc::output::RecipientSecretKey;
use treaty_party::approval;
use treaty_proto::v1::{self as pb, JobState, PartyJobState};
use treaty_sandbox::demo::{self, DemoOptions};
use treaty_sandbox::sandbox::{OPEN_POLICY, Sandbox, SandboxOptions};

/// Claims per party.
const ROWS: usize = 400;
/// Upper bound on anything a test waits for.
const PATIENCE: Duration = Duration::from_secs(60);

struct Setup {
    _dir: TempDir,
    sandbox: Sandbox,
    spec: pb::JobSpec,
    recipient: RecipientSecretKey,
    /// The demo job's statistics computed in the clear.
    clear: treaty_mpc::stats::StatsResult,
}

impl Setup {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = DemoOptions::new(dir.path().join("data"));
        opts.rows = ROWS;
        opts.parties = ["hospital", "insurer"].map(String::from).to_vec();
        let data = demo::write_data(&opts).unwrap();
        let sandbox = Sandbox::start_with_datasets(
            SandboxOptions::new(dir.path().join("sandbox")),
            &opts.parties,
            &data,
        )
        .await
        .unwrap();
        let recipient = RecipientSecretKey::generate(&mut treaty_mpc::seeds::os_rng().unwrap());
        let spec = demo::stats_spec(&opts, recipient.public_key().unwrap().to_vec());
        let clear = demo::clear_reference(&opts, &data).unwrap();
        Self {
            _dir: dir,
            sandbox,
            spec,
            recipient,
            clear,
        }
    }

    fn sandbox_file(&self, name: &str) -> PathBuf {
        self.sandbox.dir().join(name)
    }

    /// Replaces `party`'s policy: the node reads it at the next assignment (no restart).
    fn set_policy(&self, party: &str, text: &str) {
        std::fs::write(self.sandbox_file(&format!("{party}-policy.toml")), text).unwrap();
    }

    fn party_config(&self, party: &str) -> treaty_party::PartyConfig {
        self.sandbox
            .party_config(party, "127.0.0.1:1".parse().unwrap(), Vec::new())
    }

    fn log(&self, writer: &str) -> String {
        let dir = if writer == "coordinator" {
            "coordinator-state".to_string()
        } else {
            format!("{writer}-state")
        };
        std::fs::read_to_string(self.sandbox_file(&format!("{dir}/audit/log.jsonl"))).unwrap()
    }

    async fn submit(&self, spec: pb::JobSpec) -> Result<String, tonic::Status> {
        let request = self.sandbox.sign(spec).unwrap();
        let mut client = self.sandbox.analyst().await.unwrap();
        Ok(client.submit_job(request).await?.into_inner().job_id)
    }

    async fn job(&self, id: &str) -> pb::Job {
        let mut client = self.sandbox.analyst().await.unwrap();
        let req = pb::GetJobRequest { job_id: id.into() };
        client.get_job(req).await.unwrap().into_inner()
    }

    /// Polls the job until `done` holds.
    async fn until(&self, id: &str, done: impl Fn(&pb::Job) -> bool) -> pb::Job {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let job = self.job(id).await;
            if done(&job) {
                return job;
            }
            assert!(Instant::now() < deadline, "job never got there: {job:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn run(&self) -> pb::Job {
        let id = self.submit(self.spec.clone()).await.unwrap();
        self.until(&id, |j| treaty_coordinator::service::is_final(j.state()))
            .await
    }
}

/// The sandbox analyst's key, as the policies name it.
fn policy(rules: &str) -> String {
    format!("analysts_file = \"analysts.toml\"\n\n{rules}")
}

fn events(log: &str, job: &str) -> Vec<AuditEvent> {
    log.lines()
        .map(|l| serde_json::from_str::<AuditRecord>(l).unwrap())
        .filter(|r| r.entry.job.as_deref() == Some(job))
        .map(|r| r.entry.event)
        .collect()
}

fn policy_hashes(log: &str, job: &str) -> Vec<String> {
    events(log, job)
        .into_iter()
        .filter_map(|e| match e {
            AuditEvent::PolicyDecision { policy_sha256, .. } => Some(policy_sha256.to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_party_policy_decides_and_reloads_without_a_restart() {
    let s = Setup::start().await;

    // 1. The open sandbox policy admits the demo job.
    let ok = s.run().await;
    assert_eq!(ok.state(), JobState::Succeeded, "{ok:?}");
    let secure = treaty_analyst::fetch_stats_result(
        &mut s.sandbox.analyst().await.unwrap(),
        &ok,
        &s.recipient,
        &s.sandbox.party_keys(),
    )
    .await
    .unwrap();
    let fixed = treaty_mpc::fixed::FixedPoint::new(16).unwrap();
    let (err, close) = secure.compare(&s.clear, fixed);
    assert!(close, "secure {secure:?} vs clear {:?}: {err}", s.clear);

    // 2. The hospital narrows its columns: the job touches length_of_stay and is refused, with
    //    a reason that names the column and nothing else of the policy. No restart.
    s.set_policy(
        "hospital",
        &policy(
            "[[rules]]\nanalysts = [\"analyst\"]\njobs = [\"stats\"]\n\
             datasets = { claims = [\"claim_amount\", \"paid_amount\", \"diagnosis_group\"] }\n\
             recipients = [\"*\"]\n\n\
             [[rules]]\nanalysts = [\"analyst\"]\njobs = [\"psi\"]\ndatasets = { secret_ward = [\"*\"] }\n\
             recipients = [\"*\"]\n",
        ),
    );
    let refused = s.run().await;
    assert_eq!(refused.state(), JobState::Rejected, "{refused:?}");
    assert!(
        refused.reason.contains(
            "hospital: refused by hospital's policy: column \"length_of_stay\" of dataset \
             \"claims\" is not permitted to analyst \"analyst\""
        ),
        "{}",
        refused.reason
    );
    assert!(
        !refused.reason.contains("secret_ward"),
        "{}",
        refused.reason
    );
    assert!(!refused.reason.contains("insurer:"), "{}", refused.reason);
    let hospital = refused
        .parties
        .iter()
        .find(|p| p.party == "hospital")
        .unwrap();
    assert_eq!(hospital.state(), PartyJobState::Rejected);
    // Both decisions are in the hospital's log, under two different policy versions.
    let log = s.log("hospital");
    let (v1, v2) = (
        policy_hashes(&log, &ok.id),
        policy_hashes(&log, &refused.id),
    );
    assert_eq!((v1.len(), v2.len()), (1, 1));
    assert_ne!(v1, v2, "the policy version changed with the file");

    // 3. The cohort rule: more records required than the filter leaves at the insurer. The job
    //    fails before any share leaves, naming the minimum, not the count.
    s.set_policy("hospital", OPEN_POLICY);
    s.set_policy(
        "insurer",
        &policy(&format!(
            "[[rules]]\nanalysts = [\"*\"]\njobs = [\"stats\"]\ndatasets = {{ claims = [\"*\"] }}\n\
             recipients = [\"*\"]\nmin_cohort = {ROWS}\n"
        )),
    );
    let small = s.run().await;
    assert_eq!(small.state(), JobState::Failed, "{small:?}");
    assert!(
        small.reason.contains(&format!(
            "refused by insurer's policy: fewer than {ROWS} records here are behind the result"
        )),
        "{}",
        small.reason
    );

    // 4. An analyst the insurer does not list (its policy names only someone else).
    let other = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[9; 32])
            .verifying_key()
            .to_bytes(),
    );
    s.set_policy(
        "insurer",
        &format!(
            "[[analysts]]\nname = \"eve\"\nkey = \"{other}\"\n\n[[rules]]\nanalysts = [\"eve\"]\n\
             jobs = [\"stats\"]\ndatasets = {{ claims = [\"*\"] }}\nrecipients = [\"*\"]\n"
        ),
    );
    let unknown = s.run().await;
    assert_eq!(unknown.state(), JobState::Rejected);
    assert!(
        unknown
            .reason
            .contains("insurer: refused by insurer: unknown analyst \"analyst\""),
        "{}",
        unknown.reason
    );

    // 5. The same signed submission twice is one job, not two. (The insurer's cohort rule is
    //    now one the filter passes.)
    s.set_policy(
        "insurer",
        &policy(
            "[[rules]]\nanalysts = [\"*\"]\njobs = [\"stats\"]\ndatasets = { claims = [\"*\"] }\n\
             recipients = [\"*\"]\nmin_cohort = 5\n",
        ),
    );
    let request = s.sandbox.sign(s.spec.clone()).unwrap();
    let mut client = s.sandbox.analyst().await.unwrap();
    let first = client
        .submit_job(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = client.submit_job(request).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::AlreadyExists, "{again:?}");
    assert!(
        again.message().contains(&first.job_id),
        "{}",
        again.message()
    );
    let replayed = s
        .until(&first.job_id, |j| {
            treaty_coordinator::service::is_final(j.state())
        })
        .await;
    assert_eq!(replayed.state(), JobState::Succeeded, "{replayed:?}");

    // 6. Revoked at the coordinator: refused at submission, before any party hears of it.
    let analysts = s.sandbox_file("analysts.toml");
    let text = std::fs::read_to_string(&analysts).unwrap();
    std::fs::write(
        &analysts,
        text.replace("name = \"analyst\"", "name = \"analyst\"\nrevoked = true"),
    )
    .unwrap();
    let revoked = s.submit(s.spec.clone()).await.unwrap_err();
    assert_eq!(revoked.code(), tonic::Code::PermissionDenied);
    assert!(
        revoked.message().contains("analyst \"analyst\" is revoked"),
        "{revoked:?}"
    );
    std::fs::write(&analysts, text).unwrap();

    // 7. The coordinator holds every party's latest signed head; each log verifies against it,
    //    and a log cut back to an older state no longer does.
    let mut client = s.sandbox.analyst().await.unwrap();
    let registry = client
        .get_audit_registry(pb::GetAuditRegistryRequest {})
        .await
        .unwrap()
        .into_inner();
    let writers: Vec<&str> = registry.writers.iter().map(|w| w.writer.as_str()).collect();
    assert_eq!(writers, ["coordinator", "hospital", "insurer"]);
    for w in &registry.writers {
        let key = VerifyingKey::from_bytes(&w.public_key.as_slice().try_into().unwrap()).unwrap();
        let head = SignedHead::from_proto(w.head.as_ref().unwrap()).unwrap();
        let log = s.log(&w.writer);
        let (records, failures) = verify_log(&w.writer, &log, &key, Some(&head));
        assert!(failures.is_empty(), "{}: {failures:?}", w.writer);
        assert!(records.len() as u64 > head.seq, "{}", w.writer);
        if w.writer == "hospital" {
            let older: String = log.lines().take(4).map(|l| format!("{l}\n")).collect();
            let (_, failures) = verify_log(&w.writer, &older, &key, Some(&head));
            assert!(
                failures
                    .iter()
                    .any(|f| f.problem.contains("an older copy, or truncated")),
                "{failures:?}"
            );
        }
    }
    // The coordinator's own log has each party's answer to the refused job.
    let answers: Vec<(String, bool)> = events(&s.log("coordinator"), &refused.id)
        .into_iter()
        .filter_map(|e| match e {
            AuditEvent::PartyAnswer {
                party, admitted, ..
            } => Some((party, admitted)),
            _ => None,
        })
        .collect();
    assert!(
        answers.contains(&("hospital".to_string(), false)),
        "{answers:?}"
    );
    s.sandbox.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_human_approves_or_rejects_what_the_policy_holds() {
    let s = Setup::start().await;
    s.set_policy(
        "insurer",
        &policy(
            "[[rules]]\nanalysts = [\"*\"]\njobs = [\"stats\"]\ndatasets = { claims = [\"*\"] }\n\
             recipients = [\"*\"]\napproval = true\n",
        ),
    );
    let cfg = s.party_config("insurer");

    // Approved: the job waits at the insurer, then runs.
    let id = s.submit(s.spec.clone()).await.unwrap();
    let waiting = s
        .until(&id, |j| {
            j.parties
                .iter()
                .any(|p| p.state() == PartyJobState::AwaitingApproval)
        })
        .await;
    assert_eq!(waiting.state(), JobState::Submitted, "{waiting:?}");
    let pending = approval::list(&cfg).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].job.as_str(), pending[0].analyst.as_str()),
        (id.as_str(), "analyst")
    );
    assert!(pending[0].columns.contains(&"claim_amount".to_string()));
    approval::decide(&cfg, &id, true, "dr-ops", "looks fine").unwrap();
    let done = s
        .until(&id, |j| treaty_coordinator::service::is_final(j.state()))
        .await;
    assert_eq!(done.state(), JobState::Succeeded, "{done:?}");
    let events = events(&s.log("insurer"), &id);
    let decided = events
        .iter()
        .find_map(|e| match e {
            AuditEvent::PolicyDecision {
                policy_sha256,
                needs_approval,
                ..
            } => Some((*policy_sha256, *needs_approval)),
            _ => None,
        })
        .unwrap();
    assert!(decided.1);
    assert!(events.iter().any(|e| matches!(
        e,
        AuditEvent::Approval { by, approved: true, policy_sha256, .. }
            if by == "dr-ops" && *policy_sha256 == decided.0
    )));

    // Rejected: the analyst sees who and why.
    let id = s.submit(s.spec.clone()).await.unwrap();
    s.until(&id, |j| {
        j.parties
            .iter()
            .any(|p| p.state() == PartyJobState::AwaitingApproval)
    })
    .await;
    assert!(
        approval::decide(&cfg, &id, false, "dr-ops", "").is_err(),
        "a reason is required"
    );
    approval::decide(&cfg, &id, false, "dr-ops", "not this quarter").unwrap();
    let rejected = s
        .until(&id, |j| treaty_coordinator::service::is_final(j.state()))
        .await;
    assert_eq!(rejected.state(), JobState::Rejected, "{rejected:?}");
    assert!(
        rejected
            .reason
            .contains("insurer: rejected at insurer by dr-ops: not this quarter"),
        "{}",
        rejected.reason
    );
    assert!(approval::list(&cfg).unwrap().is_empty());
    s.sandbox.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_broken_policy_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut sandbox = Sandbox::start(
        SandboxOptions::new(dir.path().to_path_buf()),
        &["lab".into()],
    )
    .await
    .unwrap();
    std::fs::write(
        dir.path().join("lab-policy.toml"),
        "[[rules]]\nanalysts = [\"nobody\"]\njobs = [\"stats\"]\n",
    )
    .unwrap();
    sandbox.start_party("lab", Vec::new()).await.unwrap();
    let exit = sandbox.party_exit("lab", PATIENCE).await.unwrap();
    let e = exit.unwrap_err().to_string();
    assert!(
        e.contains("lab-policy.toml") && e.contains("analyst \"nobody\" is not listed"),
        "{e}"
    );
    sandbox.shut_down().await;
}
