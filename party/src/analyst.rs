//! The analyst's side of a result: fetch every party's sealed share, open each with the
//! recipient's private key, reconstruct and decode.

use std::collections::BTreeMap;

use tonic::transport::Channel;
use treaty_mpc::MpcError;
use treaty_mpc::fixed::FixedPoint;
use treaty_mpc::output::{self, RecipientSecretKey};
use treaty_mpc::share::{AdditiveShare, reconstruct};
use treaty_mpc::stats::StatsResult;
use treaty_proto::v1::{self as pb, coordinator_client::CoordinatorClient, job_spec};

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
    let mut shares = Vec::with_capacity(job.parties.len());
    for p in &job.parties {
        let bytes = sealed
            .get(&p.party)
            .ok_or(MpcError::Reconstruct("a party's sealed share is missing"))?;
        let plain = output::open(key, &job.id, &p.party, bytes)?;
        shares.push(AdditiveShare::<u128>::from_bytes(&plain)?);
    }
    let totals = reconstruct(&shares)?;
    Ok(StatsResult::from_totals(
        &totals,
        &stats.columns,
        FixedPoint::new(spec.frac_bits)?,
    )?)
}
