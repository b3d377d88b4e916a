use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::events::Event;

/// What a subscription yields.
#[derive(Debug, Clone)]
pub enum BusMessage {
    /// The next event.
    Event(Arc<Event>),
    /// The subscriber fell behind and `missed` events were dropped for it, or a
    /// bus on a network lost its connection and may have missed some; its
    /// clients must catch up with `sync`.
    Lagged {
        /// How many; 0 when the bus cannot tell (a lost connection).
        missed: u64,
    },
}

/// A live subscription to the bus.
#[async_trait]
pub trait Subscription: Send + std::fmt::Debug {
    /// The next message; `None` once the bus is closed.
    async fn next(&mut self) -> Option<BusMessage>;
}

/// Fans events out to every subscriber (every node of the platform).
#[async_trait]
pub trait EventBus: Send + Sync + std::fmt::Debug {
    /// Publishes an event to every current subscriber. Events from one publisher
    /// reach each subscriber in publish order. A bus with no subscriber drops it.
    async fn publish(&self, event: Arc<Event>) -> Result<()>;

    /// Subscribes: the subscription receives every event published after this
    /// returns (or a [`BusMessage::Lagged`] for those it could not keep).
    async fn subscribe(&self) -> Result<Box<dyn Subscription>>;
}
