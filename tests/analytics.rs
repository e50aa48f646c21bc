//! GraphQL Analytics behind the policy, end to end against the sandbox: a
//! scoped agent's query for its zone is answered; queries that name
//! another zone, name none, hide one in a fragment, an alias or a
//! variable, mutate, or ask for more time than the agent may are refused
//! and nothing reaches upstream; an agent without the grant does not see
//! the tool; the endpoint's own quota is shared with a reserve.

mod common;

use common::{ServerProcess, call, text};
use serde_json::{Value, json};

const COM: &str = "023e105f4ecef8ad9ca31a8372d0c353";
const ORG: &str = "5a7805061c76ada191ed06f989cc3dac";

const POLICY: &str = r#"
[[agent]]
id = "ops-bot"
zones = ["example.com"]
grants = { analytics = "read" }
[agent.limits]
analytics_max_days = 2

[[agent]]
id = "wide"
zones = ["example.com"]
grants = { analytics = "read" }

[[agent]]
id = "dns-only"
zones = ["example.com"]
grants = { dns = "read" }
"#;

fn serve(dir: &tempfile::TempDir, catalog: Option<&std::path::Path>) -> ServerProcess {
    let policy = dir.path().join("analytics.toml");
    std::fs::write(&policy, POLICY).expect("policy");
    let mut args = vec!["--sandbox", "--policies", policy.to_str().expect("utf-8")];
    if let Some(catalog) = catalog {
        args.extend(["--catalog", catalog.to_str().expect("utf-8")]);
    }
    ServerProcess::start(&args, &[])
}

/// Requests per day for one zone, as the question "how many requests did
/// example.com serve yesterday" asks it.
const DAILY: &str = "query ($zone: String!, $from: Date!, $to: Date!) {
  viewer { zones(filter: {zoneTag: $zone}) {
    httpRequests1dGroups(limit: 1, filter: {date_geq: $from, date_lt: $to}) {
      dimensions { date } sum { requests bytes }
    }
  } }
}";

async fn graphql_requests(server: &ServerProcess) -> usize {
    server
        .sandbox_requests()
        .await
        .iter()
        .filter(|r| r.path == "/graphql")
        .count()
}

