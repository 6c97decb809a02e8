//! `stats` jobs at this node: the checks of a job over its own rows, the local aggregates it
//! computes from them (filters applied, values in fixed point), and the protocols that combine
//! them — horizontal (`run`, every party's rows) or, with a join, vertical (`run_joined`,
//! one row per person across the parties' columns).

use rand_chacha::ChaCha20Rng;
use treaty_mpc::fixed::FixedPoint;
use treaty_mpc::seeds::SessionContext;
use treaty_mpc::stats::LocalAggregates;
use treaty_mpc::transport::Channel;
use treaty_mpc::vstats::{self, VerticalInput};
use treaty_proto::v1 as pb;

use crate::PartyError;
use crate::checks::{check_file, check_numeric};
use crate::config::PartyConfig;
use crate::dataset::{self, DatasetConfig, Predicate};
use crate::join::{JoinPlan, JoinTable, predicate};
use crate::refusal::{ColumnRole, Refusal};

/// Checks a `stats` job over this party's own rows: numeric columns, filters that do not single
/// out records, a usable fixed-point encoding and a readable file.
pub(crate) fn check(
    cfg: &PartyConfig,
    spec: &pb::JobSpec,
    stats: &pb::StatsJob,
    ds: &DatasetConfig,
    dataset: &str,
) -> Result<(), PartyError> {
    for c in &stats.columns {
        check_numeric(ds, dataset, c)?;
    }
    for f in stats.filter.iter().chain(&stats.filters) {
        if f.column == ds.id_column {
            return Err(Refusal::FilterOnIds {
                column: f.column.clone(),
            }
            .into());
        }
        let decl = ds.column(&f.column).ok_or_else(|| {
            PartyError::from(Refusal::NoColumn {
                dataset: dataset.to_string(),
                column: f.column.clone(),
                role: ColumnRole::Filter,
            })
        })?;
        if matches!(predicate(f)?, Predicate::Range { .. }) && !decl.ty.is_numeric() {
            return Err(Refusal::RangeNotNumeric {
                column: f.column.clone(),
                ty: decl.ty,
            }
            .into());
        }
    }
    FixedPoint::new(spec.frac_bits)?;
    check_file(cfg, ds)
}

/// Reads the job's columns, applies the filter and aggregates in fixed point. CPU-bound: call it
/// off the async runtime.
pub fn local(
    cfg: &PartyConfig,
    ds: &DatasetConfig,
    stats: &pb::StatsJob,
    fixed: FixedPoint,
) -> Result<LocalAggregates, PartyError> {
    let filters: Vec<&pb::Filter> = stats.filter.iter().chain(&stats.filters).collect();
    let mut wanted: Vec<&str> = stats.columns.iter().map(String::as_str).collect();
    wanted.extend(filters.iter().map(|f| f.column.as_str()));
    let table = dataset::load_columns(ds, &cfg.resolve(&ds.path), &wanted)?;
    // The AND of every filter (`None`: no filter).
    let mut mask: Option<Vec<bool>> = None;
    for f in filters {
        let m = dataset::filter_mask(&table, ds, &f.column, &predicate(f)?)?;
        mask = Some(match mask {
            None => m,
            Some(prev) => prev.iter().zip(&m).map(|(a, b)| *a && *b).collect(),
        });
    }
    let mut encoded = Vec::with_capacity(stats.columns.len());
    for column in &stats.columns {
        let values = table.numeric(column).ok_or_else(|| Refusal::NoColumn {
            dataset: ds.name.clone(),
            column: column.clone(),
            role: ColumnRole::Value,
        })?;
        let mut out = Vec::with_capacity(values.len());
        for (i, &x) in values.iter().enumerate() {
            if mask.as_ref().is_some_and(|m| !m[i]) {
                continue;
            }
            out.push(fixed.encode_signed(x).map_err(|e| PartyError::Value {
                dataset: ds.name.clone(),
                column: column.clone(),
                row: i + 1,
                source: e,
            })?);
        }
        encoded.push(out);
    }
    Ok(LocalAggregates::from_encoded(&encoded)?)
}

/// The horizontal `stats` protocol on `transport` (the job's `stats` channel) over this party's
/// `local` aggregates; returns this party's share of the result (the bytes sealed to the
/// analyst).
///
/// # Errors
/// The protocol's.
pub(crate) async fn run(
    transport: &Channel,
    job_id: &str,
    party_ids: &[String],
    stats: &pb::StatsJob,
    local: &LocalAggregates,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<u8>, PartyError> {
    let ctx = SessionContext { job_id, party_ids };
    let share = treaty_mpc::stats::run(transport, ctx, local, &stats.columns, rng).await?;
    Ok(share.to_bytes())
}

/// The vertical `stats` protocol of a job with a join, on `transport` (the job's `join`
/// channel): this party's `aligned` rows (none at the helper) laid out by the join's `plan`;
/// returns this party's share of the result. A data party declaring more aligned rows than
/// `max_rows` fails the job at the row agreement.
///
/// # Errors
/// A value out of the fixed-point range; the protocol's errors.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_joined(
    transport: &Channel,
    job_id: &str,
    party_ids: &[String],
    plan: &JoinPlan,
    aligned: Option<(JoinTable, Vec<usize>)>,
    fixed: FixedPoint,
    max_rows: usize,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<u8>, PartyError> {
    let input = match aligned {
        None => VerticalInput::helper(),
        Some((table, matched)) => table.input(&matched, job_id, fixed)?,
    }
    .with_max_rows(max_rows);
    let ctx = SessionContext { job_id, party_ids };
    let out = vstats::run(
        transport,
        ctx,
        &plan.layout,
        &input,
        &plan.column_names,
        fixed,
        rng,
    )
    .await?;
    Ok(out.share.to_bytes())
}
