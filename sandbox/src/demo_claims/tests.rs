use super::*;
use treaty_party::score::ClearModel;
use treaty_party::train::StoredModel;
use treaty_proto::v1 as pb;

fn opts(dir: &std::path::Path, rows: usize) -> ClaimsDemoOptions {
    let mut o = ClaimsDemoOptions::new(dir.to_path_buf());
    o.rows = rows;
    o.overlap = 0.8;
    o.holdout = 0.2;
    o.score_rows = 400;
    o.params.epochs = 2;
    o.params.batch_size = 128;
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psi_then_train_matches_the_f64_pipeline_and_stores_the_model_shares() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), 1500);
    let report = run(&o, |_| {}).await.unwrap();
    assert!(report.within_bound, "{report:#?}");
    assert_eq!(
        (report.rows, report.train_rows, report.holdout_rows),
        (1200, 960, 240)
    );
    assert_eq!(report.features, 30);
    assert_eq!(report.steps, 2 * 8);
    // The synthetic labels follow a real model: the secure AUC is far from chance. (240 held-out
    // rows, in the PSI's random common order: the AUC of this sample varies around 0.75-0.8
    // between runs, for the clear pipeline as much as the secure one.)
    assert!(report.secure_auc > 0.7, "{report:#?}");
    // The stored model scored the new records (400 · 0.8 held by all three) and one application.
    assert_eq!(report.scored_records, 320);
    assert!(report.max_score_error <= SCORE_BOUND, "{report:#?}");
    assert_eq!(report.clear_decision_mismatches, 0, "{report:#?}");
    // Every party stored its share; the three first components sum to the revealed weights.
    let mut sum = vec![0u64; 31];
    for party in PARTIES {
        let path = dir
            .path()
            .join(format!("{party}-state/models/{}.json", report.train_job_id));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        }
        let model = StoredModel::read(&path).unwrap();
        assert_eq!(model.features, feature_names());
        assert_eq!(
            model.standardizers.len(),
            10,
            "each party standardised its own 10"
        );
        for (s, w) in sum.iter_mut().zip(&model.share_a) {
            *s = s.wrapping_add(*w);
        }
        assert!(!format!("{model:?}").contains(&model.share_a[0].to_string()));
    }
    let weights = glm::SharedModel::decode_weights(&sum, o.frac_bits);
    assert_eq!(weights, report.secure_weights);
}

