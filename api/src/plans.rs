//! Plans and their limits (the published Upstash Kafka limits are the defaults).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A cluster's plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// No payment method: small limits, no charge.
    Free = 0,
    /// Pay as you go: per-message and per-GB prices.
    Payg = 1,
    /// Upstash's Pro tier's limits (10 MB messages, 1,000 partitions), priced as pay as you go.
    Pro = 2,
}

impl Plan {
    /// Every plan, in the order of their discriminants (which index [`PlanLimits`]).
    pub const ALL: [Plan; 3] = [Plan::Free, Plan::Payg, Plan::Pro];

    /// Parses `free`, `payg` or `pro`.
    pub fn parse(raw: &str) -> Result<Self> {
        Plan::ALL
            .into_iter()
            .find(|plan| plan.as_str() == raw)
            .ok_or_else(|| Error::Invalid(format!("unknown plan {raw:?}: use free, payg or pro")))
    }

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Payg => "payg",
            Plan::Pro => "pro",
        }
    }

    /// The Upstash `type` field: `free`, `paid` or `pro`.
    pub fn upstash_type(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Payg => "paid",
            Plan::Pro => "pro",
        }
    }

    /// The plan's limits as Upstash published them (the defaults of [`PlanLimits`]).
    pub fn published_limits(self) -> Limits {
        const DAY_MS: i64 = 24 * 3600 * 1000;
        const MIB: i64 = 1024 * 1024;
        match self {
            Plan::Free => Limits {
                max_partitions: 10,
                max_retention_size: 256 * MIB,
                max_retention_time: 7 * DAY_MS,
                max_message_size: MIB,
                max_messages_per_second: 1000,
            },
            Plan::Payg => Limits {
                max_partitions: 100,
                max_retention_size: 1_073_741_824_000,
                max_retention_time: 30 * DAY_MS,
                max_message_size: MIB,
                max_messages_per_second: 1000,
            },
            Plan::Pro => Limits {
                max_partitions: 1000,
                max_retention_size: 2 * 1_073_741_824_000,
                max_retention_time: 365 * DAY_MS,
                max_message_size: 10 * MIB,
                max_messages_per_second: 2000,
            },
        }
    }
}

/// What a cluster of a plan may hold. Sizes in bytes, times in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Partitions summed over every topic of the cluster.
    pub max_partitions: i64,
    /// Largest `retention_size` of a topic.
    pub max_retention_size: i64,
    /// Longest `retention_time` of a topic.
    pub max_retention_time: i64,
    /// Largest message.
    pub max_message_size: i64,
    /// Soft throughput quota (shown, as Upstash showed it; not enforced).
    pub max_messages_per_second: i64,
}

/// Every plan's limits, as the operator configured them (`--plan-limits`): Upstash's published
/// limits unless overridden; in the order of [`Plan::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanLimits([Limits; 3]);

impl Default for PlanLimits {
    fn default() -> Self {
        PlanLimits(Plan::ALL.map(Plan::published_limits))
    }
}

/// Some of one plan's limits, as written in the operator's file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsOverride {
    max_partitions: Option<i64>,
    max_retention_size: Option<i64>,
    max_retention_time: Option<i64>,
    max_message_size: Option<i64>,
    max_messages_per_second: Option<i64>,
}

impl PlanLimits {
    /// The limits of `plan`.
    pub fn of(&self, plan: Plan) -> Limits {
        self.0[plan as usize]
    }

    /// The published limits with the overrides of a JSON document such as
    /// `{"pro": {"max_partitions": 2000, "max_message_size": 20971520}}`; every value must be
    /// a positive whole number, and a message may not be larger than the retention size.
    pub fn with_overrides(json: &str) -> Result<Self> {
        let file: std::collections::BTreeMap<String, LimitsOverride> = serde_json::from_str(json)
            .map_err(|e| {
                Error::Invalid(format!(
                    "plan limits: {e} (expected {{\"free\"|\"payg\"|\"pro\": {{\"max_partitions\": …, \"max_retention_size\": …, \"max_retention_time\": …, \"max_message_size\": …, \"max_messages_per_second\": …}}}})"
                ))
            })?;
        let mut limits = PlanLimits::default();
        for (name, given) in file {
            let plan =
                Plan::parse(&name).map_err(|e| Error::Invalid(format!("plan limits: {e}")))?;
            let slot = &mut limits.0[plan as usize];
            for (value, target, field) in [
                (
                    given.max_partitions,
                    &mut slot.max_partitions,
                    "max_partitions",
                ),
                (
                    given.max_retention_size,
                    &mut slot.max_retention_size,
                    "max_retention_size",
                ),
                (
                    given.max_retention_time,
                    &mut slot.max_retention_time,
                    "max_retention_time",
                ),
                (
                    given.max_message_size,
                    &mut slot.max_message_size,
                    "max_message_size",
                ),
                (
                    given.max_messages_per_second,
                    &mut slot.max_messages_per_second,
                    "max_messages_per_second",
                ),
            ] {
                let Some(value) = value else { continue };
                if value < 1 {
                    return Err(Error::Invalid(format!(
                        "plan limits: {name}.{field} must be a positive whole number (got {value})"
                    )));
                }
                *target = value;
            }
            if slot.max_message_size > slot.max_retention_size {
                return Err(Error::Invalid(format!(
                    "plan limits: {name}.max_message_size ({}) is larger than its max_retention_size ({})",
                    slot.max_message_size, slot.max_retention_size
                )));
            }
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse_by_name_and_keep_the_published_limits_by_default() {
        for plan in Plan::ALL {
            assert_eq!(Plan::parse(plan.as_str()).unwrap(), plan);
            assert_eq!(PlanLimits::default().of(plan), plan.published_limits());
        }
        assert!(Plan::parse("enterprise").is_err());
        assert_eq!(
            Plan::Pro.published_limits().max_message_size,
            10 * 1024 * 1024
        );
        assert_eq!(Plan::Pro.published_limits().max_partitions, 1000);
    }

    #[test]
    fn an_operator_overrides_some_limits_of_some_plans() {
        let limits = PlanLimits::with_overrides(
            r#"{"pro": {"max_partitions": 2000}, "free": {"max_message_size": 1000}}"#,
        )
        .unwrap();
        assert_eq!(limits.of(Plan::Pro).max_partitions, 2000);
        assert_eq!(
            limits.of(Plan::Pro).max_message_size,
            Plan::Pro.published_limits().max_message_size
        );
        assert_eq!(limits.of(Plan::Free).max_message_size, 1000);
        assert_eq!(limits.of(Plan::Payg), Plan::Payg.published_limits());
        for bad in [
            r#"{"pro": {"max_partitions": 0}}"#,
            r#"{"gold": {}}"#,
            r#"{"pro": {"max_partitionz": 5}}"#,
            r#"{"free": {"max_message_size": 999999999999}}"#,
            "not json",
        ] {
            assert!(PlanLimits::with_overrides(bad).is_err(), "{bad}");
        }
    }
}
