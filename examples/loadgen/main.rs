//! A load generator for the caas platform, on loopback only.
//!
//! It starts the `platform` example as a child process on 127.0.0.1 (so it can read
//! the server's RSS and CPU time from `/proc`), creates a tenant, `--users` users
//! with one WebSocket connection each, and `--conversations` groups of `--size`
//! members; then sends `--rate` messages a second for `--duration` seconds from
//! random members, and measures every delivery's send-to-deliver latency in an HDR
//! histogram.
//!
//! ```sh
//! cargo run --release --example loadgen -- --users 2 --conversations 1 --size 2 --rate 200 --duration 10
//! cargo run --release --example loadgen -- --users 5000 --idle 10   # memory per idle connection
//! ```
//!
//! `--normal` runs the platform's SQLite with `synchronous=NORMAL` instead of FULL;
//! `--memory` runs it on its in-memory storage (no durability: to measure the
//! transport alone). `--metrics` prints the server's store and bus timings.
//! `--baseline` runs the same load against `fanout_baseline`, a bare
//! tokio-tungstenite fan-out server writing once per delivery (see `baseline.rs`).
//!
//! `--shared` runs the platform on shared servers instead of its embedded
//! storage: PostgreSQL (`CAAS_POSTGRES_URL`) for the stores, Redis
//! (`CAAS_REDIS_URL`) for presence and limits, and the bus `--bus` names (`redis`
//! by default; `nats`, `rabbitmq`, `kafka` with their `CAAS_*_URL`), with
//! `cluster = true`; build both examples with the features those need
//! (`--features postgres,redis`). `--nodes N` starts N such nodes and spreads the
//! users' connections over them round-robin, so with two users on two nodes
//! every delivery crosses nodes; CPU is the sum over the node processes, the
//! shared servers' CPU (every process named `postgres`, `redis-server`,
//! `nats-server`, `beam.smp` or `tansu`) is reported beside it and with it, and
//! setup goes through the first node.
//!
//! `--warmup S` sends for S seconds before the measured `--duration`: those
//! sends, their deliveries and the CPU they cost are left out, so the first
//! connections' and topics' set-up does not count as steady-state latency.
//!
//! Bounded: at most 10 000 users, 300 s, 100 000 messages a second, and only
//! 127.0.0.1.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use caas::core::events::EventPayload;
use caas::core::ids::{ClientMsgId, ConversationId};
use caas_transport::client::{Client, ClientConfig, Notice};
use caas_transport::ws::Codec;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

mod baseline;

const MAX_USERS: usize = 10_000;
const MAX_SECONDS: u64 = 300;
const MAX_RATE: u64 = 100_000;

#[derive(Debug, Clone)]
struct Args {
    users: usize,
    conversations: usize,
    size: usize,
    rate: u64,
    duration: u64,
    warmup: u64,
    idle: Option<u64>,
    codec: Codec,
    normal: bool,
    memory: bool,
    metrics: bool,
    baseline: bool,
    shared: bool,
    bus: String,
    nodes: usize,
}

impl Args {
    /// The warm-up's end, in microseconds since the sending began: messages
    /// sent before it are not measured.
    fn warmup_micros(&self) -> u64 {
        self.warmup.saturating_mul(1_000_000)
    }
}

/// The servers this run started, stopped by [`usage`] before it exits: an exit
/// skips the drops that stop them otherwise, and an orphaned server would hold
/// our output open and its port busy.
static STARTED: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

