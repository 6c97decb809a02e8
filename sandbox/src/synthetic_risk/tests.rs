use std::collections::{HashMap, HashSet};

use super::*;
use treaty_party::dataset::load_columns;

fn opts(rows: usize, overlap: f64, seed: u64) -> RiskDataOptions {
    RiskDataOptions {
        rows,
        overlap,
        seed,
        ..RiskDataOptions::default()
    }
}

/// The three files' bytes, in `PARTIES` order.
fn file_bytes(opts: &RiskDataOptions) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let written = write_risk_data(dir.path(), opts).unwrap();
    written
        .iter()
        .map(|(_, ds)| std::fs::read(&ds.path).unwrap())
        .collect()
}

#[test]
fn same_options_give_identical_bytes_and_seeds_differ() {
    let o = opts(2_000, 0.5, 7);
    let first = file_bytes(&o);
    assert_eq!(first, file_bytes(&o));
    let other = file_bytes(&RiskDataOptions {
        seed: 8,
        ..o.clone()
    });
    for (p, party) in PARTIES.iter().enumerate() {
        assert_ne!(first[p], other[p], "{party}: seeds 7 and 8");
        assert!(
            !first[p].windows(2).any(|w| w == b",-"),
            "{party}: no negative cell"
        );
    }
    assert_eq!(generate(&o).unwrap(), generate(&o).unwrap());
}

#[test]
fn exactly_round_overlap_rows_are_held_by_all_three_parties() {
    for (rows, overlap) in [
        (1_000, 0.6),
        (999, 0.25),
        (10, 1.0),
        (7, 0.0),
        (1, 0.5),
        (0, 0.3),
    ] {
        let o = opts(rows, overlap, 3);
        let data = generate(&o).unwrap();
        let context = format!("rows {rows}, overlap {overlap}");
        let ids: Vec<HashSet<&str>> = data
            .party_rows
            .iter()
            .map(|rows| rows.iter().map(|&i| data.records[i].id.as_str()).collect())
            .collect();
        for (p, party) in PARTIES.iter().enumerate() {
            assert_eq!(data.party_rows[p].len(), rows, "{context}: {party}");
            assert_eq!(ids[p].len(), rows, "{context}: {party}'s ids are unique");
        }
        let all: HashSet<&str> = ids[0]
            .iter()
            .filter(|id| ids[1].contains(*id) && ids[2].contains(*id))
            .copied()
            .collect();
        let expected = (overlap * rows as f64).round() as usize;
        assert_eq!(all.len(), expected, "{context}");
        assert_eq!(o.shared(), expected, "{context}");
        let joined: HashSet<&str> = data.joined().map(|r| r.id.as_str()).collect();
        assert_eq!(joined, all, "{context}");
        // Every person of the population is held by someone, and each pairwise intersection
        // adds a quarter of the rest to the three-way one.
        assert!(
            data.records.iter().all(|r| r.holders.contains(&true)),
            "{context}"
        );
        let pair = ids[0].intersection(&ids[1]).count();
        assert_eq!(pair, expected + (rows - expected) / 4, "{context}");
    }
}

#[test]
fn ids_and_row_order_reveal_nothing() {
    let data = generate(&opts(2_000, 0.5, 11)).unwrap();
    let ids: Vec<&str> = data.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids[0], "P-0000001");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "records are in id order"
    );
    // Shared persons are spread over the id range, not a block at its start.
    let shared: Vec<usize> = (0..data.records.len())
        .filter(|&i| data.records[i].holders == [true; 3])
        .collect();
    assert!(shared[0] < 100 && *shared.last().unwrap() > data.records.len() - 100);
    // Each file has its own order: neither sorted by id nor aligned with another party's.
    let position: Vec<HashMap<usize, usize>> = data
        .party_rows
        .iter()
        .map(|rows| rows.iter().enumerate().map(|(pos, &i)| (i, pos)).collect())
        .collect();
    for (p, rows) in data.party_rows.iter().enumerate() {
        assert!(
            rows.windows(2).any(|w| w[0] > w[1]),
            "{} is shuffled",
            PARTIES[p]
        );
        let q = (p + 1) % 3;
        let same_place = shared
            .iter()
            .filter(|i| position[p][i] == position[q][i])
            .count();
        assert!(
            same_place < 10,
            "{} and {} orders agree on {same_place}",
            PARTIES[p],
            PARTIES[q]
        );
    }
}

