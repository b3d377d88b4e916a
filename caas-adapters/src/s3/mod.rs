//! Media on any S3-compatible store: a [`BlobStore`] that keeps each blob as
//! one object `{key_prefix}/{tenant}/{blob}` in one bucket, signs every request
//! with AWS Signature Version 4 (its own small signer on `ring`, see
//! `sigv4.rs`), and mints presigned GET and PUT URLs that any plain HTTP client
//! can use.
//!
//! **What an object carries.** The content type, SHA-256 and creation time of
//! a blob travel as user metadata (`x-amz-meta-caas-*`), so they come back
//! with the bytes from any S3-compatible server and [`BlobStore::get`] can
//! refuse content that no longer matches its checksum. Uploads also send `x-amz-checksum-sha256`, so a server that
//! checks it (AWS does, and so does s3s) refuses a body damaged on the way.
//!
//! **Large objects** (over [`S3Config::part_size`]) go up as a multipart
//! upload and are read back and checked against their checksum once the
//! upload completes; a failed upload is aborted.
//!
//! **Direct uploads.** [`BlobStore::presign_upload`] binds the content type
//! and the exact size into the signature; after the client's PUT,
//! [`BlobStore::complete_upload`] checks the object, computes its checksum
//! and records the metadata. Until then the object is not a blob: `get` and
//! `head` answer `None`. (The port's [`BlobStore::presign`] for PUT binds no
//! headers, as the port has no content type to bind.)
//!
//! **Failures.** Every request is bounded by [`S3Config::request_timeout`];
//! an unreachable server, a timeout or a 5xx is [`Error::Unavailable`]
//! (temporary), credentials or a bucket the server refuses are
//! [`Error::Unavailable`] (not temporary), and any other error body becomes an
//! [`Error::Internal`] carrying the parsed [`S3Error`].

mod sigv4;
mod xml;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use caas_core::Error;
use caas_core::error::Result;
use caas_core::ids::{BlobId, TenantId};
use caas_core::model::BlobMeta;
pub use caas_core::ports::PresignedUpload;
use caas_core::ports::{BlobCapabilities, BlobStore, UrlMethod};
use caas_core::time::Timestamp;
use reqwest::{Method, StatusCode};

use sigv4::{Request, Signer};

const BACKEND: &str = "s3";
const META_SHA256: &str = "x-amz-meta-caas-sha256";
const META_CONTENT_TYPE: &str = "x-amz-meta-caas-content-type";
const META_CREATED_AT: &str = "x-amz-meta-caas-created-at";
/// S3's smallest part but the last.
const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// S3's most parts in one upload.
const MAX_PARTS: usize = 10_000;
/// The most of an error body read (they are a few hundred bytes).
const MAX_ERROR_BODY: usize = 64 * 1024;
/// The longest content type accepted.
const MAX_CONTENT_TYPE: usize = 255;

