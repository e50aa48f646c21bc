//! Arguments put in the form Cloudflare reads them (the catalog's `form`)
//! before the policy judges them, so a constraint sees what Cloudflare will
//! do: `evil.staging.example.com` sent to example.org is judged as the
//! `evil.staging.example.com.example.org` Cloudflare would create. Names are
//! sent in that form too; a URL that does not read as itself is refused
//! for an agent whose URLs are constrained; a value Cloudflare would refuse
//! is refused before the policy is asked about it.

use serde_json::{Map, Value};

use super::decide::{Denial, DenyKind};
use super::model::{Agent, Policy};
use super::scope::Directory;
use crate::catalog::{Canonical, Endpoint};
use crate::text;

impl Policy {
    /// Puts `args` in the form Cloudflare reads them (before [`Policy::decide`]
    /// judges them), or says why the call cannot go on.
    pub fn canonicalise(
        &self,
        agent: &Agent,
        endpoint: &Endpoint,
        args: &mut Map<String, Value>,
        directory: &Directory,
    ) -> Result<(), Denial> {
        let zone = endpoint
            .scope_param()
            .filter(|_| endpoint.scope() == Some(crate::catalog::Scope::Zone))
            .and_then(|p| args.get(&p.name))
            .and_then(Value::as_str)
            .and_then(|id| directory.zone_names.get(id))
            .cloned();
        // Looked up once: most calls have no constraint, and no param a form.
        let constraints = agent.constraints(&self.catalog, &endpoint.tool);
        let is_constrained = |arg: &str| constraints.iter().any(|c| c.arg == arg);
        for param in &endpoint.params {
            let constrained = is_constrained(&param.name);
            if let Some(value) = args.get(&param.name)
                && !param.name_fields.is_empty()
                && is_constrained("name")
                && let Some(field) = param
                    .name_fields
                    .iter()
                    .find(|f| value.get(f.as_str()).is_some())
            {
                return Err(Denial::new(
                    DenyKind::Constraint,
                    format!(
                        "{}.{field} would decide the record's name, which your rules limit: give the name in `name` only",
                        param.name
                    ),
                    format!("{}: name constraint", endpoint.tool),
                ));
            }
            let (Some(form), Some(value)) = (param.form, args.get_mut(&param.name)) else {
                continue;
            };
            let strings: Vec<&mut Value> = match value {
                Value::Array(items) => items.iter_mut().collect(),
                single => vec![single],
            };
            for item in strings {
                let Some(given) = item.as_str() else { continue };
                match form.canonical(given, zone.as_deref()) {
                    Canonical::Is(read) if read == given => {}
                    Canonical::Is(read) if form.rewrites() => *item = Value::String(read),
                    Canonical::Is(read) if constrained => {
                        return Err(Denial::new(
                            DenyKind::InvalidArguments,
                            format!(
                                "{} {} does not read as itself (Cloudflare reads it as {}); send it in that form",
                                param.name,
                                quote(given),
                                quote(&read)
                            ),
                            "arguments",
                        ));
                    }
                    Canonical::Is(_) => {}
                    Canonical::NeedsZone if constrained => {
                        return Err(Denial::new(
                            DenyKind::Unresolved,
                            format!(
                                "could not resolve the zone's name, so cannot tell which {} Cloudflare would give this record",
                                param.name
                            ),
                            "zone names",
                        ));
                    }
                    Canonical::NeedsZone => {}
                    Canonical::Invalid(problem) => {
                        return Err(Denial::new(
                            DenyKind::InvalidArguments,
                            format!("{} {} {problem}", param.name, quote(given)),
                            "arguments",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn quote(value: &str) -> String {
    format!("\"{}\"", text::clip(value, 80))
}
