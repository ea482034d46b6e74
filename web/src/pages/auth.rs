//! Sign up, log in, log out, and reset a forgotten password by e-mail.

use askama::Template;
use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use axum_extra::extract::cookie::CookieJar;
use capstan_api::{
    accounts::{self, Email, Password},
    extract::ClientAddress,
    password_reset, sessions,
    sign_up::{self, SignedUp},
};
use serde::Deserialize;

use super::{Layout, ok, render, see_other};
use crate::{
    ConsoleState, Result,
    csrf::{CsrfForm, CsrfToken},
    forms::FieldErrors,
    session,
};

#[derive(Template)]
#[template(path = "signup.html")]
struct SignUpPage {
    layout: Layout,
    email: String,
    /// A mail is on its way (sign-ups confirmed by mail): the page says so instead of the form.
    mailed: bool,
    errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LogInPage {
    layout: Layout,
    email: String,
    errors: FieldErrors,
}

impl SignUpPage {
    fn new(csrf: &CsrfToken, email: &str, errors: FieldErrors) -> Self {
        SignUpPage {
            layout: Layout::new("Sign up", None, csrf, "signup"),
            email: email.to_owned(),
            mailed: false,
            errors,
        }
    }
}

impl LogInPage {
    fn new(csrf: &CsrfToken, email: &str, errors: FieldErrors) -> Self {
        LogInPage {
            layout: Layout::new("Log in", None, csrf, "login"),
            email: email.to_owned(),
            errors,
        }
    }
}

/// A page for visitors who are not logged in; those who are go to their clusters.
async fn for_visitors(
    state: &ConsoleState,
    jar: &CookieJar,
    page: &impl Template,
) -> Result<Response> {
    if session::current(jar, state).await?.is_some() {
        return Ok(see_other("/clusters"));
    }
    ok(page)
}

/// Sign-up and log-in form.
#[derive(Debug, Deserialize)]
pub(crate) struct CredentialsForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// `/`: the clusters when logged in, the log-in page otherwise.
pub(crate) async fn home(State(state): State<ConsoleState>, jar: CookieJar) -> Result<Response> {
    Ok(match session::current(&jar, &state).await? {
        Some(_) => see_other("/clusters"),
        None => see_other("/login"),
    })
}

pub(crate) async fn sign_up_page(
    State(state): State<ConsoleState>,
    jar: CookieJar,
    csrf: CsrfToken,
) -> Result<Response> {
    let page = SignUpPage::new(&csrf, "", FieldErrors::default());
    for_visitors(&state, &jar, &page).await
}

pub(crate) async fn sign_up(
    State(state): State<ConsoleState>,
    jar: CookieJar,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    csrf: CsrfToken,
    CsrfForm(form): CsrfForm<CredentialsForm>,
) -> Result<Response> {
    let refuse = |status, errors| render(status, &SignUpPage::new(&csrf, &form.email, errors));
    let email = match Email::parse(&form.email) {
        Ok(email) => email,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                FieldErrors::one("email", e.to_string()),
            );
        }
    };
    let password = match Password::parse(&form.password, &email) {
        Ok(password) => password,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                FieldErrors::one("password", e.to_string()),
            );
        }
    };
    match sign_up::sign_up(&state.app, &address, email, password).await {
        Ok(SignedUp::Created(account)) => enter(&state, jar, &headers, &account.id).await,
        Ok(SignedUp::Mailed) => ok(&SignUpPage {
            mailed: true,
            ..SignUpPage::new(&csrf, form.email.trim(), FieldErrors::default())
        }),
        Err(e) => {
            let (status, errors) = FieldErrors::from_domain(e, &[("e-mail", "email")])?;
            refuse(status, errors)
        }
    }
}

#[derive(Template)]
#[template(path = "confirm_sign_up.html")]
struct ConfirmSignUpPage {
    layout: Layout,
    token: String,
    errors: FieldErrors,
}

impl ConfirmSignUpPage {
    fn new(csrf: &CsrfToken, token: &str, errors: FieldErrors) -> Self {
        ConfirmSignUpPage {
            layout: Layout::new("Confirm your account", None, csrf, "signup"),
            token: token.to_owned(),
            errors,
        }
    }
}

