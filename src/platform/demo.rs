//! `--demo`: a tenant with two users, their tokens and commands to paste.

use std::time::Duration;

use caas_core::Principal;
use caas_core::ids::UserId;
use caas_core::model::TenantSettings;

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
    let secret = caas
        .issue_tenant_secret(&op, &tenant.id, Duration::ZERO)
        .await?;
    let server = Principal::tenant_server(tenant.id.clone());
    let mut tokens = Vec::new();
    for name in ["alice", "bob"] {
        let id = UserId::parse(name)?;
        caas.upsert_user(&server, &id, name, Default::default())
            .await?;
        let token = caas
            .mint_token(&server, &id, None, Duration::from_secs(3600))
            .await?;
        tokens.push((name.to_owned(), token.access_token));
    }
    Ok(Demo {
        tenant_id: tenant.id.to_string(),
        tenant_secret: secret.secret,
        tokens,
    })
}
