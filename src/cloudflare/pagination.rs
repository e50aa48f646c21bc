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

/// A walk over a list's pages, one request at a time, so the caller can
/// charge each page before it is sent (see `server::pipeline::visible`).
#[derive(Debug)]
pub struct PageWalk<'e> {
    endpoint: &'e Endpoint,
    args: Map<String, Value>,
    page: u64,
    max_pages: u32,
    all: AllPages,
    done: bool,
}

impl<'e> PageWalk<'e> {
    /// Starts at the page `args` names (or the first), for at most `max_pages`.
    pub fn new(endpoint: &'e Endpoint, args: &Map<String, Value>, max_pages: u32) -> Self {
        let page = args.get("page").and_then(Value::as_u64).unwrap_or(1);
        let mut walk = Self {
            endpoint,
            args: args.clone(),
            page,
            max_pages,
            all: AllPages {
                items: Vec::new(),
                pages: 0,
                complete: false,
            },
            done: false,
        };
        walk.set_page();
        walk
    }

    fn set_page(&mut self) {
        if self.endpoint.pagination == Pagination::Page {
            self.args.insert("page".into(), Value::from(self.page));
        }
    }

    /// The arguments of the next page to fetch, or none when the walk is over.
    pub fn next_args(&self) -> Option<&Map<String, Value>> {
        (!self.done && self.all.pages < self.max_pages).then_some(&self.args)
    }

    /// Takes in the page just fetched.
    pub fn absorb(&mut self, answer: super::ApiResponse) {
        self.all.pages += 1;
        let items = page_items(self.endpoint, answer.result);
        let got = items.len();
        self.all.items.extend(items);
        let info = answer.result_info.as_ref();
        let more = match self.endpoint.pagination {
            Pagination::None => false,
            Pagination::Page => {
                let total_pages = info
                    .and_then(|i| i.get("total_pages"))
                    .and_then(Value::as_u64);
                let per_page = info.and_then(|i| i.get("per_page")).and_then(Value::as_u64);
                match (total_pages, per_page) {
                    (Some(total), _) => self.page < total,
                    (None, Some(per)) => got as u64 >= per && got > 0,
                    (None, None) => false,
                }
            }
            Pagination::Cursor => match next_cursor(info) {
                Some(cursor) => {
                    self.args.insert("cursor".into(), Value::from(cursor));
                    true
                }
                None => false,
            },
        };
        if more {
            self.page += 1;
            self.set_page();
        } else {
            self.all.complete = true;
            self.done = true;
        }
    }

    /// Every item gathered.
    pub fn finish(self) -> AllPages {
        self.all
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
        let mut walk = PageWalk::new(endpoint, args, max_pages);
        while let Some(args) = walk.next_args() {
            let answer = self.call(endpoint, args).await?;
            walk.absorb(answer);
        }
        Ok(walk.finish())
    }
}