fn helper_spec(key: Vec<u8>, label: &str, model_id: &str) -> pb::JobSpec {
    let mut inputs: Vec<pb::JobInput> = PARTIES[..2]
        .iter()
        .map(|p| pb::JobInput {
            party: (*p).into(),
            dataset: synthetic_risk::DATASET.into(),
        })
        .collect();
    inputs.push(pb::JobInput {
        party: PARTIES[2].into(),
        dataset: String::new(),
    });
    pb::JobSpec {
        name: "train with a helper".into(),
        inputs,
        output: Some(pb::JobOutput {
            recipient: ANALYST.into(),
            recipient_public_key: key,
        }),
        join: Some(pb::JoinSpec {
            id_columns: PARTIES[..2]
                .iter()
                .map(|p| ((*p).to_string(), ID_COLUMN.to_string()))
                .collect(),
            psi_job: String::new(),
        }),
        computation: Some(job_spec::Computation::Train(pb::TrainJob {
            features: vec![
                "hospital.admissions_12m".into(),
                "hospital.prescriptions".into(),
                "insurer.claims_12m".into(),
                "insurer.provider_risk".into(),
            ],
            label: label.into(),
            epochs: 2,
            batch_size: 64,
            holdout: 0.25,
            metric: "accuracy".into(),
            model_id: model_id.into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_an_inline_psi_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), 600);
    let (sandbox, _) = start(&o).await.unwrap();
    let key = RecipientSecretKey::generate(&mut seeds::os_rng().unwrap());
    let public = key.public_key().unwrap().to_vec();
    let outcome = async {
        // Hospital and insurer hold data, the bank only computes; the PSI runs inline.
        let job = sandbox
            .run_job_to_success(helper_spec(public.clone(), "insurer.fraud", "m1"), |_| {})
            .await
            .unwrap();
        let mut client = sandbox.analyst().await.unwrap();
        let r = analyst::fetch_train_result(&mut client, &job, &key, &sandbox.party_keys())
            .await
            .unwrap();
        assert_eq!(r.metric, "accuracy");
        // The hospital and the insurer hold 80% + pairwise extras of 600 each in common.
        assert!(r.rows >= 480, "{r:?}");
        assert_eq!(r.holdout_rows, r.rows / 4);
        let acc = r.value.unwrap();
        assert!((0.8..=1.0).contains(&acc), "{r:?}");
        assert!(r.weights.is_none(), "weights stay secret-shared by default");

        // The same model id again: refused by every data party before anything runs.
        let again = sandbox
            .run_job(helper_spec(public.clone(), "insurer.fraud", "m1"), |_| {})
            .await
            .unwrap();
        assert_ne!(again.state(), pb::JobState::Succeeded);
        assert!(
            again.reason.contains("already stores a model \"m1\""),
            "{}",
            again.reason
        );

        // Score the new records with m1: hospital and insurer hold the records, the bank helps.
        let mut spec = helper_spec(public.clone(), "insurer.fraud", "m1");
        for i in &mut spec.inputs[..2] {
            i.dataset = NEW_DATASET.into();
        }
        spec.computation = Some(job_spec::Computation::Score(pb::ScoreJob {
            model_id: "m1".into(),
            output: "decision".into(),
            threshold: Some(0.5),
            ids_from: String::new(),
            ..Default::default()
        }));
        let scored = sandbox
            .run_job_to_success(spec.clone(), |_| {})
            .await
            .unwrap();
        let r = analyst::fetch_score_result(&mut client, &scored, &key, &sandbox.party_keys())
            .await
            .unwrap();
        assert!(r.rows >= 320, "{}", r.rows);
        assert_eq!(
            r.ids.len() as u64,
            r.rows,
            "the hospital's ids come with the results"
        );
        assert!(r.scores.is_none());
        assert_eq!(r.decisions.as_ref().map(Vec::len), Some(r.rows as usize));
        // An unknown model, and the parties in another order: refused at submission.
        let mut unknown = spec.clone();
        if let Some(job_spec::Computation::Score(sc)) = &mut unknown.computation {
            sc.model_id = "nope".into();
        }
        let e = sandbox
            .run_job(unknown, |_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no succeeded train job stored model \"nope\""),
            "{e}"
        );
        let mut reordered = spec.clone();
        reordered.inputs.swap(0, 1);
        let e = sandbox
            .run_job(reordered, |_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("the parties must be the training job's"), "{e}");

        // A model the insurer holds in the clear: it shares the weights and sends each feature
        // owner its standardisation; the scores match the same model applied in f64.
        let features = [
            "hospital.admissions_12m",
            "hospital.prescriptions",
            "insurer.claims_12m",
            "insurer.provider_risk",
        ];
        let clear = ClearModel {
            kind: "logistic".into(),
            intercept: true,
            features: features.iter().map(|f| f.to_string()).collect(),
            weights: vec![0.4, -0.3, 0.8, 0.5, -1.2],
            standardizers: vec![(1.0, 2.0), (3.0, 2.5), (2.0, 1.5), (0.5, 0.2)],
        };
        let path = dir.path().join("insurer-state/models/clear1.clear.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_vec(&clear).unwrap()).unwrap();
        let mut clear_spec = spec.clone();
        clear_spec.computation = Some(job_spec::Computation::Score(pb::ScoreJob {
            model_id: "clear1".into(),
            weights_party: "insurer".into(),
            features: clear.features.clone(),
            ..Default::default()
        }));
        let job = sandbox
            .run_job_to_success(clear_spec.clone(), |_| {})
            .await
            .unwrap();
        let r = analyst::fetch_score_result(&mut client, &job, &key, &sandbox.party_keys())
            .await
            .unwrap();
        let columns = aligned_columns(&o, &new_datasets(&o).unwrap(), &r.ids).unwrap();
        let scores = r.scores.clone().unwrap();
        let mut worst = 0.0f64;
        for (j, score) in scores.iter().enumerate() {
            let z: f64 = features
                .iter()
                .zip(&clear.weights)
                .zip(&clear.standardizers)
                .map(|((f, w), (m, sc))| w * (columns[*f][j] - m) / sc)
                .sum::<f64>()
                + clear.weights[4];
            worst = worst.max((score - glm::plain::sigmoid(z)).abs());
        }
        assert!(worst <= SCORE_BOUND, "clear-model scores off by {worst}");
        // The bank holds no such model: refused before anything runs.
        if let Some(job_spec::Computation::Score(sc)) = &mut clear_spec.computation {
            sc.weights_party = "bank".into();
        }
        let refused = sandbox.run_job(clear_spec, |_| {}).await.unwrap();
        assert!(
            refused.reason.contains("stores no model \"clear1\""),
            "{}",
            refused.reason
        );

        // A label that is not 0/1: the insurer names the aligned row, never the value.
        let bad = sandbox
            .run_job(
                helper_spec(public.clone(), "insurer.claim_amount", "m2"),
                |_| {},
            )
            .await
            .unwrap();
        assert_eq!(bad.state(), pb::JobState::Failed, "{bad:?}");
        assert!(bad.reason.contains("is not 0 or 1"), "{}", bad.reason);
    };
    outcome.await;
    sandbox.shut_down().await;
}
