//! The API keys and versions the gateway offers (ApiVersions), per engine.
//!
//! A version is offered when the `kafka-protocol` crate can decode and encode it, the gateway
//! rewrites it, and the engine behind handles it. The keys are those Upstash supported (compat
//! spec §1.11); where an engine cannot serve one safely, it is left out, so clients see Kafka's
//! own UNSUPPORTED_VERSION instead of a broken broker.

use kafka_protocol::messages::ApiKey;

use super::policy::Engine;

/// An offered range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// Lowest version.
    pub min: i16,
    /// Highest version.
    pub max: i16,
}

const fn r(min: i16, max: i16) -> Option<Range> {
    Some(Range { min, max })
}

/// The versions of `key` offered in front of `engine`, `None` when the key is not offered.
pub fn offered(engine: Engine, key: ApiKey) -> Option<Range> {
    use ApiKey::*;
    let tansu = engine == Engine::Tansu;
    match key {
        // Produce v13 addresses topics by id only; names are what the gateway maps.
        Produce => r(3, 11),
        Fetch => r(4, 17),
        ListOffsets => r(1, 9),
        // Below v4 a Metadata request cannot turn topic auto-creation off.
        Metadata => r(4, 12),
        OffsetCommit => r(2, 9),
        OffsetFetch => r(1, 9),
        FindCoordinator => r(0, 6),
        JoinGroup => r(0, 9),
        Heartbeat => r(0, 4),
        LeaveGroup => r(0, 5),
        SyncGroup => r(0, 5),
        // tansu 0.6 drops the connection for any existing group.
        DescribeGroups if tansu => None,
        DescribeGroups => r(0, 5),
        ListGroups => r(0, 5),
        SaslHandshake => r(0, 1),
        SaslAuthenticate => r(0, 2),
        ApiVersions => r(0, 4),
        // Topic administration is answered by the control plane, whatever the engine.
        CreateTopics => r(2, 7),
        DeleteTopics => r(1, 6),
        CreatePartitions => r(0, 3),
        AlterConfigs => r(0, 2),
        IncrementalAlterConfigs => r(0, 1),
        // tansu 0.6 panics its storage on DeleteRecords.
        DeleteRecords if tansu => None,
        DeleteRecords => r(0, 2),
        // tansu 0.6 panics on InitProducerId below v3 and cannot end transactions (no EndTxn).
        InitProducerId if tansu => r(3, 5),
        InitProducerId => r(0, 5),
        OffsetForLeaderEpoch if tansu => None,
        OffsetForLeaderEpoch => r(2, 4),
        AddPartitionsToTxn | AddOffsetsToTxn | EndTxn | TxnOffsetCommit if tansu => None,
        // v4 and later of AddPartitionsToTxn are for brokers.
        AddPartitionsToTxn => r(0, 3),
        AddOffsetsToTxn => r(0, 4),
        EndTxn => r(0, 4),
        TxnOffsetCommit => r(0, 4),
        DescribeConfigs => r(1, 4),
        DescribeLogDirs if tansu => None,
        DescribeLogDirs => r(1, 4),
        DeleteGroups => r(0, 2),
        OffsetDelete if tansu => None,
        OffsetDelete => r(0, 0),
        DescribeCluster => r(0, 1),
        _ => None,
    }
}

/// Every offered key with its range, for an ApiVersions answer.
pub fn table(engine: Engine) -> Vec<(ApiKey, Range)> {
    ApiKey::iter()
        .filter_map(|key| offered(engine, key).map(|range| (key, range)))
        .collect()
}

