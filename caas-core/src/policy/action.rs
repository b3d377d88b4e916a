use std::fmt;

macro_rules! actions {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// Everything a principal can try to do; policies name these.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Action {
            $($(#[$doc])* $variant,)*
        }

        impl Action {
            /// Every action, in declaration order.
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// How many actions there are.
            pub const COUNT: usize = Self::ALL.len();

            /// The policy name, e.g. `message.send`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)*
                }
            }

            /// The action with this policy name.
            pub fn from_name(name: &str) -> Option<Action> {
                match name {
                    $($name => Some(Action::$variant),)*
                    _ => None,
                }
            }

            pub(crate) fn index(self) -> usize {
                self as usize
            }
        }
    };
}

actions! {
    /// Create a tenant.
    TenantCreate = "tenant.create",
    /// Read a tenant.
    TenantRead = "tenant.read",
    /// Change a tenant's name, settings, limits or policies.
    TenantUpdate = "tenant.update",
    /// Suspend or resume a tenant.
    TenantSuspend = "tenant.suspend",
    /// Rotate a tenant's secret.
    TenantRotateSecret = "tenant.rotate_secret",
    /// Create or update a user.
    UserUpsert = "user.upsert",
    /// Read a user's profile.
    UserRead = "user.read",
    /// Create a conversation.
    ConversationCreate = "conversation.create",
    /// Read a conversation's details and members.
    ConversationRead = "conversation.read",
    /// Change a conversation's name or attributes.
    ConversationUpdate = "conversation.update",
    /// Add a member (or join).
    MemberAdd = "member.add",
    /// Remove a member (or leave).
    MemberRemove = "member.remove",
    /// Change a member's role.
    MemberUpdate = "member.update",
    /// Mute or unmute a member.
    MemberMute = "member.mute",
    /// Ban or unban a member.
    MemberBan = "member.ban",
    /// Send (also reply and the target side of a forward).
    MessageSend = "message.send",
    /// Read history (also the source side of a forward).
    MessageRead = "message.read",
    /// Edit a message.
    MessageEdit = "message.edit",
    /// Delete a message.
    MessageDelete = "message.delete",
    /// React or unreact.
    MessageReact = "message.react",
    /// Pin or unpin.
    MessagePin = "message.pin",
    /// Move a delivered/read watermark.
    ReceiptUpdate = "receipt.update",
    /// Send a typing indicator.
    Typing = "typing",
    /// Report one's own presence.
    PresenceUpdate = "presence.update",
    /// Read others' presence.
    PresenceRead = "presence.read",
    /// Relay a call signal (WebRTC offer/answer/ICE).
    CallSignal = "call.signal",
    /// Search.
    Search = "search",
    /// Upload media into a conversation.
    MediaUpload = "media.upload",
    /// Download media.
    MediaDownload = "media.download",
    /// Delete media.
    MediaDelete = "media.delete",
    /// Report a message to the conversation's moderators.
    MessageFlag = "message.flag",
    /// Review reported messages: list flags, settle them, read edit histories.
    FlagReview = "flag.review",
    /// Publish a device's E2EE keys.
    KeysPublish = "keys.publish",
    /// Claim another user's key bundles.
    KeysClaim = "keys.claim",
    /// Read the audit log.
    AuditRead = "audit.read",
    /// Export a user's data (GDPR).
    ComplianceExport = "compliance.export",
    /// Erase a user's data (GDPR).
    ComplianceErase = "compliance.erase",
    /// Read usage meters.
    UsageRead = "usage.read",
    /// Register, change, remove and read webhook endpoints; replay their dead
    /// letters.
    WebhookManage = "webhook.manage",
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for (i, a) in Action::ALL.iter().enumerate() {
            assert_eq!(a.index(), i);
            assert_eq!(Action::from_name(a.as_str()), Some(*a));
            assert!(seen.insert(a.as_str()));
        }
        assert_eq!(Action::from_name("message.explode"), None);
    }
}
