//! The dashboard's static files (`crates/hub/web/`), embedded in the binary and served at `/`
//! and `/assets/...`.
//!
//! The files are compiled in with `rust-embed` (also in debug builds, so tests exercise what
//! ships): the hub works offline, from any directory, with no build step and no CDN. Every
//! response carries an exact `Content-Type`, `X-Content-Type-Options: nosniff`, and a strong
//! `ETag` with `Cache-Control: no-cache`, so browsers revalidate cheaply (304) and never run a
//! stale script after an upgrade — the file names carry no content hash.
//!
//! This module serves only embedded, read-only bytes; it must never read the file system at
//! run time, so a request path can never escape `web/`.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use espcam_proto::Resolution;
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "web/"]
struct Web;

/// Routes `GET /` (the dashboard page), `GET /assets/resolutions.json` (the resolution table
/// from `espcam-proto`, so the page never keeps its own copy) and `GET /assets/{*path}`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/resolutions.json", get(resolutions))
        .route("/assets/{*path}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// The login page, served at `/` instead of the dashboard when login is required and the
/// request has no valid session (the address stays `/`, so logging in lands on the
/// dashboard).
pub(crate) fn login_page(headers: &HeaderMap) -> Response {
    let mut r = serve("login.html", headers);
    // The same URL serves two pages: never let a cache answer one for the other.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&format!("assets/{path}"), &headers)
}

/// The content type of an embedded file, from its extension. The dashboard uses only these
/// kinds; anything else is served as opaque bytes rather than guessed.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("webmanifest") => "application/manifest+json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Web::get(path) else {
        let shown = espcam_proto::close::echo(path, 100);
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": format!("no dashboard asset {shown:?}") })),
        )
            .into_response();
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if fresh {
        return (
            StatusCode::NOT_MODIFIED,
            common,
            [(header::ETAG, etag_value)],
        )
            .into_response();
    }
    (
        common,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(path)),
            ),
            (header::ETAG, etag_value),
        ],
        file.data.into_owned(),
    )
        .into_response()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// One row of the resolution table as the dashboard reads it.
#[derive(serde::Serialize)]
struct ResolutionRow {
    index: u8,
    name: &'static str,
    width: u16,
    height: u16,
}

async fn resolutions() -> impl IntoResponse {
    let rows: Vec<ResolutionRow> = Resolution::ALL
        .iter()
        .map(|r| ResolutionRow {
            index: r.index(),
            name: r.name(),
            width: r.width(),
            height: r.height(),
        })
        .collect();
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
        axum::Json(rows),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(tag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        router::<()>()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header_of(res: &Response, name: header::HeaderName) -> &str {
        res.headers().get(name).unwrap().to_str().unwrap()
    }

    #[tokio::test]
    async fn index_is_the_dashboard_page() {
        let res = get("/", None).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            header_of(&res, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert_eq!(header_of(&res, header::CACHE_CONTROL), "no-cache");
        let body = to_bytes(res.into_body(), 1 << 20).await.unwrap();
        let html = std::str::from_utf8(&body).unwrap();
        assert!(html.contains(r#"<script type="module" src="/assets/js/app.js">"#));
    }

    #[tokio::test]
    async fn every_module_the_page_imports_is_served_as_javascript() {
        for module in [
            "app",
            "api",
            "charts",
            "connection",
            "admin",
            "controls",
            "events",
            "grid",
            "notifications",
            "recordings",
            "snapshots",
            "telemetry",
            "viewer",
            "zones",
        ] {
            let res = get(&format!("/assets/js/{module}.js"), None).await;
            assert_eq!(res.status(), StatusCode::OK, "{module}.js");
            assert_eq!(
                header_of(&res, header::CONTENT_TYPE),
                "text/javascript; charset=utf-8"
            );
            assert_eq!(header_of(&res, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        }
        let css = get("/assets/app.css", None).await;
        assert_eq!(
            header_of(&css, header::CONTENT_TYPE),
            "text/css; charset=utf-8"
        );
        let icon = get("/assets/icon.svg", None).await;
        assert_eq!(header_of(&icon, header::CONTENT_TYPE), "image/svg+xml");
    }

    #[tokio::test]
    async fn etag_revalidation_answers_304_without_a_body() {
        let first = get("/assets/app.css", None).await;
        let etag = header_of(&first, header::ETAG).to_owned();
        assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
        let again = get("/assets/app.css", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header_of(&again, header::ETAG), etag);
        let body = to_bytes(again.into_body(), 1 << 20).await.unwrap();
        assert!(body.is_empty());
        let stale = get("/assets/app.css", Some("\"0000\"")).await;
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn unknown_and_escaping_paths_are_404() {
        for path in [
            "/assets/nope.js",
            "/assets/../Cargo.toml",
            "/assets/%2e%2e/src/lib.rs",
            "/assets/js/../../Cargo.toml",
            "/assets/",
        ] {
            let res = get(path, None).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        }
        let res = get("/assets/nope.js", None).await;
        let body = to_bytes(res.into_body(), 1 << 20).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "no dashboard asset \"assets/nope.js\"");
    }

    #[tokio::test]
    async fn resolution_table_comes_from_proto() {
        let res = get("/assets/resolutions.json", None).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body = to_bytes(res.into_body(), 1 << 20).await.unwrap();
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
        assert_eq!(rows.len(), 13);
        assert_eq!(
            rows[6],
            serde_json::json!({"index": 6, "name": "VGA", "width": 640, "height": 480})
        );
        assert_eq!(rows[12]["name"], "QXGA");
    }
}
