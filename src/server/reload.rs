//! Policy hot reload: an edited policy file (checked every second) or
//! SIGHUP loads the policy again. An invalid policy keeps the old one and
//! says why; a valid one is swapped in and clients are told their tools
//! changed. Calls in flight finish under the policy they started with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::policy::{self, Policy, ReloadFailure};
use crate::server::Gateway;

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
async fn settled_files(path: &Path) -> Result<Vec<(PathBuf, String)>, ReloadFailure> {
    let mut last = read_files(path).await?;
    for _ in 0..20 {
        tokio::time::sleep(SETTLE).await;
        let again = read_files(path).await?;
        if again == last {
            // An empty file (mid-save) is refused by `compile`.
            return Ok(again);
        }
        last = again;
    }
    Err(ReloadFailure::other(
        "the policy files kept changing for a second; try again once they are saved".into(),
        SystemTime::now(),
    ))
}

/// The policy files, read off the async worker (file reads block).
async fn read_files(path: &Path) -> Result<Vec<(PathBuf, String)>, ReloadFailure> {
    let path = path.to_path_buf();
    off_worker(move || {
        policy::policy_files(&path).map_err(|e| ReloadFailure::from_error(&e, SystemTime::now()))
    })
    .await
}

/// Runs `work` on a thread of its own and waits for it without blocking
/// the async worker. Reloads are rare: a thread each is cheap, and keeps
/// the runtime's own threads to the one worker `serve` runs.
async fn off_worker<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ReloadFailure> + Send + 'static,
) -> Result<T, ReloadFailure> {
    let failed = |message: String| ReloadFailure::other(message, SystemTime::now());
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("policy-reload".into())
        .spawn(move || {
            let _ = done.send(work());
        })
        .map_err(|e| failed(format!("cannot start a thread to reload the policy: {e}")))?;
    result
        .await
        .unwrap_or_else(|_| Err(failed("reloading the policy failed".into())))
}

/// Loads the policy again; whether the new one was installed. Reading and
/// compiling (globs, schemas) run off the async worker, which keeps
/// answering calls meanwhile.
pub async fn reload(gateway: &Gateway, path: &Path, adjust: &Adjust) -> bool {
    let catalog = gateway.catalog().clone();
    let adjust_new = adjust.clone();
    let loaded = match settled_files(path).await {
        Ok(sources) => {
            off_worker(move || {
                let mut policy = policy::compile(&sources, catalog)
                    .map_err(|e| ReloadFailure::from_error(&e, SystemTime::now()))?;
                adjust_new(&mut policy).map_err(|e| ReloadFailure::other(e, SystemTime::now()))?;
                Ok(policy)
            })
            .await
        }
        Err(problem) => Err(problem),
    };
    match loaded {
        Ok(policy) => {
            tracing::info!(agents = policy.agents().len(), path = %path.display(), "policy reloaded");
            gateway.engine().install(policy).await;
            gateway.metrics().reloaded(true);
            gateway.tools_changed().await;
            true
        }
        Err(failure) => {
            let freshness = gateway.engine().freshness();
            freshness.failed(failure.clone());
            let then = if freshness.refusing().is_some() {
                "calls are refused until a policy loads (on_reload_error = \"refuse\")"
            } else {
                "the previous policy stays in force"
            };
            tracing::error!(path = %path.display(), problem = %failure, "policy not reloaded; {then}");
            gateway.metrics().reloaded(false);
            false
        }
    }
}

/// Names, sizes and modification times of the policy files.
fn fingerprint(path: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let files = crate::files::toml_files(path).unwrap_or_default();
    let mut prints: Vec<_> = files
        .into_iter()
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
