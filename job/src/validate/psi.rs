//! `psi` jobs, and the `psi` job a join reuses.

use super::*;

/// Checks a `psi` job: 2 to [`MAX_PSI_PARTIES`] inputs, who learns what, and an id column of text
/// or integers at each.
pub(super) fn check(
    spec: &JobSpec,
    psi: &PsiJob,
    datasets: &[(&str, &DatasetSchema)],
    problems: &mut Problems,
) {
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
