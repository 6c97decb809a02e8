//! Checks a submitted job spec against the registry: parties, datasets, columns and types.
//!
//! Every problem is collected so the analyst can fix the spec in one go; each is a
//! [`SpecProblem`] naming the offending field. Parties check the job again against their own
//! datasets (the registry holds only what they published).
//!
//! [`validate_spec`] checks what every spec needs (inputs, output, protocol) and reads the
//! computation once ([`Computation::of`]); each kind's own checks live in its module.

use std::collections::{BTreeMap, HashSet};

use treaty_proto::v1::{
    ColumnType, DatasetSchema, FheScoreJob, Filter, Job, JobSpec, JobState, JoinSpec, PartyInfo,
    PsiJob, PsiReveal, ScoreJob, StatsJob, TrainJob, filter, job_spec,
};

use crate::JobError;
use crate::computation::{Computation, Kind, Protocol};
use crate::problem::{ProblemKind, SpecProblem};

mod fhe_score;
mod join;
mod psi;
mod score;
mod stats;
mod train;

pub use fhe_score::{FHE_RELEASES, MAX_FHE_FEATURE_BITS, MAX_FHE_FEATURES};
pub use psi::check_psi_reference;
pub use score::{SCORE_OUTPUTS, check_model_reference};
pub use stats::all_filters;
pub use train::{MAX_TRAIN_FEATURES, trained_model_id};

/// The protocol the `stats` job runs when the spec names none.
pub const DEFAULT_STATS_PROTOCOL: &str = Protocol::Additive.name();
/// The protocol of the `psi` job between two parties.
pub const PSI_PROTOCOL: &str = Protocol::PsiEcdh.name();
/// The protocol of the `psi` job among three or more parties (`treaty_mpc::psi::multi`).
pub const PSI_MULTI_PROTOCOL: &str = Protocol::PsiEcdhChain.name();
/// Most parties of one `psi` job (the chain's cost grows with the square of the party count).
pub const MAX_PSI_PARTIES: usize = 16;
/// The protocol of the `stats` job over vertically split data (a `join`).
pub const JOIN_STATS_PROTOCOL: &str = Protocol::Rep3.name();
/// Parties of a job with a join: two data parties and a helper, or three data parties (rep3
/// needs three).
pub const JOIN_PARTIES: usize = 3;
/// Largest number of fractional bits accepted.
pub const MAX_FRAC_BITS: u32 = 40;
/// Default number of fractional bits.
pub const DEFAULT_FRAC_BITS: u32 = 16;
/// Most parties one job may involve.
pub const MAX_PARTIES: usize = 64;
/// The protocol of the `fhe-score` job (the owner's tfhe key, the evaluator's clear model).
pub const FHE_PROTOCOL: &str = Protocol::Fhe.name();

/// What a model or job id must look like (see [`is_job_id`]).
const ID_FORM: &str = "1 to 64 letters, digits, '-' or '_'";
/// The model kinds of `train` and of a clear `score` model.
const MODELS: [&str; 2] = ["logistic", "linear"];

/// The problems found so far.
type Problems = Vec<SpecProblem>;

/// `n` as a count in a problem.
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// `field` is not one of `allowed`.
fn not_one_of(
    field: impl Into<String>,
    value: &str,
    allowed: &'static [&'static str],
) -> SpecProblem {
    SpecProblem::new(
        field,
        ProblemKind::NotOneOf {
            value: value.to_string(),
            allowed,
        },
    )
}

/// `field` holds `value`, which is not what it takes (`expected`).
fn bad_value(field: impl Into<String>, value: String, expected: &'static str) -> SpecProblem {
    SpecProblem::new(field, ProblemKind::BadValue { value, expected })
}

/// `field` is missing; `hint` says what to give.
fn missing(field: impl Into<String>, hint: &'static str) -> SpecProblem {
    SpecProblem::new(field, ProblemKind::Missing { hint })
}

/// `field` may not be set (this way): `reason`.
fn not_allowed(field: impl Into<String>, reason: &'static str) -> SpecProblem {
    SpecProblem::new(field, ProblemKind::NotAllowed { reason })
}

