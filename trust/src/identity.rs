//! Analyst identities and signed job submissions.
//!
//! Every job starts as a [`pb::Submission`] (the spec, the analyst's name, a random nonce, the
//! time) signed by the analyst's Ed25519 key: `Ed25519(SUBMISSION_DOMAIN ‖ encoded submission)`.
//! The coordinator and every party verify the signature and look the key up in their own
//! [`AnalystList`]: an unknown key, a key under another name, or a revoked analyst is refused.
//! The job id is derived from the SHA-256 of the signed bytes ([`job_id_for`]), so a party can
//! check that the job it is asked to run is the one the analyst signed, and a replayed submission
//! is the same job, not a new one.
//!
//! ```toml
//! # analysts.toml (written by `treaty init`; a party policy may list analysts the same way)
//! [[analysts]]
//! name = "analyst"
//! key = "<64 hex: Ed25519 public key, NAME.sign.pub>"
//! result_key = "<64 hex: X25519 HPKE public key, NAME.hpke.pub>"   # optional
//! groups = ["research"]                                              # optional
//! revoked = false                                                    # optional
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use prost::Message;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use treaty_proto::v1 as pb;

use crate::TrustError;
use crate::pki::{FileKind, PkiError, write_new_file};

/// Domain separation of submission signatures.
pub const SUBMISSION_DOMAIN: &[u8] = b"treaty-submission-v1";

/// Largest signed submission accepted (a spec is small; this bounds decoding work).
pub const MAX_SUBMISSION_BYTES: usize = 1 << 20;

/// One analyst as a coordinator or a party knows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Analyst {
    /// The analyst's name (what they sign as).
    pub name: String,
    /// Ed25519 public key, 64 hex digits.
    pub key: String,
    /// X25519 HPKE public key results may be sealed to, 64 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_key: Option<String>,
    /// Groups policies may name instead of the analyst.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// A revoked analyst is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
}

/// A list of analysts (`[[analysts]]` tables).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalystList {
    /// The analysts.
    #[serde(default)]
    pub analysts: Vec<Analyst>,
}

fn hex32(what: &str, name: &str, text: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|_| format!("analyst {name:?}: {what} is not 64 hex digits"))?;
    Ok(out)
}

impl Analyst {
    /// The Ed25519 public key.
    ///
    /// # Errors
    /// Malformed hex or not a curve point.
    pub fn verifying_key(&self) -> Result<VerifyingKey, String> {
        let bytes = hex32("key", &self.name, &self.key)?;
        VerifyingKey::from_bytes(&bytes)
            .map_err(|_| format!("analyst {:?}: key is not an Ed25519 public key", self.name))
    }

    /// The HPKE result key, if listed.
    ///
    /// # Errors
    /// Malformed hex.
    pub fn result_key_bytes(&self) -> Result<Option<[u8; 32]>, String> {
        self.result_key
            .as_deref()
            .map(|k| hex32("result_key", &self.name, k))
            .transpose()
    }
}

impl AnalystList {
    /// Parses a TOML document holding `[[analysts]]` and validates it.
    ///
    /// # Errors
    /// Syntax errors, malformed keys, duplicate names or keys.
    pub fn parse(text: &str) -> Result<Self, String> {
        let list: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        list.validate()?;
        Ok(list)
    }

