//! The HTTP gateway: its state, its configuration and the router with every
//! layer ([`crate::middleware`]) in place.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use caas_core::Caas;
use caas_core::ratelimit::Quota;

use crate::middleware as mw;
use crate::problem::ApiError;
use crate::ws::{WsConfig, WsHub};

pub use crate::middleware::CORRELATION_HEADER;

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
    /// Checks the payment provider's webhook signatures: `POST
    /// /v1/billing/stripe` is served only with one.
    pub payment_webhook: Option<std::sync::Arc<dyn WebhookVerifier>>,
}

/// Checks a signed webhook delivery (`caas_crypto::webhook::WebhookSigner`
/// does, with Stripe's scheme).
pub trait WebhookVerifier: Send + Sync + std::fmt::Debug {
    /// Whether `signature` (the header's value) signs `body`, made within
    /// `tolerance_secs` of `now` (Unix seconds); why not, if not.
    fn verify(
        &self,
        signature: &str,
        body: &[u8],
        now: i64,
        tolerance_secs: u64,
    ) -> Result<(), String>;
}

impl Default for GatewayConfig {
    /// 64 KiB bodies, 100 requests/min per IP (the platform default), 30 s.
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            edge_quota: Some(Quota::per_minute(100)),
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            payment_webhook: None,
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

/// The gateway's router with every layer, ready for [`crate::serve`].
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let cors = mw::cors(&state.config.cors_origins);
    let router = crate::routes::routes(state.caas.config().max_media_bytes)
        .route_layer(axum::middleware::from_fn(crate::metrics::record))
        .route("/metrics", axum::routing::get(crate::metrics::render))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(from_fn_with_state(state.clone(), mw::declared_length))
        .layer(from_fn_with_state(state.clone(), mw::timeout))
        .layer(from_fn_with_state(state.clone(), mw::edge_limit))
        .layer(from_fn_with_state(state.clone(), mw::correlation))
        .with_state(state);
    match cors {
        Some(layer) => router.layer(layer),
        None => router,
    }
}
