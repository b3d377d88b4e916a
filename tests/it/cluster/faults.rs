//! Faults under load: a node killed with SIGKILL, and each shared server
//! stopped for 5 s. Counted and asserted over the whole run: no acknowledged
//! message lost, none stored twice, none delivered twice after the client's
//! deduplication.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caas::core::ids::ConversationId;
use caas_transport::client::Client;

use super::harness::{
    Cluster, Outcome, Received, Servers, client, collect, send_once, send_until_acked, stored,
    tenant, wait_until,
};

/// How long a receiver may take to catch up after the load stops.
const CATCH_UP: Duration = Duration::from_secs(30);

/// Checks what the store and each receiver hold against what was acked:
/// every acked message stored once with its acked seq, seqs gap-free from 1,
/// and every stored message delivered to every receiver once, in seq order.
/// Returns how many messages the store holds.
async fn check_nothing_lost_or_repeated(
    base: &str,
    token: &str,
    conv: &ConversationId,
    acked: &BTreeMap<String, u64>,
    receivers: &[(&str, Arc<Mutex<Received>>)],
) -> usize {
    let stored = stored(base, token, conv).await;
    let mut ids = HashSet::new();
    let repeated: Vec<&String> = stored
        .iter()
        .filter(|(id, _)| !ids.insert(id))
        .map(|(id, _)| id)
        .collect();
    assert!(
        repeated.is_empty(),
        "stored twice: {repeated:?} (a retry on another node made a second copy)"
    );
    let seqs: Vec<u64> = stored.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        seqs,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "seqs are gap-free"
    );
    let by_id: BTreeMap<&str, u64> = stored.iter().map(|(id, s)| (id.as_str(), *s)).collect();
    let lost: Vec<(&String, &u64)> = acked
        .iter()
        .filter(|(id, seq)| by_id.get(id.as_str()) != Some(*seq))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acked messages are not stored as acked: {lost:?}",
        lost.len()
    );
    for (who, received) in receivers {
        let all = wait_until(received, CATCH_UP, |r| {
            let got: HashSet<&str> = r.messages.iter().map(|(id, ..)| id.as_str()).collect();
            by_id.keys().all(|id| got.contains(id))
        })
        .await;
        let r = received.lock().unwrap();
        let got: HashSet<&str> = r.messages.iter().map(|(id, ..)| id.as_str()).collect();
        let missing = by_id.keys().filter(|id| !got.contains(*id)).count();
        assert!(
            all,
            "{who} misses {missing} of {} stored messages after {CATCH_UP:?}",
            by_id.len()
        );
        assert_eq!(
            r.messages.len(),
            got.len(),
            "{who} got a message twice after the client's deduplication"
        );
        let order: Vec<u64> = r.messages.iter().map(|(_, s, _)| *s).collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "{who} got messages out of seq order"
        );
    }
    stored.len()
}

/// One sent message over a run: its attempts, and when it was acked.
#[derive(Debug)]
struct Sent {
    id: String,
    attempts: Vec<Outcome>,
    acked_at: Option<Instant>,
}

