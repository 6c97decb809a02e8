#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Who may call what on the coordinator: a real coordinator over mutual TLS, dialled with real
//! certificates of every role from one CA, and callers that try what their role does not allow
//! (sybil parties, a stranger failing someone else's job, one analyst reading another's jobs).
//!
//! Verdicts are gRPC codes and job states, never sentences.

mod common;

use std::time::Duration;

use common::{Client, PATIENCE, Served};
use ed25519_dalek::SigningKey;
use tonic::{Code, Streaming};
use treaty_coordinator::CoordinatorConfig;
use treaty_coordinator::identity::{sign_cancel, sign_now};
use treaty_coordinator::pki::Pki;
use treaty_coordinator::tls::TlsIdentity;
use treaty_proto::v1::{self as pb, JobState, PartyJobState, job_report, party_event};
use treaty_trust::Role;

/// A coordinator serving mTLS on loopback, and the CA that issues every caller's certificate.
struct Deployment {
    pki: Pki,
    served: Served,
}

impl Deployment {
    async fn start() -> Self {
        let pki = Pki::generate("authz test CA").unwrap();
        let issued = pki.issue(Role::Coordinator, "coordinator", &[]).unwrap();
        let tls =
            TlsIdentity::from_pem(pki.ca_cert_pem(), &issued.cert_pem, issued.key_pem()).unwrap();
        let config = CoordinatorConfig {
            // Jobs wait for absent parties long enough to be inspected.
            offline_timeout: Duration::from_secs(120),
            accept_timeout: Duration::from_secs(120),
            ..CoordinatorConfig::default()
        };
        let served = Served::start(config, Some(tls)).await;
        Self { pki, served }
    }

    /// A fresh certificate for `role` `name`, from the deployment's CA.
    fn identity(&self, role: Role, name: &str) -> TlsIdentity {
        let issued = self.pki.issue(role, name, &[]).unwrap();
        TlsIdentity::from_pem(self.pki.ca_cert_pem(), &issued.cert_pem, issued.key_pem()).unwrap()
    }

    async fn dial(&self, identity: &TlsIdentity) -> Client {
        self.served.dial(Some(identity)).await
    }

    /// A client holding a fresh certificate of `role` `name`.
    async fn client(&self, role: Role, name: &str) -> Client {
        self.dial(&self.identity(role, name)).await
    }

    /// The coordinator's own audit log so far.
    fn audit_log(&self) -> String {
        self.served.audit_log()
    }

    /// Shuts it down and checks that `serve` returned cleanly.
    async fn stop(self) {
        self.served.stop().await;
    }
}

/// What a party registers: the claims schema, an endpoint nobody listens on, and the
/// fingerprint of its certificate.
fn party_info(id: &str, identity: &TlsIdentity) -> pb::PartyInfo {
    pb::PartyInfo {
        tls_cert_sha256: identity.cert_sha256().to_vec(),
        ..common::fixtures::party_info(id, "https://127.0.0.1:1")
    }
}

fn register(info: pb::PartyInfo) -> pb::RegisterPartyRequest {
    pb::RegisterPartyRequest { party: Some(info) }
}

/// A party that is not a node: registered with its own party certificate, and (once
/// subscribed) online; it answers only what the test tells it to.
struct Party {
    id: String,
    client: Client,
    events: Option<Streaming<pb::PartyEvent>>,
}

impl Party {
    async fn register(deployment: &Deployment, id: &str) -> Self {
        let identity = deployment.identity(Role::Party, id);
        let mut client = deployment.dial(&identity).await;
        client
            .register_party(register(party_info(id, &identity)))
            .await
            .unwrap();
        Self {
            id: id.into(),
            client,
            events: None,
        }
    }

