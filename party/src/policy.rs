//! A data owner's policy: which analysts may run which jobs on which of this party's datasets and
//! columns, for which recipients, with which minimum cohort, and whether a human must approve.
//!
//! The file is re-read for every assignment, so an edit applies to the next job without a
//! restart; the SHA-256 of what was read (the policy file, then the analysts file it includes) is
//! the *policy version* recorded with every decision and approval. A job admitted under one
//! version keeps the terms it was admitted with.
//!
//! ```toml
//! # policy.toml (paths are relative to this file)
//! analysts_file = "analysts.toml"     # optional: `[[analysts]]` as `treaty init` writes them
//!
//! [[analysts]]                        # optional: more analysts, listed here
//! name = "auditor"
//! key = "8e5f0ab6d3c6bb7a7a4c2a5c8d1f2b3e4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d"
//! groups = ["research"]
//!
//! [[rules]]
//! analysts = ["analyst", "group:research"]   # names, `group:NAME`, or "*" (any listed analyst)
//! jobs = ["stats", "psi", "train", "score", "fhe-score"]
//! datasets = { claims = ["claim_id", "claim_amount", "paid_amount", "length_of_stay", "diagnosis_group"], risk = ["*"] }
//! recipients = ["self"]              # "self" (the submitter's result_key), analyst names, or "*"
//! min_cohort = 10                    # records behind any released aggregate, at this party
//! reveal_models = false              # may a `train` job reveal its weights?
//! approval = false                   # must a human here run `treaty approve JOB` first?
//! peers = ["insurer", "bank"]        # the parties this party may compute with ("*": any, default)
//! reuse = ["self"]                   # whose stored models/intersections a job may reuse: "self"
//!                                    # (default), analyst names, "group:NAME", "*"
//! ```
//!
//! A job is admitted when at least one rule that names the analyst allows all of it; the first
//! such rule sets the terms (minimum cohort, approval). The reason for a refusal names only what
//! the job asked for (a kind, a dataset, a column, a recipient), never the rest of the policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use treaty_job::{Computation, Kind};
use treaty_proto::v1 as pb;
use treaty_trust::identity::{Analyst, AnalystList};

use crate::PartyError;
use crate::error::io_err;
use crate::refusal::Refusal;

/// The job kinds a rule may name.
pub const JOB_KINDS: [&str; 5] = Kind::NAMES;

/// One rule of a policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Analyst names, `group:NAME`, or `*`.
    pub analysts: Vec<String>,
    /// Job kinds.
    pub jobs: Vec<String>,
    /// Per dataset, the columns the job may touch (`*`: all); a dataset named `*` stands for
    /// every dataset.
    #[serde(default)]
    pub datasets: BTreeMap<String, Vec<String>>,
    /// Who may receive the output: `self`, analyst names, `*`.
    #[serde(default = "default_recipients")]
    pub recipients: Vec<String>,
    /// Records this party's contribution to any released aggregate must have.
    #[serde(default)]
    pub min_cohort: u64,
    /// Whether a `train` job may reveal its weights.
    #[serde(default)]
    pub reveal_models: bool,
    /// Whether a human here must approve every job this rule admits.
    #[serde(default)]
    pub approval: bool,
    /// The parties this party may compute with under this rule (`*`: any party of its roster,
    /// the default).
    #[serde(default = "any")]
    pub peers: Vec<String>,
    /// Whose stored models and intersections a job under this rule may reuse: `self` (the
    /// analyst who made them, the default), analyst names, `group:NAME`, or `*`.
    #[serde(default = "own")]
    pub reuse: Vec<String>,
}

fn own() -> Vec<String> {
    vec!["self".into()]
}

fn any() -> Vec<String> {
    vec!["*".into()]
}

fn default_recipients() -> Vec<String> {
    vec!["self".into()]
}

/// The policy file's shape.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    analysts_file: Option<PathBuf>,
    #[serde(default)]
    analysts: Vec<Analyst>,
    #[serde(default)]
    rules: Vec<Rule>,
}