/// kill -9 of one of three nodes while three senders (one per node) send to a
/// group whose receivers sit one per node. The clients of the killed node fail
/// over to the others and resume with `sync`; a send whose ack was lost with
/// the node is repeated with the same `client_msg_id` elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_no_acked_message_and_repeats_none() {
    let Some(servers) = Servers::provisioned() else {
        return;
    };
    let mut cluster = Cluster::start(3, &servers);
    let users = ["s0", "s1", "s2", "r0", "r1", "r2"];
    let t = tenant(&cluster.nodes[0].url(), &cluster.operator_key, &users).await;
    let conv = t.conversation.clone();
    let mut receivers = Vec::new();
    let mut receiver_clients = Vec::new();
    for i in 0..3 {
        let (c, events) = client(&cluster.urls_from(i), &t.tokens[&format!("r{i}")]).await;
        receiver_clients.push(c);
        receivers.push((users[3 + i], collect(events, conv.clone())));
    }
    let load = Duration::from_secs(6);
    let mut senders = Vec::new();
    for i in 0..3 {
        let (c, events) = client(&cluster.urls_from(i), &t.tokens[&format!("s{i}")]).await;
        collect(events, conv.clone());
        let conv = conv.clone();
        senders.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut sent = Vec::new();
            let mut n = 0;
            while started.elapsed() < load {
                n += 1;
                let id = format!("s{i}-{n}");
                let attempts = send_until_acked(&c, &conv, &id, Duration::from_secs(30)).await;
                let acked_at =
                    matches!(attempts.last(), Some(Outcome::Acked { .. })).then(Instant::now);
                sent.push(Sent {
                    id,
                    attempts,
                    acked_at,
                });
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (c, sent)
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.nodes[2].kill9();
    let killed_at = Instant::now();

    let mut acked = BTreeMap::new();
    let (mut retried, mut unanswered, mut duplicate_acks, mut after_kill_on_victim) = (0, 0, 0, 0);
    for (i, task) in senders.into_iter().enumerate() {
        let (_client, sent) = task.await.unwrap();
        for s in sent {
            let Some(Outcome::Acked { seq, duplicate }) = s.attempts.last() else {
                panic!("{} was never acked: {:?}", s.id, s.attempts);
            };
            acked.insert(s.id.clone(), *seq);
            retried += usize::from(s.attempts.len() > 1);
            unanswered += s
                .attempts
                .iter()
                .filter(|o| **o == Outcome::Unknown)
                .count();
            duplicate_acks += usize::from(*duplicate);
            if i == 2 && s.acked_at.is_some_and(|t| t > killed_at) {
                after_kill_on_victim += 1;
            }
        }
    }
    assert!(
        after_kill_on_victim > 0,
        "the killed node's sender went on through another node"
    );
    let stored = check_nothing_lost_or_repeated(
        &cluster.nodes[0].url(),
        &t.tokens["r0"],
        &conv,
        &acked,
        &receivers,
    )
    .await;
    let (reconnects, through_sync) = {
        let r = receivers[2].1.lock().unwrap();
        (
            r.connections,
            r.messages.iter().filter(|(_, _, live)| !live).count(),
        )
    };
    assert!(
        reconnects >= 2,
        "r2 reconnected to another node after its node died ({reconnects} connections)"
    );
    eprintln!(
        "kill -9 under load: {} acked ({after_kill_on_victim} by the killed node's sender after the kill), \
         {stored} stored, {retried} sends retried ({unanswered} attempts unanswered, \
         {duplicate_acks} retries answered with the first copy), 0 lost, 0 duplicates; \
         the killed node's receiver reconnected and got {through_sync} through sync",
        acked.len()
    );
    assert!(cluster.nodes[0].alive() && cluster.nodes[1].alive());
}

/// What the senders of the outage test recorded: each attempt with when it
/// started and ended.
#[derive(Debug, Default)]
struct Log {
    attempts: Vec<(String, Instant, Instant, Outcome)>,
}

/// Sends one new message at a time until `stop`, recording every attempt.
fn spawn_sender(
    client: Client,
    conv: ConversationId,
    name: &'static str,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Client> {
    tokio::spawn(async move {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let id = format!("{name}-{n}");
            let started = Instant::now();
            let o = send_once(&client, &conv, &id).await;
            if let Outcome::Refused(code) = &o {
                assert!(
                    code == "unavailable" || code == "rate_limited",
                    "{id}: `{code}`"
                );
            }
            log.lock()
                .unwrap()
                .attempts
                .push((id, started, Instant::now(), o));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        client
    })
}

/// Each shared server (Redis, the NATS broker, PostgreSQL) of the cluster's
/// own, stopped for 5 s under load in turn: sends answer `unavailable` while
/// it is down and none is acked, sends succeed again once it is back without
/// any node restarting, live delivery resumes, and the clients catch up on
/// what the outage kept from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_shared_server_stopped_for_5s_under_load_then_recovered() {
    use caas_test_servers::{Nats, Postgres, Redis};
    let Some(mut pg) = Postgres::start() else {
        return;
    };
    let (Some(mut redis), Some(mut nats)) = (Redis::start(), Nats::start()) else {
        return;
    };
    let servers = Servers {
        postgres: pg.url(),
        redis: redis.url(),
        bus: ("nats", Some(("CAAS_NATS_URL", nats.url()))),
    };
    let mut cluster = Cluster::start(2, &servers);
    let pids: Vec<u32> = cluster.nodes.iter().map(|n| n.pid()).collect();
    let users = ["s0", "s1", "r0", "r1"];
    let t = tenant(&cluster.nodes[0].url(), &cluster.operator_key, &users).await;
    let conv = t.conversation.clone();
    let mut receivers = Vec::new();
    let mut receiver_clients = Vec::new();
    for i in 0..2 {
        let (c, events) = client(&cluster.urls_from(i), &t.tokens[&format!("r{i}")]).await;
        receiver_clients.push(c);
        receivers.push((users[2 + i], collect(events, conv.clone())));
    }
    let log = Arc::new(Mutex::new(Log::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for (i, name) in ["s0", "s1"].into_iter().enumerate() {
        let (c, events) = client(&cluster.urls_from(i), &t.tokens[name]).await;
        collect(events, conv.clone());
        senders.push(spawn_sender(
            c,
            conv.clone(),
            name,
            log.clone(),
            stop.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut report = Vec::new();
    for server in ["redis", "nats", "postgres"] {
        tokio::task::block_in_place(|| match server {
            "redis" => redis.stop(),
            "nats" => nats.stop(),
            _ => pg.stop(true),
        });
        let stopped = Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let resuming = Instant::now();
        tokio::task::block_in_place(|| match server {
            "redis" => redis.resume(),
            "nats" => nats.resume(),
            _ => pg.resume(),
        });
        let resumed = Instant::now();

        // While it was down (past the moment the stop took hold): no ack, and
        // `unavailable` answers.
        let (acks, refusals, unanswered) = {
            let log = log.lock().unwrap();
            let down: Vec<&Outcome> = log
                .attempts
                .iter()
                .filter(|(_, s, e, _)| *s > stopped + Duration::from_millis(200) && *e < resuming)
                .map(|(.., o)| o)
                .collect();
            let count = |f: &dyn Fn(&Outcome) -> bool| down.iter().filter(|o| f(o)).count();
            (
                count(&|o| matches!(o, Outcome::Acked { .. })),
                count(&|o| *o == Outcome::Refused("unavailable".into())),
                count(&|o| *o == Outcome::Unknown),
            )
        };
        assert_eq!(acks, 0, "{server} down: a send was acked");
        assert!(
            refusals > 0,
            "{server} down: no send answered `unavailable` ({unanswered} unanswered)"
        );

        // Back: sends are acked again, by the same node processes.
        let deadline = resumed + Duration::from_secs(30);
        let recovered = loop {
            let ok = log
                .lock()
                .unwrap()
                .attempts
                .iter()
                .any(|(_, s, _, o)| *s > resumed && matches!(o, Outcome::Acked { .. }));
            if ok {
                break resumed.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "{server} back for 30 s and no send acked: {}",
                cluster.nodes[0].log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for (node, pid) in cluster.nodes.iter_mut().zip(&pids) {
            assert!(
                node.alive(),
                "a node died with {server}: {}",
                node.log_tail()
            );
            assert_eq!(node.pid(), *pid);
        }
        // Live delivery resumes: a message acked after the return reaches the
        // other node's receiver live (not through `sync`).
        let since = log.lock().unwrap().attempts.len();
        let live = wait_until(&receivers[1].1, Duration::from_secs(15), |r| {
            let log = log.lock().unwrap();
            let fresh: HashSet<&str> = log.attempts[since.min(log.attempts.len())..]
                .iter()
                .filter(|(id, ..)| id.starts_with("s0-"))
                .map(|(id, ..)| id.as_str())
                .collect();
            r.messages
                .iter()
                .any(|(id, _, live)| *live && fresh.contains(id.as_str()))
        })
        .await;
        assert!(live, "{server} back: no live delivery across nodes");
        report.push(format!(
            "{server}: {refusals} unavailable, {unanswered} unanswered, 0 acked while down; \
             sends acked again {recovered:?} after it returned"
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    stop.store(true, Ordering::Relaxed);
    let mut clients = Vec::new();
    for s in senders {
        clients.push(s.await.unwrap());
    }
    // Settle what the outages left unsettled: the same `client_msg_id` again
    // is stored once (or found stored) and acked.
    let attempts = std::mem::take(&mut log.lock().unwrap().attempts);
    let mut acked = BTreeMap::new();
    let mut unsettled = 0;
    for (id, _, _, o) in attempts {
        let seq = match o {
            Outcome::Acked { seq, .. } => seq,
            _ => {
                unsettled += 1;
                let c = &clients[usize::from(id.starts_with("s1-"))];
                match send_until_acked(c, &conv, &id, Duration::from_secs(30))
                    .await
                    .last()
                {
                    Some(Outcome::Acked { seq, .. }) => *seq,
                    other => panic!("{id} not acked after the outages: {other:?}"),
                }
            }
        };
        acked.insert(id, seq);
    }
    let stored = check_nothing_lost_or_repeated(
        &cluster.nodes[0].url(),
        &t.tokens["r0"],
        &conv,
        &acked,
        &receivers,
    )
    .await;
    for line in &report {
        eprintln!("server outage: {line}");
    }
    eprintln!(
        "server outages: {} messages acked, {unsettled} refused or unanswered then settled \
         with the same client_msg_id, {stored} stored, 0 lost, 0 duplicates",
        acked.len()
    );
}
