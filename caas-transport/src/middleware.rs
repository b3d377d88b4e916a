//! The gateway's layers: correlation ids, the per-client edge limit (probes
//! exempt), a declared body length checked before the body is read, the request
//! timeout, and CORS.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use caas_core::ids::CorrelationId;
use caas_core::ratelimit::Decision;

use crate::auth::Correlation;
use crate::gateway::AppState;
use crate::problem::ApiError;
use crate::server::ClientKey;

/// The correlation header, echoed or generated on every response.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// The CORS layer for the configured origins; invalid origins are skipped with a
/// warning rather than stopping the platform.
pub(crate) fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| match HeaderValue::from_str(o) {
                    Ok(v) => Some(v),
                    Err(_) => {
                        tracing::warn!(origin = %o, "ignoring an invalid CORS origin");
                        None
                    }
                }),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                axum::http::Method::GET,
                axum::http::Method::POST,
                axum::http::Method::PUT,
                axum::http::Method::PATCH,
                axum::http::Method::DELETE,
            ])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
                HeaderName::from_static(CORRELATION_HEADER),
            ])
            .expose_headers([
                HeaderName::from_static(CORRELATION_HEADER),
                axum::http::header::RETRY_AFTER,
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// Accepts a valid `x-correlation-id` or makes one; puts it on the request, the
/// response and the log span.
pub(crate) async fn correlation(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = req
        .headers()
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| CorrelationId::parse(v).ok())
        .unwrap_or_else(|| CorrelationId::generate(state.caas.now()));
    req.extensions_mut().insert(Correlation(id.clone()));
    let span = tracing::info_span!("request", correlation_id = %id, method = %req.method(), path = %req.uri().path());
    let mut res = tracing::Instrument::instrument(next.run(req), span).await;
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        res.headers_mut()
            .insert(HeaderName::from_static(CORRELATION_HEADER), v);
    }
    res
}

/// GCRA per client (an IPv4 address or an IPv6 /64), before authentication,
/// with `RateLimit-*` headers. Health probes are exempt: a load balancer that
/// probes often must not be told its node is unhealthy because it asked.
pub(crate) async fn edge_limit(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let Some(quota) = state.config.edge_quota else {
        return next.run(req).await;
    };
    if is_probe(req.uri().path()) {
        return next.run(req).await;
    }
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| ClientKey::of(c.0.ip()).to_string())
        .unwrap_or_else(|| "unknown".to_owned());
    let decision = state.caas.check_edge(&ip, &quota).await;
    let limit = quota.burst.unwrap_or(quota.limit);
    match decision {
        Ok(Decision::Allow {
            remaining,
            reset_after,
            ..
        }) => {
            let mut res = next.run(req).await;
            let h = res.headers_mut();
            for (name, value) in [
                ("ratelimit-limit", u64::from(limit)),
                ("ratelimit-remaining", remaining),
                (
                    "ratelimit-reset",
                    reset_after.as_secs() + u64::from(reset_after.subsec_nanos() > 0),
                ),
            ] {
                if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
                    h.insert(HeaderName::from_static(name), v);
                }
            }
            res
        }
        Ok(Decision::Deny { retry_after }) => {
            let mut res = ApiError::rate_limited(
                format!(
                    "more than {} requests per {} s from {ip}",
                    quota.limit, quota.period_secs
                ),
                retry_after,
            )
            .into_response();
            res.headers_mut().insert(
                HeaderName::from_static("ratelimit-limit"),
                HeaderValue::from(limit),
            );
            res.headers_mut().insert(
                HeaderName::from_static("ratelimit-remaining"),
                HeaderValue::from(0u32),
            );
            res
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The health probes, which no limit may refuse.
fn is_probe(path: &str) -> bool {
    matches!(path, "/health" | "/health/live" | "/health/ready")
}

/// Refuses a request whose declared `Content-Length` is over the body limit at
/// once, before any of the body is read (a client that announces a terabyte
/// and sends a kilobyte would otherwise hold the request until it times out).
/// Where the URLs this server signs for blob stores live.
pub(crate) const BLOB_PATH: &str = "/v1/blobs/";

pub(crate) async fn declared_length(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // An upload to a signed blob URL carries a whole file, up to the media limit.
    let limit =
        if req.method() == axum::http::Method::PUT && req.uri().path().starts_with(BLOB_PATH) {
            usize::try_from(state.caas.config().max_media_bytes).unwrap_or(usize::MAX)
        } else {
            state.config.max_body_bytes
        };
    match declared {
        Some(n) if n > u64::try_from(limit).unwrap_or(u64::MAX) => {
            ApiError::too_large(format!("the body is {n} bytes, over the limit of {limit}"))
                .into_response()
        }
        _ => next.run(req).await,
    }
}

pub(crate) async fn timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.config.request_timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            let mut e = ApiError::from(caas_core::Error::Unavailable {
                backend: "gateway",
                context: "request timed out".into(),
                temporary: true,
                source: None,
            })
            .into_response();
            *e.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            e
        }
    }
}
