//! Deterministic synthetic hospital-claims data for demos and tests.
//!
//! [`write_claims_csv`] writes a claims file whose bytes depend only on the
//! party name, the row count and the seed, so every demo run and every test
//! sees the same data, while two parties given the same seed still get
//! different data. The file matches [`claims_schema`]:
//!
//! | column            | type   | values                                                    |
//! |-------------------|--------|-----------------------------------------------------------|
//! | `claim_id`        | string | `H-000001-1a2b3c4d`: party initial, row number, party tag |
//! | `patient_age`     | int    | 0..=100, skewed by diagnosis (older for cardio, …)        |
//! | `sex`             | string | `F` or `M` (`F` for every maternity claim)                |
//! | `region`          | string | one of [`REGIONS`]                                        |
//! | `diagnosis_group` | string | one of [`DIAGNOSIS_GROUPS`]                               |
//! | `length_of_stay`  | int    | days in hospital (at most 365), 0 for an outpatient claim |
//! | `claim_amount`    | float  | two decimals, lognormal, 20.00..=500000.00                |
//! | `paid_amount`     | float  | two decimals, 0.00..=`claim_amount`                       |
//!
//! The distributions are plausible, not calibrated against real claims.
//! Determinism holds on a given platform: sampling uses `ln`, `cos` and `exp`
//! from the platform's math library, which may round differently elsewhere.
//! Amounts are computed in integer cents, so the two decimals are exact and
//! `paid_amount <= claim_amount` holds for the written text as well.

use std::f64::consts::TAU;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::distr::OpenClosed01;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;

use treaty_party::dataset::{ColumnDecl, ColumnType, DatasetConfig};

/// The columns of a claims file, in file order, with their types.
pub const CLAIMS_COLUMNS: [(&str, ColumnType); 8] = [
    ("claim_id", ColumnType::String),
    ("patient_age", ColumnType::Int),
    ("sex", ColumnType::String),
    ("region", ColumnType::String),
    ("diagnosis_group", ColumnType::String),
    ("length_of_stay", ColumnType::Int),
    ("claim_amount", ColumnType::Float),
    ("paid_amount", ColumnType::Float),
];

/// The id column of a claims file.
pub const CLAIMS_ID_COLUMN: &str = "claim_id";

/// The values of the `region` column.
pub const REGIONS: [&str; 6] = ["capital", "north", "south", "east", "west", "coast"];

/// Relative frequency of each of [`REGIONS`].
const REGION_WEIGHTS: [u32; REGIONS.len()] = [28, 16, 17, 13, 12, 14];

/// The values of the `diagnosis_group` column.
pub const DIAGNOSIS_GROUPS: [&str; PROFILES.len()] = {
    let mut groups = [""; PROFILES.len()];
    let mut i = 0;
    while i < PROFILES.len() {
        groups[i] = PROFILES[i].group;
        i += 1;
    }
    groups
};

/// The largest `patient_age`.
pub const MAX_AGE: u32 = 100;

/// The smallest `claim_amount`.
pub const MIN_CLAIM_AMOUNT: f64 = 20.0;

/// The largest `claim_amount`.
pub const MAX_CLAIM_AMOUNT: f64 = 500_000.0;

/// The longest `length_of_stay`, in days.
const MAX_STAY_DAYS: u32 = 365;

/// Share of claims that are denied outright (`paid_amount` 0).
const DENIED_SHARE: f64 = 0.06;

/// Share of the remaining claims that are paid in full.
const PAID_IN_FULL_SHARE: f64 = 0.45;

/// Smallest share of a partially paid claim that is paid.
const MIN_PARTIAL_PAYMENT: f64 = 0.55;

/// Mixed into the generator's seed so these streams differ from other users of the same seed.
const DOMAIN: &[u8; 16] = b"treaty/claims/v1";

