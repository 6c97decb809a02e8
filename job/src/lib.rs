//! # treaty-job: what a job is, before anyone runs it
//!
//! ```text
//!   job.toml ──[file::JobFile]──► JobSpec (proto) ──[validate]──► checked spec
//!                                                   (coordinator: against the registry;
//!                                                    each party: against its own datasets)
//! ```
//!
//! The analyst's job files ([`file`](mod@file)), the defaults a spec gets and the checks every spec must
//! pass ([`validate`]), each failure a typed [`SpecProblem`] ([`problem`]). The coordinator
//! validates against its registry; every party node runs the same checks against what it holds
//! itself and never takes the coordinator's word for them.
//! Depends only on `treaty-proto`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod computation;
pub mod file;
pub mod problem;
pub mod validate;

pub use computation::{Computation, Kind, Protocol};
pub use file::JobFile;
pub use problem::{ProblemKind, SpecProblem};

/// What is wrong with a job file or a job spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// A job spec (or the job file it came from) failed validation; every problem is listed.
    #[error("invalid job spec: {}", join(.0))]
    InvalidSpec(Vec<SpecProblem>),
}

impl From<Box<SpecProblem>> for JobError {
    fn from(problem: Box<SpecProblem>) -> Self {
        JobError::InvalidSpec(vec![*problem])
    }
}

/// The problems' messages, separated by "; ".
fn join(problems: &[SpecProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
