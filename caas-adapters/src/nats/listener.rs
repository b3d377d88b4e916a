//! The task that owns a bus's consumer: opens it, reads it into the local
//! broadcast channel, dead-letters what it cannot read, and opens it again,
//! right after the last message read, whenever it breaks.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::datetime::DateTime;
use async_nats::jetstream;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use caas_core::ports::BusMessage;
use futures_util::StreamExt;
use tokio::sync::{broadcast, watch};

use super::{Link, NatsError, Shared};
use crate::event_codec;

/// The shortest and longest wait between two attempts to open the consumer
/// (and between two reconnection attempts of the client).
pub(super) const MIN_BACKOFF: Duration = Duration::from_millis(50);
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Messages asked for per pull request.
const BATCH: usize = 256;
/// How long an idle pull request lasts before the next replaces it.
const PULL_EXPIRES: Duration = Duration::from_secs(30);
/// How long the server keeps a consumer nobody pulls from (a node that died):
/// past it the consumer is deleted.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(120);

pub(super) struct Listener {
    shared: Arc<Shared>,
    tx: broadcast::Sender<BusMessage>,
    live: watch::Sender<bool>,
    link: watch::Receiver<Link>,
    /// The stream's creation date and the last sequence read, once opened.
    position: Option<(DateTime, u64)>,
    /// The consumer open now, deleted when replaced.
    consumer: Option<String>,
}

impl Listener {
    pub(super) fn new(
        shared: Arc<Shared>,
        tx: broadcast::Sender<BusMessage>,
        live: watch::Sender<bool>,
    ) -> Self {
        Self {
            link: shared.link.clone(),
            shared,
            tx,
            live,
            position: None,
            consumer: None,
        }
    }

