//! `treaty audit key|verify|show`: the auditor's side of the audit logs, offline.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use ed25519_dalek::VerifyingKey;
use treaty_coordinator::audit::{AuditEvent, AuditRecord, cross_check, verify_log};

#[derive(Args, Debug)]
pub(crate) struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Print this party's audit public key (hex), for the auditor's list of keys.
    Key {
        /// The node's config file (party.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Verify exported logs offline: every chain intact, every checkpoint signature valid
    /// under the writer's key, and for every job what each party committed as sent to a peer
    /// equals what the peer committed as received. Exit code 1 on any failure, naming the entry.
    Verify {
        /// A log: WRITER=FILE (the writer's `<state dir>/audit/log.jsonl`). Repeat per party.
        #[arg(long = "log", value_parser = pair, required = true)]
        logs: Vec<(String, PathBuf)>,
        /// A writer's public key: WRITER=HEX (from `treaty audit key`). One per log.
        #[arg(long = "key", value_parser = pair_hex, required = true)]
        keys: Vec<(String, String)>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The timeline of one job across the given logs.
    Show {
        /// The job id.
        job: String,
        /// A log: WRITER=FILE. Repeat per party.
        #[arg(long = "log", value_parser = pair, required = true)]
        logs: Vec<(String, PathBuf)>,
    },
}

fn pair(s: &str) -> Result<(String, PathBuf), String> {
    s.split_once('=')
        .map(|(w, f)| (w.to_string(), PathBuf::from(f)))
        .ok_or_else(|| format!("expected WRITER=FILE, got {s:?}"))
}

fn pair_hex(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(w, k)| (w.to_string(), k.to_string()))
        .ok_or_else(|| format!("expected WRITER=HEX, got {s:?}"))
}

fn read_logs(logs: &[(String, PathBuf)]) -> anyhow::Result<Vec<(String, String)>> {
    logs.iter()
        .map(|(w, f)| {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("reading {}'s log {}", w, f.display()))?;
            Ok((w.clone(), text))
        })
        .collect()
}

pub(crate) fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Key { config } => {
            let cfg = treaty_party::PartyConfig::load(&config)?;
            let key =
                treaty_coordinator::audit::identity_key(&treaty_party::audit_log::audit_dir(&cfg))?;
            println!("{}", hex::encode(key.verifying_key().to_bytes()));
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { logs, keys, json } => {
            let texts = read_logs(&logs)?;
            let mut failures = Vec::new();
            let mut parsed: Vec<(String, Vec<AuditRecord>)> = Vec::new();
            for (writer, text) in &texts {
                let hex_key = keys
                    .iter()
                    .find(|(w, _)| w == writer)
                    .map(|(_, k)| k)
                    .with_context(|| format!("no --key for {writer}"))?;
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(hex_key, &mut bytes)
                    .with_context(|| format!("{writer}'s key is not 32 bytes of hex"))?;
                let key = VerifyingKey::from_bytes(&bytes)
                    .with_context(|| format!("{writer}'s key is not an Ed25519 public key"))?;
                let (records, f) = verify_log(writer, text, &key, None);
                failures.extend(f);
                parsed.push((writer.clone(), records));
            }
            failures.extend(cross_check(&parsed));
            let entries: usize = parsed.iter().map(|(_, r)| r.len()).sum();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "logs": parsed.len(),
                        "entries": entries,
                        "ok": failures.is_empty(),
                        "failures": failures,
                    })
                );
            } else if failures.is_empty() {
                println!(
                    "ok: {} logs, {entries} entries; chains, signatures and cross-party traffic agree",
                    parsed.len()
                );
            } else {
                for f in &failures {
                    println!("FAIL {f}");
                }
            }
            Ok(if failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AuditCommand::Show { job, logs } => {
            let texts = read_logs(&logs)?;
            let mut events: Vec<(u64, String, u64, AuditEvent)> = Vec::new();
            for (writer, text) in &texts {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let r: AuditRecord = serde_json::from_str(line)
                        .with_context(|| format!("{writer}'s log has a malformed line"))?;
                    if r.entry.job.as_deref() == Some(job.as_str()) {
                        events.push((r.entry.time_ms, writer.clone(), r.entry.seq, r.entry.event));
                    }
                }
            }
            events.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
            if events.is_empty() {
                println!("no entry of job {job} in these logs");
            }
            for (time_ms, writer, seq, event) in events {
                println!(
                    "{time_ms} {writer:<12} #{seq:<5} {}",
                    serde_json::to_string(&event)?
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
