//! Media: a member announces an upload for a conversation and gets a URL to put
//! the bytes to; completing it checks what arrived against what was announced;
//! participants of the conversations it was shared in get download URLs; the
//! owner deletes it. Uploads not completed in time are removed by
//! [`Caas::expire_uploads`].
//!
//! The bytes never pass through this service on S3 (its URLs are presigned for
//! the bucket). Stores whose URLs the gateway serves (the local filesystem) hand
//! requests to [`Caas::put_by_url`] and [`Caas::get_by_url`].

use super::{Caas, Ctx, audit_record, check_text};
use crate::error::{EntityKind, Error, Result};
use crate::ids::{BlobId, ConversationId, TenantId, UserId};
use crate::model::{Attachment, BlobMeta, Media, MediaSettings, TenantStatus};
use crate::policy::{Action, Attrs};
use crate::ports::UrlMethod;
use crate::principal::Principal;
use crate::time::Timestamp;

/// The longest content type, parameters included.
const MAX_CONTENT_TYPE_BYTES: usize = 128;

/// Expired uploads removed per store call by [`Caas::expire_uploads`].
const EXPIRE_BATCH: usize = 256;

/// An upload to announce.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// The conversation it is for; the uploader must be a member.
    pub conversation_id: ConversationId,
    /// Its MIME type, e.g. `image/png`.
    pub content_type: String,
    /// Its exact size in bytes.
    pub size: u64,
    /// Its hex SHA-256, checked on completion when given.
    pub sha256: Option<String>,
    /// An optional file name.
    pub name: Option<String>,
}

/// An announced upload and where to send its bytes.
#[derive(Debug, Clone)]
pub struct UploadTicket {
    /// The pending record.
    pub media: Media,
    /// Where to PUT the bytes: absolute, or a path on this server.
    pub upload_url: String,
    /// Headers the PUT must carry, with their values.
    pub headers: Vec<(String, String)>,
}

/// A download URL and until when it works.
#[derive(Debug, Clone)]
pub struct DownloadUrl {
    /// The URL: absolute, or a path on this server.
    pub url: String,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// Checks a tenant's media settings.
pub(super) fn check_media_settings(s: &MediaSettings) -> Result<()> {
    if s.max_bytes == Some(0) {
        return Err(Error::invalid("settings.media.max_bytes", "must be >= 1"));
    }
    if s.content_types.len() > crate::model::MAX_MEDIA_TYPES {
        return Err(Error::invalid(
            "settings.media.content_types",
            format!("at most {} entries", crate::model::MAX_MEDIA_TYPES),
        ));
    }
    for (i, pattern) in s.content_types.iter().enumerate() {
        let field = format!("settings.media.content_types[{i}]");
        let (kind, sub) = pattern
            .split_once('/')
            .ok_or_else(|| Error::invalid(&field, "must be `type/subtype` or `type/*`"))?;
        if !is_token(kind) || !(sub == "*" || is_token(sub)) {
            return Err(Error::invalid(field, "must be `type/subtype` or `type/*`"));
        }
    }
    Ok(())
}

/// An RFC 6838 restricted name: what a type or subtype may be.
fn is_token(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.len() <= 127
        && chars.all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
}

/// Checks a content type (`type/subtype`, optionally with parameters) and
/// returns its essence, lowercased.
fn media_type(field: &str, content_type: &str) -> Result<String> {
    check_text(field, content_type, 1, MAX_CONTENT_TYPE_BYTES)?;
    // It becomes a header on the upload and the download.
    if !content_type
        .bytes()
        .all(|b| b == b' ' || b.is_ascii_graphic())
    {
        return Err(Error::invalid(field, "must be printable ASCII"));
    }
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some((kind, sub)) if is_token(kind) && is_token(sub) => Ok(essence),
        _ => Err(Error::invalid(field, "must be a MIME type: `type/subtype`")),
    }
}

/// Whether a tenant's list accepts a content type's essence.
fn accepted(settings: &MediaSettings, essence: &str) -> bool {
    settings.content_types.is_empty()
        || settings.content_types.iter().any(|p| {
            let p = p.to_ascii_lowercase();
            match p.strip_suffix("/*") {
                Some(kind) => essence.split_once('/').is_some_and(|(k, _)| k == kind),
                None => p == essence,
            }
        })
}

