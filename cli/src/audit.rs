//! `treaty audit key|registry|verify|show`: the auditor's side of the audit logs. `registry`
//! fetches the keys and signed heads the coordinator holds; everything else runs offline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use treaty_audit::registry::{Registry, parse_key};
use treaty_audit::{
    AuditEvent, AuditRecord, COORDINATOR_WRITER, Digest32, ExportedLog, SignedHead, verify_logs,
};
use treaty_proto::v1 as pb;

use crate::analyst::ConnectArgs;

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
    /// Fetch the coordinator's audit registry — every writer's public key and the latest signed
    /// head the coordinator holds for it — as JSON, to save (`> registry.json`) and verify
    /// exported logs against later with `treaty audit verify --registry`.
    Registry(ConnectArgs),
    /// Verify exported logs offline: every chain intact, every checkpoint signature valid
    /// under the writer's key, every head the coordinator holds (from --registry) present in the
    /// writer's log, the heads and keys the coordinator's own log recorded for each party (when
    /// the coordinator's log is given), and for every job what each party committed as sent to
    /// a peer equals what the peer committed as received. Exit code 1 on any failure, naming
    /// the entry.
    Verify {
        /// A log: WRITER=FILE (the writer's `<state dir>/audit/log.jsonl`; the coordinator's is
        /// `coordinator=<coordinator state dir>/audit/log.jsonl`). Repeat per writer.
        #[arg(long = "log", value_parser = pair, required = true)]
        logs: Vec<(String, PathBuf)>,
        /// The registry saved from `treaty audit registry`: keys and coordinator-held heads.
        #[arg(long)]
        registry: Option<PathBuf>,
        /// A writer's public key: WRITER=HEX (from `treaty audit key`); overrides the registry's.
        /// Every log needs a key from one or the other.
        #[arg(long = "key", value_parser = pair_hex)]
        keys: Vec<(String, String)>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The timeline of one job across the given logs (parties and coordinator), with a summary.
    Show {
        /// The job id.
        job: String,
        /// A log: WRITER=FILE. Repeat per writer.
        #[arg(long = "log", value_parser = pair, required = true)]
        logs: Vec<(String, PathBuf)>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
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

pub(crate) async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Key { config } => {
            let cfg = treaty_party::PartyConfig::load(&config)?;
            let key = treaty_audit::identity_key(&treaty_party::audit_log::audit_dir(&cfg))?;
            println!("{}", hex::encode(key.verifying_key().to_bytes()));
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Registry(connect) => {
            let mut c = connect.client().await?;
            let registry = c
                .get_audit_registry(pb::GetAuditRegistryRequest {})
                .await?
                .into_inner();
            println!(
                "{}",
                serde_json::to_string_pretty(&Registry::from_proto(&registry)?)?
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify {
            logs,
            registry,
            keys,
            json,
        } => verify(&logs, registry.as_ref(), &keys, json),
        AuditCommand::Show { job, logs, json } => show(&job, &logs, json),
    }
}

fn verify(
    logs: &[(String, PathBuf)],
    registry: Option<&PathBuf>,
    keys: &[(String, String)],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let registry: Option<Registry> = registry
        .map(|f| {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("reading the registry {}", f.display()))?;
            serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a registry saved from `treaty audit registry`",
                    f.display()
                )
            })
        })
        .transpose()?;
    let texts = read_logs(logs)?;
    let mut exported = Vec::with_capacity(texts.len());
    for (writer, text) in &texts {
        let listed = registry.as_ref().and_then(|r| r.get(writer));
        let hex_key = keys
            .iter()
            .find(|(w, _)| w == writer)
            .map(|(_, k)| k.as_str())
            .or_else(|| listed.map(|l| l.public_key.as_str()))
            .with_context(|| {
                format!(
                    "no key for {writer}: pass --key {writer}=HEX or a --registry that lists it"
                )
            })?;
        let key = parse_key(writer, hex_key)?;
        let head = listed.and_then(|l| l.head.as_ref()).map(|h| SignedHead {
            writer: writer.clone(),
            seq: h.seq,
            head: h.head,
            signature: h.signature.clone(),
        });
        exported.push(ExportedLog {
            writer,
            text,
            key,
            head,
        });
    }
    let heads = exported.iter().filter(|l| l.head.is_some()).count();
    let coordinator = exported.iter().any(|l| l.writer == COORDINATOR_WRITER);
    let (parsed, failures) = verify_logs(&exported);
    let entries: usize = parsed.iter().map(|(_, r)| r.len()).sum();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "logs": parsed.len(),
                "entries": entries,
                "coordinator_heads": heads,
                "coordinator_log": coordinator,
                "ok": failures.is_empty(),
                "failures": failures,
            })
        );
    } else if failures.is_empty() {
        let mut checked = vec!["chains", "signatures"];
        if heads > 0 {
            checked.push("coordinator-held heads");
        }
        if coordinator {
            checked.push("the coordinator's record of heads and keys");
        }
        let last = "cross-party traffic";
        println!(
            "ok: {} logs, {entries} entries; {} and {last} agree",
            parsed.len(),
            checked.join(", ")
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

/// One event of the job, from one log.
struct Line {
    time_ms: u64,
    writer: String,
    seq: u64,
    event: AuditEvent,
}

/// The first 8 hex digits of a digest.
fn short(d: &Digest32) -> String {
    format!("{}…", &hex::encode(d.0)[..8])
}

/// One event in words (`None` for checkpoints, which belong to no job).
fn summary(event: &AuditEvent) -> Option<String> {
    Some(match event {
        AuditEvent::JobReceived {
            kind,
            analyst,
            submission_sha256,
            ..
        } => format!(
            "received {} job from {analyst} (submission {})",
            kind.map_or("none", treaty_proto::JobKind::name),
            short(submission_sha256)
        ),
        AuditEvent::PolicyDecision {
            admitted: true,
            needs_approval: true,
            policy_sha256,
            ..
        } => format!(
            "policy holds it for a human approval (version {})",
            short(policy_sha256)
        ),
        AuditEvent::PolicyDecision {
            admitted: true,
            policy_sha256,
            ..
        } => format!("policy admitted (version {})", short(policy_sha256)),
        AuditEvent::PolicyDecision {
            admitted: false,
            policy_sha256,
            reason,
            ..
        } => format!(
            "policy refused: {reason} (version {})",
            short(policy_sha256)
        ),
        AuditEvent::Approval {
            by,
            approved,
            reason,
            policy_sha256,
        } => {
            let verdict = if *approved { "approved" } else { "rejected" };
            let note = if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            };
            format!(
                "{verdict} by {by} under policy {}{note}",
                short(policy_sha256)
            )
        }
        AuditEvent::PartyAnswer {
            party,
            admitted: true,
            policy_sha256,
            approved_by,
            ..
        } => {
            let approval = if approved_by.is_empty() {
                String::new()
            } else {
                format!(", approved by {approved_by}")
            };
            format!(
                "{party} accepted under policy {}{approval}",
                short(policy_sha256)
            )
        }
        AuditEvent::PartyAnswer {
            party,
            admitted: false,
            reason,
            ..
        } => format!("{party} did not accept: {reason}"),
        AuditEvent::ResultStored { party, bytes, .. } => {
            format!("stored {party}'s sealed result ({bytes} B)")
        }
        AuditEvent::ResultsExpired { parties, bytes } => format!(
            "deleted the sealed results of {} ({bytes} B): their retention expired",
            parties.join(", ")
        ),
        AuditEvent::WriterKey { party, public_key } => {
            format!(
                "{party} registered audit key {}…",
                public_key.get(..8).unwrap_or(public_key)
            )
        }
        AuditEvent::HeadRecorded {
            party,
            head_seq,
            head,
        } => format!(
            "recorded {party}'s head at entry {head_seq} ({})",
            short(head)
        ),
        AuditEvent::RosterAccepted {
            version, members, ..
        } => format!("roster version {version} in use: {}", members.join(", ")),
        AuditEvent::ProtocolStart { peers } => {
            format!("protocol started with {}", peers.join(", "))
        }
        AuditEvent::PeerTraffic {
            peer,
            sent_bytes,
            received_bytes,
            ..
        } => format!("→ {peer}: sent {sent_bytes} B, received {received_bytes} B"),
        AuditEvent::Completed {
            outcome,
            rounds,
            reason,
        } => {
            let why = if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            };
            format!("ended {outcome} after {rounds} rounds{why}")
        }
        AuditEvent::ResultSealed { recipient, .. } => format!("result sealed for {recipient}"),
        AuditEvent::TailRecovered { dropped_bytes, .. } => {
            format!("torn last line cut at start ({dropped_bytes} B of a write that never counted)")
        }
        AuditEvent::Checkpoint { .. } => return None,
    })
}

