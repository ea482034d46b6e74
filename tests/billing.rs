//! Billing end to end: budgets and caps enforced on real REST traffic, invoices closed from real
//! metered usage, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod support;

use capstan::platform::ControlPlaneCustomers;
use capstan_api::{plans::Plan, state::PlatformConfig};
use capstan_billing::{invoices, ledger::Month, metering::unix_now, pricing::PriceList};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Running, produce_rest, start_configured, start_with};

/// A cent a message, so a few messages make visible amounts.
fn cent_a_message() -> PriceList {
    PriceList {
        single_zone_message_micros: 10_000,
        ..Default::default()
    }
}

/// Whether the cluster is rate-limited: a limited cluster may still move 10 messages a second,
/// so a request of 50 passes and puts it 4 s in debt, and the next is refused.
async fn limited(run: &Running, cluster: &Value) -> bool {
    produce_rest(run, cluster, 50).await == StatusCode::TOO_MANY_REQUESTS
        || produce_rest(run, cluster, 1).await == StatusCode::TOO_MANY_REQUESTS
}

/// The per-cluster rate-limit series and the count of limited clusters, from `/metrics`.
async fn rate_limit_metrics(run: &Running) -> (Vec<String>, i64) {
    let scraped = run.metrics_text().await;
    let series = scraped
        .lines()
        .filter(|line| line.starts_with("capstan_cluster_rate_limited{"))
        .map(str::to_owned)
        .collect();
    let count = scraped
        .lines()
        .find_map(|line| line.strip_prefix("capstan_rate_limited_clusters "))
        .map(|n| n.parse().unwrap())
        .unwrap();
    (series, count)
}

/// Sets a cluster's budget through the API (whole dollars).
async fn set_budget(run: &Running, cluster_id: &str, dollars: i64) {
    assert_eq!(
        run.api(
            Method::PATCH,
            &format!("/v2/kafka/update-budget/{cluster_id}"),
            Some(json!({ "budget": dollars }))
        )
        .await,
        json!("OK")
    );
}

