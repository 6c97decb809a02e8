//! Deterministic synthetic claim-fraud data, split vertically across a hospital, an insurer and a
//! bank, with labels drawn from a known logistic model.
//!
//! ```text
//!   RiskDataOptions ─► generate ─► RiskData: every person (id, 30 features, label, holders)
//!   (rows, overlap,                 │          + the GroundTruth that drew the labels
//!    seed, rate)                    ▼
//!                       write_risk_files ─► hospital.csv   person_id + 10 clinical columns
//!                                           insurer.csv    person_id + 10 policy columns + fraud
//!                                           bank.csv       person_id + 10 payment columns
//! ```
//!
//! # Persons and overlap
//!
//! Each party holds [`RiskDataOptions::rows`] persons. `round(overlap·rows)` of them are held by
//! all three parties; of the rest, a quarter (rounded down) are shared with the next party round
//! the ring (hospital → insurer → bank → hospital), a quarter with the previous one, and the
//! remainder by this party alone, so the three-way intersection has exactly `round(overlap·rows)`
//! persons and the pairwise ones are larger. Persons get ids `P-0000001`, `P-0000002`, … (at least
//! 7 digits) in a shuffled order, so neither an id nor a row position says who else holds the
//! person; each party's file lists its persons in its own shuffled order, so only a PSI aligns the
//! files. A person's features are the same at every party that holds them.
//!
//! # Columns
//!
//! Every file starts with `person_id` (string, the dataset's id column), then the party's
//! columns in [`FEATURES`] order, each with its true coefficient β on the standardised column.
//! Floats have the decimals shown; counts ending in `_12m` cover the last 12 months.
//!
//! The hospital (`hospital.csv`), clinical records:
//!
//! | column               | type  | values      | β     | meaning                      |
//! |----------------------|-------|-------------|-------|------------------------------|
//! | `age`                | int   | 18..=90     | −0.15 | age in years                 |
//! | `bmi`                | float | 16.0..=55.0 | 0     | body-mass index              |
//! | `systolic_bp`        | int   | 85..=210    | 0     | last systolic pressure, mmHg |
//! | `chronic_conditions` | int   | 0..=9       | −0.35 | diagnosed chronic conditions |
//! | `diabetic`           | int   | 0 or 1      | 0     | diagnosed diabetes           |
//! | `smoker`             | int   | 0 or 1      | +0.10 | recorded smoker              |
//! | `admissions_12m`     | int   | 0..=12      | −0.60 | inpatient admissions         |
//! | `length_of_stay`     | int   | 0..=180     | −0.25 | days in hospital, in total   |
//! | `er_visits_12m`      | int   | 0..=20      | +0.25 | emergency-room visits        |
//! | `prescriptions`      | int   | 0..=25      | +0.45 | active prescriptions         |
//!
//! The insurer (`insurer.csv`), the policy and the claim under review:
//!
//! | column                | type  | values           | β     | meaning                       |
//! |-----------------------|-------|------------------|-------|-------------------------------|
//! | `claim_amount`        | float | 20.00..=60000.00 | +0.40 | the claim under review (1)    |
//! | `claims_12m`          | int   | 0..=40           | +0.70 | claims filed                  |
//! | `policy_tenure_years` | float | 0.0..=72.0       | −0.35 | years insured (2)             |
//! | `deductible`          | int   | 250..=5000       | −0.10 | yearly deductible (3)         |
//! | `premium_monthly`     | float | 40.00..=2000.00  | 0     | monthly premium               |
//! | `provider_risk`       | float | 0.000..=1.000    | +0.60 | billing provider's risk score |
//! | `days_to_report`      | int   | 0..=365          | +0.30 | days from treatment to claim  |
//! | `prior_denials`       | int   | 0..=10           | +0.40 | earlier claims denied         |
//! | `out_of_network`      | int   | 0 or 1           | +0.25 | provider out of network       |
//! | `policy_changes_12m`  | int   | 0..=6            | +0.20 | coverage changes              |
//!
//! The bank (`bank.csv`), payment behaviour:
//!
//! | column                 | type  | values               | β     | meaning                    |
//! |------------------------|-------|----------------------|-------|----------------------------|
//! | `income`               | float | 6000.00..=1000000.00 | −0.20 | yearly income (1)          |
//! | `debt_ratio`           | float | 0.000..=5.000        | +0.35 | debt service over income   |
//! | `late_payments_12m`    | int   | 0..=12               | +0.40 | late loan or card payments |
//! | `account_age_years`    | float | 0.0..=72.0           | −0.15 | oldest account's age (2)   |
//! | `overdraft_days`       | int   | 0..=365              | +0.30 | days overdrawn, last year  |
//! | `credit_utilisation`   | float | 0.000..=1.000        | +0.20 | card balance over limit    |
//! | `savings_balance`      | float | 0.00..=500000.00     | 0     | savings (1), 0 for 1 in 6  |
//! | `cash_withdrawals_12m` | int   | 0..=200              | 0     | cash withdrawals           |
//! | `large_transfers_90d`  | int   | 0..=20               | +0.35 | transfers above 10,000 (4) |
//! | `num_accounts`         | int   | 1..=10               | 0     | open accounts              |
//!
//! (1) lognormal, a long right tail; (2) at most `age − 18`; (3) one of 250, 500, 1000, 2500 and
//! 5000, higher for wealthier persons; (4) in the last 90 days.
//!
//! Last in the insurer's file comes `fraud` (int, 0 or 1): the label. The features are correlated
//! through a person's age and three hidden traits (frailty, wealth, financial stress), e.g. frail
//! persons are admitted more often and file more claims, wealthier persons earn more and choose
//! higher deductibles. The distributions are plausible, not calibrated against real data.
//!
//! # Labels
//!
//! `P(fraud = 1) = σ(β0 + Σ_k β_k·z_k)` with `z_k = (x_k − μ_k) / σ_k` standardised over the whole
//! generated population (μ_k the mean, σ_k the standard deviation with divisor n) and β_k from
//! [`FEATURES`]: many claims, a risky provider, late reporting, prior denials and financial
//! stress raise the risk, while a clinical record that explains the claims (admissions, chronic
//! conditions) lowers it — a model needs all three parties. β0 is solved for (by bisection) so
//! the expected share of positives over the population is [`RiskDataOptions::positive_rate`];
//! [`RiskData::truth`] holds β0, μ and σ. With the defaults the true model's AUC is about 0.88,
//! and leaving out any one party's columns costs a refitted model 0.03 (hospital) to 0.10
//! (insurer). The counts and amounts have long right tails: at 100,000 rows per party (150,000
//! persons) the largest standardised values are about 3 to 35 depending on the column (23 for
//! `claim_amount`, 34 for `savings_balance`), and the true logit reaches about ±11.
//!
//! # Determinism
//!
//! Everything depends only on the options: ChaCha20 keyed by the seed draws the membership, the
//! features, the labels and each party's row order (on separate streams). Determinism holds on a
//! given platform: sampling uses `ln`, `exp` and `cos` from the platform's math library, which may
//! round differently elsewhere. Every value is rounded to the decimals its column is written with
//! before the labels are drawn, so the files hold exactly the values the model saw.
//!
//! Memory: about 300 bytes per person (id, 30 `f64` features); the population has about
//! `(2.25 − 1.25·overlap)·rows` persons (`rows` at overlap 1, `1.5·rows` at the default 0.6).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;

