//! The task that owns a bus's consuming connection and the node's queue.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use caas_core::ports::BusMessage;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, Consumer};
use tokio::sync::{broadcast, watch};

use super::{Counters, RabbitMqConfig, RabbitMqError, connect, declare_topology};
use crate::event_codec;

/// The shortest and longest wait between two reconnection attempts.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(super) struct Listener {
    pub(super) config: Arc<RabbitMqConfig>,
    pub(super) tx: broadcast::Sender<BusMessage>,
    pub(super) live: watch::Sender<bool>,
    pub(super) counters: Arc<Counters>,
}

impl Listener {
    pub(super) async fn run(self) {
        let mut backoff = MIN_BACKOFF;
        let mut was_live = false;
        loop {
            let (connection, consumer) = match self.open().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "rabbitmq bus: cannot consume; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            backoff = MIN_BACKOFF;
            self.live.send_replace(true);
            if was_live {
                self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::info!("rabbitmq bus: consuming again; subscribers told to sync");
                let _ = self.tx.send(BusMessage::Lagged { missed: 0 });
            }
            was_live = true;
            self.consume(consumer).await;
            self.live.send_replace(false);
            drop(connection);
            tracing::warn!("rabbitmq bus: consuming connection lost; reconnecting");
        }
    }

    /// Connects, declares the topology and the node's queue, binds it and
    /// starts consuming it.
    async fn open(&self) -> Result<(Connection, Consumer), RabbitMqError> {
        let connection = connect(&self.config, "caas-bus-node").await?;
        let setup = async {
            let channel = connection.create_channel().await?;
            channel
                .basic_qos(self.config.prefetch, BasicQosOptions::default())
                .await?;
            declare_topology(&channel, &self.config).await?;
            // Server-named, exclusive (it goes with this connection, so a
            // dead node leaves nothing behind), and what it rejects goes to
            // the dead-letter exchange.
            let mut args = FieldTable::default();
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(self.config.dead_letter_name().into()),
            );
            let queue = channel
                .queue_declare(
                    "".into(),
                    QueueDeclareOptions {
                        exclusive: true,
                        auto_delete: true,
                        ..QueueDeclareOptions::default()
                    },
                    args,
                )
                .await?;
            channel
                .queue_bind(
                    queue.name().clone(),
                    self.config.exchange.as_str().into(),
                    "#".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            channel
                .basic_consume(
                    queue.name().clone(),
                    "".into(),
                    BasicConsumeOptions {
                        exclusive: true,
                        ..BasicConsumeOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
        };
        let budget = self.config.request_timeout * 4;
        match tokio::time::timeout(budget, setup).await {
            Ok(Ok(consumer)) => Ok((connection, consumer)),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(RabbitMqError::Timeout(budget)),
        }
    }

    /// Reads the queue until the consumer or its connection fails.
    async fn consume(&self, mut consumer: Consumer) {
        while let Some(delivery) = consumer.next().await {
            match delivery {
                Ok(d) => self.deliver(d).await,
                Err(e) => {
                    tracing::warn!(error = %e, "rabbitmq bus: consumer failed");
                    return;
                }
            }
        }
    }

    async fn deliver(&self, d: Delivery) {
        match event_codec::decode(&d.data, self.config.max_event_bytes) {
            Ok(e) => {
                // An error only means no subscriber is listening now.
                let _ = self.tx.send(BusMessage::Event(Arc::new(e)));
                // A failed ack means the channel is going: the consumer
                // reports it next.
                let _ = d.acker.ack(BasicAckOptions::default()).await;
            }
            Err(e) => {
                let why = e.to_string();
                self.counters.garbage.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    why,
                    routing_key = %d.routing_key,
                    "rabbitmq bus: a message that is not an event; dead-lettered"
                );
                let _ = d.acker.reject(BasicRejectOptions { requeue: false }).await;
                // Perhaps an event a newer node wrote: its audience must sync.
                let _ = self.tx.send(BusMessage::Lagged { missed: 1 });
            }
        }
    }
}
