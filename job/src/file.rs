//! Job files: the TOML an analyst writes, turned into the wire `JobSpec`.
//!
//! ```toml
//! name = "diabetes claims, three hospitals"
//! frac_bits = 16                       # optional, default 16
//!
//! [[inputs]]
//! party = "hospital"
//! dataset = "claims"
//! [[inputs]]
//! party = "insurer"
//! dataset = "claims"
//!
//! [stats]
//! columns = ["claim_amount", "length_of_stay"]
//! filter = { column = "diagnosis_group", equals = "diabetes" }
//! # or: filter = { column = "patient_age", min = 40, max = 65 }
//!
//! [output]
//! recipient = "alice"
//! # public_key = "<64 hex chars>", or set by `treaty submit --recipient-key alice.hpke.pub`
//! ```
//!
//! A `psi` job (two inputs, or three to sixteen for the multi-party chain) replaces `[stats]` with:
//!
//! ```text
//! [psi]
//! reveal = "intersection"              # or "cardinality" (the size only)
//! to = ["hospital", "insurer"]         # who learns it; one party for "cardinality"
//! id_columns = { hospital = "patient_id" }   # optional; default: each dataset's id column
//! ```
//!
//! A `stats` job over vertically split data adds a `[join]` (two data parties, whose rows are
//! aligned by PSI, and a helper: an input without a dataset; or three data parties), names columns
//! and filters as `party.column`, and may give several filters (all must hold):
//!
//! ```text
//! [[inputs]]
//! party = "bank"                       # the helper: no dataset
//!
//! [join]
//! id_columns = { hospital = "patient_id", insurer = "patient_id" }
//! psi_job = "job-…"                    # reuse that psi job's intersection; omit to run PSI inline
//!
//! [stats]
//! columns = ["insurer.claim_amount"]
//! filter = [{ column = "hospital.diabetic", equals = 1 }, { column = "insurer.plan", equals = "basic" }]
//! ```
//!
//! A `train` job (logistic or linear regression) needs a `[join]` too; the weights stay
//! secret-shared at the parties under `model_id` unless `reveal_weights`:
//!
//! ```text
//! [train]
//! model = "logistic"                   # or "linear"
//! features = ["hospital.age", "hospital.bmi", "insurer.claim_amount", "bank.late_payments_12m"]
//! label = "insurer.fraud"              # 0/1 for logistic regression
//! learning_rate = 0.1                  # defaults: 0.1, 10 epochs, batch 1024, l2 0, intercept
//! epochs = 10
//! batch_size = 1024
//! holdout = 0.2                        # the last 20% of the aligned rows evaluate the model
//! metric = "auc"                       # or "accuracy", "none"
//! model_id = "fraud-2026-11"           # default: the job id
//! reveal_weights = false
//! ```
//!
//! A `score` job applies a stored model to the records of a `[join]` (the same parties as the
//! `train` job, in the same order; each record's features at their parties):
//!
//! ```text
//! [score]
//! model_id = "fraud-2026-11"
//! output = "both"                      # "score" (default), "decision" or "both"
//! threshold = 0.5                      # decisions: [score ≥ threshold]
//! ids_from = "insurer"                 # whose record ids come with the results
//! ```
//!
//! An `fhe-score` job (protocol `"fhe"`, the default for it) has exactly two inputs and no
//! `[join]`: the owner, whose input names the dataset whose rows it encrypts, and the evaluator,
//! whose input has no dataset and which holds the model (`<state dir>/fhe-models/<model_id>.json`):
//!
//! ```text
//! [[inputs]]
//! party = "insurer"                    # the owner
//! dataset = "claims"
//! [[inputs]]
//! party = "hospital"                   # the evaluator: no dataset
//!
//! [fhe_score]
//! owner = "insurer"
//! evaluator = "hospital"
//! model_id = "fraud-fhe-1"
//! release = "scores"                   # default; or "decisions", "aggregate"
//! id_column = "claim_id"               # optional: the owner's ids go with the results
//!
//! [[fhe_score.features]]               # the owner's columns, in the model's feature order
//! column = "claim_amount"
//! bits = 16                            # 1 to 16: round(value · scale) must fit
//! scale = 100.0                        # optional; default (0) means 1
//! [[fhe_score.features]]
//! column = "age"
//! bits = 7
//! ```

