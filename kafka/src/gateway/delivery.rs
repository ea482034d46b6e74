//! The records a Fetch answer delivers, counted per topic for metering: consumption is billed
//! where it happens, whether or not the client ever commits an offset.
//!
//! Counted: every record of a data batch at or past the offset the client asked for (a batch
//! can start before it; the client skips those records). Not counted: control records
//! (transaction markers), records of transactions the answer lists as aborted when the client
//! reads committed data, and a batch cut short at the end of the answer (the client fetches it
//! again, whole, and it is counted then).

use std::collections::HashMap;

use kafka_protocol::messages::FetchResponse;
use uuid::Uuid;

/// What one Fetch asked for, in the pool's names: enough to count its answer.
#[derive(Debug, Default)]
pub struct Asked {
    /// The topics, each with the tenant's name and the offset asked for per partition.
    pub topics: Vec<AskedTopic>,
    /// The client reads committed data only (`isolation_level` 1).
    pub read_committed: bool,
}

/// One topic of a Fetch.
#[derive(Debug)]
pub struct AskedTopic {
    /// Its id (Fetch v13+ names topics by id).
    pub id: Uuid,
    /// Its pool name (Fetch up to v12 names topics by name).
    pub physical: String,
    /// The tenant's name, under which its records are counted.
    pub name: String,
    /// The offset asked for, per partition.
    pub offsets: HashMap<i32, i64>,
}

/// Records a batch header must hold: base offset (8), length (4), leader epoch (4), magic (1),
/// CRC (4), attributes (2), last offset delta (4), two timestamps (16), producer id (8),
/// producer epoch (2), base sequence (4), record count (4).
const HEADER: usize = 61;
const CONTROL: i16 = 0x20;
const TRANSACTIONAL: i16 = 0x10;

/// The records `response` delivers, per topic (the tenant's name), topics with none left out.
pub fn delivered(response: &FetchResponse, asked: &Asked, version: i16) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = Vec::new();
    for topic in &response.responses {
        let found = asked.topics.iter().find(|a| {
            if version >= 13 {
                a.id == topic.topic_id
            } else {
                a.physical == topic.topic.as_str()
            }
        });
        let Some(asked_topic) = found else { continue };
        let mut total = 0u64;
        for partition in &topic.partitions {
            let Some(records) = &partition.records else {
                continue;
            };
            let from = asked_topic
                .offsets
                .get(&partition.partition_index)
                .copied()
                .unwrap_or(0);
            let aborted: Vec<(i64, i64)> = if asked.read_committed {
                partition
                    .aborted_transactions
                    .iter()
                    .flatten()
                    .map(|a| (a.producer_id.0, a.first_offset))
                    .collect()
            } else {
                Vec::new()
            };
            total += count_records(records, from, &aborted);
        }
        if total > 0 {
            match counts
                .iter_mut()
                .find(|(name, _)| *name == asked_topic.name)
            {
                Some((_, count)) => *count += total,
                None => counts.push((asked_topic.name.clone(), total)),
            }
        }
    }
    counts
}

/// The length of the first whole record batch of `bytes`, if it holds one.
pub fn first_batch_len(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < HEADER {
        return None;
    }
    let length = usize::try_from(i32::from_be_bytes(field(bytes, 8))).ok()?;
    length.checked_add(12).filter(|end| *end <= bytes.len())
}

/// Records in the whole data batches of `bytes` (control batches left out).
pub fn records_in(bytes: &[u8]) -> u64 {
    count_records(bytes, i64::MIN, &[])
}

