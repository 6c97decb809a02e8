//! Who this party computes with: the assignment's parties checked against what the analyst
//! signed, and (with a roster) against the roster this node's operator accepted.
//!
//! The coordinator only relays the membership of a job; it does not decide it. The analyst's
//! signed spec names the parties and their order (`inputs`), and the node's roster says who each
//! party is (its certificate and endpoint). A difference in any of them — another party, another
//! order, an index out of place, a party twice, a fingerprint or endpoint other than the roster's —
//! refuses the job before this party opens a single data-plane connection.

use treaty_proto::v1 as pb;
use treaty_trust::roster::Roster;

use crate::link::SessionPeer;

/// Why an assignment's membership is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// The assignment lists other parties than the signed spec's inputs, or in another order.
    #[error(
        "the coordinator assigned the parties [{assigned}] but the analyst signed [{signed}] \
         (same parties, same order required)"
    )]
    NotTheSignedParties {
        /// The assignment's party ids in order.
        assigned: String,
        /// The signed spec's party ids in order.
        signed: String,
    },
    /// A peer's index is not its position.
    #[error("the coordinator gave party {party:?} index {index}, its position is {position}")]
    WrongIndex {
        /// The party.
        party: String,
        /// The index the coordinator sent.
        index: u32,
        /// Its position in the signed order.
        position: usize,
    },
    /// A party appears twice.
    #[error("party {0:?} appears twice in the job")]
    Duplicate(String),
    /// A party is not in this node's roster.
    #[error("party {0:?} is not in this party's roster")]
    NotInRoster(String),
    /// The coordinator's certificate fingerprint for a party differs from the roster's.
    #[error(
        "the coordinator's certificate fingerprint for party {0:?} is not the one this party's \
         roster pins"
    )]
    FingerprintMismatch(String),
    /// The coordinator's endpoint for a party differs from the roster's.
    #[error(
        "the coordinator's endpoint for party {party:?} ({given}) is not the roster's ({roster})"
    )]
    EndpointMismatch {
        /// The party.
        party: String,
        /// The coordinator's endpoint.
        given: String,
        /// The roster's endpoint.
        roster: String,
    },
}

/// Checks the assignment's parties against the signed `spec` (already checked to be what the
/// analyst signed) and, when given, against `roster`.
///
/// # Errors
/// The first difference found.
pub fn check(
    assignment: &pb::JobAssignment,
    spec: &pb::JobSpec,
    roster: Option<&Roster>,
) -> Result<(), MembershipError> {
    let signed: Vec<&str> = spec.inputs.iter().map(|i| i.party.as_str()).collect();
    let assigned: Vec<&str> = assignment.peers.iter().map(|p| p.party.as_str()).collect();
    if signed != assigned {
        return Err(MembershipError::NotTheSignedParties {
            assigned: assigned.join(", "),
            signed: signed.join(", "),
        });
    }
    for (position, peer) in assignment.peers.iter().enumerate() {
        if peer.index as usize != position {
            return Err(MembershipError::WrongIndex {
                party: peer.party.clone(),
                index: peer.index,
                position,
            });
        }
        if assignment.peers[..position]
            .iter()
            .any(|p| p.party == peer.party)
        {
            return Err(MembershipError::Duplicate(peer.party.clone()));
        }
        if let Some(roster) = roster {
            let member = roster
                .party(&peer.party)
                .ok_or_else(|| MembershipError::NotInRoster(peer.party.clone()))?;
            if !peer.tls_cert_sha256.is_empty()
                && peer.tls_cert_sha256.as_slice() != member.cert_sha256.as_slice()
            {
                return Err(MembershipError::FingerprintMismatch(peer.party.clone()));
            }
            if !peer.endpoint.is_empty() && peer.endpoint != member.endpoint {
                return Err(MembershipError::EndpointMismatch {
                    party: peer.party.clone(),
                    given: peer.endpoint.clone(),
                    roster: member.endpoint.clone(),
                });
            }
        }
    }
    Ok(())
}

