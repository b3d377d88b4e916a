//! The whole platform in one process on the embedded default: configuration, keys,
//! storage (SQLite and local blobs under the data dir, `caas_storage::embedded`),
//! the service, and the gateway on one listener. `examples/platform` is a
//! thin `main` around [`start`]; end-to-end tests start it on `127.0.0.1:0`.

mod backends;
mod config;
mod demo;
mod keys;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::{
    BlobsKind, BusKind, ConfigError, EncryptionConfig, PlatformConfig, PresenceKind, Secret,
    ServersConfig, Storage, WebhooksConfig,
};
pub use demo::{Demo, create_demo};

use caas_core::ports::Backends;
use caas_core::ratelimit::Quota;
use caas_core::{Caas, Config};
use caas_storage::embedded::{Embedded, EmbeddedConfig};
use caas_storage::sqlite::{Durability, SqliteConfig};
use caas_transport::{AppState, GatewayConfig};

/// Why the platform could not start.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// A configuration mistake.
    #[error("configuration: {0}")]
    Config(String),
    /// The file system or the listener.
    #[error("{0}")]
    Io(String),
    /// The storage could not open.
    #[error("storage: {0}")]
    Storage(#[from] caas_core::Error),
}

impl From<ConfigError> for PlatformError {
    fn from(e: ConfigError) -> Self {
        PlatformError::Config(e.0)
    }
}

/// A running platform.
#[derive(Debug)]
pub struct Platform {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The service, for in-process callers (the demo, tests).
    pub state: AppState,
    /// The operator key, when it was generated at this start (print it once).
    pub generated_operator_key: Option<String>,
    /// The embedded storage, for backups and integrity checks (`None` with
    /// [`Storage::Memory`]).
    pub storage: Option<Embedded>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    housekeeping: tokio::task::JoinHandle<()>,
    webhooks: tokio::task::JoinHandle<()>,
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.housekeeping.abort();
        self.webhooks.abort();
    }
}

/// The backends of the embedded default.
fn open_storage(config: &PlatformConfig) -> Result<Embedded, PlatformError> {
    let durability = if config.durable {
        Durability::Full
    } else {
        Durability::Normal
    };
    let embedded = caas_storage::embedded::open(
        &config.data_dir,
        EmbeddedConfig {
            sqlite: SqliteConfig {
                durability,
                ..SqliteConfig::default()
            },
            ..EmbeddedConfig::default()
        },
    )?;
    log_tightened(&embedded.tightened);
    tracing::info!(database = %embedded.sqlite.path().display(), ?durability, "embedded storage open");
    Ok(embedded)
}

fn log_tightened(changes: &[caas_storage::PermissionChange]) {
    for change in changes {
        tracing::warn!(
            path = %change.path.display(),
            before = %format!("{:04o}", change.before),
            after = %format!("{:04o}", change.after),
            "group and other users could read this; access is now the owner's alone"
        );
    }
}

