use async_trait::async_trait;
use caas_core::ids::{TenantId, UserId};
use caas_core::ports::{CredentialStore, PasswordLogin, RefreshSession, SessionStatus};
use caas_core::{EntityKind, Error, Result};
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::codec::{from_json, to_json};
use super::error::Ctx;

fn session(c: &Connection, tenant: &str, hash: &str) -> Result<Option<RefreshSession>> {
    let doc: Option<String> = c
        .prepare_cached("SELECT doc FROM refresh_sessions WHERE tenant = ?1 AND hash = ?2")
        .and_then(|mut s| s.query_row(params![tenant, hash], |r| r.get(0)).optional())
        .ctx("get session")?;
    doc.map(|d| from_json(&d, "session")).transpose()
}

fn put_session(c: &Connection, s: &RefreshSession) -> Result<()> {
    let doc = to_json(s, "session")?;
    c.prepare_cached(
        "INSERT INTO refresh_sessions (tenant, hash, family, doc) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant, hash) DO UPDATE SET family = excluded.family, doc = excluded.doc",
    )
    .and_then(|mut st| st.execute(params![s.tenant.as_str(), s.hash, s.family, doc]))
    .ctx("store session")?;
    Ok(())
}

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn create_login(&self, login: &PasswordLogin) -> Result<()> {
        let (tenant, user) = (login.tenant.clone(), login.user.clone());
        let doc = to_json(login, "login")?;
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "INSERT INTO password_logins (tenant, user, doc) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO NOTHING",
                )
                .and_then(|mut s| s.execute(params![tenant.as_str(), user.as_str(), doc]))
                .ctx("create login")?;
            if n == 0 {
                return Err(Error::conflict(format!(
                    "user `{user}` already has a password login"
                )));
            }
            Ok(())
        })
        .await
    }

    async fn update_login(&self, login: &PasswordLogin) -> Result<()> {
        let (tenant, user) = (login.tenant.clone(), login.user.clone());
        let doc = to_json(login, "login")?;
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE password_logins SET doc = ?3 WHERE tenant = ?1 AND user = ?2",
                )
                .and_then(|mut s| s.execute(params![tenant.as_str(), user.as_str(), doc]))
                .ctx("update login")?;
            if n == 0 {
                return Err(Error::not_found(EntityKind::User, &user));
            }
            Ok(())
        })
        .await
    }

    async fn login(&self, tenant: &TenantId, user: &UserId) -> Result<Option<PasswordLogin>> {
        let (tenant, user) = (tenant.clone(), user.clone());
        self.read(move |c| {
            let doc: Option<String> = c
                .prepare_cached("SELECT doc FROM password_logins WHERE tenant = ?1 AND user = ?2")
                .and_then(|mut s| {
                    s.query_row(params![tenant.as_str(), user.as_str()], |r| r.get(0))
                        .optional()
                })
                .ctx("get login")?;
            doc.map(|d| from_json(&d, "login")).transpose()
        })
        .await
    }

    async fn insert_session(&self, s: &RefreshSession) -> Result<()> {
        let s = s.clone();
        self.write(move |c| put_session(c, &s)).await
    }

    async fn session(&self, tenant: &TenantId, hash: &str) -> Result<Option<RefreshSession>> {
        let (tenant, hash) = (tenant.clone(), hash.to_owned());
        self.read(move |c| session(c, tenant.as_str(), &hash)).await
    }

    async fn rotate_session(
        &self,
        tenant: &TenantId,
        old_hash: &str,
        next: &RefreshSession,
    ) -> Result<bool> {
        let (tenant, old_hash, next) = (tenant.clone(), old_hash.to_owned(), next.clone());
        // Compare-and-set in the writer: of concurrent rotations, the first to run
        // finds the session active; every later one finds it rotated.
        self.write(move |c| {
            let Some(mut old) = session(c, tenant.as_str(), &old_hash)? else {
                return Ok(false);
            };
            if old.status != SessionStatus::Active {
                return Ok(false);
            }
            old.status = SessionStatus::Rotated;
            put_session(c, &old)?;
            put_session(c, &next)?;
            Ok(true)
        })
        .await
    }

    async fn revoke_family(&self, tenant: &TenantId, family: &str) -> Result<u64> {
        let (tenant, family) = (tenant.clone(), family.to_owned());
        self.write(move |c| {
            let docs = c
                .prepare_cached(
                    "SELECT doc FROM refresh_sessions WHERE tenant = ?1 AND family = ?2",
                )
                .and_then(|mut s| {
                    s.query_map(params![tenant.as_str(), family], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .ctx("read session family")?;
            let mut revoked = 0;
            for doc in docs {
                let mut s: RefreshSession = from_json(&doc, "session")?;
                if s.status != SessionStatus::Revoked {
                    s.status = SessionStatus::Revoked;
                    put_session(c, &s)?;
                    revoked += 1;
                }
            }
            Ok(revoked)
        })
        .await
    }
}
