//! The account page: change the password (every session ends, this browser gets a new one).

use askama::Template;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use axum_extra::extract::cookie::CookieJar;
use capstan_api::{accounts, extract::ClientAddress};
use serde::Deserialize;

use super::{Layout, render};
use crate::{
    ConsoleState, Result,
    csrf::{CsrfForm, CsrfToken},
    forms::FieldErrors,
    session::Viewer,
};

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    changed: bool,
    errors: FieldErrors,
}

fn page(viewer: &Viewer, csrf: &CsrfToken, changed: bool, errors: FieldErrors) -> AccountPage {
    AccountPage {
        layout: Layout::new("Account", Some(viewer), csrf, "account"),
        changed,
        errors,
    }
}

pub(crate) async fn show(viewer: Viewer, csrf: CsrfToken) -> Result<Response> {
    render(
        StatusCode::OK,
        &page(&viewer, &csrf, false, FieldErrors::default()),
    )
}

/// The password form.
#[derive(Debug, Deserialize)]
pub(crate) struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

pub(crate) async fn change_password(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    jar: CookieJar,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    csrf: CsrfToken,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<Response> {
    let changed = accounts::change_password(
        &state.app.store,
        &state.app.login_limit,
        &address,
        &viewer.account_id,
        &form.current_password,
        &form.new_password,
    )
    .await;
    match changed {
        Ok(()) => {
            let jar = super::auth::start_session(&state, jar, &headers, &viewer.account_id).await?;
            let answer = render(
                StatusCode::OK,
                &page(&viewer, &csrf, true, FieldErrors::default()),
            )?;
            Ok((jar, answer).into_response())
        }
        Err(capstan_api::Error::Forbidden(message)) => render(
            StatusCode::FORBIDDEN,
            &page(
                &viewer,
                &csrf,
                false,
                FieldErrors::one("current_password", message),
            ),
        ),
        Err(refused) => {
            let (status, errors) =
                FieldErrors::from_domain(refused, &[("password", "new_password")])?;
            render(status, &page(&viewer, &csrf, false, errors))
        }
    }
}
