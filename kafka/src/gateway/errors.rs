//! Kafka's answer carrying one error code for everything a request asked, built per API as a
//! broker would, so stock clients report the error instead of seeing a dropped connection.

use kafka_protocol::{messages::*, protocol::StrBytes};

/// Kafka error codes the gateway answers with.
pub mod code {
    /// `UNKNOWN_TOPIC_OR_PARTITION`.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// `TOPIC_AUTHORIZATION_FAILED`.
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    /// `GROUP_AUTHORIZATION_FAILED`.
    pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
    /// `CLUSTER_AUTHORIZATION_FAILED`.
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    /// `UNSUPPORTED_SASL_MECHANISM`.
    pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
    /// `ILLEGAL_SASL_STATE`.
    pub const ILLEGAL_SASL_STATE: i16 = 34;
    /// `UNSUPPORTED_VERSION`.
    pub const UNSUPPORTED_VERSION: i16 = 35;
    /// `INVALID_REQUEST`.
    pub const INVALID_REQUEST: i16 = 42;
    /// `INVALID_PRODUCER_EPOCH`.
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    /// `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`.
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    /// `SASL_AUTHENTICATION_FAILED`.
    pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
    /// `UNKNOWN_TOPIC_ID`.
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
}

fn text(message: &str) -> Option<StrBytes> {
    Some(StrBytes::from_string(message.to_owned()))
}

