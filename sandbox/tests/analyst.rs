//! The analyst library ([`treaty_analyst::Analyst`]) against a real coordinator and real nodes:
//! submit a signed job, follow it, fetch and open its result, and the refusals an analyst meets
//! (no signing key, no roster, a job that did not succeed), as typed errors.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use treaty_analyst::{Analyst, AnalystError, Connect, JobResult, KeySource};
use treaty_mpc::output::RecipientSecretKey;
use treaty_proto::v1::JobState;
use treaty_sandbox::demo::{self, DemoOptions};
use treaty_sandbox::sandbox::{ANALYST, Sandbox, SandboxOptions};
use treaty_trust::client::COORDINATOR_TLS_NAME;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_submits_follows_and_opens_a_job_through_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = DemoOptions::new(dir.path().join("data"));
    opts.rows = 300;
    opts.parties = ["hospital", "insurer"].map(String::from).to_vec();
    let data = demo::write_data(&opts).unwrap();
    let sandbox = Sandbox::start_with_datasets(
        SandboxOptions::new(dir.path().join("sandbox")),
        &opts.parties,
        &data,
    )
    .await
    .unwrap();
    sandbox
        .wait_online(&opts.parties, Duration::from_secs(60))
        .await
        .unwrap();
    let recipient = RecipientSecretKey::generate(&mut treaty_mpc::seeds::os_rng().unwrap());
    let spec = demo::stats_spec(&opts, recipient.public_key().unwrap().to_vec());
    let url = sandbox.coordinator_url();
    let connect = |signing_key| Connect {
        url: &url,
        tls: sandbox.identity(ANALYST).unwrap(),
        server_name: COORDINATOR_TLS_NAME,
        roster: None,
        name: ANALYST,
        signing_key,
    };

    // Without a signing key the analyst may read but not submit or cancel.
    let mut reader = Analyst::connect(connect(None)).await.unwrap();
    assert_eq!(reader.parties().await.unwrap().len(), 2);
    assert!(matches!(
        reader.submit(spec.clone()).await,
        Err(AnalystError::NoSigningKey)
    ));
    assert!(matches!(
        reader.party_keys(KeySource::Roster).await,
        Err(AnalystError::NoRoster)
    ));

    let mut analyst = Analyst::connect(connect(Some(sandbox.analyst_key().unwrap())))
        .await
        .unwrap();
    // A spec the coordinator refuses comes back as typed problems, not only a sentence.
    let mut bad = spec.clone();
    bad.frac_bits = 99;
    match analyst.submit(bad).await {
        Err(AnalystError::InvalidSpec(problems)) => {
            assert!(
                problems
                    .iter()
                    .any(|p| p.field == "frac_bits" && p.kind == "too-large"),
                "{problems:?}"
            );
        }
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
    let job_id = analyst.submit(spec).await.unwrap();
    let mut seen = Vec::new();
    let job = analyst
        .watch(&job_id, |j| seen.push(j.state()))
        .await
        .unwrap();
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    assert_eq!(seen.last(), Some(&JobState::Succeeded));
    assert!(
        analyst
            .jobs(10)
            .await
            .unwrap()
            .iter()
            .any(|j| j.id == job_id)
    );

    // The coordinator's registry lists the same keys the sandbox's nodes hold.
    let from_coordinator = analyst.party_keys(KeySource::Coordinator).await.unwrap();
    assert_eq!(from_coordinator, sandbox.party_keys());
    let keys = analyst
        .party_keys(KeySource::Given(sandbox.party_keys()))
        .await
        .unwrap();
    let JobResult::Stats(secure) = analyst.result(&job_id, &recipient, &keys).await.unwrap() else {
        panic!("a stats job gives a stats result");
    };
    let clear = demo::clear_reference(&opts, &data).unwrap();
    let fixed = treaty_mpc::fixed::FixedPoint::new(16).unwrap();
    let (err, close) = secure.compare(&clear, fixed);
    assert!(close, "secure {secure:?} vs clear {clear:?}: {err}");

    // A job a party's policy refuses has no result, and the error says which job and why.
    std::fs::write(
        sandbox.dir().join("insurer-policy.toml"),
        "analysts_file = \"analysts.toml\"\n",
    )
    .unwrap();
    let spec = demo::stats_spec(&opts, recipient.public_key().unwrap().to_vec());
    let refused = analyst.submit(spec).await.unwrap();
    let ended = analyst.watch(&refused, |_| {}).await.unwrap();
    assert_eq!(ended.state(), JobState::Rejected, "{ended:?}");
    match analyst.result(&refused, &recipient, &keys).await {
        Err(AnalystError::NotSucceeded { job, state, reason }) => {
            assert_eq!(
                (job.as_str(), state.as_str()),
                (refused.as_str(), "rejected")
            );
            assert!(reason.contains("insurer"), "{reason}");
        }
        other => panic!("expected NotSucceeded, got {other:?}"),
    }
    sandbox.shut_down().await;
}
