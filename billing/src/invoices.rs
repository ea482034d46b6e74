//! Monthly invoices: one per account and month, with lines per cluster. Closing a month is
//! idempotent and safe to run late or again after a crash: an invoice and all its lines are
//! written finalized (numbered, immutable) in one transaction.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sqlx::AnyPool;

use capstan_kafka::failpoint;

use crate::{
    Error, Result,
    customers::{BillableCluster, Customers},
    ledger::{Month, month_usage_by_cluster},
    metering::close_through,
    pricing::{self, MonthUsage, PriceList},
};

/// An invoice line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct InvoiceLine {
    /// Position on the invoice, from 1.
    pub line_no: i64,
    /// The cluster billed.
    pub cluster_id: String,
    /// Its name when the invoice was made.
    pub cluster_name: String,
    /// `produced`, `consumed`, `storage` or `cap_adjustment`.
    pub kind: String,
    /// Messages, GB-month × 1,000,000 for storage, 0 for the adjustment.
    pub quantity: i64,
    /// Exact amount, micro-dollars.
    pub micros: i64,
    /// Amount rounded half-up to cents.
    pub cents: i64,
}

/// An invoice with its lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Invoice {
    /// Invoice id.
    pub id: String,
    /// Owner.
    pub account_id: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Sequential number, given at finalization.
    pub number: Option<i64>,
    /// `open`, `paid` or `void`.
    pub state: String,
    /// The sum of the lines' cents.
    pub total_cents: i64,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Finalization time.
    pub finalized_at: Option<i64>,
    /// What is wrong with its payment, if anything: Stripe's reason for a failed charge, or
    /// an amount Stripe collected that is not the invoice's total (it then stays `open`).
    pub payment_problem: Option<String>,
    /// Lines, in order.
    pub lines: Vec<InvoiceLine>,
}

/// What closing a month did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloseReport {
    /// Invoices created now.
    pub created: usize,
    /// Invoices that already existed (a re-run).
    pub existing: usize,
    /// Invoices finalized now (they are created finalized).
    pub finalized: usize,
}

/// Invoices written per transaction.
const BATCH: usize = 500;

/// Creates the finalized invoices of `month` for every account that had a cluster in it and has
/// no invoice for it yet. Each batch of invoices, with all their lines and numbers, is one
/// transaction, so a crash leaves whole invoices or none, and a re-run makes only the missing
/// ones. Refuses a month that has not ended yet at `now`.
///
/// Runs at the same time (two processes, or a run whose client went away while its commit was
/// still landing) cannot make two invoices: one account's invoice for a month is unique, and a
/// run that meets one written meanwhile starts over from what is now there.
pub async fn close_month(
    pool: &AnyPool,
    prices: &PriceList,
    customers: &dyn Customers,
    month: Month,
    now: i64,
) -> Result<CloseReport> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match close_month_once(pool, prices, customers, month, now).await {
            Err(Error::Database(sqlx::Error::Database(error)))
                if error.is_unique_violation() && attempt < 5 =>
            {
                tracing::info!(month = %month.label(), "another run closed part of the month meanwhile; starting over");
            }
            outcome => return outcome,
        }
    }
}

