use serde::{Deserialize, Serialize};

use crate::ids::CorrelationId;
use crate::time::Timestamp;

/// One entry of a tenant's audit log: who did what to what, and why it was allowed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    /// Position in the tenant's log, assigned by the store (0 before appending).
    pub position: u64,
    /// When.
    pub at: Timestamp,
    /// The principal, as `operator`, `tenant` or `user:<id>`.
    pub actor: String,
    /// The action name (as in policies).
    pub action: String,
    /// The target, e.g. `conversation:c_1/member:bob`.
    pub target: String,
    /// The rule that allowed it.
    pub rule: String,
    /// The request.
    pub correlation_id: CorrelationId,
    /// Extra detail.
    pub detail: serde_json::Value,
}
