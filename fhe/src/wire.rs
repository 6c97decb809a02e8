//! Ciphertexts on the wire, both ways, with size limits, tfhe's versioned `safe_serialize`
//! format, a parameter-conformance check and a key check.
//!
//! - Owner → evaluator ([`encrypt_rows`], [`EncryptedRows::from_wire`]): every feature bit as a
//!   *seeded* compressed `FheBool` (the random mask of the LWE ciphertext is replaced by a seed:
//!   ≈ 280 bytes instead of 16 KiB; decompressing costs no bootstrap).
//! - Evaluator → owner ([`encode_masked`], [`OwnerResults::decrypt`]): masked bits and 16/32-bit
//!   values as they are (≈ 16.5 KiB per block: 148 KiB per row for a 16-bit score and its
//!   decision), which the owner decrypts at no cost; masked 64-bit shares (`aggregate`, 32 blocks
//!   each) modulus-switched and compressed (tfhe's `compress`: ≈ 12 KiB instead of 528 KiB),
//!   which the owner decompresses with one bootstrap per block before decrypting. Decompressing
//!   the small results would cost the owner about 9 bootstraps per row — 8% of a linear claim —
//!   to save bandwidth that one claim per second does not need.
//!
//! A batch is `u32 count` then per item `u8 kind, u32 length, bytes`, little-endian. Every item
//! is read with `safe_deserialize_conformant` under [`ITEM_SIZE_LIMIT`] and must carry the tag
//! of the expected key ([`FheError::WrongKey`] otherwise): a ciphertext for other parameters,
//! for another key, truncated or oversized is refused with the item's index.
//!
//! The owner decrypts only what its job's release defines ([`OwnerResults`]): the exact count,
//! the kind at every position, and none of its own uploaded ciphertexts — its decryption is not
//! an oracle for whatever an evaluator sends.

use std::collections::HashSet;

use rayon::prelude::*;
use tfhe::conformance::ParameterSetConformant;
use tfhe::prelude::*;
use tfhe::safe_serialization::{safe_deserialize_conformant, safe_serialize};
use tfhe::{
    CompressedFheBool, CompressedFheBoolConformanceParams, CompressedFheUint64,
    CompressedFheUint64ConformanceParams, FheBool, FheBoolConformanceParams, FheUint16,
    FheUint16ConformanceParams, FheUint32, FheUint32ConformanceParams, Tag,
};

use crate::FheError;
use crate::circuit::{EncryptedRows, Evaluator};
use crate::error::untrusted;
use crate::keys::FheClientKey;
use crate::mask::{MaskedCiphertext, Release};
use crate::model::{Feature, check_rows};

/// Largest serialized item (one compressed ciphertext): 1 MiB.
pub const ITEM_SIZE_LIMIT: u64 = 1 << 20;

/// Item kinds: seeded compressed bits (upload); raw masked bits, 16- and 32-bit values and
/// compressed 64-bit shares (return).
const KIND_BOOL: u8 = 1;
const KIND_U64: u8 = 4;
const KIND_RAW_BOOL: u8 = 5;
const KIND_RAW_U16: u8 = 6;
const KIND_RAW_U32: u8 = 7;

/// What an item kind is, for errors.
fn kind_name(kind: u8) -> &'static str {
    match kind {
        KIND_BOOL => "an uploaded (seeded, compressed) bit",
        KIND_RAW_BOOL => "a masked bit",
        KIND_RAW_U16 => "a masked 16-bit value",
        KIND_RAW_U32 => "a masked 32-bit value",
        KIND_U64 => "a masked 64-bit share",
        _ => "of an unknown kind",
    }
}

fn push_item<T: serde::Serialize + tfhe::Versionize + tfhe::named::Named>(
    out: &mut Vec<u8>,
    kind: u8,
    item: &T,
) -> Result<(), FheError> {
    let mut bytes = Vec::new();
    safe_serialize(item, &mut bytes, ITEM_SIZE_LIMIT).map_err(|e| FheError::Wire {
        item: None,
        reason: e.to_string(),
    })?;
    out.push(kind);
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&bytes);
    Ok(())
}

