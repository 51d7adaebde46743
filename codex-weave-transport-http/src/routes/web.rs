//! The browser UI's files, compiled in.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The web UI (`weave-web/`), embedded in the binary: no build step, no files to install.
const INDEX_HTML: &str = include_str!("../../../weave-web/index.html");

const APP_JS: &str = include_str!("../../../weave-web/app.js");

const STYLE_CSS: &str = include_str!("../../../weave-web/style.css");

pub async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

pub async fn app_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        APP_JS,
    )
        .into_response()
}

pub async fn style_css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLE_CSS,
    )
        .into_response()
}
