//! Reading a GraphQL query for what it reaches, before it is sent: the
//! zones and accounts every selection names by its filter's tags, the
//! datasets it reads and the time each asks for. The catalog says which
//! fields reach zones and accounts and which filter keys name them
//! (`[endpoint.graphql]`); the rest is GraphQL.
//!
//! Fails closed: one query operation only (no mutation, no subscription),
//! every fragment spread and inline fragment expanded where it is used, so
//! an alias, a fragment or a variable hides nothing; a field under the root
//! that the catalog does not name, a zones or accounts selection whose
//! filter does not name them by tag (or names more than its tags), a value
//! that is neither a literal nor a given variable — each refuses the query.
//! Introspection (`__schema`, `__type`, `__typename`) reads no data and is
//! allowed.

use std::collections::{BTreeSet, HashMap};

use graphql_parser::query::{
    Definition, Document, Field, FragmentDefinition, OperationDefinition, Selection, SelectionSet,
    Value as Gql,
};
use serde_json::{Map, Value};

use crate::catalog::{Graphql, Tagged};

/// What a query reaches.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reading {
    /// Zone tags (ids) and account tags it names, each once, in order.
    pub zones: Vec<String>,
    pub accounts: Vec<String>,
    /// The datasets it reads, each with the time it asks for.
    pub datasets: Vec<Dataset>,
}

/// One dataset read under a zone or account, and its time bounds as the
/// filter gives them (the earliest start and latest end of its keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pub name: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Why a query is refused, in words for the agent.
pub type Refusal = String;

/// Reads a call's query and variables from its arguments, as [`read`]
/// does; `None` where they are missing or the query is refused (for
/// describing a call the policy has already judged).
pub fn read_call(spec: &Graphql, args: &Map<String, Value>) -> Option<Reading> {
    let query = args.get(&spec.query)?.as_str()?;
    let empty = Map::new();
    let variables = args
        .get(&spec.variables)
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    read(spec, query, variables).ok()
}

/// Reads `query` (with `variables`) as `spec` describes the API.
pub fn read(
    spec: &Graphql,
    query: &str,
    variables: &Map<String, Value>,
) -> Result<Reading, Refusal> {
    if query.len() > spec.max_bytes {
        return Err(format!(
            "the query is {} bytes; at most {} are taken",
            query.len(),
            spec.max_bytes
        ));
    }
    let document: Document<'_, String> = graphql_parser::parse_query(query).map_err(|e| {
        format!(
            "the query is not valid GraphQL: {}",
            one_line(&e.to_string())
        )
    })?;
    let mut operations = Vec::new();
    let mut fragments = HashMap::new();
    for definition in &document.definitions {
        match definition {
            Definition::Operation(operation) => operations.push(operation),
            Definition::Fragment(fragment) => {
                fragments.insert(fragment.name.as_str(), fragment);
            }
        }
    }
    let selection = match operations.as_slice() {
        [one] => match one {
            OperationDefinition::Query(query) => {
                let mut given = variables.clone();
                for defined in &query.variable_definitions {
                    if let (false, Some(default)) =
                        (given.contains_key(&defined.name), &defined.default_value)
                    {
                        given.insert(defined.name.clone(), to_json(default, &Map::new())?);
                    }
                }
                return Reader::new(spec, &fragments, &given).top(&query.selection_set);
            }
            OperationDefinition::SelectionSet(set) => set,
            OperationDefinition::Mutation(_) => {
                return Err("mutations are refused: this tool only reads".into());
            }
            OperationDefinition::Subscription(_) => {
                return Err("subscriptions are refused: this tool only reads".into());
            }
        },
        [] => return Err("the query has no operation".into()),
        _ => return Err("one operation per request: send the others as calls of their own".into()),
    };
    Reader::new(spec, &fragments, variables).top(selection)
}

/// The walk over one operation, with what it found so far.
struct Reader<'d> {
    spec: &'d Graphql,
    fragments: &'d HashMap<&'d str, &'d FragmentDefinition<'d, String>>,
    variables: &'d Map<String, Value>,
    reading: Reading,
    fields: usize,
}

impl<'d> Reader<'d> {
    fn new(
        spec: &'d Graphql,
        fragments: &'d HashMap<&'d str, &'d FragmentDefinition<'d, String>>,
        variables: &'d Map<String, Value>,
    ) -> Self {
        Self {
            spec,
            fragments,
            variables,
            reading: Reading::default(),
            fields: 0,
        }
    }

