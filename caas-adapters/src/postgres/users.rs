use std::collections::HashSet;

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{TenantId, UserId};
use caas_core::model::User;
use caas_core::ports::UserStore;

use super::PostgresStore;
use super::codec::{from_json, get, limit, to_json, ts_from_i64, ts_to_i64};
use super::search;

/// A user from its row (`created_at`, `doc`): the column holds the first
/// `created_at`, which an upsert keeps.
fn decode(row: &tokio_postgres::Row) -> Result<User> {
    let mut user: User = from_json(&get::<String>(row, 1)?, "user")?;
    user.created_at = ts_from_i64(get(row, 0)?, "created_at")?;
    Ok(user)
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn upsert(&self, user: &User) -> Result<User> {
        let doc = to_json(user, "user")?;
        let created = ts_to_i64(user.created_at, "created_at")?;
        let words = search::user_words(user).map(|w| w.text);
        // One statement: the user and its search entry commit together, and a
        // replace keeps the stored created_at however creates race.
        let row = self
            .conn()
            .await?
            .query_one(
                "WITH u AS (
                     INSERT INTO users (tenant, id, created_at, doc) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (tenant, id) DO UPDATE SET doc = excluded.doc
                     RETURNING created_at
                 ), s AS (
                     INSERT INTO search_users (tenant, uid, words)
                     VALUES ($1, $2, CASE WHEN $5::text IS NULL THEN NULL
                                          ELSE array_to_tsvector(string_to_array($5::text, ' ')) END)
                     ON CONFLICT (tenant, uid) DO UPDATE SET words = excluded.words
                 )
                 SELECT created_at FROM u",
                &[
                    &user.tenant.as_str(),
                    &user.id.as_str(),
                    &created,
                    &doc,
                    &words,
                ],
                "upsert user",
            )
            .await?;
        let mut stored = user.clone();
        stored.created_at = ts_from_i64(get(&row, 0)?, "created_at")?;
        Ok(stored)
    }

    async fn get(&self, tenant: &TenantId, id: &UserId) -> Result<Option<User>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT created_at, doc FROM users WHERE tenant = $1 AND id = $2",
                &[&tenant.as_str(), &id.as_str()],
                "get user",
            )
            .await?;
        row.as_ref().map(decode).transpose()
    }

    async fn get_many(&self, tenant: &TenantId, ids: &[UserId]) -> Result<Vec<User>> {
        let mut seen = HashSet::new();
        let ids: Vec<&str> = ids
            .iter()
            .filter(|id| seen.insert(*id))
            .map(|id| id.as_str())
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT created_at, doc, x.i FROM unnest($2::text[]) WITH ORDINALITY AS x(id, i)
                 JOIN users u ON u.tenant = $1 AND u.id = x.id
                 ORDER BY x.i",
                &[&tenant.as_str(), &ids],
                "get users",
            )
            .await?;
        rows.iter().map(decode).collect()
    }

    async fn list(&self, tenant: &TenantId, after: Option<&UserId>, n: usize) -> Result<Vec<User>> {
        let after = after.map_or("", |a| a.as_str());
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT created_at, doc FROM users WHERE tenant = $1 AND id > $2
                 ORDER BY id LIMIT $3",
                &[&tenant.as_str(), &after, &limit(n)],
                "list users",
            )
            .await?;
        rows.iter().map(decode).collect()
    }
}