fn usage(msg: &str) -> ! {
    if let Ok(pids) = STARTED.lock() {
        for pid in pids.iter() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
    eprintln!("{msg}");
    eprintln!(
        "usage: loadgen [--users N] [--conversations M] [--size K] [--rate MSGS_PER_S] [--duration S] [--warmup S] [--idle S] [--json] [--normal | --memory | --baseline | --shared [--bus B] [--nodes N]] [--metrics]"
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut a = Args {
        users: 2,
        conversations: 1,
        size: 2,
        rate: 100,
        duration: 10,
        warmup: 0,
        idle: None,
        codec: Codec::Proto,
        normal: false,
        memory: false,
        metrics: false,
        baseline: false,
        shared: false,
        bus: "redis".into(),
        nodes: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = |name: &str| -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage(&format!("{name} needs a number")))
        };
        match flag.as_str() {
            "--users" => a.users = num("--users") as usize,
            "--conversations" => a.conversations = num("--conversations") as usize,
            "--size" => a.size = num("--size") as usize,
            "--rate" => a.rate = num("--rate"),
            "--duration" => a.duration = num("--duration"),
            "--warmup" => a.warmup = num("--warmup"),
            "--idle" => a.idle = Some(num("--idle")),
            "--json" => a.codec = Codec::Json,
            "--normal" => a.normal = true,
            "--baseline" => a.baseline = true,
            "--memory" => a.memory = true,
            "--metrics" => a.metrics = true,
            "--shared" => a.shared = true,
            "--nodes" => a.nodes = num("--nodes") as usize,
            "--bus" => {
                a.bus = it
                    .next()
                    .unwrap_or_else(|| usage("--bus needs redis, nats, rabbitmq or kafka"))
            }
            other => usage(&format!("unknown argument `{other}`")),
        }
    }
    if a.users == 0 || a.users > MAX_USERS {
        usage(&format!("--users must be 1 to {MAX_USERS}"));
    }
    if a.size < 2 || a.size > a.users {
        usage("--size must be at least 2 and at most --users");
    }
    if a.duration == 0
        || a.duration > MAX_SECONDS
        || a.warmup > MAX_SECONDS
        || a.idle.is_some_and(|s| s > MAX_SECONDS)
    {
        usage(&format!("durations are 1 to {MAX_SECONDS} s"));
    }
    if a.rate > MAX_RATE {
        usage(&format!("--rate is at most {MAX_RATE}"));
    }
    if [a.normal, a.memory, a.baseline, a.shared]
        .iter()
        .filter(|f| **f)
        .count()
        > 1
    {
        usage("--normal, --memory, --baseline and --shared exclude each other");
    }
    if a.nodes == 0 || a.nodes > 8 || (a.nodes > 1 && !a.shared) {
        usage("--nodes is 1 to 8, and more than 1 needs --shared");
    }
    if !["redis", "nats", "rabbitmq", "kafka"].contains(&a.bus.as_str()) {
        usage("--bus is redis, nats, rabbitmq or kafka");
    }
    a
}

/// The server process and what `/proc` says about it.
struct Server {
    child: Child,
    base: String,
    /// The server's temp dir, removed with it.
    dir: Option<PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Server {
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// User plus system CPU seconds.
    fn cpu_secs(&self) -> f64 {
        pid_cpu_secs(self.child.id())
    }
}

/// The example binary `name`, built beside this one.
fn sibling(name: &str) -> PathBuf {
    let exe =
        std::env::current_exe().unwrap_or_else(|e| usage(&format!("cannot find myself: {e}")));
    let binary = exe.with_file_name(name);
    if !binary.exists() {
        usage(&format!(
            "{} is missing: build it with `cargo build --release --example {name}`",
            binary.display()
        ));
    }
    binary
}

/// Starts `binary` as configured by `command`, its output on ours (stderr) or
/// nowhere (stdout).
fn spawn(binary: &std::path::Path, command: &mut Command) -> Child {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| usage(&format!("cannot start {}: {e}", binary.display())));
    if let Ok(mut pids) = STARTED.lock() {
        pids.push(child.id());
    }
    child
}

/// A free port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18_099)
}

