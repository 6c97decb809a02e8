//! `treaty init` and the analyst's HPKE key files.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use treaty_mpc::output::RecipientSecretKey;

#[derive(Args, Debug)]
pub(crate) struct InitArgs {
    /// Directory to create (refuses to overwrite an existing CA).
    #[arg(long, default_value = "treaty-pki")]
    out: PathBuf,
    /// Party ids, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "hospital,insurer,bank")]
    parties: Vec<String>,
    /// Analyst names, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "analyst")]
    analysts: Vec<String>,
    /// Auditor names, comma separated (certificates that read every job and audit record and
    /// change nothing). Default: none.
    #[arg(long, value_delimiter = ',')]
    auditors: Vec<String>,
    /// Extra DNS names or IPs for the coordinator's certificate.
    #[arg(long = "coordinator-san")]
    coordinator_sans: Vec<String>,
}

pub(crate) fn init(args: InitArgs) -> anyhow::Result<()> {
    let written = treaty_trust::pki::write_deployment(
        &args.out,
        &args.coordinator_sans,
        &args.parties,
        &args.analysts,
        &args.auditors,
    )?;
    let mut paths: Vec<PathBuf> = written.paths().into_iter().map(Path::to_path_buf).collect();
    let mut rng = treaty_mpc::seeds::os_rng()?;
    let mut signers = Vec::new();
    for analyst in &args.analysts {
        let key = RecipientSecretKey::generate(&mut rng);
        let secret = args.out.join(format!("{analyst}.hpke.key"));
        write_secret(&secret, hex::encode(&key.to_bytes()[..]).as_bytes())?;
        let public = args.out.join(format!("{analyst}.hpke.pub"));
        std::fs::write(&public, hex::encode(key.public_key()?))
            .with_context(|| format!("writing {}", public.display()))?;
        paths.extend([secret, public]);
        signers.push((analyst.clone(), Some(key.public_key()?)));
    }
    paths.extend(treaty_trust::identity::write_analyst_keys(
        &args.out, &signers,
    )?);
    println!("wrote the deployment's keys and certificates:");
    for p in &paths {
        println!("  {}", p.display());
    }
    println!(
        "keep ca.key offline; give each node only ca.pem and its own NAME.pem/NAME.key; \
         analysts keep NAME.hpke.key and NAME.sign.key secret and put NAME.hpke.pub in job \
         files; analysts.toml lists who may submit (the coordinator's --analysts and each \
         party policy's analysts_file)"
    );
    Ok(())
}

pub(crate) fn write_secret(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads an analyst's HPKE private key file (hex).
pub(crate) fn read_secret_key(path: &Path) -> anyhow::Result<RecipientSecretKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = hex::decode(text.trim())
        .with_context(|| format!("{} is not a hex-encoded key", path.display()))?;
    RecipientSecretKey::from_bytes(&bytes)
        .with_context(|| format!("{} is not an X25519 private key", path.display()))
}

/// Reads an analyst's HPKE public key file (hex).
pub(crate) fn read_public_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = hex::decode(text.trim())
        .with_context(|| format!("{} is not a hex-encoded key", path.display()))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{} does not hold a 32-byte key", path.display()))
}
