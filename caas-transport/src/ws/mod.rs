//! The WebSocket server: `GET /v1/ws`.
//!
//! - [`frames`]: the protocol's frames as Rust types (the `caas.v1.json` form);
//!   `proto/caas.v1.proto` is the `caas.v1.proto` form.
//! - the upgrade (here): authenticates before upgrading (401/403 as
//!   problem+json), registers the connection, sizes its buffers.
//! - `connection`: one connection's task: it serves requests and drains the
//!   bounded outbox into coalesced socket writes.
//! - `registry`: the node's connections by tenant, user and device.
//! - `fanout`: the node's one bus subscriber, and the presence heartbeat.
//!
//! [`WsHub`] ties them together; it lives in [`crate::AppState`] and is what the
//! platform calls to shut down gracefully.

mod codec;
mod config;
mod connection;
mod fanout;
pub mod frames;
mod proto;
mod registry;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use caas_core::ids::{CorrelationId, DeviceId};
use caas_core::{Caas, PrincipalKind};
use serde::Deserialize;
use tokio::sync::{OnceCell, watch};

pub use codec::FrameError;
pub use config::WsConfig;
pub use frames::Codec;

pub(crate) use codec::{Encoded, decode_server, encode_client};

/// Encodes a client frame for `codec`: JSON text (as UTF-8 bytes, to send as a
/// text frame) or protobuf (to send as a binary frame). For clients other than
/// [`crate::client`].
pub fn encode_client_frame(codec: Codec, frame: &frames::ClientFrame) -> Vec<u8> {
    match codec::encode_client(codec, frame) {
        Encoded::Text(s) => s.into_bytes(),
        Encoded::Binary(b) => b,
    }
}

/// Decodes a server frame received on a `codec` connection (the bytes of a text
/// frame for JSON, of a binary frame for protobuf).
pub fn decode_server_frame(codec: Codec, bytes: &[u8]) -> Result<frames::ServerFrame, FrameError> {
    codec::decode_server(codec, codec == Codec::Json, bytes)
}

use crate::auth::Correlation;
use crate::extract::Api;
use crate::gateway::AppState;
use crate::problem::ApiError;
use registry::{CloseReason, NewConnection, Registry};

/// The WebSocket side of a node: its configuration, its live connections and the
/// background tasks that feed them. Share it (it sits in an `Arc` in
/// [`AppState`]).
#[derive(Debug)]
pub struct WsHub {
    config: Arc<WsConfig>,
    registry: Arc<Registry>,
    started: OnceCell<()>,
    closing: AtomicBool,
    stop: watch::Sender<bool>,
}

/// What [`WsHub::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections told to reconnect (close 1012).
    pub closed: usize,
    /// Connections still open when the grace period ended.
    pub remaining: usize,
}

