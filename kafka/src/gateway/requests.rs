//! The way in: each request is put into the pool's names (under the tenant's prefix), checked
//! against what the tenant owns and what the engine can take, and either forwarded with what
//! its answer's rewrite needs ([`Context`]) or answered here.

use kafka_protocol::{
    messages::{fetch_response::FetchableTopicResponse, produce_response::TopicProduceResponse, *},
    records::RecordBatchDecoder,
};

use super::{
    authorize,
    backend::BackendPool,
    delivery,
    errors::{code, error_response, fetch_partition_error, produce_partition_error},
    names::Names,
    policy::Engine,
};
use crate::Result;

/// What to do with a request.
#[derive(Debug)]
pub enum Route {
    /// Send it to the backend; `answer` is false when the client expects no response.
    Forward {
        /// The request in the pool's names.
        request: RequestKind,
        /// What the answer's rewrite needs.
        context: Context,
        /// Whether the client gets the answer.
        answer: bool,
    },
    /// Answer it here.
    Answer(ResponseKind),
    /// Topic administration: answered by the control plane (see `admin`).
    Admin(RequestKind),
    /// Nothing to send and nobody to answer (an `acks=0` produce refused entirely).
    Nothing,
}

/// What rewriting an answer needs to know of its request.
#[derive(Debug)]
pub enum Context {
    /// Nothing in the answer names anything: forward it as it is.
    Opaque,
    /// Strip the prefix from names and drop entries that are not the tenant's.
    Rewrite,
    /// A Metadata answer: `all` when every topic was asked for; `none` when no topic was
    /// (tansu answers every topic to an empty list); plus topics (by id) answered here.
    Metadata {
        /// Every topic was asked for.
        all: bool,
        /// No topic was asked for.
        none: bool,
        /// Topics asked for by an id that is not the tenant's.
        refused: Vec<metadata_response::MetadataResponseTopic>,
    },
    /// A Produce answer, plus partitions answered here (in the tenant's names).
    Produce(Vec<TopicProduceResponse>),
    /// A Fetch answer, plus partitions answered here, and what was asked (to count the
    /// records it delivers).
    Fetch(Vec<FetchableTopicResponse>, delivery::Asked),
    /// A DescribeConfigs answer, plus resources answered here.
    DescribeConfigs(Vec<describe_configs_response::DescribeConfigsResult>),
    /// An InitProducerId answer whose producer id the gateway must remember (local engine).
    InitProducerId,
}

/// Config resource types.
const TOPIC_RESOURCE: i8 = 2;

fn forward(request: impl Into<RequestKind>, context: Context) -> Route {
    Route::Forward {
        request: request.into(),
        context,
        answer: true,
    }
}

fn refuse(request: &RequestKind, version: i16, code: i16, message: &str) -> Route {
    match error_response(request, version, code, message) {
        Some(response) => Route::Answer(response),
        None => Route::Answer(ResponseKind::ApiVersions(
            ApiVersionsResponse::default().with_error_code(code),
        )),
    }
}