/// A sign-up confirmation link's token (in its query, then in the form).
#[derive(Debug, Deserialize)]
pub(crate) struct ConfirmSignUpForm {
    #[serde(default)]
    token: String,
}

/// The page a confirmation link opens: a button, so that a mail scanner fetching the link
/// does not use it up.
pub(crate) async fn confirm_sign_up_page(
    csrf: CsrfToken,
    Query(link): Query<ConfirmSignUpForm>,
) -> Result<Response> {
    ok(&ConfirmSignUpPage::new(
        &csrf,
        &link.token,
        FieldErrors::default(),
    ))
}

/// Creates the account of the link, then logs the visitor in.
pub(crate) async fn confirm_sign_up(
    State(state): State<ConsoleState>,
    jar: CookieJar,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    csrf: CsrfToken,
    CsrfForm(form): CsrfForm<ConfirmSignUpForm>,
) -> Result<Response> {
    match sign_up::confirm(&state.app, &address, &form.token).await {
        Ok(account) => enter(&state, jar, &headers, &account.id).await,
        Err(capstan_api::Error::Unauthenticated(message)) => render(
            StatusCode::UNAUTHORIZED,
            &ConfirmSignUpPage::new(&csrf, &form.token, FieldErrors::one("", message)),
        ),
        // A taken address (someone confirmed another link for it first) reads as the others.
        Err(e) => {
            let (status, errors) = FieldErrors::from_domain(e, &[])?;
            render(status, &ConfirmSignUpPage::new(&csrf, &form.token, errors))
        }
    }
}

/// Logs the visitor in as `account_id` and takes them to their clusters.
async fn enter(
    state: &ConsoleState,
    jar: CookieJar,
    headers: &HeaderMap,
    account_id: &str,
) -> Result<Response> {
    let jar = start_session(state, jar, headers, account_id).await?;
    Ok((jar, see_other("/clusters")).into_response())
}

pub(super) async fn start_session(
    state: &ConsoleState,
    jar: CookieJar,
    headers: &HeaderMap,
    account_id: &str,
) -> Result<CookieJar> {
    let ttl = state.app.config.session_ttl_seconds;
    let issued = sessions::issue(&state.app.store, &state.app.key, account_id, ttl).await?;
    Ok(session::start(
        jar,
        issued.token,
        ttl,
        session::is_https(headers),
    ))
}

pub(crate) async fn log_in_page(
    State(state): State<ConsoleState>,
    jar: CookieJar,
    csrf: CsrfToken,
) -> Result<Response> {
    let page = LogInPage::new(&csrf, "", FieldErrors::default());
    for_visitors(&state, &jar, &page).await
}

pub(crate) async fn log_in(
    State(state): State<ConsoleState>,
    jar: CookieJar,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    csrf: CsrfToken,
    CsrfForm(form): CsrfForm<CredentialsForm>,
) -> Result<Response> {
    let refuse = |status, message: String| {
        render(
            status,
            &LogInPage::new(&csrf, &form.email, FieldErrors::one("", message)),
        )
    };
    let logged_in = accounts::log_in_from(
        &state.app.store,
        &state.app.login_limit,
        &address,
        &form.email,
        &form.password,
    )
    .await;
    match logged_in {
        Ok(account) => enter(&state, jar, &headers, &account.id).await,
        Err(capstan_api::Error::RateLimited { retry_after, .. }) => {
            let minutes = retry_after.as_secs().div_ceil(60).max(1);
            refuse(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed log-ins for this account or from this address. Try again in {minutes} minute{}.",
                    if minutes == 1 { "" } else { "s" }
                ),
            )
        }
        Err(capstan_api::Error::Unauthenticated(_)) => refuse(
            StatusCode::UNAUTHORIZED,
            "The e-mail address or the password is wrong.".into(),
        ),
        Err(e) => Err(e.into()),
    }
}

