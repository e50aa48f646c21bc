//! What a token's scopes let it do: `flaregate:read` / `flaregate:write`
//! (`read_scope`, `write_scope`) for every group, and, for the groups
//! `[auth.oauth] group_scopes` offers, `flaregate:GROUP:read` and
//! `flaregate:GROUP:write` for that group alone. Scopes narrow the
//! policy's grant, never widen it: a call is made only where both allow it.

use std::collections::BTreeMap;

use crate::catalog::Access;
use crate::config::OAuthSettings;

/// How far a scope reaches in what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScopeLevel {
    Read,
    /// Read and write.
    Write,
}

impl ScopeLevel {
    fn needed_for(access: Access) -> Self {
        match access {
            Access::Read => ScopeLevel::Read,
            Access::Write => ScopeLevel::Write,
        }
    }

    fn word(self) -> &'static str {
        match self {
            ScopeLevel::Read => "read",
            ScopeLevel::Write => "write",
        }
    }
}

/// What a caller's token allows, at most (the policy may allow less).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAccess {
    /// From the level scopes: every group.
    everywhere: Option<ScopeLevel>,
    /// From the per-group scopes.
    groups: BTreeMap<String, ScopeLevel>,
    /// The scopes it was read from that flaregate knows (for a step-up
    /// challenge, which names those held).
    held: Vec<String>,
}

impl TokenAccess {
    /// No limit beyond the policy's: a key, or a Cloudflare Access
    /// assertion (Access grants no flaregate scope).
    pub fn unlimited() -> Self {
        Self::new(Some(ScopeLevel::Write), &[])
    }

    /// Reads and writes `everywhere` at most, and in `groups` as each says.
    pub fn new(everywhere: Option<ScopeLevel>, groups: &[(&str, ScopeLevel)]) -> Self {
        Self {
            everywhere,
            groups: groups.iter().map(|(g, l)| (g.to_string(), *l)).collect(),
            held: Vec::new(),
        }
    }

    /// What `scopes` allow under `settings` (scopes it does not know, and
    /// per-group scopes of groups it does not offer, allow nothing).
    pub fn of(scopes: &[&str], settings: &OAuthSettings) -> Self {
        let mut access = Self::new(None, &[]);
        for scope in scopes {
            if *scope == settings.write_scope {
                access.everywhere = Some(ScopeLevel::Write);
            } else if *scope == settings.read_scope {
                access.everywhere = access.everywhere.max(Some(ScopeLevel::Read));
            } else if let Some((group, level)) = group_scope_of(scope)
                && settings.group_scopes.iter().any(|g| g == group)
            {
                let held = access.groups.entry(group.to_string()).or_insert(level);
                *held = (*held).max(level);
            } else {
                continue;
            }
            access.held.push(scope.to_string());
        }
        access
    }

    /// The scopes flaregate knows that the token holds.
    pub fn held(&self) -> Vec<&str> {
        self.held.iter().map(String::as_str).collect()
    }

    /// Whether it allows nothing at all.
    pub fn is_nothing(&self) -> bool {
        self.everywhere.is_none() && self.groups.is_empty()
    }

    /// Whether it allows whatever the policy allows.
    pub fn is_unlimited(&self) -> bool {
        self.everywhere == Some(ScopeLevel::Write)
    }

    /// Whether it allows `access` on tools of `group`.
    pub fn allows(&self, group: &str, access: Access) -> bool {
        let held = self.everywhere.max(self.groups.get(group).copied());
        held.is_some_and(|held| held >= ScopeLevel::needed_for(access))
    }

    /// Whether it allows a write anywhere (an undo restores a write).
    pub fn writes_somewhere(&self) -> bool {
        self.is_unlimited() || self.groups.values().any(|l| *l == ScopeLevel::Write)
    }
}

/// The scope that allows `access` on `group`: the group's own where
/// `settings` offers one, else the level scope.
pub fn scope_for(group: &str, access: Access, settings: &OAuthSettings) -> String {
    let level = ScopeLevel::needed_for(access);
    if settings.group_scopes.iter().any(|g| g == group) {
        return group_scope(group, level);
    }
    match level {
        ScopeLevel::Read => settings.read_scope.clone(),
        ScopeLevel::Write => settings.write_scope.clone(),
    }
}

/// `flaregate:GROUP:read` or `flaregate:GROUP:write`.
pub fn group_scope(group: &str, level: ScopeLevel) -> String {
    format!("flaregate:{group}:{}", level.word())
}

/// The group and level a per-group scope names.
fn group_scope_of(scope: &str) -> Option<(&str, ScopeLevel)> {
    let (group, level) = scope.strip_prefix("flaregate:")?.rsplit_once(':')?;
    let level = match level {
        "read" => ScopeLevel::Read,
        "write" => ScopeLevel::Write,
        _ => return None,
    };
    (!group.is_empty()).then_some((group, level))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(group_scopes: &[&str]) -> OAuthSettings {
        let mut settings = crate::config::AccessSettings {
            team_domain: "https://team.cloudflareaccess.com".into(),
            audience: "aud".into(),
        }
        .as_oauth(60);
        settings.read_scope = "flaregate:read".into();
        settings.write_scope = "flaregate:write".into();
        settings.group_scopes = group_scopes.iter().map(|g| g.to_string()).collect();
        settings
    }

    #[test]
    fn scopes_narrow_by_level_and_by_group_and_never_widen() {
        let offered = settings(&["dns"]);
        let of = |scopes: &[&str]| TokenAccess::of(scopes, &offered);

        let reader = of(&["flaregate:read"]);
        assert!(reader.allows("cache", Access::Read) && !reader.allows("dns", Access::Write));
        assert!(!reader.writes_somewhere());

        let dns_writer = of(&["flaregate:dns:write"]);
        assert!(dns_writer.allows("dns", Access::Write) && dns_writer.allows("dns", Access::Read));
        assert!(!dns_writer.allows("cache", Access::Read));
        assert!(dns_writer.writes_somewhere() && !dns_writer.is_unlimited());

        // Reads everywhere, writes to DNS only.
        let both = of(&["flaregate:read", "flaregate:dns:write"]);
        assert!(both.allows("cache", Access::Read) && both.allows("dns", Access::Write));
        assert!(!both.allows("cache", Access::Write));

        // A group not offered per group: its scope allows nothing.
        assert!(of(&["flaregate:cache:write"]).is_nothing());
        assert!(of(&["openid", "flaregate:", "flaregate::write"]).is_nothing());
        assert!(of(&["flaregate:write"]).is_unlimited());

        assert_eq!(
            scope_for("dns", Access::Write, &offered),
            "flaregate:dns:write"
        );
        assert_eq!(
            scope_for("cache", Access::Write, &offered),
            "flaregate:write"
        );
        assert_eq!(scope_for("cache", Access::Read, &offered), "flaregate:read");
    }
}
