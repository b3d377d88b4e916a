//! The one error type of caas-core. Every kind maps to exactly one `api.md` code
//! ([`Error::code`]), so the transport translates errors in one place.

use std::time::Duration;

/// What kind of thing was not found, for [`Error::NotFound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntityKind {
    /// A tenant.
    Tenant,
    /// A user.
    User,
    /// A conversation.
    Conversation,
    /// A member of a conversation.
    Member,
    /// A message.
    Message,
    /// A blob.
    Blob,
    /// A device's key bundle.
    DeviceKeys,
    /// A webhook endpoint.
    Webhook,
    /// A webhook dead letter.
    DeadLetter,
    /// A data export job.
    Export,
}

impl std::fmt::Display for EntityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EntityKind::Tenant => "tenant",
            EntityKind::User => "user",
            EntityKind::Conversation => "conversation",
            EntityKind::Member => "member",
            EntityKind::Message => "message",
            EntityKind::Blob => "blob",
            EntityKind::DeviceKeys => "device keys",
            EntityKind::Webhook => "webhook",
            EntityKind::DeadLetter => "dead letter",
            EntityKind::Export => "export",
        })
    }
}

/// A boxed underlying cause, kept for logs; never shown to API callers.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in caas-core and in the backends of its ports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller is not who it claims, or presented no credential.
    #[error("unauthenticated: {reason}")]
    Unauthenticated {
        /// Why.
        reason: String,
    },
    /// A policy denied the operation; `rule` is the id of the rule that decided.
    #[error("forbidden by rule `{rule}`")]
    Forbidden {
        /// The deciding rule (`default-deny` when no rule allowed it).
        rule: String,
    },
    /// The entity does not exist in the caller's tenant.
    #[error("{kind} `{id}` not found")]
    NotFound {
        /// What was looked for.
        kind: EntityKind,
        /// Its id.
        id: String,
    },
    /// The input breaks a rule; `field` names the part at fault.
    #[error("invalid `{field}`: {reason}")]
    InvalidArgument {
        /// The field (or path, such as `rules[2].actions[0]`) at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The operation conflicts with the current state (already exists, immutable).
    #[error("conflict: {reason}")]
    Conflict {
        /// Why.
        reason: String,
    },
    /// The input is larger than the configured limit.
    #[error("`{field}` is {size} bytes, over the limit of {limit}")]
    PayloadTooLarge {
        /// What was too large.
        field: String,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A rate limit was hit; retry after the given time.
    #[error("rate limited on `{action}`; retry after {retry_after:?}")]
    RateLimited {
        /// The limited action.
        action: String,
        /// How long until a retry can succeed.
        retry_after: Duration,
    },
    /// A quota (not a rate) was exhausted.
    #[error("quota exceeded: {quota}")]
    QuotaExceeded {
        /// Which quota.
        quota: String,
    },
    /// A backend is unreachable or overloaded.
    #[error("{backend} unavailable: {context}")]
    Unavailable {
        /// The backend (`sqlite`, `redis`, …).
        backend: &'static str,
        /// What was being done.
        context: String,
        /// Whether retrying may succeed.
        temporary: bool,
        /// The underlying cause.
        #[source]
        source: Option<Source>,
    },
    /// A bug or an unexpected backend answer (corrupt data, invariant broken).
    #[error("internal error: {context}")]
    Internal {
        /// What was being done.
        context: String,
        /// The underlying cause.
        #[source]
        source: Option<Source>,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::NotFound`].
    pub fn not_found(kind: EntityKind, id: impl std::fmt::Display) -> Self {
        Error::NotFound {
            kind,
            id: id.to_string(),
        }
    }

    /// An [`Error::Conflict`].
    pub fn conflict(reason: impl Into<String>) -> Self {
        Error::Conflict {
            reason: reason.into(),
        }
    }

    /// An [`Error::Forbidden`] naming its rule.
    pub fn forbidden(rule: impl Into<String>) -> Self {
        Error::Forbidden { rule: rule.into() }
    }

    /// An [`Error::Internal`] without a source.
    pub fn internal(context: impl Into<String>) -> Self {
        Error::Internal {
            context: context.into(),
            source: None,
        }
    }

    /// An [`Error::Unavailable`] with its cause.
    pub fn unavailable(
        backend: &'static str,
        context: impl Into<String>,
        temporary: bool,
        source: impl Into<Source>,
    ) -> Self {
        Error::Unavailable {
            backend,
            context: context.into(),
            temporary,
            source: Some(source.into()),
        }
    }

    /// The `api.md` error code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthenticated { .. } => "unauthenticated",
            Error::Forbidden { .. } => "forbidden",
            Error::NotFound { .. } => "not_found",
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::Conflict { .. } => "conflict",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::RateLimited { .. } => "rate_limited",
            Error::QuotaExceeded { .. } => "quota_exceeded",
            Error::Unavailable { .. } => "unavailable",
            Error::Internal { .. } => "internal",
        }
    }

    /// The HTTP status that goes with [`Error::code`].
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Unauthenticated { .. } => 401,
            Error::Forbidden { .. } => 403,
            Error::NotFound { .. } => 404,
            Error::InvalidArgument { .. } => 400,
            Error::Conflict { .. } => 409,
            Error::PayloadTooLarge { .. } => 413,
            Error::RateLimited { .. } | Error::QuotaExceeded { .. } => 429,
            Error::Unavailable { .. } => 503,
            Error::Internal { .. } => 500,
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::RateLimited { .. }
                | Error::Unavailable {
                    temporary: true,
                    ..
                }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_api_code_and_status() {
        let cases: Vec<(Error, &str, u16)> = vec![
            (
                Error::Unauthenticated { reason: "x".into() },
                "unauthenticated",
                401,
            ),
            (Error::forbidden("r"), "forbidden", 403),
            (Error::not_found(EntityKind::User, "u"), "not_found", 404),
            (Error::invalid("f", "r"), "invalid_argument", 400),
            (Error::conflict("c"), "conflict", 409),
            (
                Error::PayloadTooLarge {
                    field: "body".into(),
                    size: 2,
                    limit: 1,
                },
                "payload_too_large",
                413,
            ),
            (
                Error::RateLimited {
                    action: "a".into(),
                    retry_after: Duration::from_secs(1),
                },
                "rate_limited",
                429,
            ),
            (
                Error::QuotaExceeded { quota: "q".into() },
                "quota_exceeded",
                429,
            ),
            (
                Error::unavailable("x", "c", true, Error::internal("y")),
                "unavailable",
                503,
            ),
            (Error::internal("i"), "internal", 500),
        ];
        for (e, code, status) in cases {
            assert_eq!(e.code(), code, "{e}");
            assert_eq!(e.http_status(), status, "{e}");
        }
    }
}
