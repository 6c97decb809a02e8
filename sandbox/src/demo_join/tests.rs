use super::*;

fn opts(dir: &Path, rows: usize, overlap: f64) -> JoinDemoOptions {
    let mut o = JoinDemoOptions::new(dir.to_path_buf());
    o.rows = rows;
    o.overlap = overlap;
    o
}

#[test]
fn the_synthetic_patients_make_the_filter_matter() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_data(&opts(dir.path(), 4000, 0.5)).unwrap();
    let (clear, shared) = clear_reference(&data).unwrap();
    assert_eq!(shared, 2000);
    // Roughly 13% of the shared patients are diabetic, with claims well above the median.
    assert!(clear.count > 150 && clear.count < 400, "{clear:?}");
    let mean = clear.columns[0].mean.unwrap();
    assert!(mean > 3000.0 && mean < 20_000.0, "{clear:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psi_job_then_vertical_stats_match_the_clear_join() {
    let dir = tempfile::tempdir().unwrap();
    let report = run(&opts(dir.path(), 2000, 0.5), |_| {}).await.unwrap();
    assert!(report.within_bound, "{report:#?}");
    assert!(report.psi_job_id.is_some());
    assert_eq!(report.intersection_size, 1000);
    assert_eq!(report.result.count, report.plaintext.count);
    assert!(report.result.count > 50, "{report:#?}");
    // Header, seeds, one input round per data party, the matmul.
    assert_eq!(
        report.rounds,
        5 + 1,
        "{report:#?} (+1: the release barrier)"
    );
    // The helper sends 32 bytes of seeds to each peer, 8·(1 + 2·2) in the matmul (to one peer)
    // and a 32-byte barrier digest to each peer; nothing in the header or the input rounds.
    assert_eq!(report.bytes_sent_per_party["bank"], 64 + 40 + 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_psi_as_the_first_phase_matches_the_clear_join() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), 1500, 0.4);
    o.inline_psi = true;
    o.frac_bits = 12;
    let report = run(&o, |_| {}).await.unwrap();
    assert!(report.within_bound, "{report:#?}");
    assert!(report.psi_job_id.is_none());
    assert_eq!(report.intersection_size, 600);
    assert_eq!(report.result.count, report.plaintext.count);
}

/// Rewrites the insurer's file keeping the header and the lines `keep` accepts, then appending
/// `extra` lines.
fn rewrite(path: &Path, keep: impl Fn(&str) -> bool, extra: &[String]) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let header = lines.remove(0);
    let mut out = vec![header];
    out.extend(lines.into_iter().filter(|l| keep(l)));
    out.extend(extra.iter().cloned());
    std::fs::write(path, out.join("\n") + "\n").unwrap();
}

async fn failure(sandbox: &Sandbox, spec: pb::JobSpec) -> String {
    match sandbox.run_job(spec, |_| {}).await {
        Ok(job) => {
            assert_eq!(job.state(), pb::JobState::Failed, "{job:?}");
            job.reason
        }
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_failures_name_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), 300, 0.5);
    let data = write_data(&o).unwrap();
    let sandbox = start(&o, &data).await.unwrap();
    let key = RecipientSecretKey::generate(&mut seeds::os_rng().unwrap());
    let public = key.public_key().unwrap().to_vec();
    let parties = [PARTIES[0].to_string(), PARTIES[1].to_string()];
    let psi = sandbox
        .run_job_to_success(demo_psi::psi_spec(&parties, public.clone()), |_| {})
        .await
        .unwrap();
    let stored = dir
        .path()
        .join(format!("hospital-state/psi/{}.ids", psi.id));
    let first = std::fs::read_to_string(&stored)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let insurer_csv = &data[1].1.path;
    let original = std::fs::read_to_string(insurer_csv).unwrap();
    let line_of_first = original
        .lines()
        .find(|l| l.starts_with(&format!("{first},")))
        .unwrap()
        .to_string();

    // Refused at submission: a column not at its party, a filter on a party without data, a
    // reused job that is not a psi job.
    let mut spec = join_spec(16, Some(&psi.id), public.clone());
    if let Some(job_spec::Computation::Stats(s)) = &mut spec.computation {
        s.columns.push("hospital.claim_amount".into());
        s.filters.push(pb::Filter {
            column: "bank.balance".into(),
            predicate: Some(filter::Predicate::Equals("1".into())),
        });
    }
    let e = failure(&sandbox, spec).await;
    assert!(
        e.contains("party \"hospital\" dataset \"patients\" has no column \"claim_amount\""),
        "{e}"
    );
    assert!(
        e.contains("\"bank.balance\" names party \"bank\", which holds no data"),
        "{e}"
    );
    let e = failure(
        &sandbox,
        join_spec(16, Some("job-0000000000000000"), public.clone()),
    )
    .await;
    assert!(e.contains("is not a known job"), "{e}");

    // The insurer's file lost a patient of the intersection: it fails naming the position.
    rewrite(insurer_csv, |l| l != line_of_first, &[]);
    let e = failure(&sandbox, join_spec(16, Some(&psi.id), public.clone())).await;
    assert!(
        e.contains(
            "id #1 of the intersection is not in dataset \"patients\" id column \"patient_id\""
        ),
        "{e}"
    );
    assert!(!e.contains(&first), "the id itself is never named: {e}");
    // ... or holds one twice.
    std::fs::write(insurer_csv, &original).unwrap();
    rewrite(insurer_csv, |_| true, std::slice::from_ref(&line_of_first));
    let e = failure(&sandbox, join_spec(16, Some(&psi.id), public.clone())).await;
    assert!(e.contains("holds id #1 of the intersection twice"), "{e}");

    // No patient in common: an inline PSI finds an empty intersection and the job says so.
    rewrite(
        insurer_csv,
        |_| false,
        &["Q1,10.00".into(), "Q2,20.00".into()],
    );
    let e = failure(&sandbox, join_spec(16, None, public.clone())).await;
    assert!(e.contains("the join's intersection is empty"), "{e}");

    // The original file works again with the stored intersection.
    std::fs::write(insurer_csv, &original).unwrap();
    let job = sandbox
        .run_job_to_success(join_spec(16, Some(&psi.id), public), |_| {})
        .await
        .unwrap();
    let mut client = sandbox.analyst().await.unwrap();
    let result = analyst::fetch_stats_result(&mut client, &job, &key, &sandbox.party_keys())
        .await
        .unwrap();
    let (clear, _) = clear_reference(&data).unwrap();
    let (err, ok) = vstats::compare(&result, &clear, FixedPoint::default());
    assert!(ok, "max error {err}: {result:?} vs {clear:?}");
    sandbox.shut_down().await;
}