    /// Reads and validates an analysts file.
    ///
    /// # Errors
    /// I/O failures and everything [`Self::parse`] refuses, naming the file.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrustError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::parse(&text).map_err(|e| TrustError::Invalid(format!("{}: {e}", path.display())))
    }

    /// Checks names, keys and uniqueness.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), String> {
        let (mut names, mut keys) = (HashSet::new(), HashSet::new());
        for a in &self.analysts {
            if a.name.is_empty() || a.name.len() > 64 || a.name.chars().any(char::is_control) {
                return Err(format!(
                    "analyst name {:?} must be 1 to 64 printable characters",
                    a.name
                ));
            }
            let key = a.verifying_key()?;
            a.result_key_bytes()?;
            if !names.insert(a.name.as_str()) {
                return Err(format!("analyst {:?} is listed twice", a.name));
            }
            if !keys.insert(key.to_bytes()) {
                return Err(format!(
                    "analyst {:?} has the key of an analyst listed before",
                    a.name
                ));
            }
        }
        Ok(())
    }

    /// Adds the analysts of `other` (names and keys must stay unique).
    ///
    /// # Errors
    /// A duplicate name or key.
    pub fn extend(&mut self, other: AnalystList) -> Result<(), String> {
        self.analysts.extend(other.analysts);
        self.validate()
    }

    /// The analyst a verified submission comes from: its key must be listed, under the name it
    /// signed as, and not revoked. The error is the reason shown to the analyst.
    ///
    /// # Errors
    /// Unknown key, name mismatch, revoked.
    pub fn admit(&self, submission: &VerifiedSubmission) -> Result<&Analyst, String> {
        let key = hex::encode(submission.public_key);
        let found = self
            .analysts
            .iter()
            .find(|a| a.key.trim().eq_ignore_ascii_case(&key))
            .ok_or_else(|| {
                format!(
                    "unknown analyst {:?}: the signing key {}… is not on the list of analysts",
                    submission.analyst,
                    &key[..16]
                )
            })?;
        if found.name != submission.analyst {
            return Err(format!(
                "the submission is signed as {:?} with the key of analyst {:?}",
                submission.analyst, found.name
            ));
        }
        if found.revoked {
            return Err(format!("analyst {:?} is revoked", found.name));
        }
        Ok(found)
    }
}

/// How old a signed submission may be when it reaches the coordinator or a party.
pub const MAX_SUBMISSION_AGE: Duration = Duration::from_secs(24 * 3600);

/// How far in the future a submission's time may lie (clock skew).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Refuses a submission signed more than [`MAX_SUBMISSION_AGE`] before `now_ms`, or more than
/// [`MAX_CLOCK_SKEW`] after it.
///
/// # Errors
/// The reason, for the analyst.
pub fn check_fresh(submission: &VerifiedSubmission, now_ms: i64) -> Result<(), String> {
    let age = now_ms.saturating_sub(submission.signed_at_ms);
    if age > MAX_SUBMISSION_AGE.as_millis() as i64 {
        return Err(format!(
            "the submission was signed {} s ago; at most {} s are accepted (sign it again)",
            age / 1000,
            MAX_SUBMISSION_AGE.as_secs()
        ));
    }
    // `age` may be i64::MIN (saturated): compared, never negated.
    if age < -(MAX_CLOCK_SKEW.as_millis() as i64) {
        return Err(format!(
            "the submission is signed {} s in the future (check the analyst's clock)",
            age.unsigned_abs() / 1000
        ));
    }
    Ok(())
}

/// A submission whose signature verified.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedSubmission {
    /// The signed job spec, as the analyst wrote it.
    pub spec: pb::JobSpec,
    /// The name the analyst signed as.
    pub analyst: String,
    /// The signing key.
    pub public_key: [u8; 32],
    /// The nonce.
    pub nonce: Vec<u8>,
    /// When the analyst signed it (their clock).
    pub signed_at_ms: i64,
    /// SHA-256 of the signed bytes.
    pub sha256: [u8; 32],
}

impl VerifiedSubmission {
    /// The job id this submission runs as.
    #[must_use]
    pub fn job_id(&self) -> String {
        job_id_for(&self.sha256)
    }
}

/// The job id of a submission: `job-` and the first 16 hex digits of its SHA-256.
#[must_use]
pub fn job_id_for(sha256: &[u8; 32]) -> String {
    format!("job-{}", &hex::encode(sha256)[..16])
}

/// Signs `spec` as `analyst` with `key`.
#[must_use]
pub fn sign_submission(
    spec: pb::JobSpec,
    analyst: &str,
    key: &SigningKey,
    nonce: [u8; 16],
    signed_at_ms: i64,
) -> pb::SignedSubmission {
    let submission = pb::Submission {
        spec: Some(spec),
        analyst: analyst.to_string(),
        nonce: nonce.to_vec(),
        signed_at_ms,
    }
    .encode_to_vec();
    let signature = key.sign(&signed_message(&submission)).to_bytes().to_vec();
    pb::SignedSubmission {
        submission,
        public_key: key.verifying_key().to_bytes().to_vec(),
        signature,
    }
}

