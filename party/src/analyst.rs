//! The analyst's side of a result: fetch every party's sealed upload, open each with the
//! recipient's private key, then reconstruct and decode (`stats`, horizontal or with a join;
//! `train`'s metric and revealed weights) or collect the reports (`psi`).

use std::collections::BTreeMap;

use prost::Message;
use tonic::transport::Channel;
use treaty_mpc::MpcError;
use treaty_mpc::fixed::FixedPoint;
use treaty_mpc::output::{self, RecipientSecretKey};
use treaty_mpc::share::{AdditiveShare, reconstruct};
use treaty_mpc::stats::StatsResult;
use treaty_mpc::vstats;
use treaty_proto::v1::{self as pb, coordinator_client::CoordinatorClient, job_spec};
use zeroize::Zeroizing;

use crate::PartyError;

/// Fetches, opens and reconstructs the result of a succeeded `stats` job.
pub async fn fetch_stats_result(
    client: &mut CoordinatorClient<Channel>,
    job: &pb::Job,
    key: &RecipientSecretKey,
) -> Result<StatsResult, PartyError> {
    let spec = job
        .spec
        .as_ref()
        .ok_or_else(|| PartyError::Rejected("the job has no spec".into()))?;
    let Some(job_spec::Computation::Stats(stats)) = &spec.computation else {
        return Err(PartyError::Rejected("not a stats job".into()));
    };
    let fixed = FixedPoint::new(spec.frac_bits)?;
    let opened = fetch_opened(client, job, key).await?;
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
) -> Result<Vec<(String, pb::PsiPartyResult)>, PartyError> {
    let is_psi = job
        .spec
        .as_ref()
        .is_some_and(|s| matches!(s.computation, Some(job_spec::Computation::Psi(_))));
    if !is_psi {
        return Err(PartyError::Rejected("not a psi job".into()));
    }
    fetch_opened(client, job, key)
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
) -> Result<crate::train::TrainResult, PartyError> {
    let Some(job_spec::Computation::Train(train)) =
        job.spec.as_ref().and_then(|s| s.computation.as_ref())
    else {
        return Err(PartyError::Rejected("not a train job".into()));
    };
    let reports = fetch_opened(client, job, key)
        .await?
        .into_iter()
        .map(|(_, plain)| {
            pb::TrainPartyResult::decode(plain.as_slice())
                .map_err(|_| MpcError::Reconstruct("a party's train report does not decode").into())
        })
        .collect::<Result<Vec<_>, PartyError>>()?;
    crate::train::TrainResult::combine(&reports, train.reveal_weights)
}

/// Fetches and opens every party's report of a succeeded `score` job and combines them: the
/// scores and/or decisions, with the record ids of the `ids_from` party.
pub async fn fetch_score_result(
    client: &mut CoordinatorClient<Channel>,
    job: &pb::Job,
    key: &RecipientSecretKey,
) -> Result<crate::score::ScoreResult, PartyError> {
    let is_score = job
        .spec
        .as_ref()
        .is_some_and(|s| matches!(s.computation, Some(job_spec::Computation::Score(_))));
    if !is_score {
        return Err(PartyError::Rejected("not a score job".into()));
    }
    let reports = fetch_opened(client, job, key)
        .await?
        .into_iter()
        .map(|(_, plain)| {
            pb::ScorePartyResult::decode(plain.as_slice())
                .map_err(|_| MpcError::Reconstruct("a party's score report does not decode").into())
        })
        .collect::<Result<Vec<_>, PartyError>>()?;
    crate::score::ScoreResult::combine(&reports)
}

/// Fetches and opens both reports of a succeeded `fhe-score` job and combines them.
#[cfg(feature = "fhe")]
pub async fn fetch_fhe_score_result(
    client: &mut CoordinatorClient<Channel>,
    job: &pb::Job,
    key: &RecipientSecretKey,
) -> Result<crate::fhe_score::FheScoreResult, PartyError> {
    let is_fhe = job
        .spec
        .as_ref()
        .is_some_and(|s| matches!(s.computation, Some(job_spec::Computation::FheScore(_))));
    if !is_fhe {
        return Err(PartyError::Rejected("not an fhe-score job".into()));
    }
    let reports = fetch_opened(client, job, key)
        .await?
        .into_iter()
        .map(|(_, plain)| {
            pb::FheScorePartyResult::decode(plain.as_slice()).map_err(|_| {
                MpcError::Reconstruct("a party's fhe-score report does not decode").into()
            })
        })
        .collect::<Result<Vec<_>, PartyError>>()?;
    crate::fhe_score::FheScoreResult::combine(&reports)
}

/// Fetches every party's sealed upload and opens it, in the job's party order.
async fn fetch_opened(
    client: &mut CoordinatorClient<Channel>,
    job: &pb::Job,
    key: &RecipientSecretKey,
) -> Result<Vec<(String, Zeroizing<Vec<u8>>)>, PartyError> {
    let mut stream = client
        .fetch_result(pb::FetchResultRequest {
            job_id: job.id.clone(),
        })
        .await?
        .into_inner();
    let mut sealed: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    while let Some(chunk) = stream.message().await? {
        if chunk.job_id != job.id {
            return Err(MpcError::Reconstruct("a chunk belongs to another job").into());
        }
        sealed
            .entry(chunk.party)
            .or_default()
            .extend_from_slice(&chunk.data);
    }
    let mut opened = Vec::with_capacity(job.parties.len());
    for p in &job.parties {
        let bytes = sealed
            .get(&p.party)
            .ok_or(MpcError::Reconstruct("a party's sealed share is missing"))?;
        opened.push((
            p.party.clone(),
            output::open(key, &job.id, &p.party, bytes)?,
        ));
    }
    Ok(opened)
}
