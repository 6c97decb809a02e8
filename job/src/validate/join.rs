//! What every job with a join needs, and `party.column` names.

use super::*;

/// Checks what every job with a join needs: three inputs (two or three data
/// parties named in `id_columns`, the rest a helper), id columns of text or integers, and a
/// well-formed `psi_job`.
pub(super) fn check(
    spec: &JobSpec,
    join: &JoinSpec,
    datasets: &[(&str, &DatasetSchema)],
    problems: &mut Problems,
) {
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
pub(super) fn resolve<'a>(
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
