//! Per-agent call budgets (calls per minute, writes per hour).

use super::model::AgentRates;

impl AgentRates {
    /// Takes one call (and one write, for a write) from the budgets, or
    /// says which budget is spent and when to retry.
    pub fn take(&self, is_write: bool) -> Result<(), String> {
        if is_write
            && let Some(writes) = &self.writes
            && let Err(wait) = writes.try_acquire()
        {
            let limit = self.limits.1.unwrap_or_default();
            return Err(format!(
                "it has made its {limit} writes this hour; retry in {}s",
                wait.as_secs().max(1)
            ));
        }
        if let Some(calls) = &self.calls
            && let Err(wait) = calls.try_acquire()
        {
            let limit = self.limits.0.unwrap_or_default();
            return Err(format!(
                "it has made its {limit} calls this minute; retry in {}s",
                wait.as_secs().max(1)
            ));
        }
        Ok(())
    }
}
