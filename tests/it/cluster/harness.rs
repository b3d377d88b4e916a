//! Node processes, a cluster of them, and the clients the cluster tests drive.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caas::core::events::EventPayload;
use caas::core::ids::{ClientMsgId, ConversationId};
use caas::platform::PlatformConfig;
use caas_transport::client::{Backoff, Client, ClientConfig, ClientError, Events, Notice};
use serde_json::{Value, json};

/// Set in a node process's environment: `node_process` runs only there.
const NODE_ENV: &str = "CAAS_TEST_NODE";
/// What a node process prints once it listens, followed by its address.
const READY: &str = "caas-test-node listening on";
/// What the first node prints before it, followed by the generated operator key.
const OPERATOR_KEY: &str = "caas-test-node operator key";

/// A node of the cluster tests: the platform configured from `CAAS_*` (and the
/// file `CAAS_TEST_NODE_CONFIG` names), as `examples/platform` configures it,
/// until SIGTERM (graceful) or SIGKILL. Run by [`Node::spawn`] in a child
/// process; on its own it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a node process of the cluster tests, which start it themselves"]
async fn node_process() {
    if std::env::var(NODE_ENV).as_deref() != Ok("1") {
        return;
    }
    let file = std::env::var_os("CAAS_TEST_NODE_CONFIG").map(PathBuf::from);
    let config = PlatformConfig::load(file.as_deref(), |k| std::env::var(k).ok())
        .expect("the node's configuration");
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log).expect("CAAS_LOG");
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let platform = caas::platform::start(config)
        .await
        .expect("the node starts");
    {
        let mut out = std::io::stdout().lock();
        if let Some(key) = &platform.generated_operator_key {
            writeln!(out, "{OPERATOR_KEY} {key}").unwrap();
        }
        writeln!(out, "{READY} {}", platform.addr).unwrap();
        out.flush().unwrap();
    }
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    term.recv().await;
    platform.shutdown().await.unwrap();
}

/// A node process.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) addr: SocketAddr,
    child: Child,
    log: PathBuf,
    /// The operator key, when this node generated it.
    operator_key: Option<String>,
}

impl Node {
    /// Starts a node with these `CAAS_*` variables and waits until it listens.
    pub(crate) fn spawn(env: &[(String, String)], config: &Path, log: PathBuf) -> Node {
        let exe = std::env::current_exe().expect("the test binary's path");
        let stderr = std::fs::File::create(&log).expect("the node's log");
        let mut child = Command::new(exe)
            .args(["cluster::harness::node_process", "--exact", "--ignored"])
            .args(["--nocapture", "--test-threads", "1", "-q"])
            .env(NODE_ENV, "1")
            .env("CAAS_TEST_NODE_CONFIG", config)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the node process starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the node's stdout to its end, so the node never blocks on it.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut operator_key = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(key) = line.strip_prefix(OPERATOR_KEY) {
                        operator_key = Some(key.trim().to_owned());
                    } else if let Some(addr) = line.strip_prefix(READY) {
                        let addr = addr.trim().parse().expect("the node's address");
                        return Node {
                            addr,
                            child,
                            log,
                            operator_key,
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the node did not start within 60 s: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        }
    }

    /// `http://addr`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id, to show a node was not restarted.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process still runs.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no shutdown, no flush, as a crash or a pulled plug.
    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of the node's log, for a failure message.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The servers a cluster's nodes share, and the bus between them.
#[derive(Debug, Clone)]
pub(crate) struct Servers {
    pub(crate) postgres: String,
    pub(crate) redis: String,
    /// `CAAS_BUS` and the variable and URL of its server (`None` for `redis`).
    pub(crate) bus: (&'static str, Option<(&'static str, String)>),
}

impl Servers {
    /// The servers `scripts/test` provisioned, with the Redis bus; `None`
    /// (said plainly) without them when they are not required.
    pub(crate) fn provisioned() -> Option<Servers> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        match (var("CAAS_TEST_POSTGRES_URL"), var("CAAS_TEST_REDIS_URL")) {
            (Some(postgres), Some(redis)) => Some(Servers {
                postgres,
                redis,
                bus: ("redis", None),
            }),
            _ => {
                caas_test_servers::skipped(
                    "a cluster test (CAAS_TEST_POSTGRES_URL or CAAS_TEST_REDIS_URL is unset)",
                );
                None
            }
        }
    }
}

