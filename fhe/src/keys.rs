//! The data owner's keys and the server-key wire format.
//!
//! The owner generates a [`OwnerKeys`]: a client key ([`FheClientKey`], which never leaves its
//! node) and a [`tfhe::CompressedServerKey`] it sends once to the evaluator. On the wire the server
//! key is tfhe's `safe_serialize` format under [`SERVER_KEY_SIZE_LIMIT`]; the evaluator reads it
//! with [`import_server_key`], which checks the size limit, the versioned header and conformance
//! with Treaty's parameters ([`treaty_config`]), and names it by its [`KeyId`].

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};
use tfhe::prelude::*;
use tfhe::safe_serialization::safe_deserialize;
use tfhe::safe_serialization::{safe_deserialize_conformant, safe_serialize};
use tfhe::shortint::client_key::atomic_pattern::AtomicPatternClientKey;
use tfhe::{ClientKey, CompressedServerKey, Config, ConfigBuilder, ServerKey};
use zeroize::Zeroize;

use crate::FheError;

/// File names under a key directory.
pub const CLIENT_KEY_FILE: &str = "client.key";
/// See [`CLIENT_KEY_FILE`].
pub const SERVER_KEY_FILE: &str = "server.key";

/// Upper bound on a serialized client key (≈ 30 KiB with Treaty's parameters).
const CLIENT_KEY_SIZE_LIMIT: u64 = 16 << 20;

/// Writes `bytes` to `path` through a temporary file created with mode 0600, then renames it.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// Upper bound on a serialized (and on a deserialized) compressed server key: 256 MiB.
///
/// With Treaty's parameters the compressed server key is ≈ 57 MiB (≈ 101 MiB if list compression
/// is enabled later), so this leaves room without letting a peer make us allocate without bound.
pub const SERVER_KEY_SIZE_LIMIT: u64 = 256 << 20;

/// Treaty's parameter choice: tfhe's defaults (`ConfigBuilder::default()`), i.e. 2-bit message and
/// 2-bit carry blocks, classic PBS, p_fail ≤ 2^-128, no list compression, no compact public key.
///
/// Both parties derive the same config; a server key is accepted only if it conforms to it.
#[must_use]
pub fn treaty_config() -> Config {
    ConfigBuilder::default().build()
}

/// The owner's tfhe client key (the secret key that decrypts).
///
/// Never serialized except by [`OwnerKeys::save`] (to a 0600 file), never logged: `Debug` prints
/// nothing but the type name. Dropping it overwrites the secret-key buffers with zeros: tfhe's
/// `ClientKey` neither implements `Zeroize` nor wipes itself, so [`Drop`] takes it apart with
/// tfhe's `into_raw_parts` down to the GLWE and LWE secret-key containers and zeroizes them.
/// The key lives in one heap allocation (`Box`), so moving the wrapper never copies it.
pub struct FheClientKey {
    key: Option<Box<ClientKey>>,
}

impl FheClientKey {
    fn new(key: ClientKey) -> Self {
        Self {
            key: Some(Box::new(key)),
        }
    }

    /// The tfhe client key, for encrypting and decrypting on the owner's node.
    ///
    /// Reveals the secret key to the caller: do not clone, serialize or log what you get.
    pub(crate) fn reveal(&self) -> &ClientKey {
        // Invariant: `key` is `Some` from construction until `drop`, which is the only place
        // that takes it.
        #[allow(clippy::expect_used)]
        self.key.as_deref().expect("client key present until drop")
    }
}

impl fmt::Debug for FheClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FheClientKey").finish_non_exhaustive()
    }
}

impl Drop for FheClientKey {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        // Treaty's config enables none of the optional private keys (compact, compression,
        // noise squashing, ...): only the integer key holds secrets.
        let (integer, ..) = key.into_raw_parts();
        match integer.into_raw_parts().atomic_pattern {
            AtomicPatternClientKey::Standard(k) => {
                let (glwe, lwe, ..) = k.into_raw_parts();
                glwe.into_container().zeroize();
                lwe.into_container().zeroize();
            }
            AtomicPatternClientKey::KeySwitch32(k) => {
                let (glwe, lwe, ..) = k.into_raw_parts();
                glwe.into_container().zeroize();
                lwe.into_container().zeroize();
            }
        }
    }
}

