//! API keys for the provisioning API: create (the secret shown once), list, revoke.

use askama::Template;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use capstan_api::api_keys::{self, NewApiKey};
use serde::Deserialize;

use super::{Layout, render, see_other};
use crate::{
    ConsoleState, Result,
    csrf::{CsrfForm, CsrfToken},
    format,
    forms::FieldErrors,
    session::Viewer,
};

/// A key as listed.
#[derive(Debug)]
struct KeyRow {
    id: String,
    name: String,
    created: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct ApiKeysPage {
    layout: Layout,
    keys: Vec<KeyRow>,
    created: Option<NewApiKey>,
    email: String,
    console_url: String,
    name: String,
    errors: FieldErrors,
}

async fn render_page(
    state: &ConsoleState,
    viewer: &Viewer,
    csrf: &CsrfToken,
    status: StatusCode,
    created: Option<(NewApiKey, String)>,
    name: String,
    errors: FieldErrors,
) -> Result<Response> {
    let (created, console_url) = created.map_or((None, String::new()), |(k, url)| (Some(k), url));
    let keys = api_keys::list(&state.app.store, &viewer.account_id)
        .await?
        .into_iter()
        .map(|k| KeyRow {
            id: k.id,
            name: k.name,
            created: format::date(k.created_at),
            last_used: k
                .last_used_at
                .map_or_else(|| "never".to_owned(), format::date),
        })
        .collect();
    render(
        status,
        &ApiKeysPage {
            layout: Layout::new("API keys", Some(viewer), csrf, "api-keys"),
            keys,
            created,
            email: viewer.email.clone(),
            console_url,
            name,
            errors,
        },
    )
}

pub(crate) async fn list(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    csrf: CsrfToken,
) -> Result<Response> {
    render_page(
        &state,
        &viewer,
        &csrf,
        StatusCode::OK,
        None,
        String::new(),
        FieldErrors::default(),
    )
    .await
}

/// The create form.
#[derive(Debug, Deserialize)]
pub(crate) struct KeyForm {
    #[serde(default)]
    name: String,
}

/// Creating a key answers the page itself (not a redirect): the secret is shown this once
/// and never stored in a form the browser could resubmit.
pub(crate) async fn create(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    csrf: CsrfToken,
    headers: axum::http::HeaderMap,
    CsrfForm(form): CsrfForm<KeyForm>,
) -> Result<Response> {
    let created = match api_keys::parse_name(&form.name) {
        Ok(name) => {
            api_keys::create(
                &state.app.store,
                &state.app.key,
                &viewer.account_id,
                name,
                state.app.config.max_api_keys,
            )
            .await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(key) => {
            render_page(
                &state,
                &viewer,
                &csrf,
                StatusCode::CREATED,
                Some((key, crate::session::origin(&headers))),
                String::new(),
                FieldErrors::default(),
            )
            .await
        }
        Err(e) => {
            let (status, errors) = FieldErrors::from_domain(e, &[("", "name")])?;
            render_page(&state, &viewer, &csrf, status, None, form.name, errors).await
        }
    }
}

pub(crate) async fn revoke(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<std::collections::HashMap<String, String>>,
) -> Result<Response> {
    api_keys::revoke(&state.app.store, &viewer.account_id, &id).await?;
    Ok(see_other("/api-keys"))
}
