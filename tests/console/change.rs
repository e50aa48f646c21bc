//! Changing access: previewed as a diff, checked, written in place, recorded.

use crate::common;
use crate::start;
use reqwest::StatusCode;

#[tokio::test]
async fn an_admin_changes_access_through_a_checked_diff_and_the_chain_records_it() {
    let console = start();
    let change = "/console/access/change?agent=ops&group=zones&level=read";

    // Only an admin may.
    let approver = console.sign_in(&console.approver).await;
    let (status, _, _) = console.page(&approver, change).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let root = console.sign_in(&console.admin_key).await;
    let (_, _, access) = console.page(&root, "/console").await;
    assert!(access.contains("Preview the change"), "{access}");
    let (status, _, preview) = console.page(&root, change).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert!(
        preview.contains("-grants = { dns = &quot;full&quot; }  # kept by the console")
            && preview.contains("+grants = { dns = &quot;full&quot;, zones = &quot;read&quot; }  # kept by the console"),
        "the exact diff: {preview}"
    );
    assert!(
        preview.contains("It checks") && preview.contains("list_zones"),
        "{preview}"
    );
    let field = |name: &str| {
        let at = preview
            .find(&format!("name=\"{name}\" value=\""))
            .unwrap_or_else(|| panic!("{name}"))
            + name.len()
            + 15;
        preview[at..].split('"').next().expect("value").to_string()
    };
    let (csrf, digest) = (field("csrf"), field("digest"));
    let post = |form: Vec<(&'static str, String)>| {
        console
            .http
            .post(format!("{}/console/access/change", console.admin))
            .header("cookie", &root)
            .form(&form)
            .send()
    };
    let asked = |csrf: &str, digest: &str| {
        vec![
            ("csrf", csrf.to_string()),
            ("agent", "ops".to_string()),
            ("group", "zones".to_string()),
            ("level", "read".to_string()),
            ("digest", digest.to_string()),
        ]
    };
    let original = std::fs::read_to_string(&console.policy).expect("policy");

    // No form token: refused, nothing written.
    let forged = post(asked("", &digest)).await.expect("answers");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        std::fs::read_to_string(&console.policy).expect("policy"),
        original
    );

    // The file changed on disk since the preview: refused, the hand edit stays.
    let by_hand = format!("{original}\n# edited by hand meanwhile\n");
    std::fs::write(&console.policy, &by_hand).expect("edit");
    let stale = post(asked(&csrf, &digest)).await.expect("answers");
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    assert!(
        stale
            .text()
            .await
            .expect("body")
            .contains("changed since the preview")
    );
    assert_eq!(
        std::fs::read_to_string(&console.policy).expect("policy"),
        by_hand
    );
    std::fs::write(&console.policy, &original).expect("put back");

    // Confirmed: written in place, reloaded, recorded.
    let written = post(asked(&csrf, &digest)).await.expect("answers");
    assert_eq!(written.status(), StatusCode::SEE_OTHER);
    let now = std::fs::read_to_string(&console.policy).expect("policy");
    assert_eq!(
        now,
        original.replace(
            "grants = { dns = \"full\" }  # kept",
            "grants = { dns = \"full\", zones = \"read\" }  # kept"
        ),
        "only the grant moved; comments and layout kept"
    );
    let ops = console.server.connect("ops").await;
    let tools = ops.list_all_tools().await.expect("tools");
    assert!(
        tools.iter().any(|t| t.name == "list_zones"),
        "the new grant is in force"
    );
    let rows = console.server.audit_rows();
    let row = rows
        .iter()
        .find(|r| r.decision == "policy")
        .expect("a policy row");
    assert_eq!(row.agent, "ops");
    assert!(
        row.summary
            .starts_with("root (console) changed ops's grant on zones from off to read"),
        "{}",
        row.summary
    );
    // The chain, policy row included, verifies.
    let verified = std::process::Command::new(common::BIN)
        .args(["audit", "verify", "--audit-db"])
        .arg(&console.server.audit_db)
        .output()
        .expect("runs");
    assert!(verified.status.success(), "{}", common::said(&verified));
}

/// The hidden fields of the preview's "Write the change" form.
fn write_form(preview: &str) -> Vec<(String, String)> {
    let form = &preview[preview
        .find("action=\"/console/access/change\"")
        .expect("a write form")..];
    let form = &form[..form.find("</form>").expect("closed")];
    form.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|input| {
            let (name, rest) = input.split_once("\" value=\"").expect("value");
            let value = rest.split('"').next().expect("quoted");
            (name.to_string(), value.replace("&amp;", "&"))
        })
        .collect()
}