/// Nodes over shared servers, sharing one data dir for their keys (the
/// operator key's hash, the token-signing seed), as `scripts/cluster` runs them.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Node>,
    pub(crate) operator_key: String,
    dir: PathBuf,
}

impl Cluster {
    /// Starts `n` nodes: the first alone (it makes the keys), then the others.
    pub(crate) fn start(n: usize, servers: &Servers) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "caas-cluster-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("caas.toml");
        // The tests drive every client from 127.0.0.1: no per-IP edge limit,
        // and room for a load test's frames.
        std::fs::write(
            &config,
            "edge_requests_per_minute = 0\nws_frames_per_second = 10000\n",
        )
        .unwrap();
        let mut env: Vec<(String, String)> = vec![
            ("CAAS_LISTEN".into(), "127.0.0.1:0".into()),
            (
                "CAAS_DATA_DIR".into(),
                dir.join("keys").display().to_string(),
            ),
            ("CAAS_CLUSTER".into(), "on".into()),
            ("CAAS_STORAGE".into(), "postgres".into()),
            ("CAAS_PRESENCE".into(), "redis".into()),
            ("CAAS_POSTGRES_URL".into(), servers.postgres.clone()),
            ("CAAS_REDIS_URL".into(), servers.redis.clone()),
            ("CAAS_BUS".into(), servers.bus.0.into()),
            ("CAAS_LOG".into(), "warn".into()),
        ];
        if let Some((name, url)) = &servers.bus.1 {
            env.push(((*name).into(), url.clone()));
        }
        let log = |i: usize| dir.join(format!("node{i}.log"));
        let first = Node::spawn(&env, &config, log(0));
        let operator_key = first
            .operator_key
            .clone()
            .expect("the first node generates the operator key");
        let mut nodes = vec![first];
        nodes.extend((1..n).map(|i| Node::spawn(&env, &config, log(i))));
        Cluster {
            nodes,
            operator_key,
            dir,
        }
    }

    /// The nodes' URLs, starting with node `i`'s: a client's node, then where
    /// it fails over to.
    pub(crate) fn urls_from(&self, i: usize) -> Vec<String> {
        let n = self.nodes.len();
        (0..n).map(|k| self.nodes[(i + k) % n].url()).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A tenant made over REST, its users' access tokens, and a group of them.
#[derive(Debug)]
pub(crate) struct Tenant {
    pub(crate) tokens: HashMap<String, String>,
    pub(crate) conversation: ConversationId,
}

/// Makes a tenant through `base` with limits that a load test does not reach,
/// the users, and one group conversation of them all (made by the first).
pub(crate) async fn tenant(base: &str, operator_key: &str, users: &[&str]) -> Tenant {
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, auth: &str, body: Value| {
        let http = http.clone();
        let url = format!("{base}{path}");
        let auth = auth.to_owned();
        async move {
            let r = http
                .request(method, &url)
                .bearer_auth(auth)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert!(status.is_success(), "{url}: {status} {body}");
            body
        }
    };
    let generous = json!({"limit": 1_000_000, "period_secs": 60});
    let created = call(
        reqwest::Method::POST,
        "/v1/tenants",
        operator_key,
        json!({"name": "cluster", "settings": {"limits": {
            "message.send": generous, "typing": generous, "receipt.update": generous,
            "presence.update": generous, "call.signal": generous,
        }}}),
    )
    .await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    let mut tokens = HashMap::new();
    for user in users {
        call(
            reqwest::Method::PUT,
            &format!("/v1/users/{user}"),
            &secret,
            json!({"name": user}),
        )
        .await;
        let minted = call(
            reqwest::Method::POST,
            &format!("/v1/users/{user}/tokens"),
            &secret,
            json!({"ttl_s": 3600}),
        )
        .await;
        tokens.insert(
            (*user).to_owned(),
            minted["access_token"].as_str().unwrap().to_owned(),
        );
    }
    let conv = call(
        reqwest::Method::POST,
        "/v1/conversations",
        &tokens[users[0]],
        json!({"kind": "group", "members": &users[1..]}),
    )
    .await;
    Tenant {
        conversation: ConversationId::parse(conv["id"].as_str().unwrap()).unwrap(),
        tokens,
    }
}

/// A client of `urls[0]` that fails over to the rest, reconnecting quickly.
pub(crate) async fn client(urls: &[String], token: &str) -> (Client, Events) {
    let mut config = ClientConfig::new(urls[0].clone(), token).backoff(Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
    });
    for url in &urls[1..] {
        config = config.fallback(url.clone());
    }
    config.request_timeout = Duration::from_secs(5);
    Client::connect(config).await.unwrap()
}