use crate::SandboxError;
use crate::error::io_err;
use crate::synthetic::Draws;
use treaty_party::dataset::{ColumnDecl, ColumnType, DatasetConfig};

/// The parties, in ring order: the hospital, the insurer (which holds the label) and the bank.
pub const PARTIES: [&str; 3] = ["hospital", "insurer", "bank"];

/// The name of the dataset each party's file is declared as.
pub const DATASET: &str = "risk";

/// The id column of every party's file.
pub const ID_COLUMN: &str = "person_id";

/// The label column, last in the insurer's file.
pub const LABEL_COLUMN: &str = "fraud";

/// The party that holds [`LABEL_COLUMN`].
pub const LABEL_PARTY: &str = PARTIES[1];

/// The number of feature columns over all parties.
pub const N_FEATURES: usize = 30;

/// One feature column: who holds it, how it is written, and its true coefficient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feature {
    /// The party whose file has the column (one of [`PARTIES`]).
    pub party: &'static str,
    /// The column's name in that file.
    pub name: &'static str,
    /// Its declared type.
    pub ty: ColumnType,
    /// Digits after the decimal point in the file (0 for an `int` column).
    pub decimals: usize,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// The true coefficient β on the standardised column.
    pub beta: f64,
}

impl Feature {
    /// Clamps `x` to `min..=max` and rounds it to `decimals` digits, as the file shows it.
    fn quantise(&self, x: f64) -> f64 {
        let scale = 10f64.powi(self.decimals as i32);
        let x = ((x.clamp(self.min, self.max) * scale).round() / scale).clamp(self.min, self.max);
        // `+ 0.0` turns −0 (e.g. an empty sum) into 0, which the file shows as `0`, not `-0`.
        x + 0.0
    }
}

