//! The backends of each role, as the configuration chooses them: stores
//! (embedded SQLite, memory, PostgreSQL or MongoDB), the live bus, presence and limits,
//! and blobs. Engines a build lacks were refused when the configuration loaded.

use std::sync::Arc;

use caas_core::ports::Backends;

use super::PlatformError;
use super::config::{BlobsKind, BusKind, PlatformConfig, PresenceKind};

/// `base` (the stores) with the bus and presence the configuration names.
pub(crate) async fn assemble(
    config: &PlatformConfig,
    base: Backends,
) -> Result<Backends, PlatformError> {
    let mut backends = base;
    if config.presence == PresenceKind::Redis {
        backends = with_redis_presence(config, backends)?;
    }
    if config.blobs == BlobsKind::S3 {
        backends.blobs = s3_blobs(config).await?;
    }
    match config.bus {
        BusKind::Local => {}
        BusKind::Redis => backends.bus = redis_bus(config)?,
        BusKind::Nats => backends.bus = nats_bus(config).await?,
        BusKind::Rabbitmq => backends.bus = rabbitmq_bus(config)?,
        BusKind::Kafka => backends.bus = kafka_bus(config).await?,
    }
    Ok(backends)
}

/// The URL of a server the configuration has already checked for.
// Unused in a build without any adapter.
#[allow(dead_code)]
fn url<'a>(url: &'a Option<String>, engine: &str) -> Result<&'a str, PlatformError> {
    url.as_deref()
        .ok_or_else(|| PlatformError::Config(format!("no URL for {engine}")))
}

/// The stores on PostgreSQL.
#[cfg(feature = "postgres")]
pub(crate) async fn postgres(config: &PlatformConfig) -> Result<Backends, PlatformError> {
    use caas_adapters::postgres::{PostgresConfig, PostgresStore};
    let url = url(&config.servers.postgres, "postgres")?;
    let store = PostgresStore::connect(PostgresConfig::new(url)).await?;
    tracing::info!("stores on PostgreSQL");
    Ok(store.backends())
}

#[cfg(not(feature = "postgres"))]
pub(crate) async fn postgres(_: &PlatformConfig) -> Result<Backends, PlatformError> {
    Err(lacks("postgres"))
}

/// The stores on MongoDB.
#[cfg(feature = "mongo")]
pub(crate) async fn mongo(config: &PlatformConfig) -> Result<Backends, PlatformError> {
    use caas_adapters::mongo::{MongoConfig, MongoStore};
    let url = url(&config.servers.mongo, "mongo")?;
    let store = MongoStore::connect(MongoConfig::new(url)).await?;
    tracing::info!("stores on MongoDB");
    Ok(store.backends())
}

#[cfg(not(feature = "mongo"))]
pub(crate) async fn mongo(_: &PlatformConfig) -> Result<Backends, PlatformError> {
    Err(lacks("mongo"))
}

#[cfg(feature = "redis")]
fn redis(config: &PlatformConfig) -> Result<caas_adapters::redis::Redis, PlatformError> {
    use caas_adapters::redis::{Redis, RedisConfig};
    let url = url(&config.servers.redis, "redis")?;
    Ok(Redis::new(RedisConfig::new(url))?)
}

/// Presence, rate limits, revocations and the conversation read cache on Redis
/// (its bus only when `bus = redis` asks for it).
#[cfg(feature = "redis")]
fn with_redis_presence(config: &PlatformConfig, base: Backends) -> Result<Backends, PlatformError> {
    let bus = base.bus.clone();
    let backends = redis(config)?.backends(base);
    tracing::info!("presence, rate limits and revocations on Redis");
    Ok(Backends { bus, ..backends })
}

#[cfg(not(feature = "redis"))]
fn with_redis_presence(_: &PlatformConfig, _: Backends) -> Result<Backends, PlatformError> {
    Err(lacks("redis"))
}

#[cfg(feature = "redis")]
fn redis_bus(
    config: &PlatformConfig,
) -> Result<Arc<dyn caas_core::ports::EventBus>, PlatformError> {
    tracing::info!("live bus on Redis pub/sub");
    Ok(Arc::new(redis(config)?.bus()))
}

