//! `flaregate undo ROW`: asks the running server to undo a logged write,
//! as the operator identity the policy names (an agent with `undo = true`,
//! whose key is in `FLAREGATE_KEY`). The undo runs in the server, so it is
//! decided, sent and audited like any call, in the one chain the server
//! writes; this command shows the undo's preview (the restoring call as it
//! would be sent, and the object now), then asks for the undo itself.

use std::process::ExitCode;

use clap::Args;
use serde_json::{Value, json};

use super::{ConfigPath, Outcome, setup};

#[derive(Args)]
pub(super) struct UndoArgs {
    /// The audit row of the write to undo (`flaregate audit` shows ids).
    row: i64,
    /// Show what the undo would do (its preview) and send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Undo even though what the write changed was changed again since.
    #[arg(long)]
    force: bool,
    /// The server's MCP URL (default: http(s)://LISTEN/mcp from the config).
    #[arg(long)]
    url: Option<String>,
    /// Undo without asking (needed when stdin is not a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
    #[command(flatten)]
    paths: ConfigPath,
}

/// Shows the undo's preview (and what changed since), then, unless
/// `--dry-run`, undoes.
pub(super) async fn run(args: &UndoArgs) -> Outcome {
    let config = setup::config(&args.paths.paths())?;
    let url = args.url.clone().unwrap_or_else(|| {
        let scheme = if config.http.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}/mcp", config.http.listen)
    });
    println!("Preview from {url} (nothing sent):");
    let previewed = ask(&url, args.row, true, args.force).await?;
    if previewed != ExitCode::SUCCESS || args.dry_run {
        return Ok(previewed);
    }
    if !args.yes && !confirmed(args.row)? {
        println!("Not undone.");
        return Ok(ExitCode::FAILURE);
    }
    println!("\nUndo:");
    ask(&url, args.row, false, args.force).await
}

/// Asks the person at the terminal; refuses to guess when there is none.
fn confirmed(row: i64) -> Result<bool, String> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "not undoing row {row}: stdin is not a terminal to ask on; give --yes to undo without asking"
        ));
    }
    print!("\nUndo row {row} as shown? [y/N] ");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| e.to_string())?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// One `undo_call` to the server; prints its answer.
async fn ask(url: &str, row: i64, dry_run: bool, force: bool) -> Outcome {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {
            "name": "undo_call",
            "arguments": {"row": row, "dry_run": dry_run, "force": force},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "flaregate undo", "version": env!("CARGO_PKG_VERSION")}
            }
        }
    });
    let mut request = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "undo_call")
        .json(&body);
    // From the environment, never the command line (other users of the
    // host can read that).
    if let Ok(key) = std::env::var("FLAREGATE_KEY") {
        request = request.bearer_auth(key.trim());
    }
    let response = request.send().await.map_err(|e| {
        format!("cannot reach flaregate at {url} ({e}): undo runs in the server; start `flaregate serve` or give --url")
    })?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| format!("{url} did not finish its answer: {e}"))?;
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(format!(
            "flaregate at {url} refused the key: set FLAREGATE_KEY to the key of an agent the policy lets undo (`undo = true`)"
        ));
    }
    let message = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .chain(std::iter::once(text.as_str()))
        .find_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .filter(|m| m.get("jsonrpc").is_some())
        .ok_or_else(|| {
            format!("{url} answered {status} with no JSON-RPC message: is it flaregate's MCP URL? (give --url)")
        })?;
    if let Some(error) = message.get("error") {
        let said = error["message"].as_str().unwrap_or("an error");
        return Err(if said.contains("undo_call") {
            format!(
                "{said}: this agent may not undo (the policy gives `undo = true` to the operator identity)"
            )
        } else {
            said.to_string()
        });
    }
    let result = &message["result"];
    for block in result["content"].as_array().into_iter().flatten() {
        if let Some(text) = block["text"].as_str() {
            println!("{}", crate::text::escape(text));
        }
    }
    Ok(if result["isError"] == true {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
