//! Agents reached by the organisation's login instead of a key: an
//! `[agent.oauth]` table names the tokens it stands for by their claims —
//! the subject, the client, a group, an email domain. A token matching no
//! agent gets nothing; one matching several is refused (no silent
//! precedence).

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

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
}