/// Issue 4: with three-party PSI, all three inputs of a join may hold data. The bank holds every
/// other hospital patient (and some of its own) with an account balance; the statistics run over
/// the patients all three hold, with the PSI inline and with a stored three-party intersection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_data_parties_join_on_their_common_patients() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), 400, 0.5);
    let mut data = write_data(&o).unwrap();
    let load = |ds: &DatasetConfig, columns: &[&str]| dataset::load_columns(ds, &ds.path, columns);
    let hospital = load(&data[0].1, &[ID_COLUMN, "diabetic"]).unwrap();
    let hospital_ids = hospital.text(ID_COLUMN).unwrap().to_vec();
    let bank_csv = dir.path().join("bank-patients.csv");
    let mut text = String::from("patient_id,balance\n");
    let bank_ids: Vec<String> = hospital_ids
        .iter()
        .step_by(2)
        .cloned()
        .chain((0..50).map(|k| format!("B{k:06}")))
        .collect();
    for (k, id) in bank_ids.iter().enumerate() {
        text.push_str(&format!("{id},{}\n", 1000 + 37 * k));
    }
    std::fs::write(&bank_csv, text).unwrap();
    data.push((
        PARTIES[2].to_string(),
        DatasetConfig {
            name: DATASET.into(),
            path: bank_csv,
            id_column: ID_COLUMN.into(),
            columns: vec![
                decl(ID_COLUMN, ColumnType::String),
                decl("balance", ColumnType::Int),
            ],
        },
    ));

    // The clear reference: patients at all three, diabetic at the hospital.
    let insurer = load(&data[1].1, &[ID_COLUMN, "claim_amount"]).unwrap();
    let claims: HashMap<&String, f64> = insurer
        .text(ID_COLUMN)
        .unwrap()
        .iter()
        .zip(insurer.numeric("claim_amount").unwrap().iter().copied())
        .collect();
    let balances: HashMap<&String, f64> = bank_ids
        .iter()
        .enumerate()
        .map(|(k, id)| (id, (1000 + 37 * k) as f64))
        .collect();
    let diabetic = hospital.numeric("diabetic").unwrap();
    let mut columns = vec![Vec::new(), Vec::new()];
    let mut common = 0;
    for (j, id) in hospital_ids.iter().enumerate() {
        if let (Some(c), Some(b)) = (claims.get(id), balances.get(id)) {
            common += 1;
            if diabetic[j] == 1.0 {
                columns[0].push(*c);
                columns[1].push(*b);
            }
        }
    }
    assert!(common > 50 && common < 200, "{common}");
    let names = vec![
        "insurer.claim_amount".to_string(),
        "bank.balance".to_string(),
    ];
    let clear = StatsResult::plaintext(&names, &columns);

    let sandbox = start(&o, &data).await.unwrap();
    let key = RecipientSecretKey::generate(&mut seeds::os_rng().unwrap());
    let public = key.public_key().unwrap().to_vec();
    let parties = PARTIES.map(String::from);
    let psi = sandbox
        .run_job_to_success(demo_psi::psi_spec(&parties, public.clone()), |_| {})
        .await
        .unwrap();
    assert_eq!(psi.spec.as_ref().unwrap().protocol, "psi-ecdh-chain");
    for psi_job in [None, Some(psi.id.as_str())] {
        let mut spec = join_spec(16, psi_job, public.clone());
        spec.inputs[2].dataset = DATASET.into();
        let join = spec.join.as_mut().unwrap();
        join.id_columns.insert(PARTIES[2].into(), ID_COLUMN.into());
        if let Some(job_spec::Computation::Stats(s)) = &mut spec.computation {
            s.columns = names.clone();
        }
        let job = sandbox.run_job_to_success(spec, |_| {}).await.unwrap();
        let mut client = sandbox.analyst().await.unwrap();
        let result = analyst::fetch_stats_result(&mut client, &job, &key, &sandbox.party_keys())
            .await
            .unwrap();
        assert_eq!(result.count, clear.count, "psi_job {psi_job:?}");
        let (err, ok) = vstats::compare(&result, &clear, FixedPoint::default());
        assert!(
            ok,
            "psi_job {psi_job:?}: max error {err}: {result:?} vs {clear:?}"
        );
    }
    sandbox.shut_down().await;
}
