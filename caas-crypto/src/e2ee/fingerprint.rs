//! Fingerprints and safety numbers: short strings two people compare (in
//! person or over another channel) to confirm that the server handed out the
//! right identity keys.

use std::fmt;

use ring::digest;

use super::IdentityKey;

/// Iterations of SHA-512 per side, as in Signal's numeric fingerprints: they
/// raise the cost of searching for a colliding key.
const ITERATIONS: usize = 5200;

impl IdentityKey {
    /// A 128-bit fingerprint of this device's identity as 8 groups of 4 hex
    /// digits, for display next to a device.
    pub fn fingerprint(&self) -> String {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"caas.e2ee.fingerprint.v1");
        ctx.update(&self.encode());
        let d = ctx.finish();
        d.as_ref()[..16]
            .chunks(2)
            .map(|pair| format!("{:02x}{:02x}", pair[0], pair[1]))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A 60-digit safety number for a pair of (user, identity): the same on both
/// devices, whichever side computes it.
#[derive(Clone, PartialEq, Eq)]
pub struct SafetyNumber(String);

impl SafetyNumber {
    /// The safety number between a local and a remote identity.
    pub fn new(
        local_user: &str,
        local: &IdentityKey,
        remote_user: &str,
        remote: &IdentityKey,
    ) -> Self {
        let a = half(local_user, local);
        let b = half(remote_user, remote);
        // Sorted so both sides produce the same string.
        let (first, second) = if a <= b { (a, b) } else { (b, a) };
        SafetyNumber(first + &second)
    }

    /// The 60 digits without spaces.
    pub fn digits(&self) -> &str {
        &self.0
    }
}

/// 30 digits for one side: iterated SHA-512 over the key and the user id,
/// then six 5-byte chunks, each reduced mod 100000.
fn half(user: &str, key: &IdentityKey) -> String {
    let encoded = key.encode();
    let mut ctx = digest::Context::new(&digest::SHA512);
    ctx.update(b"caas.e2ee.safety-number.v1");
    ctx.update(&encoded);
    ctx.update(user.as_bytes());
    let mut hash = ctx.finish();
    for _ in 0..ITERATIONS {
        let mut ctx = digest::Context::new(&digest::SHA512);
        ctx.update(hash.as_ref());
        ctx.update(&encoded);
        hash = ctx.finish();
    }
    hash.as_ref()[..30]
        .chunks(5)
        .map(|c| {
            let n = c.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect()
}

impl fmt::Display for SafetyNumber {
    /// Groups of five digits separated by spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, chunk) in self.0.as_bytes().chunks(5).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            // Digits only, so always valid UTF-8.
            f.write_str(std::str::from_utf8(chunk).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({self})")
    }
}
