//! The web console: a few static pages served at `/console`, compiled into the binary.
//!
//! The console is a client like any other. Its script calls the public REST and management APIs
//! with the signed-in principal's bearer token (kept in the tab's `sessionStorage`), so it can
//! show and change exactly what that principal may; the server gives it nothing else. Without a
//! token, on a server with auth on, every API call answers 401 and the console shows only its
//! sign-in page. The assets are plain HTML, CSS and JavaScript (charts are SVG the script draws),
//! with no third-party code and nothing loaded from elsewhere, so the console works offline.
//!
//! Every response carries a strict Content-Security-Policy: scripts, styles and connections from
//! this origin only, no inline script, no framing (`frame-ancestors 'none'`), no form posts to
//! other sites; and `X-Content-Type-Options: nosniff`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::extract::Path;

/// Every asset: (file name, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/console.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/charts.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("assets/favicon.svg"),
    ),
];

const INDEX: &[u8] = include_bytes!("assets/index.html");

/// What the console's pages may load and do: only this origin's scripts, styles, images and API.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `GET /console`: the one page; the script draws every view in it.
pub async fn index() -> Response {
    respond("text/html; charset=utf-8", INDEX)
}

/// `GET /console/{asset}`: a script, a style sheet or an image of the console.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, bytes)) => respond(content_type, bytes),
        None => ApiError::not_found(
            "NotFoundException",
            format!("the console has no file {name:?}"),
        )
        .into_response(),
    }
}

fn respond(content_type: &'static str, bytes: &'static [u8]) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            // A new binary may bring new assets: revalidate rather than run a stale script.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_response_carries_the_security_headers() {
        for response in [index().await, asset(Path("console.js".to_string())).await] {
            assert_eq!(response.status(), StatusCode::OK);
            let headers = response.headers();
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
    }

    #[tokio::test]
    async fn unknown_assets_are_not_found() {
        let response = asset(Path("../Cargo.toml".to_string())).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_page_runs_no_inline_script() {
        let page = String::from_utf8_lossy(INDEX);
        for tag in page.split("<script").skip(1) {
            assert!(
                tag.trim_start().starts_with("src="),
                "inline script in index.html: <script{tag}"
            );
        }
        let inline_handler = page.split_whitespace().any(|word| {
            word.strip_prefix("on").is_some_and(|rest| {
                rest.split_once('=')
                    .is_some_and(|(event, _)| event.chars().all(|c| c.is_ascii_lowercase()))
            })
        });
        assert!(!inline_handler, "inline event handler in index.html");
    }
}
