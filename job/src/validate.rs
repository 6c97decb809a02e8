//! Checks a submitted job spec against the registry: parties, datasets, columns and types.
//!
//! Every problem is collected so the analyst can fix the spec in one go; each is a
//! [`SpecProblem`] naming the offending field. Parties check the job again against their own
//! datasets (the registry holds only what they published).

use std::collections::{BTreeMap, HashSet};

use treaty_proto::v1::{
    ColumnType, DatasetSchema, FheScoreJob, Filter, Job, JobSpec, JobState, JoinSpec, PartyInfo,
    PsiJob, PsiReveal, ScoreJob, StatsJob, TrainJob, filter, job_spec,
};

use crate::JobError;
use crate::problem::{ProblemKind, SpecProblem};

/// The protocol the `stats` job runs when the spec names none.
pub const DEFAULT_STATS_PROTOCOL: &str = "additive";
/// The protocol of the `psi` job between two parties.
pub const PSI_PROTOCOL: &str = "psi-ecdh";
/// The protocol of the `psi` job among three or more parties (`treaty_mpc::psi::multi`).
pub const PSI_MULTI_PROTOCOL: &str = "psi-ecdh-chain";
/// Most parties of one `psi` job (the chain's cost grows with the square of the party count).
pub const MAX_PSI_PARTIES: usize = 16;
/// The protocol of the `stats` job over vertically split data (a `join`).
pub const JOIN_STATS_PROTOCOL: &str = "rep3";
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
pub const FHE_PROTOCOL: &str = "fhe";

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
    if spec.protocol.is_empty() {
        spec.protocol = match (&spec.computation, &spec.join) {
            (Some(job_spec::Computation::FheScore(_)), _) => FHE_PROTOCOL,
            (Some(job_spec::Computation::Psi(_)), _) if spec.inputs.len() > 2 => PSI_MULTI_PROTOCOL,
            (Some(job_spec::Computation::Psi(_)), _) => PSI_PROTOCOL,
            (_, Some(_)) => JOIN_STATS_PROTOCOL,
            _ => DEFAULT_STATS_PROTOCOL,
        }
        .to_string();
    }
    if spec.frac_bits == 0 {
        spec.frac_bits = DEFAULT_FRAC_BITS;
    }
    spec
}

/// The job's kind as listings, policies and audit logs name it.
#[must_use]
pub fn job_kind(spec: &JobSpec) -> &'static str {
    match &spec.computation {
        Some(job_spec::Computation::Stats(_)) => "stats",
        Some(job_spec::Computation::Psi(_)) => "psi",
        Some(job_spec::Computation::Train(_)) => "train",
        Some(job_spec::Computation::Score(_)) => "score",
        Some(job_spec::Computation::FheScore(_)) => "fhe-score",
        None => "none",
    }
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
    let join = spec.join.as_ref();
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
    match (&spec.computation, join) {
        (None, _) => problems.push(missing(
            "computation",
            "add [stats], [psi], [train], [score] or [fhe_score]",
        )),
        (Some(job_spec::Computation::Stats(stats)), None) => {
            if spec.protocol != DEFAULT_STATS_PROTOCOL {
                problems.push(not_one_of(
                    "protocol",
                    &spec.protocol,
                    &[DEFAULT_STATS_PROTOCOL],
                ));
            }
            check_column_list(stats, &mut problems);
            for (party, ds) in &datasets {
                for c in &stats.columns {
                    check_value_column("stats.columns", party, ds, c, &mut problems);
                }
                for (field, f) in filter_fields(stats) {
                    check_filter(&field, party, ds, &f.column, f, &[], &mut problems);
                }
            }
            check_ranges(stats, &mut problems);
        }
        (Some(job_spec::Computation::Stats(stats)), Some(join)) => {
            check_join_stats(&spec, stats, join, &datasets, &mut problems);
        }
        (Some(job_spec::Computation::Psi(psi)), None) => {
            check_psi(&spec, psi, &datasets, &mut problems)
        }
        (Some(job_spec::Computation::Psi(_)), Some(_)) => problems.push(not_allowed(
            "join",
            "a join applies to stats and train jobs; a psi job has no [join]",
        )),
        (Some(job_spec::Computation::Train(_)), None) => problems.push(missing(
            "join",
            "train runs on vertically split data: add a [join] naming each data party's id \
             column",
        )),
        (Some(job_spec::Computation::Train(train)), Some(join)) => {
            check_join_train(&spec, train, join, &datasets, &mut problems);
        }
        (Some(job_spec::Computation::Score(_)), None) => problems.push(missing(
            "join",
            "score runs on vertically split records: add a [join] naming each data party's id \
             column",
        )),
        (Some(job_spec::Computation::Score(score)), Some(join)) => {
            check_join(&spec, join, &datasets, &mut problems);
            check_score(&spec, score, join, &datasets, &mut problems);
        }
        (Some(job_spec::Computation::FheScore(fhe)), join) => {
            if join.is_some() {
                problems.push(not_allowed(
                    "join",
                    "fhe-score runs on the owner's rows alone; an fhe-score job has no [join]",
                ));
            }
            check_fhe_score(&spec, fhe, &datasets, &mut problems);
        }
    }
    if problems.is_empty() {
        Ok(spec)
    } else {
        problems.dedup();
        Err(JobError::InvalidSpec(problems))
    }
}

/// Every filter of a `stats` job: `filter` and then `filters`.
pub fn all_filters(stats: &StatsJob) -> impl Iterator<Item = &Filter> {
    stats.filter.iter().chain(&stats.filters)
}

/// [`all_filters`], each with its field as a job file names it: `stats.filter` for the one
/// filter, `stats.filter[i]` for the `i`th of a list.
fn filter_fields(stats: &StatsJob) -> impl Iterator<Item = (String, &Filter)> {
    let one = stats.filter.iter().map(|f| ("stats.filter".to_string(), f));
    let listed = (stats.filters.iter().enumerate()).map(|(i, f)| (format!("stats.filter[{i}]"), f));
    one.chain(listed)
}

