//! Stripe, when configured: a customer per account, an invoice item per invoice line and a
//! Stripe invoice per closed Capstan invoice, each request with an idempotency key derived from
//! the invoice id and line; and the signed webhook that marks invoices paid or failed.
//!
//! Every step that created something at Stripe is recorded in Capstan's own tables as soon as it
//! succeeded, so a replay (after a crash, or after Stripe was unreachable) continues where it
//! stopped and never charges twice — even against an endpoint that ignores idempotency keys.

use std::time::Duration;

use capstan_kafka::failpoint;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use sqlx::AnyPool;

use crate::{Error, Result, invoices};

/// How to reach Stripe.
#[derive(Clone)]
pub struct StripeConfig {
    /// API base URL: `https://api.stripe.com`, or a local stand-in such as localstripe.
    pub api_base: String,
    /// Secret API key (`sk_…`).
    pub secret_key: String,
    /// Signing secret of the webhook endpoint (`whsec_…`).
    pub webhook_secret: String,
    /// True for a local stand-in (localstripe) that refuses Stripe's newer invoice parameters
    /// (`auto_advance`, `pending_invoice_items_behavior`), includes a customer's pending items
    /// in a new invoice by itself, and never charges on its own. False for Stripe.
    pub stand_in: bool,
}

/// The Stripe API version every request is made with, so an account's default version (which
/// changes what an invoice includes) never changes what Capstan sends.
pub const STRIPE_VERSION: &str = "2024-06-20";

impl std::fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

/// How old a webhook signature may be.
const SIGNATURE_TOLERANCE: i64 = 300;

/// A Stripe client.
#[derive(Clone, Debug)]
pub struct Stripe {
    config: StripeConfig,
    http: reqwest::Client,
}

/// What a synchronisation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Invoices now at Stripe.
    pub synced: usize,
    /// Invoices that failed (to be retried).
    pub failed: usize,
}

