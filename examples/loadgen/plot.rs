//! The latency plot: p50 and p99 against concurrent sessions, as SVG.

use crate::Row;

/// A plotted line: name, colour, dash pattern, and the value it draws.
type Series = (&'static str, &'static str, &'static str, fn(&Row) -> f64);

/// p50 and p99 latency against sessions (log scale), through flaregate,
/// through the peer gateway if one ran, through the bare MCP proxy, through
/// the bare proxy, and direct.
pub fn plot(rows: &[Row]) -> String {
    let (w, h, left, bottom, top, right) = (720.0, 420.0, 70.0, 60.0, 40.0, 170.0);
    let max_ms = rows
        .iter()
        .map(|r| {
            r.flaregate
                .p99_ms
                .max(r.direct.p99_ms)
                .max(r.mcp_proxy.p99_ms)
                .max(r.peer.as_ref().map_or(0.0, |p| p.p99_ms))
        })
        .fold(0.1, f64::max)
        * 1.1;
    let max_s = rows.iter().map(|r| r.sessions).max().unwrap_or(1).max(2) as f64;
    let x = |s: usize| left + (s as f64).ln() / max_s.ln() * (w - left - right);
    let y = |ms: f64| h - bottom - ms / max_ms * (h - bottom - top);
    let peer: [Series; 2] = [
        ("agentgateway p50", "#495057", "", |r| {
            r.peer.as_ref().map_or(0.0, |p| p.p50_ms)
        }),
        ("agentgateway p99", "#495057", "6,4", |r| {
            r.peer.as_ref().map_or(0.0, |p| p.p99_ms)
        }),
    ];
    let others: [Series; 6] = [
        ("bare MCP proxy p50", "#7048e8", "", |r| r.mcp_proxy.p50_ms),
        ("bare MCP proxy p99", "#7048e8", "6,4", |r| {
            r.mcp_proxy.p99_ms
        }),
        ("bare proxy p50", "#2b8a3e", "", |r| r.passthrough.p50_ms),
        ("bare proxy p99", "#2b8a3e", "6,4", |r| r.passthrough.p99_ms),
        ("direct p50", "#1c7ed6", "", |r| r.direct.p50_ms),
        ("direct p99", "#1c7ed6", "6,4", |r| r.direct.p99_ms),
    ];
    let flaregate: [Series; 2] = [
        ("flaregate p50", "#d9480f", "", |r| r.flaregate.p50_ms),
        ("flaregate p99", "#d9480f", "6,4", |r| r.flaregate.p99_ms),
    ];
    let with_peer = rows.iter().all(|r| r.peer.is_some());
    let series: Vec<&Series> = flaregate
        .iter()
        .chain(peer.iter().filter(|_| with_peer))
        .chain(others.iter())
        .collect();
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
    );
    svg += &format!(
        r#"<text x="{}" y="22" font-size="15">Latency per call against concurrent MCP sessions</text>"#,
        left
    );
    svg += &format!(
        r#"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="black"/>"#,
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    );
    for r in rows {
        svg += &format!(
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x(r.sessions),
            h - bottom + 18.0,
            r.sessions
        );
    }
    for i in 0..=5 {
        let ms = max_ms * i as f64 / 5.0;
        svg += &format!(
            r##"<text x="{}" y="{:.1}" text-anchor="end">{ms:.1}</text><line x1="{left}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="#eee"/>"##,
            left - 6.0,
            y(ms) + 4.0,
            y(ms),
            w - right,
            y(ms)
        );
    }
    svg += &format!(
        r#"<text x="{}" y="{}" text-anchor="middle">concurrent sessions (log scale)</text>"#,
        (left + w - right) / 2.0,
        h - 15.0
    );
    svg += &format!(
        r#"<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">milliseconds</text>"#,
        (top + h - bottom) / 2.0
    );
    for (i, &&(name, colour, dash, value)) in series.iter().enumerate() {
        let points: Vec<String> = rows
            .iter()
            .map(|r| format!("{:.1},{:.1}", x(r.sessions), y(value(r))))
            .collect();
        svg += &format!(
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}" points="{}"/>"#,
            points.join(" ")
        );
        let ly = top + 20.0 * i as f64;
        svg += &format!(
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/><text x="{}" y="{}">{name}</text>"#,
            w - right + 10.0,
            w - right + 35.0,
            w - right + 40.0,
            ly + 4.0
        );
    }
    svg + "</svg>\n"
}