/// At least one column, none twice.
fn check_column_list(stats: &StatsJob, problems: &mut Problems) {
    if stats.columns.is_empty() {
        problems.push(missing("stats.columns", "name at least one numeric column"));
    }
    let mut cols = HashSet::new();
    for c in &stats.columns {
        if !cols.insert(c) {
            problems.push(SpecProblem::new(
                "stats.columns",
                ProblemKind::Duplicate { name: c.clone() },
            ));
        }
    }
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

/// A filter (`field`) on `column` of `ds`: it exists, is not a record id column (neither the
/// dataset's nor one of `id_columns`), and its predicate fits the column's type.
fn check_filter(
    field: &str,
    party: &str,
    ds: &DatasetSchema,
    column: &str,
    f: &Filter,
    id_columns: &[&str],
    problems: &mut Problems,
) {
    let column_field = format!("{field}.column");
    if column == ds.id_column || id_columns.contains(&column) {
        problems.push(SpecProblem::new(
            column_field.as_str(),
            ProblemKind::IdColumn {
                party: party.to_string(),
                column: column.to_string(),
            },
        ));
    }
    match (column_type(ds, column), &f.predicate) {
        (None, _) => problems.push(unknown_column(&column_field, party, ds, column)),
        (_, None) => problems.push(missing(field, "give `equals` or a range (`min`/`max`)")),
        (Some(found @ ColumnType::String), Some(filter::Predicate::Range(_))) => {
            problems.push(wrong_type(
                &column_field,
                party,
                ds,
                column,
                "numeric (a range needs numbers)",
                found,
            ))
        }
        (Some(ColumnType::Int | ColumnType::Float), Some(filter::Predicate::Equals(v)))
            if v.trim().parse::<f64>().is_err() =>
        {
            problems.push(bad_value(
                format!("{field}.equals"),
                format!("{v:?}"),
                "a number (the column is numeric)",
            ))
        }
        _ => {}
    }
}

/// Ranges with `min > max`.
fn check_ranges(stats: &StatsJob, problems: &mut Problems) {
    for (field, f) in filter_fields(stats) {
        if let Some(filter::Predicate::Range(r)) = &f.predicate
            && let (Some(lo), Some(hi)) = (r.min, r.max)
            && lo > hi
        {
            problems.push(SpecProblem::new(
                field,
                ProblemKind::RangeReversed {
                    min: lo.to_string(),
                    max: hi.to_string(),
                },
            ));
        }
    }
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

/// Checks what every job with a join needs: its protocol, three inputs (two or three data
/// parties named in `id_columns`, the rest a helper), id columns of text or integers, and a
/// well-formed `psi_job`.
fn check_join(
    spec: &JobSpec,
    join: &JoinSpec,
    datasets: &[(&str, &DatasetSchema)],
    problems: &mut Problems,
) {
    if spec.protocol != JOIN_STATS_PROTOCOL {
        problems.push(not_one_of(
            "protocol",
            &spec.protocol,
            &[JOIN_STATS_PROTOCOL],
        ));
    }
    if spec.inputs.len() != JOIN_PARTIES {
        problems.push(wrong_count(
            "inputs",
            spec.inputs.len(),
            count(JOIN_PARTIES),
            count(JOIN_PARTIES),
            "parties with a join (two data parties and a helper, or three data parties)",
        ));
    }
    if !(2..=3).contains(&join.id_columns.len()) {
        problems.push(wrong_count(
            "join.id_columns",
            join.id_columns.len(),
            2,
            3,
            "data parties (with 2, the third input is the join's helper)",
        ));
    }
    let named = |p: &str| spec.inputs.iter().any(|i| i.party == p);
    for p in join.id_columns.keys().filter(|p| !named(p)) {
        problems.push(not_an_input(format!("join.id_columns.{p}"), p));
    }
    if !join.psi_job.is_empty() && !is_job_id(&join.psi_job) {
        problems.push(bad_value(
            "join.psi_job",
            format!("{:?}", join.psi_job),
            "a job id",
        ));
    }
    let data = |p: &str| datasets.iter().find(|(q, _)| *q == p).map(|(_, d)| *d);
    for (party, column) in &join.id_columns {
        let Some(ds) = data(party) else { continue };
        check_id_column(
            &format!("join.id_columns.{party}"),
            party,
            ds,
            column,
            problems,
        );
    }
}

/// A `party.column` name (in `field`) of a job with a join: the party must hold data in the
/// join; returns the party, the column and the party's dataset (the column itself is the
/// caller's to check).
fn resolve<'a>(
    name: &'a str,
    field: &str,
    join: &JoinSpec,
    datasets: &[(&str, &'a DatasetSchema)],
    problems: &mut Problems,
) -> Option<(&'a str, &'a str, &'a DatasetSchema)> {
    let Some((party, column)) = qualified(name) else {
        problems.push(SpecProblem::new(
            field,
            ProblemKind::NotQualified {
                name: name.to_string(),
            },
        ));
        return None;
    };
    if !join.id_columns.contains_key(party) {
        problems.push(SpecProblem::new(
            field,
            ProblemKind::NotADataParty {
                name: name.to_string(),
                party: party.to_string(),
            },
        ));
        return None;
    }
    let ds = datasets
        .iter()
        .find(|(q, _)| *q == party)
        .map(|(_, d)| *d)?;
    Some((party, column, ds))
}

/// Checks a `stats` job with a join: [`check_join`], and `party.column` names for columns and
/// filters.
fn check_join_stats(
    spec: &JobSpec,
    stats: &StatsJob,
    join: &JoinSpec,
    datasets: &[(&str, &DatasetSchema)],
    problems: &mut Problems,
) {
    check_join(spec, join, datasets, problems);
    check_column_list(stats, problems);
    for c in &stats.columns {
        if let Some((party, column, ds)) = resolve(c, "stats.columns", join, datasets, problems) {
            check_value_column("stats.columns", party, ds, column, problems);
        }
    }
    for (field, f) in filter_fields(stats) {
        let column_field = format!("{field}.column");
        if let Some((party, column, ds)) =
            resolve(&f.column, &column_field, join, datasets, problems)
        {
            let id = join.id_columns.get(party).map(String::as_str);
            check_filter(&field, party, ds, column, f, id.as_slice(), problems);
        }
    }
    check_ranges(stats, problems);
}

/// Most features of one `train` job.
pub const MAX_TRAIN_FEATURES: usize = 4096;

/// Checks a `train` job (with its join): [`check_join`], numeric `party.column` features and
/// label (no id column, no repeats), the model and metric names, hyperparameters in range and a
/// well-formed model id.
fn check_join_train(
    spec: &JobSpec,
    train: &TrainJob,
    join: &JoinSpec,
    datasets: &[(&str, &DatasetSchema)],
    problems: &mut Problems,
) {
    check_join(spec, join, datasets, problems);
    let logistic = match train.model.as_str() {
        "" | "logistic" => true,
        "linear" => false,
        other => {
            problems.push(not_one_of("train.model", other, &MODELS));
            true
        }
    };
    if !(1..=MAX_TRAIN_FEATURES).contains(&train.features.len()) {
        problems.push(wrong_count(
            "train.features",
            train.features.len(),
            1,
            count(MAX_TRAIN_FEATURES),
            "features",
        ));
    }
    let named = (train.features.iter().map(|f| (f, "train.features")))
        .chain(std::iter::once((&train.label, "train.label")));
    let mut seen = HashSet::new();
    for (name, field) in named.clone() {
        if seen.insert(name.as_str()) {
            continue;
        }
        let kind = if field == "train.label" {
            // Features and label are distinct columns.
            ProblemKind::Conflict {
                with: "train.features".into(),
                value: name.clone(),
            }
        } else {
            ProblemKind::Duplicate { name: name.clone() }
        };
        problems.push(SpecProblem::new(field, kind));
    }
    for (name, field) in named {
        if let Some((party, column, ds)) = resolve(name, field, join, datasets, problems) {
            check_value_column(field, party, ds, column, problems);
            if join.id_columns.get(party).is_some_and(|id| id == column) {
                problems.push(SpecProblem::new(
                    field,
                    ProblemKind::IdColumn {
                        party: party.to_string(),
                        column: column.to_string(),
                    },
                ));
            }
        }
    }
    let rate = train.learning_rate;
    if !(rate == 0.0 || (rate.is_finite() && rate > 0.0 && rate < 16.0)) {
        problems.push(bad_value(
            "train.learning_rate",
            rate.to_string(),
            "a number above 0 and below 16 (0: the default)",
        ));
    }
    if train.epochs > 10_000 {
        problems.push(SpecProblem::new(
            "train.epochs",
            ProblemKind::TooLarge {
                value: train.epochs.into(),
                max: 10_000,
            },
        ));
    }
    if train.batch_size > 1 << 20 {
        problems.push(SpecProblem::new(
            "train.batch_size",
            ProblemKind::TooLarge {
                value: train.batch_size.into(),
                max: 1 << 20,
            },
        ));
    }
    if !(train.l2.is_finite() && (0.0..=1.0).contains(&train.l2)) {
        problems.push(bad_value(
            "train.l2",
            train.l2.to_string(),
            "a number in [0, 1]",
        ));
    }
    if !(train.holdout.is_finite() && (0.0..=0.5).contains(&train.holdout)) {
        problems.push(bad_value(
            "train.holdout",
            train.holdout.to_string(),
            "a number in [0, 0.5]",
        ));
    }
    match train.metric.as_str() {
        "" | "none" => {}
        "auc" | "accuracy" if !logistic => problems.push(not_allowed(
            "train.metric",
            "\"auc\" and \"accuracy\" apply to logistic regression",
        )),
        "auc" | "accuracy" if train.holdout == 0.0 => problems.push(missing(
            "train.holdout",
            "the metric needs held-out rows (e.g. 0.2)",
        )),
        "auc" | "accuracy" => {}
        other => problems.push(not_one_of(
            "train.metric",
            other,
            &["auc", "accuracy", "none"],
        )),
    }
    if !train.model_id.is_empty() && !is_job_id(&train.model_id) {
        problems.push(bad_value(
            "train.model_id",
            format!("{:?}", train.model_id),
            ID_FORM,
        ));
    }
    if spec.frac_bits != 0 && spec.frac_bits < 16 {
        problems.push(SpecProblem::new(
            "frac_bits",
            ProblemKind::TooSmall {
                value: spec.frac_bits.into(),
                min: 16,
            },
        ));
    }
    if spec.frac_bits > 20 {
        problems.push(SpecProblem::new(
            "frac_bits",
            ProblemKind::TooLarge {
                value: spec.frac_bits.into(),
                max: 20,
            },
        ));
    }
}

/// The outputs a `score` job may ask for.
pub const SCORE_OUTPUTS: [&str; 3] = ["score", "decision", "both"];

/// Checks a `score` job's own fields: with a clear model (`weights_party`), its public shape
/// (features at data parties, model kind); a stored model is checked against its training job
/// by [`check_model_reference`].
fn check_score(
    spec: &JobSpec,
    score: &ScoreJob,
    join: &JoinSpec,
    datasets: &[(&str, &DatasetSchema)],
    problems: &mut Problems,
) {
    if score.weights_party.is_empty() {
        if !score.features.is_empty() || !score.model.is_empty() || score.no_intercept {
            problems.push(missing(
                "score.weights_party",
                "features, model and intercept describe a clear model; set weights_party, or \
                 drop them (a stored model brings its own)",
            ));
        }
    } else {
        if !spec.inputs.iter().any(|i| i.party == score.weights_party) {
            problems.push(not_an_input("score.weights_party", &score.weights_party));
        }
        if !matches!(score.model.as_str(), "" | "logistic" | "linear") {
            problems.push(not_one_of("score.model", &score.model, &MODELS));
        }
        if !(1..=MAX_TRAIN_FEATURES).contains(&score.features.len()) {
            problems.push(wrong_count(
                "score.features",
                score.features.len(),
                1,
                count(MAX_TRAIN_FEATURES),
                "features (a clear model)",
            ));
        }
        for name in &score.features {
            if let Some((party, column, ds)) =
                resolve(name, "score.features", join, datasets, problems)
            {
                check_value_column("score.features", party, ds, column, problems);
            }
        }
    }
    if !is_job_id(&score.model_id) {
        problems.push(bad_value(
            "score.model_id",
            format!("{:?}", score.model_id),
            ID_FORM,
        ));
    }
    if !score.output.is_empty() && !SCORE_OUTPUTS.contains(&score.output.as_str()) {
        problems.push(not_one_of("score.output", &score.output, &SCORE_OUTPUTS));
    }
    if let Some(t) = score.threshold.filter(|t| !t.is_finite()) {
        problems.push(bad_value(
            "score.threshold",
            t.to_string(),
            "a finite number",
        ));
    }
    if !score.ids_from.is_empty() && !join.id_columns.contains_key(&score.ids_from) {
        problems.push(SpecProblem::new(
            "score.ids_from",
            ProblemKind::NotADataParty {
                name: score.ids_from.clone(),
                party: score.ids_from.clone(),
            },
        ));
    }
}

/// Most features of one `fhe-score` job.
pub const MAX_FHE_FEATURES: usize = 64;
/// Widest quantised feature of an `fhe-score` job, in bits.
pub const MAX_FHE_FEATURE_BITS: u32 = 16;
/// What an `fhe-score` job may release (`""` means `"scores"`).
pub const FHE_RELEASES: [&str; 3] = ["scores", "decisions", "aggregate"];

/// Checks an `fhe-score` job: its protocol, two inputs (the owner with a dataset, the evaluator
/// without), the model id, the features (numeric columns of the owner's dataset, each once,
/// with a bit width and a scale in range), what it releases and the id column.
fn check_fhe_score(
    spec: &JobSpec,
    fhe: &FheScoreJob,
    datasets: &[(&str, &DatasetSchema)],
    problems: &mut Problems,
) {
    if spec.protocol != FHE_PROTOCOL {
        problems.push(not_one_of("protocol", &spec.protocol, &[FHE_PROTOCOL]));
    }
    if spec.inputs.len() != 2 {
        problems.push(wrong_count(
            "inputs",
            spec.inputs.len(),
            2,
            2,
            "parties (the owner and the evaluator)",
        ));
    }
    let input = |p: &str| spec.inputs.iter().enumerate().find(|(_, i)| i.party == p);
    for (field, party) in [
        ("fhe_score.owner", &fhe.owner),
        ("fhe_score.evaluator", &fhe.evaluator),
    ] {
        if party.is_empty() {
            problems.push(missing(field, ""));
        } else if input(party).is_none() {
            problems.push(not_an_input(field, party));
        }
    }
    if !fhe.owner.is_empty() && fhe.owner == fhe.evaluator {
        problems.push(SpecProblem::new(
            "fhe_score.evaluator",
            ProblemKind::Conflict {
                with: "fhe_score.owner".into(),
                value: fhe.owner.clone(),
            },
        ));
    }
    if let Some((n, i)) = input(&fhe.owner)
        && i.dataset.is_empty()
    {
        problems.push(missing(
            format!("inputs[{n}].dataset"),
            "the owner's input names the dataset whose rows are encrypted",
        ));
    }
    if let Some((n, i)) = input(&fhe.evaluator)
        && !i.dataset.is_empty()
        && fhe.owner != fhe.evaluator
    {
        problems.push(not_allowed(
            format!("inputs[{n}].dataset"),
            "the evaluator holds the model, not data: drop its dataset",
        ));
    }
    if !is_job_id(&fhe.model_id) {
        problems.push(bad_value(
            "fhe_score.model_id",
            format!("{:?}", fhe.model_id),
            ID_FORM,
        ));
    }
    if !fhe.release.is_empty() && !FHE_RELEASES.contains(&fhe.release.as_str()) {
        problems.push(not_one_of("fhe_score.release", &fhe.release, &FHE_RELEASES));
    }
    if !(1..=MAX_FHE_FEATURES).contains(&fhe.features.len()) {
        problems.push(wrong_count(
            "fhe_score.features",
            fhe.features.len(),
            1,
            count(MAX_FHE_FEATURES),
            "features",
        ));
    }
    let owner_ds = datasets
        .iter()
        .find(|(p, _)| *p == fhe.owner)
        .map(|(_, d)| *d);
    let mut seen = HashSet::new();
    for (n, f) in fhe.features.iter().enumerate() {
        let field = format!("fhe_score.features[{n}]");
        let column_field = format!("{field}.column");
        if !seen.insert(f.column.as_str()) {
            problems.push(SpecProblem::new(
                column_field.as_str(),
                ProblemKind::Duplicate {
                    name: f.column.clone(),
                },
            ));
        }
        if let Some(ds) = owner_ds {
            check_value_column(&column_field, &fhe.owner, ds, &f.column, problems);
        }
        if f.bits == 0 {
            problems.push(SpecProblem::new(
                format!("{field}.bits"),
                ProblemKind::TooSmall { value: 0, min: 1 },
            ));
        } else if f.bits > MAX_FHE_FEATURE_BITS {
            problems.push(SpecProblem::new(
                format!("{field}.bits"),
                ProblemKind::TooLarge {
                    value: f.bits.into(),
                    max: MAX_FHE_FEATURE_BITS.into(),
                },
            ));
        }
        if !(f.scale.is_finite() && f.scale >= 0.0) {
            problems.push(bad_value(
                format!("{field}.scale"),
                f.scale.to_string(),
                "a finite number ≥ 0 (0 means 1)",
            ));
        }
    }
    if let Some(ds) = owner_ds
        && !fhe.id_column.is_empty()
        && column_type(ds, &fhe.id_column).is_none()
    {
        problems.push(unknown_column(
            "fhe_score.id_column",
            &fhe.owner,
            ds,
            &fhe.id_column,
        ));
    }
}

/// The model id a `train` job stores its model under: its `model_id`, or the job id.
pub fn trained_model_id(job: &Job) -> Option<&str> {
    match job.spec.as_ref()?.computation.as_ref()? {
        job_spec::Computation::Train(t) if t.model_id.is_empty() => Some(&job.id),
        job_spec::Computation::Train(t) => Some(&t.model_id),
        _ => None,
    }
}

/// Checks a `score` job against the `train` job that stored its model (`trained`, found by the
/// caller: the newest succeeded `train` job with that model id): the same parties in the same
/// order (each holds the share of its index), and every feature of the model a numeric column of
/// its party's dataset in this job.
pub fn check_model_reference(
    spec: &JobSpec,
    trained: Option<&Job>,
    parties: &BTreeMap<String, PartyInfo>,
) -> Result<(), JobError> {
    let Some(job_spec::Computation::Score(score)) = spec.computation.as_ref() else {
        return Ok(());
    };
    if !score.weights_party.is_empty() {
        // A clear model: no training job behind it.
        return Ok(());
    }
    const FIELD: &str = "score.model_id";
    let invalid =
        |field: &str, kind| Err(JobError::InvalidSpec(vec![SpecProblem::new(field, kind)]));
    let Some(trained) = trained.filter(|j| j.state() == JobState::Succeeded) else {
        return invalid(
            FIELD,
            ProblemKind::UnknownModel {
                model: score.model_id.clone(),
            },
        );
    };
    let Some(tspec) = trained.spec.as_ref() else {
        return invalid(
            FIELD,
            ProblemKind::Invalid {
                reason: format!("the training job {:?} has no spec", trained.id),
            },
        );
    };
    let Some(job_spec::Computation::Train(train)) = tspec.computation.as_ref() else {
        return invalid(
            FIELD,
            ProblemKind::WrongJobKind {
                job: trained.id.clone(),
                expected: "train",
                found: job_kind(tspec),
            },
        );
    };
    let order = |s: &JobSpec| s.inputs.iter().map(|i| i.party.clone()).collect::<Vec<_>>();
    if order(spec) != order(tspec) {
        return invalid(
            "inputs",
            ProblemKind::WrongParties {
                expected: order(tspec),
            },
        );
    }
    let mut problems = Vec::new();
    let join = spec.join.clone().unwrap_or_default();
    let datasets: Vec<(&str, &DatasetSchema)> = spec
        .inputs
        .iter()
        .filter_map(|i| {
            let ds = parties
                .get(&i.party)?
                .datasets
                .iter()
                .find(|d| d.name == i.dataset)?;
            Some((i.party.as_str(), ds))
        })
        .collect();
    // The model's features are not in this spec: the problems name the model.
    for name in &train.features {
        if let Some((party, column, ds)) = resolve(name, FIELD, &join, &datasets, &mut problems) {
            check_value_column(FIELD, party, ds, column, &mut problems);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(JobError::InvalidSpec(problems))
    }
}

/// Checks the `psi` job a join reuses (`referenced`, looked up by the caller): a succeeded
/// `psi` job that revealed the intersection to both data parties, over the same datasets and id
/// columns as the join.
pub fn check_psi_reference(
    spec: &JobSpec,
    referenced: Option<&Job>,
    parties: &BTreeMap<String, PartyInfo>,
) -> Result<(), JobError> {
    let Some(join) = spec.join.as_ref().filter(|j| !j.psi_job.is_empty()) else {
        return Ok(());
    };
    const FIELD: &str = "join.psi_job";
    let id = &join.psi_job;
    let bad = |kind| Err(JobError::InvalidSpec(vec![SpecProblem::new(FIELD, kind)]));
    let Some(job) = referenced else {
        return bad(ProblemKind::UnknownJob { job: id.clone() });
    };
    let psi_spec = job.spec.as_ref();
    let Some(job_spec::Computation::Psi(psi)) = psi_spec.and_then(|s| s.computation.as_ref())
    else {
        return bad(ProblemKind::WrongJobKind {
            job: id.clone(),
            expected: "psi",
            found: psi_spec.map_or("none", job_kind),
        });
    };
    if job.state() != JobState::Succeeded {
        return bad(ProblemKind::NotSucceeded {
            job: id.clone(),
            state: job.state(),
        });
    }
    let mut problems = Vec::new();
    let psi_parties: HashSet<&str> = psi_spec
        .map(|s| s.inputs.iter().map(|i| i.party.as_str()).collect())
        .unwrap_or_default();
    let data_parties: HashSet<&str> = join.id_columns.keys().map(String::as_str).collect();
    if psi_parties.len() > data_parties.len() {
        problems.push(wrong_count(
            FIELD,
            psi_parties.len(),
            count(data_parties.len()),
            count(data_parties.len()),
            "parties in the reused psi job (exactly the join's data parties)",
        ));
    }
    for (party, column) in &join.id_columns {
        if psi.reveal() != PsiReveal::Intersection || !psi.to.contains(party) {
            problems.push(SpecProblem::new(
                FIELD,
                ProblemKind::NotRevealedTo {
                    job: id.clone(),
                    party: party.clone(),
                },
            ));
        }
        let dataset = spec
            .inputs
            .iter()
            .find(|i| &i.party == party)
            .map(|i| i.dataset.as_str());
        let psi_dataset = psi_spec
            .and_then(|s| s.inputs.iter().find(|i| &i.party == party))
            .map(|i| i.dataset.as_str());
        let mismatch = |what, referenced: &str, here: &str| {
            SpecProblem::new(
                FIELD,
                ProblemKind::Mismatch {
                    job: id.clone(),
                    party: party.clone(),
                    what,
                    referenced: referenced.to_string(),
                    here: here.to_string(),
                },
            )
        };
        if psi_dataset != dataset {
            problems.push(mismatch(
                "dataset",
                psi_dataset.unwrap_or(""),
                dataset.unwrap_or(""),
            ));
            continue;
        }
        let declared = parties
            .get(party)
            .and_then(|p| p.datasets.iter().find(|d| Some(d.name.as_str()) == dataset))
            .map(|d| d.id_column.as_str());
        let psi_column = psi
            .id_columns
            .get(party)
            .map(String::as_str)
            .or(declared)
            .unwrap_or("");
        if psi_column != column {
            problems.push(mismatch("ids in column", psi_column, column));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(JobError::InvalidSpec(problems))
    }
}

/// Checks a `psi` job: 2 to [`MAX_PSI_PARTIES`] inputs, who learns what, and an id column of text
/// or integers at each.
fn check_psi(
    spec: &JobSpec,
    psi: &PsiJob,
    datasets: &[(&str, &DatasetSchema)],
    problems: &mut Problems,
) {
    let protocol: &'static [&'static str] = if spec.inputs.len() > 2 {
        &[PSI_MULTI_PROTOCOL]
    } else {
        &[PSI_PROTOCOL]
    };
    if spec.protocol != protocol[0] {
        problems.push(not_one_of("protocol", &spec.protocol, protocol));
    }
    if spec.inputs.len() > MAX_PSI_PARTIES {
        problems.push(wrong_count(
            "inputs",
            spec.inputs.len(),
            2,
            count(MAX_PSI_PARTIES),
            "parties in a psi job",
        ));
    }
    let named = |p: &str| spec.inputs.iter().any(|i| i.party == p);
    for p in psi.to.iter().filter(|p| !named(p)) {
        problems.push(not_an_input("psi.to", p));
    }
    let mut distinct = HashSet::new();
    for p in &psi.to {
        if !distinct.insert(p) {
            problems.push(SpecProblem::new(
                "psi.to",
                ProblemKind::Duplicate { name: p.clone() },
            ));
        }
    }
    match (psi.reveal(), psi.to.len()) {
        (PsiReveal::Unspecified, _) => problems.push(missing(
            "psi.reveal",
            "set \"intersection\" or \"cardinality\"",
        )),
        (_, 0) => problems.push(missing("psi.to", "name who learns the result")),
        (PsiReveal::Cardinality, n) if n > 1 => problems.push(wrong_count(
            "psi.to",
            n,
            1,
            1,
            "party for reveal = \"cardinality\"",
        )),
        _ => {}
    }
    for p in psi.id_columns.keys().filter(|p| !named(p)) {
        problems.push(not_an_input(format!("psi.id_columns.{p}"), p));
    }
    for (party, ds) in datasets {
        let field = format!("psi.id_columns.{party}");
        let column = psi
            .id_columns
            .get(*party)
            .map_or(ds.id_column.as_str(), String::as_str);
        if column.is_empty() {
            problems.push(missing(
                field,
                "the party's dataset declares no id column: name one",
            ));
            continue;
        }
        check_id_column(&field, party, ds, column, problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use treaty_proto::v1::{
        ColumnSchema, DatasetSchema, FheFeature, Filter, JobInput, JobOutput, NumericRange,
        StatsJob,
    };

    /// Asserts that `problems` has one on `field` whose kind matches the pattern.
    macro_rules! assert_problem {
        ($problems:expr, $field:expr, $kind:pat $(if $guard:expr)?) => {{
            let problems: &[SpecProblem] = &$problems;
            let field: &str = $field;
            assert!(
                problems
                    .iter()
                    .any(|p| p.field == field && matches!(&p.kind, $kind $(if $guard)?)),
                "no {field} problem matching {} in {problems:#?}",
                stringify!($kind $(if $guard)?),
            );
        }};
    }

    /// The problems of a refused spec.
    fn refused<T: std::fmt::Debug>(r: Result<T, JobError>) -> Vec<SpecProblem> {
        match r {
            Err(JobError::InvalidSpec(p)) => p,
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
    }

    fn registry() -> BTreeMap<String, PartyInfo> {
        let ds = DatasetSchema {
            name: "claims".into(),
            id_column: "claim_id".into(),
            columns: vec![
                ColumnSchema {
                    name: "claim_id".into(),
                    r#type: ColumnType::String as i32,
                },
                ColumnSchema {
                    name: "claim_amount".into(),
                    r#type: ColumnType::Float as i32,
                },
                ColumnSchema {
                    name: "age".into(),
                    r#type: ColumnType::Int as i32,
                },
            ],
        };
        ["hospital", "insurer"]
            .into_iter()
            .map(|id| {
                (
                    id.to_string(),
                    PartyInfo {
                        id: id.into(),
                        datasets: vec![ds.clone()],
                        ..Default::default()
                    },
                )
            })
            .collect()
    }

    fn spec(columns: &[&str], filter: Option<Filter>) -> JobSpec {
        JobSpec {
            inputs: ["hospital", "insurer"]
                .into_iter()
                .map(|p| JobInput {
                    party: p.into(),
                    dataset: "claims".into(),
                })
                .collect(),
            output: Some(JobOutput {
                recipient: "alice".into(),
                recipient_public_key: vec![9; 32],
            }),
            computation: Some(job_spec::Computation::Stats(StatsJob {
                columns: columns.iter().map(|c| c.to_string()).collect(),
                filter,
                filters: Vec::new(),
            })),
            ..Default::default()
        }
    }

    fn problems(spec: JobSpec) -> Vec<SpecProblem> {
        refused(validate_spec(spec, &registry()))
    }

    fn psi_spec(reveal: PsiReveal, to: &[&str]) -> JobSpec {
        let mut s = spec(&[], None);
        s.computation = Some(job_spec::Computation::Psi(PsiJob {
            reveal: reveal as i32,
            to: to.iter().map(|p| p.to_string()).collect(),
            id_columns: Default::default(),
        }));
        s
    }

    #[test]
    fn a_good_psi_spec_gets_its_protocol() {
        for (reveal, to) in [
            (PsiReveal::Intersection, &["hospital"][..]),
            (PsiReveal::Intersection, &["hospital", "insurer"][..]),
            (PsiReveal::Cardinality, &["insurer"][..]),
        ] {
            let s = validate_spec(psi_spec(reveal, to), &registry()).unwrap();
            assert_eq!(s.protocol, "psi-ecdh");
        }
    }

    #[test]
    fn psi_problems_are_named() {
        let p = problems(psi_spec(PsiReveal::Unspecified, &[]));
        assert_problem!(p, "psi.reveal", ProblemKind::Missing { .. });
        let p = problems(psi_spec(PsiReveal::Intersection, &[]));
        assert_problem!(p, "psi.to", ProblemKind::Missing { .. });
        let p = problems(psi_spec(PsiReveal::Cardinality, &["hospital", "insurer"]));
        assert_problem!(
            p,
            "psi.to",
            ProblemKind::WrongCount {
                got: 2,
                min: 1,
                max: 1,
                ..
            }
        );
        let p = problems(psi_spec(
            PsiReveal::Intersection,
            &["bank", "hospital", "hospital"],
        ));
        assert_problem!(p, "psi.to", ProblemKind::NotAnInput { party } if party == "bank");
        assert_problem!(p, "psi.to", ProblemKind::Duplicate { name } if name == "hospital");
        let mut s = psi_spec(PsiReveal::Intersection, &["hospital"]);
        if let Some(job_spec::Computation::Psi(psi)) = &mut s.computation {
            psi.id_columns
                .insert("hospital".into(), "claim_amount".into());
            psi.id_columns.insert("insurer".into(), "nope".into());
        }
        let p = problems(s);
        assert_problem!(
            p,
            "psi.id_columns.hospital",
            ProblemKind::WrongType {
                party,
                column,
                found: ColumnType::Float,
                ..
            } if party == "hospital" && column == "claim_amount"
        );
        assert_problem!(
            p,
            "psi.id_columns.insurer",
            ProblemKind::UnknownColumn { party, dataset, column }
                if party == "insurer" && dataset == "claims" && column == "nope"
        );
        let mut s = psi_spec(PsiReveal::Intersection, &["hospital"]);
        s.protocol = "additive".into();
        assert_problem!(
            problems(s),
            "protocol",
            ProblemKind::NotOneOf { value, allowed }
                if value == "additive" && *allowed == [PSI_PROTOCOL]
        );
    }

    /// Issue 4: three or more parties run the chain, up to [`MAX_PSI_PARTIES`].
    #[test]
    fn psi_with_three_or_more_parties_runs_the_chain() {
        let mut registry = registry();
        let names: Vec<String> = (0..MAX_PSI_PARTIES + 1).map(|i| format!("p{i}")).collect();
        let info = registry["hospital"].clone();
        for n in &names {
            registry.insert(
                n.clone(),
                PartyInfo {
                    id: n.clone(),
                    ..info.clone()
                },
            );
        }
        let with = |parties: &[String], reveal: PsiReveal, to: &[&str]| {
            let mut s = psi_spec(reveal, to);
            s.inputs = parties
                .iter()
                .map(|p| JobInput {
                    party: p.clone(),
                    dataset: "claims".into(),
                })
                .collect();
            validate_spec(s, &registry)
        };
        for to in [&["p0", "p1", "p2"][..], &["p1"], &["p0", "p2"]] {
            let s = with(&names[..3], PsiReveal::Intersection, to).unwrap();
            assert_eq!(s.protocol, PSI_MULTI_PROTOCOL);
        }
        let s = with(&names[..4], PsiReveal::Cardinality, &["p3"]).unwrap();
        assert_eq!(s.protocol, PSI_MULTI_PROTOCOL);
        let p = refused(with(&names[..3], PsiReveal::Cardinality, &["p0", "p1"]));
        assert_problem!(
            p,
            "psi.to",
            ProblemKind::WrongCount {
                got: 2,
                min: 1,
                max: 1,
                ..
            }
        );
        let p = refused(with(&names, PsiReveal::Intersection, &["p0"]));
        assert_problem!(
            p,
            "inputs",
            ProblemKind::WrongCount {
                got: 17,
                max: 16,
                ..
            }
        );
        let mut s = psi_spec(PsiReveal::Intersection, &["p0"]);
        s.inputs = names[..3]
            .iter()
            .map(|p| JobInput {
                party: p.clone(),
                dataset: "claims".into(),
            })
            .collect();
        s.protocol = PSI_PROTOCOL.into();
        assert_problem!(
            refused(validate_spec(s, &registry)),
            "protocol",
            ProblemKind::NotOneOf { value, allowed }
                if value == PSI_PROTOCOL && *allowed == [PSI_MULTI_PROTOCOL]
        );
    }

    #[test]
    fn a_good_spec_gets_defaults() {
        let s = validate_spec(spec(&["claim_amount", "age"], None), &registry()).unwrap();
        assert_eq!((s.protocol.as_str(), s.frac_bits), ("additive", 16));
    }

    #[test]
    fn unknown_party_dataset_and_column_are_named() {
        let mut s = spec(&["nope"], None);
        s.inputs.push(JobInput {
            party: "bank".into(),
            dataset: "claims".into(),
        });
        s.inputs[0].dataset = "other".into();
        let p = problems(s);
        assert_problem!(
            p,
            "inputs[2].party",
            ProblemKind::UnknownParty { party } if party == "bank"
        );
        assert_problem!(
            p,
            "inputs[0].dataset",
            ProblemKind::UnknownDataset { party, dataset }
                if party == "hospital" && dataset == "other"
        );
        assert_problem!(
            p,
            "stats.columns",
            ProblemKind::UnknownColumn { party, dataset, column }
                if party == "insurer" && dataset == "claims" && column == "nope"
        );
    }

    #[test]
    fn wrong_types_and_bad_filters_are_named() {
        let p = problems(spec(&["claim_id"], None));
        assert_problem!(
            p,
            "stats.columns",
            ProblemKind::WrongType {
                column,
                expected: "numeric",
                found: ColumnType::String,
                ..
            } if column == "claim_id"
        );
        let f = Filter {
            column: "claim_id".into(),
            predicate: Some(filter::Predicate::Range(NumericRange {
                min: Some(1.0),
                max: None,
            })),
        };
        assert_problem!(
            problems(spec(&["age"], Some(f))),
            "stats.filter.column",
            ProblemKind::WrongType {
                column,
                found: ColumnType::String,
                ..
            } if column == "claim_id"
        );
        let f = Filter {
            column: "age".into(),
            predicate: Some(filter::Predicate::Equals("forty".into())),
        };
        assert_problem!(
            problems(spec(&["age"], Some(f))),
            "stats.filter.equals",
            ProblemKind::BadValue { value, .. } if value == "\"forty\""
        );
        let f = Filter {
            column: "age".into(),
            predicate: Some(filter::Predicate::Range(NumericRange {
                min: Some(5.0),
                max: Some(1.0),
            })),
        };
        assert_problem!(
            problems(spec(&["age"], Some(f))),
            "stats.filter",
            ProblemKind::RangeReversed { min, max } if min == "5" && max == "1"
        );
    }

    /// Hospital and insurer with `patients` (patient_id, diabetic, claim_amount, plan), the bank
    /// with nothing.
    fn join_registry() -> BTreeMap<String, PartyInfo> {
        let col = |name: &str, ty: ColumnType| ColumnSchema {
            name: name.into(),
            r#type: ty as i32,
        };
        let ds = DatasetSchema {
            name: "patients".into(),
            id_column: "patient_id".into(),
            columns: vec![
                col("patient_id", ColumnType::String),
                col("diabetic", ColumnType::Int),
                col("claim_amount", ColumnType::Float),
                col("plan", ColumnType::String),
            ],
        };
        ["hospital", "insurer", "bank"]
            .into_iter()
            .map(|id| {
                let datasets = if id == "bank" {
                    vec![]
                } else {
                    vec![ds.clone()]
                };
                let info = PartyInfo {
                    id: id.into(),
                    datasets,
                    ..Default::default()
                };
                (id.to_string(), info)
            })
            .collect()
    }

    fn join_spec(columns: &[&str], filters: Vec<Filter>) -> JobSpec {
        let mut s = spec(columns, None);
        for i in &mut s.inputs {
            i.dataset = "patients".into();
        }
        s.inputs.push(JobInput {
            party: "bank".into(),
            dataset: String::new(),
        });
        if let Some(job_spec::Computation::Stats(st)) = &mut s.computation {
            st.filters = filters;
        }
        s.join = Some(JoinSpec {
            id_columns: [("hospital", "patient_id"), ("insurer", "patient_id")]
                .into_iter()
                .map(|(p, c)| (p.to_string(), c.to_string()))
                .collect(),
            psi_job: String::new(),
        });
        s
    }

    fn equals(column: &str, v: &str) -> Filter {
        Filter {
            column: column.into(),
            predicate: Some(filter::Predicate::Equals(v.into())),
        }
    }

    fn join_problems(spec: JobSpec) -> Vec<SpecProblem> {
        refused(validate_spec(spec, &join_registry()))
    }

    #[test]
    fn a_good_join_spec_runs_on_rep3() {
        let s = join_spec(
            &["insurer.claim_amount", "hospital.claim_amount"],
            vec![
                equals("hospital.diabetic", "1"),
                equals("insurer.plan", "basic"),
            ],
        );
        let s = validate_spec(s, &join_registry()).unwrap();
        assert_eq!(s.protocol, "rep3");
        let mut s = join_spec(&["insurer.claim_amount"], vec![]);
        s.protocol = "additive".into();
        assert_problem!(
            join_problems(s),
            "protocol",
            ProblemKind::NotOneOf { value, allowed }
                if value == "additive" && *allowed == [JOIN_STATS_PROTOCOL]
        );
    }

    fn train_spec(features: &[&str], label: &str) -> JobSpec {
        let mut s = join_spec(&["insurer.claim_amount"], vec![]);
        s.computation = Some(job_spec::Computation::Train(TrainJob {
            features: features.iter().map(|f| f.to_string()).collect(),
            label: label.into(),
            holdout: 0.2,
            metric: "auc".into(),
            ..Default::default()
        }));
        s
    }

    #[test]
    fn a_good_train_spec_runs_on_rep3_and_problems_are_named() {
        let s = train_spec(
            &["hospital.claim_amount", "insurer.claim_amount"],
            "hospital.diabetic",
        );
        assert_eq!(validate_spec(s, &join_registry()).unwrap().protocol, "rep3");
        let p = join_problems(train_spec(
            &["claim_amount", "bank.x", "insurer.plan"],
            "insurer.nope",
        ));
        assert_problem!(
            p,
            "train.features",
            ProblemKind::NotQualified { name } if name == "claim_amount"
        );
        assert_problem!(
            p,
            "train.features",
            ProblemKind::NotADataParty { name, party } if name == "bank.x" && party == "bank"
        );
        assert_problem!(
            p,
            "train.features",
            ProblemKind::WrongType {
                party,
                column,
                found: ColumnType::String,
                ..
            } if party == "insurer" && column == "plan"
        );
        assert_problem!(
            p,
            "train.label",
            ProblemKind::UnknownColumn { party, column, .. }
                if party == "insurer" && column == "nope"
        );
        let p = join_problems(train_spec(&["hospital.patient_id"], "hospital.patient_id"));
        assert_problem!(
            p,
            "train.label",
            ProblemKind::Conflict { with, value }
                if with == "train.features" && value == "hospital.patient_id"
        );
        assert_problem!(
            p,
            "train.features",
            ProblemKind::IdColumn { party, column } if party == "hospital" && column == "patient_id"
        );
        let mut s = train_spec(&["hospital.claim_amount"], "insurer.diabetic");
        if let Some(job_spec::Computation::Train(t)) = &mut s.computation {
            t.model = "forest".into();
            t.learning_rate = -1.0;
            t.holdout = 0.9;
            t.metric = "f1".into();
            t.model_id = "../etc".into();
            t.l2 = f64::NAN;
        }
        s.frac_bits = 30;
        let p = join_problems(s);
        assert_problem!(
            p,
            "train.model",
            ProblemKind::NotOneOf { value, allowed }
                if value == "forest" && *allowed == ["logistic", "linear"]
        );
        assert_problem!(
            p,
            "train.learning_rate",
            ProblemKind::BadValue { value, .. } if value == "-1"
        );
        assert_problem!(
            p,
            "train.holdout",
            ProblemKind::BadValue { value, .. } if value == "0.9"
        );
        assert_problem!(
            p,
            "train.metric",
            ProblemKind::NotOneOf { value, .. } if value == "f1"
        );
        assert_problem!(
            p,
            "train.model_id",
            ProblemKind::BadValue { value, .. } if value == "\"../etc\""
        );
        assert_problem!(
            p,
            "train.l2",
            ProblemKind::BadValue { value, .. } if value == "NaN"
        );
        assert_problem!(p, "frac_bits", ProblemKind::TooLarge { value: 30, max: 20 });
        let mut s = train_spec(&["hospital.claim_amount"], "insurer.diabetic");
        s.frac_bits = 12;
        assert_problem!(
            join_problems(s),
            "frac_bits",
            ProblemKind::TooSmall { value: 12, min: 16 }
        );
        let mut s = train_spec(&["hospital.claim_amount"], "insurer.diabetic");
        s.join = None;
        assert_problem!(
            join_problems(s),
            "join",
            ProblemKind::Missing { hint } if hint.starts_with("train runs on vertically split")
        );
        let mut s = train_spec(&["hospital.claim_amount"], "insurer.claim_amount");
        if let Some(job_spec::Computation::Train(t)) = &mut s.computation {
            t.model = "linear".into();
        }
        assert_problem!(
            join_problems(s),
            "train.metric",
            ProblemKind::NotAllowed { .. }
        );
    }

    #[test]
    fn score_specs_are_checked() {
        let score = |sc: ScoreJob| {
            let mut s = train_spec(&["hospital.claim_amount"], "insurer.diabetic");
            s.computation = Some(job_spec::Computation::Score(sc));
            s
        };
        let ok = score(ScoreJob {
            model_id: "m-1".into(),
            output: "both".into(),
            threshold: Some(0.3),
            ids_from: "insurer".into(),
            ..Default::default()
        });
        assert_eq!(
            validate_spec(ok, &join_registry()).unwrap().protocol,
            "rep3"
        );
        let p = join_problems(score(ScoreJob {
            model_id: "../x".into(),
            output: "all".into(),
            threshold: Some(f64::INFINITY),
            ids_from: "bank".into(),
            features: vec!["hospital.claim_amount".into()],
            ..Default::default()
        }));
        assert_problem!(
            p,
            "score.model_id",
            ProblemKind::BadValue { value, .. } if value == "\"../x\""
        );
        assert_problem!(
            p,
            "score.output",
            ProblemKind::NotOneOf { value, allowed }
                if value == "all" && *allowed == SCORE_OUTPUTS
        );
        assert_problem!(
            p,
            "score.threshold",
            ProblemKind::BadValue { value, expected: "a finite number" } if value == "inf"
        );
        assert_problem!(
            p,
            "score.ids_from",
            ProblemKind::NotADataParty { party, .. } if party == "bank"
        );
        assert_problem!(p, "score.weights_party", ProblemKind::Missing { .. });
        let p = join_problems(score(ScoreJob {
            model_id: "m".into(),
            weights_party: "nobody".into(),
            model: "tree".into(),
            features: vec!["hospital.plan".into(), "bank.x".into()],
            ..Default::default()
        }));
        assert_problem!(
            p,
            "score.weights_party",
            ProblemKind::NotAnInput { party } if party == "nobody"
        );
        assert_problem!(
            p,
            "score.model",
            ProblemKind::NotOneOf { value, .. } if value == "tree"
        );
        assert_problem!(
            p,
            "score.features",
            ProblemKind::WrongType {
                column,
                found: ColumnType::String,
                ..
            } if column == "plan"
        );
        assert_problem!(
            p,
            "score.features",
            ProblemKind::NotADataParty { name, party } if name == "bank.x" && party == "bank"
        );
        // A stored model must come from a succeeded train job over the same parties, in order.
        let spec = score(ScoreJob {
            model_id: "m".into(),
            ..Default::default()
        });
        let p = refused(check_model_reference(&spec, None, &join_registry()));
        assert_eq!(
            p,
            [SpecProblem::new(
                "score.model_id",
                ProblemKind::UnknownModel { model: "m".into() }
            )]
        );
        let trained = Job {
            id: "job-1".into(),
            state: JobState::Succeeded as i32,
            spec: Some(train_spec(&["hospital.claim_amount"], "insurer.diabetic")),
            ..Default::default()
        };
        assert_eq!(trained_model_id(&trained), Some("job-1"));
        check_model_reference(&spec, Some(&trained), &join_registry()).unwrap();
        let mut swapped = spec.clone();
        swapped.inputs.swap(0, 1);
        let p = refused(check_model_reference(
            &swapped,
            Some(&trained),
            &join_registry(),
        ));
        assert_problem!(
            p,
            "inputs",
            ProblemKind::WrongParties { expected } if *expected == ["hospital", "insurer", "bank"]
        );
        let mut other = trained.clone();
        if let Some(job_spec::Computation::Train(t)) =
            other.spec.as_mut().and_then(|s| s.computation.as_mut())
        {
            t.features = vec!["hospital.nope".into()];
        }
        let p = refused(check_model_reference(&spec, Some(&other), &join_registry()));
        assert_problem!(
            p,
            "score.model_id",
            ProblemKind::UnknownColumn { party, column, .. }
                if party == "hospital" && column == "nope"
        );
        let mut psi = other.clone();
        psi.spec = Some(psi_spec(PsiReveal::Intersection, &["hospital"]));
        let p = refused(check_model_reference(&spec, Some(&psi), &join_registry()));
        assert_problem!(
            p,
            "score.model_id",
            ProblemKind::WrongJobKind {
                expected: "train",
                found: "psi",
                ..
            }
        );
    }

    #[test]
    fn join_columns_and_filters_name_their_party() {
        let p = join_problems(join_spec(
            &[
                "claim_amount",
                "bank.claim_amount",
                "nobody.x",
                "insurer.nope",
                "insurer.plan",
            ],
            vec![
                equals("bank.diabetic", "1"),
                equals("hospital.nope", "1"),
                equals("hospital.patient_id", "P1"),
                equals("diabetic", "1"),
            ],
        ));
        assert_problem!(
            p,
            "stats.columns",
            ProblemKind::NotQualified { name } if name == "claim_amount"
        );
        assert_problem!(
            p,
            "stats.columns",
            ProblemKind::NotADataParty { name, party }
                if name == "bank.claim_amount" && party == "bank"
        );
        assert_problem!(
            p,
            "stats.columns",
            ProblemKind::NotADataParty { name, party } if name == "nobody.x" && party == "nobody"
        );
        assert_problem!(
            p,
            "stats.columns",
            ProblemKind::UnknownColumn { party, dataset, column }
                if party == "insurer" && dataset == "patients" && column == "nope"
        );
        assert_problem!(
            p,
            "stats.columns",
            ProblemKind::WrongType {
                party,
                column,
                expected: "numeric",
                found: ColumnType::String,
                ..
            } if party == "insurer" && column == "plan"
        );
        assert_problem!(
            p,
            "stats.filter[0].column",
            ProblemKind::NotADataParty { name, party }
                if name == "bank.diabetic" && party == "bank"
        );
        assert_problem!(
            p,
            "stats.filter[1].column",
            ProblemKind::UnknownColumn { party, dataset, column }
                if party == "hospital" && dataset == "patients" && column == "nope"
        );
        assert_problem!(
            p,
            "stats.filter[2].column",
            ProblemKind::IdColumn { party, column } if party == "hospital" && column == "patient_id"
        );
        assert_problem!(
            p,
            "stats.filter[3].column",
            ProblemKind::NotQualified { name } if name == "diabetic"
        );
    }

    #[test]
    fn join_structure_problems_are_named() {
        // A third data party without the dataset, a helper with a dataset, an id column that
        // is missing or a float, a psi_job that is no job id.
        let mut s = join_spec(&["insurer.claim_amount"], vec![]);
        let join = s.join.as_mut().unwrap();
        join.id_columns.insert("bank".into(), "customer_id".into());
        join.psi_job = "../../etc/passwd".into();
        let p = join_problems(s);
        assert!(!p.iter().any(|p| p.field == "join.id_columns"), "{p:#?}");
        assert_problem!(
            p,
            "join.psi_job",
            ProblemKind::BadValue { value, .. } if value == "\"../../etc/passwd\""
        );
        assert_problem!(
            p,
            "inputs[2].dataset",
            ProblemKind::UnknownDataset { party, dataset } if party == "bank" && dataset.is_empty()
        );

        let mut s = join_spec(&["insurer.claim_amount"], vec![]);
        s.inputs[2].dataset = "patients".into();
        let join = s.join.as_mut().unwrap();
        join.id_columns
            .insert("insurer".into(), "claim_amount".into());
        join.id_columns.insert("hospital".into(), "nope".into());
        let p = join_problems(s);
        assert_problem!(p, "inputs[2].dataset", ProblemKind::NotAllowed { .. });
        assert_problem!(
            p,
            "join.id_columns.insurer",
            ProblemKind::WrongType {
                party,
                column,
                found: ColumnType::Float,
                ..
            } if party == "insurer" && column == "claim_amount"
        );
        assert_problem!(
            p,
            "join.id_columns.hospital",
            ProblemKind::UnknownColumn { party, column, .. }
                if party == "hospital" && column == "nope"
        );

        let mut s = join_spec(&["insurer.claim_amount"], vec![]);
        s.inputs.pop();
        assert_problem!(
            join_problems(s),
            "inputs",
            ProblemKind::WrongCount {
                got: 2,
                min: 3,
                max: 3,
                ..
            }
        );
        let mut s = join_spec(&["insurer.claim_amount"], vec![]);
        s.join.as_mut().unwrap().id_columns.remove("hospital");
        assert_problem!(
            join_problems(s),
            "join.id_columns",
            ProblemKind::WrongCount {
                got: 1,
                min: 2,
                max: 3,
                ..
            }
        );
        let mut s = join_spec(&["insurer.claim_amount"], vec![]);
        let join = s.join.as_mut().unwrap();
        join.id_columns.insert("nobody".into(), "id".into());
        assert_problem!(
            join_problems(s),
            "join.id_columns.nobody",
            ProblemKind::NotAnInput { party } if party == "nobody"
        );
        let mut s = psi_spec(PsiReveal::Intersection, &["hospital"]);
        s.join = join_spec(&[], vec![]).join;
        assert_problem!(join_problems(s), "join", ProblemKind::NotAllowed { .. });
    }

    #[test]
    fn a_reused_psi_job_must_fit_the_join() {
        let registry = join_registry();
        let mut spec = join_spec(&["insurer.claim_amount"], vec![]);
        spec.join.as_mut().unwrap().psi_job = "job-1".into();
        let mut psi = psi_spec(PsiReveal::Intersection, &["hospital", "insurer"]);
        for i in &mut psi.inputs {
            i.dataset = "patients".into();
        }
        let job = |state: JobState, psi: &JobSpec| Job {
            id: "job-1".into(),
            spec: Some(psi.clone()),
            state: state as i32,
            ..Default::default()
        };
        let check = |j: Option<&Job>| check_psi_reference(&spec, j, &registry);
        check(Some(&job(JobState::Succeeded, &psi))).unwrap();
        let err = |j: Option<&Job>| refused(check(j));
        let only = |kind| vec![SpecProblem::new("join.psi_job", kind)];
        assert_eq!(
            err(None),
            only(ProblemKind::UnknownJob {
                job: "job-1".into()
            })
        );
        assert_eq!(
            err(Some(&job(JobState::Failed, &psi))),
            only(ProblemKind::NotSucceeded {
                job: "job-1".into(),
                state: JobState::Failed
            })
        );
        assert_eq!(
            err(Some(&job(JobState::Succeeded, &spec))),
            only(ProblemKind::WrongJobKind {
                job: "job-1".into(),
                expected: "psi",
                found: "stats"
            })
        );
        let narrow = psi_spec(PsiReveal::Intersection, &["hospital"]);
        let p = err(Some(&job(JobState::Succeeded, &narrow)));
        assert_problem!(
            p,
            "join.psi_job",
            ProblemKind::NotRevealedTo { job, party } if job == "job-1" && party == "insurer"
        );
        assert_problem!(
            p,
            "join.psi_job",
            ProblemKind::Mismatch {
                party,
                what: "dataset",
                referenced,
                here,
                ..
            } if party == "hospital" && referenced == "claims" && here == "patients"
        );
        let mut other_column = psi.clone();
        if let Some(job_spec::Computation::Psi(p)) = &mut other_column.computation {
            p.id_columns.insert("insurer".into(), "plan".into());
        }
        let p = err(Some(&job(JobState::Succeeded, &other_column)));
        assert_eq!(
            p,
            only(ProblemKind::Mismatch {
                job: "job-1".into(),
                party: "insurer".into(),
                what: "ids in column",
                referenced: "plan".into(),
                here: "patient_id".into(),
            })
        );
        // A three-party intersection is not the two data parties' intersection.
        let mut wide = psi.clone();
        wide.inputs.push(JobInput {
            party: "bank".into(),
            dataset: "patients".into(),
        });
        let p = err(Some(&job(JobState::Succeeded, &wide)));
        assert_problem!(
            p,
            "join.psi_job",
            ProblemKind::WrongCount {
                got: 3,
                min: 2,
                max: 2,
                ..
            }
        );
        // No psi_job: nothing to check.
        spec.join.as_mut().unwrap().psi_job.clear();
        check_psi_reference(&spec, None, &registry).unwrap();
    }

    /// The insurer encrypts `claims` (claim_amount, age) for the hospital's model.
    fn fhe_spec() -> JobSpec {
        let mut s = spec(&[], None);
        s.inputs[0].dataset.clear();
        let feature = |column: &str, bits, scale| FheFeature {
            column: column.into(),
            bits,
            scale,
        };
        s.computation = Some(job_spec::Computation::FheScore(FheScoreJob {
            owner: "insurer".into(),
            evaluator: "hospital".into(),
            model_id: "fraud-fhe-1".into(),
            features: vec![feature("claim_amount", 16, 0.01), feature("age", 7, 0.0)],
            release: String::new(),
            id_column: "claim_id".into(),
        }));
        s
    }

    /// [`registry`], and the insurer's `wide` dataset: numeric columns `c0` to `c64`.
    fn fhe_registry() -> BTreeMap<String, PartyInfo> {
        let mut r = registry();
        let wide = DatasetSchema {
            name: "wide".into(),
            id_column: String::new(),
            columns: (0..=MAX_FHE_FEATURES)
                .map(|i| ColumnSchema {
                    name: format!("c{i}"),
                    r#type: ColumnType::Int as i32,
                })
                .collect(),
        };
        if let Some(insurer) = r.get_mut("insurer") {
            insurer.datasets.push(wide);
        }
        r
    }

    /// `n` features `c0`.. of the `wide` dataset.
    fn wide_features(s: &mut JobSpec, n: usize) {
        s.inputs[1].dataset = "wide".into();
        let f = fhe(s);
        f.id_column.clear();
        f.features = (0..n)
            .map(|i| FheFeature {
                column: format!("c{i}"),
                bits: 16,
                scale: 0.0,
            })
            .collect();
    }

    fn fhe(s: &mut JobSpec) -> &mut FheScoreJob {
        match &mut s.computation {
            Some(job_spec::Computation::FheScore(f)) => f,
            other => panic!("not an fhe-score spec: {other:?}"),
        }
    }

    /// `edit` applied to [`fhe_spec`] yields exactly the problems `want` (field, kind), in order.
    fn assert_fhe_problems(
        case: &str,
        edit: impl FnOnce(&mut JobSpec),
        want: &[(&str, ProblemKind)],
    ) {
        let mut s = fhe_spec();
        edit(&mut s);
        let got = match validate_spec(s, &fhe_registry()) {
            Err(JobError::InvalidSpec(p)) => p,
            other => panic!("{case}: expected InvalidSpec, got {other:?}"),
        };
        let want: Vec<SpecProblem> = want
            .iter()
            .map(|(field, kind)| SpecProblem::new(*field, kind.clone()))
            .collect();
        assert_eq!(got, want, "{case}");
    }

    /// `edit` applied to [`fhe_spec`] yields exactly one problem, on `field`, matching `kind`.
    fn assert_fhe_problem(
        case: &str,
        edit: impl FnOnce(&mut JobSpec),
        field: &str,
        kind: impl Fn(&ProblemKind) -> bool,
    ) {
        let mut s = fhe_spec();
        edit(&mut s);
        let got = match validate_spec(s, &fhe_registry()) {
            Err(JobError::InvalidSpec(p)) => p,
            other => panic!("{case}: expected InvalidSpec, got {other:?}"),
        };
        assert_eq!(got.len(), 1, "{case}: {got:#?}");
        assert_eq!(got[0].field, field, "{case}: {got:#?}");
        assert!(kind(&got[0].kind), "{case}: {got:#?}");
    }

    fn party(p: &str) -> String {
        p.to_string()
    }

    #[test]
    fn a_good_fhe_score_spec_runs_on_fhe() {
        let s = validate_spec(fhe_spec(), &fhe_registry()).unwrap();
        assert_eq!(s.protocol, FHE_PROTOCOL);
        // Any release, either input order, an explicit protocol, no id column.
        for release in ["scores", "decisions", "aggregate"] {
            let mut s = fhe_spec();
            s.protocol = "fhe".into();
            s.inputs.swap(0, 1);
            fhe(&mut s).release = release.into();
            fhe(&mut s).id_column.clear();
            let mut s = validate_spec(s, &fhe_registry()).unwrap();
            assert_eq!(fhe(&mut s).release, release);
        }
        // The most features, at the widest bits.
        let mut s = fhe_spec();
        wide_features(&mut s, MAX_FHE_FEATURES);
        let mut s = validate_spec(s, &fhe_registry()).unwrap();
        assert_eq!(fhe(&mut s).features.len(), 64);
        // Its model is the evaluator's file: no train job stored it, and it stores none.
        let job = Job {
            id: "job-1".into(),
            state: JobState::Succeeded as i32,
            spec: Some(s.clone()),
            ..Default::default()
        };
        assert_eq!(trained_model_id(&job), None);
        check_model_reference(&s, None, &fhe_registry()).unwrap();
    }

    #[test]
    fn fhe_score_protocol_and_join_are_checked() {
        assert_fhe_problems(
            "protocol",
            |s| s.protocol = "rep3".into(),
            &[(
                "protocol",
                ProblemKind::NotOneOf {
                    value: "rep3".into(),
                    allowed: &[FHE_PROTOCOL],
                },
            )],
        );
        assert_fhe_problem(
            "join",
            |s| s.join = join_spec(&[], vec![]).join,
            "join",
            |k| matches!(k, ProblemKind::NotAllowed { reason } if reason.contains("fhe-score")),
        );
        // With a join and no protocol, the default is still "fhe".
        let mut s = fhe_spec();
        s.join = join_spec(&[], vec![]).join;
        let p = refused(validate_spec(s, &registry()));
        assert!(!p.iter().any(|p| p.field == "protocol"), "{p:#?}");
    }

    #[test]
    fn fhe_score_parties_are_checked() {
        assert_fhe_problems(
            "three inputs",
            |s| {
                s.inputs.push(JobInput {
                    party: "bank".into(),
                    dataset: String::new(),
                })
            },
            &[
                (
                    "inputs[2].party",
                    ProblemKind::UnknownParty {
                        party: party("bank"),
                    },
                ),
                (
                    "inputs",
                    ProblemKind::WrongCount {
                        got: 3,
                        min: 2,
                        max: 2,
                        of: "parties (the owner and the evaluator)",
                    },
                ),
            ],
        );
        assert_fhe_problems(
            "one input",
            |s| s.inputs.truncate(1),
            &[
                (
                    "inputs",
                    ProblemKind::WrongCount {
                        got: 1,
                        min: 2,
                        max: 64,
                        of: "parties",
                    },
                ),
                (
                    "inputs",
                    ProblemKind::WrongCount {
                        got: 1,
                        min: 2,
                        max: 2,
                        of: "parties (the owner and the evaluator)",
                    },
                ),
                (
                    "fhe_score.owner",
                    ProblemKind::NotAnInput {
                        party: party("insurer"),
                    },
                ),
            ],
        );
        assert_fhe_problems(
            "no owner",
            |s| fhe(s).owner.clear(),
            &[("fhe_score.owner", ProblemKind::Missing { hint: "" })],
        );
        assert_fhe_problems(
            "owner not an input",
            |s| fhe(s).owner = "bank".into(),
            &[(
                "fhe_score.owner",
                ProblemKind::NotAnInput {
                    party: party("bank"),
                },
            )],
        );
        assert_fhe_problems(
            "evaluator not an input",
            |s| fhe(s).evaluator = "bank".into(),
            &[(
                "fhe_score.evaluator",
                ProblemKind::NotAnInput {
                    party: party("bank"),
                },
            )],
        );
        assert_fhe_problems(
            "unregistered party",
            |s| {
                s.inputs[0].party = "bank".into();
                fhe(s).evaluator = "bank".into();
            },
            &[(
                "inputs[0].party",
                ProblemKind::UnknownParty {
                    party: party("bank"),
                },
            )],
        );
        assert_fhe_problems(
            "one party both roles",
            |s| fhe(s).evaluator = "insurer".into(),
            &[(
                "fhe_score.evaluator",
                ProblemKind::Conflict {
                    with: "fhe_score.owner".into(),
                    value: party("insurer"),
                },
            )],
        );
        assert_fhe_problem(
            "owner without dataset",
            |s| s.inputs[1].dataset.clear(),
            "inputs[1].dataset",
            |k| matches!(k, ProblemKind::Missing { hint } if hint.contains("owner")),
        );
        assert_fhe_problems(
            "owner with an unknown dataset",
            |s| s.inputs[1].dataset = "other".into(),
            &[(
                "inputs[1].dataset",
                ProblemKind::UnknownDataset {
                    party: party("insurer"),
                    dataset: "other".into(),
                },
            )],
        );
        assert_fhe_problem(
            "evaluator with dataset",
            |s| s.inputs[0].dataset = "claims".into(),
            "inputs[0].dataset",
            |k| matches!(k, ProblemKind::NotAllowed { reason } if reason.contains("evaluator")),
        );
    }

    #[test]
    fn fhe_score_model_and_release_are_checked() {
        for id in ["", "../models/x", "m".repeat(65).as_str()] {
            assert_fhe_problems(
                "model id",
                |s| fhe(s).model_id = id.into(),
                &[(
                    "fhe_score.model_id",
                    ProblemKind::BadValue {
                        value: format!("{id:?}"),
                        expected: ID_FORM,
                    },
                )],
            );
        }
        assert_fhe_problems(
            "release",
            |s| fhe(s).release = "score".into(),
            &[(
                "fhe_score.release",
                ProblemKind::NotOneOf {
                    value: "score".into(),
                    allowed: &FHE_RELEASES,
                },
            )],
        );
    }

    #[test]
    fn fhe_score_features_are_checked() {
        let count = |got| ProblemKind::WrongCount {
            got,
            min: 1,
            max: 64,
            of: "features",
        };
        assert_fhe_problems(
            "no features",
            |s| fhe(s).features.clear(),
            &[("fhe_score.features", count(0))],
        );
        assert_fhe_problems(
            "65 features",
            |s| wide_features(s, MAX_FHE_FEATURES + 1),
            &[("fhe_score.features", count(65))],
        );
        let claims = |column: &str| ProblemKind::UnknownColumn {
            party: party("insurer"),
            dataset: "claims".into(),
            column: column.into(),
        };
        assert_fhe_problems(
            "missing column",
            |s| fhe(s).features[0].column = "nope".into(),
            &[("fhe_score.features[0].column", claims("nope"))],
        );
        assert_fhe_problems(
            "text column",
            |s| fhe(s).features[1].column = "claim_id".into(),
            &[(
                "fhe_score.features[1].column",
                ProblemKind::WrongType {
                    party: party("insurer"),
                    dataset: "claims".into(),
                    column: "claim_id".into(),
                    expected: "numeric",
                    found: ColumnType::String,
                },
            )],
        );
        assert_fhe_problems(
            "repeated column",
            |s| fhe(s).features[1].column = "claim_amount".into(),
            &[(
                "fhe_score.features[1].column",
                ProblemKind::Duplicate {
                    name: "claim_amount".into(),
                },
            )],
        );
        for (bits, kind) in [
            (0, ProblemKind::TooSmall { value: 0, min: 1 }),
            (17, ProblemKind::TooLarge { value: 17, max: 16 }),
        ] {
            assert_fhe_problems(
                "bits",
                |s| fhe(s).features[1].bits = bits,
                &[("fhe_score.features[1].bits", kind)],
            );
        }
        for scale in [-0.5, f64::NAN, f64::INFINITY] {
            assert_fhe_problem(
                "scale",
                |s| fhe(s).features[0].scale = scale,
                "fhe_score.features[0].scale",
                |k| matches!(k, ProblemKind::BadValue { value, .. } if *value == scale.to_string()),
            );
        }
        assert_fhe_problems(
            "id column",
            |s| fhe(s).id_column = "patient_id".into(),
            &[("fhe_score.id_column", claims("patient_id"))],
        );
    }

    #[test]
    fn horizontal_stats_take_a_filter_list() {
        let mut s = spec(&["age"], None);
        if let Some(job_spec::Computation::Stats(st)) = &mut s.computation {
            st.filters = vec![equals("age", "x"), equals("nope", "1")];
        }
        let p = problems(s);
        assert_problem!(
            p,
            "stats.filter[0].equals",
            ProblemKind::BadValue { value, .. } if value == "\"x\""
        );
        assert_problem!(
            p,
            "stats.filter[1].column",
            ProblemKind::UnknownColumn { column, .. } if column == "nope"
        );
    }

    #[test]
    fn structural_problems_are_named() {
        let mut s = spec(&["age", "age"], None);
        s.inputs.truncate(1);
        s.output = None;
        s.frac_bits = 63;
        let p = problems(s);
        assert_problem!(
            p,
            "inputs",
            ProblemKind::WrongCount {
                got: 1,
                min: 2,
                max: 64,
                ..
            }
        );
        assert_problem!(
            p,
            "output.recipient_public_key",
            ProblemKind::Missing { .. }
        );
        assert_problem!(p, "frac_bits", ProblemKind::TooLarge { value: 63, max: 40 });
        assert_problem!(
            p,
            "stats.columns",
            ProblemKind::Duplicate { name } if name == "age"
        );
        let mut s = spec(&["age"], None);
        s.output.as_mut().unwrap().recipient_public_key.pop();
        assert_problem!(
            problems(s),
            "output.recipient_public_key",
            ProblemKind::WrongCount {
                got: 31,
                min: 32,
                max: 32,
                ..
            }
        );
        let f = Filter {
            column: "claim_id".into(),
            predicate: Some(filter::Predicate::Equals("C-1".into())),
        };
        assert_problem!(
            problems(spec(&["age"], Some(f))),
            "stats.filter.column",
            ProblemKind::IdColumn { column, .. } if column == "claim_id"
        );
        let mut s = spec(&["age"], None);
        s.computation = None;
        assert_problem!(problems(s), "computation", ProblemKind::Missing { .. });
        let mut s = spec(&[], None);
        s.inputs.truncate(0);
        let p = problems(s);
        assert_problem!(p, "stats.columns", ProblemKind::Missing { .. });
        assert_problem!(p, "inputs", ProblemKind::WrongCount { got: 0, .. });
    }
}
