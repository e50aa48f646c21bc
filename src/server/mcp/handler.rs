//! The rmcp `ServerHandler`: where flaregate speaks MCP. It finds the
//! caller's agent (from the HTTP request, or the one stdio agent) and hands
//! the rest to the pipeline. Stateless tools/call requests that skip rmcp's
//! service (`direct.rs`) come to the same [`Handler::dispatch`].

use super::sessions::ScopesChanged;
use crate::oauth::TokenAccess;
use std::sync::Arc;

#[allow(deprecated)]
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, DiscoverResult, ErrorData, Implementation,
    InitializeRequestParams, InitializeResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig, SetLevelRequestParams, SubscribeRequestParams, SubscriptionFilter,
    UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{RoleServer, ServerHandler};

use super::briefing;
use crate::server::Gateway;
use crate::server::pipeline::{Asker, CallRequest};

/// The agent a request speaks for, set by the HTTP authentication layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The policy's agent.
    pub agent: String,
    /// The person and client an OAuth token names ("alice@example.com via
    /// client claude"); none for a key.
    pub person: Option<String>,
    /// What its OAuth token's scopes allow: nothing beyond them is offered
    /// or made, whatever the policy grants (unlimited for a key).
    pub scopes: TokenAccess,
}

impl Caller {
    pub fn agent(agent: impl Into<String>) -> Self {
        Self {
            agent: agent.into(),
            person: None,
            scopes: TokenAccess::unlimited(),
        }
    }
}

/// One MCP service over the shared gateway.
#[derive(Clone)]
pub struct Handler {
    gateway: Arc<Gateway>,
    /// The agent of a stdio process (`--agent`); HTTP requests carry theirs.
    stdio_agent: Option<String>,
    /// Sessions subscribed to their alerts.
    subscriptions: super::subscriptions::Subscriptions,
}

impl Handler {
    pub fn new(gateway: Arc<Gateway>, stdio_agent: Option<String>) -> Self {
        Self {
            gateway,
            stdio_agent,
            subscriptions: Default::default(),
        }
    }

    /// The caller's agent, when it may read alerts.
    fn alerts_reader(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Option<(Caller, Arc<crate::policy::Policy>)> {
        let caller = self.caller(context)?;
        let policy = self.gateway.engine().policy();
        let agent = policy.agent(&caller.agent)?;
        super::alerts::may(agent, &caller.scopes).then(|| (caller, policy.clone()))
    }

    /// The server instructions for the caller's agent, once names are
    /// resolved (waiting a little for them at start-up).
    async fn instructions(&self, context: &RequestContext<RoleServer>) -> Option<String> {
        let agent_id = self.caller(context)?.agent;
        let engine = self.gateway.engine();
        let _ = tokio::time::timeout(NAMES_WAIT, engine.resolve_names()).await;
        let policy = engine.policy();
        let agent = policy.agent(&agent_id)?;
        Some(briefing::instructions(&policy, agent, &engine.directory()))
    }

    fn caller(&self, context: &RequestContext<RoleServer>) -> Option<Caller> {
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>())
            .cloned()
            .or_else(|| self.stdio_agent.clone().map(Caller::agent))
    }
}

/// How long initialize waits for zone and account names at start-up, so
/// the instructions can name them.
const NAMES_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

const INSTRUCTIONS: &str = "flaregate gives you Cloudflare API tools within the limits an operator set. \
You only see the tools you may use; a call outside your zones, accounts or allowed values is denied with \
the reason. Every call is logged.";

impl ServerHandler for Handler {
    // Logging (deprecated by SEP-2577) stays enabled: clients still send
    // logging/setLevel and must get an answer.
    #[allow(deprecated)]
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_logging()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_resources_subscribe()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("flaregate", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        context.peer.set_peer_info(request.clone());
        let mut result = self.negotiate_initialize(&request)?;
        if let Some(instructions) = self.instructions(&context).await {
            result.instructions = Some(instructions);
        }
        Ok(result)
    }

