//! Platform configuration: a TOML file (`--config`) overridden by environment
//! variables, with the names of `api.md` shared by every example binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything the platform can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlatformConfig {
    /// Address of the HTTP and WebSocket listener (`CAAS_LISTEN`).
    pub listen: SocketAddr,
    /// Embedded storage, blobs, generated keys (`CAAS_DATA_DIR`).
    pub data_dir: PathBuf,
    /// The operator credential (`CAAS_OPERATOR_KEY`); generated into the data dir
    /// (only its hash is kept) and printed once when absent.
    pub operator_key: Option<Secret>,
    /// Log filter (`CAAS_LOG`); logs are JSON lines on stderr.
    pub log: String,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Requests per minute per client IP at the edge (0 turns the limit off).
    pub edge_requests_per_minute: u32,
    /// WebSocket frames per second per connection before `rate_limited` (bursts
    /// of twice that).
    pub ws_frames_per_second: u32,
    /// Browser origins allowed to call the API (CORS); none by default.
    pub cors_origins: Vec<String>,
    /// Seconds a client may take to send a whole request head, from the
    /// connection opening or the head's first byte.
    pub header_timeout_secs: u64,
    /// Seconds a keep-alive connection may sit idle between requests.
    pub keep_alive_timeout_secs: u64,
    /// Open connections (HTTP and WebSocket) per client IPv4 address or IPv6 /64;
    /// `429` beyond it.
    pub max_connections_per_ip: usize,
    /// Open connections in all; `0` (the default) takes the most the process's
    /// open-file limit leaves room for. `503` beyond it.
    pub max_connections: usize,
    /// Seconds shutdown waits for requests in flight before closing what is left.
    pub shutdown_timeout_secs: u64,
    /// SQLite `synchronous=FULL` (true, the default) or `NORMAL` (false: a power
    /// loss may lose the last commits; a process crash loses nothing).
    pub durable: bool,
    /// Where data lives (`CAAS_STORAGE`): `embedded` (SQLite and files under the
    /// data dir, the default) or `memory` (nothing survives a restart: for
    /// throwaway runs and for benchmarking the transport without storage).
    pub storage: Storage,
    /// At-rest encryption of message bodies (`[encryption]`).
    pub encryption: EncryptionConfig,
    /// The payment provider's webhook and the plan catalog (`[billing]`).
    pub billing: BillingConfig,
    /// Delivery of tenants' webhooks (`[webhooks]`).
    pub webhooks: WebhooksConfig,
    /// The live bus between nodes (`CAAS_BUS`): `local` (in process, the
    /// default), `redis`, `nats`, `rabbitmq` or `kafka`.
    pub bus: BusKind,
    /// Presence, rate limits and session revocations (`CAAS_PRESENCE`): `memory`
    /// (the default) or `redis`.
    pub presence: PresenceKind,
    /// Where blobs live (`CAAS_BLOBS`): `fs` (the data dir, the default) or `s3`.
    pub blobs: BlobsKind,
    /// Nodes share their stores and bus (`CAAS_CLUSTER`): a combination that
    /// cannot work across nodes is refused at start.
    pub cluster: bool,
    /// The servers the chosen backends use (`[servers]`).
    pub servers: ServersConfig,
}

/// `[servers]`: where the shared servers are. Each is needed only when a role
/// names its engine.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServersConfig {
    /// PostgreSQL (`CAAS_POSTGRES_URL`), e.g. `postgres://caas@db/caas`.
    pub postgres: Option<String>,
    /// MongoDB, a replica set (`CAAS_MONGO_URL`), e.g.
    /// `mongodb://db1,db2,db3/?replicaSet=rs0`.
    pub mongo: Option<String>,
    /// Redis (`CAAS_REDIS_URL`), e.g. `redis://127.0.0.1:6379`.
    pub redis: Option<String>,
    /// NATS with JetStream (`CAAS_NATS_URL`), e.g. `nats://127.0.0.1:4222`.
    pub nats: Option<String>,
    /// RabbitMQ (`CAAS_RABBITMQ_URL`), e.g. `amqp://user:pass@127.0.0.1:5672/%2f`.
    pub rabbitmq: Option<String>,
    /// A Kafka-protocol broker's bootstrap servers (`CAAS_KAFKA_URL`), e.g.
    /// `127.0.0.1:9092`.
    pub kafka: Option<String>,
    /// An S3-compatible store and its bucket as the URL's path (`CAAS_S3_URL`),
    /// e.g. `http://127.0.0.1:9000/media` (plain `http`, path-style).
    pub s3: Option<String>,
    /// The S3 region (`CAAS_S3_REGION`); `us-east-1` when absent.
    pub s3_region: Option<String>,
    /// The S3 access key id (`CAAS_S3_ACCESS_KEY`).
    pub s3_access_key: Option<String>,
    /// The S3 secret key (`CAAS_S3_SECRET_KEY`); never logged.
    pub s3_secret_key: Option<Secret>,
}

