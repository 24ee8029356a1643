//! Lets hostile bytes through the signature check, as a compromised or buggy origin would send
//! them: without it the fuzzer never gets past the signature to the content parsers.

use ed25519_compact::{KeyPair, Seed};
use revguard::snapshot::{SigningKey, FORMAT_VERSION};

/// The fuzz origin's key seed.
pub const SEED: [u8; 32] = [0x66; 32];

/// `data` as it is when its first byte is even; otherwise a file of this kind (`magic`,
/// `context`) whose content after the common header is `data[1..]`, signed with the fuzz key
/// as docs/SNAPSHOT_FORMAT.md specifies (Ed25519 over `context || body`).
pub fn maybe_signed(data: &[u8], magic: [u8; 4], context: &[u8]) -> Vec<u8> {
    let Some((&switch, content)) = data.split_first() else {
        return Vec::new();
    };
    if switch % 2 == 0 {
        return data.to_vec();
    }
    let Ok(key) = SigningKey::from_seed(SEED) else {
        return Vec::new();
    };
    let mut body = Vec::with_capacity(14 + content.len());
    body.extend_from_slice(&magic);
    body.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    body.extend_from_slice(&key.key_id());
    body.extend_from_slice(content);
    let pair = KeyPair::from_seed(Seed::new(SEED));
    let signature = pair.sk.sign([context, &body].concat(), None);
    body.extend_from_slice(signature.as_ref());
    body
}
