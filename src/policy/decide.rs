//! The decision: may this agent make this call? Deny by default; the grant,
//! the zone or account scope, argument constraints and rate limits each
//! get a say, and the first "no" is the answer, with its reason.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::model::{Agent, Constraint, Policy};
use super::scope::{Directory, Scope, ScopeCheck, target_id};
use crate::catalog::{Access, Scope as EndpointScope};

/// The answer for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// In plain words: "its DNS grant is read".
    pub reason: Arc<str>,
    /// The rule that decided: "grants.dns = read", "policies/demo.toml:31".
    pub rule: Arc<str>,
    /// Denied only because a zone or account name in the agent's scope is
    /// not resolved yet; a fresher [`Directory`] may allow it.
    pub unresolved: bool,
    /// Not decided yet: the object the call acts on must be fetched (the
    /// endpoint's lookup) and the call decided again with it.
    pub needs_lookup: bool,
}

impl Decision {
    fn allow(reason: &Arc<str>, rule: &Arc<str>) -> Self {
        Self {
            allowed: true,
            reason: reason.clone(),
            rule: rule.clone(),
            unresolved: false,
            needs_lookup: false,
        }
    }

    fn deny(reason: impl Into<Arc<str>>, rule: impl Into<Arc<str>>) -> Self {
        Self {
            allowed: false,
            reason: reason.into(),
            rule: rule.into(),
            unresolved: false,
            needs_lookup: false,
        }
    }

    /// A denial for a reason found outside the policy (a failed lookup).
    pub fn deny_because(reason: impl Into<Arc<str>>, rule: impl Into<Arc<str>>) -> Self {
        Self::deny(reason, rule)
    }

    fn lookup_first() -> Self {
        let mut decision = Self::deny(
            "the object this call acts on must be checked first",
            "lookup",
        );
        decision.needs_lookup = true;
        decision
    }
}

impl Policy {
    /// Decides one call. `directory` maps zone and account names to ids;
    /// `current` is the object the call acts on, when the endpoint has a
    /// lookup and it was fetched. Rate budgets are only spent by calls that
    /// pass every other check.
    pub fn decide(
        &self,
        agent: &Agent,
        tool: &str,
        args: &Map<String, Value>,
        directory: &Directory,
        current: Option<&Map<String, Value>>,
    ) -> Decision {
        let Some(index) = self.catalog.index_of(tool) else {
            return Decision::deny(
                format!("there is no tool named {}", clip(tool)),
                "unknown tool",
            );
        };
        let rule = &agent.tools[index];
        if !rule.allowed {
            return Decision::deny(rule.reason.clone(), rule.rule.clone());
        }
        let endpoint = &self.catalog.endpoints()[index];
        if let Some(param) = endpoint.scope_param()
            && let Some(id) = target_id(args, &param.name)
        {
            let (scope, names, label, kind) = match endpoint.scope {
                EndpointScope::Zone => (
                    &agent.zones,
                    &directory.zone_ids,
                    directory.zone_label(id),
                    "zone",
                ),
                EndpointScope::Account => (
                    &agent.accounts,
                    &directory.account_ids,
                    directory.account_label(id),
                    "account",
                ),
            };
            if let Some(denied) = check_scope(scope, names, id, label, kind) {
                return denied;
            }
        }
        if let Some(lookup) = &endpoint.lookup {
            let wants_current = !rule.constraints.is_empty()
                || lookup.immutable.iter().any(|f| args.contains_key(f));
            match current {
                None if wants_current => return Decision::lookup_first(),
                Some(current) => {
                    for field in &lookup.immutable {
                        if let (Some(new), Some(old)) = (args.get(field), current.get(field))
                            && new != old
                        {
                            let note = endpoint
                                .deprecation
                                .as_deref()
                                .unwrap_or("it cannot be changed in place");
                            return Decision::deny(
                                format!(
                                    "the call would change {field} from {old} to {new}: {note}"
                                ),
                                format!("{tool}: {field} is immutable"),
                            );
                        }
                    }
                }
                None => {}
            }
        }
        for constraint in &rule.constraints {
            let now = current.and_then(|c| c.get(&constraint.arg));
            if let Err(reason) = constraint.check(args.get(&constraint.arg), now) {
                return Decision::deny(reason, constraint.source.clone());
            }
        }
        if let Err(reason) = agent.rates.take(endpoint.access == Access::Write) {
            return Decision::deny(reason, "limits");
        }
        Decision::allow(&rule.reason, &rule.rule)
    }
}

