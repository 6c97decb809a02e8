//! A job spec's computation, parsed once: its [`Kind`], the [`Protocol`] it runs, and the typed
//! [`Computation`] every side dispatches on.
//!
//! On the wire a spec is a `oneof computation`, an optional `join` and a `protocol` string that
//! repeats what the two imply. [`Computation::of`] reads the first two together — a `train`
//! without a join or a `psi` with one is a [`SpecProblem`] here, once, not in every `match` —
//! and [`Protocol::parse`] reads the string. What a kind needs beyond that (validation, policy
//! columns, execution, results) lives in one module per kind and per side.

use std::fmt;

use treaty_proto::v1::job_spec;
use treaty_proto::v1::{FheScoreJob, JobSpec, JoinSpec, PsiJob, ScoreJob, StatsJob, TrainJob};

use crate::problem::{ProblemKind, SpecProblem};

pub use treaty_proto::JobKind as Kind;

/// The protocol a job runs; the spec's `protocol` string names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// n-party additive sharing of local aggregates (`stats` without a join).
    Additive,
    /// Three-party replicated sharing (every job with a join).
    Rep3,
    /// Two-party ECDH PSI.
    PsiEcdh,
    /// The ECDH PSI chain among three or more parties.
    PsiEcdhChain,
    /// The FHE owner/evaluator protocol (`fhe-score`).
    Fhe,
}

impl Protocol {
    /// Every protocol.
    pub const ALL: [Protocol; 5] = [
        Protocol::Additive,
        Protocol::Rep3,
        Protocol::PsiEcdh,
        Protocol::PsiEcdhChain,
        Protocol::Fhe,
    ];

    /// The protocol's name in a spec.
    #[must_use]
    pub const fn name(self) -> &'static str {
        self.allowed()[0]
    }

    /// The protocol as the one allowed value of a [`ProblemKind::NotOneOf`].
    #[must_use]
    pub const fn allowed(self) -> &'static [&'static str] {
        match self {
            Protocol::Additive => &["additive"],
            Protocol::Rep3 => &["rep3"],
            Protocol::PsiEcdh => &["psi-ecdh"],
            Protocol::PsiEcdhChain => &["psi-ecdh-chain"],
            Protocol::Fhe => &["fhe"],
        }
    }

    /// The protocol named `name`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A spec's computation with its join resolved: the one value every side dispatches on.
