//! What is wrong with a job spec, one typed problem per offending field.
//!
//! [`validate`](crate::validate) and [`file`](crate::file) report every problem they find as a
//! [`SpecProblem`]: the field as the analyst writes it in the job file (`frac_bits`,
//! `inputs[2].party`, `train.epochs`, `join.id_columns.hospital`, …) and a [`ProblemKind`] that
//! carries the numbers and names involved. Their [`Display`](std::fmt::Display) is the sentence
//! shown to the analyst.

use std::fmt;

use treaty_proto::v1::{ColumnType, JobState};

/// One problem with a job spec: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// The offending field as written in a job file: `frac_bits`, `inputs[2].party`,
    /// `output.recipient_public_key`, `stats.columns`, `stats.filter[1].column`, `train.epochs`,
    /// `join.id_columns.hospital`, `fhe_score.features[0].bits`, … Empty for a problem with the
    /// file as a whole (a TOML syntax error).
    pub field: String,
    /// What is wrong with it.
    pub kind: ProblemKind,
}

impl SpecProblem {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, kind: ProblemKind) -> Self {
        Self {
            field: field.into(),
            kind,
        }
    }
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.field, self.kind)
        }
    }
}

/// What is wrong with a field of a job spec.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The field is required but absent or empty; `hint` (possibly empty) says what to give.
    Missing {
        /// What to give, or why it is needed.
        hint: &'static str,
    },
    /// A number above its limit.
    TooLarge {
        /// The number given.
        value: u64,
        /// The largest allowed.
        max: u64,
    },
    /// A number below its limit.
    TooSmall {
        /// The number given.
        value: u64,
        /// The smallest allowed.
        min: u64,
    },
    /// A list (or a key) with the wrong number of entries (or bytes).
    WrongCount {
        /// How many the spec gives.
        got: u64,
        /// The fewest allowed.
        min: u64,
        /// The most allowed (`u64::MAX`: no limit).
        max: u64,
        /// What is counted, with why where it helps: `"parties"`, `"bytes (an X25519 key)"`.
        of: &'static str,
    },
    /// A value that is not of the form or in the range the field takes.
    BadValue {
        /// The value as given (strings quoted).
        value: String,
        /// What the field takes: `"a number in [0, 1]"`, `"hex"`.
        expected: &'static str,
    },
    /// A name that is not one of the field's choices (a protocol, a model kind, a metric, …).
    NotOneOf {
        /// The name given.
        value: String,
        /// The choices.
        allowed: &'static [&'static str],
    },
    /// A name listed twice.
    Duplicate {
        /// The repeated name.
        name: String,
    },
    /// A party the registry (or the party itself) does not know.
    UnknownParty {
        /// The party.
        party: String,
    },
    /// A party that is not one of the job's inputs.
    NotAnInput {
        /// The party.
        party: String,
    },
    /// A dataset the party does not hold.
    UnknownDataset {
        /// The party.
        party: String,
        /// The dataset.
        dataset: String,
    },
    /// A column the party's dataset does not have.
    UnknownColumn {
        /// The party.
        party: String,
        /// Its dataset.
        dataset: String,
        /// The column.
        column: String,
    },
    /// A column of the wrong type.
    WrongType {
        /// The party.
        party: String,
        /// Its dataset.
        dataset: String,
        /// The column.
        column: String,
        /// The type needed: `"numeric"`, `"text or integer"`.
        expected: &'static str,
        /// The column's type.
        found: ColumnType,
    },
    /// A record id column used as a value or a filter, which would single out records.
    IdColumn {
        /// The party.
        party: String,
        /// Its id column.
        column: String,
    },
    /// A column of a job with a join that is not named `party.column`.
    NotQualified {
        /// The name given.
        name: String,
    },
    /// A name (`party.column`, or a party) whose party holds no data in the job's join.
    NotADataParty {
        /// The name given (the party itself where a party is named).
        name: String,
        /// The party.
        party: String,
    },
    /// A filter range whose minimum exceeds its maximum.
    RangeReversed {
        /// The minimum.
        min: String,
        /// The maximum.
        max: String,
    },
    /// A value that also appears in another field, where the two must differ (the owner and the
    /// evaluator of an `fhe-score` job, a `train` job's label and its features).
    Conflict {
        /// The other field.
        with: String,
        /// The value in both.
        value: String,
    },
    /// A field that this job may not set, or may not set this way.
    NotAllowed {
        /// Why, and what to do instead.
        reason: &'static str,
    },
    /// A job id that names no stored job.
    UnknownJob {
        /// The job id.
        job: String,
    },
    /// A referenced job of the wrong kind.
    WrongJobKind {
        /// The job id.
        job: String,
        /// The kind needed.
        expected: &'static str,
        /// Its kind.
        found: &'static str,
    },
    /// A referenced job that did not succeed.
    NotSucceeded {
        /// The job id.
        job: String,
        /// Its state.
        state: JobState,
    },
    /// A model id that no succeeded `train` job stored.
    UnknownModel {
        /// The model id.
        model: String,
    },
    /// The parties of a `score` job are not those of its model's `train` job, in that order.
    WrongParties {
        /// The training job's parties, in its order.
        expected: Vec<String>,
    },
    /// A reused `psi` job did not reveal the intersection to a data party of the join.
    NotRevealedTo {
        /// The psi job id.
        job: String,
        /// The party.
        party: String,
    },
    /// A reused `psi` job matched a party's ids in a different dataset or column than the join.
    Mismatch {
        /// The psi job id.
        job: String,
        /// The party.
        party: String,
        /// What differs: `"dataset"` or `"ids in column"`.
        what: &'static str,
        /// What the psi job used.
        referenced: String,
        /// What this job names.
        here: String,
    },
    /// The job file is not valid TOML, or does not have the job file's shape.
    Syntax {
        /// The parser's message, with the line and column.
        message: String,
    },
    /// Anything else (a last resort).
    Invalid {
        /// What is wrong.
        reason: String,
    },
}

