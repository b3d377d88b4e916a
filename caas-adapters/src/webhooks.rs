//! [`HttpWebhookSender`]: webhook deliveries over HTTP(S) with `reqwest`.
//!
//! Endpoint URLs are chosen by tenants, so the client guards the platform's
//! own network: every address a name resolves to is checked with
//! [`is_public_address`] before a connection is made (so a DNS answer cannot
//! smuggle in `127.0.0.1`), literal IP hosts are checked the same way,
//! redirects are not followed and proxy variables are ignored.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use caas_core::ports::{WebhookOutcome, WebhookRequest, WebhookSender, is_public_address};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// How the client reaches endpoints.
#[derive(Debug, Clone)]
pub struct HttpWebhookConfig {
    /// The longest an attempt may take, connecting included.
    pub timeout: Duration,
    /// The longest the connection may take.
    pub connect_timeout: Duration,
    /// Allow loopback, private and link-local addresses: for development and
    /// tests on one machine, never for a platform shared by tenants.
    pub allow_private_addresses: bool,
}

impl Default for HttpWebhookConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            allow_private_addresses: false,
        }
    }
}

/// Sends deliveries with one pooled HTTP client.
#[derive(Debug, Clone)]
pub struct HttpWebhookSender {
    client: reqwest::Client,
    allow_private: bool,
}

/// What can go wrong making the client.
#[derive(Debug, thiserror::Error)]
#[error("webhook HTTP client: {0}")]
pub struct ClientError(#[from] reqwest::Error);

impl HttpWebhookSender {
    /// A sender with `config`.
    pub fn new(config: HttpWebhookConfig) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("caas-webhooks/", env!("CARGO_PKG_VERSION")));
        if !config.allow_private_addresses {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Self {
            client: builder.build()?,
            allow_private: config.allow_private_addresses,
        })
    }
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn send(&self, request: &WebhookRequest) -> WebhookOutcome {
        let url = match reqwest::Url::parse(&request.url) {
            Ok(url) => url,
            Err(e) => return WebhookOutcome::Failed(format!("bad endpoint URL: {e}")),
        };
        // The resolver only sees names; literal addresses are checked here.
        if !self.allow_private {
            let literal = url
                .host_str()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
                .and_then(|h| h.parse::<IpAddr>().ok());
            if literal.is_some_and(|ip| !is_public_address(ip)) {
                return WebhookOutcome::Failed(
                    "the endpoint's address is loopback, private or link-local".into(),
                );
            }
        }
        let mut builder = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(request.body.clone());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        match builder.send().await {
            Ok(response) => WebhookOutcome::Status(response.status().as_u16()),
            Err(e) => WebhookOutcome::Failed(describe(&e)),
        }
    }
}

/// A failure in words, without the URL's query (it may carry a token).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_request() {
        "request failed"
    } else {
        "failed"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut cause = String::new();
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {cause}")
    }
}

/// Resolves names with the system resolver and keeps only public addresses.
#[derive(Debug)]
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            // One answer for "no such name" and "a private address": the
            // failure is shown to the tenant, who must not learn from it which
            // names exist inside the platform's network.
            let refused = || -> Box<dyn std::error::Error + Send + Sync> {
                "the host does not resolve to a public address".into()
            };
            let public: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|_| refused())?
                .filter(|a| is_public_address(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(refused());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> WebhookRequest {
        WebhookRequest {
            url: url.into(),
            headers: vec![("caas-event-id", "1".into())],
            body: b"{}".to_vec(),
        }
    }

    #[tokio::test]
    async fn private_addresses_are_refused_before_connecting() {
        let sender = HttpWebhookSender::new(HttpWebhookConfig::default()).unwrap();
        for url in [
            "http://127.0.0.1:9/hook",
            "http://[::1]:9/hook",
            "http://169.254.169.254/latest",
            "http://localhost:9/hook",
        ] {
            match sender.send(&request(url)).await {
                WebhookOutcome::Failed(why) => assert!(
                    why.contains("loopback") || why.contains("public"),
                    "{url}: {why}"
                ),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_failure_not_a_panic() {
        let sender = HttpWebhookSender::new(HttpWebhookConfig {
            allow_private_addresses: true,
            ..HttpWebhookConfig::default()
        })
        .unwrap();
        // Bound, then closed: nothing listens on the port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let outcome = sender
            .send(&request(&format!("http://127.0.0.1:{port}/hook")))
            .await;
        assert!(matches!(outcome, WebhookOutcome::Failed(_)), "{outcome:?}");
        assert!(!outcome.delivered());
        assert!(matches!(
            sender.send(&request("not a url")).await,
            WebhookOutcome::Failed(_)
        ));
    }
}