/// Starts the platform: one node, or with `--shared` `--nodes` nodes sharing one
/// data dir for their keys (the first makes them; the others start after it).
async fn start_servers(args: &Args) -> Vec<Server> {
    let binary = sibling("platform");
    let dir = std::env::temp_dir().join(format!("caas-loadgen-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let operator =
        caas_crypto::secret::TenantSecret::generate().unwrap_or_else(|e| usage(&e.to_string()));
    let mut servers = Vec::new();
    for node in 0..args.nodes {
        let port = free_port();
        let config = dir.join(format!("caas-{node}.toml"));
        // The edge limit and the connection cap are per IP, and every connection
        // here comes from 127.0.0.1.
        let frames = (args.rate * 4).max(100);
        let storage = match (args.memory, args.shared) {
            (true, _) => "memory",
            (_, true) => "postgres",
            _ => "embedded",
        };
        let mut toml = format!(
            "listen = \"127.0.0.1:{port}\"\nedge_requests_per_minute = 0\nmax_connections_per_ip = {}\nws_frames_per_second = {frames}\nlog = \"warn\"\ndurable = {}\nstorage = \"{storage}\"\n",
            MAX_USERS + 64,
            !args.normal,
        );
        if args.shared {
            // The servers' URLs come from the environment the nodes inherit.
            toml.push_str(&format!(
                "presence = \"redis\"\nbus = \"{}\"\ncluster = true\n",
                args.bus
            ));
        }
        if let Err(e) = std::fs::write(&config, toml) {
            usage(&format!("cannot write {}: {e}", config.display()));
        }
        let child = spawn(
            &binary,
            Command::new(&binary)
                .args(["--config", &config.display().to_string()])
                .env("CAAS_DATA_DIR", dir.join("data"))
                .env("CAAS_OPERATOR_KEY", operator.expose_secret()),
        );
        let mut server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            // The first node's drop removes the shared dir, after the others'.
            dir: (node == 0).then(|| dir.clone()),
        };
        wait_ready(&mut server).await;
        servers.push(server);
    }
    OPERATOR.set(operator.expose_secret().to_owned()).ok();
    // Dropped last to first, so the dir goes once every node has stopped.
    servers.reverse();
    servers
}

async fn wait_ready(server: &mut Server) {
    let http = reqwest::Client::new();
    for _ in 0..400 {
        if http
            .get(format!("{}/health/ready", server.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            usage(&format!(
                "the platform exited ({status}) before it was ready"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    usage("the platform did not become ready");
}

static OPERATOR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    bearer: &str,
    body: Value,
) -> Value {
    let r = http
        .request(method, &url)
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await;
    match r {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
        Ok(r) => usage(&format!(
            "{url}: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        )),
        Err(e) => usage(&format!("{url}: {e}")),
    }
}

/// Runs `n` jobs with at most `width` in flight.
async fn bounded<F, T>(n: usize, width: usize, f: impl Fn(usize) -> F) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut out = Vec::with_capacity(n);
    let mut set = tokio::task::JoinSet::new();
    let mut next = 0;
    while next < n || !set.is_empty() {
        while next < n && set.len() < width {
            let fut = f(next);
            set.spawn(async move { (next, fut.await) });
            next += 1;
        }
        if let Some(Ok(r)) = set.join_next().await {
            out.push(r);
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, t)| t).collect()
}

#[tokio::main]
async fn main() {
    let args = parse();
    if args.baseline {
        baseline::run(args).await;
        return;
    }
    let nodes = start_servers(&args).await;
    // `start_servers` returns them last first: the first node takes setup.
    let server = &nodes[nodes.len() - 1];
    let bases: Vec<String> = nodes.iter().rev().map(|n| n.base.clone()).collect();
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let operator = OPERATOR.get().cloned().unwrap_or_default();
    let tenant = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/tenants"),
        &operator,
        json!({"name": "loadgen", "settings": {"limits": {
            "message.send": {"limit": 1_000_000, "period_secs": 1},
            "conversation.create": {"limit": 1_000_000, "period_secs": 1},
        }}}),
    )
    .await;
    let secret = tenant["secret"].as_str().unwrap_or_default().to_owned();

    let setup = Instant::now();
    let tokens: Vec<String> = bounded(args.users, 32, |i| {
        let (http, base, secret) = (http.clone(), base.clone(), secret.clone());
        async move {
            call(
                &http,
                reqwest::Method::PUT,
                format!("{base}/v1/users/u{i}"),
                &secret,
                json!({"name": format!("user {i}")}),
            )
            .await;
            let t = call(
                &http,
                reqwest::Method::POST,
                format!("{base}/v1/users/u{i}/tokens"),
                &secret,
                json!({"ttl_s": 3600}),
            )
            .await;
            t["access_token"].as_str().unwrap_or_default().to_owned()
        }
    })
    .await;
    let rss_before = rss_kib(&nodes);
    let clients: Vec<(Client, caas_transport::client::Events)> = bounded(args.users, 64, |i| {
        // Round-robin over the nodes: with two users on two nodes, every
        // delivery crosses nodes.
        let (base, token, codec) = (
            bases[i % bases.len()].clone(),
            tokens[i].clone(),
            args.codec,
        );
        async move {
            let mut config = ClientConfig::new(base, token).codec(codec);
            // A checkpoint re-reads from `sync` every event seen live since the
            // last one (4 096 by default): real traffic, but not delivery. Runs
            // are bounded, so the dedupe set may grow instead, and the numbers
            // measure live fan-out alone.
            config.checkpoint_after = usize::MAX;
            Client::connect(config)
                .await
                .unwrap_or_else(|e| usage(&format!("connect u{i}: {e}")))
        }
    })
    .await;
    if connected(&args, &nodes, setup, rss_before).await {
        return;
    }

    let members = membership(&args);
    let convs: Vec<ConversationId> = bounded(args.conversations, 16, |c| {
        let (http, base, secret) = (http.clone(), base.clone(), secret.clone());
        let ids: Vec<String> = members[c].iter().map(|u| format!("u{u}")).collect();
        async move {
            let v = call(
                &http,
                reqwest::Method::POST,
                format!("{base}/v1/conversations"),
                &secret,
                json!({"kind": "group", "members": ids, "name": format!("load {c}")}),
            )
            .await;
            ConversationId::parse(v["id"].as_str().unwrap_or_default())
                .unwrap_or_else(|e| usage(&e.to_string()))
        }
    })
    .await;

    // Receivers: every delivery of someone else's message is a latency sample.
    let epoch = Instant::now();
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for (i, (client, mut events)) in clients.into_iter().enumerate() {
        senders.push(client);
        let me = format!("u{i}");
        let stop = stop.clone();
        let warm = args.warmup_micros();
        receivers.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|e| usage(&e.to_string()));
            let mut deliveries = 0u64;
            loop {
                tokio::select! {
                    _ = stop.notified() => break,
                    n = events.next() => match n {
                        Some(Notice::Event(e)) => {
                            if let EventPayload::MessageCreated { message } = &e.payload
                                && let Some(sent) = message.body.as_deref().and_then(|b| b.parse::<u64>().ok())
                                && sent >= warm
                            {
                                deliveries += 1;
                                if message.sender.as_str() != me {
                                    let now = epoch.elapsed().as_micros() as u64;
                                    let _ = h.record(now.saturating_sub(sent).max(1));
                                }
                            }
                        }
                        Some(_) => {}
                        None => break,
                    }
                }
            }
            (h, deliveries)
        }));
    }

    let pids: Vec<u32> = nodes.iter().map(|n| n.child.id()).collect();
    let warm = warm_cpu(&args, pids.clone());
    let senders = Arc::new(senders);
    let outcome = drive(&args, &members, move |c, who, n| {
        let (senders, conv) = (senders.clone(), convs[c].clone());
        async move {
            let key =
                ClientMsgId::parse(&format!("l{n}")).unwrap_or_else(|e| usage(&e.to_string()));
            let body = (epoch.elapsed().as_micros() as u64).to_string();
            senders[who].send_text(&conv, &key, body).await.is_ok()
        }
    })
    .await;
    let (cpu_before, servers_before) = warm.await.unwrap_or_default();
    let cpu = cpu_secs(&pids) - cpu_before;
    let servers = shared_server_cpu(&args)
        .into_iter()
        .map(|(name, after)| {
            let before = servers_before.get(&name).copied().unwrap_or(0.0);
            (name, after - before)
        })
        .collect();
    stop.notify_waiters();
    report(&args, &nodes, outcome, cpu, servers, receivers).await;
    if args.metrics {
        print_store_timings(&http, &base).await;
    }
    drop(nodes);
}

/// Reports the memory the connections took; with `--idle`, waits and reports it
/// again, and returns true (the run ends there).
async fn connected(args: &Args, nodes: &[Server], setup: Instant, rss_before: u64) -> bool {
    let rss_connected = rss_kib(nodes);
    println!(
        "setup: {} users and connections in {:.1} s; server RSS {} KiB before connecting, {} KiB after: {:.1} KiB per connection",
        args.users,
        setup.elapsed().as_secs_f64(),
        rss_before,
        rss_connected,
        (rss_connected.saturating_sub(rss_before)) as f64 / args.users as f64
    );
    let Some(idle) = args.idle else {
        return false;
    };
    tokio::time::sleep(Duration::from_secs(idle)).await;
    let rss = rss_kib(nodes);
    println!(
        "idle {idle} s: server RSS {rss} KiB, {:.1} KiB per idle connection over the empty server",
        (rss.saturating_sub(rss_before)) as f64 / args.users as f64
    );
    true
}

/// The nodes' RSS, summed.
fn rss_kib(nodes: &[Server]) -> u64 {
    nodes.iter().map(Server::rss_kib).sum()
}

/// The CPU seconds of these processes, summed.
fn cpu_secs(pids: &[u32]) -> f64 {
    pids.iter().map(|p| pid_cpu_secs(*p)).sum()
}

/// One process's user plus system CPU seconds.
fn pid_cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat_cpu_secs(stat.rsplit_once(')').map(|(_, r)| r).unwrap_or(""))
}