impl std::fmt::Debug for ServersConfig {
    // URLs may carry passwords too: only which servers are set is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "set" } else { "unset" };
        f.debug_struct("ServersConfig")
            .field("postgres", &set(&self.postgres))
            .field("mongo", &set(&self.mongo))
            .field("redis", &set(&self.redis))
            .field("nats", &set(&self.nats))
            .field("rabbitmq", &set(&self.rabbitmq))
            .field("kafka", &set(&self.kafka))
            .field("s3", &set(&self.s3))
            .field("s3_region", &self.s3_region)
            .field("s3_access_key", &set(&self.s3_access_key))
            .field("s3_secret_key", &self.s3_secret_key)
            .finish()
    }
}

/// Where blobs live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobsKind {
    /// Files under the data dir (memory with `storage = memory`).
    #[default]
    Fs,
    /// An S3-compatible store (`caas_adapters::s3`).
    S3,
}

/// The live bus between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// In this process only.
    #[default]
    Local,
    /// Redis pub/sub (`caas_adapters::redis`).
    Redis,
    /// NATS JetStream (`caas_adapters::nats`).
    Nats,
    /// RabbitMQ (`caas_adapters::rabbitmq`).
    Rabbitmq,
    /// A Kafka-protocol broker (`caas_adapters::kafka`).
    Kafka,
}

/// Where presence, rate limits and session revocations live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceKind {
    /// In this process only.
    #[default]
    Memory,
    /// Redis (`caas_adapters::redis`), shared by every node.
    Redis,
}

/// `[encryption]`: per-tenant at-rest encryption of message bodies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionConfig {
    /// Seal every tenant's message bodies (in messages, edits, the `sync` log)
    /// under a data key of its own, and search them by blind tokens
    /// (`CAAS_ENCRYPTION=on|off`). Bodies sealed before stay readable when it is
    /// switched off again, as long as the key is given.
    pub enabled: bool,
    /// The key-encryption key that wraps every tenant's data keys, as 64 hex
    /// digits (`CAAS_ENCRYPTION_KEY`). When absent, one is generated into the
    /// data dir (`encryption.kek`, 0600) on first start: then a copy of the data
    /// dir holds both the data and its key, so give it from a secret store for
    /// protection against a stolen disk or backup.
    pub key: Option<Secret>,
}

/// `[billing]`: the payment provider's webhook and the plans its events name.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingConfig {
    /// The webhook endpoint's signing secret, Stripe's `whsec_…`
    /// (`CAAS_STRIPE_WEBHOOK_SECRET`); without one `POST /v1/billing/stripe`
    /// answers 404.
    pub stripe_webhook_secret: Option<Secret>,
    /// The plan catalog: `[billing.plans.pro]` with `monthly_fee_micros`,
    /// `currency`, `[billing.plans.pro.quotas]` and
    /// `[billing.plans.pro.unit_price_micros]`.
    pub plans: std::collections::BTreeMap<String, caas_core::service::Plan>,
}

/// `[webhooks]`: how tenants' webhook endpoints are reached.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Attempts at one delivery before it becomes a dead letter (1–50).
    pub max_attempts: u32,
    /// The wait after a first failure, in milliseconds (10 ms–1 h); it doubles
    /// with each further failure.
    pub backoff_base_ms: u64,
    /// The longest wait between attempts, in seconds (1 s–1 day).
    pub backoff_max_secs: u64,
    /// The longest one attempt may take, in seconds (1–60).
    pub timeout_secs: u64,
    /// Allow `http://` endpoints and loopback, private or link-local addresses
    /// (`CAAS_WEBHOOKS_ALLOW_INSECURE`): for development on one machine only.
    pub allow_insecure_urls: bool,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        let core = caas_core::service::WebhookConfig::default();
        Self {
            max_attempts: core.max_attempts,
            backoff_base_ms: u64::try_from(core.backoff_base.as_millis()).unwrap_or(u64::MAX),
            backoff_max_secs: core.backoff_max.as_secs(),
            timeout_secs: 10,
            allow_insecure_urls: false,
        }
    }
}

