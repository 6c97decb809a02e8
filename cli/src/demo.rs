//! `treaty demo`: argument parsing and printing around `treaty_sandbox::demo`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use treaty_mpc::stats::StatsResult;
use treaty_party::dataset::Predicate;
use treaty_sandbox::demo::{DemoOptions, DemoReport};
use treaty_sandbox::demo_join::JoinDemoOptions;
use treaty_sandbox::demo_psi::PsiDemoOptions;

use crate::print;

#[cfg(feature = "fhe")]
mod fhe;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct DemoArgs {
    /// Another demo instead of the default `stats` one.
    #[command(subcommand)]
    kind: Option<DemoKind>,
    /// Synthetic claims per party.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Party ids, comma separated (at least 2).
    #[arg(long, value_delimiter = ',', default_value = "hospital,insurer,bank")]
    parties: Vec<String>,
    /// Fixed-point fractional bits.
    #[arg(long, default_value_t = 16)]
    frac_bits: u32,
    /// Only claims of this diagnosis group ("all" for every claim).
    #[arg(long, default_value = "diabetes")]
    diagnosis: String,
    #[command(flatten)]
    run: DemoRunArgs,
}

/// What every demo takes: where to keep its files, TLS or not, and the output format.
#[derive(Args, Debug)]
pub(crate) struct DemoRunArgs {
    /// Keep data, keys and state in this directory (default: a temporary one, removed after).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Plaintext gRPC instead of mutual TLS.
    #[arg(long)]
    pub(crate) insecure: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Subcommand, Debug)]
enum DemoKind {
    /// Hospital and insurer find their common patients with a `psi` job (intersection to both),
    /// checked against the intersection computed in the clear.
    Psi(PsiDemoArgs),
    /// A `psi` job aligns the hospital's and the insurer's common patients, then a `stats` job
    /// with a `[join]` computes the mean claim amount at the insurer over the patients the
    /// hospital flags as diabetic (the bank helps compute, holding no data), checked against
    /// the same join computed in the clear.
    Join(JoinDemoArgs),
    /// The claim-fraud model: hospital, insurer and bank align the people all three hold (`psi`),
    /// train a logistic regression on secret shares over their 30 features with the insurer's
    /// fraud flag as the label (`train`), and evaluate its AUC on held-out rows inside MPC;
    /// printed beside the same pipeline run in the clear in f64. Exits 2 if the weights differ by
    /// more than 5e-4 or the AUC by more than 0.001.
    Claims(ClaimsDemoArgs),
    /// The hospital's claims encrypted under its own tfhe key; the insurer scores them on
    /// ciphertexts with its own model (linear, scorecard or tree) and learns the results through
    /// the masking conversion; every decision checked against the clear model. Exits 2 on any
    /// mismatch.
    #[cfg(feature = "fhe")]
    Fhe(fhe::FheDemoArgs),
}

#[derive(Args, Debug)]
struct ClaimsDemoArgs {
    /// Synthetic people per party.
    #[arg(long, default_value_t = 20_000)]
    rows: usize,
    /// Share of each party's people that all three hold (0 to 1).
    #[arg(long, default_value_t = 0.7)]
    overlap: f64,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Share of the aligned rows held out for the AUC.
    #[arg(long, default_value_t = 0.15)]
    holdout: f64,
    /// New people per party whose claims the trained model then scores.
    #[arg(long, default_value_t = 5_000)]
    score_rows: usize,
    /// Passes over the training rows.
    #[arg(long, default_value_t = 10)]
    epochs: u32,
    /// Rows per gradient step.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.1)]
    learning_rate: f64,
    /// L2 regularisation.
    #[arg(long, default_value_t = 0.0)]
    l2: f64,
    /// Fixed-point fractional bits (16 to 20).
    #[arg(long, default_value_t = 16)]
    frac_bits: u32,
    #[command(flatten)]
    run: DemoRunArgs,
}

