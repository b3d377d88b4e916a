use serde::{Deserialize, Serialize};

use crate::ids::UserId;
use crate::time::Timestamp;

/// A presence state. Across a user's devices the most present one wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    /// No live device.
    Offline,
    /// Connected but idle.
    Away,
    /// Active.
    Online,
}

/// A user's aggregated presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Presence {
    /// The user.
    pub user: UserId,
    /// The best status over their unexpired devices.
    pub status: PresenceStatus,
    /// The last time any device reported, if ever.
    pub last_seen: Option<Timestamp>,
}
