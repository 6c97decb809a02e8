use super::*;
use crate::dataset::ColumnDecl;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn equals(column: &str, v: &str) -> pb::Filter {
    pb::Filter {
        column: column.into(),
        predicate: Some(filter::Predicate::Equals(v.into())),
    }
}

fn spec(columns: &[&str], filters: Vec<pb::Filter>, psi_job: &str) -> pb::JobSpec {
    pb::JobSpec {
        frac_bits: 16,
        join: Some(pb::JoinSpec {
            id_columns: [("hospital", "patient_id"), ("insurer", "member_id")]
                .into_iter()
                .map(|(p, c)| (p.to_string(), c.to_string()))
                .collect(),
            psi_job: psi_job.into(),
        }),
        computation: Some(pb::job_spec::Computation::Stats(pb::StatsJob {
            columns: s(columns),
            filter: None,
            filters,
        })),
        ..Default::default()
    }
}

fn plan_of(spec: &pb::JobSpec, peers: &[&str]) -> Result<JoinPlan, PartyError> {
    let Some(pb::job_spec::Computation::Stats(stats)) = &spec.computation else {
        unreachable!()
    };
    JoinPlan::for_stats(spec, stats, spec.join.as_ref().unwrap(), &s(peers))
}

const PEERS: [&str; 3] = ["insurer", "bank", "hospital"];

#[test]
fn the_plan_lays_out_owners_by_protocol_index() {
    let sp = spec(
        &["insurer.claim_amount", "hospital.age", "insurer.visits"],
        vec![
            equals("hospital.diabetic", "1"),
            equals("hospital.sex", "f"),
        ],
        "",
    );
    let plan = plan_of(&sp, &PEERS).unwrap();
    assert_eq!(plan.layout.data_parties, [0, 2]);
    assert_eq!(plan.layout.column_owners, [0, 2, 0]);
    assert_eq!(plan.layout.filter_parties, [2]);
    assert_eq!(plan.id_column(0), Some("member_id"));
    assert_eq!(plan.id_column(2), Some("patient_id"));
    assert_eq!(plan.id_column(1), None, "the bank is the helper");
    assert_eq!(plan.columns[1], (2, "age".to_string()));
    assert_eq!(plan.psi_job, None);
    assert_eq!(plan.filters.len(), 2);
}

#[test]
fn a_bad_plan_is_refused_with_its_reason() {
    let err = |sp: &pb::JobSpec, peers: &[&str]| match plan_of(sp, peers) {
        Err(PartyError::Refused(Refusal::Spec(p))) => (p.field, p.kind),
        other => panic!("expected a spec problem, got {other:?}"),
    };
    let (field, kind) = err(
        &spec(&["insurer.claim_amount"], vec![equals("bank.x", "1")], ""),
        &PEERS,
    );
    assert_eq!(field, "filter column");
    assert_eq!(
        kind,
        ProblemKind::NotADataParty {
            name: "bank.x".into(),
            party: "bank".into()
        }
    );
    let (_, kind) = err(&spec(&["claim_amount"], vec![], ""), &PEERS);
    assert_eq!(
        kind,
        ProblemKind::NotQualified {
            name: "claim_amount".into()
        }
    );
    let (_, kind) = err(&spec(&["nobody.x"], vec![], ""), &PEERS);
    assert!(
        matches!(&kind, ProblemKind::NotADataParty { party, .. } if party == "nobody"),
        "{kind:?}"
    );
    let (field, kind) = err(&spec(&["insurer.x"], vec![], ""), &PEERS[..2]);
    assert_eq!(field, "inputs");
    assert!(
        matches!(
            kind,
            ProblemKind::WrongCount {
                got: 2,
                min: 3,
                max: 3,
                ..
            }
        ),
        "{kind:?}"
    );
    let (field, kind) = err(&spec(&["insurer.x"], vec![], "../x"), &PEERS);
    assert_eq!(field, "join.psi_job");
    assert!(matches!(kind, ProblemKind::BadValue { .. }), "{kind:?}");
    let (field, kind) = err(
        &spec(&["insurer.x"], vec![], ""),
        &["insurer", "bank", "clinic"],
    );
    assert_eq!(field, "join.id_columns.hospital");
    assert_eq!(
        kind,
        ProblemKind::NotAnInput {
            party: "hospital".into()
        }
    );
}