async fn close_month_once(
    pool: &AnyPool,
    prices: &PriceList,
    customers: &dyn Customers,
    month: Month,
    now: i64,
) -> Result<CloseReport> {
    if now < month.end() {
        return Err(Error::Invalid(format!(
            "{} has not ended yet; a month is closed after its last day (UTC)",
            month.label()
        )));
    }
    // From here on no usage lands in the month (late usage counts in the next one): the
    // invoices below and every later reading of the month see the same rows.
    close_through(pool, month.end()).await?;
    failpoint::hit("close.after_usage_closed").await;
    let by_account = billed_clusters(customers, month).await?;
    let invoiced: std::collections::HashSet<String> =
        sqlx::query_as::<_, (String,)>("SELECT account_id FROM invoices WHERE month = $1")
            .bind(month.label())
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|(account,)| account)
            .collect();
    let mut report = CloseReport {
        existing: invoiced.len(),
        ..Default::default()
    };
    let pending: Vec<(&String, &Vec<BillableCluster>)> = by_account
        .iter()
        .filter(|(a, _)| !invoiced.contains(a.as_str()))
        .collect();
    if pending.is_empty() {
        return Ok(report);
    }
    let usage = month_usage_by_cluster(pool, month, month.end(), None).await?;
    for batch in pending.chunks(BATCH) {
        let mut tx = pool.begin().await?;
        let (mut number,): (i64,) =
            sqlx::query_as("SELECT CAST(COALESCE(MAX(number), 0) AS BIGINT) FROM invoices")
                .fetch_one(&mut *tx)
                .await?;
        let mut invoice_rows = Vec::with_capacity(batch.len());
        let mut line_rows = Vec::new();
        for (account_id, clusters) in batch {
            number += 1;
            let id = uuid::Uuid::new_v4().to_string();
            let mut total = 0;
            for (line_no, (cluster, line)) in
                (1..).zip(account_lines(prices, month, clusters, &usage))
            {
                total += line.cents;
                line_rows.push((id.clone(), line_no, cluster, line));
            }
            invoice_rows.push((id, (*account_id).clone(), number, total));
            report.created += 1;
            report.finalized += 1;
        }
        insert_invoices(&mut tx, &invoice_rows, month, now).await?;
        failpoint::hit("close.batch.before_lines").await;
        insert_lines(&mut tx, &line_rows).await?;
        tx.commit().await?;
        failpoint::hit("close.batch.committed").await;
    }
    Ok(report)
}

/// How long after a month's end its close waits for clusters not yet metered through it
/// (their brokers unreachable): past it the month is closed with what was metered, and their
/// late usage counts in the next month.
pub const LATE_METERING_WAIT: i64 = 3600;

/// Whether a month may be closed yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// Live clusters metered before the month's end but not through it yet.
    pub behind: Vec<String>,
    /// [`LATE_METERING_WAIT`] has passed since the month ended.
    pub overdue: bool,
}

impl Readiness {
    /// Every live cluster was metered through the month's end, or waiting is over.
    pub fn may_close(&self) -> bool {
        self.behind.is_empty() || self.overdue
    }
}

/// Whether `month` may be closed at `now`: a month is closed once every live cluster has been
/// metered through its end, so a sweep that started before midnight and commits after it is
/// in the invoice (clusters never metered, and deleted ones, which were metered as they were
/// deleted, are not waited for).
pub async fn readiness(
    pool: &AnyPool,
    customers: &dyn Customers,
    month: Month,
    now: i64,
) -> Result<Readiness> {
    let lagging: std::collections::HashSet<String> = sqlx::query_as::<_, (String,)>(
        "SELECT cluster_id FROM meter_progress WHERE metered_through < $1",
    )
    .bind(month.end())
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|(cluster,)| cluster)
    .collect();
    let mut behind: Vec<String> = billed_clusters(customers, month)
        .await?
        .into_values()
        .flatten()
        .filter(|cluster| cluster.deleted_at.is_none() && lagging.contains(&cluster.cluster_id))
        .map(|cluster| cluster.cluster_id)
        .collect();
    behind.sort();
    Ok(Readiness {
        behind,
        overdue: now >= month.end() + LATE_METERING_WAIT,
    })
}

/// The clusters that existed during `month`, by account, each with the budget in force at the
/// month's end: whom the month is invoiced to, and at which cap.
pub(crate) async fn billed_clusters(
    customers: &dyn Customers,
    month: Month,
) -> Result<BTreeMap<String, Vec<BillableCluster>>> {
    let mut by_account: BTreeMap<String, Vec<BillableCluster>> = BTreeMap::new();
    for cluster in customers.clusters_as_of(month.end()).await? {
        let alive_in_month = cluster.created_at < month.end()
            && cluster.deleted_at.is_none_or(|d| d >= month.start());
        if alive_in_month {
            by_account
                .entry(cluster.account_id.clone())
                .or_default()
                .push(cluster);
        }
    }
    Ok(by_account)
}

