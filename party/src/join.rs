//! Jobs over vertically split data: the spec's `join` section at a party node.
//!
//! ```text
//!   [join] id_columns = { hospital = "patient_id", insurer = "patient_id" }   (bank: helper)
//!
//!   hospital rows ─┐  PSI (inline, or the stored      ┌─ hospital rows in the common order
//!                  ├─ psi/JOB.ids of an earlier job) ─┤                                     ─► vstats
//!   insurer rows  ─┘                                  └─ insurer rows in the common order
//! ```
//!
//! Each data party lays out its own rows in the intersection's common order (the PSI output
//! order): row `j` is the same record at both parties, rows outside the intersection are dropped.
//! A party whose id column lacks an id of the intersection, or holds one twice, fails the job
//! naming the dataset, the column and the id's position (never the id). Columns and filters name
//! their party (`insurer.claim_amount`); each data party evaluates its own filters locally and
//! encodes its own columns, then [`treaty_mpc::vstats`] computes the statistics with the helper.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use treaty_job::ProblemKind;
use treaty_job::validate::{all_filters, is_job_id, qualified};
use treaty_mpc::fixed::FixedPoint;
use treaty_mpc::psi;
use treaty_mpc::vstats::{DIGEST_LEN, VerticalInput, VerticalLayout};
use treaty_proto::v1::{self as pb, filter};

use crate::PartyError;
use crate::config::PartyConfig;
use crate::dataset::{self, ColumnType, DatasetConfig, Predicate, Table};
use crate::refusal::{ColumnRole, Refusal};

/// What a join job asks of every party, derived from the spec and the job's party order.
#[derive(Debug, Clone)]
pub struct JoinPlan {
    /// Who holds which column and filter (protocol indices).
    pub layout: VerticalLayout,
    /// Per column (job order): its owner's index and the column's name in the owner's dataset.
    pub columns: Vec<(usize, String)>,
    /// Per filter: its owner's index, the column at the owner and the predicate.
    pub filters: Vec<(usize, String, Predicate)>,
    /// Per data party (ascending index): its party id and id column.
    pub id_columns: Vec<(usize, String, String)>,
    /// The earlier `psi` job whose stored intersection aligns the rows (`None`: PSI inline).
    pub psi_job: Option<String>,
    /// The job's column names as written (`party.column`), for results and errors.
    pub column_names: Vec<String>,
}

/// The predicate of a wire filter.
pub fn predicate(f: &pb::Filter) -> Result<Predicate, PartyError> {
    match &f.predicate {
        Some(filter::Predicate::Equals(v)) => Ok(Predicate::Equals(v.clone())),
        Some(filter::Predicate::Range(r)) => Ok(Predicate::Range {
            min: r.min,
            max: r.max,
        }),
        None => Err(Refusal::NoPredicate {
            column: f.column.clone(),
        }
        .into()),
    }
}

