//! `treaty bench mpc`: parse, hand over to `treaty_party::bench`, print.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use treaty_mpc::rep3::workload::{Case, DEFAULT_MATRICES, DEFAULT_NS, Op, Shape};
use treaty_party::bench::{self, BenchPlan, CaseResult};

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Time rep3 operations between three local party processes talking gRPC with mutual TLS
    /// (the deployed data plane, on loopback). Per case: one untimed warm-up, then --repeat timed
    /// runs; inputs are shared untimed, a barrier round precedes the timed operation; the time of
    /// a run is the slowest party's, and the median over runs is reported with the rounds and the
    /// most bytes any party sent.
    Mpc(MpcArgs),
    /// One party process of `bench mpc` (started by it; reads its plan on stdin).
    #[command(hide = true)]
    MpcParty(MpcPartyArgs),
}

#[derive(Args, Debug)]
pub(crate) struct MpcArgs {
    /// One JSON object per case and line (op, n, shape, seconds, rounds, bytes_per_party, …).
    #[arg(long)]
    json: bool,
    /// Operations to run, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_op, default_values_t = Op::ALL.to_vec())]
    ops: Vec<Op>,
    /// Element counts of the element-wise operations (mul, lt), comma-separated.
    #[arg(long = "n", value_delimiter = ',', default_values_t = DEFAULT_NS)]
    ns: Vec<usize>,
    /// Matrix products `MxKxN` (an M×K by a K×N matrix; n = M·N output elements), comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_matrix, default_values_t = DEFAULT_MATRICES)]
    shapes: Vec<Shape>,
    /// Timed runs per case (the median is reported), after one untimed warm-up.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
    /// Seconds a party waits for a peer's message before the run fails.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

#[derive(Args, Debug)]
pub(crate) struct MpcPartyArgs {
    /// Party index (0, 1 or 2).
    #[arg(long)]
    index: usize,
    /// The throwaway PKI written by the parent.
    #[arg(long)]
    pki: PathBuf,
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
    match args.command {
        BenchCommand::Mpc(args) => mpc(args, log, shutdown).await,
        BenchCommand::MpcParty(args) => {
            let stdin = std::io::BufReader::new(std::io::stdin());
            bench::run_child(args.index, &args.pki, stdin, std::io::stdout()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn mpc(
    args: MpcArgs,
    log: Option<&str>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<ExitCode> {
    let plan = BenchPlan {
        cases: Case::grid(&args.ops, &args.ns, &args.shapes)?,
        repeat: usize::try_from(args.repeat).context("--repeat")?,
        timeout: Duration::from_secs(args.timeout),
    };
    let exe = std::env::current_exe().context("locating the treaty binary")?;
    let command = |index: usize, pki: &std::path::Path| {
        let mut c = std::process::Command::new(&exe);
        if let Some(log) = log {
            c.arg("--log").arg(log);
        }
        c.args(["bench", "mpc-party", "--index", &index.to_string(), "--pki"])
            .arg(pki);
        c
    };
    if !args.json {
        println!("{}", crate::print::bench_header());
    }
    let json = args.json;
    let mut print_err = None;
    bench::run_parent(&plan, command, shutdown, |r: &CaseResult| {
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
