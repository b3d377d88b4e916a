//! Durability of the platform as a process: messages acknowledged over HTTP survive
//! `kill -9` and a restart on the same data dir.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn platform_binary() -> std::path::PathBuf {
    // Integration tests live in target/<profile>/deps; cargo test builds the
    // examples next to them in target/<profile>/examples.
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|p| p.parent()).unwrap();
    profile.join("examples").join("platform")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start(dir: &std::path::Path, port: u16, operator: &str) -> Running {
    // Every request comes from 127.0.0.1: the per-IP edge limit would stop the test.
    let config = dir.join("caas.toml");
    std::fs::write(&config, "edge_requests_per_minute = 0\n").unwrap();
    let child = Command::new(platform_binary())
        .arg("--config")
        .arg(&config)
        .env("CAAS_DATA_DIR", dir.join("data"))
        .env("CAAS_LISTEN", format!("127.0.0.1:{port}"))
        .env("CAAS_OPERATOR_KEY", operator)
        .env("CAAS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the platform example is built by cargo test");
    // Owned by the guard at once, so a failed start is killed and reaped too.
    let running = Running(child);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/health/ready"))
            .send()
            .await
            && r.status() == 200
        {
            return running;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the platform did not become ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_messages_survive_kill_9() {
    let dir =
        std::env::temp_dir().join(format!("caas-crash-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let operator = caas_crypto::secret::TenantSecret::generate()
        .unwrap()
        .expose_secret()
        .to_owned();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let process = start(&dir, port, &operator).await;

    let t: Value = http
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(&operator)
        .json(&json!({"name": "crash", "settings": {"limits": {"message.send": {"limit": 100000, "period_secs": 1}}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = t["secret"].as_str().unwrap().to_owned();
    for u in ["alice", "bob"] {
        let r = http
            .put(format!("{base}/v1/users/{u}"))
            .bearer_auth(&secret)
            .json(&json!({"name": u}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let token: Value = http
        .post(format!("{base}/v1/users/alice/tokens"))
        .bearer_auth(&secret)
        .json(&json!({"ttl_s": 3600}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alice = token["access_token"].as_str().unwrap().to_owned();
    let conv: Value = http
        .post(format!("{base}/v1/conversations"))
        .bearer_auth(&alice)
        .json(&json!({"kind": "direct", "members": ["bob"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conv = conv["id"].as_str().unwrap().to_owned();

    // Four concurrent senders; every 201 is an ack of a committed message.
    let mut senders = Vec::new();
    for w in 0..4 {
        let (http, base, alice, conv) = (http.clone(), base.clone(), alice.clone(), conv.clone());
        senders.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..25 {
                let key = format!("w{w}-{i}");
                let r = http
                    .post(format!("{base}/v1/conversations/{conv}/messages"))
                    .bearer_auth(&alice)
                    .json(&json!({"client_msg_id": key, "body": key}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => {
                        let m: Value = r.json().await.unwrap();
                        acked.push((key, m["seq"].as_u64().unwrap()));
                    }
                    Ok(r) => panic!(
                        "send refused: {} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    ),
                    Err(e) => panic!("send failed: {e}"),
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for s in senders {
        acked.extend(s.await.unwrap());
    }
    assert_eq!(acked.len(), 100);

    // SIGKILL: no shutdown, no flush.
    drop(process);
    let _process = start(&dir, port, &operator).await;
    let r: Value = http
        .get(format!(
            "{base}/v1/conversations/{conv}/messages?after_seq=0&limit=200"
        ))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored: Vec<(String, u64)> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["client_msg_id"].as_str().unwrap().to_owned(),
                m["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    for a in &acked {
        assert!(
            stored.contains(a),
            "acked message {a:?} is gone after kill -9"
        );
    }
    let seqs: Vec<u64> = stored.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        seqs,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "gap-free after restart"
    );
    println!(
        "kill -9: {} acked, {} stored after restart, all acked present",
        acked.len(),
        stored.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}