#[cfg(not(feature = "redis"))]
fn redis_bus(_: &PlatformConfig) -> Result<Arc<dyn caas_core::ports::EventBus>, PlatformError> {
    Err(lacks("redis"))
}

#[cfg(feature = "nats")]
async fn nats_bus(
    config: &PlatformConfig,
) -> Result<Arc<dyn caas_core::ports::EventBus>, PlatformError> {
    use caas_adapters::nats::{NatsBus, NatsConfig};
    let url = url(&config.servers.nats, "nats")?;
    tracing::info!("live bus on NATS JetStream");
    Ok(Arc::new(NatsBus::connect(NatsConfig::new(url)).await?))
}

#[cfg(not(feature = "nats"))]
async fn nats_bus(
    _: &PlatformConfig,
) -> Result<Arc<dyn caas_core::ports::EventBus>, PlatformError> {
    Err(lacks("nats"))
}

#[cfg(feature = "rabbitmq")]
fn rabbitmq_bus(
    config: &PlatformConfig,
) -> Result<Arc<dyn caas_core::ports::EventBus>, PlatformError> {
    use caas_adapters::rabbitmq::{RabbitMqBus, RabbitMqConfig};
    let url = url(&config.servers.rabbitmq, "rabbitmq")?;
    tracing::info!("live bus on RabbitMQ");
    Ok(Arc::new(RabbitMqBus::new(RabbitMqConfig::new(url))?))
}

#[cfg(not(feature = "rabbitmq"))]
fn rabbitmq_bus(_: &PlatformConfig) -> Result<Arc<dyn caas_core::ports::EventBus>, PlatformError> {
    Err(lacks("rabbitmq"))
}

#[cfg(feature = "kafka")]
async fn kafka_bus(
    config: &PlatformConfig,
) -> Result<Arc<dyn caas_core::ports::EventBus>, PlatformError> {
    use caas_adapters::kafka::{KafkaBus, KafkaConfig};
    let url = url(&config.servers.kafka, "kafka")?;
    tracing::info!("live bus on a Kafka-protocol broker");
    Ok(Arc::new(KafkaBus::connect(KafkaConfig::new(url)).await?))
}

#[cfg(not(feature = "kafka"))]
async fn kafka_bus(
    _: &PlatformConfig,
) -> Result<Arc<dyn caas_core::ports::EventBus>, PlatformError> {
    Err(lacks("kafka"))
}

/// Blobs on S3: the bucket is the URL's last path segment, made if missing.
#[cfg(feature = "s3")]
async fn s3_blobs(
    config: &PlatformConfig,
) -> Result<Arc<dyn caas_core::ports::BlobStore>, PlatformError> {
    use caas_adapters::s3::{S3BlobStore, S3Config};
    let url = url(&config.servers.s3, "s3")?.trim_end_matches('/');
    let bad = || {
        PlatformError::Config(format!(
            "the S3 URL `{url}` has no bucket: http://host:port/bucket"
        ))
    };
    let (endpoint, bucket) = url.rsplit_once('/').ok_or_else(bad)?;
    if bucket.is_empty() || !endpoint.contains("://") || endpoint.ends_with('/') {
        return Err(bad());
    }
    let mut s3 = S3Config::new(
        endpoint,
        bucket,
        config.servers.s3_access_key.clone().unwrap_or_default(),
        config.servers.s3_secret_key.as_deref().unwrap_or_default(),
    );
    if let Some(region) = &config.servers.s3_region {
        s3.region = region.clone();
    }
    let store = S3BlobStore::new(s3)?;
    store.create_bucket().await?;
    tracing::info!(%endpoint, %bucket, "blobs on S3");
    Ok(Arc::new(store))
}

#[cfg(not(feature = "s3"))]
async fn s3_blobs(
    _: &PlatformConfig,
) -> Result<Arc<dyn caas_core::ports::BlobStore>, PlatformError> {
    Err(lacks("s3"))
}

/// Unreachable once the configuration is checked; kept an error, not a panic.
// Unused in a build with every adapter.
#[allow(dead_code)]
fn lacks(engine: &str) -> PlatformError {
    PlatformError::Config(format!(
        "this build lacks the `{engine}` feature (cargo build --features {engine})"
    ))
}
