//! [`Argon2Passwords`]: password hashing for caas-core, off the async workers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use caas_core::ports::{PasswordCheck, PasswordHasher as PasswordPort};
use caas_core::{Error, Result};
use tokio::sync::Semaphore;

use crate::password::{PasswordHasher, PasswordParams, PasswordVerdict};

/// How long a password check waits for a free slot before the answer is
/// "overloaded": a queue that stays full is an attack or a surge, not latency.
const WAIT_FOR_SLOT: Duration = Duration::from_secs(2);

/// Argon2id through caas-crypto's [`PasswordHasher`]: each hash takes a core and
/// its memory cost for milliseconds, so it runs on tokio's blocking pool, and at
/// most twice as many run at once as the machine has cores (unauthenticated
/// callers must not be able to start more than the machine runs).
#[derive(Clone)]
pub struct Argon2Passwords {
    hasher: Arc<PasswordHasher>,
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Argon2Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Argon2Passwords")
            .field("params", &self.hasher.params())
            .finish_non_exhaustive()
    }
}

impl Argon2Passwords {
    /// A hasher with `params` (`PasswordParams::default()` is OWASP's).
    pub fn new(params: PasswordParams) -> crate::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Ok(Self {
            hasher: Arc::new(PasswordHasher::new(params)?),
            slots: Arc::new(Semaphore::new(cores * 2)),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&PasswordHasher) -> T + Send + 'static,
    ) -> Result<T> {
        let overloaded = || Error::Unavailable {
            backend: "passwords",
            context: "too many password checks in progress".into(),
            temporary: true,
            source: None,
        };
        let _slot = tokio::time::timeout(WAIT_FOR_SLOT, self.slots.acquire())
            .await
            .map_err(|_| overloaded())?
            .map_err(|_| overloaded())?;
        let hasher = self.hasher.clone();
        tokio::task::spawn_blocking(move || f(&hasher))
            .await
            .map_err(|e| Error::Internal {
                context: "password hashing task failed".into(),
                source: Some(Box::new(e)),
            })
    }
}

#[async_trait]
impl PasswordPort for Argon2Passwords {
    async fn hash(&self, password: &str) -> Result<String> {
        let password = zeroize::Zeroizing::new(password.to_owned());
        self.run(move |h| h.hash(&password))
            .await?
            .map_err(|e| Error::invalid("password", e.to_string()))
    }

    async fn verify(&self, password: &str, phc: &str) -> Result<PasswordCheck> {
        let (password, phc) = (zeroize::Zeroizing::new(password.to_owned()), phc.to_owned());
        Ok(match self.run(move |h| h.verify(&password, &phc)).await? {
            Ok(PasswordVerdict::Valid) => PasswordCheck::Valid,
            Ok(PasswordVerdict::ValidRehashed { new_hash }) => PasswordCheck::Rehashed(new_hash),
            // A wrong password, or a stored hash this build cannot read: either
            // way the caller is not let in.
            Err(_) => PasswordCheck::Wrong,
        })
    }
}
