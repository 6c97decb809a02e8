//! [`Analyst`]: one analyst's session with the coordinator — list parties, submit signed jobs,
//! follow and cancel them, and fetch, verify and open their results. The `treaty` CLI is a thin
//! printer over it; a Python binding calls the same methods.
//!
//! ```text
//!   Analyst::connect(Connect { url, tls, roster, .. })
//!     .parties()                      schemas only, never rows
//!     .submit(spec)                   signed with the analyst's Ed25519 key (`sign_now`)
//!     .watch(job, |state| ..)         every state change until the job ends
//!     .result(job, key, KeySource::…) every share's signature verified, then opened
//!     .cancel(job, reason)            signed
//! ```
//!
//! **Whom the analyst trusts.** With a roster, the coordinator is dialled trusting only the CA
//! the roster lists for it, under the name the roster gives it, and the parties' result keys
//! are the roster's. Without one, [`KeySource::Coordinator`] takes the keys from the
//! coordinator's audit registry, which trusts the coordinator for them: the caller decides
//! (the CLI warns).

use std::path::Path;

use ed25519_dalek::SigningKey;
use tonic::transport::Channel;
use treaty_job::Kind;
use treaty_mpc::output::RecipientSecretKey;
use treaty_mpc::stats::StatsResult;
use treaty_proto::v1::{self as pb, JobState, coordinator_client::CoordinatorClient};
use treaty_trust::client::{Dial, connect};
use treaty_trust::roster::Roster;
use treaty_trust::tls::TlsIdentity;

use crate::{AnalystError, FheScoreResult, PartyKeys, ScoreResult, TrainResult};

/// Where and as whom to connect.
#[derive(Debug)]
pub struct Connect<'a> {
    /// The coordinator's URL (`https://host:port`, or `http://` without TLS).
    pub url: &'a str,
    /// The analyst's TLS identity (certificate, key, trusted CA); `None` for plaintext.
    pub tls: Option<TlsIdentity>,
    /// The coordinator certificate's name, when no roster says it (default `coordinator`).
    pub server_name: &'a str,
    /// The consortium's roster, if the analyst has one: it then decides the coordinator's CA and
    /// name and the parties' result keys.
    pub roster: Option<Roster>,
    /// The analyst's name (as its certificate and the analysts list state it).
    pub name: &'a str,
    /// The analyst's Ed25519 key, to sign submissions and cancellations; reading only (parties,
    /// jobs, results) needs none.
    pub signing_key: Option<SigningKey>,
}

/// Where the keys that verify the parties' result signatures come from.
#[derive(Debug)]
pub enum KeySource {
    /// Keys the analyst obtained out of band (e.g. a registry saved from `treaty audit
    /// registry` and checked with each party): the trustworthy source.
    Given(PartyKeys),
    /// The roster the analyst connected with.
    Roster,
    /// The coordinator's audit registry: trusts the coordinator for the keys.
    Coordinator,
}

/// A result, opened and decoded, by job kind.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum JobResult {
    /// `stats`: counts, means, variances per column.
    Stats(StatsResult),
    /// `psi`: every party's report (party id, report).
    Psi {
        /// Party id and its report.
        reports: Vec<(String, PsiReport)>,
    },
    /// `train`: the metric and, if revealed, the weights.
    Train(TrainResult),
    /// `score`: scores and decisions per record.
    Score(ScoreResult),
    /// `fhe-score`: the owner's view of the evaluator's model.
    FheScore(FheScoreResult),
}

/// A party's PSI report, as opened.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PsiReport {
    /// Ids this party put in.
    pub own_set_size: u64,
    /// Ids its peer (or the chain) put in.
    pub peer_set_size: u64,
    /// The intersection's size, where the job reveals it to this party.
    pub intersection_size: Option<u64>,
    /// The id the intersection is stored under at this party (for a later join), or empty.
    pub stored_as: String,
}

impl From<pb::PsiPartyResult> for PsiReport {
    fn from(r: pb::PsiPartyResult) -> Self {
        Self {
            own_set_size: r.own_set_size,
            peer_set_size: r.peer_set_size,
            intersection_size: r.intersection_size,
            stored_as: r.stored_as,
        }
    }
}

/// One analyst's connection to the coordinator.
#[derive(Debug)]
pub struct Analyst {
    client: CoordinatorClient<Channel>,
    name: String,
    signing_key: Option<SigningKey>,
    roster: Option<Roster>,
}

