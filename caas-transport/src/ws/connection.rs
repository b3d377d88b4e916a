//! One WebSocket connection, served by one task: it reads a frame, runs the
//! request it carries and writes the reply; all the while it drains the
//! connection's outbox (events from fan-out) into as few socket writes as
//! possible, pings, and watches for a close. The socket is read first whenever
//! it has something, so a busy outbox never starves the client's requests.
//!
//! One task instead of a reader and a writer halves what an idle connection
//! costs, and the request's own state (the deepest future here) is boxed for the
//! request's duration only, so an idle connection holds little beyond its
//! socket. Requests on one connection run one at a time, in order, as before. A
//! client that does not read what is written to it blocks the write, which times
//! out and closes it as a slow consumer; fan-out never waits on it (see
//! [`super::registry`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use caas_core::Caas;
use caas_core::Principal;
use caas_core::ids::{ConversationId, CorrelationId};
use caas_core::model::PresenceStatus;
use caas_core::ratelimit::{self, Decision};
use caas_core::time::Timestamp;
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;

use super::codec::{self, Encoded};
use super::config::WsConfig;
use super::frames::{
    Ack, AckResult, ClientFrame, DoneResult, EditedResult, ErrorFrame, MediaResult, MessageRef,
    MessagesResult, PongResult, PresenceResult, PresencesResult, ReceiptResult, ReceiptsResult,
    Request, SentResult, SyncedResult, TypingResult,
};
use super::registry::{CloseReason, ConnHandle, Next, Registration, message};
use crate::dispatch::{CompleteMedia, DeleteMedia, MediaUrl, Pinning, Reaction, Sync, dispatch};
use crate::problem::ApiError;

/// Everything a connection needs once upgraded.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) caas: Arc<Caas>,
    pub(crate) config: Arc<WsConfig>,
    pub(crate) registration: Registration,
    /// When the access token stops being valid (expiry plus leeway).
    pub(crate) expires_at: Option<Timestamp>,
    /// The upgrade request's `Host` and `X-Forwarded-*` headers: URLs this
    /// server serves are made absolute with them, as on REST.
    pub(crate) origin: axum::http::HeaderMap,
}

/// Serves one upgraded connection until it closes.
pub(crate) async fn run(mut socket: WebSocket, session: Session) {
    let Session {
        caas,
        config,
        mut registration,
        expires_at,
        origin,
    } = session;
    let handle = registration.handle().clone();
    let principal = handle.principal.clone();
    presence(&caas, &principal, PresenceStatus::Online).await;

    let mut conn = Conn {
        caas: &caas,
        config: &config,
        handle: &handle,
        principal: &principal,
        expires_at,
        origin: &origin,
        frame_tat: None,
        flood_tat: None,
        typing: Vec::new(),
        reply: Vec::new(),
    };
    let ended = conn.serve(&mut socket).await;
    handle.close(ended.clone());
    // A socket that failed or stopped draining gets no goodbye; otherwise the
    // first reason asked (perhaps while the loop ended) is the one told.
    let reason = match ended {
        CloseReason::GONE => ended,
        _ => handle.close_reason().unwrap_or(ended),
    };
    // Fan-out stops before the goodbye, so the drain below ends.
    let last = registration.unlist();
    goodbye(&mut socket, &handle, &config, &reason).await;
    if last {
        presence(&caas, &principal, PresenceStatus::Offline).await;
    }
    tracing::debug!(
        connection = handle.id,
        reason = reason.reason,
        "WebSocket connection closed"
    );
}

/// Reports a presence change; failures (a suspended tenant, a policy) only cost
/// the presence, never the connection.
async fn presence(caas: &Caas, principal: &Principal, status: PresenceStatus) {
    let p = principal
        .clone()
        .with_correlation_id(CorrelationId::generate(caas.now()));
    if let Err(e) = caas.set_presence(&p, status).await {
        tracing::debug!(error = %e, ?status, "presence not updated");
    }
}

/// The last frames and the close frame, bounded by `close_timeout`. Nothing is
/// sent to a socket that failed or a peer that closed first (only tungstenite's
/// close reply, which flushing sends).
async fn goodbye(
    socket: &mut WebSocket,
    handle: &ConnHandle,
    config: &WsConfig,
    reason: &CloseReason,
) {
    if reason == &CloseReason::GONE {
        return;
    }
    let bye = async {
        if reason.drain {
            while let Some(m) = handle.take() {
                socket.feed(m).await?;
            }
        }
        match reason.code {
            Some(code) => {
                socket
                    .send(Message::Close(Some(CloseFrame {
                        code,
                        reason: reason.reason.into(),
                    })))
                    .await
            }
            None => socket.flush().await,
        }
    };
    let _ = tokio::time::timeout(config.close_timeout, bye).await;
}