impl WebhooksConfig {
    /// The service's delivery settings.
    pub fn service(&self) -> caas_core::service::WebhookConfig {
        caas_core::service::WebhookConfig {
            max_attempts: self.max_attempts,
            backoff_base: std::time::Duration::from_millis(self.backoff_base_ms),
            backoff_max: std::time::Duration::from_secs(self.backoff_max_secs),
            allow_insecure_urls: self.allow_insecure_urls,
            // Four attempts' worth and a margin: a pass renews at half its
            // lease, and one event makes up to two requests.
            lease: std::time::Duration::from_secs((4 * self.timeout_secs + 10).max(60)),
            ..caas_core::service::WebhookConfig::default()
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        if !(1..=50).contains(&self.max_attempts) {
            return Err(ConfigError(
                "[webhooks] max_attempts must be 1 to 50".into(),
            ));
        }
        if !(10..=3_600_000).contains(&self.backoff_base_ms) {
            return Err(ConfigError(
                "[webhooks] backoff_base_ms must be 10 to 3600000".into(),
            ));
        }
        if !(1..=86_400).contains(&self.backoff_max_secs) {
            return Err(ConfigError(
                "[webhooks] backoff_max_secs must be 1 to 86400".into(),
            ));
        }
        if !(1..=60).contains(&self.timeout_secs) {
            return Err(ConfigError(
                "[webhooks] timeout_secs must be 1 to 60".into(),
            ));
        }
        Ok(())
    }
}

/// A configured secret: its `Debug` never shows it, so no configuration dump
/// or log line can leak it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl std::ops::Deref for Secret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// Where the platform keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// SQLite and local files under the data dir (also spelt `sqlite`).
    #[default]
    #[serde(alias = "sqlite")]
    Embedded,
    /// In process memory only: everything is lost when the process stops.
    Memory,
    /// PostgreSQL (`[servers] postgres`) for every store and search, files
    /// under the data dir for blobs (`caas_adapters::postgres`).
    Postgres,
    /// MongoDB, a replica set (`[servers] mongo`), for every store and search,
    /// files under the data dir for blobs (`caas_adapters::mongo`).
    Mongo,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./caas-data"),
            operator_key: None,
            log: "info".into(),
            max_body_bytes: 64 * 1024,
            edge_requests_per_minute: 100,
            durable: true,
            cors_origins: Vec::new(),
            header_timeout_secs: 10,
            keep_alive_timeout_secs: 60,
            max_connections_per_ip: 256,
            max_connections: 0,
            shutdown_timeout_secs: 10,
            ws_frames_per_second: 30,
            storage: Storage::Embedded,
            encryption: EncryptionConfig::default(),
            billing: BillingConfig::default(),
            webhooks: WebhooksConfig::default(),
            bus: BusKind::Local,
            presence: PresenceKind::Memory,
            blobs: BlobsKind::Fs,
            cluster: false,
            servers: ServersConfig::default(),
        }
    }
}

