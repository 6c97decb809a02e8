//! `treaty demo psi`: a hospital and an insurer (or three or more parties) on loopback
//! (coordinator + party nodes, mutual TLS) find their common patients with a `psi` job, and the
//! result is checked against the intersection computed in the clear: the same size, the same ids,
//! and the same order at every party (the alignment later jobs rely on).

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::Serialize;
use treaty_mpc::output::RecipientSecretKey;
use treaty_mpc::seeds;
use treaty_proto::v1::{self as pb, job_spec};

use crate::error::io_err;
use crate::sandbox::{ANALYST, Sandbox, SandboxOptions};
use treaty_analyst as analyst;
use treaty_party::dataset::{ColumnDecl, ColumnType, DatasetConfig};

use crate::SandboxError;

/// Name of the dataset each demo party offers.
pub const DATASET: &str = "patients";
/// Its id column.
pub const ID_COLUMN: &str = "patient_id";

/// What the PSI demo runs.
#[derive(Debug, Clone)]
pub struct PsiDemoOptions {
    /// Ids per party.
    pub rows: usize,
    /// Share of each party's ids that the other party also has, in `[0, 1]`.
    pub overlap: f64,
    /// Seed of the synthetic ids.
    pub seed: u64,
    /// The party ids: two (two-party PSI) or more (the multi-party chain).
    pub parties: Vec<String>,
    /// Plaintext gRPC (development only).
    pub insecure: bool,
    /// Where data, keys and state go.
    pub work_dir: PathBuf,
}

impl PsiDemoOptions {
    /// The default: hospital and insurer, 100,000 patients each, half of them shared.
    pub fn new(work_dir: PathBuf) -> Self {
        Self {
            rows: 100_000,
            overlap: 0.5,
            seed: 42,
            parties: vec!["hospital".into(), "insurer".into()],
            insecure: false,
            work_dir,
        }
    }
}

/// What the PSI demo measured.
#[derive(Debug, Clone, Serialize)]
pub struct PsiDemoReport {
    /// The job's id.
    pub job_id: String,
    /// Ids per party.
    pub rows_per_party: usize,
    /// Intersection size each party reported (sealed to the analyst).
    pub secure_size: BTreeMap<String, u64>,
    /// Intersection size computed in the clear.
    pub clear_size: u64,
    /// Whether every party stored exactly the clear intersection, in the same order.
    pub aligned: bool,
    /// Seconds from submission to the opened result.
    pub seconds: f64,
    /// Data-plane rounds (per party).
    pub rounds: u64,
    /// Data-plane payload bytes sent, per party.
    pub bytes_sent_per_party: BTreeMap<String, u64>,
    /// Whether TLS was on.
    pub tls: bool,
}

/// The two parties' id lists: `rows` each, [`shared_ids`] of them in both, each list shuffled
/// (deterministic in `seed`).
pub fn synthetic_ids(rows: usize, overlap: f64, seed: u64) -> [Vec<String>; 2] {
    [0, 1].map(|party| synthetic_party_ids(party, rows, overlap, seed))
}

/// How many ids the two lists of [`synthetic_ids`] have in common: `round(overlap·rows)`, with
/// `overlap` clamped to `[0, 1]`.
pub fn shared_ids(rows: usize, overlap: f64) -> usize {
    ((overlap.clamp(0.0, 1.0) * rows as f64).round() as usize).min(rows)
}

/// Party `party`'s list of [`synthetic_ids`] (0 or 1), generated without the other's (so a party
/// process of `treaty bench psi` holds only its own): ids `P0000000000`, `P0000000001`, … party 0
/// has `0..rows`, party 1 `rows − shared..2·rows − shared`, shuffled by ChaCha20 seeded with `seed`
/// on stream `party`.
pub fn synthetic_party_ids(party: usize, rows: usize, overlap: f64, seed: u64) -> Vec<String> {
    let first = if party == 0 {
        0
    } else {
        rows - shared_ids(rows, overlap)
    };
    let mut ids: Vec<String> = (first..first + rows).map(|k| format!("P{k:010}")).collect();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rng.set_stream(party as u64);
    ids.shuffle(&mut rng);
    ids
}

/// Party ids for `n` parties: hospital, insurer, bank, then `party-4`, … .
pub fn default_parties(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i {
            0 => "hospital".to_string(),
            1 => "insurer".to_string(),
            2 => "bank".to_string(),
            i => format!("party-{}", i + 1),
        })
        .collect()
}

