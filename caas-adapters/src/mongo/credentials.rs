//! Password logins and refresh-token sessions.
//!
//! A session's status is a native field, and the truth: rotations and
//! revocations change only it. A rotation is one transaction: a conditional
//! update of the old session (matching only while it is `active`) and the
//! upsert of the next; of concurrent rotations of one token, the later ones
//! conflict, run again, and then match nothing.

use async_trait::async_trait;
use caas_core::ids::{TenantId, UserId};
use caas_core::ports::{CredentialStore, PasswordLogin, RefreshSession, SessionStatus};
use caas_core::{EntityKind, Error, Result};
use mongodb::bson::Document;

use super::MongoStore;
use super::codec::{body, check_size, get_str, to_json};
use super::names::{PASSWORD_LOGINS, REFRESH_SESSIONS};
use super::txn::{Abort, OnDuplicate};

/// A status as stored (the serde names of [`SessionStatus`]).
pub(super) fn status_text(s: SessionStatus) -> &'static str {
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
        other => Err(Error::internal(format!(
            "mongo: stored session status `{other}` is invalid"
        ))),
    }
}

/// The command, filter and update documents of credentials, as pure
/// functions of their arguments.
pub(super) mod commands {
    use caas_core::ids::{TenantId, UserId};
    use mongodb::bson::{Document, doc};

    use super::super::names::{PASSWORD_LOGINS, REFRESH_SESSIONS};

    /// A user's login (the key of the unique index `password_logins_user`).
    pub(crate) fn login(tenant: &TenantId, user: &UserId) -> Document {
        doc! { "tenant": tenant.as_str(), "user": user.as_str() }
    }

    /// A login as stored.
    pub(crate) fn login_document(tenant: &TenantId, user: &UserId, json: &str) -> Document {
        doc! { "tenant": tenant.as_str(), "user": user.as_str(), "doc": json }
    }

    /// The replacement of a login's body (`update_one`, never an upsert).
    pub(crate) fn replace_login(json: &str) -> Document {
        doc! { "$set": { "doc": json } }
    }

    /// A session by token hash (the key of the unique index
    /// `refresh_sessions_hash`).
    pub(crate) fn session(tenant: &TenantId, hash: &str) -> Document {
        doc! { "tenant": tenant.as_str(), "hash": hash }
    }

    /// The upsert of a session (`update_one`, upsert, filter [`session`]).
    pub(crate) fn put_session(family: &str, status: &str, json: &str) -> Document {
        doc! { "$set": { "family": family, "status": status, "doc": json } }
    }

    /// The compare-and-set of a rotation: only an active session turns
    /// rotated.
    pub(crate) fn rotate(tenant: &TenantId, hash: &str) -> (Document, Document) {
        (
            doc! { "tenant": tenant.as_str(), "hash": hash, "status": "active" },
            doc! { "$set": { "status": "rotated" } },
        )
    }

    /// Revoking a family: every session of it not yet revoked.
    pub(crate) fn revoke_family(tenant: &TenantId, family: &str) -> (Document, Document) {
        (
            doc! {
                "tenant": tenant.as_str(),
                "family": family,
                "status": { "$ne": "revoked" },
            },
            doc! { "$set": { "status": "revoked" } },
        )
    }

    /// The `createIndexes` commands of `password_logins` and
    /// `refresh_sessions`.
    pub(crate) fn create_indexes() -> [Document; 2] {
        [
            doc! {
                "createIndexes": PASSWORD_LOGINS,
                "indexes": [{
                    "key": { "tenant": 1, "user": 1 },
                    "name": "password_logins_user",
                    "unique": true,
                }],
            },
            doc! {
                "createIndexes": REFRESH_SESSIONS,
                "indexes": [
                    { "key": { "tenant": 1, "hash": 1 }, "name": "refresh_sessions_hash", "unique": true },
                    { "key": { "tenant": 1, "family": 1 }, "name": "refresh_sessions_family" },
                ],
            },
        ]
    }
}

fn decode_session(d: &Document) -> Result<RefreshSession> {
    let mut s: RefreshSession = body(d, "session")?;
    s.status = status_of(get_str(d, "status", "session")?)?;
    Ok(s)
}

#[async_trait]
impl CredentialStore for MongoStore {
    async fn create_login(&self, login: &PasswordLogin) -> Result<()> {
        let json = to_json(login, "login")?;
        check_size("login", json.len())?;
        self.bounded(
            "create login",
            self.coll(PASSWORD_LOGINS)
                .insert_one(commands::login_document(&login.tenant, &login.user, &json)),
        )
        .await
        .map(|_| ())
    }

    async fn update_login(&self, login: &PasswordLogin) -> Result<()> {
        let json = to_json(login, "login")?;
        check_size("login", json.len())?;
        let done = self
            .bounded(
                "update login",
                self.coll(PASSWORD_LOGINS).update_one(
                    commands::login(&login.tenant, &login.user),
                    commands::replace_login(&json),
                ),
            )
            .await?;
        if done.matched_count == 0 {
            return Err(Error::not_found(EntityKind::User, &login.user));
        }
        Ok(())
    }

