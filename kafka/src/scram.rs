//! SASL SCRAM (RFC 5802, RFC 7677) with SHA-256 and SHA-512: the arithmetic both sides share,
//! and the client side of the exchange. The server side lives in the gateway (`gateway::sasl`).

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256, Sha512};

use crate::{Error, Result};

/// The two SCRAM mechanisms Kafka offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `SCRAM-SHA-256`.
    Sha256,
    /// `SCRAM-SHA-512`.
    Sha512,
}

impl Mechanism {
    /// The SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Parses a SASL mechanism name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            "SCRAM-SHA-512" => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    /// `HMAC(key, data)` with the mechanism's hash.
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Result<Vec<u8>> {
        // HMAC takes keys of any length; the error branch is unreachable but not unwrapped.
        let failed = |e: hmac::digest::InvalidLength| Error::Protocol(e.to_string());
        Ok(match self {
            Mechanism::Sha256 => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(failed)?;
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            Mechanism::Sha512 => {
                let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).map_err(failed)?;
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        })
    }

    /// `H(data)`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// RFC 5802's `Hi(password, salt, iterations)`: PBKDF2 with the mechanism's HMAC.
    pub fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
                out.to_vec()
            }
            Mechanism::Sha512 => salted_password(password, salt, iterations).to_vec(),
        }
    }

    /// What a server stores for a password: the salt, the iteration count, `StoredKey` and
    /// `ServerKey` (never the password).
    pub fn server_keys(self, password: &str, salt: &[u8], iterations: u32) -> Result<ServerKeys> {
        let salted = self.salted_password(password, salt, iterations);
        let client_key = self.hmac(&salted, b"Client Key")?;
        Ok(ServerKeys {
            mechanism: self,
            salt: salt.to_vec(),
            iterations,
            stored_key: self.hash(&client_key),
            server_key: self.hmac(&salted, b"Server Key")?,
        })
    }
}

/// A server's SCRAM credential for one user and mechanism.
#[derive(Clone)]
pub struct ServerKeys {
    /// The mechanism these keys are for.
    pub mechanism: Mechanism,
    /// The salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// `H(ClientKey)`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKeys")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// SCRAM escapes `=` and `,` in user names.
pub(crate) fn saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// The inverse of [`saslname`]; `None` for a malformed escape.
pub(crate) fn unescape_saslname(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=3D") => out.push('='),
            Some("=2C") => out.push(','),
            _ => return None,
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// A fresh random nonce: 24 bytes as base64 (printable, no `,`).
pub(crate) fn nonce() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    STANDARD.encode(bytes)
}

/// One client-side SCRAM-SHA-512 exchange.
#[derive(Debug)]
pub struct Scram {
    password: String,
    nonce: String,
    client_first_bare: String,
}

impl Scram {
    /// Starts an exchange for a user.
    pub fn new(username: &str, password: &str) -> Self {
        let nonce = nonce();
        let client_first_bare = format!("n={},r={nonce}", saslname(username));
        Scram {
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
        let mechanism = Mechanism::Sha512;
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
        let salted = mechanism.salted_password(&self.password, &salt, iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key")?;
        let stored_key = mechanism.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = mechanism.hmac(&stored_key, auth_message.as_bytes())?;
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = mechanism.hmac(&salted, b"Server Key")?;
        let server_signature = mechanism.hmac(&server_key, auth_message.as_bytes())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_names_escape_and_unescape() {
        let name = "a=b,c";
        assert_eq!(saslname(name), "a=3Db=2Cc");
        assert_eq!(unescape_saslname(&saslname(name)).as_deref(), Some(name));
        assert_eq!(unescape_saslname("bad=4"), None);
    }

    #[test]
    fn rfc7677_test_vector_gives_the_stored_and_server_keys() {
        // RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096.
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let keys = Mechanism::Sha256
            .server_keys("pencil", &salt, 4096)
            .unwrap();
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let server_signature = Mechanism::Sha256
            .hmac(&keys.server_key, auth_message.as_bytes())
            .unwrap();
        assert_eq!(
            STANDARD.encode(server_signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }
}