impl Analyst {
    /// Connects (TLS with the analyst's certificate, or plaintext).
    ///
    /// # Errors
    /// [`AnalystError::Trust`] for a bad URL, TLS material or an unreachable coordinator.
    pub async fn connect(c: Connect<'_>) -> Result<Self, AnalystError> {
        let coordinator = c.roster.as_ref().and_then(Roster::coordinator);
        let tls = match (&c.tls, coordinator) {
            (Some(t), Some(m)) => Some(
                t.with_ca(&m.ca_pem)
                    .map_err(treaty_trust::TrustError::from)?,
            ),
            (tls, _) => tls.clone(),
        };
        let client = connect(Dial {
            url: c.url,
            tls: tls.as_ref(),
            server_name: coordinator.map_or(c.server_name, |m| &m.identity.name),
        })
        .await?;
        Ok(Self {
            client,
            name: c.name.to_string(),
            signing_key: c.signing_key,
            roster: c.roster,
        })
    }

    /// The gRPC client, for calls this type does not wrap.
    pub fn client(&mut self) -> &mut CoordinatorClient<Channel> {
        &mut self.client
    }

    fn key(&self) -> Result<&SigningKey, AnalystError> {
        self.signing_key.as_ref().ok_or(AnalystError::NoSigningKey)
    }

    /// The registered parties and their dataset schemas.
    ///
    /// # Errors
    /// [`AnalystError::Rpc`].
    pub async fn parties(&mut self) -> Result<Vec<pb::PartyInfo>, AnalystError> {
        Ok(self
            .client
            .list_parties(pb::ListPartiesRequest {})
            .await?
            .into_inner()
            .parties)
    }

    /// Signs `spec` now (fresh nonce and time) and submits it; returns the job id.
    ///
    /// # Errors
    /// [`AnalystError::NoSigningKey`], [`AnalystError::Rpc`] (a refusal, with the
    /// coordinator's reason).
    pub async fn submit(&mut self, spec: pb::JobSpec) -> Result<String, AnalystError> {
        let submission = treaty_trust::identity::sign_now(spec, &self.name, self.key()?)?;
        Ok(self
            .client
            .submit_job(pb::SubmitJobRequest {
                submission: Some(submission),
            })
            .await?
            .into_inner()
            .job_id)
    }

    /// The analyst's newest jobs, at most `limit` (0: the coordinator's default page, 50),
    /// newest first. The coordinator serves at most [`treaty_proto::MAX_JOBS_PAGE`] jobs a page; this
    /// follows its pages until it has `limit` jobs or there are no more.
    ///
    /// # Errors
    /// [`AnalystError::Rpc`].
    pub async fn jobs(&mut self, limit: u32) -> Result<Vec<pb::Job>, AnalystError> {
        if limit == 0 {
            return Ok(self.jobs_page(0, String::new()).await?.0);
        }
        let mut jobs = Vec::new();
        let mut token = String::new();
        while (jobs.len() as u32) < limit {
            let want = (limit - jobs.len() as u32).min(treaty_proto::MAX_JOBS_PAGE);
            let (page, next) = self.jobs_page(want, token).await?;
            jobs.extend(page);
            if next.is_empty() {
                break;
            }
            token = next;
        }
        jobs.truncate(limit as usize);
        Ok(jobs)
    }

    /// One page of the analyst's jobs, newest first: at most `limit` (0: 50; the coordinator
    /// clamps it to [`treaty_proto::MAX_JOBS_PAGE`]), starting at `page_token` (empty: the newest). Returns
    /// the jobs and the next page's token (empty after the last page).
    ///
    /// # Errors
    /// [`AnalystError::Rpc`] (`INVALID_ARGUMENT` for a token the coordinator did not make).
    pub async fn jobs_page(
        &mut self,
        limit: u32,
        page_token: String,
    ) -> Result<(Vec<pb::Job>, String), AnalystError> {
        let page = self
            .client
            .list_jobs(pb::ListJobsRequest { limit, page_token })
            .await?
            .into_inner();
        Ok((page.jobs, page.next_page_token))
    }

    /// One job.
    ///
    /// # Errors
    /// [`AnalystError::Rpc`].
    pub async fn job(&mut self, job_id: &str) -> Result<pb::Job, AnalystError> {
        Ok(self
            .client
            .get_job(pb::GetJobRequest {
                job_id: job_id.to_string(),
            })
            .await?
            .into_inner())
    }

