//! Stage 1, admit: the tool is one the agent sees, its arguments fit the
//! tool's schema, and they are in the form Cloudflare reads them (judged
//! and sent that way). flaregate's own options come out here, once.

use super::{Call, Services, Stop, UNDO};
use crate::catalog::{Access, Endpoint};
use crate::policy::{Denial, DenyKind};

impl Services {
    pub(super) async fn admit(&self, call: &mut Call<'_>) -> Result<(), Stop> {
        if let Some(failure) = self.engine.freshness().refusing() {
            let why = format!(
                "flaregate's policy did not reload ({failure}) and the operator chose to refuse calls until it does; try again later"
            );
            return Err(Stop::Refused(Denial::new(
                DenyKind::PolicyStale,
                why,
                "policy.on_reload_error",
            )));
        }
        if call.tool == UNDO && !call.scopes.writes_somewhere() {
            return Err(Stop::Refused(read_only()));
        }
        if call.tool == UNDO && (call.agent.undo || call.from_console) {
            self.metrics
                .own_tool(&call.agent.id, crate::metrics::OwnTool::UndoCall);
            // Becomes the restoring call, with the row it undoes.
            self.admit_undo(call).await?;
        }
        let catalog = call.policy.catalog();
        let Some(endpoint) = catalog
            .endpoint(&call.tool)
            .filter(|_| call.agent.may_see(catalog, &call.tool))
        else {
            return Err(Stop::Unknown);
        };
        if !call.scopes.allows(&endpoint.group, endpoint.access) {
            return Err(Stop::Refused(beyond_scopes(call, endpoint)));
        }
        call.endpoint = Some(endpoint);
        call.options
            .take_from(&mut call.args, endpoint, (catalog, call.agent));
        if let Err(invalid) = catalog.validate_arguments(&call.tool, &call.args) {
            let denial = Denial::new(DenyKind::InvalidArguments, invalid.to_string(), "arguments");
            return Err(Stop::Refused(denial));
        }
        self.engine.resolve_names().await;
        let directory = self.engine.directory();
        call.policy
            .canonicalise(call.agent, endpoint, &mut call.args, &directory)
            .map_err(Stop::Refused)?;
        // Built now, so a value Cloudflare must not see is refused before
        // any lookup, and the row records the path that is sent.
        match crate::cloudflare::build(endpoint, &call.args) {
            Ok(request) => call.request = Some(request),
            Err(invalid) => {
                let denial =
                    Denial::new(DenyKind::InvalidArguments, invalid.to_string(), "arguments");
                return Err(Stop::Refused(denial));
            }
        }
        Ok(())
    }
}

/// The refusal of a call its token's scopes do not cover.
fn beyond_scopes(call: &Call<'_>, endpoint: &Endpoint) -> Denial {
    if !call.scopes.writes_somewhere() && call.scopes.allows(&endpoint.group, Access::Read) {
        return read_only();
    }
    let what = match endpoint.access {
        Access::Read => "reading",
        Access::Write => "changing",
    };
    Denial::new(
        DenyKind::InsufficientScope,
        format!(
            "your sign-in's scopes do not cover {what} {}: sign in again with a scope that does",
            endpoint.group
        ),
        "token scope",
    )
}

/// The refusal of a write made with a token that may only read.
fn read_only() -> Denial {
    Denial::new(
        DenyKind::InsufficientScope,
        "your sign-in allows reading only: sign in again with the write scope to change anything",
        "token scope",
    )
}
