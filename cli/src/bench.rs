//! `treaty bench mpc|psi|train|score`: parse, hand over to `treaty_bench`, print.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use treaty_bench::{
    self as bench, self, BenchPlan, BenchResult, PsiBenchMode, PsiCase, ScoreCase, TrainCase,
    Workload,
};
use treaty_mpc::rep3::workload::{Case, DEFAULT_MATRICES, DEFAULT_NS, Op, Shape};

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Time rep3 operations between three local party processes talking gRPC with mutual TLS
    /// (the deployed data plane, on loopback). Per case: --warmup untimed runs, then --repeat timed
    /// runs; inputs are shared untimed, a barrier round precedes the timed operation; the time of
    /// a run is the slowest party's, and the median over runs is reported with the rounds and the
    /// most bytes any party sent.
    Mpc(MpcArgs),
    /// Time two-party ECDH-PSI between two local party processes talking gRPC with mutual TLS
    /// (on loopback). Each party generates its own synthetic ids (untimed); per case: --warmup
    /// untimed runs, then --repeat timed runs, each after a barrier round; the time of a run is
    /// the slowest party's. Reports the median, rounds, bytes per party and in total, the
    /// intersection size (checked against the known overlap), and each party's CPU time and peak
    /// RSS.
    Psi(PsiArgs),
    /// Time secure logistic (or linear) regression training between three local party
    /// processes (gRPC with mutual TLS on loopback) on a synthetic table, feature c at party
    /// c mod 3 and the label at party 1. Each party generates the table from a fixed seed and
    /// standardises its own columns; setup and input sharing are untimed; after a barrier round
    /// the training alone is timed (slowest party). Afterwards party 0 opens the weights and
    /// reports their largest gap from an f64 reference trained on the same rows.
    Train(TrainArgs),
    /// Time scoring with a secret-shared logistic model between three local party processes:
    /// the throughput of --records records (each party shares its features, logits, fast
    /// sigmoid; chunks of --chunk records), and the latency of --requests sequential one-record
    /// requests (median, p99, mean; each request timed at its slowest party after a barrier).
    /// The model's weights are shared and truncated once, untimed. Party 0 checks every score
    /// against an f64 reference. --records 0 or --requests 0 skips that measurement.
    Score(ScoreArgs),
    /// Time the FHE path: key generation, the compressed server key's size, its import and its
    /// upload, then per model (linear, scorecard, tree on 8 claim features) one claim's latency
    /// and a batch's throughput, directly on tfhe-rs (one process: encrypt, evaluate, decrypt)
    /// and through `fhe-score` jobs (coordinator and two nodes on loopback with mutual TLS:
    /// upload, evaluation, masking, return, decryption, unmasking, sealing), with the ratio and
    /// the bootstraps per claim. Every result is checked against the clear model.
    #[cfg(feature = "fhe")]
    Fhe(FheBenchArgs),
    /// A deployment under load and faults, as processes of this binary: `treaty init`, a
    /// coordinator and three party nodes (mutual TLS, loopback); --analysts analysts submit
    /// --jobs mixed jobs (stats, join stats, psi, train, score) with at most --in-flight each;
    /// the bank's node is killed (SIGKILL) and restarted after 30% of the jobs, the coordinator
    /// after 60%. Every succeeded result is opened and compared with the clear computation and
    /// every audit log is verified at the end. Reports jobs succeeded and failed (with reasons),
    /// p50/p99 from submission to result, and each process's peak RSS and CPU time. Exit code 1
    /// if a result mismatched, a log failed to verify or a job failed outside a fault.
    Soak(SoakArgs),
    /// One party process of `bench` (started by it; reads its plan on stdin).
    #[command(hide = true)]
    Party(PartyArgs),
}

/// Options every benchmark takes.
#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// One JSON object per case and line instead of a table.
    #[arg(long)]
    json: bool,
    /// Timed runs per case (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
    /// Untimed runs per case before the timed ones.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Seconds a party waits for a peer's message before the run fails.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// Options of the long glm benchmarks: as [`RunArgs`], one timed run and no warm-up by default.
#[derive(Args, Debug)]
pub(crate) struct GlmRunArgs {
    /// One JSON object per case and line instead of a table.
    #[arg(long)]
    json: bool,
    /// Timed runs per case (the median is reported).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
    /// Untimed runs per case before the timed ones.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Seconds a party waits for a peer's message before the run fails.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

impl From<GlmRunArgs> for RunArgs {
    fn from(a: GlmRunArgs) -> Self {
        Self {
            json: a.json,
            repeat: a.repeat,
            warmup: a.warmup,
            timeout: a.timeout,
        }
    }
}

#[derive(Args, Debug)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    run: GlmRunArgs,
    /// Training rows.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Features (feature c at party c mod 3).
    #[arg(long, default_value_t = 30)]
    features: usize,
    /// Rows per batch.
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    /// Passes over the rows.
    #[arg(long, default_value_t = 10)]
    epochs: u32,
    /// Learning rate.
    #[arg(long, default_value_t = 0.1)]
    learning_rate: f64,
    /// L2 regularisation strength (not applied to the intercept).
    #[arg(long, default_value_t = 0.0)]
    l2: f64,
    /// Linear instead of logistic regression.
    #[arg(long)]
    linear: bool,
}

