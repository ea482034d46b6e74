//! A printable HTML page of an invoice (the console links to it; browsers print it to PDF).

use serde_json::Value;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Cents as dollars with a sign: `$1.05`, `−$20.00`.
pub fn dollars(cents: i64) -> String {
    format!(
        "{}${}.{:02}",
        if cents < 0 { "−" } else { "" },
        cents.abs() / 100,
        cents.abs() % 100
    )
}

/// What an invoice line is for, in words.
pub fn describe(kind: &str, quantity: i64) -> String {
    match kind {
        "produced" => format!("{quantity} messages produced"),
        "consumed" => format!("{quantity} messages consumed"),
        "storage" => format!(
            "storage, {}.{:06} GB-month",
            quantity / 1_000_000,
            quantity % 1_000_000
        ),
        "cap_adjustment" => "price cap adjustment".to_owned(),
        other => escape(other),
    }
}

/// Renders an invoice (the JSON of the billing source) as a self-contained HTML page.
pub fn render(invoice: &Value) -> String {
    let text = |key: &str| escape(invoice[key].as_str().unwrap_or_default());
    let number = invoice["number"]
        .as_i64()
        .map(|n| format!("#{n}"))
        .unwrap_or_else(|| "draft".to_owned());
    let mut rows = String::new();
    for line in invoice["lines"].as_array().into_iter().flatten() {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"amount\">{}</td></tr>\n",
            escape(line["cluster_name"].as_str().unwrap_or_default()),
            describe(
                line["kind"].as_str().unwrap_or_default(),
                line["quantity"].as_i64().unwrap_or(0)
            ),
            dollars(line["cents"].as_i64().unwrap_or(0))
        ));
    }
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Capstan invoice {number} — {month}</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; color: #1a1a1a; }}
h1 {{ font-size: 1.4rem; margin-bottom: .25rem; }}
.meta {{ color: #555; margin-bottom: 1.5rem; }}
table {{ width: 100%; border-collapse: collapse; }}
th, td {{ text-align: left; padding: .45rem .5rem; border-bottom: 1px solid #ddd; }}
.amount {{ text-align: right; font-variant-numeric: tabular-nums; }}
tfoot td {{ font-weight: 600; border-bottom: none; }}
@media print {{ body {{ margin: 0; }} }}
</style>
</head>
<body>
<h1>Invoice {number}</h1>
<p class="meta">Period {month} (UTC) · state {state} · invoice id {id}</p>
<table>
<thead><tr><th>Cluster</th><th>Item</th><th class="amount">Amount</th></tr></thead>
<tbody>
{rows}</tbody>
<tfoot><tr><td></td><td>Total</td><td class="amount">{total}</td></tr></tfoot>
</table>
</body>
</html>
"#,
        month = text("month"),
        state = text("state"),
        id = text("id"),
        total = dollars(invoice["total_cents"].as_i64().unwrap_or(0)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_dollars_and_text_is_escaped() {
        let invoice = serde_json::json!({
            "id": "i", "month": "2026-11", "number": 7, "state": "open", "total_cents": 12000,
            "lines": [
                { "cluster_name": "<b>x</b>", "kind": "produced", "quantity": 70000000, "cents": 14000 },
                { "cluster_name": "<b>x</b>", "kind": "cap_adjustment", "quantity": 0, "cents": -2000 }
            ]
        });
        let page = render(&invoice);
        assert!(page.contains("Invoice #7"));
        assert!(page.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(!page.contains("<b>x</b>"));
        assert!(page.contains("$140.00") && page.contains("−$20.00") && page.contains("$120.00"));
    }
}
