//! What a group grant and a tool override say of one tool.

use super::file::{Level, ToolSetting};
use super::model::ToolRule;
use super::scope::Scope;
use crate::catalog::Access;

/// What an agent's grants say of one tool's group.
pub(super) enum GroupGrant {
    /// Nothing: deny by default.
    None,
    Group(Level),
    /// `grants."*"`, for a group the agent's grants do not name.
    Wildcard(Level),
    /// A user-level or global endpoint, or a group whose permission is not
    /// known: no group grant reaches it.
    ByNameOnly(crate::catalog::Reach),
}

/// The rule for one tool from the agent's group grant and tool override.
pub(super) fn tool_rule(
    tool: &str,
    access: Access,
    group: &str,
    group_title: &str,
    grant: GroupGrant,
    over: Option<&(ToolSetting, String)>,
) -> ToolRule {
    let by_level = |level: Level| match access {
        Access::Read => level >= Level::Read,
        Access::Write => level == Level::Full,
    };
    let (allowed, reason, rule) = match (over, grant) {
        (Some((ToolSetting::On, at)), _) => (
            true,
            format!("your tools.{tool} override is on"),
            format!("tools.{tool} = on ({at})"),
        ),
        (Some((ToolSetting::Off, at)), _) => (
            false,
            format!("your tools.{tool} override is off"),
            format!("tools.{tool} = off ({at})"),
        ),
        (None, GroupGrant::None) => (
            false,
            format!("it has no {group_title} grant (deny by default)"),
            format!("grants.{group} absent"),
        ),
        (None, GroupGrant::ByNameOnly(reach)) => {
            let what = match reach {
                crate::catalog::Reach::User => "it acts on the token's user, not a zone or account",
                crate::catalog::Reach::Global => "it acts on no zone or account",
                _ => "its Cloudflare permission is not known",
            };
            (
                false,
                format!("{tool} is granted only by name ({what}): no tools.{tool} = on"),
                format!("tools.{tool} absent"),
            )
        }
        (None, GroupGrant::Group(level)) => (
            by_level(level),
            format!("your {group_title} grant is {}", level.as_str()),
            format!("grants.{group} = {}", level.as_str()),
        ),
        (None, GroupGrant::Wildcard(level)) => (
            by_level(level),
            format!("your grant of every group is {}", level.as_str()),
            format!("grants.\"*\" = {}", level.as_str()),
        ),
    };
    ToolRule {
        allowed,
        reason: reason.into(),
        rule: rule.into(),
        constraints: Vec::new(),
    }
}

/// Takes away, from an agent whose zones or accounts are limited, the
/// tools whose arguments may name zones or accounts in a way flaregate
/// cannot check (`opaque_scope`), unless the policy names them in `tools`:
/// a scope the operator drew holds for every tool the agent can reach.
pub(super) fn opaque_taken(
    catalog: &crate::catalog::Catalog,
    (zones, accounts): (&Scope, &Scope),
    tools: &mut [ToolRule],
    named_on: impl Fn(&str) -> bool,
) -> Vec<(String, String)> {
    let limited = |scope: &Scope| matches!(scope, Scope::Listed(_));
    if !limited(zones) && !limited(accounts) {
        return Vec::new();
    }
    let mut taken = Vec::new();
    for (index, endpoint) in catalog.endpoints().iter().enumerate() {
        if !endpoint.opaque_scope || !tools[index].allowed || named_on(&endpoint.tool) {
            continue;
        }
        let why = "its arguments may name zones or accounts in a way flaregate cannot check against your scope".to_string();
        tools[index].allowed = false;
        tools[index].reason = format!("{why}; the policy may grant it by name in `tools`").into();
        tools[index].rule = "zones / accounts: scope cannot be told".into();
        taken.push((endpoint.tool.clone(), why));
    }
    taken
}