    fn top(mut self, set: &'d SelectionSet<'d, String>) -> Result<Reading, Refusal> {
        for field in self.fields_of(set, 1, &mut Vec::new())? {
            match field.name.as_str() {
                "__schema" | "__type" | "__typename" => {}
                name if name == self.spec.root => self.root(field)?,
                other => {
                    return Err(format!(
                        "`{}` is not a field this tool reads: a query starts at `{}`",
                        clip(other),
                        self.spec.root
                    ));
                }
            }
        }
        Ok(self.reading)
    }

    /// Under the root: only the zones and accounts fields (and __typename).
    fn root(&mut self, root: &'d Field<'d, String>) -> Result<(), Refusal> {
        for field in self.fields_of(&root.selection_set, 2, &mut Vec::new())? {
            let name = field.name.as_str();
            if name == "__typename" {
                continue;
            }
            let (tagged, zones) = if name == self.spec.zones.field {
                (&self.spec.zones, true)
            } else if name == self.spec.accounts.field {
                (&self.spec.accounts, false)
            } else {
                return Err(format!(
                    "`{}.{}` is not read through this tool: select `{}` or `{}` with a filter naming them",
                    self.spec.root,
                    clip(name),
                    self.spec.zones.field,
                    self.spec.accounts.field
                ));
            };
            let tags = self.tags(field, tagged)?;
            let list = if zones {
                &mut self.reading.zones
            } else {
                &mut self.reading.accounts
            };
            for tag in tags {
                if !list.contains(&tag) {
                    list.push(tag);
                }
            }
            self.datasets(&field.selection_set, 3)?;
        }
        Ok(())
    }

    /// The tags a zones or accounts selection's filter names: its only
    /// keys are the tag and the tag list (fail closed on anything else).
    fn tags(&self, field: &'d Field<'d, String>, tagged: &Tagged) -> Result<Vec<String>, Refusal> {
        let example = format!(
            "{}(filter: {{{}: \"<id>\"}}) or {}(filter: {{{}: [\"<id>\", …]}})",
            tagged.field, tagged.tag, tagged.field, tagged.tags
        );
        let filter = field
            .arguments
            .iter()
            .find(|(name, _)| *name == tagged.filter)
            .map(|(_, value)| to_json(value, self.variables))
            .transpose()?
            .ok_or_else(|| format!("`{}` without a filter would read every one the token reaches: name them, e.g. {example}", tagged.field))?;
        if let Some((name, _)) = field
            .arguments
            .iter()
            .find(|(name, _)| *name != tagged.filter)
        {
            return Err(format!(
                "`{}` takes only `{}` here, not `{}`",
                tagged.field,
                tagged.filter,
                clip(name)
            ));
        }
        let Value::Object(filter) = filter else {
            return Err(format!(
                "the filter of `{}` must be an object: {example}",
                tagged.field
            ));
        };
        let mut tags = Vec::new();
        for (key, value) in &filter {
            match value {
                Value::String(tag) if *key == tagged.tag => tags.push(tag.clone()),
                Value::Array(items) if *key == tagged.tags => {
                    for item in items {
                        let Value::String(tag) = item else {
                            return Err(format!("`{}` must list tags as strings", tagged.tags));
                        };
                        tags.push(tag.clone());
                    }
                }
                _ => {
                    return Err(format!(
                        "the filter of `{}` may name them only by `{}` or `{}`, not `{}`: {example}",
                        tagged.field,
                        tagged.tag,
                        tagged.tags,
                        clip(key)
                    ));
                }
            }
        }
        if tags.is_empty() {
            return Err(format!(
                "the filter of `{}` names none: {example}",
                tagged.field
            ));
        }
        Ok(tags)
    }

    /// The datasets under a zone or account, with their time bounds.
    fn datasets(&mut self, set: &'d SelectionSet<'d, String>, depth: usize) -> Result<(), Refusal> {
        for field in self.fields_of(set, depth, &mut Vec::new())? {
            if field.name.starts_with("__") {
                continue;
            }
            let mut dataset = Dataset {
                name: field.name.clone(),
                from: None,
                to: None,
            };
            for (name, value) in &field.arguments {
                let value = to_json(value, self.variables)?;
                if name == "filter" {
                    bounds(&value, &self.spec.time_keys, &mut dataset);
                }
            }
            self.walk(&field.selection_set, depth + 1)?;
            if !self.reading.datasets.contains(&dataset) {
                self.reading.datasets.push(dataset);
            }
        }
        Ok(())
    }

