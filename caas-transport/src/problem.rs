//! Errors as `application/problem+json` (RFC 9457) with the `api.md` codes. Every
//! error the gateway returns goes through [`ApiError`], so this is the one place
//! where core error kinds become HTTP statuses, and where internal detail stops.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use caas_core::Error;

/// The `api.md` code of an error response, left on the response for metrics.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    /// A 401: no or bad credential.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }

    /// A 400 naming the field at fault.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", detail)
    }

    /// A 413.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", detail)
    }

    /// A 404 for a route or resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// A 429 with `Retry-After`.
    pub fn rate_limited(detail: impl Into<String>, retry_after: Duration) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail);
        e.retry_after = Some(retry_after);
        e
    }

    /// A temporary 503 with `Retry-After`.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail);
        e.retry_after = Some(Duration::from_secs(1));
        e
    }

    /// A 500 that says nothing about its cause (which is logged instead).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log with this correlation id",
        )
    }

    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `api.md` code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human-readable detail (never an internal cause).
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// When a retry can succeed, for `rate_limited` and temporary `unavailable`.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

fn title(code: &str) -> &'static str {
    match code {
        "unauthenticated" => "Unauthenticated",
        "forbidden" => "Forbidden",
        "not_found" => "Not found",
        "invalid_argument" => "Invalid argument",
        "conflict" => "Conflict",
        "payload_too_large" => "Payload too large",
        "rate_limited" => "Rate limited",
        "quota_exceeded" => "Quota exceeded",
        "unavailable" => "Unavailable",
        _ => "Internal error",
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match &e {
            // Causes of these can name tables, files or hosts: log them, never send them.
            Error::Internal { .. } => {
                tracing::error!(error = %e, source = ?std::error::Error::source(&e), "internal error");
                Self::internal()
            }
            Error::Unavailable {
                backend, temporary, ..
            } => {
                tracing::warn!(error = %e, "backend unavailable");
                let mut a = Self::new(status, "unavailable", format!("{backend} is unavailable"));
                if *temporary {
                    a.retry_after = Some(Duration::from_secs(1));
                }
                a
            }
            Error::RateLimited { retry_after, .. } => {
                Self::rate_limited(e.to_string(), *retry_after)
            }
            _ => Self::new(status, e.code(), e.to_string()),
        }
    }
}

impl ApiError {
    /// The `application/problem+json` body.
    pub(crate) fn body_json(&self) -> String {
        serde_json::json!({
            "type": format!("urn:caas:error:{}", self.code),
            "title": title(self.code),
            "status": self.status.as_u16(),
            "code": self.code,
            "detail": self.detail,
        })
        .to_string()
    }

    /// `Retry-After` in whole seconds, rounded up so a client never retries early.
    pub(crate) fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
            .map(|after| (after.as_secs() + u64::from(after.subsec_nanos() > 0)).max(1))
    }
}

impl ApiError {
    /// The error of a WebSocket `ack` (the same code and detail as REST).
    pub(crate) fn into_error_body(self) -> crate::ws::frames::ErrorBody {
        crate::ws::frames::ErrorBody {
            retry_after_ms: self.retry_after_millis(),
            code: self.code.to_owned(),
            message: self.detail,
        }
    }

    /// A WebSocket `error` frame: a frame that could not be acted on, or (with
    /// `resync`) a notice to the whole connection.
    pub(crate) fn into_error_frame(
        self,
        reference: Option<String>,
        resync: bool,
    ) -> crate::ws::frames::ErrorFrame {
        crate::ws::frames::ErrorFrame {
            reference,
            retry_after_ms: self.retry_after_millis(),
            code: self.code.to_owned(),
            message: self.detail,
            resync,
        }
    }

    /// The same, with no `Retry-After`: for notices where waiting is not the
    /// remedy.
    pub(crate) fn without_retry_after(mut self) -> Self {
        self.retry_after = None;
        self
    }

    fn retry_after_millis(&self) -> Option<u64> {
        self.retry_after
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, self.body_json()).into_response();
        res.extensions_mut().insert(ErrorCode(self.code));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after_secs() {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.status.as_u16(),
            self.detail
        )
    }
}

impl std::error::Error for ApiError {}

/// The body of every error response (`application/problem+json`), for the OpenAPI
/// document.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    /// `urn:caas:error:<code>`.
    #[schema(rename = "type")]
    kind: String,
    /// A short summary of the code.
    title: String,
    /// The HTTP status.
    status: u16,
    /// One of the `api.md` codes.
    #[schema(example = "forbidden")]
    code: String,
    /// What went wrong, naming the field or rule at fault.
    detail: String,
}

/// The error responses of every operation, for the OpenAPI document: each is a
/// [`Problem`] whose `code` says which `api.md` error it is. One definition for
/// every operation, since any request can meet most of them (a bad credential,
/// a policy, a limit, a timeout); each operation's description says which of
/// its own it adds.
#[derive(Debug)]
pub struct Problems;

impl utoipa::IntoResponses for Problems {
    fn responses() -> std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
    > {
        use utoipa::openapi::content::ContentBuilder;
        use utoipa::openapi::response::ResponseBuilder;
        use utoipa::openapi::{Ref, RefOr};
        [
            (400, "invalid argument (`invalid_argument`)"),
            (401, "no or bad credential (`unauthenticated`)"),
            (
                403,
                "denied by a policy rule, named in `detail` (`forbidden`)",
            ),
            (404, "not found (`not_found`)"),
            (409, "conflicts with the current state (`conflict`)"),
            (413, "over a size limit (`payload_too_large`)"),
            (
                429,
                "over a rate limit or quota, with `Retry-After` (`rate_limited`, `quota_exceeded`)",
            ),
            (500, "a bug, logged with the correlation id (`internal`)"),
            (
                503,
                "a backend is unavailable or the request timed out (`unavailable`)",
            ),
        ]
        .into_iter()
        .map(|(status, description)| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build();
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/problem+json", content)
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
    }
}
