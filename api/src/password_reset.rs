//! Password reset by e-mail: a one-time link, valid for an hour, sent to the account's address.
//! Asking answers the same whether or not the address has an account (and the mail is sent in
//! the background, so neither does the time taken); the store keeps only a keyed hash of each
//! link's token; using a link sets the password, ends every session of the account and kills
//! its other links. Requests and confirmations are rate-limited per client address.

use std::time::Instant;

use crate::{
    Error, Result,
    accounts::{self, Email, Password},
    crypto::random_token,
    mail::Mail,
    state::AppState,
    store,
};

/// How long a link works, seconds.
pub const LINK_LIFETIME: i64 = 3600;
/// Unused links an account may have at once: more requests send nothing, so nobody can fill
/// an inbox through this form.
const OPEN_LINKS_PER_ACCOUNT: i64 = 3;
/// The path of the console page a link opens.
pub const RESET_PAGE: &str = "/reset-password";

fn token_hash(state: &AppState, token: &str) -> String {
    state.key.keyed_hash("password-reset", token.as_bytes())
}

fn limited(state: &AppState, address: &str) -> Result<()> {
    state
        .login_limit
        .begin_password_reset(address, Instant::now())
        .map_err(|wait| Error::RateLimited {
            reason: "too many password resets from this address".into(),
            retry_after: wait,
        })
}

/// Asks for a reset link for `email`, from the client `address`. Succeeds alike for an address
/// with no account (nothing is sent then).
pub async fn request(state: &AppState, address: &str, email: &str) -> Result<()> {
    limited(state, address)?;
    let email = Email::parse(email)?;
    let Some(account) = accounts::find_by_email(&state.store, &email).await? else {
        tracing::debug!("a password reset was asked for an address without an account");
        return Ok(());
    };
    let now = store::now();
    let (open,): (i64,) = sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM password_resets WHERE account_id = $1 AND expires_at > $2",
    )
    .bind(&account.id)
    .bind(now)
    .fetch_one(state.store.pool())
    .await?;
    if open >= OPEN_LINKS_PER_ACCOUNT {
        tracing::info!(account = %account.id, "password reset asked again while {open} links are open; nothing sent");
        return Ok(());
    }
    let token = random_token(32);
    sqlx::query(
        "INSERT INTO password_resets (token_hash, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash(state, &token))
    .bind(&account.id)
    .bind(now)
    .bind(now + LINK_LIFETIME)
    .execute(state.store.pool())
    .await?;
    let link = format!(
        "{}?token={token}",
        crate::mail::console_url(&state.config, RESET_PAGE)
    );
    let mail = Mail {
        to: account.email.clone(),
        subject: "Reset your Capstan password".into(),
        body: format!(
            "Someone (we hope you) asked to reset the password of the Capstan account {}.\n\n\
             Open this link within an hour to choose a new password; it works once:\n\n{link}\n\n\
             Setting a new password logs out every session of the account. If you did not ask \
             for this, ignore this mail: your password stays as it is.\n",
            account.email
        ),
    };
    let mailer = state.mailer.clone();
    tokio::spawn(async move {
        if let Err(error) = mailer.send(mail).await {
            tracing::error!(error = %crate::error::cause_chain(&error), "could not send a password reset mail");
        }
    });
    Ok(())
}

/// Sets a new password with the token of a reset link, from the client `address`; answers the
/// account's id. The link is used up, the account's other links die, and every session ends.
pub async fn confirm(
    state: &AppState,
    address: &str,
    token: &str,
    new_password: &str,
) -> Result<String> {
    limited(state, address)?;
    // The link's token is this request's credential: a wrong one is a failed authentication.
    let invalid = || {
        Error::Unauthenticated(
            "this reset link is not valid (it was used, has expired or was mistyped): ask for a new one".into(),
        )
    };
    let hash = token_hash(state, token.trim());
    let now = store::now();
    let found: Option<(String,)> = sqlx::query_as(
        "SELECT account_id FROM password_resets WHERE token_hash = $1 AND expires_at > $2",
    )
    .bind(&hash)
    .bind(now)
    .fetch_optional(state.store.pool())
    .await?;
    let (account_id,) = found.ok_or_else(invalid)?;
    let account = accounts::find(&state.store, &account_id)
        .await?
        .ok_or_else(invalid)?;
    let email = Email::parse(&account.email)?;
    let password = Password::parse(new_password, &email)?;
    let password_hash = accounts::hash_password(password).await?;
    let mut tx = state.store.pool().begin().await?;
    // Used up here, in the transaction that sets the password: of two uses of one link, one
    // finds nothing to delete and changes nothing.
    let used = sqlx::query("DELETE FROM password_resets WHERE token_hash = $1 AND expires_at > $2")
        .bind(&hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    if used.rows_affected() != 1 {
        return Err(invalid());
    }
    accounts::set_password_hash(&mut tx, &account_id, &password_hash).await?;
    tx.commit().await?;
    tracing::info!(account = %account_id, "password reset by e-mail link; every session ended");
    Ok(account_id)
}
