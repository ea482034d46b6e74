//! Usage as the control plane shows it. The numbers come from the metering pipeline (the
//! billing crate), wired in by the binary through [`UsageSource`].

use async_trait::async_trait;
use serde::Serialize;

use crate::Result;

/// Usage of one hour (or day).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UsagePoint {
    /// Start of the period, unix seconds (UTC).
    pub time: i64,
    /// Messages produced.
    pub produced: i64,
    /// Messages consumed.
    pub consumed: i64,
    /// Average bytes stored, summed over replicas.
    pub storage_bytes: i64,
}

/// A topic's totals over a period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TopicUsage {
    /// Topic name.
    pub topic: String,
    /// Messages produced.
    pub produced: i64,
    /// Messages consumed.
    pub consumed: i64,
}

/// Where usage is read from.
#[async_trait]
pub trait UsageSource: Send + Sync + std::fmt::Debug {
    /// Hourly usage in `[from, to)` (unix seconds) of a cluster, or of one of its topics; only
    /// hours with usage are listed.
    async fn hourly(
        &self,
        cluster_id: &str,
        topic: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<Vec<UsagePoint>>;
    /// Per-topic totals in `[from, to)`.
    async fn topic_totals(&self, cluster_id: &str, from: i64, to: i64) -> Result<Vec<TopicUsage>>;
}

/// The source used when no metering is wired (library users, some tests): no usage at all.
#[derive(Debug, Default)]
pub struct NoUsage;

#[async_trait]
impl UsageSource for NoUsage {
    async fn hourly(&self, _: &str, _: Option<&str>, _: i64, _: i64) -> Result<Vec<UsagePoint>> {
        Ok(Vec::new())
    }

    async fn topic_totals(&self, _: &str, _: i64, _: i64) -> Result<Vec<TopicUsage>> {
        Ok(Vec::new())
    }
}

/// Where records delivered to consumers are counted (the metering pipeline, wired in by the
/// binary): consumption is billed where it happens, committed or not.
pub trait DeliveryCounter: Send + Sync + std::fmt::Debug {
    /// `messages` records of `topic` (the cluster's name) were delivered to a client of
    /// `cluster_id`. Called before the answer is sent, on the data path: cheap, never blocking.
    fn delivered(&self, cluster_id: &str, topic: &str, messages: u64);
}

/// The counter used when no metering is wired: counts nothing.
#[derive(Debug, Default)]
pub struct NoDeliveries;

impl DeliveryCounter for NoDeliveries {
    fn delivered(&self, _: &str, _: &str, _: u64) {}
}

/// Metering's part in deleting (the metering pipeline, wired in by the binary): what moved
/// since the last sweep is counted before a topic or a cluster goes, since nothing can be read
/// from its brokers afterwards.
#[async_trait]
pub trait FinalMeter: Send + Sync + std::fmt::Debug {
    /// Meters every topic of `cluster_id` now.
    async fn meter_now(&self, cluster_id: &str) -> Result<()>;
    /// Forgets where counting of a deleted `topic` stopped, so a topic created again with the
    /// same name is counted from its own start.
    async fn forget_topic(&self, cluster_id: &str, topic: &str) -> Result<()>;
}

/// The final meter used when no metering is wired: nothing to count.
#[derive(Debug, Default)]
pub struct NoFinalMeter;

#[async_trait]
impl FinalMeter for NoFinalMeter {
    async fn meter_now(&self, _: &str) -> Result<()> {
        Ok(())
    }

    async fn forget_topic(&self, _: &str, _: &str) -> Result<()> {
        Ok(())
    }
}

/// Days from UTC hours: message counts summed, storage averaged over the hours that have it.
pub fn daily(hours: &[UsagePoint]) -> Vec<UsagePoint> {
    let mut days: std::collections::BTreeMap<i64, (UsagePoint, i64, i64)> =
        std::collections::BTreeMap::new();
    for h in hours {
        let day = h.time - h.time.rem_euclid(86_400);
        let (entry, storage, hours_with_storage) = days.entry(day).or_insert_with(|| {
            (
                UsagePoint {
                    time: day,
                    ..Default::default()
                },
                0,
                0,
            )
        });
        entry.produced += h.produced;
        entry.consumed += h.consumed;
        if h.storage_bytes > 0 {
            *storage += h.storage_bytes;
            *hours_with_storage += 1;
        }
    }
    days.into_values()
        .map(|(mut day, storage, hours)| {
            day.storage_bytes = if hours > 0 { storage / hours } else { 0 };
            day
        })
        .collect()
}

fn utc(unix_seconds: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for unix seconds, the format of Upstash's stats series.
pub fn format_utc(unix_seconds: i64) -> String {
    let t = utc(unix_seconds);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The weekday name of unix seconds (UTC).
pub fn weekday(unix_seconds: i64) -> String {
    utc(unix_seconds).weekday().to_string()
}

/// The first second of the UTC month containing `unix_seconds`.
pub fn month_start(unix_seconds: i64) -> i64 {
    let date = utc(unix_seconds).date();
    date.replace_day(1)
        .unwrap_or(date)
        .midnight()
        .assume_utc()
        .unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_format_like_upstash_stats() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(1_795_701_757), "2026-11-26 14:02:37");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(weekday(0), "Thursday");
        assert_eq!(weekday(1_795_701_757), "Thursday");
    }

    #[test]
    fn months_start_on_their_first_day() {
        assert_eq!(
            format_utc(month_start(1_795_701_757)),
            "2026-11-01 00:00:00"
        );
        assert_eq!(format_utc(month_start(951_782_400)), "2000-02-01 00:00:00");
    }

    #[test]
    fn days_sum_messages_and_average_storage() {
        let hours = vec![
            UsagePoint {
                time: 86_400,
                produced: 1,
                consumed: 2,
                storage_bytes: 100,
            },
            UsagePoint {
                time: 86_400 + 3600,
                produced: 3,
                consumed: 4,
                storage_bytes: 300,
            },
            UsagePoint {
                time: 2 * 86_400,
                produced: 5,
                consumed: 0,
                storage_bytes: 0,
            },
        ];
        assert_eq!(
            daily(&hours),
            vec![
                UsagePoint {
                    time: 86_400,
                    produced: 4,
                    consumed: 6,
                    storage_bytes: 200
                },
                UsagePoint {
                    time: 2 * 86_400,
                    produced: 5,
                    consumed: 0,
                    storage_bytes: 0
                },
            ]
        );
    }
}
