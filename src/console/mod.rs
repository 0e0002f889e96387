//! The operators' web console: one page of plain HTML, CSS and JavaScript, embedded in the
//! binary and served by the API's own server at `/` (assets under `/console/`). No build
//! step, no CDN, no framework.
//!
//! The page is a client of the JSON API (`/api/v1/…`): it sends the API token the operator
//! typed as `Authorization: Bearer …` from JavaScript, and keeps it in `sessionStorage` only.
//! The token is never put in a URL (so never in a log or a `Referer`) and never in a cookie:
//! a browser attaches only cookies to requests by itself, so another site cannot make the
//! operator's browser send an authenticated request. That is the console's CSRF defence,
//! and why no CSRF token is needed. The server checks every request's role as for any
//! other client: a viewer's page shows no action buttons, and the API refuses its writes.
//!
//! Every console response carries a strict `Content-Security-Policy` (only this origin,
//! no inline script or style), `X-Frame-Options: DENY` (no clickjacking of the buttons),
//! `Referrer-Policy: no-referrer` and `X-Content-Type-Options: nosniff`.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;

/// The page: markup only; behaviour in `console.js`, looks in `console.css`.
const INDEX_HTML: &str = include_str!("assets/index.html");
/// The console's stylesheet (one column under 600 px).
const CONSOLE_CSS: &str = include_str!("assets/console.css");
/// The console's script: sign-in, the pages, polling, the confirmations.
const CONSOLE_JS: &str = include_str!("assets/console.js");

/// The Content-Security-Policy of every console response: this origin only, nothing inline,
/// no frames, forms post nowhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's routes (`/`, `/console/console.css`, `/console/console.js`), for any
/// router state: they read nothing but the embedded assets.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/console/console.css",
            get(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }),
        )
        .route(
            "/console/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", CONSOLE_JS) }),
        )
}

/// One embedded asset with the console's security headers.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    let headers: [(HeaderName, HeaderValue); 7] = [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        // a new binary may serve new assets: the browser asks again each load
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ),
        (
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    (headers, body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_page_loads_its_assets_from_this_origin_and_has_no_inline_script() {
        assert!(INDEX_HTML.contains("src=\"/console/console.js\""));
        assert!(INDEX_HTML.contains("href=\"/console/console.css\""));
        // CSP forbids inline script and style: the page must carry none
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains("style=\""));
        assert!(!INDEX_HTML.contains("onclick"));
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"));
    }

    #[test]
    fn the_script_keeps_the_token_out_of_urls_and_cookies() {
        assert!(CONSOLE_JS.contains("sessionStorage"));
        assert!(!CONSOLE_JS.contains("document.cookie"));
        assert!(!CONSOLE_JS.contains("localStorage"));
        assert!(!CONSOLE_JS.contains("?token"));
    }
}
