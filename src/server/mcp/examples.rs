//! Working GraphQL queries for one agent: the catalog's examples
//! (`[[endpoint.graphql.example]]`) with the agent's own zone or account
//! and today's dates put in, for its server instructions and the tool's
//! description. An example for a zone is left out for an agent with none.

use crate::catalog::Graphql;

/// Each example as "what it asks: `query`", for `zone` and `account`.
pub(super) fn for_agent(spec: &Graphql, zone: Option<&str>, account: Option<&str>) -> Vec<String> {
    let now = std::time::SystemTime::now();
    let day = |at: std::time::SystemTime| {
        humantime::format_rfc3339_seconds(at).to_string()[..10].to_string()
    };
    let today = day(now);
    let yesterday = day(now - std::time::Duration::from_secs(86_400));
    spec.examples
        .iter()
        .filter_map(|example| {
            let mut query = example
                .query
                .replace("{today}", &today)
                .replace("{yesterday}", &yesterday);
            for (placeholder, held) in [("{zone}", zone), ("{account}", account)] {
                if query.contains(placeholder) {
                    query = query.replace(placeholder, held?);
                }
            }
            Some(format!("{}: `{query}`", example.says))
        })
        .collect()
}
