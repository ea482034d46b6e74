//! A cluster's topics: list with size, create, update, delete, with the plan's limits shown.

use askama::Template;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use capstan_api::topics::{self, CreateTopic, UpdateTopic};
use serde::Deserialize;

use super::{ClusterHeader, Layout, render, see_other};
use crate::{
    ConsoleState, Result,
    csrf::{CsrfForm, CsrfToken},
    format,
    forms::FieldErrors,
    session::Viewer,
};

/// A row of the topic list.
#[derive(Debug)]
struct TopicRow {
    id: String,
    name: String,
    partitions: i64,
    retention_time: i64,
    retention_size: i64,
    max_message_size: i64,
    retention: String,
    size_limit: String,
    cleanup_policy: String,
    stored: String,
}

/// The plan's limits, as the forms explain them.
#[derive(Debug)]
struct PlanLimits {
    partitions_left: i64,
    max_partitions: i64,
    retention_time: String,
    retention_size: String,
    message_size: String,
}

#[derive(Template)]
#[template(path = "topics.html")]
struct TopicsPage {
    layout: Layout,
    header: ClusterHeader,
    topics: Vec<TopicRow>,
    limits: PlanLimits,
    form: TopicForm,
    errors: FieldErrors,
    /// The topic whose update failed (its form is shown open).
    failed_topic: String,
}

/// The create and update forms: numbers as typed, `-1` for the plan maximum.
#[derive(Debug, Deserialize)]
pub(crate) struct TopicForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    partitions: String,
    #[serde(default)]
    retention_time: String,
    #[serde(default)]
    retention_size: String,
    #[serde(default)]
    max_message_size: String,
    #[serde(default)]
    cleanup_policy: String,
}

impl Default for TopicForm {
    fn default() -> Self {
        TopicForm {
            name: String::new(),
            partitions: "1".into(),
            retention_time: "-1".into(),
            retention_size: "-1".into(),
            max_message_size: "-1".into(),
            cleanup_policy: "delete".into(),
        }
    }
}

/// A whole number from a form field, or the message to show next to it.
fn number(field: &'static str, label: &str, raw: &str, errors: &mut FieldErrors) -> i64 {
    raw.trim().parse().unwrap_or_else(|_| {
        errors.add(
            field,
            format!("{label} must be a whole number (or -1 for the plan maximum)"),
        );
        0
    })
}

const KEYWORDS: [(&str, &str); 7] = [
    ("topic name", "name"),
    ("topic named", "name"),
    ("partitions", "partitions"),
    ("retention_time", "retention_time"),
    ("retention_size", "retention_size"),
    ("max_message_size", "max_message_size"),
    ("cleanup_policy", "cleanup_policy"),
];

/// What the last form submission left to show: its status, values and errors.
#[derive(Debug)]
struct Attempt {
    status: StatusCode,
    form: TopicForm,
    errors: FieldErrors,
    /// The topic whose update failed, if one did.
    failed_topic: String,
}

impl Attempt {
    fn none() -> Self {
        Attempt {
            status: StatusCode::OK,
            form: TopicForm::default(),
            errors: FieldErrors::default(),
            failed_topic: String::new(),
        }
    }

    fn refused(status: StatusCode, form: TopicForm, errors: FieldErrors) -> Self {
        Attempt {
            status,
            form,
            errors,
            failed_topic: String::new(),
        }
    }
}

async fn render_page(
    state: &ConsoleState,
    viewer: &Viewer,
    csrf: &CsrfToken,
    id: &str,
    attempt: Attempt,
) -> Result<Response> {
    let Attempt {
        status,
        form,
        errors,
        failed_topic,
    } = attempt;
    let header = ClusterHeader::load(state, viewer, id, "topics").await?;
    let views = topics::list(&state.app, &viewer.account_id, id).await?;
    // Sizes are read live from the brokers; when they cannot be reached the list still shows.
    let stored = match state.app.provisioner.stored_bytes(&header.row.spec()).await {
        Ok(sizes) => Some(sizes),
        Err(error) => {
            tracing::warn!(cluster = id, error = %capstan_api::cause_chain(&error), "could not read topic sizes");
            None
        }
    };
    let limits = header.row.limits(&state.app);
    let used: i64 = views.iter().map(|t| t.partitions).sum();
    let topics = views
        .into_iter()
        .map(|t| TopicRow {
            stored: stored.as_ref().map_or_else(
                || "—".to_owned(),
                |s| format::bytes(s.get(&t.topic_name).copied().unwrap_or(0)),
            ),
            retention: at_most(t.retention_time, limits.max_retention_time, format::millis),
            size_limit: at_most(t.retention_size, limits.max_retention_size, format::bytes),
            id: t.topic_id,
            name: t.topic_name,
            partitions: t.partitions,
            retention_time: t.retention_time,
            retention_size: t.retention_size,
            max_message_size: t.max_message_size,
            cleanup_policy: t.cleanup_policy,
        })
        .collect();
    render(
        status,
        &TopicsPage {
            layout: Layout::new(
                format!("Topics · {}", header.cluster.name),
                Some(viewer),
                csrf,
                "clusters",
            ),
            header,
            topics,
            limits: PlanLimits {
                partitions_left: (limits.max_partitions - used).max(0),
                max_partitions: limits.max_partitions,
                retention_time: format::millis(limits.max_retention_time),
                retention_size: format::bytes(limits.max_retention_size),
                message_size: format::bytes(limits.max_message_size),
            },
            form,
            errors,
            failed_topic,
        },
    )
}

