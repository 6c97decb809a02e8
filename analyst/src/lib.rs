//! # treaty-analyst: the analyst's side of a job
//!
//! The analyst's side of a result: fetch every party's signed, sealed upload, verify every
//! party's signature (the party's identity key from [`PartyKeys`], over the job, the party, the
//! recipient's public key and the sealed bytes: [`treaty_trust::result`]) before opening any,
//! open each with the recipient's private key, then reconstruct and decode (`stats`, horizontal
//! or with a join; `train`'s metric and revealed weights) or collect the reports (`psi`).
//!
//! A share that is unsigned, forged, altered, signed by another party (swapped) or from a party
//! without a trusted key is refused with [`treaty_trust::TrustError::ResultSignature`] naming the
//! party, and nothing is opened.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;
use prost::Message;
use tonic::transport::Channel;
use treaty_mpc::MpcError;
use treaty_mpc::fixed::FixedPoint;
use treaty_mpc::output::{self, RecipientSecretKey};
use treaty_mpc::share::{AdditiveShare, reconstruct};
use treaty_mpc::stats::StatsResult;
use treaty_mpc::vstats;
use treaty_proto::v1::{self as pb, coordinator_client::CoordinatorClient, job_spec};
use treaty_trust::result;
use zeroize::Zeroizing;

pub mod client;
pub mod results;

pub use client::{Analyst, Connect, JobResult, KeySource, PsiReport};

pub use results::{FheAggregate, FheScoreResult, ScoreResult, TrainResult};

