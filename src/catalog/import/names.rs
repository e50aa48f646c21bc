//! Names the import derives: tool and argument names from the schema's
//! operationIds and parameter names, stable across imports of the same
//! operation.

use sha2::{Digest, Sha256};

/// The longest tool name MCP clients are sure to accept.
const MAX_TOOL: usize = 64;

/// `zone-settings-get-single-setting`, `getAccountsAccountIdRules` →
/// `zone_settings_get_single_setting`, `get_accounts_account_id_rules`.
pub(super) fn snake(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut previous: Option<char> = None;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            let boundary = c.is_ascii_uppercase()
                && previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit());
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
        previous = Some(c);
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// The tool name of an operation: its operationId in snake case, starting
/// with a letter, at most 64 characters (a long one keeps its start and
/// ends in a hash of the whole id, so it stays the same at every import).
pub(super) fn tool_name(operation_id: &str) -> String {
    let mut name = snake(operation_id);
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "op_");
    }
    if name.len() > MAX_TOOL {
        let digest = Sha256::digest(operation_id.as_bytes());
        let tag = hex::encode(&digest[..4]);
        name.truncate(MAX_TOOL - tag.len() - 1);
        let cut = name.trim_end_matches('_').len();
        name.truncate(cut);
        name.push('_');
        name.push_str(&tag);
    }
    name
}

/// An argument name: lowercase letters, digits and underscores, starting
/// with a letter (`accountId` → `account_id`, `name.contains` →
/// `name_contains`).
pub(super) fn argument(name: &str) -> String {
    let snake = snake(name);
    if snake == crate::catalog::DRY_RUN {
        // flaregate's own preview argument; the wire name stays the key.
        "cf_dry_run".to_string()
    } else if snake.starts_with(|c: char| c.is_ascii_lowercase()) {
        snake
    } else {
        format!("arg_{snake}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_snake_case_and_bounded() {
        assert_eq!(
            snake("zone-settings-get-single-setting"),
            "zone_settings_get_single_setting"
        );
        assert_eq!(
            snake("radar-get-BGP-hijacks-events"),
            "radar_get_bgp_hijacks_events"
        );
        assert_eq!(snake("getAccountsAccountId"), "get_accounts_account_id");
        assert_eq!(argument("accountId"), "account_id");
        assert_eq!(argument("name.contains"), "name_contains");
        assert_eq!(argument("4xx"), "arg_4xx");
        let long =
            "zero-trust-accounts-get-zero-trust-account-information-for-a-very-long-operation";
        let name = tool_name(long);
        assert!(name.len() <= MAX_TOOL, "{name}");
        assert_eq!(name, tool_name(long), "stable");
        assert_ne!(name, tool_name(&format!("{long}-2")), "distinct");
    }
}