/// Identifier of a server key: SHA-256 of its serialized bytes, for the evaluator's key cache.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 32]);

impl KeyId {
    /// Hashes serialized server-key bytes.
    #[must_use]
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// An id as received (a peer's claim: nothing checks it names any key).
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex of the digest.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

/// A compressed server key serialized for the wire, with its [`KeyId`].
pub struct ServerKeyBytes {
    bytes: Vec<u8>,
    id: KeyId,
}

impl ServerKeyBytes {
    /// The serialized bytes (`safe_serialize` format).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The key's identifier.
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        self.id
    }

    /// Takes the bytes.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
impl ServerKeyBytes {
    /// Bytes standing in for a serialized key, with their id (no key behind them).
    pub(crate) fn for_tests(bytes: Vec<u8>) -> Self {
        let id = KeyId::of_bytes(&bytes);
        Self { bytes, id }
    }
}

impl fmt::Debug for ServerKeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerKeyBytes")
            .field("len", &self.bytes.len())
            .field("id", &self.id)
            .finish()
    }
}

/// The data owner's key pair under [`treaty_config`].
pub struct OwnerKeys {
    client: FheClientKey,
    server: CompressedServerKey,
}

impl OwnerKeys {
    /// Generates a fresh client key and its compressed server key (several CPU-seconds).
    ///
    /// The key pair gets a random 16-byte tag (tfhe's `Tag`), which its server key and every
    /// ciphertext encrypted under it carry: the evaluator refuses a ciphertext whose tag is not
    /// its server key's ([`FheError::WrongKey`]), which catches rows encrypted under another key
    /// of the same parameters.
    ///
    /// # Errors
    /// [`FheError::Entropy`] if the OS has no randomness for the tag.
    pub fn generate() -> Result<Self, FheError> {
        let mut tag = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut crate::os_rng()?, &mut tag);
        let mut client = ClientKey::generate(treaty_config());
        client.tag_mut().set_data(&tag);
        let server = CompressedServerKey::new(&client);
        Ok(Self {
            client: FheClientKey::new(client),
            server,
        })
    }

    /// Writes the key pair to `dir` (created if missing): `client.key` with permissions 0600
    /// (owner read/write only), then `server.key`. Each file is written to a temporary name and
    /// renamed, so a crash leaves the old pair or the new one. The client key is protected by
    /// the file permissions only, not encrypted: keep the state directory on an encrypted volume
    /// (SECURITY.md).
    ///
    /// # Errors
    /// [`FheError::KeyFile`] for I/O failures, [`FheError::KeySerialize`] if tfhe fails.
    pub fn save(&self, dir: &Path) -> Result<(), FheError> {
        let io = |path: &Path, e: std::io::Error| FheError::KeyFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut bytes = Vec::new();
        safe_serialize(self.client.reveal(), &mut bytes, CLIENT_KEY_SIZE_LIMIT).map_err(|e| {
            FheError::KeySerialize {
                limit: CLIENT_KEY_SIZE_LIMIT,
                reason: e.to_string(),
            }
        })?;
        let written = write_private(&dir.join(CLIENT_KEY_FILE), &bytes);
        bytes.zeroize();
        written.map_err(|e| io(&dir.join(CLIENT_KEY_FILE), e))?;
        let server = self.export_server_key()?;
        write_private(&dir.join(SERVER_KEY_FILE), server.as_bytes())
            .map_err(|e| io(&dir.join(SERVER_KEY_FILE), e))
    }

    /// Reads a key pair written by [`OwnerKeys::save`]; `None` if `dir` holds none.
    ///
    /// # Errors
    /// [`FheError::KeyFile`] for unreadable or malformed files, or a client key file that group
    /// or others may read; [`FheError::KeyRejected`] for a server key that does not conform.
    pub fn load(dir: &Path) -> Result<Option<Self>, FheError> {
        let client_path = dir.join(CLIENT_KEY_FILE);
        let bad = |path: &Path, reason: String| FheError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        let mut bytes = match std::fs::read(&client_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(&client_path, e.to_string())),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&client_path)
                .map_err(|e| bad(&client_path, e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                bytes.zeroize();
                return Err(bad(
                    &client_path,
                    format!(
                        "permissions {:o}: group or others may read the client key; chmod 600 it",
                        mode & 0o777
                    ),
                ));
            }
        }
        let client: Result<ClientKey, _> =
            safe_deserialize(bytes.as_slice(), CLIENT_KEY_SIZE_LIMIT);
        bytes.zeroize();
        let client = FheClientKey::new(client.map_err(|e| bad(&client_path, e))?);
        let server_path = dir.join(SERVER_KEY_FILE);
        let server_bytes =
            std::fs::read(&server_path).map_err(|e| bad(&server_path, e.to_string()))?;
        let (server, _) = import_server_key(&server_bytes)?;
        if server.tag() != client.reveal().tag() {
            return Err(bad(
                &server_path,
                "the server key is not the client key's".into(),
            ));
        }
        Ok(Some(Self { client, server }))
    }

    /// Decompresses the server key (≈ 1 s, ≈ 170 MiB): the owner needs it to decompress the
    /// masked results it decrypts.
    #[must_use]
    pub fn server_key(&self) -> ServerKey {
        self.server.decompress()
    }

    /// The client key (stays on the owner's node).
    #[must_use]
    pub fn client_key(&self) -> &FheClientKey {
        &self.client
    }

    /// The compressed server key (public: it lets anyone compute on, not read, ciphertexts).
    #[must_use]
    pub fn compressed_server_key(&self) -> &CompressedServerKey {
        &self.server
    }

    /// Serializes the compressed server key for the evaluator, under [`SERVER_KEY_SIZE_LIMIT`].
    ///
    /// # Errors
    /// [`FheError::KeySerialize`] if tfhe fails or the key exceeds the limit.
    pub fn export_server_key(&self) -> Result<ServerKeyBytes, FheError> {
        let mut bytes = Vec::new();
        safe_serialize(&self.server, &mut bytes, SERVER_KEY_SIZE_LIMIT).map_err(|e| {
            FheError::KeySerialize {
                limit: SERVER_KEY_SIZE_LIMIT,
                reason: e.to_string(),
            }
        })?;
        let id = KeyId::of_bytes(&bytes);
        Ok(ServerKeyBytes { bytes, id })
    }
}

impl fmt::Debug for OwnerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerKeys")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// Reads a compressed server key received from an owner: size limit, versioned header, type name
/// and conformance with Treaty's parameters ([`treaty_config`]) are all checked.
///
/// # Errors
/// [`FheError::KeyRejected`] for truncated, oversized or foreign bytes, or a key generated for
/// another parameter set.
pub fn import_server_key(bytes: &[u8]) -> Result<(CompressedServerKey, KeyId), FheError> {
    import_server_key_for(bytes, treaty_config())
}

/// [`import_server_key`] against an explicit config instead of [`treaty_config`] (for peers that
/// negotiated other parameters; tests use it to check that a mismatch is rejected).
///
/// # Errors
/// As [`import_server_key`].
pub fn import_server_key_for(
    bytes: &[u8],
    config: Config,
) -> Result<(CompressedServerKey, KeyId), FheError> {
    let key: CompressedServerKey =
        safe_deserialize_conformant(bytes, SERVER_KEY_SIZE_LIMIT, &config.into()).map_err(
            |reason| FheError::KeyRejected {
                len: bytes.len(),
                reason,
            },
        )?;
    Ok((key, KeyId::of_bytes(bytes)))
}
