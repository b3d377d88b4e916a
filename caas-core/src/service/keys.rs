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

    /// Claims one bundle per device of `user` (each one-time prekey handed out once).
    pub async fn claim_keys(&self, p: &Principal, user: &UserId) -> Result<Vec<KeyBundle>> {
        let ctx = self.ctx(p).await?;
        Self::authorize(
            &ctx,
            Action::KeysClaim,
            Self::subject(&ctx, None),
            Attrs::default()
                .with("kind", "keys")
                .with("owner", user.shared()),
        )?;
        self.rate_limit(&ctx, Action::KeysClaim).await?;
        self.b.keys.claim(&ctx.tenant, user).await
    }
}
