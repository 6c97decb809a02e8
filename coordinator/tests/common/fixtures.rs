//! Protocol messages the coordinator's tests build again and again: a party with the "claims"
//! dataset, and a statistics job over it. Only `treaty_proto` types, nothing of the crate's
//! own, so the unit tests in `src/` include this file by path as well as the integration tests.

use treaty_proto::v1 as pb;

/// The "claims" dataset every test party holds: `claim_id` (string, the id column) and
/// `claim_amount` (float).
pub(crate) fn claims_schema() -> pb::DatasetSchema {
    pb::DatasetSchema {
        name: "claims".into(),
        id_column: "claim_id".into(),
        columns: vec![
            pb::ColumnSchema {
                name: "claim_id".into(),
                r#type: pb::ColumnType::String as i32,
            },
            pb::ColumnSchema {
                name: "claim_amount".into(),
                r#type: pb::ColumnType::Float as i32,
            },
        ],
    }
}

/// What party `id` registers: its data-plane `endpoint` and the claims dataset; the rest
/// (certificate fingerprint, audit key) left empty for the caller to fill in.
pub(crate) fn party_info(id: &str, endpoint: &str) -> pb::PartyInfo {
    pb::PartyInfo {
        id: id.into(),
        endpoint: endpoint.into(),
        datasets: vec![claims_schema()],
        ..Default::default()
    }
}

/// A job named `name`: statistics of `claim_amount` over the claims of `parties`, its result
/// for analyst "alice".
pub(crate) fn stats_spec(name: &str, parties: &[&str]) -> pb::JobSpec {
    pb::JobSpec {
        name: name.into(),
        inputs: parties
            .iter()
            .map(|p| pb::JobInput {
                party: (*p).into(),
                dataset: "claims".into(),
            })
            .collect(),
        output: Some(pb::JobOutput {
            recipient: "alice".into(),
            recipient_public_key: vec![9; 32],
        }),
        frac_bits: 16,
        computation: Some(pb::job_spec::Computation::Stats(pb::StatsJob {
            columns: vec!["claim_amount".into()],
            ..Default::default()
        })),
        ..Default::default()
    }
}
