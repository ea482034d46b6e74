//! Errors shown next to the form field they are about.

use axum::http::StatusCode;

use crate::{Error, Result};

/// Messages per field of a form; the field `""` is the form as a whole.
#[derive(Debug, Default)]
pub(crate) struct FieldErrors {
    errors: Vec<(&'static str, String)>,
}

impl FieldErrors {
    /// The message for `field`, if any (templates call this next to each input).
    pub fn get(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }

    /// Whether the form had no error.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Adds a message for `field`.
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.errors.push((field, message.into()));
    }

    /// One message for `field`.
    pub fn one(field: &'static str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::default();
        errors.add(field, message);
        errors
    }

    /// A refusal of the domain the user can fix (invalid value, plan limit, name taken) as a
    /// message next to the first field whose keyword the message contains, or on the form;
    /// any other error (not found, server trouble) is passed on to become an error page.
    pub fn from_domain(
        error: capstan_api::Error,
        keywords: &[(&str, &'static str)],
    ) -> Result<(StatusCode, FieldErrors)> {
        use capstan_api::Error as E;
        if !matches!(
            error,
            E::Invalid(_)
                | E::LimitExceeded(_)
                | E::Conflict(_)
                | E::Missing(_)
                | E::RateLimited { .. }
        ) {
            return Err(Error::Api(error));
        }
        let message = error.to_string();
        let field = keywords
            .iter()
            .find(|(keyword, _)| message.contains(keyword))
            .map_or("", |(_, field)| *field);
        Ok((error.status(), FieldErrors::one(field, message)))
    }
}
