//! The node's webhook delivery: every half second it asks which endpoints have
//! deliveries due and runs one pass per endpoint, each in its own task, so a
//! slow receiver delays only its own endpoint. Leases in the store keep two
//! nodes off one endpoint.

use std::collections::{HashMap, HashSet};
use std::sync::Weak;
use std::time::Duration;

use caas_core::Caas;
use caas_core::ids::{TenantId, WebhookId};

/// Endpoints delivered at once by one node.
const MAX_CONCURRENT: usize = 64;

/// How often due endpoints are looked for.
const TICK: Duration = Duration::from_millis(500);

/// Delivers until the service is gone or this task is aborted (which aborts
/// the passes in flight with it: their leases run out or, on the same data
/// dir, are taken back at the next start).
pub(super) async fn deliver(caas: Weak<Caas>, holder: String) {
    let mut passes = tokio::task::JoinSet::new();
    let mut by_task: HashMap<tokio::task::Id, (TenantId, WebhookId)> = HashMap::new();
    let mut running: HashSet<(TenantId, WebhookId)> = HashSet::new();
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        while let Some(done) = passes.try_join_next_with_id() {
            let id = match done {
                Ok((id, ())) => id,
                Err(e) => {
                    tracing::error!(error = %e, "a webhook delivery pass panicked");
                    e.id()
                }
            };
            if let Some(key) = by_task.remove(&id) {
                running.remove(&key);
            }
        }
        let Some(service) = caas.upgrade() else {
            return;
        };
        let due = match service.webhooks_due().await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list due webhooks; trying again");
                continue;
            }
        };
        for key in due {
            if running.len() >= MAX_CONCURRENT {
                break;
            }
            if running.contains(&key) {
                continue;
            }
            let (service, holder, (tenant, id)) = (service.clone(), holder.clone(), key.clone());
            let task = passes.spawn(async move {
                match service.deliver_webhook(&tenant, &id, &holder).await {
                    Ok(pass) if pass.failed > 0 || pass.dead_lettered > 0 => tracing::info!(
                        tenant = %tenant,
                        webhook = %id,
                        delivered = pass.delivered,
                        failed = pass.failed,
                        dead_lettered = pass.dead_lettered,
                        "webhook deliveries failed; retrying after a backoff"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        tenant = %tenant,
                        webhook = %id,
                        error = %e,
                        "webhook delivery pass failed"
                    ),
                }
            });
            by_task.insert(task.id(), key.clone());
            running.insert(key);
        }
    }
}
