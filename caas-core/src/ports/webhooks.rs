use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{TenantId, WebhookId};
use crate::model::{DeadLetter, WebhookEndpoint, WebhookProgress};
use crate::time::Timestamp;

/// Tenants' webhook endpoints, their delivery progress and dead letters.
///
/// Delivery is leased: a node [`claim`](WebhookStore::claim)s an endpoint
/// until a time, and only the holder records [`progress`](WebhookStore::progress),
/// so two nodes never deliver the same endpoint at once and a crashed node's
/// lease runs out for another to take over.
#[async_trait]
pub trait WebhookStore: Send + Sync + std::fmt::Debug {
    /// Stores a new endpoint, with its progress as given and no lease.
    /// [`crate::Error::Conflict`] when the id is taken.
    async fn create(&self, endpoint: &WebhookEndpoint) -> Result<()>;

    /// Replaces an endpoint's configuration (`url`, `kinds`, `secrets`,
    /// `disabled`, `updated_at`) if its stored `updated_at` is still
    /// `expected` (the one read before the change); its progress and lease
    /// stay. [`crate::Error::Conflict`] (nothing written) when another change
    /// came first, [`crate::Error::NotFound`] when there is none.
    async fn update(&self, endpoint: &WebhookEndpoint, expected: Timestamp) -> Result<()>;

    /// One endpoint.
    async fn get(&self, tenant: &TenantId, id: &WebhookId) -> Result<Option<WebhookEndpoint>>;

    /// The tenant's endpoints, by id.
    async fn list(&self, tenant: &TenantId) -> Result<Vec<WebhookEndpoint>>;

    /// Removes an endpoint and its dead letters; `false` when there was none.
    async fn delete(&self, tenant: &TenantId, id: &WebhookId) -> Result<bool>;

    /// Up to `limit` enabled endpoints of any tenant whose backoff is over at
    /// `now` (`retry_at` unset or not after `now`), by tenant and id, after
    /// `after` when given (the last key of the previous page).
    async fn due(
        &self,
        now: Timestamp,
        after: Option<&(TenantId, WebhookId)>,
        limit: usize,
    ) -> Result<Vec<(TenantId, WebhookId)>>;

    /// Leases the endpoint to `holder` until `until` when it is free, its lease
    /// ran out by `now`, or `holder` already holds it; returns the endpoint as
    /// stored then, or `None` when another holder has it (or it is gone).
    async fn claim(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<WebhookEndpoint>>;

    /// Records the endpoint's progress when `holder` holds its lease; `false`
    /// (nothing written) when it does not.
    async fn progress(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        holder: &str,
        progress: &WebhookProgress,
    ) -> Result<bool>;

    /// Keeps a delivery given up; a second letter with the same tenant,
    /// endpoint and id replaces the first.
    async fn dead_letter(&self, letter: &DeadLetter) -> Result<()>;

    /// The endpoint's dead letters, oldest cursor first (then by id), at most
    /// `limit`.
    async fn dead_letters(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        limit: usize,
    ) -> Result<Vec<DeadLetter>>;

    /// Removes one dead letter; `false` when there was none.
    async fn remove_dead_letter(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        letter: &str,
    ) -> Result<bool>;
}

/// One signed delivery to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    /// The endpoint's URL.
    pub url: String,
    /// Headers besides `content-type: application/json`.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: Vec<u8>,
}

/// What became of a delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The receiver answered with this status (2xx is success).
    Status(u16),
    /// No answer: refused, unreachable, timed out, or a forbidden address.
    Failed(String),
}

impl WebhookOutcome {
    /// Whether the receiver took it (2xx).
    pub fn delivered(&self) -> bool {
        matches!(self, WebhookOutcome::Status(s) if (200..300).contains(s))
    }
}

/// Makes deliveries over the network (an HTTP client). Implementations bound
/// each attempt in time and refuse addresses they must not reach.
#[async_trait]
pub trait WebhookSender: Send + Sync + std::fmt::Debug {
    /// POSTs one delivery.
    async fn send(&self, request: &WebhookRequest) -> WebhookOutcome;
}

/// Whether a delivery may go to `ip`: not loopback, private, link-local,
/// shared (CGNAT), documentation, broadcast, multicast or unspecified, in v4
/// or v6 (including v4 addresses mapped into v6). Webhook URLs are chosen by
/// tenants; without this check they could reach the platform's own network.
pub fn is_public_address(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                std::net::Ipv4Addr::new(a, b, c, d)
            };
            if v6.is_loopback() || v6.is_unspecified() {
                return false;
            }
            // IPv4-mapped and IPv4-compatible (`::a.b.c.d`) addresses, NAT64
            // (64:ff9b::/96) and 6to4 (2002::/16) reach an IPv4 address: judge
            // that one.
            if let Some(v4) = v6.to_ipv4() {
                return is_public_address(IpAddr::V4(v4));
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_public_address(IpAddr::V4(embedded(s[6], s[7])));
            }
            if s[0] == 0x2002 {
                return is_public_address(IpAddr::V4(embedded(s[1], s[2])));
            }
            !(v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_reachable() {
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public_address(public.parse().unwrap()), "{public}");
        }
        for private in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "::1",
            "::",
            "fd12::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::a9fe:a9fe",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "fec0::1",
            "2001:db8::1",
        ] {
            assert!(!is_public_address(private.parse().unwrap()), "{private}");
        }
    }
}
