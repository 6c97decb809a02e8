//! `treaty bench psi`: two-party ECDH-PSI ([`treaty_mpc::psi`]) between two processes.
//!
//! Per case each party generates its own ids once, untimed
//! ([`treaty_sandbox::demo_psi::synthetic_party_ids`]: `n` ids that look like patient numbers, shuffled,
//! `round(overlap·n)` of them also held by the other party; neither process holds the other's
//! list). Every run is a barrier round (untimed), then one whole [`psi::run`] with a fresh secret
//! exponent, timed at each party from its call to its result. The run's time is the slowest
//! party's. The intersection size each party learns is checked against the known overlap: a wrong
//! size fails the benchmark.

use std::io::Write;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use treaty_mpc::psi::{self, PsiMode, PsiParams};
use treaty_mpc::seeds::os_rng;
use treaty_mpc::transport::{Channel, PartyIndex, exchange};

use super::{
    BenchPlan, JOB_ID, Reported, Reporter, RunReports, Runs, TRANSPORT, child_err, last_peak_rss,
    median, median_cpu_seconds, process_cpu_seconds,
};
use crate::BenchError;

use treaty_sandbox::demo_psi::{shared_ids, synthetic_party_ids};

/// Number of parties (two-party PSI).
pub const PARTIES: usize = 2;

/// Largest set size per party a case accepts (the protocol's limit is `2^32`).
pub const MAX_IDS: usize = 1 << 32;

/// Seed of the synthetic ids (the same sets in every run and on every machine).
const SEED: u64 = 42;

/// Who learns what, as `--mode` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PsiBenchMode {
    /// Party 0 learns the intersection ([`PsiMode::IntersectionTo`]).
    One,
    /// Both learn it ([`PsiMode::IntersectionToBoth`]).
    Both,
    /// Party 0 learns its size only ([`PsiMode::CardinalityTo`]).
    Size,
}

impl PsiBenchMode {
    /// Every mode, in `--mode` order.
    pub const ALL: [Self; 3] = [Self::One, Self::Both, Self::Size];

    /// The `--mode` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::One => "one",
            Self::Both => "both",
            Self::Size => "size",
        }
    }

    /// The mode named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The protocol mode.
    pub fn psi_mode(self) -> PsiMode {
        match self {
            Self::One => PsiMode::IntersectionTo(0),
            Self::Both => PsiMode::IntersectionToBoth,
            Self::Size => PsiMode::CardinalityTo(0),
        }
    }
}

impl std::fmt::Display for PsiBenchMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One PSI case: `n` ids per party, a share `overlap` of them common, one mode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PsiCase {
    n: usize,
    overlap: f64,
    mode: PsiBenchMode,
}

impl PsiCase {
    /// A case; refused unless `1 ≤ n ≤` [`MAX_IDS`] and `0 ≤ overlap ≤ 1`.
    pub fn new(n: usize, overlap: f64, mode: PsiBenchMode) -> Result<Self, BenchError> {
        if n == 0 || n > MAX_IDS {
            return Err(BenchError::Failed(format!(
                "psi: {n} ids per party; must be 1 to 2^32"
            )));
        }
        if !(0.0..=1.0).contains(&overlap) {
            return Err(BenchError::Failed(format!(
                "psi: overlap {overlap} must be within [0, 1]"
            )));
        }
        Ok(Self { n, overlap, mode })
    }

    /// Every combination, modes outermost.
    pub fn grid(
        ns: &[usize],
        overlap: f64,
        modes: &[PsiBenchMode],
    ) -> Result<Vec<Self>, BenchError> {
        modes
            .iter()
            .flat_map(|&m| ns.iter().map(move |&n| Self::new(n, overlap, m)))
            .collect()
    }

    /// Ids per party.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The mode.
    pub fn mode(&self) -> PsiBenchMode {
        self.mode
    }

    /// The intersection size the parties must find.
    pub fn expected(&self) -> u64 {
        shared_ids(self.n, self.overlap) as u64
    }
}

/// One case's figures, as `treaty bench psi --json` prints them (one object per line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PsiResult {
    /// `"psi"`.
    pub op: &'static str,
    /// Ids per party.
    pub n: usize,
    /// Who learns what.
    pub mode: PsiBenchMode,
    /// Share of each party's ids the other holds too.
    pub overlap: f64,
    /// Median over the timed runs of the slowest party's time, in seconds.
    pub seconds: f64,
    /// Every timed run's time (slowest party), in run order.
    pub run_seconds: Vec<f64>,
    /// Rounds of one run (the most any party counted).
    pub rounds: u64,
    /// Most payload bytes any party sent in one run.
    pub bytes_per_party: u64,
    /// Payload bytes both parties sent in one run (the most over the runs).
    pub bytes_total: u64,
    /// Intersection size the parties found (checked against `round(overlap·n)`).
    pub intersection: u64,
    /// Each party's CPU time for one run (median over the runs; `null` where unavailable; see
    /// [`super::process_cpu_seconds`]). The curve work alone is about `n` own and `n` peer
    /// points' worth per party, whatever the machine's load.
    pub cpu_seconds: Vec<Option<f64>>,
    /// Peak resident set size of each party process up to the end of this case, in bytes
    /// (`null` where unavailable; see [`super::peak_rss_bytes`]).
    pub peak_rss_bytes: Vec<Option<u64>>,
    /// Timed runs.
    pub repeat: usize,
    /// Untimed runs before them.
    pub warmup: usize,
    /// Number of parties (processes).
    pub parties: usize,
    /// [`TRANSPORT`].
    pub transport: &'static str,
}

