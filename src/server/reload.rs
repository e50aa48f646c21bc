//! Policy hot reload: an edited policy file (checked every second) or
//! SIGHUP loads the policy again. An invalid policy keeps the old one and
//! says why; a valid one is swapped in and clients are told their tools
//! changed. Calls in flight finish under the policy they started with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::gateway::Gateway;
use crate::policy::{self, Policy};

/// Extra checks a new policy must pass (the HTTP listener's rules), and
/// changes to apply to it (sandbox demo keys).
pub type Adjust = Arc<dyn Fn(&mut Policy) -> Result<(), String> + Send + Sync>;

/// Takes over SIGHUP for reloads. Call it first thing at start-up: until
/// then a SIGHUP ends the process (its default action), and start-up can take
/// seconds (the token is verified with Cloudflare). A SIGHUP that arrives
/// before [`spawn`] reloads once the watcher runs.
pub fn hangups() -> Option<Signal> {
    match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(error) => {
            tracing::warn!(%error, "no SIGHUP reload; file changes still reload");
            None
        }
    }
}

/// Watches `path` (a policy file or folder) and `hangup` until `shutdown`.
pub fn spawn(
    gateway: Arc<Gateway>,
    path: PathBuf,
    adjust: Adjust,
    mut hangup: Option<Signal>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut seen = fingerprint(&path);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                Some(_) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {}
                _ = tick.tick() => {
                    let now = fingerprint(&path);
                    if now == seen {
                        continue;
                    }
                    seen = now;
                }
            }
            reload(&gateway, &path, &adjust).await;
        }
    });
}

/// How long policy files must stay unchanged before they are loaded.
const SETTLE: Duration = Duration::from_millis(50);

/// Reads the policy files until two reads `SETTLE` apart agree. An editor
/// that truncates a file and then writes it must not get half a policy
/// installed: cut before its `deny` line, an agent would gain rights.
async fn settled_files(path: &Path) -> Result<Vec<(PathBuf, String)>, String> {
    let mut last = policy::policy_files(path).map_err(|e| e.to_string())?;
    for _ in 0..20 {
        tokio::time::sleep(SETTLE).await;
        let again = policy::policy_files(path).map_err(|e| e.to_string())?;
        if again == last {
            return match again.iter().find(|(_, text)| text.trim().is_empty()) {
                // Mid-save, or emptied by mistake; to revoke every agent,
                // leave a comment in the file.
                Some((empty, _)) => Err(format!(
                    "{} is empty (half saved?); write a comment in it to mean \"no agents\"",
                    empty.display()
                )),
                None => Ok(again),
            };
        }
        last = again;
    }
    Err("the policy files kept changing for a second; try again once they are saved".into())
}

/// Loads the policy again; whether the new one was installed.
pub async fn reload(gateway: &Gateway, path: &Path, adjust: &Adjust) -> bool {
    let sources = settled_files(path).await;
    let previous = gateway.engine().policy();
    let loaded = sources
        .and_then(|sources| {
            policy::compile(&sources, gateway.catalog().clone(), Some(&previous))
                .map_err(|e| e.to_string())
        })
        .and_then(|mut policy| adjust(&mut policy).map(|()| policy));
    match loaded {
        Ok(policy) => {
            tracing::info!(agents = policy.agents().len(), path = %path.display(), "policy reloaded");
            gateway.engine().replace_policy(policy);
            gateway.tools_changed().await;
            true
        }
        Err(problems) => {
            tracing::error!(path = %path.display(), %problems, "policy not reloaded; the previous policy stays in force");
            false
        }
    }
}

/// Names, sizes and modification times of the policy files.
fn fingerprint(path: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    } else {
        vec![path.to_path_buf()]
    };
    let mut prints: Vec<_> = files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (p, len, modified)
        })
        .collect();
    prints.sort();
    prints
}
