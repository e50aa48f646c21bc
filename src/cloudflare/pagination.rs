//! Walking every page of a list endpoint, by page number or by cursor, up
//! to a cap so a huge account cannot turn one call into thousands.

use serde_json::{Map, Value};

use super::client::Client;
use super::error::CloudflareError;
use crate::catalog::{Endpoint, Pagination};

/// Every item of a list, gathered over several pages.
#[derive(Debug, Clone, PartialEq)]
pub struct AllPages {
    pub items: Vec<Value>,
    pub pages: u32,
    /// False when the cap stopped the walk before the last page.
    pub complete: bool,
}

/// The cursor for the page after this one, wherever Cloudflare put it
/// (`cursors.after` per the spec, `cursor` per the SDK and R2).
pub fn next_cursor(result_info: Option<&Value>) -> Option<String> {
    let info = result_info?;
    let cursor = info
        .pointer("/cursors/after")
        .or_else(|| info.get("cursor"))?
        .as_str()?;
    (!cursor.is_empty()).then(|| cursor.to_string())
}

/// The items of one page: the result array, or `result[items_field]`.
fn page_items(endpoint: &Endpoint, result: Value) -> Vec<Value> {
    let list = match &endpoint.items_field {
        Some(field) => result.get(field).cloned().unwrap_or(Value::Null),
        None => result,
    };
    match list {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

impl Client {
    /// Calls a paginated list endpoint until the last page or `max_pages`.
    pub async fn fetch_all(
        &self,
        endpoint: &Endpoint,
        args: &Map<String, Value>,
        max_pages: u32,
    ) -> Result<AllPages, CloudflareError> {
        let mut args = args.clone();
        let mut all = AllPages {
            items: Vec::new(),
            pages: 0,
            complete: false,
        };
        let mut page = args.get("page").and_then(Value::as_u64).unwrap_or(1);
        while all.pages < max_pages {
            if endpoint.pagination == Pagination::Page {
                args.insert("page".into(), Value::from(page));
            }
            let answer = self.call(endpoint, &args).await?;
            all.pages += 1;
            let items = page_items(endpoint, answer.result);
            let got = items.len();
            all.items.extend(items);
            let info = answer.result_info.as_ref();
            let more = match endpoint.pagination {
                Pagination::None => false,
                Pagination::Page => {
                    let total_pages = info
                        .and_then(|i| i.get("total_pages"))
                        .and_then(Value::as_u64);
                    let per_page = info.and_then(|i| i.get("per_page")).and_then(Value::as_u64);
                    match (total_pages, per_page) {
                        (Some(total), _) => page < total,
                        (None, Some(per)) => got as u64 >= per && got > 0,
                        (None, None) => false,
                    }
                }
                Pagination::Cursor => match next_cursor(info) {
                    Some(cursor) => {
                        args.insert("cursor".into(), Value::from(cursor));
                        true
                    }
                    None => false,
                },
            };
            if !more {
                all.complete = true;
                break;
            }
            page += 1;
        }
        Ok(all)
    }
}