/// Splits a batch into `(kind, bytes)` items, checking the framing.
fn items(bytes: &[u8], expected: usize) -> Result<Vec<(u8, &[u8])>, FheError> {
    let bad = |item: Option<usize>, reason: &str| FheError::Wire {
        item,
        reason: reason.to_string(),
    };
    let (count, mut rest) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| bad(None, "truncated: no item count"))?;
    let count = u32::from_le_bytes(*count) as usize;
    if count != expected {
        return Err(FheError::ItemCount {
            got: count,
            expected,
        });
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let (&kind, r) = rest
            .split_first()
            .ok_or_else(|| bad(Some(i), "truncated"))?;
        let (len, r) = r
            .split_first_chunk::<4>()
            .ok_or_else(|| bad(Some(i), "truncated"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if len as u64 > ITEM_SIZE_LIMIT {
            return Err(bad(Some(i), "larger than the item size limit"));
        }
        if r.len() < len {
            return Err(bad(Some(i), "truncated"));
        }
        let (item, r) = r.split_at(len);
        out.push((kind, item));
        rest = r;
    }
    if !rest.is_empty() {
        return Err(bad(None, "trailing bytes after the last ciphertext"));
    }
    Ok(out)
}

/// Decompresses item `item` received from another organisation ([`untrusted`]).
fn decompress<T>(item: usize, f: impl FnOnce() -> T) -> Result<T, FheError> {
    untrusted(f).map_err(|reason| FheError::Wire {
        item: Some(item),
        reason,
    })
}

fn read<T>(item: usize, bytes: &[u8], params: &T::ParameterSet, tag: &Tag) -> Result<T, FheError>
where
    T: serde::de::DeserializeOwned
        + tfhe::Unversionize
        + tfhe::named::Named
        + ParameterSetConformant
        + Tagged,
{
    let value: T =
        safe_deserialize_conformant(bytes, ITEM_SIZE_LIMIT, params).map_err(|reason| {
            FheError::Wire {
                item: Some(item),
                reason,
            }
        })?;
    if value.tag() != tag {
        return Err(FheError::WrongKey { item });
    }
    Ok(value)
}

/// Owner: checks every value against its feature's width (nothing is encrypted if one fails),
/// then encrypts the rows (seeded, compressed) into one batch, row by row.
///
/// # Errors
/// [`FheError::RowLength`], [`FheError::ValueOutOfRange`] naming column and row, or
/// [`FheError::Wire`] if serialization fails.
pub fn encrypt_rows(
    features: &[Feature],
    rows: &[Vec<u16>],
    key: &FheClientKey,
) -> Result<Vec<u8>, FheError> {
    encrypt_chunk(features, rows, key).map(|(batch, _)| batch)
}

/// The ciphertexts an owner uploaded, by the LWE body of each (the last word of the LWE
/// ciphertext, uniform under the key): what [`OwnerResults::decrypt`] refuses to see again.
/// Eight bytes per uploaded bit.
#[derive(Debug, Default)]
pub struct Uploaded {
    bodies: HashSet<u64>,
}

impl Uploaded {
    /// Adds another chunk's ciphertexts.
    pub fn extend(&mut self, other: Uploaded) {
        self.bodies.extend(other.bodies);
    }

    /// Number of ciphertexts recorded.
    #[must_use]
    pub fn len(&self) -> usize {
        self.bodies.len()
    }

    /// Whether none are recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }
}

/// The LWE body of one block.
fn body(block: &tfhe::shortint::Ciphertext) -> u64 {
    *block.ct.get_body().data
}

/// Owner: as [`encrypt_rows`], and the uploaded ciphertexts' bodies (a seeded ciphertext's
/// body is stored as is; decompressing only expands its mask, no bootstrap).
///
/// # Errors
/// As [`encrypt_rows`].
pub fn encrypt_chunk(
    features: &[Feature],
    rows: &[Vec<u16>],
    key: &FheClientKey,
) -> Result<(Vec<u8>, Uploaded), FheError> {
    check_rows(features, rows.iter().map(Vec::as_slice))?;
    let ck = key.reveal();
    let encrypted: Vec<(Vec<u8>, Vec<u64>)> = rows
        .par_iter()
        .map(|values| {
            let mut out = Vec::new();
            let mut bodies = Vec::new();
            for bit in crate::circuit::row_bits(features, values) {
                let c = CompressedFheBool::encrypt(bit, ck);
                bodies.push(body(&c.decompress().into_raw_parts()));
                push_item(&mut out, KIND_BOOL, &c)?;
            }
            Ok((out, bodies))
        })
        .collect::<Result<_, FheError>>()?;
    let mut uploaded = Uploaded::default();
    for (_, bodies) in &encrypted {
        uploaded.bodies.extend(bodies);
    }
    let width: usize = features.iter().map(|f| f.bits() as usize).sum();
    let count = rows.len() * width;
    let count = u32::try_from(count).map_err(|_| FheError::Wire {
        item: None,
        reason: format!("{count} ciphertexts do not fit one batch"),
    })?;
    let mut out = Vec::with_capacity(4 + encrypted.iter().map(|(r, _)| r.len()).sum::<usize>());
    out.extend_from_slice(&count.to_le_bytes());
    for (row, _) in encrypted {
        out.extend_from_slice(&row);
    }
    Ok((out, uploaded))
}

impl EncryptedRows {
    /// Evaluator: reads `rows` rows of `features` from an owner's batch, checking framing,
    /// limits, parameters and key for every ciphertext.
    ///
    /// # Errors
    /// [`FheError::Wire`] (naming the item) or [`FheError::WrongKey`].
    pub fn from_wire(
        bytes: &[u8],
        features: &[Feature],
        rows: usize,
        evaluator: &Evaluator,
    ) -> Result<Self, FheError> {
        let width: usize = features.iter().map(|f| f.bits() as usize).sum();
        let items = items(bytes, rows * width)?;
        let sk = evaluator.server_key();
        let params = CompressedFheBoolConformanceParams::from(sk);
        let tag = sk.tag();
        let bits: Vec<FheBool> = evaluator.install(|| {
            items
                .par_iter()
                .enumerate()
                .map(|(i, &(kind, b))| {
                    if kind != KIND_BOOL {
                        return Err(FheError::Wire {
                            item: Some(i),
                            reason: format!("kind {kind} where an encrypted bit was expected"),
                        });
                    }
                    let c: CompressedFheBool = read(i, b, &params, tag)?;
                    decompress(i, || c.decompress())
                })
                .collect::<Result<_, FheError>>()
        })?;
        let mut bits = bits.into_iter();
        let rows = (0..rows)
            .map(|_| bits.by_ref().take(width).collect())
            .collect();
        Ok(Self {
            features: features.to_vec(),
            rows,
        })
    }
}

/// Evaluator: compresses the masked ciphertexts (the owner's server key installed) into one
/// batch.
///
/// # Errors
/// [`FheError::Wire`] if serialization fails.
pub fn encode_masked(
    evaluator: &Evaluator,
    masked: &[MaskedCiphertext],
) -> Result<Vec<u8>, FheError> {
    let parts: Vec<Vec<u8>> = evaluator.install(|| {
        masked
            .par_iter()
            .map(|m| {
                let mut out = Vec::new();
                match m {
                    MaskedCiphertext::Bool(b) => push_item(&mut out, KIND_RAW_BOOL, b)?,
                    MaskedCiphertext::U16(v) => push_item(&mut out, KIND_RAW_U16, v)?,
                    MaskedCiphertext::U32(v) => push_item(&mut out, KIND_RAW_U32, v)?,
                    MaskedCiphertext::U64(v) => push_item(&mut out, KIND_U64, &v.compress())?,
                }
                Ok(out)
            })
            .collect::<Result<_, FheError>>()
    })?;
    let mut out = Vec::with_capacity(4 + parts.iter().map(Vec::len).sum::<usize>());
    out.extend_from_slice(&(masked.len() as u32).to_le_bytes());
    for p in parts {
        out.extend_from_slice(&p);
    }
    Ok(out)
}

/// The owner's rule for the evaluator's masked results, for one job: per row exactly what the
/// release defines, in order, and nothing else —
///
/// | release | per row |
/// | --- | --- |
/// | [`Release::Scores`] | a masked 16- or 32-bit value (one width for the whole job: the first batch's), then a masked bit |
/// | [`Release::Decisions`] | a masked bit |
/// | [`Release::Aggregate`] | two masked (compressed) 64-bit shares |
///
/// — checked on the count and every item's kind before any ciphertext is read; then no block of
/// any item may be one of the owner's own uploaded ciphertexts ([`Uploaded`]). Anything else
/// fails the batch, and nothing of it is decrypted.
///
/// ## What the owner can and cannot detect
/// It catches an evaluator sending back the owner's uploaded bits: byte for byte (an upload kind,
/// refused by kind), or decompressed, or re-wrapped as blocks of a wider value (the LWE body is
/// unchanged: refused as [`FheError::EchoedCiphertext`]). It cannot tell a genuine result from
/// any other function of the row the evaluator computes homomorphically (a bootstrap of an
/// uploaded bit is a fresh ciphertext; so is a "model" that packs raw features): the evaluator
/// chooses the model, and the owner never sees it. What bounds the leak is the layout: the owner
/// decrypts, and sends back, only values of the release's kinds in the release's positions, so
/// per row at most the release's output width leaves — 1 bit under `decisions`, the score's 16
/// or 32 bits plus 1 under `scores` (the width follows the evaluator's model, which the owner
/// cannot check, but it cannot change within a job) — and under `aggregate` nothing per row (the
/// owner keeps the values as its shares; only their sums, two 64-bit words per job, reach the
/// recipient).
#[derive(Debug, Clone)]
pub struct OwnerResults {
    release: Release,
    /// The score's kind under [`Release::Scores`], fixed by the first batch that has a row.
    score_kind: Option<u8>,
}

impl OwnerResults {
    /// The rule for a job under `release`.
    #[must_use]
    pub fn new(release: Release) -> Self {
        Self {
            release,
            score_kind: None,
        }
    }

    /// The kinds the release allows at `slot` of a row, and how to name them.
    fn allowed(&self, slot: usize, score_kind: Option<u8>) -> (&'static [u8], &'static str) {
        match (self.release, slot) {
            (Release::Decisions, _) | (Release::Scores, 1) => (&[KIND_RAW_BOOL], "a masked bit"),
            (Release::Scores, _) => match score_kind {
                Some(KIND_RAW_U16) => (&[KIND_RAW_U16], "a masked 16-bit value (as before)"),
                Some(_) => (&[KIND_RAW_U32], "a masked 32-bit value (as before)"),
                None => (
                    &[KIND_RAW_U16, KIND_RAW_U32],
                    "a masked 16- or 32-bit value",
                ),
            },
            (Release::Aggregate, _) => (&[KIND_U64], "a masked 64-bit share"),
        }
    }

    /// Reads the masked results for `rows` rows and decrypts them (decompressing 64-bit shares
    /// bootstraps with the owner's own server key, installed by `own`): `values_per_row` values
    /// per row, each within its kind's width (a bit, 16, 32 or 64 bits).
    ///
    /// # Errors
    /// [`FheError::ItemCount`], [`FheError::ResultKind`] or [`FheError::EchoedCiphertext`] for
    /// a batch the release does not define; [`FheError::Wire`] (naming the item) or
    /// [`FheError::WrongKey`] for one that does not read.
    pub fn decrypt(
        &mut self,
        bytes: &[u8],
        rows: usize,
        uploaded: &Uploaded,
        own: &Evaluator,
        key: &FheClientKey,
    ) -> Result<Vec<u64>, FheError> {
        let per_row = self.release.values_per_row();
        // Saturating: no batch declares usize::MAX items (its count is a u32).
        let expected = rows.saturating_mul(per_row);
        let items = items(bytes, expected)?;
        // Every kind, before any ciphertext is read.
        let mut score_kind = self.score_kind;
        for (i, &(kind, _)) in items.iter().enumerate() {
            let (allowed, name) = self.allowed(i % per_row, score_kind);
            if !allowed.contains(&kind) {
                return Err(FheError::ResultKind {
                    item: i,
                    got: kind_name(kind),
                    expected: name,
                });
            }
            if self.release == Release::Scores && i % per_row == 0 {
                score_kind = Some(kind);
            }
        }
        let sk = own.server_key();
        let tag = sk.tag();
        let (rb, r16, r32) = (
            FheBoolConformanceParams::from(sk),
            FheUint16ConformanceParams::from(sk),
            FheUint32ConformanceParams::from(sk),
        );
        let p64 = CompressedFheUint64ConformanceParams::from(sk);
        let values = own.install(|| {
            items
                .par_iter()
                .enumerate()
                .map(|(i, &(kind, b))| {
                    let m = match kind {
                        KIND_RAW_BOOL => MaskedCiphertext::Bool(read::<FheBool>(i, b, &rb, tag)?),
                        KIND_RAW_U16 => MaskedCiphertext::U16(read::<FheUint16>(i, b, &r16, tag)?),
                        KIND_RAW_U32 => MaskedCiphertext::U32(read::<FheUint32>(i, b, &r32, tag)?),
                        // A seeded "compressed" value decompresses without a bootstrap, keeping
                        // its blocks' bodies: the check below sees uploaded bits in it too.
                        KIND_U64 => {
                            let c = read::<CompressedFheUint64>(i, b, &p64, tag)?;
                            MaskedCiphertext::U64(decompress(i, || c.decompress())?)
                        }
                        other => {
                            return Err(FheError::ResultKind {
                                item: i,
                                got: kind_name(other),
                                expected: "a masked result",
                            });
                        }
                    };
                    if block_bodies(&m).iter().any(|b| uploaded.bodies.contains(b)) {
                        return Err(FheError::EchoedCiphertext { item: i });
                    }
                    Ok(m.decrypt(key))
                })
                .collect::<Result<Vec<u64>, FheError>>()
        })?;
        self.score_kind = score_kind;
        Ok(values)
    }
}

/// The LWE bodies of a masked result's blocks.
fn block_bodies(m: &MaskedCiphertext) -> Vec<u64> {
    use tfhe::integer::IntegerCiphertext;
    let radix = |r: tfhe::integer::RadixCiphertext| r.blocks().iter().map(body).collect();
    match m {
        MaskedCiphertext::Bool(b) => vec![body(&b.clone().into_raw_parts())],
        MaskedCiphertext::U16(v) => radix(v.clone().into_raw_parts().0),
        MaskedCiphertext::U32(v) => radix(v.clone().into_raw_parts().0),
        MaskedCiphertext::U64(v) => radix(v.clone().into_raw_parts().0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(items: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = (items.len() as u32).to_le_bytes().to_vec();
        for (kind, bytes) in items {
            out.push(*kind);
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        out
    }

    #[test]
    fn framing_is_checked_before_any_ciphertext_is_read() {
        let good = batch(&[(KIND_BOOL, b"abc"), (KIND_BOOL, b"")]);
        let items = items(&good, 2).unwrap();
        assert_eq!(items, vec![(KIND_BOOL, &b"abc"[..]), (KIND_BOOL, &b""[..])]);
        let err = |bytes: &[u8], n: usize| super::items(bytes, n).unwrap_err().to_string();
        assert!(matches!(
            super::items(&good, 3),
            Err(FheError::ItemCount {
                got: 2,
                expected: 3
            })
        ));
        assert!(err(&good[..good.len() - 2], 2).contains("item 1: truncated"));
        assert!(err(&good[..good.len() - 6], 2).contains("item 0: truncated"));
        assert!(err(&[1, 0], 1).contains("no item count"));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(err(&trailing, 2).contains("trailing bytes"));
        // A declared length above the item limit is refused without reading (or allocating) it.
        let mut oversized = 1u32.to_le_bytes().to_vec();
        oversized.push(KIND_BOOL);
        oversized.extend_from_slice(&(ITEM_SIZE_LIMIT as u32 + 1).to_le_bytes());
        assert!(err(&oversized, 1).contains("item 0: larger than the item size limit"));
    }
}