/// The figures of one case from its complete runs; fails, naming the party, if one found another
/// intersection size than the case's (or reported one it should not learn).
pub(super) fn summarise(
    case: &PsiCase,
    plan: &BenchPlan,
    runs: &[RunReports],
) -> Result<PsiResult, BenchError> {
    let expected = case.expected();
    let mode = case.mode.psi_mode();
    for (run, reports) in runs.iter().enumerate() {
        for (p, report) in reports.iter().enumerate() {
            let found = report.as_ref().and_then(|r| r.intersection);
            let want = mode.learns_size(p).then_some(expected);
            if found != want {
                return Err(child_err(
                    p,
                    format!(
                        "found an intersection of {found:?} in timed run {run} of psi n={} \
                         mode={}; expected {want:?}",
                        case.n, case.mode
                    ),
                ));
            }
        }
    }
    let per_party = || runs.iter().flatten().flatten();
    let run_seconds = super::run_seconds(runs);
    Ok(PsiResult {
        op: "psi",
        n: case.n,
        mode: case.mode,
        overlap: case.overlap,
        seconds: median(&run_seconds),
        run_seconds,
        rounds: per_party().map(|m| m.rounds).max().unwrap_or(0),
        bytes_per_party: per_party().map(|m| m.bytes_sent).max().unwrap_or(0),
        bytes_total: runs
            .iter()
            .map(|r| r.iter().flatten().map(|m| m.bytes_sent).sum())
            .max()
            .unwrap_or(0),
        intersection: expected,
        cpu_seconds: median_cpu_seconds(runs),
        peak_rss_bytes: last_peak_rss(runs),
        repeat: plan.repeat,
        warmup: plan.warmup,
        parties: PARTIES,
        transport: TRANSPORT,
    })
}

/// This party's side of every case over `transport`.
pub(super) async fn run_cases<W: Write>(
    transport: &Channel,
    cases: &[PsiCase],
    runs: Runs,
    out: &mut Reporter<W>,
) -> Result<(), BenchError> {
    let me: PartyIndex = transport.me();
    let mut rng = os_rng()?;
    for (c, case) in cases.iter().enumerate() {
        let case = PsiCase::new(case.n, case.overlap, case.mode)?;
        let ids = synthetic_party_ids(me, case.n, case.overlap, SEED);
        for run in runs.iter() {
            // Both parties start the clock within one message of each other.
            let ch = transport.child("run");
            exchange(&ch, |_| Vec::new()).await?;
            let params = PsiParams::new(JOB_ID, case.mode.psi_mode());
            let before = transport.counters().snapshot();
            let cpu_start = process_cpu_seconds();
            let start = Instant::now();
            let outcome = psi::run(&ch, &params, &ids, &mut rng, |_| {}).await?;
            let elapsed = start.elapsed();
            let traffic = transport.counters().snapshot().since(&before);
            if let Some(run) = run {
                let report = Reported::new(elapsed, traffic, cpu_start, outcome.size);
                out.run(c, run, report)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Workload;
    use super::*;

    fn plan(case: PsiCase) -> BenchPlan {
        BenchPlan {
            workload: Workload::Psi(vec![case]),
            repeat: 2,
            warmup: 0,
            timeout: std::time::Duration::from_secs(1),
        }
    }

    fn rep(seconds: f64, bytes_sent: u64, intersection: Option<u64>) -> Option<Reported> {
        Some(Reported {
            seconds,
            rounds: 3,
            bytes_sent,
            intersection,
            cpu_seconds: Some(seconds),
            peak_rss: Some(1 << 20),
            ..Reported::default()
        })
    }

    #[test]
    fn a_case_is_summarised_and_its_intersection_checked() {
        let case = PsiCase::new(1000, 0.3, PsiBenchMode::One).unwrap();
        let runs = [
            vec![rep(1.0, 500, Some(300)), rep(2.0, 400, None)],
            vec![rep(4.0, 500, Some(300)), rep(3.0, 400, None)],
        ];
        let r = summarise(&case, &plan(case), &runs).unwrap();
        assert_eq!(r.run_seconds, [2.0, 4.0]);
        assert_eq!(r.seconds, 3.0);
        assert_eq!((r.bytes_per_party, r.bytes_total), (500, 900));
        assert_eq!((r.intersection, r.rounds), (300, 3));
        assert_eq!(r.peak_rss_bytes, [Some(1 << 20), Some(1 << 20)]);
        assert_eq!(r.cpu_seconds, [Some(2.5), Some(2.5)]);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["op"], "psi");
        assert_eq!(json["mode"], "one");

        // A wrong size, or a size the party should not have learnt, names the party.
        for (bad, who) in [
            ([Some(299), None], "party-0"),
            ([Some(300), Some(300)], "party-1"),
        ] {
            let runs = [
                vec![rep(1.0, 500, Some(300)), rep(2.0, 400, None)],
                vec![rep(1.0, 500, bad[0]), rep(1.0, 400, bad[1])],
            ];
            let err = summarise(&case, &plan(case), &runs).unwrap_err();
            assert!(err.to_string().contains(who), "{err}");
        }
    }

    #[test]
    fn cases_are_checked() {
        assert!(PsiCase::new(0, 0.5, PsiBenchMode::Both).is_err());
        assert!(PsiCase::new(10, 1.5, PsiBenchMode::Both).is_err());
        assert!(PsiCase::new(10, f64::NAN, PsiBenchMode::Both).is_err());
        let grid = PsiCase::grid(&[10, 20], 0.5, &[PsiBenchMode::One, PsiBenchMode::Size]).unwrap();
        assert_eq!(grid.len(), 4);
        assert_eq!((grid[1].n(), grid[1].mode()), (20, PsiBenchMode::One));
        assert_eq!(grid[3].expected(), 10);
        assert_eq!(PsiBenchMode::from_name("size"), Some(PsiBenchMode::Size));
    }
}