/// `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
fn choices(allowed: &[&str]) -> String {
    let quoted: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// A column type as an analyst names it.
fn type_name(t: ColumnType) -> &'static str {
    match t {
        ColumnType::Int => "integer",
        ColumnType::Float => "float",
        ColumnType::String => "text",
        ColumnType::Unspecified => "of no declared type",
    }
}

impl ProblemKind {
    /// The kind's name, kebab-case (`too-large`, `unknown-party`, …), as the coordinator sends it
    /// in a status's details ([`SpecProblem::to_proto`]).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Missing { .. } => "missing",
            Self::TooLarge { .. } => "too-large",
            Self::TooSmall { .. } => "too-small",
            Self::WrongCount { .. } => "wrong-count",
            Self::BadValue { .. } => "bad-value",
            Self::NotOneOf { .. } => "not-one-of",
            Self::Duplicate { .. } => "duplicate",
            Self::UnknownParty { .. } => "unknown-party",
            Self::NotAnInput { .. } => "not-an-input",
            Self::UnknownDataset { .. } => "unknown-dataset",
            Self::UnknownColumn { .. } => "unknown-column",
            Self::WrongType { .. } => "wrong-type",
            Self::IdColumn { .. } => "id-column",
            Self::NotQualified { .. } => "not-qualified",
            Self::NotADataParty { .. } => "not-a-data-party",
            Self::RangeReversed { .. } => "range-reversed",
            Self::Conflict { .. } => "conflict",
            Self::NotAllowed { .. } => "not-allowed",
            Self::UnknownJob { .. } => "unknown-job",
            Self::WrongJobKind { .. } => "wrong-job-kind",
            Self::NotSucceeded { .. } => "not-succeeded",
            Self::UnknownModel { .. } => "unknown-model",
            Self::WrongParties { .. } => "wrong-parties",
            Self::NotRevealedTo { .. } => "not-revealed-to",
            Self::Mismatch { .. } => "mismatch",
            Self::Syntax { .. } => "syntax",
            Self::Invalid { .. } => "invalid",
        }
    }
}