/// The servers' CPU seconds (and the shared servers', with `--shared`) once
/// the warm-up is over: where the measured CPU starts.
fn warm_cpu(args: &Args, pids: Vec<u32>) -> tokio::task::JoinHandle<(f64, BTreeMap<String, f64>)> {
    let args = args.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(args.warmup)).await;
        (cpu_secs(&pids), shared_server_cpu(&args))
    })
}

/// With `--shared`, the CPU seconds of this machine's shared servers so far,
/// by program: every process named `postgres` (a backend per connection),
/// `redis-server`, and the bus's server. On a machine where they serve only
/// this run, the difference over the run is what the run cost them.
fn shared_server_cpu(args: &Args) -> BTreeMap<String, f64> {
    let mut names = vec!["postgres", "redis-server"];
    match args.bus.as_str() {
        "nats" => names.push("nats-server"),
        "rabbitmq" => names.push("beam.smp"),
        "kafka" => names.push("tansu"),
        _ => {}
    }
    let mut cpu = BTreeMap::new();
    if !args.shared {
        return cpu;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return cpu;
    };
    for entry in procs.flatten() {
        let path = entry.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|(_, c)| c).unwrap_or("");
        if let Some(name) = names.iter().find(|n| comm == **n) {
            *cpu.entry((*name).to_owned()).or_insert(0.0) += stat_cpu_secs(rest);
        }
    }
    cpu
}

