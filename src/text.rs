//! Caller-chosen text made safe to show to a person: every character that
//! could start a new line, move the cursor or reorder what a terminal shows
//! (newlines, carriage returns, ANSI escapes, bidi overrides) is written as
//! an escape, so no argument name or value can forge a log or audit line;
//! long values are clipped.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must be escaped before it is shown: C0/C1 controls, line and
/// paragraph separators, and the bidi controls that reorder a line.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        other => {
            let _ = write!(out, "\\u{{{:x}}}", other as u32);
        }
    }
}

/// `text` with every dangerous character escaped (`\n`, `\r`, `\u{1b}`);
/// borrowed when nothing needed escaping.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A person's note as kept: its whitespace made single spaces (one line),
/// escaped, and at most `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    clip(&text.split_whitespace().collect::<Vec<_>>().join(" "), max)
}

/// `text` escaped and cut to at most `max` characters of the original,
/// with `…` when something was cut.
pub fn clip(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 2));
    let mut chars = text.chars();
    for c in chars.by_ref().take(max) {
        if needs_escape(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// The 1-based line of byte `offset` in `text` (for file:line errors).
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_not_dropped() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(
            escape("a\nb\r\u{1b}[31mred\u{202e}"),
            "a\\nb\\r\\u{1b}[31mred\\u{202e}"
        );
    }

    #[test]
    fn clip_counts_characters_and_marks_the_cut() {
        assert_eq!(clip("héllo", 10), "héllo");
        assert_eq!(clip("héllo", 2), "hé…");
        assert_eq!(clip("a\nb", 2), "a\\n…");
    }

    #[test]
    fn lines_are_counted_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}

/// The known name `word` most likely misspells, as " (did you mean `x`?)",
/// or nothing when none is close.
pub fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    known
        .into_iter()
        .map(|name| (strsim::jaro_winkler(word, name), name))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| format!(" (did you mean `{name}`?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod did_you_mean_tests {
    #[test]
    fn a_near_name_is_suggested_and_a_far_one_is_not() {
        let known = ["list_dns_records", "create_dns_record", "purge_cache"];
        assert_eq!(
            super::did_you_mean("list_dns_record", known),
            " (did you mean `list_dns_records`?)"
        );
        assert_eq!(super::did_you_mean("zzz", known), "");
    }
}
