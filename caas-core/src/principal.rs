//! Who is calling. A [`Principal`] arrives already verified: the transport checks
//! tokens and secrets (with caas-crypto) and the core never parses a credential.

use std::sync::Arc;

use crate::ids::{CorrelationId, DeviceId, TenantId, UserId};
use crate::model::Attributes;
use crate::time::Timestamp;

/// The three kinds of caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// The platform operator: manages tenants, sees no tenant data.
    Operator,
    /// A tenant's server, holding the tenant secret.
    TenantServer,
    /// An end user with an access token.
    User,
}

impl PrincipalKind {
    /// The `subject.kind` value policies see.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Operator => "operator",
            PrincipalKind::TenantServer => "tenant",
            PrincipalKind::User => "user",
        }
    }
}

/// A verified caller and the request's correlation id.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Operator, tenant server or user.
    pub kind: PrincipalKind,
    /// The tenant (absent only for the operator).
    pub tenant: Option<TenantId>,
    /// The user (users only).
    pub user: Option<UserId>,
    /// The device the user is on, if known.
    pub device: Option<DeviceId>,
    /// Extra roles from the credential (token scopes), visible as `subject.roles`.
    pub roles: Arc<[String]>,
    /// Extra attributes from the credential, visible as `subject.attr.*`.
    pub attributes: Attributes,
    /// The id of the request, carried into every event it causes.
    pub correlation_id: CorrelationId,
}

impl Principal {
    fn new(kind: PrincipalKind, tenant: Option<TenantId>, user: Option<UserId>) -> Self {
        Self {
            kind,
            tenant,
            user,
            device: None,
            roles: Arc::from(Vec::new()),
            attributes: Attributes::new(),
            correlation_id: CorrelationId::generate(Timestamp::EPOCH),
        }
    }

    /// The operator.
    pub fn operator() -> Self {
        Self::new(PrincipalKind::Operator, None, None)
    }

    /// A tenant's server.
    pub fn tenant_server(tenant: TenantId) -> Self {
        Self::new(PrincipalKind::TenantServer, Some(tenant), None)
    }

    /// An end user.
    pub fn user(tenant: TenantId, user: UserId) -> Self {
        Self::new(PrincipalKind::User, Some(tenant), Some(user))
    }

    /// With the device the user is on.
    pub fn with_device(mut self, device: DeviceId) -> Self {
        self.device = Some(device);
        self
    }

    /// With the request's correlation id (otherwise a random one).
    pub fn with_correlation_id(mut self, id: CorrelationId) -> Self {
        self.correlation_id = id;
        self
    }

    /// With roles (scopes) from the credential.
    pub fn with_roles(mut self, roles: impl IntoIterator<Item = String>) -> Self {
        self.roles = roles.into_iter().collect();
        self
    }

    /// How the principal appears in audit records: `operator`, `tenant` or `user:<id>`.
    pub fn actor(&self) -> String {
        match (&self.kind, &self.user) {
            (PrincipalKind::User, Some(u)) => format!("user:{u}"),
            (k, _) => k.as_str().to_owned(),
        }
    }
}
