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
approver = "client"

[[agent]]
id = "other"
zones = ["example.com"]
grants = { dns = "full" }
approve = ["delete_*"]
approver = "client"

[[agent]]
id = "quick"
zones = ["example.com"]
grants = { dns = "full" }
approve = ["delete_dns_record"]
approval_ttl = "1s"
"#;

/// The server with the approval policy (written into `dir`).
fn serve(dir: &tempfile::TempDir) -> ServerProcess {
    let policy = dir.path().join("approve.toml");
    std::fs::write(&policy, POLICY).expect("write");
    ServerProcess::start(
        &["--sandbox", "--policies", policy.to_str().expect("utf-8")],
        &[],
    )
}

/// The DELETE requests the sandbox received.
async fn deletes(server: &ServerProcess) -> usize {
    server
        .sandbox_requests()
        .await
        .iter()
        .filter(|r| r.method == "DELETE")
        .count()
}

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
    let server = serve(&dir);
    let ops = server.connect("ops").await;
    let other = server.connect("other").await;
    let deletes = || deletes(&server);

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
    // Asked again while it waits: the same request, not a second one.
    let again = call(&ops, "delete_dns_record", delete(WWW, None)).await;
    assert_eq!(approval_id(&text(&again)), id, "{}", text(&again));
    let (ok, listed) = operator(&server, &["approvals"]);
    assert!(
        ok && listed.contains(&id) && listed.contains("agent ops"),
        "{listed}"
    );
    assert_eq!(listed.matches("agent ops").count(), 1, "{listed}");
    // Readable: the request, the arguments as a table, the changes.
    assert!(
        listed.contains("request:   DELETE /zones/")
            && listed.contains(&format!("dns_record_id  {WWW}"))
            && listed.contains("changes:"),
        "{listed}"
    );
    let (ok, as_json) = operator(&server, &["approvals", "--json"]);
    let first: serde_json::Value =
        serde_json::from_str(as_json.lines().next().expect("a line")).expect("JSON");
    assert!(ok && first["id"] == id.as_str(), "{as_json}");
    assert_eq!(first["preview"]["arguments"]["dns_record_id"], WWW);
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

    // The operators' decisions reach the chain too (the server writes them
    // within seconds), bob's rejection although no one called again.
    let decided = wait_for_rows(&server, |rows| {
        rows.iter().any(|r| r.decision == "approved")
            && rows.iter().any(|r| r.decision == "rejected")
    });
    let approved = decided
        .iter()
        .find(|r| r.decision == "approved")
        .expect("row");
    assert!(
        approved.reason.starts_with("approved by alice at")
            && approved.rule == format!("approval {id}"),
        "{approved:?}"
    );
    let rejected = decided
        .iter()
        .find(|r| r.decision == "rejected")
        .expect("row");
    assert!(
        rejected.reason.starts_with("rejected by bob at")
            && rejected.rule == format!("approval {rejected_id}"),
        "{rejected:?}"
    );

    // `flaregate audit --approval ID` tells the story: asked, decided, done.
    let (ok, story) = operator(&server, &["audit", "--approval", &id]);
    assert!(ok, "{story}");
    let lines: Vec<&str> = story.lines().collect();
    assert!(
        lines[0].contains(&format!(
            "Approval {id}: agent ops asked to run delete_dns_record"
        )),
        "{story}"
    );
    assert!(
        lines[1].contains("approved by alice") && lines[1].contains("and used"),
        "{story}"
    );
    let asked_at = story
        .find("a person must approve this call first")
        .expect("the request");
    let decided_at = story.find("why: approved by alice").expect("the decision");
    let called_at = story.find("Cloudflare answered 200").expect("the call");
    assert!(asked_at < decided_at && decided_at < called_at, "{story}");

    let verdict = common::verify(&server.audit_db);
    assert!(
        matches!(verdict, flaregate::audit::ChainVerdict::Valid { .. }),
        "{verdict:?}"
    );
}

