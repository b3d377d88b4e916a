//! Keyrings that versions before [`super::KeyFile`] kept in the database,
//! read once to move them there.

use caas_core::Result;
use caas_crypto::keys::TenantKeyring;

use super::SqliteStore;
use super::codec::from_json;
use super::error::Ctx;

impl SqliteStore {
    /// Every keyring still in the database.
    pub(super) async fn legacy_keyrings(&self) -> Result<Vec<TenantKeyring>> {
        let docs: Vec<String> = self
            .read(|c| {
                let mut stmt = c
                    .prepare("SELECT doc FROM keyrings ORDER BY tenant")
                    .ctx("read keyrings")?;
                let rows = stmt
                    .query_map([], |r| r.get(0))
                    .ctx("read keyrings")?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .ctx("read keyrings")?;
                Ok(rows)
            })
            .await?;
        docs.iter().map(|d| from_json(d, "keyring")).collect()
    }

    /// Removes them (their pages are zeroed: `secure_delete`), and checkpoints
    /// the WAL so no copy of them stays there.
    pub(super) async fn forget_legacy_keyrings(&self) -> Result<()> {
        self.write(|c| {
            c.execute("DELETE FROM keyrings", [])
                .ctx("remove keyrings")?;
            Ok(())
        })
        .await?;
        self.checkpoint_truncate().await
    }
}
