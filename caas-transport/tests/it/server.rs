use std::sync::Arc;
use std::time::Duration;

use caas_core::ratelimit::Quota;
use caas_core::time::{ManualClock, Timestamp};
use caas_core::{Caas, Config};
use caas_crypto::ports::{Argon2Passwords, CryptoAuthority, DeviceKeyVerifier};
use caas_crypto::secret::TenantSecret;
use caas_transport::{AppState, GatewayConfig, ServeConfig, WsConfig, WsHub};

/// The seed of the test servers' token-signing key (tests forge tokens with it).
pub(crate) const SIGNING_SEED: [u8; 32] = [42u8; 32];
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) operator: String,
    pub(crate) clock: Arc<ManualClock>,
    /// The WebSocket hub, to watch connections and shut down.
    pub(crate) ws: Arc<WsHub>,
    /// Where it listens.
    pub(crate) addr: std::net::SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

impl Server {
    pub(crate) async fn start() -> Self {
        Self::with_config(GatewayConfig {
            edge_quota: None,
            ..GatewayConfig::default()
        })
        .await
    }

    pub(crate) async fn with_config(config: GatewayConfig) -> Self {
        Self::with_configs(config, WsConfig::default()).await
    }

    /// A server with these WebSocket limits (and no edge limit).
    pub(crate) async fn with_ws(ws: WsConfig) -> Self {
        Self::with_configs(
            GatewayConfig {
                edge_quota: None,
                ..GatewayConfig::default()
            },
            ws,
        )
        .await
    }

    pub(crate) async fn with_configs(config: GatewayConfig, ws: WsConfig) -> Self {
        Self::with_listener(config, ws, ServeConfig::default()).await
    }

    /// A server with these listener limits (and no edge limit).
    pub(crate) async fn with_serve(serve: ServeConfig) -> Self {
        Self::with_listener(
            GatewayConfig {
                edge_quota: None,
                ..GatewayConfig::default()
            },
            WsConfig::default(),
            serve,
        )
        .await
    }

    pub(crate) async fn with_listener(
        config: GatewayConfig,
        ws: WsConfig,
        serve: ServeConfig,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
        // Blobs on files: their URLs are signed here and served by the gateway.
        let backends = caas_core::ports::metered::metered(caas_core::ports::Backends {
            blobs: Arc::new(caas_storage::fs::FsBlobStore::open_temp().unwrap()),
            ..caas_storage::memory::backends_with_clock(clock.clone())
        });
        let operator = TenantSecret::generate().unwrap();
        let authority = CryptoAuthority::new(operator.hash(), &SIGNING_SEED, "test-1").unwrap();
        let passwords =
            Argon2Passwords::new(caas_crypto::password::PasswordParams::INSECURE_FOR_TESTS)
                .unwrap();
        let state = AppState::new(Arc::new(
            Caas::new(backends, Config::default())
                .with_key_verifier(Arc::new(DeviceKeyVerifier))
                .with_auth(Arc::new(authority), Arc::new(passwords)),
        ))
        .with_gateway_config(config)
        .with_ws_config(ws);
        let hub = state.ws.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(caas_transport::serve(
            listener,
            caas_transport::router(state),
            serve,
            async {
                let _ = rx.await;
            },
        ));
        Server {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            operator: operator.expose_secret().to_owned(),
            clock,
            ws: hub,
            addr,
            shutdown: Some(tx),
            served: Some(served),
        }
    }

    /// Stops the listener and waits for `serve` to return.
    pub(crate) async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.unwrap().unwrap();
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A tenant with users; returns (tenant id, tenant secret).
    pub(crate) async fn tenant(&self, users: &[&str]) -> (String, String) {
        self.tenant_with(users, json!({})).await
    }

    /// A tenant with these settings and users; returns (tenant id, tenant secret).
    pub(crate) async fn tenant_with(&self, users: &[&str], settings: Value) -> (String, String) {
        let r = self
            .call(
                Method::POST,
                "/v1/tenants",
                Some(&self.operator),
                Some(json!({"name": "acme", "settings": settings})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let (tenant, secret) = (
            r.body["tenant_id"].as_str().unwrap().to_owned(),
            r.body["secret"].as_str().unwrap().to_owned(),
        );
        for u in users {
            let r = self
                .call(
                    Method::PUT,
                    &format!("/v1/users/{u}"),
                    Some(&secret),
                    Some(json!({"name": u})),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        }
        (tenant, secret)
    }

    pub(crate) async fn token(&self, secret: &str, user: &str) -> String {
        let r = self
            .call(
                Method::POST,
                &format!("/v1/users/{user}/tokens"),
                Some(secret),
                Some(json!({"ttl_s": 600})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body["access_token"].as_str().unwrap().to_owned()
    }

    pub(crate) fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }
}

#[track_caller]
pub(crate) fn problem(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{:?}", r.body);
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    assert_eq!(r.body["code"], code, "{:?}", r.body);
    assert_eq!(r.body["status"], status.as_u16());
    assert!(
        r.body["title"].is_string() && r.body["detail"].is_string() && r.body["type"].is_string()
    );
}

pub(crate) fn quota(n: u32) -> Quota {
    Quota::per_minute(n)
}

/// An access token for `user` of `tenant`, issued at `iat` for ten minutes and
/// signed with the key of `seed` (the test servers' own, or a forger's).
pub(crate) fn mint_with(seed: &[u8; 32], tenant: &str, user: &str, iat: Timestamp) -> String {
    use caas_core::ports::Authority;
    let operator = TenantSecret::generate().unwrap().hash();
    CryptoAuthority::new(operator, seed, "test-1")
        .unwrap()
        .mint_access_token(
            &caas_core::ids::TenantId::parse(tenant).unwrap(),
            &caas_core::ids::UserId::parse(user).unwrap(),
            None,
            None,
            Duration::from_secs(600),
            iat,
        )
        .unwrap()
}
