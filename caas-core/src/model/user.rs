use serde::{Deserialize, Serialize};

use super::Attributes;
use crate::ids::{TenantId, UserId};
use crate::time::Timestamp;

/// A user of a tenant, created by the tenant server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// The tenant.
    pub tenant: TenantId,
    /// The id, chosen by the host application.
    pub id: UserId,
    /// Display name.
    pub name: String,
    /// Attributes for policies and search.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: Attributes,
    /// When it was first created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}