/// A configuration mistake, in one line.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl PlatformConfig {
    /// The listener's limits.
    pub fn serve_config(&self) -> caas_transport::ServeConfig {
        caas_transport::ServeConfig {
            header_timeout: std::time::Duration::from_secs(self.header_timeout_secs),
            keep_alive_timeout: std::time::Duration::from_secs(self.keep_alive_timeout_secs),
            max_connections_per_ip: self.max_connections_per_ip,
            max_connections: (self.max_connections > 0).then_some(self.max_connections),
            shutdown_timeout: std::time::Duration::from_secs(self.shutdown_timeout_secs),
        }
    }

    /// Reads `file` (if given) and applies the `CAAS_*` environment variables.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut c = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.message())))?
            }
            None => PlatformConfig::default(),
        };
        if let Some(v) = env("CAAS_LISTEN") {
            c.listen = v.parse().map_err(|_| {
                ConfigError(format!(
                    "CAAS_LISTEN `{v}` is not an address like 127.0.0.1:8080"
                ))
            })?;
        }
        if let Some(v) = env("CAAS_DATA_DIR") {
            if v.is_empty() {
                return Err(ConfigError("CAAS_DATA_DIR is empty".into()));
            }
            c.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("CAAS_OPERATOR_KEY") {
            c.operator_key = Some(Secret(v));
        }
        if let Some(v) = env("CAAS_LOG") {
            c.log = v;
        }
        if let Some(v) = env("CAAS_STORAGE") {
            c.storage = match v.as_str() {
                "embedded" | "sqlite" => Storage::Embedded,
                "memory" => Storage::Memory,
                "postgres" => Storage::Postgres,
                "mongo" => Storage::Mongo,
                _ => {
                    return Err(ConfigError(format!(
                        "CAAS_STORAGE `{v}` is none of `embedded` (or `sqlite`), `memory`, `postgres`, `mongo`"
                    )));
                }
            };
        }
        if let Some(v) = env("CAAS_BUS") {
            c.bus = match v.as_str() {
                "local" => BusKind::Local,
                "redis" => BusKind::Redis,
                "nats" => BusKind::Nats,
                "rabbitmq" => BusKind::Rabbitmq,
                "kafka" => BusKind::Kafka,
                _ => {
                    return Err(ConfigError(format!(
                        "CAAS_BUS `{v}` is none of `local`, `redis`, `nats`, `rabbitmq`, `kafka`"
                    )));
                }
            };
        }
        if let Some(v) = env("CAAS_PRESENCE") {
            c.presence = match v.as_str() {
                "memory" => PresenceKind::Memory,
                "redis" => PresenceKind::Redis,
                _ => {
                    return Err(ConfigError(format!(
                        "CAAS_PRESENCE `{v}` is neither `memory` nor `redis`"
                    )));
                }
            };
        }
        if let Some(v) = env("CAAS_BLOBS") {
            c.blobs = match v.as_str() {
                "fs" => BlobsKind::Fs,
                "s3" => BlobsKind::S3,
                _ => {
                    return Err(ConfigError(format!(
                        "CAAS_BLOBS `{v}` is neither `fs` nor `s3`"
                    )));
                }
            };
        }
        if let Some(v) = env("CAAS_CLUSTER") {
            c.cluster = match v.as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => {
                    return Err(ConfigError(format!(
                        "CAAS_CLUSTER `{v}` is neither `on` nor `off`"
                    )));
                }
            };
        }
        for (var, slot) in [
            ("CAAS_POSTGRES_URL", &mut c.servers.postgres),
            ("CAAS_MONGO_URL", &mut c.servers.mongo),
            ("CAAS_REDIS_URL", &mut c.servers.redis),
            ("CAAS_NATS_URL", &mut c.servers.nats),
            ("CAAS_RABBITMQ_URL", &mut c.servers.rabbitmq),
            ("CAAS_KAFKA_URL", &mut c.servers.kafka),
            ("CAAS_S3_URL", &mut c.servers.s3),
            ("CAAS_S3_REGION", &mut c.servers.s3_region),
            ("CAAS_S3_ACCESS_KEY", &mut c.servers.s3_access_key),
        ] {
            if let Some(v) = env(var) {
                *slot = Some(v);
            }
        }
        if let Some(v) = env("CAAS_S3_SECRET_KEY") {
            c.servers.s3_secret_key = Some(Secret(v));
        }
        if let Some(v) = env("CAAS_ENCRYPTION") {
            c.encryption.enabled = match v.as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => {
                    return Err(ConfigError(format!(
                        "CAAS_ENCRYPTION `{v}` is neither `on` nor `off`"
                    )));
                }
            };
        }
        if let Some(v) = env("CAAS_ENCRYPTION_KEY") {
            c.encryption.key = Some(Secret(v));
        }
        if let Some(v) = env("CAAS_STRIPE_WEBHOOK_SECRET") {
            c.billing.stripe_webhook_secret = Some(Secret(v));
        }
        if let Some(v) = env("CAAS_WEBHOOKS_ALLOW_INSECURE") {
            c.webhooks.allow_insecure_urls = match v.as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => {
                    return Err(ConfigError(format!(
                        "CAAS_WEBHOOKS_ALLOW_INSECURE `{v}` is neither `on` nor `off`"
                    )));
                }
            };
        }
        c.webhooks.check()?;
        if c.ws_frames_per_second == 0 {
            return Err(ConfigError(
                "ws_frames_per_second must be at least 1".into(),
            ));
        }
        for (name, secs) in [
            ("header_timeout_secs", c.header_timeout_secs),
            ("keep_alive_timeout_secs", c.keep_alive_timeout_secs),
            ("shutdown_timeout_secs", c.shutdown_timeout_secs),
        ] {
            if secs == 0 || secs > 86_400 {
                return Err(ConfigError(format!("{name} must be 1 to 86400 seconds")));
            }
        }
        if c.max_connections_per_ip == 0 {
            return Err(ConfigError(
                "max_connections_per_ip must be at least 1".into(),
            ));
        }
        if c.max_body_bytes < 1024 {
            return Err(ConfigError("max_body_bytes must be at least 1024".into()));
        }
        c.check_backends()?;
        Ok(c)
    }
}

