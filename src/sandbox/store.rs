//! The sandbox's in-memory state. Objects are kept as the JSON Cloudflare
//! returns, so handlers serve them as they are. Held behind a lock that is
//! never kept across an await.

use std::collections::HashMap;

use serde_json::Value;

/// Everything the simulated API knows.
#[derive(Debug, Default)]
pub(super) struct SandboxState {
    pub accounts: Vec<Value>,
    pub zones: Vec<Value>,
    pub zone_data: HashMap<String, ZoneData>,
    pub account_data: HashMap<String, AccountData>,
}

/// What hangs off one zone.
#[derive(Debug, Default)]
pub(super) struct ZoneData {
    pub dns: Vec<Value>,
    pub rulesets: Vec<Value>,
    pub page_rules: Vec<Value>,
    pub certificates: Vec<Value>,
    pub universal_ssl: bool,
    pub load_balancers: Vec<Value>,
}

/// What hangs off one account.
#[derive(Debug, Default)]
pub(super) struct AccountData {
    pub scripts: Vec<Script>,
    pub buckets: Vec<Value>,
}

/// A Worker script: its metadata as listed, and its code.
#[derive(Debug, Clone)]
pub(super) struct Script {
    pub meta: Value,
    pub content: String,
}

impl SandboxState {
    pub(super) fn zone(&self, id: &str) -> Option<&Value> {
        self.zones.iter().find(|z| z["id"] == id)
    }

    pub(super) fn account(&self, id: &str) -> Option<&Value> {
        self.accounts.iter().find(|a| a["id"] == id)
    }

    /// One list of a zone's data, picked by `pick`; empty for an unknown zone.
    pub(super) fn in_zone<'a>(
        &'a self,
        zone_id: &str,
        pick: impl FnOnce(&'a ZoneData) -> &'a [Value],
    ) -> &'a [Value] {
        self.zone_data.get(zone_id).map_or(&[], pick)
    }

    /// The zone's data, for changing it; the caller checked the zone exists.
    pub(super) fn zone_data(&mut self, id: &str) -> &mut ZoneData {
        self.zone_data.entry(id.to_string()).or_default()
    }

    pub(super) fn account_data(&mut self, id: &str) -> &mut AccountData {
        self.account_data.entry(id.to_string()).or_default()
    }
}

/// Finds the object with this `id` in a list.
pub(super) fn by_id<'a>(list: &'a [Value], id: &str) -> Option<&'a Value> {
    list.iter().find(|v| v["id"] == id)
}

/// Removes the object with this `id`; whether it was there.
pub(super) fn remove_by_id(list: &mut Vec<Value>, id: &str) -> bool {
    let before = list.len();
    list.retain(|v| v["id"] != id);
    list.len() != before
}