#[derive(Args, Debug)]
pub(crate) struct ScoreArgs {
    #[command(flatten)]
    run: GlmRunArgs,
    /// Records scored per run for throughput (0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Records per share–predict–sigmoid pass.
    #[arg(long, default_value_t = 1 << 17)]
    chunk: usize,
    /// Sequential one-record requests per run for latency (0: skip).
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Features per record (feature c at party c mod 3).
    #[arg(long, default_value_t = 30)]
    features: usize,
}

impl TrainArgs {
    fn case(&self) -> anyhow::Result<TrainCase> {
        let case = TrainCase {
            rows: self.rows,
            features: self.features,
            batch: self.batch,
            epochs: self.epochs,
            learning_rate: self.learning_rate,
            l2: self.l2,
            linear: self.linear,
        };
        case.check()?;
        Ok(case)
    }
}

impl ScoreArgs {
    fn cases(&self) -> anyhow::Result<Vec<ScoreCase>> {
        let mut cases = Vec::new();
        if self.records > 0 {
            cases.push(ScoreCase::Batch {
                records: self.records,
                features: self.features,
                chunk: self.chunk.min(self.records),
            });
        }
        if self.requests > 0 {
            cases.push(ScoreCase::Single {
                requests: self.requests,
                features: self.features,
            });
        }
        anyhow::ensure!(!cases.is_empty(), "--records and --requests are both 0");
        for c in &cases {
            c.check()?;
        }
        Ok(cases)
    }
}

#[derive(Args, Debug)]
pub(crate) struct MpcArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Operations to run, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_op, default_values_t = Op::DEFAULT.to_vec())]
    ops: Vec<Op>,
    /// Element counts of the element-wise operations (mul, lt), comma-separated.
    #[arg(long = "n", value_delimiter = ',', default_values_t = DEFAULT_NS)]
    ns: Vec<usize>,
    /// Matrix products `MxKxN` (an M×K by a K×N matrix; n = M·N output elements), comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_matrix, default_values_t = DEFAULT_MATRICES)]
    shapes: Vec<Shape>,
}

#[derive(Args, Debug)]
pub(crate) struct PsiArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Ids per party, comma-separated.
    #[arg(long = "n", value_delimiter = ',', default_values_t = [1usize << 16, 1 << 20])]
    ns: Vec<usize>,
    /// Share of each party's ids that the other also holds, in [0, 1].
    #[arg(long, default_value_t = 0.5)]
    overlap: f64,
    /// Who learns what, comma-separated: `one` (party 0 learns the intersection), `both`, or
    /// `size` (party 0 learns its size only).
    #[arg(long, value_delimiter = ',', value_parser = parse_mode, default_values_t = [PsiBenchMode::One])]
    mode: Vec<PsiBenchMode>,
}

#[derive(Args, Debug)]
pub(crate) struct PartyArgs {
    /// Party index (0, 1 or 2).
    #[arg(long)]
    index: usize,
    /// The throwaway PKI written by the parent.
    #[arg(long)]
    pki: PathBuf,
}

fn parse_mode(s: &str) -> Result<PsiBenchMode, String> {
    PsiBenchMode::from_name(s.trim())
        .ok_or_else(|| format!("unknown mode {s:?}; known: one, both, size"))
}

fn parse_op(s: &str) -> Result<Op, String> {
    Op::from_name(s.trim()).ok_or_else(|| {
        let names: Vec<&str> = Op::ALL.iter().map(|op| op.name()).collect();
        format!("unknown operation {s:?}; known: {}", names.join(", "))
    })
}