    async fn login(&self, tenant: &TenantId, user: &UserId) -> Result<Option<PasswordLogin>> {
        let found = self
            .bounded(
                "get login",
                self.coll(PASSWORD_LOGINS)
                    .find_one(commands::login(tenant, user)),
            )
            .await?;
        found.map(|d| body(&d, "login")).transpose()
    }

    async fn insert_session(&self, s: &RefreshSession) -> Result<()> {
        let json = to_json(s, "session")?;
        check_size("session", json.len())?;
        self.bounded(
            "store session",
            self.coll(REFRESH_SESSIONS)
                .update_one(
                    commands::session(&s.tenant, &s.hash),
                    commands::put_session(&s.family, status_text(s.status), &json),
                )
                .upsert(true),
        )
        .await
        .map(|_| ())
    }

    async fn session(&self, tenant: &TenantId, hash: &str) -> Result<Option<RefreshSession>> {
        let found = self
            .bounded(
                "get session",
                self.coll(REFRESH_SESSIONS)
                    .find_one(commands::session(tenant, hash)),
            )
            .await?;
        found.map(|d| decode_session(&d)).transpose()
    }

    async fn rotate_session(
        &self,
        tenant: &TenantId,
        old_hash: &str,
        next: &RefreshSession,
    ) -> Result<bool> {
        let json = to_json(next, "session")?;
        check_size("session", json.len())?;
        let (filter, update) = commands::rotate(tenant, old_hash);
        let (next_filter, next_update) = (
            commands::session(&next.tenant, &next.hash),
            commands::put_session(&next.family, status_text(next.status), &json),
        );
        let coll = self.coll(REFRESH_SESSIONS);
        self.transaction("rotate session", OnDuplicate::Retry, |s| {
            let coll = coll.clone();
            let (filter, update) = (filter.clone(), update.clone());
            let (next_filter, next_update) = (next_filter.clone(), next_update.clone());
            Box::pin(async move {
                let flipped = coll.update_one(filter, update).session(&mut *s).await?;
                if flipped.modified_count == 0 {
                    // Not active (or gone): nothing is stored; committing the
                    // empty transaction is harmless.
                    return Ok::<_, Abort>(false);
                }
                coll.update_one(next_filter, next_update)
                    .upsert(true)
                    .session(&mut *s)
                    .await?;
                Ok(true)
            })
        })
        .await
    }

    async fn revoke_family(&self, tenant: &TenantId, family: &str) -> Result<u64> {
        let (filter, update) = commands::revoke_family(tenant, family);
        let done = self
            .bounded(
                "revoke session family",
                self.coll(REFRESH_SESSIONS).update_many(filter, update),
            )
            .await?;
        Ok(done.modified_count)
    }
}

#[cfg(test)]
mod tests {
    use super::commands::*;
    use super::*;
    use mongodb::bson::doc;

    fn t() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    #[test]
    fn a_rotation_flips_only_an_active_session() {
        assert_eq!(
            rotate(&t(), "h1"),
            (
                doc! { "tenant": "acme", "hash": "h1", "status": "active" },
                doc! { "$set": { "status": "rotated" } }
            )
        );
        assert_eq!(
            put_session("f1", "active", "{s}"),
            doc! { "$set": { "family": "f1", "status": "active", "doc": "{s}" } }
        );
        assert_eq!(session(&t(), "h1"), doc! { "tenant": "acme", "hash": "h1" });
    }

    #[test]
    fn revoking_a_family_counts_only_sessions_not_yet_revoked() {
        assert_eq!(
            revoke_family(&t(), "f1"),
            (
                doc! { "tenant": "acme", "family": "f1", "status": { "$ne": "revoked" } },
                doc! { "$set": { "status": "revoked" } }
            )
        );
    }

    #[test]
    fn statuses_are_stored_by_their_serde_names() {
        for s in [
            SessionStatus::Active,
            SessionStatus::Rotated,
            SessionStatus::Revoked,
        ] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", status_text(s))
            );
            assert_eq!(status_of(status_text(s)).unwrap(), s);
        }
        assert_eq!(status_of("paused").unwrap_err().code(), "internal");
    }

    #[test]
    fn logins_are_one_per_user() {
        let alice = UserId::parse("alice").unwrap();
        assert_eq!(
            login(&t(), &alice),
            doc! { "tenant": "acme", "user": "alice" }
        );
        assert_eq!(
            login_document(&t(), &alice, "{l}"),
            doc! { "tenant": "acme", "user": "alice", "doc": "{l}" }
        );
        assert_eq!(replace_login("{l}"), doc! { "$set": { "doc": "{l}" } });
        let [logins, sessions] = create_indexes();
        assert_eq!(
            logins,
            doc! {
                "createIndexes": "password_logins",
                "indexes": [{ "key": { "tenant": 1, "user": 1 }, "name": "password_logins_user", "unique": true }],
            }
        );
        assert_eq!(
            sessions,
            doc! {
                "createIndexes": "refresh_sessions",
                "indexes": [
                    { "key": { "tenant": 1, "hash": 1 }, "name": "refresh_sessions_hash", "unique": true },
                    { "key": { "tenant": 1, "family": 1 }, "name": "refresh_sessions_family" },
                ],
            }
        );
    }
}