/// How one diagnosis group's claims are distributed.
struct Profile {
    group: &'static str,
    /// Relative frequency among all claims.
    weight: u32,
    /// Patient age: normal with this mean and standard deviation, truncated to `ages`.
    age_mean: f64,
    age_sd: f64,
    ages: (f64, f64),
    /// Probability that the patient is female.
    female_share: f64,
    /// Probability that the claim is for a hospital stay rather than an outpatient visit.
    inpatient_share: f64,
    /// Mean length of a stay, in days, for a patient aged 50.
    mean_stay: f64,
    /// Median amount of an outpatient claim.
    outpatient_median: f64,
    /// Median amount of an inpatient claim: a fixed admission part plus a daily part.
    admission_cost: f64,
    daily_cost: f64,
}

const ALL_AGES: (f64, f64) = (0.0, MAX_AGE as f64);

const PROFILES: [Profile; 7] = [
    Profile {
        group: "cardio",
        weight: 14,
        age_mean: 67.0,
        age_sd: 13.0,
        ages: ALL_AGES,
        female_share: 0.42,
        inpatient_share: 0.45,
        mean_stay: 5.0,
        outpatient_median: 350.0,
        admission_cost: 7_000.0,
        daily_cost: 1_400.0,
    },
    Profile {
        group: "diabetes",
        weight: 12,
        age_mean: 58.0,
        age_sd: 15.0,
        ages: ALL_AGES,
        female_share: 0.47,
        inpatient_share: 0.15,
        mean_stay: 4.0,
        outpatient_median: 180.0,
        admission_cost: 3_500.0,
        daily_cost: 900.0,
    },
    Profile {
        group: "oncology",
        weight: 8,
        age_mean: 62.0,
        age_sd: 14.0,
        ages: ALL_AGES,
        female_share: 0.51,
        inpatient_share: 0.5,
        mean_stay: 8.0,
        outpatient_median: 1_200.0,
        admission_cost: 12_000.0,
        daily_cost: 1_800.0,
    },
    Profile {
        group: "orthopedic",
        weight: 15,
        age_mean: 50.0,
        age_sd: 21.0,
        ages: ALL_AGES,
        female_share: 0.53,
        inpatient_share: 0.3,
        mean_stay: 4.0,
        outpatient_median: 250.0,
        admission_cost: 9_000.0,
        daily_cost: 1_100.0,
    },
    Profile {
        group: "respiratory",
        weight: 16,
        age_mean: 40.0,
        age_sd: 27.0,
        ages: ALL_AGES,
        female_share: 0.5,
        inpatient_share: 0.2,
        mean_stay: 5.0,
        outpatient_median: 150.0,
        admission_cost: 4_000.0,
        daily_cost: 1_000.0,
    },
    Profile {
        group: "maternity",
        weight: 7,
        age_mean: 31.0,
        age_sd: 5.5,
        ages: (16.0, 48.0),
        female_share: 1.0,
        inpatient_share: 0.85,
        mean_stay: 2.5,
        outpatient_median: 200.0,
        admission_cost: 3_000.0,
        daily_cost: 800.0,
    },
    Profile {
        group: "other",
        weight: 28,
        age_mean: 42.0,
        age_sd: 24.0,
        ages: ALL_AGES,
        female_share: 0.52,
        inpatient_share: 0.12,
        mean_stay: 3.0,
        outpatient_median: 120.0,
        admission_cost: 2_500.0,
        daily_cost: 850.0,
    },
];

const PROFILE_WEIGHTS: [u32; PROFILES.len()] = {
    let mut weights = [0; PROFILES.len()];
    let mut i = 0;
    while i < PROFILES.len() {
        weights[i] = PROFILES[i].weight;
        i += 1;
    }
    weights
};

/// The declaration of a claims file called `name` at `path`, as written by
/// [`write_claims_csv`].
pub fn claims_schema(name: &str, path: PathBuf) -> DatasetConfig {
    DatasetConfig {
        name: name.to_owned(),
        path,
        id_column: CLAIMS_ID_COLUMN.to_owned(),
        columns: CLAIMS_COLUMNS
            .iter()
            .map(|&(name, ty)| ColumnDecl {
                name: name.to_owned(),
                ty,
            })
            .collect(),
    }
}

/// Writes `rows` synthetic claims of `party` to a new CSV file at `path`
/// (replacing any existing file), with a header row.
///
/// The bytes written depend only on `(party, rows, seed)`; a longer file
/// starts with the rows of a shorter one.
///
/// # Errors
///
/// Any error creating or writing the file.
pub fn write_claims_csv(path: &Path, party: &str, rows: usize, seed: u64) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 16, File::create(path)?);
    write_claims(&mut out, party, rows, seed)?;
    out.flush()
}

