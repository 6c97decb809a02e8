//! `psi` jobs at this node: the ids it reads, the protocol it runs with its peers (two-party
//! ECDH-PSI, or the multi-party chain with three or more parties) and the intersection it
//! keeps when it learns one (`<state dir>/psi/<job id>.ids`, for a later join to reuse).
//!
//! Also the inline PSI a job with a join runs among its data parties when it reuses no
//! stored intersection (`inline`).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::artefact::Staged;

use rand_chacha::ChaCha20Rng;
use treaty_job::ProblemKind;
use treaty_job::validate::is_job_id;
use treaty_mpc::MpcError;
use treaty_mpc::psi::multi::{self, MultiPsiMode, MultiPsiParams, PartySet};
use treaty_mpc::psi::{self, PsiMode, PsiParams, PsiProgress};
use treaty_mpc::transport::Channel;
use treaty_proto::v1 as pb;

use crate::PartyError;
use crate::config::PartyConfig;
use crate::dataset::{self, DatasetConfig};
use crate::error::io_err;
use crate::refusal::{ColumnRole, Refusal};

/// Where a `psi` job's intersection is stored: `<state dir>/psi/<job id>.ids`.
pub fn intersection_path(cfg: &PartyConfig, job_id: &str) -> PathBuf {
    cfg.state_dir().join("psi").join(format!("{job_id}.ids"))
}

/// Where the analyst whose `psi` job made an intersection is recorded:
/// `<state dir>/psi/<job id>.origin`.
pub fn origin_path(cfg: &PartyConfig, job_id: &str) -> PathBuf {
    cfg.state_dir().join("psi").join(format!("{job_id}.origin"))
}

/// The analyst whose `psi` job made the stored intersection ("" when not recorded).
pub fn intersection_origin(cfg: &PartyConfig, job_id: &str) -> String {
    if !is_job_id(job_id) {
        return String::new();
    }
    std::fs::read_to_string(origin_path(cfg, job_id))
        .map(|s| s.trim().chars().take(64).collect())
        .unwrap_or_default()
}

/// Reads the intersection stored by `psi_job` (one id per line, in the common order).
pub fn read_intersection(cfg: &PartyConfig, psi_job: &str) -> Result<Vec<String>, PartyError> {
    if !is_job_id(psi_job) {
        return Err(Refusal::spec("join.psi_job", not_a_job_id(psi_job)).into());
    }
    let path = intersection_path(cfg, psi_job);
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    Ok(text.lines().map(str::to_owned).collect())
}

/// The problem of a `psi_job` that is not a job id.
pub(crate) fn not_a_job_id(job: &str) -> ProblemKind {
    ProblemKind::BadValue {
        value: format!("{job:?}"),
        expected: "a job id",
    }
}

/// The id column a `psi` job uses at this party: the job's override or the dataset's own.
///
/// # Errors
/// [`Refusal::NoColumn`] if the dataset does not declare it, [`Refusal::FloatIds`] if it holds
/// floats.
pub(crate) fn id_column<'a>(
    cfg: &PartyConfig,
    psi: &'a pb::PsiJob,
    ds: &'a DatasetConfig,
) -> Result<&'a str, PartyError> {
    let column = psi
        .id_columns
        .get(&cfg.id)
        .map_or(ds.id_column.as_str(), String::as_str);
    match ds.column(column) {
        None => Err(no_id_column(ds, column)),
        Some(d) if d.ty == dataset::ColumnType::Float => Err(Refusal::FloatIds {
            dataset: ds.name.clone(),
            column: column.to_string(),
        }
        .into()),
        Some(_) => Ok(column),
    }
}

fn no_id_column(ds: &DatasetConfig, column: &str) -> PartyError {
    Refusal::NoColumn {
        dataset: ds.name.clone(),
        column: column.to_string(),
        role: ColumnRole::Id,
    }
    .into()
}