/// Routes one request of an authenticated tenant.
pub async fn route(
    request: RequestKind,
    version: i16,
    names: &Names,
    pool: &BackendPool,
) -> Result<Route> {
    let tansu = pool.spec.engine == Engine::Tansu;
    let scope = names.scope();
    if let Some(refusal) = authorize::refusal(&request, names) {
        return Ok(refuse(&request, version, refusal.code, refusal.message));
    }
    Ok(match request {
        RequestKind::ListGroups(_) if !scope.may_use_groups() => {
            // Like a broker's answer to a principal that may describe no group: none.
            Route::Answer(ListGroupsResponse::default().into())
        }
        RequestKind::Produce(r) => produce(r, version, names, pool).await?,
        RequestKind::Fetch(r) => fetch(r, version, names, pool).await?,
        RequestKind::ListOffsets(mut r) => {
            // A client never acts as a follower replica.
            if r.replica_id.0 >= 0 {
                r.replica_id = BrokerId(-1);
            }
            for topic in &mut r.topics {
                topic.name = names.topic(&topic.name);
            }
            forward(r, Context::Rewrite)
        }
        RequestKind::Metadata(r) => metadata(r, version, names, pool).await?,
        RequestKind::OffsetCommit(mut r) => {
            r.group_id = names.group(&r.group_id);
            for topic in &mut r.topics {
                topic.name = names.topic(&topic.name);
            }
            forward(r, Context::Rewrite)
        }
        RequestKind::OffsetFetch(mut r) => {
            // Up to v7 one group; from v8 a list of groups (fields of other versions must stay
            // at their defaults, or the request does not encode).
            if version <= 7 {
                r.group_id = names.group(&r.group_id);
            }
            for topic in r.topics.iter_mut().flatten() {
                topic.name = names.topic(&topic.name);
            }
            for group in &mut r.groups {
                group.group_id = names.group(&group.group_id);
                for topic in group.topics.iter_mut().flatten() {
                    topic.name = names.topic(&topic.name);
                }
            }
            forward(r, Context::Rewrite)
        }
        RequestKind::FindCoordinator(mut r) => {
            // Group and transactional ids share the prefix, whatever the key type (up to v3
            // one key, even an empty group id; from v4 a list).
            if version <= 3 {
                r.key = names.physical(&r.key);
            }
            for key in &mut r.coordinator_keys {
                *key = names.physical(key);
            }
            forward(r, Context::Rewrite)
        }
        RequestKind::JoinGroup(mut r) => {
            r.group_id = names.group(&r.group_id);
            forward(r, Context::Opaque)
        }
        RequestKind::Heartbeat(mut r) => {
            r.group_id = names.group(&r.group_id);
            forward(r, Context::Opaque)
        }
        RequestKind::LeaveGroup(mut r) => {
            r.group_id = names.group(&r.group_id);
            forward(r, Context::Opaque)
        }
        RequestKind::SyncGroup(mut r) => {
            r.group_id = names.group(&r.group_id);
            forward(r, Context::Opaque)
        }
        RequestKind::DescribeGroups(mut r) => {
            r.groups = r.groups.iter().map(|g| names.group(g)).collect();
            forward(r, Context::Rewrite)
        }
        RequestKind::ListGroups(r) => forward(r, Context::Rewrite),
        RequestKind::DeleteGroups(mut r) => {
            r.groups_names = r.groups_names.iter().map(|g| names.group(g)).collect();
            forward(r, Context::Rewrite)
        }
        RequestKind::OffsetDelete(mut r) => {
            r.group_id = names.group(&r.group_id);
            for topic in &mut r.topics {
                topic.name = names.topic(&topic.name);
            }
            forward(r, Context::Rewrite)
        }
        RequestKind::InitProducerId(mut r) => {
            if tansu && r.transactional_id.is_some() {
                let request = RequestKind::InitProducerId(r);
                return Ok(refuse(
                    &request,
                    version,
                    code::UNSUPPORTED_VERSION,
                    "transactions are not supported by the local broker engine",
                ));
            }
            if tansu && (r.producer_id.0 != -1 || r.producer_epoch != -1) {
                let request = RequestKind::InitProducerId(r);
                return Ok(refuse(
                    &request,
                    version,
                    code::UNSUPPORTED_VERSION,
                    "the local broker engine cannot bump a producer's epoch; start a new producer",
                ));
            }
            r.transactional_id = r.transactional_id.map(|t| names.transactional_id(&t));
            let context = if tansu {
                Context::InitProducerId
            } else {
                Context::Opaque
            };
            forward(r, context)
        }
        RequestKind::AddPartitionsToTxn(mut r) => {
            if version <= 3 {
                r.v3_and_below_transactional_id =
                    names.transactional_id(&r.v3_and_below_transactional_id);
            }
            for topic in &mut r.v3_and_below_topics {
                topic.name = names.topic(&topic.name);
            }
            forward(r, Context::Rewrite)
        }
        RequestKind::AddOffsetsToTxn(mut r) => {
            r.transactional_id = names.transactional_id(&r.transactional_id);
            r.group_id = names.group(&r.group_id);
            forward(r, Context::Opaque)
        }
        RequestKind::EndTxn(mut r) => {
            r.transactional_id = names.transactional_id(&r.transactional_id);
            forward(r, Context::Opaque)
        }
        RequestKind::TxnOffsetCommit(mut r) => {
            r.transactional_id = names.transactional_id(&r.transactional_id);
            r.group_id = names.group(&r.group_id);
            for topic in &mut r.topics {
                topic.name = names.topic(&topic.name);
            }
            forward(r, Context::Rewrite)
        }
        RequestKind::OffsetForLeaderEpoch(mut r) => {
            if r.replica_id.0 >= 0 {
                r.replica_id = BrokerId(-1);
            }
            for topic in &mut r.topics {
                topic.topic = names.topic(&topic.topic);
            }
            forward(r, Context::Rewrite)
        }
        RequestKind::DeleteRecords(mut r) => {
            for topic in &mut r.topics {
                topic.name = names.topic(&topic.name);
            }
            forward(r, Context::Rewrite)
        }
        RequestKind::DescribeConfigs(r) => describe_configs(r, names),
        RequestKind::DescribeLogDirs(mut r) => {
            for topic in r.topics.iter_mut().flatten() {
                topic.topic = names.topic(&topic.topic);
            }
            forward(r, Context::Rewrite)
        }
        RequestKind::DescribeCluster(r) => forward(r, Context::Rewrite),
        request @ (RequestKind::CreateTopics(_)
        | RequestKind::DeleteTopics(_)
        | RequestKind::CreatePartitions(_)
        | RequestKind::AlterConfigs(_)
        | RequestKind::IncrementalAlterConfigs(_)) => Route::Admin(request),
        other => refuse(
            &other,
            version,
            code::CLUSTER_AUTHORIZATION_FAILED,
            "this API is not available through the Capstan gateway",
        ),
    })
}

