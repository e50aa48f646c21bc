//! `search_api`: the endpoints an agent may call that match its keywords,
//! best first. An endpoint's words are read once per catalog: its name,
//! title, path, the values its arguments take (a zone setting's id,
//! `always_use_https`, is a value of the edit-a-setting body), its group
//! and its description. A word in the name counts most; the query's words
//! found together, as a phrase, count more than any.

use serde_json::{Value, json};

use crate::catalog::{Catalog, Endpoint};
use crate::policy::{Agent, Scope};

/// The longest query read, and the most words of it searched for.
const MAX_QUERY: usize = 200;
const MAX_WORDS: usize = 16;
/// How much of an endpoint's description a search result carries.
const SUMMARY: usize = 160;
/// The most argument values read from one endpoint's schema.
const MAX_VALUES: usize = 2_000;

/// Each endpoint's words, lowercased once per catalog.
#[derive(Debug)]
pub(crate) struct SearchIndex {
    entries: Vec<Entry>,
}

/// One endpoint's text, as space-separated lowercase words (` a b `, so a
/// word or phrase is found from the start of a word).
#[derive(Debug)]
struct Entry {
    name: String,
    title: String,
    path: String,
    values: String,
    rest: String,
    summary: String,
}

/// ` words of text ` — lowercase, split at anything not a letter or digit.
fn words_of(text: &str) -> String {
    let mut out = String::from(" ");
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        out.push_str(&word.to_lowercase());
        out.push(' ');
    }
    out
}

/// The string values (`enum`, `const`) anywhere in a schema.
fn values_in(schema: &Value, found: &mut Vec<String>) {
    if found.len() >= MAX_VALUES {
        return;
    }
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("enum", Value::Array(items)) => {
                        found.extend(items.iter().filter_map(Value::as_str).map(str::to_string))
                    }
                    ("const", Value::String(one)) => found.push(one.clone()),
                    _ => values_in(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| values_in(item, found)),
        _ => {}
    }
}

impl Entry {
    fn of(endpoint: &Endpoint, catalog: &Catalog) -> Self {
        let mut values = Vec::new();
        values_in(
            &Value::Object((*endpoint.input_schema).clone()),
            &mut values,
        );
        let group = catalog
            .group(&endpoint.group)
            .map_or(endpoint.group.as_str(), |g| g.title.as_str());
        Entry {
            name: words_of(&endpoint.tool),
            title: words_of(&endpoint.title),
            path: words_of(&endpoint.path.raw),
            values: words_of(&values.join(" ")),
            rest: words_of(&format!(
                "{} {group} {}",
                endpoint.group, endpoint.description
            )),
            summary: crate::text::clip(
                endpoint.description.lines().next().unwrap_or_default(),
                SUMMARY,
            ),
        }
    }

    /// How well the entry matches `words` (each ` word`, found at the start
    /// of a word) and `phrase`.
    fn score(&self, words: &[String], phrase: &str) -> usize {
        let fields = [
            (&self.name, 4),
            (&self.title, 3),
            (&self.path, 2),
            (&self.values, 1),
            (&self.rest, 1),
        ];
        let each: usize = words
            .iter()
            .map(|word| {
                fields
                    .iter()
                    .filter(|(text, _)| text.contains(word.as_str()))
                    .map(|(_, weight)| weight)
                    .sum::<usize>()
            })
            .sum();
        let whole = words.len() > 1 && fields.iter().any(|(text, _)| text.contains(phrase));
        each + if whole { 20 } else { 0 }
    }
}

/// Whether `agent` could call `endpoint` on anything at all: a zone or
/// account endpoint needs a zone or account in its scope.
fn reachable(agent: &Agent, endpoint: &Endpoint) -> bool {
    endpoint
        .scope()
        .is_none_or(|kind| !matches!(agent.scope(kind), Scope::Listed(refs) if refs.is_empty()))
}

impl SearchIndex {
    pub(crate) fn new(catalog: &Catalog) -> Self {
        let entries = catalog
            .endpoints()
            .iter()
            .map(|e| Entry::of(e, catalog))
            .collect();
        Self { entries }
    }

    /// The endpoints `agent` may call that match `query`, best first.
    pub(super) fn search(
        &self,
        catalog: &Catalog,
        (agent, scopes): (&Agent, &crate::oauth::TokenAccess),
        query: &str,
        group: Option<&str>,
        limit: usize,
    ) -> Vec<Value> {
        // Bounded whatever the caller sends: the schema's limits are not
        // enforced on these three tools' arguments.
        let query = crate::text::clip(query, MAX_QUERY);
        // A word matches the start of a word (`setting` finds `settings`).
        let spaced = words_of(&query);
        let phrase = spaced.trim_end();
        let words: Vec<String> = spaced
            .split(' ')
            .filter(|w| w.len() > 1)
            .take(MAX_WORDS)
            .map(|w| format!(" {w}"))
            .collect();
        let mut scored: Vec<(usize, usize)> = catalog
            .endpoints()
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                agent.may_use_index(*i)
                    && reachable(agent, e)
                    && scopes.allows(&e.group, e.access)
                    && group.is_none_or(|g| e.group == g)
            })
            .filter_map(|(i, _)| {
                let score = self.entries[i].score(&words, phrase);
                (score > 0 || words.is_empty()).then_some((score, i))
            })
            .collect();
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        scored
            .into_iter()
            .take(limit)
            .map(|(_, i)| {
                let endpoint = &catalog.endpoints()[i];
                json!({
                    "name": endpoint.tool,
                    "description": self.entries[i].summary,
                    "method": endpoint.method.as_str(),
                    "access": endpoint.access,
                    "group": endpoint.group,
                })
            })
            .collect()
    }
}