fn show(job: &str, logs: &[(String, PathBuf)], json: bool) -> anyhow::Result<ExitCode> {
    let texts = read_logs(logs)?;
    let mut events: Vec<Line> = Vec::new();
    for (writer, text) in &texts {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let r: AuditRecord = serde_json::from_str(line)
                .with_context(|| format!("{writer}'s log: line {} is malformed", i + 1))?;
            if r.entry.job.as_deref() == Some(job)
                && !matches!(r.entry.event, AuditEvent::Checkpoint { .. })
            {
                events.push(Line {
                    time_ms: r.entry.time_ms,
                    writer: writer.clone(),
                    seq: r.entry.seq,
                    event: r.entry.event,
                });
            }
        }
    }
    events.sort_by(|a, b| (a.time_ms, &a.writer, a.seq).cmp(&(b.time_ms, &b.writer, b.seq)));

    // The summary: duration, each writer's outcome, bytes each party sent, approvals.
    let first = events.first().map_or(0, |e| e.time_ms);
    let duration_ms = events.last().map_or(0, |e| e.time_ms) - first;
    let mut outcomes: BTreeMap<&str, (&str, u64, &str)> = BTreeMap::new();
    let mut sent: BTreeMap<&str, u64> = BTreeMap::new();
    let mut approvals: Vec<serde_json::Value> = Vec::new();
    for e in &events {
        match &e.event {
            AuditEvent::Completed {
                outcome,
                rounds,
                reason,
            } => {
                outcomes.insert(&e.writer, (outcome.name(), *rounds, reason));
            }
            AuditEvent::PeerTraffic { sent_bytes, .. } => {
                *sent.entry(&e.writer).or_default() += sent_bytes;
            }
            AuditEvent::Approval {
                by,
                approved,
                reason,
                policy_sha256,
            } => approvals.push(serde_json::json!({
                "party": e.writer,
                "by": by,
                "approved": approved,
                "policy_sha256": policy_sha256,
                "reason": reason,
            })),
            _ => {}
        }
    }
    // Approvals the coordinator was told of, for parties whose own logs are not given.
    for e in &events {
        if let AuditEvent::PartyAnswer {
            party,
            admitted: true,
            policy_sha256,
            approved_by,
            ..
        } = &e.event
            && !approved_by.is_empty()
            && !approvals.iter().any(|a| a["party"] == party.as_str())
        {
            approvals.push(serde_json::json!({
                "party": party,
                "by": approved_by,
                "approved": true,
                "policy_sha256": policy_sha256,
                "reason": "",
                "reported_by": e.writer,
            }));
        }
    }

    if json {
        let list: Vec<serde_json::Value> = events
            .iter()
            .map(|e| {
                serde_json::json!({
                    "time_ms": e.time_ms,
                    "writer": e.writer,
                    "seq": e.seq,
                    "event": e.event,
                })
            })
            .collect();
        let outcomes: BTreeMap<&str, serde_json::Value> = outcomes
            .iter()
            .map(|(w, (outcome, rounds, reason))| {
                (
                    *w,
                    serde_json::json!({ "outcome": outcome, "rounds": rounds, "reason": reason }),
                )
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "job": job,
                "events": list,
                "summary": {
                    "duration_ms": duration_ms,
                    "outcomes": outcomes,
                    "sent_bytes": sent,
                    "approvals": approvals,
                },
            })
        );
        return Ok(ExitCode::SUCCESS);
    }

    if events.is_empty() {
        println!("no entry of job {job} in these logs");
        return Ok(ExitCode::SUCCESS);
    }
    let width = events.iter().map(|e| e.writer.len()).max().unwrap_or(0);
    println!("job {job}");
    for e in &events {
        if let Some(text) = summary(&e.event) {
            let at = e.time_ms - first;
            println!(
                "+{}.{:03}s  {:<width$}  {text}",
                at / 1000,
                at % 1000,
                e.writer
            );
        }
    }
    println!();
    println!(
        "duration     {}.{:03} s (first to last event)",
        duration_ms / 1000,
        duration_ms % 1000
    );
    for (w, (outcome, rounds, reason)) in &outcomes {
        let why = if reason.is_empty() {
            String::new()
        } else {
            format!(": {reason}")
        };
        println!("outcome      {w:<width$}  {outcome} after {rounds} rounds{why}");
    }
    for (w, bytes) in &sent {
        println!("sent         {w:<width$}  {bytes} B");
    }
    for a in &approvals {
        let verdict = if a["approved"] == true {
            "approved"
        } else {
            "rejected"
        };
        let policy = a["policy_sha256"].as_str().unwrap_or_default();
        let via = a["reported_by"]
            .as_str()
            .map(|w| format!(" (as reported to the {w})"))
            .unwrap_or_default();
        println!(
            "approval     {:<width$}  {verdict} by {} under policy {}…{via}",
            a["party"].as_str().unwrap_or_default(),
            a["by"].as_str().unwrap_or_default(),
            policy.get(..8).unwrap_or(policy),
        );
    }
    Ok(ExitCode::SUCCESS)
}
