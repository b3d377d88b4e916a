//! Password hashing with Argon2id in PHC string format
//! (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), with transparent re-hashing when
//! the configured parameters rise above those a stored hash was made with.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::{Error, Result};

/// Longest password accepted, in bytes. Argon2 pre-hashes its input, so the
/// limit is about bounding request work, not the algorithm.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Longest PHC string accepted.
const MAX_PHC_LEN: usize = 256;

/// Highest memory cost accepted from a stored hash (1 GiB), so a corrupted or
/// planted hash cannot make verification allocate without bound.
const MAX_STORED_MEMORY_KIB: u32 = 1 << 20;
const MAX_STORED_ITERATIONS: u32 = 64;
const MAX_STORED_PARALLELISM: u32 = 64;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl PasswordParams {
    /// OWASP's recommended Argon2id configuration: 19 MiB, 2 iterations,
    /// 1 lane. The default.
    pub const OWASP: Self = PasswordParams {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// Deliberately weak parameters that make tests fast. Never in production.
    pub const INSECURE_FOR_TESTS: Self = PasswordParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn to_argon2(self) -> Result<Params> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| Error::param(format_args!("Argon2 parameters: {e}")))
    }

    /// Whether `self` is weaker than `target` in any dimension.
    fn below(self, target: Self) -> bool {
        self.memory_kib < target.memory_kib
            || self.iterations < target.iterations
            || self.parallelism < target.parallelism
    }
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self::OWASP
    }
}

/// The outcome of a successful [`PasswordHasher::verify`].
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordVerdict {
    /// The password matches and the stored hash is up to date.
    Valid,
    /// The password matches; store `new_hash`, made with the current
    /// parameters, in place of the old one.
    ValidRehashed {
        /// The replacement PHC string.
        new_hash: String,
    },
}

impl fmt::Debug for PasswordVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordVerdict::Valid => f.write_str("Valid"),
            PasswordVerdict::ValidRehashed { .. } => f.write_str("ValidRehashed { .. }"),
        }
    }
}

/// Hashes and verifies passwords with one set of current parameters.
#[derive(Clone)]
pub struct PasswordHasher {
    params: PasswordParams,
    argon2: Argon2<'static>,
}

impl PasswordHasher {
    /// A hasher producing Argon2id v1.3 hashes with `params`.
    pub fn new(params: PasswordParams) -> Result<Self> {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.to_argon2()?);
        Ok(PasswordHasher { params, argon2 })
    }

    /// The current parameters.
    pub fn params(&self) -> PasswordParams {
        self.params
    }

    /// Hashes `password` with a fresh random 128-bit salt.
    pub fn hash(&self, password: &str) -> Result<String> {
        check_len(password)?;
        let salt = SaltString::encode_b64(&crate::random::array::<16>()?)
            .map_err(|e| Error::param(format_args!("salt: {e}")))?;
        let hash = self
            .argon2
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| Error::param(format_args!("Argon2: {e}")))?;
        Ok(hash.to_string())
    }

    /// Verifies `password` against a stored PHC string.
    ///
    /// A wrong password is [`Error::InvalidCredential`]; an unparseable or
    /// unsupported stored hash is [`Error::Malformed`]. When the password is
    /// right but the hash predates the current parameters (or is not
    /// Argon2id v1.3), the verdict carries a fresh hash to store.
    pub fn verify(&self, password: &str, stored: &str) -> Result<PasswordVerdict> {
        check_len(password)?;
        if stored.len() > MAX_PHC_LEN {
            return Err(Error::TooLarge {
                what: "password hash",
                len: stored.len(),
                limit: MAX_PHC_LEN,
            });
        }
        let parsed = PasswordHash::new(stored).map_err(|e| Error::malformed("password hash", e))?;
        let algorithm = Algorithm::try_from(parsed.algorithm)
            .map_err(|_| Error::malformed("password hash", "not an Argon2 hash"))?;
        let stored_params =
            Params::try_from(&parsed).map_err(|e| Error::malformed("password hash", e))?;
        let stored_params = PasswordParams {
            memory_kib: stored_params.m_cost(),
            iterations: stored_params.t_cost(),
            parallelism: stored_params.p_cost(),
        };
        if stored_params.memory_kib > MAX_STORED_MEMORY_KIB
            || stored_params.iterations > MAX_STORED_ITERATIONS
            || stored_params.parallelism > MAX_STORED_PARALLELISM
        {
            return Err(Error::malformed(
                "password hash",
                "cost parameters out of range",
            ));
        }
        if parsed.hash.is_none() {
            return Err(Error::malformed("password hash", "no hash value"));
        }
        // Verification uses the stored hash's own algorithm, version and
        // parameters; the output comparison is constant-time.
        match self.argon2.verify_password(password.as_bytes(), &parsed) {
            Ok(()) => {}
            Err(argon2::password_hash::Error::Password) => return Err(Error::InvalidCredential),
            Err(e) => return Err(Error::malformed("password hash", e)),
        }
        let version_current = parsed.version == Some(Version::V0x13.into());
        if algorithm != Algorithm::Argon2id || !version_current || stored_params.below(self.params)
        {
            Ok(PasswordVerdict::ValidRehashed {
                new_hash: self.hash(password)?,
            })
        } else {
            Ok(PasswordVerdict::Valid)
        }
    }
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

