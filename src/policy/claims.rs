//! Agents reached by the organisation's login instead of a key: an
//! `[agent.oauth]` table names the tokens it stands for by their claims —
//! the subject, the client, a group, an email domain. A token matching no
//! agent gets nothing; one matching several is refused (no silent
//! precedence).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::load::Problem;
use super::{Agent, Policy};

/// Which tokens an agent stands for. Each list given must match (one of
/// its entries); lists left out match any token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimMatch {
    /// The token's `sub`: these people or services.
    #[serde(default)]
    pub sub: Vec<String>,
    /// The client the token was issued to (`client_id`, else `azp`).
    #[serde(default)]
    pub client_id: Vec<String>,
    /// One of these groups in the group claim (`[auth.oauth] group_claim`,
    /// default `groups`; a list or one string).
    #[serde(default)]
    pub groups: Vec<String>,
    /// The domain of the token's `email` (only where `email_verified` is
    /// not false).
    #[serde(default)]
    pub email_domain: Vec<String>,
}

impl ClaimMatch {
    /// Whether it names nothing (and so would match every token).
    pub fn is_empty(&self) -> bool {
        self.sub.is_empty()
            && self.client_id.is_empty()
            && self.groups.is_empty()
            && self.email_domain.is_empty()
    }

    /// Whether every token this matches, `other` matches too: then a
    /// token of this agent's would match both and be refused, always.
    pub(super) fn within(&self, other: &ClaimMatch) -> bool {
        let narrower = |mine: &[String], theirs: &[String], same: fn(&str, &str) -> bool| {
            theirs.is_empty()
                || (!mine.is_empty() && mine.iter().all(|m| theirs.iter().any(|t| same(m, t))))
        };
        narrower(&self.sub, &other.sub, str::eq)
            && narrower(&self.client_id, &other.client_id, str::eq)
            && narrower(&self.groups, &other.groups, str::eq)
            && narrower(
                &self.email_domain,
                &other.email_domain,
                str::eq_ignore_ascii_case,
            )
    }

    /// Whether one token could match both: only a claim that has one value
    /// (the subject, the client, the email's domain), named by both with
    /// no value in common, keeps them apart; a token may be in many groups.
    pub(super) fn can_share(&self, other: &ClaimMatch) -> bool {
        let apart = |mine: &[String], theirs: &[String], same: fn(&str, &str) -> bool| {
            !mine.is_empty()
                && !theirs.is_empty()
                && !mine.iter().any(|m| theirs.iter().any(|t| same(m, t)))
        };
        !(apart(&self.sub, &other.sub, str::eq)
            || apart(&self.client_id, &other.client_id, str::eq)
            || apart(
                &self.email_domain,
                &other.email_domain,
                str::eq_ignore_ascii_case,
            ))
    }

    /// Whether the token's `claims` match.
    pub fn matches(&self, claims: &Map<String, Value>, group_claim: &str) -> bool {
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let one_of = |wanted: &[String], value: Option<&str>| {
            wanted.is_empty() || value.is_some_and(|v| wanted.iter().any(|w| w == v))
        };
        let client = text("client_id").or_else(|| text("azp"));
        let email_domain = (claims.get("email_verified") != Some(&Value::Bool(false)))
            .then(|| {
                text("email")
                    .and_then(|e| e.rsplit_once('@'))
                    .map(|(_, d)| d)
            })
            .flatten()
            .map(str::to_ascii_lowercase);
        let groups: Vec<&str> = match claims.get(group_claim) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(one)) => one.split_whitespace().collect(),
            _ => Vec::new(),
        };
        one_of(&self.sub, text("sub"))
            && one_of(&self.client_id, client)
            && (self.groups.is_empty() || self.groups.iter().any(|g| groups.contains(&g.as_str())))
            && (self.email_domain.is_empty()
                || email_domain
                    .is_some_and(|d| self.email_domain.iter().any(|w| w.eq_ignore_ascii_case(&d))))
    }
}

/// What the agents' claim matches say of each other, found once all are
/// read: a problem where every token of one agent matches another too (it
/// is never reached), a warning where one token could match two.
#[derive(Debug, Default)]
pub(super) struct Overlaps {
    pub(super) problems: Vec<Problem>,
    pub(super) warnings: Vec<String>,
}

/// The overlaps between `agents`, each written at `origins` (file, line).
pub(super) fn overlaps(agents: &[Agent], origins: &[(PathBuf, usize)]) -> Overlaps {
    let mut found = Overlaps::default();
    let matching: Vec<(usize, &ClaimMatch)> = agents
        .iter()
        .enumerate()
        .filter_map(|(i, agent)| {
            agent
                .oauth
                .as_ref()
                .filter(|m| !m.is_empty())
                .map(|m| (i, m))
        })
        .collect();
    let at = |i: usize| format!("{}:{}", origins[i].0.display(), origins[i].1);
    for (n, &(i, a)) in matching.iter().enumerate() {
        for &(j, b) in &matching[n + 1..] {
            let narrower = if a.within(b) {
                Some((i, j))
            } else if b.within(a) {
                Some((j, i))
            } else {
                None
            };
            if let Some((inner, outer)) = narrower {
                found.problems.push(Problem {
                    file: origins[inner].0.clone(),
                    line: origins[inner].1,
                    message: format!(
                        "every token agent `{}` matches, agent `{}` ({}) matches too: such a token is refused (no agent wins silently), so `{}` is never reached; make their [agent.oauth] differ in sub, client_id or email_domain",
                        agents[inner].id,
                        agents[outer].id,
                        at(outer),
                        agents[inner].id
                    ),
                });
            } else if a.can_share(b) {
                found.warnings.push(format!(
                    "{}: agents `{}` and `{}` ({}) can both match one token (one with {}): such a token is refused (no agent wins silently); if someone fits both, tell the agents apart by sub, client_id or email_domain",
                    at(i),
                    agents[i].id,
                    agents[j].id,
                    at(j),
                    both(a, b)
                ));
            }
        }
    }
    found
}