impl JoinPlan {
    /// Builds the plan of `spec`'s join for the parties `peers` (in protocol order); refuses what
    /// the coordinator should already have refused. `columns` and `filters` name their party
    /// (`party.column`): a `stats` job's columns and filters ([`Self::for_stats`]), or a `train`
    /// job's features and label.
    pub fn new(
        spec: &pb::JobSpec,
        columns: &[String],
        filters: &[&pb::Filter],
        join: &pb::JoinSpec,
        peers: &[String],
    ) -> Result<Self, PartyError> {
        let reject = |field: &str, kind| Err(Refusal::spec(field, kind).into());
        if peers.len() != 3 {
            return reject(
                "inputs",
                ProblemKind::WrongCount {
                    got: peers.len() as u64,
                    min: 3,
                    max: 3,
                    of: "parties (a join runs on rep3 with exactly 3 parties)",
                },
            );
        }
        if !(2..=3).contains(&join.id_columns.len()) {
            return reject(
                "join.id_columns",
                ProblemKind::WrongCount {
                    got: join.id_columns.len() as u64,
                    min: 2,
                    max: 3,
                    of: "data parties",
                },
            );
        }
        let index = |party: &str| peers.iter().position(|p| p == party);
        let mut id_columns = Vec::new();
        for (party, column) in &join.id_columns {
            let Some(i) = index(party) else {
                return reject(
                    &format!("join.id_columns.{party}"),
                    ProblemKind::NotAnInput {
                        party: party.clone(),
                    },
                );
            };
            id_columns.push((i, party.clone(), column.clone()));
        }
        id_columns.sort();
        let data_parties: Vec<usize> = id_columns.iter().map(|(i, _, _)| *i).collect();
        let owner = |name: &str, what: &str| -> Result<(usize, String), PartyError> {
            let (party, column) = qualified(name).ok_or_else(|| {
                Refusal::spec(
                    what,
                    ProblemKind::NotQualified {
                        name: name.to_string(),
                    },
                )
            })?;
            match index(party).filter(|i| data_parties.contains(i)) {
                Some(i) => Ok((i, column.to_string())),
                None => Err(Refusal::spec(
                    what,
                    ProblemKind::NotADataParty {
                        name: name.to_string(),
                        party: party.to_string(),
                    },
                )
                .into()),
            }
        };
        let column_names = columns.to_vec();
        let columns = columns
            .iter()
            .map(|c| owner(c, "column"))
            .collect::<Result<Vec<_>, _>>()?;
        let filters = filters
            .iter()
            .map(|f| {
                let (i, column) = owner(&f.column, "filter column")?;
                Ok((i, column, predicate(f)?))
            })
            .collect::<Result<Vec<_>, PartyError>>()?;
        let mut filter_parties: Vec<usize> = filters.iter().map(|(i, _, _)| *i).collect();
        filter_parties.sort_unstable();
        filter_parties.dedup();
        let layout = VerticalLayout {
            data_parties,
            column_owners: columns.iter().map(|(i, _)| *i).collect(),
            filter_parties,
        };
        layout.check()?;
        let psi_job = (!join.psi_job.is_empty()).then(|| join.psi_job.clone());
        if let Some(job) = &psi_job
            && !is_job_id(job)
        {
            return reject("join.psi_job", crate::psi::not_a_job_id(job));
        }
        FixedPoint::new(spec.frac_bits)?;
        Ok(Self {
            layout,
            columns,
            filters,
            id_columns,
            psi_job,
            column_names,
        })
    }

    /// The plan of a `stats` job with a join: its columns and all its filters.
    pub fn for_stats(
        spec: &pb::JobSpec,
        stats: &pb::StatsJob,
        join: &pb::JoinSpec,
        peers: &[String],
    ) -> Result<Self, PartyError> {
        let filters: Vec<&pb::Filter> = all_filters(stats).collect();
        Self::new(spec, &stats.columns, &filters, join, peers)
    }

    /// This party's id column, if it holds data in the join.
    pub fn id_column(&self, me: usize) -> Option<&str> {
        self.id_columns
            .iter()
            .find(|(i, _, _)| *i == me)
            .map(|(_, _, c)| c.as_str())
    }

    /// The data parties' indices.
    pub fn data_parties(&self) -> &[usize] {
        &self.layout.data_parties
    }

    /// Checks the plan against this party's dataset before accepting the job: the id column
    /// (text or integers), its value columns (numeric), its filter columns, and the stored
    /// intersection if the join reuses one.
    pub fn check_local(
        &self,
        cfg: &PartyConfig,
        me: usize,
        ds: &DatasetConfig,
    ) -> Result<(), PartyError> {
        let Some(id) = self.id_column(me) else {
            return Ok(());
        };
        let name = &ds.name;
        match ds.column(id) {
            None => {
                return Err(Refusal::NoColumn {
                    dataset: name.clone(),
                    column: id.to_string(),
                    role: ColumnRole::Id,
                }
                .into());
            }
            Some(d) if d.ty == ColumnType::Float => {
                return Err(Refusal::FloatIds {
                    dataset: name.clone(),
                    column: id.to_string(),
                }
                .into());
            }
            Some(_) => {}
        }
        for (_, c) in self.columns.iter().filter(|(i, _)| *i == me) {
            match ds.column(c) {
                None => {
                    return Err(Refusal::NoColumn {
                        dataset: name.clone(),
                        column: c.to_string(),
                        role: ColumnRole::Value,
                    }
                    .into());
                }
                Some(d) if !d.ty.is_numeric() => {
                    return Err(Refusal::NotNumeric {
                        dataset: name.clone(),
                        column: c.to_string(),
                        ty: d.ty,
                    }
                    .into());
                }
                Some(_) => {}
            }
        }
        for (_, c, p) in self.filters.iter().filter(|(i, _, _)| *i == me) {
            let decl = ds.column(c).ok_or_else(|| {
                PartyError::from(Refusal::NoColumn {
                    dataset: name.clone(),
                    column: c.to_string(),
                    role: ColumnRole::Filter,
                })
            })?;
            if c == id || c == &ds.id_column {
                return Err(Refusal::FilterOnIds {
                    column: c.to_string(),
                }
                .into());
            }
            if matches!(p, Predicate::Range { .. }) && !decl.ty.is_numeric() {
                return Err(Refusal::RangeNotNumeric {
                    column: c.to_string(),
                    ty: decl.ty,
                }
                .into());
            }
        }
        if let Some(job) = &self.psi_job {
            let path = crate::psi::intersection_path(cfg, job);
            if !path.is_file() {
                return Err(Refusal::NoIntersection {
                    psi_job: job.to_string(),
                }
                .into());
            }
        }
        Ok(())
    }
}

