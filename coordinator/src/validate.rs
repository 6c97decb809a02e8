//! Checks a submitted job spec against the registry: parties, datasets, columns and types.
//!
//! Every problem is collected so the analyst can fix the spec in one go. Parties check the job
//! again against their own datasets (the registry holds only what they published).

use std::collections::{BTreeMap, HashSet};

use treaty_proto::v1::{
    ColumnType, DatasetSchema, JobSpec, PartyInfo, PsiJob, PsiReveal, filter, job_spec,
};

use crate::CoordinatorError;

/// The protocol the `stats` job runs when the spec names none.
pub const DEFAULT_STATS_PROTOCOL: &str = "additive";
/// The protocol of the `psi` job.
pub const PSI_PROTOCOL: &str = "psi-ecdh";
/// Largest number of fractional bits accepted.
pub const MAX_FRAC_BITS: u32 = 40;
/// Default number of fractional bits.
pub const DEFAULT_FRAC_BITS: u32 = 16;
/// Most parties one job may involve.
pub const MAX_PARTIES: usize = 64;

/// Validates `spec` against the registered `parties` and fills in defaults.
pub fn validate_spec(
    mut spec: JobSpec,
    parties: &BTreeMap<String, PartyInfo>,
) -> Result<JobSpec, CoordinatorError> {
    let mut problems = Vec::new();
    if spec.protocol.is_empty() {
        spec.protocol = match &spec.computation {
            Some(job_spec::Computation::Psi(_)) => PSI_PROTOCOL,
            _ => DEFAULT_STATS_PROTOCOL,
        }
        .to_string();
    }
    if spec.frac_bits == 0 {
        spec.frac_bits = DEFAULT_FRAC_BITS;
    }
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
        match party.datasets.iter().find(|d| d.name == input.dataset) {
            None => problems.push(format!(
                "party {:?} has no dataset {:?}",
                input.party, input.dataset
            )),
            Some(d) => datasets.push((input.party.as_str(), d)),
        }
    }
    match &spec.computation {
        None => problems.push("the spec names no computation (e.g. [stats])".into()),
        Some(job_spec::Computation::Stats(stats)) => {
            if spec.protocol != DEFAULT_STATS_PROTOCOL {
                problems.push(format!(
                    "stats runs on protocol {DEFAULT_STATS_PROTOCOL:?}, not {:?}",
                    spec.protocol
                ));
            }
            if stats.columns.is_empty() {
                problems.push("stats: name at least one column".into());
            }
            let mut cols = HashSet::new();
            for c in &stats.columns {
                if !cols.insert(c) {
                    problems.push(format!("stats: column {c:?} is listed twice"));
                }
            }
            for (party, ds) in &datasets {
                let ty = |name: &str| {
                    ds.columns
                        .iter()
                        .find(|c| c.name == name)
                        .map(|c| c.r#type())
                };
                for c in &stats.columns {
                    match ty(c) {
                        None => problems.push(format!(
                            "party {party:?} dataset {:?} has no column {c:?}",
                            ds.name
                        )),
                        Some(ColumnType::Int | ColumnType::Float) => {}
                        Some(other) => problems.push(format!(
                            "party {party:?} dataset {:?} column {c:?} is {}, not numeric",
                            ds.name,
                            other.as_str_name()
                        )),
                    }
                }
                if let Some(f) = stats.filter.as_ref().filter(|f| f.column == ds.id_column) {
                    problems.push(format!(
                        "filter: {:?} is the record id column of party {party:?}; filtering on ids \
                         would single out individual records",
                        f.column
                    ));
                }
                if let Some(f) = &stats.filter {
                    match (ty(&f.column), &f.predicate) {
                        (None, _) => problems.push(format!(
                            "party {party:?} dataset {:?} has no filter column {:?}",
                            ds.name, f.column
                        )),
                        (_, None) => problems.push("filter: give `equals` or a range".into()),
                        (Some(ColumnType::String), Some(filter::Predicate::Range(_))) => problems
                            .push(format!(
                                "filter: column {:?} is a string, a range needs a numeric column",
                                f.column
                            )),
                        (
                            Some(ColumnType::Int | ColumnType::Float),
                            Some(filter::Predicate::Equals(v)),
                        ) if v.trim().parse::<f64>().is_err() => problems.push(format!(
                            "filter: column {:?} is numeric but {v:?} is not a number",
                            f.column
                        )),
                        _ => {}
                    }
                }
            }
            if let Some(Some(filter::Predicate::Range(r))) =
                stats.filter.as_ref().map(|f| &f.predicate)
                && let (Some(lo), Some(hi)) = (r.min, r.max)
                && lo > hi
            {
                problems.push(format!("filter: range min {lo} exceeds max {hi}"));
            }
        }
        Some(job_spec::Computation::Psi(psi)) => check_psi(&spec, psi, &datasets, &mut problems),
    }
    if problems.is_empty() {
        Ok(spec)
    } else {
        problems.dedup();
        Err(CoordinatorError::InvalidSpec(problems))
    }
}

/// Checks a `psi` job: two inputs, who learns what, and an id column of text or integers at each.
fn check_psi(
    spec: &JobSpec,
    psi: &PsiJob,
    datasets: &[(&str, &DatasetSchema)],
    problems: &mut Vec<String>,
) {
    if spec.protocol != PSI_PROTOCOL {
        problems.push(format!(
            "psi runs on protocol {PSI_PROTOCOL:?}, not {:?}",
            spec.protocol
        ));
    }
    if spec.inputs.len() != 2 {
        problems.push(format!(
            "psi: exactly 2 parties for now, the spec names {}",
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
        ColumnSchema, DatasetSchema, Filter, JobInput, JobOutput, NumericRange, StatsJob,
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
            })),
            ..Default::default()
        }
    }

    fn problems(spec: JobSpec) -> String {
        match validate_spec(spec, &registry()) {
            Err(CoordinatorError::InvalidSpec(p)) => p.join("\n"),
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
        assert!(problems(s).contains("psi runs on protocol"));
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
