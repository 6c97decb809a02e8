//! The FHE decoders of bytes from another organisation behind one function that must never
//! panic, whatever the input: an owner's encrypted upload as the evaluator reads it, masked
//! results as the owner reads them, and a received server key's import. The cargo-fuzz target
//! `fhe_wire` (`fuzz/`, feature `fhe`) calls [`wire_items`]; `tests/fhe.rs` replays its corpus
//! on stable, so CI runs every seed without an instrumented build of tfhe.
//!
//! The first byte of an input picks the decoder; the rest is what it reads.

use crate::mask::Release;
use crate::wire::{OwnerResults, Uploaded, encode_masked, encrypt_chunk};
use crate::{EncryptedRows, Evaluator, Feature, FheError, FheModel, ModelSpec, OwnerKeys};

/// Keys, the evaluator's view of them, the features and one row's upload: what the decoders
/// need besides the bytes. Key generation takes seconds: make one per process.
pub struct WireFixture {
    keys: OwnerKeys,
    evaluator: Evaluator,
    features: Vec<Feature>,
    uploaded: Uploaded,
    upload: Vec<u8>,
}

impl std::fmt::Debug for WireFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireFixture")
            .field("features", &self.features.len())
            .finish_non_exhaustive()
    }
}

/// Rows per upload in the fixture (the decoders are told to expect this many).
const ROWS: usize = 1;

impl WireFixture {
    /// Fresh keys and one encrypted row of three features.
    ///
    /// # Errors
    /// Key generation, export, import or encryption fails.
    pub fn new() -> Result<Self, FheError> {
        let keys = OwnerKeys::generate()?;
        let exported = keys.export_server_key()?;
        let (server, _) = crate::import_server_key(exported.as_bytes())?;
        let evaluator = Evaluator::from_compressed(server)?;
        let features = vec![
            Feature::new("age", 7)?,
            Feature::new("amount", 16)?,
            Feature::new("prior_claims", 4)?,
        ];
        let (upload, uploaded) = encrypt_chunk(&features, &[vec![40, 100, 2]], keys.client_key())?;
        Ok(Self {
            keys,
            evaluator,
            features,
            uploaded,
            upload,
        })
    }

    /// One real input per decoder: the upload, the evaluator's masked scores for it, and the
    /// first 4 KiB of the exported server key (its versioned header and first parameters).
    ///
    /// # Errors
    /// Evaluation, masking or export fails.
    pub fn seeds(&self) -> Result<Vec<Vec<u8>>, FheError> {
        let spec = ModelSpec::Linear {
            features: self.features.iter().map(|f| f.name().to_string()).collect(),
            weights: vec![3, -2, 1000],
            bias: -50,
            threshold: -1000,
        };
        let model = FheModel::new(spec, &self.features)?;
        let rows = EncryptedRows::from_wire(&self.upload, &self.features, ROWS, &self.evaluator)?;
        let results = self.evaluator.evaluate(&model, &rows)?;
        let (masked, _) = self
            .evaluator
            .mask(results, Release::Scores, &mut crate::os_rng()?);
        let back = encode_masked(&self.evaluator, &masked)?;
        let key = self.keys.export_server_key()?;
        let head = &key.as_bytes()[..key.as_bytes().len().min(4096)];
        Ok(vec![
            [&[0u8][..], &self.upload].concat(),
            [&[1u8][..], &back].concat(),
            [&[2u8][..], head].concat(),
        ])
    }
}

/// Runs `data` through the decoder its first byte picks: `0` an upload of one row (an
/// accepted one has exactly that many rows), `1` masked scores for that row (an accepted batch
/// opens to two values per row), `2` a server key import (an accepted key is then
/// decompressed, as the evaluator does). Returns whether the decoder accepted the input.
pub fn wire_items(f: &WireFixture, data: &[u8]) -> bool {
    let Some((&which, rest)) = data.split_first() else {
        return false;
    };
    match which % 3 {
        0 => match EncryptedRows::from_wire(rest, &f.features, ROWS, &f.evaluator) {
            Ok(rows) => {
                assert_eq!(rows.len(), ROWS, "an accepted upload has the declared rows");
                true
            }
            Err(_) => false,
        },
        1 => {
            let mut owner = OwnerResults::new(Release::Scores);
            match owner.decrypt(rest, ROWS, &f.uploaded, &f.evaluator, f.keys.client_key()) {
                Ok(values) => {
                    assert_eq!(
                        values.len(),
                        ROWS * Release::Scores.values_per_row(),
                        "accepted results open to the declared values"
                    );
                    true
                }
                Err(_) => false,
            }
        }
        _ => match crate::import_server_key(rest) {
            Ok((key, _)) => Evaluator::from_compressed(key).is_ok(),
            Err(_) => false,
        },
    }
}