/// The cells of `column` as ids: text as is, integers in canonical decimal.
pub fn id_strings(table: &Table, dataset: &str, column: &str) -> Result<Vec<String>, PartyError> {
    match (table.text(column), table.numeric(column)) {
        (Some(text), _) => Ok(text.to_vec()),
        (None, Some(numbers)) => Ok(numbers.iter().map(|v| format!("{}", *v as i64)).collect()),
        (None, None) => Err(Refusal::NoColumn {
            dataset: dataset.to_string(),
            column: column.to_string(),
            role: ColumnRole::Id,
        }
        .into()),
    }
}

/// Row `r` of `ids` for every id of `intersection`, in its order. Fails if an id of the
/// intersection is missing from `ids` or appears in it twice (naming its position in the
/// intersection and, for a repeat, the two data rows), or if the intersection repeats an id.
pub fn align(
    ids: &[String],
    intersection: &[String],
    dataset: &str,
    column: &str,
) -> Result<Vec<usize>, PartyError> {
    let wanted: HashMap<&str, usize> = intersection
        .iter()
        .enumerate()
        .map(|(k, id)| (id.as_str(), k))
        .collect();
    if wanted.len() != intersection.len() {
        return Err(Refusal::CorruptIntersection {
            repeats: intersection.len() - wanted.len(),
        }
        .into());
    }
    let mut rows: Vec<Option<usize>> = vec![None; intersection.len()];
    for (r, id) in ids.iter().enumerate() {
        let Some(&k) = wanted.get(id.as_str()) else {
            continue;
        };
        if let Some(first) = rows[k] {
            return Err(Refusal::DuplicateId {
                dataset: dataset.to_string(),
                column: column.to_string(),
                index: k + 1,
                first_row: first + 1,
                second_row: r + 1,
            }
            .into());
        }
        rows[k] = Some(r);
    }
    rows.iter()
        .enumerate()
        .map(|(k, r)| {
            r.ok_or_else(|| {
                PartyError::from(Refusal::IdNotInDataset {
                    dataset: dataset.to_string(),
                    column: column.to_string(),
                    index: k + 1,
                })
            })
        })
        .collect()
}

/// A data party's rows for a join, read before the protocol: ids, its value columns (job order)
/// and the AND of its own filters, over every row of its dataset.
#[derive(Clone)]
pub struct JoinTable {
    dataset: String,
    id_column: String,
    ids: Vec<String>,
    columns: Vec<(String, Vec<f64>)>,
    filter: Option<Vec<bool>>,
}

impl std::fmt::Debug for JoinTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinTable")
            .field("dataset", &self.dataset)
            .field("rows", &self.ids.len())
            .field("columns", &self.columns.len())
            .finish_non_exhaustive()
    }
}

