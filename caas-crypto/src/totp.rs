//! Time-based one-time passwords (RFC 6238, on HOTP from RFC 4226) and
//! `otpauth://` provisioning URIs for authenticator apps.

use std::fmt;

use ring::hmac;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The HMAC behind the codes. Authenticator apps widely support only SHA-1,
/// which is still sound inside HMAC; the others exist for RFC 6238's vectors
/// and for clients that support them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotpAlgorithm {
    /// HMAC-SHA-1 (the default in every authenticator app).
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl TotpAlgorithm {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            TotpAlgorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            TotpAlgorithm::Sha256 => hmac::HMAC_SHA256,
            TotpAlgorithm::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn name(self) -> &'static str {
        match self {
            TotpAlgorithm::Sha1 => "SHA1",
            TotpAlgorithm::Sha256 => "SHA256",
            TotpAlgorithm::Sha512 => "SHA512",
        }
    }
}

/// A TOTP generator/verifier for one enrolled secret.
#[derive(Clone)]
pub struct Totp {
    secret: Zeroizing<Vec<u8>>,
    algorithm: TotpAlgorithm,
    digits: u32,
    period: u64,
    skew: u64,
}

/// Shortest shared secret accepted: RFC 4226 §4 requires 128 bits.
pub const MIN_SECRET_LEN: usize = 16;
const MAX_SECRET_LEN: usize = 128;