impl Stripe {
    /// A client for `config`.
    pub fn new(config: StripeConfig) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| Error::Stripe(format!("could not build an HTTP client: {e}")))?;
        Ok(Stripe { config, http })
    }

    async fn post(
        &self,
        path: &str,
        idempotency_key: &str,
        form: &[(String, String)],
    ) -> Result<Value> {
        let url = format!("{}{path}", self.config.api_base.trim_end_matches('/'));
        let response = self
            .http
            .post(&url)
            .bearer_auth(&self.config.secret_key)
            .header("Stripe-Version", STRIPE_VERSION)
            .header("Idempotency-Key", idempotency_key)
            .form(form)
            .send()
            .await
            .map_err(|e| Error::Stripe(format!("Stripe is unreachable ({path}): {e}")))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| Error::Stripe(format!("Stripe answered {status} with no JSON: {e}")))?;
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("no message");
            return Err(Error::Stripe(format!(
                "Stripe refused {path} ({status}): {message}"
            )));
        }
        Ok(body)
    }

    /// The account's Stripe customer and its $0 subscription (created once, then recorded).
    async fn customer(
        &self,
        pool: &AnyPool,
        account_id: &str,
        email: &str,
    ) -> Result<(String, String)> {
        let known: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT customer_id, subscription_id FROM stripe_customers WHERE account_id = $1",
        )
        .bind(account_id)
        .fetch_optional(pool)
        .await?;
        let customer = match &known {
            Some((id, _)) => id.clone(),
            None => {
                let form = vec![
                    ("email".to_owned(), email.to_owned()),
                    (
                        "metadata[capstan_account]".to_owned(),
                        account_id.to_owned(),
                    ),
                ];
                let created = self
                    .post(
                        "/v1/customers",
                        &format!("capstan-customer-{account_id}"),
                        &form,
                    )
                    .await?;
                let id = created["id"]
                    .as_str()
                    .ok_or_else(|| Error::Stripe("a customer without an id".into()))?
                    .to_owned();
                sqlx::query(
                    "INSERT INTO stripe_customers (account_id, customer_id) VALUES ($1, $2)",
                )
                .bind(account_id)
                .bind(&id)
                .execute(pool)
                .await?;
                id
            }
        };
        if let Some((_, Some(subscription))) = known {
            return Ok((customer, subscription));
        }
        let plan = self.zero_plan().await?;
        let form = vec![
            ("customer".to_owned(), customer.clone()),
            ("items[0][plan]".to_owned(), plan),
        ];
        let created = self
            .post(
                "/v1/subscriptions",
                &format!("capstan-subscription-{account_id}"),
                &form,
            )
            .await?;
        let subscription = created["id"]
            .as_str()
            .ok_or_else(|| Error::Stripe("a subscription without an id".into()))?
            .to_owned();
        sqlx::query("UPDATE stripe_customers SET subscription_id = $1 WHERE account_id = $2")
            .bind(&subscription)
            .bind(account_id)
            .execute(pool)
            .await?;
        Ok((customer, subscription))
    }

    /// The $0 monthly plan every customer subscribes to (found by its id, or created).
    async fn zero_plan(&self) -> Result<String> {
        const PLAN: &str = "capstan-usage";
        let url = format!(
            "{}/v1/plans/{PLAN}",
            self.config.api_base.trim_end_matches('/')
        );
        let found = self
            .http
            .get(&url)
            .bearer_auth(&self.config.secret_key)
            .header("Stripe-Version", STRIPE_VERSION)
            .send()
            .await
            .map_err(|e| Error::Stripe(format!("Stripe is unreachable (/v1/plans): {e}")))?;
        if found.status().is_success() {
            return Ok(PLAN.to_owned());
        }
        let form = vec![
            ("id".to_owned(), PLAN.to_owned()),
            ("amount".to_owned(), "0".to_owned()),
            ("currency".to_owned(), "usd".to_owned()),
            ("interval".to_owned(), "month".to_owned()),
            ("product[name]".to_owned(), "Capstan usage".to_owned()),
        ];
        self.post("/v1/plans", "capstan-plan-usage", &form).await?;
        Ok(PLAN.to_owned())
    }

    /// Sends one finalized invoice to Stripe (resuming where an earlier attempt stopped).
    /// Invoices of $0 are not sent: there is nothing to charge.
    pub async fn sync_invoice(
        &self,
        pool: &AnyPool,
        invoice: &invoices::Invoice,
        email: &str,
    ) -> Result<Option<String>> {
        if invoice.state != "open" || invoice.total_cents <= 0 {
            return Ok(None);
        }
        let done: Option<(String,)> =
            sqlx::query_as("SELECT stripe_invoice_id FROM stripe_invoices WHERE invoice_id = $1")
                .bind(&invoice.id)
                .fetch_optional(pool)
                .await?;
        if let Some((id,)) = done {
            return Ok(Some(id));
        }
        let (customer, subscription) = self.customer(pool, &invoice.account_id, email).await?;
        let sent: Vec<(i64,)> =
            sqlx::query_as("SELECT line_no FROM stripe_invoice_items WHERE invoice_id = $1")
                .bind(&invoice.id)
                .fetch_all(pool)
                .await?;
        for line in invoice.lines.iter().filter(|l| l.cents != 0) {
            if sent.iter().any(|(n,)| *n == line.line_no) {
                continue;
            }
            let form = vec![
                ("customer".to_owned(), customer.clone()),
                ("amount".to_owned(), line.cents.to_string()),
                ("currency".to_owned(), "usd".to_owned()),
                (
                    "description".to_owned(),
                    format!(
                        "{} — {} ({})",
                        line.cluster_name,
                        line.kind.replace('_', " "),
                        invoice.month
                    ),
                ),
                ("metadata[capstan_invoice]".to_owned(), invoice.id.clone()),
                (
                    "metadata[capstan_line]".to_owned(),
                    line.line_no.to_string(),
                ),
            ];
            let item = self
                .post(
                    "/v1/invoiceitems",
                    &format!("capstan-{}-line-{}", invoice.id, line.line_no),
                    &form,
                )
                .await?;
            let item_id = item["id"]
                .as_str()
                .ok_or_else(|| Error::Stripe("an invoice item without an id".into()))?;
            // A crash here leaves an item at Stripe that Capstan has not recorded: the retry
            // sends the same idempotency key, and Stripe answers with that same item.
            failpoint::hit("stripe.item.sent").await;
            sqlx::query("INSERT INTO stripe_invoice_items (invoice_id, line_no, item_id) VALUES ($1, $2, $3)")
                .bind(&invoice.id)
                .bind(line.line_no)
                .bind(item_id)
                .execute(pool)
                .await?;
        }
        let form = self.invoice_form(customer, subscription, invoice);
        let created = self
            .post(
                "/v1/invoices",
                &format!("capstan-invoice-{}", invoice.id),
                &form,
            )
            .await?;
        let stripe_id = created["id"]
            .as_str()
            .ok_or_else(|| Error::Stripe("an invoice without an id".into()))?
            .to_owned();
        failpoint::hit("stripe.invoice.sent").await;
        sqlx::query("INSERT INTO stripe_invoices (invoice_id, stripe_invoice_id) VALUES ($1, $2)")
            .bind(&invoice.id)
            .bind(&stripe_id)
            .execute(pool)
            .await?;
        Ok(Some(stripe_id))
    }

    /// The invoice's creation request: for the account's $0 subscription, taking the pending
    /// items made just before (since API version 2022-08-01 Stripe leaves them out unless told,
    /// and the invoice would total $0 and be paid at once), charged automatically.
    fn invoice_form(
        &self,
        customer: String,
        subscription: String,
        invoice: &invoices::Invoice,
    ) -> Vec<(String, String)> {
        let mut form = vec![
            ("customer".to_owned(), customer),
            ("subscription".to_owned(), subscription),
            (
                "description".to_owned(),
                format!("Capstan, {}", invoice.month),
            ),
            ("metadata[capstan_invoice]".to_owned(), invoice.id.clone()),
            (
                "metadata[capstan_total_cents]".to_owned(),
                invoice.total_cents.to_string(),
            ),
        ];
        if !self.config.stand_in {
            form.push((
                "pending_invoice_items_behavior".to_owned(),
                "include".to_owned(),
            ));
            form.push(("auto_advance".to_owned(), "true".to_owned()));
        }
        form
    }

    /// Sends every open invoice not yet at Stripe; `emails` maps account ids to addresses.
    pub async fn sync_open_invoices(
        &self,
        pool: &AnyPool,
        emails: &std::collections::HashMap<String, String>,
    ) -> Result<SyncReport> {
        let pending: Vec<(String, String)> = sqlx::query_as(
            "SELECT i.id, i.account_id FROM invoices i WHERE i.state = 'open' AND i.total_cents > 0 \
             AND NOT EXISTS (SELECT 1 FROM stripe_invoices s WHERE s.invoice_id = i.id) ORDER BY i.number",
        )
        .fetch_all(pool)
        .await?;
        let mut report = SyncReport::default();
        for (id, account_id) in pending {
            let invoice = invoices::get(pool, &account_id, &id).await?;
            let address = emails.get(&account_id).cloned().unwrap_or_default();
            match self.sync_invoice(pool, &invoice, &address).await {
                Ok(_) => report.synced += 1,
                Err(error) => {
                    report.failed += 1;
                    tracing::warn!(invoice = %id, %error, "could not send an invoice to Stripe; it will be retried");
                    if matches!(error, Error::Stripe(_)) {
                        // Stripe is down or refusing: stop this round, retry the rest later.
                        break;
                    }
                }
            }
        }
        Ok(report)
    }

    /// Verifies a webhook's `Stripe-Signature` header (HMAC-SHA256 of `t.payload` with the
    /// endpoint's secret, compared in constant time, at most 5 minutes old) and returns the event.
    pub fn verify_webhook(&self, payload: &[u8], header: &str, now: i64) -> Result<Value> {
        let forged =
            || Error::Invalid("the Stripe-Signature header does not match this payload".into());
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
                Some(("v1", v)) => signatures.push(v.to_owned()),
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or_else(forged)?;
        if (now - timestamp).abs() > SIGNATURE_TOLERANCE {
            return Err(Error::Invalid("the Stripe-Signature is too old".into()));
        }
        let valid = signatures.iter().any(|signature| {
            let Some(bytes) = from_hex(signature) else {
                return false;
            };
            let Ok(mut mac) =
                <Hmac<Sha256> as Mac>::new_from_slice(self.config.webhook_secret.as_bytes())
            else {
                return false;
            };
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(payload);
            mac.verify_slice(&bytes).is_ok()
        });
        if !valid {
            return Err(forged());
        }
        serde_json::from_slice(payload)
            .map_err(|e| Error::Invalid(format!("the webhook payload is not JSON: {e}")))
    }

    /// Applies a verified webhook: `invoice.payment_succeeded` (or `invoice.paid`) marks the
    /// invoice paid when Stripe's `amount_paid` is its total — otherwise the invoice stays open
    /// and the mismatch is recorded and alerted; `invoice.voided` marks it void;
    /// `invoice.payment_failed` records why. Other events are acknowledged and ignored.
    pub async fn handle_webhook(
        &self,
        pool: &AnyPool,
        payload: &[u8],
        header: &str,
        now: i64,
    ) -> Result<()> {
        let event = self.verify_webhook(payload, header, now)?;
        let kind = event["type"].as_str().unwrap_or_default();
        let stripe_id = event["data"]["object"]["id"].as_str().unwrap_or_default();
        let ours: Option<(String,)> =
            sqlx::query_as("SELECT invoice_id FROM stripe_invoices WHERE stripe_invoice_id = $1")
                .bind(stripe_id)
                .fetch_optional(pool)
                .await?;
        let Some((invoice_id,)) = ours else {
            tracing::debug!(%kind, %stripe_id, "a Stripe event about something Capstan did not send");
            return Ok(());
        };
        match kind {
            "invoice.payment_succeeded" | "invoice.paid" => {
                let paid = event["data"]["object"]["amount_paid"].as_i64();
                let (total,): (i64,) =
                    sqlx::query_as("SELECT total_cents FROM invoices WHERE id = $1")
                        .bind(&invoice_id)
                        .fetch_one(pool)
                        .await?;
                if paid == Some(total) {
                    set_payment_problem(pool, &invoice_id, None).await?;
                    if crate::invoices::settle(pool, &invoice_id, "paid").await? {
                        tracing::info!(invoice = %invoice_id, "Stripe settled an invoice");
                    }
                } else {
                    let problem = format!(
                        "Stripe reports {} cents paid for this invoice of {total} cents; it stays open until the two agree (check the invoice at Stripe)",
                        paid.map_or_else(|| "no amount".to_owned(), |cents| cents.to_string())
                    );
                    tracing::error!(invoice = %invoice_id, %stripe_id, ?paid, total, "ALERT: Stripe's amount paid is not the invoice's total");
                    set_payment_problem(pool, &invoice_id, Some(&problem)).await?;
                }
            }
            "invoice.voided" => {
                let voided = crate::invoices::settle(pool, &invoice_id, "void").await?;
                if voided {
                    tracing::info!(invoice = %invoice_id, "Stripe voided an invoice");
                }
            }
            "invoice.payment_failed" => {
                let reason = event["data"]["object"]["last_payment_error"]["message"]
                    .as_str()
                    .unwrap_or("payment failed");
                set_payment_problem(pool, &invoice_id, Some(reason)).await?;
                tracing::warn!(invoice = %invoice_id, %reason, "invoice payment failed");
            }
            _ => {}
        }
        Ok(())
    }
}

