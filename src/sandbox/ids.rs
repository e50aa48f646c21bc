//! Ids, names and times as Cloudflare formats them.

use std::time::SystemTime;

/// A fresh 32-character lowercase hex id.
pub(super) fn new_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// Whether `text` is a 32-character lowercase hex id.
pub(super) fn is_id(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The current time as RFC 3339 (`2026-11-28T04:55:40.123456Z`).
pub(super) fn now() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}