/// User plus system CPU seconds from the fields of `/proc/PID/stat` after the
/// parenthesised command name (utime and stime are the 12th and 13th; clock
/// ticks of 1/100 s on Linux).
fn stat_cpu_secs(rest: &str) -> f64 {
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    (field(11) + field(12)) as f64 / 100.0
}

/// Members of each conversation: member j of conversation c is user
/// `(c * size + j) % users`.
fn membership(args: &Args) -> Vec<Vec<usize>> {
    (0..args.conversations)
        .map(|c| {
            (0..args.size)
                .map(|j| (c * args.size + j) % args.users)
                .collect()
        })
        .collect()
}

/// The server's mean store and bus call times by port and operation, from its
/// `/metrics`.
async fn print_store_timings(http: &reqwest::Client, base: &str) {
    let text = match http.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => return eprintln!("metrics: {e}"),
    };
    let value = |l: &str| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
    let mut sums = BTreeMap::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("caas_store_duration_seconds_") else {
            continue;
        };
        let (kind, labels) = rest.split_once('{').unwrap_or((rest, ""));
        let labels = labels.split('}').next().unwrap_or("").to_owned();
        let entry = sums.entry(labels).or_insert((0.0, 0.0));
        match kind {
            "sum" => entry.0 += value(l).unwrap_or(0.0),
            "count" => entry.1 += value(l).unwrap_or(0.0),
            _ => {}
        }
    }
    println!("  store and bus calls (mean):");
    for (labels, (sum, count)) in sums {
        if count > 0.0 {
            println!(
                "    {labels}: {count:.0} calls, {:.1} µs",
                sum / count * 1e6
            );
        }
    }
}

