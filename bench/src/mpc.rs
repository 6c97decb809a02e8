//! `treaty bench mpc`: the rep3 workloads of [`treaty_mpc::rep3::workload`] between three
//! processes, all cases on one [`Rep3Session`]. Each run shares its inputs (untimed), then
//! [`Case::measure`] times the operation after a barrier round.

use std::io::Write;

use serde::{Deserialize, Serialize};
use treaty_mpc::rep3::Rep3Session;
use treaty_mpc::rep3::workload::{self, Case, Op, Shape};
use treaty_mpc::seeds::{SessionContext, os_rng};
use treaty_mpc::transport::Channel;

use super::{
    BenchPlan, JOB_ID, Reported, Reporter, RunReports, Runs, TRANSPORT, last_peak_rss, median,
    median_cpu_seconds, process_cpu_seconds,
};
use crate::BenchError;

/// Number of parties (rep3).
pub const PARTIES: usize = 3;

/// One case's figures, as `treaty bench mpc --json` prints them (one object per line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseResult {
    /// The operation ([`Op::name`]).
    pub op: Op,
    /// Output elements (`m·n` for a matrix product).
    pub n: usize,
    /// `[m, k, n]` of a matrix product `m×k · k×n`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<[usize; 3]>,
    /// Median over the timed runs of the slowest party's time for the operation, in seconds.
    pub seconds: f64,
    /// Communication rounds of the operation.
    pub rounds: u64,
    /// Most payload bytes any party sent during the operation.
    pub bytes_per_party: u64,
    /// `bytes_per_party / n`.
    pub bytes_per_element: f64,
    /// Every timed run's time (slowest party), in run order.
    pub run_seconds: Vec<f64>,
    /// Timed runs.
    pub repeat: usize,
    /// Untimed runs before them.
    pub warmup: usize,
    /// Fixed-point fractional bits of the inputs.
    pub frac_bits: u32,
    /// Each party's CPU time for the operation (median over the runs; `null` where unavailable; see
    /// [`super::process_cpu_seconds`]).
    pub cpu_seconds: Vec<Option<f64>>,
    /// Peak resident set size of each party process up to the end of this case, in bytes
    /// (`null` where unavailable; see [`super::peak_rss_bytes`]).
    pub peak_rss_bytes: Vec<Option<u64>>,
    /// Number of parties (processes).
    pub parties: usize,
    /// [`TRANSPORT`].
    pub transport: &'static str,
}

/// A case on the wire (checked again with [`Case::new`] by the child).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct WireCase {
    op: Op,
    shape: Shape,
}

impl From<&Case> for WireCase {
    fn from(c: &Case) -> Self {
        Self {
            op: c.op(),
            shape: c.shape(),
        }
    }
}

/// The figures of one case from its complete runs.
pub(super) fn summarise(case: &Case, plan: &BenchPlan, runs: &[RunReports]) -> CaseResult {
    let per_party = || runs.iter().flatten().flatten();
    let run_seconds = super::run_seconds(runs);
    let rounds = per_party().map(|m| m.rounds).max().unwrap_or(0);
    let bytes_per_party = per_party().map(|m| m.bytes_sent).max().unwrap_or(0);
    let n = case.out_len();
    CaseResult {
        op: case.op(),
        n,
        shape: match case.shape() {
            Shape::Matrix { m, k, n } => Some([m, k, n]),
            Shape::Vector { .. } => None,
        },
        seconds: median(&run_seconds),
        rounds,
        bytes_per_party,
        bytes_per_element: bytes_per_party as f64 / n as f64,
        run_seconds,
        repeat: plan.repeat,
        warmup: plan.warmup,
        frac_bits: workload::FRAC_BITS,
        cpu_seconds: median_cpu_seconds(runs),
        peak_rss_bytes: last_peak_rss(runs),
        parties: PARTIES,
        transport: TRANSPORT,
    }
}

/// This party's side of every case, on one rep3 session over `transport`.
pub(super) async fn run_cases<W: Write>(
    transport: &Channel,
    party_ids: &[String],
    cases: &[WireCase],
    runs: Runs,
    out: &mut Reporter<W>,
) -> Result<(), BenchError> {
    let cases = cases
        .iter()
        .map(|c| Case::new(c.op, c.shape))
        .collect::<Result<Vec<_>, _>>()?;
    let ctx = SessionContext {
        job_id: JOB_ID,
        party_ids,
    };
    let mut s = Rep3Session::setup(transport, ctx, &mut os_rng()?).await?;
    let me = transport.me();
    for (c, case) in cases.iter().enumerate() {
        let inputs = case.inputs_for(me);
        for run in runs.iter() {
            let shared = case.share(&mut s, &inputs).await?;
            // The CPU time includes the barrier, which waits (mostly idle) for the peers.
            let cpu_start = process_cpu_seconds();
            let (result, m) = case.measure(&mut s, &shared).await?;
            drop(result);
            if let Some(run) = run {
                out.run(c, run, Reported::new(m.elapsed, m.traffic, cpu_start, None))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_is_summarised_by_its_slowest_party_and_largest_sender() {
        let case = Case::new(Op::Matmul, Shape::Matrix { m: 10, k: 3, n: 2 }).unwrap();
        let rep = |seconds, bytes_sent| {
            Some(Reported {
                seconds,
                rounds: 2,
                bytes_sent,
                intersection: None,
                cpu_seconds: Some(seconds / 2.0),
                peak_rss: Some(bytes_sent * 1000),
                ..Reported::default()
            })
        };
        let runs = [
            vec![rep(1.0, 160), rep(3.0, 150), rep(2.0, 160)],
            vec![rep(5.0, 160), rep(1.0, 150), rep(1.0, 160)],
            vec![rep(2.0, 160), rep(2.5, 150), rep(1.0, 160)],
        ];
        let plan = BenchPlan {
            workload: super::super::Workload::Mpc(vec![case]),
            repeat: 3,
            warmup: 1,
            timeout: std::time::Duration::from_secs(1),
        };
        let r = summarise(&case, &plan, &runs);
        assert_eq!(r.run_seconds, vec![3.0, 5.0, 2.5]);
        assert_eq!(r.seconds, 3.0);
        assert_eq!((r.rounds, r.bytes_per_party, r.n), (2, 160, 20));
        assert_eq!(r.shape, Some([10, 3, 2]));
        assert_eq!(r.cpu_seconds, [Some(1.0), Some(1.25), Some(0.5)]);
        assert_eq!(
            r.peak_rss_bytes,
            [Some(160_000), Some(150_000), Some(160_000)]
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["op"], "matmul");
        assert_eq!(json["transport"], "grpc+tls");
    }
}