#[derive(Debug, Clone, Copy)]
pub enum Computation<'a> {
    /// Statistics over each party's own rows (horizontally split data).
    Stats(&'a StatsJob),
    /// Statistics over the rows the parties share (a join of vertically split data).
    JoinStats {
        /// What to compute.
        stats: &'a StatsJob,
        /// How the parties' rows align.
        join: &'a JoinSpec,
    },
    /// A private set intersection.
    Psi(&'a PsiJob),
    /// Training a model on a join.
    Train {
        /// What to train.
        train: &'a TrainJob,
        /// How the parties' rows align.
        join: &'a JoinSpec,
    },
    /// Scoring a join's rows with a model.
    Score {
        /// What to score.
        score: &'a ScoreJob,
        /// How the parties' rows align.
        join: &'a JoinSpec,
    },
    /// Scoring one party's rows under FHE.
    FheScore(&'a FheScoreJob),
}

impl<'a> Computation<'a> {
    /// Reads `spec`'s computation and join together.
    ///
    /// # Errors
    /// The [`SpecProblem`] of a spec without a computation, of a `psi` or `fhe-score` with a
    /// join, or of a `train` or `score` without one.
    pub fn of(spec: &'a JobSpec) -> Result<Self, Box<SpecProblem>> {
        let join = spec.join.as_ref();
        let Some(computation) = spec.computation.as_ref() else {
            return Err(missing(
                "computation",
                "add [stats], [psi], [train], [score] or [fhe_score]",
            ));
        };
        Ok(match (computation, join) {
            (job_spec::Computation::Stats(stats), None) => Computation::Stats(stats),
            (job_spec::Computation::Stats(stats), Some(join)) => {
                Computation::JoinStats { stats, join }
            }
            (job_spec::Computation::Psi(psi), None) => Computation::Psi(psi),
            (job_spec::Computation::Psi(_), Some(_)) => {
                return Err(not_allowed(
                    "a join applies to stats and train jobs; a psi job has no [join]",
                ));
            }
            (job_spec::Computation::Train(_), None) => {
                return Err(missing(
                    "join",
                    "train runs on vertically split data: add a [join] naming each data \
                     party's id column",
                ));
            }
            (job_spec::Computation::Train(train), Some(join)) => Computation::Train { train, join },
            (job_spec::Computation::Score(_), None) => {
                return Err(missing(
                    "join",
                    "score runs on vertically split records: add a [join] naming each data \
                     party's id column",
                ));
            }
            (job_spec::Computation::Score(score), Some(join)) => Computation::Score { score, join },
            (job_spec::Computation::FheScore(fhe), None) => Computation::FheScore(fhe),
            (job_spec::Computation::FheScore(_), Some(_)) => {
                return Err(not_allowed(
                    "fhe-score runs on the owner's rows alone; an fhe-score job has no [join]",
                ));
            }
        })
    }

    /// The job's kind.
    #[must_use]
    pub fn kind(&self) -> Kind {
        match self {
            Computation::Stats(_) | Computation::JoinStats { .. } => Kind::Stats,
            Computation::Psi(_) => Kind::Psi,
            Computation::Train { .. } => Kind::Train,
            Computation::Score { .. } => Kind::Score,
            Computation::FheScore(_) => Kind::FheScore,
        }
    }

    /// The join, for the kinds that have one.
    #[must_use]
    pub fn join(&self) -> Option<&'a JoinSpec> {
        match *self {
            Computation::JoinStats { join, .. }
            | Computation::Train { join, .. }
            | Computation::Score { join, .. } => Some(join),
            Computation::Stats(_) | Computation::Psi(_) | Computation::FheScore(_) => None,
        }
    }

    /// The protocol this computation runs among `parties` inputs: the only one a spec may
    /// name for it, and the default when it names none.
    #[must_use]
    pub fn protocol(&self, parties: usize) -> Protocol {
        match self {
            Computation::Stats(_) => Protocol::Additive,
            Computation::JoinStats { .. }
            | Computation::Train { .. }
            | Computation::Score { .. } => Protocol::Rep3,
            Computation::Psi(_) if parties > 2 => Protocol::PsiEcdhChain,
            Computation::Psi(_) => Protocol::PsiEcdh,
            Computation::FheScore(_) => Protocol::Fhe,
        }
    }

    /// The columns of party `me`'s dataset the computation names, as written (a join's
    /// `party.column` names included, with the party's own join id column): what a policy
    /// compares with the columns it allows. Not deduplicated.
    #[must_use]
    pub fn named_columns(&self, me: &str) -> Vec<&'a str> {
        let mut named: Vec<&'a str> = Vec::new();
        match *self {
            Computation::Stats(s) | Computation::JoinStats { stats: s, .. } => {
                named.extend(s.columns.iter().map(String::as_str));
                named.extend(s.filter.iter().chain(&s.filters).map(|f| f.column.as_str()));
            }
            Computation::Psi(p) => named.extend(p.id_columns.get(me).map(String::as_str)),
            Computation::Train { train, .. } => {
                named.extend(train.features.iter().map(String::as_str));
                named.push(&train.label);
            }
            Computation::Score { score, .. } => {
                named.extend(score.features.iter().map(String::as_str));
            }
            Computation::FheScore(f) => {
                named.extend(f.features.iter().map(|c| c.column.as_str()));
                if !f.id_column.is_empty() {
                    named.push(&f.id_column);
                }
            }
        }
        if let Some(c) = self.join().and_then(|j| j.id_columns.get(me)) {
            named.push(c);
        }
        named
    }

    /// Whether the computation reads party `me`'s record ids, and whether the spec names the
    /// id column itself (otherwise it is the dataset's declared one).
    #[must_use]
    pub fn uses_ids(&self, me: &str) -> (bool, bool) {
        match *self {
            Computation::Psi(p) => (true, p.id_columns.contains_key(me)),
            _ => match self.join() {
                Some(join) => (true, join.id_columns.contains_key(me)),
                None => (false, false),
            },
        }
    }

    /// Whether the job reveals a trained model's weights to its recipient.
    #[must_use]
    pub fn reveals_model(&self) -> bool {
        matches!(self, Computation::Train { train, .. } if train.reveal_weights)
    }
}