/// Signs `spec` as `analyst` now, with a fresh random nonce (what `treaty submit` sends).
///
/// # Errors
/// No OS randomness.
pub fn sign_now(
    spec: pb::JobSpec,
    analyst: &str,
    key: &SigningKey,
) -> Result<pb::SignedSubmission, TrustError> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha20Rng::try_from_rng(&mut rand::rngs::SysRng)
        .map_err(|_| TrustError::Randomness)?;
    let mut nonce = [0u8; 16];
    rng.fill_bytes(&mut nonce);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Ok(sign_submission(spec, analyst, key, nonce, now))
}

/// Domain separation of cancellation signatures.
pub const CANCEL_DOMAIN: &[u8] = b"treaty-cancel-v1";

fn cancel_message(job_id: &str, reason: &str) -> Vec<u8> {
    let mut m = CANCEL_DOMAIN.to_vec();
    m.extend_from_slice(&(job_id.len() as u64).to_le_bytes());
    m.extend_from_slice(job_id.as_bytes());
    m.extend_from_slice(reason.as_bytes());
    m
}

/// A cancellation of `job_id` signed by the analyst who submitted it.
#[must_use]
pub fn sign_cancel(job_id: &str, reason: &str, key: &SigningKey) -> pb::CancelJobRequest {
    pb::CancelJobRequest {
        job_id: job_id.to_string(),
        reason: reason.to_string(),
        signature: key
            .sign(&cancel_message(job_id, reason))
            .to_bytes()
            .to_vec(),
    }
}

/// Checks that `request` is signed by the key that signed `job`'s submission.
///
/// # Errors
/// The reason, for the caller: no signature, the job has no submission, or another key.
pub fn verify_cancel(job: &pb::Job, request: &pb::CancelJobRequest) -> Result<(), String> {
    let signature: [u8; 64] = request
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| "a cancellation must be signed (64-byte Ed25519 signature)".to_string())?;
    let key = job
        .submission
        .as_ref()
        .and_then(|s| <[u8; 32]>::try_from(s.public_key.as_slice()).ok())
        .and_then(|k| VerifyingKey::from_bytes(&k).ok())
        .ok_or_else(|| format!("job {} has no signed submission", job.id))?;
    key.verify_strict(
        &cancel_message(&request.job_id, &request.reason),
        &Signature::from_bytes(&signature),
    )
    .map_err(|_| {
        format!(
            "only the analyst who submitted job {} ({}) may cancel it",
            job.id, job.analyst
        )
    })
}

fn signed_message(submission: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SUBMISSION_DOMAIN.len() + submission.len());
    m.extend_from_slice(SUBMISSION_DOMAIN);
    m.extend_from_slice(submission);
    m
}

/// Checks the signature and decodes the submission. Says nothing about *who* signed: look the
/// key up with [`AnalystList::admit`].
///
/// # Errors
/// Oversized or malformed fields, a signature that does not verify, an undecodable submission,
/// a submission without a spec or a name.
pub fn verify_submission(signed: &pb::SignedSubmission) -> Result<VerifiedSubmission, TrustError> {
    let bad = |what: &str| TrustError::Submission(what.to_string());
    if signed.submission.len() > MAX_SUBMISSION_BYTES {
        return Err(bad(&format!(
            "{} bytes, at most {MAX_SUBMISSION_BYTES} are accepted",
            signed.submission.len()
        )));
    }
    let public_key: [u8; 32] = signed
        .public_key
        .as_slice()
        .try_into()
        .map_err(|_| bad("the public key must be 32 bytes (Ed25519)"))?;
    let signature: [u8; 64] = signed
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| bad("the signature must be 64 bytes (Ed25519)"))?;
    let key =
        VerifyingKey::from_bytes(&public_key).map_err(|_| bad("the public key is not valid"))?;
    // Strict: no weak keys, no malleable signatures.
    key.verify_strict(
        &signed_message(&signed.submission),
        &Signature::from_bytes(&signature),
    )
    .map_err(|_| bad("the signature does not verify"))?;
    let sub = pb::Submission::decode(signed.submission.as_slice())
        .map_err(|e| bad(&format!("does not decode: {e}")))?;
    let spec = sub.spec.ok_or_else(|| bad("it holds no job spec"))?;
    if sub.analyst.is_empty() {
        return Err(bad("it names no analyst"));
    }
    Ok(VerifiedSubmission {
        spec,
        analyst: sub.analyst,
        public_key,
        nonce: sub.nonce,
        signed_at_ms: sub.signed_at_ms,
        sha256: Sha256::digest(&signed.submission).into(),
    })
}