/// A loaded, validated policy and its version hash.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Everyone this party knows as an analyst.
    pub analysts: AnalystList,
    /// The rules, in order.
    pub rules: Vec<Rule>,
    /// SHA-256 of the policy file's bytes followed by the analysts file's bytes.
    pub sha256: [u8; 32],
}

/// What the policy allows a job to do here, fixed when it is admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terms {
    /// The policy version that admitted the job.
    pub policy_sha256: [u8; 32],
    /// Minimum records behind a released aggregate (0: no minimum).
    pub min_cohort: u64,
    /// Whether a human must approve before the job runs.
    pub approval: bool,
}

/// What one job asks of this party, as the policy sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// The job kind.
    pub kind: String,
    /// This party's dataset ("" for a party without data in the job).
    pub dataset: String,
    /// The columns of that dataset the job touches.
    pub columns: Vec<String>,
    /// The recipient's HPKE public key.
    pub recipient_key: Vec<u8>,
    /// A `train` job that reveals its weights.
    pub reveals_model: bool,
    /// The job's other parties.
    pub peers: Vec<String>,
    /// What the job reuses from earlier jobs at this party, and who made it.
    pub reuses: Vec<Reuse>,
}

/// Something a job reuses that an earlier job left at this party (a model share, an
/// intersection), and the analyst who ran that job ("" when not recorded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reuse {
    /// What it is, for a refusal ("model \"m\"", "the intersection of psi job …").
    pub what: String,
    /// The analyst whose job made it.
    pub origin: String,
}

impl Request {
    /// What `spec` asks of party `me` (its id) with `dataset` (`id_column` its declared id).
    #[must_use]
    pub fn of(spec: &pb::JobSpec, me: &str, dataset: &str, id_column: Option<&str>) -> Self {
        let computation = Computation::of(spec).ok();
        let named = computation.map(|c| c.named_columns(me)).unwrap_or_default();
        let (uses_ids, id_named) = computation.map_or((false, false), |c| c.uses_ids(me));
        // With a join, columns are "party.column": keep this party's; without, all are ours.
        let prefix = format!("{me}.");
        let mut columns: Vec<String> = named
            .into_iter()
            .filter(|c| !c.is_empty())
            .filter_map(|c| {
                if spec.join.is_some() {
                    c.strip_prefix(&prefix)
                        .or_else(|| (!c.contains('.')).then_some(c))
                } else {
                    Some(c)
                }
            })
            .map(str::to_string)
            .collect();
        if uses_ids
            && !id_named
            && let Some(id) = id_column
        {
            columns.push(id.to_string());
        }
        if dataset.is_empty() {
            columns.clear();
        }
        columns.sort();
        columns.dedup();
        Self {
            kind: treaty_job::validate::job_kind(spec).to_string(),
            dataset: dataset.to_string(),
            columns,
            recipient_key: spec
                .output
                .as_ref()
                .map(|o| o.recipient_public_key.clone())
                .unwrap_or_default(),
            reveals_model: computation.is_some_and(|c| c.reveals_model()),
            peers: spec
                .inputs
                .iter()
                .map(|i| i.party.clone())
                .filter(|p| p != me)
                .collect(),
            reuses: Vec::new(),
        }
    }
}

