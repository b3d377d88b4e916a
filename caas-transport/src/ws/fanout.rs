//! The node's one subscriber to the event bus, and the presence heartbeat.
//!
//! One task per node reads the bus and hands each event to the registered
//! connections of its audience ([`Registry::dispatch`]), which never waits on a
//! socket. When the bus reports that this node lagged (events dropped), every
//! connection gets a `resync` notice, since which audiences were hit is unknown.

use std::sync::Arc;
use std::time::Duration;

use caas_core::Caas;
use caas_core::ids::CorrelationId;
use caas_core::ports::{BusMessage, Subscription};
use tokio::sync::watch;

use super::registry::{CloseReason, Registry};

/// Runs until `stop` turns true or the bus closes.
pub(crate) async fn run(
    registry: Arc<Registry>,
    mut subscription: Box<dyn Subscription>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            m = subscription.next() => m,
        };
        match next {
            Some(BusMessage::Event(event)) => {
                registry.dispatch(&event);
            }
            Some(BusMessage::Lagged { missed }) => {
                tracing::warn!(
                    missed,
                    "WebSocket fan-out lagged behind the bus; clients told to sync"
                );
                registry.resync_all(missed);
            }
            None => {
                // Without the bus the connections would stay open and silent;
                // closing them makes clients reconnect (to a healthy node) and sync.
                tracing::error!("event bus closed; closing WebSocket connections");
                registry.close_all(&CloseReason::BUS_CLOSED);
                return;
            }
        }
    }
}

/// Renews the presence of every connected device every half presence TTL, so a
/// device stays online as long as its connection lives (presence expires
/// without a heartbeat).
pub(crate) async fn heartbeat(
    caas: Arc<Caas>,
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) {
    let period = (caas.config().presence_ttl / 2).max(Duration::from_secs(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            _ = ticks.tick() => {}
        }
        for (principal, status) in registry.devices() {
            let now = caas.now();
            let p = principal.with_correlation_id(CorrelationId::generate(now));
            if let Err(e) = caas.set_presence(&p, status).await {
                tracing::debug!(error = %e, "presence heartbeat failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use caas_core::Principal;
    use caas_core::events::{Event, EventPayload};
    use caas_core::ids::{ConversationId, CorrelationId, TenantId, UserId};
    use caas_core::ports::EventBus;
    use caas_core::time::Timestamp;
    use caas_storage::memory::MemoryBus;
    use tokio::sync::watch;

    use super::*;
    use crate::ws::frames::{Codec, ServerFrame};
    use crate::ws::registry::NewConnection;

    fn typing(n: u64) -> Arc<Event> {
        Arc::new(Event {
            tenant: TenantId::parse("t").unwrap(),
            correlation_id: CorrelationId::parse("r").unwrap(),
            at: Timestamp::from_secs(n),
            audience: Arc::from(vec![UserId::parse("bob").unwrap()]),
            payload: EventPayload::Typing {
                conversation_id: ConversationId::parse("c").unwrap(),
                user_id: UserId::parse("alice").unwrap(),
                typing: true,
            },
        })
    }

    #[tokio::test]
    async fn a_lagging_node_tells_clients_to_resync_and_a_closed_bus_closes_them() {
        let registry = Arc::new(Registry::default());
        let (tenant, bob) = (TenantId::parse("t").unwrap(), UserId::parse("bob").unwrap());
        let reg = registry
            .register(
                NewConnection {
                    principal: Principal::user(tenant.clone(), bob.clone()),
                    tenant,
                    user: bob,
                    device: None,
                    codec: Codec::Json,
                    capacity: 16,
                },
                4,
            )
            .unwrap();
        // Room for two: publishing five before the fan-out reads loses three.
        let bus = MemoryBus::new(2);
        let subscription = bus.subscribe().await.unwrap();
        for n in 0..5 {
            bus.publish(typing(n)).await.unwrap();
        }
        drop(bus);
        let (_stop, stop_rx) = watch::channel(false);
        run(registry.clone(), subscription, stop_rx).await;

        let mut frames = Vec::new();
        while let Some(axum::extract::ws::Message::Text(t)) = reg.handle().take() {
            frames.push(crate::ws::decode_server_frame(Codec::Json, t.as_bytes()).unwrap());
        }
        assert!(
            matches!(&frames[0], ServerFrame::Error(e) if e.resync && e.message.contains('3')),
            "{frames:?}"
        );
        assert_eq!(frames.len(), 3, "the notice, then the two kept events");
        assert_eq!(reg.handle().close_reason(), Some(CloseReason::BUS_CLOSED));
    }
}
