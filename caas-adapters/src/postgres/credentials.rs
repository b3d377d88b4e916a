use async_trait::async_trait;
use caas_core::ids::{TenantId, UserId};
use caas_core::ports::{CredentialStore, PasswordLogin, RefreshSession, SessionStatus};
use caas_core::{EntityKind, Error, Result};

use super::PostgresStore;
use super::codec::{corrupt_value, from_json, get, to_json};

fn status_text(s: SessionStatus) -> &'static str {
    match s {
        SessionStatus::Active => "active",
        SessionStatus::Rotated => "rotated",
        SessionStatus::Revoked => "revoked",
    }
}

fn status_of(s: &str) -> Result<SessionStatus> {
    match s {
        "active" => Ok(SessionStatus::Active),
        "rotated" => Ok(SessionStatus::Rotated),
        "revoked" => Ok(SessionStatus::Revoked),
        other => Err(corrupt_value("session status", other)),
    }
}

const PUT_SESSION: &str = "INSERT INTO refresh_sessions (tenant, hash, family, status, doc)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (tenant, hash) DO UPDATE
     SET family = excluded.family, status = excluded.status, doc = excluded.doc";

#[async_trait]
impl CredentialStore for PostgresStore {
    async fn create_login(&self, login: &PasswordLogin) -> Result<()> {
        let doc = to_json(login, "login")?;
        let n = self
            .conn()
            .await?
            .execute(
                "INSERT INTO password_logins (tenant, uid, doc) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&login.tenant.as_str(), &login.user.as_str(), &doc],
                "create login",
            )
            .await?;
        if n == 0 {
            return Err(Error::conflict(format!(
                "user `{}` already has a password login",
                login.user
            )));
        }
        Ok(())
    }

    async fn update_login(&self, login: &PasswordLogin) -> Result<()> {
        let doc = to_json(login, "login")?;
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE password_logins SET doc = $3 WHERE tenant = $1 AND uid = $2",
                &[&login.tenant.as_str(), &login.user.as_str(), &doc],
                "update login",
            )
            .await?;
        if n == 0 {
            return Err(Error::not_found(EntityKind::User, &login.user));
        }
        Ok(())
    }

    async fn login(&self, tenant: &TenantId, user: &UserId) -> Result<Option<PasswordLogin>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT doc FROM password_logins WHERE tenant = $1 AND uid = $2",
                &[&tenant.as_str(), &user.as_str()],
                "get login",
            )
            .await?;
        row.map(|r| from_json(&get::<String>(&r, 0)?, "login"))
            .transpose()
    }

    async fn insert_session(&self, s: &RefreshSession) -> Result<()> {
        let doc = to_json(s, "session")?;
        self.conn()
            .await?
            .execute(
                PUT_SESSION,
                &[
                    &s.tenant.as_str(),
                    &s.hash,
                    &s.family,
                    &status_text(s.status),
                    &doc,
                ],
                "store session",
            )
            .await?;
        Ok(())
    }

    async fn session(&self, tenant: &TenantId, hash: &str) -> Result<Option<RefreshSession>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT status, doc FROM refresh_sessions WHERE tenant = $1 AND hash = $2",
                &[&tenant.as_str(), &hash],
                "get session",
            )
            .await?;
        row.map(|r| {
            let mut s: RefreshSession = from_json(&get::<String>(&r, 1)?, "session")?;
            // The column is the truth: rotations and revocations change only it.
            s.status = status_of(&get::<String>(&r, 0)?)?;
            Ok(s)
        })
        .transpose()
    }

    async fn rotate_session(
        &self,
        tenant: &TenantId,
        old_hash: &str,
        next: &RefreshSession,
    ) -> Result<bool> {
        let doc = to_json(next, "session")?;
        // Compare-and-set in one statement: of concurrent rotations, the first
        // takes the row lock and flips it; every later one re-checks the status
        // after it and matches nothing.
        let row = self
            .conn()
            .await?
            .query_one(
                "WITH old AS (
                     UPDATE refresh_sessions SET status = 'rotated'
                     WHERE tenant = $1 AND hash = $2 AND status = 'active'
                     RETURNING 1
                 ), next AS (
                     INSERT INTO refresh_sessions (tenant, hash, family, status, doc)
                     SELECT $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM old)
                     ON CONFLICT (tenant, hash) DO UPDATE
                     SET family = excluded.family, status = excluded.status, doc = excluded.doc
                 )
                 SELECT EXISTS (SELECT 1 FROM old)",
                &[
                    &tenant.as_str(),
                    &old_hash,
                    &next.tenant.as_str(),
                    &next.hash,
                    &next.family,
                    &status_text(next.status),
                    &doc,
                ],
                "rotate session",
            )
            .await?;
        get(&row, 0)
    }

    async fn revoke_family(&self, tenant: &TenantId, family: &str) -> Result<u64> {
        self.conn()
            .await?
            .execute(
                "UPDATE refresh_sessions SET status = 'revoked'
                 WHERE tenant = $1 AND family = $2 AND status <> 'revoked'",
                &[&tenant.as_str(), &family],
                "revoke session family",
            )
            .await
    }
}
