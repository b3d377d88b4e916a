//! AWS Signature Version 4 for S3, on `ring`'s SHA-256 and HMAC: headers for
//! the adapter's own requests and query strings for presigned URLs. Sans-IO:
//! it only computes strings, so it is unit-tested against AWS's published
//! example.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::{digest, hmac};

/// The payload hash of a presigned URL: its holder sends a body we never see.
pub(crate) const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The longest validity S3 accepts for a presigned URL (7 days).
pub(crate) const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 3600);

/// Access credentials and the region they sign for.
#[derive(Clone)]
pub(crate) struct Signer {
    pub(crate) access_key: String,
    pub(crate) secret_key: String,
    pub(crate) region: String,
}

impl std::fmt::Debug for Signer {
    // The secret never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// One request to sign: `path` is already the canonical (encoded) path, `query`
/// the decoded pairs, `headers` lower-case names with their values (`host`
/// among them).
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: &'a [(String, String)],
    pub(crate) headers: &'a [(String, String)],
}

impl Signer {
    /// The `Authorization` header value for a request whose headers already
    /// hold `x-amz-date` (= `amz_date`) and `x-amz-content-sha256` (= `payload_hash`).
    pub(crate) fn authorization(
        &self,
        req: &Request<'_>,
        amz_date: &str,
        payload_hash: &str,
    ) -> String {
        let (signed, signature) = self.signature(req, amz_date, payload_hash);
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={signed}, Signature={signature}",
            self.access_key,
            self.scope(amz_date)
        )
    }

    /// The query string of a presigned URL: `req.query` plus the `X-Amz-*`
    /// parameters and the signature, every header of `req.headers` bound.
    pub(crate) fn presign_query(
        &self,
        req: &Request<'_>,
        amz_date: &str,
        expires: Duration,
    ) -> String {
        let mut query = req.query.to_vec();
        query.push(("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()));
        query.push((
            "X-Amz-Credential".into(),
            format!("{}/{}", self.access_key, self.scope(amz_date)),
        ));
        query.push(("X-Amz-Date".into(), amz_date.into()));
        query.push(("X-Amz-Expires".into(), expires.as_secs().to_string()));
        query.push(("X-Amz-SignedHeaders".into(), signed_headers(req.headers)));
        let (_, signature) = self.signature(
            &Request {
                query: &query,
                ..*req
            },
            amz_date,
            UNSIGNED_PAYLOAD,
        );
        query.push(("X-Amz-Signature".into(), signature));
        canonical_query(&query)
    }

    fn scope(&self, amz_date: &str) -> String {
        format!("{}/{}/s3/aws4_request", &amz_date[..8], self.region)
    }

    /// (signed header names, hex signature).
    fn signature(&self, req: &Request<'_>, amz_date: &str, payload_hash: &str) -> (String, String) {
        let mut headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        headers.sort();
        let signed = signed_headers(&headers);
        let mut canonical = String::new();
        for part in [req.method, req.path, &canonical_query(req.query)] {
            canonical.push_str(part);
            canonical.push('\n');
        }
        for (k, v) in &headers {
            canonical.push_str(k);
            canonical.push(':');
            canonical.push_str(v);
            canonical.push('\n');
        }
        canonical.push('\n');
        canonical.push_str(&signed);
        canonical.push('\n');
        canonical.push_str(payload_hash);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{}\n{}",
            self.scope(amz_date),
            sha256_hex(canonical.as_bytes())
        );
        let mut key = hmac_sha256(
            format!("AWS4{}", self.secret_key).as_bytes(),
            &amz_date[..8],
        );
        for part in [self.region.as_str(), "s3", "aws4_request"] {
            key = hmac_sha256(&key, part);
        }
        (signed, hex(&hmac_sha256(&key, &to_sign)))
    }
}

fn signed_headers(headers: &[(String, String)]) -> String {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    names.sort();
    names.join(";")
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, data.as_bytes()).as_ref().to_vec()
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// SigV4's URI encoding: every byte but `A-Za-z0-9-._~` as `%XX`, and `/` too
/// unless `keep_slash`.
pub(crate) fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Pairs encoded and sorted as SigV4's canonical query string (also the wire
/// form, so the server sees exactly what was signed).
pub(crate) fn canonical_query(pairs: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `YYYYMMDDTHHMMSSZ` for a time (the `x-amz-date` form).
pub(crate) fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    amz_date_secs(secs)
}

pub(crate) fn amz_date_secs(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws_example_signer() -> Signer {
        Signer {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn dates() {
        assert_eq!(amz_date_secs(0), "19700101T000000Z");
        assert_eq!(amz_date_secs(1_369_353_600), "20130524T000000Z");
        assert_eq!(amz_date_secs(951_782_400), "20000229T000000Z");
        assert_eq!(amz_date_secs(1_700_000_000), "20231114T221320Z");
    }

    #[test]
    fn encoding() {
        assert_eq!(uri_encode("a b/c:d@e~", true), "a%20b/c%3Ad%40e~");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        let q = canonical_query(&[("b".into(), "2".into()), ("a".into(), "x y".into())]);
        assert_eq!(q, "a=x%20y&b=2");
    }

    /// The presigned GET example of AWS's "Authenticating Requests: Using Query
    /// Parameters" page (examplebucket, test.txt, 86400 s).
    #[test]
    fn aws_presigned_get_example() {
        let headers = [(
            "host".to_owned(),
            "examplebucket.s3.amazonaws.com".to_owned(),
        )];
        let q = aws_example_signer().presign_query(
            &Request {
                method: "GET",
                path: "/test.txt",
                query: &[],
                headers: &headers,
            },
            "20130524T000000Z",
            Duration::from_secs(86_400),
        );
        assert!(
            q.contains(
                "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404&"
            ),
            "{q}"
        );
    }

    /// The GET Object example of AWS's "Signature Calculations for the
    /// Authorization Header" page (a range request on examplebucket/test.txt).
    #[test]
    fn aws_header_get_example() {
        let empty = sha256_hex(b"");
        let headers = [
            (
                "host".to_owned(),
                "examplebucket.s3.amazonaws.com".to_owned(),
            ),
            ("range".to_owned(), "bytes=0-9".to_owned()),
            ("x-amz-content-sha256".to_owned(), empty.clone()),
            ("x-amz-date".to_owned(), "20130524T000000Z".to_owned()),
        ];
        let auth = aws_example_signer().authorization(
            &Request {
                method: "GET",
                path: "/test.txt",
                query: &[],
                headers: &headers,
            },
            "20130524T000000Z",
            &empty,
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }
}
