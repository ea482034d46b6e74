//! The client side of SASL SCRAM-SHA-512 (RFC 5802).

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha512};

use crate::{Error, Result};

/// One SCRAM exchange.
#[derive(Debug)]
pub struct Scram {
    username: String,
    password: String,
    nonce: String,
    client_first_bare: String,
}

fn hmac(key: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let mut mac =
        <Hmac<Sha512> as Mac>::new_from_slice(key).map_err(|e| Error::Protocol(e.to_string()))?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// SCRAM escapes `=` and `,` in user names.
fn saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

impl Scram {
    /// Starts an exchange for a user.
    pub fn new(username: &str, password: &str) -> Self {
        let mut bytes = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let nonce = STANDARD.encode(bytes);
        let client_first_bare = format!("n={},r={nonce}", saslname(username));
        Scram {
            username: username.to_owned(),
            password: password.to_owned(),
            nonce,
            client_first_bare,
        }
    }

    /// The client-first message.
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// The client-final message for the server-first message, and the server signature expected
    /// in the server-final message.
    pub fn client_final(&self, server_first: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| Error::Protocol("server-first is not UTF-8".into()))?;
        let field = |key: &str| {
            server_first
                .split(',')
                .find_map(|part| part.strip_prefix(key))
                .ok_or_else(|| Error::Protocol(format!("server-first has no {key}")))
        };
        let nonce = field("r=")?;
        if !nonce.starts_with(&self.nonce) {
            return Err(Error::Protocol(
                "the server's nonce does not extend ours".into(),
            ));
        }
        let salt = STANDARD
            .decode(field("s=")?)
            .map_err(|_| Error::Protocol("bad salt".into()))?;
        let iterations: u32 = field("i=")?
            .parse()
            .map_err(|_| Error::Protocol("bad iteration count".into()))?;
        let salted = salted_password(&self.password, &salt, iterations);
        let client_key = hmac(&salted, b"Client Key")?;
        let stored_key = Sha512::digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac(&stored_key, auth_message.as_bytes())?;
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac(&salted, b"Server Key")?;
        let server_signature = hmac(&server_key, auth_message.as_bytes())?;
        let _ = &self.username;
        Ok((
            format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes(),
            server_signature,
        ))
    }

    /// Checks the server-final message.
    pub fn verify_server_final(server_final: &[u8], expected: &[u8]) -> Result<()> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| Error::Protocol("server-final is not UTF-8".into()))?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(Error::Authentication(error.to_owned()));
        }
        let signature = text
            .strip_prefix("v=")
            .and_then(|v| STANDARD.decode(v).ok())
            .ok_or_else(|| Error::Protocol("server-final has no signature".into()))?;
        if signature != expected {
            return Err(Error::Authentication(
                "the server's signature is wrong".into(),
            ));
        }
        Ok(())
    }
}

/// The SCRAM-SHA-512 salted password of `password` (RFC 5802's `Hi`: PBKDF2-HMAC-SHA512).
pub fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 64] {
    let mut salted = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut salted);
    salted
}
