use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::UsageQuotas;

/// A plan of the platform's catalog: the quotas it grants and its prices, for
/// invoices. Prices are in millionths of the currency unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Plan {
    /// The quotas a tenant on this plan gets.
    pub quotas: UsageQuotas,
    /// The fixed monthly fee.
    pub monthly_fee_micros: u64,
    /// The price of one unit of a meter (`messages`, `media_bytes`, …).
    pub unit_price_micros: BTreeMap<String, u64>,
    /// The currency (ISO 4217, e.g. `usd`).
    pub currency: String,
}

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
    /// The plans the payment provider's events may name.
    pub plans: BTreeMap<String, Plan>,
    /// How webhooks are delivered.
    pub webhooks: super::webhooks::WebhookConfig,
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
            plans: BTreeMap::new(),
            webhooks: super::webhooks::WebhookConfig::default(),
        }
    }
}
