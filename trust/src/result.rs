//! Signed results: every party signs the output share it sealed to the recipient, so the
//! analyst can tell a share the party produced from one the coordinator made up or moved.
//!
//! A party seals its share with HPKE (`treaty_mpc::output`) and signs it with its Ed25519
//! identity key (the node's audit identity key, registered with the coordinator and listed by
//! `treaty audit registry`):
//!
//! ```text
//! Ed25519( "treaty-result-v1"
//!        ‖ u64-LE len(job_id) ‖ job_id
//!        ‖ u64-LE len(party)  ‖ party
//!        ‖ recipient public key (32 bytes, X25519)
//!        ‖ SHA-256(sealed) )
//! ```
//!
//! The upload is the encoding of [`pb::SignedResult`] `{ sealed, signature }`; the coordinator
//! stores and serves it as opaque bytes. Before opening anything the analyst checks every
//! party's upload with [`verify_all`] against party keys it trusts (`party id → key`): an upload
//! that does not decode, a signature that does not verify (a forged or altered share, or another
//! party's share under this party's name) or a party without a trusted key is refused with
//! [`TrustError::ResultSignature`] naming the party.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use prost::Message;
use sha2::{Digest, Sha256};
use treaty_proto::v1 as pb;

use crate::TrustError;

/// Domain separation of result signatures.
pub const RESULT_DOMAIN: &[u8] = b"treaty-result-v1";

/// Length of the recipient's public key in the signed message.
pub const RECIPIENT_KEY_LEN: usize = 32;

/// Largest signed upload the analyst accepts from one party (the coordinator's default limit
/// on an upload).
pub const MAX_SIGNED_RESULT_BYTES: usize = 1 << 30;

/// Why a party's upload was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResultFault {
    /// The upload is missing, does not decode as a signed result, or has no 64-byte signature.
    Malformed,
    /// The analyst holds no trusted key for the party.
    NoKey,
    /// The signature does not verify under the party's key for this job and recipient: a forged
    /// or altered share, or another party's share passed off as this one's.
    BadSignature,
}

impl std::fmt::Display for ResultFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Malformed => "the upload is missing or not a signed result",
            Self::NoKey => "no trusted key for the party",
            Self::BadSignature => {
                "the signature does not verify under the party's key for this job and recipient \
                 (a forged or altered share, or another party's)"
            }
        })
    }
}

/// The bytes a result signature covers (see the module docs).
#[must_use]
pub fn signed_message(
    job_id: &str,
    party: &str,
    recipient: &[u8; RECIPIENT_KEY_LEN],
    sealed: &[u8],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(
        RESULT_DOMAIN.len() + 16 + job_id.len() + party.len() + RECIPIENT_KEY_LEN + 32,
    );
    m.extend_from_slice(RESULT_DOMAIN);
    for part in [job_id.as_bytes(), party.as_bytes()] {
        m.extend_from_slice(&(part.len() as u64).to_le_bytes());
        m.extend_from_slice(part);
    }
    m.extend_from_slice(recipient);
    m.extend_from_slice(&Sha256::digest(sealed));
    m
}

/// Signs `sealed`, `party`'s output share of `job_id` sealed to `recipient`, with `key`.
#[must_use]
pub fn sign(
    key: &SigningKey,
    job_id: &str,
    party: &str,
    recipient: &[u8; RECIPIENT_KEY_LEN],
    sealed: Vec<u8>,
) -> pb::SignedResult {
    let signature = key.sign(&signed_message(job_id, party, recipient, &sealed));
    pb::SignedResult {
        sealed,
        signature: signature.to_bytes().to_vec(),
    }
}

/// Checks `upload` (an encoded [`pb::SignedResult`]) as `party`'s share of `job_id` sealed to
/// `recipient`, signed with `key`; returns the sealed bytes.
///
/// # Errors
/// [`TrustError::ResultSignature`] naming `party`: malformed, or a bad signature.
pub fn verify(
    upload: &[u8],
    job_id: &str,
    party: &str,
    recipient: &[u8; RECIPIENT_KEY_LEN],
    key: &VerifyingKey,
) -> Result<Vec<u8>, TrustError> {
    let fault = |fault| TrustError::ResultSignature {
        party: party.to_string(),
        fault,
    };
    if upload.len() > MAX_SIGNED_RESULT_BYTES {
        return Err(fault(ResultFault::Malformed));
    }
    let signed = pb::SignedResult::decode(upload).map_err(|_| fault(ResultFault::Malformed))?;
    let signature =
        Signature::from_slice(&signed.signature).map_err(|_| fault(ResultFault::Malformed))?;
    key.verify_strict(
        &signed_message(job_id, party, recipient, &signed.sealed),
        &signature,
    )
    .map_err(|_| fault(ResultFault::BadSignature))?;
    Ok(signed.sealed)
}