impl SpecProblem {
    /// The problem as the coordinator sends it in an `INVALID_ARGUMENT` status's details.
    #[must_use]
    pub fn to_proto(&self) -> treaty_proto::v1::SpecProblem {
        treaty_proto::v1::SpecProblem {
            field: self.field.clone(),
            kind: self.kind.name().to_string(),
            message: self.to_string(),
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { hint: "" } => write!(f, "missing"),
            Self::Missing { hint } => write!(f, "missing; {hint}"),
            Self::TooLarge { value, max } => {
                write!(f, "{value} is too large, at most {max} is allowed")
            }
            Self::TooSmall { value, min } => {
                write!(f, "{value} is too small, at least {min} is needed")
            }
            Self::WrongCount { got, min, max, of } => {
                let needs = match (*min, *max) {
                    (min, max) if min == max => format!("exactly {min}"),
                    (min, u64::MAX) => format!("at least {min}"),
                    (min, max) if max == min + 1 => format!("{min} or {max}"),
                    (min, max) => format!("{min} to {max}"),
                };
                write!(f, "needs {needs} {of}, got {got}")
            }
            Self::BadValue { value, expected } => write!(f, "{value}, expected {expected}"),
            Self::NotOneOf { value, allowed } => {
                write!(f, "{value:?}, expected {}", choices(allowed))
            }
            Self::Duplicate { name } => write!(f, "{name:?} is listed twice"),
            Self::UnknownParty { party } => write!(f, "unknown party {party:?}"),
            Self::NotAnInput { party } => write!(f, "{party:?} is not an input of this job"),
            Self::UnknownDataset { party, dataset } => {
                write!(f, "party {party:?} has no dataset {dataset:?}")
            }
            Self::UnknownColumn {
                party,
                dataset,
                column,
            } => write!(
                f,
                "party {party:?} dataset {dataset:?} has no column {column:?}"
            ),
            Self::WrongType {
                party,
                dataset,
                column,
                expected,
                found,
            } => write!(
                f,
                "party {party:?} dataset {dataset:?} column {column:?} is {}, not {expected}",
                type_name(*found)
            ),
            Self::IdColumn { party, column } => write!(
                f,
                "{column:?} is the record id column of party {party:?}; using ids would single \
                 out individual records"
            ),
            Self::NotQualified { name } => {
                write!(f, "{name:?}: with a join, name it as \"party.column\"")
            }
            Self::NotADataParty { name, party } if name == party => write!(
                f,
                "party {party:?} holds no data in this join (the data parties are those in \
                 join.id_columns)"
            ),
            Self::NotADataParty { name, party } => write!(
                f,
                "{name:?} names party {party:?}, which holds no data in this join (the data \
                 parties are those in join.id_columns)"
            ),
            Self::RangeReversed { min, max } => write!(f, "range min {min} exceeds max {max}"),
            Self::Conflict { with, value } => {
                write!(f, "{value:?} also appears in {with}; the two must differ")
            }
            Self::NotAllowed { reason } => write!(f, "{reason}"),
            Self::UnknownJob { job } => write!(f, "{job:?} is not a known job"),
            Self::WrongJobKind {
                job,
                expected,
                found,
            } => write!(f, "job {job:?} is a {found} job, not a {expected} job"),
            Self::NotSucceeded { job, state } => write!(
                f,
                "job {job:?} did not succeed (it is {})",
                state.as_str_name()
            ),
            Self::UnknownModel { model } => {
                write!(f, "no succeeded train job stored model {model:?}")
            }
            Self::WrongParties { expected } => write!(
                f,
                "the parties must be the training job's, in its order: {}",
                expected.join(", ")
            ),
            Self::NotRevealedTo { job, party } => write!(
                f,
                "psi job {job:?} did not reveal the intersection to {party:?}"
            ),
            Self::Mismatch {
                job,
                party,
                what,
                referenced,
                here,
            } => write!(
                f,
                "psi job {job:?} matched {party:?} {what} {referenced:?}, this job names {here:?}"
            ),
            Self::Syntax { message } => write!(f, "{}", message.trim_end()),
            Self::Invalid { reason } => write!(f, "{reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_goes_on_the_wire_with_its_field_kind_and_sentence() {
        let p = SpecProblem::new("train.epochs", ProblemKind::TooLarge { value: 9, max: 5 });
        let wire = p.to_proto();
        assert_eq!(wire.field, "train.epochs");
        assert_eq!(wire.kind, "too-large");
        assert_eq!(wire.message, p.to_string());
        assert_eq!(
            ProblemKind::UnknownParty { party: "x".into() }.name(),
            "unknown-party"
        );
        assert_eq!(
            ProblemKind::NotADataParty {
                name: "a.b".into(),
                party: "a".into()
            }
            .name(),
            "not-a-data-party"
        );
    }

    #[test]
    fn problems_show_their_field_numbers_and_names() {
        let shown = |field: &str, kind| SpecProblem::new(field, kind).to_string();
        let s = shown("frac_bits", ProblemKind::TooLarge { value: 63, max: 40 });
        assert_eq!(s, "frac_bits: 63 is too large, at most 40 is allowed");
        let s = shown(
            "fhe_score.features[1].bits",
            ProblemKind::TooSmall { value: 0, min: 1 },
        );
        assert!(s.contains("fhe_score.features[1].bits") && s.contains("0 ") && s.contains('1'));
        let s = shown(
            "inputs",
            ProblemKind::WrongCount {
                got: 1,
                min: 2,
                max: 64,
                of: "parties",
            },
        );
        assert_eq!(s, "inputs: needs 2 to 64 parties, got 1");
        let s = shown(
            "join.id_columns",
            ProblemKind::WrongCount {
                got: 4,
                min: 2,
                max: 3,
                of: "data parties",
            },
        );
        assert_eq!(s, "join.id_columns: needs 2 or 3 data parties, got 4");
        let s = shown(
            "output.recipient_public_key",
            ProblemKind::WrongCount {
                got: 31,
                min: 32,
                max: 32,
                of: "bytes",
            },
        );
        assert_eq!(
            s,
            "output.recipient_public_key: needs exactly 32 bytes, got 31"
        );
        let s = shown(
            "stats.columns",
            ProblemKind::WrongType {
                party: "insurer".into(),
                dataset: "claims".into(),
                column: "region".into(),
                expected: "numeric",
                found: ColumnType::String,
            },
        );
        assert_eq!(
            s,
            "stats.columns: party \"insurer\" dataset \"claims\" column \"region\" is text, not \
             numeric"
        );
        let s = shown(
            "inputs[1].dataset",
            ProblemKind::UnknownDataset {
                party: "insurer".into(),
                dataset: "payroll".into(),
            },
        );
        assert_eq!(
            s,
            "inputs[1].dataset: party \"insurer\" has no dataset \"payroll\""
        );
        let s = shown(
            "train.model",
            ProblemKind::NotOneOf {
                value: "forest".into(),
                allowed: &["logistic", "linear"],
            },
        );
        assert_eq!(
            s,
            "train.model: \"forest\", expected \"logistic\" or \"linear\""
        );
        let s = shown(
            "train.metric",
            ProblemKind::NotOneOf {
                value: "f1".into(),
                allowed: &["auc", "accuracy", "none"],
            },
        );
        assert!(s.ends_with("\"auc\", \"accuracy\" or \"none\""), "{s}");
        let s = shown(
            "train.l2",
            ProblemKind::BadValue {
                value: f64::NAN.to_string(),
                expected: "a number in [0, 1]",
            },
        );
        assert_eq!(s, "train.l2: NaN, expected a number in [0, 1]");
        let s = shown(
            "join.psi_job",
            ProblemKind::NotSucceeded {
                job: "job-1".into(),
                state: JobState::Failed,
            },
        );
        assert!(
            s.contains("\"job-1\" did not succeed") && s.contains("FAILED"),
            "{s}"
        );
        let s = shown(
            "",
            ProblemKind::Syntax {
                message: "unknown field `foo`\n".into(),
            },
        );
        assert_eq!(s, "unknown field `foo`");
        // A spec with several problems lists them all, joined by "; ".
        let e = crate::JobError::InvalidSpec(vec![
            SpecProblem::new("frac_bits", ProblemKind::TooLarge { value: 63, max: 40 }),
            SpecProblem::new(
                "inputs[2].party",
                ProblemKind::UnknownParty {
                    party: "bank".into(),
                },
            ),
        ]);
        assert_eq!(
            e.to_string(),
            "invalid job spec: frac_bits: 63 is too large, at most 40 is allowed; \
             inputs[2].party: unknown party \"bank\""
        );
    }
}