#[tokio::test]
async fn a_scoped_agent_reads_its_zones_analytics_and_nothing_else_reaches_upstream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir, None);
    let ops = server.connect("ops-bot").await;

    let answered = call(
        &ops,
        "query_analytics",
        json!({"query": DAILY, "variables": {"zone": COM, "from": "2026-12-03", "to": "2026-12-04"}}),
    )
    .await;
    assert_ne!(answered.is_error, Some(true), "{}", text(&answered));
    let result = &answered.structured_content.expect("structured")["result"];
    let day = &result["viewer"]["zones"][0]["httpRequests1dGroups"][0];
    assert_eq!(day["dimensions"]["date"], "2026-12-03", "{result}");
    let requests = day["sum"]["requests"].as_u64().expect("a count");
    assert!((24 * 800..24 * 1200).contains(&requests), "{requests}");
    assert_eq!(graphql_requests(&server).await, 1);
    let rows = server.audit_rows();
    let row = rows
        .iter()
        .find(|r| r.tool == "query_analytics")
        .expect("a row");
    assert!(
        row.summary.contains(
            "ops-bot was allowed to read analytics httpRequests1dGroups (2026-12-03 to 2026-12-04) on example.com"
        ),
        "{}",
        row.summary
    );

    // Each of these is refused by flaregate, and none is sent.
    let dataset = "httpRequestsAdaptiveGroups(limit: 10, filter: {datetime_geq: \"2026-12-03T00:00:00Z\", datetime_lt: \"2026-12-04T00:00:00Z\"}) { count }";
    let refused: Vec<(&str, String, Value, &str)> = vec![
        (
            "another zone",
            format!("{{ viewer {{ zones(filter: {{zoneTag: \"{ORG}\"}}) {{ {dataset} }} }} }}"),
            json!({}),
            "outside your zones",
        ),
        (
            "no zone named",
            format!("{{ viewer {{ zones {{ {dataset} }} }} }}"),
            json!({}),
            "zones(filter: {zoneTag: \"<id>\"})",
        ),
        (
            "a zone hidden in a fragment, behind an alias",
            format!(
                "{{ mine: viewer {{ zones(filter: {{zoneTag: \"{COM}\"}}) {{ {dataset} }} ...Other }} }} fragment Other on Viewer {{ theirs: zones(filter: {{zoneTag_in: [\"{ORG}\"]}}) {{ {dataset} }} }}"
            ),
            json!({}),
            "outside your zones",
        ),
        (
            "a zone in a variable",
            format!(
                "query ($z: String!) {{ viewer {{ zones(filter: {{zoneTag: $z}}) {{ {dataset} }} }} }}"
            ),
            json!({"z": ORG}),
            "outside your zones",
        ),
        (
            "a widened filter",
            format!(
                "{{ viewer {{ zones(filter: {{zoneTag: \"{COM}\", OR: [{{zoneTag: \"{ORG}\"}}]}}) {{ {dataset} }} }} }}"
            ),
            json!({}),
            "not `OR`",
        ),
        (
            "a mutation",
            "mutation { deleteEverything }".to_string(),
            json!({}),
            "mutations are refused",
        ),
        (
            "more days than the agent may ask for",
            format!(
                "{{ viewer {{ zones(filter: {{zoneTag: \"{COM}\"}}) {{ httpRequestsAdaptiveGroups(limit: 10, filter: {{datetime_geq: \"2026-11-01T00:00:00Z\", datetime_lt: \"2026-12-04T00:00:00Z\"}}) {{ count }} }} }} }}"
            ),
            json!({}),
            "at most 2",
        ),
        (
            "no time bound",
            format!(
                "{{ viewer {{ zones(filter: {{zoneTag: \"{COM}\"}}) {{ firewallEventsAdaptive(limit: 10) {{ action }} }} }} }}"
            ),
            json!({}),
            "must bound its time",
        ),
    ];
    for (what, query, variables, says) in &refused {
        let answer = call(
            &ops,
            "query_analytics",
            json!({"query": query, "variables": variables}),
        )
        .await;
        assert_eq!(answer.is_error, Some(true), "{what}: {}", text(&answer));
        assert!(text(&answer).contains(says), "{what}: {}", text(&answer));
    }
    assert_eq!(
        graphql_requests(&server).await,
        1,
        "no refused query reached upstream"
    );
    let denied = server
        .audit_rows()
        .iter()
        .filter(|r| r.tool == "query_analytics" && r.decision == "deny")
        .count();
    assert_eq!(denied, refused.len());

    // Introspection reads no data: allowed, and the sandbox answers it.
    let schema = call(
        &ops,
        "query_analytics",
        json!({"query": "{ __type(name: \"zone\") { name fields { name } } }"}),
    )
    .await;
    assert_ne!(schema.is_error, Some(true), "{}", text(&schema));
    assert!(text(&schema).contains("httpRequestsAdaptiveGroups"));

    // Cloudflare's own refusal comes back as an error: an unknown field.
    let unknown = call(
        &ops,
        "query_analytics",
        json!({"query": format!("{{ viewer {{ zones(filter: {{zoneTag: \"{COM}\"}}) {{ httpRequestsAdaptiveGroups(limit: 1, filter: {{datetime_geq: \"2026-12-03T00:00:00Z\", datetime_lt: \"2026-12-03T01:00:00Z\"}}) {{ nosuch }} }} }} }}")}),
    )
    .await;
    assert_eq!(unknown.is_error, Some(true));
    assert!(
        text(&unknown).contains("unknown field"),
        "{}",
        text(&unknown)
    );

    // The tool offers working examples for the agent's own zone: each runs.
    let tools = ops.list_all_tools().await.expect("tools");
    let tool = tools
        .iter()
        .find(|t| t.name == "query_analytics")
        .expect("the tool");
    let description = tool.description.as_deref().unwrap_or_default();
    let examples: Vec<&str> = description
        .split("Examples for your zones:")
        .nth(1)
        .expect("examples")
        .split('`')
        .skip(1)
        .step_by(2)
        .collect();
    assert_eq!(examples.len(), 3, "{description}");
    for example in examples {
        assert!(example.contains(COM), "{example}");
        let ran = call(&ops, "query_analytics", json!({"query": example})).await;
        assert_ne!(ran.is_error, Some(true), "{example}: {}", text(&ran));
    }
    let instructions = ops
        .peer_info()
        .and_then(|info| info.instructions.clone())
        .unwrap_or_default();
    assert!(
        instructions.contains("Queries query_analytics answers for you")
            && instructions.contains(COM),
        "{instructions}"
    );

    // Without analytics_max_days, Cloudflare's own bound answers: the
    // sandbox refuses a week and more of adaptive data, as Cloudflare does.
    let wide = server.connect("wide").await;
    let long = call(
        &wide,
        "query_analytics",
        json!({"query": format!("{{ viewer {{ zones(filter: {{zoneTag: \"{COM}\"}}) {{ httpRequestsAdaptiveGroups(limit: 10, filter: {{datetime_geq: \"2026-11-01T00:00:00Z\", datetime_lt: \"2026-12-01T00:00:00Z\"}}) {{ count }} }} }} }}")}),
    )
    .await;
    assert_eq!(long.is_error, Some(true));
    assert!(
        text(&long).contains("time range is too large"),
        "{}",
        text(&long)
    );

    // An agent without the grant does not see the tool.
    let dns = server.connect("dns-only").await;
    let tools = dns.list_all_tools().await.expect("tools");
    assert!(!tools.iter().any(|t| t.name == "query_analytics"));
}

#[tokio::test]
async fn the_analytics_quota_is_its_own_and_each_agent_keeps_to_its_share() {
    // The shipped catalog with a quota of 4 queries: with the default 25%
    // reserve an agent may make 3 of them.
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("quota-catalog");
    std::fs::create_dir(&catalog).expect("mkdir");
    for entry in std::fs::read_dir(common::shipped("catalog")).expect("catalog") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let text = text.replace(
            "quota = { requests = 320, per_seconds = 300 }",
            "quota = { requests = 4, per_seconds = 300 }",
        );
        std::fs::write(catalog.join(path.file_name().expect("name")), text).expect("write");
    }
    let server = serve(&dir, Some(&catalog));
    let ops = server.connect("ops-bot").await;
    let query = json!({"query": DAILY, "variables": {"zone": COM, "from": "2026-12-03", "to": "2026-12-04"}});
    for n in 0..3 {
        let answer = call(&ops, "query_analytics", query.clone()).await;
        assert_ne!(answer.is_error, Some(true), "query {n}: {}", text(&answer));
    }
    let over = call(&ops, "query_analytics", query.clone()).await;
    assert_eq!(over.is_error, Some(true));
    assert!(
        text(&over).contains("your share of this API's quota") && text(&over).contains("retry in"),
        "{}",
        text(&over)
    );
    assert_eq!(
        graphql_requests(&server).await,
        3,
        "the fourth was not sent"
    );
}