const fn int(party: &'static str, name: &'static str, range: (f64, f64), beta: f64) -> Feature {
    Feature {
        party,
        name,
        ty: ColumnType::Int,
        decimals: 0,
        min: range.0,
        max: range.1,
        beta,
    }
}

const fn float(
    party: &'static str,
    name: &'static str,
    decimals: usize,
    range: (f64, f64),
    beta: f64,
) -> Feature {
    Feature {
        party,
        name,
        ty: ColumnType::Float,
        decimals,
        min: range.0,
        max: range.1,
        beta,
    }
}

const H: &str = PARTIES[0];
const I: &str = PARTIES[1];
const B: &str = PARTIES[2];

/// The largest `age`, and so the longest tenure (`age − 18`).
const MAX_AGE: f64 = 90.0;
const ADULT: f64 = 18.0;
const MAX_YEARS: f64 = MAX_AGE - ADULT;

/// The feature columns, by party ([`PARTIES`] order) and within a party in file order.
pub const FEATURES: [Feature; N_FEATURES] = [
    int(H, "age", (ADULT, MAX_AGE), -0.15),
    float(H, "bmi", 1, (16.0, 55.0), 0.0),
    int(H, "systolic_bp", (85.0, 210.0), 0.0),
    int(H, "chronic_conditions", (0.0, 9.0), -0.35),
    int(H, "diabetic", (0.0, 1.0), 0.0),
    int(H, "smoker", (0.0, 1.0), 0.10),
    int(H, "admissions_12m", (0.0, 12.0), -0.60),
    int(H, "length_of_stay", (0.0, 180.0), -0.25),
    int(H, "er_visits_12m", (0.0, 20.0), 0.25),
    int(H, "prescriptions", (0.0, 25.0), 0.45),
    float(I, "claim_amount", 2, (20.0, 60_000.0), 0.40),
    int(I, "claims_12m", (0.0, 40.0), 0.70),
    float(I, "policy_tenure_years", 1, (0.0, MAX_YEARS), -0.35),
    int(I, "deductible", (250.0, 5_000.0), -0.10),
    float(I, "premium_monthly", 2, (40.0, 2_000.0), 0.0),
    float(I, "provider_risk", 3, (0.0, 1.0), 0.60),
    int(I, "days_to_report", (0.0, 365.0), 0.30),
    int(I, "prior_denials", (0.0, 10.0), 0.40),
    int(I, "out_of_network", (0.0, 1.0), 0.25),
    int(I, "policy_changes_12m", (0.0, 6.0), 0.20),
    float(B, "income", 2, (6_000.0, 1_000_000.0), -0.20),
    float(B, "debt_ratio", 3, (0.0, 5.0), 0.35),
    int(B, "late_payments_12m", (0.0, 12.0), 0.40),
    float(B, "account_age_years", 1, (0.0, MAX_YEARS), -0.15),
    int(B, "overdraft_days", (0.0, 365.0), 0.30),
    float(B, "credit_utilisation", 3, (0.0, 1.0), 0.20),
    float(B, "savings_balance", 2, (0.0, 500_000.0), 0.0),
    int(B, "cash_withdrawals_12m", (0.0, 200.0), 0.0),
    int(B, "large_transfers_90d", (0.0, 20.0), 0.35),
    int(B, "num_accounts", (1.0, 10.0), 0.0),
];

