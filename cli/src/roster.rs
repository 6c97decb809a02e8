//! `treaty roster`: the per-organisation set-up. Each organisation makes its own CA and member
//! certificate on its own machine (`roster keys`), writes its roster entry (`roster entry`); the
//! consortium assembles the entries into one roster (`roster assemble`), every organisation
//! checks its SHA-256 out of band (`roster show`), and each node's operator accepts it
//! (`roster accept`). A node then trusts its roster, never the coordinator, about its peers.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use treaty_mpc::output::RecipientSecretKey;
use treaty_party::PartyConfig;
use treaty_trust::roster::{self, MemberEntry, Roster, RosterFile};
use treaty_trust::tls::TlsIdentity;
use treaty_trust::{PeerIdentity, Role};

#[derive(Args, Debug)]
pub(crate) struct RosterArgs {
    #[command(subcommand)]
    command: RosterCommand,
}

#[derive(Subcommand, Debug)]
enum RosterCommand {
    /// Make this organisation's own CA and member certificate (and, for an analyst, its
    /// signing and result keys): no key for the whole consortium exists anywhere.
    Keys(KeysArgs),
    /// Print this member's roster entry (a `[[members]]` table) to send to the consortium.
    Entry(EntryArgs),
    /// Assemble entries into a roster file (checked: names, fingerprints, keys, one
    /// coordinator).
    Assemble(AssembleArgs),
    /// Print a roster's version, SHA-256 and members (compare the SHA-256 out of band).
    Show(ShowArgs),
    /// On a party's machine: accept the roster its config names (pinned in its state
    /// directory; the node refuses to start on a roster not accepted).
    Accept(AcceptArgs),
    /// Write the roster's analysts as an analysts file (for a policy's `analysts_file` and the
    /// coordinator's `--analysts`).
    Analysts(AnalystsArgs),
}

#[derive(Args, Debug)]
struct KeysArgs {
    /// The member's role: party, analyst, coordinator or auditor.
    #[arg(long)]
    role: String,
    /// The member's name (a party id, an analyst's name, `coordinator`).
    #[arg(long)]
    name: String,
    /// Directory to create (refuses to overwrite).
    #[arg(long)]
    out: PathBuf,
    /// Extra DNS names or IPs for the certificate (a server's host names).
    #[arg(long)]
    san: Vec<String>,
}

#[derive(Args, Debug)]
struct EntryArgs {
    /// A party: its node config (endpoint, certificate and CA; the audit key is created in its
    /// state directory if the node never ran).
    #[arg(long, conflicts_with_all = ["role", "name", "cert", "ca"])]
    config: Option<PathBuf>,
    /// Anyone else: the role.
    #[arg(long, requires_all = ["name", "cert", "ca"])]
    role: Option<String>,
    /// The member's name.
    #[arg(long)]
    name: Option<String>,
    /// The member's certificate.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// The CA that issued it.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The coordinator's URL (coordinator entries).
    #[arg(long)]
    endpoint: Option<String>,
    /// An analyst's NAME.sign.pub.
    #[arg(long)]
    sign_pub: Option<PathBuf>,
    /// An analyst's NAME.hpke.pub (optional).
    #[arg(long)]
    result_pub: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct AssembleArgs {
    /// The roster's version (higher than the one it replaces).
    #[arg(long)]
    version: u64,
    /// A label for the consortium.
    #[arg(long, default_value = "")]
    consortium: String,
    /// Where to write the roster.
    #[arg(long, short)]
    out: PathBuf,
    /// Entry files (as `treaty roster entry` prints them).
    #[arg(required = true)]
    entries: Vec<PathBuf>,
}

#[derive(Args, Debug)]
struct ShowArgs {
    /// The roster file.
    roster: PathBuf,
}

#[derive(Args, Debug)]
struct AcceptArgs {
    /// The party's node config (its `roster` and state directory).
    #[arg(long)]
    config: PathBuf,
    /// Who accepts it (recorded with the pin).
    #[arg(long, default_value_t = whoami())]
    by: String,
}

#[derive(Args, Debug)]
struct AnalystsArgs {
    /// The roster file.
    roster: PathBuf,
    /// Where to write the analysts file.
    #[arg(long, short)]
    out: PathBuf,
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "operator".into())
}

