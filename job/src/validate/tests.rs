use super::*;
use treaty_proto::v1::{
    ColumnSchema, DatasetSchema, FheFeature, Filter, JobInput, JobOutput, NumericRange, StatsJob,
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
fn assert_fhe_problems(case: &str, edit: impl FnOnce(&mut JobSpec), want: &[(&str, ProblemKind)]) {
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
