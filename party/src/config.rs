//! `party.toml`: who this node is, where it listens, where the coordinator is, its TLS identity
//! and its datasets with their declared schemas.
//!
//! ```toml
//! id = "hospital"
//! listen = "0.0.0.0:7101"                  # data plane
//! advertise = "https://10.0.0.5:7101"      # what peers dial (default: https://<listen>)
//! coordinator = "https://10.0.0.1:7000"
//! policy = "policy.toml"                   # who may run what here (see treaty_party::policy)
//!
//! [tls]                                    # omit only with `insecure = true`
//! ca = "pki/ca.pem"
//! cert = "pki/hospital.pem"
//! key = "pki/hospital.key"
//!
//! [[datasets]]
//! name = "claims"
//! path = "data/claims.csv"
//! id_column = "claim_id"
//! columns = [
//!   { name = "claim_id", type = "string" },
//!   { name = "claim_amount", type = "float" },
//! ]
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use treaty_proto::v1 as pb;
use treaty_trust::client::COORDINATOR_TLS_NAME;
use treaty_trust::roster::Roster;
use treaty_trust::tls::TlsIdentity;

use crate::PartyError;
use crate::dataset::{ColumnType, DatasetConfig};
use crate::refusal::Refusal;

/// Paths of the node's TLS material.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The deployment's CA certificate.
    pub ca: PathBuf,
    /// This node's certificate (its SANs must include the party id).
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
}

/// Limits of the data plane.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest protocol message accepted from a peer.
    pub max_message_bytes: usize,
    /// How long to wait for a peer's message (or connection) before failing the job.
    pub peer_timeout_secs: u64,
    /// Most ids a peer may announce in a PSI (a larger set fails the job at the header, before
    /// anything is held for it): about 50 bytes of memory per id.
    pub max_psi_set: u64,
    /// Most aligned rows a `train` or `score` job may run on here (the data parties declare the
    /// count: a helper holds shares of every row).
    pub max_job_rows: u64,
    /// Most training steps (epochs × batches) a `train` job may take here: its CPU time.
    pub max_train_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: treaty_mpc::transport::DEFAULT_MAX_MESSAGE,
            peer_timeout_secs: 60,
            max_psi_set: treaty_mpc::psi::DEFAULT_MAX_PEER_SET,
            max_job_rows: treaty_mpc::psi::DEFAULT_MAX_PEER_SET,
            max_train_steps: 10_000_000,
        }
    }
}

impl Limits {
    /// Refuses a job over `rows` aligned rows above [`Limits::max_job_rows`].
    ///
    /// # Errors
    /// [`Refusal::OverBudget`] naming the key.
    pub fn check_rows(&self, rows: usize) -> Result<(), Refusal> {
        if rows as u64 > self.max_job_rows {
            return Err(Refusal::OverBudget {
                what: "aligned rows",
                key: "max_job_rows",
                needed: rows as u64,
                limit: self.max_job_rows,
            });
        }
        Ok(())
    }

    /// [`Limits::max_job_rows`] as the protocols take it: a peer that declares more aligned
    /// rows fails the job at the row agreement, before anything is allocated for them.
    pub fn max_rows(&self) -> usize {
        usize::try_from(self.max_job_rows).unwrap_or(usize::MAX)
    }

    /// The peer timeout as a duration.
    pub fn peer_timeout(&self) -> Duration {
        Duration::from_secs(self.peer_timeout_secs.max(1))
    }
}

/// A party node's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyConfig {
    /// Party id (a DNS label: it is also the TLS name peers expect).
    pub id: String,
    /// Data-plane listen address.
    pub listen: SocketAddr,
    /// Data-plane URL peers dial; defaults to `https://<listen>` (`http://` when insecure).
    #[serde(default)]
    pub advertise: Option<String>,
    /// Coordinator URL.
    pub coordinator: String,
    /// TLS name of the coordinator's certificate.
    #[serde(default = "default_coordinator_name")]
    pub coordinator_name: String,
    /// Plaintext everywhere: development only.
    #[serde(default)]
    pub insecure: bool,
    /// TLS files; required unless `insecure`.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// Data-plane limits.
    #[serde(default)]
    pub limits: Limits,
    /// Datasets this party offers.
    #[serde(default)]
    pub datasets: Vec<DatasetConfig>,
    /// The data owner's policy file (see [`crate::policy`]); without one the node refuses
    /// every job.
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// The consortium's roster this node pins (see [`treaty_trust::roster`]): who its peers are,
    /// their certificates, CAs and endpoints, and the coordinator's. Without one, the node
    /// trusts the deployment CA of `[tls] ca` and the certificates' stated roles and names (the
    /// one-CA trial set-up of `treaty init`).
    #[serde(default)]
    pub roster: Option<PathBuf>,
    /// Where the node keeps job outputs that stay at the party (e.g. PSI intersections);
    /// default `state` next to the config file.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Directory relative paths resolve against (the config file's directory).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

fn default_coordinator_name() -> String {
    COORDINATOR_TLS_NAME.to_string()
}