// Indices into `FEATURES`, for the generator.
const AGE: usize = 0;
const BMI: usize = 1;
const SYSTOLIC_BP: usize = 2;
const CHRONIC_CONDITIONS: usize = 3;
const DIABETIC: usize = 4;
const SMOKER: usize = 5;
const ADMISSIONS_12M: usize = 6;
const LENGTH_OF_STAY: usize = 7;
const ER_VISITS_12M: usize = 8;
const PRESCRIPTIONS: usize = 9;
const CLAIM_AMOUNT: usize = 10;
const CLAIMS_12M: usize = 11;
const POLICY_TENURE_YEARS: usize = 12;
const DEDUCTIBLE: usize = 13;
const PREMIUM_MONTHLY: usize = 14;
const PROVIDER_RISK: usize = 15;
const DAYS_TO_REPORT: usize = 16;
const PRIOR_DENIALS: usize = 17;
const OUT_OF_NETWORK: usize = 18;
const POLICY_CHANGES_12M: usize = 19;
const INCOME: usize = 20;
const DEBT_RATIO: usize = 21;
const LATE_PAYMENTS_12M: usize = 22;
const ACCOUNT_AGE_YEARS: usize = 23;
const OVERDRAFT_DAYS: usize = 24;
const CREDIT_UTILISATION: usize = 25;
const SAVINGS_BALANCE: usize = 26;
const CASH_WITHDRAWALS_12M: usize = 27;
const LARGE_TRANSFERS_90D: usize = 28;
const NUM_ACCOUNTS: usize = 29;

/// The deductibles on offer, cheapest policy last.
const DEDUCTIBLES: [f64; 5] = [250.0, 500.0, 1_000.0, 2_500.0, 5_000.0];

/// Mixed into the generator's key so these streams differ from other users of the same seed.
const DOMAIN: &[u8; 16] = b"treaty/risk/v1.0";

/// The generator's ChaCha20 streams: one per purpose, then one per party's row order.
const MEMBERSHIP_STREAM: u64 = 0;
const FEATURE_STREAM: u64 = 1;
const LABEL_STREAM: u64 = 2;
const ROW_ORDER_STREAM: u64 = 3;

/// What [`generate`] and [`write_risk_data`] produce.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskDataOptions {
    /// Persons per party.
    pub rows: usize,
    /// Share of each party's persons held by all three parties, in `[0, 1]`.
    pub overlap: f64,
    /// Seed of everything.
    pub seed: u64,
    /// Expected share of `fraud = 1` over the population, in `(0, 1)`.
    pub positive_rate: f64,
}

impl Default for RiskDataOptions {
    /// 10,000 persons per party, 60% of them shared by all three, seed 42, 10% fraud.
    fn default() -> Self {
        Self {
            rows: 10_000,
            overlap: 0.6,
            seed: 42,
            positive_rate: 0.1,
        }
    }
}

impl RiskDataOptions {
    /// Checks that `overlap` lies in `[0, 1]` and `positive_rate` in `(0, 1)`.
    ///
    /// # Errors
    ///
    /// [`SandboxError::Failed`], naming the option.
    pub fn validate(&self) -> Result<(), SandboxError> {
        if !(0.0..=1.0).contains(&self.overlap) {
            return Err(SandboxError::Failed(format!(
                "risk data: the overlap must lie in [0, 1], not {}",
                self.overlap
            )));
        }
        if !(self.positive_rate > 0.0 && self.positive_rate < 1.0) {
            return Err(SandboxError::Failed(format!(
                "risk data: the positive rate must lie in (0, 1), not {}",
                self.positive_rate
            )));
        }
        Ok(())
    }

    /// The number of persons held by all three parties: `round(overlap·rows)`.
    pub fn shared(&self) -> usize {
        ((self.overlap.clamp(0.0, 1.0) * self.rows as f64).round() as usize).min(self.rows)
    }
}

/// One person of the population.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskRecord {
    /// `P-0000001`, …: the same at every party that holds the person.
    pub id: String,
    /// The feature values in [`FEATURES`] order, rounded as the files show them.
    pub features: [f64; N_FEATURES],
    /// The label.
    pub fraud: bool,
    /// Which parties hold the person, in [`PARTIES`] order.
    pub holders: [bool; 3],
}

/// The model that drew the labels of one population: β from [`FEATURES`], β0, μ and σ from the
/// population.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    /// β0, solved so that the expected positive rate is the configured one.
    pub intercept: f64,
    /// β_k, in [`FEATURES`] order.
    pub beta: [f64; N_FEATURES],
    /// μ_k: the population mean of each feature.
    pub mean: [f64; N_FEATURES],
    /// σ_k: the population standard deviation (divisor n) of each feature; a constant feature
    /// has 0 and standardises to 0.
    pub sd: [f64; N_FEATURES],
}

