//! `treaty demo fhe`: argument parsing and printing around `treaty_sandbox::demo_fhe`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use treaty_sandbox::demo_fhe::{self, FheDemoOptions};

use super::DemoRunArgs;
use crate::print;

#[derive(Args, Debug)]
pub(crate) struct FheDemoArgs {
    /// Synthetic claims the hospital encrypts.
    #[arg(long, default_value_t = 100)]
    claims: usize,
    /// The insurer's model: linear, scorecard or tree.
    #[arg(long, default_value = "linear")]
    model: String,
    /// What leaves the job: scores (the insurer learns scores and decisions), decisions, or
    /// aggregate (both keep shares; only the sum of scores and the count of positives open).
    #[arg(long, default_value = "scores")]
    release: String,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    run: DemoRunArgs,
}

pub(crate) async fn run(args: FheDemoArgs) -> anyhow::Result<ExitCode> {
    let tmp = tempfile::Builder::new()
        .prefix("treaty-demo-fhe-")
        .tempdir()?;
    let mut opts = FheDemoOptions::new(args.run.dir.clone().unwrap_or_else(|| tmp.path().into()));
    opts.claims = args.claims;
    opts.model = args.model.clone();
    opts.release = args.release.clone();
    opts.seed = args.seed;
    opts.insecure = args.run.insecure;
    if !args.run.json {
        println!(
            "treaty demo fhe: coordinator + hospital and insurer on loopback ({}); the hospital \
             encrypts {} synthetic claims (8 features) under its own tfhe key, the insurer applies \
             its {} model to the ciphertexts, release: {}",
            if opts.insecure {
                "plaintext"
            } else {
                "mutual TLS"
            },
            opts.claims,
            opts.model,
            opts.release,
        );
    }
    let mut bar = print::JobBar::shown(!args.run.json);
    let report = demo_fhe::run(&opts, |job| bar.update(job))
        .await
        .context("the fhe demo failed")?;
    bar.finish_silently();
    if args.run.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        if let Some(result) = &report.result {
            println!();
            print::fhe_score(result, 5);
        }
        println!(
            "\njob {}: {} claims, {} mismatches against the clear model ({} flagged)",
            report.job_id, report.claims, report.mismatches, report.positives
        );
        println!(
            "insurer on ciphertexts: {:.3} s per claim, {:.0} bootstraps per claim",
            report.seconds_per_claim, report.bootstraps_per_claim
        );
        println!(
            "hospital: encrypted in {:.2} s, {} bytes uploaded ({:.0} per claim); server key {} \
             bytes ({})",
            report.encrypt_seconds,
            report.ciphertext_bytes,
            report.ciphertext_bytes_per_claim,
            report.server_key_bytes,
            if report.server_key_sent {
                "sent"
            } else {
                "cached at the insurer"
            }
        );
        println!("submission to opened result: {:.2} s", report.job_seconds);
    }
    Ok(if report.mismatches == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: results differ from the clear model");
        ExitCode::from(2)
    })
}