/// Reads a `psi` job's ids: the id column's cells as text (integers in canonical decimal), checked
/// for length and duplicates. CPU-bound: call it off the async runtime.
///
/// # Errors
/// `id_column`'s refusals, the dataset's read errors, [`Refusal::LongId`] and
/// [`Refusal::RepeatedIds`].
pub fn local_ids(
    cfg: &PartyConfig,
    ds: &DatasetConfig,
    psi: &pb::PsiJob,
) -> Result<Vec<String>, PartyError> {
    let column = id_column(cfg, psi, ds)?;
    let table = dataset::load_columns(ds, &cfg.resolve(&ds.path), &[column])?;
    let ids: Vec<String> = match (table.text(column), table.numeric(column)) {
        (Some(text), _) => text.to_vec(),
        (None, Some(numbers)) => numbers.iter().map(|v| format!("{}", *v as i64)).collect(),
        (None, None) => return Err(no_id_column(ds, column)),
    };
    psi::validate_ids(&ids).map_err(|e| id_refusal(e, &ds.name, column))?;
    Ok(ids)
}

/// The refusal of ids that [`psi::validate_ids`] refuses, in `dataset`'s id `column`.
pub(crate) fn id_refusal(e: MpcError, dataset: &str, column: &str) -> PartyError {
    let (dataset, column) = (dataset.to_string(), column.to_string());
    match e {
        MpcError::IdTooLong { index, len, max } => Refusal::LongId {
            dataset,
            column,
            row: index + 1,
            len,
            max,
        }
        .into(),
        MpcError::DuplicateIds { count } => Refusal::RepeatedIds {
            dataset,
            column,
            count,
        }
        .into(),
        other => other.into(),
    }
}

/// What a PSI run (two-party or multi-party) left this party with.
#[derive(Debug)]
pub(crate) struct PsiRun {
    /// The intersection's size, if this party learns it.
    pub(crate) size: Option<u64>,
    /// Indices of this party's ids in the intersection, in the common order, if it learns them.
    pub(crate) matched: Option<Vec<usize>>,
    /// The peers' set sizes together.
    pub(crate) peer_set_size: u64,
    /// Every party's set size by party id (multi-party runs).
    pub(crate) set_sizes: HashMap<String, u64>,
}

impl PsiRun {
    /// The report sealed to the analyst, for `own` ids and the file the intersection went to.
    pub(crate) fn report(self, own: usize, stored_as: String) -> pb::PsiPartyResult {
        pb::PsiPartyResult {
            own_set_size: own as u64,
            peer_set_size: self.peer_set_size,
            intersection_size: self.size,
            stored_as,
            set_sizes: self.set_sizes,
        }
    }
}

/// Runs the `psi` job's protocol on `transport` with this party's ids `own`: two-party with two
/// parties, the multi-party chain with more. `peers` are the job's party ids in protocol order;
/// a peer may announce at most `max_peer_set` ids (the node's `[limits] max_psi_set`).
///
/// # Errors
/// [`Refusal::BadReveal`] for a `reveal` and `to` that name no mode of the protocol; the
/// protocol's errors, [`MpcError::OverLimit`] for a peer's set above the limit.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    transport: &Channel,
    job_id: &str,
    peers: &[String],
    psi: &pb::PsiJob,
    own: &[String],
    max_peer_set: u64,
    rng: &mut ChaCha20Rng,
    on_progress: impl FnMut(PsiProgress),
) -> Result<PsiRun, PartyError> {
    let index_of = |party: &str| peers.iter().position(|p| p == party);
    let to: Vec<usize> = psi.to.iter().filter_map(|p| index_of(p)).collect();
    let bad_reveal = || Refusal::BadReveal {
        parties: peers.len(),
    };
    if peers.len() > 2 {
        let mode = match (psi.reveal(), to.as_slice()) {
            (pb::PsiReveal::Intersection, to) if !to.is_empty() && to.len() == psi.to.len() => {
                MultiPsiMode::IntersectionTo(PartySet::new(to).ok_or_else(bad_reveal)?)
            }
            (pb::PsiReveal::Cardinality, [r]) => MultiPsiMode::CardinalityTo(*r),
            _ => return Err(bad_reveal().into()),
        };
        let mut params = MultiPsiParams::new(job_id, mode);
        params.max_peer_set = max_peer_set;
        let o = multi::run(transport, &params, own, rng, on_progress).await?;
        let me = transport.me();
        Ok(PsiRun {
            size: o.size,
            matched: o.matched,
            peer_set_size: (o.set_sizes.iter().sum::<u64>())
                .saturating_sub(o.set_sizes.get(me).copied().unwrap_or(0)),
            set_sizes: peers.iter().cloned().zip(o.set_sizes).collect(),
        })
    } else {
        let mode = match (psi.reveal(), to.as_slice()) {
            (pb::PsiReveal::Intersection, [r]) => PsiMode::IntersectionTo(*r),
            (pb::PsiReveal::Intersection, [_, _]) => PsiMode::IntersectionToBoth,
            (pb::PsiReveal::Cardinality, [r]) => PsiMode::CardinalityTo(*r),
            _ => return Err(bad_reveal().into()),
        };
        let mut params = PsiParams::new(job_id, mode);
        params.max_peer_set = max_peer_set;
        let o = psi::run(transport, &params, own, rng, on_progress).await?;
        Ok(PsiRun {
            size: o.size,
            matched: o.matched,
            peer_set_size: o.peer_set_size,
            set_sizes: HashMap::new(),
        })
    }
}

