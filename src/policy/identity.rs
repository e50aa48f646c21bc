//! Who is calling: an agent found by the SHA-256 of its bearer key,
//! compared in constant time against every known hash; and new keys.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::model::{Agent, Policy};

impl Policy {
    /// The agent holding `key`. Every known hash is compared, whatever
    /// matches, so the time taken says nothing about which keys exist.
    pub fn agent_for_key(&self, key: &str) -> Option<&Agent> {
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for agent in &self.agents {
            for hash in &agent.key_hashes {
                if bool::from(hash.ct_eq(&presented)) {
                    found = Some(agent);
                }
            }
        }
        found
    }
}

/// A new random key (256 bits, hex) and its SHA-256, for `keygen`.
/// How every flaregate key begins (so one is never taken for an OAuth
/// token and sent to an authorization server).
pub const KEY_PREFIX: &str = "fgk_";

pub fn new_key() -> (String, String) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    let key = format!("{KEY_PREFIX}{}", hex::encode(bytes));
    let hash = sha256_hex(&key);
    (key, hash)
}

/// SHA-256 of `text`, as lowercase hex.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Whether `id` is an agent id a policy accepts: 1-64 characters, lowercase
/// letters, digits, '.', '_' or '-', starting with a letter or digit (the
/// policy schema's pattern).
pub fn check_agent_id(id: &str) -> Result<(), BadAgentId> {
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(BadAgentId(crate::text::clip(id, 64)))
    }
}

/// An agent id a policy would refuse (shown clipped to 64 characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "agent id `{0}` must be 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
)]
pub struct BadAgentId(String);