use serde::Deserialize;
use treaty_proto::v1::{self as pb, filter, job_spec};

use crate::validate::FHE_PROTOCOL;
use crate::{JobError, ProblemKind, SpecProblem};

/// A spec that fails on one problem: `kind` of `field`.
fn invalid(field: impl Into<String>, kind: ProblemKind) -> JobError {
    JobError::InvalidSpec(vec![SpecProblem::new(field, kind)])
}

/// The computation sections of a job file.
const SECTIONS: [&str; 5] = ["stats", "psi", "train", "score", "fhe_score"];

/// A job file as written by an analyst.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    /// Free text.
    #[serde(default)]
    pub name: String,
    /// Protocol; default chosen by the job kind.
    #[serde(default)]
    pub protocol: String,
    /// Fixed-point fractional bits (default 16).
    #[serde(default)]
    pub frac_bits: u32,
    /// Parties and their datasets.
    pub inputs: Vec<InputFile>,
    /// A `stats` computation.
    pub stats: Option<StatsFile>,
    /// A `psi` computation.
    pub psi: Option<PsiFile>,
    /// A `train` computation.
    pub train: Option<TrainFile>,
    /// A `score` computation.
    pub score: Option<ScoreFile>,
    /// An `fhe-score` computation.
    pub fhe_score: Option<FheScoreFile>,
    /// How vertically split inputs are aligned (for `stats` and `train`).
    pub join: Option<JoinFile>,
    /// Who gets the result.
    pub output: OutputFile,
}

/// One input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFile {
    /// Party id.
    pub party: String,
    /// Dataset name at that party (none for the helper of a join).
    #[serde(default)]
    pub dataset: String,
}

/// The `stats` computation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsFile {
    /// Numeric columns (`party.column` with a join).
    pub columns: Vec<String>,
    /// Optional row filter, or a list of filters that must all hold.
    pub filter: Option<Filters>,
}

/// One filter, or several that must all hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Filters {
    /// One filter.
    One(FilterFile),
    /// All of these.
    All(Vec<FilterFile>),
}

/// The `join` section: aligning vertically split inputs by record id.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinFile {
    /// Per data party, its id column; inputs not named here are helpers.
    pub id_columns: std::collections::BTreeMap<String, String>,
    /// Reuse the intersection stored by this earlier `psi` job; omitted: PSI runs inline.
    #[serde(default)]
    pub psi_job: Option<String>,
}

/// The `psi` computation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PsiFile {
    /// `"intersection"` or `"cardinality"`.
    pub reveal: String,
    /// Parties that learn the result.
    pub to: Vec<String>,
    /// Per party, the id column (default: the dataset's declared id column).
    #[serde(default)]
    pub id_columns: std::collections::BTreeMap<String, String>,
}

/// `[train]`: logistic or linear regression over a join (see `TrainJob` in the proto for the
/// defaults of omitted fields).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainFile {
    /// `logistic` (default) or `linear`.
    #[serde(default)]
    pub model: String,
    /// Feature columns, `party.column`.
    pub features: Vec<String>,
    /// The label column, `party.column`.
    pub label: String,
    /// 0: the default (0.1).
    #[serde(default)]
    pub learning_rate: f64,
    /// 0: the default (10).
    #[serde(default)]
    pub epochs: u32,
    /// 0: the default (1024).
    #[serde(default)]
    pub batch_size: u32,
    /// L2 regularisation.
    #[serde(default)]
    pub l2: f64,
    /// `false` learns no intercept.
    #[serde(default)]
    pub intercept: Option<bool>,
    /// Share of the aligned rows held out for evaluation.
    #[serde(default)]
    pub holdout: f64,
    /// `auc`, `accuracy` or `none`.
    #[serde(default)]
    pub metric: String,
    /// Where the parties store the model (default: the job id).
    #[serde(default)]
    pub model_id: String,
    /// Reveal the weights to the recipient.
    #[serde(default)]
    pub reveal_weights: bool,
}

