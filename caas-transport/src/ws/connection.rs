//! One WebSocket connection: a reader that turns frames into service calls and
//! acks, a bounded outbound queue, and a writer task that drains the queue into
//! as few socket writes as possible.
//!
//! The reader awaits its own queue (a client that does not read its acks stops
//! being read: that is its own backpressure), while fan-out only ever `try_send`s
//! into it (see [`super::registry`]). Either side ends the connection by setting
//! its close reason; the other sees it and stops.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use caas_core::Caas;
use caas_core::Principal;
use caas_core::ids::{ConversationId, CorrelationId, Cursor};
use caas_core::model::{PresenceStatus, ReceiptKind};
use caas_core::ratelimit::{self, Decision};
use caas_core::service::SendMessage;
use caas_core::time::Timestamp;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::codec::{self, Encoded};
use super::config::WsConfig;
use super::frames::{Ack, AckResult, ClientFrame, ErrorBody, ErrorFrame, Request};
use super::registry::{CloseReason, ConnHandle, Registration, message};
use crate::problem::ApiError;

/// Everything a connection needs once upgraded.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) caas: Arc<Caas>,
    pub(crate) config: Arc<WsConfig>,
    pub(crate) registration: Registration,
    pub(crate) outbound: mpsc::Receiver<Message>,
    /// When the access token stops being valid (expiry plus leeway).
    pub(crate) expires_at: Option<Timestamp>,
}

/// Serves one upgraded connection until it closes.
pub(crate) async fn run(socket: WebSocket, session: Session) {
    let Session {
        caas,
        config,
        mut registration,
        outbound,
        expires_at,
    } = session;
    let handle = registration.handle().clone();
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write_loop(sink, outbound, handle.clone(), config.clone()));

    let principal = handle.principal.clone();
    presence(&caas, &principal, PresenceStatus::Online).await;

    let mut conn = Conn {
        caas: &caas,
        config: &config,
        handle: &handle,
        principal: &principal,
        expires_at,
        frame_tat: None,
        flood_tat: None,
        typing: Vec::new(),
    };
    let reason = conn.read_loop(stream).await;
    handle.close(reason);
    // The writer bounds its own goodbye by `close_timeout`; a join error means it
    // panicked, which is logged by the runtime and changes nothing here.
    let _ = writer.await;
    if registration.unlist() {
        presence(&caas, &principal, PresenceStatus::Offline).await;
    }
    tracing::debug!(
        connection = handle.id,
        reason = handle.close_reason().map(|r| r.reason),
        "WebSocket connection closed"
    );
}

/// Reports a presence change; failures (a suspended tenant, a policy) only cost
/// the presence, never the connection.
async fn presence(caas: &Caas, principal: &Principal, status: PresenceStatus) {
    let p = principal
        .clone()
        .with_correlation_id(CorrelationId::generate(caas.backends().clock.now()));
    if let Err(e) = caas.set_presence(&p, status).await {
        tracing::debug!(error = %e, ?status, "presence not updated");
    }
}

/// The writer: waits for a frame, then feeds every frame already queued (up to
/// `max_batch`) and flushes once, so a burst of events costs one write.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Message>,
    handle: Arc<ConnHandle>,
    config: Arc<WsConfig>,
) {
    let mut close = handle.watch_close();
    let max_batch = config.max_batch.max(1);
    let mut ping = tokio::time::interval_at(
        Instant::now() + config.ping_interval,
        config.ping_interval.max(Duration::from_millis(10)),
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let healthy = loop {
        let first = tokio::select! {
            biased;
            _ = close.wait_for(Option::is_some) => break true,
            m = rx.recv() => match m {
                Some(m) => m,
                None => break true,
            },
            // Pinged even while events flow: a client that only listens proves it
            // is alive (and keeps the reader's idle timer from firing) by its pongs.
            _ = ping.tick() => Message::Ping(bytes::Bytes::new()),
        };
        let batch = async {
            sink.feed(first).await?;
            let mut frames = 1u64;
            for _ in 1..max_batch {
                match rx.try_recv() {
                    Ok(m) => {
                        sink.feed(m).await?;
                        frames += 1;
                    }
                    Err(_) => break,
                }
            }
            let r = sink.flush().await;
            metrics::counter!("caas_ws_frames_out_total").increment(frames);
            metrics::histogram!("caas_ws_frames_per_write").record(frames as f64);
            r
        };
        // A socket that does not drain must not keep the writer (and so the
        // connection) alive once fan-out has given up on it, nor when its peer
        // stops reading while nothing is fanned out to it (only its own acks).
        tokio::select! {
            biased;
            _ = close.wait_for(|c| c.as_ref().is_some_and(|c| !c.drain)) => break true,
            r = tokio::time::timeout(config.write_timeout, batch) => match r {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break false,
                Err(_) => {
                    metrics::counter!("caas_ws_slow_consumer_closes_total").increment(1);
                    handle.close(CloseReason::SLOW_CONSUMER);
                    break false;
                }
            },
        }
    };
    if !healthy {
        handle.close(CloseReason::GONE);
        return;
    }
    let reason = handle.close_reason().unwrap_or(CloseReason::GONE);
    let goodbye = async {
        if reason.drain {
            while let Ok(m) = rx.try_recv() {
                sink.feed(m).await?;
            }
        }
        match reason.code {
            Some(code) => {
                sink.send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.reason.into(),
                })))
                .await
            }
            // The peer closed: flushing sends tungstenite's close reply.
            None => sink.flush().await,
        }
    };
    let _ = tokio::time::timeout(config.close_timeout, goodbye).await;
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
    frame_tat: Option<u64>,
    flood_tat: Option<u64>,
    typing: Vec<TypingSlot>,
}