async fn run_claims(args: ClaimsDemoArgs) -> anyhow::Result<ExitCode> {
    let tmp = overlap_demo_dir("treaty-demo-claims-", args.overlap)?;
    let mut opts = treaty_sandbox::demo_claims::ClaimsDemoOptions::new(
        args.run.dir.clone().unwrap_or_else(|| tmp.path().into()),
    );
    opts.rows = args.rows;
    opts.overlap = args.overlap;
    opts.seed = args.seed;
    opts.holdout = args.holdout;
    opts.score_rows = args.score_rows;
    opts.params.epochs = args.epochs;
    opts.params.batch_size = args.batch;
    opts.params.learning_rate = args.learning_rate;
    opts.params.l2 = args.l2;
    opts.frac_bits = args.frac_bits;
    opts.insecure = args.run.insecure;
    opts.params.check()?;
    if !args.run.json {
        println!(
            "treaty demo claims: coordinator + hospital, insurer and bank on loopback ({}), {} \
             synthetic people per party, {:.0}% held by all three; psi, then train (logistic \
             regression, {} epochs, batch {}, learning rate {}), AUC on {:.0}% held out",
            if opts.insecure {
                "plaintext"
            } else {
                "mutual TLS"
            },
            opts.rows,
            100.0 * opts.overlap,
            opts.params.epochs,
            opts.params.batch_size,
            opts.params.learning_rate,
            100.0 * opts.holdout,
        );
    }
    let mut bar = print::JobBar::shown(!args.run.json);
    let report = treaty_sandbox::demo_claims::run(&opts, |job| bar.update(job))
        .await
        .context("the claims demo failed")?;
    bar.finish_silently();
    if args.run.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "\njob {}: psi, the people all three hold ({:.2} s)",
            report.psi_job_id, report.psi_seconds
        );
        println!(
            "job {}: train, {} aligned rows ({} train, {} held out for the AUC), {} features, {} steps\n",
            report.train_job_id,
            report.rows,
            report.train_rows,
            report.holdout_rows,
            report.features,
            report.steps
        );
        println!(
            "{:<36} {:>12} {:>12} {:>10}",
            "feature (standardised)", "secure", "f64", "|diff|"
        );
        let names = report
            .feature_names
            .iter()
            .map(String::as_str)
            .chain(["(intercept)"]);
        for ((name, s), c) in names
            .zip(&report.secure_weights)
            .zip(&report.plaintext_weights)
        {
            println!("{name:<36} {s:>12.6} {c:>12.6} {:>10.2e}", (s - c).abs());
        }
        println!(
            "\nheld-out AUC: {:.6} (secure, computed inside MPC)  {:.6} (f64)",
            report.secure_auc, report.plaintext_auc
        );
        println!(
            "max weight error {:.3e} ({} 5e-4), AUC difference {:.1e} ({} 0.001)",
            report.max_weight_error,
            if report.max_weight_error <= treaty_sandbox::demo_claims::WEIGHT_BOUND {
                "within"
            } else {
                "OUTSIDE"
            },
            (report.secure_auc - report.plaintext_auc).abs(),
            if (report.secure_auc - report.plaintext_auc).abs()
                <= treaty_sandbox::demo_claims::AUC_BOUND
            {
                "within"
            } else {
                "OUTSIDE"
            },
        );
        println!("train job: {} data-plane rounds per party", report.rounds);
        for (p, sent) in &report.bytes_sent_per_party {
            println!("  {p:<16} sent {sent:>12} B");
        }
        println!(
            "training {:.2} s (slowest party); train job {:.2} s from submission to the opened result",
            report.train_seconds, report.train_job_seconds
        );
        println!(
            "\nscore job: {} new records (inline PSI) scored with the stored model in {:.3} s on \
             shares, {:.2} s from submission to the opened scores",
            report.scored_records, report.score_seconds, report.score_job_seconds
        );
        println!(
            "max score error {:.2e} vs the f64 model; decisions (score ≥ 0.5) differing: {} ({} \
             not at the threshold)",
            report.max_score_error, report.decision_mismatches, report.clear_decision_mismatches
        );
        println!(
            "one application scored through the coordinator: decision {} in {:.3} s from \
             submission to the opened decision",
            if report.single_record_decision {
                "flag"
            } else {
                "pass"
            },
            report.single_record_seconds
        );
    }
    if !report.within_bound {
        eprintln!("error: the secure model differs from the f64 one beyond the bounds");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
struct JoinDemoArgs {
    /// Synthetic patients per data party (hospital, insurer).
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Share of each data party's patients the other also has (0 to 1).
    #[arg(long, default_value_t = 0.6)]
    overlap: f64,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Fixed-point fractional bits.
    #[arg(long, default_value_t = 16)]
    frac_bits: u32,
    /// Run the PSI inline, as the first phase of the `stats` job (one job instead of two).
    #[arg(long)]
    inline_psi: bool,
    #[command(flatten)]
    run: DemoRunArgs,
}

/// Checks `--overlap` (a share, 0 to 1) and makes the demo's temporary directory.
fn overlap_demo_dir(prefix: &str, overlap: f64) -> anyhow::Result<tempfile::TempDir> {
    if !(0.0..=1.0).contains(&overlap) {
        anyhow::bail!("--overlap must be between 0 and 1, got {overlap}");
    }
    Ok(tempfile::Builder::new().prefix(prefix).tempdir()?)
}

async fn run_join(args: JoinDemoArgs) -> anyhow::Result<ExitCode> {
    let tmp = overlap_demo_dir("treaty-demo-join-", args.overlap)?;
    let mut opts = JoinDemoOptions::new(args.run.dir.clone().unwrap_or_else(|| tmp.path().into()));
    opts.rows = args.rows;
    opts.overlap = args.overlap;
    opts.seed = args.seed;
    opts.frac_bits = args.frac_bits;
    opts.inline_psi = args.inline_psi;
    opts.insecure = args.run.insecure;
    if !args.run.json {
        println!(
            "treaty demo join: coordinator + hospital, insurer (data) and bank (helper) on loopback \
             ({}), {} synthetic patients per data party, {:.0}% shared; {}",
            if opts.insecure {
                "plaintext"
            } else {
                "mutual TLS"
            },
            opts.rows,
            100.0 * opts.overlap,
            if opts.inline_psi {
                "one stats job with the PSI inline"
            } else {
                "a psi job, then a stats job on its intersection"
            }
        );
    }
    let mut bar = print::JobBar::shown(!args.run.json);
    let report = treaty_sandbox::demo_join::run(&opts, |job| bar.update(job))
        .await
        .context("the join demo failed")?;
    bar.finish_silently();
    if args.run.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        if let Some(psi) = &report.psi_job_id {
            println!("\njob {psi}: psi, intersection revealed to hospital and insurer");
        }
        println!(
            "job {}: stats with a join, {} where {} = {}",
            report.job_id,
            treaty_sandbox::demo_join::COLUMNS.join(", "),
            treaty_sandbox::demo_join::FILTER.0,
            treaty_sandbox::demo_join::FILTER.1
        );
        println!(
            "patients in common: {} (clear); diabetic among them: {} (secure)  {} (clear)\n",
            report.intersection_size, report.result.count, report.plaintext.count
        );
        print_table(&report.result, &report.plaintext);
        println!(
            "\nmax abs error {:.3e} ({} the {}-fractional-bit bound of vertical stats)",
            report.max_abs_error,
            if report.within_bound {
                "within"
            } else {
                "OUTSIDE"
            },
            report.frac_bits
        );
        println!("stats job: {} data-plane rounds per party", report.rounds);
        for (p, sent) in &report.bytes_sent_per_party {
            println!("  {p:<16} sent {sent:>10} B");
        }
        println!(
            "wall time: {:.3} s from the first submission to the opened result ({:.3} s for the \
             stats job)",
            report.seconds, report.stats_seconds
        );
    }
    if !report.within_bound {
        eprintln!(
            "error: the secure result differs from the clear computation beyond the fixed-point bound"
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
struct PsiDemoArgs {
    /// Synthetic patient ids per party.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Share of each party's ids every other party also has (0 to 1).
    #[arg(long, default_value_t = 0.5)]
    overlap: f64,
    /// The parties: a number (2 = hospital, insurer; 3 adds bank; more add party-4, …) or a
    /// comma-separated list of ids. Three or more run the multi-party chain.
    #[arg(long, default_value = "2", value_parser = parse_psi_parties)]
    parties: PsiParties,
    /// Seed of the synthetic ids.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    run: DemoRunArgs,
}

/// The `--parties` of `treaty demo psi`.
#[derive(Debug, Clone)]
struct PsiParties(Vec<String>);

fn parse_psi_parties(s: &str) -> Result<PsiParties, String> {
    let parties = match s.parse::<usize>() {
        Ok(n) => treaty_sandbox::demo_psi::default_parties(n),
        Err(_) => s.split(',').map(|p| p.trim().to_string()).collect(),
    };
    let max = treaty_job::validate::MAX_PSI_PARTIES;
    if parties.len() < 2 || parties.len() > max || parties.iter().any(String::is_empty) {
        return Err(format!("2 to {max} parties: a number or a list like a,b,c"));
    }
    Ok(PsiParties(parties))
}

async fn run_psi(args: PsiDemoArgs) -> anyhow::Result<ExitCode> {
    let tmp = overlap_demo_dir("treaty-demo-psi-", args.overlap)?;
    let mut opts = PsiDemoOptions::new(args.run.dir.clone().unwrap_or_else(|| tmp.path().into()));
    opts.rows = args.rows;
    opts.overlap = args.overlap;
    opts.seed = args.seed;
    opts.insecure = args.run.insecure;
    opts.parties = args.parties.0.clone();
    if !args.run.json {
        let names = match opts.parties.split_last() {
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        };
        println!(
            "treaty demo psi: coordinator + {names} on loopback ({}), {} synthetic patient ids each, {:.0}% shared by all",
            if opts.insecure {
                "plaintext"
            } else {
                "mutual TLS"
            },
            opts.rows,
            100.0 * opts.overlap
        );
    }
    let mut bar = print::JobBar::shown(!args.run.json);
    let report = treaty_sandbox::demo_psi::run(&opts, |job| bar.update(job))
        .await
        .context("the PSI demo failed")?;
    bar.finish_silently();
    let sizes_agree = report.secure_size.values().all(|&s| s == report.clear_size);
    if args.run.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "\njob {}: psi over {} ids per party",
            report.job_id, report.rows_per_party
        );
        for (party, size) in &report.secure_size {
            println!("  {party:<12} intersection (secure): {size}");
        }
        println!(
            "  {:<12} intersection (clear):  {}",
            "reference", report.clear_size
        );
        println!(
            "  aligned: {} (every party stored the same ids in the same order)",
            if report.aligned { "yes" } else { "NO" }
        );
        for (party, bytes) in &report.bytes_sent_per_party {
            println!("  {party:<12} sent {:.2} MB", *bytes as f64 / 1e6);
        }
        println!(
            "  {:.2} s from submission to opened result, {} rounds",
            report.seconds, report.rounds
        );
    }
    if !(report.aligned && sizes_agree) {
        eprintln!("error: the secure intersection differs from the clear one");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    match args.kind {
        Some(DemoKind::Psi(psi)) => return run_psi(psi).await,
        Some(DemoKind::Join(join)) => return run_join(join).await,
        Some(DemoKind::Claims(claims)) => return run_claims(claims).await,
        #[cfg(feature = "fhe")]
        Some(DemoKind::Fhe(fhe)) => return fhe::run(fhe).await,
        None => {}
    }
    if args.parties.len() < 2 {
        anyhow::bail!("the demo needs at least 2 parties (--parties a,b[,c...])");
    }
    let tmp = tempfile::Builder::new().prefix("treaty-demo-").tempdir()?;
    let work_dir = match &args.run.dir {
        Some(d) => d.clone(),
        None => tmp.path().to_path_buf(),
    };
    let mut opts = DemoOptions::new(work_dir);
    opts.rows = args.rows;
    opts.seed = args.seed;
    opts.parties = args.parties.clone();
    opts.frac_bits = args.frac_bits;
    opts.insecure = args.run.insecure;
    if args.diagnosis == "all" {
        opts.filter = None;
    } else if let Some((_, p)) = &mut opts.filter {
        *p = Predicate::Equals(args.diagnosis.clone());
    }
    if !args.run.json {
        println!(
            "treaty demo: coordinator + {} party nodes on loopback ({}), {} synthetic claims each",
            opts.parties.len(),
            if opts.insecure {
                "plaintext"
            } else {
                "mutual TLS"
            },
            opts.rows
        );
    }
    let mut bar = print::JobBar::shown(!args.run.json);
    let report = treaty_sandbox::demo::run(&opts, |job| bar.update(job))
        .await
        .context("the demo failed")?;
    bar.finish_silently();
    if args.run.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report, &opts);
    }
    if !report.within_bound {
        eprintln!(
            "error: the secure result differs from the clear computation beyond the fixed-point bound"
        );
        return Ok(ExitCode::from(2));
    }
    if !report.audit.failures.is_empty() {
        eprintln!("error: the audit logs do not verify");
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &DemoReport, opts: &DemoOptions) {
    let filter = match &opts.filter {
        Some((c, Predicate::Equals(v))) => format!(" where {c} = {v:?}"),
        Some((c, Predicate::Range { min, max })) => format!(" where {c} in [{min:?}, {max:?}]"),
        None => String::new(),
    };
    println!(
        "\njob {}: stats over {} parties{filter}",
        r.job_id,
        opts.parties.len()
    );
    println!(
        "rows matched: {} (secure)  {} (clear)\n",
        r.result.count, r.plaintext.count
    );
    print_table(&r.result, &r.plaintext);
    println!(
        "\nmax abs error {:.3e} ({} the {}-fractional-bit bound)",
        r.max_abs_error,
        if r.within_bound { "within" } else { "OUTSIDE" },
        r.frac_bits
    );
    println!("data-plane rounds per party: {}", r.rounds);
    for (p, sent) in &r.bytes_sent_per_party {
        let recv = r.bytes_received_per_party.get(p).copied().unwrap_or(0);
        println!("  {p:<16} sent {sent:>8} B  received {recv:>8} B");
    }
    println!(
        "wall time: {:.3} s from submission to opened result (data generation {:.2} s)",
        r.seconds, r.data_seconds
    );
    if r.audit.failures.is_empty() {
        println!(
            "audit: {} signed logs, {} entries verified (chains, signatures, the heads the \
             coordinator holds, cross-party traffic)",
            r.audit.logs, r.audit.entries
        );
    } else {
        for f in &r.audit.failures {
            println!("audit FAIL {f}");
        }
    }
}

/// Secure and clear statistics side by side, with the absolute error.
fn print_table(secure: &StatsResult, clear: &StatsResult) {
    println!(
        "{:<22} {:<9} {:>24} {:>24} {:>11}",
        "column", "statistic", "secure (MPC)", "clear (f64)", "abs error"
    );
    for (s, c) in secure.columns.iter().zip(&clear.columns) {
        let rows = [
            ("sum", Some(s.sum), Some(c.sum)),
            ("mean", s.mean, c.mean),
            ("variance", s.variance, c.variance),
            ("stddev", s.stddev, c.stddev),
        ];
        for (name, a, b) in rows {
            let err = match (a, b) {
                (Some(a), Some(b)) => format!("{:.2e}", (a - b).abs()),
                _ => "—".into(),
            };
            let f = |x: Option<f64>| x.map_or_else(|| "—".into(), |v| format!("{v:.6}"));
            println!(
                "{:<22} {:<9} {:>24} {:>24} {:>11}",
                s.column,
                name,
                f(a),
                f(b),
                err
            );
        }
    }
}
