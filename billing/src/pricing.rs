//! Prices, plans and the arithmetic of money: integer micro-dollars everywhere, one half-up
//! rounding to cents per invoice line (see `docs/billing.md`).

use serde::Serialize;

/// One dollar in micro-dollars.
pub const DOLLAR: i64 = 1_000_000;
/// One cent in micro-dollars.
pub const CENT: i64 = 10_000;
/// A GB of storage, as the contract defines it (2^30 bytes).
pub const GB: i128 = 1 << 30;

/// Prices and limits; every value is configurable, the defaults are Upstash's published ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PriceList {
    /// Per message (produced or consumed) on a single-zone cluster: $0.20 per 100K = 2 µ$.
    pub single_zone_message_micros: i64,
    /// Per message on a multi-zone cluster: $0.60 per 100K = 6 µ$.
    pub multi_zone_message_micros: i64,
    /// Per GB-month of storage, replicas summed: $0.25.
    pub storage_gb_month_micros: i64,
    /// Monthly ceiling of a single-zone cluster: $120.
    pub single_zone_ceiling_micros: i64,
    /// Monthly ceiling of a multi-zone cluster: $360.
    pub multi_zone_ceiling_micros: i64,
    /// Messages a free cluster may move per UTC day.
    pub free_daily_messages: i64,
    /// Messages per second a rate-limited cluster (at its cap, or free and past its day's
    /// messages) may still move, produce and consume together, on both gateways.
    pub limited_messages_per_second: i64,
}

impl Default for PriceList {
    fn default() -> Self {
        PriceList {
            single_zone_message_micros: 2,
            multi_zone_message_micros: 6,
            storage_gb_month_micros: 250_000,
            single_zone_ceiling_micros: 120 * DOLLAR,
            multi_zone_ceiling_micros: 360 * DOLLAR,
            free_daily_messages: 10_000,
            limited_messages_per_second: 10,
        }
    }
}

/// What a cluster is, for pricing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tariff {
    /// Three zones instead of one.
    pub multizone: bool,
    /// A free cluster is never charged (it is rate-limited instead).
    pub free: bool,
    /// The user's monthly budget in micro-dollars; 0 means none.
    pub budget_micros: i64,
}

impl PriceList {
    /// Price of one message on a cluster.
    pub fn message_micros(&self, tariff: Tariff) -> i64 {
        if tariff.free {
            0
        } else if tariff.multizone {
            self.multi_zone_message_micros
        } else {
            self.single_zone_message_micros
        }
    }

    /// The lower of the platform's ceiling and the user's budget (when set).
    pub fn effective_cap_micros(&self, tariff: Tariff) -> i64 {
        let ceiling = if tariff.multizone {
            self.multi_zone_ceiling_micros
        } else {
            self.single_zone_ceiling_micros
        };
        if tariff.budget_micros > 0 {
            ceiling.min(tariff.budget_micros)
        } else {
            ceiling
        }
    }

    /// Storage charge for a month: its GB-hours (each hour's average stored GB, summed over the
    /// hours) / the hours of the month × the GB-month price, rounded half-up to a micro-dollar.
    pub fn storage_micros(&self, tariff: Tariff, byte_hours: i64, hours_in_month: i64) -> i64 {
        if tariff.free || hours_in_month <= 0 {
            return 0;
        }
        let numerator = i128::from(byte_hours.max(0)) * i128::from(self.storage_gb_month_micros);
        let denominator = GB * i128::from(hours_in_month);
        i64::try_from((2 * numerator + denominator) / (2 * denominator)).unwrap_or(i64::MAX)
    }
}

/// Rounds micro-dollars half-up to whole cents (returned in cents). Negative amounts round
/// half away from zero, so a credit mirrors a charge.
pub fn round_to_cents(micros: i64) -> i64 {
    let half = CENT / 2;
    if micros >= 0 {
        (micros + half) / CENT
    } else {
        -((-micros + half) / CENT)
    }
}

/// One line of a cluster's bill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Line {
    /// `produced`, `consumed`, `storage` or `cap_adjustment`.
    pub kind: &'static str,
    /// Messages, or GB-month × 1,000,000 for storage, or 0 for the adjustment.
    pub quantity: i64,
    /// Exact amount in micro-dollars.
    pub micros: i64,
    /// The amount rounded once, half-up, to cents.
    pub cents: i64,
}