/// Records (or clears) what is wrong with an invoice's payment, shown with the invoice.
async fn set_payment_problem(
    pool: &AnyPool,
    invoice_id: &str,
    problem: Option<&str>,
) -> Result<()> {
    sqlx::query("UPDATE stripe_invoices SET last_payment_error = $1 WHERE invoice_id = $2")
        .bind(problem)
        .bind(invoice_id)
        .execute(pool)
        .await?;
    Ok(())
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripe() -> Stripe {
        Stripe::new(StripeConfig {
            api_base: "http://127.0.0.1:9".into(),
            secret_key: "sk".into(),
            webhook_secret: "whsec_test".into(),
            stand_in: false,
        })
        .unwrap()
    }

    fn invoice(total_cents: i64) -> invoices::Invoice {
        invoices::Invoice {
            id: "inv-1".into(),
            account_id: "acc-1".into(),
            month: "2026-11".into(),
            number: Some(1),
            state: "open".into(),
            total_cents,
            created_at: 0,
            finalized_at: Some(0),
            payment_problem: None,
            lines: Vec::new(),
        }
    }

    #[test]
    fn an_invoice_at_stripe_takes_the_pending_items_and_charges_itself() {
        let form = stripe().invoice_form("cus_1".into(), "sub_1".into(), &invoice(3000));
        let get = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("pending_invoice_items_behavior"), Some("include"));
        assert_eq!(get("auto_advance"), Some("true"));
        assert_eq!(get("subscription"), Some("sub_1"));
        assert_eq!(get("metadata[capstan_total_cents]"), Some("3000"));
        // localstripe refuses both parameters and includes pending items by itself.
        let stand_in = Stripe::new(StripeConfig {
            stand_in: true,
            ..stripe().config
        })
        .unwrap();
        let form = stand_in.invoice_form("cus_1".into(), "sub_1".into(), &invoice(3000));
        assert!(
            form.iter()
                .all(|(k, _)| k != "pending_invoice_items_behavior" && k != "auto_advance")
        );
    }

    fn sign(secret: &str, t: i64, payload: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(payload);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn a_correctly_signed_webhook_is_accepted_and_a_forged_one_refused() {
        let payload = br#"{"type":"invoice.payment_succeeded","data":{"object":{"id":"in_1"}}}"#;
        let good = format!("t=1000,v1={}", sign("whsec_test", 1000, payload));
        assert!(stripe().verify_webhook(payload, &good, 1010).is_ok());
        let other_secret = format!("t=1000,v1={}", sign("whsec_other", 1000, payload));
        assert!(
            stripe()
                .verify_webhook(payload, &other_secret, 1010)
                .is_err()
        );
        assert!(
            stripe()
                .verify_webhook(b"{\"type\":\"tampered\"}", &good, 1010)
                .is_err()
        );
        assert!(
            stripe().verify_webhook(payload, &good, 1000 + 301).is_err(),
            "too old"
        );
        assert!(stripe().verify_webhook(payload, "v1=abc", 1000).is_err());
        assert!(stripe().verify_webhook(payload, "", 1000).is_err());
    }
}
