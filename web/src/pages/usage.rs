//! A cluster's usage this month: messages per day and storage as server-drawn charts, the
//! per-topic breakdown, month-to-date cost and the forecast.

use askama::Template;
use axum::{
    extract::{Path, State},
    response::Response,
};
use capstan_api::usage;
use capstan_billing::{ledger::Month, metering::unix_now};

use super::{ClusterHeader, Layout, ok};
use crate::{
    ConsoleState, Result,
    chart::{self, Series},
    csrf::CsrfToken,
    format,
    session::Viewer,
};

/// A topic's share of the month.
#[derive(Debug)]
struct TopicLine {
    topic: String,
    produced: String,
    consumed: String,
}

/// A line of the bill so far.
#[derive(Debug)]
struct CostLine {
    item: String,
    amount: String,
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    layout: Layout,
    header: ClusterHeader,
    messages_chart: String,
    storage_chart: String,
    produced: String,
    consumed: String,
    topics: Vec<TopicLine>,
    lines: Vec<CostLine>,
}

pub(crate) async fn show(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    csrf: CsrfToken,
    Path(id): Path<String>,
) -> Result<Response> {
    // Ownership first; then usage before cost, so the cost shown covers at least the usage
    // shown even when a metering sweep lands between the reads.
    let row = capstan_api::clusters::find_owned(&state.app.store, &viewer.account_id, &id).await?;
    let now = unix_now();
    let month = Month::of(now);
    let (from, to) = (month.start(), month.end());
    let hours = state.app.usage.hourly(&id, None, from, to).await?;
    let days = usage::daily(&hours);
    let day_count = month.days();
    let mut produced = vec![0i64; day_count as usize];
    let mut consumed = produced.clone();
    let mut storage = produced.clone();
    for day in &days {
        let index = ((day.time - from) / 86_400) as usize;
        if let (Some(p), Some(c), Some(s)) = (
            produced.get_mut(index),
            consumed.get_mut(index),
            storage.get_mut(index),
        ) {
            (*p, *c, *s) = (day.produced, day.consumed, day.storage_bytes);
        }
    }
    let labels: Vec<String> = (1..=day_count).map(|d| d.to_string()).collect();
    let total = |values: &[i64]| format::count(values.iter().sum());
    let (produced_total, consumed_total) = (total(&produced), total(&consumed));
    let messages_chart = chart::bars(
        &format!(
            "Messages produced and consumed per day in {}",
            month.label()
        ),
        &labels,
        &[
            Series {
                name: "produced",
                class: "bar-produced",
                values: produced,
            },
            Series {
                name: "consumed",
                class: "bar-consumed",
                values: consumed,
            },
        ],
        format::count,
    );
    let storage_chart = chart::bars(
        &format!("Average storage per day in {}", month.label()),
        &labels,
        &[Series {
            name: "stored",
            class: "bar-storage",
            values: storage,
        }],
        format::bytes,
    );
    let topics = state
        .app
        .usage
        .topic_totals(&id, from, to)
        .await?
        .into_iter()
        .map(|t| TopicLine {
            topic: t.topic,
            produced: format::count(t.produced),
            consumed: format::count(t.consumed),
        })
        .collect();
    let header = ClusterHeader::with_cost(&state, row, "usage").await?;
    let lines = header
        .cost
        .lines
        .as_array()
        .into_iter()
        .flatten()
        .map(|line| CostLine {
            item: capstan_api::invoice_page::describe(
                line["kind"].as_str().unwrap_or_default(),
                line["quantity"].as_i64().unwrap_or(0),
            ),
            amount: format::dollars(line["cents"].as_i64().unwrap_or(0)),
        })
        .collect();
    ok(&UsagePage {
        layout: Layout::new(
            format!("Usage · {}", header.cluster.name),
            Some(&viewer),
            &csrf,
            "clusters",
        ),
        header,
        messages_chart,
        storage_chart,
        produced: produced_total,
        consumed: consumed_total,
        topics,
        lines,
    })
}