/// A cluster's usage over a month.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MonthUsage {
    /// Messages produced.
    pub produced: i64,
    /// Messages consumed.
    pub consumed: i64,
    /// Stored bytes × hours: each hour's average stored bytes (replicas summed), summed over
    /// the month's hours (an hour without a sample adds nothing).
    pub byte_hours: i64,
    /// Hours in the calendar month.
    pub hours_in_month: i64,
}

/// The lines of a cluster's month: usage lines, then a negative adjustment when they pass the
/// effective cap, so that the cluster's total is exactly the cap.
pub fn bill(prices: &PriceList, tariff: Tariff, usage: &MonthUsage) -> Vec<Line> {
    let per_message = prices.message_micros(tariff);
    let storage = prices.storage_micros(tariff, usage.byte_hours, usage.hours_in_month);
    let storage_quantity = {
        let denominator = GB * i128::from(usage.hours_in_month.max(1));
        i64::try_from(i128::from(usage.byte_hours.max(0)) * 1_000_000 / denominator)
            .unwrap_or(i64::MAX)
    };
    let line = |kind, quantity, micros: i64| Line {
        kind,
        quantity,
        micros,
        cents: round_to_cents(micros),
    };
    let mut lines = vec![
        line(
            "produced",
            usage.produced,
            usage.produced.saturating_mul(per_message),
        ),
        line(
            "consumed",
            usage.consumed,
            usage.consumed.saturating_mul(per_message),
        ),
        line("storage", storage_quantity, storage),
    ];
    let cap_cents = round_to_cents(prices.effective_cap_micros(tariff));
    let total_cents: i64 = lines.iter().map(|l| l.cents).sum();
    if total_cents > cap_cents {
        // The adjustment is what brings the sum of the rounded lines exactly to the cap, so it
        // is defined in whole cents.
        let adjustment_cents = cap_cents - total_cents;
        lines.push(Line {
            kind: "cap_adjustment",
            quantity: 0,
            micros: adjustment_cents * CENT,
            cents: adjustment_cents,
        });
    }
    lines
}