/// Checks an announced SHA-256 and returns it lowercased.
fn checksum(sha256: &str) -> Result<String> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid("sha256", "must be 64 hex digits"));
    }
    Ok(sha256.to_ascii_lowercase())
}

fn blob_resource(m: &Media) -> Attrs {
    Attrs::with_capacity(4)
        .with("kind", "blob")
        .with("id", m.id.shared())
        .with("owner", m.owner.shared())
        .with("conversation_id", m.conversation_id.shared())
}

impl Caas {
    /// Announces an upload: authorize (`media.upload`: a member of the
    /// conversation) → rate-limit → check type and size against the tenant's
    /// limits → record it pending → return where to PUT the bytes, valid for
    /// [`super::Config::upload_ttl`].
    pub async fn request_upload(&self, p: &Principal, u: NewUpload) -> Result<UploadTicket> {
        let ctx = self.ctx(p).await?;
        let owner = ctx.user()?.clone();
        self.conversation_action(&ctx, &u.conversation_id, Action::MediaUpload)
            .await?;
        self.rate_limit(&ctx, Action::MediaUpload).await?;

        let settings = &ctx.rt.tenant.settings.media;
        let essence = media_type("content_type", &u.content_type)?;
        if !accepted(settings, &essence) {
            return Err(Error::invalid(
                "content_type",
                format!("`{essence}` is not accepted here"),
            ));
        }
        let limit = settings.max_bytes.map_or(self.cfg.max_media_bytes, |m| {
            m.min(self.cfg.max_media_bytes)
        });
        if u.size > limit {
            return Err(Error::PayloadTooLarge {
                field: "size".into(),
                size: usize::try_from(u.size).unwrap_or(usize::MAX),
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            });
        }
        if u.size == 0 {
            return Err(Error::invalid("size", "must be at least 1 byte"));
        }
        let sha256 = u.sha256.as_deref().map(checksum).transpose()?;
        self.check_media_quota(&ctx, u.size).await?;
        if let Some(n) = &u.name {
            check_text("name", n, 1, 256)?;
        }

        let media = Media {
            tenant: ctx.tenant.clone(),
            id: BlobId::generate(ctx.now),
            owner,
            conversation_id: u.conversation_id,
            content_type: u.content_type,
            size: u.size,
            sha256,
            name: u.name,
            created_at: ctx.now,
            expires_at: ctx.now.plus(self.cfg.upload_ttl),
            completed_at: None,
            shared_in: Vec::new(),
        };
        // The URL first: a store that mints none fails before anything is kept.
        let upload = self
            .b
            .blobs
            .presign_upload(
                &media.tenant,
                &media.id,
                &media.content_type,
                media.size,
                media.expires_at,
            )
            .await?;
        self.b.media.announce(&media).await?;
        Ok(UploadTicket {
            media,
            upload_url: upload.url,
            headers: upload.headers,
        })
    }

