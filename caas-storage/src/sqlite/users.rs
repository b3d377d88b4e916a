use std::collections::HashSet;

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{TenantId, UserId};
use caas_core::model::User;
use caas_core::ports::UserStore;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::codec::{from_json, limit, to_json, ts_from_i64, ts_to_i64};
use super::error::Ctx;
use super::search;

#[async_trait]
impl UserStore for SqliteStore {
    async fn upsert(&self, user: &User) -> Result<User> {
        let mut stored = user.clone();
        self.write(move |c| {
            let old: Option<i64> = c
                .prepare_cached("SELECT created_at FROM users WHERE tenant = ?1 AND id = ?2")
                .and_then(|mut s| {
                    s.query_row(params![stored.tenant.as_str(), stored.id.as_str()], |r| {
                        r.get(0)
                    })
                    .optional()
                })
                .ctx("read user")?;
            if let Some(created) = old {
                stored.created_at = ts_from_i64(created, "created_at")?;
            }
            let created = ts_to_i64(stored.created_at, "created_at")?;
            let doc = to_json(&stored, "user")?;
            c.prepare_cached(
                "INSERT INTO users (tenant, id, created_at, doc) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, id) DO UPDATE SET doc = excluded.doc",
            )
            .and_then(|mut s| {
                s.execute(params![
                    stored.tenant.as_str(),
                    stored.id.as_str(),
                    created,
                    doc
                ])
            })
            .ctx("upsert user")?;
            search::put_user(
                c,
                &stored.tenant,
                &stored.id,
                search::user_words(&stored).as_ref(),
            )?;
            Ok(stored)
        })
        .await
    }

    async fn get(&self, tenant: &TenantId, id: &UserId) -> Result<Option<User>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read_short(move |c| get_user(c, &tenant, &id)).await
    }

    async fn get_many(&self, tenant: &TenantId, ids: &[UserId]) -> Result<Vec<User>> {
        let tenant = tenant.clone();
        let mut seen = HashSet::new();
        let ids: Vec<UserId> = ids.iter().filter(|id| seen.insert(*id)).cloned().collect();
        self.read(move |c| {
            let mut out = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some(u) = get_user(c, &tenant, id)? {
                    out.push(u);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn list(&self, tenant: &TenantId, after: Option<&UserId>, n: usize) -> Result<Vec<User>> {
        let (tenant, after) = (tenant.clone(), after.cloned());
        self.read(move |c| {
            let after = after.as_ref().map_or("", |a| a.as_str());
            let mut stmt = c
                .prepare_cached(
                    "SELECT doc FROM users WHERE tenant = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                )
                .ctx("list users")?;
            let docs = stmt
                .query_map(params![tenant.as_str(), after, limit(n)], |r| {
                    r.get::<_, String>(0)
                })
                .ctx("list users")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("list users")?;
            docs.iter().map(|d| from_json(d, "user")).collect()
        })
        .await
    }
}

pub(super) fn get_user(
    c: &rusqlite::Connection,
    tenant: &TenantId,
    id: &UserId,
) -> Result<Option<User>> {
    let doc: Option<String> = c
        .prepare_cached("SELECT doc FROM users WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut s| {
            s.query_row(params![tenant.as_str(), id.as_str()], |r| r.get(0))
                .optional()
        })
        .ctx("get user")?;
    doc.map(|d| from_json(&d, "user")).transpose()
}