/// Checks the uploads of every party in `parties` (job order) with its key in `keys`, all
/// before any is opened; returns the sealed bytes in `parties`' order.
///
/// # Errors
/// [`TrustError::ResultSignature`] naming the first party whose upload is missing, malformed,
/// without a trusted key, or not signed by it for this job and recipient.
pub fn verify_all(
    job_id: &str,
    recipient: &[u8; RECIPIENT_KEY_LEN],
    parties: &[String],
    uploads: &BTreeMap<String, Vec<u8>>,
    keys: &BTreeMap<String, VerifyingKey>,
) -> Result<Vec<(String, Vec<u8>)>, TrustError> {
    parties
        .iter()
        .map(|party| {
            let fault = |fault| TrustError::ResultSignature {
                party: party.clone(),
                fault,
            };
            let key = keys.get(party).ok_or_else(|| fault(ResultFault::NoKey))?;
            let upload = uploads
                .get(party)
                .ok_or_else(|| fault(ResultFault::Malformed))?;
            let sealed = verify(upload, job_id, party, recipient, key)?;
            Ok((party.clone(), sealed))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const RECIPIENT: [u8; 32] = [7; 32];

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn upload(key: &SigningKey, job: &str, party: &str, sealed: &[u8]) -> Vec<u8> {
        sign(key, job, party, &RECIPIENT, sealed.to_vec()).encode_to_vec()
    }

    fn fault_of(r: Result<impl std::fmt::Debug, TrustError>) -> (String, ResultFault) {
        match r {
            Err(TrustError::ResultSignature { party, fault }) => (party, fault),
            other => panic!("expected a result signature error, got {other:?}"),
        }
    }

    #[test]
    fn message_encoding_is_exact() {
        let sealed = b"sealed bytes";
        let m = signed_message("job-1", "bank", &RECIPIENT, sealed);
        let mut expected = b"treaty-result-v1".to_vec();
        expected.extend_from_slice(&[5, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(b"job-1");
        expected.extend_from_slice(&[4, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(b"bank");
        expected.extend_from_slice(&[7; 32]);
        expected.extend_from_slice(&Sha256::digest(sealed));
        assert_eq!(m, expected);
        assert_eq!(m.len(), 16 + 8 + 5 + 8 + 4 + 32 + 32);
    }

    #[test]
    fn length_prefixes_keep_job_and_party_apart() {
        // Without prefixes "ab" ‖ "c" and "a" ‖ "bc" would be the same bytes.
        let a = signed_message("ab", "c", &RECIPIENT, b"x");
        let b = signed_message("a", "bc", &RECIPIENT, b"x");
        assert_ne!(a, b);
        assert_eq!(a.len(), b.len());
        assert_eq!(&a[16..27], &[2, 0, 0, 0, 0, 0, 0, 0, b'a', b'b', 1]);
        assert_eq!(&b[16..25], &[1, 0, 0, 0, 0, 0, 0, 0, b'a']);
        // And a signature over one does not verify as the other.
        let k = key(1);
        let up = upload(&k, "ab", "c", b"x");
        assert!(verify(&up, "ab", "c", &RECIPIENT, &k.verifying_key()).is_ok());
        let (party, fault) = fault_of(verify(&up, "a", "bc", &RECIPIENT, &k.verifying_key()));
        assert_eq!((party.as_str(), fault), ("bc", ResultFault::BadSignature));
    }

    #[test]
    fn sign_verify_round_trip_and_binding() {
        let k = key(1);
        let vk = k.verifying_key();
        let up = upload(&k, "job-1", "bank", b"sealed");
        assert_eq!(
            verify(&up, "job-1", "bank", &RECIPIENT, &vk).unwrap(),
            b"sealed"
        );
        let bad = |r| fault_of(r).1;
        // Bound to job, party, recipient and key.
        assert_eq!(
            bad(verify(&up, "job-2", "bank", &RECIPIENT, &vk)),
            ResultFault::BadSignature
        );
        assert_eq!(
            bad(verify(&up, "job-1", "insurer", &RECIPIENT, &vk)),
            ResultFault::BadSignature
        );
        assert_eq!(
            bad(verify(&up, "job-1", "bank", &[8; 32], &vk)),
            ResultFault::BadSignature
        );
        assert_eq!(
            bad(verify(
                &up,
                "job-1",
                "bank",
                &RECIPIENT,
                &key(2).verifying_key()
            )),
            ResultFault::BadSignature
        );
    }

    #[test]
    fn altered_share_or_signature_is_refused() {
        let k = key(1);
        let vk = k.verifying_key();
        let mut signed = sign(&k, "job-1", "bank", &RECIPIENT, b"sealed".to_vec());
        signed.sealed[0] ^= 1;
        let (party, fault) = fault_of(verify(
            &signed.encode_to_vec(),
            "job-1",
            "bank",
            &RECIPIENT,
            &vk,
        ));
        assert_eq!((party.as_str(), fault), ("bank", ResultFault::BadSignature));
        let mut signed = sign(&k, "job-1", "bank", &RECIPIENT, b"sealed".to_vec());
        signed.signature[3] ^= 1;
        assert_eq!(
            fault_of(verify(
                &signed.encode_to_vec(),
                "job-1",
                "bank",
                &RECIPIENT,
                &vk
            ))
            .1,
            ResultFault::BadSignature
        );
    }

    #[test]
    fn unsigned_or_undecodable_upload_is_malformed() {
        let vk = key(1).verifying_key();
        // A bare sealed share (what an unsigned upload used to be) is not a signed result.
        let bare = b"TRS1 and then some ciphertext bytes".to_vec();
        let unsigned = pb::SignedResult {
            sealed: bare.clone(),
            signature: Vec::new(),
        }
        .encode_to_vec();
        for up in [bare, unsigned, vec![0xff; 3], Vec::new()] {
            let (party, fault) = fault_of(verify(&up, "job-1", "bank", &RECIPIENT, &vk));
            assert_eq!((party.as_str(), fault), ("bank", ResultFault::Malformed));
        }
    }

    #[test]
    fn verify_all_names_the_failing_party() {
        let (bank, insurer) = (key(1), key(2));
        let keys = BTreeMap::from([
            ("bank".to_string(), bank.verifying_key()),
            ("insurer".to_string(), insurer.verifying_key()),
        ]);
        let parties = vec!["bank".to_string(), "insurer".to_string()];
        let good = BTreeMap::from([
            ("bank".to_string(), upload(&bank, "j", "bank", b"b")),
            (
                "insurer".to_string(),
                upload(&insurer, "j", "insurer", b"i"),
            ),
        ]);
        let sealed = verify_all("j", &RECIPIENT, &parties, &good, &keys).unwrap();
        assert_eq!(
            sealed,
            vec![
                ("bank".to_string(), b"b".to_vec()),
                ("insurer".to_string(), b"i".to_vec())
            ]
        );

        // Swapped: each party's signed upload under the other's name.
        let swapped = BTreeMap::from([
            ("bank".to_string(), good["insurer"].clone()),
            ("insurer".to_string(), good["bank"].clone()),
        ]);
        let (party, fault) = fault_of(verify_all("j", &RECIPIENT, &parties, &swapped, &keys));
        assert_eq!((party.as_str(), fault), ("bank", ResultFault::BadSignature));

        // Signed by another key under the insurer's name.
        let mut forged = good.clone();
        forged.insert("insurer".into(), upload(&bank, "j", "insurer", b"x"));
        let (party, fault) = fault_of(verify_all("j", &RECIPIENT, &parties, &forged, &keys));
        assert_eq!(
            (party.as_str(), fault),
            ("insurer", ResultFault::BadSignature)
        );

        // No key for the insurer; no upload from the insurer.
        let mut fewer = keys.clone();
        fewer.remove("insurer");
        let (party, fault) = fault_of(verify_all("j", &RECIPIENT, &parties, &good, &fewer));
        assert_eq!((party.as_str(), fault), ("insurer", ResultFault::NoKey));
        let mut missing = good.clone();
        missing.remove("insurer");
        let (party, fault) = fault_of(verify_all("j", &RECIPIENT, &parties, &missing, &keys));
        assert_eq!((party.as_str(), fault), ("insurer", ResultFault::Malformed));
    }
}