#[tokio::test]
async fn an_admin_changes_zones_and_rules_and_a_cell_opens_onto_what_is_behind_it() {
    let console = start();
    let root = console.sign_in(&console.admin_key).await;
    let (_, _, access) = console.page(&root, "/console").await;
    // ops's DNS cell opens in place: its tools, its zones, what needs a person.
    let cell = &access[access
        .find("<td class=\"level full\">")
        .expect("a full cell")..];
    let cell = &cell[..cell.find("</td>").expect("closed")];
    // An admin's cell carries the switches: each previews its change.
    assert!(
        cell.contains("name=\"level\" value=\"read\"")
            && cell.contains("name=\"level\" value=\"off\"")
            && !cell.contains("name=\"level\" value=\"full\""),
        "{cell}"
    );
    for behind in [
        "<details>",
        "example.com",
        "list_dns_records",
        "A person approves",
        "delete_dns_record",
    ] {
        assert!(cell.contains(behind), "{behind}: {cell}");
    }
    let original = std::fs::read_to_string(&console.policy).expect("policy");
    let write = |fields: Vec<(String, String)>| {
        console
            .http
            .post(format!("{}/console/access/change", console.admin))
            .header("cookie", &root)
            .form(&fields)
            .send()
    };

    // A zone added: the diff is one line, written in place, in force.
    let (status, _, preview) = console
        .page(
            &root,
            "/console/access/change?agent=ops&kind=zones&values=example.com%2C+example.org",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert!(
        preview.contains("-zones = [&quot;example.com&quot;]")
            && preview.contains("+zones = [&quot;example.com&quot;, &quot;example.org&quot;]")
            && preview.contains("It checks"),
        "{preview}"
    );
    let written = write(write_form(&preview)).await.expect("answers");
    assert_eq!(written.status(), StatusCode::SEE_OTHER);
    let now = std::fs::read_to_string(&console.policy).expect("policy");
    assert_eq!(
        now,
        original.replace(
            "zones = [\"example.com\"]\ngrants = { dns = \"full\" }  # kept",
            "zones = [\"example.com\", \"example.org\"]\ngrants = { dns = \"full\" }  # kept"
        )
    );
    let (_, _, access) = console.page(&root, "/console").await;
    assert!(access.contains("example.com, example.org"), "reloaded");

    // A rule on the group's record names: added after ops's entries, and
    // the agent's call outside it is refused by the new rule.
    let (_, _, preview) = console
        .page(
            &root,
            "/console/access/change?agent=ops&kind=constraint&group=dns&arg=name&allow=*.staging.example.com",
        )
        .await;
    assert!(
        preview.contains("+[[agent.constraint]]")
            && preview.contains("+group = &quot;dns&quot;")
            && preview.contains("+allow = [&quot;*.staging.example.com&quot;]"),
        "{preview}"
    );
    assert!(preview.contains("ops sees the same tools"), "{preview}");
    let written = write(write_form(&preview)).await.expect("answers");
    assert_eq!(written.status(), StatusCode::SEE_OTHER);
    let ops = console.server.connect("ops").await;
    let refused = crate::common::call(
        &ops,
        "create_dns_record",
        serde_json::json!({"zone_id": crate::COM, "type": "A", "name": "www.example.com", "content": "192.0.2.1"}),
    )
    .await;
    assert!(refused.is_error == Some(true), "{refused:?}");
    let said = crate::common::text(&refused);
    assert!(
        said.contains("*.staging.example.com"),
        "refused by the new rule: {said}"
    );

    // Whether ops may delete www.example.com depends on the record's name:
    // the question box says so and reads nothing, until asked to read it.
    let ask = format!(
        "/console/explain?agent=ops&tool=delete_dns_record&args={}",
        crate::percent(&format!(
            r#"{{"zone_id":"{}","dns_record_id":"{}"}}"#,
            crate::COM,
            crate::WWW
        ))
    );
    let (_, _, unread) = console.page(&root, &ask).await;
    assert!(
        unread.contains("undecided: ")
            && unread.contains("Nothing was read from Cloudflare")
            && unread.contains("Read what it acts on, then answer"),
        "{unread}"
    );
    let (_, _, read) = console.page(&root, &format!("{ask}&read=on")).await;
    assert!(
        read.contains("denied: ")
            && read.contains("*.staging.example.com")
            && read.contains(&format!(
                "Read to decide: <code>GET /zones/{}/dns_records/{}",
                crate::COM,
                crate::WWW
            )),
        "{read}"
    );

    // Taken out again: listed, previewed, written; the file is as it was
    // before the rule.
    let (_, _, listed) = console
        .page(&root, "/console/access/change?kind=unconstrain&agent=ops")
        .await;
    assert!(
        listed.contains("group dns, argument name, allow [&quot;*.staging.example.com&quot;]")
            && listed.contains("index=1"),
        "{listed}"
    );
    let (_, _, preview) = console
        .page(
            &root,
            "/console/access/change?kind=unconstrain&agent=ops&index=1",
        )
        .await;
    assert!(preview.contains("-[[agent.constraint]]"), "{preview}");
    write(write_form(&preview)).await.expect("answers");
    assert_eq!(
        std::fs::read_to_string(&console.policy).expect("policy"),
        now,
        "the rule's lines went, nothing else"
    );

    // A change that does not check is shown as such and cannot be written.
    let (_, _, preview) = console
        .page(
            &root,
            "/console/access/change?agent=ops&kind=constraint&group=dns&arg=no_such_argument&allow=x",
        )
        .await;
    assert!(preview.contains("It does not check"), "{preview}");
    assert!(!preview.contains("Write the change"), "{preview}");

    // Each change is one policy row in the chain, in words.
    let rows = console.server.audit_rows();
    let said: Vec<&str> = rows
        .iter()
        .filter(|r| r.decision == "policy")
        .map(|r| r.summary.as_str())
        .collect();
    assert_eq!(said.len(), 3, "{said:?}");
    assert!(
        said[0].starts_with(
            "root (console) changed ops's zones from example.com to example.com, example.org"
        ),
        "{said:?}"
    );
    assert!(
        said[1].starts_with("root (console) added a rule for ops: group dns, argument name"),
        "{said:?}"
    );
    assert!(
        said[2].starts_with("root (console) removed ops's rule: group dns"),
        "{said:?}"
    );
}