/// Days in a calendar month.
pub fn days_in_month(year: i64, month: u32) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SINGLE: Tariff = Tariff {
        multizone: false,
        free: false,
        budget_micros: 0,
    };
    const MULTI: Tariff = Tariff {
        multizone: true,
        free: false,
        budget_micros: 0,
    };

    fn total(lines: &[Line]) -> i64 {
        lines.iter().map(|l| l.cents).sum()
    }

    fn usage(produced: i64, consumed: i64) -> MonthUsage {
        MonthUsage {
            produced,
            consumed,
            byte_hours: 0,
            hours_in_month: 30 * 24,
        }
    }

    #[test]
    fn one_hundred_thousand_messages_cost_twenty_or_sixty_cents() {
        let prices = PriceList::default();
        assert_eq!(total(&bill(&prices, SINGLE, &usage(100_000, 0))), 20);
        assert_eq!(total(&bill(&prices, MULTI, &usage(100_000, 0))), 60);
        assert_eq!(
            total(&bill(&prices, SINGLE, &usage(50_000, 50_000))),
            20,
            "reads cost what writes cost"
        );
    }

    #[test]
    fn the_contract_storage_example_is_a_quarter() {
        // Empty for 29 days, 30 GB the whole last day of a 30-day month: 1 GB-month = $0.25.
        let month = MonthUsage {
            produced: 0,
            consumed: 0,
            byte_hours: 30 * (1 << 30) * 24,
            hours_in_month: 30 * 24,
        };
        let lines = bill(&PriceList::default(), SINGLE, &month);
        assert_eq!(lines[2].micros, 250_000);
        assert_eq!(lines[2].quantity, 1_000_000, "1 GB-month");
        assert_eq!(total(&lines), 25);
    }

    #[test]
    fn rounding_is_once_per_line_half_up() {
        assert_eq!(round_to_cents(5_000), 1, "half a cent rounds up");
        assert_eq!(round_to_cents(4_999), 0);
        assert_eq!(round_to_cents(15_000), 2);
        assert_eq!(round_to_cents(-5_000), -1);
        // 2,500 messages = 5,000 µ$ = half a cent on each of two lines: each line rounds up.
        let lines = bill(&PriceList::default(), SINGLE, &usage(2_500, 2_500));
        assert_eq!((lines[0].cents, lines[1].cents, total(&lines)), (1, 1, 2));
    }

    #[test]
    fn a_month_past_the_cap_gets_an_adjustment_to_exactly_the_cap() {
        let lines = bill(&PriceList::default(), SINGLE, &usage(70_000_000, 0)); // $140
        assert_eq!(lines.last().map(|l| l.kind), Some("cap_adjustment"));
        assert_eq!(lines.last().map(|l| l.cents), Some(-2_000));
        assert_eq!(total(&lines), 12_000);
        let multi = bill(&PriceList::default(), MULTI, &usage(70_000_000, 0)); // $420
        assert_eq!(total(&multi), 36_000);
    }

    #[test]
    fn a_budget_below_the_ceiling_is_the_cap() {
        let tariff = Tariff {
            budget_micros: 10 * DOLLAR,
            ..SINGLE
        };
        assert_eq!(
            PriceList::default().effective_cap_micros(tariff),
            10 * DOLLAR
        );
        assert_eq!(
            total(&bill(&PriceList::default(), tariff, &usage(10_000_000, 0))),
            1_000
        );
        let above = Tariff {
            budget_micros: 500 * DOLLAR,
            ..SINGLE
        };
        assert_eq!(
            PriceList::default().effective_cap_micros(above),
            120 * DOLLAR,
            "the ceiling still applies"
        );
    }

    #[test]
    fn free_clusters_are_never_charged() {
        let free = Tariff {
            free: true,
            ..SINGLE
        };
        let month = MonthUsage {
            produced: 9_000,
            consumed: 9_000,
            byte_hours: (1 << 30) * 30 * 24,
            hours_in_month: 30 * 24,
        };
        assert_eq!(total(&bill(&PriceList::default(), free, &month)), 0);
        assert_eq!(PriceList::default().free_daily_messages, 10_000);
    }

    #[test]
    fn february_and_thirty_one_day_months_divide_storage_by_their_hours() {
        assert_eq!(days_in_month(2026, 2), 28);
        assert_eq!(days_in_month(2028, 2), 29);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2026, 12), 31);
        let gb = 1i64 << 30;
        let prices = PriceList::default();
        // 1 GB every hour of the month is 1 GB-month whatever the month's length.
        assert_eq!(
            prices.storage_micros(SINGLE, gb * 28 * 24, 28 * 24),
            250_000
        );
        assert_eq!(
            prices.storage_micros(SINGLE, gb * 31 * 24, 31 * 24),
            250_000
        );
        // 1 GB for one day of February is more than one day of a 31-day month.
        assert!(
            prices.storage_micros(SINGLE, gb * 24, 28 * 24)
                > prices.storage_micros(SINGLE, gb * 24, 31 * 24)
        );
    }

    #[test]
    fn storage_is_billed_for_the_hours_it_was_held() {
        // 30 GB from 23:00 on the last day of a 30-day month: one hour of 30 GB, 30 GB-hours of
        // 720, 1/24 GB-month = 10,417 µ$ (a cent), not a whole day's (or month's) worth.
        let prices = PriceList::default();
        let gb = 1i64 << 30;
        assert_eq!(prices.storage_micros(SINGLE, 30 * gb, 30 * 24), 10_417);
        let lines = bill(
            &prices,
            SINGLE,
            &MonthUsage {
                byte_hours: 30 * gb,
                ..usage(0, 0)
            },
        );
        assert_eq!((lines[2].quantity, lines[2].cents), (41_666, 1));
    }

    proptest! {
        #[test]
        fn a_total_never_exceeds_the_cap_and_equals_the_sum_of_rounded_lines(
            produced in 0i64..10_000_000_000,
            consumed in 0i64..10_000_000_000,
            byte_hours in 0i64..(1i64 << 54),
            multizone: bool,
            budget_dollars in 0i64..1_000,
        ) {
            let tariff = Tariff { multizone, free: false, budget_micros: budget_dollars * DOLLAR };
            let prices = PriceList::default();
            let month = MonthUsage { produced, consumed, byte_hours, hours_in_month: 31 * 24 };
            let lines = bill(&prices, tariff, &month);
            let cap_cents = round_to_cents(prices.effective_cap_micros(tariff));
            prop_assert!(total(&lines) <= cap_cents);
            prop_assert_eq!(total(&lines), lines.iter().map(|l| round_to_cents(l.micros)).sum::<i64>());
            prop_assert!(lines.iter().all(|l| l.kind == "cap_adjustment" || l.cents >= 0));
        }
    }
}
