//! `party_inputs`: what a node reads from its peers and its operator's files — data-plane frames
//! put back into messages, its config file, its policy file, and dataset CSV rows.

use std::path::Path;

use prost::Message;
use treaty_party::config::PartyConfig;
use treaty_party::dataset::{ColumnDecl, ColumnType, DatasetConfig, read_csv};
use treaty_party::link::Reassembly;
use treaty_party::policy::Policy;
use treaty_proto::v1 as pb;

/// The largest message the reassembly accepts here.
const LIMIT: usize = 1 << 16;

/// The `party_inputs` target: the first byte picks the reader.
pub fn party_inputs(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => frames(rest),
        1 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = PartyConfig::parse(Path::new("party.toml"), text);
            }
        }
        2 => {
            // The policy, then (after the first NUL) the analysts file it may name.
            let (policy, analysts) = match rest.iter().position(|&b| b == 0) {
                Some(i) => (&rest[..i], rest[i + 1..].to_vec()),
                None => (rest, Vec::new()),
            };
            let _ = Policy::parse(Path::new("policy.toml"), policy, |_| Ok(analysts));
        }
        _ => csv(rest),
    }
}

/// Length-prefixed (one byte) protobuf frames through one reassembly, message after message.
fn frames(mut data: &[u8]) {
    let mut message = Reassembly::new(1, LIMIT);
    while let [len, rest @ ..] = data {
        let len = usize::from(*len).min(rest.len());
        let Ok(frame) = pb::Frame::decode(&rest[..len]) else {
            return;
        };
        data = &rest[len..];
        let declared = match &frame.kind {
            Some(pb::frame::Kind::Chunk(c)) => c.total_len,
            _ => 0,
        };
        match message.push(frame) {
            Ok(Some((_, whole))) => {
                assert!(whole.len() <= LIMIT, "a message above the limit");
                assert_eq!(whole.len() as u64, declared, "a message of another length");
            }
            Ok(None) => {}
            Err(_) => return,
        }
    }
}

/// A CSV file of an id, a float, an int and a string column.
fn csv(data: &[u8]) {
    let column = |name: &str, ty| ColumnDecl {
        name: name.into(),
        ty,
    };
    let cfg = DatasetConfig {
        name: "claims".into(),
        path: "claims.csv".into(),
        id_column: "id".into(),
        columns: vec![
            column("id", ColumnType::String),
            column("amount", ColumnType::Float),
            column("age", ColumnType::Int),
            column("region", ColumnType::String),
        ],
    };
    let wanted = ["id", "amount", "age"];
    let path = Path::new("claims.csv");
    if let Ok(table) = read_csv(&cfg, data, data.len() as u64, path, &wanted) {
        let rows = table.rows();
        assert_eq!(table.text("id").map(<[String]>::len), Some(rows));
        for numeric in ["amount", "age"] {
            let values = table.numeric(numeric);
            assert_eq!(values.map(<[f64]>::len), Some(rows), "{numeric}");
        }
    }
}
