//! The decision: may this agent make this call? Deny by default; the grant,
//! the zone or account scope, argument constraints and rate limits each
//! get a say, and the first "no" is the answer, with its reason.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::model::{Agent, Constraint, Policy};
use super::scope::{Directory, ScopeCheck, target_id};
use crate::catalog::{Access, Scope as EndpointScope};

/// What the policy says of one call. Deciding has no side effects: budgets
/// are spent afterwards, in one step, by the caller (`budget.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow {
        /// In plain words: "your DNS grant is full".
        reason: Arc<str>,
        /// The rule that decided: "grants.dns = full".
        rule: Arc<str>,
    },
    Deny(Denial),
    /// Not decided yet: the object the call acts on must be fetched (the
    /// endpoint's lookup) and the call decided again with it.
    NeedsLookup,
}

/// Why a call is refused: a closed kind (what is counted and shown), the
/// words for the agent and the log, and the rule that said no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub kind: DenyKind,
    pub reason: Arc<str>,
    pub rule: Arc<str>,
}

/// The kinds of refusal. Counted and shown by kind, never by free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyKind {
    /// No such tool, or one the agent may not see: the same to the agent.
    UnknownTool,
    /// The arguments do not fit the tool's schema or Cloudflare's syntax.
    InvalidArguments,
    /// The agent's grant does not cover the tool.
    NotGranted,
    /// The zone or account is outside the agent's scope.
    OutsideScope,
    /// A zone or account name in the agent's scope is not resolved (yet).
    Unresolved,
    /// An argument (or the object's current value) is outside a constraint.
    Constraint,
    /// The call would change a field Cloudflare does not change in place.
    Immutable,
    /// The object the call acts on could not be fetched to check it.
    LookupFailed,
    /// One of the agent's budgets is spent.
    OverLimit,
    /// A person must approve the call first (an approval id was issued).
    ApprovalRequired,
    /// The approval id given does not let this call through.
    ApprovalRefused,
    /// The state before a write could not be kept for undo, and the
    /// policy requires it (`snapshots = "required"`).
    SnapshotFailed,
    /// An undo that cannot run: the row has nothing to undo, or what it
    /// changed was changed again since (without `force`).
    UndoRefused,
    /// The last policy reload failed and the operator chose to refuse
    /// calls until one loads (`on_reload_error = "refuse"`).
    PolicyStale,
    /// The caller's OAuth token allows reading only; the call writes.
    InsufficientScope,
    /// A GraphQL query that does not name the zones or accounts it reads,
    /// writes, or exceeds its bounds.
    QueryRefused,
}

impl DenyKind {
    /// A short stable name, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyKind::UnknownTool => "unknown_tool",
            DenyKind::InvalidArguments => "invalid_arguments",
            DenyKind::NotGranted => "not_granted",
            DenyKind::OutsideScope => "outside_scope",
            DenyKind::Unresolved => "unresolved",
            DenyKind::Constraint => "constraint",
            DenyKind::Immutable => "immutable",
            DenyKind::LookupFailed => "lookup_failed",
            DenyKind::OverLimit => "over_limit",
            DenyKind::ApprovalRequired => "approval_required",
            DenyKind::ApprovalRefused => "approval_refused",
            DenyKind::SnapshotFailed => "snapshot_failed",
            DenyKind::UndoRefused => "undo_refused",
            DenyKind::PolicyStale => "policy_stale",
            DenyKind::InsufficientScope => "insufficient_scope",
            DenyKind::QueryRefused => "query_refused",
        }
    }
}

impl Denial {
    pub fn new(kind: DenyKind, reason: impl Into<Arc<str>>, rule: impl Into<Arc<str>>) -> Self {
        Self {
            kind,
            reason: reason.into(),
            rule: rule.into(),
        }
    }
}

impl Verdict {
    fn deny(kind: DenyKind, reason: impl Into<Arc<str>>, rule: impl Into<Arc<str>>) -> Self {
        Verdict::Deny(Denial::new(kind, reason, rule))
    }

    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allow { .. })
    }

    /// The reason in plain words (for a pending lookup, that it is pending).
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Allow { reason, .. } => reason,
            Verdict::Deny(denial) => &denial.reason,
            Verdict::NeedsLookup => "the object this call acts on must be checked first",
        }
    }

    pub fn rule(&self) -> &str {
        match self {
            Verdict::Allow { rule, .. } => rule,
            Verdict::Deny(denial) => &denial.rule,
            Verdict::NeedsLookup => "lookup",
        }
    }

    /// The kind of refusal, if this is one.
    pub fn deny_kind(&self) -> Option<DenyKind> {
        match self {
            Verdict::Deny(denial) => Some(denial.kind),
            _ => None,
        }
    }
}