/// `field` names `party`, which is not an input.
fn not_an_input(field: impl Into<String>, party: &str) -> SpecProblem {
    SpecProblem::new(
        field,
        ProblemKind::NotAnInput {
            party: party.to_string(),
        },
    )
}

/// `field` has `got` entries of `of`, not `min` to `max`.
fn wrong_count(
    field: impl Into<String>,
    got: usize,
    min: u64,
    max: u64,
    of: &'static str,
) -> SpecProblem {
    SpecProblem::new(
        field,
        ProblemKind::WrongCount {
            got: count(got),
            min,
            max,
            of,
        },
    )
}

/// The spec with its defaults filled in (protocol from the computation, `frac_bits`): what the
/// coordinator assigns, and what a party compares with the analyst's signed spec.
#[must_use]
pub fn normalize_spec(mut spec: JobSpec) -> JobSpec {
    if spec.protocol.is_empty()
        && let Ok(computation) = Computation::of(&spec)
    {
        spec.protocol = computation.protocol(spec.inputs.len()).name().to_string();
    }
    if spec.frac_bits == 0 {
        spec.frac_bits = DEFAULT_FRAC_BITS;
    }
    spec
}

/// The job's kind as listings, policies and audit logs name it.
#[must_use]
pub fn job_kind(spec: &JobSpec) -> &'static str {
    Kind::of(spec).map_or("none", Kind::name)
}

