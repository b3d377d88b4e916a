//! A Rust client for the WebSocket protocol: requests with acks, a stream of
//! events, and automatic reconnection that loses and repeats nothing.
//!
//! ```no_run
//! use caas_transport::client::{Client, ClientConfig, Notice};
//! use caas_core::ids::{ClientMsgId, ConversationId};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let (client, mut events) =
//!     Client::connect(ClientConfig::new("http://127.0.0.1:8080", "<access token>")).await?;
//! let conv = ConversationId::parse("c_1")?;
//! let ack = client.send_text(&conv, &ClientMsgId::parse("m-42")?, "hi").await?;
//! println!("stored as seq {:?}", ack.seq);
//! while let Some(notice) = events.next().await {
//!     if let Notice::Event(e) = notice {
//!         println!("{}", e.payload.kind());
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! **Delivery.** After every (re)connection the client sends `sync` frames from
//! its cursor until the log is exhausted, and drops any event it has already
//! delivered (see `dedupe`), so the event stream holds each durable event once,
//! in spite of reconnects. Requests are not retried by the client: a request in
//! flight when the connection drops fails with [`ClientError::Disconnected`], and
//! a `send` may then be repeated with the same `client_msg_id`, which the server
//! deduplicates.
//!
//! **Order.** Each conversation's messages (`message.created`) reach the
//! application in `seq` order, exactly once, and an edit, reaction, pin or
//! deletion never comes before the message it refers to. The catch-up after a
//! reconnect runs beside live delivery, and concurrent senders' live events can
//! cross, so the client holds a live event back until the gap before it is
//! filled: live durable events wait while a catch-up runs, and a message beyond
//! the last delivered seq + 1 waits (with what follows it in its conversation)
//! for the missing one, which a `sync` the client starts fetches if it does not
//! arrive live. A gap the user may not fill (messages from before they joined)
//! is passed once a `sync` has shown it cannot be filled. Ephemeral events
//! (typing, presence, call signals) are never held, so they can pass held
//! messages, and there is no order between conversations. A conversation's
//! first event seen is delivered at once and starts its tracking. At most a few
//! thousand events are held: past that they are released in order and a `sync`
//! fills in what they skipped, late. When the client closes for good, what is
//! held is delivered in order as it is.

mod dedupe;
mod order;
mod session;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use caas_core::ids::{ClientMsgId, ConversationId, Cursor};
use tokio::sync::{Mutex, Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::ws::FrameError;
use crate::ws::frames::{
    Ack, AckResult, ClientFrame, Codec, ErrorFrame, PingRequest, PongResult, Request, SendRequest,
    SentResult, WireEvent,
};

/// How a [`Client`] connects and behaves.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server: `http://host:port` or `ws://host:port` (`/v1/ws` is added when
    /// the URL has no path).
    pub url: String,
    /// Other nodes of the same platform, tried in turn after `url` when a
    /// connection attempt fails or a node closes for a restart (1012), so a
    /// client without a load balancer in front survives a node's crash or deploy.
    pub fallback_urls: Vec<String>,
    /// The user's access token, sent as `Authorization: Bearer`.
    pub token: String,
    /// JSON text frames or protobuf binary frames.
    pub codec: Codec,
    /// The device, when the token names none (`?device_id=`).
    pub device_id: Option<String>,
    /// Where catch-up starts: events after this cursor are delivered on connect (0:
    /// everything the user may see).
    pub since: Cursor,
    /// Delays between reconnection attempts.
    pub backoff: Backoff,
    /// How long a request waits for its ack.
    pub request_timeout: Duration,
    /// Notices buffered for the application; when it falls behind, the client stops
    /// reading the socket (and a server may then drop it as a slow consumer, after
    /// which it reconnects and catches up).
    pub event_buffer: usize,
    /// Events asked for per `sync` frame.
    pub sync_page: u32,
    /// After this many live events remembered for deduplication, a `sync` moves the
    /// cursor forward so they can be forgotten.
    pub checkpoint_after: usize,
    /// How long a live message that arrived ahead of its predecessor waits for
    /// it before the client asks `sync` for the gap. Concurrent senders' messages
    /// often reach a node's fan-out a moment out of `seq` order; the missing one
    /// then arrives live within milliseconds, and a sync for it would only cost
    /// the server a read.
    pub reorder_wait: Duration,
}