    /// Follows a job, calling `on_state` with every state the coordinator sends, until the job
    /// ends; returns the last.
    ///
    /// # Errors
    /// [`AnalystError::Rpc`], or [`AnalystError::Malformed`] if the stream ends empty.
    pub async fn watch(
        &mut self,
        job_id: &str,
        mut on_state: impl FnMut(&pb::Job),
    ) -> Result<pb::Job, AnalystError> {
        let mut stream = self
            .client
            .watch_job(pb::WatchJobRequest {
                job_id: job_id.to_string(),
            })
            .await?
            .into_inner();
        let mut last = None;
        while let Some(job) = stream.message().await? {
            on_state(&job);
            last = Some(job);
        }
        last.ok_or_else(|| AnalystError::Malformed("the coordinator sent no job state".into()))
    }

    /// Cancels a job (signed); returns its state after.
    ///
    /// # Errors
    /// [`AnalystError::NoSigningKey`], [`AnalystError::Rpc`].
    pub async fn cancel(&mut self, job_id: &str, reason: &str) -> Result<pb::Job, AnalystError> {
        let request = treaty_trust::identity::sign_cancel(job_id, reason, self.key()?);
        Ok(self.client.cancel_job(request).await?.into_inner())
    }

    /// The keys the parties' result signatures are checked with.
    ///
    /// # Errors
    /// [`AnalystError::NoRoster`] for [`KeySource::Roster`] without one;
    /// [`AnalystError::Rpc`] or a malformed registry for [`KeySource::Coordinator`].
    pub async fn party_keys(&mut self, source: KeySource) -> Result<PartyKeys, AnalystError> {
        match source {
            KeySource::Given(keys) => Ok(keys),
            KeySource::Roster => Ok(self
                .roster
                .as_ref()
                .ok_or(AnalystError::NoRoster)?
                .party_keys()),
            KeySource::Coordinator => {
                let registry = self
                    .client
                    .get_audit_registry(pb::GetAuditRegistryRequest {})
                    .await?
                    .into_inner();
                Ok(treaty_audit::Registry::from_proto(&registry)?.party_keys()?)
            }
        }
    }

    /// Fetches a succeeded job's result, verifies every party's signature with `keys` before
    /// opening anything, opens each share with `key` and decodes the result for the job's kind.
    ///
    /// # Errors
    /// [`AnalystError::NotSucceeded`] for a job that did not succeed (with its reason);
    /// [`treaty_trust::TrustError::ResultSignature`] (as [`AnalystError::Trust`]) naming a
    /// party whose share does not verify; [`AnalystError::Malformed`] for reports that disagree.
    pub async fn result(
        &mut self,
        job_id: &str,
        key: &RecipientSecretKey,
        keys: &PartyKeys,
    ) -> Result<JobResult, AnalystError> {
        let job = self.job(job_id).await?;
        if job.state() != JobState::Succeeded {
            return Err(AnalystError::NotSucceeded {
                job: job.id.clone(),
                state: state_name(job.state()),
                reason: job.reason.clone(),
            });
        }
        let c = &mut self.client;
        Ok(match job.spec.as_ref().and_then(Kind::of) {
            Some(Kind::Psi) => JobResult::Psi {
                reports: crate::fetch_psi_result(c, &job, key, keys)
                    .await?
                    .into_iter()
                    .map(|(party, r)| (party, r.into()))
                    .collect(),
            },
            Some(Kind::Train) => {
                JobResult::Train(crate::fetch_train_result(c, &job, key, keys).await?)
            }
            Some(Kind::Score) => {
                JobResult::Score(crate::fetch_score_result(c, &job, key, keys).await?)
            }
            Some(Kind::FheScore) => {
                JobResult::FheScore(crate::fetch_fhe_score_result(c, &job, key, keys).await?)
            }
            Some(Kind::Stats) | None => {
                JobResult::Stats(crate::fetch_stats_result(c, &job, key, keys).await?)
            }
        })
    }
}

/// A job state as analysts read it: `succeeded`, `failed`, `rejected`, …
#[must_use]
pub fn state_name(state: JobState) -> String {
    state
        .as_str_name()
        .trim_start_matches("JOB_STATE_")
        .to_ascii_lowercase()
}

/// Reads the parties' keys from a registry saved by `treaty audit registry`.
///
/// # Errors
/// [`AnalystError::Io`], or a file that is not a registry.
pub fn read_party_keys(path: &Path) -> Result<PartyKeys, AnalystError> {
    let text = std::fs::read_to_string(path).map_err(|source| AnalystError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(treaty_audit::Registry::from_json(&text)?.party_keys()?)
}