fn config_err(path: &Path, reason: impl Into<String>) -> PartyError {
    PartyError::Config {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl Policy {
    /// Reads and validates the policy at `path` (and the analysts file it names).
    ///
    /// # Errors
    /// I/O failures, syntax errors, unknown job kinds, rules naming unknown analysts or groups,
    /// malformed or duplicate analyst keys — each naming the file.
    pub fn load(path: &Path) -> Result<Self, PartyError> {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        Self::parse(path, &bytes, |included| std::fs::read(included))
    }

    /// Parses and validates `bytes`, the policy file at `path`; the analysts file it names (a
    /// path relative to `path`'s folder) is read with `read`.
    ///
    /// # Errors
    /// As [`Policy::load`].
    pub fn parse(
        path: &Path,
        bytes: &[u8],
        read: impl FnOnce(&Path) -> std::io::Result<Vec<u8>>,
    ) -> Result<Self, PartyError> {
        let text = std::str::from_utf8(bytes).map_err(|_| config_err(path, "not UTF-8"))?;
        let file: PolicyFile = toml::from_str(text).map_err(|e| config_err(path, e.to_string()))?;
        let mut hash = Sha256::new();
        hash.update(bytes);
        let mut analysts = AnalystList::default();
        if let Some(included) = &file.analysts_file {
            let included = path.parent().unwrap_or(Path::new(".")).join(included);
            let more = read(&included).map_err(io_err(&included))?;
            hash.update(&more);
            let text =
                std::str::from_utf8(&more).map_err(|_| config_err(&included, "not UTF-8"))?;
            analysts = AnalystList::parse(text).map_err(|e| config_err(&included, e))?;
        }
        analysts
            .extend(AnalystList {
                analysts: file.analysts,
            })
            .map_err(|e| config_err(path, e))?;
        let policy = Self {
            analysts,
            rules: file.rules,
            sha256: hash.finalize().into(),
        };
        policy.validate().map_err(|e| config_err(path, e))?;
        Ok(policy)
    }

    fn validate(&self) -> Result<(), String> {
        if self.rules.is_empty() {
            return Err("the policy has no [[rules]]: every job would be refused".into());
        }
        for (i, r) in self.rules.iter().enumerate() {
            let at = format!("rules[{i}]");
            if r.analysts.is_empty() || r.jobs.is_empty() {
                return Err(format!("{at}: `analysts` and `jobs` must not be empty"));
            }
            if r.peers.is_empty() {
                return Err(format!(
                    "{at}: `peers` must not be empty (\"*\" for any party, or party ids)"
                ));
            }
            for p in r.peers.iter().filter(|p| *p != "*") {
                treaty_trust::pki::validate_name(p).map_err(|e| format!("{at}: peers: {e}"))?;
            }
            for k in &r.jobs {
                if !JOB_KINDS.contains(&k.as_str()) {
                    return Err(format!(
                        "{at}: unknown job kind {k:?} (one of {})",
                        JOB_KINDS.join(", ")
                    ));
                }
            }
            for a in &r.analysts {
                let known = a == "*"
                    || match a.strip_prefix("group:") {
                        Some(g) => self
                            .analysts
                            .analysts
                            .iter()
                            .any(|x| x.groups.contains(&g.to_string())),
                        None => self.analysts.analysts.iter().any(|x| &x.name == a),
                    };
                if !known {
                    return Err(format!("{at}: analyst {a:?} is not listed"));
                }
            }
            for rc in &r.recipients {
                let known = rc == "*"
                    || rc == "self"
                    || self.analysts.analysts.iter().any(|x| &x.name == rc);
                if !known {
                    return Err(format!("{at}: recipient {rc:?} is not a listed analyst"));
                }
            }
        }
        Ok(())
    }

    fn names(rule: &Rule, analyst: &Analyst) -> bool {
        rule.analysts.iter().any(|a| {
            a == "*"
                || *a == analyst.name
                || a.strip_prefix("group:")
                    .is_some_and(|g| analyst.groups.iter().any(|x| x == g))
        })
    }

    /// Why `rule` does not allow `req` from `analyst` (`None`: it does).
    fn refusal(&self, rule: &Rule, analyst: &Analyst, req: &Request) -> Option<String> {
        if !rule.jobs.contains(&req.kind) {
            return Some(format!(
                "{} jobs are not permitted to analyst {:?}",
                req.kind, analyst.name
            ));
        }
        if !req.dataset.is_empty() {
            let allowed = rule
                .datasets
                .get(&req.dataset)
                .or_else(|| rule.datasets.get("*"));
            let Some(allowed) = allowed else {
                return Some(format!(
                    "dataset {:?} is not permitted to analyst {:?} for {} jobs",
                    req.dataset, analyst.name, req.kind
                ));
            };
            if !allowed.iter().any(|c| c == "*") {
                let denied: Vec<&String> = req
                    .columns
                    .iter()
                    .filter(|c| !allowed.contains(c))
                    .collect();
                if !denied.is_empty() {
                    let list: Vec<String> = denied.iter().map(|c| format!("{c:?}")).collect();
                    return Some(format!(
                        "column {} of dataset {:?} is not permitted to analyst {:?}",
                        list.join(", "),
                        req.dataset,
                        analyst.name
                    ));
                }
            }
        }
        if !rule.peers.iter().any(|p| p == "*") {
            let strangers: Vec<String> = req
                .peers
                .iter()
                .filter(|p| !rule.peers.contains(p))
                .map(|p| format!("{p:?}"))
                .collect();
            if !strangers.is_empty() {
                return Some(format!(
                    "computing with party {} is not permitted to analyst {:?}",
                    strangers.join(", "),
                    analyst.name
                ));
            }
        }
        for reuse in &req.reuses {
            let origin_groups = self
                .analysts
                .analysts
                .iter()
                .find(|a| a.name == reuse.origin)
                .map(|a| a.groups.clone())
                .unwrap_or_default();
            let allowed = rule.reuse.iter().any(|r| match r.as_str() {
                "*" => true,
                "self" => !reuse.origin.is_empty() && reuse.origin == analyst.name,
                r => match r.strip_prefix("group:") {
                    Some(g) => origin_groups.iter().any(|x| x == g),
                    None => !reuse.origin.is_empty() && r == reuse.origin,
                },
            });
            if !allowed {
                return Some(format!(
                    "{} was made by another analyst's job; reusing it is not permitted to \
                     analyst {:?}",
                    reuse.what, analyst.name
                ));
            }
        }
        if req.reveals_model && !rule.reveal_models {
            return Some(format!(
                "revealing a trained model's weights is not permitted to analyst {:?}",
                analyst.name
            ));
        }
        let recipient = hex::encode(&req.recipient_key);
        let key_of = |a: &Analyst| {
            a.result_key
                .as_deref()
                .is_some_and(|k| k.trim().eq_ignore_ascii_case(&recipient))
        };
        let allowed = rule.recipients.iter().any(|rc| match rc.as_str() {
            "*" => true,
            "self" => key_of(analyst),
            name => self
                .analysts
                .analysts
                .iter()
                .any(|a| a.name == name && !a.revoked && key_of(a)),
        });
        if !allowed {
            return Some(format!(
                "the output recipient key {}… is not one analyst {:?} may send results to",
                &recipient[..recipient.len().min(16)],
                analyst.name
            ));
        }
        None
    }

    /// Decides `req` from `analyst` (already authenticated against this policy's list).
    ///
    /// # Errors
    /// The reason for the analyst: what of the job is not permitted.
    pub fn decide(&self, analyst: &Analyst, req: &Request) -> Result<Terms, String> {
        // The most telling reason comes from a rule that allows the job's kind.
        let (mut kind_reason, mut other_reason) = (None, None);
        for rule in self.rules.iter().filter(|r| Self::names(r, analyst)) {
            match self.refusal(rule, analyst, req) {
                None => {
                    return Ok(Terms {
                        policy_sha256: self.sha256,
                        min_cohort: rule.min_cohort,
                        approval: rule.approval,
                    });
                }
                Some(r) if rule.jobs.contains(&req.kind) => {
                    kind_reason.get_or_insert(r);
                }
                Some(r) => {
                    other_reason.get_or_insert(r);
                }
            }
        }
        Err(kind_reason
            .or(other_reason)
            .unwrap_or_else(|| format!("no rule here admits jobs from analyst {:?}", analyst.name)))
    }
}

/// The cohort rule: `records` behind a released aggregate at this party.
///
/// # Errors
/// A refusal naming the minimum (not the count).
pub fn check_cohort(terms: &Terms, party: &str, records: u64) -> Result<(), PartyError> {
    if records < terms.min_cohort {
        return Err(Refusal::Cohort {
            party: party.to_string(),
            min: terms.min_cohort,
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use treaty_proto::v1::job_spec;

    const ANA: &str = "aa00000000000000000000000000000000000000000000000000000000000000";

    fn key(b: u8) -> String {
        hex::encode(
            ed25519_dalek::SigningKey::from_bytes(&[b; 32])
                .verifying_key()
                .to_bytes(),
        )
    }

    fn policy(rules: &str) -> Policy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        let text = format!(
            "[[analysts]]\nname = \"ana\"\nkey = \"{}\"\nresult_key = \"{ANA}\"\ngroups = [\"research\"]\n\n\
             [[analysts]]\nname = \"bob\"\nkey = \"{}\"\nresult_key = \"{}\"\n\n{rules}",
            key(1),
            key(2),
            "bb".repeat(32)
        );
        std::fs::write(&path, text).unwrap();
        Policy::load(&path).unwrap()
    }

    fn analyst(p: &Policy, name: &str) -> Analyst {
        p.analysts
            .analysts
            .iter()
            .find(|a| a.name == name)
            .unwrap()
            .clone()
    }

    fn req(kind: &str, dataset: &str, columns: &[&str], recipient: &str) -> Request {
        Request {
            kind: kind.into(),
            dataset: dataset.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            recipient_key: hex::decode(recipient).unwrap(),
            reveals_model: false,
            peers: vec!["insurer".into()],
            reuses: Vec::new(),
        }
    }

    const RULES: &str = "[[rules]]\nanalysts = [\"group:research\"]\njobs = [\"stats\", \"train\"]\n\
        datasets = { claims = [\"amount\", \"age\"], risk = [\"*\"] }\nmin_cohort = 10\n\n\
        [[rules]]\nanalysts = [\"bob\"]\njobs = [\"psi\"]\ndatasets = { claims = [\"id\"] }\napproval = true\n";

    #[test]
    fn admits_within_the_rule_and_sets_its_terms() {
        let p = policy(RULES);
        let t = p
            .decide(&analyst(&p, "ana"), &req("stats", "claims", &["age"], ANA))
            .unwrap();
        assert_eq!(t.min_cohort, 10);
        assert!(!t.approval);
        assert_eq!(t.policy_sha256, p.sha256);
        let t = p
            .decide(
                &analyst(&p, "bob"),
                &req("psi", "claims", &["id"], &"bb".repeat(32)),
            )
            .unwrap();
        assert!(t.approval);
        // Any column of a `*` dataset.
        assert!(
            p.decide(&analyst(&p, "ana"), &req("train", "risk", &["x", "y"], ANA))
                .is_ok()
        );
    }

    #[test]
    fn every_refusal_names_what_the_job_asked_for() {
        let p = policy(RULES);
        let ana = analyst(&p, "ana");
        let cases = [
            (
                req("psi", "claims", &["id"], ANA),
                "psi jobs are not permitted to analyst \"ana\"",
            ),
            (
                req("stats", "wards", &["age"], ANA),
                "dataset \"wards\" is not permitted",
            ),
            (
                req("stats", "claims", &["age", "diagnosis"], ANA),
                "column \"diagnosis\" of dataset \"claims\" is not permitted to analyst \"ana\"",
            ),
            (
                req("stats", "claims", &["age"], &"cc".repeat(32)),
                "recipient key cccccccccccccccc… is not one",
            ),
        ];
        for (r, want) in cases {
            let e = p.decide(&ana, &r).unwrap_err();
            assert!(e.contains(want), "{e} / {want}");
            assert!(!e.contains("bob"), "{e} reveals another rule");
        }
        let mut reveal = req("train", "risk", &["x"], ANA);
        reveal.reveals_model = true;
        assert!(p.decide(&ana, &reveal).unwrap_err().contains("revealing"));
        // bob: only his own rule applies, stats is not in it.
        let bob = analyst(&p, "bob");
        let e = p
            .decide(&bob, &req("stats", "claims", &["age"], &"bb".repeat(32)))
            .unwrap_err();
        assert!(
            e.contains("stats jobs are not permitted to analyst \"bob\""),
            "{e}"
        );
    }

    #[test]
    fn recipients_other_than_self_must_be_listed() {
        let p = policy(
            "[[rules]]\nanalysts = [\"ana\"]\njobs = [\"stats\"]\ndatasets = { claims = [\"*\"] }\nrecipients = [\"bob\"]\n",
        );
        let ana = analyst(&p, "ana");
        assert!(
            p.decide(&ana, &req("stats", "claims", &["a"], &"bb".repeat(32)))
                .is_ok()
        );
        assert!(
            p.decide(&ana, &req("stats", "claims", &["a"], ANA))
                .is_err()
        );
    }

    #[test]
    fn a_rule_with_peers_admits_only_jobs_with_those_parties() {
        let p = policy(
            "[[rules]]\nanalysts = [\"*\"]\njobs = [\"stats\"]\ndatasets = { claims = [\"*\"] }\n\
             peers = [\"insurer\", \"bank\"]\n",
        );
        let ana = analyst(&p, "ana");
        let mut r = req("stats", "claims", &["age"], ANA);
        assert!(p.decide(&ana, &r).is_ok());
        r.peers = vec!["insurer".into(), "bank".into()];
        assert!(p.decide(&ana, &r).is_ok());
        r.peers = vec!["insurer".into(), "mallory".into()];
        let why = p.decide(&ana, &r).unwrap_err();
        assert!(why.contains("\"mallory\""), "{why}");
        assert!(!why.contains("bank"), "the refusal leaks the rule: {why}");
        // The default is any party.
        let open = policy(
            "[[rules]]\nanalysts = [\"*\"]\njobs = [\"stats\"]\ndatasets = { claims = [\"*\"] }\n",
        );
        assert!(open.decide(&analyst(&open, "ana"), &r).is_ok());
    }

    #[test]
    fn a_model_or_intersection_is_reused_only_by_whom_the_rule_allows() {
        let rules = |reuse: &str| {
            policy(&format!(
                "[[rules]]\nanalysts = [\"*\"]\njobs = [\"score\"]\ndatasets = {{ claims = [\"*\"] }}\nrecipients = [\"*\"]\n{reuse}"
            ))
        };
        let mut r = req("score", "claims", &["age"], ANA);
        r.reuses = vec![Reuse {
            what: "model \"m\"".into(),
            origin: "bob".into(),
        }];
        // Default: only the analyst who made it.
        let p = rules("");
        assert!(p.decide(&analyst(&p, "bob"), &r).is_ok());
        let why = p.decide(&analyst(&p, "ana"), &r).unwrap_err();
        assert!(why.contains("model \"m\""), "{why}");
        // Named, or by the maker's group, or anyone.
        let p = rules("reuse = [\"bob\"]\n");
        assert!(p.decide(&analyst(&p, "ana"), &r).is_ok());
        let p = rules("reuse = [\"group:research\"]\n");
        assert!(
            p.decide(&analyst(&p, "ana"), &r).is_err(),
            "bob is not in research"
        );
        r.reuses[0].origin = "ana".into();
        assert!(
            p.decide(&analyst(&p, "bob"), &r).is_ok(),
            "ana is in research"
        );
        // A model whose maker was never recorded: only `*` reuses it.
        r.reuses[0].origin = String::new();
        assert!(rules("").decide(&analyst(&p, "ana"), &r).is_err());
        let p = rules("reuse = [\"*\"]\n");
        assert!(p.decide(&analyst(&p, "ana"), &r).is_ok());
    }

    #[test]
    fn malformed_policies_are_refused_naming_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        let k = key(1);
        let cases = [
            ("", "no [[rules]]"),
            (
                "[[rules]]\nanalysts = [\"x\"]\njobs = [\"stats\"]\n",
                "analyst \"x\" is not listed",
            ),
            (
                "[[rules]]\nanalysts = [\"*\"]\njobs = [\"mine-bitcoin\"]\n",
                "unknown job kind",
            ),
            (
                "[[rules]]\nanalysts = [\"*\"]\njobs = [\"stats\"]\npeers = []\n",
                "`peers` must not be empty",
            ),
            (
                "[[rules]]\nanalysts = [\"*\"]\njobs = [\"stats\"]\npeers = [\"Bad Name\"]\n",
                "peers:",
            ),
            (
                "[[rules]]\nanalysts = [\"*\"]\njobs = [\"stats\"]\ncolour = 1\n",
                "unknown field",
            ),
            (
                "[[rules]]\nanalysts = [\"*\"]\njobs = [\"stats\"]\nrecipients = [\"eve\"]\n",
                "recipient \"eve\"",
            ),
            ("analysts_file = \"missing.toml\"\n", "missing.toml"),
        ];
        for (body, want) in cases {
            std::fs::write(
                &path,
                format!("[[analysts]]\nname = \"a\"\nkey = \"{k}\"\n\n{body}"),
            )
            .unwrap();
            let e = Policy::load(&path).unwrap_err().to_string();
            assert!(e.contains(want), "{body:?}: {e}");
        }
    }

    #[test]
    fn the_version_covers_the_included_analysts_file() {
        let dir = tempfile::tempdir().unwrap();
        let analysts = dir.path().join("analysts.toml");
        std::fs::write(
            &analysts,
            format!("[[analysts]]\nname = \"a\"\nkey = \"{}\"\n", key(1)),
        )
        .unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "analysts_file = \"analysts.toml\"\n[[rules]]\nanalysts = [\"a\"]\njobs = [\"stats\"]\n",
        )
        .unwrap();
        let v1 = Policy::load(&path).unwrap().sha256;
        std::fs::write(
            &analysts,
            format!(
                "[[analysts]]\nname = \"a\"\nkey = \"{}\"\nrevoked = true\n",
                key(1)
            ),
        )
        .unwrap();
        let v2 = Policy::load(&path).unwrap();
        assert_ne!(v1, v2.sha256);
        assert!(v2.analysts.analysts[0].revoked);
    }

    #[test]
    fn a_request_lists_the_columns_the_job_touches_here() {
        let spec = pb::JobSpec {
            join: Some(pb::JoinSpec {
                id_columns: [("hospital".to_string(), "pid".to_string())].into(),
                psi_job: String::new(),
            }),
            computation: Some(job_spec::Computation::Train(pb::TrainJob {
                features: vec!["hospital.age".into(), "bank.income".into()],
                label: "insurer.fraud".into(),
                reveal_weights: true,
                ..Default::default()
            })),
            ..Default::default()
        };
        let r = Request::of(&spec, "hospital", "risk", Some("pid"));
        assert_eq!(r.columns, ["age", "pid"]);
        assert_eq!(r.kind, "train");
        assert!(r.reveals_model);
        let helper = Request::of(&spec, "bank", "", None);
        assert!(helper.columns.is_empty());
        let stats = pb::JobSpec {
            computation: Some(job_spec::Computation::Stats(pb::StatsJob {
                columns: vec!["amount".into()],
                filter: Some(pb::Filter {
                    column: "dx".into(),
                    predicate: None,
                }),
                filters: vec![],
            })),
            ..Default::default()
        };
        assert_eq!(
            Request::of(&stats, "h", "claims", Some("id")).columns,
            ["amount", "dx"]
        );
        let psi = pb::JobSpec {
            computation: Some(job_spec::Computation::Psi(pb::PsiJob::default())),
            ..Default::default()
        };
        assert_eq!(Request::of(&psi, "h", "claims", Some("id")).columns, ["id"]);
    }
}