/// What woke the connection's task.
enum Step {
    /// Frames wait in the outbox.
    Flush,
    Read(Option<Result<Message, axum::Error>>),
    Ping,
}

/// Typing throttle state for one conversation.
#[derive(Debug)]
struct TypingSlot {
    conversation: ConversationId,
    last_start: Timestamp,
    active: bool,
}

/// Conversations a connection tracks for the typing throttle; the oldest is
/// forgotten beyond this, which at worst lets one extra `typing` through.
const TYPING_SLOTS: usize = 16;

/// Why a request ended without an ack.
enum Abort {
    /// The connection must close.
    Close(CloseReason),
}

/// The reader's state.
struct Conn<'a> {
    caas: &'a Arc<Caas>,
    config: &'a WsConfig,
    handle: &'a ConnHandle,
    principal: &'a Principal,
    expires_at: Option<Timestamp>,
    origin: &'a axum::http::HeaderMap,
    frame_tat: Option<u64>,
    flood_tat: Option<u64>,
    typing: Vec<TypingSlot>,
    /// The frames answering the request being served.
    reply: Vec<Message>,
}

/// The per-frame metrics, looked up once per connection rather than per write
/// (a lookup hashes the name and labels, a tenth of a delivery's cost).
struct Meters {
    frames_out: metrics::Counter,
    frames_per_write: metrics::Histogram,
    text_in: metrics::Counter,
    binary_in: metrics::Counter,
}

impl Meters {
    fn new() -> Self {
        Self {
            frames_out: metrics::counter!("caas_ws_frames_out_total"),
            frames_per_write: metrics::histogram!("caas_ws_frames_per_write"),
            text_in: metrics::counter!("caas_ws_frames_in_total", "frame" => "text"),
            binary_in: metrics::counter!("caas_ws_frames_in_total", "frame" => "binary"),
        }
    }
}

