//! The approvals inbox: live, decided by an approver, forged decisions refused.

use crate::common::{self, call, text};
use crate::{COM, WWW, csrf, start};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn an_approver_decides_in_the_console_and_forged_or_unentitled_changes_do_nothing() {
    let console = start();
    let ops = console.server.connect("ops").await;
    let delete = |approval: Option<&str>| {
        let mut args = json!({"zone_id": COM, "dns_record_id": WWW});
        if let Some(id) = approval {
            args["approval_id"] = json!(id);
        }
        args
    };
    // An open inbox hears of a new request at once.
    let viewer = console.sign_in(&console.viewer).await;
    let changes = console
        .http
        .get(format!(
            "{}/console/approvals/stream?pending=",
            console.admin
        ))
        .header("cookie", &viewer)
        .send()
        .await
        .expect("a stream");
    let asked = call(&ops, "delete_dns_record", delete(None)).await;
    assert_eq!(asked.is_error, Some(true));
    let said = text(&asked);
    let at = said.find("approval ").expect("an approval id") + 9;
    let id = said[at..at + 32].to_string();
    let heard = common::read_until(changes, &id).await;
    assert!(heard.contains("event: changed"), "{heard}");

    // The viewer sees it waiting, with no buttons, and may not decide.
    let (_, _, inbox) = console.page(&viewer, "/console/approvals").await;
    assert!(
        inbox.contains(&id) && inbox.contains("Waiting (1)"),
        "{inbox}"
    );
    assert!(!inbox.contains("value=\"approve\""), "{inbox}");
    assert!(
        inbox.contains("Asked by") && inbox.contains("no person named"),
        "a key names no person: {inbox}"
    );
    let token = csrf(&inbox);
    let approve = [("csrf", token.as_str()), ("decision", "approve")];
    assert_eq!(
        console.decide(&viewer, &id, &approve, &[]).await,
        StatusCode::FORBIDDEN
    );

    // The approver: without the form token, with another session's, or
    // from another origin, nothing changes.
    let approver = console.sign_in(&console.approver).await;
    let (_, _, inbox) = console.page(&approver, "/console/approvals").await;
    assert!(inbox.contains("value=\"approve\""), "{inbox}");
    let token = csrf(&inbox);
    for (form, headers, what) in [
        (vec![("decision", "approve")], vec![], "no token"),
        (
            vec![
                ("csrf", "0".repeat(64).leak() as &str),
                ("decision", "approve"),
            ],
            vec![],
            "a wrong token",
        ),
        (
            vec![("csrf", token.as_str()), ("decision", "approve")],
            vec![("origin", "https://evil.example")],
            "another origin",
        ),
        (
            vec![("csrf", token.as_str()), ("decision", "approve")],
            vec![("sec-fetch-site", "cross-site")],
            "a cross-site request",
        ),
    ] {
        assert_eq!(
            console.decide(&approver, &id, &form, &headers).await,
            StatusCode::FORBIDDEN,
            "{what}"
        );
    }
    let retried = call(&ops, "delete_dns_record", delete(Some(&id))).await;
    assert_eq!(
        retried.is_error,
        Some(true),
        "still pending: {}",
        text(&retried)
    );
    assert!(text(&retried).contains("waiting"), "{}", text(&retried));

    // A real decision, from the console's own page.
    let approve = [
        ("csrf", token.as_str()),
        ("decision", "approve"),
        ("note", "checked with\nthe zone's owner"),
    ];
    let status = console
        .decide(
            &approver,
            &id,
            &approve,
            &[("origin", console.admin.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, inbox) = console.page(&approver, "/console/approvals").await;
    assert!(
        inbox.contains("Waiting (0)") && inbox.contains("alice (console)"),
        "{inbox}"
    );
    let done = call(&ops, "delete_dns_record", delete(Some(&id))).await;
    assert_eq!(done.is_error, Some(false), "{}", text(&done));

    // The decision is in the chain under the operator's name.
    let rows = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let rows = console.server.audit_rows();
            if rows.iter().any(|r| r.decision == "approved") {
                return rows;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the decision is recorded");
    let decided = rows.iter().find(|r| r.decision == "approved").expect("row");
    assert!(
        decided.summary.contains("alice (console)"),
        "{}",
        decided.summary
    );
    assert!(
        decided
            .reason
            .ends_with(": \"checked with the zone's owner\""),
        "the note, on one line: {}",
        decided.reason
    );

    // Health: the state, the agent's calls of the last hour, the chart.
    let (status, _, health) = console.page(&viewer, "/console/health").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        health.contains("takes rows") && health.contains("answering"),
        "{health}"
    );
    assert!(health.contains("<svg"), "{health}");
    // Cloudflare's answers, the budget left, reloads.
    assert!(
        health.contains("2xx")
            && health.contains("requests free now, of ")
            && health.contains("since start, 0 failed"),
        "{health}"
    );
    assert!(
        health.contains("<th scope=\"row\">ops</th><td>1</td>"),
        "one allowed call: {health}"
    );
}

#[tokio::test]
async fn what_agents_wrote_is_inert_in_the_approvals_inbox_and_history() {
    let console = start();
    // editor writes markup and control characters into a record ...
    let editor = console.server.connect("editor").await;
    let hostile = "<script>alert(1)</script>\u{1b}[31m\"><img src=x onerror=alert(2)>";
    let created = call(
        &editor,
        "create_dns_record",
        json!({"zone_id": COM, "type": "TXT", "name": "hostile.example.com", "content": hostile}),
    )
    .await;
    assert_eq!(created.is_error, Some(false), "{}", text(&created));
    let id = created.structured_content.expect("structured")["result"]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    // ... and ops asks to delete it: the request's preview shows the record.
    let ops = console.server.connect("ops").await;
    let asked = call(
        &ops,
        "delete_dns_record",
        json!({"zone_id": COM, "dns_record_id": id}),
    )
    .await;
    assert_eq!(asked.is_error, Some(true), "{}", text(&asked));
    let approver = console.sign_in(&console.approver).await;
    let (_, _, inbox) = console.page(&approver, "/console/approvals").await;
    assert!(inbox.contains("Waiting (1)"), "{inbox}");
    let request = {
        let at = inbox.find("/console/approvals/").expect("a request") + 19;
        inbox[at..at + 32].to_string()
    };
    let token = csrf(&inbox);
    let status = console
        .decide(
            &approver,
            &request,
            &[
                ("csrf", token.as_str()),
                ("decision", "reject"),
                ("note", "<b>no</b>\u{7}"),
            ],
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, history) = console.page(&approver, "/console/approvals").await;
    for page in [&inbox, &history] {
        for raw in ["<script>alert", "<img src=x", "\u{1b}[", "<b>no", "\u{7}"] {
            assert!(!page.contains(raw), "{raw:?} rendered live: {page}");
        }
        assert_eq!(page.matches("<script").count(), 1, "{page}");
    }
    assert!(
        inbox.contains("&lt;script&gt;alert(1)"),
        "shown as text: {inbox}"
    );
}