/// The id lists of `parties ≥ 3` parties: `rows` each, `round(overlap·rows)` of them held by every
/// party; of the rest, a quarter shared with the next party round the ring and a quarter with the
/// previous one (so the pairwise intersections are larger than the common one), the remainder
/// held by one party only. Each list shuffled (deterministic in `seed`).
pub fn synthetic_ids_multi(
    rows: usize,
    overlap: f64,
    seed: u64,
    parties: usize,
) -> Vec<Vec<String>> {
    let shared = ((overlap.clamp(0.0, 1.0) * rows as f64).round() as usize).min(rows);
    let pair = (rows - shared) / 4;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..parties)
        .map(|i| {
            let next = (i + 1) % parties;
            let prev = (i + parties - 1) % parties;
            let mut ids: Vec<String> = (0..shared).map(|k| format!("P{k:010}")).collect();
            ids.extend((0..pair).map(|k| format!("Q{i:02}-{next:02}-{k:08}")));
            ids.extend((0..pair).map(|k| format!("Q{prev:02}-{i:02}-{k:08}")));
            ids.extend((0..rows - shared - 2 * pair).map(|k| format!("R{i:02}-{k:08}")));
            ids.shuffle(&mut rng);
            ids
        })
        .collect()
}

/// Writes a patients file (`patient_id`, `age`) and returns its dataset config.
fn write_patients(path: &Path, ids: &[String], seed: u64) -> Result<DatasetConfig, SandboxError> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io_err(path))?);
    let mut text = String::with_capacity(ids.len() * 16 + 32);
    text.push_str("patient_id,age\n");
    for (i, id) in ids.iter().enumerate() {
        let age = 18 + (seed as usize + i * 7919) % 72;
        text.push_str(&format!("{id},{age}\n"));
    }
    out.write_all(text.as_bytes()).map_err(io_err(path))?;
    out.flush().map_err(io_err(path))?;
    Ok(DatasetConfig {
        name: DATASET.into(),
        path: path.to_path_buf(),
        id_column: ID_COLUMN.into(),
        columns: vec![
            ColumnDecl {
                name: ID_COLUMN.into(),
                ty: ColumnType::String,
            },
            ColumnDecl {
                name: "age".into(),
                ty: ColumnType::Int,
            },
        ],
    })
}

/// The demo's job spec: intersection to every party.
pub fn psi_spec(parties: &[String], recipient_public_key: Vec<u8>) -> pb::JobSpec {
    pb::JobSpec {
        name: format!("demo: common patients of {}", parties.join(", ")),
        inputs: parties
            .iter()
            .map(|p| pb::JobInput {
                party: p.clone(),
                dataset: DATASET.into(),
            })
            .collect(),
        output: Some(pb::JobOutput {
            recipient: ANALYST.into(),
            recipient_public_key,
        }),
        computation: Some(job_spec::Computation::Psi(pb::PsiJob {
            reveal: pb::PsiReveal::Intersection as i32,
            to: parties.to_vec(),
            id_columns: Default::default(),
        })),
        ..Default::default()
    }
}