pub(crate) fn run(args: RosterArgs) -> anyhow::Result<()> {
    match args.command {
        RosterCommand::Keys(a) => keys(a),
        RosterCommand::Entry(a) => entry(a),
        RosterCommand::Assemble(a) => assemble(a),
        RosterCommand::Show(a) => show(&Roster::load(&a.roster)?),
        RosterCommand::Accept(a) => accept(a),
        RosterCommand::Analysts(a) => {
            let list = Roster::load(&a.roster)?.analysts();
            let text = toml::to_string(&list).context("encoding the analysts")?;
            write_new(&a.out, text.as_bytes())?;
            println!(
                "wrote {} ({} analysts)",
                a.out.display(),
                list.analysts.len()
            );
            Ok(())
        }
    }
}

fn keys(a: KeysArgs) -> anyhow::Result<()> {
    let role: Role = a.role.parse()?;
    let files = treaty_trust::pki::write_organisation(&a.out, role, &a.name, &a.san)?;
    let mut written = vec![
        files.ca_cert.clone(),
        files.ca_key.clone(),
        files.identity.cert.clone(),
        files.identity.key.clone(),
    ];
    if role == Role::Analyst {
        let key = RecipientSecretKey::generate(&mut treaty_mpc::seeds::os_rng()?);
        let secret = a.out.join(format!("{}.hpke.key", a.name));
        crate::keys::write_secret(&secret, hex::encode(&key.to_bytes()[..]).as_bytes())?;
        let public = a.out.join(format!("{}.hpke.pub", a.name));
        write_new(&public, hex::encode(key.public_key()?).as_bytes())?;
        written.extend([secret, public]);
        written.extend(treaty_trust::identity::write_analyst_keys(
            &a.out,
            &[(a.name.clone(), Some(key.public_key()?))],
        )?);
    }
    println!("wrote {} {:?}'s own keys and certificates:", role, a.name);
    for p in &written {
        println!("  {}", p.display());
    }
    println!(
        "certificate sha256 {}\nkeep ca.key offline; next: `treaty roster entry` for your \
         roster entry",
        hex::encode(files.identity.cert_sha256)
    );
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    Ok(treaty_trust::pki::write_new_file(
        path,
        bytes,
        treaty_trust::pki::FileKind::Public,
    )?)
}

/// The fingerprint of the (first) certificate in `pem` from `origin`, after checking that it
/// states `role`/`name`.
fn certificate(pem: &[u8], origin: &Path, role: Role, name: &str) -> anyhow::Result<[u8; 32]> {
    let der = CertificateDer::from_pem_slice(pem)
        .with_context(|| format!("{} holds no PEM certificate", origin.display()))?;
    PeerIdentity::of_der(&der)?.expect(role, name)?;
    Ok(sha256(&der))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).into()
}

fn entry(a: EntryArgs) -> anyhow::Result<()> {
    let member = match (&a.config, &a.role) {
        (Some(config), _) => party_entry(config)?,
        (None, Some(role)) => {
            let role: Role = role.parse()?;
            let (Some(name), Some(cert), Some(ca)) = (&a.name, &a.cert, &a.ca) else {
                bail!("--role needs --name, --cert and --ca");
            };
            let fp = certificate(read(cert)?.as_bytes(), cert, role, name)?;
            let key_file = |p: &Option<PathBuf>| -> anyhow::Result<String> {
                p.as_deref()
                    .map(|p| read(p).map(|t| t.trim().to_string()))
                    .transpose()
                    .map(Option::unwrap_or_default)
            };
            if role == Role::Coordinator && a.endpoint.is_none() {
                bail!("a coordinator entry needs --endpoint (its URL)");
            }
            if role == Role::Analyst && a.sign_pub.is_none() {
                bail!("an analyst entry needs --sign-pub (NAME.sign.pub)");
            }
            MemberEntry {
                role: role.to_string(),
                name: name.clone(),
                endpoint: a.endpoint.clone().unwrap_or_default(),
                cert_sha256: hex::encode(fp),
                audit_key: String::new(),
                sign_key: key_file(&a.sign_pub)?,
                result_key: key_file(&a.result_pub)?,
                ca: read(ca)?,
            }
        }
        (None, None) => bail!("give --config (a party) or --role, --name, --cert and --ca"),
    };
    let file = RosterFile {
        version: 0,
        consortium: String::new(),
        members: vec![member],
    };
    let text = toml::to_string(&file).context("encoding the entry")?;
    // Only the [[members]] table: `roster assemble` adds the header.
    let body = text
        .split_once("[[members]]")
        .map_or(text.as_str(), |(_, rest)| rest);
    print!("[[members]]{body}");
    Ok(())
}

