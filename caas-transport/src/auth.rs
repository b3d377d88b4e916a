//! Who is calling: the operator key, a tenant secret or a user's access token,
//! turned into a verified [`Principal`]. The core never sees a credential.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use caas_core::Principal;
use caas_core::ids::{CorrelationId, DeviceId, TenantId, UserId};
use caas_core::time::Timestamp;
use caas_crypto::KeyId;
use caas_crypto::jwt::{Claims, KeySet, SigningKey, Validation};
use caas_crypto::secret::{SecretHash, TenantSecret};

use crate::gateway::AppState;
use crate::problem::ApiError;

/// The issuer and audience of access tokens.
pub const ISSUER: &str = "caas";
/// The audience of access tokens.
pub const AUDIENCE: &str = "caas";
/// Clock skew tolerated on token times, in seconds.
const LEEWAY_SECS: u64 = 30;
/// Longest access-token lifetime a tenant may ask for.
pub const MAX_TOKEN_TTL_SECS: u64 = 24 * 3600;

/// Verifies credentials and mints access tokens.
pub struct Authenticator {
    operator: SecretHash,
    signing: SigningKey,
    keys: KeySet,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator with the operator key's hash and the platform's Ed25519
    /// signing key (from its 32-byte seed).
    pub fn new(
        operator: SecretHash,
        platform_seed: &[u8; 32],
        key_id: &str,
    ) -> Result<Self, ApiError> {
        let signing = SigningKey::ed25519_from_seed(KeyId::new(key_id)?, platform_seed)?;
        let mut keys = KeySet::new();
        keys.insert(signing.verification_key());
        Ok(Self {
            operator,
            signing,
            keys,
            validation: Validation::new(ISSUER, AUDIENCE).with_leeway(LEEWAY_SECS),
        })
    }

    /// The public keys as a JWKS document, for tenant backends to verify tokens.
    pub fn jwks_json(&self) -> Result<String, ApiError> {
        Ok(self.keys.jwks().to_json()?)
    }

    /// Mints an access token for `user` of `tenant`, valid `ttl_secs` from `now`.
    pub fn mint(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: Option<&DeviceId>,
        ttl_secs: u64,
        now: Timestamp,
    ) -> Result<String, ApiError> {
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let mut claims = Claims::new(
            ISSUER,
            user.as_str(),
            AUDIENCE,
            tenant.as_str(),
            now,
            ttl_secs,
        )?;
        if let Some(d) = device {
            claims = claims.with_device(d.as_str());
        }
        Ok(self.signing.sign_claims(&claims)?)
    }

    /// Checks a bearer credential and returns the principal it proves.
    pub async fn authenticate(
        &self,
        state: &AppState,
        bearer: &str,
        correlation: CorrelationId,
    ) -> Result<Principal, ApiError> {
        self.authenticate_with_expiry(state, bearer, correlation)
            .await
            .map(|(p, _)| p)
    }

    /// As [`Authenticator::authenticate`], with the time the credential stops
    /// being accepted (an access token's expiry plus leeway; `None` for secrets),
    /// for long-lived connections that must end when their token does.
    pub async fn authenticate_with_expiry(
        &self,
        state: &AppState,
        bearer: &str,
        correlation: CorrelationId,
    ) -> Result<(Principal, Option<Timestamp>), ApiError> {
        let now = state.caas.backends().clock.now();
        if bearer.starts_with("sk_") {
            let hash = TenantSecret::parse(bearer)
                .map_err(|_| ApiError::unauthenticated("malformed secret"))?
                .hash();
            let hash_text = hash.to_string();
            if hash.ct_eq(&self.operator) {
                return Ok((Principal::operator().with_correlation_id(correlation), None));
            }
            let tenant = state
                .caas
                .backends()
                .tenants
                .find_by_credential(&hash_text)
                .await?
                .ok_or_else(|| ApiError::unauthenticated("unknown secret"))?;
            let live = tenant
                .credentials
                .iter()
                .any(|c| c.hash == hash_text && c.expires_at.is_none_or(|e| e > now));
            if !live {
                return Err(ApiError::unauthenticated("the secret has expired"));
            }
            return Ok((
                Principal::tenant_server(tenant.id).with_correlation_id(correlation),
                None,
            ));
        }
        let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let claims = self
            .keys
            .verify(bearer, &self.validation, secs)
            .map_err(|e| ApiError::unauthenticated(format!("invalid access token: {e}")))?;
        let bad =
            |_| ApiError::unauthenticated("the token names an invalid tenant, user or device");
        let tenant = TenantId::parse(&claims.tenant).map_err(bad)?;
        let user = UserId::parse(&claims.sub).map_err(bad)?;
        let mut p = Principal::user(tenant, user)
            .with_correlation_id(correlation)
            .with_roles(claims.scopes.clone());
        if let Some(d) = &claims.device {
            p = p.with_device(DeviceId::parse(d).map_err(bad)?);
        }
        let until = u64::try_from(claims.exp.saturating_add(LEEWAY_SECS as i64))
            .map(Timestamp::from_secs)
            .unwrap_or(Timestamp::EPOCH);
        Ok((p, Some(until)))
    }
}

/// The request's correlation id, set by the correlation middleware.
#[derive(Debug, Clone)]
pub struct Correlation(pub CorrelationId);

/// Extracts the verified principal of a request (401 without a valid credential).
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let correlation = parts
            .extensions
            .get::<Correlation>()
            .map(|c| c.0.clone())
            .unwrap_or_else(|| CorrelationId::generate(state.caas.backends().clock.now()));
        let bearer = bearer(parts).ok_or_else(|| {
            ApiError::unauthenticated("missing `Authorization: Bearer` credential")
        })?;
        let auth: Arc<Authenticator> = state.auth.clone();
        auth.authenticate(state, bearer, correlation)
            .await
            .map(Auth)
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    bearer_of(&parts.headers)
}

/// The token of an `Authorization: Bearer` header, if there is one.
pub(crate) fn bearer_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
