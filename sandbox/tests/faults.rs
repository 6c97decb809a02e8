#![allow(clippy::unwrap_used)]
//! Fault injection against a whole deployment in one process: a real coordinator and real party
//! nodes over loopback gRPC with mutual TLS (the [`Sandbox`]), synthetic claims data, and — where
//! a fault needs a misbehaving peer — a fake party ("mallory") that speaks the wire protocol by
//! hand. Every test names the fault it injects; none may make a node panic, and after every fault
//! the surviving nodes must still run a job whose result matches the clear computation.
//!
//! Timeouts are short upper bounds so a broken run fails fast; no verdict depends on timing.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use treaty_analyst::{self as analyst, AnalystError};
use treaty_mpc::transport::ScopeId;
use treaty_party::PartyError;
use treaty_party::config::TlsFiles;
use treaty_proto::v1::{self as pb, JobState, PartyJobState, frame};
use treaty_trust::TrustError;
use treaty_trust::identity::sign_cancel;
use treaty_trust::pki::Pki;
use treaty_trust::result::ResultFault;

use support::{Cluster, FakeParty, MAX_MESSAGE, PATIENCE, ROWS, set_cell, within};

mod support {
    use std::future::Future;
    use std::path::Path;
    use std::sync::Once;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tempfile::TempDir;
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;
    use tonic::Streaming;
    use tonic::transport::Channel;
    use treaty_analyst::{self as analyst, AnalystError};
    use treaty_coordinator::CoordinatorConfig;
    use treaty_mpc::fixed::FixedPoint;
    use treaty_mpc::output::RecipientSecretKey;
    use treaty_mpc::seeds;
    use treaty_mpc::stats::StatsResult;
    use treaty_party::config::Limits;
    use treaty_party::dataset::DatasetConfig;
    use treaty_proto::v1::{
        self as pb, JobState, coordinator_client::CoordinatorClient, frame, job_report,
        party_event, party_link_client::PartyLinkClient,
    };
    use treaty_sandbox::demo::{self, DATASET, DemoOptions};
    use treaty_sandbox::sandbox::{Sandbox, SandboxOptions};
    use treaty_sandbox::synthetic;
    use treaty_trust::client::{COORDINATOR_TLS_NAME, Dial, connect, endpoint};
    use treaty_trust::tls::TlsIdentity;

    /// Rows of synthetic claims per party.
    pub(crate) const ROWS: usize = 2_000;
    /// Seed of the synthetic claims.
    const SEED: u64 = 7;
    /// Upper bound on anything a test waits for; a healthy run needs a small fraction of it.
    pub(crate) const PATIENCE: Duration = Duration::from_secs(40);
    /// Largest data-plane message a party accepts (the stats protocol sends 32 bytes, a PSI batch
    /// 1.4 MB).
    pub(crate) const MAX_MESSAGE: usize = 2 << 20;

    /// Panics seen on tokio's threads (`tokio-rt-worker`, blocking pool), i.e. in a task of a
    /// node or of the coordinator; test bodies and their assertions run on the test's own thread.
    static TASK_PANICS: AtomicUsize = AtomicUsize::new(0);

