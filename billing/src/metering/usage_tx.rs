//! Writing usage. Every writer (the sweep, the gateways' delivery ledger, the REST gateway's
//! group-less fetches) adds to the hourly buckets through a [`UsageTx`], which never writes
//! into a closed month: what arrives late for one counts in the first hour after it.

use sqlx::{Any, AnyPool, Transaction};

use super::hour_of;
use crate::Result;

/// A transaction adding usage.
pub(crate) struct UsageTx {
    tx: Transaction<'static, Any>,
    /// The end of the last closed month: nothing is written before it.
    closed_through: i64,
}

impl UsageTx {
    /// Begins a transaction on `pool` and reads where the open months start. On PostgreSQL the
    /// read takes a share lock on that row, so a month close (which updates it) waits for this
    /// transaction, and this one, begun after, sees the close.
    pub(crate) async fn begin(pool: &AnyPool) -> Result<Self> {
        let postgres = !is_sqlite(pool);
        let mut tx = pool.begin().await?;
        let sql = if postgres {
            "SELECT closed_through FROM metering_close WHERE id = 1 FOR SHARE"
        } else {
            // SQLite transactions are serializable: a close committed after this read makes
            // this transaction's first write fail (and be retried), never land in the month.
            "SELECT closed_through FROM metering_close WHERE id = 1"
        };
        let closed_through: Option<(i64,)> = sqlx::query_as(sql).fetch_optional(&mut *tx).await?;
        Ok(UsageTx {
            tx,
            closed_through: closed_through.map_or(0, |(at,)| at),
        })
    }

    /// The transaction, for what is written with the usage (the sweep's cursors).
    pub(crate) fn connection(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    /// Adds to the bucket of `hour` (or the first open hour, when `hour` is in a closed month).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn add(
        &mut self,
        cluster_id: &str,
        topic: &str,
        hour: i64,
        produced: i64,
        consumed: i64,
        storage_sum: i64,
        storage_samples: i64,
    ) -> Result<()> {
        let hour = hour.max(hour_of(self.closed_through));
        sqlx::query(
            "INSERT INTO usage_hourly (cluster_id, topic, hour, produced, consumed, storage_sum, storage_samples) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (cluster_id, topic, hour) DO UPDATE SET \
             produced = usage_hourly.produced + excluded.produced, consumed = usage_hourly.consumed + excluded.consumed, \
             storage_sum = usage_hourly.storage_sum + excluded.storage_sum, \
             storage_samples = usage_hourly.storage_samples + excluded.storage_samples",
        )
        .bind(cluster_id)
        .bind(topic)
        .bind(hour)
        .bind(produced)
        .bind(consumed)
        .bind(storage_sum)
        .bind(storage_samples)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Commits.
    pub(crate) async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// Whether `pool` is an SQLite store (one writer at a time, no row locks).
pub(crate) fn is_sqlite(pool: &AnyPool) -> bool {
    pool.connect_options()
        .database_url
        .scheme()
        .starts_with("sqlite")
}

/// Marks every month ending by `through` closed to usage writes, waiting (on PostgreSQL) for
/// the writers under way to commit. Never moves backwards.
pub(crate) async fn close_through(pool: &AnyPool, through: i64) -> Result<()> {
    sqlx::query(
        "UPDATE metering_close SET closed_through = $1 WHERE id = 1 AND closed_through < $1",
    )
    .bind(through)
    .execute(pool)
    .await?;
    Ok(())
}

/// Splits `count` messages over the UTC hours of `[from, to)` in proportion to the seconds of
/// each hour the span covers, rounded so the shares add up to `count` exactly. A span within one
/// hour, or without a start, is all in the hour of `to`.
pub fn spread_over_hours(count: i64, from: Option<i64>, to: i64) -> Vec<(i64, i64)> {
    let Some(from) = from.filter(|from| hour_of(*from) < hour_of(to) && count != 0) else {
        return vec![(hour_of(to), count)];
    };
    let span = i128::from(to - from);
    let mut shares = Vec::new();
    let mut given: i64 = 0;
    let mut covered: i128 = 0;
    let mut hour = hour_of(from);
    while hour <= hour_of(to) {
        let start = from.max(hour);
        let end = to.min(hour + 3600);
        if end > start {
            covered += i128::from(end - start);
            // Cumulative rounding to the nearest message: every share is exact to within one
            // message, no hour is favoured, and the shares add up to `count` at the last hour.
            let due = i64::try_from((2 * i128::from(count) * covered + span) / (2 * span))
                .unwrap_or(count);
            if due != given {
                shares.push((hour, due - given));
                given = due;
            }
        }
        hour += 3600;
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600;
    const T: i64 = 1_796_083_200; // 2026-12-01T00:00:00Z

    #[test]
    fn a_span_within_one_hour_is_all_in_it() {
        assert_eq!(spread_over_hours(10, Some(T + 5), T + 65), [(T, 10)]);
        assert_eq!(spread_over_hours(10, None, T + 65), [(T, 10)]);
    }

    #[test]
    fn a_span_across_hours_is_shared_by_the_seconds_of_each() {
        // 23:59:30 to 00:00:30: half before midnight, half after.
        assert_eq!(
            spread_over_hours(10, Some(T - 30), T + 30),
            [(T - H, 5), (T, 5)]
        );
        // A three-hour outage caught up by one sweep: an hour's worth each.
        assert_eq!(
            spread_over_hours(3_000, Some(T), T + 3 * H),
            [(T, 1_000), (T + H, 1_000), (T + 2 * H, 1_000)]
        );
        // A month's last sweep reaching 30 s past midnight takes no message of 50 with it.
        assert!(
            spread_over_hours(50, Some(T - 86_400), T + 30)
                .iter()
                .all(|(hour, _)| *hour < T)
        );
    }

    #[test]
    fn shares_always_add_up_to_the_count() {
        for (count, from, to) in [
            (7, T - 1, T + 7_201),
            (1, T - 3_599, T + 1),
            (999_999, T - 86_400 * 3 - 17, T + 11),
            (2, T - 10, T + 3 * H),
        ] {
            let shares = spread_over_hours(count, Some(from), to);
            assert_eq!(shares.iter().map(|(_, n)| n).sum::<i64>(), count);
            assert!(
                shares
                    .iter()
                    .all(|(hour, n)| *n > 0 && *hour >= hour_of(from) && *hour <= hour_of(to))
            );
        }
    }
}