/// Validates `spec` against the registered `parties` and fills in defaults.
pub fn validate_spec(
    spec: JobSpec,
    parties: &BTreeMap<String, PartyInfo>,
) -> Result<JobSpec, JobError> {
    let spec = normalize_spec(spec);
    let mut problems = Vec::new();
    if spec.frac_bits > MAX_FRAC_BITS {
        problems.push(SpecProblem::new(
            "frac_bits",
            ProblemKind::TooLarge {
                value: spec.frac_bits.into(),
                max: MAX_FRAC_BITS.into(),
            },
        ));
    }
    if !(2..=MAX_PARTIES).contains(&spec.inputs.len()) {
        problems.push(wrong_count(
            "inputs",
            spec.inputs.len(),
            2,
            count(MAX_PARTIES),
            "parties",
        ));
    }
    match &spec.output {
        None => problems.push(missing(
            "output.recipient_public_key",
            "the recipient's X25519 public key",
        )),
        Some(out) if out.recipient_public_key.len() != 32 => problems.push(wrong_count(
            "output.recipient_public_key",
            out.recipient_public_key.len(),
            32,
            32,
            "bytes (an X25519 key)",
        )),
        Some(_) => {}
    }
    let computation = Computation::of(&spec);
    let join = spec.join.as_ref();
    // An fhe-score evaluator holds a model, not data (with or without a misplaced join).
    let fhe = match &spec.computation {
        Some(job_spec::Computation::FheScore(fhe)) => Some(fhe),
        _ => None,
    };
    let mut seen = HashSet::new();
    let mut datasets = Vec::new();
    for (i, input) in spec.inputs.iter().enumerate() {
        if !seen.insert(input.party.as_str()) {
            problems.push(SpecProblem::new(
                format!("inputs[{i}].party"),
                ProblemKind::Duplicate {
                    name: input.party.clone(),
                },
            ));
            continue;
        }
        let Some(party) = parties.get(&input.party) else {
            problems.push(SpecProblem::new(
                format!("inputs[{i}].party"),
                ProblemKind::UnknownParty {
                    party: input.party.clone(),
                },
            ));
            continue;
        };
        if let Some(join) = join
            && !join.id_columns.contains_key(&input.party)
        {
            if !input.dataset.is_empty() {
                problems.push(not_allowed(
                    format!("inputs[{i}].dataset"),
                    "a party without an id column in join.id_columns is the join's helper and \
                     holds no data: drop its dataset, or name its id column",
                ));
            }
            continue;
        }
        if fhe.is_some_and(|f| f.evaluator == input.party || input.dataset.is_empty()) {
            // The evaluator holds a model, not data; `check_fhe_score` names a dataset where
            // one is missing or out of place.
            continue;
        }
        match party.datasets.iter().find(|d| d.name == input.dataset) {
            None => problems.push(SpecProblem::new(
                format!("inputs[{i}].dataset"),
                ProblemKind::UnknownDataset {
                    party: input.party.clone(),
                    dataset: input.dataset.clone(),
                },
            )),
            Some(d) => datasets.push((input.party.as_str(), d)),
        }
    }
    match computation {
        Err(problem) => problems.push(*problem),
        Ok(computation) => {
            let protocol = computation.protocol(spec.inputs.len());
            if Protocol::parse(&spec.protocol) != Some(protocol) {
                problems.push(not_one_of("protocol", &spec.protocol, protocol.allowed()));
            }
            match computation {
                Computation::Stats(stats) => stats::check(stats, &datasets, &mut problems),
                Computation::JoinStats { stats, join } => {
                    stats::check_join(&spec, stats, join, &datasets, &mut problems);
                }
                Computation::Psi(psi) => psi::check(&spec, psi, &datasets, &mut problems),
                Computation::Train { train, join } => {
                    train::check(&spec, train, join, &datasets, &mut problems);
                }
                Computation::Score { score, join } => {
                    join::check(&spec, join, &datasets, &mut problems);
                    score::check(&spec, score, join, &datasets, &mut problems);
                }
                Computation::FheScore(fhe) => {
                    fhe_score::check(&spec, fhe, &datasets, &mut problems);
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(spec)
    } else {
        problems.dedup();
        Err(JobError::InvalidSpec(problems))
    }
}

/// `field` names `column`, which `party`'s `ds` lacks.
fn unknown_column(field: &str, party: &str, ds: &DatasetSchema, column: &str) -> SpecProblem {
    SpecProblem::new(
        field,
        ProblemKind::UnknownColumn {
            party: party.to_string(),
            dataset: ds.name.clone(),
            column: column.to_string(),
        },
    )
}

/// `field` names `column` of `party`'s `ds`, which is `found`, not `expected`.
fn wrong_type(
    field: &str,
    party: &str,
    ds: &DatasetSchema,
    column: &str,
    expected: &'static str,
    found: ColumnType,
) -> SpecProblem {
    SpecProblem::new(
        field,
        ProblemKind::WrongType {
            party: party.to_string(),
            dataset: ds.name.clone(),
            column: column.to_string(),
            expected,
            found,
        },
    )
}

/// An id `column` of `party`'s `ds` (named by `field`): it exists and holds text or integers.
fn check_id_column(
    field: &str,
    party: &str,
    ds: &DatasetSchema,
    column: &str,
    problems: &mut Problems,
) {
    match column_type(ds, column) {
        None => problems.push(unknown_column(field, party, ds, column)),
        Some(ColumnType::String | ColumnType::Int) => {}
        Some(found) => problems.push(wrong_type(
            field,
            party,
            ds,
            column,
            "text or integer (an id)",
            found,
        )),
    }
}

fn column_type(ds: &DatasetSchema, name: &str) -> Option<ColumnType> {
    ds.columns
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.r#type())
}

/// Splits `"party.column"`; `None` without a dot or with an empty side.
pub fn qualified(name: &str) -> Option<(&str, &str)> {
    name.split_once('.')
        .filter(|(p, c)| !p.is_empty() && !c.is_empty())
}

/// Whether `id` can name a stored job (and a file under a party's state directory): 1 to 64
/// ASCII letters, digits, `-` and `_`.
pub fn is_job_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `column` (named by `field`) exists in `party`'s `ds` and is numeric.
fn check_value_column(
    field: &str,
    party: &str,
    ds: &DatasetSchema,
    column: &str,
    problems: &mut Problems,
) {
    match column_type(ds, column) {
        None => problems.push(unknown_column(field, party, ds, column)),
        Some(ColumnType::Int | ColumnType::Float) => {}
        Some(found) => problems.push(wrong_type(field, party, ds, column, "numeric", found)),
    }
}

#[cfg(test)]
mod tests;