/// An account's invoice lines for `month`, in invoice order: each cluster's lines priced from
/// its usage (no usage is a month of zeros).
pub(crate) fn account_lines<'a>(
    prices: &PriceList,
    month: Month,
    clusters: &'a [BillableCluster],
    usage: &HashMap<String, MonthUsage>,
) -> Vec<(&'a BillableCluster, pricing::Line)> {
    let idle = MonthUsage {
        hours_in_month: month.hours(),
        ..Default::default()
    };
    clusters
        .iter()
        .flat_map(|cluster| {
            let month_usage = usage.get(&cluster.cluster_id).unwrap_or(&idle);
            pricing::bill(prices, cluster.tariff, month_usage)
                .into_iter()
                .map(move |line| (cluster, line))
        })
        .collect()
}

/// Voids an open invoice (an operator's correction): it stays listed, marked `void`, and is
/// no longer due. An invoice already sent to Stripe is voided in Stripe instead, whose
/// `invoice.voided` webhook brings the change here, so the two never disagree.
pub async fn void(pool: &AnyPool, invoice_id: &str) -> Result<()> {
    let found: Option<(String,)> = sqlx::query_as("SELECT state FROM invoices WHERE id = $1")
        .bind(invoice_id)
        .fetch_optional(pool)
        .await?;
    let (state,) = found.ok_or(Error::NotFound("invoice"))?;
    if state != "open" {
        return Err(Error::Invalid(format!(
            "only an open invoice can be voided; this one is {state}"
        )));
    }
    let (sent,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM stripe_invoices WHERE invoice_id = $1")
            .bind(invoice_id)
            .fetch_one(pool)
            .await?;
    if sent > 0 {
        return Err(Error::Invalid(
            "this invoice was sent to Stripe: void it there (dashboard or API); Stripe's invoice.voided webhook marks it void here".into(),
        ));
    }
    settle(pool, invoice_id, "void").await?;
    Ok(())
}

/// Moves an open invoice to `state` (`paid` or `void`); false when it was not open (already
/// settled, so a repeated webhook changes nothing).
pub(crate) async fn settle(pool: &AnyPool, invoice_id: &str, state: &str) -> Result<bool> {
    let updated = sqlx::query("UPDATE invoices SET state = $1 WHERE id = $2 AND state = 'open'")
        .bind(state)
        .bind(invoice_id)
        .execute(pool)
        .await?;
    Ok(updated.rows_affected() > 0)
}

/// `($1, $2, …), ($n+1, …)` for a multi-row INSERT of `rows` rows of `columns` values.
fn values_clause(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| {
            let values: Vec<String> = (1..=columns)
                .map(|column| format!("${}", row * columns + column))
                .collect();
            format!("({})", values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn insert_invoices(
    tx: &mut sqlx::AnyConnection,
    rows: &[(String, String, i64, i64)],
    month: Month,
    now: i64,
) -> Result<()> {
    for chunk in rows.chunks(100) {
        let sql = format!(
            "INSERT INTO invoices (id, account_id, month, number, state, total_cents, created_at, finalized_at) VALUES {}",
            values_clause(chunk.len(), 8)
        );
        let mut query = sqlx::query(&sql);
        for (id, account, number, total) in chunk {
            query = query
                .bind(id)
                .bind(account)
                .bind(month.label())
                .bind(*number)
                // Nothing is due on a $0 invoice: it is settled when it is made, never sent to
                // Stripe, never left open.
                .bind(if *total == 0 { "paid" } else { "open" })
                .bind(*total)
                .bind(now)
                .bind(now);
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

type LineRow<'a> = (String, i64, &'a BillableCluster, pricing::Line);

async fn insert_lines(tx: &mut sqlx::AnyConnection, rows: &[LineRow<'_>]) -> Result<()> {
    for chunk in rows.chunks(100) {
        let sql = format!(
            "INSERT INTO invoice_lines (invoice_id, line_no, cluster_id, cluster_name, kind, quantity, micros, cents) VALUES {}",
            values_clause(chunk.len(), 8)
        );
        let mut query = sqlx::query(&sql);
        for (id, line_no, cluster, line) in chunk {
            query = query
                .bind(id)
                .bind(*line_no)
                .bind(&cluster.cluster_id)
                .bind(&cluster.name)
                .bind(line.kind)
                .bind(line.quantity)
                .bind(line.micros)
                .bind(line.cents);
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

type InvoiceRow = (
    String,
    String,
    String,
    Option<i64>,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
);
/// An invoice's columns, with Stripe's last payment error read in the same query.
const INVOICE_COLUMNS: &str = "id, account_id, month, number, state, total_cents, created_at, finalized_at, \
     (SELECT s.last_payment_error FROM stripe_invoices s WHERE s.invoice_id = invoices.id)";

async fn with_lines(pool: &AnyPool, row: InvoiceRow) -> Result<Invoice> {
    let (
        id,
        account_id,
        month,
        number,
        state,
        total_cents,
        created_at,
        finalized_at,
        payment_problem,
    ) = row;
    let lines = sqlx::query_as(
        "SELECT line_no, cluster_id, cluster_name, kind, quantity, micros, cents FROM invoice_lines WHERE invoice_id = $1 ORDER BY line_no",
    )
    .bind(&id)
    .fetch_all(pool)
    .await?;
    Ok(Invoice {
        id,
        account_id,
        month,
        number,
        state,
        total_cents,
        created_at,
        finalized_at,
        payment_problem,
        lines,
    })
}

/// An account's invoices, newest month first.
pub async fn list(pool: &AnyPool, account_id: &str) -> Result<Vec<Invoice>> {
    let rows: Vec<InvoiceRow> = sqlx::query_as(&format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE account_id = $1 ORDER BY month DESC"
    ))
    .bind(account_id)
    .fetch_all(pool)
    .await?;
    let mut invoices = Vec::with_capacity(rows.len());
    for row in rows {
        invoices.push(with_lines(pool, row).await?);
    }
    Ok(invoices)
}

/// One invoice of the account.
pub async fn get(pool: &AnyPool, account_id: &str, id: &str) -> Result<Invoice> {
    let row: InvoiceRow = sqlx::query_as(&format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1 AND account_id = $2"
    ))
    .bind(id)
    .bind(account_id)
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound("invoice"))?;
    with_lines(pool, row).await
}

/// The invoice's lines as CSV (amounts in dollars with cents, and exact micro-dollars).
pub fn csv(invoice: &Invoice) -> String {
    let mut out = String::from(
        "invoice,month,line,cluster_id,cluster_name,kind,quantity,amount_usd,amount_micro_usd\n",
    );
    for line in &invoice.lines {
        let name = line.cluster_name.replace('"', "\"\"");
        out.push_str(&format!(
            "{},{},{},{},\"{name}\",{},{},{}{}.{:02},{}\n",
            invoice.id,
            invoice.month,
            line.line_no,
            line.cluster_id,
            line.kind,
            line.quantity,
            if line.cents < 0 { "-" } else { "" },
            line.cents.abs() / 100,
            line.cents.abs() % 100,
            line.micros
        ));
    }
    out
}

/// The hourly usage behind an invoice, as CSV: every hour of the invoice's month for each of its
/// clusters and topics.
pub async fn usage_csv(pool: &AnyPool, invoice: &Invoice) -> Result<String> {
    let month = Month::parse(&invoice.month)?;
    let mut clusters: Vec<&str> = invoice
        .lines
        .iter()
        .map(|l| l.cluster_id.as_str())
        .collect();
    clusters.sort_unstable();
    clusters.dedup();
    let mut out =
        String::from("cluster_id,topic,hour_utc,produced,consumed,average_stored_bytes\n");
    for cluster in clusters {
        let rows: Vec<(String, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT topic, hour, produced, consumed, storage_sum, storage_samples FROM usage_hourly \
             WHERE cluster_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour, topic",
        )
        .bind(cluster)
        .bind(month.start())
        .bind(month.end())
        .fetch_all(pool)
        .await?;
        for (topic, hour, produced, consumed, sum, samples) in rows {
            let stored = if samples > 0 { sum / samples } else { 0 };
            out.push_str(&format!(
                "{cluster},{topic},{hour},{produced},{consumed},{stored}\n"
            ));
        }
    }
    Ok(out)
}
