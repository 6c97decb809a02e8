//! `score` jobs: a clear model's shape, or a stored model and its training job.

use super::join::resolve;
use super::*;

/// The outputs a `score` job may ask for.
pub const SCORE_OUTPUTS: [&str; 3] = ["score", "decision", "both"];

/// Checks a `score` job's own fields: with a clear model (`weights_party`), its public shape
/// (features at data parties, model kind); a stored model is checked against its training job
/// by [`check_model_reference`].
pub(super) fn check(
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