    /// Completes an upload: only its owner, before its deadline; the bytes that
    /// arrived must be the announced size and type (and SHA-256, when one was
    /// announced). Bytes that do not match are discarded, so the owner can put
    /// them again while the upload URL lasts. Completing twice returns the
    /// record again.
    pub async fn complete_upload(&self, p: &Principal, id: &BlobId) -> Result<Media> {
        let ctx = self.ctx(p).await?;
        let user = ctx.user()?;
        // A pending upload is its owner's business: to anyone else it does not exist.
        let m = self
            .b
            .media
            .get(&ctx.tenant, id)
            .await?
            .filter(|m| &m.owner == user)
            .ok_or_else(|| Error::not_found(EntityKind::Blob, id))?;
        if m.is_complete() {
            return Ok(m);
        }
        if m.expires_at <= ctx.now {
            return Err(Error::not_found(EntityKind::Blob, id));
        }
        // Checked again: uploads announced together may pass the quota only
        // when they complete.
        self.check_media_quota(&ctx, m.size).await?;
        let meta = match self
            .b
            .blobs
            .complete_upload(&ctx.tenant, id, &m.content_type, m.size, ctx.now)
            .await
        {
            Ok(meta) => meta,
            Err(Error::NotFound { .. }) => {
                return Err(Error::invalid("blob_id", "nothing was uploaded yet"));
            }
            Err(e @ Error::InvalidArgument { .. }) => {
                self.b.blobs.delete(&ctx.tenant, id).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if let Some(want) = &m.sha256
            && want != &meta.sha256
        {
            self.b.blobs.delete(&ctx.tenant, id).await?;
            return Err(Error::invalid(
                "sha256",
                format!(
                    "the upload's SHA-256 is {}, not the announced one",
                    meta.sha256
                ),
            ));
        }
        // The time now, not the request's start: the sweep judges the
        // deadline by its own clock, after this call's slow reads.
        let done = self
            .b
            .media
            .complete(&ctx.tenant, id, &meta.sha256, self.now())
            .await?;
        self.meter_media(
            &ctx.tenant,
            ctx.now,
            i64::try_from(done.size).unwrap_or(i64::MAX),
        );
        Ok(done)
    }

    /// A download URL for a completed upload, valid for
    /// [`super::Config::download_url_ttl`]: authorize (`media.download`: its
    /// owner, or a member of a conversation it was shared in) → rate-limit.
    pub async fn download_url(&self, p: &Principal, id: &BlobId) -> Result<DownloadUrl> {
        let ctx = self.ctx(p).await?;
        let user = ctx.user()?.clone();
        let m = self
            .b
            .media
            .get(&ctx.tenant, id)
            .await?
            .filter(Media::is_complete)
            .ok_or_else(|| Error::not_found(EntityKind::Blob, id))?;
        let member = self.membership_of_any(&ctx.tenant, &m, &user).await?;
        Self::authorize(
            &ctx,
            Action::MediaDownload,
            Self::subject(&ctx, member.as_ref()),
            blob_resource(&m),
        )?;
        self.rate_limit(&ctx, Action::MediaDownload).await?;
        let expires_at = ctx.now.plus(self.cfg.download_url_ttl);
        let url = self
            .b
            .blobs
            .presign(&ctx.tenant, id, UrlMethod::Get, expires_at)
            .await?;
        Ok(DownloadUrl { url, expires_at })
    }

    /// Deletes an upload, pending or complete, and its bytes: authorize
    /// (`media.delete`: its owner) → rate-limit → delete → audit. Messages that
    /// carry it keep the reference; it no longer downloads.
    pub async fn delete_media(&self, p: &Principal, id: &BlobId) -> Result<()> {
        let ctx = self.ctx(p).await?;
        let m = self
            .b
            .media
            .get(&ctx.tenant, id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Blob, id))?;
        let rule = Self::authorize(
            &ctx,
            Action::MediaDelete,
            Self::subject(&ctx, None),
            blob_resource(&m),
        )?;
        self.rate_limit(&ctx, Action::MediaDelete).await?;
        // Bytes first: a record without bytes is cleaned up by a retry, bytes
        // without a record would be kept for ever.
        self.b.blobs.delete(&ctx.tenant, id).await?;
        if self.b.media.delete(&ctx.tenant, id).await? && m.is_complete() {
            self.meter_media(
                &ctx.tenant,
                ctx.now,
                -i64::try_from(m.size).unwrap_or(i64::MAX),
            );
        }
        self.audit(
            &ctx.tenant,
            audit_record(
                p,
                Action::MediaDelete,
                id.to_string(),
                &rule,
                serde_json::json!({
                    "conversation_id": m.conversation_id,
                    "size": m.size,
                    "content_type": m.content_type,
                }),
                ctx.now,
            ),
        )
        .await
    }

    /// Removes uploads not completed by their deadline, bytes and record, in
    /// every tenant; returns how many. Run it periodically (the platform does
    /// every minute). Safe on many nodes at once and against a completion racing
    /// it: a record is removed only while still pending and expired.
    pub async fn expire_uploads(&self) -> Result<usize> {
        let now = self.now();
        let mut removed = 0;
        loop {
            let due = self.b.media.expired(now, EXPIRE_BATCH).await?;
            let batch = due.len();
            for m in due {
                self.b.blobs.delete(&m.tenant, &m.id).await?;
                if self.b.media.remove_expired(&m.tenant, &m.id, now).await? {
                    removed += 1;
                }
            }
            if batch < EXPIRE_BATCH {
                return Ok(removed);
            }
        }
    }

    /// Checks an upload URL the gateway serves before its body is read: the
    /// signature, that the upload is still pending and in time, and the
    /// content type. Returns the size the body must have, so the door reads no
    /// more than that.
    pub async fn upload_target(
        &self,
        path: &str,
        query: &str,
        content_type: Option<&str>,
    ) -> Result<u64> {
        Ok(self.pending_upload(path, query, content_type).await?.2)
    }

    /// What [`Caas::upload_target`] checks; the upload's tenant, id and size.
    async fn pending_upload(
        &self,
        path: &str,
        query: &str,
        content_type: Option<&str>,
    ) -> Result<(TenantId, BlobId, u64)> {
        let now = self.now();
        let (tenant, id) = self.b.blobs.verify_url(UrlMethod::Put, path, query, now)?;
        self.active_tenant(&tenant, now).await?;
        let m = self
            .b
            .media
            .get(&tenant, &id)
            .await?
            .filter(|m| m.expires_at > now)
            .ok_or_else(|| Error::not_found(EntityKind::Blob, &id))?;
        if m.is_complete() {
            return Err(Error::conflict(
                "the upload is complete; its bytes are final",
            ));
        }
        if content_type != Some(m.content_type.as_str()) {
            return Err(Error::invalid(
                "content-type",
                format!("must be the announced `{}`", m.content_type),
            ));
        }
        Ok((tenant, id, m.size))
    }

    /// Stores bytes PUT to an upload URL the gateway serves: everything
    /// [`Caas::upload_target`] checks, and the body exactly the announced size.
    /// Bytes of a completed upload cannot be replaced.
    pub async fn put_by_url(
        &self,
        path: &str,
        query: &str,
        content_type: Option<&str>,
        bytes: Vec<u8>,
    ) -> Result<BlobMeta> {
        let (tenant, id, size) = self.pending_upload(path, query, content_type).await?;
        let got = bytes.len() as u64;
        if got > size {
            return Err(Error::PayloadTooLarge {
                field: "body".into(),
                size: bytes.len(),
                limit: usize::try_from(size).unwrap_or(usize::MAX),
            });
        }
        if got != size {
            return Err(Error::invalid(
                "body",
                format!("{got} bytes, not the announced {size}"),
            ));
        }
        let content_type = content_type.unwrap_or_default();
        let meta = self
            .b
            .blobs
            .put(&tenant, &id, content_type, bytes, self.now())
            .await?;
        // Deleted or swept while the bytes arrived: drop them, or nothing would.
        if self.b.media.get(&tenant, &id).await?.is_none() {
            self.b.blobs.delete(&tenant, &id).await?;
            return Err(Error::not_found(EntityKind::Blob, &id));
        }
        Ok(meta)
    }

    /// The bytes behind a download URL the gateway serves, while the upload
    /// exists and is complete.
    pub async fn get_by_url(&self, path: &str, query: &str) -> Result<(BlobMeta, Vec<u8>)> {
        let now = self.now();
        let (tenant, id) = self.b.blobs.verify_url(UrlMethod::Get, path, query, now)?;
        self.active_tenant(&tenant, now).await?;
        let m = self
            .b
            .media
            .get(&tenant, &id)
            .await?
            .filter(Media::is_complete)
            .ok_or_else(|| Error::not_found(EntityKind::Blob, &id))?;
        let (meta, bytes) = self
            .b
            .blobs
            .get(&tenant, &id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Blob, &id))?;
        if m.sha256.as_ref() != Some(&meta.sha256) {
            return Err(Error::internal(format!(
                "blob `{id}` no longer holds the bytes its upload completed with"
            )));
        }
        Ok((meta, bytes))
    }

