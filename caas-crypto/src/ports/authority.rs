//! [`CryptoAuthority`]: tokens, secrets and one-time codes for caas-core.

use std::time::Duration;

use caas_core::ids::{DeviceId, TenantId, UserId};
use caas_core::ports::{AccessClaims, Authority, IssuedSecret};
use caas_core::time::Timestamp;
use caas_core::{Error, Result};

use crate::KeyId;
use crate::jwt::{Claims, KeySet, SigningKey, Validation};
use crate::refresh::RefreshToken;
use crate::secret::{SecretHash, TenantSecret};
use crate::totp::{Totp, TotpAlgorithm};

/// The issuer of access tokens.
pub const ISSUER: &str = "caas";
/// The audience of access tokens: every node of one platform shares it.
pub const AUDIENCE: &str = "caas";
/// Clock skew tolerated on token times, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Signs and verifies access tokens with the platform's Ed25519 key, and
/// recognises the operator key by its hash.
pub struct CryptoAuthority {
    operator: SecretHash,
    signing: SigningKey,
    keys: KeySet,
    validation: Validation,
}

impl std::fmt::Debug for CryptoAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CryptoAuthority").finish_non_exhaustive()
    }
}

fn internal(context: &str, e: crate::Error) -> Error {
    Error::Internal {
        context: format!("credentials: {context}"),
        source: Some(Box::new(e)),
    }
}

fn secs(t: Timestamp) -> i64 {
    i64::try_from(t.as_secs()).unwrap_or(i64::MAX)
}

impl CryptoAuthority {
    /// An authority with the operator key's hash and the platform's Ed25519
    /// signing key (from its 32-byte seed, named `key_id` in tokens).
    pub fn new(
        operator: SecretHash,
        platform_seed: &[u8; 32],
        key_id: &str,
    ) -> crate::Result<Self> {
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
}

impl Authority for CryptoAuthority {
    fn mint_access_token(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: Option<&DeviceId>,
        session: Option<&str>,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<String> {
        let mut claims = Claims::new(
            ISSUER,
            user.as_str(),
            AUDIENCE,
            tenant.as_str(),
            secs(now),
            ttl.as_secs(),
        )
        .map_err(|e| internal("token claims", e))?;
        if let Some(d) = device {
            claims = claims.with_device(d.as_str());
        }
        if let Some(sid) = session {
            claims = claims.with_session(sid);
        }
        self.signing
            .sign_claims(&claims)
            .map_err(|e| internal("sign a token", e))
    }

    fn verify_access_token(&self, token: &str, now: Timestamp) -> Result<AccessClaims> {
        let claims = self
            .keys
            .verify(token, &self.validation, secs(now))
            .map_err(|e| Error::Unauthenticated {
                reason: format!("invalid access token: {e}"),
            })?;
        let bad = |_| Error::Unauthenticated {
            reason: "the token names an invalid tenant, user or device".into(),
        };
        let device = claims
            .device
            .as_deref()
            .map(DeviceId::parse)
            .transpose()
            .map_err(bad)?;
        let valid_until = u64::try_from(claims.exp.saturating_add(LEEWAY_SECS as i64))
            .map(Timestamp::from_secs)
            .unwrap_or(Timestamp::EPOCH);
        Ok(AccessClaims {
            tenant: TenantId::parse(&claims.tenant).map_err(bad)?,
            user: UserId::parse(&claims.sub).map_err(bad)?,
            device,
            scopes: claims.scopes,
            session: claims.sid,
            valid_until,
        })
    }

    fn public_keys(&self) -> Result<String> {
        self.keys
            .jwks()
            .to_json()
            .map_err(|e| internal("encode the JWKS", e))
    }

    fn secret_hash(&self, secret: &str) -> Result<String> {
        TenantSecret::parse(secret)
            .map(|s| s.hash().to_string())
            .map_err(|_| Error::Unauthenticated {
                reason: "malformed secret".into(),
            })
    }

    fn is_operator(&self, hash: &str) -> bool {
        use subtle::ConstantTimeEq;
        let operator = self.operator.to_string();
        operator.len() == hash.len() && bool::from(operator.as_bytes().ct_eq(hash.as_bytes()))
    }

    fn new_tenant_secret(&self) -> Result<IssuedSecret> {
        let secret = TenantSecret::generate().map_err(|e| internal("generate a secret", e))?;
        Ok(IssuedSecret {
            hash: secret.hash().to_string(),
            secret: secret.expose_secret().to_owned(),
        })
    }

    fn new_refresh_token(&self) -> Result<IssuedSecret> {
        let token = RefreshToken::generate().map_err(|e| internal("generate a token", e))?;
        Ok(IssuedSecret {
            hash: token.hash().to_string(),
            secret: token.expose_secret().to_owned(),
        })
    }

    fn new_webhook_secret(&self) -> Result<String> {
        crate::webhook::WebhookSigner::generate_secret()
            .map_err(|e| internal("generate a webhook secret", e))
    }

    fn sign_webhook(&self, secrets: &[&str], timestamp: i64, body: &[u8]) -> Result<String> {
        let signers = secrets
            .iter()
            .map(|s| crate::webhook::WebhookSigner::new(s.as_bytes()))
            .collect::<crate::Result<Vec<_>>>()
            .map_err(|e| internal("load a webhook secret", e))?;
        Ok(crate::webhook::WebhookSigner::sign_all(
            &signers, timestamp, body,
        ))
    }

    fn refresh_token_hash(&self, token: &str) -> Option<String> {
        RefreshToken::parse(token)
            .ok()
            .map(|t| t.hash().to_string())
    }

    fn new_totp(&self, issuer: &str, account: &str) -> Result<(String, String)> {
        let totp = Totp::generate().map_err(|e| internal("generate a TOTP secret", e))?;
        Ok((
            totp.expose_secret_base32(),
            totp.provisioning_uri(issuer, account),
        ))
    }

    fn verify_totp(
        &self,
        secret_base32: &str,
        code: &str,
        now: Timestamp,
        last_step: Option<u64>,
    ) -> Result<Option<u64>> {
        let totp = Totp::from_base32(secret_base32, TotpAlgorithm::Sha1)
            .map_err(|e| internal("stored TOTP secret", e))?;
        Ok(totp.verify(code, secs(now), last_step).ok())
    }
}