impl Conn<'_> {
    /// Serves the connection until it must close; returns why.
    async fn serve(&mut self, socket: &mut WebSocket) -> CloseReason {
        let (handle, config) = (self.handle, self.config);
        let meters = Meters::new();
        let idle = tokio::time::sleep(config.idle_timeout);
        tokio::pin!(idle);
        // Pinged even while events flow: a client that only listens proves it is
        // alive (and keeps the idle timer from firing) by its pongs.
        let period = config.ping_interval.max(Duration::from_millis(10));
        let mut ping = tokio::time::interval_at(Instant::now() + period, period);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let pending = match handle.next() {
                Next::Close(reason) => return reason,
                Next::Write => true,
                Next::Wait => false,
            };
            let step = tokio::select! {
                biased;
                // The socket first: a busy outbox must not starve the client's
                // requests and pongs (nor let the idle timer fire on them).
                m = socket.next() => Step::Read(m),
                () = &mut idle => return CloseReason::IDLE,
                _ = ping.tick() => Step::Ping,
                () = std::future::ready(()), if pending => Step::Flush,
                () = handle.woken(), if !pending => continue,
            };
            let reply = match step {
                Step::Flush => Vec::new(),
                Step::Ping => vec![Message::Ping(bytes::Bytes::new())],
                Step::Read(next) => {
                    idle.as_mut().reset(Instant::now() + config.idle_timeout);
                    let frame = match next {
                        None => return CloseReason::GONE,
                        Some(Err(e)) => return read_error(e),
                        Some(Ok(Message::Close(_))) => return CloseReason::PEER_CLOSED,
                        // A pong answers our ping: a silent client still meets its
                        // token's end within a ping interval.
                        Some(Ok(Message::Pong(_))) if self.expired(self.now()) => {
                            return CloseReason::TOKEN_EXPIRED;
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(frame)) => frame,
                    };
                    let (text, bytes) = match &frame {
                        Message::Text(t) => (true, t.as_bytes()),
                        Message::Binary(b) => (false, &b[..]),
                        _ => continue,
                    };
                    if text {
                        meters.text_in.increment(1);
                    } else {
                        meters.binary_in.increment(1);
                    }
                    // Boxed: the request's futures are the largest state here, and
                    // an idle connection should not carry them.
                    let request = Box::pin(self.on_frame(text, bytes));
                    match drain_while(request, socket, handle, config, &meters).await {
                        Ok(Ok(())) => {}
                        Ok(Err(Abort::Close(reason))) | Err(reason) => return reason,
                    }
                    // Taken, not drained: a large reply's buffer leaves with it.
                    std::mem::take(&mut self.reply)
                }
            };
            if let Err(reason) = write(socket, handle, config, &meters, reply).await {
                return reason;
            }
        }
    }

    fn now(&self) -> Timestamp {
        self.caas.now()
    }

    fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }

    /// Adds a frame to the reply, written once the request is done.
    fn send(&mut self, frame: Encoded) {
        self.reply.push(message(frame));
    }

    fn send_error(&mut self, e: ErrorFrame) -> Result<(), Abort> {
        self.send(codec::encode_error(self.handle.codec, &e));
        Ok(())
    }

    async fn on_frame(&mut self, text: bool, bytes: &[u8]) -> Result<(), Abort> {
        let now = self.now();
        if self.expired(now) {
            return Err(Abort::Close(CloseReason::TOKEN_EXPIRED));
        }
        match ratelimit::check(&self.config.frame_quota, self.frame_tat, now) {
            Decision::Allow { new_tat, .. } => self.frame_tat = Some(new_tat),
            Decision::Deny { retry_after } => {
                // Refused frames are counted too: a client that keeps going past
                // its limit is flooding, and is closed.
                return match ratelimit::check(&self.config.flood_quota, self.flood_tat, now) {
                    Decision::Allow { new_tat, .. } => {
                        self.flood_tat = Some(new_tat);
                        let e = ApiError::rate_limited(
                            format!(
                                "more than {} frames per {} s on this connection",
                                self.config.frame_quota.limit, self.config.frame_quota.period_secs
                            ),
                            retry_after,
                        );
                        self.send_error(e.into_error_frame(None, false))
                    }
                    Decision::Deny { .. } => Err(Abort::Close(CloseReason::FLOOD)),
                };
            }
        }
        if bytes.len() > self.config.max_frame_bytes {
            let e = codec::FrameError::TooLarge {
                size: bytes.len(),
                limit: self.config.max_frame_bytes,
            };
            return self.send_error(e.to_frame());
        }
        let frame = match codec::decode_client(self.handle.codec, text, bytes) {
            Ok(f) => f,
            Err(e) => return self.send_error(e.to_frame()),
        };
        self.on_request(frame, now).await
    }

    async fn on_request(&mut self, frame: ClientFrame, now: Timestamp) -> Result<(), Abort> {
        let ClientFrame { reference, request } = frame;
        // Each frame is its own request: its events carry a fresh correlation id.
        let p = self
            .principal
            .clone()
            .with_correlation_id(CorrelationId::generate(now));
        let kind = request.kind();
        let outcome = self.call(&p, request, now).await.map_err(|e| {
            // The same mapping as REST: internal causes are logged, not sent.
            let e = ApiError::from(e);
            tracing::debug!(request = kind, code = e.code(), "WebSocket request refused");
            e.into_error_body()
        });
        self.send(codec::encode_ack(
            self.handle.codec,
            &Ack { reference, outcome },
        ));
        Ok(())
    }

    /// Runs a request through the dispatch every door shares; what is the
    /// connection's own (the typing throttle, the presence its heartbeat
    /// renews, sync pages as event frames) happens around it.
    async fn call(
        &mut self,
        p: &Principal,
        request: Request,
        now: Timestamp,
    ) -> Result<AckResult, caas_core::Error> {
        let caas = self.caas.as_ref();
        let changed = |m: caas_core::model::Message| {
            AckResult::Message(MessageRef {
                message_id: m.id,
                seq: m.seq,
            })
        };
        Ok(match request {
            Request::Send(s) => {
                let sent = dispatch(caas, p, s).await?;
                AckResult::Sent(SentResult {
                    message_id: sent.message.id,
                    conversation_id: sent.message.conversation,
                    seq: sent.message.seq,
                    created_at: sent.message.created_at,
                    duplicate: sent.duplicate,
                })
            }
            Request::Edit(e) => {
                let m = dispatch(caas, p, e).await?;
                AckResult::Edited(EditedResult {
                    edited_at: m.edited_at.unwrap_or(m.created_at),
                    message_id: m.id,
                    seq: m.seq,
                })
            }
            Request::Delete(d) => changed(dispatch(caas, p, d).await?),
            Request::React(request) => {
                changed(dispatch(caas, p, Reaction { request, add: true }).await?)
            }
            Request::Unreact(request) => changed(
                dispatch(
                    caas,
                    p,
                    Reaction {
                        request,
                        add: false,
                    },
                )
                .await?,
            ),
            Request::Pin(request) => changed(
                dispatch(
                    caas,
                    p,
                    Pinning {
                        request,
                        pinned: true,
                    },
                )
                .await?,
            ),
            Request::Unpin(request) => changed(
                dispatch(
                    caas,
                    p,
                    Pinning {
                        request,
                        pinned: false,
                    },
                )
                .await?,
            ),
            Request::Pins(r) => AckResult::Messages(MessagesResult {
                messages: dispatch(caas, p, r).await?,
            }),
            Request::Read(r) => {
                let receipt = dispatch(caas, p, r).await?;
                AckResult::Receipt(ReceiptResult {
                    conversation_id: receipt.conversation,
                    delivered: receipt.delivered,
                    read: receipt.read,
                })
            }
            Request::Receipts(r) => AckResult::Receipts(ReceiptsResult {
                receipts: dispatch(caas, p, r).await?,
            }),
            Request::Typing(t) => {
                let (conversation, typing) = (t.conversation_id.clone(), t.typing);
                let forwarded = self.typing_gate(&conversation, typing, now);
                if forwarded {
                    dispatch(caas, p, t).await?;
                    self.typing_commit(&conversation, typing, now);
                }
                AckResult::Typing(TypingResult { forwarded })
            }
            Request::Presence(s) => {
                let status = s.status;
                let presence = dispatch(caas, p, s).await?;
                // The heartbeat renews what this connection last said.
                self.handle.set_status(status);
                AckResult::Presence(PresenceResult {
                    status: presence.status,
                    last_seen: presence.last_seen,
                })
            }
            Request::PresenceOf(q) => AckResult::Presences(PresencesResult {
                presences: dispatch(caas, p, q).await?,
            }),
            Request::CallSignal(c) => {
                dispatch(caas, p, c).await?;
                AckResult::Done(DoneResult {})
            }
            Request::MediaUpload(r) => {
                let ticket = dispatch(caas, p, r).await?;
                AckResult::Upload(crate::routes::media::ticket(ticket, self.origin))
            }
            Request::MediaComplete(r) => AckResult::Media(MediaResult {
                media: dispatch(caas, p, CompleteMedia(r)).await?,
            }),
            Request::MediaUrl(r) => {
                let url = dispatch(caas, p, MediaUrl(r)).await?;
                AckResult::Download(crate::routes::media::download(url, self.origin))
            }
            Request::MediaDelete(r) => {
                dispatch(caas, p, DeleteMedia(r)).await?;
                AckResult::Done(DoneResult {})
            }
            Request::Sync(request) => {
                let max_page = self.config.max_sync_page;
                let page = dispatch(caas, p, Sync { request, max_page }).await?;
                // Events go out as ordinary event frames carrying their cursor, so
                // no frame is larger than one event; the ack follows them.
                for e in &page.events {
                    self.send(codec::encode_event(
                        self.handle.codec,
                        &e.event,
                        Some(e.cursor),
                    ));
                }
                AckResult::Synced(SyncedResult {
                    next_cursor: page.next_cursor,
                    has_more: page.has_more,
                    count: u32::try_from(page.events.len()).unwrap_or(u32::MAX),
                })
            }
            Request::Ping(r) => AckResult::Pong(PongResult {
                server_time: dispatch(caas, p, r).await?,
            }),
        })
    }

    /// Whether a `typing` should go out: a start at most once per interval per
    /// conversation, a stop only after a start went out.
    fn typing_gate(&self, conv: &ConversationId, typing: bool, now: Timestamp) -> bool {
        let slot = self.typing.iter().find(|s| &s.conversation == conv);
        match (typing, slot) {
            (true, Some(s)) => !s.active || now.since(s.last_start) >= self.config.typing_interval,
            (true, None) => true,
            (false, Some(s)) => s.active,
            (false, None) => false,
        }
    }

    fn typing_commit(&mut self, conv: &ConversationId, typing: bool, now: Timestamp) {
        if let Some(s) = self.typing.iter_mut().find(|s| &s.conversation == conv) {
            s.active = typing;
            if typing {
                s.last_start = now;
            }
            return;
        }
        if self.typing.len() >= TYPING_SLOTS
            && let Some(oldest) = self
                .typing
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.last_start)
                .map(|(i, _)| i)
        {
            self.typing.swap_remove(oldest);
        }
        self.typing.push(TypingSlot {
            conversation: conv.clone(),
            last_start: now,
            active: typing,
        });
    }
}