/// Asks for a budget of `dollars` that must be refused (409); answers why.
async fn refused_budget(run: &Running, cluster_id: &str, dollars: i64) -> String {
    let response = run
        .http
        .patch(format!("{}/v2/kafka/update-budget/{cluster_id}", run.api))
        .basic_auth(&run.auth.0, Some(&run.auth.1))
        .json(&json!({ "budget": dollars }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let refused: Value = response.json().await.unwrap();
    refused["error"].as_str().unwrap().to_owned()
}

/// A webhook receiver on loopback that keeps what it is sent.
async fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = received.clone();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// What the receiver has got once it has `count` notifications (they are sent in the
/// background of the evaluation that stored them), failing after 10 s.
async fn received(notified: &std::sync::Mutex<Vec<Value>>, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = notified.lock().unwrap().clone();
        if now.len() >= count || std::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn the_cap_rate_limits_instead_of_over_billing_and_a_higher_budget_lifts_it(postgres: bool) {
    let (notify_url, notified) = receiver().await;
    let run = start_configured(
        postgres,
        PlatformConfig::default(),
        cent_a_message(),
        None,
        Some(notify_url),
    )
    .await;
    let cluster = run.cluster("capped", &[("t", 1)]).await;
    let id = cluster["cluster_id"].as_str().unwrap();
    for (budget, expected) in [
        (json!(-1), 400),
        (json!("ten"), 400),
        (json!(2_000_000_000), 400),
    ] {
        let response = run
            .http
            .patch(format!("{}/v2/kafka/update-budget/{id}", run.api))
            .basic_auth(&run.auth.0, Some(&run.auth.1))
            .json(&json!({ "budget": budget }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "budget {budget}");
    }
    set_budget(&run, id, 1).await;
    assert_eq!(
        run.api(Method::GET, &format!("/v2/kafka/cluster/{id}"), None)
            .await["budget"],
        1
    );

    // 80 messages = $0.80 of a $1 budget: warned at 70%, not limited.
    assert_eq!(produce_rest(&run, &cluster, 80).await, StatusCode::OK);
    run.sweep_and_enforce().await;
    let cost = run.cost(&cluster).await;
    assert_eq!(cost["month_to_date_cents"], 80);
    assert_eq!(cost["cap_cents"], 100);
    assert_eq!(cost["notifications"], json!([70]));
    {
        let notified = received(&notified, 1).await;
        assert_eq!(notified.len(), 1, "{notified:?}");
        assert_eq!(notified[0]["threshold_percent"], 70);
        assert_eq!(notified[0]["cluster_id"], cluster["cluster_id"]);
        assert_eq!(notified[0]["cap_cents"], 100);
    }
    let account = run.api(Method::GET, "/v2/cost", None).await;
    assert_eq!(account["month_to_date_cents"], 80);
    assert_eq!(account["clusters"][0]["cluster_id"], cluster["cluster_id"]);
    assert!(!limited(&run, &cluster).await);

    // Past the budget: the month costs exactly the cap, and data requests get 429.
    assert_eq!(produce_rest(&run, &cluster, 50).await, StatusCode::OK);
    run.sweep_and_enforce().await;
    let cost = run.cost(&cluster).await;
    assert_eq!(
        cost["month_to_date_cents"], 100,
        "never above the cap: {cost}"
    );
    assert_eq!(cost["notifications"], json!([70, 90, 100]));
    let mut thresholds: Vec<i64> = received(&notified, 3)
        .await
        .iter()
        .map(|n| n["threshold_percent"].as_i64().unwrap())
        .collect();
    // Sent concurrently, so they may arrive in any order.
    thresholds.sort();
    assert_eq!(thresholds, vec![70, 90, 100], "each threshold is sent once");
    assert_eq!(
        cost["lines"].as_array().unwrap().last().unwrap()["kind"],
        "cap_adjustment"
    );
    assert!(
        limited(&run, &cluster).await,
        "the cluster is rate-limited at its cap"
    );
    assert_eq!(
        rate_limit_metrics(&run).await,
        (
            vec![format!(
                "capstan_cluster_rate_limited{{cluster=\"{id}\"}} 1"
            )],
            1
        ),
        "the metrics name the limited cluster"
    );
    let stats = run
        .api(Method::GET, &format!("/v2/kafka/stats/cluster/{id}"), None)
        .await;
    assert_eq!(stats["total_monthly_billing"], json!(1.0));

    // Raising the budget lifts the limit at once; no data was deleted.
    run.set_budget(&cluster, 50).await;
    assert!(!limited(&run, &cluster).await);
    run.sweep_and_enforce().await;
    assert_eq!(
        rate_limit_metrics(&run).await,
        (Vec::new(), 0),
        "the cluster's series goes with its limit"
    );
    run.sweep().await;
    let totals = run.totals(&cluster).await;
    assert!(totals["t"].0 >= 130, "{totals:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_below_the_month_so_far_is_refused_and_a_change_rearms_the_notifications() {
    let run = start_configured(
        false,
        PlatformConfig::default(),
        cent_a_message(),
        None,
        None,
    )
    .await;
    let cluster = run.cluster("budgeted", &[("t", 1)]).await;
    let id = cluster["cluster_id"].as_str().unwrap();
    run.set_budget(&cluster, 100).await;
    // 250 messages at 1¢: the month has cost $2.50.
    assert_eq!(produce_rest(&run, &cluster, 250).await, StatusCode::OK);
    run.sweep_and_enforce().await;
    let refused = refused_budget(&run, id, 2).await;
    assert!(
        refused.contains("cost $2.50 so far: set a budget of at least $3"),
        "{refused}"
    );
    assert_eq!(run.cost(&cluster).await["budget_dollars"], 100, "unchanged");

    // $3: allowed; $2.50 is 83% of it, so the 70% notification is sent.
    run.set_budget(&cluster, 3).await;
    run.sweep_and_enforce().await;
    assert_eq!(run.cost(&cluster).await["notifications"], json!([70]));
    // A new budget re-arms them: at $4 the month is at 62%, nothing to notify yet; back at $3
    // the 70% notification is due again.
    run.set_budget(&cluster, 4).await;
    assert_eq!(run.cost(&cluster).await["notifications"], json!([]));
    run.sweep_and_enforce().await;
    assert_eq!(run.cost(&cluster).await["notifications"], json!([]));
    run.set_budget(&cluster, 3).await;
    run.sweep_and_enforce().await;
    assert_eq!(run.cost(&cluster).await["notifications"], json!([70]));

    let changes = run
        .count(
            "SELECT COUNT(*) FROM budget_changes WHERE cluster_id = $1",
            id,
        )
        .await;
    assert_eq!(
        changes, 4,
        "every accepted change is recorded with its time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_is_enforced_on_sqlite() {
    the_cap_rate_limits_instead_of_over_billing_and_a_higher_budget_lifts_it(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_is_enforced_on_postgres() {
    the_cap_rate_limits_instead_of_over_billing_and_a_higher_budget_lifts_it(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_cluster_is_limited_for_the_rest_of_the_day_once_its_messages_are_used() {
    let platform = PlatformConfig {
        default_plan: Plan::Free,
        ..Default::default()
    };
    let prices = PriceList {
        free_daily_messages: 30,
        ..Default::default()
    };
    let run = start_with(false, platform, prices).await;
    let cluster = run.cluster("free", &[("t", 1)]).await;
    assert_eq!(produce_rest(&run, &cluster, 20).await, StatusCode::OK);
    run.sweep_and_enforce().await;
    assert!(!limited(&run, &cluster).await);
    assert_eq!(produce_rest(&run, &cluster, 20).await, StatusCode::OK);
    run.sweep_and_enforce().await;
    assert!(limited(&run, &cluster).await);
    let cost = run.cost(&cluster).await;
    assert_eq!(
        cost["month_to_date_cents"], 0,
        "free clusters are never charged"
    );
}

/// `capstan invoices verify` of `month` on the run's store at a cent a message: whether it
/// passed, and what it printed.
async fn verify_cli(run: &Running, month: Month) -> (bool, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["invoices", "verify", "--month", &month.label()])
        .args(["--database-url", &run.database_url])
        .args(["--price-message-single-zone-micros", "10000"])
        .output()
        .await
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

async fn closing_a_month_makes_one_complete_invoice_however_often_it_runs(postgres: bool) {
    let run = start_with(postgres, PlatformConfig::default(), cent_a_message()).await;
    let first = run.cluster("first", &[("t", 1)]).await;
    let second = run.cluster("second", &[("t", 1)]).await;
    // Another account whose one cluster moved nothing this month.
    let idle = run.as_account(run.account("idle@example.com").await);
    idle.cluster("idle", &[]).await;
    assert_eq!(produce_rest(&run, &first, 12).await, StatusCode::OK);
    assert_eq!(produce_rest(&run, &second, 7).await, StatusCode::OK);
    let fetched = run
        .rest(
            &second,
            Method::POST,
            "/fetch",
            r#"{"topic":"t","partition":0,"offset":0}"#,
            &[],
        )
        .await;
    assert_eq!(fetched.as_array().unwrap().len(), 7);
    run.sweep().await;

    // Close this month as if it had just ended; stop the first attempts dead at each step of
    // the close (as a crash would): after the month is closed to usage, inside a batch's
    // transaction, and after a batch committed.
    let month = Month::of(unix_now());
    let after = month.end() + 60;
    let store = run.platform_state.store.clone();
    for step in [
        "close.after_usage_closed",
        "close.batch.before_lines",
        "close.batch.committed",
    ] {
        capstan_api::failpoint::arm(step);
        let (store, prices) = (store.clone(), cent_a_message());
        let stopped = tokio::spawn(async move {
            let customers = ControlPlaneCustomers::new(store.clone());
            invoices::close_month(store.pool(), &prices, &customers, month, after).await
        })
        .await;
        assert!(stopped.is_err_and(|e| e.is_panic()), "stopped at {step}");
    }
    let customers = ControlPlaneCustomers::new(store.clone());
    invoices::close_month(store.pool(), &cent_a_message(), &customers, month, after)
        .await
        .unwrap();
    let again = invoices::close_month(store.pool(), &cent_a_message(), &customers, month, after)
        .await
        .unwrap();
    assert_eq!(
        (again.created, again.existing, again.finalized),
        (0, 2, 0),
        "a second run changes nothing"
    );
    let nothing_due = &idle.api(Method::GET, "/v2/invoices", None).await[0];
    assert_eq!(
        (&nothing_due["state"], &nothing_due["total_cents"]),
        (&json!("paid"), &json!(0)),
        "a $0 invoice is settled at once: {nothing_due}"
    );
    let early = invoices::close_month(
        store.pool(),
        &cent_a_message(),
        &customers,
        month.next(),
        after,
    )
    .await;
    assert!(
        early.is_err(),
        "a month that has not ended cannot be closed"
    );

    let list = run.api(Method::GET, "/v2/invoices", None).await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "one invoice per account and month: {list}"
    );
    let invoice = &list[0];
    assert_eq!(invoice["state"], "open");
    assert_eq!(invoice["month"], month.label());
    assert!(invoice["number"].as_i64().unwrap() >= 1);
    let lines = invoice["lines"].as_array().unwrap();
    assert_eq!(
        lines.len(),
        6,
        "produced, consumed and storage for each of the two clusters: {invoice}"
    );
    let cents = |cluster: &Value, kind: &str| {
        lines
            .iter()
            .find(|l| l["cluster_id"] == cluster["cluster_id"] && l["kind"] == kind)
            .map(|l| l["cents"].as_i64().unwrap())
            .unwrap()
    };
    assert_eq!(
        (
            cents(&first, "produced"),
            cents(&second, "produced"),
            cents(&second, "consumed")
        ),
        (12, 7, 7)
    );
    assert_eq!(
        invoice["total_cents"],
        lines
            .iter()
            .map(|l| l["cents"].as_i64().unwrap())
            .sum::<i64>()
    );
    let id = invoice["id"].as_str().unwrap();
    assert_eq!(
        &run.api(Method::GET, &format!("/v2/invoices/{id}"), None)
            .await,
        invoice
    );
    let csv = run.api_text(&format!("/v2/invoices/{id}/csv")).await;
    assert!(csv.starts_with("invoice,month,line,"), "{csv}");
    assert_eq!(csv.lines().count(), 7);
    assert!(csv.contains(",produced,12,0.12,120000"), "{csv}");
    let usage = run.api_text(&format!("/v2/invoices/{id}/usage.csv")).await;
    assert!(
        usage.starts_with("cluster_id,topic,hour_utc,produced,consumed,average_stored_bytes\n"),
        "{usage}"
    );
    let produced: i64 = usage
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(
        produced, 19,
        "the usage behind the invoice adds up to its produced lines"
    );

    // The close is audited from the usage rows: clean, then a usage row and an invoice total
    // changed behind its back are each found and named.
    let (clean, report) = verify_cli(&run, month).await;
    assert!(clean, "{report}");
    assert!(
        report.contains("2 invoices checked, 0 differences"),
        "{report}"
    );
    let first_id = first["cluster_id"].as_str().unwrap();
    let tamper_usage = "UPDATE usage_hourly SET produced = produced + 1 WHERE cluster_id = $1 AND hour = (SELECT MIN(hour) FROM usage_hourly WHERE cluster_id = $1 AND produced > 0)";
    let changed = sqlx::query(tamper_usage)
        .bind(first_id)
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 1);
    let (clean, report) = verify_cli(&run, month).await;
    assert!(!clean, "a changed usage row fails the audit: {report}");
    assert!(
        report.contains(&format!(
            "cluster {first_id} produced quantity 12, 120000 µ$ = 12 ¢; its usage gives cluster {first_id} produced quantity 13"
        )),
        "{report}"
    );
    assert!(report.contains("1 differences"), "{report}");
    sqlx::query(&tamper_usage.replace("produced + 1", "produced - 1"))
        .bind(first_id)
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE invoices SET total_cents = total_cents + 1 WHERE id = $1")
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();
    let (clean, report) = verify_cli(&run, month).await;
    assert!(!clean, "a changed total fails the audit: {report}");
    assert!(
        report.contains("total is 27 ¢ but its lines add up to 26 ¢"),
        "{report}"
    );
    sqlx::query("UPDATE invoices SET total_cents = total_cents - 1 WHERE id = $1")
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();
    let (clean, report) = verify_cli(&run, month).await;
    assert!(clean, "restored, the month is clean again: {report}");

    // An operator voids the open invoice; a paid or void one cannot be.
    let refused = invoices::void(store.pool(), nothing_due["id"].as_str().unwrap())
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("this one is paid"),
        "{refused}"
    );
    invoices::void(store.pool(), id).await.unwrap();
    assert_eq!(
        run.api(Method::GET, "/v2/invoices", None).await[0]["state"],
        "void"
    );
    let again = invoices::void(store.pool(), id).await.unwrap_err();
    assert!(again.to_string().contains("this one is void"), "{again}");
}

/// A month closed late is invoiced at the budget in force at its end, not at one set since.
async fn a_month_is_capped_by_the_budget_in_force_at_its_end(postgres: bool) {
    let run = start_with(postgres, PlatformConfig::default(), cent_a_message()).await;
    let cluster = run.cluster("late", &[("t", 1)]).await;
    let id = cluster["cluster_id"].as_str().unwrap();
    set_budget(&run, id, 1).await;
    // $1.50 of messages in one request, before the cap is evaluated: the month is over its $1.
    assert_eq!(produce_rest(&run, &cluster, 150).await, StatusCode::OK);
    run.sweep().await;
    // The budget raised to $5 ten seconds after the month ended, before it was closed.
    let month = Month::of(unix_now());
    let store = run.platform_state.store.clone();
    sqlx::query("UPDATE clusters SET budget_dollars = 5 WHERE id = $1")
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO budget_changes (cluster_id, budget_dollars, changed_at) VALUES ($1, 5, $2)",
    )
    .bind(id)
    .bind(month.end() + 10)
    .execute(store.pool())
    .await
    .unwrap();
    run.close_this_month(&cent_a_message()).await;
    let invoice = run.api(Method::GET, "/v2/invoices", None).await[0].clone();
    assert_eq!(
        invoice["total_cents"], 100,
        "the $1 in force at the end: {invoice}"
    );
    let adjustment = invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "cap_adjustment")
        .unwrap_or_else(|| panic!("a cap adjustment line: {invoice}"));
    assert_eq!(adjustment["cents"], -50);
    let (clean, report) = verify_cli(&run, month).await;
    assert!(clean, "the audit uses the same budget: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_is_capped_by_the_budget_in_force_at_its_end_on_sqlite() {
    a_month_is_capped_by_the_budget_in_force_at_its_end(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_is_capped_by_the_budget_in_force_at_its_end_on_postgres() {
    a_month_is_capped_by_the_budget_in_force_at_its_end(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_sent_to_stripe_is_voided_there_and_the_webhook_brings_it_here() {
    let run = start_with(false, PlatformConfig::default(), cent_a_message()).await;
    let cluster = run.cluster("voided", &[("t", 1)]).await;
    assert_eq!(produce_rest(&run, &cluster, 5).await, StatusCode::OK);
    run.sweep().await;
    run.close_this_month(&cent_a_message()).await;
    let store = run.platform_state.store.clone();
    let invoice = run.api(Method::GET, "/v2/invoices", None).await[0].clone();
    let id = invoice["id"].as_str().unwrap();
    assert_eq!(invoice["state"], "open");
    // As the Stripe sync records it once Stripe has the invoice.
    sqlx::query(
        "INSERT INTO stripe_invoices (invoice_id, stripe_invoice_id) VALUES ($1, 'in_test')",
    )
    .bind(id)
    .execute(store.pool())
    .await
    .unwrap();
    let refused = invoices::void(store.pool(), id).await.unwrap_err();
    assert!(refused.to_string().contains("void it there"), "{refused}");

    let secret = "whsec_test";
    let stripe = capstan_billing::stripe::Stripe::new(capstan_billing::stripe::StripeConfig {
        api_base: "http://127.0.0.1:9".into(),
        secret_key: "sk_test".into(),
        webhook_secret: secret.into(),
        stand_in: true,
    })
    .unwrap();
    let payload =
        json!({ "type": "invoice.voided", "data": { "object": { "id": "in_test" } } }).to_string();
    stripe
        .handle_webhook(
            store.pool(),
            payload.as_bytes(),
            &support::stripe_signature(secret, &payload),
            unix_now(),
        )
        .await
        .unwrap();
    assert_eq!(
        run.api(Method::GET, "/v2/invoices", None).await[0]["state"],
        "void"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_month_is_idempotent_on_sqlite() {
    closing_a_month_makes_one_complete_invoice_however_often_it_runs(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_month_is_idempotent_on_postgres() {
    closing_a_month_makes_one_complete_invoice_however_often_it_runs(true).await;
}

/// Sum of `column` over the cluster's usage rows in `[from, to)`.
async fn usage_between(run: &Running, id: &str, column: &str, from: i64, to: i64) -> i64 {
    run.count(
        &format!(
            "SELECT CAST(COALESCE(SUM({column}), 0) AS BIGINT) FROM usage_hourly \
             WHERE cluster_id = $1 AND hour >= {from} AND hour < {to}"
        ),
        id,
    )
    .await
}

/// A month is closed only once every live cluster has been metered through its end; what a
/// sweep catches up after an outage is spread over the hours it covers, across the month's
/// end; and once the month is closed nothing lands in it (late deliveries count in the next
/// month, a stale sweep is dropped), so its invoice and its usage agree for good. Times around
/// the end of this month are given to the collector and the close as they would be then.
async fn a_month_closes_once_metered_through_its_end_and_never_changes_after(postgres: bool) {
    const HOUR: i64 = 3600;
    let run = start_with(postgres, PlatformConfig::default(), cent_a_message()).await;
    let cluster = run.cluster("late", &[("t", 1)]).await;
    let id = cluster["cluster_id"].as_str().unwrap().to_owned();
    let month = Month::of(unix_now());
    let end = month.end();
    let store = run.platform_state.store.clone();
    let customers = ControlPlaneCustomers::new(store.clone());

    // The last sweep before an outage, three hours before the month ends: 6 messages.
    assert_eq!(produce_rest(&run, &cluster, 6).await, StatusCode::OK);
    let report = run.collector.sweep(end - 3 * HOUR).await.unwrap();
    assert_eq!(report.swept, 1, "{report:?}");
    // Its brokers unreachable until three hours into the next month: the month waits.
    let waiting = invoices::readiness(store.pool(), &customers, month, end + 60)
        .await
        .unwrap();
    assert_eq!(waiting.behind, std::slice::from_ref(&id));
    assert!(!waiting.may_close());
    assert!(
        invoices::readiness(
            store.pool(),
            &customers,
            month,
            end + invoices::LATE_METERING_WAIT
        )
        .await
        .unwrap()
        .may_close(),
        "past the wait, the month closes without it"
    );

    // 12 more messages, caught up by the first sweep after the outage: six hours covered, 2
    // messages each, three of them in this month.
    assert_eq!(produce_rest(&run, &cluster, 12).await, StatusCode::OK);
    run.collector.sweep(end + 3 * HOUR).await.unwrap();
    for hour in (end - 3 * HOUR..end + 3 * HOUR).step_by(HOUR as usize) {
        let expected = if hour == end - 3 * HOUR { 6 + 2 } else { 2 };
        assert_eq!(
            usage_between(&run, &id, "produced", hour, hour + HOUR).await,
            expected,
            "hour {} of the catch-up",
            (hour - end) / HOUR
        );
    }
    let ready = invoices::readiness(store.pool(), &customers, month, end + 3 * HOUR)
        .await
        .unwrap();
    assert!(ready.behind.is_empty() && ready.may_close(), "{ready:?}");
    invoices::close_month(
        store.pool(),
        &cent_a_message(),
        &customers,
        month,
        end + 3 * HOUR,
    )
    .await
    .unwrap();

    // After the close: records the gateway delivered in the month's last second, written late,
    // and a sweep that read before the last one stored (another replica's) change nothing in it.
    run.deliveries.add(&id, "t", 5, end - 1);
    run.deliveries.flush().await.unwrap();
    assert_eq!(
        usage_between(&run, &id, "consumed", end, end + HOUR).await,
        5,
        "late deliveries count in the next month's first hour"
    );
    let target = capstan::platform::ControlPlaneFleet::new(run.platform_state.clone());
    let target = capstan_billing::Fleet::cluster(&target, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(produce_rest(&run, &cluster, 3).await, StatusCode::OK);
    let stale = capstan_kafka::read_offsets(&target.credentials, &target.prefix)
        .await
        .unwrap();
    run.collector
        .store(&id, &stale, &Default::default(), end - 10)
        .await
        .unwrap();
    assert_eq!(
        usage_between(&run, &id, "produced", month.start(), end).await,
        12,
        "the month is what it was at its close"
    );
    assert_eq!(
        usage_between(&run, &id, "consumed", month.start(), end).await,
        0
    );
    let invoice = run.api(Method::GET, "/v2/invoices", None).await[0].clone();
    assert_eq!(
        invoice["total_cents"], 12,
        "12 messages at a cent: {invoice}"
    );
    let (clean, report) = verify_cli(&run, month).await;
    assert!(clean, "the invoice still matches the usage: {report}");
    // The next sweep counts the 3 messages once, after the close.
    run.collector.sweep(end + 4 * HOUR).await.unwrap();
    assert_eq!(
        usage_between(&run, &id, "produced", end, end + 5 * HOUR).await,
        6 + 3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_closes_once_metered_through_its_end_on_sqlite() {
    a_month_closes_once_metered_through_its_end_and_never_changes_after(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_closes_once_metered_through_its_end_on_postgres() {
    a_month_closes_once_metered_through_its_end_and_never_changes_after(true).await;
}

/// Commits `offset` for partition 0 of `topic` in `group` (no member: the group is empty), as a
/// user rewinding a consumer group does.
async fn rewind_group(cluster: &Value, topic: &str, group: &str, offset: i64) {
    use rdkafka::{
        Offset, TopicPartitionList,
        consumer::{BaseConsumer, CommitMode, Consumer},
    };
    let config = support::tcp(cluster);
    let (topic, group) = (topic.to_owned(), group.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.clone().set("group.id", &group).create().unwrap();
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(&topic, 0, Offset::Offset(offset))
            .unwrap();
        consumer.commit(&offsets, CommitMode::Sync).unwrap();
    })
    .await
    .unwrap();
}

/// One account's month at the **default price list** ($0.20 per 100K messages single-zone,
/// $0.60 multi-zone, $0.25 per GB-month, each line rounded once, half-up, to cents), through
/// real clients, the real gateway and brokers, the collector and the close, with the cents
/// computed by hand:
///
/// - `single` (single-zone): 148,999 + 1,000 produced = 149,999 × 2 µ$ = 299,998 µ$ → 30¢
///   (never billed per started 100K); a group reads `events` (1,000), is rewound to 400 and
///   reads again (600): 1,600 consumed × 2 µ$ = 3,200 µ$ → 0¢.
/// - `multi` (multi-zone): 170,000 + 2,500 in a topic deleted right after (metered before the
///   delete) = 172,500 × 6 µ$ = 1,035,000 µ$ → 103.5¢ → 104¢ (half-up). A budget of $1 is then
///   refused (below the month so far), $2 accepted; the month stays under it: 104¢.
/// - `capped` (multi-zone, budget $1 from the start): 170,000 × 6 µ$ = 1,020,000 µ$ → 102¢,
///   over its cap mid-month: rate-limited (the 50-message allowance it may still move makes
///   1,020,300 µ$, still 102¢), and a cap adjustment of −2¢ makes it exactly 100¢.
/// - Storage: a few MB for an hour or two, well under a cent, on every cluster: 0¢.
///
/// Invoice: 30 + 0 + 104 + 102 − 2 = 234¢, and `capstan invoices verify` agrees.
async fn a_month_at_the_default_prices_is_invoiced_to_the_cent(postgres: bool) {
    const HOUR: i64 = 3600;
    let now = unix_now();
    if Month::of(now).end() - now < 600 {
        // Deliveries and real-time sweeps land in the wall clock's hour: the whole run must
        // fall in one month, so a run that starts in a month's last ten minutes waits for the
        // next month first (a precondition on the wall clock, not a race).
        let wait = Month::of(now).end() - now + 1;
        tokio::time::sleep(std::time::Duration::from_secs(wait.unsigned_abs())).await;
    }
    let run = start_with(postgres, PlatformConfig::default(), PriceList::default()).await;
    let month = Month::of(unix_now());
    let single = run.cluster("single", &[("orders", 1), ("events", 1)]).await;
    let multi = run
        .api(
            Method::POST,
            "/v2/kafka/cluster",
            Some(json!({ "name": "multi", "region": "eu-west-1", "multizone": true })),
        )
        .await;
    let capped = run
        .api(
            Method::POST,
            "/v2/kafka/cluster",
            Some(json!({ "name": "capped", "region": "eu-west-1", "multizone": true })),
        )
        .await;
    run.topic(&multi, "t", 1).await;
    let gone = run.topic(&multi, "gone", 1).await;
    run.topic(&capped, "t", 1).await;
    run.set_budget(&capped, 1).await;

    support::produce_tcp(&single, "orders", 148_999, 8).await;
    support::produce_tcp(&single, "events", 1_000, 8).await;
    support::consume_tcp(&single, "events", "readers", 1_000).await;
    rewind_group(&single, "events", "readers", 400).await;
    support::consume_tcp(&single, "events", "readers", 600).await;
    support::produce_tcp(&multi, "t", 170_000, 8).await;
    support::produce_tcp(&multi, "gone", 2_500, 8).await;
    run.api(
        Method::DELETE,
        &format!("/v2/kafka/topic/{}", gone["topic_id"].as_str().unwrap()),
        None,
    )
    .await;
    support::produce_tcp(&capped, "t", 170_000, 8).await;
    run.sweep_and_enforce().await;

    // The month so far is 104¢ on `multi`: a $1 budget is refused, $2 accepted.
    let multi_id = multi["cluster_id"].as_str().unwrap();
    let refused = refused_budget(&run, multi_id, 1).await;
    assert!(
        refused.contains("cost $1.04 so far: set a budget of at least $2"),
        "{refused}"
    );
    run.set_budget(&multi, 2).await;
    // `capped` is rate-limited: a request of 50 may still pass (the allowance, in debt), and
    // then nothing does. What passed is billed (and still capped).
    let first = produce_rest(&run, &capped, 50).await;
    let allowed = if first == StatusCode::OK { 50 } else { 0 };
    assert!(
        first == StatusCode::TOO_MANY_REQUESTS
            || produce_rest(&run, &capped, 1).await == StatusCode::TOO_MANY_REQUESTS,
        "capped is over its $1"
    );
    run.sweep().await;
    assert_eq!(run.cost(&capped).await["month_to_date_cents"], 100);

    // The month ends; the close waits for the first sweep after midnight, then invoices.
    let customers = ControlPlaneCustomers::new(run.platform_state.store.clone());
    let pool = run.platform_state.store.pool();
    assert!(
        !invoices::readiness(pool, &customers, month, month.end() + 10)
            .await
            .unwrap()
            .may_close()
    );
    run.collector.sweep(month.end() + 30).await.unwrap();
    assert!(
        invoices::readiness(pool, &customers, month, month.end() + 40)
            .await
            .unwrap()
            .may_close()
    );
    invoices::close_month(
        pool,
        &PriceList::default(),
        &customers,
        month,
        month.end() + HOUR,
    )
    .await
    .unwrap();

    let invoice = run.api(Method::GET, "/v2/invoices", None).await[0].clone();
    let line = |cluster: &Value, kind: &str| {
        invoice["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["cluster_id"] == cluster["cluster_id"] && l["kind"] == kind)
            .map(|l| {
                (
                    l["quantity"].as_i64().unwrap(),
                    l["micros"].as_i64().unwrap(),
                    l["cents"].as_i64().unwrap(),
                )
            })
    };
    assert_eq!(line(&single, "produced"), Some((149_999, 299_998, 30)));
    assert_eq!(line(&single, "consumed"), Some((1_600, 3_200, 0)));
    assert_eq!(line(&multi, "produced"), Some((172_500, 1_035_000, 104)));
    assert_eq!(line(&multi, "consumed"), Some((0, 0, 0)));
    assert_eq!(line(&multi, "cap_adjustment"), None, "under its $2");
    // 170,050 (when the allowance passed) × 6 µ$ = 1,020,300 µ$: 102¢ either way.
    let capped_produced = 170_000 + allowed;
    assert_eq!(
        line(&capped, "produced"),
        Some((capped_produced, capped_produced * 6, 102))
    );
    assert_eq!(line(&capped, "cap_adjustment"), Some((0, -20_000, -2)));
    for cluster in [&single, &multi, &capped] {
        let (_, _, cents) = line(cluster, "storage").unwrap();
        assert_eq!(cents, 0, "a few MB for an hour or two: {invoice}");
    }
    assert_eq!(invoice["total_cents"], 234, "{invoice}");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["invoices", "verify", "--month", &month.label()])
        .args(["--database-url", &run.database_url])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "verify at the default prices: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_at_the_default_prices_is_invoiced_to_the_cent_on_sqlite() {
    a_month_at_the_default_prices_is_invoiced_to_the_cent(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_at_the_default_prices_is_invoiced_to_the_cent_on_postgres() {
    a_month_at_the_default_prices_is_invoiced_to_the_cent(true).await;
}
