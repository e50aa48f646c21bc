//! A GraphQL query judged as a call's path is: every zone and account it
//! reaches (read by `graphql::read`) inside the agent's scope, and, where
//! the agent's limits say `analytics_max_days`, every dataset's time range
//! bounded and no longer. A query that cannot be read that way is refused
//! before anything is sent.

use serde_json::{Map, Value};

use super::decide::{Denial, DenyKind, Verdict, check_scope};
use super::graphql::{Dataset, read};
use super::model::Agent;
use super::scope::Directory;
use crate::catalog::{Graphql, Scope};

/// The refusal of a query that reaches outside the agent's scope or its
/// bounds, if it does.
pub(super) fn outside(
    agent: &Agent,
    spec: &Graphql,
    args: &Map<String, Value>,
    directory: &Directory,
) -> Option<Verdict> {
    let refuse = |why: String| {
        Some(Verdict::Deny(Denial::new(
            DenyKind::QueryRefused,
            format!("{why}; nothing was sent"),
            "analytics query",
        )))
    };
    let Some(query) = args.get(&spec.query).and_then(Value::as_str) else {
        return refuse(format!("`{}` must be the query's text", spec.query));
    };
    let empty = Map::new();
    let variables = match args.get(&spec.variables) {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(given)) => given,
        Some(_) => return refuse(format!("`{}` must be an object", spec.variables)),
    };
    let reading = match read(spec, query, variables) {
        Ok(reading) => reading,
        Err(why) => return refuse(why),
    };
    for (kind, tags) in [
        (Scope::Zone, &reading.zones),
        (Scope::Account, &reading.accounts),
    ] {
        for tag in tags {
            if let Some(denied) = check_scope(agent, kind, tag, directory) {
                return Some(denied);
            }
        }
    }
    if let Some(days) = agent.limits.analytics_max_days {
        for dataset in &reading.datasets {
            if let Err(why) = within_days(dataset, days) {
                return refuse(why);
            }
        }
    }
    None
}

/// Whether a dataset asks for a bounded time range of at most `days`.
fn within_days(dataset: &Dataset, days: u32) -> Result<(), String> {
    let name = &dataset.name;
    let (Some(from), Some(to)) = (&dataset.from, &dataset.to) else {
        return Err(format!(
            "{name} must bound its time (e.g. datetime_geq and datetime_lt in its filter): you may ask for at most {days} days"
        ));
    };
    let (Some(start), Some(end)) = (instant(from), instant(to)) else {
        return Err(format!(
            "{name}'s time range ({from} to {to}) is not in the form 2026-12-03 or 2026-12-03T00:00:00Z"
        ));
    };
    let asked = end.duration_since(start).unwrap_or_default();
    if asked.as_secs() > u64::from(days) * 86_400 {
        return Err(format!(
            "{name} asks for {:.1} days ({from} to {to}); you may ask for at most {days}",
            asked.as_secs_f64() / 86_400.0
        ));
    }
    Ok(())
}

/// A date or an RFC 3339 time, as an instant.
fn instant(text: &str) -> Option<std::time::SystemTime> {
    if text.len() == 10 {
        return humantime::parse_rfc3339(&format!("{text}T00:00:00Z")).ok();
    }
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(from: Option<&str>, to: Option<&str>) -> Dataset {
        Dataset {
            name: "httpRequestsAdaptiveGroups".into(),
            from: from.map(str::to_string),
            to: to.map(str::to_string),
        }
    }

    #[test]
    fn a_time_range_is_bounded_and_no_longer_than_allowed() {
        assert!(within_days(&dataset(Some("2026-12-03"), Some("2026-12-04")), 1).is_ok());
        assert!(
            within_days(
                &dataset(Some("2026-12-03T00:00:00Z"), Some("2026-12-03T12:00:00Z")),
                1
            )
            .is_ok()
        );
        let long =
            within_days(&dataset(Some("2026-11-01"), Some("2026-12-04")), 7).expect_err("33 days");
        assert!(long.contains("at most 7"), "{long}");
        assert!(within_days(&dataset(Some("2026-12-03"), None), 7).is_err());
        assert!(within_days(&dataset(Some("yesterday"), Some("today")), 7).is_err());
    }
}
