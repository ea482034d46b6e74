//! The cluster page: endpoints, credentials with copy buttons, ready-to-run snippets,
//! password reset, scoped credentials and renaming.

use askama::Template;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use capstan_api::{
    clusters,
    credentials::{self, CreateCredential, CredentialView},
    topics,
};
use serde::Deserialize;

use super::{ClusterHeader, Layout, render, see_other};
use crate::{
    ConsoleState, Result,
    csrf::{CsrfForm, CsrfToken},
    forms::FieldErrors,
    session::Viewer,
};

/// A code sample with the cluster's real values in it.
#[derive(Debug)]
struct Snippet {
    id: &'static str,
    title: &'static str,
    code: String,
}

/// How to reach the cluster.
#[derive(Debug)]
struct Endpoints {
    tcp: String,
    security_protocol: String,
    mechanism: String,
    rest_url: String,
    username: String,
    password: String,
}

#[derive(Template)]
#[template(path = "cluster.html")]
struct ClusterPage {
    layout: Layout,
    header: ClusterHeader,
    endpoints: Endpoints,
    snippets: Vec<Snippet>,
    credentials: Vec<CredentialView>,
    form: CredentialForm,
    errors: FieldErrors,
}

/// The URL of the REST data gateway for a `rest_endpoint`: as given when it has a scheme,
/// plain HTTP on a loopback or `localhost` address (`capstan dev`), HTTPS otherwise.
pub(crate) fn rest_url(rest_endpoint: &str) -> String {
    if rest_endpoint.starts_with("http://") || rest_endpoint.starts_with("https://") {
        return rest_endpoint.trim_end_matches('/').to_owned();
    }
    let host = rest_endpoint
        .rsplit_once(':')
        .map_or(rest_endpoint, |(host, _)| host)
        .trim_matches(['[', ']']);
    let local = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    format!("{}://{rest_endpoint}", if local { "http" } else { "https" })
}

fn snippets(endpoints: &Endpoints, topic: &str) -> Vec<Snippet> {
    let Endpoints {
        tcp,
        security_protocol,
        mechanism,
        rest_url,
        username,
        password,
    } = endpoints;
    let tls = security_protocol.starts_with("SASL_SSL");
    vec![
        Snippet {
            id: "upstash",
            title: "@upstash/kafka (REST)",
            code: format!(
                r#"import {{ Kafka }} from "@upstash/kafka";

const kafka = new Kafka({{
  url: "{rest_url}",
  username: "{username}",
  password: "{password}",
}});

const producer = kafka.producer();
await producer.produce("{topic}", "Hello from Capstan");

const consumer = kafka.consumer();
const messages = await consumer.consume({{
  consumerGroupId: "group_1",
  instanceId: "instance_1",
  topics: ["{topic}"],
  autoOffsetReset: "earliest",
}});
console.log(messages);"#
            ),
        },
        Snippet {
            id: "kafkajs",
            title: "kafkajs (TCP)",
            code: format!(
                r#"import {{ Kafka }} from "kafkajs";

const kafka = new Kafka({{
  brokers: ["{tcp}"],
  ssl: {tls},
  sasl: {{ mechanism: "{}", username: "{username}", password: "{password}" }},
}});

const producer = kafka.producer();
await producer.connect();
await producer.send({{ topic: "{topic}", messages: [{{ value: "Hello from Capstan" }}] }});
await producer.disconnect();"#,
                mechanism.to_lowercase()
            ),
        },
        Snippet {
            id: "curl",
            title: "curl (REST)",
            code: format!(
                r#"curl {rest_url}/produce/{topic}/hello -u '{username}:{password}'

curl {rest_url}/consume/group_1/instance_1/{topic} -u '{username}:{password}'"#
            ),
        },
        Snippet {
            id: "kcat",
            title: "kcat (TCP)",
            code: format!(
                r#"kcat -b {tcp} -X security.protocol={security_protocol} \
  -X sasl.mechanisms={mechanism} \
  -X sasl.username='{username}' -X sasl.password='{password}' \
  -t {topic} -C -o beginning -e"#
            ),
        },
    ]
}