/// The inline PSI of a job with a join, on `transport` (the job's `psi` channel) among the
/// join's `data` parties: the multi-party chain when every party of the job holds data, else
/// the two-party protocol between the two data parties. Every data party learns the
/// intersection; returns the indices of `ids` in it, in the common order. A peer may announce
/// at most `max_peer_set` ids.
///
/// # Errors
/// [`Refusal::NotInJoin`] if this party is not one of `data`; the protocol's errors,
/// [`MpcError::OverLimit`] for a peer's set above the limit.
pub(crate) async fn inline(
    transport: Channel,
    job_id: &str,
    data: &[usize],
    ids: &[String],
    max_peer_set: u64,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<usize>, PartyError> {
    let matched = if data.len() == transport.parties() {
        let mode = MultiPsiMode::IntersectionTo(PartySet::all(data.len()));
        let mut params = MultiPsiParams::new(job_id, mode);
        params.max_peer_set = max_peer_set;
        multi::run(&transport, &params, ids, rng, |_| {})
            .await?
            .matched
    } else {
        let sub = transport.among(data).ok_or(Refusal::NotInJoin)?;
        let mut params = PsiParams::new(job_id, PsiMode::IntersectionToBoth);
        params.max_peer_set = max_peer_set;
        psi::run(&sub, &params, ids, rng, |_| {}).await?.matched
    };
    // Both modes reveal the intersection to every data party: a missing one is the protocol's
    // fault, not the job's.
    matched.ok_or_else(|| {
        MpcError::BadParams("the inline PSI revealed no intersection to a data party").into()
    })
}

/// Stages the matched ids, one per line in the common order, for
/// `<state dir>/psi/<job id>.ids` (mode 0600 on Unix), and the `analyst` who asked beside it
/// (see [`crate::artefact`]: they count once the job commits them after the release barrier);
/// returns the path.
///
/// # Errors
/// [`PartyError::Io`] naming the file.
pub(crate) fn stage_intersection(
    cfg: &PartyConfig,
    job_id: &str,
    analyst: &str,
    own: &[String],
    matched: &[usize],
    staged: &mut Staged,
) -> Result<PathBuf, PartyError> {
    let path = intersection_path(cfg, job_id);
    let mut text = zeroize::Zeroizing::new(String::with_capacity(matched.len() * 16));
    for id in matched.iter().filter_map(|&i| own.get(i)) {
        text.push_str(id);
        text.push('\n');
    }
    // The origin first: committed in this order, the ids never exist without it.
    staged.stage(origin_path(cfg, job_id), analyst.as_bytes())?;
    staged.stage(path.clone(), text.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use treaty_mpc::transport::{DEFAULT_MAX_MESSAGE, run_in_memory};

    fn cfg_with_ids(dir: &std::path::Path, ids: &[&str]) -> PartyConfig {
        let mut csv = String::from("member_id,age\n");
        for id in ids {
            csv.push_str(&format!("{id},40\n"));
        }
        std::fs::write(dir.join("m.csv"), csv).unwrap();
        let mut cfg: PartyConfig = toml::from_str(
            "id = \"bank\"\nlisten = \"127.0.0.1:1\"\ncoordinator = \"x\"\ninsecure = true\n\
             [[datasets]]\nname = \"members\"\npath = \"m.csv\"\nid_column = \"member_id\"\n\
             columns = [{ name = \"member_id\", type = \"string\" }, { name = \"age\", type = \"float\" }]",
        )
        .unwrap();
        cfg.base_dir = dir.to_path_buf();
        cfg
    }

    fn read(ids: &[&str]) -> Result<Vec<String>, PartyError> {
        let dir = tempfile::tempdir().unwrap();
        let cfg = cfg_with_ids(dir.path(), ids);
        let ds = cfg.dataset("members").unwrap().clone();
        local_ids(&cfg, &ds, &pb::PsiJob::default())
    }

    #[test]
    fn ids_are_read_as_text_and_checked() {
        assert_eq!(read(&["a", "b", "c"]).unwrap(), ["a", "b", "c"]);
        match read(&["a", "b", "a", "b", "c"]) {
            Err(PartyError::Refused(Refusal::RepeatedIds { count, column, .. })) => {
                assert_eq!((count, column.as_str()), (2, "member_id"));
            }
            other => panic!("repeated ids passed: {other:?}"),
        }
        let long = "x".repeat(psi::MAX_ID_LEN + 1);
        match read(&["a", &long]) {
            Err(PartyError::Refused(Refusal::LongId { row, len, max, .. })) => {
                assert_eq!((row, len, max), (2, psi::MAX_ID_LEN + 1, psi::MAX_ID_LEN));
            }
            other => panic!("an over-long id passed: {other:?}"),
        }
    }

    #[test]
    fn a_float_or_missing_id_column_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = cfg_with_ids(dir.path(), &["a"]);
        let ds = cfg.dataset("members").unwrap().clone();
        let job = |column: &str| pb::PsiJob {
            id_columns: [("bank".to_string(), column.to_string())].into(),
            ..Default::default()
        };
        assert!(matches!(
            id_column(&cfg, &job("age"), &ds),
            Err(PartyError::Refused(Refusal::FloatIds { .. }))
        ));
        assert!(matches!(
            id_column(&cfg, &job("email"), &ds),
            Err(PartyError::Refused(Refusal::NoColumn {
                role: ColumnRole::Id,
                ..
            }))
        ));
    }

    /// A `reveal`/`to` that names no mode is refused before anything is sent.
    #[tokio::test]
    async fn a_reveal_that_names_no_mode_is_refused_before_sending() {
        let peers = vec!["bank".to_string(), "insurer".to_string()];
        let out = run_in_memory(2, DEFAULT_MAX_MESSAGE, move |t| {
            let peers = peers.clone();
            async move {
                let job = pb::PsiJob {
                    reveal: pb::PsiReveal::Cardinality.into(),
                    to: peers.clone(),
                    ..Default::default()
                };
                let mut rng = treaty_mpc::seeds::os_rng().unwrap();
                let r = run(&t, "j", &peers, &job, &["a".into()], 10, &mut rng, |_| {}).await;
                (r.map(|_| ()), t.counters().snapshot().bytes_sent)
            }
        })
        .await
        .unwrap();
        for (r, sent) in out {
            assert!(
                matches!(
                    r,
                    Err(PartyError::Refused(Refusal::BadReveal { parties: 2 }))
                ),
                "{r:?}"
            );
            assert_eq!(sent, 0);
        }
    }
}
