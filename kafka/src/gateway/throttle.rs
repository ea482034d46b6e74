//! Rate-limited clusters (price cap, budget, free plan's day), throttled the way Kafka's quotas
//! throttle (KIP-219): the answer carries `throttle_time_ms`, and the connection is muted — no
//! further request read — for that long.
//!
//! The allowance is a number of messages a second kept by the control plane
//! ([`super::Policy::limited`], [`super::Policy::charge`]). A Produce is forwarded and its records are then taken from the
//! allowance, as Kafka does. A Fetch asked while the cluster is in debt is answered at once with
//! no records (Kafka's throttled fetch answer); one asked when it is not is forwarded, its answer
//! cut to [`LIMITED_FETCH_RECORDS`] records, and those are taken from the allowance. A fetching
//! connection is muted for at most [`FETCH_MUTE_MAX`], so that a consumer's heartbeats on the same
//! connection keep it in its group; it then gets empty answers until the debt is repaid.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use kafka_protocol::{
    messages::{FetchResponse, ProduceRequest, ResponseKind},
    records::{Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions},
};

/// Longest a fetching connection is muted at a time (consumers' session timeouts start at 6 s).
pub const FETCH_MUTE_MAX: Duration = Duration::from_secs(5);

/// When a connection may be read from again.
#[derive(Debug, Default)]
pub struct Mute {
    until: Mutex<Option<Instant>>,
}

impl Mute {
    /// Mutes the connection for `wait` from now (longer mutes already set stay).
    pub fn extend(&self, wait: Duration) {
        if wait.is_zero() {
            return;
        }
        let until = Instant::now() + wait;
        if let Ok(mut current) = self.until.lock() {
            *current = Some(current.map_or(until, |at| at.max(until)));
        }
    }

    /// The instant reading may resume, if that is still ahead.
    pub fn until(&self) -> Option<Instant> {
        let mut current = self.until.lock().ok()?;
        match *current {
            Some(at) if at > Instant::now() => Some(at),
            _ => {
                *current = None;
                None
            }
        }
    }
}

/// Records a Produce request carries (every record batch's count).
pub fn records_produced(request: &ProduceRequest) -> u64 {
    request
        .topic_data
        .iter()
        .flat_map(|topic| &topic.partition_data)
        .filter_map(|partition| partition.records.as_ref())
        .map(|records| super::delivery::records_in(records))
        .sum()
}

/// Records a Fetch answer carries at most while the cluster is limited.
pub const LIMITED_FETCH_RECORDS: usize = 10;

/// Keeps at most `most` records, from the first partition that has any, as Kafka answers a
/// Fetch whose size limit is small: the client asks again from where it is. A batch longer than
/// that is re-encoded with its first `most` records (same offsets, producer and flags); one the
/// gateway cannot decode (compressed) is kept whole.
pub fn at_most(answer: &mut FetchResponse, most: usize) {
    let mut kept = false;
    for partition in answer
        .responses
        .iter_mut()
        .flat_map(|topic| topic.partitions.iter_mut())
    {
        let Some(records) = partition.records.as_mut() else {
            continue;
        };
        if records.is_empty() {
            continue;
        }
        if kept {
            *records = Bytes::new();
            continue;
        }
        // A batch cut short is not delivered (the client asks again); look further.
        let Some(length) = super::delivery::first_batch_len(records) else {
            continue;
        };
        kept = true;
        let first = records.slice(..length);
        *records = if super::delivery::records_in(&first) as usize <= most {
            first
        } else {
            shortened(&first, most).unwrap_or(first)
        };
    }
}

/// The batch `batch` with only its first `most` records.
fn shortened(batch: &Bytes, most: usize) -> Option<Bytes> {
    let mut set = RecordBatchDecoder::decode(&mut batch.clone()).ok()?;
    set.records.truncate(most.max(1));
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &set.records, &options).ok()?;
    Some(out.freeze())
}

