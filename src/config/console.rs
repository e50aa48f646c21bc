//! `[[console.operator]]`: the people who may use the console, each with
//! their own key (its SHA-256, as agents' keys are kept) and a role.

use serde::Deserialize;

/// What an operator may do in the console, each role all that the one
/// before may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees access, the log and the approvals.
    Viewer,
    /// Also approves and rejects requests.
    Approver,
    /// Also changes access and undoes calls.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
}

/// One person who may use the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub id: String,
    /// SHA-256 of each of their keys.
    pub key_hashes: Vec<[u8; 32]>,
    pub role: Role,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    #[serde(default)]
    operator: Vec<RawOperator>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    id: String,
    key_sha256: Vec<String>,
    role: Role,
}

/// The operators, each checked: an id, at least one key of 64 hex
/// characters, no key shared.
pub(super) fn operators(raw: RawConsole) -> Result<Vec<Operator>, String> {
    let mut operators: Vec<Operator> = Vec::new();
    for raw in raw.operator {
        crate::policy::check_agent_id(&raw.id).map_err(|e| {
            format!(
                "console.operator: {}",
                e.to_string().replace("agent id", "operator id")
            )
        })?;
        if operators.iter().any(|o| o.id == raw.id) {
            return Err(format!("console.operator `{}` is given twice", raw.id));
        }
        if raw.key_sha256.is_empty() {
            return Err(format!(
                "console.operator `{}` has no key_sha256 (`flaregate keygen --agent {}` makes a key and prints its hash)",
                raw.id, raw.id
            ));
        }
        let mut key_hashes = Vec::new();
        for text in &raw.key_sha256 {
            let mut hash = [0u8; 32];
            if text.trim().len() != 64 || hex::decode_to_slice(text.trim(), &mut hash).is_err() {
                return Err(format!(
                    "console.operator `{}`: key_sha256 must be 64 hex characters (the SHA-256 of the key)",
                    raw.id
                ));
            }
            if operators.iter().any(|o| o.key_hashes.contains(&hash)) {
                return Err(format!(
                    "console.operator `{}`: this key_sha256 is another operator's",
                    raw.id
                ));
            }
            key_hashes.push(hash);
        }
        operators.push(Operator {
            id: raw.id,
            key_hashes,
            role: raw.role,
        });
    }
    Ok(operators)
}