/// Runs the PSI demo; `on_update` sees every state change of the job.
pub async fn run(
    opts: &PsiDemoOptions,
    mut on_update: impl FnMut(&pb::Job),
) -> Result<PsiDemoReport, SandboxError> {
    let dir = &opts.work_dir;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    if opts.parties.len() < 2 {
        return Err(SandboxError::Failed(
            "the PSI demo needs at least two parties".into(),
        ));
    }
    let ids = match opts.parties.len() {
        2 => synthetic_ids(opts.rows, opts.overlap, opts.seed).to_vec(),
        n => synthetic_ids_multi(opts.rows, opts.overlap, opts.seed, n),
    };
    let mut data = Vec::new();
    for (party, ids) in opts.parties.iter().zip(&ids) {
        let path = dir.join(format!("{party}-patients.csv"));
        data.push((party.clone(), write_patients(&path, ids, opts.seed)?));
    }
    let mut sandbox_opts = SandboxOptions::new(dir.clone());
    sandbox_opts.insecure = opts.insecure;
    let mut sandbox = Sandbox::start(sandbox_opts, &opts.parties).await?;
    let outcome = async {
        for (party, ds) in &data {
            sandbox.start_party(party, vec![ds.clone()]).await?;
        }
        sandbox
            .wait_online(&opts.parties, Duration::from_secs(60))
            .await?;
        let key = RecipientSecretKey::generate(&mut seeds::os_rng()?);
        let started = Instant::now();
        let job = sandbox
            .run_job_to_success(psi_spec(&opts.parties, key.public_key()?.to_vec()), |j| {
                on_update(j)
            })
            .await?;
        let mut client = sandbox.analyst().await?;
        let reports =
            analyst::fetch_psi_result(&mut client, &job, &key, &sandbox.party_keys()).await?;
        let seconds = started.elapsed().as_secs_f64();
        Ok::<_, SandboxError>((job, reports, seconds))
    }
    .await;
    sandbox.shut_down().await;
    let (job, reports, seconds) = outcome?;

    // The clear intersection, and what each party stored.
    let mut clear: HashSet<&String> = ids[0].iter().collect();
    for other in &ids[1..] {
        let other: HashSet<&String> = other.iter().collect();
        clear.retain(|id| other.contains(id));
    }
    let mut stored = Vec::new();
    for (_, report) in &reports {
        let path = PathBuf::from(&report.stored_as);
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        stored.push(text.lines().map(str::to_owned).collect::<Vec<_>>());
    }
    let aligned = stored.len() == opts.parties.len()
        && stored.iter().all(|s| *s == stored[0])
        && stored[0].len() == clear.len()
        && stored[0].iter().all(|id| clear.contains(id));
    Ok(PsiDemoReport {
        job_id: job.id.clone(),
        rows_per_party: opts.rows,
        secure_size: reports
            .iter()
            .map(|(p, r)| (p.clone(), r.intersection_size.unwrap_or(0)))
            .collect(),
        clear_size: clear.len() as u64,
        aligned,
        seconds,
        rounds: crate::demo::max_rounds(&job),
        bytes_sent_per_party: crate::demo::bytes_sent(&job),
        tls: !opts.insecure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_ids_overlap_as_asked() {
        for (rows, overlap, want) in [(100, 0.5, 50), (10, 0.0, 0), (10, 1.0, 10), (7, 0.3, 2)] {
            let [a, b] = synthetic_ids(rows, overlap, 1);
            let a: HashSet<String> = a.into_iter().collect();
            assert_eq!((a.len(), b.len()), (rows, rows));
            assert_eq!(b.iter().filter(|id| a.contains(*id)).count(), want);
        }
    }

    #[test]
    fn multi_party_ids_share_exactly_the_common_core() {
        for parties in [3, 4] {
            let sets = synthetic_ids_multi(200, 0.3, 7, parties);
            let sets: Vec<HashSet<String>> =
                sets.into_iter().map(|s| s.into_iter().collect()).collect();
            assert!(sets.iter().all(|s| s.len() == 200));
            let common = sets[0]
                .iter()
                .filter(|id| sets.iter().all(|s| s.contains(*id)))
                .count();
            assert_eq!(common, 60);
            let pairwise = sets[0].intersection(&sets[1]).count();
            assert_eq!(
                pairwise,
                60 + 35,
                "the next party shares a quarter of the rest"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_party_psi_demo_aligns_every_party() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = PsiDemoOptions::new(dir.path().to_path_buf());
        opts.rows = 2000;
        opts.overlap = 0.25;
        opts.parties = default_parties(3);
        let report = run(&opts, |_| {}).await.unwrap();
        assert_eq!(report.clear_size, 500);
        assert!(report.aligned, "{report:?}");
        assert_eq!(report.secure_size.len(), 3);
        assert!(report.secure_size.values().all(|&s| s == 500), "{report:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn psi_demo_matches_the_clear_intersection_and_aligns_both_parties() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = PsiDemoOptions::new(dir.path().to_path_buf());
        opts.rows = 3000;
        opts.overlap = 0.3;
        let report = run(&opts, |_| {}).await.unwrap();
        assert_eq!(report.clear_size, 900);
        assert!(report.aligned, "{report:?}");
        assert!(report.secure_size.values().all(|&s| s == 900), "{report:?}");
        assert!(report.bytes_sent_per_party.values().all(|&b| b > 3000 * 32));
    }
}