/// The answer to a Fetch asked while the cluster is in debt: no records, and the throttle time.
pub fn throttled_fetch(version: i16, wait: Duration) -> ResponseKind {
    let mut answer = FetchResponse::default();
    report(&mut answer.throttle_time_ms, version, wait);
    answer.into()
}

/// Puts `wait` into the throttle time of a Produce or Fetch answer (the larger of the broker's
/// and the gateway's is kept).
pub fn report_in(response: &mut ResponseKind, version: i16, wait: Duration) {
    match response {
        ResponseKind::Produce(answer) => report(&mut answer.throttle_time_ms, version, wait),
        ResponseKind::Fetch(answer) => report(&mut answer.throttle_time_ms, version, wait),
        _ => {}
    }
}

/// Both answers carry a throttle time from version 1.
fn report(throttle_time_ms: &mut i32, version: i16, wait: Duration) {
    if version >= 1 {
        let millis = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        *throttle_time_ms = (*throttle_time_ms).max(millis);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mute_is_only_ever_lengthened_and_ends() {
        let mute = Mute::default();
        assert!(mute.until().is_none());
        mute.extend(Duration::from_secs(60));
        let first = mute.until().unwrap();
        mute.extend(Duration::from_millis(1));
        assert_eq!(
            mute.until().unwrap(),
            first,
            "a shorter mute does not cut a longer one"
        );
        let ended = Mute::default();
        *ended.until.lock().unwrap() = Some(Instant::now());
        assert!(
            ended.until().is_none(),
            "a mute that has run out is forgotten"
        );
    }

    #[test]
    fn a_limited_fetch_answer_keeps_a_few_records_of_one_partition() {
        use crate::gateway::delivery::{records_in, tests::batch};
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        let two = [
            batch(0, 3, -1, false, false),
            batch(3, 40, -1, false, false),
        ]
        .concat();
        let partition = |index, records: &[u8]| {
            PartitionData::default()
                .with_partition_index(index)
                .with_records(Some(Bytes::copy_from_slice(records)))
        };
        let mut answer = FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default().with_partitions(vec![
                partition(0, &[]),
                partition(1, &two),
                partition(2, &two),
            ]),
        ]);
        at_most(&mut answer, 10);
        let partitions = &answer.responses[0].partitions;
        let kept = partitions[1].records.as_ref().unwrap();
        assert_eq!(kept.as_ref(), batch(0, 3, -1, false, false).as_slice());
        assert!(partitions[2].records.as_ref().unwrap().is_empty());

        // A batch longer than allowed is cut to its first records, offsets kept.
        let mut answer = FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_partitions(vec![partition(0, &batch(3, 40, -1, false, false))]),
        ]);
        at_most(&mut answer, 10);
        let kept = answer.responses[0].partitions[0].records.clone().unwrap();
        assert_eq!(records_in(&kept), 10);
        let set = RecordBatchDecoder::decode(&mut kept.clone()).unwrap();
        let offsets: Vec<i64> = set.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (3..13).collect::<Vec<_>>());
    }

    #[test]
    fn the_larger_throttle_time_is_kept_and_version_0_has_none() {
        let mut answer: ResponseKind = FetchResponse::default().with_throttle_time_ms(40).into();
        report_in(&mut answer, 12, Duration::from_millis(1_500));
        let ResponseKind::Fetch(fetch) = &answer else {
            unreachable!()
        };
        assert_eq!(fetch.throttle_time_ms, 1_500);
        report_in(&mut answer, 12, Duration::from_millis(10));
        let ResponseKind::Fetch(fetch) = &answer else {
            unreachable!()
        };
        assert_eq!(fetch.throttle_time_ms, 1_500);
        let ResponseKind::Fetch(old) = throttled_fetch(0, Duration::from_secs(1)) else {
            unreachable!()
        };
        assert_eq!(old.throttle_time_ms, 0);
    }
}