/// Writes the CSV of [`write_claims_csv`] to `out`, which should be buffered.
///
/// # Errors
///
/// Any error from `out`.
pub fn write_claims<W: Write>(mut out: W, party: &str, rows: usize, seed: u64) -> io::Result<()> {
    let party_hash = fnv1a(party.as_bytes());
    let initial = party
        .bytes()
        .find(u8::is_ascii_alphanumeric)
        .map_or(b'P', |byte| byte.to_ascii_uppercase());
    let id_prefix = [initial, b'-'];
    let id_suffix = format!("-{:08x}", party_hash & 0xffff_ffff);
    let mut sampler = Sampler::new(party_hash, seed);

    let header: Vec<&str> = CLAIMS_COLUMNS.iter().map(|&(name, _)| name).collect();
    writeln!(out, "{}", header.join(","))?;
    let mut line = Line::default();
    for number in 1..=rows {
        let claim = sampler.claim();
        line.clear();
        line.bytes(&id_prefix);
        line.uint(number as u64, 6);
        line.bytes(id_suffix.as_bytes());
        line.separator();
        line.uint(claim.age.into(), 1);
        line.separator();
        line.bytes(if claim.female { b"F" } else { b"M" });
        line.separator();
        line.bytes(REGIONS[claim.region].as_bytes());
        line.separator();
        line.bytes(PROFILES[claim.group].group.as_bytes());
        line.separator();
        line.uint(claim.stay.into(), 1);
        line.separator();
        line.cents(claim.amount);
        line.separator();
        line.cents(claim.paid);
        line.end();
        out.write_all(&line.0)?;
    }
    Ok(())
}

/// A CSV line assembled in a reused buffer, formatting numbers by hand
/// (like `itoa`) because `write!` dominates the generator's run time.
#[derive(Default)]
struct Line(Vec<u8>);

impl Line {
    fn clear(&mut self) {
        self.0.clear();
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    fn separator(&mut self) {
        self.0.push(b',');
    }

    fn end(&mut self) {
        self.0.push(b'\n');
    }

    /// `n` in decimal, zero-padded to at least `min_digits` (at most 20) digits.
    fn uint(&mut self, mut n: u64, min_digits: usize) {
        // u64::MAX has 20 decimal digits.
        let mut digits = [b'0'; 20];
        let mut start = digits.len();
        while n > 0 {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        let start = start.min(digits.len().saturating_sub(min_digits.max(1)));
        self.0.extend_from_slice(&digits[start..]);
    }

    /// An amount in cents as a decimal with exactly two places.
    fn cents(&mut self, cents: u64) {
        self.uint(cents / 100, 1);
        self.0.push(b'.');
        self.uint(cents % 100, 2);
    }
}

/// One generated claim; amounts in cents, groups and regions as indices.
struct Claim {
    age: u32,
    female: bool,
    region: usize,
    group: usize,
    stay: u32,
    amount: u64,
    paid: u64,
}

/// Draws claims from a `ChaCha20` stream keyed by the seed and the party.
struct Sampler(ChaCha20Rng);

impl Sampler {
    fn new(party_hash: u64, seed: u64) -> Self {
        let mut key = [0; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..16].copy_from_slice(&party_hash.to_le_bytes());
        key[16..].copy_from_slice(DOMAIN);
        Self(ChaCha20Rng::from_seed(key))
    }

    fn claim(&mut self) -> Claim {
        let group = self.weighted(&PROFILE_WEIGHTS);
        let profile = &PROFILES[group];
        let age = self.truncated_normal(profile.age_mean, profile.age_sd, profile.ages);
        let female = self.chance(profile.female_share);
        let region = self.weighted(&REGION_WEIGHTS);

        let stay = if self.chance(profile.inpatient_share) {
            // Older patients stay longer: the mean scales from 0.75x at birth to 1.25x at 100.
            let mean = profile.mean_stay * (0.75 + age / 200.0);
            let days = (1.0 + self.exponential(mean - 1.0)).min(f64::from(MAX_STAY_DAYS));
            // Exact: a whole number of days in 1..=365 after flooring.
            days.floor() as u32
        } else {
            0
        };
        let (median, spread) = if stay == 0 {
            (profile.outpatient_median, 0.8)
        } else {
            let days = f64::from(stay);
            (profile.admission_cost + profile.daily_cost * days, 0.45)
        };
        let amount = (median * (spread * self.standard_normal()).exp())
            .clamp(MIN_CLAIM_AMOUNT, MAX_CLAIM_AMOUNT);
        let amount = (amount * 100.0).round() as u64;

        let paid = if self.chance(DENIED_SHARE) {
            0
        } else if self.chance(PAID_IN_FULL_SHARE) {
            amount
        } else {
            let share = MIN_PARTIAL_PAYMENT + (1.0 - MIN_PARTIAL_PAYMENT) * self.uniform();
            ((amount as f64 * share).floor() as u64).min(amount)
        };

        Claim {
            // Exact: `ages` lie within 0..=100.
            age: age.round() as u32,
            female,
            region,
            group,
            stay,
            amount,
            paid,
        }
    }

    /// An index into `weights`, drawn with probability proportional to its weight.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut pick = self.0.random_range(0..total);
        for (index, &weight) in weights.iter().enumerate() {
            if pick < weight {
                return index;
            }
            pick -= weight;
        }
        // Unreachable: `pick` is below the sum of the weights.
        weights.len() - 1
    }
}

/// The draws both synthetic generators take from their ChaCha20 stream (claims here, the
/// claim-fraud data in [`crate::synthetic_risk`]). Each output byte depends only on the seed
/// and the order of the draws.
pub(crate) trait Draws {
    /// The stream.
    fn rng(&mut self) -> &mut ChaCha20Rng;

