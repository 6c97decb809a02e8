//! The data owner's keys and the server-key wire format.
//!
//! The owner generates a [`OwnerKeys`]: a client key ([`FheClientKey`], which never leaves its
//! node) and a [`tfhe::CompressedServerKey`] it sends once to the evaluator. On the wire the server
//! key is tfhe's `safe_serialize` format under [`SERVER_KEY_SIZE_LIMIT`]; the evaluator reads it
//! with [`import_server_key`], which checks the size limit, the versioned header and conformance
//! with Treaty's parameters ([`treaty_config`]), and names it by its [`KeyId`].

use std::fmt;

use sha2::{Digest, Sha256};
use tfhe::safe_serialization::{safe_deserialize_conformant, safe_serialize};
use tfhe::{ClientKey, CompressedServerKey, Config, ConfigBuilder};

use crate::FheError;

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
/// Never serialized, never logged: `Debug` prints nothing but the type name.
///
/// **Zeroization is best effort.** tfhe's `ClientKey` neither implements `Zeroize` nor wipes itself
/// on drop, and its secret-key buffers are private. This wrapper keeps the key in one heap
/// allocation (`Box`, so moves of the wrapper never copy the key material) and drops it
/// explicitly in [`Drop`]; the freed memory is *not* overwritten. Wiping it for real needs
/// `ClientKey::into_raw_parts` down to the LWE/GLWE secret-key containers (left for issue 6).
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
        // Best effort (see the type's docs): release the key now, in one place.
        drop(self.key.take());
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
    #[must_use]
    pub fn generate() -> Self {
        let client = ClientKey::generate(treaty_config());
        let server = CompressedServerKey::new(&client);
        Self {
            client: FheClientKey::new(client),
            server,
        }
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
