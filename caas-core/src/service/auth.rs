//! Who is calling, and password auth: bearer credentials turned into a
//! [`Principal`], access tokens minted for a tenant's users, and, for tenants that
//! enable it, registration, login with an optional TOTP second factor, refresh
//! rotation with reuse detection, and logout. The cryptography sits behind the
//! [`Authority`] and [`PasswordHasher`] ports; the rules are here.
//!
//! A refresh token is exchanged once; presenting an already exchanged token means
//! it was copied, so its whole family (every token descended from that login) is
//! revoked and both holders must log in again.
//!
//! Access tokens of a password session name its family (`sid`); logout and reuse
//! detection record the family in [`crate::ports::Revocations`], and
//! [`Caas::authenticate`] refuses such tokens from then on, on every node sharing
//! that store, instead of accepting them until they expire.

use std::sync::Arc;
use std::time::Duration;

use super::Caas;
use crate::error::{EntityKind, Error, Result};
use crate::ids::{CorrelationId, DeviceId, TenantId, UserId};
use crate::model::{TenantStatus, User};
use crate::ports::{
    Authority, PasswordCheck, PasswordHasher, PasswordLogin, RefreshSession, SessionStatus,
    TotpFactor,
};
use crate::principal::{Principal, PrincipalKind};
use crate::ratelimit::{Decision, Quota, RateKey};
use crate::time::Timestamp;

/// Access tokens from password logins last 15 minutes.
pub const SESSION_ACCESS_TTL: Duration = Duration::from_secs(900);
/// Refresh tokens last 30 days.
pub const REFRESH_TTL: Duration = Duration::from_secs(30 * 86_400);
/// Longest access-token lifetime a tenant server may ask for.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a revocation outlives the last access token of its session: more
/// than any authority's tolerated clock skew on `exp`, so a token is never
/// accepted again after its revocation is forgotten.
pub const REVOCATION_MARGIN: Duration = Duration::from_secs(300);
/// Longest password accepted: bounds the hashing work an attacker can ask for.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Password attempts per user per minute (login and TOTP enrolment share it).
const PASSWORD_ATTEMPTS_PER_MINUTE: u32 = 10;
/// The issuer named in TOTP provisioning URIs.
const TOTP_ISSUER: &str = "caas";
const INVALID_LOGIN: &str = "unknown user or wrong password";
/// Checked against for unknown users, so a login for one costs the same hashing
/// work as a wrong password and timing does not reveal which users exist.
const DUMMY_PASSWORD: &str = "no such user, no such password";

/// The two ports auth needs, installed with [`Caas::with_auth`].
#[derive(Debug, Clone)]
pub(super) struct AuthPorts {
    pub(super) authority: Arc<dyn Authority>,
    pub(super) passwords: Arc<dyn PasswordHasher>,
    /// The hash [`DUMMY_PASSWORD`] is checked against, made on first need.
    pub(super) dummy: Arc<std::sync::OnceLock<String>>,
}

/// A verified bearer credential.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Who it proves.
    pub principal: Principal,
    /// When it stops being accepted (access tokens; `None` for secrets), for
    /// long-lived connections that must end when their token does.
    pub valid_until: Option<Timestamp>,
}

/// An access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The token.
    pub access_token: String,
    /// When it expires.
    pub expires_at: Timestamp,
}

/// The tokens of a password session.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionTokens {
    /// A short-lived access token.
    pub access: AccessToken,
    /// The refresh token, exchanged once for the next pair.
    pub refresh_token: String,
    /// When the refresh token expires.
    pub refresh_expires_at: Timestamp,
}

impl std::fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTokens")
            .field("expires_at", &self.access.expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish_non_exhaustive()
    }
}

/// A TOTP factor waiting for its first code.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    /// The shared secret (base32), for manual entry.
    pub secret: String,
    /// The `otpauth://` URI, for a QR code.
    pub otpauth_uri: String,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrolment { .. }")
    }
}

/// A tenant secret made now: shown once, only its hash is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct NewTenantSecret {
    /// The secret (`sk_…`).
    pub secret: String,
    /// Its short public id.
    pub key_id: String,
}

impl std::fmt::Debug for NewTenantSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewTenantSecret")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

fn unavailable_auth() -> Error {
    Error::Unavailable {
        backend: "auth",
        context: "no credential authority is installed (Caas::with_auth)".into(),
        temporary: false,
        source: None,
    }
}

