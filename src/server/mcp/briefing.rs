//! What an agent is told of its own lines. The server instructions it gets
//! at initialize name its zones and accounts (name and id), the rules on
//! its values and its limits, so an agent that cannot list zones still
//! learns the ids it may use. Its tools offer `zone_id` / `account_id` as
//! the short list of ids it holds, and never point to a tool it cannot see.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, LazyLock};

use regex::Regex;
use rmcp::model::Tool;
use serde_json::{Map, Value, json};

use crate::budget::describe_limits;
use crate::catalog::{Catalog, Endpoint, Scope as EndpointScope};
use crate::policy::{Agent, Directory, Policy, Scope, ScopeRef};

/// A rule names at most this many of the tools it applies to.
const RULE_TOOLS: usize = 12;

/// Scopes up to this long are offered as an enum in tool schemas.
const MAX_ENUM: usize = 20;

/// "(see list_zones)" in a description: a pointer to another tool.
static POINTER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r" ?\(see ([a-z0-9_]+)\)").expect("a valid pattern"));

/// The server instructions for `agent`.
pub(super) fn instructions(policy: &Policy, agent: &Agent, directory: &Directory) -> String {
    let catalog = policy.catalog();
    let mut lines = vec![format!(
        "flaregate gives you, agent \"{}\", Cloudflare API tools within the lines an operator drew. You see only the tools you may use. A call outside your zones, accounts or allowed values is refused with the reason; every call is logged.",
        agent.id
    )];
    lines.push(format!(
        "Your zones: {}.",
        directory.describe(&agent.zones, EndpointScope::Zone)
    ));
    lines.push(format!(
        "Your accounts: {}.",
        directory.describe(&agent.accounts, EndpointScope::Account)
    ));
    // One line per rule, with the tools it applies to.
    let mut rules: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for tool in agent.visible_tools(catalog) {
        for constraint in agent.constraints(catalog, tool) {
            rules
                .entry(format!("{} {}", constraint.arg, constraint.describe()))
                .or_default()
                .push(tool);
        }
    }
    for (rule, tools) in rules {
        let named = if tools.len() > RULE_TOOLS {
            format!(
                "{} and {} more",
                tools[..RULE_TOOLS].join(", "),
                tools.len() - RULE_TOOLS
            )
        } else {
            tools.join(", ")
        };
        lines.push(format!("Rule: {rule} (for {named})."));
    }
    let approved: Vec<&str> = agent
        .visible_tools(catalog)
        .filter(|tool| agent.needs_approval(catalog, tool))
        .collect();
    if !approved.is_empty() {
        let how = match agent.approver {
            crate::policy::Approver::Client => {
                "your client asks its user when it can; otherwise the call is refused with an approval id, and once the operator approves it you call again with the same arguments and approval_id"
            }
            crate::policy::Approver::Operator => {
                "the call is refused with an approval id; once the operator approves it, call again with the same arguments and approval_id"
            }
        };
        lines.push(format!(
            "A person must approve each call of {} first: {how}.",
            approved.join(", ")
        ));
    }
    if agent.undo {
        lines.push(
            "You may undo a logged write with undo_call (its audit row id; dry_run first shows what it would do); the restoring call is checked against your rules like any other.".to_string(),
        );
    }
    let writes = agent.visible_tools(catalog).any(|tool| {
        catalog
            .endpoint(tool)
            .is_some_and(|e| e.access == crate::catalog::Access::Write)
    });
    if writes {
        lines.push("Any write tool takes dry_run: true to preview it first: whether it would be allowed, the exact request and what it would change, with nothing sent.".to_string());
    }
    if agent.discover {
        lines.push(format!(
            "Your {} endpoints are offered through three tools: search_api finds them by keywords, describe_api gives one's arguments, call_api calls it (checked and logged like any call).",
            agent.visible_tools(catalog).count()
        ));
    }
    for tool in agent.visible_tools(catalog) {
        let Some(spec) = catalog.endpoint(tool).and_then(|e| e.graphql.as_ref()) else {
            continue;
        };
        let (zone, account) = first_held(agent, directory);
        let examples = super::examples::for_agent(spec, zone.as_deref(), account.as_deref());
        if !examples.is_empty() {
            lines.push(format!(
                "Queries {tool} answers for you: {}.",
                examples.join("; ")
            ));
        }
    }
    lines.push(format!("Your limits: {}.", describe_limits(&agent.limits)));
    lines.join("\n")
}

/// A zone id and an account id the agent holds (the first by id), for
/// examples.
fn first_held(agent: &Agent, directory: &Directory) -> (Option<String>, Option<String>) {
    let first = |scope: &Scope,
                 ids: &std::collections::HashMap<String, String>,
                 names: &std::collections::HashMap<String, String>| {
        let mut held: Vec<&String> = names
            .keys()
            .filter(|id| scope.check(id, ids) == crate::policy::ScopeCheck::Inside)
            .collect();
        held.sort();
        held.first().map(|id| id.to_string())
    };
    (
        first(&agent.zones, &directory.zone_ids, &directory.zone_names),
        first(
            &agent.accounts,
            &directory.account_ids,
            &directory.account_names,
        ),
    )
}

