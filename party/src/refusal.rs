//! Why a party refuses a job: what the job asks that does not fit this party's own datasets,
//! models, stored intersections or assignment.
//!
//! One typed value per reason, with the names involved as fields (datasets, columns, model and
//! job ids — never a data value); its `Display` is the sentence the analyst reads in the job's
//! reason and the audit log records. Tests match the variant.

use std::fmt;
use std::path::PathBuf;

use treaty_job::{ProblemKind, SpecProblem};

use crate::dataset::ColumnType;
use crate::membership::MembershipError;

/// The role a column plays in a job, for [`Refusal::NoColumn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    /// A value the job computes on (a statistic, a feature, a label).
    Value,
    /// A filter's column.
    Filter,
    /// The record id column.
    Id,
}

impl fmt::Display for ColumnRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnRole::Value => "column",
            ColumnRole::Filter => "filter column",
            ColumnRole::Id => "id column",
        })
    }
}

/// Why this party refuses (or stops) a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The assignment does not name this party among the job's inputs.
    #[error("party {party} is not part of this job")]
    NotInJob {
        /// This party.
        party: String,
    },
    /// The assignment carries no spec.
    #[error("the assignment has no spec")]
    NoSpec,
    /// The spec names no output recipient.
    #[error("the job names no output recipient")]
    NoRecipient,
    /// The job names a dataset this party does not have.
    #[error("unknown dataset {dataset:?}")]
    UnknownDataset {
        /// The dataset named.
        dataset: String,
    },
    /// The dataset is configured but its file is gone.
    #[error("the file of dataset {dataset:?} is missing")]
    MissingFile {
        /// The dataset.
        dataset: String,
    },
    /// The dataset has no such column.
    #[error("dataset {dataset:?} has no {role} {column:?}")]
    NoColumn {
        /// The dataset.
        dataset: String,
        /// The column named.
        column: String,
        /// What the job uses it for.
        role: ColumnRole,
    },
    /// A column the job computes on is not numeric.
    #[error("dataset {dataset:?} column {column:?} is {ty}, not numeric")]
    NotNumeric {
        /// The dataset.
        dataset: String,
        /// The column.
        column: String,
        /// Its declared type.
        ty: ColumnType,
    },
    /// An id column of floats (ids must compare exactly).
    #[error("dataset {dataset:?} id column {column:?} is float; ids must be text or integers")]
    FloatIds {
        /// The dataset.
        dataset: String,
        /// The column.
        column: String,
    },
    /// A filter on the record ids, which would single out individual records.
    #[error(
        "filter column {column:?} is a record id column; filtering on ids would single out \
         individual records"
    )]
    FilterOnIds {
        /// The column.
        column: String,
    },
    /// A range filter on a column that is not numeric.
    #[error("filter column {column:?} is {ty}, a range needs a numeric column")]
    RangeNotNumeric {
        /// The column.
        column: String,
        /// Its declared type.
        ty: ColumnType,
    },
    /// A filter with neither an equality nor a range.
    #[error("filter on {column:?} has no predicate")]
    NoPredicate {
        /// The column.
        column: String,
    },
    /// This party is the join's helper (no id column in the join), yet the job names its data.
    #[error("this party is the join's helper but the job names its dataset {dataset:?}")]
    HelperWithData {
        /// The dataset named.
        dataset: String,
    },
    /// This party is an fhe-score evaluator (a model, no data), yet the job names its data.
    #[error("the evaluator contributes no data, but the job names its dataset {dataset:?}")]
    EvaluatorWithData {
        /// The dataset named.
        dataset: String,
    },
    /// A `train` job would overwrite a model this party stores.
    #[error("this party already stores a model {model_id:?}; choose another model_id")]
    ModelExists {
        /// The model id.
        model_id: String,
    },
    /// A `score` job names a model this party does not store.
    #[error("this party stores no model {model_id:?}")]
    NoModel {
        /// The model id.
        model_id: String,
    },
    /// A model id that cannot name a file.
    #[error("{model_id:?} is not a valid model id")]
    BadModelId {
        /// The id given.
        model_id: String,
    },
    /// A stored model file does not decode or is not usable.
    #[error("the model at {} is corrupt: {reason}", path.display())]
    CorruptModel {
        /// Its file.
        path: PathBuf,
        /// What is wrong with it (shape only).
        reason: String,
    },
    /// The job's analyst, kind, dataset, columns, recipient or peers are not allowed by this
    /// party's policy.
    #[error("refused by {party}'s policy: {reason}")]
    Policy {
        /// This party.
        party: String,
        /// The policy's reason.
        reason: String,
    },
    /// Fewer records behind a result here than the policy's minimum cohort.
    #[error(
        "refused by {party}'s policy: fewer than {min} records here are behind the result \
         (minimum cohort)"
    )]
    Cohort {
        /// This party.
        party: String,
        /// The policy's minimum.
        min: u64,
    },
    /// The node's own check of the spec finds a problem the coordinator should have refused
    /// (the same typed problem its validation reports).
    #[error("{0}")]
    Spec(Box<SpecProblem>),
    /// The job carries no signed submission.
    #[error("the job carries no signed submission")]
    Unsigned,
    /// The analyst's signature over the job does not verify, or is not the roster's key for
    /// that analyst.
    #[error("{reason}")]
    Signature {
        /// What the signature check found.
        reason: String,
    },
    /// The job id is not the one the signed submission yields.
    #[error("the job id is not the one the analyst's signed submission yields")]
    JobIdMismatch,
    /// The job spec is not the one the analyst signed.
    #[error("the job spec differs from the one the analyst signed")]
    SpecMismatch,
    /// This party could not record the job in its audit log before deciding on it: without
    /// that record a replay of the job could not be recognised after a restart.
    #[error("{party} could not record the job in its audit log")]
    AuditUnavailable {
        /// This party.
        party: String,
    },
    /// This party already received the job: a replayed submission.
    #[error("{party} already received job {job_id} (a replayed submission)")]
    Replayed {
        /// This party.
        party: String,
        /// The job.
        job_id: String,
    },
    /// The job's parties, order or fingerprints are not what the analyst signed and this
    /// party's roster says.
    #[error("{party} refuses the job's membership: {error}")]
    Membership {
        /// This party.
        party: String,
        /// What does not match.
        error: MembershipError,
    },
    /// The submission was signed too long ago (or in the future).
    #[error("{reason}")]
    Stale {
        /// The ages involved.
        reason: String,
    },
    /// This party has no policy: it admits no job.
    #[error("party {party} has no policy configured: it admits no job")]
    NoPolicy {
        /// This party.
        party: String,
    },
    /// This party's policy file does not load (the details are in the operator's log).
    #[error("party {party}'s policy file is unusable (its operator must fix it)")]
    PolicyUnusable {
        /// This party.
        party: String,
    },
    /// The analyst is not among those this party's policy admits.
    #[error("refused by {party}: {reason}")]
    Analyst {
        /// This party.
        party: String,
        /// The policy's reason.
        reason: String,
    },
    /// A stored shared model lacks the standardisation of a feature the job scores.
    #[error("score: the stored model {model_id:?} has no standardisation of {feature:?}")]
    NoStandardisation {
        /// The model.
        model_id: String,
        /// The feature.
        feature: String,
    },
    /// A column cannot be standardised for training (empty, or not finite).
    #[error("dataset {dataset:?} column {column:?}: {problem}")]
    Unstandardisable {
        /// The dataset.
        dataset: String,
        /// The column.
        column: String,
        /// What is wrong: `"is empty"`, `"holds a value that is not finite"`.
        problem: &'static str,
    },
    /// The job would take more of something than this party's `[limits]` allow.
    #[error(
        "the job needs {needed} {what} here, above this party's limit of {limit} ([limits] {key})"
    )]
    OverBudget {
        /// What is counted.
        what: &'static str,
        /// The `[limits]` key.
        key: &'static str,
        /// What the job needs.
        needed: u64,
        /// The limit.
        limit: u64,
    },
    /// A `train` job whose hold-out leaves no aligned row for training.
    #[error("train: no aligned row is left for training ({aligned} aligned in all)")]
    NoTrainingRows {
        /// The rows the join aligned.
        aligned: usize,
    },
    /// An id of a `psi` job's id column is longer than the protocol accepts.
    #[error(
        "dataset {dataset:?} id column {column:?}, row {row}: the id is {len} bytes, above the \
         {max}-byte limit"
    )]
    LongId {
        /// The dataset.
        dataset: String,
        /// Its id column.
        column: String,
        /// 1-based data row.
        row: usize,
        /// The id's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A `psi` job's id column repeats ids.
    #[error("dataset {dataset:?} id column {column:?} repeats {count} id(s); ids must be unique")]
    RepeatedIds {
        /// The dataset.
        dataset: String,
        /// Its id column.
        column: String,
        /// How many ids repeat an earlier one.
        count: usize,
    },
    /// A `psi` job's `reveal` and `to` name no mode of the protocol for its party count.
    #[error("psi: `reveal` and `to` name no mode of the protocol for {parties} parties")]
    BadReveal {
        /// The job's parties.
        parties: usize,
    },
    /// This data party is not among the parties of the job's join.
    #[error("this data party is not among the join's parties")]
    NotInJoin,
    /// The stored intersection of a psi job lists an id more than once.
    #[error("the stored intersection repeats {repeats} id(s); it is corrupt")]
    CorruptIntersection {
        /// How many ids repeat.
        repeats: usize,
    },
    /// An id of the stored intersection appears twice in the dataset's id column.
    #[error(
        "dataset {dataset:?} id column {column:?} holds id #{index} of the intersection twice \
         (rows {first_row} and {second_row}); ids must be unique"
    )]
    DuplicateId {
        /// The dataset.
        dataset: String,
        /// Its id column.
        column: String,
        /// 1-based position of the id in the intersection (never the id itself).
        index: usize,
        /// 1-based data row of its first occurrence.
        first_row: usize,
        /// 1-based data row of its second occurrence.
        second_row: usize,
    },
    /// An id of the stored intersection is no longer in the dataset.
    #[error(
        "id #{index} of the intersection is not in dataset {dataset:?} id column {column:?} (the \
         dataset changed since the PSI, or the PSI used other ids)"
    )]
    IdNotInDataset {
        /// The dataset.
        dataset: String,
        /// Its id column.
        column: String,
        /// 1-based position of the id in the intersection (never the id itself).
        index: usize,
    },
    /// A `score` job of a stored model asks for another fixed-point precision than the model's.
    #[error("score: the model was trained at {model} fractional bits, the job asks {job}")]
    FracBitsMismatch {
        /// The model's fractional bits.
        model: u32,
        /// The job's.
        job: u32,
    },
    /// An `fhe-score` job at a node built without the `fhe` feature.
    #[error("this party node was built without FHE (cargo feature `fhe`)")]
    NoFhe,
    /// An `fhe-score` job names a model the evaluator does not hold.
    #[error("this party holds no FHE model {model_id:?}")]
    NoFheModel {
        /// The model id.
        model_id: String,
    },
    /// The evaluator's `fhe-score` model does not fit the job's features (names, widths, or the
    /// overflow bound of its arithmetic).
    #[error("FHE model {model_id:?} does not fit the job's features: {reason}")]
    FheModelUnfit {
        /// The model id.
        model_id: String,
        /// What does not fit (shape only: names, widths, bounds).
        reason: String,
    },
    /// An owner's value that, scaled and rounded, does not fit its `fhe-score` feature's bits.
    #[error(
        "dataset {dataset:?}, column {column:?}, row {row}: value × {scale} does not fit {bits} \
         unsigned bits"
    )]
    Unquantisable {
        /// The dataset.
        dataset: String,
        /// The column.
        column: String,
        /// 1-based data row.
        row: usize,
        /// The feature's scale, as written.
        scale: String,
        /// The feature's width.
        bits: u32,
    },
    /// A join reuses a psi job whose intersection this party does not hold.
    #[error(
        "this party holds no stored intersection of psi job {psi_job:?} (it must have learned \
         the intersection of that job)"
    )]
    NoIntersection {
        /// The psi job.
        psi_job: String,
    },
}

impl Refusal {
    /// The node's own finding of a spec problem at `field`.
    pub fn spec(field: impl Into<String>, kind: ProblemKind) -> Self {
        Self::Spec(Box::new(SpecProblem {
            field: field.into(),
            kind,
        }))
    }
}