/// How to reach the store and how blobs are laid out in it.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// The server's base URL, `http://host:port` (path-style addressing:
    /// objects are at `{endpoint}/{bucket}/{key}`).
    pub endpoint: String,
    /// The bucket holding every blob (it must exist; see
    /// [`S3BlobStore::create_bucket`]).
    pub bucket: String,
    /// The region signed for (default `us-east-1`).
    pub region: String,
    /// The access key id.
    pub access_key: String,
    /// The secret key; never logged (`Debug` leaves it out).
    pub secret_key: String,
    /// The first segment of every key (default `caas`), so several platforms
    /// can share a bucket. `/`-separated segments; none may be empty, `.` or
    /// `..`.
    pub key_prefix: String,
    /// The largest blob accepted, in bytes (default 100 MiB); larger puts are
    /// [`Error::PayloadTooLarge`].
    pub max_blob_size: usize,
    /// Blobs larger than this go up as a multipart upload in parts of this
    /// size (default 8 MiB; at least 5 MiB, S3's minimum part).
    pub part_size: usize,
    /// How long connecting may take (default 2 s).
    pub connect_timeout: Duration,
    /// How long one request may take, body included (default 60 s).
    pub request_timeout: Duration,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("key_prefix", &self.key_prefix)
            .field("max_blob_size", &self.max_blob_size)
            .field("part_size", &self.part_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// A configuration with the defaults for everything but where to go and
    /// who to be.
    pub fn new(
        endpoint: impl Into<String>,
        bucket: impl Into<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            bucket: bucket.into(),
            region: "us-east-1".into(),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            key_prefix: "caas".into(),
            max_blob_size: 100 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// An error answer of the S3 server, parsed from its XML body; the source of
/// the [`Error`] it becomes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("S3 answered {status} {code}: {message}")]
pub struct S3Error {
    /// The HTTP status.
    pub status: u16,
    /// S3's error code (`NoSuchKey`, `AccessDenied`, …), empty when the body
    /// had none.
    pub code: String,
    /// S3's message, possibly empty.
    pub message: String,
}

impl S3Error {
    fn into_error(self, context: &str) -> Error {
        let temporary = self.status >= 500
            || matches!(
                self.code.as_str(),
                "SlowDown" | "InternalError" | "ServiceUnavailable" | "RequestTimeout"
            );
        let misconfigured = matches!(
            self.code.as_str(),
            "AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "NoSuchBucket"
                | "RequestTimeTooSkewed"
                | "AuthorizationHeaderMalformed"
        );
        if temporary || misconfigured {
            Error::unavailable(BACKEND, context, temporary, self)
        } else {
            Error::Internal {
                context: format!("s3: {context}"),
                source: Some(Box::new(self)),
            }
        }
    }
}

/// The [`BlobStore`] on S3. Cheap to clone (one shared HTTP client).
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: S3Config,
    signer: Signer,
    http: reqwest::Client,
    /// `scheme://host[:port]`.
    origin: String,
    /// The `Host` header (and signed host).
    host: String,
    /// The endpoint's own path, without a trailing `/` (usually empty).
    base_path: String,
}

/// What one request sends.
struct Call {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl S3BlobStore {
    /// A store on `config`. Fails on an endpoint that is not an `http`/`https`
    /// URL, an empty bucket or credentials, a bad key prefix, or a part size
    /// under 5 MiB. Connects lazily.
    pub fn new(config: S3Config) -> Result<Self> {
        let url = reqwest::Url::parse(&config.endpoint)
            .map_err(|e| Error::invalid("endpoint", e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::invalid("endpoint", "must be an http or https URL"));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(Error::invalid(
                "endpoint",
                "must have no query, fragment or credentials",
            ));
        }
        let host_name = url
            .host_str()
            .ok_or_else(|| Error::invalid("endpoint", "has no host"))?;
        let host = match url.port() {
            Some(p) => format!("{host_name}:{p}"),
            None => host_name.to_owned(),
        };
        let origin = format!("{}://{host}", url.scheme());
        let base_path = url.path().trim_end_matches('/').to_owned();
        if config.bucket.is_empty()
            || !config
                .bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
        {
            return Err(Error::invalid(
                "bucket",
                "must be lower-case letters, digits, `-` and `.`",
            ));
        }
        if config.access_key.is_empty() || config.secret_key.is_empty() {
            return Err(Error::invalid(
                "access_key",
                "credentials must not be empty",
            ));
        }
        if config.key_prefix.split('/').any(|s| !safe_segment(s)) {
            return Err(Error::invalid(
                "key_prefix",
                "segments must be non-empty and not `.` or `..`",
            ));
        }
        if config.part_size < MIN_PART_SIZE {
            return Err(Error::invalid("part_size", "must be at least 5 MiB"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| Error::unavailable(BACKEND, "build the HTTP client", false, e))?;
        let signer = Signer {
            access_key: config.access_key.clone(),
            secret_key: config.secret_key.clone(),
            region: config.region.clone(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                signer,
                http,
                origin,
                host,
                base_path,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &S3Config {
        &self.inner.config
    }

    /// Creates the bucket; one that already exists (and is ours) is fine.
    pub async fn create_bucket(&self) -> Result<()> {
        let path = format!("{}/{}", self.inner.base_path, self.inner.config.bucket);
        match self
            .call(Call {
                method: Method::PUT,
                path,
                query: Vec::new(),
                headers: Vec::new(),
                body: Bytes::new(),
            })
            .await
        {
            Ok(_) => Ok(()),
            // s3s-fs says `BucketAlreadyExists` for a bucket of its one
            // owner; on AWS it means someone else's, and every later call
            // then answers AccessDenied (unavailable, not temporary).
            Err(Failure::S3(e))
                if matches!(
                    e.code.as_str(),
                    "BucketAlreadyOwnedByYou" | "BucketAlreadyExists"
                ) =>
            {
                Ok(())
            }
            Err(f) => Err(f.into_error("create the bucket")),
        }
    }

    /// The object key of a blob: `{key_prefix}/{tenant}/{blob}`. Ids cannot
    /// hold `/`; an id that is only dots would be a path step out of its
    /// tenant once a URL is normalised, so it is refused.
    pub fn key(&self, tenant: &TenantId, id: &BlobId) -> Result<String> {
        if !safe_segment(tenant.as_str()) {
            return Err(Error::invalid(
                "tenant",
                "an S3 key segment cannot be only dots",
            ));
        }
        if !safe_segment(id.as_str()) {
            return Err(Error::invalid(
                "blob",
                "an S3 key segment cannot be only dots",
            ));
        }
        Ok(format!(
            "{}/{}/{}",
            self.inner.config.key_prefix,
            tenant.as_str(),
            id.as_str()
        ))
    }

    /// The canonical (encoded) request path of a key.
    fn object_path(&self, key: &str) -> String {
        format!(
            "{}/{}/{}",
            self.inner.base_path,
            self.inner.config.bucket,
            sigv4::uri_encode(key, true)
        )
    }

    fn presigned_url(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        method: Method,
        extra_headers: &[(String, String)],
        expires_at: Timestamp,
    ) -> Result<String> {
        let key = self.key(tenant, id)?;
        let path = self.object_path(&key);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let until = expires_at.as_secs();
        // A URL asked to expire now or earlier is signed as one that already
        // has: valid from a second before `expires_at` for one second.
        let (signed_at, valid) = if until > now {
            (now, Duration::from_secs(until - now))
        } else {
            (until.saturating_sub(1), Duration::from_secs(1))
        };
        if valid > sigv4::MAX_PRESIGN {
            return Err(Error::invalid(
                "expires_at",
                "S3 presigned URLs last at most 7 days",
            ));
        }
        let mut headers = vec![("host".to_owned(), self.inner.host.clone())];
        headers.extend(extra_headers.iter().cloned());
        let query = self.inner.signer.presign_query(
            &Request {
                method: method.as_str(),
                path: &path,
                query: &[],
                headers: &headers,
            },
            &sigv4::amz_date_secs(signed_at),
            valid,
        );
        Ok(format!("{}{path}?{query}", self.inner.origin))
    }

    /// Sends one signed request; a non-2xx answer is a [`Failure::S3`].
    async fn call(&self, c: Call) -> Result<reqwest::Response, Failure> {
        let amz_date = sigv4::amz_date(SystemTime::now());
        let payload_hash = sigv4::sha256_hex(&c.body);
        let mut headers = c.headers;
        headers.push(("host".into(), self.inner.host.clone()));
        headers.push(("x-amz-date".into(), amz_date.clone()));
        headers.push(("x-amz-content-sha256".into(), payload_hash.clone()));
        let auth = self.inner.signer.authorization(
            &Request {
                method: c.method.as_str(),
                path: &c.path,
                query: &c.query,
                headers: &headers,
            },
            &amz_date,
            &payload_hash,
        );
        let mut url = format!("{}{}", self.inner.origin, c.path);
        if !c.query.is_empty() {
            url.push('?');
            url.push_str(&sigv4::canonical_query(&c.query));
        }
        let mut req = self
            .inner
            .http
            .request(c.method, url)
            .header("authorization", auth);
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req.body(c.body).send().await.map_err(Failure::Http)?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(Failure::S3(error_of(resp).await))
    }

    /// The object's response headers and bytes (bounded by the size limit),
    /// or `None` when there is no such key.
    async fn fetch(
        &self,
        key: &str,
        context: &str,
    ) -> Result<Option<(reqwest::header::HeaderMap, Vec<u8>)>> {
        let resp = match self
            .call(Call {
                method: Method::GET,
                path: self.object_path(key),
                query: Vec::new(),
                headers: Vec::new(),
                body: Bytes::new(),
            })
            .await
        {
            Ok(r) => r,
            Err(Failure::S3(e)) if e.status == 404 && e.code != "NoSuchBucket" => return Ok(None),
            Err(f) => return Err(f.into_error(context)),
        };
        let limit = self.inner.config.max_blob_size;
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(Error::internal(format!(
                "s3: {context}: the object is larger than the blob size limit"
            )));
        }
        let headers = resp.headers().clone();
        let mut resp = resp;
        let mut bytes = Vec::with_capacity(
            resp.content_length()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0),
        );
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| Failure::Http(e).into_error(context))?
        {
            if bytes.len() + chunk.len() > limit {
                return Err(Error::internal(format!(
                    "s3: {context}: the object is larger than the blob size limit"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some((headers, bytes)))
    }

    /// The HEAD of an object: its headers, or `None`.
    async fn head_raw(
        &self,
        key: &str,
        context: &str,
    ) -> Result<Option<reqwest::header::HeaderMap>> {
        match self
            .call(Call {
                method: Method::HEAD,
                path: self.object_path(key),
                query: Vec::new(),
                headers: Vec::new(),
                body: Bytes::new(),
            })
            .await
        {
            Ok(r) => Ok(Some(r.headers().clone())),
            // A HEAD answer has no body, so a 404 cannot say which is missing;
            // a missing bucket shows up on every other call.
            Err(Failure::S3(e)) if e.status == 404 => Ok(None),
            Err(f) => Err(f.into_error(context)),
        }
    }

    async fn put_single(
        &self,
        key: &str,
        headers: Vec<(String, String)>,
        body: Bytes,
    ) -> Result<()> {
        self.call(Call {
            method: Method::PUT,
            path: self.object_path(key),
            query: Vec::new(),
            headers,
            body,
        })
        .await
        .map(drop)
        .map_err(|f| f.into_error("put an object"))
    }

    async fn put_multipart(
        &self,
        key: &str,
        headers: Vec<(String, String)>,
        body: Bytes,
    ) -> Result<()> {
        let path = self.object_path(key);
        let created = self
            .call(Call {
                method: Method::POST,
                path: path.clone(),
                query: vec![("uploads".into(), String::new())],
                headers,
                body: Bytes::new(),
            })
            .await
            .map_err(|f| f.into_error("start a multipart upload"))?;
        let text = created
            .text()
            .await
            .map_err(|e| Failure::Http(e).into_error("start a multipart upload"))?;
        let upload_id = xml::element(&text, "UploadId")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::internal("s3: the multipart upload answer has no UploadId"))?;
        let result = self.upload_parts(&path, &upload_id, body).await;
        if result.is_err() {
            // Best effort: a dangling upload only costs storage until the
            // bucket's lifecycle rules (if any) clear it.
            let _ = self
                .call(Call {
                    method: Method::DELETE,
                    path,
                    query: vec![("uploadId".into(), upload_id)],
                    headers: Vec::new(),
                    body: Bytes::new(),
                })
                .await;
        }
        result
    }

    async fn upload_parts(&self, path: &str, upload_id: &str, body: Bytes) -> Result<()> {
        let part_size = self.inner.config.part_size;
        if body.len().div_ceil(part_size) > MAX_PARTS {
            return Err(Error::invalid(
                "part_size",
                "too small for this blob: S3 allows at most 10 000 parts",
            ));
        }
        let mut complete = String::from("<CompleteMultipartUpload>");
        let mut offset = 0;
        let mut number = 0u32;
        while offset < body.len() {
            let end = (offset + part_size).min(body.len());
            number += 1;
            let part = body.slice(offset..end);
            offset = end;
            let resp = self
                .call(Call {
                    method: Method::PUT,
                    path: path.to_owned(),
                    query: vec![
                        ("partNumber".into(), number.to_string()),
                        ("uploadId".into(), upload_id.to_owned()),
                    ],
                    headers: Vec::new(),
                    body: part,
                })
                .await
                .map_err(|f| f.into_error("upload a part"))?;
            let etag = resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| Error::internal("s3: a part's answer has no ETag"))?;
            complete.push_str(&format!(
                "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
                xml::escape(etag)
            ));
        }
        complete.push_str("</CompleteMultipartUpload>");
        let resp = self
            .call(Call {
                method: Method::POST,
                path: path.to_owned(),
                query: vec![("uploadId".into(), upload_id.to_owned())],
                headers: vec![("content-type".into(), "application/xml".into())],
                body: Bytes::from(complete),
            })
            .await
            .map_err(|f| f.into_error("complete a multipart upload"))?;
        // S3 may answer 200 and still fail: the error is in the body.
        let text = resp
            .text()
            .await
            .map_err(|e| Failure::Http(e).into_error("complete a multipart upload"))?;
        if text.contains("<Error>") {
            return Err(S3Error {
                status: 200,
                code: xml::element(&text, "Code").unwrap_or_default(),
                message: xml::element(&text, "Message").unwrap_or_default(),
            }
            .into_error("complete a multipart upload"));
        }
        Ok(())
    }
}

/// A request that did not succeed: no answer, or an S3 error answer.
enum Failure {
    Http(reqwest::Error),
    S3(S3Error),
}

impl Failure {
    fn into_error(self, context: &str) -> Error {
        match self {
            // Refused, reset, timed out: the server is away or overloaded.
            Failure::Http(e) => Error::unavailable(BACKEND, context, true, e),
            Failure::S3(e) => e.into_error(context),
        }
    }
}

/// The parsed error of a non-2xx answer; a body that is not S3's XML (a
/// proxy's page, or none for HEAD) leaves the code empty.
async fn error_of(mut resp: reqwest::Response) -> S3Error {
    let status = resp.status();
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    let text = String::from_utf8_lossy(&body);
    // A HEAD answer has no body: its status is all there is.
    let code = xml::element(&text, "Code").unwrap_or_else(|| match status {
        StatusCode::NOT_FOUND => "NoSuchKey".into(),
        StatusCode::FORBIDDEN => "AccessDenied".into(),
        _ => String::new(),
    });
    S3Error {
        status: status.as_u16(),
        code,
        message: xml::element(&text, "Message").unwrap_or_default(),
    }
}

/// A key segment that no URL normalisation can turn into a step elsewhere.
fn safe_segment(s: &str) -> bool {
    !s.is_empty() && !s.bytes().all(|b| b == b'.')
}

fn check_content_type(ct: &str) -> Result<()> {
    if ct.is_empty()
        || ct.len() > MAX_CONTENT_TYPE
        || !ct.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        return Err(Error::invalid(
            "content_type",
            format!("must be 1 to {MAX_CONTENT_TYPE} printable ASCII characters"),
        ));
    }
    Ok(())
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The blob's metadata from an object's headers; `None` when the object has
/// none of ours (an upload not completed yet).
fn meta_of(
    h: &reqwest::header::HeaderMap,
    tenant: &TenantId,
    id: &BlobId,
    size: u64,
) -> Result<Option<BlobMeta>> {
    let Some(sha256) = header(h, META_SHA256) else {
        return Ok(None);
    };
    let corrupt = |what: &str| Error::internal(format!("s3: blob `{id}`: {what}"));
    let content_type = header(h, META_CONTENT_TYPE).ok_or_else(|| corrupt("no content type"))?;
    let created_at = header(h, META_CREATED_AT)
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| corrupt("no creation time"))?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(corrupt("a malformed checksum"));
    }
    Ok(Some(BlobMeta {
        tenant: tenant.clone(),
        id: id.clone(),
        size,
        content_type: content_type.to_owned(),
        sha256: sha256.to_ascii_lowercase(),
        created_at: Timestamp::from_nanos(created_at),
    }))
}

fn content_length(h: &reqwest::header::HeaderMap) -> Option<u64> {
    header(h, "content-length").and_then(|v| v.parse().ok())
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn capabilities(&self) -> BlobCapabilities {
        BlobCapabilities {
            presigned_urls: true,
            durable: true,
        }
    }

    async fn put(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        content_type: &str,
        bytes: Vec<u8>,
        at: Timestamp,
    ) -> Result<BlobMeta> {
        let limit = self.inner.config.max_blob_size;
        if bytes.len() > limit {
            return Err(Error::PayloadTooLarge {
                field: "blob".into(),
                size: bytes.len(),
                limit,
            });
        }
        check_content_type(content_type)?;
        let key = self.key(tenant, id)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let meta = BlobMeta {
            tenant: tenant.clone(),
            id: id.clone(),
            size: bytes.len() as u64,
            content_type: content_type.to_owned(),
            sha256: sigv4::hex(digest.as_ref()),
            created_at: at,
        };
        let mut headers = vec![
            ("content-type".to_owned(), content_type.to_owned()),
            (META_SHA256.to_owned(), meta.sha256.clone()),
            (META_CONTENT_TYPE.to_owned(), content_type.to_owned()),
            (META_CREATED_AT.to_owned(), at.as_nanos().to_string()),
        ];
        let body = Bytes::from(bytes);
        if body.len() > self.inner.config.part_size {
            self.put_multipart(&key, headers, body).await?;
            // The assembled object is read back and checked against the
            // checksum computed here before the put counts as done.
            match self.get(tenant, id).await {
                Ok(Some((stored, _))) if stored == meta => {}
                Err(e @ Error::Unavailable { .. }) => return Err(e),
                Ok(_) | Err(_) => {
                    let _ = self.delete(tenant, id).await;
                    return Err(Error::internal(format!(
                        "s3: blob `{id}`: the completed multipart upload does not match its checksum"
                    )));
                }
            }
        } else {
            headers.push((
                "x-amz-checksum-sha256".to_owned(),
                base64::engine::general_purpose::STANDARD.encode(digest.as_ref()),
            ));
            self.put_single(&key, headers, body).await?;
        }
        Ok(meta)
    }

    async fn get(&self, tenant: &TenantId, id: &BlobId) -> Result<Option<(BlobMeta, Vec<u8>)>> {
        let key = self.key(tenant, id)?;
        let Some((headers, bytes)) = self.fetch(&key, "get a blob").await? else {
            return Ok(None);
        };
        let Some(meta) = meta_of(&headers, tenant, id, bytes.len() as u64)? else {
            return Ok(None);
        };
        if sigv4::sha256_hex(&bytes) != meta.sha256 {
            return Err(Error::internal(format!(
                "s3: blob `{id}`: content does not match its SHA-256"
            )));
        }
        Ok(Some((meta, bytes)))
    }

    async fn head(&self, tenant: &TenantId, id: &BlobId) -> Result<Option<BlobMeta>> {
        let key = self.key(tenant, id)?;
        let Some(headers) = self.head_raw(&key, "head a blob").await? else {
            return Ok(None);
        };
        let size = content_length(&headers)
            .ok_or_else(|| Error::internal("s3: a HEAD answer has no Content-Length"))?;
        meta_of(&headers, tenant, id, size)
    }

    async fn delete(&self, tenant: &TenantId, id: &BlobId) -> Result<bool> {
        let key = self.key(tenant, id)?;
        // S3 deletes a missing key without complaint, so whether it existed
        // takes a HEAD first (a concurrent delete may make both say true).
        let existed = self.head_raw(&key, "delete a blob").await?.is_some();
        if !existed {
            return Ok(false);
        }
        match self
            .call(Call {
                method: Method::DELETE,
                path: self.object_path(&key),
                query: Vec::new(),
                headers: Vec::new(),
                body: Bytes::new(),
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(Failure::S3(e)) if e.code == "NoSuchKey" => Ok(false),
            Err(f) => Err(f.into_error("delete a blob")),
        }
    }

    async fn presign(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        method: UrlMethod,
        expires_at: Timestamp,
    ) -> Result<String> {
        let method = match method {
            UrlMethod::Get => Method::GET,
            UrlMethod::Put => Method::PUT,
        };
        self.presigned_url(tenant, id, method, &[], expires_at)
    }

    /// A presigned PUT that binds `content_type` and the exact `size` into the
    /// signature: the server refuses the upload with any other content type or
    /// length. Follow it with [`BlobStore::complete_upload`].
    async fn presign_upload(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        content_type: &str,
        size: u64,
        expires_at: Timestamp,
    ) -> Result<PresignedUpload> {
        check_content_type(content_type)?;
        let limit = self.inner.config.max_blob_size;
        if size > limit as u64 {
            return Err(Error::PayloadTooLarge {
                field: "blob".into(),
                size: usize::try_from(size).unwrap_or(usize::MAX),
                limit,
            });
        }
        let headers = vec![
            ("content-type".to_owned(), content_type.to_owned()),
            ("content-length".to_owned(), size.to_string()),
        ];
        let url = self.presigned_url(tenant, id, Method::PUT, &headers, expires_at)?;
        Ok(PresignedUpload { url, headers })
    }

    /// Finishes a direct upload: reads the object back (bounded by the size
    /// limit), checks that it is `size` bytes, and stores it again with its
    /// content type, checksum and creation time recorded. The object must have
    /// arrived through a URL from [`BlobStore::presign_upload`] with the same
    /// `content_type` and `size`. [`Error::NotFound`] when nothing was uploaded.
    async fn complete_upload(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        content_type: &str,
        size: u64,
        at: Timestamp,
    ) -> Result<BlobMeta> {
        check_content_type(content_type)?;
        let key = self.key(tenant, id)?;
        let Some((_, bytes)) = self.fetch(&key, "read an uploaded object").await? else {
            return Err(Error::not_found(caas_core::EntityKind::Blob, id));
        };
        if bytes.len() as u64 != size {
            return Err(Error::invalid(
                "size",
                format!("the upload is {} bytes, not {size}", bytes.len()),
            ));
        }
        self.put(tenant, id, content_type, bytes, at).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(prefix: &str) -> Result<S3BlobStore> {
        S3BlobStore::new(S3Config {
            key_prefix: prefix.into(),
            ..S3Config::new("http://127.0.0.1:9", "bucket", "ak", "sk")
        })
    }

    #[test]
    fn config_is_checked() {
        assert!(store("caas").is_ok());
        assert!(store("a/b").is_ok());
        for bad in ["", "a//b", "..", "a/./b"] {
            assert!(store(bad).is_err(), "{bad:?}");
        }
        let bad_part = S3Config {
            part_size: 1024,
            ..S3Config::new("http://127.0.0.1:9", "bucket", "ak", "sk")
        };
        assert!(S3BlobStore::new(bad_part).is_err());
        assert!(S3BlobStore::new(S3Config::new("ftp://x", "b", "ak", "sk")).is_err());
        assert!(S3BlobStore::new(S3Config::new("http://x", "Bad_Bucket", "ak", "sk")).is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = S3Config::new("http://x", "b", "ak", "very-secret");
        assert!(!format!("{c:?}").contains("very-secret"));
        let s = S3BlobStore::new(c).unwrap();
        assert!(!format!("{s:?}").contains("very-secret"));
    }

    #[test]
    fn keys_stay_inside_their_tenant() {
        let s = store("p").unwrap();
        let t = TenantId::parse("t1").unwrap();
        let b = BlobId::parse("b:1@x").unwrap();
        assert_eq!(s.key(&t, &b).unwrap(), "p/t1/b:1@x");
        assert_eq!(s.object_path("p/t1/b:1@x"), "/bucket/p/t1/b%3A1%40x");
        assert!(s.key(&TenantId::parse("..").unwrap(), &b).is_err());
        assert!(s.key(&t, &BlobId::parse(".").unwrap()).is_err());
    }

    #[test]
    fn errors_are_typed() {
        let e = |status, code: &str| {
            S3Error {
                status,
                code: code.into(),
                message: String::new(),
            }
            .into_error("x")
        };
        assert!(matches!(
            e(503, "SlowDown"),
            Error::Unavailable {
                temporary: true,
                ..
            }
        ));
        assert!(matches!(
            e(500, ""),
            Error::Unavailable {
                temporary: true,
                ..
            }
        ));
        assert!(matches!(
            e(403, "SignatureDoesNotMatch"),
            Error::Unavailable {
                temporary: false,
                ..
            }
        ));
        assert!(matches!(e(400, "BadDigest"), Error::Internal { .. }));
    }
}