impl Conn<'_> {
    async fn read_loop(&mut self, mut stream: SplitStream<WebSocket>) -> CloseReason {
        let mut close = self.handle.watch_close();
        let idle = tokio::time::sleep(self.config.idle_timeout);
        tokio::pin!(idle);
        loop {
            let next = tokio::select! {
                biased;
                _ = close.wait_for(Option::is_some) => {
                    return self.handle.close_reason().unwrap_or(CloseReason::GONE);
                }
                _ = &mut idle => return CloseReason::IDLE,
                m = stream.next() => m,
            };
            idle.as_mut()
                .reset(Instant::now() + self.config.idle_timeout);
            let outcome = match next {
                None => return CloseReason::GONE,
                Some(Err(e)) => return read_error(e),
                Some(Ok(Message::Close(_))) => return CloseReason::PEER_CLOSED,
                // A pong answers our ping: a silent client still meets its token's
                // end within a ping interval.
                Some(Ok(Message::Pong(_))) if self.expired(self.now()) => {
                    return CloseReason::TOKEN_EXPIRED;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Text(t))) => self.on_frame(true, t.as_bytes()).await,
                Some(Ok(Message::Binary(b))) => self.on_frame(false, &b).await,
            };
            if let Err(Abort::Close(reason)) = outcome {
                return reason;
            }
        }
    }

    fn now(&self) -> Timestamp {
        self.caas.backends().clock.now()
    }

    fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }

    /// Queues a frame, waiting for room.
    async fn send(&self, frame: Encoded) -> Result<(), Abort> {
        self.handle
            .sender()
            .send(message(frame))
            .await
            .map_err(|_| Abort::Close(CloseReason::GONE))
    }

    async fn send_error(&self, e: ErrorFrame) -> Result<(), Abort> {
        self.send(codec::encode_error(self.handle.codec, &e)).await
    }

    async fn on_frame(&mut self, text: bool, bytes: &[u8]) -> Result<(), Abort> {
        metrics::counter!("caas_ws_frames_in_total", "frame" => if text { "text" } else { "binary" }).increment(1);
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
                        self.send_error(ErrorFrame {
                            reference: None,
                            code: "rate_limited".into(),
                            message: format!(
                                "more than {} frames per {} s on this connection",
                                self.config.frame_quota.limit, self.config.frame_quota.period_secs
                            ),
                            retry_after_ms: Some(millis(retry_after)),
                            resync: false,
                        })
                        .await
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
            return self.send_error(e.to_frame()).await;
        }
        let frame = match codec::decode_client(self.handle.codec, text, bytes) {
            Ok(f) => f,
            Err(e) => return self.send_error(e.to_frame()).await,
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
        let outcome = match self.call(&p, request, now).await {
            Ok(r) => Ok(r),
            Err(Failure::Core(e)) => Err(e),
            Err(Failure::Abort(a)) => return Err(a),
        };
        let ack = match outcome {
            Ok(result) => Ack {
                reference,
                ok: true,
                result: Some(result),
                error: None,
            },
            Err(e) => {
                // The same mapping as REST: internal causes are logged, not sent.
                let e = ApiError::from(e);
                tracing::debug!(request = kind, code = e.code(), "WebSocket request refused");
                Ack {
                    reference,
                    ok: false,
                    result: None,
                    error: Some(ErrorBody {
                        code: e.code().to_owned(),
                        message: e.detail().to_owned(),
                        retry_after_ms: e.retry_after().map(millis),
                    }),
                }
            }
        };
        self.send(codec::encode_ack(self.handle.codec, &ack)).await
    }

    async fn call(
        &mut self,
        p: &Principal,
        request: Request,
        now: Timestamp,
    ) -> Result<AckResult, Failure> {
        let caas = self.caas;
        Ok(match request {
            Request::Send(s) => {
                let sent = caas
                    .send_message(
                        p,
                        &s.conversation_id,
                        SendMessage {
                            client_msg_id: s.client_msg_id,
                            body: s.body,
                            ciphertext: s.ciphertext,
                            attachments: s.attachments,
                            reply_to: s.reply_to,
                            mentions: s.mentions,
                        },
                    )
                    .await?;
                AckResult {
                    message_id: Some(sent.message.id),
                    conversation_id: Some(sent.message.conversation),
                    seq: Some(sent.message.seq),
                    created_at: Some(sent.message.created_at),
                    duplicate: Some(sent.duplicate),
                    ..AckResult::default()
                }
            }
            Request::Edit(e) => {
                let m = caas
                    .edit_message(p, &e.conversation_id, &e.message_id, &e.body)
                    .await?;
                AckResult {
                    message_id: Some(m.id),
                    seq: Some(m.seq),
                    edited_at: m.edited_at,
                    ..AckResult::default()
                }
            }
            Request::Delete(d) => {
                let m = caas
                    .delete_message(p, &d.conversation_id, &d.message_id)
                    .await?;
                AckResult {
                    message_id: Some(m.id),
                    seq: Some(m.seq),
                    ..AckResult::default()
                }
            }
            Request::React(r) => {
                let m = caas
                    .react(p, &r.conversation_id, &r.message_id, &r.emoji, true)
                    .await?;
                AckResult {
                    message_id: Some(m.id),
                    seq: Some(m.seq),
                    ..AckResult::default()
                }
            }
            Request::Unreact(r) => {
                let m = caas
                    .react(p, &r.conversation_id, &r.message_id, &r.emoji, false)
                    .await?;
                AckResult {
                    message_id: Some(m.id),
                    seq: Some(m.seq),
                    ..AckResult::default()
                }
            }
            Request::Read(r) => {
                let kind = if r.delivered_only {
                    ReceiptKind::Delivered
                } else {
                    ReceiptKind::Read
                };
                let receipt = caas.mark(p, &r.conversation_id, kind, r.seq).await?;
                AckResult {
                    conversation_id: Some(receipt.conversation),
                    delivered: Some(receipt.delivered),
                    read: Some(receipt.read),
                    ..AckResult::default()
                }
            }
            Request::Typing(t) => {
                let forwarded = match self.typing_gate(&t.conversation_id, t.typing, now) {
                    false => false,
                    true => {
                        caas.typing(p, &t.conversation_id, t.typing).await?;
                        self.typing_commit(&t.conversation_id, t.typing, now);
                        true
                    }
                };
                AckResult {
                    forwarded: Some(forwarded),
                    ..AckResult::default()
                }
            }
            Request::Presence(s) => {
                let presence = caas.set_presence(p, s.status).await?;
                // The heartbeat renews what this connection last said.
                self.handle.set_status(s.status);
                AckResult {
                    status: Some(presence.status),
                    last_seen: presence.last_seen,
                    ..AckResult::default()
                }
            }
            Request::CallSignal(c) => {
                caas.call_signal(p, &c.conversation_id, c.to, c.signal)
                    .await?;
                AckResult::default()
            }
            Request::Sync(s) => {
                // A page is queued at once: keep it below the queue's capacity so
                // live events still fit beside it.
                let cap = self
                    .config
                    .max_sync_page
                    .min(self.config.queue_capacity.saturating_sub(1))
                    .max(1);
                let limit = s
                    .limit
                    .map_or(cap, |l| usize::try_from(l).unwrap_or(usize::MAX))
                    .min(cap);
                let page = caas.sync(p, s.since.unwrap_or(Cursor(0)), limit).await?;
                // Events go out as ordinary event frames carrying their cursor, so
                // no frame is larger than one event; the ack follows them.
                for e in &page.events {
                    self.send(codec::encode_event(
                        self.handle.codec,
                        &e.event,
                        Some(e.cursor),
                    ))
                    .await
                    .map_err(Failure::Abort)?;
                }
                AckResult {
                    next_cursor: Some(page.next_cursor),
                    has_more: Some(page.has_more),
                    count: Some(u32::try_from(page.events.len()).unwrap_or(u32::MAX)),
                    ..AckResult::default()
                }
            }
            Request::Ping(_) => AckResult {
                server_time: Some(now),
                ..AckResult::default()
            },
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
        if self.typing.len() >= TYPING_SLOTS {
            if let Some(oldest) = self
                .typing
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.last_start)
                .map(|(i, _)| i)
            {
                self.typing.swap_remove(oldest);
            }
        }
        self.typing.push(TypingSlot {
            conversation: conv.clone(),
            last_start: now,
            active: typing,
        });
    }
}

/// A request that failed in the service, or a connection that must close.
enum Failure {
    Core(caas_core::Error),
    Abort(Abort),
}

impl From<caas_core::Error> for Failure {
    fn from(e: caas_core::Error) -> Self {
        Failure::Core(e)
    }
}

/// What a read error means for the connection.
fn read_error(e: axum::Error) -> CloseReason {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match e.into_inner().downcast::<WsError>() {
        Ok(e) if matches!(*e, WsError::Capacity(_)) => CloseReason::TOO_BIG,
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

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
