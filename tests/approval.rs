//! Approval by the operator, end to end: the real server refuses a call
//! that needs approval with an id, the real `flaregate approve` decides it,
//! and only that exact call, by that agent, once, before it expires, goes
//! through. Nothing unapproved reaches the sandbox.

mod common;

use std::process::Command;

use common::{BIN, ServerProcess, call, text};
use serde_json::json;

const COM: &str = "023e105f4ecef8ad9ca31a8372d0c353";
const WWW: &str = "8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3";
const MX: &str = "3d2c1b0a99887766554433221100ffee";

const POLICY: &str = r#"
[[agent]]
id = "ops"
zones = ["example.com"]
grants = { dns = "full" }
approve = ["delete_*"]

[[agent]]
id = "other"
zones = ["example.com"]
grants = { dns = "full" }
approve = ["delete_*"]

[[agent]]
id = "quick"
zones = ["example.com"]
grants = { dns = "full" }
approve = ["delete_dns_record"]
approval_ttl = "1s"
"#;

/// Runs `flaregate <args> --audit-db <db>`; returns (success, stdout + stderr).
fn operator(server: &ServerProcess, args: &[&str]) -> (bool, String) {
    let output = Command::new(BIN)
        .args(args)
        .arg("--audit-db")
        .arg(&server.audit_db)
        .output()
        .expect("run flaregate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The approval id in a refusal's text.
fn approval_id(answer: &str) -> String {
    let start = answer.find("approval ").expect("an approval id") + "approval ".len();
    answer[start..start + 32].to_string()
}

fn delete(record: &str, id: Option<&str>) -> serde_json::Value {
    let mut args = json!({"zone_id": COM, "dns_record_id": record});
    if let Some(id) = id {
        args["approval_id"] = json!(id);
    }
    args
}

#[tokio::test]
async fn only_the_approved_call_by_its_agent_goes_through_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("approve.toml");
    std::fs::write(&policy, POLICY).expect("write");
    let server = ServerProcess::start(
        &["--sandbox", "--policies", policy.to_str().expect("utf-8")],
        &[],
    );
    let ops = server.connect("ops").await;
    let other = server.connect("other").await;
    let deletes = || async {
        server
            .sandbox_requests()
            .await
            .iter()
            .filter(|r| r.method == "DELETE")
            .count()
    };

    // The tool says it needs approval and takes an approval id.
    let tools = ops.list_all_tools().await.expect("tools");
    let tool = tools
        .iter()
        .find(|t| t.name == "delete_dns_record")
        .expect("visible");
    assert!(tool.input_schema["properties"].get("approval_id").is_some());

    let asked = call(&ops, "delete_dns_record", delete(WWW, None)).await;
    assert_eq!(asked.is_error, Some(true));
    let id = approval_id(&text(&asked));
    assert!(
        text(&asked).contains(&format!("flaregate approve {id}")),
        "{}",
        text(&asked)
    );
    // With the preview: what would be removed, for the agent and the person.
    let preview = asked.structured_content.clone().expect("the preview");
    assert_eq!(
        preview["changes"]["removed"]["name"], "www.example.com",
        "{preview}"
    );
    assert_eq!(
        preview["decision"]["would_be"],
        "allowed once a person approves it"
    );
    let (ok, listed) = operator(&server, &["approvals"]);
    assert!(
        ok && listed.contains(&id) && listed.contains("agent ops"),
        "{listed}"
    );
    assert!(
        listed.contains("www.example.com"),
        "the operator sees the preview: {listed}"
    );

    // Not yet approved.
    let early = call(&ops, "delete_dns_record", delete(WWW, Some(&id))).await;
    assert!(text(&early).contains("still waiting"), "{}", text(&early));

    let (ok, said) = operator(&server, &["approve", &id, "--by", "alice"]);
    assert!(ok, "{said}");

    // Another agent, another record, a made-up id: refused, nothing sent.
    let stolen = call(&other, "delete_dns_record", delete(WWW, Some(&id))).await;
    assert!(
        text(&stolen).contains("another agent, tool or arguments"),
        "{}",
        text(&stolen)
    );
    let changed = call(&ops, "delete_dns_record", delete(MX, Some(&id))).await;
    assert!(
        text(&changed).contains("another agent, tool or arguments"),
        "{}",
        text(&changed)
    );
    let forged = call(
        &ops,
        "delete_dns_record",
        delete(WWW, Some(&"0".repeat(32))),
    )
    .await;
    assert!(
        text(&forged).contains("no approval with this id"),
        "{}",
        text(&forged)
    );
    assert_eq!(deletes().await, 0);

    // The exact call goes through once.
    let done = call(&ops, "delete_dns_record", delete(WWW, Some(&id))).await;
    assert_ne!(done.is_error, Some(true), "{}", text(&done));
    assert_eq!(deletes().await, 1);
    let replay = call(&ops, "delete_dns_record", delete(WWW, Some(&id))).await;
    assert!(text(&replay).contains("used already"), "{}", text(&replay));

    // Rejected: refused.
    let asked = call(&ops, "delete_dns_record", delete(MX, None)).await;
    let rejected_id = approval_id(&text(&asked));
    assert!(operator(&server, &["reject", &rejected_id, "--by", "bob"]).0);
    let refused = call(&ops, "delete_dns_record", delete(MX, Some(&rejected_id))).await;
    assert!(
        text(&refused).contains("bob rejected it"),
        "{}",
        text(&refused)
    );

    // Expired: cannot be approved, and refused.
    let quick = server.connect("quick").await;
    let asked = call(&quick, "delete_dns_record", delete(MX, None)).await;
    let late_id = approval_id(&text(&asked));
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let (ok, said) = operator(&server, &["approve", &late_id]);
    assert!(!ok && said.contains("expired"), "{said}");
    let late = call(&quick, "delete_dns_record", delete(MX, Some(&late_id))).await;
    assert!(text(&late).contains("expired"), "{}", text(&late));
    assert_eq!(deletes().await, 1, "nothing unapproved reached the sandbox");

    // The story is in the chain: asked, refused, and the call approved by alice.
    let rows = server.audit_rows();
    let allowed: Vec<_> = rows
        .iter()
        .filter(|r| r.decision == "allow" && r.tool == "delete_dns_record")
        .collect();
    assert_eq!(allowed.len(), 1);
    assert!(
        allowed[0].reason.contains("approved by alice")
            && allowed[0].rule == format!("approval {id}"),
        "{allowed:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.reason.contains(&format!("approval {id}, valid for")))
    );
    let verdict = common::verify(&server.audit_db);
    assert!(
        matches!(verdict, flaregate::audit::Verdict::Valid { .. }),
        "{verdict:?}"
    );
}
