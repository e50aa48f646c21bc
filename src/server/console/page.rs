//! The frame every console page shares, and the headers every answer
//! carries: a Content-Security-Policy that allows only the console's own
//! stylesheet and script, no framing, no caching of what it shows.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::guard::Signed;

/// What the browser may load for a console page: its own files only.
const POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Which page is shown (for the navigation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tab {
    Access,
    Log,
    Approvals,
    Health,
    SignIn,
}

/// A whole page: navigation, the signed-in operator, and `body`.
pub(super) fn page(title: &str, tab: Tab, signed: Option<&Signed>, body: Markup) -> Response {
    let link = |href: &str, name: &str, this: Tab| {
        html! {
            @if tab == this {
                a href=(href) aria-current="page" { (name) }
            } @else {
                a href=(href) { (name) }
            }
        }
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · flaregate" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/console.js" defer {}
            }
            body {
                header {
                    span.brand { "flaregate" }
                    @if let Some(signed) = signed {
                        nav aria-label="Console" {
                            (link("/console", "Access", Tab::Access))
                            (link("/console/log", "Log", Tab::Log))
                            (link("/console/approvals", "Approvals", Tab::Approvals))
                            (link("/console/health", "Health", Tab::Health))
                        }
                        form.signout method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(signed.csrf);
                            span { (signed.operator) " (" (signed.role.as_str()) ")" }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    };
    secured(axum::response::Html(markup.into_string()).into_response())
}

/// `response` with the console's security headers.
pub(super) fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A time in milliseconds since the epoch, as RFC 3339 (seconds).
pub(super) fn time(ms: i64) -> String {
    crate::approval::time_of(ms).to_string()
}
