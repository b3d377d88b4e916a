//! The platform as one process: started on 127.0.0.1:0 with a fresh data dir.

use caas::platform::{PlatformConfig, create_demo, start};

fn config(dir: &std::path::Path) -> PlatformConfig {
    PlatformConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        edge_requests_per_minute: 0,
        ..PlatformConfig::default()
    }
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "caas-platform-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn first_start_generates_the_operator_key_once_and_keys_survive_restarts() {
    let dir = temp_dir("keys");
    let p = start(config(&dir)).await.unwrap();
    let key = p
        .generated_operator_key
        .clone()
        .expect("printed on first start");
    let http = reqwest::Client::new();
    let base = format!("http://{}", p.addr);
    let r = http
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let first: serde_json::Value = r.json().await.unwrap();
    let first_id = first["tenant_id"].as_str().unwrap().to_owned();
    let jwks = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    p.shutdown().await.unwrap();

    let p = start(config(&dir)).await.unwrap();
    assert!(
        p.generated_operator_key.is_none(),
        "the key is not generated or printed again"
    );
    let base = format!("http://{}", p.addr);
    let r = http
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"name": "again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        201,
        "the same operator key works after a restart"
    );
    let again = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(jwks, again, "the token-signing key survives restarts");
    let kept = http
        .get(format!("{base}/v1/tenants/{first_id}"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        kept.status(),
        200,
        "data written before the restart is there after it"
    );
    p.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_demo_gives_two_users_who_can_chat() {
    let dir = temp_dir("demo");
    let p = start(config(&dir)).await.unwrap();
    let demo = create_demo(&p).await.unwrap();
    let (alice, bob) = (&demo.tokens[0].1, &demo.tokens[1].1);
    let http = reqwest::Client::new();
    let base = format!("http://{}", p.addr);
    let conv: serde_json::Value = http
        .post(format!("{base}/v1/conversations"))
        .bearer_auth(alice)
        .json(&serde_json::json!({"kind": "direct", "members": ["bob"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = conv["id"].as_str().unwrap();
    let r = http
        .post(format!("{base}/v1/conversations/{id}/messages"))
        .bearer_auth(alice)
        .json(&serde_json::json!({"client_msg_id": "m-1", "body": "hi Bob"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let sync: serde_json::Value = http
        .get(format!("{base}/v1/sync?since=0"))
        .bearer_auth(bob)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bodies: Vec<_> = sync["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"]["message"]["body"].as_str())
        .collect();
    assert_eq!(bodies, ["hi Bob"]);
    p.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn memory_storage_writes_nothing_and_its_tokens_die_with_it() {
    let dir = temp_dir("memory").join("never-created");
    let memory = || PlatformConfig {
        storage: caas::platform::Storage::Memory,
        ..config(&dir)
    };
    let p = start(memory()).await.unwrap();
    let key = p.generated_operator_key.clone().expect("generated");
    let http = reqwest::Client::new();
    let base = format!("http://{}", p.addr);
    let r = http
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"name": "scratch"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let jwks = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    p.shutdown().await.unwrap();
    assert!(!dir.exists(), "not even keys are written");

    let p = start(memory()).await.unwrap();
    let base = format!("http://{}", p.addr);
    let r = http
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"name": "again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the old operator key is gone with its run");
    let again = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_ne!(jwks, again, "a fresh signing key each run");
    p.shutdown().await.unwrap();
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir_all(parent);
    }
}

/// Everything SQLite wrote (the database, its WAL and shm), as bytes.
fn stored_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in ["caas.db", "caas.db-wal", "caas.db-shm"] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            bytes.extend(b);
        }
    }
    bytes
}

fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn with_encryption_on_no_body_reaches_the_file_and_everything_still_works() {
    let dir = temp_dir("sealed");
    let mut c = config(&dir);
    c.encryption.enabled = true;
    let p = start(c.clone()).await.unwrap();
    let demo = create_demo(&p).await.unwrap();
    let (alice, bob) = (demo.tokens[0].1.clone(), demo.tokens[1].1.clone());
    let http = reqwest::Client::new();
    let base = format!("http://{}", p.addr);
    let conv: serde_json::Value = http
        .post(format!("{base}/v1/conversations"))
        .bearer_auth(&alice)
        .json(&serde_json::json!({"kind": "direct", "members": ["bob"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = conv["id"].as_str().unwrap().to_owned();
    let sent: serde_json::Value = http
        .post(format!("{base}/v1/conversations/{id}/messages"))
        .bearer_auth(&alice)
        .json(&serde_json::json!({"client_msg_id": "m-1", "body": "meet at the xylophone museum"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent["body"], "meet at the xylophone museum");
    let message_id = sent["id"].as_str().unwrap().to_owned();
    let edited = http
        .patch(format!(
            "{base}/v1/conversations/{id}/messages/{message_id}"
        ))
        .bearer_auth(&alice)
        .json(&serde_json::json!({"body": "no, the quokka garden"}))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), 200);
    let get = |path: String, token: String| {
        let http = http.clone();
        async move {
            let r = http.get(path).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let check = |base: String| {
        let (id, alice, bob) = (id.clone(), alice.clone(), bob.clone());
        async move {
            let history = get(
                format!("{base}/v1/conversations/{id}/messages"),
                bob.clone(),
            )
            .await;
            assert_eq!(history["items"][0]["body"], "no, the quokka garden");
            assert_eq!(
                history["items"][0]["edits"][0]["body"],
                "meet at the xylophone museum"
            );
            let sync = get(format!("{base}/v1/sync?since=0"), bob.clone()).await;
            let bodies: Vec<_> = sync["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e["event"]["message"]["body"].as_str())
                .collect();
            assert_eq!(
                bodies,
                ["meet at the xylophone museum", "no, the quokka garden"]
            );
            for (q, hits) in [("quokka", 1), ("quok", 1), ("xylophone", 0)] {
                let found = get(format!("{base}/v1/search/messages?q={q}"), alice.clone()).await;
                assert_eq!(found["items"].as_array().unwrap().len(), hits, "{q}");
            }
        }
    };
    check(base.clone()).await;
    p.shutdown().await.unwrap();

    let stored = stored_bytes(&dir);
    for word in ["xylophone", "quokka", "museum", "garden"] {
        assert!(!holds(&stored, word), "`{word}` is in the database files");
    }
    // The keys live in a file of their own, private, apart from the data.
    let keys_mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dir.join("keys.db"))
            .unwrap()
            .permissions()
            .mode()
    };
    assert_eq!(keys_mode & 0o077, 0, "{keys_mode:o}");
    // The key stays in the data dir: a restart reads everything back.
    let p = start(c).await.unwrap();
    let base = format!("http://{}", p.addr);
    check(base.clone()).await;
    // Erasing alice destroys her key: her bodies are gone for every copy.
    let erased: serde_json::Value = http
        .delete(format!("{base}/v1/compliance/users/alice"))
        .bearer_auth(&demo.tenant_secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(erased["keys_destroyed"], 1, "{erased}");
    p.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_second_platform_on_the_same_data_dir_refuses_to_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("lock");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let first = start(config(&dir)).await.unwrap();
    assert_eq!(mode(&dir), 0o700, "an existing data dir is made private");
    for file in [
        "caas.db",
        "caas.lock",
        "operator-key.sha256",
        "token-signing.seed",
    ] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }

    let err = start(config(&dir)).await.unwrap_err().to_string();
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(
        err.contains(&dir.display().to_string()) && err.contains("another caas process"),
        "names the data dir and why: {err}"
    );
    // Memory storage takes no lock: it can run beside the embedded one.
    let memory = start(PlatformConfig {
        storage: caas::platform::Storage::Memory,
        ..config(&dir)
    })
    .await
    .unwrap();
    memory.shutdown().await.unwrap();

    // The first one still serves, and its data dir is free once it stops.
    let r = reqwest::get(format!("http://{}/health/ready", first.addr))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    first.shutdown().await.unwrap();
    let again = start(config(&dir)).await.unwrap();
    again.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// Two nodes over shared PostgreSQL and Redis (`cluster = true`): a token one
/// node signed works on the other, and a message sent through one reaches a
/// WebSocket client of the other live, over the Redis bus and, when the build
/// has it, the Kafka-protocol bus. Needs `CAAS_TEST_POSTGRES_URL` (and
/// `CAAS_TEST_REDIS_URL`, by default the server on 127.0.0.1:6379;
/// `CAAS_TEST_KAFKA_URL` for the Kafka case).
#[cfg(all(feature = "postgres", feature = "redis"))]
#[tokio::test]
async fn two_nodes_on_shared_servers_deliver_across_nodes() {
    use caas::platform::BusKind;
    let Some((a, b, dir)) = two_nodes(BusKind::Redis, None).await else {
        return;
    };
    deliver_across_nodes(a, b, dir, BusKind::Redis).await;
    #[cfg(feature = "kafka")]
    {
        let kafka = std::env::var("CAAS_TEST_KAFKA_URL")
            .ok()
            .filter(|u| !u.trim().is_empty());
        if kafka.is_none() {
            assert_ne!(
                std::env::var("CAAS_REQUIRE_INTEGRATION").as_deref(),
                Ok("1"),
                "CAAS_TEST_KAFKA_URL is not set but CAAS_REQUIRE_INTEGRATION=1"
            );
            eprintln!(
                "SKIPPED: the two-node case on the Kafka-protocol bus (no CAAS_TEST_KAFKA_URL)"
            );
        } else if let Some((a, b, dir)) = two_nodes(BusKind::Kafka, kafka).await {
            deliver_across_nodes(a, b, dir, BusKind::Kafka).await;
        }
    }
}

/// The same two-node case with the stores on MongoDB (`storage = mongo`),
/// when `CAAS_TEST_MONGO_URL` names a replica set. No MongoDB server can be
/// installed where `scripts/test` runs, so there it says plainly that it did
/// not run: never counted as passed.
#[cfg(all(feature = "mongo", feature = "redis"))]
#[tokio::test]
async fn two_nodes_on_mongodb_deliver_across_nodes() {
    use caas::platform::{BusKind, PresenceKind, ServersConfig, Storage};
    let Some(mongo) = std::env::var("CAAS_TEST_MONGO_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        use std::io::Write;
        // Straight to the descriptor: libtest would swallow a passing test's
        // `eprintln!`, and a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "\nSKIPPED: the two-node platform on MongoDB did not run (CAAS_TEST_MONGO_URL is not set; no MongoDB server can be installed here) — not counted as passed\n"
        );
        return;
    };
    let redis =
        std::env::var("CAAS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let dir = temp_dir("cluster-mongo");
    let node = || PlatformConfig {
        storage: Storage::Mongo,
        bus: BusKind::Redis,
        presence: PresenceKind::Redis,
        cluster: true,
        servers: ServersConfig {
            mongo: Some(mongo.clone()),
            redis: Some(redis.clone()),
            ..ServersConfig::default()
        },
        ..config(&dir)
    };
    let a = start(node()).await.unwrap();
    let b = start(node()).await.unwrap();
    deliver_across_nodes(a, b, dir, BusKind::Redis).await;
}

/// A message sent through node `a` reaches a WebSocket client of node `b`
/// live, and typing, receipts and presence cross too.
#[cfg(all(feature = "redis", any(feature = "postgres", feature = "mongo")))]
async fn deliver_across_nodes(
    a: caas::platform::Platform,
    b: caas::platform::Platform,
    dir: std::path::PathBuf,
    bus: caas::platform::BusKind,
) {
    use caas::core::events::EventPayload;
    use caas_transport::client::{Client, ClientConfig};
    use caas_transport::ws::frames::{ReadRequest, Request, TypingRequest};

    let demo = create_demo(&a).await.unwrap();
    let (alice, bob) = (&demo.tokens[0].1, &demo.tokens[1].1);

    let (_bob_client, mut bob_events) =
        Client::connect(ClientConfig::new(format!("http://{}", b.addr), bob.clone()))
            .await
            .unwrap();
    let http = reqwest::Client::new();
    let base_a = format!("http://{}", a.addr);
    let conv: serde_json::Value = http
        .post(format!("{base_a}/v1/conversations"))
        .bearer_auth(alice)
        .json(&serde_json::json!({"kind": "direct", "members": ["bob"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = conv["id"].as_str().unwrap();
    let r = http
        .post(format!("{base_a}/v1/conversations/{id}/messages"))
        .bearer_auth(alice)
        .json(&serde_json::json!({"client_msg_id": "m-1", "body": "across nodes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let e = bob_events
                .next_event()
                .await
                .expect("bob's connection stays open");
            if let EventPayload::MessageCreated { message } = e.payload {
                return message.body;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the message reaches node B within 10 s on {bus:?}"));
    assert_eq!(body.as_deref(), Some("across nodes"));

    // Typing, receipts and presence cross nodes too: Alice is on node A.
    let (alice_client, mut alice_events) =
        Client::connect(ClientConfig::new(base_a.clone(), alice.clone()))
            .await
            .unwrap();
    let conversation_id = caas::core::ids::ConversationId::parse(id).unwrap();
    alice_client
        .request(Request::Typing(TypingRequest {
            conversation_id: conversation_id.clone(),
            typing: true,
        }))
        .await
        .unwrap();
    let within = std::time::Duration::from_secs(10);
    tokio::time::timeout(within, async {
        loop {
            let e = bob_events.next_event().await.expect("bob stays connected");
            if matches!(e.payload, EventPayload::Typing { .. }) {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("alice's typing reaches node B on {bus:?}"));
    _bob_client
        .request(Request::Read(ReadRequest {
            conversation_id,
            seq: caas::core::ids::Seq(1),
            delivered_only: false,
        }))
        .await
        .unwrap();
    tokio::time::timeout(within, async {
        loop {
            let e = alice_events
                .next_event()
                .await
                .expect("alice stays connected");
            if matches!(e.payload, EventPayload::ReceiptUpdated { .. }) {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("bob's receipt reaches node A on {bus:?}"));
    let presence: serde_json::Value = http
        .get(format!("http://{}/v1/presence?users=alice", b.addr))
        .bearer_auth(bob)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        presence["items"][0]["status"], "online",
        "node B sees alice online on node A: {presence}"
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// `blobs = s3` puts the platform's blobs in the bucket its URL names (made at
/// start), on the server `CAAS_TEST_S3_URL` names with its keys.
#[cfg(feature = "s3")]
#[tokio::test]
async fn blobs_on_s3_from_configuration() {
    use caas::core::ids::{BlobId, TenantId};
    use caas::core::time::Timestamp;
    use caas::platform::{BlobsKind, Secret, ServersConfig};

    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let (Some(url), Some(access), Some(secret)) = (
        var("CAAS_TEST_S3_URL"),
        var("CAAS_TEST_S3_ACCESS_KEY"),
        var("CAAS_TEST_S3_SECRET_KEY"),
    ) else {
        assert_ne!(
            std::env::var("CAAS_REQUIRE_INTEGRATION").as_deref(),
            Ok("1"),
            "CAAS_TEST_S3_URL and its keys are not set but CAAS_REQUIRE_INTEGRATION=1"
        );
        eprintln!("SKIPPED: blobs_on_s3_from_configuration (no CAAS_TEST_S3_URL)");
        return;
    };
    let dir = temp_dir("s3");
    let bucket = format!("caas-platform-{:08x}", std::process::id());
    let p = start(PlatformConfig {
        blobs: BlobsKind::S3,
        servers: ServersConfig {
            s3: Some(format!("{}/{bucket}", url.trim_end_matches('/'))),
            s3_access_key: Some(access),
            s3_secret_key: Some(Secret(secret)),
            ..ServersConfig::default()
        },
        ..config(&dir)
    })
    .await
    .unwrap();
    let blobs = p.state.caas.backends().blobs.clone();
    assert!(blobs.capabilities().presigned_urls);
    let tenant = TenantId::parse("t_platform_s3").unwrap();
    let id = BlobId::parse("b_one").unwrap();
    blobs
        .put(
            &tenant,
            &id,
            "text/plain",
            b"hello".to_vec(),
            Timestamp::from_secs(1_800_000_000),
        )
        .await
        .unwrap();
    let (meta, bytes) = blobs.get(&tenant, &id).await.unwrap().unwrap();
    assert_eq!(
        (meta.content_type.as_str(), bytes.as_slice()),
        ("text/plain", &b"hello"[..])
    );
    assert!(blobs.delete(&tenant, &id).await.unwrap());
    p.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// Two platform nodes (`cluster = true`) on the test's PostgreSQL and Redis,
/// sharing one data dir for their keys; `None` (said plainly) without
/// `CAAS_TEST_POSTGRES_URL` when none is required.
#[cfg(all(feature = "postgres", feature = "redis"))]
async fn two_nodes(
    bus: caas::platform::BusKind,
    kafka: Option<String>,
) -> Option<(
    caas::platform::Platform,
    caas::platform::Platform,
    std::path::PathBuf,
)> {
    use caas::platform::{PresenceKind, ServersConfig, Storage};
    let Some(postgres) = std::env::var("CAAS_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        assert_ne!(
            std::env::var("CAAS_REQUIRE_INTEGRATION").as_deref(),
            Ok("1"),
            "CAAS_TEST_POSTGRES_URL is not set but CAAS_REQUIRE_INTEGRATION=1"
        );
        eprintln!("SKIPPED: a two-node platform test (no CAAS_TEST_POSTGRES_URL)");
        return None;
    };
    let redis =
        std::env::var("CAAS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    // One data dir for both: it holds the keys every node of a platform shares.
    let dir = temp_dir("cluster");
    let node = || PlatformConfig {
        storage: Storage::Postgres,
        bus,
        presence: PresenceKind::Redis,
        cluster: true,
        servers: ServersConfig {
            postgres: Some(postgres.clone()),
            redis: Some(redis.clone()),
            kafka: kafka.clone(),
            ..ServersConfig::default()
        },
        ..config(&dir)
    };
    let a = start(node()).await.unwrap();
    let b = start(node()).await.unwrap();
    Some((a, b, dir))
}

/// A user's rate-limit budget spent on one node is spent on the other (limits
/// live in Redis), where separate nodes with in-process limits would each
/// allow the whole budget.
#[cfg(all(feature = "postgres", feature = "redis"))]
#[tokio::test]
async fn two_nodes_share_rate_limits() {
    use caas::core::model::TenantSettings;
    use caas::core::ratelimit::Quota;
    use caas::{Principal, core::ids::UserId};

    let Some((a, b, dir)) = two_nodes(caas::platform::BusKind::Redis, None).await else {
        return;
    };
    let caas = &a.state.caas;
    let mut settings = TenantSettings::default();
    settings
        .limits
        .insert("conversation.create".into(), Quota::per_minute(2));
    let tenant = caas
        .create_tenant(&Principal::operator(), "limits", settings)
        .await
        .unwrap();
    let server = Principal::tenant_server(tenant.id.clone());
    for name in ["alice", "bob"] {
        caas.upsert_user(
            &server,
            &UserId::parse(name).unwrap(),
            name,
            Default::default(),
        )
        .await
        .unwrap();
    }
    let alice = caas
        .mint_token(
            &server,
            &UserId::parse("alice").unwrap(),
            None,
            std::time::Duration::from_secs(600),
        )
        .await
        .unwrap()
        .access_token;
    let http = reqwest::Client::new();
    let create = |node: std::net::SocketAddr| {
        http.post(format!("http://{node}/v1/conversations"))
            .bearer_auth(&alice)
            .json(&serde_json::json!({"kind": "group", "members": ["bob"]}))
            .send()
    };
    assert_eq!(create(a.addr).await.unwrap().status(), 201);
    assert_eq!(create(b.addr).await.unwrap().status(), 201);
    let third = create(a.addr).await.unwrap();
    assert_eq!(
        third.status(),
        429,
        "the budget of 2 was spent across both nodes"
    );
    assert_eq!(create(b.addr).await.unwrap().status(), 429);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// A session logged out through one node is refused by the other at once
/// (revocations live in Redis), not only when its access token expires.
#[cfg(all(feature = "postgres", feature = "redis"))]
#[tokio::test]
async fn a_session_logged_out_on_one_node_is_refused_on_the_other() {
    use caas::Principal;
    use caas::core::model::TenantSettings;

    let Some((a, b, dir)) = two_nodes(caas::platform::BusKind::Redis, None).await else {
        return;
    };
    let settings = TenantSettings {
        password_auth: true,
        ..TenantSettings::default()
    };
    let tenant = a
        .state
        .caas
        .create_tenant(&Principal::operator(), "sessions", settings)
        .await
        .unwrap()
        .id
        .to_string();
    let http = reqwest::Client::new();
    let post = |node: std::net::SocketAddr, path: &str, body: serde_json::Value| {
        http.post(format!("http://{node}{path}")).json(&body).send()
    };
    let r = post(
        a.addr,
        "/v1/auth/register",
        serde_json::json!({"tenant_id": tenant, "user_id": "carol", "password": "correct horse"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let login: serde_json::Value = post(
        a.addr,
        "/v1/auth/login",
        serde_json::json!({"tenant_id": tenant, "user_id": "carol", "password": "correct horse"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let list = |node: std::net::SocketAddr| {
        http.get(format!("http://{node}/v1/conversations"))
            .bearer_auth(&access)
            .send()
    };
    assert_eq!(list(a.addr).await.unwrap().status(), 200);
    assert_eq!(list(b.addr).await.unwrap().status(), 200);
    let out = post(
        b.addr,
        "/v1/auth/logout",
        serde_json::json!({"tenant_id": tenant, "refresh_token": refresh}),
    )
    .await
    .unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(
        list(a.addr).await.unwrap().status(),
        401,
        "node A still took the token"
    );
    assert_eq!(list(b.addr).await.unwrap().status(), 401);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// The platform's own delivery loop sends a tenant's events to a real receiver
/// that verifies them; events logged while the receiver is down, and while the
/// platform stops mid-delivery and starts again on its data dir, all arrive.
#[tokio::test]
async fn webhooks_reach_a_receiver_across_a_restart_and_an_outage() {
    use crate::receiver::Receiver;
    let dir = temp_dir("webhooks");
    let mut cfg = config(&dir);
    cfg.webhooks.allow_insecure_urls = true;
    cfg.webhooks.backoff_base_ms = 50;
    cfg.webhooks.backoff_max_secs = 1;
    cfg.webhooks.max_attempts = 50;
    let p = start(cfg.clone()).await.unwrap();
    let demo = create_demo(&p).await.unwrap();
    let alice = demo.tokens[0].1.clone();
    let http = reqwest::Client::new();
    let receiver = Receiver::start().await;
    let base = format!("http://{}", p.addr);
    let made: serde_json::Value = http
        .post(format!("{base}/v1/webhooks"))
        .bearer_auth(&demo.tenant_secret)
        .json(&serde_json::json!({"url": receiver.url, "kinds": ["message.created"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    receiver.set_secrets(&[made["secret"].as_str().unwrap()]);
    let conv: serde_json::Value = http
        .post(format!("{base}/v1/conversations"))
        .bearer_auth(&alice)
        .json(&serde_json::json!({"kind": "direct", "members": ["bob"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conv = conv["id"].as_str().unwrap().to_owned();
    let send = |base: String, n: usize| {
        let (http, alice, conv) = (http.clone(), alice.clone(), conv.clone());
        async move {
            let r = http
                .post(format!("{base}/v1/conversations/{conv}/messages"))
                .bearer_auth(&alice)
                .json(&serde_json::json!({"client_msg_id": format!("m-{n}"), "body": format!("hi {n}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    };
    let bodies = |r: &Receiver| -> std::collections::BTreeSet<String> {
        r.taken()
            .iter()
            .map(|t| {
                t.body["data"]["message"]["body"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let wait_for = |r: Receiver, n: usize| async move {
        for _ in 0..200 {
            if bodies(&r).len() >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("only {} of {n} deliveries arrived", bodies(&r).len());
    };
    for n in 0..3 {
        send(base.clone(), n).await;
    }
    wait_for(receiver.clone(), 3).await;

    // The receiver goes down; the platform fails, backs off, and is stopped
    // while it waits to retry.
    receiver.set_down(true);
    for n in 3..6 {
        send(base.clone(), n).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(receiver.refused() > 0, "delivery was attempted while down");
    p.shutdown().await.unwrap();

    // Back up, on the same data dir: what failed before the stop arrives.
    receiver.set_down(false);
    let p = start(cfg).await.unwrap();
    let base = format!("http://{}", p.addr);
    send(base.clone(), 6).await;
    wait_for(receiver.clone(), 7).await;
    let want: std::collections::BTreeSet<String> = (0..7).map(|n| format!("hi {n}")).collect();
    assert_eq!(bodies(&receiver), want);
    assert_eq!(receiver.deduped().len(), 7, "each event once after dedupe");
    assert_eq!(receiver.bad_signatures(), 0);
    p.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// More endpoints than the loop runs at once (64) all get their turn: seven
/// tenants with ten endpoints each, one message per tenant, every endpoint
/// receives it.
#[tokio::test]
async fn every_endpoint_gets_its_turn_beyond_the_concurrency_cap() {
    use crate::receiver::Receiver;
    let dir = temp_dir("webhooks-many");
    let mut cfg = config(&dir);
    cfg.webhooks.allow_insecure_urls = true;
    let p = start(cfg).await.unwrap();
    let receiver = Receiver::start().await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", p.addr);
    let mut secrets = Vec::new();
    let mut sends = Vec::new();
    for _ in 0..7 {
        let demo = create_demo(&p).await.unwrap();
        for _ in 0..10 {
            let made: serde_json::Value = http
                .post(format!("{base}/v1/webhooks"))
                .bearer_auth(&demo.tenant_secret)
                .json(&serde_json::json!({"url": receiver.url, "kinds": ["message.created"]}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            secrets.push(made["secret"].as_str().unwrap().to_owned());
        }
        sends.push(demo.tokens[0].1.clone());
    }
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    receiver.set_secrets(&refs);
    for alice in &sends {
        let conv: serde_json::Value = http
            .post(format!("{base}/v1/conversations"))
            .bearer_auth(alice)
            .json(&serde_json::json!({"kind": "direct", "members": ["bob"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = conv["id"].as_str().unwrap();
        let r = http
            .post(format!("{base}/v1/conversations/{id}/messages"))
            .bearer_auth(alice)
            .json(&serde_json::json!({"client_msg_id": "m-1", "body": "to every hook"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let mut got = 0;
    for _ in 0..300 {
        // One signature per endpoint: the receiver tells them apart by the
        // secret that signed.
        let by_secret: std::collections::BTreeSet<usize> = receiver
            .taken()
            .iter()
            .flat_map(|t| t.signed_by.clone())
            .collect();
        got = by_secret.len();
        if got == 70 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(got, 70, "every endpoint received its tenant's message");
    assert_eq!(receiver.bad_signatures(), 0);
    p.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
