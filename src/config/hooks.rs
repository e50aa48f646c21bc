//! `[[hook]]`: flaregate as a webhook destination of Cloudflare's
//! notifications (`POST /hooks/cloudflare/{name}` on the HTTP listener).
//! Each has a name and the SHA-256 of the secret Cloudflare sends in
//! `cf-webhook-auth` (kept as agent keys are: never in clear).

use serde::Deserialize;

/// One webhook destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// Its name, the last segment of its URL.
    pub name: String,
    /// SHA-256 of the secret Cloudflare sends with each alert.
    pub secret_sha256: [u8; 32],
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHook {
    name: String,
    secret_sha256: String,
}

/// Whether `name` can name a hook: it is the last segment of its URL.
pub fn check_hook_name(name: &str) -> Result<(), String> {
    let fits = (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if fits {
        Ok(())
    } else {
        Err(format!(
            "hook name `{}`: 1 to 40 of a-z, 0-9 and -",
            crate::text::clip(name, 40)
        ))
    }
}

/// The hooks as given, checked: a name that fits a URL segment, once; a
/// 64-hex secret hash.
pub(super) fn hooks(raw: Vec<RawHook>) -> Result<Vec<Hook>, String> {
    let mut hooks: Vec<Hook> = Vec::with_capacity(raw.len());
    for hook in raw {
        check_hook_name(&hook.name)?;
        if hooks.iter().any(|h| h.name == hook.name) {
            return Err(format!("hook `{}` is named twice", hook.name));
        }
        let mut secret_sha256 = [0u8; 32];
        hex::decode_to_slice(&hook.secret_sha256, &mut secret_sha256).map_err(|_| {
            format!(
                "hook `{}`: secret_sha256 must be 64 hex characters (`flaregate hooks` makes a secret and prints its hash)",
                hook.name
            )
        })?;
        hooks.push(Hook {
            name: hook.name,
            secret_sha256,
        });
    }
    Ok(hooks)
}