pub(crate) async fn list(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    csrf: CsrfToken,
    Path(id): Path<String>,
) -> Result<Response> {
    render_page(&state, &viewer, &csrf, &id, Attempt::none()).await
}

pub(crate) async fn create(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    csrf: CsrfToken,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<TopicForm>,
) -> Result<Response> {
    let mut errors = FieldErrors::default();
    let request = CreateTopic {
        name: form.name.clone(),
        partitions: number("partitions", "Partitions", &form.partitions, &mut errors),
        retention_time: number(
            "retention_time",
            "Retention time",
            &form.retention_time,
            &mut errors,
        ),
        retention_size: number(
            "retention_size",
            "Retention size",
            &form.retention_size,
            &mut errors,
        ),
        max_message_size: number(
            "max_message_size",
            "Max message size",
            &form.max_message_size,
            &mut errors,
        ),
        cleanup_policy: form.cleanup_policy.clone(),
        cluster_id: id.clone(),
    };
    if !errors.is_empty() {
        return render_page(
            &state,
            &viewer,
            &csrf,
            &id,
            Attempt::refused(StatusCode::BAD_REQUEST, form, errors),
        )
        .await;
    }
    match topics::create(&state.app, &viewer.account_id, request).await {
        Ok(_) => Ok(see_other(&format!("/clusters/{id}/topics"))),
        Err(e) => {
            let (status, errors) = FieldErrors::from_domain(e, &KEYWORDS)?;
            render_page(
                &state,
                &viewer,
                &csrf,
                &id,
                Attempt::refused(status, form, errors),
            )
            .await
        }
    }
}

/// The topic `topic_id` of cluster `id`, or 404.
async fn owned_topic(
    state: &ConsoleState,
    viewer: &Viewer,
    id: &str,
    topic_id: &str,
) -> Result<()> {
    let topic = topics::get(&state.app, &viewer.account_id, topic_id).await?;
    if topic.cluster_id != id {
        return Err(crate::Error::NotFound);
    }
    Ok(())
}

pub(crate) async fn update(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    csrf: CsrfToken,
    Path((id, topic_id)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<TopicForm>,
) -> Result<Response> {
    owned_topic(&state, &viewer, &id, &topic_id).await?;
    let mut errors = FieldErrors::default();
    let request = UpdateTopic {
        partitions: Some(number(
            "update",
            "Partitions",
            &form.partitions,
            &mut errors,
        )),
        retention_time: Some(number(
            "update",
            "Retention time",
            &form.retention_time,
            &mut errors,
        )),
        retention_size: Some(number(
            "update",
            "Retention size",
            &form.retention_size,
            &mut errors,
        )),
        max_message_size: Some(number(
            "update",
            "Max message size",
            &form.max_message_size,
            &mut errors,
        )),
    };
    let mut status = StatusCode::BAD_REQUEST;
    if errors.is_empty() {
        match topics::update(&state.app, &viewer.account_id, &topic_id, request).await {
            Ok(_) => return Ok(see_other(&format!("/clusters/{id}/topics"))),
            Err(e) => (status, errors) = FieldErrors::from_domain(e, &[("", "update")])?,
        }
    }
    render_page(
        &state,
        &viewer,
        &csrf,
        &id,
        Attempt {
            status,
            form: TopicForm::default(),
            errors,
            failed_topic: topic_id,
        },
    )
    .await
}

pub(crate) async fn delete(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path((id, topic_id)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<std::collections::HashMap<String, String>>,
) -> Result<Response> {
    owned_topic(&state, &viewer, &id, &topic_id).await?;
    topics::delete(&state.app, &viewer.account_id, &topic_id).await?;
    Ok(see_other(&format!("/clusters/{id}/topics")))
}

/// A topic's limit for the list: -1 (asked as the plan's maximum) shows that maximum.
fn at_most(value: i64, plan_max: i64, show: fn(i64) -> String) -> String {
    if value == -1 {
        format!("{} (plan maximum)", show(plan_max))
    } else {
        show(value)
    }
}
