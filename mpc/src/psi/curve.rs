//! The group work of ECDH-PSI, batched and parallel: hashing ids to Ristretto255, blinding with a
//! secret scalar, re-blinding a peer's points, and compressing.
//!
//! Compression is the costly part of a point's encoding (an inverse square root each), so every
//! output goes through [`RistrettoPoint::double_and_compress_batch`], which shares one inversion
//! across a batch and returns `compress(2·P)`. The key therefore stores `k/2 mod ℓ`: blinding
//! computes `(k/2)·P` and the batch compression doubles it back to `k·P` for free.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand_core::CryptoRng;
use rayon::prelude::*;
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Bytes of a compressed Ristretto255 point.
pub const POINT_LEN: usize = 32;
/// Points per rayon task (and per batch compression): large enough that task and inversion
/// overheads vanish, small enough to spread over every core.
const CHUNK: usize = 512;
/// Domain of the hash to the group; the job id follows, length-prefixed, then the id itself.
const HASH_DOMAIN: &[u8] = b"treaty/v1/psi-ecdh/hash-to-ristretto255";

/// A party's secret PSI exponent `k` (fresh per job), kept as `k/2 mod ℓ`; zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct PsiKey {
    half: Scalar,
}

impl std::fmt::Debug for PsiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PsiKey").finish_non_exhaustive()
    }
}

impl PsiKey {
    /// Draws a fresh non-zero exponent.
    pub(crate) fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        loop {
            let mut k = Scalar::random(rng);
            if k != Scalar::ZERO {
                let half = k * Scalar::from(2u8).invert();
                k.zeroize();
                return Self { half };
            }
        }
    }
}

/// The hash of ids to the group for one job: `H(id) = hash_from_bytes::<Sha512>(domain ‖ job ‖ id)`.
#[derive(Clone)]
pub(crate) struct IdHasher {
    prefix: Sha512,
}

impl std::fmt::Debug for IdHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdHasher").finish_non_exhaustive()
    }
}

impl IdHasher {
    /// The hash for `job_id` (different jobs map the same id to unrelated points).
    pub(crate) fn new(job_id: &str) -> Self {
        let mut prefix = Sha512::new();
        prefix.update(HASH_DOMAIN);
        prefix.update((job_id.len() as u64).to_le_bytes());
        prefix.update(job_id.as_bytes());
        Self { prefix }
    }

    fn point(&self, id: &[u8]) -> RistrettoPoint {
        let mut h = self.prefix.clone();
        h.update(id);
        RistrettoPoint::from_hash(h)
    }
}

/// `k·H(id)` for each id, compressed, in input order.
pub(crate) fn blind<I: AsRef<[u8]> + Sync>(
    key: &PsiKey,
    hasher: &IdHasher,
    ids: &[&I],
) -> Vec<[u8; POINT_LEN]> {
    ids.par_chunks(CHUNK)
        .map(|chunk| {
            let points: Vec<RistrettoPoint> = chunk
                .iter()
                .map(|id| key.half * hasher.point(id.as_ref()))
                .collect();
            compress_doubled(&points)
        })
        .collect::<Vec<_>>()
        .concat()
}

/// `k·P` for each compressed point `P` in `points` (a multiple of [`POINT_LEN`] bytes), compressed,
/// in input order. `Err(i)` names the first point (by position) that is not a canonical encoding of
/// a Ristretto255 point or is the identity.
pub(crate) fn reblind(key: &PsiKey, points: &[u8]) -> Result<Vec<[u8; POINT_LEN]>, usize> {
    points
        .par_chunks(CHUNK * POINT_LEN)
        .enumerate()
        .map(|(c, chunk)| {
            let decoded = chunk
                .chunks_exact(POINT_LEN)
                .enumerate()
                .map(|(j, bytes)| {
                    CompressedRistretto::from_slice(bytes)
                        .ok()
                        .and_then(|p| p.decompress())
                        .filter(|p| !p.is_identity())
                        .map(|p| key.half * p)
                        .ok_or(c * CHUNK + j)
                })
                .collect::<Result<Vec<_>, usize>>()?;
            Ok(compress_doubled(&decoded))
        })
        .collect::<Result<Vec<_>, usize>>()
        .map(|v| v.concat())
}

fn compress_doubled(points: &[RistrettoPoint]) -> Vec<[u8; POINT_LEN]> {
    RistrettoPoint::double_and_compress_batch(points)
        .into_iter()
        .map(|c| c.to_bytes())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::os_rng;

    fn key_times(key: &PsiKey, p: RistrettoPoint) -> [u8; 32] {
        (key.half * Scalar::from(2u8) * p).compress().to_bytes()
    }

    #[test]
    fn blinding_commutes_and_matches_plain_scalar_multiplication() {
        let mut rng = os_rng().unwrap();
        let (a, b) = (PsiKey::random(&mut rng), PsiKey::random(&mut rng));
        let h = IdHasher::new("job-1");
        let ids: Vec<String> = (0..1500).map(|i| format!("patient-{i}")).collect();
        let refs: Vec<&String> = ids.iter().collect();
        let ab = blind(&a, &h, &refs);
        for (i, id) in ids.iter().enumerate().step_by(97) {
            assert_eq!(ab[i], key_times(&a, h.point(id.as_bytes())));
        }
        let abb = reblind(&b, &ab.concat()).unwrap();
        let bb = blind(&b, &h, &refs);
        let baa = reblind(&a, &bb.concat()).unwrap();
        assert_eq!(abb, baa, "k_b·(k_a·H) = k_a·(k_b·H)");
        assert_ne!(ab, bb);
    }

    #[test]
    fn jobs_are_domain_separated() {
        let (h1, h2) = (IdHasher::new("job-1"), IdHasher::new("job-2"));
        assert_ne!(
            h1.point(b"same-id").compress(),
            h2.point(b"same-id").compress()
        );
        // The job id is length-prefixed: ("ab", "c") and ("a", "bc") differ.
        assert_ne!(
            IdHasher::new("ab").point(b"c").compress(),
            IdHasher::new("a").point(b"bc").compress()
        );
    }

    #[test]
    fn invalid_and_identity_points_are_named_by_position() {
        let mut rng = os_rng().unwrap();
        let key = PsiKey::random(&mut rng);
        let h = IdHasher::new("j");
        let ids: Vec<String> = (0..700).map(|i| i.to_string()).collect();
        let refs: Vec<&String> = ids.iter().collect();
        let mut bytes = blind(&key, &h, &refs).concat();
        let mut bad = bytes.clone();
        bad[600 * 32..601 * 32].fill(0xff); // not a field element
        assert_eq!(reblind(&key, &bad), Err(600));
        bytes[5 * 32..6 * 32].fill(0); // the identity's encoding
        assert_eq!(reblind(&key, &bytes), Err(5));
    }

    #[test]
    fn debug_hides_the_key() {
        let key = PsiKey::random(&mut os_rng().unwrap());
        assert_eq!(format!("{key:?}"), "PsiKey { .. }");
    }
}
