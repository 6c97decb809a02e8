use super::*;
use crate::pki::{IssuedCert, Pki};

/// One organisation: its own CA and one certificate.
struct Org {
    ca: Pki,
    cert: IssuedCert,
}

fn org(role: Role, name: &str) -> Org {
    let ca = Pki::generate(&format!("{name} CA")).expect("CA");
    let cert = ca.issue(role, name, &[]).expect("certificate");
    Org { ca, cert }
}

fn key(seed: u8) -> String {
    hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
            .verifying_key()
            .to_bytes(),
    )
}

fn entry(o: &Org, role: Role) -> MemberEntry {
    MemberEntry {
        role: role.to_string(),
        name: o.cert.name().to_string(),
        endpoint: match role {
            Role::Party | Role::Coordinator => format!("https://{}:7000", o.cert.name()),
            _ => String::new(),
        },
        cert_sha256: hex::encode(o.cert.cert_sha256()),
        audit_key: if role == Role::Party {
            key(1)
        } else {
            String::new()
        },
        sign_key: if role == Role::Analyst {
            key(2)
        } else {
            String::new()
        },
        result_key: String::new(),
        ca: o.ca.ca_cert_pem().to_string(),
    }
}

struct Consortium {
    coordinator: Org,
    hospital: Org,
    insurer: Org,
    alice: Org,
    file: RosterFile,
}

fn consortium() -> Consortium {
    let coordinator = org(Role::Coordinator, "coordinator");
    let hospital = org(Role::Party, "hospital");
    let insurer = org(Role::Party, "insurer");
    let alice = org(Role::Analyst, "alice");
    let file = RosterFile {
        version: 1,
        consortium: "claims".into(),
        members: vec![
            entry(&coordinator, Role::Coordinator),
            entry(&hospital, Role::Party),
            entry(&insurer, Role::Party),
            entry(&alice, Role::Analyst),
        ],
    };
    Consortium {
        coordinator,
        hospital,
        insurer,
        alice,
        file,
    }
}

fn encode(file: &RosterFile) -> Vec<u8> {
    toml::to_string(file).expect("encode").into_bytes()
}

fn der(o: &Org) -> Vec<u8> {
    CertificateDer::from_pem_slice(o.cert.cert_pem.as_bytes())
        .expect("der")
        .to_vec()
}

#[test]
fn a_roster_identifies_members_by_pinned_certificate_and_stated_name() {
    let c = consortium();
    let roster = Roster::parse(&encode(&c.file)).expect("roster");
    assert_eq!(roster.version, 1);
    assert_eq!(roster.members().len(), 4);
    let m = roster.identify(&der(&c.hospital)).expect("hospital");
    assert_eq!(m.identity, PeerIdentity::new(Role::Party, "hospital"));
    assert_eq!(m.endpoint, "https://hospital:7000");
    assert_eq!(
        roster
            .identify(&der(&c.alice))
            .expect("alice")
            .identity
            .role,
        Role::Analyst
    );
    assert_eq!(
        roster.coordinator().map(|m| m.identity.name.as_str()),
        Some("coordinator")
    );
    assert_eq!(roster.party_keys().len(), 2);
    // The bundle holds each CA once.
    assert_eq!(
        roster
            .ca_bundle(&[Role::Party])
            .matches("BEGIN CERTIFICATE")
            .count(),
        2
    );
    let _ = &c.insurer;
    let _ = &c.coordinator;
}

#[test]
fn a_certificate_the_roster_does_not_pin_is_nobody() {
    let c = consortium();
    let roster = Roster::parse(&encode(&c.file)).expect("roster");
    // The hospital's own CA issues a second "hospital" certificate: right name, not pinned.
    let second = c
        .hospital
        .ca
        .issue(Role::Party, "hospital", &[])
        .expect("issue");
    let second = CertificateDer::from_pem_slice(second.cert_pem.as_bytes()).expect("der");
    assert!(matches!(
        roster.identify(&second),
        Err(TrustError::Certificate(_))
    ));
    // The analyst's CA makes a certificate claiming to be the hospital.
    let forged = c
        .alice
        .ca
        .issue(Role::Party, "hospital", &[])
        .expect("issue");
    let forged = CertificateDer::from_pem_slice(forged.cert_pem.as_bytes()).expect("der");
    assert!(matches!(
        roster.identify(&forged),
        Err(TrustError::Certificate(_))
    ));
}

#[test]
fn a_pinned_certificate_stating_another_identity_is_refused() {
    let mut c = consortium();
    // The roster pins the analyst's certificate under the party name "mallory".
    let mut sybil = entry(&c.alice, Role::Party);
    sybil.name = "mallory".into();
    c.file.members.retain(|m| m.name != "alice");
    c.file.members.push(sybil);
    let roster = Roster::parse(&encode(&c.file)).expect("roster");
    assert!(matches!(
        roster.identify(&der(&c.alice)),
        Err(TrustError::Certificate(_))
    ));
}

