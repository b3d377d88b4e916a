use serde::{Deserialize, Serialize};

use super::Attributes;
use crate::ids::{ConversationId, TenantId, UserId};
use crate::time::Timestamp;

/// The three shapes of conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// Exactly two users; one per pair (creating it again returns the existing one).
    Direct,
    /// Many users, all of whom may post.
    Group,
    /// Broadcast: moderators and above post, members read. With the attribute
    /// `public: true`, users may join by themselves.
    Channel,
}

impl ConversationKind {
    /// The name used in policies and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationKind::Direct => "direct",
            ConversationKind::Group => "group",
            ConversationKind::Channel => "channel",
        }
    }
}

/// A conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conversation {
    /// The tenant.
    pub tenant: TenantId,
    /// The id.
    pub id: ConversationId,
    /// Direct, group or channel.
    pub kind: ConversationKind,
    /// Display name (groups and channels).
    pub name: Option<String>,
    /// Attributes for policies and search.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: Attributes,
    /// Who created it (`None` when the tenant server did).
    pub created_by: Option<UserId>,
    /// For direct conversations, the key of the pair (`min|max` of the two user ids)
    /// that stores keep unique per tenant.
    pub direct_key: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
}

impl Conversation {
    /// The unique key of a direct conversation between `a` and `b`, in either order.
    pub fn direct_key_of(a: &UserId, b: &UserId) -> String {
        let (x, y) = if a <= b { (a, b) } else { (b, a) };
        format!("{x}|{y}")
    }
}

/// A member's role, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Created the conversation; cannot be removed by others.
    Owner,
    /// Manages members and roles below admin.
    Admin,
    /// Mutes, deletes others' messages, pins.
    Moderator,
    /// Reads and (unless muted, or in a channel) posts.
    Member,
}

impl Role {
    /// The name used in policies and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Moderator => "moderator",
            Role::Member => "member",
        }
    }

    /// Power rank: owner 3, admin 2, moderator 1, member 0.
    pub fn rank(self) -> i64 {
        match self {
            Role::Owner => 3,
            Role::Admin => 2,
            Role::Moderator => 1,
            Role::Member => 0,
        }
    }
}

/// A user's membership of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    /// The conversation.
    pub conversation: ConversationId,
    /// The user.
    pub user: UserId,
    /// Their role.
    pub role: Role,
    /// Muted members read but do not post or react.
    pub muted: bool,
    /// Banned members keep this record (so they cannot rejoin) but see nothing.
    pub banned: bool,
    /// When they joined.
    pub joined_at: Timestamp,
}

impl Member {
    /// A plain member joining now.
    pub fn new(conversation: ConversationId, user: UserId, role: Role, at: Timestamp) -> Self {
        Self {
            conversation,
            user,
            role,
            muted: false,
            banned: false,
            joined_at: at,
        }
    }

    /// Whether this member currently sees the conversation.
    pub fn is_active(&self) -> bool {
        !self.banned
    }
}
