//! E2EE key directory: devices publish public keys, others claim bundles.

use super::Caas;
use crate::error::{Error, Result};
use crate::ids::{DeviceId, UserId};
use crate::model::{DeviceKeys, KeyBundle};
use crate::policy::{Action, Attrs};
use crate::principal::Principal;

/// Most one-time prekeys one upload may carry.
const MAX_ONE_TIME_UPLOAD: usize = 200;

impl Caas {
    /// Publishes the caller's device keys after the [`crate::ports::KeyVerifier`]
    /// checked them. Returns the device's one-time prekey count.
    pub async fn publish_keys(
        &self,
        p: &Principal,
        device: &DeviceId,
        keys: &DeviceKeys,
    ) -> Result<usize> {
        let ctx = self.ctx(p).await?;
        let user = ctx.user()?.clone();
        Self::authorize(
            &ctx,
            Action::KeysPublish,
            Self::subject(&ctx, None),
            Attrs::default()
                .with("kind", "keys")
                .with("owner", user.shared()),
        )?;
        if keys.one_time_prekeys.len() > MAX_ONE_TIME_UPLOAD {
            return Err(Error::invalid(
                "one_time_prekeys",
                format!("at most {MAX_ONE_TIME_UPLOAD} per upload"),
            ));
        }
        let verifier = self
            .key_verifier
            .as_ref()
            .ok_or_else(|| Error::Unavailable {
                backend: "keys",
                context:
                    "no key verifier is configured, so keys cannot be checked and are not stored"
                        .into(),
                temporary: false,
                source: None,
            })?;
        verifier.verify(keys)?;
        self.b.keys.publish(&ctx.tenant, &user, device, keys).await
    }

    /// Claims one bundle per device of `user`, to start E2EE sessions with them.
    ///
    /// Any user of the tenant may claim (the default policy's `users-claim-keys`),
    /// within the caller's `keys.claim` rate. One-time prekeys are a finite pool
    /// the target refills, so they are spent only within two budgets: the
    /// claimer's for this target (`keys.claim.pair`: a session needs one per
    /// device, so a few an hour) and the target's across all claimers
    /// (`keys.claim.target`). Past either, bundles come without one: X3DH then
    /// runs on the signed prekey alone, and nobody can drain another user's
    /// pool. Each one-time prekey is handed out once.
    pub async fn claim_keys(&self, p: &Principal, user: &UserId) -> Result<Vec<KeyBundle>> {
        let ctx = self.ctx(p).await?;
        let claimer = ctx.user()?.clone();
        Self::authorize(
            &ctx,
            Action::KeysClaim,
            Self::subject(&ctx, None),
            Attrs::default()
                .with("kind", "keys")
                .with("owner", user.shared()),
        )?;
        self.rate_limit(&ctx, Action::KeysClaim).await?;
        let pair = std::sync::Arc::from(format!("{claimer}>{user}"));
        let one_time = self.within_budget(&ctx, pair, "keys.claim.pair").await?
            && self
                .within_budget(&ctx, user.shared(), "keys.claim.target")
                .await?;
        self.b.keys.claim(&ctx.tenant, user, one_time).await
    }

    /// Spends one unit of the tenant's `action` budget for `subject`; false when
    /// it is spent (a budget that degrades a result instead of refusing it).
    async fn within_budget(
        &self,
        ctx: &super::Ctx<'_>,
        subject: std::sync::Arc<str>,
        action: &'static str,
    ) -> Result<bool> {
        let Some(quota) = ctx.rt.limits.get(action) else {
            return Ok(true);
        };
        let key = crate::ratelimit::RateKey::new(&ctx.tenant, subject, action);
        Ok(matches!(
            self.b.rate_limits.check(&key, quota, ctx.now).await?,
            crate::ratelimit::Decision::Allow { .. }
        ))
    }
}
