//! `flaregate hooks`: what to configure in Cloudflare so its notifications
//! reach flaregate — each `[[hook]]`'s destination URL — and `hooks new`,
//! which makes a hook's secret, prints the `[[hook]]` lines for
//! flaregate.toml and, with `--create`, makes the webhook destination in
//! the account through the API (the token needs Notifications Write).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{ConfigPath, Outcome, setup};
use crate::catalog::{Method, ResponseKind};
use crate::cloudflare::{Body, PreparedRequest};

/// Where Cloudflare keeps an account's webhook destinations.
const DESTINATIONS: &str = "/accounts/{account_id}/alerting/v3/destinations/webhooks";

#[derive(Args)]
pub(super) struct HooksArgs {
    #[command(subcommand)]
    action: Option<HooksAction>,
    /// flaregate's HTTP listener as Cloudflare reaches it (default: the
    /// configuration's `[http] listen`, over http).
    #[arg(long, global = true)]
    url: Option<String>,
    #[command(flatten)]
    config: ConfigPath,
}

#[derive(Subcommand)]
enum HooksAction {
    /// Make a new hook: its secret (shown once) and its lines for
    /// flaregate.toml.
    New {
        /// Its name, the last segment of its URL (a-z, 0-9, -).
        name: String,
        /// Also make the webhook destination in this account through the
        /// API (CLOUDFLARE_API_TOKEN with Notifications Write).
        #[arg(long, value_name = "ACCOUNT_ID")]
        create: Option<String>,
    },
}

pub(super) async fn run(args: &HooksArgs) -> Outcome {
    let config = setup::config(&args.config.paths())?;
    let base = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.http.listen))
        .trim_end_matches('/')
        .to_string();
    match &args.action {
        None => {
            if config.http.hooks.is_empty() {
                println!("No [[hook]] in the configuration: `flaregate hooks new NAME` makes one.");
            }
            for hook in &config.http.hooks {
                println!("{}: {base}/hooks/cloudflare/{}", hook.name, hook.name);
            }
            if !config.http.hooks.is_empty() {
                println!(
                    "\nIn Cloudflare: Notifications → Destinations → Webhooks, each URL with the secret made for it; then send alerts to it."
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(HooksAction::New { name, create }) => {
            crate::config::check_hook_name(name)?;
            let (secret, hash) = crate::policy::new_key();
            let url = format!("{base}/hooks/cloudflare/{name}");
            let line = format!("[[hook]]\nname = \"{name}\"\nsecret_sha256 = \"{hash}\"\n");
            println!("Add to flaregate.toml:\n\n{line}");
            if let Some(account) = create {
                let said = create_destination(&config, account, name, &url, &secret).await?;
                println!("Made the webhook destination in account {account}: {said}");
            } else {
                println!(
                    "In Cloudflare, a webhook destination:\n  URL:    {url}\n  secret: {secret}\n(the secret is shown once; flaregate keeps only its hash)"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Makes the webhook destination through the API; its id, in words.
async fn create_destination(
    config: &crate::config::Config,
    account: &str,
    name: &str,
    url: &str,
    secret: &str,
) -> Result<String, String> {
    if account.len() != 32 || !account.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "--create takes the account's 32-hex id, not `{}`",
            crate::text::clip(account, 40)
        ));
    }
    let client = setup::client(config)?.ok_or(
        "--create needs CLOUDFLARE_API_TOKEN (or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY)",
    )?;
    let request = PreparedRequest {
        method: Method::Post,
        path: DESTINATIONS.replace("{account_id}", account),
        query: Vec::new(),
        body: Body::Json(
            json!({"name": format!("flaregate {name}"), "url": url, "secret": secret}),
        ),
        quota: None,
    };
    let answer = client
        .send(&request, ResponseKind::Json)
        .await
        .map_err(|e| format!("Cloudflare did not make the destination: {e}"))?;
    Ok(format!(
        "id {}",
        answer.result["id"].as_str().unwrap_or("(none given)")
    ))
}