/// Generates a signing key per analyst and writes `NAME.sign.key` (hex seed, 0600),
/// `NAME.sign.pub` (hex public key) and `analysts.toml` listing them (with their HPKE result
/// keys where given) into `dir`. Refuses to overwrite any of them.
///
/// # Errors
/// Existing files, I/O failures, no OS randomness.
pub fn write_analyst_keys(
    dir: &Path,
    analysts: &[(String, Option<[u8; 32]>)],
) -> Result<Vec<PathBuf>, TrustError> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha20Rng::try_from_rng(&mut rand::rngs::SysRng)
        .map_err(|_| TrustError::Randomness)?;
    let mut list = AnalystList::default();
    let mut written = Vec::new();
    let list_path = dir.join("analysts.toml");
    if list_path.exists() {
        return Err(PkiError::FileExists { path: list_path }.into());
    }
    std::fs::create_dir_all(dir).map_err(|e| TrustError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    for (name, result_key) in analysts {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut_slice());
        let key = SigningKey::from_bytes(&seed);
        let public = hex::encode(key.verifying_key().to_bytes());
        let secret_path = dir.join(format!("{name}.sign.key"));
        let public_path = dir.join(format!("{name}.sign.pub"));
        let secret = zeroize::Zeroizing::new(hex::encode(seed.as_slice()));
        write_new_file(&secret_path, secret.as_bytes(), FileKind::Secret)?;
        write_new_file(&public_path, public.as_bytes(), FileKind::Public)?;
        written.extend([secret_path, public_path]);
        list.analysts.push(Analyst {
            name: name.clone(),
            key: public,
            result_key: result_key.map(hex::encode),
            groups: Vec::new(),
            revoked: false,
        });
    }
    list.validate().map_err(TrustError::Invalid)?;
    let text =
        toml::to_string(&list).map_err(|e| TrustError::Invalid(format!("analysts file: {e}")))?;
    let text = format!(
        "# The analysts of this deployment: the coordinator (treaty coordinator --analysts) and\n\
         # each party's policy (analysts_file) admit jobs signed by these keys only. Set\n\
         # `revoked = true` to refuse an analyst; add `groups = [...]` for policies.\n{text}"
    );
    write_new_file(&list_path, text.as_bytes(), FileKind::Public)?;
    written.push(list_path);
    Ok(written)
}