async fn produce(
    mut r: ProduceRequest,
    version: i16,
    names: &Names,
    pool: &BackendPool,
) -> Result<Route> {
    let answer = r.acks != 0;
    // acks=0 is sent with acks=1 so that the broker's answer (which tansu sends even for acks=0)
    // keeps the connection's answers in order; the client gets none, as it expects.
    if !answer {
        r.acks = 1;
    }
    r.transactional_id = r.transactional_id.map(|t| names.transactional_id(&t));
    let tansu = pool.spec.engine == Engine::Tansu;
    let mut local = Vec::new();
    for topic in &mut r.topic_data {
        let virtual_name = topic.name.clone();
        topic.name = names.topic(&topic.name);
        if !names.may_produce(virtual_name.as_str()) {
            local.push(
                TopicProduceResponse::default()
                    .with_name(virtual_name)
                    .with_partition_responses(
                        std::mem::take(&mut topic.partition_data)
                            .iter()
                            .map(|data| {
                                produce_partition_error(
                                    data.index,
                                    version,
                                    code::TOPIC_AUTHORIZATION_FAILED,
                                    "this credential may not produce to this topic",
                                )
                            })
                            .collect(),
                    ),
            );
            continue;
        }
        if !tansu {
            continue;
        }
        // tansu 0.6 panics on a produce to a partition it does not have, or with a producer
        // epoch it did not issue: answer those here.
        let partitions = pool
            .catalog
            .partitions(&pool.spec, topic.name.as_str())
            .await?;
        let mut refused = Vec::new();
        topic.partition_data.retain(|data| {
            let exists = partitions.is_some_and(|count| (0..count).contains(&data.index));
            if !exists {
                refused.push(produce_partition_error(
                    data.index,
                    version,
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                    "This server does not host this topic-partition.",
                ));
                return false;
            }
            if !producers_known(data.records.as_ref(), pool) {
                refused.push(produce_partition_error(
                    data.index,
                    version,
                    code::INVALID_PRODUCER_EPOCH,
                    "the producer id and epoch were not issued by this cluster",
                ));
                return false;
            }
            true
        });
        if !refused.is_empty() {
            local.push(
                TopicProduceResponse::default()
                    .with_name(virtual_name)
                    .with_partition_responses(refused),
            );
        }
    }
    r.topic_data.retain(|t| !t.partition_data.is_empty());
    if r.topic_data.is_empty() {
        let response = ProduceResponse::default().with_responses(local);
        return Ok(if answer {
            Route::Answer(response.into())
        } else {
            Route::Nothing
        });
    }
    Ok(Route::Forward {
        request: r.into(),
        context: Context::Produce(local),
        answer,
    })
}

