//! Sign-up. With `--sign-up-confirmation email` (the default when the platform can send mail)
//! the account is created only once its address is confirmed: a sign-up answers the same
//! whether or not the address already has an account, after the same work, and what differs
//! goes by mail to the address — a one-time link to finish the sign-up, or, for an address
//! that has an account, a note saying so. Without confirmation an account is created at once,
//! and a taken address is a 409: that answer tells anyone which addresses have accounts,
//! which is why `serve` warns about it at start.

use std::time::Instant;

use crate::{
    Error, Result,
    accounts::{self, Account, Email, Password},
    crypto::random_token,
    mail::{Mail, console_url},
    state::AppState,
    store,
};

/// How long a confirmation link works, seconds.
pub const LINK_LIFETIME: i64 = 24 * 3600;
/// The path of the console page a confirmation link opens.
pub const CONFIRM_PAGE: &str = "/confirm-sign-up";

/// What a sign-up answers when a mail is on its way, whichever mail it is.
pub const MAILED: &str = "a mail is on its way to the address: a link to finish creating the account (it works once, for 24 hours), or, if the address has an account already, a note saying so";

/// What a sign-up led to.
#[derive(Debug)]
pub enum SignedUp {
    /// The account exists (sign-ups are not confirmed by mail).
    Created(Account),
    /// A mail is on its way to the address: a confirmation link, or a note that the address
    /// has an account already. Which one is not said.
    Mailed,
}

fn token_hash(state: &AppState, token: &str) -> String {
    state.key.keyed_hash("sign-up", token.as_bytes())
}

fn limited(wait: std::time::Duration) -> Error {
    Error::RateLimited {
        reason: "too many sign-ups from this address or for this e-mail address".into(),
        retry_after: wait,
    }
}

/// Signs up `email` with `password` from the client `address`.
pub async fn sign_up(
    state: &AppState,
    address: &str,
    email: Email,
    password: Password,
) -> Result<SignedUp> {
    if !state.config.confirm_sign_ups {
        return accounts::sign_up_from(&state.store, &state.login_limit, address, email, password)
            .await
            .map(SignedUp::Created);
    }
    state
        .login_limit
        .begin_mailed_sign_up(address, email.as_str(), Instant::now())
        .map_err(limited)?;
    // The password is hashed whether or not the address has an account, so the answer takes
    // as long either way; the rest happens after it.
    let password_hash = accounts::hash_password(password).await?;
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(error) = mail_link_or_note(&state, email, password_hash).await {
            tracing::error!(error = %crate::error::cause_chain(&error), "could not send a sign-up mail");
        }
    });
    Ok(SignedUp::Mailed)
}

/// Mails `email` a confirmation link (kept with the chosen password's hash), or, when the
/// address has an account, a note that it has.
async fn mail_link_or_note(state: &AppState, email: Email, password_hash: String) -> Result<()> {
    let mail = if accounts::find_by_email(&state.store, &email)
        .await?
        .is_some()
    {
        Mail {
            to: email.as_str().to_owned(),
            subject: "You already have a Capstan account".into(),
            body: format!(
                "Someone (we hope you) tried to create a Capstan account with this address, \
                 which has one already. Log in at {}, or choose a new password at {} if you \
                 forgot it.\n\nIf it was not you, ignore this mail: nothing changed.\n",
                console_url(&state.config, "/login"),
                console_url(&state.config, "/forgot-password"),
            ),
        }
    } else {
        let token = random_token(32);
        let now = store::now();
        let mut tx = state.store.pool().begin().await?;
        sqlx::query("DELETE FROM sign_up_confirmations WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sign_up_confirmations (token_hash, email, password_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash(state, &token))
        .bind(email.as_str())
        .bind(&password_hash)
        .bind(now)
        .bind(now + LINK_LIFETIME)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Mail {
            to: email.as_str().to_owned(),
            subject: "Confirm your Capstan account".into(),
            body: format!(
                "Someone (we hope you) signed up for Capstan with this address.\n\n\
                 Open this link within 24 hours to create the account; it works once:\n\n{}?token={token}\n\n\
                 If it was not you, ignore this mail: no account is created.\n",
                console_url(&state.config, CONFIRM_PAGE),
            ),
        }
    };
    state.mailer.send(mail).await
}

/// Creates the account of a confirmation link's `token`, from the client `address`. The link
/// is used up, with every other open link for the same address.
pub async fn confirm(state: &AppState, address: &str, token: &str) -> Result<Account> {
    state
        .login_limit
        .begin_sign_up(address, Instant::now())
        .map_err(limited)?;
    // The link's token is this request's credential: a wrong one is a failed authentication.
    let invalid = || {
        Error::Unauthenticated(
            "this confirmation link is not valid (it was used, has expired or was mistyped): sign up again"
                .into(),
        )
    };
    let hash = token_hash(state, token.trim());
    let now = store::now();
    let mut tx = state.store.pool().begin().await?;
    let found: Option<(String, String)> = sqlx::query_as(
        "SELECT email, password_hash FROM sign_up_confirmations WHERE token_hash = $1 AND expires_at > $2",
    )
    .bind(&hash)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let (email, password_hash) = found.ok_or_else(invalid)?;
    // Used up in the transaction that creates the account: of two uses of one link, one
    // finds nothing to delete and creates nothing.
    let used = sqlx::query("DELETE FROM sign_up_confirmations WHERE token_hash = $1")
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    if used.rows_affected() != 1 {
        return Err(invalid());
    }
    let account = accounts::insert(&mut tx, &email, &password_hash).await?;
    sqlx::query("DELETE FROM sign_up_confirmations WHERE email = $1")
        .bind(&email)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(account = %account.id, "account created by a confirmed sign-up");
    Ok(account)
}