impl Caas {
    /// Installs the cryptography of credentials: without it, the operations of
    /// this module answer [`Error::Unavailable`] (an embedding host that makes
    /// its own principals needs none).
    pub fn with_auth(
        mut self,
        authority: Arc<dyn Authority>,
        passwords: Arc<dyn PasswordHasher>,
    ) -> Self {
        self.auth = Some(AuthPorts {
            authority,
            passwords,
            dummy: Arc::default(),
        });
        self
    }

    pub(super) fn auth_ports(&self) -> Result<&AuthPorts> {
        self.auth.as_ref().ok_or_else(unavailable_auth)
    }

    /// The public keys that verify access tokens (a JWKS document), for tenant
    /// backends that verify tokens themselves.
    pub fn public_keys(&self) -> Result<String> {
        self.auth_ports()?.authority.public_keys()
    }

    /// Turns a bearer credential into the principal it proves: the operator key
    /// or a live tenant secret (`sk_…`), or an access token. It does not check
    /// that the tenant is active or the user exists: every operation does
    /// ([`Caas::verify_principal`] for sessions opened before one).
    pub async fn authenticate(
        &self,
        bearer: &str,
        correlation: CorrelationId,
    ) -> Result<Authenticated> {
        let authority = &self.auth_ports()?.authority;
        let now = self.now();
        if bearer.starts_with("sk_") {
            let hash = authority.secret_hash(bearer)?;
            if authority.is_operator(&hash) {
                return Ok(Authenticated {
                    principal: Principal::operator().with_correlation_id(correlation),
                    valid_until: None,
                });
            }
            let tenant = self
                .b
                .tenants
                .find_by_credential(&hash)
                .await?
                .ok_or_else(|| Error::Unauthenticated {
                    reason: "unknown secret".into(),
                })?;
            let live = tenant
                .credentials
                .iter()
                .any(|c| c.hash == hash && c.expires_at.is_none_or(|e| e > now));
            if !live {
                return Err(Error::Unauthenticated {
                    reason: "the secret has expired".into(),
                });
            }
            return Ok(Authenticated {
                principal: Principal::tenant_server(tenant.id).with_correlation_id(correlation),
                valid_until: None,
            });
        }
        let claims = authority.verify_access_token(bearer, now)?;
        if let Some(session) = &claims.session
            && self
                .b
                .revocations
                .is_revoked(&claims.tenant, session, now)
                .await?
        {
            return Err(Error::Unauthenticated {
                reason: "the session of this token was revoked (logout or refresh-token reuse)"
                    .into(),
            });
        }
        let mut principal = Principal::user(claims.tenant, claims.user)
            .with_correlation_id(correlation)
            .with_roles(claims.scopes);
        if let Some(d) = claims.device {
            principal = principal.with_device(d);
        }
        Ok(Authenticated {
            principal,
            valid_until: Some(claims.valid_until),
        })
    }

    /// Mints an access token for `user` of the caller's tenant, valid `ttl` (1 s
    /// to [`MAX_TOKEN_TTL`]). A tenant-server act: the user must exist, and the
    /// policy decides as for any other read of the user.
    pub async fn mint_token(
        &self,
        p: &Principal,
        user: &UserId,
        device: Option<&DeviceId>,
        ttl: Duration,
    ) -> Result<AccessToken> {
        let authority = &self.auth_ports()?.authority;
        if ttl.is_zero() || ttl > MAX_TOKEN_TTL {
            return Err(Error::invalid(
                "ttl_s",
                format!("must be 1 to {}", MAX_TOKEN_TTL.as_secs()),
            ));
        }
        let tenant = match (&p.kind, &p.tenant) {
            (PrincipalKind::TenantServer, Some(t)) => t.clone(),
            _ => return Err(Error::forbidden(crate::policy::DEFAULT_DENY)),
        };
        self.get_user(p, user).await?;
        let now = self.now();
        Ok(AccessToken {
            access_token: authority.mint_access_token(&tenant, user, device, None, ttl, now)?,
            expires_at: now.plus(ttl),
        })
    }

    /// A fresh secret for the tenant, replacing the current one after `grace`
    /// (the old one stays valid until then). The operator, or the tenant itself.
    pub async fn issue_tenant_secret(
        &self,
        p: &Principal,
        tenant: &TenantId,
        grace: Duration,
    ) -> Result<NewTenantSecret> {
        let issued = self.auth_ports()?.authority.new_tenant_secret()?;
        let key_id = format!("key_{}", issued.hash.get(..8).unwrap_or(&issued.hash));
        let credential = crate::model::TenantCredential {
            key_id: key_id.clone(),
            hash: issued.hash,
            created_at: self.now(),
            expires_at: None,
        };
        self.rotate_tenant_credential(p, tenant, credential, grace)
            .await?;
        Ok(NewTenantSecret {
            secret: issued.secret,
            key_id,
        })
    }