#[test]
fn written_files_load_with_their_schema_and_hold_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(3_000, 0.7, 5);
    let data = generate(&o).unwrap();
    let written = write_risk_files(&dir.path().join("nested"), &data).unwrap();
    assert_eq!(
        written,
        write_risk_data(&dir.path().join("nested"), &o).unwrap()
    );
    let by_id: HashMap<&str, &RiskRecord> =
        data.records.iter().map(|r| (r.id.as_str(), r)).collect();

    assert_eq!(written.len(), PARTIES.len());
    for (p, (party, ds)) in written.iter().enumerate() {
        assert_eq!(party, PARTIES[p]);
        assert_eq!(
            ds.path,
            dir.path().join("nested").join(format!("{party}.csv"))
        );
        assert_eq!(Some(ds.clone()), risk_schema(party, ds.path.clone()));
        assert_eq!(ds.id_column, ID_COLUMN);
        ds.validate().unwrap();

        let names: Vec<&str> = ds.columns.iter().map(|c| c.name.as_str()).collect();
        let header = std::fs::read_to_string(&ds.path).unwrap();
        let header = header.lines().next().unwrap();
        assert_eq!(
            header,
            names.join(","),
            "{party}: the header is the schema in order"
        );
        let features: Vec<usize> = party_features(party).collect();
        assert_eq!(features.len(), 10, "{party}");
        assert_eq!(
            names.len(),
            1 + 10 + usize::from(party == LABEL_PARTY),
            "{party}"
        );

        let table = load_columns(ds, &ds.path, &names).unwrap();
        assert_eq!(table.rows(), o.rows, "{party}");
        for decl in &ds.columns {
            assert_eq!(
                table.column_type(&decl.name),
                Some(decl.ty),
                "{party}.{}",
                decl.name
            );
        }
        let ids = table.text(ID_COLUMN).unwrap();
        for (row, &i) in data.party_rows[p].iter().enumerate() {
            assert_eq!(ids[row], data.records[i].id, "{party} row {row}");
        }
        for &k in &features {
            let values = table.numeric(FEATURES[k].name).unwrap();
            for (row, id) in ids.iter().enumerate() {
                assert_eq!(
                    values[row],
                    by_id[id.as_str()].features[k],
                    "{party}.{} of {id}: the file holds exactly the generated value",
                    FEATURES[k].name
                );
            }
        }
        if party == LABEL_PARTY {
            let labels = table.numeric(LABEL_COLUMN).unwrap();
            for (row, id) in ids.iter().enumerate() {
                assert_eq!(
                    labels[row],
                    f64::from(u8::from(by_id[id.as_str()].fraud)),
                    "{id}"
                );
            }
        }
    }
    assert_eq!(risk_schema("analyst", dir.path().join("x.csv")), None);
}

#[test]
fn values_lie_in_their_declared_ranges_and_decimals() {
    let data = generate(&opts(5_000, 0.6, 9)).unwrap();
    for (k, f) in FEATURES.iter().enumerate() {
        let values: Vec<f64> = data.records.iter().map(|r| r.features[k]).collect();
        for &x in &values {
            assert!(
                (f.min..=f.max).contains(&x),
                "{}: {x} outside {}..={}",
                f.name,
                f.min,
                f.max
            );
            assert_eq!(
                f.quantise(x),
                x,
                "{}: {x} has {} decimals",
                f.name,
                f.decimals
            );
            assert!(x.is_sign_positive(), "{}: {x}", f.name);
        }
        let distinct: HashSet<u64> = values.iter().map(|x| x.to_bits()).collect();
        assert!(distinct.len() >= 2, "{} varies", f.name);
        assert_eq!(f.ty == ColumnType::Int, f.decimals == 0, "{}", f.name);
    }
    let deductibles: HashSet<u64> = data
        .records
        .iter()
        .map(|r| r.features[DEDUCTIBLE] as u64)
        .collect();
    assert_eq!(deductibles, DEDUCTIBLES.iter().map(|&d| d as u64).collect());
    for r in &data.records {
        let age = r.features[AGE];
        assert!(r.features[POLICY_TENURE_YEARS] <= age - ADULT, "{}", r.id);
        assert!(r.features[ACCOUNT_AGE_YEARS] <= age - ADULT, "{}", r.id);
        assert_eq!(
            r.features[ADMISSIONS_12M] == 0.0,
            r.features[LENGTH_OF_STAY] == 0.0,
            "{}",
            r.id
        );
    }
}