/// Opens storage, loads or generates keys, binds the listener and serves.
///
/// With [`Storage::Embedded`], storage opens first: it creates the data dir (0700)
/// and locks it, so a second platform on the same data dir fails here, with
/// [`PlatformError::Storage`] naming the data dir, before it writes anything.
pub async fn start(config: PlatformConfig) -> Result<Platform, PlatformError> {
    // The connection cap is drawn from the open-file limit: take all the
    // process may have.
    match caas_transport::server::raise_descriptor_limit() {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "open-file limit not raised"),
    }
    let embedded = match config.storage {
        Storage::Embedded => Some(open_storage(&config)?),
        Storage::Memory | Storage::Postgres | Storage::Mongo => None,
    };
    // With the stores elsewhere, the data dir still holds the keys and the blobs:
    // made here (0700), before the keys are read or generated into it.
    let node_blobs = match config.storage {
        Storage::Postgres | Storage::Mongo => {
            let (blobs, tightened) = caas_storage::embedded::open_blobs(
                &config.data_dir,
                caas_storage::fs::FsBlobConfig::default(),
            )?;
            log_tightened(&tightened);
            Some(blobs)
        }
        Storage::Embedded | Storage::Memory => None,
    };
    let (operator, seed, key_id) = match config.storage {
        // Nodes of one platform share these keys: give every node the same
        // files (or the same data dir).
        Storage::Embedded | Storage::Postgres | Storage::Mongo => {
            let operator = keys::operator(&config.data_dir, config.operator_key.as_deref())?;
            (
                operator,
                keys::signing_seed(&config.data_dir)?,
                "platform-1",
            )
        }
        // Nothing in the data dir: not even keys (see `keys::ephemeral`).
        Storage::Memory => {
            let (operator, seed) = keys::ephemeral(config.operator_key.as_deref())?;
            (operator, seed, "platform-memory")
        }
    };
    let authority = caas_crypto::ports::CryptoAuthority::new(operator.hash, &seed, key_id)
        .map_err(|e| PlatformError::Io(e.to_string()))?;
    let (storage, backends): (_, Backends) = match (embedded, node_blobs) {
        (Some(embedded), _) => {
            let mut backends = embedded.backends.clone();
            if config.encryption.enabled {
                let kek = keys::encryption_key(&config.data_dir, config.encryption.key.as_deref())?;
                tracing::info!(key = %kek.id(), "at-rest encryption of message bodies on");
                let (key_file, tightened) = caas_storage::sqlite::KeyFile::open(
                    config.data_dir.join(caas_storage::embedded::KEY_FILE),
                )?;
                log_tightened(&tightened);
                let moved = key_file.adopt_keyrings_of(&embedded.sqlite).await?;
                if moved > 0 {
                    tracing::info!(
                        keyrings = moved,
                        file = %key_file.path().display(),
                        "moved the tenants' keyrings out of the database into the key file"
                    );
                }
                let keyrings =
                    caas_storage::encrypted::ManagedKeyrings::new(kek, Arc::new(key_file));
                backends = caas_storage::encrypted::wrap(backends, Arc::new(keyrings));
            }
            (Some(embedded), backends)
        }
        (None, Some(blobs)) => {
            let stores = match config.storage {
                Storage::Mongo => backends::mongo(&config).await?,
                _ => backends::postgres(&config).await?,
            };
            (
                None,
                Backends {
                    blobs: Arc::new(blobs),
                    ..stores
                },
            )
        }
        (None, None) => {
            tracing::warn!(
                "storage = memory: nothing is written to disk and everything is lost when the process stops"
            );
            if config.encryption.enabled {
                return Err(PlatformError::Config(
                    "encryption protects data at rest; storage = memory keeps none".into(),
                ));
            }
            (None, caas_storage::memory::backends())
        }
    };
    let backends = backends::assemble(&config, backends).await?;
    let gateway = GatewayConfig {
        max_body_bytes: config.max_body_bytes,
        edge_quota: (config.edge_requests_per_minute > 0)
            .then(|| Quota::per_minute(config.edge_requests_per_minute)),
        cors_origins: config.cors_origins.clone(),
        payment_webhook: config
            .billing
            .stripe_webhook_secret
            .as_ref()
            .map(|s| {
                caas_crypto::webhook::WebhookSigner::new(s.as_bytes())
                    .map(|signer| {
                        Arc::new(PaymentWebhook(signer)) as Arc<dyn caas_transport::WebhookVerifier>
                    })
                    .map_err(|e| {
                        PlatformError::Config(format!("[billing] stripe_webhook_secret: {e}"))
                    })
            })
            .transpose()?,
        ..GatewayConfig::default()
    };
    let passwords = caas_crypto::ports::Argon2Passwords::new(Default::default())
        .map_err(|e| PlatformError::Io(e.to_string()))?;
    let sender = caas_adapters::webhooks::HttpWebhookSender::new(
        caas_adapters::webhooks::HttpWebhookConfig {
            timeout: std::time::Duration::from_secs(config.webhooks.timeout_secs),
            allow_private_addresses: config.webhooks.allow_insecure_urls,
            ..Default::default()
        },
    )
    .map_err(|e| PlatformError::Io(e.to_string()))?;
    // Only a locked data dir makes a name this process's alone.
    let node = match config.storage {
        Storage::Embedded => keys::node_id(&config.data_dir)?,
        Storage::Memory | Storage::Postgres | Storage::Mongo => keys::random_node_id()?,
    };
    let caas = Caas::new(
        caas_core::ports::metered::metered(backends),
        Config {
            plans: config.billing.plans.clone(),
            webhooks: config.webhooks.service(),
            ..Config::default()
        },
    )
    .with_key_verifier(Arc::new(caas_crypto::ports::DeviceKeyVerifier))
    .with_auth(Arc::new(authority), Arc::new(passwords))
    .with_webhook_sender(Arc::new(sender));
    let state = AppState::new(Arc::new(caas))
        .with_gateway_config(gateway)
        .with_ws_config(caas_transport::WsConfig {
            frame_quota: Quota {
                limit: config.ws_frames_per_second,
                period_secs: 1,
                burst: Some(config.ws_frames_per_second.saturating_mul(2)),
            },
            ..caas_transport::WsConfig::default()
        });
    let housekeeping = tokio::spawn(housekeeping(Arc::downgrade(&state.caas)));
    let webhooks = tokio::spawn(webhooks::deliver(Arc::downgrade(&state.caas), node));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| PlatformError::Io(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| PlatformError::Io(e.to_string()))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let hub = state.ws.clone();
    let serve = config.serve_config();
    tracing::info!(
        max_connections = serve.connection_cap(),
        max_connections_per_ip = serve.max_connections_per_ip,
        "connection limits"
    );
    let server = tokio::spawn(caas_transport::serve(
        listener,
        caas_transport::router(state.clone()),
        serve,
        async move {
            let _ = rx.await;
            // WebSocket clients first: told to reconnect (1012), their queues
            // flushed, then the listener stops and requests in flight finish.
            hub.shutdown(std::time::Duration::from_secs(5)).await;
        },
    ));
    tracing::info!(
        %addr,
        storage = ?config.storage,
        bus = ?config.bus,
        presence = ?config.presence,
        cluster = config.cluster,
        data_dir = %config.data_dir.display(),
        "caas platform listening"
    );
    Ok(Platform {
        addr,
        state,
        generated_operator_key: operator.generated.map(|k| k.expose_secret().to_owned()),
        storage,
        shutdown: Some(tx),
        server,
        housekeeping,
        webhooks,
    })
}

