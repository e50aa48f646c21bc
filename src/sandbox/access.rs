//! The checks before a handler touches data: a well-formed id, a token
//! holding the permission group, and an object the token can reach.

use serde_json::Value;

use super::Sandbox;
use super::ids::is_id;
use super::reply::ApiError;
use super::tokens::Grant;

/// Cloudflare's answer to a token without the needed permission.
fn forbidden() -> ApiError {
    ApiError::new(403, 10000, "Authentication error")
}

impl Sandbox {
    /// Checks that `grant` may use `permission` on zone `zone_id`; returns
    /// the zone's name.
    pub(super) fn check_zone(
        &self,
        grant: &Grant,
        zone_id: &str,
        permission: &str,
    ) -> Result<String, ApiError> {
        if !is_id(zone_id) {
            return Err(ApiError::no_route(&format!("/zones/{zone_id}")));
        }
        if !grant.allows(permission) {
            return Err(forbidden());
        }
        let store = self.store.read().expect("store lock is never poisoned");
        let name = store
            .zone(zone_id)
            .and_then(|z| z["name"].as_str())
            .map(str::to_string)
            .ok_or_else(|| ApiError::new(404, 7003, format!("Could not route to /zones/{zone_id}, perhaps your object identifier is invalid?")))?;
        if !grant.reaches_zone(zone_id, &name) {
            return Err(forbidden());
        }
        Ok(name)
    }

    /// Checks that `grant` may use `permission` on account `account_id`.
    pub(super) fn check_account(
        &self,
        grant: &Grant,
        account_id: &str,
        permission: &str,
    ) -> Result<(), ApiError> {
        if !is_id(account_id) {
            return Err(ApiError::no_route(&format!("/accounts/{account_id}")));
        }
        if !grant.allows(permission) {
            return Err(forbidden());
        }
        let store = self.store.read().expect("store lock is never poisoned");
        if store.account(account_id).is_none() {
            return Err(ApiError::new(
                404,
                7003,
                format!(
                    "Could not route to /accounts/{account_id}, perhaps your object identifier is invalid?"
                ),
            ));
        }
        Ok(())
    }

    /// Checks a permission that is not tied to one object (list_zones).
    pub(super) fn check_permission(&self, grant: &Grant, permission: &str) -> Result<(), ApiError> {
        if grant.allows(permission) {
            Ok(())
        } else {
            Err(forbidden())
        }
    }
}

/// Checks a sub-object id in a path (record, ruleset, page rule …).
pub(super) fn check_id(id: &str, path: &str) -> Result<(), ApiError> {
    if is_id(id) {
        Ok(())
    } else {
        Err(ApiError::no_route(path))
    }
}

/// Parses a JSON request body, or answers as Cloudflare does.
pub(super) fn json_body(bytes: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::bad_request(
            6007,
            "Malformed JSON in request body",
        )),
    }
}
