//! Whether the policy in force is the one on disk. A reload that fails
//! keeps the older policy — possibly looser than what the operator just
//! wrote — so that is shown (`/ready`, a gauge) and, if the operator
//! chooses (`[policy] on_reload_error = "refuse"`), calls are refused
//! until a good policy loads.

use std::sync::Mutex;
use std::time::SystemTime;

/// What to do while the last reload failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnReloadError {
    /// Keep serving under the older policy (and say so).
    #[default]
    Keep,
    /// Refuse every call until a policy loads.
    Refuse,
}

/// A reload that failed: where, why, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadFailure {
    /// The file and line of the first problem (`policies/ops.toml`, 12);
    /// the line is 0 when the problem has none (a file that cannot be read).
    pub file: String,
    pub line: usize,
    pub message: String,
    pub since: SystemTime,
}

impl ReloadFailure {
    /// The first problem of a policy that did not load.
    pub fn from_error(error: &super::PolicyError, since: SystemTime) -> Self {
        let (file, line, message) = match error {
            super::PolicyError::Invalid(problems) if !problems.is_empty() => {
                let first = &problems[0];
                (
                    first.file.display().to_string(),
                    first.line,
                    first.message.clone(),
                )
            }
            super::PolicyError::Io { path, .. } | super::PolicyError::Empty(path) => {
                (path.display().to_string(), 0, error.to_string())
            }
            other => (String::new(), 0, other.to_string()),
        };
        Self {
            file,
            line,
            message,
            since,
        }
    }

    /// A reload refused for a reason of its own (the listener's rules, a
    /// file that kept changing).
    pub fn other(message: String, since: SystemTime) -> Self {
        Self {
            file: String::new(),
            line: 0,
            message,
            since,
        }
    }
}

impl std::fmt::Display for ReloadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.file.is_empty(), self.line) {
            (true, _) => f.write_str(&self.message),
            (false, 0) => write!(f, "{}: {}", self.file, self.message),
            (false, line) => write!(f, "{}:{line}: {}", self.file, self.message),
        }
    }
}

/// The state of the policy in force.
#[derive(Debug)]
pub struct Freshness {
    on_error: OnReloadError,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    loaded_at: SystemTime,
    failed: Option<ReloadFailure>,
}

impl Freshness {
    /// A policy loaded now.
    pub fn new(on_error: OnReloadError) -> Self {
        Self {
            on_error,
            state: Mutex::new(State {
                loaded_at: SystemTime::now(),
                failed: None,
            }),
        }
    }

    /// A policy was loaded: it is the one on disk.
    pub fn loaded(&self) {
        let mut state = self.state.lock().expect("freshness lock: no panics inside");
        state.loaded_at = SystemTime::now();
        state.failed = None;
    }

    /// A reload failed: the policy in force is older than the files.
    pub fn failed(&self, failure: ReloadFailure) {
        let mut state = self.state.lock().expect("freshness lock: no panics inside");
        // The first failure's time is kept while failures go on.
        let since = state.failed.as_ref().map_or(failure.since, |f| f.since);
        state.failed = Some(ReloadFailure { since, ..failure });
    }

    /// The failed reload the policy in force is older than, if any.
    pub fn stale(&self) -> Option<ReloadFailure> {
        self.state
            .lock()
            .expect("freshness lock: no panics inside")
            .failed
            .clone()
    }

    /// When the policy in force was loaded.
    pub fn loaded_at(&self) -> SystemTime {
        self.state
            .lock()
            .expect("freshness lock: no panics inside")
            .loaded_at
    }

    /// Why calls are refused now: a failed reload, and the operator chose
    /// to refuse until a policy loads.
    pub fn refusing(&self) -> Option<ReloadFailure> {
        (self.on_error == OnReloadError::Refuse)
            .then(|| self.stale())
            .flatten()
    }
}
