//! Secrets: the platform key, encryption at rest, keyed hashes and random tokens.

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit},
};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// The platform's 32-byte secret key. Every other key (encryption, hashing, JWT signing) is
/// derived from it with a purpose label, so one value in the configuration is enough.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SecretKey(bytes)
    }

    /// Parses the standard base64 form written by [`SecretKey::to_base64`].
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| Error::Invalid("the secret key is not valid base64".into()))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
            Error::Invalid("the secret key must be 32 bytes (44 characters of base64)".into())
        })?;
        Ok(SecretKey(bytes))
    }

    /// The standard base64 form of the key.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// A key for one purpose, derived so that keys of different purposes are unrelated.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = hmac_with(&self.0);
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A keyed hash (HMAC-SHA256) of `data` for `purpose`, as hex. Used to look up and verify
    /// machine-generated secrets (API keys, cluster passwords) on the hot path.
    pub fn keyed_hash(&self, purpose: &str, data: &[u8]) -> String {
        let mut mac = hmac_with(&self.derive(purpose));
        mac.update(data);
        to_hex(&mac.finalize().into_bytes())
    }

    /// Encrypts a secret for storage: base64 of a random 24-byte nonce followed by the
    /// XChaCha20-Poly1305 ciphertext.
    pub fn encrypt(&self, plaintext: &str) -> Result<String> {
        let cipher = XChaCha20Poly1305::new(&self.derive("encryption-at-rest").into());
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(XNonce::from_slice(&nonce), plaintext.as_bytes())
            .map_err(|_| {
                Error::internal(
                    "could not encrypt a secret",
                    "XChaCha20-Poly1305 refused the buffer",
                )
            })?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        Ok(STANDARD.encode(out))
    }

    /// Decrypts what [`SecretKey::encrypt`] produced with the same key.
    pub fn decrypt(&self, stored: &str) -> Result<String> {
        let failed = |why: &str| {
            Error::internal(
                "could not decrypt a stored secret (was the secret key changed?)",
                why.to_owned(),
            )
        };
        let bytes = STANDARD.decode(stored).map_err(|_| failed("not base64"))?;
        if bytes.len() < 24 {
            return Err(failed("too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let cipher = XChaCha20Poly1305::new(&self.derive("encryption-at-rest").into());
        let plaintext = cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| failed("authentication tag mismatch"))?;
        String::from_utf8(plaintext).map_err(|_| failed("not UTF-8"))
    }
}

/// HMAC-SHA256 keyed with a 32-byte key. HMAC pads keys shorter than the 64-byte block with
/// zeros, so padding here gives the same MAC through the infallible constructor.
fn hmac_with(key: &[u8; 32]) -> HmacSha256 {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    <HmacSha256 as KeyInit>::new(&block.into())
}

/// A random secret of `bytes` bytes as URL-safe base64 without padding (ASCII only, no `=`
/// or `,`, so it is safe in HTTP Basic credentials and SCRAM user names).
pub fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

/// Compares two secrets in constant time.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encrypted_secret_decrypts_to_itself_and_not_with_another_key() {
        let key = SecretKey::generate();
        let stored = key.encrypt("hunter2").unwrap();
        assert_ne!(stored, "hunter2");
        assert_eq!(key.decrypt(&stored).unwrap(), "hunter2");
        assert!(SecretKey::generate().decrypt(&stored).is_err());
    }

    #[test]
    fn the_padded_key_gives_the_standard_hmac() {
        let key = [7u8; 32];
        let mut standard = <HmacSha256 as Mac>::new_from_slice(&key).unwrap();
        standard.update(b"data");
        let mut padded = hmac_with(&key);
        padded.update(b"data");
        assert_eq!(
            standard.finalize().into_bytes(),
            padded.finalize().into_bytes()
        );
    }

    #[test]
    fn keyed_hashes_differ_by_purpose_and_key() {
        let key = SecretKey::generate();
        assert_eq!(key.keyed_hash("a", b"x"), key.keyed_hash("a", b"x"));
        assert_ne!(key.keyed_hash("a", b"x"), key.keyed_hash("b", b"x"));
        assert_ne!(
            key.keyed_hash("a", b"x"),
            SecretKey::generate().keyed_hash("a", b"x")
        );
    }

    #[test]
    fn a_key_survives_its_base64_form() {
        let key = SecretKey::generate();
        let again = SecretKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(key.0, again.0);
        assert!(SecretKey::from_base64("c2hvcnQ=").is_err());
    }
}