    /// Everything below a dataset: counted and bounded, nothing else.
    fn walk(&mut self, set: &'d SelectionSet<'d, String>, depth: usize) -> Result<(), Refusal> {
        for field in self.fields_of(set, depth, &mut Vec::new())? {
            for (_, value) in &field.arguments {
                to_json(value, self.variables)?;
            }
            self.walk(&field.selection_set, depth + 1)?;
        }
        Ok(())
    }

    /// The fields of a selection set, fragments expanded in place (a
    /// fragment spread inside itself is refused), each counted.
    fn fields_of(
        &mut self,
        set: &'d SelectionSet<'d, String>,
        depth: usize,
        within: &mut Vec<&'d str>,
    ) -> Result<Vec<&'d Field<'d, String>>, Refusal> {
        if depth > self.spec.max_depth {
            return Err(format!(
                "the query is nested deeper than {} levels",
                self.spec.max_depth
            ));
        }
        let mut fields = Vec::new();
        for selection in &set.items {
            match selection {
                Selection::Field(field) => {
                    self.fields += 1;
                    if self.fields > self.spec.max_fields {
                        return Err(format!(
                            "the query selects more than {} fields",
                            self.spec.max_fields
                        ));
                    }
                    fields.push(field);
                }
                Selection::InlineFragment(inline) => {
                    fields.extend(self.fields_of(&inline.selection_set, depth, within)?);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.fragment_name.as_str();
                    if within.contains(&name) {
                        return Err(format!("fragment `{}` spreads itself", clip(name)));
                    }
                    let fragment: &'d FragmentDefinition<'d, String> = self
                        .fragments
                        .get(name)
                        .copied()
                        .ok_or_else(|| format!("fragment `{}` is not defined", clip(name)))?;
                    within.push(name);
                    fields.extend(self.fields_of(&fragment.selection_set, depth, within)?);
                    within.pop();
                }
            }
        }
        Ok(fields)
    }
}

/// The earliest start and latest end a dataset's filter gives under the
/// time keys (`datetime_geq`, `date_lt`, …), nested `AND` lists included.
fn bounds(filter: &Value, keys: &[String], dataset: &mut Dataset) {
    let Value::Object(filter) = filter else {
        return;
    };
    for (key, value) in filter {
        if let Value::Array(all) = value {
            for each in all {
                bounds(each, keys, dataset);
            }
            continue;
        }
        let Some(text) = value.as_str() else {
            continue;
        };
        for time in keys {
            let Some(op) = key
                .strip_prefix(time.as_str())
                .and_then(|r| r.strip_prefix('_'))
            else {
                continue;
            };
            match op {
                "geq" | "gt" if dataset.from.as_deref().is_none_or(|f| text < f) => {
                    dataset.from = Some(text.to_string());
                }
                "leq" | "lt" if dataset.to.as_deref().is_none_or(|t| text > t) => {
                    dataset.to = Some(text.to_string());
                }
                _ => {}
            }
        }
    }
}

/// A GraphQL value as JSON, variables put in (an unknown one refuses).
fn to_json(value: &Gql<'_, String>, variables: &Map<String, Value>) -> Result<Value, Refusal> {
    Ok(match value {
        Gql::Variable(name) => variables
            .get(name)
            .cloned()
            .ok_or_else(|| format!("variable `${}` is used but not given", clip(name)))?,
        Gql::Int(n) => Value::from(n.as_i64().unwrap_or_default()),
        Gql::Float(f) => Value::from(*f),
        Gql::String(s) => Value::String(s.clone()),
        Gql::Boolean(b) => Value::Bool(*b),
        Gql::Null => Value::Null,
        Gql::Enum(e) => Value::String(e.clone()),
        Gql::List(items) => Value::Array(
            items
                .iter()
                .map(|item| to_json(item, variables))
                .collect::<Result<_, _>>()?,
        ),
        Gql::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v, variables)?)))
                .collect::<Result<_, Refusal>>()?,
        ),
    })
}

/// The datasets of a reading, each once ("httpRequestsAdaptiveGroups").
pub fn dataset_names(reading: &Reading) -> Vec<&str> {
    let names: BTreeSet<&str> = reading.datasets.iter().map(|d| d.name.as_str()).collect();
    names.into_iter().collect()
}

fn one_line(text: &str) -> String {
    crate::text::one_line(text, 200)
}

fn clip(text: &str) -> String {
    crate::text::clip(text, 60)
}

#[cfg(test)]
mod tests;