/// A token's claims that would match both, in words ("groups sre and dns").
fn both(a: &ClaimMatch, b: &ClaimMatch) -> String {
    let mut parts = Vec::new();
    for (name, mine, theirs) in [
        ("sub", &a.sub, &b.sub),
        ("client_id", &a.client_id, &b.client_id),
        ("groups", &a.groups, &b.groups),
        ("an email at", &a.email_domain, &b.email_domain),
    ] {
        let mut values: Vec<&str> = Vec::new();
        for value in mine.first().into_iter().chain(theirs.first()) {
            if !values.iter().any(|v| v.eq_ignore_ascii_case(value)) {
                values.push(value);
            }
        }
        if !values.is_empty() {
            parts.push(format!("{name} {}", values.join(" and ")));
        }
    }
    parts.join(", ")
}

impl Policy {
    /// The one agent a token with `claims` stands for; otherwise why not,
    /// naming `who` (the person and client the token names).
    pub fn agent_for_claims(
        &self,
        claims: &Map<String, Value>,
        group_claim: &str,
        who: &str,
    ) -> Result<&Agent, String> {
        let matched: Vec<&Agent> = self
            .agents
            .iter()
            .filter(|agent| {
                agent
                    .oauth
                    .as_ref()
                    .is_some_and(|m| m.matches(claims, group_claim))
            })
            .collect();
        match matched.as_slice() {
            [agent] => Ok(agent),
            [] => Err(format!(
                "the token is valid, but no agent in flaregate's policies stands for {who}: ask the operator for an [agent.oauth] entry that matches it"
            )),
            several => Err(format!(
                "the token of {who} matches several agents ({}): the policies must make exactly one match",
                several
                    .iter()
                    .map(|a| a.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().expect("an object").clone()
    }

    #[test]
    fn every_list_given_must_match() {
        let sre = ClaimMatch {
            groups: vec!["sre".into()],
            email_domain: vec!["example.com".into()],
            ..ClaimMatch::default()
        };
        let alice =
            claims(json!({"sub": "a", "email": "alice@Example.com", "groups": ["dev", "sre"]}));
        assert!(sre.matches(&alice, "groups"));
        let outsider = claims(json!({"sub": "m", "email": "mallory@evil.test", "groups": ["sre"]}));
        assert!(!sre.matches(&outsider, "groups"));
        let unverified =
            claims(json!({"email": "eve@example.com", "email_verified": false, "groups": "sre"}));
        assert!(!sre.matches(&unverified, "groups"));
        let roles = claims(json!({"email": "bob@example.com", "roles": "admin sre"}));
        assert!(sre.matches(&roles, "roles"));
        assert!(!sre.matches(&roles, "groups"));
        let by_client = ClaimMatch {
            client_id: vec!["claude".into()],
            ..ClaimMatch::default()
        };
        assert!(by_client.matches(&claims(json!({"azp": "claude"})), "groups"));
        assert!(!by_client.matches(&claims(json!({"client_id": "other"})), "groups"));
    }

    #[test]
    fn overlaps_are_told_apart_by_single_valued_claims_only() {
        let by = |sub: &[&str], client: &[&str], groups: &[&str]| ClaimMatch {
            sub: sub.iter().map(|s| s.to_string()).collect(),
            client_id: client.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            ..ClaimMatch::default()
        };
        let sre = by(&[], &[], &["sre"]);
        let sre_from_claude = by(&[], &["claude"], &["sre"]);
        let dns = by(&[], &[], &["dns"]);
        let alice = by(&["alice"], &[], &[]);
        let bob_from_vscode = by(&["bob"], &["vscode"], &[]);
        // Narrower: every token of sre_from_claude is also sre's.
        assert!(sre_from_claude.within(&sre));
        assert!(!sre.within(&sre_from_claude));
        assert!(sre.within(&sre));
        // Groups never keep two apart; a person may hold both.
        assert!(sre.can_share(&dns) && !sre.within(&dns));
        assert!(alice.can_share(&sre));
        // One subject, one client: these cannot meet.
        assert!(!alice.can_share(&bob_from_vscode));
        assert!(!sre_from_claude.can_share(&bob_from_vscode));
        let upper = ClaimMatch {
            email_domain: vec!["Example.com".into()],
            ..ClaimMatch::default()
        };
        let lower = ClaimMatch {
            email_domain: vec!["example.com".into()],
            ..ClaimMatch::default()
        };
        assert!(upper.within(&lower) && lower.within(&upper));
    }
}