    pub(super) async fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        let mut opened_before = false;
        loop {
            // Nothing to do while the client is reconnecting.
            if self.link.wait_for(|l| l.connected).await.is_err() {
                return;
            }
            let generation = self.link.borrow_and_update().generation;
            let messages = match self.open().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "nats bus: cannot open the consumer; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            backoff = MIN_BACKOFF;
            if opened_before {
                self.shared
                    .counters
                    .reconnects
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!("nats bus: consumer open again");
            }
            opened_before = true;
            self.live.send_replace(true);
            self.consume(messages, generation).await;
            self.live.send_replace(false);
        }
    }

    /// Makes a consumer starting after the last message read, or after the
    /// stream's last message the first time (and when the stream was made
    /// anew, which is reported as a gap).
    async fn open(&mut self) -> Result<pull::Stream, NatsError> {
        let budget = self.shared.config.connect_timeout + 2 * self.shared.config.request_timeout;
        let shared = self.shared.clone();
        let stream = tokio::time::timeout(budget, shared.ensure_streams())
            .await
            .map_err(|_| NatsError::Timeout(budget))??;
        let info = stream.cached_info();
        let last = match self.position {
            Some((created, last))
                if created == info.created && info.state.last_sequence >= last =>
            {
                last
            }
            Some(_) => {
                // The stream was deleted and made again (or lost with the
                // server's storage): what it held is gone.
                tracing::warn!(
                    stream = %self.shared.config.stream,
                    "nats bus: the stream was made anew; subscribers told to sync"
                );
                self.shared.counters.missed.fetch_add(1, Ordering::Relaxed);
                let _ = self.tx.send(BusMessage::Lagged { missed: 0 });
                info.state.last_sequence
            }
            None => info.state.last_sequence,
        };
        self.position = Some((info.created, last));
        if let Some(old) = self.consumer.take() {
            // Best effort: an old consumer the server still has would
            // otherwise stay until it is seen inactive.
            let _ = tokio::time::timeout(
                self.shared.config.request_timeout,
                stream.delete_consumer(&old),
            )
            .await;
        }
        let config = pull::Config {
            description: Some("caas: one node's view of the bus".into()),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: last + 1,
            },
            ack_policy: AckPolicy::Explicit,
            inactive_threshold: INACTIVE_THRESHOLD,
            memory_storage: true,
            ..Default::default()
        };
        let open = async {
            let consumer = stream
                .create_consumer(config)
                .await
                .map_err(NatsError::client)?;
            self.consumer = Some(consumer.cached_info().name.clone());
            let heartbeat = self
                .shared
                .config
                .health_interval
                .max(Duration::from_millis(100));
            consumer
                .stream()
                .max_messages_per_batch(BATCH)
                .expires(PULL_EXPIRES.max(heartbeat * 4))
                .heartbeat(heartbeat)
                .messages()
                .await
                .map_err(NatsError::client)
        };
        tokio::time::timeout(budget, open)
            .await
            .map_err(|_| NatsError::Timeout(budget))?
    }

    /// Reads the consumer until it fails or the client's connection changes.
    async fn consume(&mut self, mut messages: pull::Stream, generation: u64) {
        loop {
            tokio::select! {
                m = messages.next() => match m {
                    Some(Ok(m)) => self.deliver(m).await,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "nats bus: consumer failed; opening it again");
                        return;
                    }
                    None => return,
                },
                changed = self.link.changed() => {
                    let l = *self.link.borrow_and_update();
                    if changed.is_err() || !l.connected || l.generation != generation {
                        return;
                    }
                }
            }
        }
    }

    async fn deliver(&mut self, m: jetstream::Message) {
        let Some((created, last)) = self.position else {
            return;
        };
        let seq = match m.info() {
            Ok(i) => i.stream_sequence,
            Err(e) => {
                tracing::warn!(error = %e, "nats bus: a message without JetStream metadata; skipped");
                return;
            }
        };
        if seq <= last {
            // Delivered again (an ack that did not arrive): already handled.
            let _ = m.ack().await;
            return;
        }
        if seq > last + 1 {
            let missed = seq - last - 1;
            tracing::warn!(
                missed,
                "nats bus: events gone from the stream before this node read them"
            );
            self.shared
                .counters
                .missed
                .fetch_add(missed, Ordering::Relaxed);
            let _ = self.tx.send(BusMessage::Lagged { missed });
        }
        self.position = Some((created, seq));
        match event_codec::decode(&m.payload, self.shared.config.max_event_bytes) {
            Ok(e) => {
                // An error only means no subscriber is listening now.
                let _ = self.tx.send(BusMessage::Event(Arc::new(e)));
                let _ = m.ack().await;
            }
            Err(e) => {
                let why = e.to_string();
                self.shared.counters.garbage.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(why, seq, subject = %m.subject, "nats bus: a message that is not an event; dead-lettered");
                self.dead_letter(&m, seq, &why).await;
                let _ = m.ack_with(AckKind::Term).await;
                // Perhaps an event a newer node wrote: its audience must sync.
                let _ = self.tx.send(BusMessage::Lagged { missed: 1 });
            }
        }
    }

    /// Copies `m` to the dead-letter stream, once however many nodes do it.
    async fn dead_letter(&self, m: &jetstream::Message, seq: u64, why: &str) {
        let config = &self.shared.config;
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("{}:{seq}", config.stream).as_str(),
        );
        headers.insert("Caas-Dead-Reason", one_line(why).as_str());
        headers.insert("Caas-Original-Subject", m.subject.as_str());
        headers.insert("Caas-Original-Sequence", seq.to_string().as_str());
        let copy = async {
            self.shared
                .js
                .publish_with_headers(config.dead_letter_subject(), headers, m.payload.clone())
                .await?
                .await
        };
        let failed = match tokio::time::timeout(config.request_timeout * 2, copy).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("no ack in time".to_string()),
        };
        if let Some(error) = failed {
            self.shared
                .counters
                .dead_letter_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                error,
                seq,
                "nats bus: could not copy a message to the dead-letter stream"
            );
        }
    }
}

/// `s` without line breaks or other control characters, for a header value.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}
