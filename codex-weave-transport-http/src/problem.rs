//! Errors as `application/problem+json` (RFC 9457: `type`, `title`, `status`, `detail`) plus the
//! socket's `code`, with one mapping from codes to HTTP statuses for the whole API.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use codex_weave_runtime::Envelope;
use serde_json::json;

/// An HTTP error with the bus's error code.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub code: String,
    pub detail: String,
}

impl Problem {
    pub fn new(code: &str, detail: impl Into<String>) -> Self {
        Self {
            status: status_of(code),
            code: code.to_owned(),
            detail: detail.into(),
        }
    }

    pub fn unauthorized() -> Self {
        Self::new("unauthorized", "send `Authorization: Bearer <token>` (the token is in <home>/token) or log in through the printed URL")
    }

    /// The problem of an error response from the bus.
    pub fn from_envelope(resp: &Envelope) -> Self {
        match &resp.error {
            Some(e) => Self::new(&e.code, e.message.clone()),
            None => Self::new("internal", "the bus answered without a status"),
        }
    }

    pub fn bus_gone() -> Self {
        Self::new("shutting_down", "the bus is not running")
    }
}

/// The one mapping from the protocol's codes to HTTP statuses.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "bad_request" | "unsupported_version" => StatusCode::BAD_REQUEST,
        "unauthorized" => StatusCode::UNAUTHORIZED,
        "forbidden" | "not_owner" | "foreign_host" | "foreign_origin" => StatusCode::FORBIDDEN,
        c if c.starts_with("unknown_") => StatusCode::NOT_FOUND,
        "session_closed" | "name_taken" | "loop_suppressed" | "agent_busy" | "not_pending" => {
            StatusCode::CONFLICT
        }
        "frame_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "unsupported_media_type" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "inbox_full" | "limit_reached" => StatusCode::TOO_MANY_REQUESTS,
        "store_unavailable" | "shutting_down" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = json!({
            "type": format!("https://weave.dev/problems/{}", self.code),
            "title": title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}
