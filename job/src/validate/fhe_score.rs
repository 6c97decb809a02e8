//! `fhe-score` jobs: the owner, the evaluator, quantised features and what is released.

use super::*;

/// Most features of one `fhe-score` job.
pub const MAX_FHE_FEATURES: usize = 64;
/// Widest quantised feature of an `fhe-score` job, in bits.
pub const MAX_FHE_FEATURE_BITS: u32 = 16;
/// What an `fhe-score` job may release (`""` means `"scores"`).
pub const FHE_RELEASES: [&str; 3] = ["scores", "decisions", "aggregate"];

/// Checks an `fhe-score` job: two inputs (the owner with a dataset, the evaluator
/// without), the model id, the features (numeric columns of the owner's dataset, each once,
/// with a bit width and a scale in range), what it releases and the id column.
pub(super) fn check(
    spec: &JobSpec,
    fhe: &FheScoreJob,
    datasets: &[(&str, &DatasetSchema)],
    problems: &mut Problems,
) {
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
