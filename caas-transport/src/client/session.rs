//! The client's one task: connect, run a connection until it ends, back off,
//! reconnect. One task owns the socket, the pending acks, the dedupe and the
//! per-conversation order, so none of them needs a lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use caas_core::ids::Cursor;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::dedupe::Dedupe;
use super::order::Order;
use super::{ClientConfig, ClientError, Notice, Outgoing};
use crate::ws::frames::{
    Ack, AckResult, ClientFrame, ErrorBody, Request, ServerFrame, SyncRequest, WireEvent,
};
use crate::ws::{Encoded, decode_server, encode_client};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The close code of a node that is shutting down (`api.md`): reconnect elsewhere.
const RESTARTING: u16 = 1012;

/// Most requests gathered into one socket flush.
const MAX_BATCH: usize = 64;

pub(super) struct Supervisor {
    /// The node first tried, then its fallbacks, as `/v1/ws` URLs.
    pub(super) urls: Vec<String>,
    pub(super) config: ClientConfig,
    pub(super) commands: mpsc::Receiver<Outgoing>,
    pub(super) events: mpsc::Sender<Notice>,
    pub(super) cursor: Arc<AtomicU64>,
    pub(super) kill: Arc<Notify>,
    pub(super) shutdown: watch::Receiver<bool>,
    /// Where the outcome of the first connection attempt goes.
    pub(super) first: Option<oneshot::Sender<Result<(), ClientError>>>,
}

/// The server URL of `/v1/ws`: `http(s)` becomes `ws(s)`, a bare host gets the
/// path, and a device goes in the query.
pub(super) fn ws_url(base: &str, device: Option<&str>) -> Result<String, ClientError> {
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| ClientError::Config(format!("`{base}` is not a URL")))?;
    let scheme = match scheme {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => return Err(ClientError::Config(format!("unsupported scheme `{other}`"))),
    };
    let mut url = format!("{scheme}://{rest}");
    if !rest.contains('/') || rest.ends_with('/') {
        url = format!("{}/v1/ws", url.trim_end_matches('/'));
    }
    if let Some(d) = device {
        caas_core::ids::DeviceId::parse(d).map_err(|e| ClientError::Config(e.to_string()))?;
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("device_id=");
        url.push_str(d);
    }
    Ok(url)
}

/// How a connection ended.
struct End {
    code: Option<u16>,
    reason: String,
    /// Do not reconnect.
    last: bool,
}

pub(super) async fn supervise(mut s: Supervisor) {
    let mut attempt: u32 = 0;
    // Which of `urls` the next attempt goes to. It moves on after a failed
    // attempt and after a node's restart notice (1012), and stays after any
    // other end: the node that dropped a connection is usually still there.
    let mut current: usize = 0;
    // The first connection tries every URL once before reporting failure.
    let mut first_failures: usize = 0;
    let mut dedupe = Dedupe::default();
    // Held events wait across reconnections: the next catch-up releases them.
    let mut order = Order::default();
    loop {
        if *s.shutdown.borrow() {
            break;
        }
        let url = s.urls[current % s.urls.len()].clone();
        match connect(&url, &s.config).await {
            Ok(socket) => {
                attempt = 0;
                if let Some(first) = s.first.take() {
                    let _ = first.send(Ok(()));
                }
                let _ = s.events.send(Notice::Connected).await;
                let end = Connection {
                    s: &mut s,
                    dedupe: &mut dedupe,
                    order: &mut order,
                    ready: Vec::new(),
                    pending: HashMap::new(),
                    sync: None,
                    next_sync: 0,
                    gap_deadline: None,
                }
                .run(socket)
                .await;
                if end.last {
                    // No catch-up will follow: what was received is delivered
                    // rather than dropped.
                    let cursor = Cursor(s.cursor.load(Ordering::Acquire));
                    let mut ready = Vec::new();
                    order.flush(&mut |e| dedupe.admit(e, cursor), &mut ready);
                    for e in ready {
                        let _ = s.events.send(Notice::Event(e)).await;
                    }
                }
                let _ = s
                    .events
                    .send(Notice::Disconnected {
                        code: end.code,
                        reason: end.reason,
                    })
                    .await;
                if end.last {
                    break;
                }
                if end.code == Some(RESTARTING) && s.urls.len() > 1 {
                    current = current.wrapping_add(1);
                    // Another node is up: go there at once, not after a backoff.
                    continue;
                }
            }
            Err(e) => {
                let last = matches!(&e, ClientError::Rejected { status, .. } if *status == 401 || *status == 403);
                current = current.wrapping_add(1);
                if s.first.is_some() {
                    first_failures += 1;
                    if last || first_failures >= s.urls.len() {
                        if let Some(first) = s.first.take() {
                            let _ = first.send(Err(e));
                        }
                        return;
                    }
                    continue;
                }
                let _ = s
                    .events
                    .send(Notice::Disconnected {
                        code: None,
                        reason: e.to_string(),
                    })
                    .await;
                if last {
                    break;
                }
            }
        }
        let delay = s.config.backoff.delay(attempt);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = s.shutdown.wait_for(|v| *v) => break,
        }
    }
    // Requests still queued will not be sent.
    s.commands.close();
    while let Ok(out) = s.commands.try_recv() {
        let _ = out.ack.send(Err(ClientError::Closed));
    }
}