fn parse_matrix(s: &str) -> Result<Shape, String> {
    let dims: Vec<usize> = s
        .trim()
        .split('x')
        .map(|d| d.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{s:?} is not MxKxN (e.g. 1000x100x1)"))?;
    match dims[..] {
        [m, k, n] => Ok(Shape::Matrix { m, k, n }),
        _ => Err(format!("{s:?} is not MxKxN (e.g. 1000x100x1)")),
    }
}

pub(crate) async fn run(
    args: BenchArgs,
    log: Option<&str>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<ExitCode> {
    let (workload, run) = match args.command {
        BenchCommand::Mpc(args) => (
            Workload::Mpc(Case::grid(&args.ops, &args.ns, &args.shapes)?),
            args.run,
        ),
        BenchCommand::Psi(args) => (
            Workload::Psi(PsiCase::grid(&args.ns, args.overlap, &args.mode)?),
            args.run,
        ),
        BenchCommand::Train(args) => (Workload::Train(vec![args.case()?]), args.run.into()),
        BenchCommand::Score(args) => (Workload::Score(args.cases()?), args.run.into()),
        #[cfg(feature = "fhe")]
        BenchCommand::Fhe(args) => return run_fhe(args).await,
        BenchCommand::Soak(args) => return run_soak(args, shutdown).await,
        BenchCommand::Party(args) => {
            let stdin = std::io::BufReader::new(std::io::stdin());
            bench::run_child(args.index, &args.pki, stdin, std::io::stdout()).await?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    let plan = BenchPlan {
        workload,
        repeat: usize::try_from(run.repeat).context("--repeat")?,
        warmup: usize::try_from(run.warmup).context("--warmup")?,
        timeout: Duration::from_secs(run.timeout),
    };
    let exe = std::env::current_exe().context("locating the treaty binary")?;
    let command = |index: usize, pki: &std::path::Path| {
        let mut c = std::process::Command::new(&exe);
        if let Some(log) = log {
            c.arg("--log").arg(log);
        }
        c.args(["bench", "party", "--index", &index.to_string(), "--pki"])
            .arg(pki);
        c
    };
    if !run.json {
        println!("{}", crate::print::bench_header(&plan.workload));
    }
    let json = run.json;
    let mut print_err = None;
    bench::run_parent(&plan, command, shutdown, |r: &BenchResult| {
        if json {
            match serde_json::to_string(r) {
                Ok(line) => println!("{line}"),
                Err(e) => print_err = Some(e),
            }
        } else {
            println!("{}", crate::print::bench_row(r));
        }
    })
    .await?;
    if let Some(e) = print_err {
        return Err(e).context("encoding a result");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "fhe")]
#[derive(Args, Debug)]
pub(crate) struct FheBenchArgs {
    /// Models, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "linear,scorecard,tree")]
    models: Vec<String>,
    /// Claims per batch.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Timed one-claim runs per model (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[cfg(feature = "fhe")]
async fn run_fhe(args: FheBenchArgs) -> anyhow::Result<ExitCode> {
    let tmp = tempfile::Builder::new()
        .prefix("treaty-bench-fhe-")
        .tempdir()?;
    let opts = treaty_bench::fhe::FheBenchOptions {
        work_dir: tmp.path().into(),
        models: args.models,
        batch: args.batch,
        repeat: args.repeat.max(1),
    };
    let json = args.json;
    let report = treaty_bench::fhe::run(&opts, |what| {
        if !json {
            eprintln!("… {what}");
        }
    })
    .await
    .context("the fhe bench failed")?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "keys: generated in {:.2} s; compressed server key {} bytes, imported (limit, \
         conformance, decompression) in {:.2} s, uploaded in the first job in {:.2} s",
        report.keygen_seconds,
        report.server_key_bytes,
        report.server_key_import_seconds,
        report.key_upload_seconds
    );
    println!(
        "{:<10} {:>8} {:>12} {:>12} {:>7} {:>14} {:>14} {:>7}",
        "model",
        "PBS",
        "direct s",
        "treaty s",
        "ratio",
        "direct claim/s",
        "treaty claim/s",
        "ratio"
    );
    for c in &report.cases {
        println!(
            "{:<10} {:>8.0} {:>12.3} {:>12.3} {:>7.2} {:>14.2} {:>14.2} {:>7.2}",
            c.model,
            c.bootstraps_per_claim,
            c.direct_claim_seconds,
            c.treaty_claim_seconds,
            c.claim_ratio,
            c.direct_claims_per_second,
            c.treaty_claims_per_second,
            c.batch_ratio
        );
    }
    println!(
        "(one claim: median of the timed runs; batch: {} claims)",
        report.batch
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub(crate) struct SoakArgs {
    /// Jobs in all.
    #[arg(long, default_value_t = 100)]
    jobs: usize,
    /// Analysts submitting them.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=26))]
    analysts: u64,
    /// Most unfinished jobs per analyst.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    in_flight: u64,
    /// People and claims per party (the new records to score are a quarter).
    #[arg(long, default_value_t = 2_000)]
    rows: usize,
    /// Run without killing and restarting anything.
    #[arg(long)]
    no_faults: bool,
    /// Keep keys, data, state and the processes' logs here (default: a temporary directory,
    /// removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// One JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

async fn run_soak(args: SoakArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("locating the treaty binary")?;
    // Removed when dropped, after the processes in it are gone.
    let temp;
    let dir = match args.dir.clone() {
        Some(d) => d,
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let mut opts = bench::soak::SoakOptions::new(exe, dir);
    opts.jobs = args.jobs;
    opts.analysts = usize::try_from(args.analysts).context("--analysts")?;
    opts.in_flight = usize::try_from(args.in_flight).context("--in-flight")?;
    opts.rows = args.rows;
    opts.faults = !args.no_faults;
    let report = tokio::select! {
        r = bench::soak::run(opts) => r?,
        () = shutdown => anyhow::bail!("interrupted"),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        crate::print::soak(&report);
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
