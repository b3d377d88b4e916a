use std::sync::Arc;

use async_trait::async_trait;
use caas_core::Result;
use caas_core::events::Event;
use caas_core::ports::{BusMessage, EventBus, Subscription};
use tokio::sync::broadcast;

/// The in-process event bus: a bounded broadcast channel. A subscriber that falls
/// more than `capacity` events behind loses the oldest and is told how many
/// ([`BusMessage::Lagged`]), so one slow subscriber never slows the publishers.
#[derive(Debug)]
pub struct MemoryBus {
    tx: broadcast::Sender<Arc<Event>>,
}

impl MemoryBus {
    /// A bus buffering up to `capacity` events per subscriber.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
    }
}

impl Default for MemoryBus {
    /// A bus with room for 16 384 events per subscriber.
    fn default() -> Self {
        Self::new(16_384)
    }
}

/// A subscription to a [`MemoryBus`].
#[derive(Debug)]
pub struct MemorySubscription {
    rx: broadcast::Receiver<Arc<Event>>,
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Option<BusMessage> {
        match self.rx.recv().await {
            Ok(e) => Some(BusMessage::Event(e)),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(BusMessage::Lagged { missed }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn publish(&self, event: Arc<Event>) -> Result<()> {
        // An error only means nobody is subscribed, which the contract allows.
        let _ = self.tx.send(event);
        Ok(())
    }

    async fn subscribe(&self) -> Result<Box<dyn Subscription>> {
        Ok(Box::new(MemorySubscription {
            rx: self.tx.subscribe(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_core::testkit::{conversation, events::event, tenant};

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_how_many_it_missed() {
        let bus = MemoryBus::new(4);
        let mut sub = bus.subscribe().await.unwrap();
        let (tn, c) = (tenant(), conversation());
        for n in 0..10 {
            bus.publish(Arc::new(event(&tn, &c, &["a"], n)))
                .await
                .unwrap();
        }
        assert!(matches!(
            sub.next().await,
            Some(BusMessage::Lagged { missed: 6 })
        ));
        assert!(matches!(sub.next().await, Some(BusMessage::Event(_))));
    }
}