/// Runs `request` while writing what fan-out queues for this connection
/// meanwhile, so a slow request (a `sync` page, a send behind a busy disk) does
/// not hold up the connection's events or fill its outbox.
async fn drain_while<F: std::future::Future>(
    mut request: std::pin::Pin<Box<F>>,
    socket: &mut WebSocket,
    handle: &ConnHandle,
    config: &WsConfig,
    meters: &Meters,
) -> Result<F::Output, CloseReason> {
    loop {
        tokio::select! {
            biased;
            out = &mut request => return Ok(out),
            () = handle.woken() => match handle.next() {
                // A drained close (a restart) lets the request finish first; the
                // serve loop closes right after.
                Next::Close(reason) if !reason.drain => return Err(reason),
                Next::Close(_) | Next::Wait => {}
                Next::Write => write(socket, handle, config, meters, Vec::new()).await?,
            },
        }
    }
}

/// Writes `first`, then what the outbox holds (up to `max_batch` frames in all,
/// beyond `first`'s own), and flushes once: a burst of events costs one socket
/// write.
async fn write(
    socket: &mut WebSocket,
    handle: &ConnHandle,
    config: &WsConfig,
    meters: &Meters,
    first: Vec<Message>,
) -> Result<(), CloseReason> {
    let max_batch = config.max_batch.max(1);
    let batch = async {
        let mut frames = 0usize;
        for m in first {
            socket.feed(m).await?;
            frames += 1;
        }
        while frames < max_batch {
            let Some(m) = handle.take() else { break };
            socket.feed(m).await?;
            frames += 1;
        }
        let r = socket.flush().await;
        meters.frames_out.increment(frames as u64);
        meters.frames_per_write.record(frames as f64);
        r
    };
    tokio::pin!(batch);
    // Most writes complete at once (the socket buffer has room). Only one that
    // has to wait gets a timer and a watch on the close, each of which costs a
    // lock in the runtime.
    if let Some(r) = futures_util::FutureExt::now_or_never(batch.as_mut()) {
        return r.map_err(|_| CloseReason::GONE);
    }
    let batch = tokio::time::timeout(config.write_timeout, batch);
    tokio::pin!(batch);
    loop {
        tokio::select! {
            biased;
            // A socket that does not drain must not keep the connection alive
            // once fan-out has given up on it.
            () = handle.woken() => {
                if let Some(reason) = handle.close_reason().filter(|r| !r.drain) {
                    return Err(reason);
                }
            }
            r = &mut batch => return match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(CloseReason::GONE),
                // The peer stopped reading, even if nothing is fanned out to it
                // (only its own replies): no goodbye, it would not be read.
                Err(_) => {
                    metrics::counter!("caas_ws_slow_consumer_closes_total").increment(1);
                    handle.close(CloseReason::SLOW_CONSUMER);
                    Err(CloseReason::GONE)
                }
            },
        }
    }
}

/// What a read error means for the connection. A peer that breaks the protocol
/// is told so (RFC 6455 §7.4.1: 1002, or 1007 for text that is not UTF-8)
/// before the connection closes.
fn read_error(e: axum::Error) -> CloseReason {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match e.into_inner().downcast::<WsError>() {
        Ok(e) if matches!(*e, WsError::Capacity(_)) => CloseReason::TOO_BIG,
        Ok(e) if matches!(*e, WsError::Utf8(_)) => CloseReason::INVALID_UTF8,
        Ok(e) if matches!(*e, WsError::Protocol(_)) => {
            tracing::debug!(error = %e, "WebSocket protocol violation");
            CloseReason::PROTOCOL_ERROR
        }
        Ok(e) => {
            tracing::debug!(error = %e, "WebSocket read failed");
            CloseReason::GONE
        }
        Err(e) => {
            tracing::debug!(error = %e, "WebSocket read failed");
            CloseReason::GONE
        }
    }
}