#[test]
fn feature_table_is_consistent() {
    let indices = [
        (AGE, "age"),
        (BMI, "bmi"),
        (SYSTOLIC_BP, "systolic_bp"),
        (CHRONIC_CONDITIONS, "chronic_conditions"),
        (DIABETIC, "diabetic"),
        (SMOKER, "smoker"),
        (ADMISSIONS_12M, "admissions_12m"),
        (LENGTH_OF_STAY, "length_of_stay"),
        (ER_VISITS_12M, "er_visits_12m"),
        (PRESCRIPTIONS, "prescriptions"),
        (CLAIM_AMOUNT, "claim_amount"),
        (CLAIMS_12M, "claims_12m"),
        (POLICY_TENURE_YEARS, "policy_tenure_years"),
        (DEDUCTIBLE, "deductible"),
        (PREMIUM_MONTHLY, "premium_monthly"),
        (PROVIDER_RISK, "provider_risk"),
        (DAYS_TO_REPORT, "days_to_report"),
        (PRIOR_DENIALS, "prior_denials"),
        (OUT_OF_NETWORK, "out_of_network"),
        (POLICY_CHANGES_12M, "policy_changes_12m"),
        (INCOME, "income"),
        (DEBT_RATIO, "debt_ratio"),
        (LATE_PAYMENTS_12M, "late_payments_12m"),
        (ACCOUNT_AGE_YEARS, "account_age_years"),
        (OVERDRAFT_DAYS, "overdraft_days"),
        (CREDIT_UTILISATION, "credit_utilisation"),
        (SAVINGS_BALANCE, "savings_balance"),
        (CASH_WITHDRAWALS_12M, "cash_withdrawals_12m"),
        (LARGE_TRANSFERS_90D, "large_transfers_90d"),
        (NUM_ACCOUNTS, "num_accounts"),
    ];
    for (k, (index, name)) in indices.into_iter().enumerate() {
        assert_eq!((index, FEATURES[index].name), (k, name));
    }
    // Grouped by party in `PARTIES` order, with signal at every party.
    for (p, party) in PARTIES.iter().enumerate() {
        let ks: Vec<usize> = party_features(party).collect();
        assert_eq!(ks, (10 * p..10 * p + 10).collect::<Vec<_>>(), "{party}");
        assert!(
            ks.iter().filter(|&&k| FEATURES[k].beta != 0.0).count() >= 5,
            "{party}"
        );
    }
    let names: HashSet<&str> = FEATURES.iter().map(|f| f.name).collect();
    assert_eq!(names.len(), N_FEATURES);
    assert!(!names.contains(ID_COLUMN) && !names.contains(LABEL_COLUMN));
}

#[test]
fn bad_options_are_rejected() {
    for (overlap, rate) in [
        (-0.1, 0.1),
        (1.5, 0.1),
        (f64::NAN, 0.1),
        (0.5, 0.0),
        (0.5, 1.0),
        (0.5, f64::NAN),
    ] {
        let o = RiskDataOptions {
            overlap,
            positive_rate: rate,
            ..RiskDataOptions::default()
        };
        assert!(
            matches!(generate(&o), Err(SandboxError::Failed(_))),
            "overlap {overlap}, rate {rate}"
        );
    }
    RiskDataOptions::default().validate().unwrap();
}