/// What can go wrong fetching, verifying, opening or decoding a result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnalystError {
    /// The job is not of the kind asked for, or has no spec.
    #[error("{0}")]
    WrongJob(&'static str),
    /// The parties' opened reports are missing, disagree or do not decode.
    #[error("{0}")]
    Malformed(String),
    /// Reconstruction, sealing or fixed-point decoding failed.
    #[error(transparent)]
    Mpc(#[from] MpcError),
    /// A share's signature, or a key, does not verify.
    #[error(transparent)]
    Trust(#[from] treaty_trust::TrustError),
    /// The coordinator refused the job spec; one entry per problem (field, kind, sentence).
    #[error("invalid job spec: {}", .0.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; "))]
    InvalidSpec(Vec<pb::SpecProblem>),
    /// Submitting or cancelling needs the analyst's signing key, and none was given.
    #[error(
        "no signing key: submissions and cancellations are signed (NAME.sign.key from `treaty init`)"
    )]
    NoSigningKey,
    /// The parties' keys were to come from the roster, and there is none.
    #[error("no roster: the parties' result keys were to come from it")]
    NoRoster,
    /// The job has not succeeded, so it has no result.
    #[error("job {job} is {state}{}", if reason.is_empty() { String::new() } else { format!(": {reason}") })]
    NotSucceeded {
        /// The job.
        job: String,
        /// Its state.
        state: String,
        /// Why, as the job says.
        reason: String,
    },
    /// The audit registry (the parties' keys) is malformed.
    #[error(transparent)]
    Registry(#[from] treaty_audit::AuditError),
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A call to the coordinator failed (the status message is the whole story).
    #[error("coordinator call failed: {}", .0.message())]
    Rpc(tonic::Status),
}

impl From<tonic::Status> for AnalystError {
    /// An `INVALID_ARGUMENT` status carrying spec problems in its details becomes
    /// [`AnalystError::InvalidSpec`]; any other status stays [`AnalystError::Rpc`].
    fn from(status: tonic::Status) -> Self {
        // The details come from the coordinator: decoded only when small (prost allocates no
        // more than the input holds), and only as many problems as a spec can have.
        if status.code() == tonic::Code::InvalidArgument
            && status.details().len() <= MAX_SPEC_DETAILS
            && let Ok(details) = pb::SpecProblems::decode(status.details())
            && (1..=MAX_SPEC_PROBLEMS).contains(&details.problems.len())
        {
            return Self::InvalidSpec(details.problems);
        }
        Self::Rpc(status)
    }
}

/// Largest status details decoded as spec problems (larger ones stay an [`AnalystError::Rpc`]).
const MAX_SPEC_DETAILS: usize = 64 * 1024;

/// Most spec problems taken from one status.
const MAX_SPEC_PROBLEMS: usize = 256;

/// The keys the analyst trusts for the parties' result signatures: party id → Ed25519 identity
/// (audit) key. Where they come from is the caller's choice: obtained out of band (the
/// trustworthy source), the sandbox's own nodes, or the coordinator's word.
pub type PartyKeys = BTreeMap<String, VerifyingKey>;

/// Every party's opened share (plaintext, zeroized on drop), in the job's party order.
pub type OpenedShares = Vec<(String, Zeroizing<Vec<u8>>)>;

/// Fetches, opens and reconstructs the result of a succeeded `stats` job.
pub async fn fetch_stats_result(
    client: &mut CoordinatorClient<Channel>,
    job: &pb::Job,
    key: &RecipientSecretKey,
    party_keys: &PartyKeys,
) -> Result<StatsResult, AnalystError> {
    let spec = job
        .spec
        .as_ref()
        .ok_or_else(|| AnalystError::WrongJob("the job has no spec"))?;
    let Some(job_spec::Computation::Stats(stats)) = &spec.computation else {
        return Err(AnalystError::WrongJob("not a stats job"));
    };
    let fixed = FixedPoint::new(spec.frac_bits)?;
    let opened = fetch_opened(client, job, key, party_keys).await?;
    let totals = if spec.join.is_some() {
        // Vertical stats: shares over Z_2^64 of [count, Σx̃, Σq, …] (see `treaty_mpc::vstats`).
        let mut shares = Vec::with_capacity(opened.len());
        for (_, plain) in &opened {
            shares.push(AdditiveShare::<u64>::from_bytes(plain)?);
        }
        vstats::totals(&reconstruct(&shares)?, stats.columns.len(), fixed)?
    } else {
        let mut shares = Vec::with_capacity(opened.len());
        for (_, plain) in &opened {
            shares.push(AdditiveShare::<u128>::from_bytes(plain)?);
        }
        reconstruct(&shares)?
    };
    Ok(StatsResult::from_totals(&totals, &stats.columns, fixed)?)
}

/// Fetches and opens every party's report of a succeeded `psi` job, by party.
pub async fn fetch_psi_result(
    client: &mut CoordinatorClient<Channel>,
    job: &pb::Job,
    key: &RecipientSecretKey,
    party_keys: &PartyKeys,
) -> Result<Vec<(String, pb::PsiPartyResult)>, AnalystError> {
    let is_psi = job
        .spec
        .as_ref()
        .is_some_and(|s| matches!(s.computation, Some(job_spec::Computation::Psi(_))));
    if !is_psi {
        return Err(AnalystError::WrongJob("not a psi job"));
    }
    fetch_opened(client, job, key, party_keys)
        .await?
        .into_iter()
        .map(|(party, plain)| {
            let report = pb::PsiPartyResult::decode(plain.as_slice())
                .map_err(|_| MpcError::Reconstruct("a party's PSI report does not decode"))?;
            Ok((party, report))
        })
        .collect()
}

/// Fetches and opens every party's report of a succeeded `train` job and combines them: the
/// metric and, if the job revealed them, the weights.
pub async fn fetch_train_result(
    client: &mut CoordinatorClient<Channel>,
    job: &pb::Job,
    key: &RecipientSecretKey,
    party_keys: &PartyKeys,
) -> Result<TrainResult, AnalystError> {
    let Some(job_spec::Computation::Train(train)) =
        job.spec.as_ref().and_then(|s| s.computation.as_ref())
    else {
        return Err(AnalystError::WrongJob("not a train job"));
    };
    let reports = fetch_opened(client, job, key, party_keys)
        .await?
        .into_iter()
        .map(|(_, plain)| {
            pb::TrainPartyResult::decode(plain.as_slice())
                .map_err(|_| MpcError::Reconstruct("a party's train report does not decode").into())
        })
        .collect::<Result<Vec<_>, AnalystError>>()?;
    TrainResult::combine(&reports, train.reveal_weights)
}

/// Fetches and opens every party's report of a succeeded `score` job and combines them: the
/// scores and/or decisions, with the record ids of the `ids_from` party.
pub async fn fetch_score_result(
    client: &mut CoordinatorClient<Channel>,
    job: &pb::Job,
    key: &RecipientSecretKey,
    party_keys: &PartyKeys,
) -> Result<ScoreResult, AnalystError> {
    let is_score = job
        .spec
        .as_ref()
        .is_some_and(|s| matches!(s.computation, Some(job_spec::Computation::Score(_))));
    if !is_score {
        return Err(AnalystError::WrongJob("not a score job"));
    }
    let reports = fetch_opened(client, job, key, party_keys)
        .await?
        .into_iter()
        .map(|(_, plain)| {
            pb::ScorePartyResult::decode(plain.as_slice())
                .map_err(|_| MpcError::Reconstruct("a party's score report does not decode").into())
        })
        .collect::<Result<Vec<_>, AnalystError>>()?;
    ScoreResult::combine(&reports)
}

/// Fetches and opens both reports of a succeeded `fhe-score` job and combines them.
pub async fn fetch_fhe_score_result(
    client: &mut CoordinatorClient<Channel>,
    job: &pb::Job,
    key: &RecipientSecretKey,
    party_keys: &PartyKeys,
) -> Result<FheScoreResult, AnalystError> {
    let is_fhe = job
        .spec
        .as_ref()
        .is_some_and(|s| matches!(s.computation, Some(job_spec::Computation::FheScore(_))));
    if !is_fhe {
        return Err(AnalystError::WrongJob("not an fhe-score job"));
    }
    let reports = fetch_opened(client, job, key, party_keys)
        .await?
        .into_iter()
        .map(|(_, plain)| {
            pb::FheScorePartyResult::decode(plain.as_slice()).map_err(|_| {
                MpcError::Reconstruct("a party's fhe-score report does not decode").into()
            })
        })
        .collect::<Result<Vec<_>, AnalystError>>()?;
    FheScoreResult::combine(&reports)
}

/// Fetches every party's signed, sealed upload, verifies them all, then opens each, in the
/// job's party order.
async fn fetch_opened(
    client: &mut CoordinatorClient<Channel>,
    job: &pb::Job,
    key: &RecipientSecretKey,
    party_keys: &PartyKeys,
) -> Result<OpenedShares, AnalystError> {
    let mut stream = client
        .fetch_result(pb::FetchResultRequest {
            job_id: job.id.clone(),
        })
        .await?
        .into_inner();
    let mut uploads: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    while let Some(chunk) = stream.message().await? {
        if chunk.job_id != job.id {
            return Err(MpcError::Reconstruct("a chunk belongs to another job").into());
        }
        if !job.parties.iter().any(|p| p.party == chunk.party) {
            continue;
        }
        let upload = uploads.entry(chunk.party).or_default();
        if upload.len().saturating_add(chunk.data.len()) > result::MAX_SIGNED_RESULT_BYTES {
            return Err(MpcError::Reconstruct("a party's upload exceeds the size limit").into());
        }
        upload.extend_from_slice(&chunk.data);
    }
    open_uploads(job, key, party_keys, &uploads)
}

/// Verifies every party's upload (an encoded `SignedResult`) of `job` against `party_keys`,
/// then — only if all verify — opens each sealed share with `key`, in the job's party order.
///
/// # Errors
/// [`treaty_trust::TrustError::ResultSignature`] naming the first party whose upload is missing,
/// malformed, without a trusted key or not signed by it for this job and recipient; then a share
/// that does not open.
pub fn open_uploads(
    job: &pb::Job,
    key: &RecipientSecretKey,
    party_keys: &PartyKeys,
    uploads: &BTreeMap<String, Vec<u8>>,
) -> Result<OpenedShares, AnalystError> {
    let recipient = key.public_key()?;
    let parties: Vec<String> = job.parties.iter().map(|p| p.party.clone()).collect();
    let sealed = result::verify_all(&job.id, &recipient, &parties, uploads, party_keys)?;
    let mut opened = Vec::with_capacity(sealed.len());
    for (party, bytes) in sealed {
        let plain = output::open(key, &job.id, &party, &bytes)?;
        opened.push((party, plain));
    }
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(details: Vec<u8>) -> tonic::Status {
        tonic::Status::with_details(tonic::Code::InvalidArgument, "bad spec", details.into())
    }

    fn problem(field: &str) -> pb::SpecProblem {
        pb::SpecProblem {
            field: field.into(),
            kind: "too-large".into(),
            message: format!("{field}: too large"),
        }
    }

    #[test]
    fn spec_problems_in_the_details_become_typed() {
        let details = pb::SpecProblems {
            problems: vec![problem("frac_bits")],
        };
        match AnalystError::from(status(details.encode_to_vec())) {
            AnalystError::InvalidSpec(p) => assert_eq!(p, vec![problem("frac_bits")]),
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
    }

    #[test]
    fn hostile_or_empty_details_stay_a_plain_status() {
        let many = pb::SpecProblems {
            problems: (0..=MAX_SPEC_PROBLEMS)
                .map(|i| problem(&i.to_string()))
                .collect(),
        };
        let huge = pb::SpecProblems {
            problems: vec![problem(&"x".repeat(MAX_SPEC_DETAILS))],
        };
        for details in [
            Vec::new(),
            vec![0xff; 16],
            many.encode_to_vec(),
            huge.encode_to_vec(),
        ] {
            let e = AnalystError::from(status(details));
            assert!(matches!(e, AnalystError::Rpc(_)), "{e:?}");
        }
        let other = tonic::Status::with_details(
            tonic::Code::Internal,
            "x",
            pb::SpecProblems {
                problems: vec![problem("frac_bits")],
            }
            .encode_to_vec()
            .into(),
        );
        assert!(matches!(AnalystError::from(other), AnalystError::Rpc(_)));
    }
}
