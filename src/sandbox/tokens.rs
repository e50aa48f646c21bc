//! The sandbox's API tokens: a default full-access token, plus tokens from
//! an optional file that hold only some permission groups (and zones), so
//! 403 answers can be tested.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::reply::ApiError;

/// What one token may do.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    /// Permission group names ("DNS Write"); `None` means every group.
    pub permissions: Option<Vec<String>>,
    /// Zone names or ids; `None` means every zone.
    pub zones: Option<Vec<String>>,
    /// The account that owns the token (an account-owned token): it is
    /// verified at `/accounts/{id}/tokens/verify`, not `/user/tokens/verify`.
    pub account: Option<String>,
}

impl Grant {
    pub fn full() -> Self {
        Self::default()
    }

    /// Whether the token holds `permission`. A Write group includes its Read.
    pub fn allows(&self, permission: &str) -> bool {
        let Some(held) = &self.permissions else {
            return true;
        };
        held.iter().any(|p| {
            p == permission
                || permission
                    .strip_suffix(" Read")
                    .is_some_and(|base| p.strip_suffix(" Write") == Some(base))
        })
    }

    /// Whether the token reaches the zone with this id and name.
    pub fn reaches_zone(&self, id: &str, name: &str) -> bool {
        self.zones
            .as_ref()
            .is_none_or(|zones| zones.iter().any(|z| z == id || z == name))
    }
}

/// Every token the sandbox accepts.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub default_token: String,
    by_value: HashMap<String, Grant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(rename = "token", default)]
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    value: String,
    permissions: Option<Vec<String>>,
    zones: Option<Vec<String>>,
    account: Option<String>,
}

impl Tokens {
    /// Just the default token, with every permission.
    pub fn new(default_token: String) -> Self {
        let mut by_value = HashMap::new();
        by_value.insert(default_token.clone(), Grant::full());
        Self {
            default_token,
            by_value,
        }
    }

    /// Adds the tokens of a TOML file of `[[token]]` entries.
    pub fn load_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file: TokenFile =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for entry in file.tokens {
            self.by_value.insert(
                entry.value,
                Grant {
                    permissions: entry.permissions,
                    zones: entry.zones,
                    account: entry.account,
                },
            );
        }
        Ok(())
    }

    /// The grant of the credential a request carries, or Cloudflare's
    /// answer for a missing or unknown one.
    pub fn authenticate(
        &self,
        bearer: Option<&str>,
        legacy_key: Option<&str>,
    ) -> Result<Grant, ApiError> {
        let presented = match (bearer, legacy_key) {
            (Some(token), _) => token,
            (None, Some(key)) => key,
            (None, None) => {
                return Err(ApiError::new(400, 1001, "Missing \"Authorization\" header"));
            }
        };
        self.by_value
            .get(presented)
            .cloned()
            .ok_or_else(|| ApiError::new(401, 9109, "Invalid access token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_includes_read() {
        let grant = Grant {
            permissions: Some(vec!["DNS Write".into()]),
            zones: None,
            account: None,
        };
        assert!(grant.allows("DNS Read"));
        assert!(grant.allows("DNS Write"));
        assert!(!grant.allows("Zone Read"));
    }

    #[test]
    fn unknown_and_missing_tokens_are_refused() {
        let tokens = Tokens::new("t".into());
        assert_eq!(
            tokens.authenticate(None, None).expect_err("missing").code,
            1001
        );
        assert_eq!(
            tokens
                .authenticate(Some("x"), None)
                .expect_err("unknown")
                .code,
            9109
        );
        assert!(tokens.authenticate(Some("t"), None).is_ok());
    }
}