/// `[score]`: apply a stored model to the records of a join.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreFile {
    /// The model id of the `train` job.
    pub model_id: String,
    /// `score` (default), `decision` or `both`.
    #[serde(default)]
    pub output: String,
    /// The decision threshold (default 0.5; 0 for linear regression).
    pub threshold: Option<f64>,
    /// The data party whose record ids come with the results (default: the first).
    #[serde(default)]
    pub ids_from: String,
    /// A party holding the model in the clear (instead of a stored shared model).
    #[serde(default)]
    pub weights_party: String,
    /// With `weights_party`: the model's features, `party.column`.
    #[serde(default)]
    pub features: Vec<String>,
    /// With `weights_party`: `logistic` (default) or `linear`.
    #[serde(default)]
    pub model: String,
    /// With `weights_party`: `false` for a model without intercept.
    #[serde(default)]
    pub intercept: Option<bool>,
}

/// `[fhe_score]`: the evaluator's clear model applied to the owner's encrypted rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FheScoreFile {
    /// The party whose rows are encrypted (its input names the dataset).
    pub owner: String,
    /// The party that holds the model (its input has no dataset).
    pub evaluator: String,
    /// The evaluator's model (`<state dir>/fhe-models/<model_id>.json`).
    pub model_id: String,
    /// The owner's columns, in the model's feature order (`[[fhe_score.features]]`).
    pub features: Vec<FheFeatureFile>,
    /// `scores` (default), `decisions` or `aggregate`.
    #[serde(default)]
    pub release: String,
    /// The owner's column whose values go with the results to the recipient.
    #[serde(default)]
    pub id_column: String,
}

/// One `[[fhe_score.features]]` entry: a column quantised to `bits` bits as round(value · scale).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FheFeatureFile {
    /// The owner's numeric column.
    pub column: String,
    /// Width of the quantised value, 1 to 16.
    pub bits: u32,
    /// Multiplier before rounding; omitted or 0 means 1.
    #[serde(default)]
    pub scale: f64,
}

/// A row filter: `equals`, or `min`/`max` (inclusive).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterFile {
    /// Column.
    pub column: String,
    /// Equality value (strings compare exactly, numbers numerically).
    pub equals: Option<toml::Value>,
    /// Inclusive lower bound.
    pub min: Option<f64>,
    /// Inclusive upper bound.
    pub max: Option<f64>,
}

/// The output section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputFile {
    /// Recipient label.
    pub recipient: String,
    /// Recipient's X25519 public key, hex.
    pub public_key: Option<String>,
}

impl JobFile {
    /// Parses a job file's text.
    pub fn parse(text: &str) -> Result<Self, JobError> {
        toml::from_str(text).map_err(|e| {
            let message = e.to_string();
            invalid("", ProblemKind::Syntax { message })
        })
    }

