//! Which call puts back what a write changed, from the catalog alone: the
//! path's shape gives the default, an endpoint's `undo` key says the rest.
//!
//! - A change (PUT, PATCH) is undone by the same endpoint with the prior
//!   state's fields.
//! - A delete is undone by the create on the parent path (POST
//!   `/zones/{zone_id}/dns_records` for a DNS record) with the prior
//!   state's fields.
//! - A create (POST), or a write that made an object that did not exist
//!   before, is undone by the DELETE of that object: on the POST's path
//!   plus the new id, or on the path the prior state was read from.
//! - `undo.tool` names another restoring tool, `undo.text` the argument a
//!   text read's content goes to (Worker code), `undo.never` why a write
//!   cannot be undone.

use super::{Catalog, Endpoint, Method};

/// How to undo one write.
#[derive(Debug, Clone, Copy)]
pub enum Restore<'a> {
    /// Call `tool` with the path arguments and the prior state (its text
    /// content into argument `text`, if it is a text read).
    Put {
        tool: &'a Endpoint,
        text: Option<&'a str>,
    },
    /// Delete what the write made: `tool`'s path arguments, the last one
    /// being the new object's id when the write created it.
    Remove { tool: &'a Endpoint },
}

/// What the write left behind, as its snapshot says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// An object existed before and was changed or removed.
    Changed,
    /// The object did not exist before (404): the write made it.
    Missing,
    /// A create (POST) made a new object.
    Created,
}

impl Catalog {
    /// The call that undoes a write of `endpoint`, or why there is none.
    pub fn undo_of<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        made: Made,
    ) -> Result<Restore<'a>, String> {
        if let Some(never) = &endpoint.undo.never {
            return Err(never.clone());
        }
        let none = |what: String| Err(format!("the catalog has no {what} to undo it with"));
        match made {
            Made::Created => match self.delete_at(&format!("{}/", endpoint.path.raw), true) {
                Some(tool) => Ok(Restore::Remove { tool }),
                None => none(format!("DELETE under {}", endpoint.path.raw)),
            },
            Made::Missing => {
                let read = self
                    .reader_of(endpoint)
                    .map_or(endpoint.path.raw.as_str(), |r| r.path.raw.as_str());
                match self.delete_at(read, false) {
                    Some(tool) => Ok(Restore::Remove { tool }),
                    None => none(format!("DELETE of {read}")),
                }
            }
            Made::Changed => {
                let text = endpoint.undo.text.as_deref();
                if let Some(named) = &endpoint.undo.tool {
                    return match self.endpoint(named) {
                        Some(tool) => Ok(Restore::Put { tool, text }),
                        None => none(format!("tool {named}")),
                    };
                }
                if endpoint.method != Method::Delete {
                    return Ok(Restore::Put {
                        tool: endpoint,
                        text,
                    });
                }
                let parent = endpoint
                    .path
                    .raw
                    .rsplit_once('/')
                    .map_or("", |(parent, _)| parent);
                match self
                    .endpoints
                    .iter()
                    .find(|e| e.method == Method::Post && e.path.raw == parent)
                {
                    Some(tool) => Ok(Restore::Put { tool, text }),
                    None => none(format!("create (POST {parent})")),
                }
            }
        }
    }

    /// The DELETE endpoint at `path`, or (with `child`) one placeholder
    /// below the path prefix `path` ends with.
    fn delete_at(&self, path: &str, child: bool) -> Option<&Endpoint> {
        self.endpoints
            .iter()
            .filter(|e| e.method == Method::Delete)
            .find(|e| match child {
                false => e.path.raw == path,
                true => e.path.raw.strip_prefix(path).is_some_and(|rest| {
                    rest.starts_with('{') && rest.ends_with('}') && !rest.contains('/')
                }),
            })
            .map(|e| &**e)
    }
}