/// The payment provider's signatures, checked with Stripe's scheme.
#[derive(Debug)]
struct PaymentWebhook(caas_crypto::webhook::WebhookSigner);

impl caas_transport::WebhookVerifier for PaymentWebhook {
    fn verify(
        &self,
        signature: &str,
        body: &[u8],
        now: i64,
        tolerance_secs: u64,
    ) -> Result<(), String> {
        self.0
            .verify(signature, body, now, tolerance_secs)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The node's housekeeping until the service is gone: usage counts reach the
/// store every 10 s, uploads not completed in time are removed every minute,
/// and tenants' retention policies are applied every hour. Every node runs it; the stores make concurrent runs safe.
async fn housekeeping(caas: std::sync::Weak<Caas>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for tick in 0u64.. {
        every.tick().await;
        let Some(caas) = caas.upgrade() else { return };
        if let Err(e) = caas.flush_usage().await {
            tracing::warn!(error = %e, "usage counts not stored yet; kept for the next flush");
        }
        if tick % 6 == 0 {
            match caas.expire_uploads().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "expired uploads removed"),
                Err(e) => tracing::warn!(error = %e, "removing expired uploads failed"),
            }
        }
        if tick % 360 == 1 {
            match caas.apply_retention().await {
                Ok(run) if run.messages > 0 => {
                    tracing::info!(
                        tenants = run.tenants,
                        conversations = run.conversations,
                        messages = run.messages,
                        "retention applied"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "applying retention failed; next hour again"),
            }
        }
    }
}

impl Platform {
    /// Stops accepting, lets requests in flight finish, and returns when the
    /// listener is closed.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let served = match (&mut self.server).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        };
        // Stopped and awaited, so nothing of the service outlives shutdown (the
        // data dir's lock goes with the last reference to the stores).
        self.housekeeping.abort();
        let _ = (&mut self.housekeeping).await;
        self.webhooks.abort();
        let _ = (&mut self.webhooks).await;
        // The last requests' usage, before the process goes.
        if let Err(e) = self.state.caas.flush_usage().await {
            tracing::warn!(error = %e, "usage counts of the last seconds were not stored");
        }
        served
    }
}