impl Totp {
    /// A TOTP with 6 digits, a 30 s period and ±1 step of clock skew.
    pub fn new(secret: &[u8], algorithm: TotpAlgorithm) -> Result<Self> {
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len()) {
            return Err(Error::InvalidKey {
                reason: "TOTP secret must be 16 to 128 bytes",
            });
        }
        Ok(Totp {
            secret: Zeroizing::new(secret.to_vec()),
            algorithm,
            digits: 6,
            period: 30,
            skew: 1,
        })
    }

    /// A fresh random 160-bit SHA-1 secret (RFC 4226's recommended length),
    /// for enrolling a user.
    pub fn generate() -> Result<Self> {
        let secret = Zeroizing::new(crate::random::array::<20>()?);
        Self::new(&*secret, TotpAlgorithm::Sha1)
    }

    /// From a base32 secret as shown by authenticator apps (case-insensitive,
    /// spaces and padding allowed).
    pub fn from_base32(secret: &str, algorithm: TotpAlgorithm) -> Result<Self> {
        let bytes = Zeroizing::new(base32_decode(secret)?);
        Self::new(&bytes, algorithm)
    }

    /// Sets the number of digits (6 to 8).
    pub fn with_digits(mut self, digits: u32) -> Result<Self> {
        if !(6..=8).contains(&digits) {
            return Err(Error::param("TOTP digits must be 6, 7 or 8"));
        }
        self.digits = digits;
        Ok(self)
    }

    /// Sets the time step in seconds (1 to 300).
    pub fn with_period(mut self, period: u64) -> Result<Self> {
        if !(1..=300).contains(&period) {
            return Err(Error::param("TOTP period must be 1..=300 seconds"));
        }
        self.period = period;
        Ok(self)
    }

    /// Sets how many steps before and after the current one are accepted (0 to 10).
    pub fn with_skew(mut self, steps: u64) -> Result<Self> {
        if steps > 10 {
            return Err(Error::param("TOTP skew must be at most 10 steps"));
        }
        self.skew = steps;
        Ok(self)
    }

    /// The secret in unpadded base32, for manual entry. Secret material.
    pub fn expose_secret_base32(&self) -> String {
        base32_encode(&self.secret)
    }

    /// The time step containing `unix_secs` (negative times count as 0).
    pub fn step_at(&self, unix_secs: i64) -> u64 {
        u64::try_from(unix_secs).unwrap_or(0) / self.period
    }

    /// The code for time `unix_secs`.
    pub fn code_at(&self, unix_secs: i64) -> String {
        self.code_for_step(self.step_at(unix_secs))
    }

    fn code_for_step(&self, step: u64) -> String {
        let key = hmac::Key::new(self.algorithm.hmac(), &self.secret);
        let mac = hmac::sign(&key, &step.to_be_bytes());
        let mac = mac.as_ref();
        // RFC 4226 §5.3 dynamic truncation; the MAC is at least 20 bytes, so
        // offset + 3 <= 15 + 3 is always in range.
        let offset = usize::from(mac[mac.len() - 1] & 0x0f);
        let bin = u32::from_be_bytes([
            mac[offset] & 0x7f,
            mac[offset + 1],
            mac[offset + 2],
            mac[offset + 3],
        ]);
        let code = bin % 10u32.pow(self.digits);
        format!("{code:0width$}", width = self.digits as usize)
    }

    /// Checks `code` at `now` and returns the matched time step.
    ///
    /// Store the returned step and pass it as `last_used_step` next time: a
    /// code for that step or an earlier one is rejected as replayed, so a
    /// code observed over a shoulder cannot be used twice. Steps within the
    /// skew window are all compared, in constant time.
    pub fn verify(&self, code: &str, now: i64, last_used_step: Option<u64>) -> Result<u64> {
        if code.len() != self.digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::malformed(
                "one-time code",
                "wrong length or not digits",
            ));
        }
        let current = self.step_at(now);
        let mut matched: Option<u64> = None;
        for step in current.saturating_sub(self.skew)..=current.saturating_add(self.skew) {
            let expected = self.code_for_step(step);
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && matched.is_none() {
                matched = Some(step);
            }
        }
        let step = matched.ok_or(Error::InvalidCredential)?;
        if last_used_step.is_some_and(|last| step <= last) {
            return Err(Error::Replayed {
                what: "one-time code",
            });
        }
        Ok(step)
    }

    /// The `otpauth://totp/…` URI for QR-code enrolment (Google
    /// Authenticator key URI format). Contains the secret.
    pub fn provisioning_uri(&self, issuer: &str, account: &str) -> String {
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm={}&digits={}&period={}",
            percent_encode(issuer),
            percent_encode(account),
            self.expose_secret_base32(),
            percent_encode(issuer),
            self.algorithm.name(),
            self.digits,
            self.period
        )
    }
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totp")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("skew", &self.skew)
            .finish_non_exhaustive()
    }
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn base32_decode(s: &str) -> Result<Vec<u8>> {
    const WHAT: &str = "base32 secret";
    if s.len() > 512 {
        return Err(Error::TooLarge {
            what: WHAT,
            len: s.len(),
            limit: 512,
        });
    }
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    let trimmed = s.trim_end_matches('=');
    for c in trimmed.bytes().filter(|c| *c != b' ') {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return Err(Error::malformed(WHAT, "characters must be A-Z and 2-7")),
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    if bits >= 5 || buffer & ((1 << bits) - 1) != 0 {
        return Err(Error::malformed(WHAT, "invalid length or trailing bits"));
    }
    Ok(out)
}

/// Percent-encodes everything outside RFC 3986's unreserved set.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 6238 Appendix B: 8-digit codes for the three HMACs.
    #[test]
    fn rfc6238_vectors() {
        let sha1 = Totp::new(b"12345678901234567890", TotpAlgorithm::Sha1).unwrap();
        let sha256 = Totp::new(b"12345678901234567890123456789012", TotpAlgorithm::Sha256).unwrap();
        let sha512 = Totp::new(
            b"1234567890123456789012345678901234567890123456789012345678901234",
            TotpAlgorithm::Sha512,
        )
        .unwrap();
        let [sha1, sha256, sha512] = [sha1, sha256, sha512].map(|t| t.with_digits(8).unwrap());
        let table: [(i64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, c1, c256, c512) in table {
            assert_eq!(sha1.code_at(t), c1, "SHA1 at {t}");
            assert_eq!(sha256.code_at(t), c256, "SHA256 at {t}");
            assert_eq!(sha512.code_at(t), c512, "SHA512 at {t}");
            assert_eq!(sha1.verify(c1, t, None).unwrap(), sha1.step_at(t));
        }
    }

    #[test]
    fn skew_window_and_replay() {
        let t = Totp::generate().unwrap();
        let now = 1_700_000_000;
        let code = t.code_at(now);
        assert_eq!(code.len(), 6);
        let step = t.verify(&code, now + 30, None).unwrap();
        assert_eq!(step, t.step_at(now));
        assert!(t.verify(&code, now - 30, None).is_ok());
        assert!(matches!(
            t.verify(&code, now + 90, None),
            Err(Error::InvalidCredential)
        ));
        assert!(matches!(
            t.verify(&code, now, Some(step)),
            Err(Error::Replayed { .. })
        ));
        let next = t.code_at(now + 30);
        assert!(t.verify(&next, now + 30, Some(step)).is_ok());
        let strict = t.clone().with_skew(0).unwrap();
        assert!(strict.verify(&code, now + 30, None).is_err());
    }

    #[test]
    fn malformed_codes() {
        let t = Totp::generate().unwrap();
        for bad in ["", "12345", "1234567", "12a456", "١٢٣٤٥٦", " 23456"] {
            assert!(
                matches!(t.verify(bad, 0, None), Err(Error::Malformed { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn base32_round_trip_and_rfc4648_vectors() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_encode(b"fooba"), "MZXW6YTB");
        assert_eq!(base32_decode("MZXW6YTBOI======").unwrap(), b"foobar");
        assert_eq!(base32_decode("mzxw 6ytb oi").unwrap(), b"foobar");
        assert!(base32_decode("MZXW6YTBO1").is_err());
        assert!(
            base32_decode("MZXW6YTBOJ").is_err(),
            "non-zero trailing bits"
        );
        let t = Totp::generate().unwrap();
        let again = Totp::from_base32(&t.expose_secret_base32(), TotpAlgorithm::Sha1).unwrap();
        assert_eq!(again.code_at(12345), t.code_at(12345));
        assert!(
            Totp::from_base32("MZXW6YTB", TotpAlgorithm::Sha1).is_err(),
            "too short"
        );
    }

    #[test]
    fn provisioning_uri() {
        let t = Totp::new(b"12345678901234567890", TotpAlgorithm::Sha1).unwrap();
        assert_eq!(
            t.provisioning_uri("Acme Chat", "alice@example.com"),
            "otpauth://totp/Acme%20Chat:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Acme%20Chat&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn config_bounds_and_debug() {
        assert!(Totp::new(&[0u8; 15], TotpAlgorithm::Sha1).is_err());
        let t = Totp::generate().unwrap();
        assert!(t.clone().with_digits(9).is_err());
        assert!(t.clone().with_period(0).is_err());
        assert!(t.clone().with_skew(11).is_err());
        assert!(!format!("{t:?}").contains(&t.expose_secret_base32()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_input_never_panics(s in ".{0,40}", now in any::<i64>()) {
            let t = Totp::generate().unwrap();
            let _ = t.verify(&s, now, None);
            let _ = Totp::from_base32(&s, TotpAlgorithm::Sha1);
        }

        #[test]
        fn base32_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(base32_decode(&base32_encode(&bytes)).unwrap(), bytes);
        }
    }
}
