//! Short-lived session tokens (JWT, HS256) issued at log-in.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, crypto::SecretKey, store};

/// A token answered by log-in.
#[derive(Debug, Serialize)]
pub struct Session {
    /// The bearer token.
    pub token: String,
    /// When it stops being accepted, unix seconds (UTC).
    pub expires_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
}

const PURPOSE: &str = "session-jwt";

/// Issues a token for `account_id`, valid for `ttl_seconds`.
pub fn issue(key: &SecretKey, account_id: &str, ttl_seconds: i64) -> Result<Session> {
    let iat = store::now();
    let claims = Claims {
        sub: account_id.to_owned(),
        iat,
        exp: iat + ttl_seconds,
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&key.derive(PURPOSE)),
    )
    .map_err(|e| Error::internal("could not sign a session token", e))?;
    Ok(Session {
        token,
        expires_at: claims.exp,
    })
}

/// Checks a token's signature and expiry and returns the account id it was issued for.
pub fn verify(key: &SecretKey, token: &str) -> Result<String> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(&key.derive(PURPOSE)),
        &validation,
    )
    .map(|data| data.claims.sub)
    .map_err(|_| {
        Error::Unauthenticated("the session token is invalid or has expired; log in again".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_with_its_key_only() {
        let key = SecretKey::generate();
        let session = issue(&key, "acc-1", 60).unwrap();
        assert_eq!(verify(&key, &session.token).unwrap(), "acc-1");
        assert!(verify(&SecretKey::generate(), &session.token).is_err());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let key = SecretKey::generate();
        let session = issue(&key, "acc-1", -10).unwrap();
        assert!(verify(&key, &session.token).is_err());
    }
}