    /// Builds the wire spec; `recipient_key` overrides `output.public_key`.
    pub fn to_spec(&self, recipient_key: Option<[u8; 32]>) -> Result<pb::JobSpec, JobError> {
        let key = match (recipient_key, &self.output.public_key) {
            (Some(k), _) => k.to_vec(),
            (None, Some(h)) => hex::decode(h.trim()).map_err(|_| {
                let value = format!("{h:?}");
                invalid(
                    "output.public_key",
                    ProblemKind::BadValue {
                        value,
                        expected: "hex (64 digits: an X25519 key)",
                    },
                )
            })?,
            (None, None) => {
                let hint = "set output.public_key or pass --recipient-key";
                return Err(invalid("output.public_key", ProblemKind::Missing { hint }));
            }
        };
        let sections = [
            self.stats.is_some(),
            self.psi.is_some(),
            self.train.is_some(),
            self.score.is_some(),
            self.fhe_score.is_some(),
        ];
        if let Some(second) = (SECTIONS.iter().zip(sections))
            .filter(|(_, given)| *given)
            .nth(1)
        {
            let reason =
                "a job file has one computation: [stats], [psi], [train], [score] or [fhe_score]";
            return Err(invalid(*second.0, ProblemKind::NotAllowed { reason }));
        }
        let computation = match (
            &self.stats,
            &self.psi,
            &self.train,
            &self.score,
            &self.fhe_score,
        ) {
            (_, _, _, _, Some(f)) => job_spec::Computation::FheScore(pb::FheScoreJob {
                owner: f.owner.clone(),
                evaluator: f.evaluator.clone(),
                model_id: f.model_id.clone(),
                features: f
                    .features
                    .iter()
                    .map(|c| pb::FheFeature {
                        column: c.column.clone(),
                        bits: c.bits,
                        scale: c.scale,
                    })
                    .collect(),
                release: f.release.clone(),
                id_column: f.id_column.clone(),
            }),
            (_, _, _, Some(sc), _) => job_spec::Computation::Score(pb::ScoreJob {
                model_id: sc.model_id.clone(),
                output: sc.output.clone(),
                threshold: sc.threshold,
                ids_from: sc.ids_from.clone(),
                weights_party: sc.weights_party.clone(),
                features: sc.features.clone(),
                model: sc.model.clone(),
                no_intercept: sc.intercept == Some(false),
            }),
            (None, None, None, None, None) => {
                let hint = "add [stats], [psi], [train], [score] or [fhe_score]";
                return Err(invalid("computation", ProblemKind::Missing { hint }));
            }
            (_, _, Some(t), _, _) => job_spec::Computation::Train(pb::TrainJob {
                model: t.model.clone(),
                features: t.features.clone(),
                label: t.label.clone(),
                learning_rate: t.learning_rate,
                epochs: t.epochs,
                batch_size: t.batch_size,
                l2: t.l2,
                no_intercept: t.intercept == Some(false),
                holdout: t.holdout,
                metric: t.metric.clone(),
                model_id: t.model_id.clone(),
                reveal_weights: t.reveal_weights,
            }),
            (Some(s), _, _, _, _) => {
                let (filter, filters) = match &s.filter {
                    None => (None, Vec::new()),
                    Some(Filters::One(f)) => (Some(f.to_wire("stats.filter")?), Vec::new()),
                    Some(Filters::All(all)) => (
                        None,
                        (all.iter().enumerate())
                            .map(|(i, f)| f.to_wire(&format!("stats.filter[{i}]")))
                            .collect::<Result<_, _>>()?,
                    ),
                };
                job_spec::Computation::Stats(pb::StatsJob {
                    columns: s.columns.clone(),
                    filter,
                    filters,
                })
            }
            (None, Some(p), _, _, _) => job_spec::Computation::Psi(pb::PsiJob {
                reveal: match p.reveal.as_str() {
                    "intersection" => pb::PsiReveal::Intersection,
                    "cardinality" => pb::PsiReveal::Cardinality,
                    other => {
                        return Err(invalid(
                            "psi.reveal",
                            ProblemKind::NotOneOf {
                                value: other.to_string(),
                                allowed: &["intersection", "cardinality"],
                            },
                        ));
                    }
                } as i32,
                to: p.to.clone(),
                id_columns: p.id_columns.clone().into_iter().collect(),
            }),
        };
        let protocol = match &computation {
            job_spec::Computation::FheScore(_) if self.protocol.is_empty() => {
                FHE_PROTOCOL.to_string()
            }
            _ => self.protocol.clone(),
        };
        Ok(pb::JobSpec {
            name: self.name.clone(),
            protocol,
            inputs: self
                .inputs
                .iter()
                .map(|i| pb::JobInput {
                    party: i.party.clone(),
                    dataset: i.dataset.clone(),
                })
                .collect(),
            output: Some(pb::JobOutput {
                recipient: self.output.recipient.clone(),
                recipient_public_key: key,
            }),
            frac_bits: self.frac_bits,
            join: self.join.as_ref().map(|j| pb::JoinSpec {
                id_columns: j.id_columns.clone().into_iter().collect(),
                psi_job: j.psi_job.clone().unwrap_or_default(),
            }),
            computation: Some(computation),
        })
    }
}