#[test]
fn alignment_follows_the_intersection_order() {
    let ids = s(&["a", "b", "c", "d"]);
    assert_eq!(align(&ids, &s(&["c", "a"]), "d", "id").unwrap(), [2, 0]);
    assert_eq!(align(&ids, &[], "d", "id").unwrap(), Vec::<usize>::new());
    let refusal = |r: Result<Vec<usize>, PartyError>| match r {
        Err(PartyError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    };
    // An id of the intersection missing: named by position, never by value.
    let e = refusal(align(&ids, &s(&["c", "zz"]), "patients", "patient_id"));
    assert_eq!(
        e,
        Refusal::IdNotInDataset {
            dataset: "patients".into(),
            column: "patient_id".into(),
            index: 2,
        }
    );
    assert!(!e.to_string().contains("zz"), "{e}");
    // An id of the intersection twice in the column.
    let dup = s(&["a", "c", "b", "c"]);
    assert_eq!(
        refusal(align(&dup, &s(&["a", "c"]), "patients", "patient_id")),
        Refusal::DuplicateId {
            dataset: "patients".into(),
            column: "patient_id".into(),
            index: 2,
            first_row: 2,
            second_row: 4,
        }
    );
    // A repeat outside the intersection does not matter.
    assert_eq!(align(&dup, &s(&["b"]), "d", "id").unwrap(), [2]);
    assert_eq!(
        refusal(align(&ids, &s(&["a", "a"]), "d", "id")),
        Refusal::CorruptIntersection { repeats: 1 }
    );
}

fn write_dataset(dir: &std::path::Path) -> (PartyConfig, DatasetConfig) {
    let path = dir.join("patients.csv");
    std::fs::write(
        &path,
        "member_id,claim_amount,plan,age\nM1,10.5,basic,40\nM2,20.25,gold,50\nM3,-3,basic,60\n",
    )
    .unwrap();
    let decl = |name: &str, ty| ColumnDecl {
        name: name.into(),
        ty,
    };
    let ds = DatasetConfig {
        name: "patients".into(),
        path: path.clone(),
        id_column: "member_id".into(),
        columns: vec![
            decl("member_id", ColumnType::String),
            decl("claim_amount", ColumnType::Float),
            decl("plan", ColumnType::String),
            decl("age", ColumnType::Float),
        ],
    };
    let cfg: PartyConfig = toml::from_str(&format!(
        "id = \"insurer\"\nlisten = \"127.0.0.1:1\"\ncoordinator = \"http://127.0.0.1:2\"\n\
         insecure = true\nstate_dir = {:?}\n",
        dir.join("state")
    ))
    .unwrap();
    (cfg, ds)
}

#[test]
fn a_data_party_checks_its_columns_filters_and_stored_intersection() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, ds) = write_dataset(dir.path());
    let check = |sp: &pb::JobSpec| plan_of(sp, &PEERS).unwrap().check_local(&cfg, 0, &ds);
    check(&spec(
        &["insurer.claim_amount"],
        vec![equals("insurer.plan", "basic")],
        "",
    ))
    .unwrap();
    // The hospital's columns are not checked here.
    check(&spec(&["hospital.nope"], vec![], "")).unwrap();
    let err = |sp: pb::JobSpec| match check(&sp) {
        Err(PartyError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(matches!(
        err(spec(&["insurer.nope"], vec![], "")),
        Refusal::NoColumn { column, role: ColumnRole::Value, .. } if column == "nope"
    ));
    assert!(matches!(
        err(spec(&["insurer.plan"], vec![], "")),
        Refusal::NotNumeric { column, ty: ColumnType::String, .. } if column == "plan"
    ));
    assert!(matches!(
        err(spec(&["insurer.age"], vec![equals("insurer.nope", "1")], "")),
        Refusal::NoColumn { column, role: ColumnRole::Filter, .. } if column == "nope"
    ));
    assert!(matches!(
        err(spec(&["insurer.age"], vec![equals("insurer.member_id", "M1")], "")),
        Refusal::FilterOnIds { column } if column == "member_id"
    ));
    assert_eq!(
        err(spec(&["insurer.age"], vec![], "job-0123")),
        Refusal::NoIntersection {
            psi_job: "job-0123".into()
        }
    );
    let stored = crate::psi::intersection_path(&cfg, "job-0123");
    std::fs::create_dir_all(stored.parent().unwrap()).unwrap();
    std::fs::write(&stored, "M3\nM1\n").unwrap();
    check(&spec(&["insurer.age"], vec![], "job-0123")).unwrap();
    assert_eq!(
        crate::psi::read_intersection(&cfg, "job-0123").unwrap(),
        s(&["M3", "M1"])
    );
}

#[test]
fn a_data_party_lays_out_its_rows_in_the_common_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ds) = write_dataset(dir.path());
    let sp = spec(
        &["insurer.claim_amount", "hospital.x", "insurer.age"],
        vec![equals("insurer.plan", "basic")],
        "",
    );
    let plan = plan_of(&sp, &PEERS).unwrap();
    let table = JoinTable::load(&plan, 0, &ds, &ds.path).unwrap();
    assert_eq!(table.ids(), s(&["M1", "M2", "M3"]));
    table.check_ids().unwrap();
    let matched = table.align(&s(&["M3", "M1"])).unwrap();
    assert_eq!(matched, [2, 0]);
    let fixed = FixedPoint::new(2).unwrap();
    let input = table.input(&matched, "job", fixed).unwrap();
    assert_eq!(
        format!("{input:?}"),
        "VerticalInput { rows: 2, filter: true, columns: 2, .. }"
    );
    // The digest depends on the order (and the job).
    let d = |ids: &[&str], job: &str| alignment_digest(job, ids.iter().copied());
    assert_ne!(d(&["M3", "M1"], "job"), d(&["M1", "M3"], "job"));
    assert_ne!(d(&["M3", "M1"], "job"), d(&["M3", "M1"], "job2"));
    assert_ne!(d(&["M3M1"], "job"), d(&["M3", "M1"], "job"));
    // The helper loads nothing.
    assert!(JoinTable::load(&plan, 1, &ds, &ds.path).is_err());
}