/// The job's peers as this party dials and pins them: with a roster, every endpoint, fingerprint
/// and trusted CA comes from it (the coordinator's copy was checked equal by [`check`], and is
/// not used); without one, from the assignment (the certificate's role and name are still
/// checked on every link, see [`crate::link`]).
pub fn session_peers(assignment: &pb::JobAssignment, roster: Option<&Roster>) -> Vec<SessionPeer> {
    assignment
        .peers
        .iter()
        .map(|p| match roster.and_then(|r| r.party(&p.party)) {
            Some(m) => SessionPeer {
                party: p.party.clone(),
                endpoint: m.endpoint.clone(),
                tls_cert_sha256: m.cert_sha256.to_vec(),
                ca_pem: Some(m.ca_pem.clone()),
            },
            None => SessionPeer {
                party: p.party.clone(),
                endpoint: p.endpoint.clone(),
                tls_cert_sha256: p.tls_cert_sha256.clone(),
                ca_pem: None,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use treaty_trust::Role;
    use treaty_trust::roster::{MemberEntry, RosterFile};

    fn spec(parties: &[&str]) -> pb::JobSpec {
        pb::JobSpec {
            inputs: parties
                .iter()
                .map(|p| pb::JobInput {
                    party: p.to_string(),
                    dataset: "d".into(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn assignment(peers: &[(&str, u32, &str, [u8; 32])]) -> pb::JobAssignment {
        pb::JobAssignment {
            job_id: "job-1".into(),
            peers: peers
                .iter()
                .map(|(p, i, e, fp)| pb::JobPeer {
                    party: p.to_string(),
                    index: *i,
                    endpoint: e.to_string(),
                    tls_cert_sha256: fp.to_vec(),
                })
                .collect(),
            ..Default::default()
        }
    }

    /// A roster of hospital, insurer and a coordinator, each with its own CA (`testdata/`); the
    /// pinned certificate fingerprints are made up (membership compares them, nothing more).
    fn roster() -> (Roster, [u8; 32], [u8; 32]) {
        let mut members = Vec::new();
        let mut fps = Vec::new();
        for (k, role, name, ca) in [
            (
                1u8,
                Role::Coordinator,
                "coordinator",
                include_str!("../testdata/coordinator-ca.pem"),
            ),
            (
                2,
                Role::Party,
                "hospital",
                include_str!("../testdata/hospital-ca.pem"),
            ),
            (
                3,
                Role::Party,
                "insurer",
                include_str!("../testdata/insurer-ca.pem"),
            ),
        ] {
            let fp = [k; 32];
            fps.push(fp);
            members.push(MemberEntry {
                role: role.to_string(),
                name: name.into(),
                endpoint: format!("https://{name}:7000"),
                cert_sha256: hex::encode(fp),
                audit_key: hex::encode(
                    ed25519_dalek::SigningKey::from_bytes(&[9; 32])
                        .verifying_key()
                        .to_bytes(),
                ),
                sign_key: String::new(),
                result_key: String::new(),
                ca: ca.into(),
            });
        }
        let file = RosterFile {
            version: 1,
            consortium: String::new(),
            members,
        };
        let roster =
            Roster::parse(toml::to_string(&file).expect("toml").as_bytes()).expect("roster");
        (roster, fps[1], fps[2])
    }

    #[test]
    fn the_signed_parties_in_the_signed_order_pass() {
        let (roster, h, i) = roster();
        let a = assignment(&[
            ("hospital", 0, "https://hospital:7000", h),
            ("insurer", 1, "https://insurer:7000", i),
        ]);
        check(&a, &spec(&["hospital", "insurer"]), Some(&roster)).expect("membership");
        let peers = session_peers(&a, Some(&roster));
        assert!(peers.iter().all(|p| p.ca_pem.is_some()));
        assert_eq!(peers[1].tls_cert_sha256, i.to_vec());
    }

    #[test]
    fn any_difference_from_the_signed_spec_or_the_roster_is_refused() {
        let (roster, h, i) = roster();
        let signed = spec(&["hospital", "insurer"]);
        let cases = [
            (
                "a substituted party",
                assignment(&[("hospital", 0, "", h), ("mallory", 1, "", i)]),
            ),
            (
                "another order",
                assignment(&[("insurer", 0, "", i), ("hospital", 1, "", h)]),
            ),
            (
                "an extra party",
                assignment(&[
                    ("hospital", 0, "", h),
                    ("insurer", 1, "", i),
                    ("insurer", 2, "", i),
                ]),
            ),
            ("a missing party", assignment(&[("hospital", 0, "", h)])),
            (
                "a wrong index",
                assignment(&[("hospital", 0, "", h), ("insurer", 2, "", i)]),
            ),
            (
                "the coordinator's own fingerprint for the insurer",
                assignment(&[("hospital", 0, "", h), ("insurer", 1, "", [7; 32])]),
            ),
            (
                "another endpoint for the insurer",
                assignment(&[
                    ("hospital", 0, "", h),
                    ("insurer", 1, "https://evil:7000", i),
                ]),
            ),
        ];
        for (what, a) in cases {
            assert!(check(&a, &signed, Some(&roster)).is_err(), "{what} passed");
        }
        // A party the roster does not know, even when the analyst signed it.
        let a = assignment(&[("hospital", 0, "", h), ("mallory", 1, "", i)]);
        assert_eq!(
            check(&a, &spec(&["hospital", "mallory"]), Some(&roster)),
            Err(MembershipError::NotInRoster("mallory".into()))
        );
        // The same party twice in a signed spec.
        let a = assignment(&[("hospital", 0, "", h), ("hospital", 1, "", h)]);
        assert_eq!(
            check(&a, &spec(&["hospital", "hospital"]), None),
            Err(MembershipError::Duplicate("hospital".into()))
        );
    }

    #[test]
    fn without_a_roster_the_ids_and_order_still_come_from_the_signed_spec() {
        let a = assignment(&[("hospital", 0, "", [1; 32]), ("mallory", 1, "", [2; 32])]);
        assert!(matches!(
            check(&a, &spec(&["hospital", "insurer"]), None),
            Err(MembershipError::NotTheSignedParties { .. })
        ));
        let peers = session_peers(&a, None);
        assert!(peers.iter().all(|p| p.ca_pem.is_none()));
    }
}
