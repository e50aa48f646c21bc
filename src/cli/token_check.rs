//! `check --live`'s first step: whether the Cloudflare token is active,
//! said on stdout (the permissions it lacks: `policy::token_gaps`).

use crate::cloudflare::Client;

/// Whether the token is active, a user's or an account's (an
/// account-owned token is verified at its account); says which on stdout.
pub(super) async fn verified(client: &Client) -> Result<(), String> {
    let said = crate::policy::token_gaps::verify(client).await?;
    println!("{said}");
    Ok(())
}
