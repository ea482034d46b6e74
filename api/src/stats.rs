//! Cluster and topic statistics in the shapes of Upstash's Developer API, and a plain usage
//! series for the console.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    Error, Result, clusters,
    state::AppState,
    store, topics,
    usage::{UsagePoint, daily, format_utc, month_start, weekday},
};

/// Hours shown in the throughput series.
const SERIES_HOURS: i64 = 24;
/// Days shown in the daily series.
const SERIES_DAYS: i64 = 5;

fn points(
    series: &[UsagePoint],
    from: i64,
    step: i64,
    count: i64,
    y: impl Fn(&UsagePoint) -> i64,
) -> Value {
    let values: Vec<Value> = (0..count)
        .map(|i| {
            let time = from + i * step;
            let value = series.iter().find(|p| p.time == time).map(&y).unwrap_or(0);
            json!({ "x": format_utc(time), "y": value })
        })
        .collect();
    Value::Array(values)
}

struct Window {
    now: i64,
    hours_from: i64,
    days_from: i64,
    month_from: i64,
}

fn window() -> Window {
    let now = store::now();
    let this_hour = now - now.rem_euclid(3600);
    let today = now - now.rem_euclid(86_400);
    Window {
        now,
        hours_from: this_hour - (SERIES_HOURS - 1) * 3600,
        days_from: today - (SERIES_DAYS - 1) * 86_400,
        month_from: month_start(now),
    }
}

async fn stats(
    state: &AppState,
    cluster_id: &str,
    topic: Option<&str>,
) -> Result<serde_json::Map<String, Value>> {
    let w = window();
    let from = w.days_from.min(w.month_from).min(w.hours_from);
    let hourly = state
        .usage
        .hourly(cluster_id, topic, from, w.now + 1)
        .await?;
    let days = daily(&hourly);
    let month: Vec<&UsagePoint> = hourly.iter().filter(|p| p.time >= w.month_from).collect();
    let month_days: Vec<UsagePoint> = days
        .iter()
        .filter(|d| d.time >= w.month_from)
        .cloned()
        .collect();
    let elapsed_days = ((w.now - w.month_from) / 86_400 + 1).max(1);
    // The month's average stored bytes: the sum of daily averages over the days elapsed.
    let monthly_storage = month_days.iter().map(|d| d.storage_bytes).sum::<i64>() / elapsed_days;
    let mut body = serde_json::Map::new();
    body.insert(
        "throughput".into(),
        points(&hourly, w.hours_from, 3600, SERIES_HOURS, |p| {
            p.produced + p.consumed
        }),
    );
    body.insert(
        "produce_throughput".into(),
        points(&hourly, w.hours_from, 3600, SERIES_HOURS, |p| p.produced),
    );
    body.insert(
        "consume_throughput".into(),
        points(&hourly, w.hours_from, 3600, SERIES_HOURS, |p| p.consumed),
    );
    body.insert(
        "diskusage".into(),
        points(&hourly, w.hours_from, 3600, SERIES_HOURS, |p| {
            p.storage_bytes
        }),
    );
    body.insert("total_monthly_storage".into(), json!(monthly_storage));
    body.insert(
        "total_monthly_produce".into(),
        json!(month.iter().map(|p| p.produced).sum::<i64>()),
    );
    body.insert(
        "total_monthly_consume".into(),
        json!(month.iter().map(|p| p.consumed).sum::<i64>()),
    );
    if topic.is_none() {
        let day_names: Vec<String> = (0..SERIES_DAYS)
            .map(|i| weekday(w.days_from + i * 86_400))
            .collect();
        body.insert("days".into(), json!(day_names));
        body.insert(
            "dailyproduce".into(),
            points(&days, w.days_from, 86_400, SERIES_DAYS, |p| p.produced),
        );
        body.insert(
            "dailyconsume".into(),
            points(&days, w.days_from, 86_400, SERIES_DAYS, |p| p.consumed),
        );
    }
    Ok(body)
}

/// `GET /v2/kafka/stats/cluster/{id}`.
pub async fn cluster(state: &AppState, account_id: &str, cluster_id: &str) -> Result<Value> {
    clusters::find_owned(&state.store, account_id, cluster_id).await?;
    let mut body = stats(state, cluster_id, None).await?;
    // Dollars, as Upstash reported it; null when billing is not wired into this process.
    let billing = match state.billing.cost(cluster_id).await {
        Ok(cost) => json!(cost.month_to_date_cents as f64 / 100.0),
        Err(_) => Value::Null,
    };
    body.insert("total_monthly_billing".into(), billing);
    Ok(Value::Object(body))
}

/// `GET /v2/kafka/stats/topic/{id}`.
pub async fn topic(state: &AppState, account_id: &str, topic_id: &str) -> Result<Value> {
    let topic = topics::get(state, account_id, topic_id).await?;
    Ok(Value::Object(
        stats(state, &topic.cluster_id, Some(&topic.topic_name)).await?,
    ))
}

/// Query of `GET /v2/kafka/usage/{cluster_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Start, unix seconds (default: the start of the current UTC month).
    pub from: Option<i64>,
    /// End (exclusive), unix seconds (default: now).
    pub to: Option<i64>,
    /// `hour` (default) or `day`.
    pub granularity: Option<String>,
}

/// A usage series and per-topic totals.
#[derive(Debug, Serialize)]
pub struct UsageReport {
    pub cluster_id: String,
    pub from: i64,
    pub to: i64,
    pub granularity: String,
    pub points: Vec<UsagePoint>,
    pub topics: Vec<crate::usage::TopicUsage>,
}

/// `GET /v2/kafka/usage/{cluster_id}`: usage between two times, by hour or day.
pub async fn usage(
    state: &AppState,
    account_id: &str,
    cluster_id: &str,
    query: UsageQuery,
) -> Result<UsageReport> {
    clusters::find_owned(&state.store, account_id, cluster_id).await?;
    let now = store::now();
    let from = query.from.unwrap_or_else(|| month_start(now));
    let to = query.to.unwrap_or(now + 1);
    if from >= to || from < 0 {
        return Err(Error::Invalid(
            "from must be before to, both unix seconds".into(),
        ));
    }
    if to - from > 400 * 86_400 {
        return Err(Error::Invalid(
            "a usage query may span at most 400 days".into(),
        ));
    }
    let granularity = query.granularity.unwrap_or_else(|| "hour".into());
    let hourly = state.usage.hourly(cluster_id, None, from, to).await?;
    let points = match granularity.as_str() {
        "hour" => hourly,
        "day" => daily(&hourly),
        other => {
            return Err(Error::Invalid(format!(
                "granularity must be hour or day (got {other:?})"
            )));
        }
    };
    let topics = state.usage.topic_totals(cluster_id, from, to).await?;
    Ok(UsageReport {
        cluster_id: cluster_id.to_owned(),
        from,
        to,
        granularity,
        points,
        topics,
    })
}
