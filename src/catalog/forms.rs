//! Values that Cloudflare reads in a form of its own: a DNS record name is
//! taken relative to its zone, a hostname without case or trailing dot, a
//! URL after its dot-segments are resolved. A catalog parameter names its
//! form (`form = "record_name"`), and flaregate judges — and sends — the
//! value as Cloudflare will read it, so a constraint sees what Cloudflare
//! will do rather than the text the agent wrote.

use serde::Deserialize;

/// How Cloudflare reads a parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// A DNS record name in the call's zone: `@` is the apex, a name that
    /// does not end in the zone gets the zone appended, case and a trailing
    /// dot are dropped.
    RecordName,
    /// A hostname: case and a trailing dot are dropped.
    Hostname,
    /// An absolute http(s) URL.
    Url,
    /// A URL without its scheme (`www.example.com/assets/`).
    UrlPrefix,
}

/// What a value becomes when Cloudflare reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Canonical {
    /// The form Cloudflare reads; may differ from the value given.
    Is(String),
    /// The value cannot be judged without the zone's name.
    NeedsZone,
    /// Cloudflare would refuse it (or read it in a way that cannot be
    /// judged); the words say why.
    Invalid(String),
}

impl Form {
    /// `value` as Cloudflare reads it; `zone` is the call's zone name.
    pub fn canonical(self, value: &str, zone: Option<&str>) -> Canonical {
        match self {
            Form::RecordName => record_name(value, zone),
            Form::Hostname => match hostname(value, false) {
                Ok(name) => Canonical::Is(name),
                Err(problem) => Canonical::Invalid(problem),
            },
            Form::Url => url(value),
            Form::UrlPrefix => match url(&format!("https://{value}")) {
                Canonical::Is(full) => {
                    Canonical::Is(full.trim_start_matches("https://").to_string())
                }
                other => other,
            },
        }
    }

    /// Whether flaregate sends the canonical form in place of the value
    /// (names: the same record either way), rather than asking a
    /// constrained agent to send it itself (URLs: the cache key is the text).
    pub fn rewrites(self) -> bool {
        matches!(self, Form::RecordName | Form::Hostname)
    }
}

fn record_name(value: &str, zone: Option<&str>) -> Canonical {
    let Some(zone) = zone else {
        return Canonical::NeedsZone;
    };
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    let trimmed = value.trim_end_matches('.');
    if trimmed == "@" {
        return Canonical::Is(zone);
    }
    let name = match hostname(value, true) {
        Ok(name) => name,
        Err(problem) => return Canonical::Invalid(problem),
    };
    let full = if name == zone || name.ends_with(&format!(".{zone}")) {
        name
    } else {
        format!("{name}.{zone}")
    };
    if full.len() > 253 {
        return Canonical::Invalid(format!(
            "the full name {full} would be longer than 253 characters"
        ));
    }
    Canonical::Is(full)
}

/// Checks DNS name syntax: labels of 1–63 letters, digits, `-` or `_`
/// (and a leading `*` label where `wildcard`), 253 characters at most.
fn hostname(value: &str, wildcard: bool) -> Result<String, String> {
    let name = value
        .strip_suffix('.')
        .unwrap_or(value)
        .to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err("must be a DNS name of 1 to 253 characters".into());
    }
    for (index, label) in name.split('.').enumerate() {
        if label.is_empty() {
            return Err("must not have an empty label (two dots in a row)".into());
        }
        if label.len() > 63 {
            return Err("has a label longer than 63 characters".into());
        }
        if wildcard && index == 0 && label == "*" {
            continue;
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            let shown = if bad.is_control() || bad.is_whitespace() {
                format!("U+{:04X}", bad as u32)
            } else {
                bad.to_string()
            };
            return Err(format!(
                "must be letters, digits, '-' or '_' between dots (found {shown}); write internationalised names in punycode"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("has a label that starts or ends with '-'".into());
        }
    }
    Ok(name)
}

/// An http(s) URL as a browser (and Cloudflare's cache) reads it: scheme
/// and host lower-cased, dot-segments (plain or percent-encoded) resolved.
/// Percent-encoded slashes, backslashes and dots are refused: servers
/// disagree on them.
fn url(value: &str) -> Canonical {
    let parsed = match url::Url::parse(value) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => parsed,
        _ => return Canonical::Invalid("must be an absolute http:// or https:// URL".into()),
    };
    let lowered = parsed.path().to_ascii_lowercase();
    if ["%2e", "%2f", "%5c"].iter().any(|e| lowered.contains(e)) {
        return Canonical::Invalid(
            "must not hold percent-encoded dots or slashes (%2e, %2f, %5c) in its path".into(),
        );
    }
    Canonical::Is(parsed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is(text: &str) -> Canonical {
        Canonical::Is(text.to_string())
    }

    #[test]
    fn record_names_are_read_relative_to_their_zone() {
        let f = |v: &str| Form::RecordName.canonical(v, Some("example.org"));
        assert_eq!(f("www"), is("www.example.org"));
        assert_eq!(f("@"), is("example.org"));
        assert_eq!(f("Example.ORG."), is("example.org"));
        assert_eq!(f("a.example.org"), is("a.example.org"));
        assert_eq!(
            f("evil.staging.example.com"),
            is("evil.staging.example.com.example.org")
        );
        assert_eq!(f("*.dev"), is("*.dev.example.org"));
        assert!(matches!(f("a..b"), Canonical::Invalid(_)));
        assert!(matches!(f("a b"), Canonical::Invalid(_)));
        assert!(matches!(f("a\nb"), Canonical::Invalid(_)));
        assert!(matches!(f(&"a".repeat(64)), Canonical::Invalid(_)));
        assert!(matches!(f("a.*"), Canonical::Invalid(_)));
        assert_eq!(
            Form::RecordName.canonical("www", None),
            Canonical::NeedsZone
        );
    }

    #[test]
    fn urls_resolve_dot_segments_and_case() {
        let f = |v: &str| Form::Url.canonical(v, None);
        assert_eq!(
            f("https://www.example.com/app.css"),
            is("https://www.example.com/app.css")
        );
        assert_eq!(
            f("HTTPS://WWW.Example.com/a/../b"),
            is("https://www.example.com/b")
        );
        assert_eq!(
            f("https://www.example.com/a/%2e%2e/b"),
            is("https://www.example.com/b")
        );
        assert!(matches!(
            f("https://www.example.com/a%2Fb"),
            Canonical::Invalid(_)
        ));
        assert!(matches!(f("javascript:alert(1)"), Canonical::Invalid(_)));
        assert_eq!(
            Form::UrlPrefix.canonical("www.example.com/a/./b/", None),
            is("www.example.com/a/b/")
        );
    }
}
