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
        .filter_map(|e| e["event"]["payload"]["message"]["body"].as_str())
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
