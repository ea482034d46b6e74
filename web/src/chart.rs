//! Bar charts drawn on the server as inline SVG: no JavaScript, and they print.

use std::fmt::Write;

/// One series of bars; its CSS class gives its colour.
#[derive(Debug)]
pub(crate) struct Series<'a> {
    /// Shown in each bar's tooltip.
    pub name: &'a str,
    /// `bar-produced`, `bar-consumed`, `bar-storage`.
    pub class: &'a str,
    /// One value per label.
    pub values: Vec<i64>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The smallest "round" number (1, 2 or 5 times a power of ten) at or above `value`.
fn nice_ceiling(value: i64) -> i64 {
    let value = value.max(1);
    let mut power = 1i64;
    while power.saturating_mul(10) <= value {
        power = power.saturating_mul(10);
    }
    [1, 2, 5, 10]
        .into_iter()
        .map(|m| power.saturating_mul(m))
        .find(|candidate| *candidate >= value)
        .unwrap_or(i64::MAX)
}

/// Grouped bars, one group per label, with a labelled y axis. `label` names the chart for
/// screen readers; `format` writes values on the axis and in tooltips.
pub(crate) fn bars(
    label: &str,
    labels: &[String],
    series: &[Series<'_>],
    format: fn(i64) -> String,
) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0);
    let top = nice_ceiling(max) as f64;
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let groups = labels.len().max(1) as f64;
    let group_width = plot_width / groups;
    let bar_width = group_width * 0.8 / series.len().max(1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}" preserveAspectRatio="xMidYMid meet">"#,
        escape(label)
    );
    for step in 0..=2 {
        let value = top * f64::from(step) / 2.0;
        let y = TOP + plot_height - plot_height * f64::from(step) / 2.0;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            escape(&format(value as i64))
        );
    }
    // Label every day on a phone-width chart would overlap; every few days reads well.
    let every = (labels.len() / 10).max(1);
    for (i, text) in labels.iter().enumerate() {
        let x0 = LEFT + group_width * i as f64 + group_width * 0.1;
        for (j, s) in series.iter().enumerate() {
            let value = s.values.get(i).copied().unwrap_or(0);
            let height = if top > 0.0 {
                plot_height * value as f64 / top
            } else {
                0.0
            };
            let _ = write!(
                svg,
                r#"<rect class="{}" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>{}: {} {}</title></rect>"#,
                escape(s.class),
                x0 + bar_width * j as f64,
                TOP + plot_height - height,
                bar_width.max(1.0),
                height,
                escape(text),
                escape(&format(value)),
                escape(s.name)
            );
        }
        if i % every == 0 {
            let _ = write!(
                svg,
                r#"<text class="axis" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                LEFT + group_width * (i as f64 + 0.5),
                HEIGHT - 8.0,
                escape(text)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round_numbers() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(200), 200);
        assert_eq!(nice_ceiling(201), 500);
    }

    #[test]
    fn bars_are_scaled_to_the_axis_and_labelled() {
        let svg = bars(
            "Messages per day",
            &["1".into(), "2".into()],
            &[Series {
                name: "produced",
                class: "bar-produced",
                values: vec![50, 100],
            }],
            |v| v.to_string(),
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"aria-label="Messages per day""#));
        assert!(svg.contains("<title>2: 100 produced</title>"));
        // 100 is the top of the axis: that bar fills the plot's height.
        let full = format!(r#"height="{:.1}""#, HEIGHT - TOP - BOTTOM);
        assert!(svg.contains(&full), "{svg}");
    }
}