/// True when every idempotent batch carries a producer id and epoch the backend issued.
fn producers_known(records: Option<&bytes::Bytes>, pool: &BackendPool) -> bool {
    let Some(records) = records else { return true };
    let mut rest = records.clone();
    let Ok(batches) = RecordBatchDecoder::decode_batch_info(&mut rest) else {
        return false;
    };
    // Anything the decoder stopped before (a batch of another format) is refused too.
    if bytes::Buf::has_remaining(&rest) {
        return false;
    }
    batches
        .iter()
        .filter(|batch| batch.producer_id >= 0)
        .all(|batch| {
            pool.catalog
                .knows_producer(batch.producer_id, batch.producer_epoch)
        })
}

async fn fetch(
    mut r: FetchRequest,
    version: i16,
    names: &Names,
    pool: &BackendPool,
) -> Result<Route> {
    // Incremental fetch sessions are not offered: the session id is a broker-wide number, and
    // a guessed one must never show another tenant's partitions. Every fetch is a full fetch.
    r.session_id = 0;
    r.session_epoch = -1;
    r.forgotten_topics_data.clear();
    if r.replica_id.0 >= 0 || r.replica_state.replica_id.0 >= 0 {
        // A client never acts as a follower replica.
        r.replica_id = BrokerId(-1);
        r.replica_state = Default::default();
    }
    r.cluster_id = None;
    let tansu = pool.spec.engine == Engine::Tansu;
    let mut local = Vec::new();
    let mut kept = Vec::new();
    let mut asked = delivery::Asked {
        topics: Vec::new(),
        read_committed: r.isolation_level == 1,
    };
    for mut topic in std::mem::take(&mut r.topics) {
        // The name the client used (empty from v13, where topics go by id).
        let asked_name = topic.topic.clone();
        let physical = if version >= 13 {
            // By id: an id of another tenant's topic is refused like Kafka refuses a topic the
            // principal may not read; an unknown id is unknown.
            match pool.catalog.name_of(&pool.spec, topic.topic_id).await? {
                Some(name) if names.owns(&name) => Ok(name),
                Some(_) => Err(code::TOPIC_AUTHORIZATION_FAILED),
                None => Err(code::UNKNOWN_TOPIC_ID),
            }
        } else {
            topic.topic = names.topic(&topic.topic);
            Ok(topic.topic.to_string())
        };
        let physical = physical.and_then(|physical| {
            let consumable = names
                .virtual_name(&kafka_protocol::protocol::StrBytes::from_string(
                    physical.clone(),
                ))
                .is_some_and(|name| names.may_consume(&name));
            if consumable {
                Ok(physical)
            } else {
                Err(code::TOPIC_AUTHORIZATION_FAILED)
            }
        });
        let physical = match physical {
            Ok(physical) => physical,
            Err(refusal) => {
                local.push(
                    FetchableTopicResponse::default()
                        .with_topic(asked_name)
                        .with_topic_id(topic.topic_id)
                        .with_partitions(
                            topic
                                .partitions
                                .iter()
                                .map(|p| fetch_partition_error(p.partition, refusal))
                                .collect(),
                        ),
                );
                continue;
            }
        };
        if tansu {
            // tansu 0.6 panics on a fetch of a partition it does not have.
            let count = pool.catalog.partitions(&pool.spec, &physical).await?;
            let mut refused = Vec::new();
            topic.partitions.retain(|p| {
                let exists = count.is_some_and(|count| (0..count).contains(&p.partition));
                if !exists {
                    refused.push(fetch_partition_error(
                        p.partition,
                        code::UNKNOWN_TOPIC_OR_PARTITION,
                    ));
                }
                exists
            });
            if !refused.is_empty() {
                let virtual_name = names
                    .virtual_topic(&TopicName(kafka_protocol::protocol::StrBytes::from_string(
                        physical.clone(),
                    )))
                    .unwrap_or_default();
                local.push(
                    FetchableTopicResponse::default()
                        .with_topic(if version >= 13 {
                            TopicName::default()
                        } else {
                            virtual_name
                        })
                        .with_topic_id(topic.topic_id)
                        .with_partitions(refused),
                );
            }
        }
        if !topic.partitions.is_empty() {
            asked.topics.push(delivery::AskedTopic {
                id: topic.topic_id,
                name: names
                    .virtual_name(&kafka_protocol::protocol::StrBytes::from_string(
                        physical.clone(),
                    ))
                    .map(|name| name.to_string())
                    .unwrap_or_default(),
                physical,
                offsets: topic
                    .partitions
                    .iter()
                    .map(|p| (p.partition, p.fetch_offset))
                    .collect(),
            });
            kept.push(topic);
        }
    }
    r.topics = kept;
    if r.topics.is_empty() && !local.is_empty() {
        return Ok(Route::Answer(
            FetchResponse::default().with_responses(local).into(),
        ));
    }
    Ok(forward(r, Context::Fetch(local, asked)))
}