async fn connect(url: &str, config: &ClientConfig) -> Result<Socket, ClientError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| ClientError::Config(e.to_string()))?;
    let auth = HeaderValue::from_str(&format!("Bearer {}", config.token))
        .map_err(|_| ClientError::Config("the token is not a valid header value".into()))?;
    request.headers_mut().insert(header::AUTHORIZATION, auth);
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(config.codec.protocol()),
    );
    // Chat frames are small: small buffers keep many clients (a load generator)
    // cheap.
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024);
    match tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(res)) => {
            let status = res.status().as_u16();
            let problem: serde_json::Value = res
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            Err(ClientError::Rejected {
                status,
                code: problem["code"].as_str().unwrap_or("unknown").to_owned(),
                detail: problem["detail"].as_str().unwrap_or_default().to_owned(),
            })
        }
        Err(e) => Err(ClientError::Transport(Box::new(e))),
    }
}

/// What the connection loop woke up for.
enum Step {
    Shutdown,
    Kill,
    Command(Option<Outgoing>),
    Frame(Option<Result<Message, tungstenite::Error>>),
    /// A gap waited `reorder_wait` without filling.
    GapWait,
}

/// Where an ack goes.
enum Pending {
    /// To a caller of `Client::request`.
    Caller(oneshot::Sender<Result<Ack, ClientError>>),
    /// To the catch-up this connection runs itself.
    Sync,
}

/// The catch-up in progress.
struct SyncRun {
    /// The dedupe generation it began.
    started: u64,
}

struct Connection<'a> {
    s: &'a mut Supervisor,
    dedupe: &'a mut Dedupe,
    order: &'a mut Order,
    /// Events the order let through, on their way to the application.
    ready: Vec<WireEvent>,
    pending: HashMap<String, Pending>,
    sync: Option<SyncRun>,
    next_sync: u64,
    /// When a held gap stops waiting for its live message and asks `sync`.
    gap_deadline: Option<tokio::time::Instant>,
}

fn to_message(e: Encoded) -> Message {
    match e {
        Encoded::Text(s) => Message::Text(s.into()),
        Encoded::Binary(b) => Message::Binary(b.into()),
    }
}

