//! The HTTP gateway: state, configuration, middleware and the router.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use caas_core::Caas;
use caas_core::ids::CorrelationId;
use caas_core::ratelimit::{Decision, Quota};

use crate::auth::Correlation;
use crate::problem::ApiError;
use crate::server::ClientKey;
use crate::ws::{WsConfig, WsHub};

/// The correlation header, echoed or generated on every response.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// Limits of the gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest request body (413 above it).
    pub max_body_bytes: usize,
    /// Requests per client IP at the edge, before authentication (`None`: off).
    pub edge_quota: Option<Quota>,
    /// Longest time one request may take (503 after it).
    pub request_timeout: Duration,
    /// Browser origins allowed to call the API (CORS); empty sends no CORS headers,
    /// so browsers refuse cross-origin calls. `*` allows any origin.
    pub cors_origins: Vec<String>,
}

impl Default for GatewayConfig {
    /// 64 KiB bodies, 100 requests/min per IP (the platform default), 30 s.
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            edge_quota: Some(Quota::per_minute(100)),
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
        }
    }
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The service, with its credential authority installed
    /// ([`Caas::with_auth`]): every use case, authentication included.
    pub caas: Arc<Caas>,
    /// The limits.
    pub config: Arc<GatewayConfig>,
    /// The Prometheus registry behind `/metrics` ([`crate::metrics::install`]).
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// The WebSocket server: its limits, live connections and shutdown.
    pub ws: Arc<WsHub>,
}

impl AppState {
    /// A state with the default gateway and WebSocket configurations and the
    /// process-wide metrics recorder.
    pub fn new(caas: Arc<Caas>) -> Self {
        Self {
            caas,
            config: Arc::new(GatewayConfig::default()),
            metrics: crate::metrics::install(),
            ws: Arc::new(WsHub::default()),
        }
    }

    /// With these gateway limits.
    pub fn with_gateway_config(mut self, config: GatewayConfig) -> Self {
        self.config = Arc::new(config);
        self
    }

    /// With this WebSocket configuration (a fresh hub: call before serving).
    pub fn with_ws_config(mut self, config: WsConfig) -> Self {
        self.ws = Arc::new(WsHub::new(config));
        self
    }
}

/// The gateway's router with every layer, ready for [`serve`].
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let cors = cors(&state.config.cors_origins);
    let router = crate::routes::routes()
        .route_layer(middleware::from_fn(crate::metrics::record))
        .route("/metrics", axum::routing::get(crate::metrics::render))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            declared_length,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), timeout))
        .layer(middleware::from_fn_with_state(state.clone(), edge_limit))
        .layer(middleware::from_fn_with_state(state.clone(), correlation))
        .with_state(state);
    match cors {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// The CORS layer for the configured origins; invalid origins are skipped with a
/// warning rather than stopping the platform.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
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
async fn correlation(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
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
async fn edge_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
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
async fn declared_length(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let limit = state.config.max_body_bytes;
    match declared {
        Some(n) if n > u64::try_from(limit).unwrap_or(u64::MAX) => {
            ApiError::too_large(format!("the body is {n} bytes, over the limit of {limit}"))
                .into_response()
        }
        _ => next.run(req).await,
    }
}

async fn timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
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

/// `Json<T>` whose rejections are problem+json: 413 over the body limit, 400 for
/// malformed JSON or a wrong content type, 422 for JSON of the wrong shape.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(match rej.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(rej.body_text()),
                _ => ApiError::invalid(rej.body_text()),
            }),
        }
    }
}

/// `Path<T>` with problem+json rejections.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    axum::extract::Path<T>: FromRequestParts<S, Rejection = PathRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|r| ApiError::invalid(r.body_text()))
    }
}

/// `Query<T>` with problem+json rejections.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r| ApiError::invalid(r.body_text()))
    }
}

/// An optional JSON body: `None` when the body is empty, otherwise as [`ApiJson`].
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| match r.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(r.body_text()),
                _ => ApiError::invalid(r.body_text()),
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        serde_json::from_slice(&bytes)
            .map(|v| OptionalJson(Some(v)))
            .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
    }
}
