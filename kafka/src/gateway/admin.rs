//! Topic administration over the Kafka protocol, answered by the control plane: the same plan
//! limits and validation as its API, and the result registered where the REST gateway, the
//! console and metering see it. Nothing here is forwarded to the brokers directly.

use kafka_protocol::{messages::*, protocol::StrBytes};

use super::{
    backend::BackendPool,
    errors::{code, error_response},
    names::Names,
    policy::{AdminError, ConfigChange, NewTopic, Policy, Tenant},
};

const TOPIC_RESOURCE: i8 = 2;
/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;

fn message(text: &str) -> Option<StrBytes> {
    Some(StrBytes::from_string(text.to_owned()))
}

/// A message for a field that exists from version `first` on.
fn message_since(version: i16, first: i16, text: &str) -> Option<StrBytes> {
    if version >= first {
        message(text)
    } else {
        None
    }
}

/// Answers a CreateTopics, DeleteTopics, CreatePartitions, AlterConfigs or
/// IncrementalAlterConfigs request of `tenant`.
pub async fn answer(
    request: RequestKind,
    version: i16,
    tenant: &Tenant,
    names: &Names,
    policy: &dyn Policy,
    pool: &BackendPool,
) -> ResponseKind {
    match request {
        RequestKind::CreateTopics(r) => create_topics(r, version, tenant, policy).await.into(),
        RequestKind::DeleteTopics(r) => delete_topics(r, version, tenant, names, policy, pool)
            .await
            .into(),
        RequestKind::CreatePartitions(r) => {
            let counts = r
                .topics
                .iter()
                .map(|t| (t.name.to_string(), t.count))
                .collect();
            let results = policy
                .create_partitions(tenant, counts, r.validate_only)
                .await;
            CreatePartitionsResponse::default()
                .with_results(
                    r.topics
                        .iter()
                        .zip(results)
                        .map(|(topic, result)| {
                            let (code, text) = outcome(&result);
                            create_partitions_response::CreatePartitionsTopicResult::default()
                                .with_name(topic.name.clone())
                                .with_error_code(code)
                                .with_error_message(text)
                        })
                        .collect(),
                )
                .into()
        }
        RequestKind::AlterConfigs(r) => {
            let mut responses = Vec::new();
            for resource in r.resources {
                let changes = resource
                    .configs
                    .iter()
                    .map(|c| match &c.value {
                        Some(value) => ConfigChange::Set(c.name.to_string(), value.to_string()),
                        None => ConfigChange::Delete(c.name.to_string()),
                    })
                    .collect();
                let result = alter(
                    &resource.resource_name,
                    resource.resource_type,
                    changes,
                    true,
                    r.validate_only,
                    tenant,
                    policy,
                )
                .await;
                let (code, text) = outcome(&result);
                responses.push(
                    alter_configs_response::AlterConfigsResourceResponse::default()
                        .with_resource_type(resource.resource_type)
                        .with_resource_name(resource.resource_name)
                        .with_error_code(code)
                        .with_error_message(text),
                );
            }
            AlterConfigsResponse::default()
                .with_responses(responses)
                .into()
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            let mut responses = Vec::new();
            for resource in r.resources {
                let changes: Result<Vec<ConfigChange>, AdminError> = resource
                    .configs
                    .iter()
                    .map(|c| match (c.config_operation, &c.value) {
                        (SET, Some(value)) => {
                            Ok(ConfigChange::Set(c.name.to_string(), value.to_string()))
                        }
                        (DELETE, _) => Ok(ConfigChange::Delete(c.name.to_string())),
                        (SET, None) => Err(AdminError::InvalidConfig(format!(
                            "{} needs a value",
                            c.name.as_str()
                        ))),
                        _ => Err(AdminError::InvalidConfig(format!(
                            "{}: only SET and DELETE are supported (no list configurations here)",
                            c.name.as_str()
                        ))),
                    })
                    .collect();
                let result = match changes {
                    Ok(changes) => {
                        alter(
                            &resource.resource_name,
                            resource.resource_type,
                            changes,
                            false,
                            r.validate_only,
                            tenant,
                            policy,
                        )
                        .await
                    }
                    Err(e) => Err(e),
                };
                let (code, text) = outcome(&result);
                responses.push(
                    incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                        .with_resource_type(resource.resource_type)
                        .with_resource_name(resource.resource_name)
                        .with_error_code(code)
                        .with_error_message(text),
                );
            }
            IncrementalAlterConfigsResponse::default()
                .with_responses(responses)
                .into()
        }
        other => error_response(
            &other,
            version,
            code::INVALID_REQUEST,
            "not an administrative request",
        )
        .unwrap_or_else(|| {
            ApiVersionsResponse::default()
                .with_error_code(code::INVALID_REQUEST)
                .into()
        }),
    }
}