/// Full-batch gradient descent on the mean logistic loss over the features `columns` (indices
/// into `FEATURES`), each standardised by its own mean and standard deviation. Returns the fitted
/// `[β0, β1, …]` (one β per column) and each record's fitted logit.
fn fit_logistic(
    x: &[[f64; N_FEATURES]],
    y: &[bool],
    columns: &[usize],
    iterations: usize,
    step: f64,
) -> (Vec<f64>, Vec<f64>) {
    let n = x.len() as f64;
    let z: Vec<Vec<f64>> = {
        let moments: Vec<(f64, f64)> = columns
            .iter()
            .map(|&k| {
                let mean = x.iter().map(|r| r[k]).sum::<f64>() / n;
                let var = x.iter().map(|r| (r[k] - mean).powi(2)).sum::<f64>() / n;
                (mean, var.sqrt())
            })
            .collect();
        x.iter()
            .map(|r| {
                columns
                    .iter()
                    .zip(&moments)
                    .map(|(&k, &(mean, sd))| (r[k] - mean) / sd)
                    .collect()
            })
            .collect()
    };
    let logit =
        |w: &[f64], zi: &[f64]| w[0] + zi.iter().zip(&w[1..]).map(|(a, b)| a * b).sum::<f64>();
    let mut w = vec![0.0; columns.len() + 1];
    let mut gradient = vec![0.0; columns.len() + 1];
    for _ in 0..iterations {
        gradient.iter_mut().for_each(|g| *g = 0.0);
        for (zi, &yi) in z.iter().zip(y) {
            let error = sigmoid(logit(&w, zi)) - f64::from(u8::from(yi));
            gradient[0] += error;
            for (g, a) in gradient[1..].iter_mut().zip(zi) {
                *g += error * a;
            }
        }
        for (wk, g) in w.iter_mut().zip(&gradient) {
            *wk -= step * g / n;
        }
    }
    let logits = z.iter().map(|zi| logit(&w, zi)).collect();
    (w, logits)
}

/// The area under the ROC curve of `scores` for `labels` (by ranks; ties are negligible here).
fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut positives) = (0.0, 0.0);
    for (rank, &i) in order.iter().enumerate() {
        if labels[i] {
            rank_sum += (rank + 1) as f64;
            positives += 1.0;
        }
    }
    let negatives = scores.len() as f64 - positives;
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

fn joined_xy(data: &RiskData) -> (Vec<[f64; N_FEATURES]>, Vec<bool>) {
    data.joined().map(|r| (r.features, r.fraud)).unzip()
}

#[test]
fn the_label_is_learnable_and_the_fit_recovers_the_ground_truth() {
    let all: Vec<usize> = (0..N_FEATURES).collect();
    for (seed, rate) in [(1, 0.1), (2, 0.25)] {
        let o = RiskDataOptions {
            rows: 20_000,
            overlap: 1.0,
            seed,
            positive_rate: rate,
        };
        let data = generate(&o).unwrap();
        let context = format!("seed {seed}, positive rate {rate}");
        let observed = data.positive_rate();
        assert!((observed - rate).abs() < 0.02, "{context}: {observed}");

        let (x, y) = joined_xy(&data);
        assert_eq!(x.len(), 20_000);
        let (w, _) = fit_logistic(&x, &y, &all, 400, 2.0);

        for (k, f) in FEATURES.iter().enumerate() {
            let fitted = w[k + 1];
            assert!(
                (fitted - f.beta).abs() < 0.15,
                "{context}: {}.{} fitted {fitted:.3}, true {}",
                f.party,
                f.name,
                f.beta
            );
        }
        let intercept = data.truth.intercept;
        assert!(
            (w[0] - intercept).abs() < 0.15,
            "{context}: intercept fitted {:.3}, true {intercept:.3}",
            w[0]
        );
    }
}

#[test]
fn every_party_adds_signal() {
    let data = generate(&opts(12_000, 1.0, 4)).unwrap();
    let (x, y) = joined_xy(&data);
    let true_logits: Vec<f64> = x.iter().map(|r| data.truth.logit(r)).collect();
    let truth = auc(&true_logits, &y);
    let all: Vec<usize> = (0..N_FEATURES).collect();
    let (_, logits) = fit_logistic(&x, &y, &all, 300, 2.0);
    let fitted = auc(&logits, &y);
    assert!(truth > 0.8, "AUC of the true model {truth:.3}");
    assert!(
        (fitted - truth).abs() < 0.01,
        "AUC fitted {fitted:.3}, true {truth:.3}"
    );
    for party in PARTIES {
        let without: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&k| FEATURES[k].party != party)
            .collect();
        let (_, logits) = fit_logistic(&x, &y, &without, 300, 2.0);
        let partial = auc(&logits, &y);
        assert!(
            partial < fitted - 0.02,
            "AUC without the {party}: {partial:.3}, with all three {fitted:.3}"
        );
    }
}