    async fn subscribe(&mut self) {
        let events = self
            .client
            .subscribe(pb::SubscribeRequest {
                party: self.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        self.events = Some(events);
    }

    /// Waits for the next event about `job_id`.
    async fn next_event(&mut self, job_id: &str) -> party_event::Event {
        let events = self.events.as_mut().expect("not subscribed");
        tokio::time::timeout(PATIENCE, async {
            loop {
                let event = events.message().await.unwrap().and_then(|e| e.event);
                let event = event.expect("the job stream ended");
                let id = match &event {
                    party_event::Event::Assign(a) => &a.job_id,
                    party_event::Event::Start(s) => &s.job_id,
                    party_event::Event::Abort(a) => &a.job_id,
                };
                if id == job_id {
                    return event;
                }
            }
        })
        .await
        .expect("no event in time")
    }

    fn report(&self, job_id: &str, report: job_report::Report) -> pb::JobReport {
        pb::JobReport {
            job_id: job_id.into(),
            party: self.id.clone(),
            report: Some(report),
        }
    }

    async fn accept(&mut self, job_id: &str) {
        let event = self.next_event(job_id).await;
        assert!(
            matches!(event, party_event::Event::Assign(_)),
            "{}: {event:?}",
            self.id
        );
        let accepted = job_report::Report::Accepted(pb::Admission::default());
        let report = self.report(job_id, accepted);
        self.client.report_job(report).await.unwrap();
    }
}

/// An analyst: a certificate and a signing key.
struct Analyst {
    name: String,
    key: SigningKey,
    client: Client,
}

impl Analyst {
    async fn new(deployment: &Deployment, name: &str, seed: u8) -> Self {
        Self {
            name: name.into(),
            key: SigningKey::from_bytes(&[seed; 32]),
            client: deployment.client(Role::Analyst, name).await,
        }
    }

    fn signed(&self, spec: pb::JobSpec) -> pb::SubmitJobRequest {
        pb::SubmitJobRequest {
            submission: Some(sign_now(spec, &self.name, &self.key).unwrap()),
        }
    }

    async fn submit(&mut self, spec: pb::JobSpec) -> String {
        let request = self.signed(spec);
        self.client
            .submit_job(request)
            .await
            .unwrap()
            .into_inner()
            .job_id
    }
}

/// A statistics job over the claims of `parties`.
fn stats_spec(parties: &[&str]) -> pb::JobSpec {
    common::fixtures::stats_spec("authz", parties)
}

fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> Code {
    match result {
        Ok(v) => panic!("allowed: {v:?}"),
        Err(status) => status.code(),
    }
}

async fn registry(client: &mut Client) -> Vec<String> {
    let parties = client
        .list_parties(pb::ListPartiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .parties;
    parties.into_iter().map(|p| p.id).collect()
}

async fn get_job(client: &mut Client, job_id: &str) -> Result<pb::Job, tonic::Status> {
    let request = pb::GetJobRequest {
        job_id: job_id.into(),
    };
    client
        .get_job(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn list_jobs(client: &mut Client) -> Vec<String> {
    let jobs = client
        .list_jobs(pb::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .jobs;
    jobs.into_iter().map(|j| j.id).collect()
}

async fn wait_job(client: &mut Client, job_id: &str, done: impl Fn(&pb::Job) -> bool) -> pb::Job {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let job = get_job(client, job_id).await.unwrap();
            if done(&job) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the job did not get there in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_party_certificate_of_that_name_registers_the_party() {
    let deployment = Deployment::start().await;
    let attempts = [
        (Role::Analyst, "analyst", "mallory"),
        (Role::Analyst, "analyst", "analyst"),
        (Role::Auditor, "kim", "mallory"),
        (Role::Auditor, "kim", "kim"),
        (Role::Coordinator, "coordinator", "mallory"),
        (Role::Party, "hospital", "insurer"),
    ];
    for (role, name, id) in attempts {
        let identity = deployment.identity(role, name);
        let mut client = deployment.dial(&identity).await;
        let refused = client
            .register_party(register(party_info(id, &identity)))
            .await;
        assert_eq!(
            code(refused),
            Code::PermissionDenied,
            "{role} {name:?} registering as party {id:?}"
        );
    }
    let mut auditor = deployment.client(Role::Auditor, "kim").await;
    assert_eq!(
        registry(&mut auditor).await,
        Vec::<String>::new(),
        "a refused registration entered the registry"
    );

    // The genuine one, with its own certificate, is welcome.
    Party::register(&deployment, "insurer").await;
    assert_eq!(registry(&mut auditor).await, ["insurer"]);
    deployment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_certificate_speaks_only_for_its_own_party() {
    let deployment = Deployment::start().await;
    let hospital = Party::register(&deployment, "hospital").await;
    let mut insurer = Party::register(&deployment, "insurer").await;
    // The insurer subscribes, reports and records heads as the hospital.
    let subscribed = insurer
        .client
        .subscribe(pb::SubscribeRequest {
            party: hospital.id.clone(),
        })
        .await;
    assert_eq!(code(subscribed), Code::PermissionDenied);
    let report = hospital.report(
        "job-0000000000000000",
        job_report::Report::Failed("x".into()),
    );
    assert_eq!(
        code(insurer.client.report_job(report).await),
        Code::PermissionDenied
    );
    let head = pb::AuditHead {
        writer: hospital.id.clone(),
        ..Default::default()
    };
    assert_eq!(
        code(insurer.client.record_audit_head(head).await),
        Code::PermissionDenied
    );
    // An analyst certificate is no party at all.
    let mut analyst = deployment.client(Role::Analyst, "hospital").await;
    let subscribed = analyst
        .subscribe(pb::SubscribeRequest {
            party: hospital.id.clone(),
        })
        .await;
    assert_eq!(code(subscribed), Code::PermissionDenied);
    deployment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_party_cannot_report_or_upload_for_a_job() {
    let deployment = Deployment::start().await;
    let mut hospital = Party::register(&deployment, "hospital").await;
    let mut insurer = Party::register(&deployment, "insurer").await;
    let mut bank = Party::register(&deployment, "bank").await;
    for p in [&mut hospital, &mut insurer, &mut bank] {
        p.subscribe().await;
    }
    let mut alice = Analyst::new(&deployment, "alice", 1).await;
    let job_id = alice.submit(stats_spec(&["hospital", "insurer"])).await;

    // While the job waits for answers, the bank (registered, online, not in the job) fails it.
    hospital.accept(&job_id).await;
    let failed = bank.report(&job_id, job_report::Report::Failed("sabotage".into()));
    assert_eq!(
        code(bank.client.report_job(failed).await),
        Code::PermissionDenied
    );
    let rejected = bank.report(&job_id, job_report::Report::Rejected("no".into()));
    assert_eq!(
        code(bank.client.report_job(rejected).await),
        Code::PermissionDenied
    );
    insurer.accept(&job_id).await;

    // The job went on as if the bank had said nothing.
    let job = wait_job(&mut alice.client, &job_id, |j| {
        j.state() != JobState::Submitted && j.state() != JobState::Approved
    })
    .await;
    assert_eq!(job.state(), JobState::Running, "{job:?}");
    for p in &job.parties {
        assert_eq!(p.state(), PartyJobState::Running, "{job:?}");
    }

    // The bank uploads a "result" for the job, as itself and as the hospital.
    for as_party in ["bank", "hospital"] {
        let chunk = pb::ResultChunk {
            job_id: job_id.clone(),
            party: as_party.into(),
            index: 0,
            last: true,
            data: vec![1, 2, 3],
        };
        let refused = bank
            .client
            .upload_result(tokio_stream::iter(vec![chunk]))
            .await;
        assert_eq!(
            code(refused),
            Code::PermissionDenied,
            "upload as {as_party}"
        );
    }
    let after = get_job(&mut alice.client, &job_id).await.unwrap();
    assert_eq!(after.state(), JobState::Running, "{after:?}");
    for p in &after.parties {
        assert_eq!(p.state(), PartyJobState::Running, "{after:?}");
    }
    assert!(
        !deployment.audit_log().contains("\"bank\""),
        "the bank's attempts reached the audit log:\n{}",
        deployment.audit_log()
    );

    // The job's own party still can.
    let progress = hospital.report(
        &job_id,
        job_report::Report::Progress(pb::JobProgress {
            fraction: 0.5,
            ..Default::default()
        }),
    );
    hospital.client.report_job(progress).await.unwrap();
    deployment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_sees_only_their_own_jobs_and_an_auditor_changes_nothing() {
    let deployment = Deployment::start().await;
    Party::register(&deployment, "hospital").await;
    Party::register(&deployment, "insurer").await;
    let mut alice = Analyst::new(&deployment, "alice", 1).await;
    let mut bob = Analyst::new(&deployment, "bob", 2).await;
    let job_id = alice.submit(stats_spec(&["hospital", "insurer"])).await;
    let bobs_job = bob.submit(stats_spec(&["insurer", "hospital"])).await;

    // Bob is told A's job does not exist, exactly as for a job that does not.
    for id in [job_id.as_str(), "job-0123456789abcdef"] {
        assert_eq!(code(get_job(&mut bob.client, id).await), Code::NotFound);
        let watch = bob
            .client
            .watch_job(pb::WatchJobRequest { job_id: id.into() })
            .await;
        assert_eq!(code(watch), Code::NotFound);
        let fetch = bob
            .client
            .fetch_result(pb::FetchResultRequest { job_id: id.into() })
            .await;
        assert_eq!(code(fetch), Code::NotFound);
        // Even holding Alice's signature, Bob's certificate cannot cancel her job.
        let cancel = bob.client.cancel_job(sign_cancel(id, "", &alice.key)).await;
        assert_eq!(code(cancel), Code::NotFound);
    }
    assert_eq!(
        list_jobs(&mut bob.client).await,
        std::slice::from_ref(&bobs_job)
    );
    assert_eq!(
        list_jobs(&mut alice.client).await,
        std::slice::from_ref(&job_id)
    );
    assert!(get_job(&mut alice.client, &job_id).await.is_ok());

    // The auditor reads everything...
    let mut kim = deployment.client(Role::Auditor, "kim").await;
    let mut all = list_jobs(&mut kim).await;
    all.sort();
    let mut expected = vec![job_id.clone(), bobs_job.clone()];
    expected.sort();
    assert_eq!(all, expected);
    assert_eq!(get_job(&mut kim, &job_id).await.unwrap().analyst, "alice");
    let mut watch = kim
        .watch_job(pb::WatchJobRequest {
            job_id: job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().id, job_id);
    kim.list_parties(pb::ListPartiesRequest {}).await.unwrap();
    kim.get_audit_registry(pb::GetAuditRegistryRequest {})
        .await
        .unwrap();
    // ...fetches no result...
    let fetch = kim
        .fetch_result(pb::FetchResultRequest {
            job_id: job_id.clone(),
        })
        .await;
    assert_eq!(code(fetch), Code::PermissionDenied);
    // ...and changes nothing: no submission (even one it signed itself), no cancellation (even
    // one Alice signed).
    let kims_key = SigningKey::from_bytes(&[3; 32]);
    for analyst in ["kim", "alice"] {
        let submission = sign_now(stats_spec(&["hospital", "insurer"]), analyst, &kims_key);
        let request = pb::SubmitJobRequest {
            submission: Some(submission.unwrap()),
        };
        assert_eq!(
            code(kim.submit_job(request).await),
            Code::PermissionDenied,
            "auditor submitting as {analyst}"
        );
    }
    let cancel = kim.cancel_job(sign_cancel(&job_id, "", &alice.key)).await;
    assert_eq!(code(cancel), Code::PermissionDenied);
    let report = pb::JobReport {
        job_id: job_id.clone(),
        party: "hospital".into(),
        report: Some(job_report::Report::Failed("x".into())),
    };
    assert_eq!(code(kim.report_job(report).await), Code::PermissionDenied);
    let job = get_job(&mut alice.client, &job_id).await.unwrap();
    assert_eq!(job.state(), JobState::Submitted, "{job:?}");

    // Alice herself may cancel.
    let cancelled = alice
        .client
        .cancel_job(sign_cancel(&job_id, "", &alice.key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.state(), JobState::Aborted);
    deployment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_analyst_submits_and_only_as_itself() {
    let deployment = Deployment::start().await;
    let mut hospital = Party::register(&deployment, "hospital").await;
    Party::register(&deployment, "insurer").await;
    let spec = stats_spec(&["hospital", "insurer"]);
    let key = SigningKey::from_bytes(&[4; 32]);

    // A party certificate submits a job (signed in its own name, and in an analyst's).
    for analyst in ["hospital", "alice"] {
        let request = pb::SubmitJobRequest {
            submission: Some(sign_now(spec.clone(), analyst, &key).unwrap()),
        };
        assert_eq!(
            code(hospital.client.submit_job(request).await),
            Code::PermissionDenied,
            "party submitting as {analyst}"
        );
    }
    // Alice's certificate carries a submission signed as bob.
    let mut alice = Analyst::new(&deployment, "alice", 1).await;
    let as_bob = pb::SubmitJobRequest {
        submission: Some(sign_now(spec.clone(), "bob", &key).unwrap()),
    };
    assert_eq!(
        code(alice.client.submit_job(as_bob).await),
        Code::PermissionDenied
    );
    let mut kim = deployment.client(Role::Auditor, "kim").await;
    assert_eq!(list_jobs(&mut kim).await, Vec::<String>::new());

    // Signed as herself, it goes through.
    let job_id = alice.submit(spec).await;
    assert_eq!(list_jobs(&mut kim).await, [job_id]);
    deployment.stop().await;
}

/// A CA (built with rcgen directly) whose coordinator certificate states its role, and a client
/// certificate from it that states none, as a certificate issued before roles existed.
fn roleless_deployment() -> (String, TlsIdentity, TlsIdentity) {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        SanType,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |name: &str, uri: Option<&str>| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        if let Some(uri) = uri {
            params
                .subject_alt_names
                .push(SanType::URI(uri.try_into().unwrap()));
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &issuer).unwrap();
        TlsIdentity::from_pem(ca_cert.pem(), cert.pem(), key.serialize_pem()).unwrap()
    };
    let server = leaf("coordinator", Some("treaty://coordinator/coordinator"));
    let client = leaf("hospital", None);
    (ca_cert.pem(), server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_without_a_treaty_role_may_call_nothing() {
    let (_, server, client) = roleless_deployment();
    let served = Served::start(CoordinatorConfig::default(), Some(server)).await;
    let mut c = served.dial(Some(&client)).await;
    let info = party_info("hospital", &client);
    assert_eq!(
        code(c.register_party(register(info)).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(c.list_parties(pb::ListPartiesRequest {}).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(c.list_jobs(pb::ListJobsRequest::default()).await),
        Code::PermissionDenied
    );
    let registry = c.get_audit_registry(pb::GetAuditRegistryRequest {}).await;
    assert_eq!(code(registry), Code::PermissionDenied);
    served.stop().await;
}