    async fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<DiscoverResult, ErrorData> {
        let mut info = self.get_info();
        if let Some(instructions) = self.instructions(&context).await {
            info.instructions = Some(instructions);
        }
        Ok(DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            info,
        ))
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.gateway.notifier.register(context.peer);
    }

    fn accepted_subscription_filter(
        &self,
        request: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(request.supported_by(&self.get_info().capabilities))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let mut changed = self.gateway.notifier.subscribe();
        let mut alerts = self.gateway.alerts().listen();
        let reader = self.alerts_reader(context.request_context());
        let wants_alerts = context
            .accepted()
            .resource_subscriptions
            .as_ref()
            .is_some_and(|uris| uris.iter().any(|u| u == super::alerts::ALERTS_URI));
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                Ok(()) = changed.recv() => {
                    let _ = context.sink().notify_tool_list_changed().await;
                }
                Ok(row) = alerts.recv() => {
                    let Some((caller, _)) = reader.as_ref().filter(|_| wants_alerts) else {
                        continue;
                    };
                    // The policy in force now: a reload may have changed the grant.
                    let policy = self.gateway.engine().policy();
                    let Some(agent) = policy.agent(&caller.agent) else { continue };
                    if super::alerts::sees(&self.gateway, agent, row).await {
                        let _ = context
                            .sink()
                            .notify_resource_updated(super::alerts::ALERTS_URI)
                            .await;
                    }
                }
            }
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let resources = match self.alerts_reader(&context) {
            Some((caller, policy)) => match policy.agent(&caller.agent) {
                Some(agent) => super::alerts::resources(&self.gateway, agent).await,
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        Ok(ListResourcesResult::with_all_items(resources).with_cache_scope(CacheScope::Private))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let not_found = || {
            ErrorData::resource_not_found(
                format!("no resource {}", crate::text::clip(&request.uri, 80)),
                None,
            )
        };
        let (caller, policy) = self.alerts_reader(&context).ok_or_else(not_found)?;
        let agent = policy.agent(&caller.agent).ok_or_else(not_found)?;
        let text = super::alerts::read(&self.gateway, agent, &request.uri)
            .await
            .ok_or_else(not_found)?;
        let contents = rmcp::model::ResourceContents::TextResourceContents {
            uri: request.uri.clone(),
            mime_type: Some("application/json".into()),
            text,
            meta: None,
        };
        Ok(rmcp::model::ReadResourceResult::new(vec![contents]).into())
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let (caller, _) = self
            .alerts_reader(&context)
            .filter(|_| request.uri == super::alerts::ALERTS_URI)
            .ok_or_else(|| {
                ErrorData::resource_not_found(
                    format!(
                        "no resource {} to subscribe to",
                        crate::text::clip(&request.uri, 80)
                    ),
                    None,
                )
            })?;
        self.subscriptions.subscribe(
            self.gateway.clone(),
            (session_of(&context), caller.agent),
            request.uri,
            context.peer.clone(),
        );
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscriptions
            .unsubscribe(session_of(&context), request.uri);
        Ok(())
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        tracing::debug!(level = ?request.level, "client asked for a log level");
        Ok(())
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let policy = self.gateway.engine().policy();
        let cursor = request.as_ref().and_then(|r| r.cursor.as_deref());
        // A request without a known agent sees nothing.
        let caller = self.caller(&context);
        let scopes = caller
            .as_ref()
            .map_or_else(TokenAccess::unlimited, |c| c.scopes.clone());
        let Some(agent) = caller.and_then(|c| policy.agent(&c.agent)) else {
            return Ok(
                ListToolsResult::with_all_items(Vec::new()).with_cache_scope(CacheScope::Private)
            );
        };
        if agent.discover {
            let mut tools = super::discovery::tools();
            if agent.undo {
                tools.push(super::discovery::undo_tool());
            }
            if super::alerts::may(agent, &scopes) {
                tools.push(super::alerts::tool());
            }
            return Ok(ListToolsResult::with_all_items(tools).with_cache_scope(CacheScope::Private));
        }
        let (mut tools, next) = self
            .gateway
            .tools
            .page(agent, cursor)
            .ok_or_else(|| ErrorData::invalid_params("invalid cursor", None))?;
        let directory = self.gateway.engine().directory();
        let view = briefing::View::new(policy.catalog(), agent, &directory);
        for tool in &mut tools {
            if let Some(endpoint) = policy.catalog().endpoint(&tool.name) {
                view.tailor(tool, endpoint);
            }
        }
        // A token is offered only what its scopes allow.
        if !scopes.is_unlimited() {
            tools.retain(|tool| {
                policy
                    .catalog()
                    .endpoint(&tool.name)
                    .is_some_and(|e| scopes.allows(&e.group, e.access))
            });
        }
        // Offered on the last page to the agents the policy lets undo.
        if next.is_none() && agent.undo && scopes.writes_somewhere() {
            tools.push(super::discovery::undo_tool());
        }
        if next.is_none() && super::alerts::may(agent, &scopes) {
            tools.push(super::alerts::tool());
        }
        let mut result =
            ListToolsResult::with_all_items(tools).with_cache_scope(CacheScope::Private);
        result.next_cursor = next;
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = self
            .caller(&context)
            .ok_or_else(|| ErrorData::invalid_request("no agent for this request", None))?;
        tell_if_scopes_changed(&context);
        let asker = super::ask::asker(&request, &context);
        self.dispatch(&caller, request, asker, context.meta.get_traceparent())
            .await
    }
}