async fn alter(
    name: &StrBytes,
    resource_type: i8,
    changes: Vec<ConfigChange>,
    replace: bool,
    validate_only: bool,
    tenant: &Tenant,
    policy: &dyn Policy,
) -> Result<(), AdminError> {
    if resource_type != TOPIC_RESOURCE {
        return Err(AdminError::NotAuthorized(
            "only topic configurations can be changed by clients of a Capstan cluster".into(),
        ));
    }
    policy
        .alter_topic_configs(tenant, name.to_string(), changes, replace, validate_only)
        .await
}

fn outcome<T>(result: &Result<T, AdminError>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(_) => (0, None),
        Err(e) => (e.code(), message(e.message())),
    }
}

async fn create_topics(
    r: CreateTopicsRequest,
    version: i16,
    tenant: &Tenant,
    policy: &dyn Policy,
) -> CreateTopicsResponse {
    let wanted = r
        .topics
        .iter()
        .map(|t| NewTopic {
            name: t.name.to_string(),
            partitions: (t.num_partitions > 0).then_some(t.num_partitions),
            configs: t
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect(),
        })
        .collect();
    let results = policy.create_topics(tenant, wanted, r.validate_only).await;
    CreateTopicsResponse::default().with_topics(
        r.topics
            .iter()
            .zip(results)
            .map(|(topic, result)| {
                let answer = create_topics_response::CreatableTopicResult::default()
                    .with_name(topic.name.clone());
                match result {
                    // From v5 the answer says what was made.
                    Ok(created) if version >= 5 => answer
                        .with_num_partitions(created.partitions)
                        .with_replication_factor(topic.replication_factor.max(1))
                        .with_configs(Some(
                            created
                                .configs
                                .into_iter()
                                .map(|(name, value)| {
                                    create_topics_response::CreatableTopicConfigs::default()
                                        .with_name(StrBytes::from_string(name))
                                        .with_value(Some(StrBytes::from_string(value)))
                                        .with_config_source(1)
                                })
                                .collect(),
                        )),
                    Ok(_) => answer,
                    Err(e) => answer
                        .with_error_code(e.code())
                        .with_error_message(message(e.message())),
                }
            })
            .collect(),
    )
}

async fn delete_topics(
    r: DeleteTopicsRequest,
    version: i16,
    tenant: &Tenant,
    names: &Names,
    policy: &dyn Policy,
    pool: &BackendPool,
) -> DeleteTopicsResponse {
    // Up to v5 topics come by name; from v6 by name or by id.
    let mut wanted: Vec<(Option<TopicName>, uuid::Uuid)> = r
        .topic_names
        .iter()
        .map(|n| (Some(n.clone()), uuid::Uuid::nil()))
        .collect();
    if version >= 6 {
        wanted.extend(r.topics.iter().map(|t| (t.name.clone(), t.topic_id)));
    }
    // By id: the tenant's own topics by their names; another tenant's id is not authorized.
    let mut resolved: Vec<Result<String, i16>> = Vec::new();
    for (name, id) in &wanted {
        let name = match name {
            Some(name) => Ok(name.to_string()),
            None => match pool.catalog.name_of(&pool.spec, *id).await.ok().flatten() {
                Some(physical) => names
                    .virtual_name(&StrBytes::from_string(physical))
                    .map(|n| n.to_string())
                    .ok_or(code::TOPIC_AUTHORIZATION_FAILED),
                None => Err(code::UNKNOWN_TOPIC_ID),
            },
        };
        resolved.push(name);
    }
    let known: Vec<String> = resolved.iter().flatten().cloned().collect();
    let mut results = policy.delete_topics(tenant, known).await.into_iter();
    DeleteTopicsResponse::default().with_responses(
        wanted
            .into_iter()
            .zip(resolved)
            .map(|((_, id), name)| {
                let answer =
                    delete_topics_response::DeletableTopicResult::default().with_topic_id(id);
                match name {
                    Err(refusal) => {
                        answer
                            .with_error_code(refusal)
                            .with_error_message(message_since(
                                version,
                                5,
                                if refusal == code::UNKNOWN_TOPIC_ID {
                                    "This server does not host this topic ID."
                                } else {
                                    "Not authorized to access topics: [Topic authorization failed.]"
                                },
                            ))
                    }
                    Ok(name) => {
                        let result = results
                            .next()
                            .unwrap_or(Err(AdminError::Internal("no answer".into())));
                        let (code, text) = outcome(&result);
                        answer
                            .with_name(Some(TopicName(StrBytes::from_string(name))))
                            .with_error_code(code)
                            .with_error_message(if version >= 5 { text } else { None })
                    }
                }
            })
            .collect(),
    )
}
