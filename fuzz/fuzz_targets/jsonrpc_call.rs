//! Any bytes as a JSON-RPC message at the MCP entry: rmcp's parser, then
//! for a tools/call the server's pure path (tool lookup, argument
//! validation, decision, request building) — errors, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use flaregate::catalog::builtin;
use flaregate::cloudflare::build;
use flaregate::policy::{Directory, Policy, compile};
use libfuzzer_sys::fuzz_target;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        let text = "[[agent]]\nid = \"a\"\nzones = [\"*\"]\naccounts = [\"*\"]\n[agent.grants]\nzones = \"full\"\ndns = \"full\"\ncache = \"full\"\nworkers = \"full\"\n[[agent.constraint]]\ntool = \"create_dns_record\"\narg = \"name\"\nallow = [\"*.example.com\"]\n";
        compile(&[("fuzz.toml".into(), text.to_string())], Arc::new(builtin())).expect("fuzz policy")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(message) = serde_json::from_slice::<ClientJsonRpcMessage>(data) else {
        return;
    };
    let JsonRpcMessage::Request(request) = message else {
        return;
    };
    let ClientRequest::CallToolRequest(call) = request.request else {
        return;
    };
    let policy = policy();
    let agent = policy.agent("a").expect("agent");
    let args = call.params.arguments.clone().unwrap_or_default();
    let tool = call.params.name.as_ref();
    if !agent.may_see(policy.catalog(), tool)
        || policy.catalog().validate_arguments(tool, &args).is_err()
    {
        return;
    }
    let decision = policy.decide(agent, tool, &args, &Directory::default(), None);
    if decision.is_allowed() {
        let endpoint = policy
            .catalog()
            .endpoint(tool)
            .expect("visible tools exist");
        let _ = build(endpoint, &args);
    }
});
