//! Answers cut to what the agent may see (the policy says what, in
//! `policy/lists.rs`). A list is gathered whole (up to `MAX_PAGES` pages)
//! and paged again here, so its page information counts only what the agent
//! sees: neither `total_count` nor a filter reveals anything else. A single
//! object that the agent's constraints refuse is withheld.

use serde_json::{Map, Value, json};

use super::{Call, Services, Ticket};
use crate::catalog::{Endpoint, Pagination};
use crate::cloudflare::{ApiResponse, CloudflareError, PageWalk};

/// Pages gathered for one cut list, at most (each is a Cloudflare request).
const MAX_PAGES: u32 = 5;

/// Items per page when neither the call nor the catalog says.
const DEFAULT_PER_PAGE: u64 = 20;

/// What the agent gets of an answer it may only partly see.
pub(super) enum Visible {
    Answer(ApiResponse),
    /// The object is outside the agent's constraints: nothing is shown.
    Withheld,
}

impl Services {
    /// Calls a read whose answer is cut for the call's agent: each page
    /// after the first is charged before it is sent.
    pub(super) async fn fetch_visible(
        &self,
        call: &Call<'_>,
        ticket: &mut Ticket,
    ) -> Result<Visible, CloudflareError> {
        let (policy, agent, endpoint, args) =
            (call.policy, call.agent, call.endpoint(), &call.args);
        let directory = self.engine.directory();
        if endpoint.pagination == Pagination::None && endpoint.items_field.is_none() {
            let request = crate::cloudflare::build(endpoint, args)?;
            let answer = self.send(ticket, &request, endpoint.response).await?;
            return Ok(match answer.result {
                Value::Array(mut items) => {
                    policy.retain_visible(agent, endpoint, &mut items, &directory);
                    Visible::Answer(ApiResponse {
                        result: Value::Array(items),
                        ..answer
                    })
                }
                object => {
                    let mut one = vec![object];
                    if policy.retain_visible(agent, endpoint, &mut one, &directory) > 0 {
                        Visible::Withheld
                    } else {
                        Visible::Answer(ApiResponse {
                            result: one.pop().unwrap_or(Value::Null),
                            ..answer
                        })
                    }
                }
            });
        }
        let mut walk = args.clone();
        for paging in ["page", "per_page", "cursor"] {
            walk.remove(paging);
        }
        if let Some(max) = per_page_param(endpoint, "maximum") {
            walk.insert("per_page".into(), json!(max));
        }
        let mut pages = PageWalk::new(endpoint, &walk, MAX_PAGES);
        let mut first = true;
        while let Some(page_args) = pages.next_args() {
            // The first page was charged with the call; past the agent's
            // share the list stops at the pages it could pay for.
            if !std::mem::take(&mut first) && self.charge_page(agent, ticket).await.is_err() {
                break;
            }
            let request = crate::cloudflare::build(endpoint, page_args)?;
            let answer = self.send(ticket, &request, endpoint.response).await?;
            pages.absorb(answer);
        }
        let mut items = pages.finish().items;
        policy.retain_visible(agent, endpoint, &mut items, &directory);
        Ok(Visible::Answer(page_of(endpoint, args, items)))
    }
}

/// One page of the visible items, as the call asked for it, with page
/// information that counts only them.
fn page_of(endpoint: &Endpoint, args: &Map<String, Value>, items: Vec<Value>) -> ApiResponse {
    let total = items.len() as u64;
    let (page, per_page) = if endpoint.pagination == Pagination::Page {
        let per_page = args
            .get("per_page")
            .and_then(Value::as_u64)
            .or_else(|| per_page_param(endpoint, "default"))
            .unwrap_or(DEFAULT_PER_PAGE)
            .max(1);
        (
            args.get("page").and_then(Value::as_u64).unwrap_or(1).max(1),
            per_page,
        )
    } else {
        // A cursor cannot be cut: every visible item on one page.
        (1, total.max(1))
    };
    let shown: Vec<Value> = items
        .into_iter()
        .skip(((page - 1) * per_page) as usize)
        .take(per_page as usize)
        .collect();
    let info = json!({
        "page": page,
        "per_page": per_page,
        "count": shown.len(),
        "total_count": total,
        "total_pages": total.div_ceil(per_page).max(1),
    });
    let result = match &endpoint.items_field {
        Some(field) => json!({ field.as_str(): shown }),
        None => Value::Array(shown),
    };
    ApiResponse {
        status: 200,
        result,
        result_info: Some(info),
    }
}

/// A number from the `per_page` parameter's schema (`maximum`, `default`).
fn per_page_param(endpoint: &Endpoint, key: &str) -> Option<u64> {
    endpoint
        .param_schema("per_page")
        .and_then(|schema| schema.get(key))
        .and_then(Value::as_u64)
}