/// What an agent's tools are tailored to.
pub(super) struct View<'a> {
    catalog: &'a Catalog,
    agent: &'a Agent,
    zones: Option<Vec<(String, String)>>,
    accounts: Option<Vec<(String, String)>>,
    visible: HashSet<&'a str>,
}

impl<'a> View<'a> {
    pub(super) fn new(catalog: &'a Catalog, agent: &'a Agent, directory: &Directory) -> Self {
        Self {
            catalog,
            agent,
            zones: held(&agent.zones, &directory.zone_ids, &directory.zone_names),
            accounts: held(
                &agent.accounts,
                &directory.account_ids,
                &directory.account_names,
            ),
            visible: agent.visible_tools(catalog).collect(),
        }
    }

    /// `tool` (the tool of `endpoint`) as this agent sees it: its scope
    /// argument offers what the agent holds, an approval id where one is
    /// needed, the agent's rules beside their arguments and in the
    /// description, and no pointer to a tool it cannot call.
    pub(super) fn tailor(&self, tool: &mut Tool, endpoint: &Endpoint) {
        let mut schema = (*tool.input_schema).clone();
        let mut changed = false;
        if let Some(properties) = properties_of(&mut schema) {
            changed |= self.offer_held(properties, endpoint);
            changed |= self.offer_approval_id(properties, endpoint);
            changed |= self.state_rules(properties, endpoint);
            changed |= self.require_by_rules(&mut schema, endpoint);
        }
        if let Some(properties) = properties_of(&mut schema) {
            for property in properties.values_mut() {
                if let Some(Value::String(text)) = property.get_mut("description")
                    && let Some(cleaned) = self.unpointed(text)
                {
                    *text = cleaned;
                    changed = true;
                }
            }
        }
        if changed {
            tool.input_schema = Arc::new(schema);
        }
        self.describe_rules(tool, endpoint);
        self.give_examples(tool, endpoint);
    }

    /// A GraphQL tool's example queries, for this agent's own zone.
    fn give_examples(&self, tool: &mut Tool, endpoint: &Endpoint) {
        let Some(spec) = &endpoint.graphql else {
            return;
        };
        let first = |held: &Option<Vec<(String, String)>>| {
            held.as_ref()
                .and_then(|h| h.first())
                .map(|(id, _)| id.clone())
        };
        let examples = super::examples::for_agent(
            spec,
            first(&self.zones).as_deref(),
            first(&self.accounts).as_deref(),
        );
        if !examples.is_empty() {
            let said = tool.description.as_deref().unwrap_or_default();
            tool.description = Some(
                format!(
                    "{said}\n\nExamples for your zones:\n- {}",
                    examples.join("\n- ")
                )
                .into(),
            );
        }
    }

    /// The scope argument as an enum of the zones or accounts held.
    fn offer_held(&self, properties: &mut Map<String, Value>, endpoint: &Endpoint) -> bool {
        let (held, noun) = match endpoint.scope() {
            Some(EndpointScope::Zone) => (&self.zones, "zones"),
            Some(EndpointScope::Account) => (&self.accounts, "accounts"),
            None => return false,
        };
        let (Some(param), Some(held)) = (endpoint.scope_param(), held) else {
            return false;
        };
        let Some(Value::Object(property)) = properties.get_mut(&param.name) else {
            return false;
        };
        let ids: Vec<&str> = held.iter().map(|(id, _)| id.as_str()).collect();
        let named: Vec<String> = held
            .iter()
            .map(|(id, name)| format!("{name} ({id})"))
            .collect();
        property.insert("enum".into(), json!(ids));
        property.insert(
            "description".into(),
            json!(format!("One of your {noun}: {}.", named.join(", "))),
        );
        true
    }

    fn offer_approval_id(&self, properties: &mut Map<String, Value>, endpoint: &Endpoint) -> bool {
        if !self.agent.needs_approval(self.catalog, &endpoint.tool) {
            return false;
        }
        properties.insert(
            crate::server::pipeline::APPROVAL_ID.into(),
            json!({
                "type": "string",
                "pattern": "^[0-9a-f]{32}$",
                "description": "The id of a person's approval of this exact call (a first call without it asks for one)."
            }),
        );
        true
    }

    /// The agent's rules on an argument, beside it: several clients drop
    /// the server instructions that also state them.
    fn state_rules(&self, properties: &mut Map<String, Value>, endpoint: &Endpoint) -> bool {
        let mut changed = false;
        for constraint in self.agent.constraints(self.catalog, &endpoint.tool) {
            if let Some(Value::Object(property)) = properties.get_mut(&constraint.arg) {
                let rule = format!("Your rule: {}.", constraint.describe());
                let text = match property.get("description").and_then(Value::as_str) {
                    Some(said) => format!("{} {rule}", admitted_examples(said, constraint)),
                    None => rule,
                };
                property.insert("description".into(), json!(text));
                changed = true;
            }
        }
        changed
    }

