//! Months, and a cluster's cost over one, from the hourly usage.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::AnyPool;

use crate::{
    Error, Result,
    customers::BillableCluster,
    pricing::{self, Line, MonthUsage, PriceList},
};

/// A calendar month (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    /// Year.
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
}

impl Month {
    /// Parses `YYYY-MM`.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = || {
            Error::Invalid(format!(
                "{text:?} is not a month: use YYYY-MM, for example 2026-11"
            ))
        };
        let (year, month) = text.trim().split_once('-').ok_or_else(invalid)?;
        let (year, month): (i64, u32) = (
            year.parse().map_err(|_| invalid())?,
            month.parse().map_err(|_| invalid())?,
        );
        if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(invalid());
        }
        Ok(Month { year, month })
    }

    /// The month containing `unix_seconds`.
    pub fn of(unix_seconds: i64) -> Self {
        let date = time::OffsetDateTime::from_unix_timestamp(unix_seconds)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
            .date();
        Month {
            year: i64::from(date.year()),
            month: u32::from(u8::from(date.month())),
        }
    }

    /// The next month.
    pub fn next(self) -> Self {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                month: self.month + 1,
                ..self
            }
        }
    }

    /// The previous month.
    pub fn previous(self) -> Self {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                month: self.month - 1,
                ..self
            }
        }
    }

    /// First second of the month, unix seconds.
    pub fn start(self) -> i64 {
        let month = time::Month::try_from(self.month as u8).unwrap_or(time::Month::January);
        time::Date::from_calendar_date(self.year as i32, month, 1)
            .map(|d| d.midnight().assume_utc().unix_timestamp())
            .unwrap_or_default()
    }

    /// First second of the next month.
    pub fn end(self) -> i64 {
        self.next().start()
    }

    /// Days in the month.
    pub fn days(self) -> i64 {
        pricing::days_in_month(self.year, self.month)
    }

    /// Hours in the month.
    pub fn hours(self) -> i64 {
        self.days() * 24
    }

    /// `YYYY-MM`.
    pub fn label(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

/// Usage over `[month start, to)` per cluster (one cluster, or all when `cluster_id` is `None`):
/// messages summed; storage as byte-hours (each hour's stored bytes is the sum over topics of
/// each topic's mean sample in that hour), which is all the storage charge needs. The invoice and
/// the month-to-date cost both use this one query, so they agree to the cent.
pub async fn month_usage_by_cluster(
    pool: &AnyPool,
    month: Month,
    to: i64,
    cluster_id: Option<&str>,
) -> Result<HashMap<String, MonthUsage>> {
    // Every level is cast to BIGINT: on PostgreSQL SUM(bigint) is numeric, and the division
    // must be the same integer division as on SQLite for both to bill the same cents.
    let sql = "SELECT cluster_id, CAST(SUM(produced) AS BIGINT), CAST(SUM(consumed) AS BIGINT), CAST(SUM(hour_storage) AS BIGINT) FROM ( \
                 SELECT cluster_id, hour, CAST(SUM(produced) AS BIGINT) AS produced, \
                        CAST(SUM(consumed) AS BIGINT) AS consumed, \
                        CAST(SUM(CASE WHEN storage_samples > 0 THEN storage_sum / storage_samples ELSE 0 END) AS BIGINT) AS hour_storage \
                 FROM usage_hourly WHERE hour >= $1 AND hour < $2 AND ($3 = '' OR cluster_id = $3) \
                 GROUP BY cluster_id, hour \
               ) hours GROUP BY cluster_id";
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(sql)
        .bind(month.start())
        .bind(to.min(month.end()))
        .bind(cluster_id.unwrap_or(""))
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(cluster, produced, consumed, byte_hours)| {
            let usage = MonthUsage {
                produced,
                consumed,
                byte_hours,
                hours_in_month: month.hours(),
            };
            (cluster, usage)
        })
        .collect())
}

/// One cluster's usage over `[month start, to)`.
pub async fn month_usage(
    pool: &AnyPool,
    cluster_id: &str,
    month: Month,
    to: i64,
) -> Result<MonthUsage> {
    Ok(month_usage_by_cluster(pool, month, to, Some(cluster_id))
        .await?
        .remove(cluster_id)
        .unwrap_or(MonthUsage {
            hours_in_month: month.hours(),
            ..Default::default()
        }))
}

/// A cluster's month so far, priced.
#[derive(Clone, Debug, Serialize)]
pub struct Cost {
    /// `YYYY-MM`.
    pub month: String,
    /// The bill's lines so far (with the cap adjustment when the cap is reached).
    pub lines: Vec<Line>,
    /// Month to date, in cents (the sum of the rounded lines — what the invoice will say).
    pub month_to_date_cents: i64,
    /// Linear forecast for the whole month, in cents, never above the cap.
    pub forecast_cents: i64,
    /// The effective cap, in cents.
    pub cap_cents: i64,
    /// The user's budget in dollars (0 = none).
    pub budget_dollars: i64,
    /// Messages produced and consumed this month.
    pub messages: i64,
}

/// Prices a cluster's month up to `now`.
pub async fn cluster_cost(
    pool: &AnyPool,
    prices: &PriceList,
    cluster: &BillableCluster,
    now: i64,
) -> Result<Cost> {
    let month = Month::of(now);
    let usage = month_usage(pool, &cluster.cluster_id, month, now + 1).await?;
    let lines = pricing::bill(prices, cluster.tariff, &usage);
    let month_to_date_cents: i64 = lines.iter().map(|l| l.cents).sum();
    let cap_cents = pricing::round_to_cents(prices.effective_cap_micros(cluster.tariff));
    let elapsed = (now - month.start()).max(1);
    let whole = month.end() - month.start();
    let forecast_cents =
        i64::try_from(i128::from(month_to_date_cents) * i128::from(whole) / i128::from(elapsed))
            .unwrap_or(i64::MAX)
            .min(cap_cents);
    Ok(Cost {
        month: month.label(),
        month_to_date_cents,
        forecast_cents,
        cap_cents,
        budget_dollars: cluster.tariff.budget_micros / pricing::DOLLAR,
        messages: usage.produced + usage.consumed,
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_span_their_days() {
        let november = Month::parse("2026-11").unwrap();
        assert_eq!(november.label(), "2026-11");
        assert_eq!(november.end() - november.start(), 30 * 86_400);
        assert_eq!(Month::parse("2028-02").unwrap().days(), 29);
        assert_eq!(Month::parse("2026-12").unwrap().next().label(), "2027-01");
        assert_eq!(
            Month::parse("2027-01").unwrap().previous().label(),
            "2026-12"
        );
        assert_eq!(Month::of(1_795_701_757), november);
        for bad in ["2026", "2026-13", "2026-0", "nov", "1969-12"] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
    }
}
