//! Auditing a closed month: every invoice recomputed from the usage rows it was made from, with
//! the budget in force at the month's end and the given prices, and compared line by line, so
//! an operator can prove a close (or find the row that was changed after it).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use sqlx::AnyPool;

use crate::{
    Error, Result,
    customers::Customers,
    invoices::{account_lines, billed_clusters},
    ledger::{Month, month_usage_by_cluster},
    pricing::{self, PriceList},
};

/// One thing an invoice says that its usage does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discrepancy {
    /// The account concerned.
    pub account_id: String,
    /// The invoice concerned, when there is one.
    pub invoice_id: Option<String>,
    /// What differs, in words an operator can act on.
    pub detail: String,
}

impl fmt::Display for Discrepancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.invoice_id {
            Some(invoice) => write!(
                f,
                "account {} invoice {}: {}",
                self.account_id, invoice, self.detail
            ),
            None => write!(f, "account {}: {}", self.account_id, self.detail),
        }
    }
}

/// What auditing a month found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Invoices of the month compared with their usage.
    pub invoices_checked: usize,
    /// Every difference found; empty when the month's invoices are exactly what its usage
    /// gives.
    pub discrepancies: Vec<Discrepancy>,
}

/// A line as stored, and as recomputed: what is compared.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Line {
    cluster_id: String,
    kind: String,
    quantity: i64,
    micros: i64,
    cents: i64,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cluster {} {} quantity {}, {} µ$ = {} ¢",
            self.cluster_id, self.kind, self.quantity, self.micros, self.cents
        )
    }
}

struct StoredInvoice {
    id: String,
    total_cents: i64,
    lines: Vec<Line>,
}

/// Recomputes every invoice of `month` from the usage rows (the same query and pricing the
/// close used, at `prices` and the budgets in force at the month's end) and reports every
/// difference: a line that differs, is missing or is extra, a total that is not the sum of its
/// lines, an account billed that should not be, or one that should be and has no invoice.
/// Refuses a month that has no invoice at all (it has not been closed).
pub async fn verify_month(
    pool: &AnyPool,
    prices: &PriceList,
    customers: &dyn Customers,
    month: Month,
) -> Result<AuditReport> {
    let stored = stored_invoices(pool, month).await?;
    if stored.is_empty() {
        return Err(Error::Invalid(format!(
            "{} has no invoices: it has not been closed (capstan invoices close --month {})",
            month.label(),
            month.label()
        )));
    }
    let billed = billed_clusters(customers, month).await?;
    let usage = month_usage_by_cluster(pool, month, month.end(), None).await?;
    let mut report = AuditReport {
        invoices_checked: stored.len(),
        ..Default::default()
    };
    for (account_id, clusters) in &billed {
        let Some(invoice) = stored.get(account_id) else {
            report.discrepancies.push(Discrepancy {
                account_id: account_id.clone(),
                invoice_id: None,
                detail: format!(
                    "had {} cluster(s) in {} but has no invoice for it",
                    clusters.len(),
                    month.label()
                ),
            });
            continue;
        };
        let expected: Vec<Line> = account_lines(prices, month, clusters, &usage)
            .into_iter()
            .map(|(cluster, line)| recomputed(&cluster.cluster_id, line))
            .collect();
        for detail in compare(&expected, invoice) {
            report.discrepancies.push(Discrepancy {
                account_id: account_id.clone(),
                invoice_id: Some(invoice.id.clone()),
                detail,
            });
        }
    }
    for (account_id, invoice) in &stored {
        if !billed.contains_key(account_id) {
            report.discrepancies.push(Discrepancy {
                account_id: account_id.clone(),
                invoice_id: Some(invoice.id.clone()),
                detail: format!("has an invoice but no cluster in {}", month.label()),
            });
        }
    }
    Ok(report)
}

fn recomputed(cluster_id: &str, line: pricing::Line) -> Line {
    Line {
        cluster_id: cluster_id.to_string(),
        kind: line.kind.to_string(),
        quantity: line.quantity,
        micros: line.micros,
        cents: line.cents,
    }
}

/// The differences between the lines the usage gives and an invoice, position by position.
fn compare(expected: &[Line], invoice: &StoredInvoice) -> Vec<String> {
    let mut differences = Vec::new();
    for position in 0..expected.len().max(invoice.lines.len()) {
        let line_no = position + 1;
        match (expected.get(position), invoice.lines.get(position)) {
            (Some(want), Some(have)) if want != have => {
                differences.push(format!("line {line_no} is {have}; its usage gives {want}"))
            }
            (Some(want), None) => {
                differences.push(format!("line {line_no} is missing; its usage gives {want}"))
            }
            (None, Some(have)) => differences.push(format!(
                "line {line_no} ({have}) is not in what its usage gives"
            )),
            _ => {}
        }
    }
    let lines_cents: i64 = invoice.lines.iter().map(|l| l.cents).sum();
    if invoice.total_cents != lines_cents {
        differences.push(format!(
            "total is {} ¢ but its lines add up to {lines_cents} ¢",
            invoice.total_cents
        ));
    }
    differences
}

/// The month's invoices by account, each with its lines in order: two queries, whatever the
/// number of invoices.
async fn stored_invoices(pool: &AnyPool, month: Month) -> Result<BTreeMap<String, StoredInvoice>> {
    let invoices: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT id, account_id, total_cents FROM invoices WHERE month = $1")
            .bind(month.label())
            .fetch_all(pool)
            .await?;
    let rows: Vec<(String, String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT l.invoice_id, l.cluster_id, l.kind, l.quantity, l.micros, l.cents \
         FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id \
         WHERE i.month = $1 ORDER BY l.invoice_id, l.line_no",
    )
    .bind(month.label())
    .fetch_all(pool)
    .await?;
    let mut lines: HashMap<String, Vec<Line>> = HashMap::new();
    for (invoice_id, cluster_id, kind, quantity, micros, cents) in rows {
        lines.entry(invoice_id).or_default().push(Line {
            cluster_id,
            kind,
            quantity,
            micros,
            cents,
        });
    }
    Ok(invoices
        .into_iter()
        .map(|(id, account_id, total_cents)| {
            let invoice = StoredInvoice {
                lines: lines.remove(&id).unwrap_or_default(),
                id,
                total_cents,
            };
            (account_id, invoice)
        })
        .collect())
}
