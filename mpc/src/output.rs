//! Sealing output shares to the recipient with HPKE (RFC 9180), and opening them.
//!
//! Suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, base mode. The associated
//! data binds a sealed share to its job and to the party that produced it, so a share cannot be
//! replayed into another job or passed off as another party's.
//!
//! Wire format: `b"TRS1" ‖ encapsulated key (32 bytes) ‖ ciphertext`.
//!
//! # What is authenticated, and by whom
//!
//! HPKE base mode gives confidentiality to the recipient, not authenticity of the sender: anyone
//! holding the recipient's *public* key (the coordinator, which stores and serves the shares)
//! can seal any numbers with any job and party in the associated data. The seal alone therefore
//! proves nothing about who produced a share. Authenticity comes from a second layer: each
//! party signs its sealed share with its Ed25519 identity key (the node's audit identity key,
//! `identity.key`, registered with the coordinator and listed by `treaty audit registry`) over
//! `"treaty-result-v1" ‖ u64-LE len ‖ job id ‖ u64-LE len ‖ party id ‖ recipient public key (32)
//! ‖ SHA-256(sealed)` and uploads a `SignedResult { sealed, signature }` (see
//! `treaty_trust::result`). The analyst verifies every party's signature against party keys it
//! trusts before opening any share, so a forged, altered or swapped share is refused naming the
//! party. The signature is only as good as the source of those keys: keys obtained out of band
//! (`treaty result --party-keys`) do not depend on the coordinator; keys fetched from the
//! coordinator do.

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::MpcError;

type Kem = X25519HkdfSha256;

const MAGIC: &[u8; 4] = b"TRS1";
const INFO: &[u8] = b"treaty/v1/sealed-result";
const ENC_LEN: usize = 32;

/// Length of a recipient public key.
pub const PUBLIC_KEY_LEN: usize = 32;

/// A recipient's X25519 private key. Zeroized on drop; `Debug` prints nothing of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RecipientSecretKey([u8; 32]);

impl std::fmt::Debug for RecipientSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecipientSecretKey").finish_non_exhaustive()
    }
}

impl RecipientSecretKey {
    /// Generates a key from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut ikm = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut ikm[..]);
        let (sk, _) = Kem::derive_keypair(&ikm[..]);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&sk.to_bytes());
        Self(bytes)
    }

    /// Parses the 32 raw bytes of a key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MpcError> {
        <Kem as hpke::Kem>::PrivateKey::from_bytes(bytes)
            .map_err(|_| MpcError::Seal("parsed: not an X25519 private key"))?;
        let mut out = [0u8; 32];
        out.copy_from_slice(bytes);
        Ok(Self(out))
    }

    /// The raw bytes, for writing to a key file with restrictive permissions.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0)
    }

    /// The matching public key.
    pub fn public_key(&self) -> Result<[u8; PUBLIC_KEY_LEN], MpcError> {
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&self.0)
            .map_err(|_| MpcError::Seal("used: corrupt private key"))?;
        let mut out = [0u8; 32];
        out.copy_from_slice(&Kem::sk_to_pk(&sk).to_bytes());
        Ok(out)
    }
}

fn aad(job_id: &str, party_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + job_id.len() + party_id.len());
    for part in [job_id.as_bytes(), party_id.as_bytes()] {
        aad.extend_from_slice(&(part.len() as u64).to_le_bytes());
        aad.extend_from_slice(part);
    }
    aad
}

/// Seals `plaintext` (an output share) from `party_id` in `job_id` to `recipient_public`.
pub fn seal<R: CryptoRng>(
    recipient_public: &[u8],
    job_id: &str,
    party_id: &str,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, MpcError> {
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient_public)
        .map_err(|_| MpcError::Seal("sealed: the recipient public key is not X25519"))?;
    let (enc, ct) = hpke::single_shot_seal_with_rng::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeS::Base,
        &pk,
        INFO,
        plaintext,
        &aad(job_id, party_id),
        rng,
    )
    .map_err(|_| MpcError::Seal("sealed"))?;
    let mut out = Vec::with_capacity(MAGIC.len() + ENC_LEN + ct.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&enc.to_bytes());
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens a sealed share; fails (opaquely) on a wrong key, job, party or any tampering.
pub fn open(
    secret: &RecipientSecretKey,
    job_id: &str,
    party_id: &str,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, MpcError> {
    let rest = sealed
        .strip_prefix(MAGIC)
        .ok_or(MpcError::Seal("opened: not a Treaty sealed result"))?;
    if rest.len() < ENC_LEN {
        return Err(MpcError::Seal("opened: truncated"));
    }
    let (enc, ct) = rest.split_at(ENC_LEN);
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc)
        .map_err(|_| MpcError::Seal("opened: bad encapsulated key"))?;
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&secret.0)
        .map_err(|_| MpcError::Seal("opened: corrupt private key"))?;
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeR::Base,
        &sk,
        &enc,
        INFO,
        ct,
        &aad(job_id, party_id),
    )
    .map(Zeroizing::new)
    .map_err(|_| MpcError::Seal("opened (wrong key, job or party, or tampered)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let sk = RecipientSecretKey::generate(&mut rng);
        let pk = sk.public_key().unwrap();
        let sealed = seal(&pk, "job-1", "bank", b"share bytes", &mut rng).unwrap();
        assert_eq!(
            &open(&sk, "job-1", "bank", &sealed).unwrap()[..],
            b"share bytes"
        );
        // Bound to job and party.
        assert!(open(&sk, "job-2", "bank", &sealed).is_err());
        assert!(open(&sk, "job-1", "insurer", &sealed).is_err());
        // Wrong key.
        let other = RecipientSecretKey::generate(&mut rng);
        assert!(open(&other, "job-1", "bank", &sealed).is_err());
        // Tampering anywhere.
        for i in [0, 5, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(open(&sk, "job-1", "bank", &bad).is_err(), "byte {i}");
        }
        assert!(open(&sk, "job-1", "bank", &sealed[..10]).is_err());
        // Key bytes round trip.
        let again = RecipientSecretKey::from_bytes(&sk.to_bytes()[..]).unwrap();
        assert_eq!(again.public_key().unwrap(), pk);
        assert!(seal(&[1, 2, 3], "j", "p", b"x", &mut rng).is_err());
    }
}
