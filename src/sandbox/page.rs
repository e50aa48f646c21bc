//! Pagination as Cloudflare does it: page numbers with `result_info`
//! counts, or opaque cursors.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::reply::ApiError;

/// Query parameters, as given.
pub(super) type Query = HashMap<String, String>;

/// Reads an integer query parameter within a range, or Cloudflare's 400.
pub(super) fn number(
    query: &Query,
    name: &str,
    default: u64,
    range: (u64, u64),
) -> Result<u64, ApiError> {
    let Some(text) = query.get(name) else {
        return Ok(default);
    };
    text.parse::<u64>()
        .ok()
        .filter(|n| (range.0..=range.1).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(
                1004,
                format!(
                    "{name} must be a number between {} and {}",
                    range.0, range.1
                ),
            )
        })
}

/// One page of `items` and its `result_info`.
pub(super) fn by_page(
    items: Vec<Value>,
    query: &Query,
    default_per_page: u64,
    range: (u64, u64),
) -> Result<(Value, Value), ApiError> {
    let page = number(query, "page", 1, (1, u64::from(u32::MAX)))?;
    let per_page = number(query, "per_page", default_per_page, range)?;
    let total = items.len() as u64;
    let start = ((page - 1) * per_page).min(total) as usize;
    let slice: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(per_page as usize)
        .collect();
    let info = json!({
        "page": page, "per_page": per_page, "count": slice.len(),
        "total_count": total, "total_pages": total.div_ceil(per_page).max(1)
    });
    Ok((Value::Array(slice), info))
}

/// One page of `items` after the cursor, and the next cursor (`""` at the
/// end). Cursors are the offset in hex, opaque to clients.
pub(super) fn by_cursor(
    items: Vec<Value>,
    query: &Query,
    default_per_page: u64,
    range: (u64, u64),
) -> Result<(Vec<Value>, String, u64), ApiError> {
    let per_page = number(query, "per_page", default_per_page, range)?;
    let start = match query.get("cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(cursor) => usize::from_str_radix(cursor, 16)
            .map_err(|_| ApiError::bad_request(1004, "cursor is not valid"))?,
    };
    let total = items.len();
    let slice: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(per_page as usize)
        .collect();
    let end = start + slice.len();
    let next = if end < total {
        format!("{end:x}")
    } else {
        String::new()
    };
    Ok((slice, next, per_page))
}