/// What a receiving client got: each `message.created` of the conversation in
/// the order the client delivered it, whether it came live, and how many
/// times the client connected.
#[derive(Debug, Default)]
pub(crate) struct Received {
    /// (client_msg_id, seq, live).
    pub(crate) messages: Vec<(String, u64, bool)>,
    pub(crate) connections: usize,
}

/// Collects a client's notices into a shared [`Received`] until the stream ends.
pub(crate) fn collect(mut events: Events, conversation: ConversationId) -> Arc<Mutex<Received>> {
    let received = Arc::new(Mutex::new(Received::default()));
    let into = received.clone();
    tokio::spawn(async move {
        while let Some(notice) = events.next().await {
            let mut r = into.lock().unwrap();
            match notice {
                Notice::Connected => r.connections += 1,
                Notice::Event(e) => {
                    if let EventPayload::MessageCreated { message } = &e.payload
                        && message.conversation == conversation
                    {
                        let id = message.client_msg_id.to_string();
                        r.messages.push((id, message.seq.0, e.cursor.is_none()));
                    }
                }
                _ => {}
            }
        }
    });
    received
}

/// What became of one send, retried with the same `client_msg_id` until acked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// Acked with this seq (`duplicate`: the ack of a retry names the first copy).
    Acked { seq: u64, duplicate: bool },
    /// Refused with this `api.md` code.
    Refused(String),
    /// No answer: the connection dropped or the ack did not come in time.
    Unknown,
}

/// One attempt to send `id`.
pub(crate) async fn send_once(client: &Client, conv: &ConversationId, id: &str) -> Outcome {
    let cmid = ClientMsgId::parse(id).unwrap();
    match client.send_text(conv, &cmid, format!("body of {id}")).await {
        Ok(sent) => Outcome::Acked {
            seq: sent.seq.0,
            duplicate: sent.duplicate,
        },
        Err(ClientError::Server { code, .. }) => Outcome::Refused(code),
        Err(ClientError::Disconnected | ClientError::Timeout(_)) => Outcome::Unknown,
        Err(e) => panic!("send {id}: {e}"),
    }
}

/// Sends `id` until it is acked, for at most `within`: the attempts' outcomes,
/// the last an ack unless time ran out.
pub(crate) async fn send_until_acked(
    client: &Client,
    conv: &ConversationId,
    id: &str,
    within: Duration,
) -> Vec<Outcome> {
    let deadline = Instant::now() + within;
    let mut outcomes = Vec::new();
    loop {
        let o = send_once(client, conv, id).await;
        let done = matches!(o, Outcome::Acked { .. });
        if let Outcome::Refused(code) = &o {
            assert!(
                code == "unavailable" || code == "rate_limited",
                "send {id} refused with `{code}`, which a retry cannot mend"
            );
        }
        outcomes.push(o);
        if done || Instant::now() >= deadline {
            return outcomes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every message of `conv` in the store, through `base`'s REST history.
pub(crate) async fn stored(base: &str, token: &str, conv: &ConversationId) -> Vec<(String, u64)> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let page: Value = http
            .get(format!(
                "{base}/v1/conversations/{conv}/messages?after_seq={after}&limit=100"
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().expect("a page of messages");
        if items.is_empty() {
            return out;
        }
        for m in items {
            let seq = m["seq"].as_u64().unwrap();
            out.push((m["client_msg_id"].as_str().unwrap_or("").to_owned(), seq));
            after = after.max(seq);
        }
    }
}

/// Waits until `done` holds for what `received` holds, for at most `within`.
pub(crate) async fn wait_until(
    received: &Mutex<Received>,
    within: Duration,
    done: impl Fn(&Received) -> bool,
) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done(&received.lock().unwrap()) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