/// True when `version` of `key` is offered in front of `engine`.
pub fn supports(engine: Engine, key: ApiKey, version: i16) -> bool {
    offered(engine, key).is_some_and(|range| (range.min..=range.max).contains(&version))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::{
        messages::*,
        protocol::{Message, VersionRange},
    };

    use super::*;

    fn crate_range(key: ApiKey) -> VersionRange {
        macro_rules! versions {
            ($($key:ident => $request:ty),* $(,)?) => {
                match key {
                    $(ApiKey::$key => <$request as Message>::VERSIONS,)*
                    _ => VersionRange { min: 0, max: -1 },
                }
            };
        }
        versions! {
            Produce => ProduceRequest, Fetch => FetchRequest, ListOffsets => ListOffsetsRequest,
            Metadata => MetadataRequest, OffsetCommit => OffsetCommitRequest,
            OffsetFetch => OffsetFetchRequest, FindCoordinator => FindCoordinatorRequest,
            JoinGroup => JoinGroupRequest, Heartbeat => HeartbeatRequest,
            LeaveGroup => LeaveGroupRequest, SyncGroup => SyncGroupRequest,
            DescribeGroups => DescribeGroupsRequest, ListGroups => ListGroupsRequest,
            SaslHandshake => SaslHandshakeRequest, SaslAuthenticate => SaslAuthenticateRequest,
            ApiVersions => ApiVersionsRequest, CreateTopics => CreateTopicsRequest,
            DeleteTopics => DeleteTopicsRequest, CreatePartitions => CreatePartitionsRequest,
            AlterConfigs => AlterConfigsRequest,
            IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
            DeleteRecords => DeleteRecordsRequest, InitProducerId => InitProducerIdRequest,
            OffsetForLeaderEpoch => OffsetForLeaderEpochRequest,
            AddPartitionsToTxn => AddPartitionsToTxnRequest,
            AddOffsetsToTxn => AddOffsetsToTxnRequest, EndTxn => EndTxnRequest,
            TxnOffsetCommit => TxnOffsetCommitRequest, DescribeConfigs => DescribeConfigsRequest,
            DescribeLogDirs => DescribeLogDirsRequest, DeleteGroups => DeleteGroupsRequest,
            OffsetDelete => OffsetDeleteRequest, DescribeCluster => DescribeClusterRequest,
        }
    }

    #[test]
    fn every_offered_version_is_one_the_protocol_crate_decodes() {
        for engine in [Engine::ApacheKafka, Engine::Tansu] {
            for (key, range) in table(engine) {
                let known = crate_range(key);
                assert!(
                    known.min <= range.min && range.max <= known.max,
                    "{key:?} offers {range:?} but the crate knows {known:?}"
                );
            }
        }
    }

    #[test]
    fn every_api_key_upstash_supported_is_offered_in_front_of_apache_kafka() {
        let upstash = [
            0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
            28, 32, 33, 35, 36, 37, 42, 44, 47, 60,
        ];
        for key in upstash {
            let key = ApiKey::try_from(key).unwrap();
            assert!(offered(Engine::ApacheKafka, key).is_some(), "{key:?}");
        }
    }

    /// The table of `docs/kafka-gateway.md`, from the code.
    fn markdown() -> String {
        let show = |range: Option<Range>| {
            range.map_or_else(|| "—".to_owned(), |r| format!("{}–{}", r.min, r.max))
        };
        let mut lines = vec![
            "| API | key | Apache Kafka (Kubernetes) | local engine (tansu 0.6) |".to_owned(),
            "| --- | --- | --- | --- |".to_owned(),
        ];
        for key in ApiKey::iter() {
            let (kafka, tansu) = (
                offered(Engine::ApacheKafka, key),
                offered(Engine::Tansu, key),
            );
            if kafka.is_some() || tansu.is_some() {
                lines.push(format!(
                    "| {key:?} | {} | {} | {} |",
                    key as i16,
                    show(kafka),
                    show(tansu)
                ));
            }
        }
        lines.join("\n")
    }

    #[test]
    fn the_documented_versions_are_the_offered_ones() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/kafka-gateway.md"
        ))
        .unwrap();
        let begin = doc.find("<!-- versions:begin").unwrap();
        let table = &doc
            [doc[begin..].find('\n').unwrap() + begin + 1..doc.find("<!-- versions:end").unwrap()];
        assert_eq!(
            table.trim_end(),
            markdown(),
            "docs/kafka-gateway.md's table drifted; replace it with the one above"
        );
    }

    #[test]
    fn the_local_engine_is_never_sent_what_breaks_it() {
        for key in [
            ApiKey::DeleteRecords,
            ApiKey::DescribeGroups,
            ApiKey::EndTxn,
            ApiKey::AddPartitionsToTxn,
        ] {
            assert_eq!(offered(Engine::Tansu, key), None, "{key:?}");
        }
        assert!(!supports(Engine::Tansu, ApiKey::InitProducerId, 1));
    }
}