fn check_len(password: &str) -> Result<()> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(Error::TooLarge {
            what: "password",
            len: password.len(),
            limit: MAX_PASSWORD_LEN,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(PasswordParams::INSECURE_FOR_TESTS).unwrap()
    }

    #[test]
    fn hash_and_verify() {
        let h = cheap();
        let phc = h.hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert_eq!(
            h.verify("correct horse", &phc).unwrap(),
            PasswordVerdict::Valid
        );
        assert!(matches!(
            h.verify("wrong horse", &phc),
            Err(Error::InvalidCredential)
        ));
        assert_ne!(phc, h.hash("correct horse").unwrap(), "salts must differ");
    }

    /// PHC strings from the reference implementation (Debian's `argon2` CLI:
    /// `echo -n password | argon2 somesalt -id -t 2 -m 6 -p 1 -e`).
    const REFERENCE_ID: &str =
        "$argon2id$v=19$m=64,t=2,p=1$c29tZXNhbHQ$FqGkmHNGCd0BRW2kBt6fPZ2pPmyGwwChL8FGUhTOSSI";
    const REFERENCE_I: &str =
        "$argon2i$v=19$m=64,t=1,p=1$c29tZXNhbHQ$m+x4L7hN2ZRjBBfcMx29Bo5JdJxIE52dqtM6I/wGjDY";

    #[test]
    fn verifies_reference_phc_strings() {
        let h = PasswordHasher::new(PasswordParams {
            memory_kib: 64,
            iterations: 2,
            parallelism: 1,
        })
        .unwrap();
        assert_eq!(
            h.verify("password", REFERENCE_ID).unwrap(),
            PasswordVerdict::Valid
        );
        assert!(matches!(
            h.verify("passwore", REFERENCE_ID),
            Err(Error::InvalidCredential)
        ));
        // Argon2i verifies, and is upgraded to Argon2id.
        assert!(matches!(
            h.verify("password", REFERENCE_I).unwrap(),
            PasswordVerdict::ValidRehashed { new_hash } if new_hash.starts_with("$argon2id$v=19$m=64,t=2,p=1$")
        ));
    }

    #[test]
    fn rehash_when_parameters_rise() {
        let old = cheap();
        let phc = old.hash("pw").unwrap();
        let stronger = PasswordHasher::new(PasswordParams {
            memory_kib: 128,
            iterations: 2,
            parallelism: 1,
        })
        .unwrap();
        let PasswordVerdict::ValidRehashed { new_hash } = stronger.verify("pw", &phc).unwrap()
        else {
            panic!("expected a rehash");
        };
        assert!(new_hash.contains("m=128,t=2,p=1"), "{new_hash}");
        assert_eq!(
            stronger.verify("pw", &new_hash).unwrap(),
            PasswordVerdict::Valid
        );
        // A wrong password never yields a rehash.
        assert!(stronger.verify("nope", &phc).is_err());
        // Lower current parameters do not downgrade a stronger stored hash.
        assert_eq!(old.verify("pw", &new_hash).unwrap(), PasswordVerdict::Valid);
    }

    #[test]
    fn bad_inputs() {
        let h = cheap();
        let phc = h.hash("pw").unwrap();
        assert!(matches!(
            h.verify("pw", "plaintext"),
            Err(Error::Malformed { .. })
        ));
        assert!(matches!(
            h.verify("pw", "$scrypt$ln=1,r=8,p=1$c2FsdA$aGFzaA"),
            Err(Error::Malformed { .. })
        ));
        let huge = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$FqGkmHNGCd0BRW2kBt6fPZ2pPmyGwwChL8FGUhTOSSI";
        assert!(matches!(h.verify("pw", huge), Err(Error::Malformed { .. })));
        let no_hash = phc.rsplit_once('$').unwrap().0;
        assert!(h.verify("pw", no_hash).is_err());
        assert!(matches!(
            h.verify(&"x".repeat(2000), &phc),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(
            h.hash(&"x".repeat(2000)),
            Err(Error::TooLarge { .. })
        ));
        assert!(
            PasswordHasher::new(PasswordParams {
                memory_kib: 1,
                iterations: 1,
                parallelism: 1
            })
            .is_err()
        );
        assert!(
            PasswordHasher::new(PasswordParams {
                memory_kib: 64,
                iterations: 0,
                parallelism: 1
            })
            .is_err()
        );
    }

    #[test]
    fn debug_hides_hash() {
        let v = PasswordVerdict::ValidRehashed {
            new_hash: "$argon2id$secret".into(),
        };
        assert!(!format!("{v:?}").contains("secret"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn arbitrary_stored_hashes_never_panic(s in "\\$argon2(id|i|d)\\$v=(19|16)\\$m=[0-9]{1,3},t=[0-9],p=[0-9]\\$[A-Za-z0-9+/]{0,30}\\$[A-Za-z0-9+/]{0,50}|.{0,100}") {
            let _ = cheap().verify("pw", &s);
        }
    }
}