/// The audit rows once `ready` holds of them (the server writes decisions
/// made on the host every few seconds); fails after 30 s.
fn wait_for_rows(
    server: &ServerProcess,
    ready: impl Fn(&[flaregate::audit::Entry]) -> bool,
) -> Vec<flaregate::audit::Entry> {
    for _ in 0..300 {
        let rows = server.audit_rows();
        if ready(&rows) {
            return rows;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the rows never came: {:?}", server.audit_rows());
}

/// One stateless 2026-07-28 delete from a client that declares
/// elicitation; `round` adds the retry's `inputResponses` / `requestState`.
async fn modern_call(
    server: &ServerProcess,
    agent: &str,
    args: serde_json::Value,
    round: serde_json::Value,
) -> serde_json::Value {
    let elicits =
        json!({"io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}}});
    common::modern_call(
        &server.mcp_url,
        server.key(agent),
        ("delete_dns_record", args),
        elicits,
        round,
    )
    .await
}

/// The user's answer as the client sends it back.
fn answer(accept: bool) -> serde_json::Value {
    if accept {
        json!({"approve": {"action": "accept", "content": {"approve": true}}})
    } else {
        json!({"approve": {"action": "decline"}})
    }
}

fn result_text(result: &serde_json::Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_2026_07_28_client_is_asked_and_its_answer_is_bound_to_the_exact_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir);
    let deletes = || deletes(&server);

    // The first leg asks: input_required, the question carrying the preview.
    let asked = modern_call(&server, "ops", delete(WWW, None), json!({})).await;
    assert_eq!(asked["resultType"], "input_required", "{asked}");
    let state = asked["requestState"]
        .as_str()
        .expect("a request state")
        .to_string();
    let question = &asked["inputRequests"]["approve"];
    assert_eq!(question["method"], "elicitation/create", "{asked}");
    let message = question["params"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("delete_dns_record") && message.contains("www.example.com"),
        "{message}"
    );

    // The answer is bound to the call that asked: another record, another
    // agent, a made-up state are refused, and nothing is sent.
    let yes = |state: &str| json!({"inputResponses": answer(true), "requestState": state});
    let changed = modern_call(&server, "ops", delete(MX, None), yes(&state)).await;
    assert!(
        result_text(&changed).contains("another agent, tool or arguments"),
        "{changed}"
    );
    let stolen = modern_call(&server, "other", delete(WWW, None), yes(&state)).await;
    assert!(
        result_text(&stolen).contains("another agent, tool or arguments"),
        "{stolen}"
    );
    let forged = modern_call(&server, "ops", delete(WWW, None), yes(&"0".repeat(32))).await;
    assert!(
        result_text(&forged).contains("no approval with this id"),
        "{forged}"
    );
    let unanswered = modern_call(
        &server,
        "ops",
        delete(WWW, None),
        json!({"requestState": state}),
    )
    .await;
    assert!(
        result_text(&unanswered).contains("without its user's answer"),
        "{unanswered}"
    );
    assert_eq!(deletes().await, 0);

    // Yes: the call runs, once.
    let done = modern_call(&server, "ops", delete(WWW, None), yes(&state)).await;
    assert_ne!(done["isError"], true, "{done}");
    assert_eq!(deletes().await, 1);
    let replay = modern_call(&server, "ops", delete(WWW, None), yes(&state)).await;
    assert!(result_text(&replay).contains("used already"), "{replay}");

    // No: refused, and that request cannot be answered again.
    let asked = modern_call(&server, "ops", delete(MX, None), json!({})).await;
    let state = asked["requestState"]
        .as_str()
        .expect("a request state")
        .to_string();
    let no = json!({"inputResponses": answer(false), "requestState": state});
    let declined = modern_call(&server, "ops", delete(MX, None), no).await;
    assert!(
        result_text(&declined).contains("did not approve it (declined"),
        "{declined}"
    );
    let after = modern_call(&server, "ops", delete(MX, None), yes(&state)).await;
    assert!(result_text(&after).contains("rejected it"), "{after}");
    assert_eq!(deletes().await, 1, "nothing declined reached the sandbox");

    // Each step is in the chain, linked by the approval id.
    let rows = server.audit_rows();
    let allowed: Vec<_> = rows.iter().filter(|r| r.decision == "allow").collect();
    assert_eq!(allowed.len(), 1, "{rows:?}");
    assert!(
        allowed[0]
            .reason
            .starts_with("approved by the person at the client at"),
        "{allowed:?}"
    );
    let story: Vec<_> = rows.iter().filter(|r| r.rule == allowed[0].rule).collect();
    assert!(
        story[0].reason.contains("was asked to approve it"),
        "{story:?}"
    );
    let verdict = common::verify(&server.audit_db);
    assert!(
        matches!(verdict, flaregate::audit::ChainVerdict::Valid { .. }),
        "{verdict:?}"
    );
}
