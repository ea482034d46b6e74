//! The console's one error type: every failure becomes a page with the right status code.

use askama::Template;
use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
};

/// Result with the console's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while serving a console page.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A failure of the control plane's domain (its status code is kept).
    #[error(transparent)]
    Api(#[from] capstan_api::Error),
    /// No such page, or it belongs to another account (404 either way).
    #[error("page not found")]
    NotFound,
    /// The visitor is not logged in: they are sent to the log-in page.
    #[error("log-in required")]
    LoginRequired,
    /// A form arrived without the CSRF token of this browser (403).
    #[error("the form could not be verified")]
    Csrf,
    /// A form body that no form of the console sends (400).
    #[error("the form is malformed: {0}")]
    BadForm(String),
    /// A template failed to render (500).
    #[error("could not render the page")]
    Render(#[from] askama::Error),
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

impl Error {
    fn status(&self) -> StatusCode {
        match self {
            Error::Api(error) => error.status(),
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::LoginRequired => StatusCode::SEE_OTHER,
            Error::Csrf => StatusCode::FORBIDDEN,
            Error::BadForm(_) => StatusCode::BAD_REQUEST,
            Error::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn explain(&self) -> (&'static str, String) {
        match self {
            Error::NotFound | Error::Api(capstan_api::Error::NotFound(_)) => (
                "Not found",
                "This page does not exist, or it belongs to another account.".into(),
            ),
            Error::Csrf => (
                "Form expired",
                "This form could not be verified as sent from this console. Reload the page and try again.".into(),
            ),
            Error::BadForm(_) => (
                "Bad request",
                "The form was incomplete. Reload the page and try again.".into(),
            ),
            error if self.status().is_server_error() => {
                if matches!(error, Error::Api(capstan_api::Error::Broker(_))) {
                    ("Brokers unavailable", error.to_string())
                } else {
                    tracing::error!(error = %capstan_api::cause_chain(error), "console page failed");
                    (
                        "Something went wrong",
                        "The cause has been logged. Try again in a moment.".into(),
                    )
                }
            }
            error => ("Request refused", error.to_string()),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if matches!(self, Error::LoginRequired) {
            return Redirect::to("/login").into_response();
        }
        let status = self.status();
        let (title, message) = self.explain();
        let page = ErrorPage {
            title,
            message: &message,
        }
        .render()
        .unwrap_or_else(|_| message.clone());
        (status, Html(page)).into_response()
    }
}