impl ClientConfig {
    /// JSON frames, catching up from the beginning, reconnecting from 100 ms up
    /// to 10 s, 10 s request timeout.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            fallback_urls: Vec::new(),
            token: token.into(),
            codec: Codec::Json,
            device_id: None,
            since: Cursor(0),
            backoff: Backoff::default(),
            request_timeout: Duration::from_secs(10),
            event_buffer: 1024,
            sync_page: 100,
            checkpoint_after: 4096,
            reorder_wait: Duration::from_millis(100),
        }
    }

    /// With this codec.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Catching up from this cursor.
    pub fn since(mut self, cursor: Cursor) -> Self {
        self.since = cursor;
        self
    }

    /// With another node to fail over to (see [`ClientConfig::fallback_urls`]).
    pub fn fallback(mut self, url: impl Into<String>) -> Self {
        self.fallback_urls.push(url.into());
        self
    }

    /// With these reconnection delays.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
}

/// Exponential backoff with jitter: attempt `n` waits between half and all of
/// `min(max, initial × 2ⁿ)`, so clients dropped together do not return together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay before reconnection attempt `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let full = self
            .initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        let half = full / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// What went wrong for a client call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration cannot work (a bad URL, an unusable token).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The server refused the connection before upgrading it.
    #[error("connection refused with HTTP {status} ({code}): {detail}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The problem's `api.md` code.
        code: String,
        /// The problem's detail.
        detail: String,
    },
    /// The connection could not be made or broke.
    #[error("WebSocket transport: {0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The server answered the request with an error.
    #[error("request refused ({code}): {message}")]
    Server {
        /// The `api.md` code.
        code: String,
        /// What went wrong.
        message: String,
        /// When a retry can succeed (`rate_limited`).
        retry_after: Option<Duration>,
    },
    /// The connection dropped before the ack arrived: the request may or may not
    /// have taken effect (a `send` can be repeated with the same `client_msg_id`).
    #[error("the connection dropped before the ack")]
    Disconnected,
    /// No ack within the request timeout.
    #[error("no ack within {0:?}")]
    Timeout(Duration),
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
    /// The server sent a frame this client cannot read.
    #[error("unreadable frame from the server: {0}")]
    Protocol(#[from] FrameError),
    /// The ack's result is not the shape its request answers with.
    #[error("the server answered `{request}` with another request's result")]
    UnexpectedResult {
        /// The request's `type`.
        request: &'static str,
    },
}

impl ClientError {
    /// The `api.md` code of a refused request or connection.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Server { code, .. } | ClientError::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// What the client tells the application, in order.
// Nearly every notice is an event: boxing it would add an allocation per event to
// shrink the rare others.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Notice {
    /// A domain event, delivered once.
    Event(WireEvent),
    /// A connection is up (catch-up follows).
    Connected,
    /// Catch-up after a (re)connection or a resync notice reached the end of the
    /// log; `cursor` is where the next one will start.
    Synced {
        /// The cursor.
        cursor: Cursor,
    },
    /// The connection ended; the client reconnects unless the reason is final (an
    /// expired token, a refused credential, [`Client::close`]).
    Disconnected {
        /// The close code, if the server sent one.
        code: Option<u16>,
        /// The close reason or the error.
        reason: String,
    },
    /// An error frame that answers no request of this client (for example a
    /// `rate_limited` on a frame the server could not read).
    Error(ErrorFrame),
}

/// The application's side of the event stream.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Notice>,
}

impl Events {
    /// The next notice; `None` once the client is closed for good.
    pub async fn next(&mut self) -> Option<Notice> {
        self.rx.recv().await
    }

    /// The next domain event, skipping other notices.
    pub async fn next_event(&mut self) -> Option<WireEvent> {
        loop {
            if let Notice::Event(e) = self.next().await? {
                return Some(e);
            }
        }
    }
}

/// A request on its way to the connection, with where its ack goes.
#[derive(Debug)]
struct Outgoing {
    frame: ClientFrame,
    ack: oneshot::Sender<Result<Ack, ClientError>>,
}