    /// Makes every panic in a spawned task count (tokio would otherwise swallow it with the
    /// task's `JoinHandle`); [`Cluster::finish`] asserts there were none.
    fn count_task_panics() {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let thread = std::thread::current();
                if thread.name().is_some_and(|n| n.starts_with("tokio-")) {
                    TASK_PANICS.fetch_add(1, Ordering::SeqCst);
                }
                default(info);
            }));
        });
    }

    /// `fut`, or a panic naming `what` if it takes longer than [`PATIENCE`].
    pub(crate) async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
        tokio::time::timeout(PATIENCE, fut)
            .await
            .unwrap_or_else(|_| panic!("{what}: not done within {PATIENCE:?}"))
    }

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// Overwrites one cell of a CSV file written by `synthetic` (no quoting, no commas in cells).
    /// `row` is the 1-based data row. Returns the old text.
    pub(crate) fn set_cell(path: &Path, row: usize, column: &str, text: &str) -> String {
        let csv = std::fs::read_to_string(path).unwrap();
        let mut lines: Vec<String> = csv.lines().map(String::from).collect();
        let col = lines[0].split(',').position(|c| c == column).unwrap();
        let mut cells: Vec<String> = lines[row].split(',').map(String::from).collect();
        let old = std::mem::replace(&mut cells[col], text.to_string());
        lines[row] = cells.join(",");
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
        old
    }

    /// The first data row at or after `from` whose `column` holds `value`.
    pub(crate) fn find_row(path: &Path, column: &str, value: &str, from: usize) -> usize {
        let csv = std::fs::read_to_string(path).unwrap();
        let mut lines = csv.lines();
        let col = lines
            .next()
            .unwrap()
            .split(',')
            .position(|c| c == column)
            .unwrap();
        lines
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .find(|(row, l)| *row >= from && l.split(',').nth(col) == Some(value))
            .map(|(row, _)| row)
            .unwrap()
    }

    /// A sandbox with real party nodes serving synthetic claims, certificates for fake parties,
    /// short timeouts, and one analyst key.
    pub(crate) struct Cluster {
        pub(crate) sandbox: Sandbox,
        /// The demo's job (three numeric columns, diabetes claims only), over all real parties.
        pub(crate) demo: DemoOptions,
        /// Each real party's dataset.
        pub(crate) data: Vec<(String, DatasetConfig)>,
        pub(crate) key: RecipientSecretKey,
        _dir: TempDir,
    }

    impl Cluster {
        /// Starts `parties` as real nodes (and waits until they are online) and issues
        /// certificates for `fakes`.
        pub(crate) async fn start(parties: &[&str], fakes: &[&str]) -> Self {
            Self::start_with(parties, fakes, |_| {}).await
        }

        /// As [`Cluster::start`], letting `edit_data` change the data files before the nodes
        /// start.
        pub(crate) async fn start_with(
            parties: &[&str],
            fakes: &[&str],
            edit_data: impl FnOnce(&[(String, DatasetConfig)]),
        ) -> Self {
            count_task_panics();
            let dir = tempfile::tempdir().unwrap();
            let mut demo = DemoOptions::new(dir.path().join("data"));
            demo.rows = ROWS;
            demo.seed = SEED;
            demo.parties = ids(parties);
            let data = demo::write_data(&demo).unwrap();
            edit_data(&data);

            let mut opts = SandboxOptions::new(dir.path().join("sandbox"));
            opts.extra_names = ids(fakes);
            opts.coordinator = CoordinatorConfig {
                // The tests submit jobs back to back, one analyst: no rate limit in the way.
                submissions_per_minute: 60_000,
                submission_burst: 1_000,
                offline_timeout: Duration::from_secs(1),
                accept_timeout: Duration::from_secs(10),
                run_timeout: Duration::from_secs(60),
                ..CoordinatorConfig::default()
            };
            opts.limits = Limits {
                max_message_bytes: MAX_MESSAGE,
                peer_timeout_secs: 20,
                ..Limits::default()
            };
            let mut sandbox = Sandbox::start(opts, &demo.parties).await.unwrap();
            for (party, ds) in &data {
                sandbox.start_party(party, vec![ds.clone()]).await.unwrap();
            }
            sandbox.wait_online(&demo.parties, PATIENCE).await.unwrap();
            let key = RecipientSecretKey::generate(&mut seeds::os_rng().unwrap());
            Self {
                sandbox,
                demo,
                data,
                key,
                _dir: dir,
            }
        }

        /// The dataset of real party `party`.
        pub(crate) fn dataset(&self, party: &str) -> DatasetConfig {
            let (_, ds) = self.data.iter().find(|(p, _)| p == party).unwrap();
            ds.clone()
        }

        /// The demo's stats job over `parties`, in this order (index 0 first).
        pub(crate) fn spec(&self, parties: &[&str]) -> pb::JobSpec {
            let mut opts = self.demo.clone();
            opts.parties = ids(parties);
            demo::stats_spec(&opts, self.key.public_key().unwrap().to_vec())
        }

        pub(crate) async fn analyst(&self) -> CoordinatorClient<Channel> {
            self.sandbox.analyst().await.unwrap()
        }

        pub(crate) fn analyst_key(&self) -> ed25519_dalek::SigningKey {
            self.sandbox.analyst_key().unwrap()
        }

        pub(crate) async fn submit(&self, spec: pb::JobSpec) -> Result<String, tonic::Status> {
            let r = self
                .analyst()
                .await
                .submit_job(self.sandbox.sign(spec).unwrap())
                .await?;
            Ok(r.into_inner().job_id)
        }

        pub(crate) async fn job(&self, job_id: &str) -> pb::Job {
            let req = pb::GetJobRequest {
                job_id: job_id.into(),
            };
            self.analyst()
                .await
                .get_job(req)
                .await
                .unwrap()
                .into_inner()
        }

        /// Follows the job to its final state.
        pub(crate) async fn wait_final(&self, job_id: &str) -> pb::Job {
            let mut client = self.analyst().await;
            let req = pb::WatchJobRequest {
                job_id: job_id.into(),
            };
            let mut watch = client.watch_job(req).await.unwrap().into_inner();
            let job = within(&format!("job {job_id} to end"), async {
                let mut last = None;
                while let Some(job) = watch.message().await.unwrap() {
                    last = Some(job);
                }
                last.unwrap()
            })
            .await;
            assert!(
                !matches!(
                    job.state(),
                    JobState::Submitted | JobState::Approved | JobState::Running
                ),
                "the watch of job {job_id} ended before the job did: {job:?}"
            );
            job
        }

        /// Polls the job until `done` holds.
        pub(crate) async fn wait_job(
            &self,
            job_id: &str,
            what: &str,
            done: impl Fn(&pb::Job) -> bool,
        ) -> pb::Job {
            within(what, async {
                loop {
                    let job = self.job(job_id).await;
                    if done(&job) {
                        return job;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
        }

        /// Submits the demo's job over `parties` and follows it to its end.
        pub(crate) async fn run_stats(&self, parties: &[&str]) -> pb::Job {
            let job_id = self.submit(self.spec(parties)).await.unwrap();
            self.wait_final(&job_id).await
        }

        /// Fetches, opens and reconstructs a job's result with the analyst key.
        pub(crate) async fn fetch(&self, job: &pb::Job) -> Result<StatsResult, AnalystError> {
            let keys = self.sandbox.party_keys();
            analyst::fetch_stats_result(&mut self.analyst().await, job, &self.key, &keys).await
        }

        /// The job's statistics computed in the clear from the files of `parties`.
        pub(crate) fn clear(&self, parties: &[&str]) -> StatsResult {
            let data: Vec<_> = self
                .data
                .iter()
                .filter(|(p, _)| parties.contains(&p.as_str()))
                .cloned()
                .collect();
            let mut opts = self.demo.clone();
            opts.parties = ids(parties);
            demo::clear_reference(&opts, &data).unwrap()
        }

        /// Asserts that `result` matches the clear statistics of `parties` within the
        /// fixed-point bound.
        pub(crate) fn assert_matches_clear(&self, parties: &[&str], result: &StatsResult) {
            let clear = self.clear(parties);
            let fixed = FixedPoint::new(self.demo.frac_bits).unwrap();
            let (max_err, ok) = result.compare(&clear, fixed);
            assert!(
                ok,
                "parties {parties:?} ({ROWS} rows each, seed {SEED}, {} fractional bits): the \
                 secure result {result:?} is {max_err} away from the clear {clear:?}",
                self.demo.frac_bits
            );
        }

        /// Runs the demo's job between `parties`: it must succeed and match the clear result.
        /// This is the proof that their nodes survived whatever came before.
        pub(crate) async fn assert_job_succeeds(&self, parties: &[&str]) -> (pb::Job, StatsResult) {
            let job = self.run_stats(parties).await;
            assert_eq!(
                job.state(),
                JobState::Succeeded,
                "job between {parties:?}: {}",
                job.reason
            );
            let result = self.fetch(&job).await.unwrap();
            self.assert_matches_clear(parties, &result);
            (job, result)
        }

        /// Asserts that fetching the job's result is refused because the job did not succeed.
        pub(crate) async fn assert_no_result(&self, job: &pb::Job) {
            match self.fetch(job).await {
                Err(AnalystError::Rpc(s)) => assert_eq!(
                    s.code(),
                    tonic::Code::FailedPrecondition,
                    "fetching job {}: {s:?}",
                    job.id
                ),
                other => panic!("job {} released a result: {other:?}", job.id),
            }
        }

        /// The registry as the analyst sees it.
        pub(crate) async fn parties(&self) -> Vec<pb::PartyInfo> {
            let req = pb::ListPartiesRequest {};
            let r = self.analyst().await.list_parties(req).await.unwrap();
            r.into_inner().parties
        }

        /// Waits until the coordinator counts `party` as offline.
        pub(crate) async fn wait_offline(&self, party: &str) {
            within(&format!("{party} to go offline"), async {
                while self
                    .parties()
                    .await
                    .iter()
                    .any(|p| p.id == party && p.online)
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
        }

        /// Stops every real node — each must end cleanly (no panic, no error) — then the rest,
        /// and checks that no task of any node or coordinator in this binary panicked.
        pub(crate) async fn finish(self) {
            let Self {
                mut sandbox, demo, ..
            } = self;
            for party in &demo.parties {
                let exit = sandbox.stop_party(party).await;
                assert!(
                    matches!(exit, Some(Ok(()))),
                    "party {party} did not shut down cleanly: {exit:?}"
                );
            }
            sandbox.shut_down().await;
            let panics = TASK_PANICS.load(Ordering::SeqCst);
            assert_eq!(
                panics, 0,
                "a node or coordinator task panicked (see stderr)"
            );
        }
    }

    fn job_of(event: &party_event::Event) -> &str {
        match event {
            party_event::Event::Assign(a) => &a.job_id,
            party_event::Event::Start(s) => &s.job_id,
            party_event::Event::Abort(a) => &a.job_id,
        }
    }

    /// A party that is not a node: it registers and subscribes with its own (valid) certificate
    /// and then does only what the test tells it to. Dropping it is a killed process.
    pub(crate) struct FakeParty {
        pub(crate) id: String,
        identity: TlsIdentity,
        client: CoordinatorClient<Channel>,
        events: Streaming<pb::PartyEvent>,
    }

    /// A data-plane stream a fake party opened; kept open until dropped.
    pub(crate) struct RogueLink {
        _client: PartyLinkClient<Channel>,
        _outbound: mpsc::Sender<pb::Frame>,
        _inbound: Streaming<pb::Frame>,
    }

    impl FakeParty {
        /// Registers `id` with the claims schema and an endpoint nobody listens on, and
        /// subscribes (so it is online when this returns).
        pub(crate) async fn join(cluster: &Cluster, id: &str) -> Self {
            let sandbox = &cluster.sandbox;
            let identity = sandbox.identity(id).unwrap().unwrap();
            let mut client = connect(Dial {
                url: &sandbox.coordinator_url(),
                tls: Some(&identity),
                server_name: COORDINATOR_TLS_NAME,
            })
            .await
            .unwrap();
            let cfg = sandbox.party_config(
                id,
                "127.0.0.1:1".parse().unwrap(),
                vec![synthetic::claims_schema(DATASET, "absent.csv".into())],
            );
            let info = pb::PartyInfo {
                id: id.into(),
                endpoint: cfg.advertised_endpoint(),
                tls_cert_sha256: identity.cert_sha256().to_vec(),
                datasets: cfg.published_schemas(),
                ..Default::default()
            };
            client
                .register_party(pb::RegisterPartyRequest { party: Some(info) })
                .await
                .unwrap();
            let events = client
                .subscribe(pb::SubscribeRequest { party: id.into() })
                .await
                .unwrap()
                .into_inner();
            Self {
                id: id.into(),
                identity,
                client,
                events,
            }
        }

        /// The next event about `job_id` (events of other jobs are skipped).
        async fn next_event(&mut self, job_id: &str) -> party_event::Event {
            let what = format!("{} to hear about job {job_id}", self.id);
            within(&what, async {
                loop {
                    let event = self.events.message().await.unwrap();
                    let event = event.and_then(|e| e.event).expect("the job stream ended");
                    if job_of(&event) == job_id {
                        return event;
                    }
                }
            })
            .await
        }

        /// Waits for the assignment of `job_id` and accepts it.
        pub(crate) async fn accept(&mut self, job_id: &str) -> pb::JobAssignment {
            let party_event::Event::Assign(assignment) = self.next_event(job_id).await else {
                panic!("{}: expected the assignment of {job_id} first", self.id);
            };
            let report = pb::JobReport {
                job_id: job_id.into(),
                party: self.id.clone(),
                report: Some(job_report::Report::Accepted(pb::Admission::default())),
            };
            self.client.report_job(report).await.unwrap();
            assignment
        }

        /// Waits for the start of `job_id`.
        pub(crate) async fn started(&mut self, job_id: &str) {
            let event = self.next_event(job_id).await;
            assert!(
                matches!(event, party_event::Event::Start(_)),
                "{}: expected the start of {job_id}, got {event:?}",
                self.id
            );
        }

        /// Waits for the abort of `job_id` and returns its reason.
        pub(crate) async fn aborted(&mut self, job_id: &str) -> String {
            match self.next_event(job_id).await {
                party_event::Event::Abort(a) => a.reason,
                other => panic!("{}: expected the abort of {job_id}, got {other:?}", self.id),
            }
        }

        /// Connects to the job's data plane as a real node would (this party first among the
        /// job's parties: it dials every peer), to play the protocol by hand over it.
        pub(crate) async fn data_plane(
            &self,
            assignment: &pb::JobAssignment,
        ) -> treaty_party::link::GrpcTransport {
            let peers = treaty_party::membership::session_peers(assignment, None);
            assert_eq!(
                peers[0].party, self.id,
                "the fake party must be the job's first"
            );
            let setup = treaty_party::link::SessionSetup {
                job_id: &assignment.job_id,
                me: 0,
                peers: &peers,
                tls: Some(&self.identity),
                timeout: PATIENCE,
                abort: tokio_util::sync::CancellationToken::new(),
            };
            let hub = treaty_party::link::LinkHub::default();
            treaty_party::link::GrpcTransport::connect(setup, &hub)
                .await
                .unwrap()
        }

        /// A data-plane connection to `peer` with this party's certificate.
        pub(crate) async fn channel(&self, peer: &pb::JobPeer) -> Channel {
            endpoint(Dial {
                url: &peer.endpoint,
                tls: Some(&self.identity),
                server_name: &peer.party,
            })
            .unwrap()
            .connect()
            .await
            .unwrap()
        }

        /// Opens the data-plane stream of `job_id` to `peer` as this party would (TLS with its
        /// certificate, a valid `Hello`), then sends `frames`.
        pub(crate) async fn dial(
            &self,
            peer: &pb::JobPeer,
            job_id: &str,
            frames: Vec<pb::Frame>,
        ) -> RogueLink {
            let mut client = PartyLinkClient::new(self.channel(peer).await);
            let (tx, rx) = mpsc::channel(frames.len() + 1);
            let hello = frame::Kind::Hello(pb::Hello {
                job_id: job_id.into(),
                sender: self.id.clone(),
                receiver: peer.party.clone(),
            });
            for kind in std::iter::once(hello).chain(frames.into_iter().filter_map(|f| f.kind)) {
                tx.send(pb::Frame { kind: Some(kind) }).await.unwrap();
            }
            let inbound = client
                .exchange(ReceiverStream::new(rx))
                .await
                .unwrap()
                .into_inner();
            RogueLink {
                _client: client,
                _outbound: tx,
                _inbound: inbound,
            }
        }
    }
}

/// A data-plane frame holding one chunk of a message on the `stats` channel (where a stats
/// job's first message, the seed agreement's key, is expected).
fn chunk(round: u32, total_len: u64, last: bool, payload: Vec<u8>) -> pb::Frame {
    scoped_chunk("stats", round, total_len, last, payload)
}

/// A data-plane frame holding one chunk of a message on the channel `scope`.
fn scoped_chunk(
    scope: &str,
    round: u32,
    total_len: u64,
    last: bool,
    payload: Vec<u8>,
) -> pb::Frame {
    pb::Frame {
        kind: Some(frame::Kind::Chunk(pb::Chunk {
            scope: ScopeId::of(scope).0,
            round,
            total_len,
            last,
            payload: payload.into(),
        })),
    }
}

/// The status of `party` in `job`.
fn status<'a>(job: &'a pb::Job, party: &str) -> &'a pb::PartyJobStatus {
    job.parties.iter().find(|p| p.party == party).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn happy_path_three_parties_matches_clear() {
    let parties = ["hospital", "insurer", "bank"];
    let cluster = Cluster::start(&parties, &[]).await;

    let (job, result) = cluster.assert_job_succeeds(&parties).await;
    assert!(
        result.count > 0,
        "no diabetes claim in {ROWS} rows per party"
    );
    for party in &job.parties {
        assert_eq!(party.state(), PartyJobState::Uploaded, "{party:?}");
        assert_eq!(party.rounds, 2, "seeds + release barrier: {party:?}");
        assert!(party.bytes_sent > 0, "{party:?}");
        assert!(party.bytes_received > 0, "{party:?}");
    }

    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_party_dataset_or_column_is_rejected_at_submit() {
    let parties = ["hospital", "insurer"];
    let cluster = Cluster::start(&parties, &[]).await;

    fn stats(spec: &mut pb::JobSpec) -> &mut Vec<String> {
        match spec.computation.as_mut().unwrap() {
            pb::job_spec::Computation::Stats(s) => &mut s.columns,
            other => panic!("a stats spec is expected, not {other:?}"),
        }
    }
    let mut unknown_party = cluster.spec(&parties);
    unknown_party.inputs.push(pb::JobInput {
        party: "nobody".into(),
        dataset: "claims".into(),
    });
    let mut unknown_dataset = cluster.spec(&parties);
    unknown_dataset.inputs[1].dataset = "payroll".into();
    let mut missing_column = cluster.spec(&parties);
    stats(&mut missing_column).push("salary".into());
    let mut string_column = cluster.spec(&parties);
    *stats(&mut string_column) = vec!["claim_amount".into(), "region".into()];

    let cases = [
        (
            "unknown party",
            unknown_party,
            vec!["unknown party \"nobody\""],
        ),
        (
            "unknown dataset",
            unknown_dataset,
            vec!["party \"insurer\" has no dataset \"payroll\""],
        ),
        (
            "missing column",
            missing_column,
            vec!["dataset \"claims\" has no column \"salary\""],
        ),
        (
            "string column",
            string_column,
            vec!["column \"region\"", "not numeric"],
        ),
    ];
    for (case, spec, culprits) in cases {
        let status = cluster.submit(spec).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{case}: {status:?}"
        );
        for culprit in culprits {
            assert!(
                status.message().contains(culprit),
                "{case}: {culprit:?} not in {:?}",
                status.message()
            );
        }
    }
    let jobs = cluster
        .analyst()
        .await
        .list_jobs(pb::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert!(jobs.is_empty(), "a refused spec created a job: {jobs:?}");

    cluster.assert_job_succeeds(&parties).await;
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nan_cell_fails_the_job_naming_file_row_column() {
    const ROW: usize = 1234;
    let parties = ["hospital", "insurer"];
    let cluster = Cluster::start_with(&parties, &[], |data| {
        let (_, insurer) = data.iter().find(|(p, _)| p == "insurer").unwrap();
        set_cell(&insurer.path, ROW, "claim_amount", "NaN");
    })
    .await;

    let job = cluster.run_stats(&parties).await;
    assert_eq!(job.state(), JobState::Failed, "{job:?}");
    let reason = &job.reason;
    for culprit in [
        "insurer",
        "insurer-claims.csv",
        &format!("row {ROW}"),
        "\"claim_amount\"",
    ] {
        assert!(reason.contains(culprit), "{culprit:?} not in {reason:?}");
    }
    assert!(!reason.contains("NaN"), "the cell leaked: {reason:?}");
    let dir = cluster
        .sandbox
        .dir()
        .parent()
        .unwrap()
        .display()
        .to_string();
    assert!(!reason.contains(&dir), "a local path leaked: {reason:?}");
    assert_eq!(
        status(&job, "insurer").state(),
        PartyJobState::Failed,
        "{job:?}"
    );
    cluster.assert_no_result(&job).await;

    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn value_beyond_fixed_point_range_fails_the_job() {
    let parties = ["hospital", "insurer"];
    let mut row = 0;
    let cluster = Cluster::start_with(&parties, &[], |data| {
        let (_, hospital) = data.iter().find(|(p, _)| p == "hospital").unwrap();
        // A row the job's filter keeps, so the value reaches the fixed-point encoder.
        row = support::find_row(&hospital.path, "diagnosis_group", "diabetes", 500);
        set_cell(&hospital.path, row, "claim_amount", "1e300");
    })
    .await;

    let job = cluster.run_stats(&parties).await;
    assert_eq!(job.state(), JobState::Failed, "{job:?}");
    let reason = &job.reason;
    for culprit in [
        "hospital",
        "dataset \"claims\"",
        "column \"claim_amount\"",
        &format!("row {row}"),
        "fixed-point range",
    ] {
        assert!(reason.contains(culprit), "{culprit:?} not in {reason:?}");
    }
    assert!(!reason.contains("1e300"), "the cell leaked: {reason:?}");
    cluster.assert_no_result(&job).await;

    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_party_id_is_refused() {
    let parties = ["hospital", "insurer"];
    let cluster = Cluster::start(&parties, &[]).await;
    let genuine = cluster.sandbox.identity("hospital").unwrap().unwrap();

    // A second "hospital" with a certificate from the same CA, but not the registered one.
    let pki = cluster.sandbox.dir().join("pki");
    let ca = Pki::load(&pki.join("ca.pem"), &pki.join("ca.key")).unwrap();
    let cert = ca
        .issue(treaty_trust::Role::Party, "hospital", &[])
        .unwrap();
    let dir = cluster.sandbox.dir().join("imposter");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hospital.pem"), &cert.cert_pem).unwrap();
    std::fs::write(dir.join("hospital.key"), cert.key_pem()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = cluster.sandbox.party_config(
        "hospital",
        listener.local_addr().unwrap(),
        vec![cluster.dataset("hospital")],
    );
    cfg.tls = Some(TlsFiles {
        ca: pki.join("ca.pem"),
        cert: dir.join("hospital.pem"),
        key: dir.join("hospital.key"),
    });
    let stop = CancellationToken::new();
    let outcome = within(
        "the second hospital node to give up",
        treaty_party::node::run(cfg, listener, stop.clone().cancelled_owned()),
    )
    .await;
    stop.cancel();
    match outcome {
        Err(PartyError::Rpc(s)) => {
            assert_eq!(s.code(), tonic::Code::AlreadyExists, "{s:?}");
            assert!(s.message().contains("hospital"), "{s:?}");
        }
        other => panic!("the second hospital was not refused: {other:?}"),
    }

    let registry = cluster.parties().await;
    let hospital = registry.iter().find(|p| p.id == "hospital").unwrap();
    assert!(hospital.online, "{hospital:?}");
    assert_eq!(
        hospital.tls_cert_sha256,
        genuine.cert_sha256().to_vec(),
        "the registry took the second hospital's certificate"
    );
    cluster.assert_job_succeeds(&parties).await;

    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_party_fails_after_timeout() {
    let parties = ["hospital", "insurer", "bank"];
    let mut cluster = Cluster::start(&parties, &[]).await;

    let exit = cluster.sandbox.stop_party("bank").await;
    assert!(matches!(exit, Some(Ok(()))), "bank: {exit:?}");
    cluster.wait_offline("bank").await;

    let job = cluster.run_stats(&parties).await;
    assert_eq!(job.state(), JobState::Failed, "{job:?}");
    assert!(
        job.reason.contains("bank") && job.reason.contains("offline"),
        "{:?}",
        job.reason
    );
    assert!(
        !job.reason.contains("hospital") && !job.reason.contains("insurer"),
        "only bank was offline: {:?}",
        job.reason
    );
    for p in &job.parties {
        assert_eq!(p.state(), PartyJobState::Pending, "never assigned: {p:?}");
    }
    cluster.assert_no_result(&job).await;

    // The bank comes back (same identity, new port) and the job goes through.
    let bank = cluster.dataset("bank");
    cluster
        .sandbox
        .start_party("bank", vec![bank])
        .await
        .unwrap();
    let ids = parties.map(String::from);
    cluster.sandbox.wait_online(&ids, PATIENCE).await.unwrap();
    cluster.assert_job_succeeds(&parties).await;

    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn party_killed_mid_job_aborts_everyone() {
    let real = ["hospital", "insurer"];
    let cluster = Cluster::start(&real, &["mallory"]).await;
    let mut mallory = FakeParty::join(&cluster, "mallory").await;

    // Mallory has index 0: the real parties wait for its links, so only its death ends the job.
    let job_id = cluster
        .submit(cluster.spec(&["mallory", "hospital", "insurer"]))
        .await
        .unwrap();
    mallory.accept(&job_id).await;
    mallory.started(&job_id).await;
    drop(mallory);

    let job = cluster.wait_final(&job_id).await;
    assert_eq!(job.state(), JobState::Failed, "{job:?}");
    assert!(
        job.reason.contains("mallory") && job.reason.contains("disconnected"),
        "{:?}",
        job.reason
    );
    let m = status(&job, "mallory");
    assert_eq!(m.state(), PartyJobState::Failed, "{m:?}");
    assert_eq!(m.reason, "disconnected");
    for party in real {
        let p = status(&job, party);
        assert_eq!(p.state(), PartyJobState::Aborted, "{p:?}");
    }
    cluster.assert_no_result(&job).await;

    cluster.assert_job_succeeds(&real).await;
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coordinator_restart_mid_job() {
    let real = ["hospital", "insurer"];
    let mut cluster = Cluster::start(&real, &["mallory"]).await;
    let (done, before) = cluster.assert_job_succeeds(&real).await;

    // A job that cannot finish: mallory (index 0) accepts and then never dials its peers.
    let mut mallory = FakeParty::join(&cluster, "mallory").await;
    let stuck = cluster
        .submit(cluster.spec(&["mallory", "hospital", "insurer"]))
        .await
        .unwrap();
    mallory.accept(&stuck).await;
    mallory.started(&stuck).await;
    cluster
        .wait_job(&stuck, "the stuck job to run", |j| {
            j.state() == JobState::Running
        })
        .await;

    cluster.sandbox.restart_coordinator().await.unwrap();
    drop(mallory);

    // The finished job and its sealed shares survived; the result opens to the same numbers.
    let done_again = cluster.job(&done.id).await;
    assert_eq!(done_again.state(), JobState::Succeeded, "{done_again:?}");
    let after = cluster.fetch(&done_again).await.unwrap();
    assert_eq!(after, before, "job {} reconstructs differently", done.id);

    let stuck = cluster.job(&stuck).await;
    assert_eq!(stuck.state(), JobState::Failed, "{stuck:?}");
    assert!(
        stuck.reason.contains("coordinator")
            && (stuck.reason.contains("restart") || stuck.reason.contains("shut down")),
        "{:?}",
        stuck.reason
    );
    cluster.assert_no_result(&stuck).await;

    // The nodes come back by themselves.
    let ids = real.map(String::from);
    cluster.sandbox.wait_online(&ids, PATIENCE).await.unwrap();
    cluster.assert_job_succeeds(&real).await;

    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_and_oversized_data_plane_messages_abort_the_job_not_the_node() {
    let real = ["hospital", "insurer"];
    let cluster = Cluster::start(&real, &["mallory"]).await;
    let mut mallory = FakeParty::join(&cluster, "mallory").await;

    // What mallory sends hospital after a valid hello (round 0 expects one 32-byte key), and
    // what hospital must say about it.
    let max = MAX_MESSAGE as u64;
    let cases = [
        (
            "total_len over the message limit",
            vec![chunk(0, 2 * max, false, vec![0; 32])],
            "exceeds the limit",
        ),
        (
            "a chunk for the wrong round",
            vec![chunk(7, 32, true, vec![0; 32])],
            "round 7, expected round 0",
        ),
        (
            "a message for another part of the job (the release barrier)",
            vec![scoped_chunk("barrier", 0, 32, true, vec![0; 32])],
            "expected scope \"stats\"",
        ),
        (
            "more payload than total_len",
            vec![chunk(0, 8, true, vec![0; 64])],
            "chunks exceed the declared length",
        ),
        (
            "a frame over the gRPC frame limit",
            vec![chunk(0, 32, true, vec![0; 2 * MAX_MESSAGE])],
            "frame limit",
        ),
        (
            "a second hello mid-stream",
            vec![pb::Frame {
                kind: Some(frame::Kind::Hello(pb::Hello::default())),
            }],
            "unexpected frame kind",
        ),
    ];
    for (case, frames, violation) in cases {
        let job_id = cluster
            .submit(cluster.spec(&["mallory", "hospital", "insurer"]))
            .await
            .unwrap();
        let assignment = mallory.accept(&job_id).await;
        mallory.started(&job_id).await;
        let hospital = assignment
            .peers
            .iter()
            .find(|p| p.party == "hospital")
            .unwrap();
        let link = mallory.dial(hospital, &job_id, frames).await;

        let job = cluster.wait_final(&job_id).await;
        drop(link);
        assert_eq!(job.state(), JobState::Failed, "{case}: {job:?}");
        let h = status(&job, "hospital");
        assert_eq!(h.state(), PartyJobState::Failed, "{case}: {job:?}");
        assert!(
            h.reason.contains(violation),
            "{case}: {violation:?} not in hospital's reason {:?}",
            h.reason
        );
        assert!(
            h.reason.contains("data plane with mallory"),
            "{case}: the peer is named by its id: {:?}",
            h.reason
        );
        assert!(
            job.reason.contains("hospital") && job.reason.contains(violation),
            "{case}: {:?}",
            job.reason
        );
        cluster.assert_no_result(&job).await;

        cluster.assert_job_succeeds(&real).await;
    }

    drop(mallory);
    cluster.finish().await;
}

/// A party that completes the PSI and then fails before the release barrier: the other party
/// learned the intersection but must not keep it (old main stored it before the barrier, and a
/// later job could align by an intersection whose job failed). Its staged file is gone too; a
/// job that succeeds still leaves its intersection at both parties.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_psi_job_that_fails_at_the_barrier_leaves_no_intersection() {
    use treaty_mpc::psi::{self, PsiMode, PsiParams};

    let real = ["hospital", "insurer"];
    let cluster = Cluster::start(&real, &["mallory"]).await;
    let mut mallory = FakeParty::join(&cluster, "mallory").await;
    let key = cluster.key.public_key().unwrap().to_vec();
    let listing = |party: &str| -> Vec<String> {
        let dir = cluster
            .sandbox
            .dir()
            .join(format!("{party}-state"))
            .join("psi");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };

    let psi_spec = |parties: [&str; 2]| {
        let mut spec = treaty_sandbox::demo_psi::psi_spec(&parties.map(String::from), key.clone());
        for input in &mut spec.inputs {
            input.dataset = treaty_sandbox::demo::DATASET.into();
        }
        spec
    };
    let spec = psi_spec(["mallory", "hospital"]);
    let job_id = cluster.submit(spec).await.unwrap();
    let assignment = mallory.accept(&job_id).await;
    mallory.started(&job_id).await;
    let link = std::sync::Arc::new(mallory.data_plane(&assignment).await);
    let root = treaty_mpc::transport::Channel::new(link.clone(), MAX_MESSAGE);
    let ids: Vec<String> = (0..200).map(|i| format!("M{i:06}")).collect();
    let params = PsiParams::new(&job_id, PsiMode::IntersectionToBoth);
    let mut rng = treaty_mpc::seeds::os_rng().unwrap();
    psi::run(&root.child("psi"), &params, &ids, &mut rng, |_| {})
        .await
        .unwrap();
    // Done with the PSI, mallory quits instead of passing the barrier.
    link.abort_peers("mallory quits before the release barrier");

    let job = cluster.wait_final(&job_id).await;
    assert_eq!(job.state(), JobState::Failed, "{job:?}");
    let h = status(&job, "hospital");
    assert!(h.reason.contains("mallory quits"), "{:?}", h.reason);
    assert_eq!(listing("hospital"), Vec::<String>::new());
    let fetched = cluster
        .analyst()
        .await
        .fetch_result(pb::FetchResultRequest { job_id })
        .await;
    assert_eq!(
        fetched.err().map(|s| s.code()),
        Some(tonic::Code::FailedPrecondition)
    );
    drop(root);
    drop(link);

    // A PSI job that passes the barrier keeps its intersection at both parties.
    let spec = psi_spec(["hospital", "insurer"]);
    let job_id = cluster.submit(spec).await.unwrap();
    let job = cluster.wait_final(&job_id).await;
    assert_eq!(job.state(), JobState::Succeeded, "{job:?}");
    for party in real {
        assert_eq!(
            listing(party),
            [format!("{job_id}.ids"), format!("{job_id}.origin")],
            "{party}"
        );
    }

    drop(mallory);
    cluster.finish().await;
}

/// A node whose audit log cannot be written (here: a folder where the file was) refuses a job
/// instead of running it unrecorded: after a restart, an unrecorded job could be replayed. Once
/// the log is back the node runs jobs again, and its log still verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_cannot_record_a_job_refuses_it() {
    let real = ["hospital", "insurer"];
    let cluster = Cluster::start(&real, &[]).await;
    let audit = cluster.sandbox.dir().join("hospital-state").join("audit");
    let (log, saved) = (audit.join("log.jsonl"), audit.join("log.saved"));
    let had_log = log.exists();
    if had_log {
        std::fs::rename(&log, &saved).unwrap();
    }
    std::fs::create_dir_all(&log).unwrap();

    let job_id = cluster.submit(cluster.spec(&real)).await.unwrap();
    let job = cluster.wait_final(&job_id).await;
    assert_eq!(job.state(), JobState::Rejected, "{job:?}");
    let h = status(&job, "hospital");
    assert_eq!(h.state(), PartyJobState::Rejected, "{job:?}");
    assert!(
        h.reason
            .contains("could not record the job in its audit log"),
        "{:?}",
        h.reason
    );
    cluster.assert_no_result(&job).await;

    std::fs::remove_dir(&log).unwrap();
    if had_log {
        std::fs::rename(&saved, &log).unwrap();
    }
    cluster.assert_job_succeeds(&real).await;
    cluster.sandbox.verify_audit(PATIENCE).await.unwrap();
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_running_job() {
    let real = ["hospital", "insurer"];
    let cluster = Cluster::start(&real, &["mallory"]).await;
    let mut mallory = FakeParty::join(&cluster, "mallory").await;

    let job_id = cluster
        .submit(cluster.spec(&["mallory", "hospital", "insurer"]))
        .await
        .unwrap();
    mallory.accept(&job_id).await;
    mallory.started(&job_id).await;
    cluster
        .wait_job(&job_id, "the job to run", |j| {
            j.state() == JobState::Running
        })
        .await;

    // Only the analyst who submitted the job may cancel it.
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let forged = sign_cancel(&job_id, "mine now", &stranger);
    let status = cluster
        .analyst()
        .await
        .cancel_job(forged)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("only the analyst who submitted"),
        "{status:?}"
    );
    let request = sign_cancel(&job_id, "wrong cohort", &cluster.analyst_key());
    cluster.analyst().await.cancel_job(request).await.unwrap();
    let job = cluster.wait_final(&job_id).await;
    assert_eq!(job.state(), JobState::Aborted, "{job:?}");
    assert_eq!(job.reason, "cancelled by the analyst: wrong cohort");
    // Every party is told, with the reason.
    assert_eq!(mallory.aborted(&job_id).await, job.reason);
    cluster.assert_no_result(&job).await;

    // A second cancel is refused: the job is over.
    let again = sign_cancel(&job_id, "", &cluster.analyst_key());
    let status = cluster.analyst().await.cancel_job(again).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");

    // The real parties dropped the job (they were waiting for mallory) and take the next one.
    cluster.assert_job_succeeds(&real).await;
    drop(mallory);
    cluster.finish().await;
}

/// Plays a malicious coordinator: with the coordinator stopped, `edit` rewrites sealed uploads
/// in its database; then the coordinator starts again and serves them.
async fn tamper_results(
    cluster: &mut Cluster,
    edit: impl FnOnce(&treaty_coordinator::store::Store),
) {
    cluster.sandbox.stop_coordinator().await;
    {
        // A stopped coordinator has closed its database.
        let store = treaty_coordinator::store::Store::open(&cluster.sandbox.state_dir()).unwrap();
        edit(&store);
    }
    cluster.sandbox.start_coordinator().await.unwrap();
    within("the coordinator to serve again", async {
        loop {
            if let Ok(mut c) = cluster.sandbox.analyst().await
                && c.list_parties(pb::ListPartiesRequest {}).await.is_ok()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// As a malicious coordinator writes its database: `party`'s stored upload of job `id` becomes
/// `bytes` (the store itself accepts one upload per party, so the job's results are rewritten).
fn overwrite(store: &treaty_coordinator::store::Store, id: &str, party: &str, bytes: &[u8]) {
    let kept: Vec<(&str, Vec<u8>)> = ["hospital", "insurer", "bank"]
        .into_iter()
        .filter(|p| *p != party)
        .filter_map(|p| store.result(id, p).unwrap().map(|b| (p, b)))
        .collect();
    store.delete_results(id).unwrap();
    for (p, b) in kept {
        store.put_result(id, p, &b).unwrap();
    }
    store.put_result(id, party, bytes).unwrap();
}

/// Asserts that fetching the job's result is refused because `party`'s share is not signed by
/// it for this job and recipient.
async fn assert_share_refused(cluster: &Cluster, job: &pb::Job, party: &str, what: &str) {
    match cluster.fetch(job).await {
        Err(AnalystError::Trust(TrustError::ResultSignature { party: p, fault })) => {
            assert_eq!(p, party, "{what}: refused naming {p} ({fault})");
            assert_eq!(fault, ResultFault::BadSignature, "{what}");
        }
        other => panic!("{what}: the analyst accepted or failed otherwise: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coordinator_cannot_forge_swap_or_alter_result_shares() {
    use prost::Message;
    use treaty_mpc::output;
    use treaty_mpc::share::AdditiveShare;

    let parties = ["hospital", "insurer", "bank"];
    let mut cluster = Cluster::start(&parties, &[]).await;
    let (job, honest) = cluster.assert_job_succeeds(&parties).await;
    let recipient = cluster.key.public_key().unwrap();
    let key = cluster.key.clone();
    let id = job.id.clone();
    let mut originals = std::collections::BTreeMap::new();

    // (a) Forged: a valid HPKE seal to the recipient of other numbers (the insurer's share
    // plus 2^20 in every total), stored as the insurer's upload — once unsigned, once signed
    // by a key that is not the insurer's.
    let mallory = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    for signer in [None, Some(&mallory)] {
        tamper_results(&mut cluster, |store| {
            for p in parties {
                originals
                    .entry(p)
                    .or_insert_with(|| store.result(&id, p).unwrap().unwrap());
            }
            let upload = pb::SignedResult::decode(originals["insurer"].as_slice()).unwrap();
            let plain = output::open(&key, &id, "insurer", &upload.sealed).unwrap();
            let share = AdditiveShare::<u128>::from_bytes(&plain).unwrap();
            let values = share.values().iter().map(|v| v.wrapping_add(1 << 20));
            let forged = AdditiveShare::from_values(values.collect()).to_bytes();
            let mut rng = treaty_mpc::seeds::os_rng().unwrap();
            let sealed = output::seal(&recipient, &id, "insurer", &forged, &mut rng).unwrap();
            let bytes = match signer {
                None => pb::SignedResult {
                    sealed,
                    signature: Vec::new(),
                }
                .encode_to_vec(),
                Some(k) => treaty_trust::result::sign(k, &id, "insurer", &recipient, sealed)
                    .encode_to_vec(),
            };
            overwrite(store, &id, "insurer", &bytes);
        })
        .await;
        match cluster.fetch(&job).await {
            Err(AnalystError::Trust(TrustError::ResultSignature { party, fault })) => {
                assert_eq!(party, "insurer", "forged share refused naming {party}");
                let expected = match signer {
                    None => ResultFault::Malformed,
                    Some(_) => ResultFault::BadSignature,
                };
                assert_eq!(fault, expected);
            }
            other => panic!("a forged insurer share: {other:?} (honest: {honest:?})"),
        }
    }

    // (b) Swapped: the hospital's and the insurer's signed uploads under each other's name.
    let o = originals.clone();
    tamper_results(&mut cluster, |store| {
        overwrite(store, &id, "hospital", &o["insurer"]);
        overwrite(store, &id, "insurer", &o["hospital"]);
    })
    .await;
    assert_share_refused(&cluster, &job, "hospital", "swapped shares").await;

    // (c) Altered after signing: one byte of the bank's sealed share.
    tamper_results(&mut cluster, |store| {
        overwrite(store, &id, "hospital", &o["hospital"]);
        overwrite(store, &id, "insurer", &o["insurer"]);
        let mut upload = pb::SignedResult::decode(o["bank"].as_slice()).unwrap();
        let last = upload.sealed.len() - 1;
        upload.sealed[last] ^= 1;
        overwrite(store, &id, "bank", &upload.encode_to_vec());
    })
    .await;
    assert_share_refused(&cluster, &job, "bank", "altered share").await;

    // A key the analyst lacks: refused naming the party, nothing opened.
    tamper_results(&mut cluster, |store| {
        overwrite(store, &id, "bank", &o["bank"]);
    })
    .await;
    let mut keys = cluster.sandbox.party_keys();
    keys.remove("insurer");
    let fetched =
        analyst::fetch_stats_result(&mut cluster.analyst().await, &job, &cluster.key, &keys).await;
    match fetched {
        Err(AnalystError::Trust(TrustError::ResultSignature { party, fault })) => {
            assert_eq!((party.as_str(), fault), ("insurer", ResultFault::NoKey));
        }
        other => panic!("no insurer key: {other:?}"),
    }

    // The restored uploads open to the honest result again.
    assert_eq!(cluster.fetch(&job).await.unwrap(), honest);
    cluster.assert_job_succeeds(&parties).await;
    cluster.finish().await;
}

/// A peer that keeps a data-plane stream open (parked at the hospital for a job it was never
/// given) cannot hold the node's shutdown: the node stops cleanly, its stream cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_holding_a_stream_open_cannot_hold_a_nodes_shutdown() {
    let cluster = Cluster::start(&["hospital", "insurer"], &["mallory"]).await;
    let mallory = FakeParty::join(&cluster, "mallory").await;
    let hospital = cluster
        .parties()
        .await
        .into_iter()
        .find(|p| p.id == "hospital")
        .unwrap();
    let peer = pb::JobPeer {
        party: hospital.id.clone(),
        endpoint: hospital.endpoint.clone(),
        ..Default::default()
    };
    let link = mallory
        .dial(&peer, "j-00000000000000000000000000000001", vec![])
        .await;
    // And a stream that never says hello, on a connection of its own.
    let channel = mallory.channel(&peer).await;
    let (began, begun) = tokio::sync::oneshot::channel();
    let silent = futures::stream::once(async move {
        let _ = began.send(());
        std::future::pending::<pb::Frame>().await
    });
    let mut client = pb::party_link_client::PartyLinkClient::new(channel.clone());
    let waiting = tokio::spawn(async move { client.exchange(silent).await.map(|_| ()) });
    begun.await.unwrap();
    // Streams on one connection are taken in order: once this one is parked (answered), the
    // silent one is in the hospital's hands.
    let hello = pb::Frame {
        kind: Some(frame::Kind::Hello(pb::Hello {
            job_id: "j-00000000000000000000000000000002".into(),
            sender: "mallory".into(),
            receiver: "hospital".into(),
        })),
    };
    let (held, rx) = tokio::sync::mpsc::channel(1);
    held.send(hello).await.unwrap();
    let parked = pb::party_link_client::PartyLinkClient::new(channel)
        .exchange(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap();
    cluster.finish().await;
    let cut = within("the silent stream to be cut", waiting)
        .await
        .unwrap();
    assert!(cut.is_err(), "{cut:?}");
    drop((link, parked, held));
}
