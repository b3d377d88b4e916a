//! `--demo`: a tenant with two users, their tokens and commands to paste.

use std::time::Duration;

use caas_core::Principal;
use caas_core::ids::UserId;
use caas_core::model::{TenantCredential, TenantSettings};
use caas_crypto::secret::TenantSecret;

use super::{Platform, PlatformError};

/// What `--demo` created.
#[derive(Debug)]
pub struct Demo {
    /// The tenant.
    pub tenant_id: String,
    /// Its secret (shown once).
    pub tenant_secret: String,
    /// `(user, access token)` for alice and bob.
    pub tokens: Vec<(String, String)>,
}

/// Creates the demo tenant, users alice and bob, and one-hour tokens for them.
pub async fn create_demo(p: &Platform) -> Result<Demo, PlatformError> {
    let caas = &p.state.caas;
    let op = Principal::operator();
    let tenant = caas
        .create_tenant(&op, "demo", TenantSettings::default())
        .await?;
    let secret = TenantSecret::generate().map_err(|e| PlatformError::Io(e.to_string()))?;
    let now = caas.backends().clock.now();
    let credential = TenantCredential {
        key_id: "demo".into(),
        hash: secret.hash().to_string(),
        created_at: now,
        expires_at: None,
    };
    caas.rotate_tenant_credential(&op, &tenant.id, credential, Duration::ZERO)
        .await?;
    let server = Principal::tenant_server(tenant.id.clone());
    let mut tokens = Vec::new();
    for name in ["alice", "bob"] {
        let id = UserId::parse(name)?;
        caas.upsert_user(&server, &id, name, Default::default())
            .await?;
        let token = p
            .state
            .auth
            .mint(&tenant.id, &id, None, 3600, now)
            .map_err(|e| PlatformError::Io(e.to_string()))?;
        tokens.push((name.to_owned(), token));
    }
    Ok(Demo {
        tenant_id: tenant.id.to_string(),
        tenant_secret: secret.expose_secret().to_owned(),
        tokens,
    })
}