    /// Checks a message's attachments: each names a completed upload the sender
    /// may use (theirs, or shared in a conversation they are a member of), and
    /// takes its type and size from the record. Returns the uploads from
    /// elsewhere, to [`Caas::share_attachments`] once the message is stored.
    pub(super) async fn check_attachments(
        &self,
        ctx: &Ctx<'_>,
        conversation: &ConversationId,
        attachments: &mut [Attachment],
    ) -> Result<Vec<BlobId>> {
        let mut foreign = Vec::new();
        let Some(sender) = ctx.p.user.as_ref() else {
            return Ok(foreign);
        };
        for (i, a) in attachments.iter_mut().enumerate() {
            let field = || format!("attachments[{i}].blob_id");
            let m = self
                .b
                .media
                .get(&ctx.tenant, &a.blob_id)
                .await?
                .filter(Media::is_complete)
                .ok_or_else(|| Error::invalid(field(), "not a completed upload"))?;
            let usable = &m.owner == sender
                || m.conversations().any(|c| c == conversation)
                || self
                    .membership_of_any(&ctx.tenant, &m, sender)
                    .await?
                    .is_some();
            if !usable {
                return Err(Error::invalid(field(), "not an upload the sender may use"));
            }
            a.content_type.clone_from(&m.content_type);
            a.size = m.size;
            if a.name.is_none() {
                a.name.clone_from(&m.name);
            }
            if m.conversations().all(|c| c != conversation) {
                foreign.push(m.id);
            }
        }
        Ok(foreign)
    }