/// The response to `request` (at `version`) with `code` on every entry it named; fields that
/// `version` does not have stay at their defaults. `None` for the SASL and ApiVersions
/// requests, which the session answers itself.
pub fn error_response(
    request: &RequestKind,
    version: i16,
    code: i16,
    message: &str,
) -> Option<ResponseKind> {
    // Set only from `version` on, else the answer does not encode.
    let since = |first: i16, value: i16| if version >= first { value } else { 0 };
    let text_since = |first: i16| {
        if version >= first {
            text(message)
        } else {
            None
        }
    };
    Some(match request {
        RequestKind::Produce(r) => ProduceResponse::default()
            .with_responses(
                r.topic_data
                    .iter()
                    .map(|t| {
                        produce_response::TopicProduceResponse::default()
                            .with_name(t.name.clone())
                            .with_topic_id(t.topic_id)
                            .with_partition_responses(
                                t.partition_data
                                    .iter()
                                    .map(|p| produce_partition_error(p.index, version, code, message))
                                    .collect(),
                            )
                    })
                    .collect(),
            )
            .into(),
        RequestKind::Fetch(r) => FetchResponse::default()
            .with_error_code(since(7, code))
            .with_responses(
                r.topics
                    .iter()
                    .map(|t| {
                        fetch_response::FetchableTopicResponse::default()
                            .with_topic(t.topic.clone())
                            .with_topic_id(t.topic_id)
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| fetch_partition_error(p.partition, code))
                                    .collect(),
                            )
                    })
                    .collect(),
            )
            .into(),
        RequestKind::ListOffsets(r) => ListOffsetsResponse::default()
            .with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        list_offsets_response::ListOffsetsTopicResponse::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        list_offsets_response::ListOffsetsPartitionResponse::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                            .with_timestamp(-1)
                                            .with_offset(-1)
                                            .with_leader_epoch(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
            .into(),
        RequestKind::Metadata(r) => MetadataResponse::default()
            .with_error_code(since(13, code))
            .with_topics(
                r.topics
                    .iter()
                    .flatten()
                    .map(|t| {
                        metadata_response::MetadataResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_topic_id(t.topic_id)
                            .with_error_code(code)
                    })
                    .collect(),
            )
            .into(),
        RequestKind::OffsetCommit(r) => OffsetCommitResponse::default()
            .with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        offset_commit_response::OffsetCommitResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        offset_commit_response::OffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
            .into(),
        RequestKind::OffsetFetch(r) => OffsetFetchResponse::default()
            .with_error_code(since(2, code))
            .with_groups(
                r.groups
                    .iter()
                    .map(|g| {
                        offset_fetch_response::OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(code)
                    })
                    .collect(),
            )
            .into(),
        RequestKind::FindCoordinator(r) if version <= 3 => FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_error_message(text_since(1))
            .with_node_id(BrokerId(-1))
            .with_port(-1)
            .into(),
        RequestKind::FindCoordinator(r) => FindCoordinatorResponse::default()
            .with_coordinators(
                r.coordinator_keys
                    .iter()
                    .map(|key| {
                        find_coordinator_response::Coordinator::default()
                            .with_key(key.clone())
                            .with_node_id(BrokerId(-1))
                            .with_port(-1)
                            .with_error_code(code)
                            .with_error_message(text(message))
                    })
                    .collect(),
            )
            .into(),
        RequestKind::JoinGroup(r) => JoinGroupResponse::default()
            .with_error_code(code)
            .with_generation_id(-1)
            .with_member_id(r.member_id.clone())
            .into(),
        RequestKind::Heartbeat(_) => HeartbeatResponse::default().with_error_code(code).into(),
        RequestKind::LeaveGroup(_) => LeaveGroupResponse::default().with_error_code(code).into(),
        RequestKind::SyncGroup(_) => SyncGroupResponse::default().with_error_code(code).into(),
        RequestKind::DescribeGroups(r) => DescribeGroupsResponse::default()
            .with_groups(
                r.groups
                    .iter()
                    .map(|g| {
                        describe_groups_response::DescribedGroup::default()
                            .with_group_id(g.clone())
                            .with_error_code(code)
                    })
                    .collect(),
            )
            .into(),
        RequestKind::ListGroups(_) => ListGroupsResponse::default().with_error_code(code).into(),
        RequestKind::CreateTopics(r) => CreateTopicsResponse::default()
            .with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        create_topics_response::CreatableTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(code)
                            .with_error_message(text_since(1))
                    })
                    .collect(),
            )
            .into(),
        RequestKind::DeleteTopics(r) => DeleteTopicsResponse::default()
            .with_responses(
                r.topic_names
                    .iter()
                    .map(|name| (Some(name.clone()), uuid::Uuid::nil()))
                    .chain(r.topics.iter().map(|t| (t.name.clone(), t.topic_id)))
                    .map(|(name, id)| {
                        delete_topics_response::DeletableTopicResult::default()
                            .with_name(name)
                            .with_topic_id(id)
                            .with_error_code(code)
                            .with_error_message(text_since(5))
                    })
                    .collect(),
            )
            .into(),
        RequestKind::DeleteRecords(r) => DeleteRecordsResponse::default()
            .with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        delete_records_response::DeleteRecordsTopicResult::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        delete_records_response::DeleteRecordsPartitionResult::default()
                                            .with_partition_index(p.partition_index)
                                            .with_low_watermark(-1)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
            .into(),
        RequestKind::InitProducerId(_) => InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .into(),
        RequestKind::OffsetForLeaderEpoch(r) => OffsetForLeaderEpochResponse::default()
            .with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default()
                            .with_topic(t.topic.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        offset_for_leader_epoch_response::EpochEndOffset::default()
                                            .with_partition(p.partition)
                                            .with_error_code(code)
                                            .with_leader_epoch(-1)
                                            .with_end_offset(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
            .into(),
        RequestKind::AddPartitionsToTxn(r) => AddPartitionsToTxnResponse::default()
            .with_error_code(code)
            .with_results_by_topic_v3_and_below(
                r.v3_and_below_topics
                    .iter()
                    .map(|t| {
                        add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                            .with_name(t.name.clone())
                            .with_results_by_partition(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                                            .with_partition_index(*p)
                                            .with_partition_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
            .into(),
        RequestKind::AddOffsetsToTxn(_) => {
            AddOffsetsToTxnResponse::default().with_error_code(code).into()
        }
        RequestKind::EndTxn(_) => EndTxnResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .into(),
        RequestKind::TxnOffsetCommit(r) => TxnOffsetCommitResponse::default()
            .with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
            .into(),
        RequestKind::DescribeConfigs(r) => DescribeConfigsResponse::default()
            .with_results(
                r.resources
                    .iter()
                    .map(|res| {
                        describe_configs_response::DescribeConfigsResult::default()
                            .with_resource_type(res.resource_type)
                            .with_resource_name(res.resource_name.clone())
                            .with_error_code(code)
                            .with_error_message(text(message))
                    })
                    .collect(),
            )
            .into(),
        RequestKind::AlterConfigs(r) => AlterConfigsResponse::default()
            .with_responses(
                r.resources
                    .iter()
                    .map(|res| {
                        alter_configs_response::AlterConfigsResourceResponse::default()
                            .with_resource_type(res.resource_type)
                            .with_resource_name(res.resource_name.clone())
                            .with_error_code(code)
                            .with_error_message(text(message))
                    })
                    .collect(),
            )
            .into(),
        RequestKind::IncrementalAlterConfigs(r) => IncrementalAlterConfigsResponse::default()
            .with_responses(
                r.resources
                    .iter()
                    .map(|res| {
                        incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                            .with_resource_type(res.resource_type)
                            .with_resource_name(res.resource_name.clone())
                            .with_error_code(code)
                            .with_error_message(text(message))
                    })
                    .collect(),
            )
            .into(),
        RequestKind::DescribeLogDirs(_) => DescribeLogDirsResponse::default()
            .with_error_code(since(3, code))
            .into(),
        RequestKind::CreatePartitions(r) => CreatePartitionsResponse::default()
            .with_results(
                r.topics
                    .iter()
                    .map(|t| {
                        create_partitions_response::CreatePartitionsTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(code)
                            .with_error_message(text(message))
                    })
                    .collect(),
            )
            .into(),
        RequestKind::DeleteGroups(r) => DeleteGroupsResponse::default()
            .with_results(
                r.groups_names
                    .iter()
                    .map(|g| {
                        delete_groups_response::DeletableGroupResult::default()
                            .with_group_id(g.clone())
                            .with_error_code(code)
                    })
                    .collect(),
            )
            .into(),
        RequestKind::OffsetDelete(_) => OffsetDeleteResponse::default().with_error_code(code).into(),
        RequestKind::DescribeCluster(_) => DescribeClusterResponse::default()
            .with_error_code(code)
            .with_error_message(text(message))
            .with_controller_id(BrokerId(-1))
            .into(),
        _ => return None,
    })
}

/// A partition's answer to Produce (at `version`) carrying an error.
pub fn produce_partition_error(
    index: i32,
    version: i16,
    code: i16,
    message: &str,
) -> produce_response::PartitionProduceResponse {
    produce_response::PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_error_message(if version >= 8 { text(message) } else { None })
}

/// A partition's answer to Fetch carrying an error.
pub fn fetch_partition_error(partition: i32, code: i16) -> fetch_response::PartitionData {
    fetch_response::PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(code)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(bytes::Bytes::new()))
}