fn party_entry(config: &Path) -> anyhow::Result<MemberEntry> {
    let cfg = PartyConfig::load(config)?;
    let tls = cfg
        .tls
        .as_ref()
        .context("a roster entry needs the node's [tls] files")?;
    let (ca, cert, key) = (
        cfg.resolve(&tls.ca),
        cfg.resolve(&tls.cert),
        cfg.resolve(&tls.key),
    );
    // Loading checks that the key belongs to the certificate; the entry takes both PEMs from it.
    let identity = TlsIdentity::load(&ca, &cert, &key)?;
    certificate(identity.cert_pem(), &cert, Role::Party, &cfg.id)?;
    let ca_pem = String::from_utf8(identity.ca_pem().to_vec())
        .with_context(|| format!("{} is not text", ca.display()))?;
    let audit_key = treaty_audit::identity_key(&treaty_party::audit_log::audit_dir(&cfg))?;
    Ok(MemberEntry {
        role: Role::Party.to_string(),
        name: cfg.id.clone(),
        endpoint: cfg.advertised_endpoint(),
        cert_sha256: hex::encode(identity.cert_sha256()),
        audit_key: hex::encode(audit_key.verifying_key().to_bytes()),
        sign_key: String::new(),
        result_key: String::new(),
        ca: ca_pem,
    })
}

fn assemble(a: AssembleArgs) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entries {
        members: Vec<MemberEntry>,
    }
    let mut members = Vec::new();
    for path in &a.entries {
        let entries: Entries =
            toml::from_str(&read(path)?).with_context(|| format!("{}", path.display()))?;
        members.extend(entries.members);
    }
    let file = RosterFile {
        version: a.version,
        consortium: a.consortium,
        members,
    };
    let text = format!(
        "# Treaty roster: every member of the consortium. Each node pins its own copy\n\
         # (`treaty roster accept`); a change is a new version.\n{}",
        toml::to_string(&file).context("encoding the roster")?
    );
    let roster = Roster::parse(text.as_bytes())?;
    write_new(&a.out, text.as_bytes())?;
    println!("wrote {}", a.out.display());
    show(&roster)
}

fn show(roster: &Roster) -> anyhow::Result<()> {
    println!(
        "roster version {}{} sha256 {}",
        roster.version,
        if roster.consortium.is_empty() {
            String::new()
        } else {
            format!(" ({})", roster.consortium)
        },
        hex::encode(roster.sha256)
    );
    for m in roster.members() {
        println!(
            "  {:<11} {:<16} cert {}…{}",
            m.identity.role.as_str(),
            m.identity.name,
            &hex::encode(m.cert_sha256)[..16],
            if m.endpoint.is_empty() {
                String::new()
            } else {
                format!("  {}", m.endpoint)
            }
        );
    }
    Ok(())
}

fn accept(a: AcceptArgs) -> anyhow::Result<()> {
    let cfg = PartyConfig::load(&a.config)?;
    let path = cfg
        .roster
        .as_ref()
        .map(|p| cfg.resolve(p))
        .context("the config names no `roster`")?;
    let roster = Roster::load(&path)?;
    if roster.party(&cfg.id).is_none() {
        bail!("the roster does not list this party ({:?})", cfg.id);
    }
    show(&roster)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let pin = roster::accept(&cfg.state_dir(), &roster, &a.by, now)?;
    println!(
        "accepted roster version {} for party {:?} (by {}); restart the node to use it",
        pin.version, cfg.id, pin.by
    );
    Ok(())
}
