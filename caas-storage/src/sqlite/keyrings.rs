//! Persistence of tenants' keyrings for the at-rest encryption decorator.

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::TenantId;
use caas_crypto::keys::TenantKeyring;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::codec::{from_json, to_json};
use super::error::Ctx;
use crate::encrypted::KeyringStore;

#[async_trait]
impl KeyringStore for SqliteStore {
    async fn save_keyring(&self, keyring: &TenantKeyring) -> Result<()> {
        let tenant = keyring.tenant().to_owned();
        let doc = to_json(keyring, "keyring")?;
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO keyrings (tenant, doc) VALUES (?1, ?2)
                 ON CONFLICT (tenant) DO UPDATE SET doc = excluded.doc",
            )
            .and_then(|mut s| s.execute(params![tenant, doc]))
            .ctx("save keyring")?;
            Ok(())
        })
        .await
    }

    async fn create_keyring(&self, keyring: &TenantKeyring) -> Result<TenantKeyring> {
        let tenant = keyring.tenant().to_owned();
        let doc = to_json(keyring, "keyring")?;
        let kept: String = self
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO keyrings (tenant, doc) VALUES (?1, ?2)
                     ON CONFLICT (tenant) DO NOTHING",
                )
                .and_then(|mut s| s.execute(params![tenant, doc]))
                .ctx("create keyring")?;
                c.prepare_cached("SELECT doc FROM keyrings WHERE tenant = ?1")
                    .and_then(|mut s| s.query_row([tenant.as_str()], |r| r.get(0)))
                    .ctx("read keyring")
            })
            .await?;
        from_json(&kept, "keyring")
    }

    async fn load_keyring(&self, tenant: &TenantId) -> Result<Option<TenantKeyring>> {
        let tenant = tenant.clone();
        self.read(move |c| {
            let doc: Option<String> = c
                .prepare_cached("SELECT doc FROM keyrings WHERE tenant = ?1")
                .and_then(|mut s| s.query_row([tenant.as_str()], |r| r.get(0)).optional())
                .ctx("load keyring")?;
            doc.map(|d| from_json(&d, "keyring")).transpose()
        })
        .await
    }
}
