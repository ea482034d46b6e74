//! Turning a snapshot of offsets into counts, given the cursors already counted to. Pure
//! functions: the collector stores their result in one transaction.

use std::collections::{BTreeMap, HashMap};

use capstan_kafka::Snapshot;

/// A stored cursor: where counting stopped for a partition (group "") or group-partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The engine's topic id when the cursor was written.
    pub topic_id: String,
    /// Position counted to.
    pub position: i64,
}

/// Key of a cursor: (topic, partition, group; "" for the produced cursor).
pub type CursorKey = (String, i32, String);

/// What one snapshot adds: per topic, messages produced and consumed, and the new cursors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Increment {
    /// Messages newly produced, per topic.
    pub produced: BTreeMap<String, i64>,
    /// Messages newly consumed by groups, per topic.
    pub consumed: BTreeMap<String, i64>,
    /// Cursors to write (only those that moved or are new).
    pub cursors: Vec<(CursorKey, Cursor)>,
}

/// Counts from `cursors` to `snapshot`, never counting a message twice:
/// - a partition seen for the first time counts from its log start;
/// - a position that went backwards on the same topic id (a consumer group rewound, a log
///   truncated) counts nothing and keeps its cursor, so reading the same offsets again counts
///   nothing either: counting resumes past the furthest position ever counted;
/// - a topic whose id changed (deleted and re-created) restarts from its new log start; on an
///   engine without topic ids (tansu: ""), a position that went backwards is taken for that;
/// - a committed offset counts only up to the log end (a commit beyond it consumed nothing more);
/// - a partition missing from the snapshot (unreadable this time) keeps its cursors.
pub fn plan(snapshot: &Snapshot, cursors: &HashMap<CursorKey, Cursor>) -> Increment {
    let mut increment = Increment::default();
    let mut bounds: HashMap<(&str, i32), (i64, i64, &str)> = HashMap::new();
    for p in &snapshot.partitions {
        bounds.insert(
            (p.topic.as_str(), p.partition),
            (p.log_start, p.log_end, p.topic_id.as_str()),
        );
        let key = (p.topic.clone(), p.partition, String::new());
        let (counted, position) = advance(cursors.get(&key), &p.topic_id, p.log_start, p.log_end);
        record(
            &mut increment.produced,
            &mut increment.cursors,
            key,
            &p.topic,
            &p.topic_id,
            position,
            counted,
            cursors,
        );
    }
    for c in &snapshot.committed {
        // A group's offsets for a topic that no longer exists count nothing.
        let Some(&(log_start, log_end, topic_id)) = bounds.get(&(c.topic.as_str(), c.partition))
        else {
            continue;
        };
        let key = (c.topic.clone(), c.partition, c.group.clone());
        let (counted, position) = advance(
            cursors.get(&key),
            topic_id,
            log_start,
            c.offset.min(log_end),
        );
        record(
            &mut increment.consumed,
            &mut increment.cursors,
            key,
            &c.topic,
            topic_id,
            position,
            counted,
            cursors,
        );
    }
    increment
}