/// Renders the cluster page with `errors` next to the form that failed.
pub(crate) async fn render_page(
    state: &ConsoleState,
    viewer: &Viewer,
    csrf: &CsrfToken,
    id: &str,
    status: StatusCode,
    errors: FieldErrors,
    form: Option<CredentialForm>,
) -> Result<Response> {
    let header = ClusterHeader::load(state, viewer, id, "overview").await?;
    let row = &header.row;
    let config = state
        .app
        .provisioner
        .client_config(&row.spec(), &row.tcp_endpoint);
    let setting = |key: &str, default: &str| config.get(key).unwrap_or(default).to_owned();
    let cluster = &header.cluster;
    let endpoints = Endpoints {
        tcp: cluster.tcp_endpoint.clone(),
        security_protocol: setting("security.protocol", "SASL_PLAINTEXT"),
        mechanism: setting("sasl.mechanism", "SCRAM-SHA-512"),
        rest_url: rest_url(&cluster.rest_endpoint),
        username: cluster.username.clone(),
        password: cluster.password.clone(),
    };
    let topic = topics::list(&state.app, &viewer.account_id, id)
        .await?
        .into_iter()
        .next()
        .map_or_else(|| "my-topic".to_owned(), |t| t.topic_name);
    let credentials = credentials::list(&state.app, &viewer.account_id)
        .await?
        .into_iter()
        .filter(|c| c.cluster_id == id)
        .collect();
    render(
        status,
        &ClusterPage {
            layout: Layout::new(cluster.name.clone(), Some(viewer), csrf, "clusters"),
            snippets: snippets(&endpoints, &topic),
            endpoints,
            credentials,
            form: form.unwrap_or_default(),
            errors,
            header,
        },
    )
}

pub(crate) async fn show(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    csrf: CsrfToken,
    Path(id): Path<String>,
) -> Result<Response> {
    render_page(
        &state,
        &viewer,
        &csrf,
        &id,
        StatusCode::OK,
        FieldErrors::default(),
        None,
    )
    .await
}

pub(crate) async fn reset_password(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<std::collections::HashMap<String, String>>,
) -> Result<Response> {
    clusters::reset_password(&state.app, &viewer.account_id, &id).await?;
    Ok(see_other(&format!("/clusters/{id}#credentials")))
}

/// The scoped-credential form.
#[derive(Debug, Deserialize)]
pub(crate) struct CredentialForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    permissions: String,
}

impl Default for CredentialForm {
    fn default() -> Self {
        CredentialForm {
            name: String::new(),
            topic: "*".into(),
            permissions: "ALL".into(),
        }
    }
}

pub(crate) async fn create_credential(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    csrf: CsrfToken,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<CredentialForm>,
) -> Result<Response> {
    let request = CreateCredential {
        credential_name: form.name.clone(),
        cluster_id: id.clone(),
        topic: form.topic.clone(),
        permissions: form.permissions.clone(),
    };
    match credentials::create(&state.app, &viewer.account_id, request).await {
        Ok(_) => Ok(see_other(&format!("/clusters/{id}#scoped-credentials"))),
        Err(e) => {
            let (status, errors) = FieldErrors::from_domain(
                e,
                &[
                    ("credential name", "credential_name"),
                    ("credential named", "credential_name"),
                    ("topic", "credential_topic"),
                    ("permissions", "credential_permissions"),
                    ("", "credential_name"),
                ],
            )?;
            render_page(&state, &viewer, &csrf, &id, status, errors, Some(form)).await
        }
    }
}

pub(crate) async fn delete_credential(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path((id, credential)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<std::collections::HashMap<String, String>>,
) -> Result<Response> {
    let owned = credentials::list(&state.app, &viewer.account_id)
        .await?
        .into_iter()
        .any(|c| c.credential_id == credential && c.cluster_id == id);
    if !owned {
        return Err(crate::Error::NotFound);
    }
    credentials::delete(&state.app, &viewer.account_id, &credential).await?;
    Ok(see_other(&format!("/clusters/{id}#scoped-credentials")))
}

#[cfg(test)]
mod tests {
    use super::rest_url;

    #[test]
    fn rest_urls_get_the_scheme_users_need() {
        assert_eq!(rest_url("127.0.0.1:8081"), "http://127.0.0.1:8081");
        assert_eq!(rest_url("localhost:8081"), "http://localhost:8081");
        assert_eq!(rest_url("[::1]:8081"), "http://[::1]:8081");
        assert_eq!(rest_url("kafka.example.com"), "https://kafka.example.com");
        assert_eq!(rest_url("http://gw.internal:80/"), "http://gw.internal:80");
    }
}