impl PartyConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, PartyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PartyError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates the text of the config file at `path` (relative paths in it are
    /// resolved against `path`'s folder; nothing is read).
    pub fn parse(path: &Path, text: &str) -> Result<Self, PartyError> {
        let mut cfg: Self = toml::from_str(text).map_err(|e| PartyError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        cfg.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        cfg.validate().map_err(|reason| PartyError::Config {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(cfg)
    }

    /// Checks the config for consistency.
    pub fn validate(&self) -> Result<(), String> {
        treaty_trust::pki::validate_name(&self.id).map_err(|e| format!("id: {e}"))?;
        if !self.insecure && self.tls.is_none() {
            return Err(
                "a [tls] section is required (or `insecure = true` for development)".into(),
            );
        }
        if self.roster.is_some() && self.insecure {
            return Err("a roster pins certificates: it needs TLS, not `insecure = true`".into());
        }
        let mut names = HashSet::new();
        for d in &self.datasets {
            d.validate().map_err(|e| e.to_string())?;
            if !names.insert(d.name.as_str()) {
                return Err(format!("dataset {:?} is declared twice", d.name));
            }
        }
        Ok(())
    }

    /// The state directory (resolved against the config file's directory).
    pub fn state_dir(&self) -> PathBuf {
        self.resolve(self.state_dir.as_deref().unwrap_or(Path::new("state")))
    }

    /// Resolves `path` against the config file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// Loads the TLS identity (`None` when insecure).
    pub fn tls_identity(&self) -> Result<Option<TlsIdentity>, PartyError> {
        match (&self.tls, self.insecure) {
            (_, true) => Ok(None),
            (Some(t), false) => Ok(Some(
                TlsIdentity::load(
                    &self.resolve(&t.ca),
                    &self.resolve(&t.cert),
                    &self.resolve(&t.key),
                )
                .map_err(treaty_trust::TrustError::from)?,
            )),
            (None, false) => Err(PartyError::Config {
                path: self.base_dir.clone(),
                reason: "no [tls] section".into(),
            }),
        }
    }

    /// The roster this node runs with: loaded, checked, and accepted by its operator
    /// (`treaty roster accept`). `None` without `roster` in the config.
    ///
    /// # Errors
    /// A roster that does not load, is not accepted here, or does not list this party with the
    /// certificate it runs with.
    pub fn load_roster(&self) -> Result<Option<Roster>, PartyError> {
        let Some(path) = &self.roster else {
            return Ok(None);
        };
        let roster = Roster::load(&self.resolve(path))?;
        treaty_trust::roster::check_accepted(&self.state_dir(), &roster)?;
        let me = roster.party(&self.id).ok_or_else(|| PartyError::Config {
            path: self.resolve(path),
            reason: format!("the roster does not list party {:?}", self.id),
        })?;
        if let Some(tls) = self.tls_identity()?
            && tls.cert_sha256() != me.cert_sha256
        {
            return Err(PartyError::Config {
                path: self.resolve(path),
                reason: format!(
                    "the roster pins another certificate for {:?} than this node's",
                    self.id
                ),
            });
        }
        Ok(Some(roster))
    }

    /// The URL peers dial.
    pub fn advertised_endpoint(&self) -> String {
        self.advertise.clone().unwrap_or_else(|| {
            let scheme = if self.insecure { "http" } else { "https" };
            format!("{scheme}://{}", self.listen)
        })
    }

    /// A dataset by name.
    pub fn dataset(&self, name: &str) -> Option<&DatasetConfig> {
        self.datasets.iter().find(|d| d.name == name)
    }

    /// The schemas this party publishes to the registry (never rows or row counts).
    pub fn published_schemas(&self) -> Vec<pb::DatasetSchema> {
        self.datasets
            .iter()
            .map(|d| pb::DatasetSchema {
                name: d.name.clone(),
                id_column: d.id_column.clone(),
                columns: d
                    .columns
                    .iter()
                    .map(|c| pb::ColumnSchema {
                        name: c.name.clone(),
                        r#type: match c.ty {
                            ColumnType::Int => pb::ColumnType::Int,
                            ColumnType::Float => pb::ColumnType::Float,
                            ColumnType::String => pb::ColumnType::String,
                        } as i32,
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("party.toml");
        let doc = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&path, doc).unwrap();
        let cfg = PartyConfig::load(&path).unwrap();
        assert_eq!(cfg.id, "hospital");
        assert_eq!(cfg.advertised_endpoint(), "https://10.0.0.5:7101");
        assert_eq!(cfg.published_schemas()[0].columns.len(), 2);
        assert_eq!(cfg.resolve(Path::new("x.csv")), dir.path().join("x.csv"));
    }

    #[test]
    fn rejects_bad_configs_with_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("party.toml");
        let cases = [
            (
                "id = \"Bad Id\"\nlisten = \"127.0.0.1:1\"\ncoordinator = \"x\"\ninsecure = true",
                "other than a-z, 0-9",
            ),
            (
                "id = \"a\"\nlisten = \"127.0.0.1:1\"\ncoordinator = \"x\"",
                "[tls] section is required",
            ),
            (
                "id = \"a\"\nlisten = \"nope\"\ncoordinator = \"x\"",
                "invalid socket address",
            ),
            (
                "id = \"a\"\nlisten = \"127.0.0.1:1\"\ncoordinator = \"x\"\ninsecure = true\ncolour = 1",
                "unknown field",
            ),
        ];
        for (text, want) in cases {
            std::fs::write(&path, text).unwrap();
            let err = PartyConfig::load(&path).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        assert!(PartyConfig::load(&dir.path().join("missing.toml")).is_err());
    }
}
