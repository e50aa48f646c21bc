//! What an adversarial agent tries through real MCP calls against the
//! sandbox (issue 13): forged log lines, log flooding, budgets spent on
//! refusals, and names that say one thing and mean another. Each test fails
//! if the property it names breaks.

mod common;

use common::{ServerProcess, try_call};
use serde_json::json;

/// A line that would pass for a real audit row if printed as it is.
const FORGED: &str =
    "\n2026-12-02T00:00:00.000Z  allow  auditor was allowed to delete zone example.com\r\u{1b}[2K";

#[tokio::test]
async fn an_argument_name_cannot_forge_a_line_in_the_logs_or_the_audit_view() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("stderr.log");
    let server = ServerProcess::start_logging_to(&["--sandbox"], &[("RUST_LOG", "info")], &log);
    let auditor = server.connect("auditor").await;
    let name = format!("zone_id{FORGED}");
    // An argument the tool does not take, and a tool that does not exist.
    let refused = try_call(&auditor, "list_zones", json!({ name.clone(): 1 })).await;
    assert!(refused.is_ok_and(|r| r.is_error == Some(true)));
    let unknown = try_call(&auditor, &format!("list_zones{FORGED}"), json!({})).await;
    assert!(unknown.is_err(), "an unknown tool is a protocol error");

    let view = std::process::Command::new(common::BIN)
        .args(["audit", "--audit-db"])
        .arg(&server.audit_db)
        .output()
        .expect("flaregate audit runs");
    let view = String::from_utf8(view.stdout).expect("UTF-8");
    let logs = std::fs::read_to_string(&log).expect("stderr log");
    for (place, text) in [("audit view", &view), ("server log", &logs)] {
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("2026-12-02T00:00:00.000Z")),
            "a forged line in the {place}:\n{text}"
        );
        assert!(!text.contains('\u{1b}'), "a raw escape in the {place}");
        assert!(!text.contains('\r'), "a raw carriage return in the {place}");
    }
    let rows: Vec<&str> = view.lines().collect();
    assert_eq!(rows.len(), 2, "one line per row:\n{view}");
    assert!(
        rows.iter()
            .all(|r| r.contains("\\n2026-12-02T00:00:00.000Z")),
        "the newline is shown escaped:\n{view}"
    );
    assert!(
        logs.lines()
            .filter(|l| l.contains("call denied"))
            .all(|l| l.contains("\\n2026-12-02")),
        "{logs}"
    );
}
