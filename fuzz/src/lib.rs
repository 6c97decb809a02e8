//! The decoders Treaty runs on bytes from outside, each behind one function that must never
//! panic, whatever the input: the cargo-fuzz targets in `fuzz_targets/` call them, and
//! `tests/replay.rs` runs every file of `corpus/<target>/` through them on stable (CI).
//!
//! Where a decoder accepts its input, the function also checks what must then hold (a header
//! re-encodes to the same bytes; a batch's slices have the declared lengths).

use std::collections::BTreeMap;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use treaty_mpc::barrier::Barrier;
use treaty_mpc::psi::multi::{MultiPsiMode, MultiPsiParams, PartySet};
use treaty_mpc::psi::wire::{Batch, Header, HeaderRound, MultiHeader};
use treaty_mpc::psi::{POINT_LEN, PsiMode, PsiParams};
use treaty_mpc::seeds::{SeedAgreement, SessionContext};
use treaty_proto::v1 as pb;

/// Splits `data` into messages: each a 1-byte sender, a 1-byte length, then that many bytes.
fn messages(mut data: &[u8]) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    while let [from, len, rest @ ..] = data {
        let len = usize::from(*len).min(rest.len());
        out.push((usize::from(*from % 5), &rest[..len]));
        data = &rest[len..];
    }
    out
}

/// PSI headers (two- and multi-party), batches and the multi-party header round.
pub fn psi_wire(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            let ours = Header::ours(&PsiParams::new("j", PsiMode::IntersectionToBoth), 5);
            if let Ok(h) = Header::decode(rest, &ours, 1 << 20, 1, 0) {
                assert_eq!(
                    h.encode(),
                    rest,
                    "an accepted header re-encodes to its bytes"
                );
                assert!(h.set_size <= 1 << 20 && h.batch > 0);
            }
        }
        1 => {
            let params = MultiPsiParams::new("j", MultiPsiMode::CardinalityTo(0));
            let ours = MultiHeader::ours(&params, 3, 5);
            if let Ok(h) = MultiHeader::decode(rest, &ours, 1 << 20, 1, 0) {
                assert_eq!(
                    h.encode(),
                    rest,
                    "an accepted header re-encodes to its bytes"
                );
                assert!(h.set_size <= 1 << 20);
            }
        }
        2 => {
            let [points, tags, tag_len, msg @ ..] = rest else {
                return;
            };
            let (points, tags, tag_len) = (
                usize::from(*points),
                usize::from(*tags),
                usize::from(*tag_len % 17),
            );
            if let Ok(b) = Batch::decode(msg, points, tags, tag_len, 1, 0) {
                assert_eq!(b.points.len(), points * POINT_LEN);
                assert_eq!(b.tags.len(), tags * tag_len);
            }
        }
        _ => {
            let mode = MultiPsiMode::IntersectionTo(PartySet::all(3));
            let params = MultiPsiParams::new("j", mode);
            let (mut round, _) = HeaderRound::start(&params, 3, 0, 5, 0);
            for (from, msg) in messages(rest) {
                if round.receive(from, msg).is_err() {
                    return;
                }
            }
            if let Ok(sizes) = round.finish() {
                assert_eq!(sizes.len(), 3);
                assert_eq!(sizes[0], 5);
            }
        }
    }
}

/// The synchronous cores fed peers' messages: the release barrier and seed agreement.
pub fn sync_cores(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        let (mut barrier, _) = Barrier::arrive(0, 3, [7; 32]);
        for (from, msg) in messages(rest) {
            if barrier.receive(from, msg).is_err() {
                return;
            }
        }
        let _ = barrier.pass();
    } else {
        let ids: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let ctx = SessionContext {
            job_id: "j",
            party_ids: &ids,
        };
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let Ok((mut agreement, _)) = SeedAgreement::start(ctx, 0, 3, &mut rng) else {
            return;
        };
        for (from, msg) in messages(rest) {
            if agreement.receive(ctx, from, msg).is_err() {
                return;
            }
        }
        let _ = agreement.finish();
    }
}

/// An audit log as an auditor (or a node at start) reads it.
pub fn audit_log(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key();
    let (records, failures) = treaty_audit::verify_log("hospital", &text, &key, None);
    if failures.is_empty() {
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.entry.seq, i as u64, "a verified log is in sequence");
        }
    }
}

/// A job as the coordinator receives it (a protobuf spec) or an analyst writes it (a TOML
/// job file), validated against a registry of three parties.
pub fn job_spec(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let spec = if which % 2 == 0 {
        match <pb::JobSpec as prost::Message>::decode(rest) {
            Ok(spec) => spec,
            Err(_) => return,
        }
    } else {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        match treaty_job::JobFile::parse(text).and_then(|f| f.to_spec(None)) {
            Ok(spec) => spec,
            Err(_) => return,
        }
    };
    let _ = treaty_job::validate::validate_spec(spec, &registry());
}

/// Three parties, each with a `claims` dataset of an id, a float and a text column.
fn registry() -> BTreeMap<String, pb::PartyInfo> {
    let column = |name: &str, ty: pb::ColumnType| pb::ColumnSchema {
        name: name.into(),
        r#type: ty.into(),
    };
    ["hospital", "insurer", "bank"]
        .into_iter()
        .map(|id| {
            let info = pb::PartyInfo {
                id: id.into(),
                datasets: vec![pb::DatasetSchema {
                    name: "claims".into(),
                    id_column: "patient_id".into(),
                    columns: vec![
                        column("patient_id", pb::ColumnType::String),
                        column("amount", pb::ColumnType::Float),
                        column("plan", pb::ColumnType::String),
                    ],
                }],
                ..Default::default()
            };
            (id.to_string(), info)
        })
        .collect()
}