async fn metadata(
    mut r: MetadataRequest,
    version: i16,
    names: &Names,
    pool: &BackendPool,
) -> Result<Route> {
    // Topics are only ever created through Capstan's rules, never by a metadata request (the
    // field exists from v4, the first version offered).
    r.allow_auto_topic_creation = false;
    let all = match &r.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    let mut refused = Vec::new();
    if let Some(topics) = r.topics.as_mut().filter(|_| !all) {
        let mut kept = Vec::new();
        for mut topic in std::mem::take(topics) {
            // A topic is asked for by id when it has one and no (or an empty) name.
            let by_id =
                !topic.topic_id.is_nil() && topic.name.as_ref().is_none_or(|n| n.is_empty());
            match &topic.name {
                Some(name) if !by_id && !names.may_describe(name.as_str()) => {
                    refused.push(
                        metadata_response::MetadataResponseTopic::default()
                            .with_name(Some(name.clone()))
                            .with_error_code(code::TOPIC_AUTHORIZATION_FAILED),
                    );
                }
                Some(name) if !by_id => {
                    topic.name = Some(names.topic(name));
                    kept.push(topic);
                }
                _ if by_id => {
                    // By id: an id of the tenant's topics (and in the credential's scope) is
                    // looked up by its name.
                    let visible = |name: &str| {
                        names
                            .virtual_topic(&TopicName(
                                kafka_protocol::protocol::StrBytes::from_string(name.to_owned()),
                            ))
                            .is_some()
                    };
                    let error = match pool.catalog.name_of(&pool.spec, topic.topic_id).await? {
                        Some(name) if visible(&name) => {
                            topic.name = Some(TopicName(
                                kafka_protocol::protocol::StrBytes::from_string(name),
                            ));
                            kept.push(topic);
                            continue;
                        }
                        Some(_) => code::TOPIC_AUTHORIZATION_FAILED,
                        None => code::UNKNOWN_TOPIC_ID,
                    };
                    refused.push(
                        metadata_response::MetadataResponseTopic::default()
                            .with_topic_id(topic.topic_id)
                            .with_error_code(error),
                    );
                }
                // Neither a name nor an id: nothing to look up.
                _ => {}
            }
        }
        *topics = kept;
    }
    // No topic asked for (or none left to ask for): the answer carries none of the pool's
    // (tansu answers every topic to an empty list).
    let none = !all && r.topics.as_ref().is_some_and(Vec::is_empty);
    Ok(forward(r, Context::Metadata { all, none, refused }))
}

fn describe_configs(mut r: DescribeConfigsRequest, names: &Names) -> Route {
    let mut local = Vec::new();
    r.resources.retain_mut(|resource| {
        let refusal = if resource.resource_type != TOPIC_RESOURCE {
            Some((
                code::CLUSTER_AUTHORIZATION_FAILED,
                "only topic configurations are visible to clients of a Capstan cluster",
            ))
        } else if !names.may_describe(resource.resource_name.as_str()) {
            Some((
                code::TOPIC_AUTHORIZATION_FAILED,
                "this credential may not use this topic",
            ))
        } else {
            None
        };
        let Some((error, message)) = refusal else {
            resource.resource_name = names.physical(&resource.resource_name);
            return true;
        };
        local.push(
            describe_configs_response::DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
                .with_error_code(error)
                .with_error_message(Some(kafka_protocol::protocol::StrBytes::from_static_str(
                    message,
                ))),
        );
        false
    });
    if r.resources.is_empty() {
        return Route::Answer(
            DescribeConfigsResponse::default()
                .with_results(local)
                .into(),
        );
    }
    forward(r, Context::DescribeConfigs(local))
}
