//! Short-lived session tokens (JWT, HS256) issued at log-in.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    crypto::SecretKey,
    store::{self, Store},
};

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
    /// The session's id (its row in `sessions`).
    sid: String,
    iat: i64,
    exp: i64,
}

const PURPOSE: &str = "session-jwt";

/// A session token that checked out: whose it is and which session.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The account it was issued to.
    pub account_id: String,
    /// That account's e-mail address (the console shows it).
    pub email: String,
    /// The session, for log-out.
    pub session_id: String,
}

/// Issues a token for `account_id`, valid for `ttl_seconds` unless revoked first.
pub async fn issue(
    store: &Store,
    key: &SecretKey,
    account_id: &str,
    ttl_seconds: i64,
) -> Result<Session> {
    let iat = store::now();
    let claims = Claims {
        sub: account_id.to_owned(),
        sid: uuid::Uuid::new_v4().to_string(),
        iat,
        exp: iat + ttl_seconds,
    };
    // Sessions long expired are of no use even to an audit: dropped as new ones are made.
    sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND expires_at < $2")
        .bind(account_id)
        .bind(iat - EXPIRED_KEPT_SECONDS)
        .execute(store.pool())
        .await?;
    sqlx::query(
        "INSERT INTO sessions (id, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&claims.sid)
    .bind(account_id)
    .bind(iat)
    .bind(claims.exp)
    .execute(store.pool())
    .await?;
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

/// Expired sessions are kept this long (for the account's own audit), then deleted.
const EXPIRED_KEPT_SECONDS: i64 = 30 * 24 * 3600;

/// Checks a token's signature and expiry, and that its session was not ended (log-out, a
/// password change); returns whose it is.
pub async fn verify(store: &Store, key: &SecretKey, token: &str) -> Result<Verified> {
    let invalid = || {
        Error::Unauthenticated("the session token is invalid or has expired; log in again".into())
    };
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(&key.derive(PURPOSE)),
        &validation,
    )
    .map_err(|_| invalid())?
    .claims;
    let live: Option<(String, String)> = sqlx::query_as(
        "SELECT s.account_id, a.email FROM sessions s JOIN accounts a ON a.id = s.account_id \
         WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2",
    )
    .bind(&claims.sid)
    .bind(store::now())
    .fetch_optional(store.pool())
    .await?;
    match live {
        Some((account_id, email)) if account_id == claims.sub => Ok(Verified {
            account_id,
            email,
            session_id: claims.sid,
        }),
        _ => Err(Error::Unauthenticated(
            "this session has ended (logged out, or the password was changed); log in again".into(),
        )),
    }
}

/// Ends one session (log-out).
pub async fn revoke(store: &Store, session_id: &str) -> Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(store::now())
        .bind(session_id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Ends every session of an account, inside the caller's transaction (a password change).
pub async fn revoke_all(tx: &mut sqlx::AnyConnection, account_id: &str) -> Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE account_id = $2 AND revoked_at IS NULL")
        .bind(store::now())
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (Store, tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("s.db").display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let account = crate::accounts::sign_up(
            &store,
            crate::accounts::Email::parse("s@example.com").unwrap(),
            crate::accounts::Password::parse(
                "a long enough password",
                &crate::accounts::Email::parse("s@example.com").unwrap(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
        (store, dir, account.id)
    }

    #[tokio::test]
    async fn a_token_verifies_with_its_key_only_until_it_is_revoked() {
        let (store, _dir, account) = store().await;
        let key = SecretKey::generate();
        let session = issue(&store, &key, &account, 60).await.unwrap();
        let verified = verify(&store, &key, &session.token).await.unwrap();
        assert_eq!(verified.account_id, account);
        assert!(
            verify(&store, &SecretKey::generate(), &session.token)
                .await
                .is_err()
        );
        let other = issue(&store, &key, &account, 60).await.unwrap();
        revoke(&store, &verified.session_id).await.unwrap();
        assert!(verify(&store, &key, &session.token).await.is_err());
        assert!(verify(&store, &key, &other.token).await.is_ok());
        let mut tx = store.pool().begin().await.unwrap();
        revoke_all(&mut tx, &account).await.unwrap();
        tx.commit().await.unwrap();
        assert!(verify(&store, &key, &other.token).await.is_err());
    }

    #[tokio::test]
    async fn an_expired_token_is_refused() {
        let (store, _dir, account) = store().await;
        let key = SecretKey::generate();
        let session = issue(&store, &key, &account, -10).await.unwrap();
        assert!(verify(&store, &key, &session.token).await.is_err());
    }
}
