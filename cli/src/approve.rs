//! `treaty approvals|approve|reject`: a party operator's answer to jobs its policy holds for a
//! human approval (`approval = true` in a rule). Runs on the party's machine, next to its state
//! directory; the running node picks the decision up.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use treaty_party::PartyConfig;
use treaty_party::approval;

#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    /// The node's config file (party.toml).
    #[arg(long, short)]
    config: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct DecideArgs {
    /// The job id (from `treaty approvals`).
    job: String,
    /// The node's config file (party.toml).
    #[arg(long, short)]
    config: PathBuf,
    /// Who decides (recorded in the audit log); default: $USER.
    #[arg(long)]
    by: Option<String>,
    /// A note for the audit log.
    #[arg(long, default_value = "")]
    reason: String,
}

#[derive(Args, Debug)]
pub(crate) struct RejectArgs {
    /// The job id (from `treaty approvals`).
    job: String,
    /// The node's config file (party.toml).
    #[arg(long, short)]
    config: PathBuf,
    /// Who decides (recorded in the audit log); default: $USER.
    #[arg(long)]
    by: Option<String>,
    /// Why (the analyst sees it).
    #[arg(long)]
    reason: String,
}

fn approver(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "operator".into())
}

pub(crate) fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let cfg = PartyConfig::load(&args.config)?;
    let pending = approval::list(&cfg)?;
    if args.json {
        println!("{}", serde_json::to_string(&pending)?);
    } else if pending.is_empty() {
        println!("no job waits for an approval at {}", cfg.id);
    } else {
        for p in &pending {
            println!(
                "{}  {:<10} by {:<12} {:?}\n    parties {}; here: dataset {:?}, columns {}\n    \
                 result to {} ({}…), policy {}…",
                p.job,
                p.kind,
                p.analyst,
                p.name,
                p.parties.join(", "),
                p.dataset,
                p.columns.join(", "),
                p.recipient,
                &p.recipient_key[..p.recipient_key.len().min(16)],
                &p.policy_sha256[..p.policy_sha256.len().min(16)],
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn approve(args: DecideArgs) -> anyhow::Result<ExitCode> {
    decide(&args.config, &args.job, true, args.by, &args.reason)
}

pub(crate) fn reject(args: RejectArgs) -> anyhow::Result<ExitCode> {
    decide(&args.config, &args.job, false, args.by, &args.reason)
}

fn decide(
    config: &std::path::Path,
    job: &str,
    approved: bool,
    by: Option<String>,
    reason: &str,
) -> anyhow::Result<ExitCode> {
    let cfg = PartyConfig::load(config)?;
    let by = approver(by);
    let p = approval::decide(&cfg, job, approved, &by, reason)?;
    let verdict = if approved { "approved" } else { "rejected" };
    println!("{verdict} {} ({} by {}) as {by}", p.job, p.kind, p.analyst);
    Ok(ExitCode::SUCCESS)
}
