//! Undo from a row, after its preview, recorded as the operator.

use crate::common::{call, text};
use crate::{COM, Console, csrf, start};
use reqwest::StatusCode;
use serde_json::json;

/// Creates an A record as `agent`; the id of the create's audit row.
async fn create_record(
    console: &Console,
    agent: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    name: &str,
    content: &str,
) -> i64 {
    let created = call(
        agent,
        "create_dns_record",
        json!({"zone_id": COM, "type": "A", "name": name, "content": content}),
    )
    .await;
    assert_eq!(created.is_error, Some(false), "{}", text(&created));
    console
        .server
        .audit_rows()
        .iter()
        .find(|r| r.tool == "create_dns_record")
        .expect("the create's row")
        .id
}

#[tokio::test]
async fn an_admin_undoes_a_row_after_its_preview_and_the_undo_names_the_operator() {
    let console = start();
    let editor = console.server.connect("editor").await;
    let row = create_record(&console, &editor, "undo-me.example.com", "192.0.2.7").await;
    let deletes = || async {
        console
            .server
            .sandbox_requests()
            .await
            .iter()
            .filter(|r| r.method == "DELETE")
            .count()
    };

    let approver = console.sign_in(&console.approver).await;
    let (status, _, _) = console
        .page(&approver, &format!("/console/log/{row}/undo"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let root = console.sign_in(&console.admin_key).await;
    let (_, _, detail) = console.page(&root, &format!("/console/log/{row}")).await;
    assert!(detail.contains("Undo this call"), "{detail}");
    let (status, _, preview) = console
        .page(&root, &format!("/console/log/{row}/undo"))
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert!(
        preview.contains("delete_dns_record") && preview.contains("undo-me.example.com"),
        "{preview}"
    );
    assert_eq!(deletes().await, 0, "a preview sends nothing");
    let token = csrf(&preview);

    let forged = console
        .http
        .post(format!("{}/console/log/{row}/undo", console.admin))
        .header("cookie", &root)
        .form(&[("csrf", "")])
        .send()
        .await
        .expect("answers");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(deletes().await, 0, "a refused undo sends nothing");

    let undone = console
        .http
        .post(format!("{}/console/log/{row}/undo", console.admin))
        .header("cookie", &root)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .expect("answers");
    let status = undone.status();
    let said = undone.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "{said}");
    assert_eq!(deletes().await, 1, "the record created is deleted");
    let rows = console.server.audit_rows();
    let undo = rows
        .iter()
        .find(|r| r.tool == "delete_dns_record" && r.decision == "allow")
        .expect("the undo's row");
    assert!(
        undo.summary.starts_with("root (console) as editor"),
        "{}",
        undo.summary
    );
}

#[tokio::test]
async fn an_undo_whose_restoring_call_needs_a_person_is_approved_by_the_admin_who_confirms_it() {
    let console = start();
    // ops has a person approve each delete_dns_record: undoing its create
    // is one.
    let ops = console.server.connect("ops").await;
    let row = create_record(&console, &ops, "approve-undo.example.com", "192.0.2.8").await;
    let root = console.sign_in(&console.admin_key).await;
    let (_, _, preview) = console
        .page(&root, &format!("/console/log/{row}/undo"))
        .await;
    assert!(
        preview.contains("ops's policy has a person approve delete_dns_record")
            && preview.contains("as root (console)"),
        "{preview}"
    );
    let undone = console
        .http
        .post(format!("{}/console/log/{row}/undo", console.admin))
        .header("cookie", &root)
        .form(&[("csrf", csrf(&preview).as_str())])
        .send()
        .await
        .expect("answers");
    let status = undone.status();
    let said = undone.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "{said}");
    assert!(said.contains("Cloudflare answered"), "{said}");
    // The record is gone, and the approval is in the history in root's name.
    let listed = call(&ops, "list_dns_records", json!({"zone_id": COM})).await;
    assert!(
        !text(&listed).contains("approve-undo.example.com"),
        "{}",
        text(&listed)
    );
    let (_, _, history) = console.page(&root, "/console/approvals").await;
    assert!(
        history.contains("root (console)")
            && history.contains("confirmed with its preview in the console"),
        "{history}"
    );
    let rows = console.server.audit_rows();
    let deleted = rows
        .iter()
        .find(|r| r.tool == "delete_dns_record" && r.decision == "allow")
        .expect("the restoring call's row");
    assert!(
        deleted.reason.contains("approved by root (console)"),
        "{}",
        deleted.reason
    );
}
