//! The reader of GraphQL queries: what it finds, and what it refuses.

use super::*;
use serde_json::json;

fn spec() -> Graphql {
    Graphql {
        query: "query".into(),
        variables: "variables".into(),
        root: "viewer".into(),
        zones: Tagged {
            field: "zones".into(),
            filter: "filter".into(),
            tag: "zoneTag".into(),
            tags: "zoneTag_in".into(),
        },
        accounts: Tagged {
            field: "accounts".into(),
            filter: "filter".into(),
            tag: "accountTag".into(),
            tags: "accountTag_in".into(),
        },
        time_keys: vec!["datetime".into(), "date".into()],
        max_bytes: 8192,
        max_depth: 10,
        max_fields: 100,
        examples: Vec::new(),
    }
}

fn read_it(query: &str, variables: Value) -> Result<Reading, Refusal> {
    read(&spec(), query, variables.as_object().expect("an object"))
}

const Z: &str = "023e105f4ecef8ad9ca31a8372d0c353";

#[test]
fn zones_are_read_from_literals_variables_aliases_and_fragments() {
    let plain = format!(
        r#"{{ viewer {{ zones(filter: {{zoneTag: "{Z}"}}) {{ httpRequestsAdaptiveGroups(limit: 10, filter: {{datetime_geq: "2026-12-03T00:00:00Z", datetime_lt: "2026-12-04T00:00:00Z"}}) {{ count }} }} }} }}"#
    );
    let reading = read_it(&plain, json!({})).expect("reads");
    assert_eq!(reading.zones, vec![Z.to_string()]);
    assert_eq!(
        reading.datasets,
        vec![Dataset {
            name: "httpRequestsAdaptiveGroups".into(),
            from: Some("2026-12-03T00:00:00Z".into()),
            to: Some("2026-12-04T00:00:00Z".into())
        }]
    );
    let hidden = r#"query Q($z: String!, $f: ZoneFilter) { a: viewer { ...Z } }
        fragment Z on Viewer { ... on Viewer { b: zones(filter: {zoneTag_in: [$z, "other"]}) { x: firewallEventsAdaptive(limit: 1, filter: $f) { action } } } }"#;
    let reading = read_it(hidden, json!({"z": Z, "f": {"date_geq": "2026-12-01"}})).expect("reads");
    assert_eq!(reading.zones, vec![Z.to_string(), "other".to_string()]);
    assert_eq!(reading.datasets[0].from.as_deref(), Some("2026-12-01"));
}

#[test]
fn a_query_that_hides_or_spans_what_it_reads_is_refused() {
    let refused = |query: &str, variables: Value, says: &str| {
        let why = read_it(query, variables).expect_err(query);
        assert!(why.contains(says), "{query}: {why}");
    };
    refused(
        "{ viewer { zones { a { count } } } }",
        json!({}),
        "without a filter",
    );
    refused(
        r#"{ viewer { zones(filter: {zoneTag_gt: "a"}) { a { count } } } }"#,
        json!({}),
        "only by `zoneTag` or `zoneTag_in`",
    );
    refused(
        r#"{ viewer { zones(filter: $f) { a { count } } } }"#,
        json!({}),
        "not given",
    );
    refused(
        r#"{ viewer { zones(filter: {zoneTag: "a", OR: [{zoneTag: "b"}]}) { a { count } } } }"#,
        json!({}),
        "not `OR`",
    );
    refused(
        "mutation { deleteZone(id: 1) }",
        json!({}),
        "mutations are refused",
    );
    refused("subscription { s }", json!({}), "subscriptions are refused");
    refused(
        "query A { viewer { __typename } } query B { viewer { __typename } }",
        json!({}),
        "one operation",
    );
    refused(
        "{ viewer { budget } }",
        json!({}),
        "is not read through this tool",
    );
    refused("{ other }", json!({}), "a query starts at `viewer`");
    refused(
        "{ viewer { ...F } } fragment F on Viewer { ...F }",
        json!({}),
        "spreads itself",
    );
    refused("{ viewer { zones(", json!({}), "not valid GraphQL");
    let deep = format!(
        "{{ viewer {{ zones(filter: {{zoneTag: \"{Z}\"}}) {{ a {}{} }} }} }}",
        "{ b ".repeat(12),
        "}".repeat(12)
    );
    refused(&deep, json!({}), "deeper than");
    let wide = format!(
        "{{ viewer {{ zones(filter: {{zoneTag: \"{Z}\"}}) {{ a {{ {} }} }} }} }}",
        "c ".repeat(120)
    );
    refused(&wide, json!({}), "more than 100 fields");
    refused(&"#".repeat(9000), json!({}), "at most 8192");
}

#[test]
fn introspection_reads_no_data_and_is_allowed() {
    let reading = read_it(
        "{ __schema { types { name } } __type(name: \"Zone\") { name } }",
        json!({}),
    )
    .expect("introspection");
    assert!(reading.zones.is_empty() && reading.datasets.is_empty());
}