    /// The tenant, which must exist, be active and have password auth on.
    async fn password_tenant(&self, tenant: &TenantId) -> Result<()> {
        let t = self
            .b
            .tenants
            .get(tenant)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Tenant, tenant))?;
        if t.status == TenantStatus::Suspended {
            return Err(Error::forbidden("tenant-suspended"));
        }
        if !t.settings.password_auth {
            return Err(Error::forbidden("password-auth-disabled"));
        }
        Ok(())
    }

    /// Registers a user with a password, when the tenant enables it. A user the
    /// tenant already has is never taken over (conflict).
    pub async fn register(
        &self,
        tenant: &TenantId,
        user: &UserId,
        password: &str,
        name: Option<&str>,
    ) -> Result<User> {
        let ports = self.auth_ports()?;
        self.password_tenant(tenant).await?;
        check_password(password)?;
        if self.b.users.get(tenant, user).await?.is_some() {
            return Err(Error::conflict(format!("user `{user}` exists")));
        }
        let phc = ports.passwords.hash(password).await?;
        let login = PasswordLogin {
            tenant: tenant.clone(),
            user: user.clone(),
            phc,
            totp: None,
            updated_at: self.now(),
        };
        self.b.credentials.create_login(&login).await?;
        let server = Principal::tenant_server(tenant.clone());
        self.upsert_user(
            &server,
            user,
            name.unwrap_or(user.as_str()),
            Default::default(),
        )
        .await
    }

    /// Spends one of `user`'s password attempts (a per-user budget) and refuses a
    /// password too long to hash; every path that checks a password goes
    /// through it, so none is a cheaper way to guess.
    async fn password_attempt(
        &self,
        tenant: &TenantId,
        user: &UserId,
        password: &str,
    ) -> Result<()> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::PayloadTooLarge {
                field: "password".into(),
                size: password.len(),
                limit: MAX_PASSWORD_BYTES,
            });
        }
        let key = RateKey::new(tenant, user.shared(), "auth.login");
        let quota = Quota::per_minute(PASSWORD_ATTEMPTS_PER_MINUTE);
        match self.b.rate_limits.check(&key, &quota, self.now()).await? {
            Decision::Deny { retry_after } => Err(Error::RateLimited {
                action: "auth.login".into(),
                retry_after,
            }),
            Decision::Allow { .. } => Ok(()),
        }
    }

    async fn dummy_phc(&self, ports: &AuthPorts) -> Result<String> {
        if let Some(p) = ports.dummy.get() {
            return Ok(p.clone());
        }
        let p = ports.passwords.hash(DUMMY_PASSWORD).await?;
        Ok(ports.dummy.get_or_init(|| p).clone())
    }

    /// Logs in with a password (and a TOTP code once a factor is confirmed):
    /// a new session.
    pub async fn login(
        &self,
        tenant: &TenantId,
        user: &UserId,
        password: &str,
        totp_code: Option<&str>,
        device: Option<DeviceId>,
    ) -> Result<SessionTokens> {
        let ports = self.auth_ports()?;
        self.password_tenant(tenant).await?;
        self.password_attempt(tenant, user, password).await?;
        let stored = self.b.credentials.login(tenant, user).await?;
        let phc = match &stored {
            Some(l) => l.phc.clone(),
            None => self.dummy_phc(ports).await?,
        };
        let check = ports.passwords.verify(password, &phc).await?;
        let (Some(mut login), true) = (stored, check != PasswordCheck::Wrong) else {
            return Err(Error::Unauthenticated {
                reason: INVALID_LOGIN.into(),
            });
        };
        let now = self.now();
        let mut changed = false;
        if let PasswordCheck::Rehashed(phc) = check {
            login.phc = phc;
            changed = true;
        }
        if let Some(factor) = login.totp.as_mut().filter(|f| f.confirmed) {
            let code = totp_code.ok_or_else(|| Error::Unauthenticated {
                reason: "a TOTP code is required".into(),
            })?;
            let step = ports
                .authority
                .verify_totp(&factor.secret_base32, code, now, factor.last_step)?
                .ok_or_else(|| Error::Unauthenticated {
                    reason: "wrong or reused TOTP code".into(),
                })?;
            factor.last_step = Some(step);
            changed = true;
        }
        if changed {
            login.updated_at = now;
            self.b.credentials.update_login(&login).await?;
        }
        let family = format!("rf_{}", CorrelationId::generate(now).as_str());
        self.start_session(tenant, user, device, family, 0, now)
            .await
    }

    /// A refresh token for the session, stored, and the tokens to hand out.
    async fn start_session(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: Option<DeviceId>,
        family: String,
        generation: u32,
        now: Timestamp,
    ) -> Result<SessionTokens> {
        let (session, tokens) = self.session(tenant, user, device, family, generation, now)?;
        self.b.credentials.insert_session(&session).await?;
        Ok(tokens)
    }

    fn session(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: Option<DeviceId>,
        family: String,
        generation: u32,
        now: Timestamp,
    ) -> Result<(RefreshSession, SessionTokens)> {
        let authority = &self.auth_ports()?.authority;
        let refresh = authority.new_refresh_token()?;
        let access = authority.mint_access_token(
            tenant,
            user,
            device.as_ref(),
            Some(family.as_str()),
            SESSION_ACCESS_TTL,
            now,
        )?;
        let session = RefreshSession {
            tenant: tenant.clone(),
            hash: refresh.hash,
            family,
            generation,
            user: user.clone(),
            device,
            issued_at: now,
            expires_at: now.plus(REFRESH_TTL),
            status: SessionStatus::Active,
        };
        let tokens = SessionTokens {
            access: AccessToken {
                access_token: access,
                expires_at: now.plus(SESSION_ACCESS_TTL),
            },
            refresh_token: refresh.secret,
            refresh_expires_at: session.expires_at,
        };
        Ok((session, tokens))
    }

    /// Exchanges a refresh token for the next pair, once. A token presented
    /// again (it was copied) revokes its whole family.
    pub async fn refresh(&self, tenant: &TenantId, refresh_token: &str) -> Result<SessionTokens> {
        let authority = &self.auth_ports()?.authority;
        self.password_tenant(tenant).await?;
        let refused = |reason: &str| Error::Unauthenticated {
            reason: reason.into(),
        };
        let hash = authority
            .refresh_token_hash(refresh_token)
            .ok_or_else(|| refused("malformed refresh token"))?;
        let session = self
            .b
            .credentials
            .session(tenant, &hash)
            .await?
            .ok_or_else(|| refused("unknown refresh token"))?;
        let now = self.now();
        match session.status {
            SessionStatus::Active => {}
            SessionStatus::Rotated => return Err(self.reuse(tenant, &session).await?),
            SessionStatus::Revoked => return Err(refused("refresh token revoked")),
        }
        if now >= session.expires_at {
            return Err(refused("refresh token expired"));
        }
        // An erased (or deleted) user's sessions end with them.
        self.known_user(tenant, &session.user, now).await?;
        let (next, tokens) = self.session(
            tenant,
            &session.user,
            session.device.clone(),
            session.family.clone(),
            session.generation.saturating_add(1),
            now,
        )?;
        if !self
            .b
            .credentials
            .rotate_session(tenant, &session.hash, &next)
            .await?
        {
            // Another request spent it first: that is reuse too.
            return Err(self.reuse(tenant, &session).await?);
        }
        Ok(tokens)
    }

    /// Revokes the family of a reused token; the error to answer with.
    async fn reuse(&self, tenant: &TenantId, session: &RefreshSession) -> Result<Error> {
        let revoked = self
            .b
            .credentials
            .revoke_family(tenant, &session.family)
            .await?;
        self.revoke_access(tenant, &session.family).await?;
        tracing::warn!(%tenant, user = %session.user, revoked, "refresh token reuse: family revoked");
        Ok(Error::Unauthenticated {
            reason: "refresh token reuse detected; every session of this login was revoked".into(),
        })
    }

    /// Revokes the login a refresh token belongs to. Unknown or malformed tokens
    /// change nothing (and say nothing).
    pub async fn logout(&self, tenant: &TenantId, refresh_token: &str) -> Result<()> {
        let authority = &self.auth_ports()?.authority;
        self.password_tenant(tenant).await?;
        if let Some(hash) = authority.refresh_token_hash(refresh_token)
            && let Some(s) = self.b.credentials.session(tenant, &hash).await?
        {
            self.b.credentials.revoke_family(tenant, &s.family).await?;
            self.revoke_access(tenant, &s.family).await?;
        }
        Ok(())
    }

    /// Refuses the access tokens already minted for session `family` on every
    /// node, for as long as any of them could still be accepted. Called after
    /// the family's refresh tokens are revoked, so no newer access token of it
    /// can be minted past this point.
    async fn revoke_access(&self, tenant: &TenantId, family: &str) -> Result<()> {
        let now = self.now();
        let until = now.plus(SESSION_ACCESS_TTL).plus(REVOCATION_MARGIN);
        self.b.revocations.revoke(tenant, family, now, until).await
    }

    /// The caller's tenant, user and password login.
    async fn caller_login(&self, p: &Principal) -> Result<(TenantId, UserId, PasswordLogin)> {
        let (Some(tenant), Some(user), PrincipalKind::User) =
            (p.tenant.clone(), p.user.clone(), p.kind)
        else {
            // TOTP belongs to a user.
            return Err(Error::forbidden(super::USER_TOKEN_REQUIRED));
        };
        let login = self
            .b
            .credentials
            .login(&tenant, &user)
            .await?
            .ok_or_else(|| Error::conflict("the user has no password login"))?;
        Ok((tenant, user, login))
    }

    /// Starts TOTP enrolment for the caller's password login. Asks for the
    /// current password (within the login's attempt budget): an access token
    /// alone, perhaps a stolen one, cannot bind a second factor.
    pub async fn totp_enroll(&self, p: &Principal, password: &str) -> Result<TotpEnrolment> {
        let ports = self.auth_ports()?;
        self.ctx(p).await?;
        let (tenant, user, login) = self.caller_login(p).await?;
        self.password_attempt(&tenant, &user, password).await?;
        if ports.passwords.verify(password, &login.phc).await? == PasswordCheck::Wrong {
            return Err(Error::Unauthenticated {
                reason: "wrong password".into(),
            });
        }
        // Read again: the hashing took a while, and writing back the copy read
        // before it would undo a password change or a confirmation made meanwhile.
        let (_, _, mut login) = self.caller_login(p).await?;
        if login.totp.as_ref().is_some_and(|f| f.confirmed) {
            return Err(Error::conflict("TOTP is already enrolled"));
        }
        let (secret, otpauth_uri) = ports
            .authority
            .new_totp(TOTP_ISSUER, &format!("{user}@{tenant}"))?;
        login.totp = Some(TotpFactor {
            secret_base32: secret.clone(),
            confirmed: false,
            last_step: None,
        });
        login.updated_at = self.now();
        self.b.credentials.update_login(&login).await?;
        Ok(TotpEnrolment {
            secret,
            otpauth_uri,
        })
    }

    /// Confirms the caller's pending TOTP factor with a first code.
    pub async fn totp_confirm(&self, p: &Principal, code: &str) -> Result<()> {
        let authority = &self.auth_ports()?.authority;
        self.ctx(p).await?;
        let (_, _, mut login) = self.caller_login(p).await?;
        let now = self.now();
        let factor = login
            .totp
            .as_mut()
            .ok_or_else(|| Error::conflict("start enrolment first"))?;
        let step = authority
            .verify_totp(&factor.secret_base32, code, now, factor.last_step)?
            .ok_or_else(|| Error::Unauthenticated {
                reason: "wrong TOTP code".into(),
            })?;
        factor.confirmed = true;
        factor.last_step = Some(step);
        login.updated_at = now;
        self.b.credentials.update_login(&login).await
    }

    /// Checks a rate limit that is not an operation's: the gateway's per-client
    /// edge limit, kept in the same rate-limit store as every other.
    pub async fn check_edge(&self, client: &str, quota: &Quota) -> Result<Decision> {
        self.b
            .rate_limits
            .check(&RateKey::edge(client), quota, self.now())
            .await
    }

    /// Whether the stores answer: for readiness probes.
    pub async fn ready(&self) -> Result<()> {
        self.b.tenants.list(None, 1).await.map(|_| ())
    }

    /// The service's clock.
    pub fn now(&self) -> Timestamp {
        self.b.clock.now()
    }

    /// Subscribes to every event published on the bus from now on: what a front
    /// door fans out to its live connections.
    pub async fn subscribe(&self) -> Result<Box<dyn crate::ports::Subscription>> {
        self.b.bus.subscribe().await
    }
}

/// Length rules for a new password.
fn check_password(p: &str) -> Result<()> {
    if p.len() > MAX_PASSWORD_BYTES {
        return Err(Error::PayloadTooLarge {
            field: "password".into(),
            size: p.len(),
            limit: MAX_PASSWORD_BYTES,
        });
    }
    if p.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(
            "password",
            format!("at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}
