//! The auditor's saved copy of the coordinator's audit registry: every writer's identity key and
//! the latest signed head the coordinator holds for it (`treaty audit registry > registry.json`).
//! Exported logs are verified against it offline; an analyst reads the parties' keys from it to
//! check signed result shares.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use treaty_proto::v1 as pb;

use crate::{AuditError, COORDINATOR_WRITER, Digest32, SignedHead};

/// The saved form of the coordinator's `AuditRegistry`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Registry {
    /// One entry per writer (each party, and the coordinator).
    pub writers: Vec<RegistryWriter>,
}

/// One writer's key and head.
#[derive(Debug, Serialize, Deserialize)]
pub struct RegistryWriter {
    /// The writer (a party id, or [`COORDINATOR_WRITER`]).
    pub writer: String,
    /// Ed25519, hex.
    pub public_key: String,
    /// The newest signed head the coordinator holds, if any.
    pub head: Option<RegistryHead>,
}

/// A signed head as saved in a registry.
#[derive(Debug, Serialize, Deserialize)]
pub struct RegistryHead {
    /// The checkpoint's sequence number.
    pub seq: u64,
    /// The head hash.
    pub head: Digest32,
    /// Ed25519, hex.
    pub signature: String,
}

impl Registry {
    /// The registry as the coordinator's `GetAuditRegistry` returns it.
    ///
    /// # Errors
    /// [`AuditError::Registry`] if a head is malformed.
    pub fn from_proto(p: &pb::AuditRegistry) -> Result<Self, AuditError> {
        let writers = p
            .writers
            .iter()
            .map(|w| {
                let head = w
                    .head
                    .as_ref()
                    .map(|h| {
                        SignedHead::from_proto(h).map_err(|e| {
                            AuditError::Registry(format!(
                                "the coordinator's head for {}: {e}",
                                w.writer
                            ))
                        })
                    })
                    .transpose()?
                    .map(|h| RegistryHead {
                        seq: h.seq,
                        head: h.head,
                        signature: h.signature,
                    });
                Ok(RegistryWriter {
                    writer: w.writer.clone(),
                    public_key: hex::encode(&w.public_key),
                    head,
                })
            })
            .collect::<Result<_, AuditError>>()?;
        Ok(Self { writers })
    }

    /// Parses a registry saved as JSON.
    ///
    /// # Errors
    /// [`AuditError::Registry`] if `text` is not one.
    pub fn from_json(text: &str) -> Result<Self, AuditError> {
        serde_json::from_str(text).map_err(|e| {
            AuditError::Registry(format!(
                "not a registry saved from `treaty audit registry`: {e}"
            ))
        })
    }

    /// The entry of `writer`.
    #[must_use]
    pub fn get(&self, writer: &str) -> Option<&RegistryWriter> {
        self.writers.iter().find(|w| w.writer == writer)
    }

    /// Party id → identity key of every party listed (the coordinator's own entry is not a
    /// party's).
    ///
    /// # Errors
    /// [`AuditError::Registry`] if a key is not an Ed25519 public key in hex.
    pub fn party_keys(&self) -> Result<BTreeMap<String, VerifyingKey>, AuditError> {
        self.writers
            .iter()
            .filter(|w| w.writer != COORDINATOR_WRITER)
            .map(|w| Ok((w.writer.clone(), parse_key(&w.writer, &w.public_key)?)))
            .collect()
    }
}

/// `writer`'s Ed25519 public key from hex.
///
/// # Errors
/// [`AuditError::Registry`] naming the writer.
pub fn parse_key(writer: &str, hex_key: &str) -> Result<VerifyingKey, AuditError> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut bytes)
        .map_err(|_| AuditError::Registry(format!("{writer}'s key is not 32 bytes of hex")))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| AuditError::Registry(format!("{writer}'s key is not an Ed25519 public key")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn registry() -> Registry {
        let key = |s: u8| hex::encode(SigningKey::from_bytes(&[s; 32]).verifying_key().to_bytes());
        Registry {
            writers: vec![
                RegistryWriter {
                    writer: "hospital".into(),
                    public_key: key(1),
                    head: None,
                },
                RegistryWriter {
                    writer: COORDINATOR_WRITER.into(),
                    public_key: key(2),
                    head: None,
                },
            ],
        }
    }

    #[test]
    fn party_keys_leave_out_the_coordinator() {
        let keys = registry().party_keys().unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["hospital"]);
    }

    #[test]
    fn a_saved_registry_reads_back() {
        let text = serde_json::to_string(&registry()).unwrap();
        let back = Registry::from_json(&text).unwrap();
        assert_eq!(back.writers.len(), 2);
        assert!(back.get("hospital").is_some());
        assert!(matches!(
            Registry::from_json("{}"),
            Err(AuditError::Registry(_))
        ));
    }

    #[test]
    fn a_bad_key_names_its_writer() {
        let mut r = registry();
        r.writers[0].public_key = "00".into();
        assert!(matches!(r.party_keys(), Err(AuditError::Registry(m)) if m.contains("hospital")));
    }
}
