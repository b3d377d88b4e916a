//! A real webhook receiver on 127.0.0.1: it verifies each delivery's signature
//! with the secrets it is given, fails on purpose when told to, and records
//! what it took, so tests can count deliveries exactly once after dedupe.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use caas_crypto::webhook::WebhookSigner;

/// One delivery the receiver took (answered 2xx).
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) body: serde_json::Value,
    /// The secrets (by position in [`Receiver::set_secrets`]) whose `v1` matched.
    pub(crate) signed_by: Vec<usize>,
}

#[derive(Debug, Default)]
struct Inner {
    secrets: Vec<String>,
    /// Answer 500 to this many requests from now.
    fail_next: usize,
    /// Also answer 500 to every n-th request (0: never).
    fail_every: usize,
    /// Answer 500 to everything.
    down: bool,
    /// The clock signatures are checked against (unix seconds); the system's
    /// when unset.
    now: Option<i64>,
    requests: usize,
    refused: usize,
    bad_signatures: usize,
    taken: Vec<Taken>,
}

/// A running receiver.
#[derive(Debug, Clone)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    /// Listens on a free loopback port until the test's runtime ends.
    pub(crate) async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(take))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, inner }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    /// The secrets to verify with (a delivery must match at least one).
    pub(crate) fn set_secrets(&self, secrets: &[&str]) {
        self.with(|i| i.secrets = secrets.iter().map(|s| s.to_string()).collect());
    }

    /// The time signatures are checked against.
    pub(crate) fn set_now(&self, unix_secs: u64) {
        self.with(|i| i.now = Some(i64::try_from(unix_secs).unwrap()));
    }

    pub(crate) fn fail_next(&self, n: usize) {
        self.with(|i| i.fail_next = n);
    }

    pub(crate) fn fail_every(&self, n: usize) {
        self.with(|i| i.fail_every = n);
    }

    pub(crate) fn set_down(&self, down: bool) {
        self.with(|i| i.down = down);
    }

    /// Everything taken, in arrival order (repeats included).
    pub(crate) fn taken(&self) -> Vec<Taken> {
        self.with(|i| i.taken.clone())
    }

    /// Requests refused on purpose.
    pub(crate) fn refused(&self) -> usize {
        self.with(|i| i.refused)
    }

    /// Requests whose signature did not verify, or whose body did not match
    /// its headers.
    pub(crate) fn bad_signatures(&self) -> usize {
        self.with(|i| i.bad_signatures)
    }

    /// Taken deliveries after dedupe by id: id → how many times it came.
    pub(crate) fn deduped(&self) -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        for t in self.taken() {
            *seen.entry(t.id).or_insert(0) += 1;
        }
        seen
    }
}

async fn take(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut i = inner.lock().unwrap();
    i.requests += 1;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let signature = header("caas-signature");
    let now = i.now.unwrap_or_else(|| {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        i64::try_from(since.as_secs()).unwrap()
    });
    let signed_by: Vec<usize> = i
        .secrets
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            WebhookSigner::new(s.as_bytes())
                .unwrap()
                .verify(&signature, &body, now, 300)
                .is_ok()
        })
        .map(|(n, _)| n)
        .collect();
    if signed_by.is_empty() {
        i.bad_signatures += 1;
        return StatusCode::BAD_REQUEST;
    }
    let planned = i.fail_every > 0 && i.requests.is_multiple_of(i.fail_every);
    if i.down || i.fail_next > 0 || planned {
        i.fail_next = i.fail_next.saturating_sub(1);
        i.refused += 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    // A body that does not match its headers counts as invalid, which the
    // tests check is zero (a panic here would only drop the connection).
    let id = header("caas-event-id");
    let body = serde_json::from_slice::<serde_json::Value>(&body).ok();
    let Some(body) =
        body.filter(|b| b["id"] == id.as_str() && b["kind"] == header("caas-event-kind").as_str())
    else {
        i.bad_signatures += 1;
        return StatusCode::BAD_REQUEST;
    };
    i.taken.push(Taken {
        id,
        kind: header("caas-event-kind"),
        body,
        signed_by,
    });
    StatusCode::NO_CONTENT
}