impl WsHub {
    /// A hub with `config`. Background tasks start with the first connection.
    pub fn new(config: WsConfig) -> Self {
        let (stop, _) = watch::channel(false);
        Self {
            config: Arc::new(config),
            registry: Arc::new(Registry::default()),
            started: OnceCell::new(),
            closing: AtomicBool::new(false),
            stop,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &WsConfig {
        &self.config
    }

    /// Live connections on this node (including those closing).
    pub fn connections(&self) -> usize {
        self.registry.live()
    }

    /// Whether [`WsHub::shutdown`] has begun (new connections get 503).
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Graceful shutdown: refuse new connections, tell every client to reconnect
    /// elsewhere (close 1012 "service restart") after the frames already queued
    /// for it, and wait up to `grace` for the connections to finish. Call it
    /// before stopping the HTTP server; calling it again only waits again.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.closing.store(true, Ordering::Release);
        let closed = self.registry.live();
        self.registry.close_all(&CloseReason::RESTART);
        let _ = tokio::time::timeout(grace, self.registry.drained()).await;
        self.stop.send_replace(true);
        ShutdownReport {
            closed,
            remaining: self.registry.live(),
        }
    }

    /// Subscribes this node to the bus and starts the fan-out and the presence
    /// heartbeat, once. The subscription exists before the first connection is
    /// registered, so no event published after a connection opens misses it.
    async fn start(&self, caas: &Arc<Caas>) -> Result<(), caas_core::Error> {
        self.started
            .get_or_try_init(|| async {
                let subscription = caas.subscribe().await?;
                tokio::spawn(fanout::run(
                    self.registry.clone(),
                    subscription,
                    self.stop.subscribe(),
                ));
                tokio::spawn(fanout::heartbeat(
                    caas.clone(),
                    self.registry.clone(),
                    self.stop.subscribe(),
                ));
                Ok::<(), caas_core::Error>(())
            })
            .await
            .map(|_| ())
    }
}

impl Default for WsHub {
    fn default() -> Self {
        Self::new(WsConfig::default())
    }
}

/// The query of `/v1/ws`. Unknown parameters are ignored (browsers add their own).
#[derive(Debug, Deserialize)]
pub(crate) struct WsQuery {
    access_token: Option<String>,
    device_id: Option<String>,
}

/// `GET /v1/ws`: authenticates (header or `?access_token=`) and upgrades. Every
/// refusal is an HTTP problem+json response, before any upgrade.
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    correlation: Option<axum::Extension<Correlation>>,
    headers: HeaderMap,
    Api(Query(query)): Api<Query<WsQuery>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match accept(state, correlation.map(|c| c.0.0), &headers, query, upgrade).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn accept(
    state: AppState,
    correlation: Option<CorrelationId>,
    headers: &HeaderMap,
    query: WsQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let hub = state.ws.clone();
    if hub.is_closing() {
        return Err(caas_core::Error::Unavailable {
            backend: "websocket",
            context: "the node is shutting down".into(),
            temporary: true,
            source: None,
        }
        .into());
    }
    let now = state.caas.now();
    let correlation = correlation.unwrap_or_else(|| CorrelationId::generate(now));
    let bearer = crate::auth::bearer_of(headers)
        .or(query.access_token.as_deref().filter(|t| !t.is_empty()))
        .ok_or_else(|| {
            ApiError::unauthenticated(
                "missing credential: `Authorization: Bearer` or `?access_token=`",
            )
        })?;
    let who = state.caas.authenticate(bearer, correlation).await?;
    let (mut principal, expires_at) = (who.principal, who.valid_until);
    let (Some(tenant), Some(user), PrincipalKind::User) = (
        principal.tenant.clone(),
        principal.user.clone(),
        principal.kind,
    ) else {
        return Err(caas_core::Error::forbidden("websocket-users-only").into());
    };
    // Refused here as every frame would be (a suspended tenant, a user that no
    // longer exists), with the same status as REST.
    state.caas.verify_principal(&principal).await?;
    let upgrade = upgrade.map_err(|r| ApiError::invalid(r.body_text()))?;
    if principal.device.is_none()
        && let Some(d) = query.device_id.as_deref()
    {
        principal = principal.with_device(DeviceId::parse(d)?);
    }
    hub.start(&state.caas).await?;
    state.caas.meter_connection(&principal);

    let config = hub.config.clone();
    let upgrade = upgrade
        .read_buffer_size(config.read_buffer_bytes.max(1))
        .write_buffer_size(config.write_buffer_bytes)
        .max_write_buffer_size(config.write_ceiling())
        .max_message_size(config.max_message_bytes)
        .max_frame_size(config.max_message_bytes)
        .protocols([frames::JSON_PROTOCOL, frames::PROTO_PROTOCOL]);
    // No sub-protocol (a plain browser socket) means JSON.
    let codec = upgrade
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .and_then(Codec::from_protocol)
        .unwrap_or_default();

    let registration = hub
        .registry
        .register(
            NewConnection {
                device: principal.device.clone(),
                principal,
                tenant,
                user,
                codec,
                capacity: config.queue_capacity,
            },
            config.max_connections_per_user,
        )
        .map_err(|e| caas_core::Error::QuotaExceeded {
            quota: format!("{} WebSocket connections per user", e.limit),
        })?;
    // A shutdown that began after the check above has already swept the registry.
    if hub.is_closing() {
        registration.handle().close(CloseReason::RESTART);
    }
    let session = connection::Session {
        caas: state.caas.clone(),
        config,
        registration,
        expires_at,
        origin: ["host", "x-forwarded-host", "x-forwarded-proto"]
            .into_iter()
            .filter_map(|name| Some((name, headers.get(name)?.clone())))
            .map(|(name, v)| (axum::http::HeaderName::from_static(name), v))
            .collect(),
    };
    Ok(upgrade
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| connection::run(socket, session)))
}
