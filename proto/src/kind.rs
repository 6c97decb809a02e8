//! The job kinds: the names of [`crate::v1::JobSpec`]'s `computation` variants, as listings,
//! policies and audit logs spell them.

use std::fmt;

use crate::v1::{JobSpec, job_spec};

/// The job kinds, as listings, policies and audit logs name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobKind {
    /// Statistics over rows (horizontal) or over a join (vertical).
    Stats,
    /// A private set intersection.
    Psi,
    /// Training a model on vertically split data.
    Train,
    /// Scoring with a model on vertically split data.
    Score,
    /// Scoring one party's rows under FHE with another party's clear model.
    FheScore,
}

impl JobKind {
    /// Every kind, in the order of the spec's `oneof`.
    pub const ALL: [JobKind; 5] = [
        JobKind::Stats,
        JobKind::Psi,
        JobKind::Train,
        JobKind::Score,
        JobKind::FheScore,
    ];
    /// Every kind's name, in the order of [`JobKind::ALL`].
    pub const NAMES: [&'static str; 5] = ["stats", "psi", "train", "score", "fhe-score"];

    /// The kind's name: `stats`, `psi`, `train`, `score`, `fhe-score`.
    #[must_use]
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The kind named `name` (as [`JobKind::name`] spells it).
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind of `spec`'s computation, if it names one.
    #[must_use]
    pub fn of(spec: &JobSpec) -> Option<Self> {
        Some(match spec.computation.as_ref()? {
            job_spec::Computation::Stats(_) => JobKind::Stats,
            job_spec::Computation::Psi(_) => JobKind::Psi,
            job_spec::Computation::Train(_) => JobKind::Train,
            job_spec::Computation::Score(_) => JobKind::Score,
            job_spec::Computation::FheScore(_) => JobKind::FheScore,
        })
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