/// Logging out needs the CSRF token too, so another site cannot log the visitor out. The
/// session ends on the server as well: a copy of the cookie no longer works.
pub(crate) async fn log_out(
    State(state): State<ConsoleState>,
    jar: CookieJar,
    CsrfForm(_): CsrfForm<std::collections::HashMap<String, String>>,
) -> Result<Response> {
    if let Some(viewer) = session::current(&jar, &state).await? {
        sessions::revoke(&state.app.store, &viewer.session_id).await?;
    }
    Ok((session::end(jar), see_other("/login")).into_response())
}

#[derive(Template)]
#[template(path = "forgot_password.html")]
struct ForgotPasswordPage {
    layout: Layout,
    email: String,
    sent: bool,
    errors: FieldErrors,
}

impl ForgotPasswordPage {
    fn new(csrf: &CsrfToken, email: &str, sent: bool, errors: FieldErrors) -> Self {
        ForgotPasswordPage {
            layout: Layout::new("Reset your password", None, csrf, "login"),
            email: email.to_owned(),
            sent,
            errors,
        }
    }
}

/// The address a reset link is asked for.
#[derive(Debug, Deserialize)]
pub(crate) struct ForgotPasswordForm {
    #[serde(default)]
    email: String,
}

pub(crate) async fn forgot_password_page(
    State(state): State<ConsoleState>,
    jar: CookieJar,
    csrf: CsrfToken,
) -> Result<Response> {
    let page = ForgotPasswordPage::new(&csrf, "", false, FieldErrors::default());
    for_visitors(&state, &jar, &page).await
}

/// Mails a reset link when the address has an account; the page says the same either way.
pub(crate) async fn forgot_password(
    State(state): State<ConsoleState>,
    ClientAddress(address): ClientAddress,
    csrf: CsrfToken,
    CsrfForm(form): CsrfForm<ForgotPasswordForm>,
) -> Result<Response> {
    match password_reset::request(&state.app, &address, &form.email).await {
        Ok(()) => ok(&ForgotPasswordPage::new(
            &csrf,
            form.email.trim(),
            true,
            FieldErrors::default(),
        )),
        Err(e) => {
            let (status, errors) = FieldErrors::from_domain(e, &[("e-mail", "email")])?;
            render(
                status,
                &ForgotPasswordPage::new(&csrf, &form.email, false, errors),
            )
        }
    }
}

#[derive(Template)]
#[template(path = "reset_password.html")]
struct ResetPasswordPage {
    layout: Layout,
    token: String,
    errors: FieldErrors,
}

impl ResetPasswordPage {
    fn new(csrf: &CsrfToken, token: &str, errors: FieldErrors) -> Self {
        ResetPasswordPage {
            layout: Layout::new("Choose a new password", None, csrf, "login"),
            token: token.to_owned(),
            errors,
        }
    }
}

/// A reset link's token (in its query) and, when the form is sent, the new password.
#[derive(Debug, Deserialize)]
pub(crate) struct ResetPasswordForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

/// The page a reset link opens (the token is checked when the form is sent).
pub(crate) async fn reset_password_page(
    csrf: CsrfToken,
    Query(link): Query<ResetPasswordForm>,
) -> Result<Response> {
    ok(&ResetPasswordPage::new(
        &csrf,
        &link.token,
        FieldErrors::default(),
    ))
}

/// Sets the new password, then logs the visitor in (every other session has ended).
pub(crate) async fn reset_password(
    State(state): State<ConsoleState>,
    jar: CookieJar,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    csrf: CsrfToken,
    CsrfForm(form): CsrfForm<ResetPasswordForm>,
) -> Result<Response> {
    match password_reset::confirm(&state.app, &address, &form.token, &form.password).await {
        Ok(account_id) => enter(&state, jar, &headers, &account_id).await,
        Err(capstan_api::Error::Unauthenticated(message)) => render(
            StatusCode::UNAUTHORIZED,
            &ResetPasswordPage::new(&csrf, &form.token, FieldErrors::one("", message)),
        ),
        Err(e) => {
            let (status, errors) = FieldErrors::from_domain(e, &[("password", "password")])?;
            render(status, &ResetPasswordPage::new(&csrf, &form.token, errors))
        }
    }
}
