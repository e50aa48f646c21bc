//! /accounts: list, get.

use axum::Router;
use axum::extract::{Extension, Path, Query, State};
use axum::routing::get;
use serde_json::Value;

use crate::sandbox::Shared;
use crate::sandbox::page::{self, Query as Params};
use crate::sandbox::reply::{self, Reply};
use crate::sandbox::tokens::Grant;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/accounts", get(list))
        .route("/accounts/{account_id}", get(get_one))
}

async fn list(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Query(q): Query<Params>,
) -> Reply {
    sb.check_permission(&grant, "Account Settings Read")?;
    let store = sb.store.read().expect("store lock");
    let mut accounts: Vec<Value> = store
        .accounts
        .iter()
        .filter(|a| q.get("name").is_none_or(|n| a["name"].as_str() == Some(n)))
        // An account-owned token sees its own account.
        .filter(|a| {
            grant
                .account
                .as_deref()
                .is_none_or(|id| a["id"].as_str() == Some(id))
        })
        .cloned()
        .collect();
    if q.get("direction").map(String::as_str) == Some("desc") {
        accounts.reverse();
    }
    let (result, info) = page::by_page(accounts, &q, 20, (5, 50))?;
    Ok(reply::ok_paged(result, info))
}

async fn get_one(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path(account_id): Path<String>,
) -> Reply {
    sb.check_account(&grant, &account_id, "Account Settings Read")?;
    let store = sb.store.read().expect("store lock");
    Ok(reply::ok(
        store.account(&account_id).cloned().unwrap_or_default(),
    ))
}
