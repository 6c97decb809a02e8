//! Human-readable and JSON renderings.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use treaty_analyst::PsiReport;
use treaty_bench::{BenchResult, Workload};
use treaty_job::Computation;
use treaty_mpc::stats::StatsResult;
use treaty_proto::v1::{self as pb, JobState};

pub(crate) fn state(s: JobState) -> String {
    treaty_analyst::client::state_name(s)
}

fn party_state(s: pb::PartyJobState) -> String {
    s.as_str_name()
        .trim_start_matches("PARTY_JOB_STATE_")
        .to_ascii_lowercase()
}

fn kind(job: &pb::Job) -> &'static str {
    match job.spec.as_ref() {
        None => "?",
        Some(s) if matches!(Computation::of(s), Ok(Computation::JoinStats { .. })) => "stats-join",
        Some(s) => treaty_job::validate::job_kind(s),
    }
}

pub(crate) fn job_json(job: &pb::Job) -> Value {
    json!({
        "id": job.id,
        "kind": kind(job),
        "name": job.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
        "analyst": job.analyst,
        "state": state(job.state()),
        "reason": job.reason,
        "submitted_at_ms": job.submitted_at_ms,
        "started_at_ms": job.started_at_ms,
        "finished_at_ms": job.finished_at_ms,
        "parties": job.parties.iter().map(|p| json!({
            "party": p.party,
            "state": party_state(p.state()),
            "progress": p.progress,
            "rounds": p.rounds,
            "bytes_sent": p.bytes_sent,
            "bytes_received": p.bytes_received,
            "reason": p.reason,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn party_json(p: &pb::PartyInfo) -> Value {
    json!({
        "id": p.id,
        "endpoint": p.endpoint,
        "online": p.online,
        "tls_cert_sha256": hex::encode(&p.tls_cert_sha256),
        "datasets": p.datasets.iter().map(|d| json!({
            "name": d.name,
            "id_column": d.id_column,
            "columns": d.columns.iter().map(|c| json!({
                "name": c.name,
                "type": c.r#type().as_str_name().trim_start_matches("COLUMN_TYPE_").to_ascii_lowercase(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn parties(parties: &[pb::PartyInfo]) {
    if parties.is_empty() {
        println!("no parties registered");
    }
    for p in parties {
        println!(
            "{:<16} {:<8} {}",
            p.id,
            if p.online { "online" } else { "offline" },
            p.endpoint
        );
        for d in &p.datasets {
            let cols: Vec<String> = d
                .columns
                .iter()
                .map(|c| {
                    format!(
                        "{}:{}",
                        c.name,
                        c.r#type()
                            .as_str_name()
                            .trim_start_matches("COLUMN_TYPE_")
                            .to_ascii_lowercase()
                    )
                })
                .collect();
            println!("    dataset {:<12} {}", d.name, cols.join(", "));
        }
    }
}

pub(crate) fn jobs(jobs: &[pb::Job]) {
    if jobs.is_empty() {
        println!("no jobs");
    }
    for j in jobs {
        let parties: Vec<&str> = j.parties.iter().map(|p| p.party.as_str()).collect();
        println!(
            "{:<22} {:<9} {:<10} {:<12} {:<28} {}",
            j.id,
            kind(j),
            state(j.state()),
            j.analyst,
            parties.join(","),
            j.reason
        );
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_string(), |v| format!("{v:.6}"))
}

/// A `psi` job's reports, one line per party.
pub(crate) fn psi(reports: &[(String, PsiReport)]) {
    println!(
        "{:<16} {:>12} {:>12} {:>14}  stored at the party",
        "party", "own ids", "peer ids", "intersection"
    );
    for (party, r) in reports {
        println!(
            "{party:<16} {:>12} {:>12} {:>14}  {}",
            r.own_set_size,
            r.peer_set_size,
            r.intersection_size
                .map_or_else(|| "-".to_string(), |s| s.to_string()),
            if r.stored_as.is_empty() {
                "-"
            } else {
                &r.stored_as
            }
        );
    }
}

/// A `psi` job's reports as JSON.
pub(crate) fn psi_json(reports: &[(String, PsiReport)]) -> Value {
    Value::Array(
        reports
            .iter()
            .map(|(party, r)| {
                json!({
                    "party": party,
                    "own_set_size": r.own_set_size,
                    "peer_set_size": r.peer_set_size,
                    "intersection_size": r.intersection_size,
                    "stored_as": r.stored_as,
                })
            })
            .collect(),
    )
}

pub(crate) fn stats(r: &StatsResult) {
    println!("rows matched: {}", r.count);
    println!(
        "{:<18} {:>22} {:>16} {:>22} {:>16}",
        "column", "sum", "mean", "variance", "stddev"
    );
    for c in &r.columns {
        println!(
            "{:<18} {:>22.6} {:>16} {:>22} {:>16}",
            c.column,
            c.sum,
            opt(c.mean),
            opt(c.variance),
            opt(c.stddev)
        );
    }
}

/// Column titles of a `bench` table.
pub(crate) fn bench_header(workload: &Workload) -> String {
    match workload {
        Workload::Mpc(_) => format!(
            "{:<10} {:>9} {:<16} {:>10} {:>10} {:>10} {:>7} {:>14} {:>8}",
            "op", "n", "shape", "median s", "min s", "max s", "rounds", "bytes/party", "B/elem"
        ),
        Workload::Psi(_) => format!(
            "{:<5} {:>10} {:>10} {:>10} {:>10} {:>7} {:>14} {:>14} {:>10} {:>16} {:>18}",
            "mode",
            "n",
            "median s",
            "min s",
            "max s",
            "rounds",
            "bytes/party",
            "bytes total",
            "common",
            "CPU s/party",
            "peak RSS MiB/party"
        ),
        Workload::Train(_) => format!(
            "{:<8} {:>9} {:>5} {:>6} {:>6} {:>6} {:>10} {:>10} {:>10} {:>7} {:>14} {:>14} {:>10} {:>18} {:>18}",
            "model",
            "rows",
            "feat",
            "batch",
            "epochs",
            "steps",
            "median s",
            "min s",
            "max s",
            "rounds",
            "bytes/party",
            "bytes total",
            "max w err",
            "CPU s/party",
            "peak RSS MiB/party"
        ),
        Workload::Score(_) => format!(
            "{:<6} {:>9} {:>5} {:>10} {:>12} {:>10} {:>10} {:>10} {:>7} {:>14} {:>10} {:>5} {:>18} {:>18}",
            "mode",
            "n",
            "feat",
            "median s",
            "records/s",
            "median ms",
            "p99 ms",
            "mean ms",
            "rounds",
            "bytes/party",
            "max p err",
            "off",
            "CPU s/party",
            "peak RSS MiB/party"
        ),
    }
}

/// One `bench` case as a table row.
pub(crate) fn bench_row(r: &BenchResult) -> String {
    match r {
        BenchResult::Mpc(r) => {
            let shape = r
                .shape
                .map_or_else(|| "-".to_string(), |[m, k, n]| format!("{m}x{k}x{n}"));
            let (min, max) = min_max(&r.run_seconds);
            format!(
                "{:<10} {:>9} {:<16} {:>10.4} {:>10.4} {:>10.4} {:>7} {:>14} {:>8.2}",
                r.op.name(),
                r.n,
                shape,
                r.seconds,
                min,
                max,
                r.rounds,
                r.bytes_per_party,
                r.bytes_per_element
            )
        }
        BenchResult::Psi(r) => {
            let (min, max) = min_max(&r.run_seconds);
            let (cpu, rss) = (cpu(&r.cpu_seconds), rss(&r.peak_rss_bytes));
            format!(
                "{:<5} {:>10} {:>10.4} {:>10.4} {:>10.4} {:>7} {:>14} {:>14} {:>10} {:>16} {:>18}",
                r.mode.name(),
                r.n,
                r.seconds,
                min,
                max,
                r.rounds,
                r.bytes_per_party,
                r.bytes_total,
                r.intersection,
                cpu,
                rss
            )
        }
        BenchResult::Train(r) => {
            let (min, max) = min_max(&r.run_seconds);
            format!(
                "{:<8} {:>9} {:>5} {:>6} {:>6} {:>6} {:>10.3} {:>10.3} {:>10.3} {:>7} {:>14} {:>14} {:>10} {:>18} {:>18}",
                r.model,
                r.rows,
                r.features,
                r.batch,
                r.epochs,
                r.steps,
                r.seconds,
                min,
                max,
                r.rounds,
                r.bytes_per_party,
                r.bytes_total,
                error(r.max_weight_error),
                cpu(&r.cpu_seconds),
                rss(&r.peak_rss_bytes)
            )
        }
        BenchResult::ScoreBatch(r) => format!(
            "{:<6} {:>9} {:>5} {:>10.3} {:>12.0} {:>10} {:>10} {:>10} {:>7} {:>14} {:>10} {:>5} {:>18} {:>18}",
            r.mode,
            r.records,
            r.features,
            r.seconds,
            r.records_per_second,
            "-",
            "-",
            "-",
            r.rounds,
            r.bytes_per_party,
            error(r.max_score_error),
            r.scores_off.map_or_else(|| "n/a".into(), |n| n.to_string()),
            cpu(&r.cpu_seconds),
            rss(&r.peak_rss_bytes)
        ),
        BenchResult::ScoreSingle(r) => format!(
            "{:<6} {:>9} {:>5} {:>10} {:>12} {:>10.3} {:>10.3} {:>10.3} {:>7} {:>14} {:>10} {:>5} {:>18} {:>18}",
            r.mode,
            r.requests,
            r.features,
            "-",
            "-",
            r.median_ms,
            r.p99_ms,
            r.mean_ms,
            r.rounds,
            r.bytes_per_party,
            error(r.max_score_error),
            r.scores_off.map_or_else(|| "n/a".into(), |n| n.to_string()),
            cpu(&r.cpu_seconds),
            rss(&r.peak_rss_bytes)
        ),
    }
}

/// Per party CPU seconds, `a / b / c`.
fn cpu(seconds: &[Option<f64>]) -> String {
    let v: Vec<String> = seconds
        .iter()
        .map(|s| s.map_or_else(|| "n/a".into(), |s| format!("{s:.2}")))
        .collect();
    v.join(" / ")
}

/// Per party peak RSS in MiB, `a / b / c`.
fn rss(bytes: &[Option<u64>]) -> String {
    let v: Vec<String> = bytes
        .iter()
        .map(|b| b.map_or_else(|| "n/a".into(), |b| format!("{:.0}", b as f64 / MIB)))
        .collect();
    v.join(" / ")
}

/// An error figure, or `n/a`.
fn error(e: Option<f64>) -> String {
    e.map_or_else(|| "n/a".into(), |e| format!("{e:.2e}"))
}

const MIB: f64 = 1024.0 * 1024.0;

fn min_max(runs: &[f64]) -> (f64, f64) {
    let min = runs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = runs.iter().copied().fold(0.0, f64::max);
    (min, max)
}

/// A live progress bar for `watch`.
pub(crate) struct JobBar {
    bar: ProgressBar,
}

impl JobBar {
    pub(crate) fn new() -> Self {
        Self::shown(true)
    }

    /// A bar that draws only if `show` (otherwise every update is a no-op).
    pub(crate) fn shown(show: bool) -> Self {
        let bar = if show {
            ProgressBar::new(1000)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {percent:>3}% {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self { bar }
    }

    pub(crate) fn update(&mut self, job: &pb::Job) {
        let n = job.parties.len().max(1) as f64;
        let progress: f64 = job.parties.iter().map(|p| p.progress).sum::<f64>() / n;
        self.bar.set_position((progress * 1000.0) as u64);
        let parties: Vec<String> = job
            .parties
            .iter()
            .map(|p| format!("{}:{}", p.party, party_state(p.state())))
            .collect();
        self.bar.set_message(format!(
            "{} {} [{}]",
            job.id,
            state(job.state()),
            parties.join(" ")
        ));
    }

    pub(crate) fn finish_silently(self) {
        self.bar.finish_and_clear();
    }

    pub(crate) fn finish(self, job: &pb::Job) {
        self.bar.finish_and_clear();
        let secs = (job.finished_at_ms - job.submitted_at_ms) as f64 / 1000.0;
        println!(
            "{} {} after {secs:.2} s{}",
            job.id,
            state(job.state()),
            if job.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", job.reason)
            }
        );
        for p in &job.parties {
            println!(
                "  {:<16} {:<9} rounds {:>3}  sent {:>10} B  received {:>10} B {}",
                p.party,
                party_state(p.state()),
                p.rounds,
                p.bytes_sent,
                p.bytes_received,
                p.reason
            );
        }
    }
}

/// A `train` job's result for humans: the metric, then the weights if revealed.
pub(crate) fn train(r: &treaty_analyst::TrainResult) {
    println!(
        "model {}: {} aligned rows, {} trained ({} steps, {:.2} s)",
        r.model_id, r.rows, r.train_rows, r.steps, r.train_seconds
    );
    match r.value {
        Some(v) => println!("{} on {} held-out rows: {v:.4}", r.metric, r.holdout_rows),
        None => println!("no evaluation"),
    }
    match &r.weights {
        None => println!("weights: secret-shared at the parties (not revealed)"),
        Some(w) => {
            println!("{:<40} {:>12}", "feature (standardised)", "weight");
            for (name, v) in r.features.iter().zip(w) {
                println!("{name:<40} {v:>12.6}");
            }
            if w.len() > r.features.len() {
                println!("{:<40} {:>12.6}", "(intercept)", w[w.len() - 1]);
            }
        }
    }
}

/// A `score` job's result for humans: the first records, then a summary.
pub(crate) fn score(r: &treaty_analyst::ScoreResult) {
    println!(
        "model {}: {} records scored ({:.3} s on shares)",
        r.model_id, r.rows, r.score_seconds
    );
    println!("{:<24} {:>10} {:>9}", "record", "score", "decision");
    let shown = (r.rows as usize).min(20);
    for i in 0..shown {
        let id = r.ids.get(i).map_or("-", String::as_str);
        let score = r
            .scores
            .as_ref()
            .map_or("-".to_string(), |s| format!("{:.4}", s[i]));
        let decision = r
            .decisions
            .as_ref()
            .map_or("-", |d| if d[i] { "yes" } else { "no" });
        println!("{id:<24} {score:>10} {decision:>9}");
    }
    if r.rows as usize > shown {
        println!("… {} more (use --json for all)", r.rows as usize - shown);
    }
    if let Some(d) = &r.decisions {
        println!(
            "decisions: {} yes of {}",
            d.iter().filter(|x| **x).count(),
            d.len()
        );
    }
}

/// Prints an `fhe-score` result: the first rows, or the aggregate.
pub(crate) fn fhe_score(r: &treaty_analyst::FheScoreResult, rows: usize) {
    println!(
        "model {} ({}): {} claims scored on ciphertexts, release {} ({:.3} s, {:.0} bootstraps \
         per claim at the evaluator)",
        r.model_id, r.model_kind, r.rows, r.release, r.evaluate_seconds, r.bootstraps_per_claim
    );
    if let Some(d) = &r.decisions {
        println!("{:<24} {:>10} {:>9}", "record", "score", "decision");
        let shown = (r.rows as usize).min(rows);
        for i in 0..shown {
            let id = r.ids.get(i).map_or("-", String::as_str);
            let score = r
                .scores
                .as_ref()
                .map_or("-".to_string(), |s| s[i].to_string());
            let decision = if d[i] { "yes" } else { "no" };
            println!("{id:<24} {score:>10} {decision:>9}");
        }
        if r.rows as usize > shown {
            println!("… {} more (use --json for all)", r.rows as usize - shown);
        }
        println!(
            "decisions: {} yes of {}",
            d.iter().filter(|x| **x).count(),
            d.len()
        );
    }
    if let Some(a) = &r.aggregate {
        println!(
            "aggregate, opened from both parties' shares: {} claims, sum of scores {}, mean {:.3}, \
             {} positive decisions",
            a.count, a.sum, a.mean, a.positives
        );
    }
    println!(
        "owner: encrypted in {:.2} s, {} bytes of ciphertext; server key {} ({} bytes, {})",
        r.encrypt_seconds,
        r.ciphertext_bytes,
        r.key_id,
        r.server_key_bytes,
        if r.server_key_sent {
            "sent in this job"
        } else {
            "cached at the evaluator"
        }
    );
}

/// `treaty bench soak`'s report as tables.
pub(crate) fn soak(r: &treaty_bench::soak::SoakReport) {
    let mib = |b: Option<u64>| b.map_or("-".into(), |b| format!("{:.1}", b as f64 / 1048576.0));
    println!(
        "{} jobs by {} analysts ({} in flight each), {} rows per party, {:.1} s",
        r.jobs, r.analysts, r.in_flight, r.rows, r.seconds
    );
    println!(
        "{:<11} {:>5} {:>10} {:>8} {:>8} {:>8}",
        "kind", "jobs", "succeeded", "p50 s", "p99 s", "max s"
    );
    for k in &r.kinds {
        println!(
            "{:<11} {:>5} {:>10} {:>8.2} {:>8.2} {:>8.2}",
            k.kind, k.jobs, k.succeeded, k.p50_seconds, k.p99_seconds, k.max_seconds
        );
    }
    println!(
        "{:<11} {:>5} {:>10} {:>8.2} {:>8.2}",
        "all", r.jobs, r.succeeded, r.p50_seconds, r.p99_seconds
    );
    println!();
    for f in &r.faults {
        println!(
            "fault: {} killed at {:.1} s (after {} jobs), all online again at {:.1} s",
            f.process, f.killed_at, f.after_jobs, f.recovered_at
        );
    }
    println!(
        "{:<12} {:>6} {:>14} {:>8}",
        "process", "lives", "peak RSS MiB", "CPU s"
    );
    for p in &r.processes {
        println!(
            "{:<12} {:>6} {:>14} {:>8}",
            p.process,
            p.lives,
            mib(p.peak_rss_bytes),
            p.cpu_seconds.map_or("-".into(), |c| format!("{c:.1}"))
        );
    }
    println!();
    println!(
        "failed: {} ({} outside a fault); submissions retried: {}; succeeded after the faults: {}",
        r.failed, r.unexpected_failures, r.submit_retries, r.succeeded_after_faults
    );
    for f in &r.failures {
        println!(
            "  {} {} ({}) {}{}: {}",
            f.kind,
            f.job,
            f.analyst,
            f.state,
            if f.during_fault {
                ", during a fault"
            } else {
                ""
            },
            f.reason
        );
    }
    println!(
        "checked against the clear computation: {} results, {} mismatched",
        r.checked,
        r.mismatches.len()
    );
    for m in &r.mismatches {
        println!("  {m}");
    }
    println!(
        "audit: {} logs, {} entries, {}",
        r.audit.logs,
        r.audit.entries,
        if r.audit.failures.is_empty() {
            "all verified".to_string()
        } else {
            format!("{} failures", r.audit.failures.len())
        }
    );
    for f in &r.audit.failures {
        println!("  {f}");
    }
    println!("{}", if r.passed() { "PASSED" } else { "FAILED" });
}
