//! Randomness from the operating system via ring.

use ring::rand::{SecureRandom, SystemRandom};

use crate::{Error, Result};

/// `N` bytes from the system CSPRNG, e.g. a seed for
/// [`crate::jwt::SigningKey::ed25519_from_seed`] that a platform stores.
pub fn array<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}

pub(crate) fn fill(out: &mut [u8]) -> Result<()> {
    SystemRandom::new().fill(out).map_err(|_| Error::Rng)
}

/// A random 128-bit identifier with a readable prefix, e.g. `rf_…`.
pub(crate) fn id(prefix: &str) -> Result<String> {
    Ok(format!(
        "{prefix}{}",
        crate::base64url::encode(array::<16>()?)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ() {
        assert_ne!(array::<32>().unwrap(), array::<32>().unwrap());
        let a = id("x_").unwrap();
        assert!(a.starts_with("x_"));
        assert_eq!(a.len(), 2 + 22);
    }
}
