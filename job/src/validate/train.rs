//! `train` jobs: features, label, hyperparameters and the model id.

use super::join::resolve;
use super::*;

/// Most features of one `train` job.
pub const MAX_TRAIN_FEATURES: usize = 4096;

/// Checks a `train` job (with its join): [`super::join::check`], numeric `party.column` features and
/// label (no id column, no repeats), the model and metric names, hyperparameters in range and a
/// well-formed model id.
pub(super) fn check(
    spec: &JobSpec,
    train: &TrainJob,
    join: &JoinSpec,
    datasets: &[(&str, &DatasetSchema)],
    problems: &mut Problems,
) {
    join::check(spec, join, datasets, problems);
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

/// The model id a `train` job stores its model under: its `model_id`, or the job id.
pub fn trained_model_id(job: &Job) -> Option<&str> {
    match job.spec.as_ref()?.computation.as_ref()? {
        job_spec::Computation::Train(t) if t.model_id.is_empty() => Some(&job.id),
        job_spec::Computation::Train(t) => Some(&t.model_id),
        _ => None,
    }
}
