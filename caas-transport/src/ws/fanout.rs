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
            let now = caas.backends().clock.now();
            let p = principal.with_correlation_id(CorrelationId::generate(now));
            if let Err(e) = caas.set_presence(&p, status).await {
                tracing::debug!(error = %e, "presence heartbeat failed");
            }
        }
    }
}
