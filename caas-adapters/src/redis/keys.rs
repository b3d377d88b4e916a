//! The key layout. Every key is `<prefix><kind>:{<tenant>}:<rest>`: the tenant
//! sits between braces, which ids cannot contain, so no two (tenant, rest)
//! pairs share a key even though ids may contain `:`, and in a Redis Cluster
//! the braces (a hash tag) keep one tenant's keys in one slot. `<rest>` is
//! last and may be anything.

use caas_core::ids::{ConversationId, TenantId, UserId};
use caas_core::ratelimit::RateKey;

#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    fn key(&self, kind: &str, tenant: &str, rest: &[&str]) -> String {
        let mut k = String::with_capacity(
            self.prefix.len()
                + kind.len()
                + tenant.len()
                + 8
                + rest.iter().map(|r| r.len() + 1).sum::<usize>(),
        );
        k.push_str(&self.prefix);
        k.push_str(kind);
        k.push_str(":{");
        k.push_str(tenant);
        k.push('}');
        for r in rest {
            k.push(':');
            k.push_str(r);
        }
        k
    }

    /// GCRA state (a TAT in unix nanoseconds) of one rate-limit key. The
    /// action names are the core's constants, which hold no `:`.
    pub(super) fn rate(&self, key: &RateKey) -> String {
        self.key("rl", &key.tenant, &[key.action, &key.subject])
    }

    /// A user's presence: a hash of `d:<device>` → `<rank>:<until>`, and `seen`.
    pub(super) fn presence(&self, tenant: &TenantId, user: &UserId) -> String {
        self.key("presence", tenant.as_str(), &[user.as_str()])
    }

    /// A revoked session: the time (unix nanoseconds) it is revoked until.
    pub(super) fn revoked(&self, tenant: &TenantId, family: &str) -> String {
        self.key("revoked", tenant.as_str(), &[family])
    }

    /// A conversation's cache version: a random token replaced by every write.
    pub(super) fn conversation_version(&self, tenant: &TenantId, id: &ConversationId) -> String {
        self.key("cv", tenant.as_str(), &[id.as_str()])
    }

    /// The writes in progress on a conversation: a sorted set of writer ids
    /// scored by the end of their lease (Redis time, milliseconds).
    pub(super) fn conversation_writers(&self, tenant: &TenantId, id: &ConversationId) -> String {
        self.key("cw", tenant.as_str(), &[id.as_str()])
    }

    /// The bus channel.
    pub(super) fn bus_channel(&self) -> String {
        format!("{}bus", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_with_colons_never_collide() {
        let k = Keys::new("caas:");
        let t1 = TenantId::parse("a:b").unwrap();
        let t2 = TenantId::parse("a").unwrap();
        let p1 = k.presence(&t1, &UserId::parse("c").unwrap());
        let p2 = k.presence(&t2, &UserId::parse("b:c").unwrap());
        assert_eq!(p1, "caas:presence:{a:b}:c");
        assert_eq!(p2, "caas:presence:{a}:b:c");
        assert_ne!(p1, p2);
        let r = k.rate(&RateKey::new(&t2, "::1", "edge.request"));
        assert_eq!(r, "caas:rl:{a}:edge.request:::1");
        assert_eq!(k.bus_channel(), "caas:bus");
    }
}
