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
}

impl Decision {
    fn allow(reason: &Arc<str>, rule: &Arc<str>) -> Self {
        Self {
            allowed: true,
            reason: reason.clone(),
            rule: rule.clone(),
            unresolved: false,
        }
    }

    fn deny(reason: impl Into<Arc<str>>, rule: impl Into<Arc<str>>) -> Self {
        Self {
            allowed: false,
            reason: reason.into(),
            rule: rule.into(),
            unresolved: false,
        }
    }
}

impl Policy {
    /// Decides one call. `directory` maps zone and account names to ids.
    /// Rate budgets are only spent by calls that pass every other check.
    pub fn decide(
        &self,
        agent: &Agent,
        tool: &str,
        args: &Map<String, Value>,
        directory: &Directory,
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
        for constraint in &rule.constraints {
            if let Err(reason) = constraint.check(args.get(&constraint.arg)) {
                return Decision::deny(reason, constraint.source.clone());
            }
        }
        if let Err(reason) = agent.rates.take(endpoint.access == Access::Write) {
            return Decision::deny(reason, "limits");
        }
        Decision::allow(&rule.reason, &rule.rule)
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
    /// Checks an argument's value: a string, a list of strings, or a list
    /// of `{url: …}` objects (purge files). Absent fails closed.
    fn check(&self, value: Option<&Value>) -> Result<(), String> {
        let Some(value) = value else {
            return Err(format!(
                "the call gives no {}, which its rules limit ({})",
                self.arg,
                self.describe()
            ));
        };
        match value {
            Value::Array(items) => items.iter().try_for_each(|item| self.check_one(item)),
            single => self.check_one(single),
        }
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
    const MAX: usize = 80;
    let printable: String = text.chars().filter(|c| !c.is_control()).take(MAX).collect();
    if text.chars().count() > MAX {
        format!("{printable}…")
    } else {
        printable
    }
}

fn quote(text: &str) -> String {
    format!("\"{}\"", clip(text))
}