impl Policy {
    /// Keeps only the items inside the agent's scope in the result of a
    /// list that names no zone or account (list_zones, list_accounts), so
    /// an agent does not learn of zones and accounts it may not touch.
    /// Returns how many items were removed.
    pub fn retain_in_scope(
        &self,
        agent: &Agent,
        tool: &str,
        result: &mut Value,
        directory: &Directory,
    ) -> usize {
        let Some(endpoint) = self.catalog.endpoint(tool) else {
            return 0;
        };
        if endpoint.access != Access::Read || endpoint.scope_param().is_some() {
            return 0;
        }
        let (scope, names) = match endpoint.scope {
            EndpointScope::Zone => (&agent.zones, &directory.zone_ids),
            EndpointScope::Account => (&agent.accounts, &directory.account_ids),
        };
        let Value::Array(items) = result else {
            return 0;
        };
        let before = items.len();
        items.retain(|item| {
            let id = item["id"].as_str().unwrap_or_default();
            let name = item["name"].as_str().unwrap_or_default();
            scope.check(id, names) == ScopeCheck::Inside || scope.names(name)
        });
        before - items.len()
    }
}

fn check_scope(
    scope: &Scope,
    names: &std::collections::HashMap<String, String>,
    id: &str,
    label: &str,
    kind: &str,
) -> Option<Decision> {
    let outcome = scope.check(id, names);
    if outcome == ScopeCheck::Inside {
        return None;
    }
    let held = scope.describe();
    let reason = if held == "none" {
        format!(
            "{kind} {} is outside its {kind}s: it holds none",
            clip(label)
        )
    } else {
        format!("{kind} {} is outside its {kind}s ({held})", clip(label))
    };
    let mut decision = Decision::deny(reason, format!("{kind}s = [{held}]"));
    decision.unresolved = outcome == ScopeCheck::Unresolved;
    Some(decision)
}

impl Constraint {
    /// Checks the value the call gives and the value the object has now:
    /// both must pass, and at least one must be known (absent fails closed).
    /// A value is a string, a list of strings, or a list of `{url: …}`
    /// objects (purge files).
    fn check(&self, given: Option<&Value>, current: Option<&Value>) -> Result<(), String> {
        if given.is_none() && current.is_none() {
            return Err(format!(
                "the call gives no {}, which its rules limit ({})",
                self.arg,
                self.describe()
            ));
        }
        for value in [given, current].into_iter().flatten() {
            match value {
                Value::Array(items) => items.iter().try_for_each(|item| self.check_one(item))?,
                single => self.check_one(single)?,
            }
        }
        Ok(())
    }

    fn check_one(&self, value: &Value) -> Result<(), String> {
        let text = match value {
            Value::String(s) => s.as_str(),
            Value::Object(fields) => fields
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            _ => "",
        };
        if let Some(deny) = &self.deny
            && deny.is_match(text)
        {
            return Err(format!(
                "{} {} matches its denied values ({})",
                self.arg,
                quote(text),
                self.deny_text
            ));
        }
        if let Some(allow) = &self.allow
            && !allow.is_match(text)
        {
            return Err(format!(
                "{} {} is not among its allowed values ({})",
                self.arg,
                quote(text),
                self.allow_text
            ));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        match (self.allow_text.is_empty(), self.deny_text.is_empty()) {
            (false, true) => format!("allowed: {}", self.allow_text),
            (true, false) => format!("denied: {}", self.deny_text),
            _ => format!("allowed: {}; denied: {}", self.allow_text, self.deny_text),
        }
    }
}

/// Caller-chosen text in a reason, kept short and printable.
fn clip(text: &str) -> String {
    crate::text::clip(text, 80)
}

fn quote(text: &str) -> String {
    format!("\"{}\"", clip(text))
}
