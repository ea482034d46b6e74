use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use capstan_api::{mail::MailSettings, state::PlatformConfig};

use crate::helpers::{Auth, Backend, PASSWORD, TestApp, spawn_app, spawn_app_with};
use crate::on_both_backends;

/// POSTs `body` to the unauthenticated route `path`; the status and the answer.
async fn post_anonymous(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, path, &Auth::None, Some(body)).await
}

/// Logs in with `email` and `password`; the status and the answer.
async fn log_in(app: &TestApp, email: &str, password: &str) -> (StatusCode, Value) {
    post_anonymous(
        app,
        "/v2/auth/login",
        json!({ "email": email, "password": password }),
    )
    .await
}

async fn sign_up_log_in_and_manage_api_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let creds = json!({ "email": "Ada@Example.com", "password": "correct horse battery" });
    let (status, account) = app
        .call(
            Method::POST,
            "/v2/auth/signup",
            &Auth::None,
            Some(creds.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(account["email"], "ada@example.com");

    let (status, body) = app
        .call(
            Method::POST,
            "/v2/auth/signup",
            &Auth::None,
            Some(creds.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"].as_str().unwrap().contains("already exists"),
        "{body}"
    );

    let (status, session) = app
        .call(Method::POST, "/v2/auth/login", &Auth::None, Some(creds))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(session["expires_at"].as_i64().unwrap() > 0);
    let bearer = Auth::Bearer(session["token"].as_str().unwrap().to_owned());

    let (status, created) = app
        .call(
            Method::POST,
            "/v2/api-keys",
            &bearer,
            Some(json!({ "name": "ci" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let key = created["key"].as_str().unwrap().to_owned();
    let basic = Auth::Basic("ada@example.com".into(), key.clone());

    let (status, listed) = app.call(Method::GET, "/v2/api-keys", &basic, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        listed[0].get("key").is_none(),
        "a listed key must not show its secret: {listed}"
    );
    assert!(
        listed[0]["last_used_at"].as_i64().is_some(),
        "the key was just used"
    );

    let id = created["id"].as_str().unwrap();
    let (status, _) = app
        .call(Method::DELETE, &format!("/v2/api-keys/{id}"), &bearer, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.call(Method::GET, "/v2/api-keys", &basic, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revoked key must stop working: {body}"
    );
    let (status, _) = app
        .call(Method::DELETE, &format!("/v2/api-keys/{id}"), &bearer, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
on_both_backends!(sign_up_log_in_and_manage_api_keys);

#[tokio::test]
async fn wrong_passwords_and_unknown_addresses_get_the_same_401() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let (status, wrong) = app
        .call(
            Method::POST,
            "/v2/auth/login",
            &Auth::None,
            Some(json!({ "email": user.email, "password": "not the password" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, unknown) = app
        .call(
            Method::POST,
            "/v2/auth/login",
            &Auth::None,
            Some(json!({ "email": "nobody@example.com", "password": "whatever12345" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong["error"], unknown["error"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_log_ins_are_checked_at_most_the_limit_then_get_429() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let request = app
            .client
            .post(app.url("/v2/auth/login"))
            .json(&json!({ "email": user.email, "password": "not the password" }));
        attempts.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        });
    }
    let answers = attempts.join_all().await;
    let checked = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::UNAUTHORIZED)
        .count();
    let limited: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(checked, 5, "five wrong passwords per account are checked");
    assert_eq!(limited.len(), 25, "{answers:?}");
    assert!(
        limited[0]["error"]
            .as_str()
            .unwrap()
            .contains("too many failed log-ins"),
        "{}",
        limited[0]
    );
    // The right password is not checked either until the window has room (a guesser cannot
    // tell it found the password), with Retry-After saying when.
    let response = app
        .client
        .post(app.url("/v2/auth/login"))
        .json(&json!({ "email": user.email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((800..=900).contains(&retry_after), "{retry_after}");
    // Another account from the same address is still served.
    let other = app.new_user().await;
    let (status, _) = app
        .call(
            Method::POST,
            "/v2/auth/login",
            &Auth::None,
            Some(json!({ "email": other.email, "password": PASSWORD })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn sign_up_explains_invalid_addresses_and_weak_passwords() {
    let app = spawn_app(Backend::Sqlite).await;
    for (email, password, needle) in [
        ("not-an-address", "correct horse battery", "e-mail"),
        ("a@example.com", "short", "at least 10"),
        ("a@example.com", "a@example.com", "must not be the e-mail"),
    ] {
        let (status, body) = app
            .call(
                Method::POST,
                "/v2/auth/signup",
                &Auth::None,
                Some(json!({ "email": email, "password": password })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["error"].as_str().unwrap().contains(needle), "{body}");
        assert_eq!(body["status"], 400);
    }
}

#[tokio::test]
async fn an_account_may_hold_only_the_configured_number_of_api_keys() {
    let platform = capstan_api::state::PlatformConfig {
        max_api_keys: 2,
        ..Default::default()
    };
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, platform).await;
    let user = app.new_user().await; // holds one key already
    let (status, _) = app
        .call(
            Method::POST,
            "/v2/api-keys",
            &user.auth(),
            Some(json!({ "name": "second" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app
        .call(
            Method::POST,
            "/v2/api-keys",
            &user.auth(),
            Some(json!({ "name": "third" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"].as_str().unwrap().contains("at most 2"),
        "{body}"
    );
}

async fn log_out_and_password_changes_end_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.new_user().await;
    let (_, first) = log_in(&app, &user.email, PASSWORD).await;
    let first = Auth::Bearer(first["token"].as_str().unwrap().to_owned());
    let (_, second) = log_in(&app, &user.email, PASSWORD).await;
    let second = Auth::Bearer(second["token"].as_str().unwrap().to_owned());
    let (status, _) = app
        .call(Method::GET, "/v2/kafka/clusters", &first, None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // Log-out ends that session only.
    let (status, body) = app
        .call(Method::POST, "/v2/auth/logout", &first, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .call(Method::GET, "/v2/kafka/clusters", &first, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("session has ended"),
        "{body}"
    );
    let (status, _) = app
        .call(Method::GET, "/v2/kafka/clusters", &second, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // An API key has no session to end.
    let (status, body) = app
        .call(Method::POST, "/v2/auth/logout", &user.auth(), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // A wrong current password is refused and changes nothing; a weak new one is explained.
    let change =
        |current: &str, new: &str| json!({ "current_password": current, "new_password": new });
    let (status, body) = app
        .call(
            Method::POST,
            "/v2/auth/password",
            &second,
            Some(change("wrong password!", "a new password 1")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = app
        .call(
            Method::POST,
            "/v2/auth/password",
            &second,
            Some(change(PASSWORD, "short")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = app
        .call(Method::GET, "/v2/kafka/clusters", &second, None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // A change ends every session and answers a new one; API keys keep working.
    let (status, third) = log_in(&app, &user.email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let third = Auth::Bearer(third["token"].as_str().unwrap().to_owned());
    let (status, fresh) = app
        .call(
            Method::POST,
            "/v2/auth/password",
            &second,
            Some(change(PASSWORD, "a new password 1")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    for ended in [&second, &third] {
        let (status, _) = app
            .call(Method::GET, "/v2/kafka/clusters", ended, None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let fresh = Auth::Bearer(fresh["token"].as_str().unwrap().to_owned());
    let (status, _) = app
        .call(Method::GET, "/v2/kafka/clusters", &fresh, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(Method::GET, "/v2/kafka/clusters", &user.auth(), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = log_in(&app, &user.email, PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = log_in(&app, &user.email, "a new password 1").await;
    assert_eq!(status, StatusCode::OK);
}
on_both_backends!(log_out_and_password_changes_end_sessions);

/// Twenty failed log-ins (any accounts) from `address`, sent with `X-Forwarded-For: address`.
async fn fail_log_ins_as(app: &crate::helpers::TestApp, address: &str) {
    for i in 0..20 {
        let response = app
            .client
            .post(app.url("/v2/auth/login"))
            .header("x-forwarded-for", address)
            .json(&json!({ "email": format!("nobody{i}@example.com"), "password": "wrong password!" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}

async fn log_in_status_as(app: &crate::helpers::TestApp, address: &str) -> StatusCode {
    app.client
        .post(app.url("/v2/auth/login"))
        .header("x-forwarded-for", address)
        .json(&json!({ "email": "someone@example.com", "password": "wrong password!" }))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let platform = capstan_api::state::PlatformConfig {
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..Default::default()
    };
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, platform).await;
    fail_log_ins_as(&app, "203.0.113.1").await;
    assert_eq!(
        log_in_status_as(&app, "203.0.113.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy is not locked out by the first one's failures.
    assert_eq!(
        log_in_status_as(&app, "203.0.113.2").await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trusted_proxies_a_forwarded_for_header_changes_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    fail_log_ins_as(&app, "203.0.113.1").await;
    // The header is the client's own claim: the limit is the TCP peer's.
    assert_eq!(
        log_in_status_as(&app, "203.0.113.2").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// A real SMTP server on loopback (aiosmtpd from PyPI) keeping what it receives in a Maildir.
struct SmtpServer {
    port: u16,
    maildir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl SmtpServer {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = tempfile::tempdir().unwrap();
        let child = tokio::process::Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("aiosmtpd must be installed (scripts/test installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "aiosmtpd did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        SmtpServer {
            port,
            maildir,
            _child: child,
        }
    }

    /// Mail settings that send to this server.
    fn settings(&self) -> MailSettings {
        MailSettings::Smtp {
            url: format!("smtp://127.0.0.1:{}", self.port),
            from: "Capstan <no-reply@example.com>".into(),
        }
    }

    /// Waits until `count` mails arrived; answers each one's recipient and decoded body (read
    /// with Python's own e-mail parser, whatever transfer encoding the mail used).
    async fn mails(&self, count: usize) -> Vec<(String, String)> {
        let new = self.maildir.path().join("mail").join("new");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let mut files: Vec<_> = std::fs::read_dir(&new)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            if files.len() >= count {
                files.sort();
                let script = "import email, sys\nm = email.message_from_binary_file(open(sys.argv[1], 'rb'))\nprint(m['X-RcptTo'])\nprint(m.get_payload(decode=True).decode())";
                return files
                    .iter()
                    .map(|file| {
                        let out = std::process::Command::new("python3")
                            .args(["-c", script])
                            .arg(file)
                            .output()
                            .unwrap();
                        let text = String::from_utf8(out.stdout).unwrap();
                        let (to, body) = text.split_once('\n').unwrap();
                        (to.to_owned(), body.to_owned())
                    })
                    .collect();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{count} mails did not arrive (got {})",
                files.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

async fn a_forgotten_password_is_reset_through_the_mailed_link(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(
        backend,
        PlatformConfig {
            mail: smtp.settings(),
            ..Default::default()
        },
    )
    .await;
    let user = app.new_user().await;
    let (_, session) = log_in(&app, &user.email, PASSWORD).await;
    let old_session = Auth::Bearer(session["token"].as_str().unwrap().to_owned());

    // An address without an account gets the very same answer, and no mail.
    let ask =
        |email: String| post_anonymous(&app, "/v2/auth/password-reset", json!({ "email": email }));
    let unknown = ask("nobody@example.com".into()).await;
    let known = ask(user.email.to_uppercase()).await;
    assert_eq!(unknown.0, StatusCode::ACCEPTED);
    assert_eq!(unknown, known);

    let mails = smtp.mails(1).await;
    assert_eq!(mails[0].0, user.email);
    let token = mails[0]
        .1
        .split("/reset-password?token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("a link in {:?}", mails[0].1))
        .to_owned();
    let confirm = |token: String, password: &'static str| {
        post_anonymous(
            &app,
            "/v2/auth/password-reset/confirm",
            json!({ "token": token, "new_password": password }),
        )
    };
    let (status, refused) = confirm(token.clone(), "short").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (status, new_session) = confirm(token.clone(), "a brand new passphrase").await;
    assert_eq!(status, StatusCode::OK, "{new_session}");

    // Every earlier session ended; the old password is gone, the new one works.
    let (status, _) = app
        .call(Method::GET, "/v2/api-keys", &old_session, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let fresh = Auth::Bearer(new_session["token"].as_str().unwrap().to_owned());
    let (status, _) = app.call(Method::GET, "/v2/api-keys", &fresh, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        log_in(&app, &user.email, PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        log_in(&app, &user.email, "a brand new passphrase").await.0,
        StatusCode::OK
    );

    // The link works once.
    let (status, again) = confirm(token, "yet another passphrase").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        again["error"].as_str().unwrap().contains("not valid"),
        "{again}"
    );
    // The unknown address was asked for first: the next mail is the second there is.
    ask(user.email.clone()).await;
    let mails = smtp.mails(2).await;
    assert_eq!(mails.len(), 2);
    assert!(mails.iter().all(|(to, _)| *to == user.email), "{mails:?}");
}

on_both_backends!(a_forgotten_password_is_reset_through_the_mailed_link);

/// The token of the link after `page` in a mail's `body`.
fn link_token(body: &str, page: &str) -> String {
    body.split(&format!("{page}?token="))
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("a {page} link in {body:?}"))
        .to_owned()
}

async fn sign_ups_confirmed_by_mail_never_tell_whether_an_address_has_an_account(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(
        backend,
        PlatformConfig {
            mail: smtp.settings(),
            confirm_sign_ups: true,
            ..Default::default()
        },
    )
    .await;
    let sign_up = |email: &'static str| {
        post_anonymous(
            &app,
            "/v2/auth/signup",
            json!({ "email": email, "password": PASSWORD }),
        )
    };
    let confirm =
        |token: String| post_anonymous(&app, "/v2/auth/signup/confirm", json!({ "token": token }));
    let mails_to = |mails: &[(String, String)], to: &str| -> Vec<String> {
        mails
            .iter()
            .filter(|(rcpt, _)| rcpt == to)
            .map(|(_, body)| body.clone())
            .collect()
    };
    const ADA: &str = "ada@example.com";
    const GRACE: &str = "grace@example.com";

    let answer = sign_up(ADA).await;
    assert_eq!(answer.0, StatusCode::ACCEPTED, "{}", answer.1);
    // Nothing exists until the link is used: log-in answers as for any unknown address.
    assert_eq!(
        log_in(&app, ADA, PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    let token = link_token(&smtp.mails(1).await[0].1, "/confirm-sign-up");
    let (status, refused) = confirm("not-the-token".into()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        refused["error"].as_str().unwrap().contains("not valid"),
        "{refused}"
    );
    let (status, account) = confirm(token.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    assert_eq!(account["email"], ADA);
    assert_eq!(log_in(&app, ADA, PASSWORD).await.0, StatusCode::OK);
    assert_eq!(
        confirm(token).await.0,
        StatusCode::UNAUTHORIZED,
        "a link works once"
    );

    // Ada has an account now: signing up with her address and with a free one answer alike,
    // and only the mails differ.
    let taken = sign_up("Ada@Example.com").await;
    let free = sign_up(GRACE).await;
    assert_eq!(taken, answer);
    assert_eq!(free, answer);
    let mails = smtp.mails(3).await;
    let to_ada = mails_to(&mails, ADA);
    let note = to_ada
        .iter()
        .find(|body| body.contains("has one already"))
        .unwrap_or_else(|| panic!("a note to Ada in {to_ada:?}"));
    assert!(!note.contains("token="), "the note carries no link: {note}");
    assert_eq!(
        log_in(&app, ADA, PASSWORD).await.0,
        StatusCode::OK,
        "the note changed nothing"
    );

    // Two open links for one address: the first used creates the account, the other dies.
    assert_eq!(sign_up(GRACE).await, answer);
    let mails = smtp.mails(4).await;
    let links: Vec<String> = mails_to(&mails, GRACE)
        .iter()
        .map(|body| link_token(body, "/confirm-sign-up"))
        .collect();
    assert_eq!(links.len(), 2, "{mails:?}");
    assert_eq!(confirm(links[1].clone()).await.0, StatusCode::CREATED);
    assert_eq!(confirm(links[0].clone()).await.0, StatusCode::UNAUTHORIZED);

    // At most three sign-up mails to one inbox in the window, whether or not it has an account.
    assert_eq!(sign_up(ADA).await, answer);
    assert_eq!(sign_up(ADA).await.0, StatusCode::TOO_MANY_REQUESTS);
    for _ in 0..3 {
        assert_eq!(sign_up("lin@example.com").await, answer);
    }
    assert_eq!(
        sign_up("lin@example.com").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

on_both_backends!(sign_ups_confirmed_by_mail_never_tell_whether_an_address_has_an_account);
