//! The REST endpoints of `api.md`, one module per resource.

pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod billing;
pub(crate) mod compliance;
pub(crate) mod conversations;
pub(crate) mod health;
pub(crate) mod keys;
pub(crate) mod media;
pub(crate) mod messages;
pub(crate) mod moderation;
pub(crate) mod presence;
pub(crate) mod receipts;
pub(crate) mod search;
pub(crate) mod sync;
pub(crate) mod tenants;
pub(crate) mod usage;
pub(crate) mod users;
pub(crate) mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{get, post, put};
use serde::Serialize;

use crate::gateway::AppState;
use crate::problem::ApiError;

pub(crate) fn routes(max_media_bytes: u64) -> Router<AppState> {
    // Uploads to a URL this server signed carry the whole file: their own body
    // limit, checked again against the announced size.
    let upload_limit = usize::try_from(max_media_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route("/openapi.json", get(crate::openapi::json))
        .route("/docs", get(crate::openapi::docs))
        .route("/health", get(health::health))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/.well-known/jwks.json", get(users::jwks))
        .route("/v1/auth/register", post(auth::register))
        .route("/v1/auth/login", post(auth::login))
        .route("/v1/auth/refresh", post(auth::refresh_tokens))
        .route("/v1/auth/logout", post(auth::logout))
        .route("/v1/auth/totp", post(auth::totp_enroll))
        .route("/v1/auth/totp/confirm", post(auth::totp_confirm))
        .route("/v1/tenants", post(tenants::create))
        .route(
            "/v1/tenants/{id}",
            get(tenants::get)
                .patch(tenants::patch)
                .delete(tenants::suspend),
        )
        .route("/v1/tenants/{id}/secrets", post(tenants::rotate_secret))
        .route("/v1/users/{user_id}", put(users::upsert).get(users::get))
        .route("/v1/users/{user_id}/tokens", post(users::mint_token))
        .route(
            "/v1/conversations",
            post(conversations::create).get(conversations::list),
        )
        .route(
            "/v1/conversations/{id}",
            get(conversations::get).patch(conversations::update),
        )
        .route(
            "/v1/conversations/{id}/members",
            post(conversations::add_member),
        )
        .route(
            "/v1/conversations/{id}/members/{user_id}",
            axum::routing::delete(conversations::remove_member).patch(conversations::update_member),
        )
        .route(
            "/v1/conversations/{id}/messages",
            post(messages::send).get(messages::history),
        )
        .route(
            "/v1/conversations/{id}/messages/{message_id}",
            axum::routing::patch(messages::edit).delete(messages::delete),
        )
        .route(
            "/v1/conversations/{id}/messages/{message_id}/forward",
            post(messages::forward),
        )
        .route(
            "/v1/conversations/{id}/messages/{message_id}/reactions/{emoji}",
            put(messages::react).delete(messages::unreact),
        )
        .route(
            "/v1/conversations/{id}/messages/{message_id}/pin",
            put(messages::pin).delete(messages::unpin),
        )
        .route("/v1/conversations/{id}/pins", get(messages::pins))
        .route(
            "/v1/conversations/{id}/messages/{message_id}/flag",
            post(moderation::flag),
        )
        .route(
            "/v1/conversations/{id}/messages/{message_id}/flags/resolve",
            post(moderation::resolve),
        )
        .route(
            "/v1/conversations/{id}/messages/{message_id}/edits",
            get(moderation::edits),
        )
        .route("/v1/conversations/{id}/flags", get(moderation::list))
        .route("/v1/conversations/{id}/read", post(receipts::read))
        .route("/v1/conversations/{id}/receipts", get(receipts::list))
        .route("/v1/presence", get(presence::lookup))
        .route("/v1/devices/{device_id}/keys", put(keys::publish))
        .route("/v1/users/{user_id}/keys", get(keys::claim))
        .route("/v1/audit", get(audit::list))
        .route("/v1/audit/verify", get(audit::verify))
        .route(
            "/v1/compliance/users/{user_id}/export",
            get(compliance::export),
        )
        .route(
            "/v1/compliance/users/{user_id}",
            axum::routing::delete(compliance::erase),
        )
        .route(
            "/v1/compliance/users/{user_id}/exports",
            post(compliance::start_export),
        )
        .route(
            "/v1/compliance/exports/{export_id}",
            get(compliance::export_job).delete(compliance::delete_export),
        )
        .route(
            "/v1/compliance/exports/{export_id}/download",
            get(compliance::download_export),
        )
        .route("/v1/media/uploads", post(media::upload))
        .route("/v1/media/{blob_id}/complete", post(media::complete))
        .route("/v1/media/{blob_id}/url", get(media::url))
        .route("/v1/media/{blob_id}", axum::routing::delete(media::delete))
        .route(
            "/v1/blobs/{tenant}/{blob_id}",
            get(media::get_bytes).put(media::put_bytes.layer(DefaultBodyLimit::max(upload_limit))),
        )
        .route("/v1/usage", get(usage::usage))
        .route("/v1/usage/invoice", get(billing::invoice))
        .route("/v1/billing/stripe", post(billing::stripe))
        .route("/v1/webhooks", post(webhooks::create).get(webhooks::list))
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::get)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route("/v1/webhooks/{id}/secrets", post(webhooks::rotate))
        .route(
            "/v1/webhooks/{id}/dead-letters",
            get(webhooks::dead_letters),
        )
        .route(
            "/v1/webhooks/{id}/dead-letters/replay",
            post(webhooks::replay),
        )
        .route("/v1/sync", get(sync::sync))
        .route("/v1/ws", get(crate::ws::upgrade))
        .route("/v1/search/messages", get(search::messages))
        .route("/v1/search/conversations", get(search::conversations))
        .route("/v1/search/users", get(search::users))
}

/// A page of a list: `{"items": […], "next_cursor": …}`.
#[derive(Debug, Serialize)]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    pub(crate) next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A list that comes whole: no next page.
    pub(crate) fn whole(items: Vec<T>) -> Self {
        Self {
            items,
            next_cursor: None,
        }
    }
}

impl<T> From<caas_core::service::Page<T>> for Page<T> {
    fn from(p: caas_core::service::Page<T>) -> Self {
        Self {
            items: p.items,
            next_cursor: p.next_cursor,
        }
    }
}

/// A position in a query (`since`, `after`, a seq): at most `i64::MAX`, the
/// largest any store keeps and what the document's `int64` promises.
pub(super) fn position<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match <Option<u64> as serde::Deserialize>::deserialize(d)? {
        Some(n) if i64::try_from(n).is_err() => Err(serde::de::Error::custom(format!(
            "{n} is over the largest position, {}",
            i64::MAX
        ))),
        v => Ok(v),
    }
}

/// Parses an id from a path or body, naming the field on failure.
pub(crate) fn id<T: std::str::FromStr<Err = caas_core::Error>>(s: &str) -> Result<T, ApiError> {
    s.parse::<T>().map_err(ApiError::from)
}

/// The default page size of list endpoints.
pub(crate) const DEFAULT_LIMIT: usize = 50;
