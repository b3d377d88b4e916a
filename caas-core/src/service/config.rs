use std::time::Duration;

/// Service-wide limits and timings; tenants may lower some of them.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest message body or ciphertext in bytes, unless the tenant sets its own.
    pub max_message_bytes: usize,
    /// Largest conversation, unless the tenant sets its own.
    pub max_members: usize,
    /// Most attachments per message.
    pub max_attachments: usize,
    /// Most mentions per message.
    pub max_mentions: usize,
    /// Largest page of history, sync or search.
    pub max_page: usize,
    /// Largest call signal payload (serialized JSON) in bytes.
    pub max_signal_bytes: usize,
    /// How long tenant settings are cached.
    pub tenant_cache_ttl: Duration,
    /// How long a presence report lasts without a heartbeat.
    pub presence_ttl: Duration,
    /// Largest upload in bytes, unless the tenant sets a smaller one.
    pub max_media_bytes: u64,
    /// How long an upload URL is valid; an upload not completed by then is
    /// removed by [`crate::service::Caas::expire_uploads`].
    pub upload_ttl: Duration,
    /// How long a download URL is valid.
    pub download_url_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024,
            max_members: 10_000,
            max_attachments: 10,
            max_mentions: 50,
            max_page: 200,
            max_signal_bytes: 32 * 1024,
            tenant_cache_ttl: Duration::from_secs(5),
            presence_ttl: Duration::from_secs(60),
            max_media_bytes: 16 * 1024 * 1024,
            upload_ttl: Duration::from_secs(15 * 60),
            download_url_ttl: Duration::from_secs(15 * 60),
        }
    }
}
