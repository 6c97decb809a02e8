//! Checks a submitted job spec against the registry: parties, datasets, columns and types.
//!
//! Every problem is collected so the analyst can fix the spec in one go. Parties check the job
//! again against their own datasets (the registry holds only what they published).

use std::collections::{BTreeMap, HashSet};

use treaty_proto::v1::{
    ColumnType, DatasetSchema, FheScoreJob, Filter, Job, JobSpec, JobState, JoinSpec, PartyInfo,
    PsiJob, PsiReveal, ScoreJob, StatsJob, TrainJob, filter, job_spec,
};

use crate::JobError;

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
        problems.push(format!(
            "frac_bits is {}, at most {MAX_FRAC_BITS} is allowed",
            spec.frac_bits
        ));
    }
    if spec.inputs.len() < 2 {
        problems.push(format!(
            "a job needs at least 2 parties, the spec names {}",
            spec.inputs.len()
        ));
    }
    if spec.inputs.len() > MAX_PARTIES {
        problems.push(format!("a job may involve at most {MAX_PARTIES} parties"));
    }
    match &spec.output {
        None => problems.push("output: a recipient public key is required".into()),
        Some(out) if out.recipient_public_key.len() != 32 => problems.push(format!(
            "output.recipient_public_key must be 32 bytes (X25519), got {}",
            out.recipient_public_key.len()
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
    for input in &spec.inputs {
        if !seen.insert(input.party.as_str()) {
            problems.push(format!("party {:?} is listed twice", input.party));
            continue;
        }
        let Some(party) = parties.get(&input.party) else {
            problems.push(format!("unknown party {:?}", input.party));
            continue;
        };
        if let Some(join) = join
            && !join.id_columns.contains_key(&input.party)
        {
            if !input.dataset.is_empty() {
                problems.push(format!(
                    "party {:?} has no id column in join.id_columns, so it is the join's helper \
                     and holds no data: drop its dataset, or name its id column",
                    input.party
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
            None => problems.push(format!(
                "party {:?} has no dataset {:?}",
                input.party, input.dataset
            )),
            Some(d) => datasets.push((input.party.as_str(), d)),
        }
    }
    match (&spec.computation, join) {
        (None, _) => problems.push("the spec names no computation (e.g. [stats])".into()),
        (Some(job_spec::Computation::Stats(stats)), None) => {
            if spec.protocol != DEFAULT_STATS_PROTOCOL {
                problems.push(format!(
                    "stats runs on protocol {DEFAULT_STATS_PROTOCOL:?}, not {:?}",
                    spec.protocol
                ));
            }
            check_column_list(stats, &mut problems);
            for (party, ds) in &datasets {
                for c in &stats.columns {
                    check_value_column(party, ds, c, "column", &mut problems);
                }
                for f in all_filters(stats) {
                    check_filter(party, ds, &f.column, f, &[], &mut problems);
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
        (Some(job_spec::Computation::Psi(_)), Some(_)) => {
            problems.push("a join applies to stats and train jobs; a psi job has no [join]".into())
        }
        (Some(job_spec::Computation::Train(_)), None) => problems.push(
            "train runs on vertically split data: add a [join] naming each data party's id column"
                .into(),
        ),
        (Some(job_spec::Computation::Train(train)), Some(join)) => {
            check_join_train(&spec, train, join, &datasets, &mut problems);
        }
        (Some(job_spec::Computation::Score(_)), None) => problems.push(
            "score runs on vertically split records: add a [join] naming each data party's id \
             column"
                .into(),
        ),
        (Some(job_spec::Computation::Score(score)), Some(join)) => {
            check_join(&spec, "score", join, &datasets, &mut problems);
            check_score(&spec, score, join, &datasets, &mut problems);
        }
        (Some(job_spec::Computation::FheScore(fhe)), join) => {
            if join.is_some() {
                problems.push(
                    "fhe-score runs on the owner's rows alone; an fhe-score job has no [join]"
                        .into(),
                );
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

/// At least one column, none twice.
fn check_column_list(stats: &StatsJob, problems: &mut Vec<String>) {
    if stats.columns.is_empty() {
        problems.push("stats: name at least one column".into());
    }
    let mut cols = HashSet::new();
    for c in &stats.columns {
        if !cols.insert(c) {
            problems.push(format!("stats: column {c:?} is listed twice"));
        }
    }
}

/// `column` exists in `ds` and is numeric; `shown` is how the spec names it.
fn check_value_column(
    party: &str,
    ds: &DatasetSchema,
    column: &str,
    shown: &str,
    problems: &mut Vec<String>,
) {
    match column_type(ds, column) {
        None => problems.push(format!(
            "party {party:?} dataset {:?} has no {shown} {column:?}",
            ds.name
        )),
        Some(ColumnType::Int | ColumnType::Float) => {}
        Some(other) => problems.push(format!(
            "party {party:?} dataset {:?} column {column:?} is {}, not numeric",
            ds.name,
            other.as_str_name()
        )),
    }
}

fn column_type(ds: &DatasetSchema, name: &str) -> Option<ColumnType> {
    ds.columns
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.r#type())
}

/// A filter on `column` of `ds`: it exists, is not a record id column (neither the dataset's
/// nor one of `id_columns`), and its predicate fits the column's type.
fn check_filter(
    party: &str,
    ds: &DatasetSchema,
    column: &str,
    f: &Filter,
    id_columns: &[&str],
    problems: &mut Vec<String>,
) {
    if column == ds.id_column || id_columns.contains(&column) {
        problems.push(format!(
            "filter: {:?} is the record id column of party {party:?}; filtering on ids \
             would single out individual records",
            f.column
        ));
    }
    match (column_type(ds, column), &f.predicate) {
        (None, _) => problems.push(format!(
            "party {party:?} dataset {:?} has no filter column {column:?}",
            ds.name
        )),
        (_, None) => problems.push("filter: give `equals` or a range".into()),
        (Some(ColumnType::String), Some(filter::Predicate::Range(_))) => problems.push(format!(
            "filter: column {:?} is a string, a range needs a numeric column",
            f.column
        )),
        (Some(ColumnType::Int | ColumnType::Float), Some(filter::Predicate::Equals(v)))
            if v.trim().parse::<f64>().is_err() =>
        {
            problems.push(format!(
                "filter: column {:?} is numeric but {v:?} is not a number",
                f.column
            ))
        }
        _ => {}
    }
}

/// Ranges with `min > max`.
fn check_ranges(stats: &StatsJob, problems: &mut Vec<String>) {
    for f in all_filters(stats) {
        if let Some(filter::Predicate::Range(r)) = &f.predicate
            && let (Some(lo), Some(hi)) = (r.min, r.max)
            && lo > hi
        {
            problems.push(format!("filter: range min {lo} exceeds max {hi}"));
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
    kind: &str,
    join: &JoinSpec,
    datasets: &[(&str, &DatasetSchema)],
    problems: &mut Vec<String>,
) {
    if spec.protocol != JOIN_STATS_PROTOCOL {
        problems.push(format!(
            "{kind} with a join runs on protocol {JOIN_STATS_PROTOCOL:?}, not {:?}",
            spec.protocol
        ));
    }
    if spec.inputs.len() != JOIN_PARTIES {
        problems.push(format!(
            "a join runs on rep3 with exactly {JOIN_PARTIES} parties (two data parties and a \
             helper, or three data parties), the spec names {}",
            spec.inputs.len()
        ));
    }
    match join.id_columns.len() {
        2 | 3 => {}
        n => problems.push(format!(
            "join: name 2 or 3 data parties in join.id_columns (with 2, the third input is the \
             helper), got {n}"
        )),
    }
    let named = |p: &str| spec.inputs.iter().any(|i| i.party == p);
    for p in join.id_columns.keys().filter(|p| !named(p)) {
        problems.push(format!(
            "join: id_columns names {p:?}, which is not an input"
        ));
    }
    if !join.psi_job.is_empty() && !is_job_id(&join.psi_job) {
        problems.push(format!("join: psi_job {:?} is not a job id", join.psi_job));
    }
    let data = |p: &str| datasets.iter().find(|(q, _)| *q == p).map(|(_, d)| *d);
    for (party, column) in &join.id_columns {
        let Some(ds) = data(party) else { continue };
        match column_type(ds, column) {
            None => problems.push(format!(
                "join: party {party:?} dataset {:?} has no id column {column:?}",
                ds.name
            )),
            Some(ColumnType::String | ColumnType::Int) => {}
            Some(other) => problems.push(format!(
                "join: party {party:?} id column {column:?} is {}, ids must be text or integers",
                other.as_str_name()
            )),
        }
    }
}

/// A `party.column` name of a job with a join: the party must hold data in the join; returns
/// the party, the column and the party's dataset (the column itself is the caller's to check).
fn resolve<'a>(
    name: &'a str,
    what: &str,
    join: &JoinSpec,
    datasets: &[(&str, &'a DatasetSchema)],
    problems: &mut Vec<String>,
) -> Option<(&'a str, &'a str, &'a DatasetSchema)> {
    let Some((party, column)) = qualified(name) else {
        problems.push(format!(
            "{what} {name:?}: with a join, name it as \"party.column\""
        ));
        return None;
    };
    if !join.id_columns.contains_key(party) {
        problems.push(format!(
            "{what} {name:?} names party {party:?}, which holds no data in this join \
             (the data parties are those in join.id_columns)"
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
    problems: &mut Vec<String>,
) {
    check_join(spec, "stats", join, datasets, problems);
    check_column_list(stats, problems);
    for c in &stats.columns {
        if let Some((party, column, ds)) = resolve(c, "stats: column", join, datasets, problems) {
            check_value_column(party, ds, column, "column", problems);
        }
    }
    for f in all_filters(stats) {
        if let Some((party, column, ds)) =
            resolve(&f.column, "filter: column", join, datasets, problems)
        {
            let id = join.id_columns.get(party).map(String::as_str);
            check_filter(party, ds, column, f, id.as_slice(), problems);
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
    problems: &mut Vec<String>,
) {
    check_join(spec, "train", join, datasets, problems);
    let logistic = match train.model.as_str() {
        "" | "logistic" => true,
        "linear" => false,
        other => {
            problems.push(format!(
                "train: model {other:?} is unknown (\"logistic\" or \"linear\")"
            ));
            true
        }
    };
    if train.features.is_empty() {
        problems.push("train: name at least one feature".into());
    }
    if train.features.len() > MAX_TRAIN_FEATURES {
        problems.push(format!(
            "train: at most {MAX_TRAIN_FEATURES} features, got {}",
            train.features.len()
        ));
    }
    let mut seen = HashSet::new();
    for name in train.features.iter().chain(std::iter::once(&train.label)) {
        if !seen.insert(name.as_str()) {
            problems.push(format!(
                "train: {name:?} is named twice (features and label are distinct columns)"
            ));
        }
    }
    let named = train
        .features
        .iter()
        .map(|f| (f, "feature"))
        .chain(std::iter::once((&train.label, "label")));
    for (name, what) in named {
        let shown = format!("train: {what}");
        if let Some((party, column, ds)) = resolve(name, &shown, join, datasets, problems) {
            check_value_column(party, ds, column, what, problems);
            if join.id_columns.get(party).is_some_and(|id| id == column) {
                problems.push(format!("{shown} {name:?} is the record id column"));
            }
        }
    }
    let rate = train.learning_rate;
    if !(rate == 0.0 || (rate.is_finite() && rate > 0.0 && rate < 16.0)) {
        problems.push(format!(
            "train: learning_rate {rate} must be positive and below 16"
        ));
    }
    if train.epochs > 10_000 {
        problems.push(format!("train: epochs {} is above 10,000", train.epochs));
    }
    if train.batch_size > 1 << 20 {
        problems.push(format!(
            "train: batch_size {} is above 2^20",
            train.batch_size
        ));
    }
    if !(train.l2.is_finite() && (0.0..=1.0).contains(&train.l2)) {
        problems.push(format!("train: l2 {} must be in [0, 1]", train.l2));
    }
    if !(train.holdout.is_finite() && (0.0..=0.5).contains(&train.holdout)) {
        problems.push(format!(
            "train: holdout {} must be in [0, 0.5]",
            train.holdout
        ));
    }
    match train.metric.as_str() {
        "" | "none" => {}
        "auc" | "accuracy" if !logistic => problems.push(format!(
            "train: metric {:?} applies to logistic regression",
            train.metric
        )),
        "auc" | "accuracy" if train.holdout == 0.0 => problems.push(format!(
            "train: metric {:?} needs held-out rows (set holdout, e.g. 0.2)",
            train.metric
        )),
        "auc" | "accuracy" => {}
        other => problems.push(format!(
            "train: metric {other:?} is unknown (\"auc\", \"accuracy\" or \"none\")"
        )),
    }
    if !train.model_id.is_empty() && !is_job_id(&train.model_id) {
        problems.push(format!(
            "train: model_id {:?} must be 1 to 64 letters, digits, '-' or '_'",
            train.model_id
        ));
    }
    if spec.frac_bits != 0 && !(16..=20).contains(&spec.frac_bits) {
        problems.push(format!(
            "train: frac_bits {} is unsupported (16 to 20)",
            spec.frac_bits
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
    problems: &mut Vec<String>,
) {
    if score.weights_party.is_empty() {
        if !score.features.is_empty() || !score.model.is_empty() || score.no_intercept {
            problems.push(
                "score: features, model and no_intercept describe a clear model; set \
                 weights_party, or drop them (a stored model brings its own)"
                    .into(),
            );
        }
    } else {
        if !spec.inputs.iter().any(|i| i.party == score.weights_party) {
            problems.push(format!(
                "score: weights_party {:?} is not an input",
                score.weights_party
            ));
        }
        if !matches!(score.model.as_str(), "" | "logistic" | "linear") {
            problems.push(format!(
                "score: model {:?} is unknown (\"logistic\" or \"linear\")",
                score.model
            ));
        }
        if score.features.is_empty() || score.features.len() > MAX_TRAIN_FEATURES {
            problems.push(format!(
                "score: a clear model names 1 to {MAX_TRAIN_FEATURES} features"
            ));
        }
        for name in &score.features {
            if let Some((party, column, ds)) =
                resolve(name, "score: feature", join, datasets, problems)
            {
                check_value_column(party, ds, column, "feature", problems);
            }
        }
    }
    if !is_job_id(&score.model_id) {
        problems.push(format!(
            "score: model_id {:?} must be 1 to 64 letters, digits, '-' or '_'",
            score.model_id
        ));
    }
    if !score.output.is_empty() && !SCORE_OUTPUTS.contains(&score.output.as_str()) {
        problems.push(format!(
            "score: output {:?} is unknown (\"score\", \"decision\" or \"both\")",
            score.output
        ));
    }
    if score.threshold.is_some_and(|t| !t.is_finite()) {
        problems.push("score: the threshold must be a finite number".into());
    }
    if !score.ids_from.is_empty() && !join.id_columns.contains_key(&score.ids_from) {
        problems.push(format!(
            "score: ids_from {:?} is not a data party of the join",
            score.ids_from
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
    problems: &mut Vec<String>,
) {
    if spec.protocol != FHE_PROTOCOL {
        problems.push(format!(
            "fhe-score runs on protocol {FHE_PROTOCOL:?}, not {:?}",
            spec.protocol
        ));
    }
    if spec.inputs.len() != 2 {
        problems.push(format!(
            "fhe-score: exactly 2 parties (the owner and the evaluator), the spec names {}",
            spec.inputs.len()
        ));
    }
    let input = |p: &str| spec.inputs.iter().find(|i| i.party == p);
    for (role, party) in [("owner", &fhe.owner), ("evaluator", &fhe.evaluator)] {
        if party.is_empty() {
            problems.push(format!("fhe-score: name the {role}"));
        } else if input(party).is_none() {
            problems.push(format!("fhe-score: {role} {party:?} is not an input"));
        }
    }
    if !fhe.owner.is_empty() && fhe.owner == fhe.evaluator {
        problems.push(format!(
            "fhe-score: {:?} is both owner and evaluator; they must be distinct parties",
            fhe.owner
        ));
    }
    if let Some(i) = input(&fhe.owner)
        && i.dataset.is_empty()
    {
        problems.push(format!(
            "fhe-score: the owner {:?} names no dataset (its rows are encrypted)",
            fhe.owner
        ));
    }
    if let Some(i) = input(&fhe.evaluator)
        && !i.dataset.is_empty()
        && fhe.owner != fhe.evaluator
    {
        problems.push(format!(
            "fhe-score: the evaluator {:?} holds the model, not data: drop its dataset {:?}",
            fhe.evaluator, i.dataset
        ));
    }
    if !is_job_id(&fhe.model_id) {
        problems.push(format!(
            "fhe-score: model_id {:?} must be 1 to 64 letters, digits, '-' or '_'",
            fhe.model_id
        ));
    }
    if !fhe.release.is_empty() && !FHE_RELEASES.contains(&fhe.release.as_str()) {
        problems.push(format!(
            "fhe-score: release {:?} is unknown (\"scores\", \"decisions\" or \"aggregate\")",
            fhe.release
        ));
    }
    if !(1..=MAX_FHE_FEATURES).contains(&fhe.features.len()) {
        problems.push(format!(
            "fhe-score: name 1 to {MAX_FHE_FEATURES} features, got {}",
            fhe.features.len()
        ));
    }
    let owner_ds = datasets
        .iter()
        .find(|(p, _)| *p == fhe.owner)
        .map(|(_, d)| *d);
    let mut seen = HashSet::new();
    for f in &fhe.features {
        if !seen.insert(f.column.as_str()) {
            problems.push(format!(
                "fhe-score: feature column {:?} is listed twice",
                f.column
            ));
        }
        if let Some(ds) = owner_ds {
            check_value_column(&fhe.owner, ds, &f.column, "feature", problems);
        }
        if !(1..=MAX_FHE_FEATURE_BITS).contains(&f.bits) {
            problems.push(format!(
                "fhe-score: feature {:?} has bits {}, must be 1 to {MAX_FHE_FEATURE_BITS}",
                f.column, f.bits
            ));
        }
        if !(f.scale.is_finite() && f.scale >= 0.0) {
            problems.push(format!(
                "fhe-score: feature {:?} has scale {}, must be a finite number ≥ 0 (0 means 1)",
                f.column, f.scale
            ));
        }
    }
    if let Some(ds) = owner_ds
        && !fhe.id_column.is_empty()
        && column_type(ds, &fhe.id_column).is_none()
    {
        problems.push(format!(
            "party {:?} dataset {:?} has no id_column {:?}",
            fhe.owner, ds.name, fhe.id_column
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
    let invalid = |m: String| Err(JobError::InvalidSpec(vec![m]));
    let Some(trained) = trained.filter(|j| j.state() == JobState::Succeeded) else {
        return invalid(format!(
            "score: no succeeded train job stored model {:?}",
            score.model_id
        ));
    };
    let Some(tspec) = trained.spec.as_ref() else {
        return invalid("score: the training job has no spec".into());
    };
    let Some(job_spec::Computation::Train(train)) = tspec.computation.as_ref() else {
        return invalid("score: the model's job is not a train job".into());
    };
    let order = |s: &JobSpec| s.inputs.iter().map(|i| i.party.clone()).collect::<Vec<_>>();
    if order(spec) != order(tspec) {
        return invalid(format!(
            "score: the parties must be the training job's, in its order: {}",
            order(tspec).join(", ")
        ));
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
    for name in &train.features {
        let shown = "score: the model's feature";
        if let Some((party, column, ds)) = resolve(name, shown, &join, &datasets, &mut problems) {
            check_value_column(party, ds, column, "feature", &mut problems);
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
    let id = &join.psi_job;
    let bad = |m: String| Err(JobError::InvalidSpec(vec![m]));
    let Some(job) = referenced else {
        return bad(format!("join: psi_job {id:?} is not a known job"));
    };
    let psi_spec = job.spec.as_ref();
    let Some(job_spec::Computation::Psi(psi)) = psi_spec.and_then(|s| s.computation.as_ref())
    else {
        return bad(format!("join: psi_job {id:?} is not a psi job"));
    };
    if job.state() != JobState::Succeeded {
        return bad(format!(
            "join: psi_job {id:?} did not succeed (it is {})",
            job.state().as_str_name()
        ));
    }
    let mut problems = Vec::new();
    let psi_parties: HashSet<&str> = psi_spec
        .map(|s| s.inputs.iter().map(|i| i.party.as_str()).collect())
        .unwrap_or_default();
    let data_parties: HashSet<&str> = join.id_columns.keys().map(String::as_str).collect();
    if psi_parties.len() > data_parties.len() {
        problems.push(format!(
            "join: psi_job {id:?} intersected the ids of {} parties; a join reuses the \
             intersection of exactly its data parties",
            psi_parties.len()
        ));
    }
    for (party, column) in &join.id_columns {
        if psi.reveal() != PsiReveal::Intersection || !psi.to.contains(party) {
            problems.push(format!(
                "join: psi_job {id:?} did not reveal the intersection to {party:?}"
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
        if psi_dataset != dataset {
            problems.push(format!(
                "join: psi_job {id:?} matched {party:?} dataset {:?}, this job names {:?}",
                psi_dataset.unwrap_or(""),
                dataset.unwrap_or("")
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
            problems.push(format!(
                "join: psi_job {id:?} matched {party:?} ids in column {psi_column:?}, the join \
                 names {column:?}"
            ));
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
    problems: &mut Vec<String>,
) {
    let protocol = if spec.inputs.len() > 2 {
        PSI_MULTI_PROTOCOL
    } else {
        PSI_PROTOCOL
    };
    if spec.protocol != protocol {
        problems.push(format!(
            "psi with {} parties runs on protocol {protocol:?}, not {:?}",
            spec.inputs.len(),
            spec.protocol
        ));
    }
    if spec.inputs.len() > MAX_PSI_PARTIES {
        problems.push(format!(
            "psi: at most {MAX_PSI_PARTIES} parties, the spec names {}",
            spec.inputs.len()
        ));
    }
    let named = |p: &str| spec.inputs.iter().any(|i| i.party == p);
    for p in psi.to.iter().filter(|p| !named(p)) {
        problems.push(format!(
            "psi: `to` names {p:?}, which is not an input of this job"
        ));
    }
    let distinct: HashSet<&String> = psi.to.iter().collect();
    if distinct.len() != psi.to.len() {
        problems.push("psi: a party is listed twice in `to`".into());
    }
    match (psi.reveal(), psi.to.len()) {
        (PsiReveal::Unspecified, _) => {
            problems.push("psi: set reveal to \"intersection\" or \"cardinality\"".into())
        }
        (_, 0) => problems.push("psi: name who learns the result in `to`".into()),
        (PsiReveal::Cardinality, n) if n > 1 => {
            problems.push("psi: cardinality goes to exactly one party".into())
        }
        _ => {}
    }
    for p in psi.id_columns.keys().filter(|p| !named(p)) {
        problems.push(format!(
            "psi: id_columns names {p:?}, which is not an input"
        ));
    }
    for (party, ds) in datasets {
        let column = psi
            .id_columns
            .get(*party)
            .map_or(ds.id_column.as_str(), String::as_str);
        if column.is_empty() {
            problems.push(format!(
                "psi: party {party:?} dataset {:?} declares no id column; set id_columns",
                ds.name
            ));
            continue;
        }
        match ds
            .columns
            .iter()
            .find(|c| c.name == column)
            .map(|c| c.r#type())
        {
            None => problems.push(format!(
                "psi: party {party:?} dataset {:?} has no id column {column:?}",
                ds.name
            )),
            Some(ColumnType::String | ColumnType::Int) => {}
            Some(other) => problems.push(format!(
                "psi: party {party:?} id column {column:?} is {}, ids must be text or integers",
                other.as_str_name()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use treaty_proto::v1::{
        ColumnSchema, DatasetSchema, FheFeature, Filter, JobInput, JobOutput, NumericRange,
        StatsJob,
    };

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

    fn problems(spec: JobSpec) -> String {
        match validate_spec(spec, &registry()) {
            Err(JobError::InvalidSpec(p)) => p.join("\n"),
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
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
        assert!(p.contains("set reveal"), "{p}");
        let p = problems(psi_spec(PsiReveal::Intersection, &[]));
        assert!(p.contains("name who learns"), "{p}");
        let p = problems(psi_spec(PsiReveal::Cardinality, &["hospital", "insurer"]));
        assert!(p.contains("exactly one party"), "{p}");
        let p = problems(psi_spec(
            PsiReveal::Intersection,
            &["bank", "hospital", "hospital"],
        ));
        assert!(p.contains("\"bank\", which is not an input"), "{p}");
        assert!(p.contains("listed twice in `to`"), "{p}");
        let mut s = psi_spec(PsiReveal::Intersection, &["hospital"]);
        if let Some(job_spec::Computation::Psi(psi)) = &mut s.computation {
            psi.id_columns
                .insert("hospital".into(), "claim_amount".into());
            psi.id_columns.insert("insurer".into(), "nope".into());
        }
        let p = problems(s);
        assert!(p.contains("ids must be text or integers"), "{p}");
        assert!(p.contains("has no id column \"nope\""), "{p}");
        let mut s = psi_spec(PsiReveal::Intersection, &["hospital"]);
        s.protocol = "additive".into();
        assert!(problems(s).contains("psi with 2 parties runs on protocol \"psi-ecdh\""));
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
        let e = with(&names[..3], PsiReveal::Cardinality, &["p0", "p1"]).unwrap_err();
        assert!(e.to_string().contains("exactly one party"), "{e}");
        let e = with(&names, PsiReveal::Intersection, &["p0"]).unwrap_err();
        assert!(e.to_string().contains("at most 16 parties"), "{e}");
        let mut s = psi_spec(PsiReveal::Intersection, &["p0"]);
        s.inputs = names[..3]
            .iter()
            .map(|p| JobInput {
                party: p.clone(),
                dataset: "claims".into(),
            })
            .collect();
        s.protocol = PSI_PROTOCOL.into();
        let e = validate_spec(s, &registry).unwrap_err();
        assert!(
            e.to_string()
                .contains("psi with 3 parties runs on protocol \"psi-ecdh-chain\""),
            "{e}"
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
        assert!(p.contains("unknown party \"bank\""), "{p}");
        assert!(
            p.contains("party \"hospital\" has no dataset \"other\""),
            "{p}"
        );
        assert!(p.contains("has no column \"nope\""), "{p}");
    }

    #[test]
    fn wrong_types_and_bad_filters_are_named() {
        let p = problems(spec(&["claim_id"], None));
        assert!(
            p.contains("column \"claim_id\" is COLUMN_TYPE_STRING, not numeric"),
            "{p}"
        );
        let f = Filter {
            column: "claim_id".into(),
            predicate: Some(filter::Predicate::Range(NumericRange {
                min: Some(1.0),
                max: None,
            })),
        };
        assert!(problems(spec(&["age"], Some(f))).contains("is a string, a range needs"));
        let f = Filter {
            column: "age".into(),
            predicate: Some(filter::Predicate::Equals("forty".into())),
        };
        assert!(problems(spec(&["age"], Some(f))).contains("is not a number"));
        let f = Filter {
            column: "age".into(),
            predicate: Some(filter::Predicate::Range(NumericRange {
                min: Some(5.0),
                max: Some(1.0),
            })),
        };
        assert!(problems(spec(&["age"], Some(f))).contains("exceeds max"));
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

    fn join_problems(spec: JobSpec) -> String {
        match validate_spec(spec, &join_registry()) {
            Err(JobError::InvalidSpec(p)) => p.join("\n"),
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
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
        assert!(join_problems(s).contains("with a join runs on protocol \"rep3\""));
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
        assert!(
            p.contains("train: feature \"claim_amount\": with a join, name it as"),
            "{p}"
        );
        assert!(
            p.contains("names party \"bank\", which holds no data"),
            "{p}"
        );
        assert!(
            p.contains("column \"plan\" is COLUMN_TYPE_STRING, not numeric"),
            "{p}"
        );
        assert!(p.contains("has no label \"nope\""), "{p}");
        let p = join_problems(train_spec(&["hospital.patient_id"], "hospital.patient_id"));
        assert!(p.contains("named twice"), "{p}");
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
        for want in [
            "model \"forest\" is unknown",
            "learning_rate -1",
            "holdout 0.9",
            "metric \"f1\"",
            "model_id \"../etc\"",
            "l2 NaN",
            "frac_bits 30",
        ] {
            assert!(p.contains(want), "{want}: {p}");
        }
        let mut s = train_spec(&["hospital.claim_amount"], "insurer.diabetic");
        s.join = None;
        assert!(join_problems(s).contains("train runs on vertically split data"));
        let mut s = train_spec(&["hospital.claim_amount"], "insurer.claim_amount");
        if let Some(job_spec::Computation::Train(t)) = &mut s.computation {
            t.model = "linear".into();
        }
        assert!(join_problems(s).contains("applies to logistic regression"));
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
        for want in [
            "model_id \"../x\"",
            "output \"all\"",
            "finite",
            "ids_from \"bank\"",
            "set weights_party",
        ] {
            assert!(p.contains(want), "{want}: {p}");
        }
        let p = join_problems(score(ScoreJob {
            model_id: "m".into(),
            weights_party: "nobody".into(),
            model: "tree".into(),
            features: vec!["hospital.plan".into(), "bank.x".into()],
            ..Default::default()
        }));
        for want in [
            "weights_party \"nobody\" is not an input",
            "model \"tree\"",
            "\"plan\" is COLUMN_TYPE_STRING",
            "holds no data",
        ] {
            assert!(p.contains(want), "{want}: {p}");
        }
        // A stored model must come from a succeeded train job over the same parties, in order.
        let spec = score(ScoreJob {
            model_id: "m".into(),
            ..Default::default()
        });
        let e = check_model_reference(&spec, None, &join_registry()).unwrap_err();
        assert!(
            e.to_string()
                .contains("no succeeded train job stored model \"m\""),
            "{e}"
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
        let e = check_model_reference(&swapped, Some(&trained), &join_registry()).unwrap_err();
        assert!(e.to_string().contains("in its order"), "{e}");
        let mut other = trained.clone();
        if let Some(job_spec::Computation::Train(t)) =
            other.spec.as_mut().and_then(|s| s.computation.as_mut())
        {
            t.features = vec!["hospital.nope".into()];
        }
        let e = check_model_reference(&spec, Some(&other), &join_registry()).unwrap_err();
        assert!(e.to_string().contains("has no feature \"nope\""), "{e}");
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
        for want in [
            "stats: column \"claim_amount\": with a join, name it as \"party.column\"",
            "column \"bank.claim_amount\" names party \"bank\", which holds no data",
            "column \"nobody.x\" names party \"nobody\"",
            "party \"insurer\" dataset \"patients\" has no column \"nope\"",
            "column \"plan\" is COLUMN_TYPE_STRING, not numeric",
            "filter: column \"bank.diabetic\" names party \"bank\", which holds no data",
            "party \"hospital\" dataset \"patients\" has no filter column \"nope\"",
            "\"hospital.patient_id\" is the record id column of party \"hospital\"",
            "filter: column \"diabetic\": with a join, name it as",
        ] {
            assert!(p.contains(want), "missing {want:?} in\n{p}");
        }
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
        assert!(!p.contains("data parties in join.id_columns"), "{p}");
        assert!(p.contains("is not a job id"), "{p}");
        assert!(p.contains("party \"bank\" has no dataset \"\""), "{p}");

        let mut s = join_spec(&["insurer.claim_amount"], vec![]);
        s.inputs[2].dataset = "patients".into();
        let join = s.join.as_mut().unwrap();
        join.id_columns
            .insert("insurer".into(), "claim_amount".into());
        join.id_columns.insert("hospital".into(), "nope".into());
        let p = join_problems(s);
        assert!(
            p.contains("so it is the join's helper and holds no data"),
            "{p}"
        );
        assert!(p.contains("ids must be text or integers"), "{p}");
        assert!(p.contains("has no id column \"nope\""), "{p}");

        let mut s = join_spec(&["insurer.claim_amount"], vec![]);
        s.inputs.pop();
        assert!(join_problems(s).contains("exactly 3 parties"));
        let mut s = join_spec(&["insurer.claim_amount"], vec![]);
        s.join.as_mut().unwrap().id_columns.remove("hospital");
        let p = join_problems(s);
        assert!(p.contains("name 2 or 3 data parties"), "{p}");
        let mut s = psi_spec(PsiReveal::Intersection, &["hospital"]);
        s.join = join_spec(&[], vec![]).join;
        assert!(join_problems(s).contains("a psi job has no [join]"));
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
        let err = |j: Option<&Job>| check(j).unwrap_err().to_string();
        assert!(err(None).contains("not a known job"));
        assert!(err(Some(&job(JobState::Failed, &psi))).contains("did not succeed"));
        assert!(err(Some(&job(JobState::Succeeded, &spec))).contains("is not a psi job"));
        let narrow = psi_spec(PsiReveal::Intersection, &["hospital"]);
        let e = err(Some(&job(JobState::Succeeded, &narrow)));
        assert!(
            e.contains("did not reveal the intersection to \"insurer\""),
            "{e}"
        );
        assert!(e.contains("matched \"hospital\" dataset \"claims\""), "{e}");
        let mut other_column = psi.clone();
        if let Some(job_spec::Computation::Psi(p)) = &mut other_column.computation {
            p.id_columns.insert("insurer".into(), "plan".into());
        }
        let e = err(Some(&job(JobState::Succeeded, &other_column)));
        assert!(
            e.contains("matched \"insurer\" ids in column \"plan\""),
            "{e}"
        );
        // A three-party intersection is not the two data parties' intersection.
        let mut wide = psi.clone();
        wide.inputs.push(JobInput {
            party: "bank".into(),
            dataset: "patients".into(),
        });
        let e = err(Some(&job(JobState::Succeeded, &wide)));
        assert!(e.contains("intersected the ids of 3 parties"), "{e}");
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

    /// `edit` applied to [`fhe_spec`] yields exactly the problems containing `want`, in order.
    fn assert_fhe_problems(case: &str, edit: impl FnOnce(&mut JobSpec), want: &[&str]) {
        let mut s = fhe_spec();
        edit(&mut s);
        let got = match validate_spec(s, &fhe_registry()) {
            Err(JobError::InvalidSpec(p)) => p,
            other => panic!("{case}: expected InvalidSpec, got {other:?}"),
        };
        assert_eq!(got.len(), want.len(), "{case}: {got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.contains(w), "{case}: {w:?} not in {g:?}");
        }
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
            &["fhe-score runs on protocol \"fhe\", not \"rep3\""],
        );
        assert_fhe_problems(
            "join",
            |s| s.join = join_spec(&[], vec![]).join,
            &["an fhe-score job has no [join]"],
        );
        // With a join and no protocol, the default is still "fhe".
        let mut s = fhe_spec();
        s.join = join_spec(&[], vec![]).join;
        let e = validate_spec(s, &registry()).unwrap_err().to_string();
        assert!(!e.contains("runs on protocol"), "{e}");
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
            &["unknown party \"bank\"", "exactly 2 parties"],
        );
        assert_fhe_problems(
            "one input",
            |s| s.inputs.truncate(1),
            &[
                "at least 2 parties",
                "exactly 2 parties",
                "owner \"insurer\" is not an input",
            ],
        );
        assert_fhe_problems("no owner", |s| fhe(s).owner.clear(), &["name the owner"]);
        assert_fhe_problems(
            "owner not an input",
            |s| fhe(s).owner = "bank".into(),
            &["owner \"bank\" is not an input"],
        );
        assert_fhe_problems(
            "evaluator not an input",
            |s| fhe(s).evaluator = "bank".into(),
            &["evaluator \"bank\" is not an input"],
        );
        assert_fhe_problems(
            "unregistered party",
            |s| {
                s.inputs[0].party = "bank".into();
                fhe(s).evaluator = "bank".into();
            },
            &["unknown party \"bank\""],
        );
        assert_fhe_problems(
            "one party both roles",
            |s| fhe(s).evaluator = "insurer".into(),
            &["\"insurer\" is both owner and evaluator"],
        );
        assert_fhe_problems(
            "owner without dataset",
            |s| s.inputs[1].dataset.clear(),
            &["the owner \"insurer\" names no dataset"],
        );
        assert_fhe_problems(
            "owner with an unknown dataset",
            |s| s.inputs[1].dataset = "other".into(),
            &["party \"insurer\" has no dataset \"other\""],
        );
        assert_fhe_problems(
            "evaluator with dataset",
            |s| s.inputs[0].dataset = "claims".into(),
            &["the evaluator \"hospital\" holds the model, not data: drop its dataset"],
        );
    }

    #[test]
    fn fhe_score_model_and_release_are_checked() {
        for id in ["", "../models/x", "m".repeat(65).as_str()] {
            assert_fhe_problems(
                "model id",
                |s| fhe(s).model_id = id.into(),
                &[&format!("fhe-score: model_id {id:?} must be 1 to 64")],
            );
        }
        assert_fhe_problems(
            "release",
            |s| fhe(s).release = "score".into(),
            &["release \"score\" is unknown"],
        );
    }

    #[test]
    fn fhe_score_features_are_checked() {
        assert_fhe_problems(
            "no features",
            |s| fhe(s).features.clear(),
            &["name 1 to 64 features, got 0"],
        );
        assert_fhe_problems(
            "65 features",
            |s| wide_features(s, MAX_FHE_FEATURES + 1),
            &["name 1 to 64 features, got 65"],
        );
        assert_fhe_problems(
            "missing column",
            |s| fhe(s).features[0].column = "nope".into(),
            &["party \"insurer\" dataset \"claims\" has no feature \"nope\""],
        );
        assert_fhe_problems(
            "text column",
            |s| fhe(s).features[1].column = "claim_id".into(),
            &["column \"claim_id\" is COLUMN_TYPE_STRING, not numeric"],
        );
        assert_fhe_problems(
            "repeated column",
            |s| fhe(s).features[1].column = "claim_amount".into(),
            &["feature column \"claim_amount\" is listed twice"],
        );
        for bits in [0, 17] {
            assert_fhe_problems(
                "bits",
                |s| fhe(s).features[1].bits = bits,
                &[&format!("feature \"age\" has bits {bits}, must be 1 to 16")],
            );
        }
        for scale in [-0.5, f64::NAN, f64::INFINITY] {
            assert_fhe_problems(
                "scale",
                |s| fhe(s).features[0].scale = scale,
                &[&format!(
                    "feature \"claim_amount\" has scale {scale}, must be a finite"
                )],
            );
        }
        assert_fhe_problems(
            "id column",
            |s| fhe(s).id_column = "patient_id".into(),
            &["party \"insurer\" dataset \"claims\" has no id_column \"patient_id\""],
        );
    }

    #[test]
    fn horizontal_stats_take_a_filter_list() {
        let mut s = spec(&["age"], None);
        if let Some(job_spec::Computation::Stats(st)) = &mut s.computation {
            st.filters = vec![equals("age", "x"), equals("nope", "1")];
        }
        let p = problems(s);
        assert!(p.contains("\"x\" is not a number"), "{p}");
        assert!(p.contains("has no filter column \"nope\""), "{p}");
    }

    #[test]
    fn structural_problems_are_named() {
        let mut s = spec(&["age", "age"], None);
        s.inputs.truncate(1);
        s.output = None;
        s.frac_bits = 63;
        let p = problems(s);
        assert!(p.contains("at least 2 parties"), "{p}");
        assert!(p.contains("recipient public key is required"), "{p}");
        assert!(p.contains("frac_bits is 63"), "{p}");
        assert!(p.contains("listed twice"), "{p}");
        let f = Filter {
            column: "claim_id".into(),
            predicate: Some(filter::Predicate::Equals("C-1".into())),
        };
        assert!(problems(spec(&["age"], Some(f))).contains("single out individual records"));
        let mut s = spec(&["age"], None);
        s.computation = None;
        assert!(problems(s).contains("names no computation"));
    }
}