impl Policy {
    /// Decides one call. `directory` maps zone and account names to ids;
    /// `current` is the object the call acts on, when the endpoint has a
    /// lookup and it was fetched. Spends nothing.
    pub fn decide(
        &self,
        agent: &Agent,
        tool: &str,
        args: &Map<String, Value>,
        directory: &Directory,
        current: Option<&Map<String, Value>>,
    ) -> Verdict {
        let Some(index) = self.catalog.index_of(tool) else {
            return Verdict::deny(
                DenyKind::UnknownTool,
                format!("there is no tool named {}", clip(tool)),
                "unknown tool",
            );
        };
        let rule = &agent.tools[index];
        if !rule.allowed {
            return Verdict::deny(DenyKind::NotGranted, rule.reason.clone(), rule.rule.clone());
        }
        let endpoint = &self.catalog.endpoints()[index];
        if let Some(param) = endpoint.scope_param()
            && let Some(kind) = endpoint.scope()
            && let Some(id) = target_id(args, &param.name)
            && let Some(denied) = check_scope(agent, kind, id, directory)
        {
            return denied;
        }
        // Zones and accounts its arguments name, judged like the path's.
        if let Some(denied) = super::named::outside(agent, endpoint, args, directory) {
            return denied;
        }
        // Those a GraphQL query reaches, read from the query.
        if let Some(spec) = &endpoint.graphql
            && let Some(denied) = super::query_scope::outside(agent, spec, args, directory)
        {
            return denied;
        }
        // What the call gives is judged before anything is fetched: a value
        // outside its constraint costs no lookup, and a refusal after one
        // can then only be about the object as it is.
        for constraint in &rule.constraints {
            if let Some(given) = args.get(&constraint.arg)
                && let Err(reason) = constraint.check(Some(given), None)
            {
                return Verdict::deny(DenyKind::Constraint, reason, constraint.source.clone());
            }
        }
        if let Some(lookup) = &endpoint.lookup {
            let wants_current = !rule.constraints.is_empty()
                || lookup.immutable.iter().any(|f| args.contains_key(f));
            match current {
                None if wants_current => return Verdict::NeedsLookup,
                Some(current) => {
                    for field in &lookup.immutable {
                        if let (Some(new), Some(old)) = (args.get(field), current.get(field))
                            && new != old
                        {
                            let note = endpoint
                                .deprecation
                                .as_deref()
                                .unwrap_or("it cannot be changed in place");
                            return Verdict::deny(
                                DenyKind::Immutable,
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
        // A read that names no value to check (a list, filtered or not) is
        // allowed: its answer is cut to what the constraints admit.
        let answer_is_cut = endpoint.access == Access::Read && endpoint.lookup.is_none();
        for constraint in &rule.constraints {
            let now = current.and_then(|c| c.get(&constraint.arg));
            let given = args.get(&constraint.arg);
            if answer_is_cut && given.is_none() && now.is_none() {
                continue;
            }
            if let Err(reason) = constraint.check(given, now) {
                return Verdict::deny(DenyKind::Constraint, reason, constraint.source.clone());
            }
        }
        Verdict::Allow {
            reason: rule.reason.clone(),
            rule: rule.rule.clone(),
        }
    }
}

/// The refusal of a call on a zone or account outside the agent's scope:
/// it names the zone (name and id) and the ones the agent may use instead.
pub(super) fn check_scope(
    agent: &Agent,
    kind: EndpointScope,
    id: &str,
    directory: &Directory,
) -> Option<Verdict> {
    let (scope, names, label, noun) = match kind {
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
    let outcome = scope.check(id, names);
    if outcome == ScopeCheck::Inside {
        return None;
    }
    let named = if label == id {
        clip(id)
    } else {
        format!("{} ({id})", clip(label))
    };
    let held = directory.describe(scope, kind);
    let reason = match outcome {
        ScopeCheck::Unresolved => format!(
            "{noun} {named}: could not resolve the {noun} names in your {noun}s ({held}) to check it"
        ),
        _ if held == "none" => format!("{noun} {named} is outside your {noun}s: you hold none"),
        _ => format!("{noun} {named} is outside your {noun}s; your {noun}s are {held}"),
    };
    let deny_kind = if outcome == ScopeCheck::Unresolved {
        DenyKind::Unresolved
    } else {
        DenyKind::OutsideScope
    };
    Some(Verdict::deny(
        deny_kind,
        reason,
        format!("{noun}s = [{}]", scope.describe()),
    ))
}

impl Constraint {
    /// Checks the value the call gives and the value the object has now:
    /// both must pass, and at least one must be known (absent fails closed).
    /// A value is a string, a list of strings, or a list of `{url: …}`
    /// objects (purge files).
    fn check(&self, given: Option<&Value>, current: Option<&Value>) -> Result<(), String> {
        if given.is_none() && current.is_none() {
            return Err(format!(
                "the call gives no {}, which your rules limit ({})",
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

    /// Whether a value in an answer passes: present, and every item of it
    /// allowed and not denied.
    pub fn admits(&self, value: Option<&Value>) -> bool {
        value.is_some() && self.check(value, None).is_ok()
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
                "{} {} matches your denied values ({})",
                self.arg,
                quote(text),
                self.deny_text
            ));
        }
        if let Some(allow) = &self.allow
            && !allow.is_match(text)
        {
            return Err(format!(
                "{} {} is not among your allowed values ({})",
                self.arg,
                quote(text),
                self.allow_text
            ));
        }
        Ok(())
    }

    /// "name: allowed *.staging.example.com (policies/demo.toml:64)".
    pub fn describe_rule(&self) -> String {
        format!("{}: {} ({})", self.arg, self.describe(), self.source)
    }

    /// "allowed: *.staging.example.com" (and/or "denied: …").
    pub fn describe(&self) -> String {
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
