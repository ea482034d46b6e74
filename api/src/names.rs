//! Names users choose, parsed once at the edge.

use crate::{Error, Result};

/// A cluster's display name: 1 to 64 characters of letters, digits, space, `.`, `_` or `-`,
/// not starting with a space (trailing spaces are trimmed).
pub fn cluster_name(raw: &str) -> Result<String> {
    let name = raw.trim_end();
    let ok = !name.is_empty()
        && !name.starts_with(' ')
        && name.chars().count() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'));
    if !ok {
        return Err(Error::Invalid(
            "the cluster name must have 1 to 64 characters: letters, digits, space, '.', '_' or '-'".into(),
        ));
    }
    Ok(name.to_owned())
}

/// A Kafka topic name: 1 to 249 characters of letters, digits, `.`, `_` or `-`, not starting
/// with `.` (which also rules out Kafka's forbidden `.` and `..`) nor with `__`, which Kafka
/// keeps for its internal topics (`__consumer_offsets`): metering and the ACLs of dedicated
/// clusters treat such names as internal, so a user topic must never have one.
pub fn topic_name(raw: &str) -> Result<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 249
        && !raw.starts_with('.')
        && !raw.starts_with("__")
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(Error::Invalid(
            "the topic name must have 1 to 249 characters: letters, digits, '.', '_' or '-', and not start with '.' or '__' (Kafka's internal topics)".into(),
        ));
    }
    Ok(raw.to_owned())
}

/// A credential's topic scope: a topic name, a prefix ending in `*`, or `*`.
pub fn topic_scope(raw: &str) -> Result<String> {
    if raw == "*" {
        return Ok(raw.to_owned());
    }
    let prefix = raw.strip_suffix('*').unwrap_or(raw);
    if prefix.contains('*') {
        return Err(Error::Invalid(
            "in a credential's topic, '*' may only be the last character".into(),
        ));
    }
    topic_name(prefix).map(|_| raw.to_owned()).map_err(|_| {
        Error::Invalid(
            "the credential's topic must be a topic name, a prefix ending in '*', or '*'".into(),
        )
    })
}

/// A credential's name: 1 to 64 characters of letters, digits, `.`, `_` or `-`.
pub fn credential_name(raw: &str) -> Result<String> {
    let ok = !raw.is_empty()
        && raw.chars().count() <= 64
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(Error::Invalid(
            "the credential name must have 1 to 64 characters: letters, digits, '.', '_' or '-'"
                .into(),
        ));
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(topic_name("orders.v1_eu-west").is_ok());
        assert!(topic_name("_private").is_ok() && topic_name("a__b").is_ok());
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a b",
            "a/b",
            "ü",
            "__consumer_offsets",
            "__mine",
            &"x".repeat(250),
        ] {
            assert!(topic_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn topic_scopes_allow_a_trailing_star_only() {
        for good in ["*", "orders", "orders.*", "o*"] {
            assert!(topic_scope(good).is_ok(), "{good:?}");
        }
        for bad in ["", "**", "a*b", "*a", "a b*"] {
            assert!(topic_scope(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cluster_names_are_trimmed_and_bounded() {
        assert_eq!(cluster_name("my cluster ").unwrap(), "my cluster");
        assert!(cluster_name(" leading").is_err());
        assert!(cluster_name("").is_err());
        assert!(cluster_name("a/b").is_err());
        assert!(cluster_name(&"x".repeat(65)).is_err());
    }
}
