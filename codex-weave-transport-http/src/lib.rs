//! Weave's HTTP/SSE facade: an axum router over the in-process `weave_bus::Bus`. Every handler
//! sends the bus the request a socket client would, so HTTP and the socket see the same
//! sessions, agents and records from the same runtime. Contract: `docs/weave/http-api.md`.

pub mod api;
pub mod auth;
pub mod feeds;
pub mod links;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod serve;
pub mod stream;

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::cookie::{Cookie, SameSite, SignedCookieJar};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use weave_bus::Bus;

pub use auth::Auth;
pub use problem::Problem;

/// What every handler shares.
#[derive(Debug)]
pub struct HttpState {
    pub bus: Bus,
    pub auth: Arc<Auth>,
    /// Links of HTTP agents (see `links.rs`).
    pub links: Arc<links::Links>,
    /// Open SSE streams (for `/metrics`).
    pub sse_clients: Arc<std::sync::atomic::AtomicU64>,
    /// One follow per session shared by its SSE clients (see `feeds.rs`).
    pub feeds: feeds::Feeds,
    /// Cancelled at shutdown: SSE streams end.
    pub shutdown: CancellationToken,
    /// The socket path, for `/api/health`.
    pub socket: String,
}

pub fn router(state: Arc<HttpState>) -> Router {
    let mut router = Router::new()
        .route("/", get(routes::web::index))
        .route("/app.js", get(routes::web::app_js))
        .route("/style.css", get(routes::web::style_css))
        .route("/login", get(login));
    // Every API operation, from the table the OpenAPI document is built from.
    for op in api::OPS {
        router = router.route(op.path, (op.handler)(op.method.filter()));
    }
    router
        .fallback(|| async {
            Problem::new("unknown_route", "no such route; see /api/openapi.json")
        })
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// What a daemon of a cluster serves before its bus runs (it has no engine to reach yet):
/// every request gets `store_unavailable` (503).
pub fn joining_router() -> Router {
    Router::new().fallback(|| async {
        Problem::new(
            "store_unavailable",
            "this daemon has not joined its cluster yet; try again in a moment",
        )
    })
}

/// Paths served without credentials.
fn is_public(path: &str) -> bool {
    !(path.starts_with("/api/") || path == "/metrics")
        || path == "/api/health"
        || path == "/api/openapi.json"
}

/// Host and Origin checks for every request; credentials for everything not public.
async fn guard(State(st): State<Arc<HttpState>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !auth::is_loopback_host(host) {
        return Problem::new(
            "foreign_host",
            "only loopback host names are served (DNS-rebinding defence)",
        )
        .into_response();
    }
    match auth::request_ok(req.method(), headers) {
        Ok(()) => {}
        Err(auth::Unsafe::ForeignOrigin) => {
            return Problem::new(
                "foreign_origin",
                "state-changing requests are served to the daemon's own page only (Origin must be http://<Host>)",
            )
            .into_response()
        }
        Err(auth::Unsafe::NotJson) => {
            return Problem::new(
                "unsupported_media_type",
                "a request body must be sent with `Content-Type: application/json`",
            )
            .into_response()
        }
    }
    if !is_public(req.uri().path()) && !authorized(&st, headers) {
        return Problem::unauthorized().into_response();
    }
    next.run(req).await
}

fn authorized(st: &HttpState, headers: &HeaderMap) -> bool {
    st.auth.bearer_ok(headers) || session_of(st, headers).is_some()
}

fn session_of(st: &HttpState, headers: &HeaderMap) -> Option<String> {
    let jar = SignedCookieJar::from_headers(headers, st.auth.key.clone());
    let id = jar.get(auth::COOKIE)?.value().to_owned();
    st.auth.is_session(&id).then_some(id)
}

#[derive(Deserialize)]
struct LoginQuery {
    code: String,
}

/// Spends a one-time login code: sets the session cookie and goes to `/`.
async fn login(State(st): State<Arc<HttpState>>, Query(q): Query<LoginQuery>) -> Response {
    let Some(id) = st.auth.redeem(&q.code) else {
        return Problem::new(
            "unauthorized",
            "this login code is unknown, expired or was used already; run `weavectl login` for a new one",
        )
        .into_response();
    };
    let cookie = Cookie::build((auth::COOKIE, id))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build();
    let jar = SignedCookieJar::new(st.auth.key.clone()).add(cookie);
    (jar, Redirect::to("/")).into_response()
}

/// `GET /api/openapi.json`: the document, built once from the route table.
pub(crate) async fn openapi_json() -> axum::Json<&'static serde_json::Value> {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    axum::Json(DOCUMENT.get_or_init(openapi::document))
}

/// Revokes the session cookie (it stops working everywhere, also after a restart).
pub(crate) async fn logout(State(st): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    if let Some(id) = session_of(&st, &headers) {
        st.auth.revoke(&id);
    }
    let jar = SignedCookieJar::from_headers(&headers, st.auth.key.clone())
        .remove(Cookie::build(auth::COOKIE).path("/"));
    (jar, StatusCode::NO_CONTENT).into_response()
}
