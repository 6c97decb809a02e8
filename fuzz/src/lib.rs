//! The decoders Treaty runs on bytes from outside, each behind one function that must never
//! panic, whatever the input: the cargo-fuzz targets in `fuzz_targets/` call them, and
//! `tests/replay.rs` runs every file of `corpus/<target>/` through them on stable (CI).
//!
//! Where a decoder accepts its input, the function also checks what must then hold (a header
//! re-encodes to the same bytes; a batch's slices have the declared lengths).

use std::collections::BTreeMap;

mod party;
mod peers;
pub use party::party_inputs;
pub use peers::{mpc_peers, peer_seeds, replay_peers};

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

/// The recipient key pair and party key the `trust_inputs` seeds are made with.
fn trust_keys() -> (
    treaty_mpc::output::RecipientSecretKey,
    ed25519_dalek::SigningKey,
) {
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    (
        treaty_mpc::output::RecipientSecretKey::generate(&mut rng),
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    )
}

/// What a node or analyst reads from files and other organisations' messages about who is who:
/// a roster, an analysts file, a signed submission (as a node checks it), a signed and sealed
/// result share (as the analyst checks and opens it), a signed cancellation.
pub fn trust_inputs(data: &[u8]) {
    use prost::Message;
    use treaty_trust::identity::{AnalystList, check_fresh, verify_cancel, verify_submission};
    use treaty_trust::roster::Roster;

    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => {
            if let Ok(roster) = Roster::parse(rest) {
                let _ = roster.ca_bundle(&[]);
                let _ = roster.party_keys();
                let _ = roster.analysts();
                assert!(!roster.members().is_empty() || roster.coordinator().is_none());
            }
        }
        1 => {
            if let Ok(text) = std::str::from_utf8(rest)
                && let Ok(list) = AnalystList::parse(text)
            {
                list.validate()
                    .expect("a parsed analysts file validates again");
            }
        }
        2 => {
            let Ok(signed) = pb::SignedSubmission::decode(rest) else {
                return;
            };
            if let Ok(v) = verify_submission(&signed) {
                let id = v.job_id();
                assert!(treaty_job::validate::is_job_id(&id), "{id}");
                let _ = check_fresh(&v, i64::MAX);
                let _ = check_fresh(&v, i64::MIN);
            }
        }
        3 => {
            let (secret, party) = trust_keys();
            let Ok(public) = secret.public_key() else {
                return;
            };
            let key = party.verifying_key();
            if let Ok(sealed) = treaty_trust::result::verify(rest, "job-0", "bank", &public, &key) {
                let _ = treaty_mpc::output::open(&secret, "job-0", "bank", &sealed);
            }
            let _ = treaty_mpc::output::open(&secret, "job-0", "bank", rest);
        }
        _ => {
            let Ok(request) = pb::CancelJobRequest::decode(rest) else {
                return;
            };
            let (_, analyst) = trust_keys();
            let job = pb::Job {
                id: request.job_id.clone(),
                submission: Some(pb::SignedSubmission {
                    public_key: analyst.verifying_key().to_bytes().to_vec(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let _ = verify_cancel(&job, &request);
        }
    }
}

/// Seeds of `trust_inputs`: a valid signed submission, a valid signed and sealed share, a
/// valid cancellation, a roster and an analysts file.
#[must_use]
pub fn trust_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use prost::Message;
    use treaty_trust::identity::{sign_cancel, sign_submission};

    let (secret, party) = trust_keys();
    let mut rng = ChaCha20Rng::seed_from_u64(18);
    let mut seeds = Vec::new();
    let spec = pb::JobSpec {
        name: "seed".into(),
        ..Default::default()
    };
    let signed = sign_submission(spec, "ana", &party, [3; 16], 1_800_000_000_000);
    seeds.push(("submission", [vec![2], signed.encode_to_vec()].concat()));
    if let Ok(public) = secret.public_key()
        && let Ok(sealed) = treaty_mpc::output::seal(&public, "job-0", "bank", b"share", &mut rng)
    {
        let upload = treaty_trust::result::sign(&party, "job-0", "bank", &public, sealed);
        seeds.push(("result", [vec![3], upload.encode_to_vec()].concat()));
    }
    let cancel = sign_cancel("job-0123456789abcdef", "no longer needed", &party);
    seeds.push(("cancel", [vec![4], cancel.encode_to_vec()].concat()));
    let roster = "version = 1\n\n[[members]]\nrole = \"party\"\nname = \"bank\"\n";
    seeds.push(("roster", [&[0u8][..], roster.as_bytes()].concat()));
    let analysts = format!(
        "[[analysts]]\nname = \"ana\"\nkey = \"{}\"\n",
        hex::encode(party.verifying_key().to_bytes())
    );
    seeds.push(("analysts", [&[1u8][..], analysts.as_bytes()].concat()));
    seeds
}
