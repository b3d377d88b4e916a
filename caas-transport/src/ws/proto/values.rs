//! Domain values that requests and events both carry: enums, attachments,
//! ciphertexts, attributes.

use caas_core::model;

use super::{id, pb};

/// Attributes travel as JSON text, empty for none.
pub(super) fn attributes_to(a: &model::Attributes) -> String {
    if a.is_empty() {
        String::new()
    } else {
        serde_json::to_string(a).unwrap_or_default()
    }
}

pub(super) fn attributes_from(s: &str) -> Result<model::Attributes, String> {
    if s.is_empty() {
        return Ok(model::Attributes::new());
    }
    serde_json::from_str(s).map_err(|e| format!("attributes_json: {e}"))
}

pub(super) fn presence_to(s: model::PresenceStatus) -> pb::PresenceStatus {
    match s {
        model::PresenceStatus::Offline => pb::PresenceStatus::Offline,
        model::PresenceStatus::Away => pb::PresenceStatus::Away,
        model::PresenceStatus::Online => pb::PresenceStatus::Online,
    }
}

/// `None` for `UNSPECIFIED` (an ack without a status) and for unknown values.
pub(super) fn presence_from(v: i32) -> Option<model::PresenceStatus> {
    match pb::PresenceStatus::try_from(v).ok()? {
        pb::PresenceStatus::Offline => Some(model::PresenceStatus::Offline),
        pb::PresenceStatus::Away => Some(model::PresenceStatus::Away),
        pb::PresenceStatus::Online => Some(model::PresenceStatus::Online),
        pb::PresenceStatus::Unspecified => None,
    }
}

/// A presence status that must be there (requests, events).
pub(super) fn required_presence(v: i32) -> Result<model::PresenceStatus, String> {
    presence_from(v).ok_or_else(|| format!("status: unknown presence status {v}"))
}

pub(super) fn receipt_to(k: model::ReceiptKind) -> pb::ReceiptKind {
    match k {
        model::ReceiptKind::Delivered => pb::ReceiptKind::Delivered,
        model::ReceiptKind::Read => pb::ReceiptKind::Read,
    }
}

pub(super) fn receipt_from(v: i32) -> Result<model::ReceiptKind, String> {
    match pb::ReceiptKind::try_from(v) {
        Ok(pb::ReceiptKind::Delivered) => Ok(model::ReceiptKind::Delivered),
        Ok(pb::ReceiptKind::Read) => Ok(model::ReceiptKind::Read),
        _ => Err(format!("receipt: unknown kind {v}")),
    }
}

pub(super) fn kind_to(k: model::ConversationKind) -> pb::ConversationKind {
    match k {
        model::ConversationKind::Direct => pb::ConversationKind::Direct,
        model::ConversationKind::Group => pb::ConversationKind::Group,
        model::ConversationKind::Channel => pb::ConversationKind::Channel,
    }
}

pub(super) fn kind_from(v: i32) -> Result<model::ConversationKind, String> {
    match pb::ConversationKind::try_from(v) {
        Ok(pb::ConversationKind::Direct) => Ok(model::ConversationKind::Direct),
        Ok(pb::ConversationKind::Group) => Ok(model::ConversationKind::Group),
        Ok(pb::ConversationKind::Channel) => Ok(model::ConversationKind::Channel),
        _ => Err(format!("kind: unknown conversation kind {v}")),
    }
}

pub(super) fn role_to(r: model::Role) -> pb::Role {
    match r {
        model::Role::Owner => pb::Role::Owner,
        model::Role::Admin => pb::Role::Admin,
        model::Role::Moderator => pb::Role::Moderator,
        model::Role::Member => pb::Role::Member,
    }
}

pub(super) fn role_from(v: i32) -> Result<model::Role, String> {
    match pb::Role::try_from(v) {
        Ok(pb::Role::Owner) => Ok(model::Role::Owner),
        Ok(pb::Role::Admin) => Ok(model::Role::Admin),
        Ok(pb::Role::Moderator) => Ok(model::Role::Moderator),
        Ok(pb::Role::Member) => Ok(model::Role::Member),
        _ => Err(format!("role: unknown role {v}")),
    }
}

pub(super) fn tenant_status_to(s: model::TenantStatus) -> pb::TenantStatus {
    match s {
        model::TenantStatus::Active => pb::TenantStatus::Active,
        model::TenantStatus::Suspended => pb::TenantStatus::Suspended,
    }
}

pub(super) fn tenant_status_from(v: i32) -> Result<model::TenantStatus, String> {
    match pb::TenantStatus::try_from(v) {
        Ok(pb::TenantStatus::Active) => Ok(model::TenantStatus::Active),
        Ok(pb::TenantStatus::Suspended) => Ok(model::TenantStatus::Suspended),
        _ => Err(format!("status: unknown tenant status {v}")),
    }
}

pub(super) fn ciphertext_to(c: &model::Ciphertext) -> pb::Ciphertext {
    pb::Ciphertext {
        algorithm: c.algorithm.clone(),
        data: c.data.clone(),
    }
}

pub(super) fn ciphertext_from(c: pb::Ciphertext) -> model::Ciphertext {
    model::Ciphertext {
        algorithm: c.algorithm,
        data: c.data,
    }
}

pub(super) fn attachment_to(a: &model::Attachment) -> pb::Attachment {
    pb::Attachment {
        blob_id: a.blob_id.to_string(),
        content_type: a.content_type.clone(),
        size: a.size,
        name: a.name.clone(),
    }
}

pub(super) fn attachment_from(a: pb::Attachment) -> Result<model::Attachment, String> {
    Ok(model::Attachment {
        blob_id: id(&a.blob_id)?,
        content_type: a.content_type,
        size: a.size,
        name: a.name,
    })
}
