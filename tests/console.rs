//! The web console over HTTP, as a browser without JavaScript uses it: forms with CSRF tokens,
//! the session cookie, invoices (which need a closed month, so they are tested here rather than
//! in the browser suite under tests/node), and one account never seeing another's pages.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod support;

use capstan_api::state::PlatformConfig;
use capstan_billing::{ledger::Month, metering::unix_now, pricing::PriceList};
use reqwest::{Method, StatusCode, header};
use support::{Running, produce_rest, start_with};

/// A browser: a cookie jar, no redirects followed, forms posted with this page's CSRF token.
struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    fn new(run: &Running) -> Self {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: run.api.clone(),
        }
    }

    /// A GET of `path`, answered as is (headers, redirects).
    async fn fetch(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self.fetch(path).await;
        (response.status(), response.text().await.unwrap())
    }

    /// The CSRF token in the forms of `path`.
    async fn token(&self, path: &str) -> String {
        let (_, page) = self.get(path).await;
        let start = page
            .find(r#"name="csrf" value=""#)
            .expect("a form with a CSRF token")
            + 19;
        page[start..start + page[start..].find('"').unwrap()].to_owned()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Posts `form` with the token of the page `from`.
    async fn submit(&self, from: &str, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let token = self.token(from).await;
        let mut fields = form.to_vec();
        fields.push(("csrf", &token));
        self.post(path, &fields).await
    }

    /// Submits the log-in form.
    async fn log_in(&self, email: &str, password: &str) -> reqwest::Response {
        self.submit(
            "/login",
            "/login",
            &[("email", email), ("password", password)],
        )
        .await
    }

    /// Logs in as the harness's own account (the one `Running::api` uses).
    async fn log_in_as_harness(&self) {
        let response = self.log_in("meter@example.com", "metering password").await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }

    async fn sign_up(&self, email: &str, password: &str) {
        let response = self
            .submit(
                "/signup",
                "/signup",
                &[("email", email), ("password", password)],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
}

fn cent_a_message() -> PriceList {
    PriceList {
        single_zone_message_micros: 10_000,
        ..Default::default()
    }
}

async fn invoices_are_shown_and_printable_to_their_account_only(postgres: bool) {
    let run = start_with(postgres, PlatformConfig::default(), cent_a_message()).await;
    let cluster = run.cluster("billed", &[("t", 1)]).await;
    assert_eq!(produce_rest(&run, &cluster, 12).await, StatusCode::OK);
    run.sweep().await;
    run.close_this_month(&cent_a_message()).await;
    let month = Month::of(unix_now());
    let invoice = run.api(Method::GET, "/v2/invoices", None).await[0].clone();
    let id = invoice["id"].as_str().unwrap();
    let number = invoice["number"].as_i64().unwrap();

    let owner = Browser::new(&run);
    owner.log_in_as_harness().await;
    let (status, list) = owner.get("/invoices").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        list.contains(&format!("#{number}")) && list.contains(&month.label()),
        "{list}"
    );
    assert!(list.contains("$0.12"), "12 messages at a cent: {list}");
    let (status, page) = owner.get(&format!("/invoices/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("12 messages produced") && page.contains("billed"),
        "{page}"
    );
    assert!(page.contains(r#"id="invoice-total">$0.12<"#), "{page}");
    let (status, print) = owner.get(&format!("/invoices/{id}/print")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(print.contains(&format!("Invoice #{number}")));

    let stranger = Browser::new(&run);
    stranger
        .sign_up("stranger@example.com", "a stranger's password")
        .await;
    let (_, list) = stranger.get("/invoices").await;
    assert!(list.contains("No invoices yet"), "{list}");
    let cluster_id = cluster["cluster_id"].as_str().unwrap();
    for path in [
        format!("/invoices/{id}"),
        format!("/invoices/{id}/print"),
        format!("/clusters/{cluster_id}"),
        format!("/clusters/{cluster_id}/usage"),
    ] {
        let (status, page) = stranger.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(!page.contains("billed"), "{path} leaks the cluster's name");
    }
}

#[tokio::test]
async fn invoices_on_sqlite() {
    invoices_are_shown_and_printable_to_their_account_only(false).await;
}

#[tokio::test]
async fn invoices_on_postgres() {
    invoices_are_shown_and_printable_to_their_account_only(true).await;
}

#[tokio::test]
async fn sessions_are_httponly_samesite_cookies_and_pages_are_protected() {
    let run = start_with(false, PlatformConfig::default(), PriceList::default()).await;
    let visitor = Browser::new(&run);
    let response = visitor.fetch("/clusters").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/login");

    let token = visitor.token("/signup").await;
    let response = visitor
        .post(
            "/signup",
            &[
                ("email", "cookie@example.com"),
                ("password", "cookie password"),
                ("csrf", &token),
            ],
        )
        .await;
    let cookies: Vec<&str> = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("capstan_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );

    let response = visitor.fetch("/clusters").await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "no-store",
        "pages show secrets"
    );
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    // Unknown paths: a page for browsers, the API's JSON error for API clients.
    let page = visitor
        .http
        .get(format!("{}/clustres", run.api))
        .header(header::ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("This page does not exist")
    );
    let json = visitor.fetch("/clustres").await;
    assert_eq!(json.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        json.json::<serde_json::Value>().await.unwrap()["status"],
        404
    );

    // Behind a TLS-terminating proxy the cookies are Secure.
    let response = visitor
        .http
        .post(format!("{}/login", run.api))
        .header("x-forwarded-proto", "https")
        .form(&[
            ("email", "cookie@example.com"),
            ("password", "cookie password"),
            ("csrf", &token),
        ])
        .send()
        .await
        .unwrap();
    let session = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(session.contains("Secure"), "{session}");
}

#[tokio::test]
async fn failed_log_ins_count_across_the_console_and_the_api() {
    let run = support::start(false).await;
    let guesser = Browser::new(&run);
    // Three wrong passwords in the console, two through the API: the account's five.
    for _ in 0..3 {
        let response = guesser.log_in("meter@example.com", "a wrong guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let api_log_in = |password: &'static str| {
        run.http
            .post(format!("{}/v2/auth/login", run.api))
            .json(&serde_json::json!({ "email": "meter@example.com", "password": password }))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(
            api_log_in("a wrong guess").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Now neither checks a password for this account: not even the right one.
    assert_eq!(
        api_log_in("metering password").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let response = guesser
        .log_in("meter@example.com", "metering password")
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Too many failed log-ins")
    );
}

#[tokio::test]
async fn forms_without_the_csrf_token_change_nothing() {
    let run = start_with(false, PlatformConfig::default(), PriceList::default()).await;
    let owner = Browser::new(&run);
    owner.log_in_as_harness().await;
    let cluster = run.cluster("kept", &[("t", 1)]).await;
    let id = cluster["cluster_id"].as_str().unwrap();
    for (path, form) in [
        (
            "/clusters".to_owned(),
            vec![
                ("name", "sneaky"),
                ("region", "eu-west-1"),
                ("zone", "single"),
            ],
        ),
        (format!("/clusters/{id}/delete"), vec![("confirm", "kept")]),
        (format!("/clusters/{id}/budget"), vec![("budget", "5")]),
        ("/api-keys".to_owned(), vec![("name", "sneaky")]),
    ] {
        let response = owner.post(&path, &form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        let mut forged = form.clone();
        forged.push(("csrf", "0000"));
        assert_eq!(
            owner.post(&path, &forged).await.status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let clusters = run.api(Method::GET, "/v2/kafka/clusters", None).await;
    assert_eq!(clusters.as_array().unwrap().len(), 1, "{clusters}");
    assert_eq!(clusters[0]["budget"], 0);
    // A form past the console's 64 KiB is refused before it is read, even with its token.
    let token = owner.token(&format!("/clusters/{id}/budget")).await;
    let padding = "x".repeat(70 * 1024);
    let oversized = owner
        .post(
            &format!("/clusters/{id}/budget"),
            &[("budget", "7"), ("csrf", &token), ("note", &padding)],
        )
        .await;
    assert_eq!(oversized.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        run.api(Method::GET, &format!("/v2/kafka/cluster/{id}"), None)
            .await["budget"],
        0
    );
    // With the token the same form works.
    let response = owner
        .submit(
            &format!("/clusters/{id}/budget"),
            &format!("/clusters/{id}/budget"),
            &[("budget", "5")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        run.api(Method::GET, &format!("/v2/kafka/cluster/{id}"), None)
            .await["budget"],
        5
    );
}

#[tokio::test]
async fn log_out_ends_the_session_and_a_password_change_ends_every_other() {
    let run = start_with(false, PlatformConfig::default(), PriceList::default()).await;
    let first = Browser::new(&run);
    first
        .sign_up("sessions@example.com", "first password 123")
        .await;
    let second = Browser::new(&run);
    assert_eq!(
        second
            .log_in("sessions@example.com", "first password 123")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let (status, _) = first.get("/clusters").await;
    assert_eq!(status, StatusCode::OK);

    // A wrong current password changes nothing.
    let response = first
        .submit(
            "/account",
            "/account/password",
            &[
                ("current_password", "not the password"),
                ("new_password", "second password 456"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("current password is not right")
    );
    let (status, _) = second.get("/clusters").await;
    assert_eq!(status, StatusCode::OK);

    let response = first
        .submit(
            "/account",
            "/account/password",
            &[
                ("current_password", "first password 123"),
                ("new_password", "second password 456"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("Password changed"));
    // This browser got a new session; the other browser's ended.
    let (status, _) = first.get("/clusters").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = second.get("/clusters").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the other browser is sent to log in"
    );
    assert_eq!(
        second
            .log_in("sessions@example.com", "first password 123")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        second
            .log_in("sessions@example.com", "second password 456")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );

    // Log-out ends the session on the server: a copy of the cookie, as someone who stole it
    // would hold, no longer works.
    let third = Browser::new(&run);
    let response = third
        .log_in("sessions@example.com", "second password 456")
        .await;
    let cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let with_stolen_cookie = || {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("{}/clusters", run.api))
            .header(header::COOKIE, cookie.clone())
            .send()
    };
    assert_eq!(with_stolen_cookie().await.unwrap().status(), StatusCode::OK);
    let response = third.submit("/clusters", "/logout", &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        with_stolen_cookie().await.unwrap().status(),
        StatusCode::SEE_OTHER,
        "sent to log in"
    );
}