    /// Uniform in `[0, 1)`.
    fn uniform(&mut self) -> f64 {
        self.rng().random()
    }

    /// `true` with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal, by the Box–Muller transform.
    fn standard_normal(&mut self) -> f64 {
        let radius = (-2.0 * self.open_closed().ln()).sqrt();
        radius * (TAU * self.uniform()).cos()
    }

    /// Normal with the given mean and standard deviation, redrawn until it lands in `lo..=hi`
    /// (callers pass ranges that hold most of the distribution, so this ends quickly).
    fn truncated_normal(&mut self, mean: f64, sd: f64, (lo, hi): (f64, f64)) -> f64 {
        loop {
            let x = mean + sd * self.standard_normal();
            if (lo..=hi).contains(&x) {
                return x;
            }
        }
    }

    /// Exponential with the given mean.
    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.open_closed().ln()
    }

    /// Uniform in `(0, 1]`, safe to take the logarithm of.
    fn open_closed(&mut self) -> f64 {
        self.rng().sample(OpenClosed01)
    }
}

impl Draws for Sampler {
    fn rng(&mut self) -> &mut ChaCha20Rng {
        &mut self.0
    }
}

/// 64-bit FNV-1a: a stable hash to mix the party name into the seed.
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use treaty_party::dataset::load_columns;

    fn claims_bytes(party: &str, rows: usize, seed: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_claims(&mut out, party, rows, seed).unwrap();
        out
    }

    #[test]
    fn same_inputs_give_identical_bytes() {
        let first = claims_bytes("hospital-a", 500, 7);
        assert_eq!(first, claims_bytes("hospital-a", 500, 7));
        let longer = claims_bytes("hospital-a", 600, 7);
        assert!(
            longer.starts_with(&first),
            "a longer file extends a shorter one"
        );
    }

    #[test]
    fn party_and_seed_change_the_data() {
        let base = claims_bytes("hospital-a", 200, 7);
        assert_ne!(base, claims_bytes("hospital-b", 200, 7));
        assert_ne!(base, claims_bytes("hospital-a", 200, 8));
    }

    #[test]
    fn file_matches_claims_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claims.csv");
        let rows = 5_000;
        write_claims_csv(&path, "hospital-a", rows, 42).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            claims_bytes("hospital-a", rows, 42)
        );

        let cfg = claims_schema("claims", path.clone());
        cfg.validate().unwrap();
        let all: Vec<&str> = CLAIMS_COLUMNS.iter().map(|&(name, _)| name).collect();
        let table = load_columns(&cfg, &path, &all).unwrap();
        assert_eq!(table.rows(), rows);

        let ids = table.text("claim_id").unwrap();
        let tag = format!("-{:08x}", fnv1a(b"hospital-a") & 0xffff_ffff);
        assert_eq!(ids[0], format!("H-000001{tag}"));
        assert!(
            ids.iter()
                .all(|id| id.starts_with("H-") && id.ends_with(&tag))
        );
        assert_eq!(
            ids.iter().collect::<HashSet<_>>().len(),
            rows,
            "ids are unique"
        );

        let ages = table.numeric("patient_age").unwrap();
        let sexes = table.text("sex").unwrap();
        let regions = table.text("region").unwrap();
        let groups = table.text("diagnosis_group").unwrap();
        let stays = table.numeric("length_of_stay").unwrap();
        let amounts = table.numeric("claim_amount").unwrap();
        let paid = table.numeric("paid_amount").unwrap();
        for row in 0..rows {
            let context = format!("row {}", row + 1);
            assert!((0.0..=f64::from(MAX_AGE)).contains(&ages[row]), "{context}");
            assert!(sexes[row] == "F" || sexes[row] == "M", "{context}");
            assert!(REGIONS.contains(&regions[row].as_str()), "{context}");
            assert!(
                DIAGNOSIS_GROUPS.contains(&groups[row].as_str()),
                "{context}"
            );
            if groups[row] == "maternity" {
                assert_eq!(sexes[row], "F", "{context}");
            }
            let max_stay = f64::from(MAX_STAY_DAYS);
            assert!((0.0..=max_stay).contains(&stays[row]), "{context}");
            assert!(
                (MIN_CLAIM_AMOUNT..=MAX_CLAIM_AMOUNT).contains(&amounts[row]),
                "{context}"
            );
            assert!(0.0 <= paid[row] && paid[row] <= amounts[row], "{context}");
            for amount in [amounts[row], paid[row]] {
                let cents = amount * 100.0;
                assert!(
                    (cents - cents.round()).abs() < 1e-6,
                    "{context}: two decimals"
                );
            }
        }

        // Every category shows up, and outpatient as well as inpatient claims exist.
        for region in REGIONS {
            assert!(regions.iter().any(|r| r == region), "region {region}");
        }
        for group in DIAGNOSIS_GROUPS {
            assert!(groups.iter().any(|g| g == group), "group {group}");
        }
        assert!(stays.contains(&0.0) && stays.iter().any(|&s| s > 0.0));
    }

    #[test]
    fn zero_rows_writes_only_the_header() {
        let header: Vec<&str> = CLAIMS_COLUMNS.iter().map(|&(name, _)| name).collect();
        let expected = format!("{}\n", header.join(","));
        assert_eq!(claims_bytes("x", 0, 1), expected.as_bytes());
    }

    #[test]
    fn diagnosis_groups_follow_profiles() {
        assert_eq!(
            DIAGNOSIS_GROUPS,
            [
                "cardio",
                "diabetes",
                "oncology",
                "orthopedic",
                "respiratory",
                "maternity",
                "other"
            ]
        );
    }

    #[test]
    fn line_formats_numbers_like_std() {
        for n in [0, 1, 9, 10, 99, 100, 123_456, 1_000_000, u64::MAX] {
            for min_digits in [1, 2, 6] {
                let mut line = Line::default();
                line.uint(n, min_digits);
                assert_eq!(
                    line.0,
                    format!("{n:0min_digits$}").as_bytes(),
                    "{n} {min_digits}"
                );
            }
            let mut line = Line::default();
            line.cents(n);
            let expected = format!("{}.{:02}", n / 100, n % 100);
            assert_eq!(line.0, expected.as_bytes(), "{n} cents");
        }
    }

    #[test]
    fn fnv1a_known_answers() {
        // Test vectors from the FNV reference (http://www.isthe.com/chongo/tech/comp/fnv/).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