impl Connection<'_> {
    async fn run(mut self, socket: Socket) -> End {
        let (mut sink, mut stream) = socket.split();
        let end = match self.start_sync(&mut sink).await {
            Err(e) => End {
                code: None,
                reason: e.to_string(),
                last: false,
            },
            Ok(()) => self.serve(&mut sink, &mut stream).await,
        };
        for (_, p) in self.pending.drain() {
            if let Pending::Caller(tx) = p {
                let _ = tx.send(Err(ClientError::Disconnected));
            }
        }
        end
    }

    async fn serve(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<Socket, Message>,
        stream: &mut futures_util::stream::SplitStream<Socket>,
    ) -> End {
        let kill = self.s.kill.clone();
        loop {
            // Decide what happened first, then act with `self` free again.
            let step = {
                let s = &mut *self.s;
                let gap = self.gap_deadline;
                tokio::select! {
                    biased;
                    _ = s.shutdown.wait_for(|v| *v) => Step::Shutdown,
                    _ = kill.notified() => Step::Kill,
                    cmd = s.commands.recv() => Step::Command(cmd),
                    msg = stream.next() => Step::Frame(msg),
                    () = async {
                        if let Some(at) = gap {
                            tokio::time::sleep_until(at).await;
                        }
                    }, if gap.is_some() => Step::GapWait,
                }
            };
            match step {
                Step::Shutdown => {
                    let _ = sink
                        .send(Message::Close(Some(tungstenite::protocol::CloseFrame {
                            code: CloseCode::Normal,
                            reason: "client closed".into(),
                        })))
                        .await;
                    return End {
                        code: Some(1000),
                        reason: "client closed".into(),
                        last: true,
                    };
                }
                Step::Kill => {
                    return End {
                        code: None,
                        reason: "connection dropped by the client".into(),
                        last: false,
                    };
                }
                Step::Command(None) => {
                    let _ = sink.close().await;
                    return End {
                        code: Some(1000),
                        reason: "client dropped".into(),
                        last: true,
                    };
                }
                Step::GapWait => {
                    self.gap_deadline = None;
                    if self.sync.is_none()
                        && self.order.wants_sync()
                        && let Err(e) = self.start_sync(sink).await
                    {
                        return End {
                            code: None,
                            reason: e.to_string(),
                            last: false,
                        };
                    }
                }
                Step::Command(Some(first)) => {
                    if let Err(e) = self.write_batch(sink, first).await {
                        return End {
                            code: None,
                            reason: e.to_string(),
                            last: false,
                        };
                    }
                }
                Step::Frame(msg) => {
                    let (text, bytes) = match msg {
                        None => {
                            return End {
                                code: None,
                                reason: "connection lost".into(),
                                last: false,
                            };
                        }
                        Some(Err(e)) => {
                            return End {
                                code: None,
                                reason: e.to_string(),
                                last: false,
                            };
                        }
                        Some(Ok(Message::Close(frame))) => {
                            let code = frame.as_ref().map(|f| u16::from(f.code));
                            return End {
                                code,
                                reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                                // An expired token will not get better by retrying.
                                last: code == Some(4001),
                            };
                        }
                        Some(Ok(Message::Text(t))) => (true, bytes::Bytes::from(t)),
                        Some(Ok(Message::Binary(b))) => (false, b),
                        Some(Ok(_)) => continue,
                    };
                    if let Err(e) = self.on_frame(sink, text, &bytes).await {
                        return End {
                            code: None,
                            reason: e.to_string(),
                            last: false,
                        };
                    }
                }
            }
        }
    }

    /// Writes `first` and every request already queued, then flushes once.
    async fn write_batch(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<Socket, Message>,
        first: Outgoing,
    ) -> Result<(), tungstenite::Error> {
        let mut next = Some(first);
        let mut n = 0;
        while let Some(out) = next.take() {
            let frame = to_message(encode_client(self.s.config.codec, &out.frame));
            self.pending
                .insert(out.frame.reference.clone(), Pending::Caller(out.ack));
            sink.feed(frame).await?;
            n += 1;
            if n < MAX_BATCH {
                next = self.s.commands.try_recv().ok();
            }
        }
        sink.flush().await
    }

    async fn start_sync(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<Socket, Message>,
    ) -> Result<(), tungstenite::Error> {
        self.gap_deadline = None;
        if self.sync.is_none() {
            self.sync = Some(SyncRun {
                started: self.dedupe.begin(),
            });
            self.order.begin();
        }
        self.next_sync += 1;
        let reference = format!("sync-{}", self.next_sync);
        let frame = ClientFrame {
            reference: reference.clone(),
            request: Request::Sync(SyncRequest {
                since: Some(self.cursor()),
                limit: Some(self.s.config.sync_page),
            }),
        };
        self.pending.insert(reference, Pending::Sync);
        sink.send(to_message(encode_client(self.s.config.codec, &frame)))
            .await
    }

    fn cursor(&self) -> Cursor {
        Cursor(self.s.cursor.load(Ordering::Acquire))
    }

    async fn deliver(&mut self) {
        let events = &self.s.events;
        for e in self.ready.drain(..) {
            let _ = events.send(Notice::Event(e)).await;
        }
    }

    async fn on_frame(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<Socket, Message>,
        text: bool,
        bytes: &[u8],
    ) -> Result<(), tungstenite::Error> {
        let frame = match decode_server(self.s.config.codec, text, bytes) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable frame from the server");
                return Ok(());
            }
        };
        match frame {
            ServerFrame::Event { event } => {
                let cursor = self.cursor();
                let dedupe = &mut *self.dedupe;
                self.order
                    .offer(event, &mut |e| dedupe.admit(e, cursor), &mut self.ready);
                self.deliver().await;
                if self.sync.is_none() {
                    if self.dedupe.len() >= self.s.config.checkpoint_after {
                        self.start_sync(sink).await?;
                    } else if self.order.wants_sync() {
                        // A gap: its message is most likely a moment behind.
                        self.gap_deadline.get_or_insert_with(|| {
                            tokio::time::Instant::now() + self.s.config.reorder_wait
                        });
                    } else {
                        self.gap_deadline = None;
                    }
                }
            }
            ServerFrame::Ack(ack) => match self.pending.remove(&ack.reference) {
                Some(Pending::Caller(tx)) => {
                    let _ = tx.send(Ok(ack));
                }
                Some(Pending::Sync) => self.on_sync_ack(sink, ack).await?,
                None => {}
            },
            ServerFrame::Error(e) => {
                if let Some(p) = e.reference.as_ref().and_then(|r| self.pending.remove(r)) {
                    let as_ack = Ack {
                        reference: e.reference.clone().unwrap_or_default(),
                        outcome: Err(ErrorBody {
                            code: e.code.clone(),
                            message: e.message.clone(),
                            retry_after_ms: e.retry_after_ms,
                        }),
                    };
                    match p {
                        Pending::Caller(tx) => {
                            let _ = tx.send(Ok(as_ack));
                        }
                        Pending::Sync => self.on_sync_ack(sink, as_ack).await?,
                    }
                    return Ok(());
                }
                if e.resync && self.sync.is_none() {
                    self.start_sync(sink).await?;
                }
                let _ = self.s.events.send(Notice::Error(e)).await;
            }
        }
        Ok(())
    }

    async fn on_sync_ack(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<Socket, Message>,
        ack: Ack,
    ) -> Result<(), tungstenite::Error> {
        let result = match ack.outcome {
            Ok(AckResult::Synced(r)) => Some(r),
            Ok(other) => {
                tracing::warn!(result = ?other, "a sync answered with another request's result");
                None
            }
            Err(e) => {
                tracing::warn!(error = ?e, "catch-up sync refused");
                None
            }
        };
        let Some(result) = result else {
            // Refused (rate limited, say): give up this round; the next reconnect,
            // resync notice or checkpoint tries again, from the same cursor.
            if self.sync.take().is_some() {
                let cursor = self.cursor();
                let dedupe = &mut *self.dedupe;
                self.order
                    .abort(&mut |e| dedupe.admit(e, cursor), &mut self.ready);
                self.deliver().await;
            }
            return Ok(());
        };
        self.s
            .cursor
            .fetch_max(result.next_cursor.0, Ordering::AcqRel);
        if result.has_more {
            return self.start_sync(sink).await;
        }
        if let Some(run) = self.sync.take() {
            // Held live copies meet the dedupe before it forgets what the sync
            // brought, so those the sync also delivered are dropped.
            let cursor = self.cursor();
            let dedupe = &mut *self.dedupe;
            self.order
                .complete(&mut |e| dedupe.admit(e, cursor), &mut self.ready);
            self.dedupe.complete(run.started);
            self.deliver().await;
        }
        let _ = self
            .s
            .events
            .send(Notice::Synced {
                cursor: self.cursor(),
            })
            .await;
        if self.order.wants_sync() {
            self.start_sync(sink).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_the_ws_scheme_and_path() {
        assert_eq!(
            ws_url("http://127.0.0.1:8080", None).unwrap(),
            "ws://127.0.0.1:8080/v1/ws"
        );
        assert_eq!(
            ws_url("ws://h:1/", Some("phone")).unwrap(),
            "ws://h:1/v1/ws?device_id=phone"
        );
        assert_eq!(ws_url("ws://h:1/custom", None).unwrap(), "ws://h:1/custom");
        assert!(ws_url("ftp://h", None).is_err());
        assert!(ws_url("http://h", Some("bad id")).is_err());
    }
}