    /// Marks required the constrained arguments a call must give; the
    /// other ways to call it (of an exactly-one-of set) are refused, so
    /// not offered.
    fn require_by_rules(&self, schema: &mut Map<String, Value>, endpoint: &Endpoint) -> bool {
        let Some(required) = self.required_by_rules(endpoint) else {
            return false;
        };
        if let Some(properties) = properties_of(schema)
            && endpoint
                .exactly_one_of
                .iter()
                .any(|a| required.contains(&a.as_str()))
        {
            for other in &endpoint.exactly_one_of {
                if !required.contains(&other.as_str()) {
                    properties.remove(other);
                }
            }
        }
        let mut names: Vec<Value> = schema_required(schema);
        for arg in required {
            if !names.iter().any(|n| n == arg) {
                names.push(json!(arg));
            }
        }
        schema.insert("required".into(), Value::Array(names));
        true
    }

    /// The description without pointers to tools the agent cannot call,
    /// and with the agent's rules at its end.
    fn describe_rules(&self, tool: &mut Tool, endpoint: &Endpoint) {
        if let Some(description) = tool.description.as_deref()
            && let Some(cleaned) = self.unpointed(description)
        {
            tool.description = Some(cleaned.into());
        }
        let rules: Vec<String> = self
            .agent
            .constraints(self.catalog, &endpoint.tool)
            .iter()
            .map(|c| format!("{} {}", c.arg, c.describe()))
            .collect();
        if !rules.is_empty() {
            let said = tool.description.as_deref().unwrap_or_default();
            tool.description = Some(format!("{said}\n\nYour rules: {}.", rules.join("; ")).into());
        }
    }

    /// The constrained arguments a call of `endpoint` must give: a write
    /// with no lookup has no current value to judge instead, so a call
    /// without them is refused. `None` when there are none.
    fn required_by_rules(&self, endpoint: &Endpoint) -> Option<Vec<&'a str>> {
        if endpoint.access != crate::catalog::Access::Write || endpoint.lookup.is_some() {
            return None;
        }
        let args: Vec<&str> = self
            .agent
            .constraints(self.catalog, &endpoint.tool)
            .iter()
            .map(|c| c.arg.as_str())
            .filter(|arg| endpoint.param(arg).is_some())
            .collect();
        (!args.is_empty()).then_some(args)
    }

    /// `text` without its pointers to tools this agent cannot see; `None`
    /// when there are none.
    fn unpointed(&self, text: &str) -> Option<String> {
        let hidden = POINTER
            .captures_iter(text)
            .any(|c| !self.visible.contains(&c[1]));
        hidden.then(|| {
            POINTER
                .replace_all(text, |c: &regex::Captures<'_>| {
                    if self.visible.contains(&c[1]) {
                        c[0].to_string()
                    } else {
                        String::new()
                    }
                })
                .into_owned()
        })
    }
}

/// The (id, name) pairs of a listed scope, when every entry is resolved
/// and there are few enough to offer as a list.
fn held(
    scope: &Scope,
    ids: &std::collections::HashMap<String, String>,
    names: &std::collections::HashMap<String, String>,
) -> Option<Vec<(String, String)>> {
    let Scope::Listed(entries) = scope else {
        return None;
    };
    if entries.is_empty() || entries.len() > MAX_ENUM {
        return None;
    }
    entries
        .iter()
        .map(|entry| match entry {
            ScopeRef::Name(name) => ids.get(name).map(|id| (id.clone(), name.clone())),
            ScopeRef::Id(id) => Some((
                id.clone(),
                names.get(id).cloned().unwrap_or_else(|| id.clone()),
            )),
        })
        .collect()
}

/// "e.g. VALUE" in a description: the example and what leads to it.
static EXAMPLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r",?\s*\be\.g\.\s+(\S*[^\s.,;:)])").expect("a valid pattern"));

/// `text` without the examples `constraint` would refuse: an agent is not
/// shown a value its own rule denies.
fn admitted_examples(text: &str, constraint: &crate::policy::Constraint) -> String {
    EXAMPLE
        .replace_all(text, |c: &regex::Captures<'_>| {
            if constraint.admits(Some(&json!(&c[1]))) {
                c[0].to_string()
            } else {
                String::new()
            }
        })
        .into_owned()
}

/// The names a schema requires now.
fn schema_required(schema: &serde_json::Map<String, Value>) -> Vec<Value> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A tool schema's `properties`, if it has them.
fn properties_of(schema: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
    schema.get_mut("properties").and_then(Value::as_object_mut)
}