/// Reads an Ed25519 signing key file (64 hex digits, as `treaty init` writes `NAME.sign.key`).
///
/// # Errors
/// I/O failures or a malformed file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, TrustError> {
    let text =
        zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| TrustError::Io {
            path: path.to_path_buf(),
            source: e,
        })?);
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), seed.as_mut_slice()).map_err(|_| {
        TrustError::Invalid(format!(
            "{} is not an Ed25519 signing key (64 hex digits)",
            path.display()
        ))
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn list(entries: &[(&str, &SigningKey, bool)]) -> AnalystList {
        AnalystList {
            analysts: entries
                .iter()
                .map(|(n, k, revoked)| Analyst {
                    name: (*n).into(),
                    key: hex::encode(k.verifying_key().to_bytes()),
                    result_key: None,
                    groups: vec![],
                    revoked: *revoked,
                })
                .collect(),
        }
    }

    fn spec() -> pb::JobSpec {
        pb::JobSpec {
            name: "n".into(),
            ..Default::default()
        }
    }

    /// Any signing time against any clock: an answer, never an overflow (the fuzzer's
    /// `trust_inputs` found `-age` overflowing for a clock at `i64::MIN`).
    #[test]
    fn freshness_is_decided_for_every_time_without_overflow() {
        let at = |signed_at_ms| {
            verify_submission(&sign_submission(
                spec(),
                "ana",
                &key(1),
                [7; 16],
                signed_at_ms,
            ))
            .unwrap()
        };
        let now = 1_800_000_000_000;
        assert!(check_fresh(&at(now - 1000), now).is_ok());
        assert!(check_fresh(&at(now + 1000), now).is_ok());
        for (signed, clock) in [
            (i64::MAX, now),
            (i64::MIN, now),
            (i64::MAX, i64::MIN),
            (i64::MIN, i64::MAX),
            (0, i64::MIN),
        ] {
            assert!(
                check_fresh(&at(signed), clock).is_err(),
                "{signed} at {clock}"
            );
        }
    }

    #[test]
    fn sign_verify_admit() {
        let k = key(1);
        let signed = sign_submission(spec(), "ana", &k, [7; 16], 5);
        let v = verify_submission(&signed).unwrap();
        assert_eq!(v.spec, spec());
        assert_eq!(v.analyst, "ana");
        assert_eq!(v.signed_at_ms, 5);
        assert!(v.job_id().starts_with("job-") && v.job_id().len() == 20);
        let l = list(&[("ana", &k, false)]);
        assert_eq!(l.admit(&v).unwrap().name, "ana");
        // Another nonce, another job.
        let other = verify_submission(&sign_submission(spec(), "ana", &k, [8; 16], 5)).unwrap();
        assert_ne!(other.job_id(), v.job_id());
    }

    #[test]
    fn refusals_name_the_reason() {
        let (k, k2) = (key(1), key(2));
        let signed = sign_submission(spec(), "ana", &k, [7; 16], 5);
        let v = verify_submission(&signed).unwrap();
        let unknown = list(&[("bob", &k2, false)]).admit(&v).unwrap_err();
        assert!(unknown.contains("unknown analyst"), "{unknown}");
        let renamed = list(&[("bob", &k, false)]).admit(&v).unwrap_err();
        assert!(renamed.contains("signed as \"ana\""), "{renamed}");
        let revoked = list(&[("ana", &k, true)]).admit(&v).unwrap_err();
        assert!(revoked.contains("revoked"), "{revoked}");

        let mut tampered = signed.clone();
        let last = tampered.submission.len() - 1;
        tampered.submission[last] ^= 1;
        let e = verify_submission(&tampered).unwrap_err().to_string();
        assert!(e.contains("does not verify"), "{e}");
        let mut swapped = signed.clone();
        swapped.public_key = k2.verifying_key().to_bytes().to_vec();
        assert!(verify_submission(&swapped).is_err());
        let mut short = signed;
        short.signature.pop();
        assert!(
            verify_submission(&short)
                .unwrap_err()
                .to_string()
                .contains("64 bytes")
        );
    }

    #[test]
    fn only_the_submitting_analyst_may_cancel() {
        let (k, other) = (key(1), key(2));
        let job = pb::Job {
            id: "job-1".into(),
            analyst: "ana".into(),
            submission: Some(sign_submission(spec(), "ana", &k, [7; 16], 5)),
            ..Default::default()
        };
        assert!(verify_cancel(&job, &sign_cancel("job-1", "typo", &k)).is_ok());
        let e = verify_cancel(&job, &sign_cancel("job-1", "typo", &other)).unwrap_err();
        assert!(
            e.contains("only the analyst who submitted job job-1 (ana)"),
            "{e}"
        );
        // The reason is signed too.
        let mut changed = sign_cancel("job-1", "typo", &k);
        changed.reason = "other".into();
        assert!(verify_cancel(&job, &changed).is_err());
        let unsigned = pb::CancelJobRequest {
            job_id: "job-1".into(),
            ..Default::default()
        };
        assert!(
            verify_cancel(&job, &unsigned)
                .unwrap_err()
                .contains("must be signed")
        );
    }

    #[test]
    fn analyst_files_validate() {
        let k = hex::encode(key(1).verifying_key().to_bytes());
        let ok = format!("[[analysts]]\nname = \"a\"\nkey = \"{k}\"\ngroups = [\"g\"]\n");
        assert_eq!(AnalystList::parse(&ok).unwrap().analysts[0].groups, ["g"]);
        let twice = format!("{ok}{ok}");
        assert!(AnalystList::parse(&twice).unwrap_err().contains("twice"));
        let same_key = format!("{ok}[[analysts]]\nname = \"b\"\nkey = \"{k}\"\n");
        assert!(
            AnalystList::parse(&same_key)
                .unwrap_err()
                .contains("key of an analyst")
        );
        let bad = "[[analysts]]\nname = \"a\"\nkey = \"zz\"\n";
        assert!(AnalystList::parse(bad).unwrap_err().contains("64 hex"));
        let unknown = format!("{ok}colour = 1\n");
        assert!(AnalystList::parse(&unknown).is_err());
    }
}