    /// Shares uploads into the conversation a stored message carries them to,
    /// so its members can download them.
    pub(super) async fn share_attachments(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        blobs: &[BlobId],
    ) -> Result<()> {
        for blob in blobs {
            self.b.media.share(tenant, blob, conversation).await?;
        }
        Ok(())
    }

    /// The user's active membership in one of the conversations an upload
    /// was shared in, if any.
    async fn membership_of_any(
        &self,
        tenant: &TenantId,
        m: &Media,
        user: &UserId,
    ) -> Result<Option<crate::model::Member>> {
        for c in m.conversations() {
            if let Some(member) = self.b.conversations.member(tenant, c, user).await?
                && !member.banned
            {
                return Ok(Some(member));
            }
        }
        Ok(None)
    }

    /// Refuses URL requests for a tenant that no longer exists or is suspended.
    async fn active_tenant(&self, tenant: &TenantId, now: Timestamp) -> Result<()> {
        let rt = self.runtime(tenant, now).await?;
        if rt.tenant.status == TenantStatus::Suspended {
            return Err(Error::forbidden("tenant-suspended"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_checked_and_matched() {
        assert_eq!(media_type("f", "Image/PNG; name=x").unwrap(), "image/png");
        for bad in [
            "",
            "image",
            "/png",
            "image/",
            "ima ge/png",
            "image/p\u{0}ng",
        ] {
            assert!(media_type("f", bad).is_err(), "{bad:?}");
        }
        let any = MediaSettings::default();
        assert!(accepted(&any, "application/x-anything"));
        let images = MediaSettings {
            max_bytes: None,
            content_types: vec!["image/*".into(), "application/PDF".into()],
        };
        assert!(accepted(&images, "image/png"));
        assert!(accepted(&images, "application/pdf"));
        assert!(!accepted(&images, "imagex/png"));
        assert!(!accepted(&images, "text/plain"));
    }

    #[test]
    fn settings_are_checked() {
        let ok = MediaSettings {
            max_bytes: Some(1),
            content_types: vec!["image/*".into(), "video/mp4".into()],
        };
        assert!(check_media_settings(&ok).is_ok());
        for bad in ["*/*", "image", "image/", "im age/*", "/x"] {
            let s = MediaSettings {
                max_bytes: None,
                content_types: vec![bad.into()],
            };
            assert!(check_media_settings(&s).is_err(), "{bad:?}");
        }
        let zero = MediaSettings {
            max_bytes: Some(0),
            content_types: vec![],
        };
        assert!(check_media_settings(&zero).is_err());
    }

    #[test]
    fn checksums_are_hex() {
        assert_eq!(checksum(&"AB".repeat(32)).unwrap(), "ab".repeat(32));
        assert!(checksum("ab").is_err());
        assert!(checksum(&"zz".repeat(32)).is_err());
    }
}