impl PlatformConfig {
    /// Refuses, in one line, a backend this build lacks, a backend without its
    /// server's URL, and with `cluster` a role that would stay inside one node.
    fn check_backends(&self) -> Result<(), ConfigError> {
        let mut needed: Vec<(&str, &str, &Option<String>, bool)> = Vec::new();
        if self.storage == Storage::Postgres {
            needed.push((
                "storage = postgres",
                "postgres",
                &self.servers.postgres,
                cfg!(feature = "postgres"),
            ));
        }
        if self.storage == Storage::Mongo {
            needed.push((
                "storage = mongo",
                "mongo",
                &self.servers.mongo,
                cfg!(feature = "mongo"),
            ));
        }
        let redis = cfg!(feature = "redis");
        if self.presence == PresenceKind::Redis {
            needed.push(("presence = redis", "redis", &self.servers.redis, redis));
        }
        match self.bus {
            BusKind::Local => {}
            BusKind::Redis => needed.push(("bus = redis", "redis", &self.servers.redis, redis)),
            BusKind::Nats => needed.push((
                "bus = nats",
                "nats",
                &self.servers.nats,
                cfg!(feature = "nats"),
            )),
            BusKind::Rabbitmq => needed.push((
                "bus = rabbitmq",
                "rabbitmq",
                &self.servers.rabbitmq,
                cfg!(feature = "rabbitmq"),
            )),
            BusKind::Kafka => needed.push((
                "bus = kafka",
                "kafka",
                &self.servers.kafka,
                cfg!(feature = "kafka"),
            )),
        }
        if self.blobs == BlobsKind::S3 {
            needed.push(("blobs = s3", "s3", &self.servers.s3, cfg!(feature = "s3")));
        }
        for (role, engine, url, built) in needed {
            if !built {
                return Err(ConfigError(format!(
                    "{role}: this build lacks the `{engine}` feature (cargo build --features {engine})"
                )));
            }
            if url.as_deref().is_none_or(|u| u.trim().is_empty()) {
                return Err(ConfigError(format!(
                    "{role} needs the server's URL: [servers] {engine} or CAAS_{}_URL",
                    engine.to_uppercase()
                )));
            }
        }
        if self.blobs == BlobsKind::S3
            && (self.servers.s3_access_key.is_none() || self.servers.s3_secret_key.is_none())
        {
            return Err(ConfigError(
                "blobs = s3 needs its keys: [servers] s3_access_key and s3_secret_key, or CAAS_S3_ACCESS_KEY and CAAS_S3_SECRET_KEY".into(),
            ));
        }
        if self.encryption.enabled && self.storage != Storage::Embedded {
            return Err(ConfigError(
                "encryption at rest is available on the embedded storage only".into(),
            ));
        }
        if self.cluster {
            let local = match (self.storage, self.bus, self.presence) {
                (Storage::Embedded | Storage::Memory, _, _) => {
                    Some("storage is inside this node (use postgres or mongo)")
                }
                (_, BusKind::Local, _) => Some("bus = local reaches this node only"),
                (_, _, PresenceKind::Memory) => Some(
                    "presence = memory keeps presence, rate limits and revocations in this node (use redis)",
                ),
                _ => None,
            };
            if let Some(why) = local {
                return Err(ConfigError(format!("cluster = true, but {why}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_the_file_and_mistakes_are_one_line() {
        let dir = std::env::temp_dir().join(format!("caas-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("caas.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nlog = \"debug\"\n").unwrap();
        let env = |k: &str| (k == "CAAS_LOG").then(|| "warn".to_owned());
        let c = PlatformConfig::load(Some(&file), env).unwrap();
        assert_eq!((c.listen.port(), c.log.as_str()), (9000, "warn"));
        std::fs::write(&file, "listen = 12\n").unwrap();
        let e = PlatformConfig::load(Some(&file), |_| None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("configuration: ") && !e.contains('\n'), "{e}");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        assert!(
            PlatformConfig::load(Some(&file), |_| None)
                .unwrap_err()
                .to_string()
                .contains("lisen")
        );
        let bad =
            PlatformConfig::load(None, |k| (k == "CAAS_LISTEN").then(|| "nowhere".to_owned()));
        assert!(bad.unwrap_err().to_string().contains("CAAS_LISTEN"));
        let memory =
            PlatformConfig::load(None, |k| (k == "CAAS_STORAGE").then(|| "memory".to_owned()));
        assert_eq!(memory.unwrap().storage, Storage::Memory);
        let bad = PlatformConfig::load(None, |k| (k == "CAAS_STORAGE").then(|| "disk".to_owned()));
        assert!(bad.unwrap_err().to_string().contains("CAAS_STORAGE"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn webhooks_are_configured_from_the_file_and_checked() {
        let dir = std::env::temp_dir().join(format!("caas-config-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("caas.toml");
        std::fs::write(
            &file,
            "[webhooks]\nmax_attempts = 3\nbackoff_base_ms = 100\ntimeout_secs = 20\n",
        )
        .unwrap();
        let c = PlatformConfig::load(Some(&file), |_| None).unwrap();
        let service = c.webhooks.service();
        assert_eq!(service.max_attempts, 3);
        assert_eq!(service.backoff_base, std::time::Duration::from_millis(100));
        assert!(!service.allow_insecure_urls, "secure unless asked");
        assert_eq!(
            service.lease,
            std::time::Duration::from_secs(90),
            "four attempts and a margin"
        );
        for bad in [
            "[webhooks]\nmax_attempts = 0\n",
            "[webhooks]\nbackoff_base_ms = 1\n",
            "[webhooks]\ntimeout_secs = 61\n",
            "[webhooks]\nretries = 3\n",
        ] {
            std::fs::write(&file, bad).unwrap();
            let e = PlatformConfig::load(Some(&file), |_| None)
                .unwrap_err()
                .to_string();
            assert!(!e.contains('\n'), "{e}");
        }
        let insecure = load_env(&[("CAAS_WEBHOOKS_ALLOW_INSECURE", "on")]).unwrap();
        assert!(insecure.webhooks.service().allow_insecure_urls);
        assert!(
            one_line_error(&[("CAAS_WEBHOOKS_ALLOW_INSECURE", "maybe")])
                .contains("CAAS_WEBHOOKS_ALLOW_INSECURE")
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    fn load_env(vars: &[(&str, &str)]) -> Result<PlatformConfig, ConfigError> {
        PlatformConfig::load(None, |k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    fn one_line_error(vars: &[(&str, &str)]) -> String {
        let e = load_env(vars).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        e
    }

    #[test]
    fn roles_choose_their_engines_from_the_file_or_the_environment() {
        let c = load_env(&[]).unwrap();
        assert_eq!(
            (c.storage, c.bus, c.presence, c.cluster),
            (
                Storage::Embedded,
                BusKind::Local,
                PresenceKind::Memory,
                false
            )
        );
        let sqlite: PlatformConfig = toml::from_str("storage = \"sqlite\"").unwrap();
        assert_eq!(sqlite.storage, Storage::Embedded);
        let file: PlatformConfig = toml::from_str(
            "storage = \"postgres\"\nbus = \"nats\"\npresence = \"redis\"\ncluster = true\n\
             [servers]\npostgres = \"postgres://db/caas\"\nredis = \"redis://r\"\nnats = \"nats://n\"\n",
        )
        .unwrap();
        assert_eq!(
            (file.storage, file.bus, file.presence, file.cluster),
            (Storage::Postgres, BusKind::Nats, PresenceKind::Redis, true)
        );
        assert_eq!(file.servers.nats.as_deref(), Some("nats://n"));
        for (var, value) in [
            ("CAAS_BUS", "kafka-ish"),
            ("CAAS_BLOBS", "tape"),
            ("CAAS_PRESENCE", "disk"),
            ("CAAS_CLUSTER", "maybe"),
        ] {
            assert!(one_line_error(&[(var, value)]).contains(var));
        }
    }

    #[test]
    fn a_cluster_refuses_what_stays_inside_one_node() {
        let shared = [
            ("CAAS_CLUSTER", "on"),
            ("CAAS_STORAGE", "postgres"),
            ("CAAS_POSTGRES_URL", "postgres://db/caas"),
            ("CAAS_PRESENCE", "redis"),
            ("CAAS_BUS", "redis"),
            ("CAAS_REDIS_URL", "redis://r"),
        ];
        let with = |var: &'static str, value: &'static str| {
            let mut vars: Vec<(&str, &str)> =
                shared.iter().copied().filter(|(k, _)| *k != var).collect();
            vars.push((var, value));
            vars
        };
        for (var, value, why) in [
            ("CAAS_STORAGE", "embedded", "storage is inside this node"),
            ("CAAS_STORAGE", "memory", "storage is inside this node"),
            ("CAAS_BUS", "local", "bus = local"),
            ("CAAS_PRESENCE", "memory", "presence = memory"),
        ] {
            let e = one_line_error(&with(var, value));
            assert!(e.contains("cluster = true") && e.contains(why), "{e}");
        }
        if cfg!(all(feature = "postgres", feature = "redis")) {
            load_env(&shared).unwrap();
        }
        let on_mongo = with("CAAS_STORAGE", "mongo");
        let mut on_mongo: Vec<(&str, &str)> = on_mongo
            .into_iter()
            .filter(|(k, _)| *k != "CAAS_POSTGRES_URL")
            .collect();
        on_mongo.push(("CAAS_MONGO_URL", "mongodb://db/?replicaSet=rs0"));
        let built = cfg!(all(feature = "mongo", feature = "redis"));
        match load_env(&on_mongo) {
            Ok(c) => assert_eq!((built, c.storage, c.cluster), (true, Storage::Mongo, true)),
            Err(e) => assert!(!built && e.0.contains("lacks the"), "{}", e.0),
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = load_env(&[
            ("CAAS_S3_SECRET_KEY", "very-secret"),
            ("CAAS_POSTGRES_URL", "postgres://u:hunter2@db/caas"),
            ("CAAS_MONGO_URL", "mongodb://u:mongopass@db/?replicaSet=rs0"),
            ("CAAS_OPERATOR_KEY", "sk_operator-secret"),
            ("CAAS_ENCRYPTION_KEY", "kek-secret"),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        for secret in [
            "very-secret",
            "hunter2",
            "mongopass",
            "operator-secret",
            "kek-secret",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn an_engine_needs_its_url_and_its_feature() {
        let e = one_line_error(&[("CAAS_BUS", "redis")]);
        if cfg!(feature = "redis") {
            assert!(e.contains("CAAS_REDIS_URL"), "{e}");
        } else {
            assert!(e.contains("lacks the `redis` feature"), "{e}");
        }
        let e = one_line_error(&[("CAAS_STORAGE", "postgres"), ("CAAS_POSTGRES_URL", " ")]);
        assert!(e.contains("postgres"), "{e}");
        let e = one_line_error(&[("CAAS_STORAGE", "mongo")]);
        if cfg!(feature = "mongo") {
            assert!(e.contains("CAAS_MONGO_URL"), "{e}");
        } else {
            assert!(e.contains("lacks the `mongo` feature"), "{e}");
        }
        let e = one_line_error(&[
            ("CAAS_STORAGE", "mongo"),
            ("CAAS_MONGO_URL", "mongodb://db/?replicaSet=rs0"),
            ("CAAS_ENCRYPTION", "on"),
        ]);
        assert!(e.contains("encryption") || e.contains("lacks the"), "{e}");
        let e = one_line_error(&[
            ("CAAS_STORAGE", "postgres"),
            ("CAAS_POSTGRES_URL", "postgres://db"),
            ("CAAS_ENCRYPTION", "on"),
        ]);
        assert!(e.contains("encryption"), "{e}");
    }
}