impl GroundTruth {
    /// `z_k = (x_k − μ_k) / σ_k` (0 where σ_k is 0).
    pub fn standardise(&self, features: &[f64; N_FEATURES]) -> [f64; N_FEATURES] {
        std::array::from_fn(|k| standardise(features[k], self.mean[k], self.sd[k]))
    }

    /// `β0 + Σ β_k·z_k`.
    pub fn logit(&self, features: &[f64; N_FEATURES]) -> f64 {
        let z = self.standardise(features);
        self.intercept + dot(&self.beta, &z)
    }

    /// `P(fraud = 1) = σ(logit)`.
    pub fn probability(&self, features: &[f64; N_FEATURES]) -> f64 {
        sigmoid(self.logit(features))
    }
}

/// A generated population, its split across the parties and the model behind its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskData {
    /// Every person held by at least one party, in id order.
    pub records: Vec<RiskRecord>,
    /// Each party's rows ([`PARTIES`] order) as indices into `records`, in file order.
    pub party_rows: [Vec<usize>; 3],
    /// The model that drew the labels.
    pub truth: GroundTruth,
}

impl RiskData {
    /// The persons held by all three parties, in id order: what a PSI finds.
    pub fn joined(&self) -> impl Iterator<Item = &RiskRecord> {
        self.records.iter().filter(|r| r.holders == [true; 3])
    }

    /// The share of `fraud = 1` over the whole population (0 when it is empty).
    pub fn positive_rate(&self) -> f64 {
        let positives = self.records.iter().filter(|r| r.fraud).count();
        positives as f64 / self.records.len().max(1) as f64
    }
}

/// The features of `party` (one of [`PARTIES`]), as indices into [`FEATURES`], in file order.
pub fn party_features(party: &str) -> impl Iterator<Item = usize> + '_ {
    (0..N_FEATURES).filter(move |&k| FEATURES[k].party == party)
}

/// The declaration of `party`'s file at `path`, as [`write_risk_files`] writes it, or `None` for
/// a party not in [`PARTIES`].
pub fn risk_schema(party: &str, path: PathBuf) -> Option<DatasetConfig> {
    if !PARTIES.contains(&party) {
        return None;
    }
    let decl = |name: &str, ty| ColumnDecl {
        name: name.to_owned(),
        ty,
    };
    let mut columns = vec![decl(ID_COLUMN, ColumnType::String)];
    columns.extend(party_features(party).map(|k| decl(FEATURES[k].name, FEATURES[k].ty)));
    if party == LABEL_PARTY {
        columns.push(decl(LABEL_COLUMN, ColumnType::Int));
    }
    Some(DatasetConfig {
        name: DATASET.to_owned(),
        path,
        id_column: ID_COLUMN.to_owned(),
        columns,
    })
}

/// Generates the population of `opts` in memory: who holds whom, the features, the ground truth
/// and the labels. The result depends only on `opts`.
///
/// # Errors
///
/// [`SandboxError::Failed`] for options that do not [validate](RiskDataOptions::validate).
pub fn generate(opts: &RiskDataOptions) -> Result<RiskData, SandboxError> {
    opts.validate()?;
    let holders = memberships(opts);

    let mut sampler = Sampler::new(opts.seed, FEATURE_STREAM);
    let features: Vec<[f64; N_FEATURES]> = holders.iter().map(|_| sampler.person()).collect();
    let truth = population_truth(&features, opts.positive_rate);

    let mut labels = Sampler::new(opts.seed, LABEL_STREAM);
    let records: Vec<RiskRecord> = features
        .into_iter()
        .zip(holders)
        .enumerate()
        .map(|(i, (features, holders))| RiskRecord {
            id: format!("P-{:07}", i + 1),
            fraud: labels.chance(truth.probability(&features)),
            features,
            holders,
        })
        .collect();

    let party_rows = std::array::from_fn(|p| {
        let mut rows: Vec<usize> = (0..records.len())
            .filter(|&i| records[i].holders[p])
            .collect();
        rows.shuffle(&mut Sampler::new(opts.seed, ROW_ORDER_STREAM + p as u64).0);
        rows
    });
    Ok(RiskData {
        records,
        party_rows,
        truth,
    })
}