#[test]
fn malformed_rosters_are_refused() {
    let c = consortium();
    type Change = Box<dyn Fn(&mut RosterFile)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "duplicate name",
            Box::new(|f| {
                let mut m = f.members[1].clone();
                m.role = "analyst".into();
                m.sign_key = key(3);
                m.cert_sha256 = hex::encode([7u8; 32]);
                f.members.push(m);
            }),
        ),
        (
            "same certificate twice",
            Box::new(|f| {
                let mut m = f.members[1].clone();
                m.name = "other".into();
                f.members.push(m);
            }),
        ),
        (
            "no coordinator",
            Box::new(|f| f.members.retain(|m| m.role != "coordinator")),
        ),
        (
            "two coordinators",
            Box::new(|f| {
                let mut m = f.members[0].clone();
                m.name = "coordinator2".into();
                m.cert_sha256 = hex::encode([8u8; 32]);
                f.members.push(m);
            }),
        ),
        (
            "unknown role",
            Box::new(|f| f.members[1].role = "root".into()),
        ),
        (
            "bad name",
            Box::new(|f| f.members[1].name = "Hospital".into()),
        ),
        (
            "short fingerprint",
            Box::new(|f| f.members[1].cert_sha256 = "abcd".into()),
        ),
        (
            "party without endpoint",
            Box::new(|f| f.members[1].endpoint.clear()),
        ),
        (
            "party without audit key",
            Box::new(|f| f.members[1].audit_key.clear()),
        ),
        (
            "analyst without sign key",
            Box::new(|f| f.members[3].sign_key.clear()),
        ),
        (
            "ca not PEM",
            Box::new(|f| f.members[1].ca = "not a certificate".into()),
        ),
    ];
    for (what, change) in cases {
        let mut file = c.file.clone();
        change(&mut file);
        assert!(
            matches!(Roster::parse(&encode(&file)), Err(TrustError::Roster(_))),
            "{what} accepted"
        );
    }
    assert!(matches!(
        Roster::parse(b"version = 1\n[[members]]\nrole = 1"),
        Err(TrustError::Roster(_))
    ));
    assert!(matches!(
        Roster::parse(&[0xff, 0xfe]),
        Err(TrustError::Roster(_))
    ));
}

#[test]
fn a_node_uses_only_a_roster_its_operator_accepted() {
    let c = consortium();
    let dir = tempfile::tempdir().expect("tempdir");
    let v1 = Roster::parse(&encode(&c.file)).expect("v1");
    assert!(matches!(
        check_accepted(dir.path(), &v1),
        Err(TrustError::RosterNotAccepted { pinned: None, .. })
    ));
    accept(dir.path(), &v1, "ops", 1).expect("accept v1");
    check_accepted(dir.path(), &v1).expect("v1 accepted");
    // Accepting the same file again changes nothing.
    assert_eq!(
        accept(dir.path(), &v1, "someone else", 2)
            .expect("again")
            .by,
        "ops"
    );

    // The file edited under the same version: not accepted, and cannot be.
    let mut edited = c.file.clone();
    edited.members.retain(|m| m.name != "insurer");
    let edited = Roster::parse(&encode(&edited)).expect("edited");
    assert!(matches!(
        check_accepted(dir.path(), &edited),
        Err(TrustError::RosterNotAccepted {
            pinned: Some((1, _)),
            ..
        })
    ));
    assert!(matches!(
        accept(dir.path(), &edited, "ops", 3),
        Err(TrustError::RosterVersion {
            version: 1,
            pinned: 1
        })
    ));

    // Version 2 is accepted explicitly; then version 1 is refused (no downgrade).
    let mut v2 = c.file.clone();
    v2.version = 2;
    v2.members.retain(|m| m.name != "insurer");
    let v2 = Roster::parse(&encode(&v2)).expect("v2");
    accept(dir.path(), &v2, "ops", 4).expect("accept v2");
    check_accepted(dir.path(), &v2).expect("v2 accepted");
    assert!(check_accepted(dir.path(), &v1).is_err());
    assert!(matches!(
        accept(dir.path(), &v1, "ops", 5),
        Err(TrustError::RosterVersion {
            version: 1,
            pinned: 2
        })
    ));
    // No temporary file is left behind.
    let names: Vec<_> = fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from(ACCEPTED_FILE)]);
}

#[test]
fn a_signer_must_be_a_listed_analyst_with_its_listed_key() {
    let c = consortium();
    let roster = Roster::parse(&encode(&c.file)).expect("roster");
    let listed = ed25519_dalek::SigningKey::from_bytes(&[2; 32])
        .verifying_key()
        .to_bytes();
    roster.check_signer("alice", &listed).expect("alice's key");
    let other = ed25519_dalek::SigningKey::from_bytes(&[5; 32])
        .verifying_key()
        .to_bytes();
    assert!(matches!(
        roster.check_signer("alice", &other),
        Err(TrustError::Roster(_))
    ));
    assert!(matches!(
        roster.check_signer("mallory", &listed),
        Err(TrustError::Roster(_))
    ));
    // A party's name is not an analyst.
    assert!(roster.check_signer("hospital", &listed).is_err());
}