/// What the timed phase did.
struct Outcome {
    sent: u64,
    failed: u64,
    window: f64,
}

/// The timed phase: `rate` sends a second, spread over 1 ms ticks, each from a
/// random member of a random conversation by `send(conversation, member, n)`;
/// then waits for the sends in flight and one more second for deliveries.
async fn drive<F, Fut>(args: &Args, members: &[Vec<usize>], send: F) -> Outcome
where
    F: Fn(usize, usize, u64) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let run = Instant::now();
    let warmup = Duration::from_secs(args.warmup);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut due = 0f64;
    let mut n = 0u64;
    let mut inflight = tokio::task::JoinSet::new();
    while run.elapsed() < warmup + Duration::from_secs(args.duration) {
        tick.tick().await;
        let counted = run.elapsed() >= warmup;
        due += args.rate as f64 / 1000.0;
        while due >= 1.0 {
            due -= 1.0;
            let c = fastrand::usize(..members.len());
            let who = members[c][fastrand::usize(..args.size)];
            let (sent, failed) = (sent.clone(), failed.clone());
            let fut = send(c, who, n);
            n += 1;
            inflight.spawn(async move {
                let ok = fut.await;
                if counted {
                    match ok {
                        true => sent.fetch_add(1, Ordering::Relaxed),
                        false => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            });
        }
        while inflight.try_join_next().is_some() {}
    }
    let window = run.elapsed().saturating_sub(warmup).as_secs_f64();
    while inflight.join_next().await.is_some() {}
    tokio::time::sleep(Duration::from_secs(1)).await;
    Outcome {
        sent: sent.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        window,
    }
}

/// A receiver's latency samples and deliveries.
type Received = tokio::task::JoinHandle<(Histogram<u64>, u64)>;

/// Prints the run's numbers.
async fn report(
    args: &Args,
    nodes: &[Server],
    outcome: Outcome,
    cpu: f64,
    servers: BTreeMap<String, f64>,
    receivers: Vec<Received>,
) {
    let Outcome {
        sent,
        failed,
        window: send_window,
    } = outcome;
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|e| usage(&e.to_string()));
    let mut deliveries = 0;
    for r in receivers {
        if let Ok((h, d)) = r.await {
            let _ = total.add(&h);
            deliveries += d;
        }
    }
    let what = if args.baseline {
        "bare fan-out baseline".to_owned()
    } else if args.shared {
        format!(
            "{:?}, {} node(s) on PostgreSQL + Redis, bus {}",
            args.codec, args.nodes, args.bus
        )
    } else {
        format!("{:?}", args.codec)
    };
    println!(
        "run: {} users, {} conversations of {}, {} msg/s offered for {} s ({what})",
        args.users, args.conversations, args.size, args.rate, args.duration
    );
    println!(
        "  sends {} {sent} ({:.0}/s), failed {failed}",
        if args.baseline { "written" } else { "acked" },
        sent as f64 / send_window,
    );
    println!(
        "  deliveries {deliveries} ({:.0}/s)",
        deliveries as f64 / send_window
    );
    println!(
        "  send-to-deliver latency (others' messages): p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs over {} samples",
        total.value_at_quantile(0.5),
        total.value_at_quantile(0.99),
        total.value_at_quantile(0.999),
        total.max(),
        total.len()
    );
    println!(
        "  server: {:.2} CPU s, {:.0} deliveries per CPU second, RSS {} KiB",
        cpu,
        if cpu > 0.0 {
            deliveries as f64 / cpu
        } else {
            0.0
        },
        rss_kib(nodes)
    );
    if !servers.is_empty() {
        let total: f64 = servers.values().sum();
        let each: Vec<String> = servers
            .iter()
            .map(|(name, secs)| format!("{name} {secs:.2}"))
            .collect();
        println!(
            "  shared servers: {total:.2} CPU s ({}); nodes and servers together: {:.0} deliveries and {:.0} acked sends per CPU second",
            each.join(", "),
            deliveries as f64 / (cpu + total).max(f64::EPSILON),
            sent as f64 / (cpu + total).max(f64::EPSILON),
        );
    }
}