/// A connected client. Cheap to clone; the connection closes when the last clone
/// is dropped or [`Client::close`] is called.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::Sender<Outgoing>,
    next_ref: AtomicU64,
    cursor: Arc<AtomicU64>,
    request_timeout: Duration,
    kill: Arc<Notify>,
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

impl Client {
    /// Connects (the first attempt must succeed on one of the URLs: a refused
    /// token is an error here, not a retry loop) and starts catching up from
    /// `config.since`.
    pub async fn connect(config: ClientConfig) -> Result<(Client, Events), ClientError> {
        let urls = std::iter::once(&config.url)
            .chain(&config.fallback_urls)
            .map(|u| session::ws_url(u, config.device_id.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        let (commands, command_rx) = mpsc::channel(1024);
        let (events_tx, events_rx) = mpsc::channel(config.event_buffer.max(1));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let cursor = Arc::new(AtomicU64::new(config.since.0));
        let kill = Arc::new(Notify::new());
        let (first_tx, first_rx) = oneshot::channel();
        let request_timeout = config.request_timeout;
        let task = tokio::spawn(session::supervise(session::Supervisor {
            urls,
            config,
            commands: command_rx,
            events: events_tx,
            cursor: cursor.clone(),
            kill: kill.clone(),
            shutdown: shutdown_rx,
            first: Some(first_tx),
        }));
        match first_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(ClientError::Closed),
        }
        Ok((
            Client {
                inner: Arc::new(Inner {
                    commands,
                    next_ref: AtomicU64::new(1),
                    cursor,
                    request_timeout,
                    kill,
                    shutdown,
                    task: Mutex::new(Some(task)),
                }),
            },
            Events { rx: events_rx },
        ))
    }

    /// Sends a request and waits for its ack: the result, or the server's error as
    /// [`ClientError::Server`]. Sent once the connection is up (requests made while
    /// reconnecting wait, within the request timeout).
    pub async fn request(&self, request: Request) -> Result<AckResult, ClientError> {
        let reference = self
            .inner
            .next_ref
            .fetch_add(1, Ordering::Relaxed)
            .to_string();
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .send(Outgoing {
                frame: ClientFrame { reference, request },
                ack: tx,
            })
            .await
            .map_err(|_| ClientError::Closed)?;
        let ack = tokio::time::timeout(self.inner.request_timeout, rx)
            .await
            .map_err(|_| ClientError::Timeout(self.inner.request_timeout))?
            .map_err(|_| ClientError::Closed)??;
        ack.outcome.map_err(|e| ClientError::Server {
            code: e.code,
            message: e.message,
            retry_after: e.retry_after_ms.map(Duration::from_millis),
        })
    }

    /// Sends a text message: the stored message's id, seq and time, and whether
    /// it was a retry of the same `client_msg_id`.
    pub async fn send_text(
        &self,
        conversation: &ConversationId,
        client_msg_id: &ClientMsgId,
        body: impl Into<String>,
    ) -> Result<SentResult, ClientError> {
        let request = Request::Send(SendRequest::text(
            conversation.clone(),
            client_msg_id.clone(),
            body,
        ));
        match self.request(request).await? {
            AckResult::Sent(sent) => Ok(sent),
            _ => Err(ClientError::UnexpectedResult { request: "send" }),
        }
    }

    /// A round trip to the server: its clock.
    pub async fn ping(&self) -> Result<PongResult, ClientError> {
        match self.request(Request::Ping(PingRequest {})).await? {
            AckResult::Pong(pong) => Ok(pong),
            _ => Err(ClientError::UnexpectedResult { request: "ping" }),
        }
    }

    /// Where the next catch-up starts: the end of the last completed `sync`.
    pub fn cursor(&self) -> Cursor {
        Cursor(self.inner.cursor.load(Ordering::Acquire))
    }

    /// Drops the current connection without a close handshake, as a network
    /// failure would; the client reconnects and catches up. For tests and drills.
    pub fn drop_connection(&self) {
        self.inner.kill.notify_one();
    }

    /// Closes the connection (close 1000) and stops reconnecting.
    pub async fn close(&self) {
        self.inner.shutdown.send_replace(true);
        let task = self.inner.task.lock().await.take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