fn missing(field: &str, hint: &'static str) -> Box<SpecProblem> {
    Box::new(SpecProblem::new(field, ProblemKind::Missing { hint }))
}

fn not_allowed(reason: &'static str) -> Box<SpecProblem> {
    Box::new(SpecProblem::new("join", ProblemKind::NotAllowed { reason }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(c: job_spec::Computation, join: bool) -> JobSpec {
        JobSpec {
            computation: Some(c),
            join: join.then(JoinSpec::default),
            ..JobSpec::default()
        }
    }

    #[test]
    fn kinds_and_protocols_round_trip_their_names() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.name()), Some(k));
        }
        for p in Protocol::ALL {
            assert_eq!(Protocol::parse(p.name()), Some(p));
        }
        assert_eq!(Kind::parse("fhe_score"), None);
        assert_eq!(Protocol::parse(""), None);
    }

    #[test]
    fn a_join_is_resolved_once_with_the_computation() {
        let stats = || job_spec::Computation::Stats(StatsJob::default());
        let train = || job_spec::Computation::Train(TrainJob::default());
        let score = || job_spec::Computation::Score(ScoreJob::default());
        let psi = || job_spec::Computation::Psi(PsiJob::default());
        let fhe = || job_spec::Computation::FheScore(FheScoreJob::default());

        let ok = |c, join| {
            let s = spec(c, join);
            Computation::of(&s).map(|c| (c.kind(), c.join().is_some(), c.protocol(3)))
        };
        assert_eq!(
            ok(stats(), false),
            Ok((Kind::Stats, false, Protocol::Additive))
        );
        assert_eq!(ok(stats(), true), Ok((Kind::Stats, true, Protocol::Rep3)));
        assert_eq!(ok(train(), true), Ok((Kind::Train, true, Protocol::Rep3)));
        assert_eq!(ok(score(), true), Ok((Kind::Score, true, Protocol::Rep3)));
        assert_eq!(
            ok(psi(), false),
            Ok((Kind::Psi, false, Protocol::PsiEcdhChain))
        );
        assert_eq!(ok(fhe(), false), Ok((Kind::FheScore, false, Protocol::Fhe)));
        for (c, join) in [(train(), false), (score(), false)] {
            assert!(
                matches!(ok(c, join), Err(p) if p.field == "join" && matches!(p.kind, ProblemKind::Missing { .. })),
                "a vertical job without a join"
            );
        }
        for c in [psi(), fhe()] {
            assert!(
                matches!(ok(c, true), Err(p) if p.field == "join" && matches!(p.kind, ProblemKind::NotAllowed { .. })),
                "a join on a job that takes none"
            );
        }
        let none = JobSpec::default();
        assert!(matches!(
            Computation::of(&none),
            Err(p) if p.field == "computation" && matches!(p.kind, ProblemKind::Missing { .. })
        ));
        assert_eq!(
            Computation::Psi(&PsiJob::default()).protocol(2),
            Protocol::PsiEcdh
        );
    }

    #[test]
    fn named_columns_include_the_partys_join_id_column() {
        let mut join = JoinSpec::default();
        join.id_columns.insert("bank".into(), "customer".into());
        let train = TrainJob {
            features: vec!["bank.income".into(), "hospital.age".into()],
            label: "bank.default".into(),
            reveal_weights: true,
            ..TrainJob::default()
        };
        let c = Computation::Train {
            train: &train,
            join: &join,
        };
        assert_eq!(
            c.named_columns("bank"),
            ["bank.income", "hospital.age", "bank.default", "customer"]
        );
        assert_eq!(c.uses_ids("bank"), (true, true));
        assert_eq!(c.uses_ids("hospital"), (true, false));
        assert!(c.reveals_model());
        let stats = StatsJob::default();
        assert_eq!(Computation::Stats(&stats).uses_ids("bank"), (false, false));
    }
}