/// Generates the data of `opts` and writes it with [`write_risk_files`].
///
/// # Errors
///
/// As [`generate`] and [`write_risk_files`].
pub fn write_risk_data(
    dir: &Path,
    opts: &RiskDataOptions,
) -> Result<Vec<(String, DatasetConfig)>, SandboxError> {
    write_risk_files(dir, &generate(opts)?)
}

/// Writes `hospital.csv`, `insurer.csv` and `bank.csv` to `dir` (creating it, replacing the
/// files), each with a header row and the party's persons in its row order; returns each party's
/// dataset declaration ([`risk_schema`]), in [`PARTIES`] order.
///
/// # Errors
///
/// [`SandboxError::Io`] naming the directory or file that could not be written.
pub fn write_risk_files(
    dir: &Path,
    data: &RiskData,
) -> Result<Vec<(String, DatasetConfig)>, SandboxError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut out = Vec::with_capacity(PARTIES.len());
    for (p, &party) in PARTIES.iter().enumerate() {
        let path = dir.join(format!("{party}.csv"));
        write_party_csv(&path, data, p).map_err(io_err(&path))?;
        let schema = risk_schema(party, path).ok_or_else(|| {
            // Unreachable: `party` is one of `PARTIES`.
            SandboxError::Failed(format!("risk data: no schema for {party:?}"))
        })?;
        out.push((party.to_owned(), schema));
    }
    Ok(out)
}

