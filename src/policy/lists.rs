//! What an agent may see of a list. A list that names no zone or account
//! (list_zones, list_accounts) holds items outside the agent's scope; a
//! list whose filter argument is constrained (list_dns_records by `name`)
//! holds items the constraint would refuse. Both are cut to what the agent
//! may see, and the page information then describes only that.

use serde_json::Value;

use super::model::{Agent, Policy};
use super::scope::{Directory, Scope, ScopeCheck};
use crate::catalog::{Access, Endpoint, Scope as EndpointScope};

impl Policy {
    /// Whether `endpoint`'s answer must be cut for `agent`: a read list
    /// that names no zone or account, for an agent whose scope is a list,
    /// or a read whose answer carries a constrained argument.
    pub fn filters_list(&self, agent: &Agent, endpoint: &Endpoint) -> bool {
        // A GraphQL answer is what its query asked for, judged whole
        // before it was sent: there is no list of objects to cut.
        if endpoint.access != Access::Read || endpoint.graphql.is_some() {
            return false;
        }
        let scoped = endpoint.scope_param().is_none()
            && endpoint
                .scope()
                .is_some_and(|kind| !matches!(agent.scope(kind), Scope::All));
        scoped || !agent.constraints(&self.catalog, &endpoint.tool).is_empty()
    }

    /// Keeps only the items `agent` may see in a list `result` of
    /// `endpoint`; returns how many were removed.
    pub fn retain_visible(
        &self,
        agent: &Agent,
        endpoint: &Endpoint,
        items: &mut Vec<Value>,
        directory: &Directory,
    ) -> usize {
        let before = items.len();
        if endpoint.scope_param().is_none()
            && let Some(kind) = endpoint.scope()
        {
            let scope = agent.scope(kind);
            let names = match kind {
                EndpointScope::Zone => &directory.zone_ids,
                EndpointScope::Account => &directory.account_ids,
            };
            items.retain(|item| {
                let id = item["id"].as_str().unwrap_or_default();
                let name = item["name"].as_str().unwrap_or_default();
                scope.check(id, names) == ScopeCheck::Inside || scope.names(name)
            });
        }
        for constraint in agent.constraints(&self.catalog, &endpoint.tool) {
            items.retain(|item| constraint.admits(item.get(&constraint.arg)));
        }
        before - items.len()
    }
}