impl FilterFile {
    /// The wire filter; `field` is where the job file gives it (`stats.filter[1]`).
    fn to_wire(&self, field: &str) -> Result<pb::Filter, JobError> {
        let predicate = match (&self.equals, self.min, self.max) {
            (Some(v), None, None) => filter::Predicate::Equals(match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(invalid(
                        format!("{field}.equals"),
                        ProblemKind::BadValue {
                            value: other.to_string(),
                            expected: "a string or a number",
                        },
                    ));
                }
            }),
            (None, min, max) if min.is_some() || max.is_some() => {
                filter::Predicate::Range(pb::NumericRange { min, max })
            }
            (None, _, _) => {
                let hint = "give `equals` or `min`/`max`";
                return Err(invalid(field, ProblemKind::Missing { hint }));
            }
            (Some(_), _, _) => {
                let reason = "give either `equals` or `min`/`max`, not both";
                return Err(invalid(field, ProblemKind::NotAllowed { reason }));
            }
        };
        Ok(pb::Filter {
            column: self.column.clone(),
            predicate: Some(predicate),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one problem of a refused job file.
    fn problem<T: std::fmt::Debug>(r: Result<T, JobError>) -> SpecProblem {
        match r {
            Err(JobError::InvalidSpec(p)) if p.len() == 1 => p[0].clone(),
            other => panic!("expected one problem, got {other:?}"),
        }
    }

    /// The parser's message for a job file that is not one.
    fn syntax<T: std::fmt::Debug>(r: Result<T, JobError>) -> String {
        match problem(r) {
            SpecProblem {
                field,
                kind: ProblemKind::Syntax { message },
            } if field.is_empty() => message,
            other => panic!("expected a syntax problem, got {other:?}"),
        }
    }

    fn doc_example() -> String {
        include_str!("file.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_documented_example_parses() {
        let f = JobFile::parse(&doc_example()).unwrap();
        let spec = f.to_spec(Some([7; 32])).unwrap();
        assert_eq!(spec.inputs.len(), 2);
        let Some(job_spec::Computation::Stats(s)) = spec.computation else {
            panic!("stats expected")
        };
        assert_eq!(
            s.filter.unwrap().predicate,
            Some(filter::Predicate::Equals("diabetes".into()))
        );
        // Without a key anywhere the spec is refused.
        let p = problem(f.to_spec(None));
        assert_eq!(p.field, "output.public_key");
        assert!(
            matches!(p.kind, ProblemKind::Missing { hint } if hint.contains("--recipient-key"))
        );
    }

    #[test]
    fn a_psi_section_becomes_a_psi_spec() {
        let text = doc_example().replace(
            "[stats]\ncolumns = [\"claim_amount\", \"length_of_stay\"]\nfilter = { column = \"diagnosis_group\", equals = \"diabetes\" }",
            "[psi]\nreveal = \"cardinality\"\nto = [\"insurer\"]\nid_columns = { hospital = \"patient_id\" }",
        );
        let spec = JobFile::parse(&text)
            .unwrap()
            .to_spec(Some([1; 32]))
            .unwrap();
        let Some(job_spec::Computation::Psi(p)) = spec.computation else {
            panic!("psi expected: {text}")
        };
        assert_eq!(p.reveal(), pb::PsiReveal::Cardinality);
        assert_eq!(p.to, ["insurer"]);
        assert_eq!(
            p.id_columns.get("hospital").map(String::as_str),
            Some("patient_id")
        );
        let e = JobFile::parse(&text.replace("\"cardinality\"", "\"all\""))
            .unwrap()
            .to_spec(Some([1; 32]))
            .unwrap_err();
        assert!(e.to_string().contains("psi.reveal: \"all\""), "{e}");
        assert_eq!(
            problem::<()>(Err(e)),
            SpecProblem::new(
                "psi.reveal",
                ProblemKind::NotOneOf {
                    value: "all".into(),
                    allowed: &["intersection", "cardinality"],
                }
            )
        );
    }

    #[test]
    fn a_join_section_and_a_filter_list_become_a_vertical_spec() {
        let text = doc_example()
            .replace(
                "[[inputs]]\nparty = \"insurer\"\ndataset = \"claims\"",
                "[[inputs]]\nparty = \"insurer\"\ndataset = \"claims\"\n[[inputs]]\nparty = \"bank\"\n\n\
                 [join]\nid_columns = { hospital = \"patient_id\", insurer = \"patient_id\" }\n\
                 psi_job = \"job-1\"",
            )
            .replace(
                "columns = [\"claim_amount\", \"length_of_stay\"]",
                "columns = [\"insurer.claim_amount\"]",
            )
            .replace(
                "filter = { column = \"diagnosis_group\", equals = \"diabetes\" }",
                "filter = [{ column = \"hospital.diabetic\", equals = 1 }, \
                 { column = \"insurer.age\", min = 40.0 }]",
            );
        let spec = JobFile::parse(&text)
            .unwrap()
            .to_spec(Some([1; 32]))
            .unwrap();
        assert_eq!(spec.inputs.len(), 3);
        assert_eq!(spec.inputs[2].dataset, "");
        let join = spec.join.unwrap();
        assert_eq!(join.psi_job, "job-1");
        assert_eq!(join.id_columns.len(), 2);
        let Some(job_spec::Computation::Stats(s)) = spec.computation else {
            panic!("stats expected")
        };
        assert_eq!(s.columns, ["insurer.claim_amount"]);
        assert!(s.filter.is_none());
        assert_eq!(s.filters.len(), 2);
        assert_eq!(
            s.filters[0].predicate,
            Some(filter::Predicate::Equals("1".into()))
        );
        // A join without id columns is refused by the parser.
        let e = syntax(JobFile::parse(&text.replace(
            "id_columns = { hospital = \"patient_id\", insurer = \"patient_id\" }\n",
            "",
        )));
        assert!(e.contains("id_columns"), "{e}");
    }

    /// The documented `fhe-score` job file, with an `[output]`.
    fn fhe_example() -> String {
        let block = include_str!("file.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! An `fhe-score` job"))
            .skip_while(|l| !l.starts_with("//! ```text"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n");
        format!("{block}\n\n[output]\nrecipient = \"alice\"\n")
    }

    fn fhe_spec(text: &str) -> Result<pb::JobSpec, JobError> {
        JobFile::parse(text)?.to_spec(Some([5; 32]))
    }

    #[test]
    fn an_fhe_score_section_becomes_an_fhe_score_spec() {
        let text = fhe_example();
        let spec = fhe_spec(&text).unwrap();
        assert_eq!(spec.protocol, "fhe", "{text}");
        assert!(spec.join.is_none());
        let inputs: Vec<_> = spec
            .inputs
            .iter()
            .map(|i| (i.party.as_str(), i.dataset.as_str()))
            .collect();
        assert_eq!(inputs, [("insurer", "claims"), ("hospital", "")]);
        let Some(job_spec::Computation::FheScore(f)) = &spec.computation else {
            panic!("fhe_score expected: {text}")
        };
        assert_eq!(
            (
                f.owner.as_str(),
                f.evaluator.as_str(),
                f.model_id.as_str(),
                f.release.as_str(),
                f.id_column.as_str()
            ),
            ("insurer", "hospital", "fraud-fhe-1", "scores", "claim_id")
        );
        let features: Vec<_> = f
            .features
            .iter()
            .map(|c| (c.column.as_str(), c.bits, c.scale))
            .collect();
        assert_eq!(features, [("claim_amount", 16, 100.0), ("age", 7, 0.0)]);
        // The documented file passes validation against datasets that fit it.
        let column = |name: &str, ty: pb::ColumnType| pb::ColumnSchema {
            name: name.into(),
            r#type: ty as i32,
        };
        let claims = pb::DatasetSchema {
            name: "claims".into(),
            id_column: "claim_id".into(),
            columns: vec![
                column("claim_id", pb::ColumnType::String),
                column("claim_amount", pb::ColumnType::Float),
                column("age", pb::ColumnType::Int),
            ],
        };
        let registry = [("insurer", vec![claims]), ("hospital", vec![])]
            .into_iter()
            .map(|(id, datasets)| {
                let info = pb::PartyInfo {
                    id: id.into(),
                    datasets,
                    ..Default::default()
                };
                (id.to_string(), info)
            })
            .collect();
        crate::validate::validate_spec(spec, &registry).unwrap();
        // An integer scale is a number; a protocol the file names is kept (and refused later).
        let spec = fhe_spec(&text.replace("scale = 100.0", "scale = 100").replace(
            "[[inputs]]\nparty = \"insurer\"",
            "protocol = \"rep3\"\n[[inputs]]\nparty = \"insurer\"",
        ))
        .unwrap();
        assert_eq!(spec.protocol, "rep3");
        let Some(job_spec::Computation::FheScore(f)) = &spec.computation else {
            panic!("fhe_score expected")
        };
        assert_eq!(f.features[0].scale, 100.0);
    }

    #[test]
    fn bad_fhe_score_sections_say_why() {
        let text = fhe_example();
        for (case, edited, want) in [
            (
                "unknown key",
                text.replace("[fhe_score]\n", "[fhe_score]\nthreshold = 1\n"),
                "unknown field `threshold`",
            ),
            (
                "unknown feature key",
                text.replace("bits = 7", "bits = 7\nweight = 2"),
                "unknown field `weight`",
            ),
            (
                "no bits",
                text.replace("bits = 7", ""),
                "missing field `bits`",
            ),
            (
                "negative bits",
                text.replace("bits = 7", "bits = -7"),
                "integer `-7`, expected u32",
            ),
            (
                "no features",
                text.split("[[fhe_score.features]]")
                    .next()
                    .unwrap_or_default()
                    .to_string()
                    + "\n[output]\nrecipient = \"alice\"\n",
                "missing field `features`",
            ),
            (
                "no owner",
                text.replace("owner = \"insurer\"", ""),
                "missing field `owner`",
            ),
        ] {
            let e = syntax(fhe_spec(&edited));
            assert!(e.contains(want), "{case}: {want:?} not in {e}\n{edited}");
        }
        let two = problem(fhe_spec(&(text + "\n[score]\nmodel_id = \"m\"\n")));
        assert_eq!(two.field, "fhe_score");
        assert!(
            matches!(two.kind, ProblemKind::NotAllowed { reason } if reason.contains("one computation")),
            "{two:?}"
        );
        assert!(
            two.to_string()
                .contains("one computation: [stats], [psi], [train], [score] or [fhe_score]"),
            "{two}"
        );
    }

    #[test]
    fn the_shipped_example_job_files_parse() {
        for text in [
            include_str!("../../examples/stats-job.toml"),
            include_str!("../../examples/join-stats-job.toml"),
            include_str!("../../examples/train-job.toml"),
        ] {
            let spec = JobFile::parse(text)
                .unwrap()
                .to_spec(Some([3; 32]))
                .unwrap();
            assert_eq!(spec.inputs.len(), 3);
        }
        let fhe = JobFile::parse(include_str!("../../examples/fhe-score-job.toml"))
            .unwrap()
            .to_spec(Some([3; 32]))
            .unwrap();
        let Some(job_spec::Computation::FheScore(f)) = fhe.computation else {
            panic!("not an fhe-score job");
        };
        assert_eq!((f.owner.as_str(), f.features.len()), ("hospital", 8));
        assert_eq!(fhe.protocol, "fhe");
        let train = JobFile::parse(include_str!("../../examples/train-job.toml"))
            .unwrap()
            .to_spec(Some([3; 32]))
            .unwrap();
        let Some(job_spec::Computation::Train(t)) = train.computation else {
            panic!("not a train job");
        };
        assert_eq!(
            (t.label.as_str(), t.features.len(), t.epochs),
            ("insurer.fraud", 15, 10)
        );
        assert!(!t.no_intercept && !t.reveal_weights);
        // Two computations are refused.
        let two = format!(
            "{}\n[stats]\ncolumns = [\"insurer.claim_amount\"]\n",
            include_str!("../../examples/train-job.toml")
        );
        let p = problem(JobFile::parse(&two).unwrap().to_spec(Some([3; 32])));
        assert_eq!(p.field, "train");
        assert!(matches!(p.kind, ProblemKind::NotAllowed { .. }), "{p:?}");
        let text = include_str!("../../examples/join-stats-job.toml");
        let spec = JobFile::parse(&text.replace("# psi_job", "psi_job"))
            .unwrap()
            .to_spec(Some([3; 32]))
            .unwrap();
        assert_eq!(spec.join.unwrap().psi_job, "job-0123456789abcdef");
        // The commented list of filters, instead of the single one.
        let listed = text
            .replace(
                "filter = { column = \"hospital.diabetic\", equals = 1 }\n",
                "",
            )
            .replace("# filter = [", "filter = [");
        let spec = JobFile::parse(&listed)
            .unwrap()
            .to_spec(Some([3; 32]))
            .unwrap();
        let Some(job_spec::Computation::Stats(s)) = spec.computation else {
            panic!("stats expected")
        };
        assert_eq!((s.filter.is_none(), s.filters.len()), (true, 2));
    }

    #[test]
    fn bad_files_say_why() {
        let e = syntax(JobFile::parse(
            "inputs = []\n[output]\nrecipient='a'\nfoo=1",
        ));
        assert!(e.contains("unknown field"), "{e}");
        let text = doc_example().replace(
            "filter = { column = \"diagnosis_group\", equals = \"diabetes\" }",
            "filter = { column = \"age\", equals = 3, min = 1.0 }",
        );
        let p = problem(JobFile::parse(&text).unwrap().to_spec(Some([0; 32])));
        assert_eq!(p.field, "stats.filter");
        assert!(matches!(p.kind, ProblemKind::NotAllowed { .. }), "{p:?}");
        assert!(
            p.to_string().contains("either `equals` or `min`/`max`"),
            "{p}"
        );
        let bad_filter = |filter: &str| {
            let text = doc_example().replace(
                "filter = { column = \"diagnosis_group\", equals = \"diabetes\" }",
                filter,
            );
            problem(JobFile::parse(&text).unwrap().to_spec(Some([0; 32])))
        };
        let p = bad_filter("filter = [{ column = \"age\", equals = 1 }, { column = \"age\" }]");
        assert_eq!(p.field, "stats.filter[1]");
        assert!(matches!(p.kind, ProblemKind::Missing { .. }), "{p:?}");
        let p = bad_filter("filter = { column = \"age\", equals = [1] }");
        assert_eq!(p.field, "stats.filter.equals");
        assert!(
            matches!(&p.kind, ProblemKind::BadValue { value, .. } if value == "[1]"),
            "{p:?}"
        );
        let text = doc_example().replace("# public_key", "public_key = \"zz\" #");
        let p = problem(JobFile::parse(&text).unwrap().to_spec(None));
        assert_eq!(
            (p.field.as_str(), &p.kind),
            (
                "output.public_key",
                &ProblemKind::BadValue {
                    value: "\"zz\"".into(),
                    expected: "hex (64 digits: an X25519 key)"
                }
            )
        );
        assert!(p.to_string().contains("expected hex"), "{p}");
        let text = doc_example()
            .replace("[stats]", "")
            .replace("columns = [\"claim_amount\", \"length_of_stay\"]\n", "")
            .replace(
                "filter = { column = \"diagnosis_group\", equals = \"diabetes\" }\n",
                "",
            );
        let p = problem(JobFile::parse(&text).unwrap().to_spec(Some([0; 32])));
        assert_eq!(p.field, "computation");
        assert!(matches!(p.kind, ProblemKind::Missing { .. }), "{p:?}");
    }
}
