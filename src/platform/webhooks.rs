//! The node's webhook delivery: every half second it walks the endpoints that
//! may have deliveries due and runs one pass per endpoint, each in its own
//! task, so a slow receiver delays only its own endpoint. At most
//! [`MAX_CONCURRENT`] passes run at once; a walk that fills them waits for one
//! to end until the tick is over, and the next tick resumes after the last
//! endpoint started, so every endpoint gets its turn however many there are.
//! Leases in the store keep two nodes off one endpoint.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use caas_core::Caas;
use caas_core::ids::{TenantId, WebhookId};
use tokio::task::{Id, JoinError, JoinSet};

/// Endpoints delivered at once by one node.
const MAX_CONCURRENT: usize = 64;

/// Endpoints read from the store at a time.
const PAGE: usize = 256;

/// How often due endpoints are looked for.
const TICK: Duration = Duration::from_millis(500);

type Key = (TenantId, WebhookId);

/// The passes in flight.
#[derive(Default)]
struct Passes {
    tasks: JoinSet<()>,
    by_task: HashMap<Id, Key>,
    running: HashSet<Key>,
}

impl Passes {
    fn reap(&mut self, done: Result<(Id, ()), JoinError>) {
        let id = match done {
            Ok((id, ())) => id,
            Err(e) => {
                tracing::error!(error = %e, "a webhook delivery pass panicked");
                e.id()
            }
        };
        if let Some(key) = self.by_task.remove(&id) {
            self.running.remove(&key);
        }
    }

    fn start(&mut self, service: Arc<Caas>, holder: String, key: Key) {
        let (tenant, id) = key.clone();
        let task = self.tasks.spawn(async move {
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
        self.by_task.insert(task.id(), key.clone());
        self.running.insert(key);
    }
}

/// Delivers until the service is gone or this task is aborted (which aborts
/// the passes in flight with it: their leases run out or, on the same data
/// dir, are taken back at the next start).
pub(super) async fn deliver(caas: Weak<Caas>, holder: String) {
    let mut passes = Passes::default();
    let mut resume: Option<Key> = None;
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let deadline = tokio::time::Instant::now() + TICK;
        while let Some(done) = passes.tasks.try_join_next_with_id() {
            passes.reap(done);
        }
        let Some(service) = caas.upgrade() else {
            return;
        };
        'walk: loop {
            let page = match service.webhooks_due(resume.as_ref(), PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list due webhooks; trying again");
                    break 'walk;
                }
            };
            for key in &page {
                if passes.running.contains(key) {
                    continue;
                }
                while passes.running.len() >= MAX_CONCURRENT {
                    match tokio::time::timeout_at(deadline, passes.tasks.join_next_with_id()).await
                    {
                        Ok(Some(done)) => passes.reap(done),
                        Ok(None) => break,
                        // Full until the tick ends: the next one starts here.
                        Err(_) => break 'walk,
                    }
                }
                passes.start(service.clone(), holder.clone(), key.clone());
                resume = Some(key.clone());
            }
            if page.len() < PAGE {
                resume = None;
                break 'walk;
            }
            resume = page.last().cloned();
        }
    }
}
