use std::sync::Mutex;

use async_trait::async_trait;
use caas_core::ids::{TenantId, UserId};
use caas_core::ports::{CredentialStore, PasswordLogin, RefreshSession, SessionStatus};
use caas_core::{EntityKind, Error, Result};

use super::{Map, poisoned};

#[derive(Debug, Default)]
struct State {
    logins: Map<(TenantId, UserId), PasswordLogin>,
    sessions: Map<(TenantId, String), RefreshSession>,
}

/// Password logins and refresh sessions in memory (one lock makes rotation a
/// compare-and-set).
#[derive(Debug, Default)]
pub struct MemoryCredentialStore {
    state: Mutex<State>,
}

#[async_trait]
impl CredentialStore for MemoryCredentialStore {
    async fn create_login(&self, login: &PasswordLogin) -> Result<()> {
        let mut st = self.state.lock().map_err(poisoned)?;
        let key = (login.tenant.clone(), login.user.clone());
        if st.logins.contains_key(&key) {
            return Err(Error::conflict(format!(
                "user `{}` already has a password login",
                login.user
            )));
        }
        st.logins.insert(key, login.clone());
        Ok(())
    }

    async fn update_login(&self, login: &PasswordLogin) -> Result<()> {
        let mut st = self.state.lock().map_err(poisoned)?;
        match st
            .logins
            .get_mut(&(login.tenant.clone(), login.user.clone()))
        {
            Some(slot) => {
                *slot = login.clone();
                Ok(())
            }
            None => Err(Error::not_found(EntityKind::User, &login.user)),
        }
    }

    async fn login(&self, tenant: &TenantId, user: &UserId) -> Result<Option<PasswordLogin>> {
        let st = self.state.lock().map_err(poisoned)?;
        Ok(st.logins.get(&(tenant.clone(), user.clone())).cloned())
    }

    async fn insert_session(&self, session: &RefreshSession) -> Result<()> {
        let mut st = self.state.lock().map_err(poisoned)?;
        st.sessions.insert(
            (session.tenant.clone(), session.hash.clone()),
            session.clone(),
        );
        Ok(())
    }

    async fn session(&self, tenant: &TenantId, hash: &str) -> Result<Option<RefreshSession>> {
        let st = self.state.lock().map_err(poisoned)?;
        Ok(st.sessions.get(&(tenant.clone(), hash.to_owned())).cloned())
    }

    async fn rotate_session(
        &self,
        tenant: &TenantId,
        old_hash: &str,
        next: &RefreshSession,
    ) -> Result<bool> {
        let mut st = self.state.lock().map_err(poisoned)?;
        match st.sessions.get_mut(&(tenant.clone(), old_hash.to_owned())) {
            Some(old) if old.status == SessionStatus::Active => old.status = SessionStatus::Rotated,
            _ => return Ok(false),
        }
        st.sessions
            .insert((next.tenant.clone(), next.hash.clone()), next.clone());
        Ok(true)
    }

    async fn revoke_family(&self, tenant: &TenantId, family: &str) -> Result<u64> {
        let mut st = self.state.lock().map_err(poisoned)?;
        let mut n = 0;
        for ((t, _), s) in st.sessions.iter_mut() {
            if t == tenant && s.family == family && s.status != SessionStatus::Revoked {
                s.status = SessionStatus::Revoked;
                n += 1;
            }
        }
        Ok(n)
    }
}