/// Tells the client its tool list changed when its token's scopes did
/// since the session's last request (a step-up): it is offered other tools.
fn tell_if_scopes_changed(context: &RequestContext<RoleServer>) {
    let changed = context
        .extensions
        .get::<axum::http::request::Parts>()
        .is_some_and(|parts| parts.extensions.get::<ScopesChanged>().is_some());
    if changed {
        let peer = context.peer.clone();
        tokio::spawn(async move {
            if let Err(error) = peer.notify_tool_list_changed().await {
                tracing::debug!(%error, "a client went away before hearing of its new tools");
            }
        });
    }
}

impl Handler {
    /// Runs a tools/call for `agent`: an endpoint's tool, a discovery tool
    /// or `undo_call`, whichever the agent may use. Shared by rmcp's path
    /// and the direct one (`direct.rs`).
    pub(super) async fn dispatch(
        &self,
        caller: &Caller,
        request: CallToolRequestParams,
        asker: Option<Asker>,
        traceparent: Option<&str>,
    ) -> Result<CallToolResponse, ErrorData> {
        let agent = caller.agent.as_str();
        let discovers = super::discovery::is_discovery_tool(&request.name)
            && self
                .gateway
                .engine()
                .policy()
                .agent(agent)
                .is_some_and(|a| a.discover);
        if discovers {
            return super::discovery::answer(&self.gateway, caller, request, asker, traceparent)
                .await;
        }
        if request.name == super::alerts::LIST {
            let policy = self.gateway.engine().policy();
            if let Some(agent) = policy
                .agent(agent)
                .filter(|a| super::alerts::may(a, &caller.scopes))
            {
                let args = request.arguments.unwrap_or_default();
                return Ok(super::alerts::answer(&self.gateway, agent, &args)
                    .await
                    .into());
            }
        }
        let call = CallRequest {
            agent: agent.to_string(),
            person: caller.person.clone(),
            scopes: caller.scopes.clone(),
            from_console: false,
            confirmed: false,
            tool: request.name.into_owned(),
            args: request.arguments.unwrap_or_default(),
            asker,
            traceparent: traceparent.map(str::to_string),
        };
        super::render::response(self.gateway.services.run(call).await)
    }
}

/// The session a request belongs to (its `mcp-session-id`; stdio is one).
fn session_of(context: &RequestContext<RoleServer>) -> String {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.headers.get("mcp-session-id"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("stdio")
        .to_string()
}