/// What a move from `cursor` to `position` counts, and where the cursor is then.
fn advance(cursor: Option<&Cursor>, topic_id: &str, log_start: i64, position: i64) -> (i64, i64) {
    match cursor {
        Some(c) if c.topic_id == topic_id && c.position <= position => {
            (position - c.position, position)
        }
        // Backwards on a topic that kept its id: nothing new, the furthest position stays.
        Some(c) if c.topic_id == topic_id && !topic_id.is_empty() => (0, c.position),
        _ => ((position - log_start).max(0), position),
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    totals: &mut BTreeMap<String, i64>,
    writes: &mut Vec<(CursorKey, Cursor)>,
    key: CursorKey,
    topic: &str,
    topic_id: &str,
    position: i64,
    counted: i64,
    cursors: &HashMap<CursorKey, Cursor>,
) {
    if counted > 0 {
        *totals.entry(topic.to_owned()).or_default() += counted;
    }
    let cursor = Cursor {
        topic_id: topic_id.to_owned(),
        position,
    };
    if cursors.get(&key) != Some(&cursor) {
        writes.push((key, cursor));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_kafka::{CommittedOffset, PartitionOffsets};

    fn partition(topic: &str, id: &str, start: i64, end: i64) -> PartitionOffsets {
        PartitionOffsets {
            topic: topic.into(),
            topic_id: id.into(),
            partition: 0,
            log_start: start,
            log_end: end,
            replicas: 1,
        }
    }

    fn committed(group: &str, topic: &str, offset: i64) -> CommittedOffset {
        CommittedOffset {
            group: group.into(),
            topic: topic.into(),
            partition: 0,
            offset,
        }
    }

    fn step(cursors: &mut HashMap<CursorKey, Cursor>, snapshot: &Snapshot) -> Increment {
        let increment = plan(snapshot, cursors);
        apply(cursors, &increment);
        increment
    }

    fn apply(cursors: &mut HashMap<CursorKey, Cursor>, increment: &Increment) {
        for (key, cursor) in &increment.cursors {
            cursors.insert(key.clone(), cursor.clone());
        }
    }

    #[test]
    fn a_new_partition_counts_from_its_log_start_and_a_replay_counts_nothing() {
        let snapshot = Snapshot {
            partitions: vec![partition("t", "a", 0, 10)],
            committed: vec![committed("g", "t", 4)],
        };
        let mut cursors = HashMap::new();
        let first = plan(&snapshot, &cursors);
        assert_eq!(first.produced["t"], 10);
        assert_eq!(first.consumed["t"], 4);
        apply(&mut cursors, &first);
        let replay = plan(&snapshot, &cursors);
        assert!(
            replay.produced.is_empty() && replay.consumed.is_empty() && replay.cursors.is_empty()
        );
    }

    #[test]
    fn growth_counts_only_the_difference() {
        let mut cursors = HashMap::new();
        step(
            &mut cursors,
            &Snapshot {
                partitions: vec![partition("t", "a", 0, 10)],
                committed: vec![committed("g", "t", 4)],
            },
        );
        let next = plan(
            &Snapshot {
                partitions: vec![partition("t", "a", 0, 25)],
                committed: vec![committed("g", "t", 20)],
            },
            &cursors,
        );
        assert_eq!(next.produced["t"], 15);
        assert_eq!(next.consumed["t"], 16);
    }

    #[test]
    fn a_recreated_topic_restarts_from_its_new_log_start_without_negative_counts() {
        let mut cursors = HashMap::new();
        step(
            &mut cursors,
            &Snapshot {
                partitions: vec![partition("t", "a", 0, 50)],
                committed: vec![committed("g", "t", 50)],
            },
        );
        // Deleted and re-created with a new id: 70 new messages, more than the old cursor.
        let recreated = plan(
            &Snapshot {
                partitions: vec![partition("t", "b", 0, 70)],
                committed: vec![committed("g", "t", 5)],
            },
            &cursors,
        );
        assert_eq!(recreated.produced["t"], 70);
        assert_eq!(recreated.consumed["t"], 5);
        // Without an id, a position that went backwards also restarts from the log start.
        let mut cursors = HashMap::new();
        step(
            &mut cursors,
            &Snapshot {
                partitions: vec![partition("u", "", 0, 50)],
                committed: vec![],
            },
        );
        let reset = plan(
            &Snapshot {
                partitions: vec![partition("u", "", 0, 3)],
                committed: vec![],
            },
            &cursors,
        );
        assert_eq!(reset.produced["u"], 3);
    }

    #[test]
    fn a_rewound_group_is_never_billed_twice_for_the_same_messages() {
        let mut cursors = HashMap::new();
        let at = |end: i64, offset: i64| Snapshot {
            partitions: vec![partition("t", "a", 0, end)],
            committed: vec![committed("g", "t", offset)],
        };
        step(&mut cursors, &at(1_000_000, 1_000_000));
        // Rewound by 1,000: nothing new was consumed (it was 1,000,000 before the fix).
        let rewound = step(&mut cursors, &at(1_000_000, 999_000));
        assert!(rewound.consumed.is_empty(), "{rewound:?}");
        assert!(
            rewound.cursors.is_empty(),
            "the cursor stays at the furthest position"
        );
        // Read again up to where it was: still nothing; past it: only what is new.
        assert!(
            step(&mut cursors, &at(1_000_000, 1_000_000))
                .consumed
                .is_empty()
        );
        let past = step(&mut cursors, &at(1_000_500, 1_000_500));
        assert_eq!((past.produced["t"], past.consumed["t"]), (500, 500));
    }

    #[test]
    fn a_truncated_log_counts_only_what_goes_past_its_old_end() {
        let mut cursors = HashMap::new();
        step(
            &mut cursors,
            &Snapshot {
                partitions: vec![partition("t", "a", 0, 100)],
                committed: vec![],
            },
        );
        let truncated = step(
            &mut cursors,
            &Snapshot {
                partitions: vec![partition("t", "a", 0, 90)],
                committed: vec![],
            },
        );
        assert!(truncated.produced.is_empty() && truncated.cursors.is_empty());
        let grown = step(
            &mut cursors,
            &Snapshot {
                partitions: vec![partition("t", "a", 0, 130)],
                committed: vec![],
            },
        );
        assert_eq!(grown.produced["t"], 30);
    }

    #[test]
    fn a_partition_missing_from_one_read_keeps_its_cursors_and_counts_once() {
        let mut cursors = HashMap::new();
        let read = |end: i64| Snapshot {
            partitions: vec![partition("t", "a", 0, end)],
            committed: vec![committed("g", "t", end)],
        };
        step(&mut cursors, &read(40));
        let missing = step(
            &mut cursors,
            &Snapshot {
                partitions: vec![],
                committed: vec![committed("g", "t", 45)],
            },
        );
        assert_eq!(missing, Increment::default());
        let back = step(&mut cursors, &read(50));
        assert_eq!((back.produced["t"], back.consumed["t"]), (10, 10));
    }

    #[test]
    fn a_commit_beyond_the_log_end_counts_only_what_exists() {
        let cursors = HashMap::new();
        let increment = plan(
            &Snapshot {
                partitions: vec![partition("t", "a", 0, 10)],
                committed: vec![committed("g", "t", 1_000_000)],
            },
            &cursors,
        );
        assert_eq!(increment.consumed["t"], 10);
    }

    #[test]
    fn offsets_of_deleted_topics_count_nothing() {
        let increment = plan(
            &Snapshot {
                partitions: vec![],
                committed: vec![committed("g", "gone", 9)],
            },
            &HashMap::new(),
        );
        assert!(increment.consumed.is_empty());
    }
}
