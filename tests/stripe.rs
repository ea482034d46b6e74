//! Stripe end to end against `localstripe` (PyPI) on loopback: invoices sent once and only once
//! (also across an outage), paid through Stripe, and the signed webhook — good and forged.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod support;

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use capstan_api::state::PlatformConfig;
use capstan_billing::{
    metering::unix_now,
    pricing::PriceList,
    stripe::{STRIPE_VERSION, Stripe, StripeConfig},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::start_configured;

const KEY: &str = "sk_test_capstan";
const WEBHOOK_SECRET: &str = "whsec_capstan";

struct LocalStripe {
    base: String,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

async fn localstripe() -> LocalStripe {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new("python3")
        .args([
            "-m",
            "localstripe",
            "--port",
            &port.to_string(),
            "--from-scratch",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("localstripe must be installed (pip install localstripe; scripts/test does it)");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "localstripe did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    LocalStripe {
        base: format!("http://127.0.0.1:{port}"),
        child,
        _dir: dir,
    }
}

impl LocalStripe {
    async fn call(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Value {
        let response = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(KEY)
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }
}

/// A request Capstan sent to Stripe.
#[derive(Clone, Debug)]
struct Sent {
    method: String,
    path: String,
    version: Option<String>,
    idempotency_key: Option<String>,
    form: Vec<(String, String)>,
}

/// A pass-through in front of localstripe that records every request, so the test asserts
/// what Capstan sends (localstripe checks neither the API version nor every parameter). It also
/// does what Stripe does with an `Idempotency-Key` and localstripe does not: a request under a
/// key already answered gets that first answer again, and reaches nothing.
async fn recorder(upstream: String) -> (String, Arc<Mutex<Vec<Sent>>>) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = sent.clone();
    let answered = Arc::new(Mutex::new(std::collections::HashMap::new()));
    let forward = move |request: axum::extract::Request| {
        let (log, upstream, answered) = (log.clone(), upstream.clone(), answered.clone());
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let header = |name: &str| {
                parts
                    .headers
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
            };
            log.lock().unwrap().push(Sent {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                version: header("stripe-version"),
                idempotency_key: header("idempotency-key"),
                form: serde_urlencoded::from_bytes(&body).unwrap_or_default(),
            });
            let key = header("idempotency-key");
            if let Some(first) = key
                .as_ref()
                .and_then(|k| answered.lock().unwrap().get(k).cloned())
            {
                return first;
            }
            let mut call = reqwest::Client::new()
                .request(parts.method.clone(), format!("{upstream}{}", parts.uri))
                .body(body);
            for name in ["authorization", "content-type", "idempotency-key"] {
                if let Some(value) = header(name) {
                    call = call.header(name, value);
                }
            }
            let answer = call.send().await.unwrap();
            let status = answer.status();
            let answer = (status, answer.bytes().await.unwrap());
            if let Some(key) = key {
                answered.lock().unwrap().insert(key, answer.clone());
            }
            answer
        }
    };
    let app = axum::Router::new().fallback(forward);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, sent)
}

/// A cluster that produced `messages` over REST this month, which is then closed at `prices`.
async fn close_a_month_of(run: &support::Running, prices: &PriceList, messages: usize) {
    let cluster = run.cluster("billed", &[("t", 1)]).await;
    let body = serde_json::to_string(&vec![json!({ "value": "m" }); messages]).unwrap();
    run.rest(&cluster, Method::POST, "/produce/t", &body, &[])
        .await;
    run.sweep().await;
    run.close_this_month(prices).await;
}

fn config(base: &str) -> StripeConfig {
    // localstripe refuses Stripe's newer invoice parameters.
    StripeConfig {
        api_base: base.to_owned(),
        secret_key: KEY.into(),
        webhook_secret: WEBHOOK_SECRET.into(),
        stand_in: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoices_reach_stripe_once_and_its_signed_webhook_marks_them_paid() {
    let stripe_server = localstripe().await;
    let prices = PriceList {
        single_zone_message_micros: 10_000,
        ..Default::default()
    };
    let run = start_configured(
        false,
        PlatformConfig::default(),
        prices.clone(),
        Some(config(&stripe_server.base)),
        None,
    )
    .await;
    let webhook_url = format!("{}/v2/stripe/webhook", run.api);
    reqwest::Client::new()
        .post(format!("{}/_config/webhooks/capstan", stripe_server.base))
        .form(&[("url", webhook_url.as_str()), ("secret", WEBHOOK_SECRET)])
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();

    close_a_month_of(&run, &prices, 30).await;
    let store = run.platform_state.store.clone();
    let emails = capstan_api::accounts::emails(&store).await.unwrap();

    // Stripe unreachable: nothing is recorded as sent, the invoice waits for the next round.
    let down = Stripe::new(config("http://127.0.0.1:9")).unwrap();
    let report = down
        .sync_open_invoices(store.pool(), &emails)
        .await
        .unwrap();
    assert_eq!((report.synced, report.failed), (0, 1));

    let (recording, sent) = recorder(stripe_server.base.clone()).await;
    let stripe = Stripe::new(config(&recording)).unwrap();
    assert_eq!(
        stripe
            .sync_open_invoices(store.pool(), &emails)
            .await
            .unwrap()
            .synced,
        1
    );
    assert_eq!(
        stripe
            .sync_open_invoices(store.pool(), &emails)
            .await
            .unwrap()
            .synced,
        0,
        "nothing is sent twice"
    );

    let ours = &run.api(Method::GET, "/v2/invoices", None).await[0];
    assert_eq!(ours["total_cents"], 30);
    // What Capstan asked of Stripe: every request on the pinned API version; the invoice item
    // made before the invoice that takes it, for the subscription, with the total to reconcile.
    let sent = sent.lock().unwrap().clone();
    assert!(
        sent.iter()
            .all(|r| r.version.as_deref() == Some(STRIPE_VERSION)),
        "{sent:?}"
    );
    let position = |path: &str| {
        sent.iter()
            .position(|r| r.method == "POST" && r.path == path)
            .unwrap_or_else(|| panic!("no POST {path} in {sent:?}"))
    };
    assert!(position("/v1/invoiceitems") < position("/v1/invoices"));
    let created = &sent[position("/v1/invoices")].form;
    let field = |key: &str| {
        created
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    assert!(
        field("subscription").is_some_and(|s| s.starts_with("sub_")),
        "{created:?}"
    );
    assert_eq!(field("metadata[capstan_total_cents]"), Some("30"));
    assert_eq!(ours["payment_problem"], Value::Null);
    let customers_at_stripe = stripe_server.call(Method::GET, "/v1/customers", &[]).await;
    assert_eq!(customers_at_stripe["data"].as_array().unwrap().len(), 1);
    let customer = customers_at_stripe["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(customers_at_stripe["data"][0]["email"], run.auth.0.as_str());
    let at_stripe = stripe_server
        .call(
            Method::GET,
            &format!("/v1/invoices?customer={customer}"),
            &[],
        )
        .await;
    // Besides the $0 subscription's own first invoice, one Stripe invoice: the one Capstan recorded.
    assert_eq!(
        at_stripe["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["total"].as_i64() != Some(0))
            .count(),
        1,
        "{at_stripe}"
    );
    let recorded: Vec<(String,)> =
        sqlx::query_as("SELECT stripe_invoice_id FROM stripe_invoices WHERE invoice_id = $1")
            .bind(ours["id"].as_str().unwrap())
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(recorded.len(), 1);
    let stripe_invoice = recorded[0].0.clone();
    let at_stripe_invoice = stripe_server
        .call(Method::GET, &format!("/v1/invoices/{stripe_invoice}"), &[])
        .await;
    assert_eq!(at_stripe_invoice["total"], 30);
    assert_eq!(at_stripe_invoice["customer"], customer.as_str());
    let items: Vec<(i64,)> =
        sqlx::query_as("SELECT line_no FROM stripe_invoice_items WHERE invoice_id = $1")
            .bind(ours["id"].as_str().unwrap())
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(items.len(), 1, "one item per non-zero line, sent once");

    // A forged webhook is refused and changes nothing.
    let forged = reqwest::Client::new()
        .post(&webhook_url)
        .header("Stripe-Signature", format!("t={},v1={}", unix_now(), "00".repeat(32)))
        .body(json!({ "type": "invoice.payment_succeeded", "data": { "object": { "id": stripe_invoice } } }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        run.api(Method::GET, "/v2/invoices", None).await[0]["state"],
        "open"
    );

    // A payment event whose amount is not the invoice's total settles nothing: the invoice
    // stays open and says why.
    let short = json!({ "type": "invoice.paid", "data": { "object": { "id": stripe_invoice, "amount_paid": 0 } } })
        .to_string();
    let answer = reqwest::Client::new()
        .post(&webhook_url)
        .header(
            "Stripe-Signature",
            support::stripe_signature(WEBHOOK_SECRET, &short),
        )
        .body(short)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let ours = &run.api(Method::GET, "/v2/invoices", None).await[0];
    assert_eq!(ours["state"], "open");
    assert!(
        ours["payment_problem"]
            .as_str()
            .unwrap()
            .contains("Stripe reports 0 cents paid for this invoice of 30 cents"),
        "{ours}"
    );

    // Pay through Stripe: its signed webhook (the amount paid is the total) marks it paid.
    stripe_server
        .call(
            Method::POST,
            "/v1/payment_methods/pm_card_visa/attach",
            &[("customer", customer.as_str())],
        )
        .await;
    stripe_server
        .call(
            Method::POST,
            &format!("/v1/customers/{customer}"),
            &[("invoice_settings[default_payment_method]", "pm_card_visa")],
        )
        .await;
    stripe_server
        .call(
            Method::POST,
            &format!("/v1/invoices/{stripe_invoice}/pay"),
            &[],
        )
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let invoice = run.api(Method::GET, "/v2/invoices", None).await[0].clone();
        let state = invoice["state"].clone();
        if state == "paid" {
            assert_eq!(
                invoice["payment_problem"],
                Value::Null,
                "the problem is cleared"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the payment webhook never arrived (state {state})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(stripe_server.child);
}

/// A sync stopped dead between each Stripe call and its record in the store (as a crash would
/// stop it) sends, when it is retried, the very request again under the same idempotency key,
/// which Stripe answers with the object it made the first time; Capstan ends with one item per
/// line and one invoice, and Stripe one invoice of the right total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_stopped_between_stripe_and_the_store_repeats_its_requests_under_the_same_keys() {
    use capstan_api::failpoint;
    let stripe_server = localstripe().await;
    let prices = PriceList {
        single_zone_message_micros: 10_000,
        ..Default::default()
    };
    let run = start_configured(false, PlatformConfig::default(), prices.clone(), None, None).await;
    close_a_month_of(&run, &prices, 12).await;
    let store = run.platform_state.store.clone();
    let emails = capstan_api::accounts::emails(&store).await.unwrap();
    let (recording, sent) = recorder(stripe_server.base.clone()).await;
    let stripe = Stripe::new(config(&recording)).unwrap();

    for step in ["stripe.item.sent", "stripe.invoice.sent"] {
        failpoint::arm(step);
        let (stripe, pool, emails) = (stripe.clone(), store.pool().clone(), emails.clone());
        let stopped =
            tokio::spawn(async move { stripe.sync_open_invoices(&pool, &emails).await }).await;
        assert!(
            stopped.is_err_and(|e| e.is_panic()),
            "the sync stops at {step}"
        );
    }
    let report = stripe
        .sync_open_invoices(store.pool(), &emails)
        .await
        .unwrap();
    assert_eq!((report.synced, report.failed), (1, 0));

    let sent = sent.lock().unwrap().clone();
    for path in ["/v1/invoiceitems", "/v1/invoices"] {
        let keys: Vec<&str> = sent
            .iter()
            .filter(|r| r.method == "POST" && r.path == path)
            .map(|r| r.idempotency_key.as_deref().unwrap_or_default())
            .collect();
        assert_eq!(keys.len(), 2, "sent again after the stop: {sent:?}");
        assert!(
            !keys[0].is_empty() && keys[0] == keys[1],
            "{path} repeated under its first key: {keys:?}"
        );
    }
    let invoice_id = run.api(Method::GET, "/v2/invoices", None).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for table in ["stripe_invoice_items", "stripe_invoices"] {
        assert_eq!(
            run.count(
                &format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table} WHERE invoice_id = $1"),
                &invoice_id
            )
            .await,
            1,
            "{table}"
        );
    }
    let (stripe_invoice,): (String,) =
        sqlx::query_as("SELECT stripe_invoice_id FROM stripe_invoices WHERE invoice_id = $1")
            .bind(&invoice_id)
            .fetch_one(store.pool())
            .await
            .unwrap();
    let at_stripe = stripe_server
        .call(Method::GET, &format!("/v1/invoices/{stripe_invoice}"), &[])
        .await;
    assert_eq!(
        at_stripe["total"], 12,
        "one item of 12¢ at Stripe: {at_stripe}"
    );
    drop(stripe_server.child);
}
