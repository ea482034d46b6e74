//! Closing a month for many accounts, on SQLite and on PostgreSQL.
//!
//! `cargo bench -p capstan --bench close_month [-- ACCOUNTS]` (default 100,000): every account has
//! one cluster with a month of usage (produced, consumed and a storage sample each day). Reports
//! the time to create and finalize every invoice, and — as the baseline measured in the same run
//! on the same database — the time to merely read all of the month's usage once.

use std::time::Instant;

use capstan::platform::ControlPlaneCustomers;
use capstan_api::store::Store;
use capstan_billing::{invoices, ledger::Month, pricing::PriceList};
use sqlx::Connection;

const BATCH: usize = 500;

async fn seed(store: &Store, accounts: usize, month: Month) {
    let pool = store.pool();
    let started = Instant::now();
    for chunk_start in (0..accounts).step_by(BATCH) {
        let chunk = chunk_start..(chunk_start + BATCH).min(accounts);
        let mut tx = pool.begin().await.expect("tx");
        let values =
            |f: &dyn Fn(usize) -> String| chunk.clone().map(f).collect::<Vec<_>>().join(",");
        let created = month.start() - 86_400;
        sqlx::query(&format!(
            "INSERT INTO accounts (id, email, password_hash, created_at) VALUES {}",
            values(&|i| format!("('a{i}', 'user{i}@example.com', 'x', {created})"))
        ))
        .execute(&mut *tx)
        .await
        .expect("accounts");
        sqlx::query(&format!(
            "INSERT INTO clusters (id, account_id, name, slug, region, multizone, plan, state, tcp_endpoint, created_at) VALUES {}",
            values(&|i| format!("('c{i}', 'a{i}', 'cluster', 's{i}', 'eu-west-1', {}, 'payg', 'active', '127.0.0.1:1', {created})", i % 2))
        ))
        .execute(&mut *tx)
        .await
        .expect("clusters");
        // One usage row a day: messages and a storage sample.
        let rows: Vec<String> = chunk
            .clone()
            .flat_map(|i| {
                (0..month.days()).map(move |d| {
                    let hour = month.start() + d * 86_400 + 3600 * (i as i64 % 24);
                    format!(
                        "('c{i}', 't', {hour}, {}, {}, {}, 1)",
                        1000 + i,
                        500 + d,
                        (1i64 << 20) * (i as i64 % 100)
                    )
                })
            })
            .collect();
        for rows in rows.chunks(2000) {
            sqlx::query(&format!(
                "INSERT INTO usage_hourly (cluster_id, topic, hour, produced, consumed, storage_sum, storage_samples) VALUES {}",
                rows.join(",")
            ))
            .execute(&mut *tx)
            .await
            .expect("usage");
        }
        tx.commit().await.expect("commit");
    }
    eprintln!(
        "  seeded {accounts} accounts in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

async fn run(label: &str, url: &str, accounts: usize) {
    let store = Store::connect(url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let month = Month::parse("2026-10").expect("month");
    eprintln!("{label}: seeding…");
    seed(&store, accounts, month).await;

    let started = Instant::now();
    let (rows,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM usage_hourly WHERE hour >= $1 AND hour < $2")
            .bind(month.start())
            .bind(month.end())
            .fetch_one(store.pool())
            .await
            .expect("count");
    let all: Vec<(String, i64, i64, i64)> =
        sqlx::query_as("SELECT cluster_id, produced, consumed, storage_sum FROM usage_hourly WHERE hour >= $1 AND hour < $2")
            .bind(month.start())
            .bind(month.end())
            .fetch_all(store.pool())
            .await
            .expect("read");
    assert_eq!(all.len() as i64, rows);
    let baseline = started.elapsed();

    let customers = ControlPlaneCustomers::new(store.clone());
    let close_once = || async {
        let started = Instant::now();
        let report = invoices::close_month(
            store.pool(),
            &PriceList::default(),
            &customers,
            month,
            month.end() + 60,
        )
        .await
        .expect("close");
        (report, started.elapsed())
    };
    let (report, close) = close_once().await;
    assert_eq!(report.created, accounts);
    let (second, rerun) = close_once().await;
    assert_eq!(second.created, 0);
    println!(
        "| {label} | {accounts} | {rows} | {:.2} s | {:.1} s | {:.0} | {:.1} s | {:.0}× |",
        baseline.as_secs_f64(),
        close.as_secs_f64(),
        accounts as f64 / close.as_secs_f64(),
        rerun.as_secs_f64(),
        close.as_secs_f64() / baseline.as_secs_f64()
    );
    store.close().await;
}

#[tokio::main]
async fn main() {
    let accounts: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    println!(
        "| store | accounts | usage rows | baseline: read the month's usage | close the month | invoices/s | re-run (nothing to do) | close / baseline |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let dir = tempfile::tempdir().expect("temp dir");
    run(
        "SQLite",
        &format!("sqlite://{}", dir.path().join("bench.db").display()),
        accounts,
    )
    .await;
    let admin = std::env::var("CAPSTAN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    let name = format!("capstan_bench_{}", std::process::id());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let url = format!("{}/{name}", admin.rsplit_once('/').expect("path").0);
    run("PostgreSQL", &url, accounts).await;
    sqlx::query(&format!("DROP DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("drop database");
}