/// Writes party `p`'s file.
fn write_party_csv(path: &Path, data: &RiskData, p: usize) -> io::Result<()> {
    let party = PARTIES[p];
    let columns: Vec<usize> = party_features(party).collect();
    let with_label = party == LABEL_PARTY;
    let mut out = BufWriter::with_capacity(1 << 16, File::create(path)?);

    out.write_all(ID_COLUMN.as_bytes())?;
    for &k in &columns {
        write!(out, ",{}", FEATURES[k].name)?;
    }
    if with_label {
        write!(out, ",{LABEL_COLUMN}")?;
    }
    out.write_all(b"\n")?;

    for &i in &data.party_rows[p] {
        let record = &data.records[i];
        out.write_all(record.id.as_bytes())?;
        for &k in &columns {
            write!(out, ",{:.*}", FEATURES[k].decimals, record.features[k])?;
        }
        if with_label {
            write!(out, ",{}", u8::from(record.fraud))?;
        }
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Who holds each person of the population, in id order (see the module docs).
fn memberships(opts: &RiskDataOptions) -> Vec<[bool; 3]> {
    let shared = opts.shared();
    let pair = (opts.rows - shared) / 4;
    let alone = opts.rows - shared - 2 * pair;
    let mut holders = Vec::with_capacity(shared + 3 * (pair + alone));
    holders.extend(std::iter::repeat_n([true; 3], shared));
    for p in 0..3 {
        let mut with_next = [false; 3];
        with_next[p] = true;
        with_next[(p + 1) % 3] = true;
        holders.extend(std::iter::repeat_n(with_next, pair));
        let mut only = [false; 3];
        only[p] = true;
        holders.extend(std::iter::repeat_n(only, alone));
    }
    holders.shuffle(&mut Sampler::new(opts.seed, MEMBERSHIP_STREAM).0);
    holders
}

/// The population's μ and σ, and β0 for an expected positive rate of `rate` (bisection on the
/// mean probability, which increases with β0).
fn population_truth(features: &[[f64; N_FEATURES]], rate: f64) -> GroundTruth {
    let n = features.len().max(1) as f64;
    let mean: [f64; N_FEATURES] =
        std::array::from_fn(|k| features.iter().map(|x| x[k]).sum::<f64>() / n);
    let sd = std::array::from_fn(|k| {
        let ss: f64 = features.iter().map(|x| (x[k] - mean[k]).powi(2)).sum();
        (ss / n).sqrt()
    });
    let beta = FEATURES.map(|f| f.beta);
    let mut truth = GroundTruth {
        intercept: 0.0,
        beta,
        mean,
        sd,
    };
    if features.is_empty() {
        truth.intercept = (rate / (1.0 - rate)).ln();
        return truth;
    }
    let slopes: Vec<f64> = features.iter().map(|x| truth.logit(x)).collect();
    let mean_probability =
        |b0: f64| slopes.iter().map(|&s| sigmoid(b0 + s)).sum::<f64>() / slopes.len() as f64;
    let (mut lo, mut hi) = (-50.0, 50.0);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if mean_probability(mid) < rate {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    truth.intercept = 0.5 * (lo + hi);
    truth
}

fn standardise(x: f64, mean: f64, sd: f64) -> f64 {
    if sd > 0.0 { (x - mean) / sd } else { 0.0 }
}

fn dot(a: &[f64; N_FEATURES], b: &[f64; N_FEATURES]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// The logistic function, without overflow for large `|x|`.
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// One person's features as they are drawn.
struct Values([f64; N_FEATURES]);

impl Values {
    /// Sets feature `k` to `x`, clamped and rounded as written, and returns the stored value.
    fn set(&mut self, k: usize, x: f64) -> f64 {
        self.0[k] = FEATURES[k].quantise(x);
        self.0[k]
    }
}

/// Draws from a `ChaCha20` stream keyed by the seed.
struct Sampler(ChaCha20Rng);

impl Sampler {
    fn new(seed: u64, stream: u64) -> Self {
        let mut key = [0; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[16..].copy_from_slice(DOMAIN);
        let mut rng = ChaCha20Rng::from_seed(key);
        rng.set_stream(stream);
        Self(rng)
    }

    /// One person's features, in [`FEATURES`] order, rounded as written.
    fn person(&mut self) -> [f64; N_FEATURES] {
        let mut x = Values([0.0; N_FEATURES]);
        let age = x.set(AGE, self.truncated_normal(47.0, 16.0, (ADULT, MAX_AGE)));
        let adult_years = age - ADULT;
        // Hidden traits, roughly standard normal: frailty grows with age, wealth a little too,
        // and financial stress falls with wealth.
        let a = (age - 47.0) / 16.0;
        let frailty = 0.55 * a + 0.85 * self.standard_normal();
        let wealth = 0.3 * a + 0.95 * self.standard_normal();
        let stress = -0.45 * wealth + 0.9 * self.standard_normal();

        // Hospital.
        let smoker = self.flag(sigmoid(-1.45 + 0.5 * stress - 0.25 * a));
        let smoker = x.set(SMOKER, smoker);
        let bmi = 27.0 + 0.8 * a + 1.2 * frailty + 4.0 * self.standard_normal();
        let bmi = x.set(BMI, bmi);
        let bp = 122.0 + 6.0 * a + 0.4 * (bmi - 27.0) + 4.0 * smoker;
        x.set(SYSTOLIC_BP, bp + 12.0 * self.standard_normal());
        let diabetic = self.flag(sigmoid(
            -2.6 + 0.18 * (bmi - 27.0) + 0.6 * a + 0.5 * frailty,
        ));
        let diabetic = x.set(DIABETIC, diabetic);
        let chronic = self.poisson((-0.3 + 0.55 * frailty + 0.25 * a).exp() + 0.9 * diabetic);
        let chronic = x.set(CHRONIC_CONDITIONS, chronic);
        let admissions = self.poisson(0.12 * (0.8 * frailty).exp() + 0.08 * chronic);
        let admissions = x.set(ADMISSIONS_12M, admissions);
        let mean_stay = 2.5 + 0.05 * adult_years;
        // Exact: `admissions` is a whole number in 0..=12.
        let stay: f64 = (0..admissions as u32)
            .map(|_| 1.0 + self.exponential(mean_stay).floor())
            .sum();
        let stay = x.set(LENGTH_OF_STAY, stay);
        let er = self.poisson(0.25 * (0.5 * frailty + 0.3 * stress).exp());
        let er = x.set(ER_VISITS_12M, er);
        let prescriptions = self.poisson(0.6 + 1.1 * chronic + 0.8 * diabetic);
        x.set(PRESCRIPTIONS, prescriptions);

        // Insurer.
        let claim_median = 450.0 * (1.0 + 0.6 * admissions + 0.08 * stay) * (0.15 * wealth).exp();
        let claim = claim_median * (0.7 * self.standard_normal()).exp();
        x.set(CLAIM_AMOUNT, claim);
        let claims = self.poisson(0.8 + 0.9 * admissions + 0.5 * er + 0.3 * chronic);
        let claims = x.set(CLAIMS_12M, claims);
        let tenure = self.exponential(4.0 + 0.12 * adult_years);
        x.set(POLICY_TENURE_YEARS, tenure.min(adult_years));
        let tier = (1.5 + 0.9 * wealth + 0.8 * self.standard_normal())
            .round()
            .clamp(0.0, (DEDUCTIBLES.len() - 1) as f64);
        // Exact: `tier` is a whole number in 0..=4.
        x.set(DEDUCTIBLE, DEDUCTIBLES[tier as usize]);
        let premium = (170.0 + 1.5 * adult_years + 15.0 * chronic + 35.0 * smoker)
            * (1.2 - 0.08 * tier)
            * (0.3 * self.standard_normal()).exp();
        x.set(PREMIUM_MONTHLY, premium);
        let provider_risk = sigmoid(-1.6 + 0.9 * self.standard_normal());
        let provider_risk = x.set(PROVIDER_RISK, provider_risk);
        let report_mean = 9.0 * (0.3 * self.standard_normal()).exp();
        x.set(DAYS_TO_REPORT, self.exponential(report_mean).floor());
        let denials = self.poisson(0.15 + 0.05 * claims);
        x.set(PRIOR_DENIALS, denials);
        let out_of_network = self.flag(0.08 + 0.4 * provider_risk);
        x.set(OUT_OF_NETWORK, out_of_network);
        let changes = self.poisson(0.25 * (0.4 * stress).exp());
        x.set(POLICY_CHANGES_12M, changes);

        // Bank.
        let career = 1.0 + 0.6 * (1.0 - ((age - 50.0) / 30.0).powi(2)).max(0.0);
        let income = 26_000.0 * career * (0.45 * wealth + 0.3 * self.standard_normal()).exp();
        x.set(INCOME, income);
        let debt_ratio = (-1.0 + 0.45 * stress + 0.35 * self.standard_normal()).exp();
        x.set(DEBT_RATIO, debt_ratio);
        let late = self.poisson(0.3 * (0.9 * stress).exp());
        x.set(LATE_PAYMENTS_12M, late);
        let account_age = self.exponential(3.0 + 0.25 * adult_years);
        x.set(ACCOUNT_AGE_YEARS, account_age.min(adult_years));
        let overdraft = if self.chance(sigmoid(-1.2 + 1.1 * stress)) {
            1.0 + self.exponential(12.0 * (0.4 * stress).exp()).floor()
        } else {
            0.0
        };
        x.set(OVERDRAFT_DAYS, overdraft);
        let utilisation = sigmoid(-0.8 + 0.9 * stress + 0.5 * self.standard_normal());
        x.set(CREDIT_UTILISATION, utilisation);
        let savings = if self.chance(0.17) {
            0.0
        } else {
            6_000.0 * (0.6 * wealth - 0.3 * stress + 0.5 * self.standard_normal()).exp()
        };
        x.set(SAVINGS_BALANCE, savings);
        let withdrawals = 8.0 * (0.2 * stress + 0.3 * self.standard_normal()).exp();
        x.set(CASH_WITHDRAWALS_12M, self.poisson(withdrawals));
        let transfers = 0.2 * (0.5 * wealth + 0.3 * self.standard_normal()).exp();
        x.set(LARGE_TRANSFERS_90D, self.poisson(transfers));
        let accounts = 1.0 + self.poisson(1.2 + 0.4 * wealth.max(0.0));
        x.set(NUM_ACCOUNTS, accounts);
        x.0
    }

    /// 1 with probability `p`, else 0.
    fn flag(&mut self, p: f64) -> f64 {
        f64::from(u8::from(self.chance(p)))
    }

    /// Poisson with mean `lambda` (capped at 50; the callers' means stay far below), by
    /// multiplying uniforms (Knuth).
    fn poisson(&mut self, lambda: f64) -> f64 {
        let limit = (-lambda.clamp(0.0, 50.0)).exp();
        let mut count = 0.0;
        let mut product = self.open_closed();
        while product > limit {
            count += 1.0;
            product *= self.open_closed();
        }
        count
    }
}

impl Draws for Sampler {
    fn rng(&mut self) -> &mut ChaCha20Rng {
        &mut self.0
    }
}

#[cfg(test)]
mod tests;