impl JoinTable {
    /// Loads this party's part of `plan` from `ds` (`path` resolved). CPU-bound.
    pub fn load(
        plan: &JoinPlan,
        me: usize,
        ds: &DatasetConfig,
        path: &std::path::Path,
    ) -> Result<Self, PartyError> {
        let id = plan.id_column(me).ok_or(Refusal::NotInJoin)?;
        let own_columns: Vec<&str> = plan
            .columns
            .iter()
            .filter(|(i, _)| *i == me)
            .map(|(_, c)| c.as_str())
            .collect();
        let own_filters: Vec<&(usize, String, Predicate)> =
            plan.filters.iter().filter(|(i, _, _)| *i == me).collect();
        let mut wanted = vec![id];
        wanted.extend(&own_columns);
        wanted.extend(own_filters.iter().map(|(_, c, _)| c.as_str()));
        let table = dataset::load_columns(ds, path, &wanted)?;
        let ids = id_strings(&table, &ds.name, id)?;
        let mut filter: Option<Vec<bool>> = None;
        for (_, c, p) in own_filters {
            let mask = dataset::filter_mask(&table, ds, c, p)?;
            filter = Some(match filter {
                None => mask,
                Some(f) => f.iter().zip(&mask).map(|(a, b)| *a && *b).collect(),
            });
        }
        let columns = own_columns
            .iter()
            .map(|c| {
                let values = table.numeric(c).ok_or_else(|| Refusal::NoColumn {
                    dataset: ds.name.clone(),
                    column: c.to_string(),
                    role: ColumnRole::Value,
                })?;
                Ok((c.to_string(), values.to_vec()))
            })
            .collect::<Result<Vec<_>, PartyError>>()?;
        Ok(Self {
            dataset: ds.name.clone(),
            id_column: id.to_string(),
            ids,
            columns,
            filter,
        })
    }

    /// The ids, in file order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Checks the ids for an inline PSI (no repeats, none too long).
    pub fn check_ids(&self) -> Result<(), PartyError> {
        psi::validate_ids(&self.ids)
            .map_err(|e| crate::psi::id_refusal(e, &self.dataset, &self.id_column))
    }

    /// Rows aligned to `intersection` (stored by an earlier job).
    pub fn align(&self, intersection: &[String]) -> Result<Vec<usize>, PartyError> {
        align(&self.ids, intersection, &self.dataset, &self.id_column)
    }

    /// The protocol input for the rows `matched` (in the common order): encoded columns, the
    /// filter at those rows, and the digest of the aligned ids. Encoding errors name the
    /// dataset, the column and the data row.
    pub fn input(
        &self,
        matched: &[usize],
        job_id: &str,
        fixed: FixedPoint,
    ) -> Result<VerticalInput, PartyError> {
        let mut columns = Vec::with_capacity(self.columns.len());
        for (name, values) in &self.columns {
            let mut out = Vec::with_capacity(matched.len());
            for &r in matched {
                out.push(
                    fixed
                        .encode_signed(values[r])
                        .map_err(|e| PartyError::Value {
                            dataset: self.dataset.clone(),
                            column: name.clone(),
                            row: r + 1,
                            source: e,
                        })?,
                );
            }
            columns.push(out);
        }
        let filter = self
            .filter
            .as_ref()
            .map(|f| matched.iter().map(|&r| f[r]).collect());
        let ids = matched.iter().map(|&r| self.ids[r].as_str());
        let digest = alignment_digest(job_id, ids);
        Ok(VerticalInput::data(matched.len(), filter, columns, digest)?)
    }

    /// The raw values of this party's columns (job order) at the rows `matched` (in the common
    /// order), with their names, and the digest of the aligned ids.
    pub fn aligned(
        &self,
        matched: &[usize],
        job_id: &str,
    ) -> (Vec<(String, Vec<f64>)>, [u8; DIGEST_LEN]) {
        let columns = self
            .columns
            .iter()
            .map(|(name, values)| (name.clone(), matched.iter().map(|&r| values[r]).collect()))
            .collect();
        let ids = matched.iter().map(|&r| self.ids[r].as_str());
        (columns, alignment_digest(job_id, ids))
    }

    /// The ids at the rows `matched`, in the common order.
    pub fn aligned_ids(&self, matched: &[usize]) -> Vec<String> {
        matched.iter().map(|&r| self.ids[r].clone()).collect()
    }

    /// The dataset's name.
    pub fn dataset(&self) -> &str {
        &self.dataset
    }
}

/// SHA-256 over the job id and the aligned ids in order (length-prefixed): equal at both data
/// parties iff they aligned the same ids in the same order.
pub fn alignment_digest<'a>(job_id: &str, ids: impl Iterator<Item = &'a str>) -> [u8; DIGEST_LEN] {
    let mut h = Sha256::new();
    h.update(b"treaty/join-alignment/v1");
    let mut add = |part: &str| {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    };
    add(job_id);
    ids.for_each(add);
    h.finalize().into()
}

#[cfg(test)]
mod tests;
