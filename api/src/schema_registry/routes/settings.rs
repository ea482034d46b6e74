//! The routes of the registry's settings: `/config` (compatibility levels) and `/mode`, for
//! the registry and per subject.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Options, Params, registry};
use crate::{
    gateway::GatewayState,
    schema_registry::{
        Body, Caller, RegistryError, RegistryResult, Reply, catalog,
        evolution::check_subject,
        settings::{Mode, Setting},
    },
};

/// `PUT /config` bodies.
#[derive(Debug, Deserialize)]
pub(super) struct ConfigRequest {
    compatibility: String,
}

/// `PUT /mode` bodies.
#[derive(Debug, Deserialize)]
pub(super) struct ModeRequest {
    mode: String,
}

pub(super) async fn config(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
) -> RegistryResult<Reply<Value>> {
    show_setting(&state, &caller, None, Setting::Compatibility, false).await
}

pub(super) async fn set_config(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Body(request): Body<ConfigRequest>,
) -> RegistryResult<Reply<Value>> {
    put_setting(
        &state,
        &caller,
        "",
        Setting::Compatibility,
        &request.compatibility,
    )
    .await
}

pub(super) async fn delete_config(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
) -> RegistryResult<Reply<Value>> {
    delete_setting(&state, &caller, "", Setting::Compatibility).await
}

pub(super) async fn subject_config(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(subject): Params<String>,
    options: Options,
) -> RegistryResult<Reply<Value>> {
    show_setting(
        &state,
        &caller,
        Some(&subject),
        Setting::Compatibility,
        options.default_to_global,
    )
    .await
}

pub(super) async fn set_subject_config(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(subject): Params<String>,
    Body(request): Body<ConfigRequest>,
) -> RegistryResult<Reply<Value>> {
    put_setting(
        &state,
        &caller,
        &subject,
        Setting::Compatibility,
        &request.compatibility,
    )
    .await
}

pub(super) async fn delete_subject_config(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(subject): Params<String>,
) -> RegistryResult<Reply<Value>> {
    delete_setting(&state, &caller, &subject, Setting::Compatibility).await
}

pub(super) async fn mode(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
) -> RegistryResult<Reply<Value>> {
    show_setting(&state, &caller, None, Setting::Mode, false).await
}

pub(super) async fn set_mode(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    options: Options,
    Body(request): Body<ModeRequest>,
) -> RegistryResult<Reply<Value>> {
    caller.require_write()?;
    if Mode::parse(&request.mode)? == Mode::Import && !options.force {
        let any = catalog::subjects(state.app.store.pool(), caller.cluster()).await?;
        if !any.is_empty() {
            return Err(RegistryError::not_permitted(
                "Cannot import since found existing subjects; add ?force=true to import into a registry that has some",
            ));
        }
    }
    put_setting(&state, &caller, "", Setting::Mode, &request.mode).await
}

pub(super) async fn subject_mode(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(subject): Params<String>,
    options: Options,
) -> RegistryResult<Reply<Value>> {
    show_setting(
        &state,
        &caller,
        Some(&subject),
        Setting::Mode,
        options.default_to_global,
    )
    .await
}

pub(super) async fn set_subject_mode(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(subject): Params<String>,
    Body(request): Body<ModeRequest>,
) -> RegistryResult<Reply<Value>> {
    put_setting(&state, &caller, &subject, Setting::Mode, &request.mode).await
}

pub(super) async fn delete_subject_mode(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(subject): Params<String>,
) -> RegistryResult<Reply<Value>> {
    delete_setting(&state, &caller, &subject, Setting::Mode).await
}

/// The key a setting is shown under (`GET` and `DELETE`), as Confluent names it.
fn shown_as(which: Setting) -> &'static str {
    match which {
        Setting::Compatibility => "compatibilityLevel",
        Setting::Mode => "mode",
    }
}

/// A subject's own setting, or (`subject` `None`, or `default_to_global` when it has none)
/// the registry's in force.
async fn show_setting(
    state: &GatewayState,
    caller: &Caller,
    subject: Option<&str>,
    which: Setting,
    default_to_global: bool,
) -> RegistryResult<Reply<Value>> {
    let registry = registry(state, caller);
    let value = match subject {
        None => registry.setting_in_force(which, None).await?,
        Some(subject) => {
            check_subject(subject)?;
            match catalog::setting(state.app.store.pool(), caller.cluster(), subject, which).await?
            {
                Some(own) => which.validated(&own)?,
                None if default_to_global => registry.setting_in_force(which, None).await?,
                None => return Err(not_configured(which, subject)),
            }
        }
    };
    Ok(Reply(json!({ shown_as(which): value })))
}

/// Validates and stores a compatibility level or mode of the registry (`subject` "") or of a
/// subject; answers it the way `PUT` does.
async fn put_setting(
    state: &GatewayState,
    caller: &Caller,
    subject: &str,
    which: Setting,
    raw: &str,
) -> RegistryResult<Reply<Value>> {
    caller.require_write()?;
    if !subject.is_empty() {
        check_subject(subject)?;
    }
    let value = which.validated(raw)?;
    catalog::set_setting(
        state.app.store.pool(),
        caller.cluster(),
        subject,
        which,
        Some(value),
    )
    .await?;
    let key = match which {
        Setting::Compatibility => "compatibility",
        Setting::Mode => "mode",
    };
    Ok(Reply(json!({ key: value })))
}

/// Clears a setting of the registry (`subject` "": back to the default) or of a subject (which
/// must have one); answers the value it had.
async fn delete_setting(
    state: &GatewayState,
    caller: &Caller,
    subject: &str,
    which: Setting,
) -> RegistryResult<Reply<Value>> {
    caller.require_write()?;
    let before = if subject.is_empty() {
        registry(state, caller)
            .setting_in_force(which, None)
            .await?
    } else {
        check_subject(subject)?;
        let own =
            catalog::setting(state.app.store.pool(), caller.cluster(), subject, which).await?;
        which.validated(&own.ok_or_else(|| not_configured(which, subject))?)?
    };
    catalog::set_setting(
        state.app.store.pool(),
        caller.cluster(),
        subject,
        which,
        None,
    )
    .await?;
    Ok(Reply(json!({ shown_as(which): before })))
}

fn not_configured(which: Setting, subject: &str) -> RegistryError {
    match which {
        Setting::Compatibility => RegistryError::subject_compatibility_not_configured(subject),
        Setting::Mode => RegistryError::subject_mode_not_configured(subject),
    }
}