/// Records at or past `from` in the whole data batches of `bytes`, leaving out those of
/// `aborted` transactions (producer id, first offset).
fn count_records(bytes: &[u8], from: i64, aborted: &[(i64, i64)]) -> u64 {
    let mut count = 0u64;
    let mut rest = bytes;
    // A batch cut short ends the answer: counted when the client fetches it again, whole.
    while let Some(whole) = first_batch_len(rest) {
        let base = i64::from_be_bytes(field(rest, 0));
        let batch = &rest[..whole];
        rest = &rest[whole..];
        if batch.len() < HEADER || batch[16] != 2 {
            // Only record batches (magic 2) are counted; Fetch v4+ answers hold nothing else.
            continue;
        }
        let attributes = i16::from_be_bytes(field(batch, 21));
        let producer_id = i64::from_be_bytes(field(batch, 43));
        let records = i32::from_be_bytes(field(batch, 57));
        if attributes & CONTROL != 0 || records <= 0 {
            continue;
        }
        let in_aborted = attributes & TRANSACTIONAL != 0
            && aborted
                .iter()
                .any(|(producer, first)| *producer == producer_id && *first <= base);
        if in_aborted {
            continue;
        }
        // Offsets in a batch are consecutive unless compaction removed some; the records
        // before `from` are those the client skips.
        let skipped = from.saturating_sub(base).clamp(0, i64::from(records));
        count += u64::try_from(i64::from(records) - skipped).unwrap_or(0);
    }
    count
}

/// `N` bytes of `bytes` at `at` (the caller checked the length).
fn field<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use bytes::BytesMut;
    use kafka_protocol::{
        messages::{
            ProducerId, TopicName,
            fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData},
        },
        protocol::StrBytes,
        records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType},
    };

    use super::*;

    /// Record batches encoded by kafka-protocol's own encoder (shared with the throttle tests).
    pub(crate) fn batch(
        base: i64,
        count: i64,
        producer: i64,
        transactional: bool,
        control: bool,
    ) -> Vec<u8> {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional,
                control,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: producer,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: base + i,
                sequence: i as i32,
                timestamp: 0,
                key: None,
                value: Some(bytes::Bytes::from_static(b"v")),
                headers: Default::default(),
            })
            .collect();
        let mut out = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut out,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        out.to_vec()
    }

    fn answer(records: Vec<u8>, aborted: Vec<(i64, i64)>) -> FetchResponse {
        FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("p.orders")))
                .with_partitions(vec![
                    PartitionData::default()
                        .with_partition_index(0)
                        .with_records(Some(records.into()))
                        .with_aborted_transactions(Some(
                            aborted
                                .into_iter()
                                .map(|(p, f)| {
                                    AbortedTransaction::default()
                                        .with_producer_id(ProducerId(p))
                                        .with_first_offset(f)
                                })
                                .collect(),
                        )),
                ]),
        ])
    }

    fn asked(from: i64, read_committed: bool) -> Asked {
        Asked {
            topics: vec![AskedTopic {
                id: Uuid::nil(),
                physical: "p.orders".into(),
                name: "orders".into(),
                offsets: HashMap::from([(0, from)]),
            }],
            read_committed,
        }
    }

    #[test]
    fn records_from_the_asked_offset_are_counted_under_the_tenants_name() {
        let mut records = batch(0, 5, -1, false, false);
        records.extend(batch(5, 3, -1, false, false));
        let response = answer(records, vec![]);
        assert_eq!(
            delivered(&response, &asked(0, false), 12),
            vec![("orders".to_owned(), 8)]
        );
        // The client asked from offset 3: the first batch's first three records are skipped.
        assert_eq!(
            delivered(&response, &asked(3, false), 12),
            vec![("orders".to_owned(), 5)]
        );
    }

    #[test]
    fn control_aborted_and_cut_short_batches_are_not_counted() {
        let mut records = batch(0, 4, 7, true, false);
        records.extend(batch(4, 1, 7, true, true));
        records.extend(batch(5, 2, -1, false, false));
        let mut cut = batch(7, 10, -1, false, false);
        cut.truncate(cut.len() - 3);
        records.extend(cut);
        let response = answer(records, vec![(7, 0)]);
        assert_eq!(
            delivered(&response, &asked(0, true), 12),
            vec![("orders".to_owned(), 2)],
            "the aborted four, the marker and the cut batch are left out"
        );
        assert_eq!(
            delivered(&response, &asked(0, false), 12),
            vec![("orders".to_owned(), 6)],
            "read uncommitted: the aborted records are delivered"
        );
    }

    #[test]
    fn garbage_counts_nothing() {
        let response = answer(vec![0xff; 100], vec![]);
        assert!(delivered(&response, &asked(0, false), 12).is_empty());
    }
}
