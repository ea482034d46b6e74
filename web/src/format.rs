//! Numbers, money, sizes and dates as the console shows them (UTC).

pub(crate) use capstan_api::invoice_page::dollars;

/// `1234567` as `1,234,567`.
pub(crate) fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in binary units with one decimal: `1.5 GiB`.
pub(crate) fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{} B", n.max(0))
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A price of one message in micro-dollars, as the price of 100,000 messages.
pub(crate) fn per_100k(message_micros: i64) -> String {
    // 100,000 messages × micros / 10,000 micros per cent = micros × 10 cents.
    dollars(message_micros.saturating_mul(10))
}

/// A duration in milliseconds as the largest whole unit: `7 days`, `12 hours`.
pub(crate) fn millis(ms: i64) -> String {
    const UNITS: [(i64, &str); 4] = [
        (86_400_000, "day"),
        (3_600_000, "hour"),
        (60_000, "minute"),
        (1_000, "second"),
    ];
    for (size, name) in UNITS {
        if ms >= size && ms % size == 0 {
            let n = ms / size;
            return format!("{n} {name}{}", if n == 1 { "" } else { "s" });
        }
    }
    format!("{ms} ms")
}

/// Unix seconds as `2026-11-26` (UTC).
pub(crate) fn date(unix_seconds: i64) -> String {
    capstan_api::usage::format_utc(unix_seconds)[..10].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_a_product() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(-1_234_567), "-1,234,567");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * (1 << 30)), "3.0 GiB");
        assert_eq!(per_100k(2), "$0.20");
        assert_eq!(per_100k(6), "$0.60");
        assert_eq!(millis(604_800_000), "7 days");
        assert_eq!(millis(3_600_000), "1 hour");
        assert_eq!(millis(1_500), "1500 ms");
        assert_eq!(date(0), "1970-01-01");
    }
}
