use std::time::Duration;

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::server::{Server, problem, quota};

#[tokio::test]
async fn two_users_chat_over_rest_with_idempotent_sends() {
    let s = Server::start().await;
    let (_, secret) = s.tenant(&["alice", "bob"]).await;
    let (alice, bob) = (
        s.token(&secret, "alice").await,
        s.token(&secret, "bob").await,
    );
    let r = s
        .call(
            Method::POST,
            "/v1/conversations",
            Some(&alice),
            Some(json!({"kind": "direct", "members": ["bob"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let conv = r.body["id"].as_str().unwrap().to_owned();
    let again = s
        .call(
            Method::POST,
            "/v1/conversations",
            Some(&bob),
            Some(json!({"kind": "direct", "members": ["alice"]})),
        )
        .await;
    assert_eq!(
        (again.status, again.body["id"].as_str()),
        (StatusCode::OK, Some(conv.as_str()))
    );

    let path = format!("/v1/conversations/{conv}/messages");
    let first = s
        .call(
            Method::POST,
            &path,
            Some(&alice),
            Some(json!({"client_msg_id": "m-1", "body": "hi bob"})),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(first.body["seq"], 1);
    assert!(
        first.body["created_at"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 times"
    );
    let retry = s
        .call(
            Method::POST,
            &path,
            Some(&alice),
            Some(json!({"client_msg_id": "m-1", "body": "hi bob"})),
        )
        .await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.body["id"], first.body["id"]);

    let hist = s
        .call(
            Method::GET,
            &format!("{path}?after_seq=0&limit=10"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(hist.status, StatusCode::OK);
    assert_eq!(hist.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(hist.body["items"][0]["body"], "hi bob");

    let read = s
        .call(
            Method::POST,
            &format!("/v1/conversations/{conv}/read"),
            Some(&bob),
            Some(json!({"seq": 1})),
        )
        .await;
    assert_eq!(
        (read.status, read.body["read"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    let list = s
        .call(Method::GET, "/v1/conversations", Some(&alice), None)
        .await;
    assert_eq!(list.body["items"][0]["last_seq"], 1);
    let mid = first.body["id"].as_str().unwrap();
    let react = s
        .call(
            Method::PUT,
            &format!("{path}/{mid}/reactions/%F0%9F%91%8D"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(react.status, StatusCode::OK, "{:?}", react.body);
    assert!(
        react.body["reactions"]["👍"]
            .as_array()
            .unwrap()
            .contains(&json!("bob"))
    );
}

#[tokio::test]
async fn correlation_ids_are_echoed_and_reach_events() {
    let s = Server::start().await;
    let (_, secret) = s.tenant(&["alice", "bob"]).await;
    let alice = s.token(&secret, "alice").await;
    let bob = s.token(&secret, "bob").await;
    let r = s
        .call(
            Method::POST,
            "/v1/conversations",
            Some(&alice),
            Some(json!({"kind": "group", "members": ["bob"], "name": "g"})),
        )
        .await;
    let conv = r.body["id"].as_str().unwrap().to_owned();
    let res = s
        .http
        .post(format!("{}/v1/conversations/{conv}/messages", s.base))
        .bearer_auth(&alice)
        .header("x-correlation-id", "req-abc-123")
        .json(&json!({"client_msg_id": "k", "body": "traced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-correlation-id"], "req-abc-123");
    let generated = s.call(Method::GET, "/health/live", None, None).await;
    assert!(
        generated.headers.get("x-correlation-id").is_some(),
        "generated when absent"
    );
    let sync = s
        .call(Method::GET, "/v1/sync?since=0", Some(&bob), None)
        .await;
    let created = sync.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"]["kind"] == "message.created")
        .unwrap();
    assert_eq!(created["event"]["correlation_id"], "req-abc-123");
    // The same view of an event as a WebSocket frame: no audience, no tenant.
    assert_eq!(created["event"]["cursor"], created["cursor"]);
    assert!(created["event"].get("audience").is_none(), "{created}");
    assert!(created["event"].get("tenant").is_none(), "{created}");
    assert_eq!(created["event"]["message"]["body"], "traced");
}

#[tokio::test]
async fn bad_credentials_are_refused_with_401() {
    let s = Server::start().await;
    let (tenant, secret) = s.tenant(&["alice"]).await;
    let alice = s.token(&secret, "alice").await;
    problem(
        &s.call(Method::GET, "/v1/conversations", None, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    problem(
        &s.call(Method::GET, "/v1/conversations", Some("garbage"), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    problem(
        &s.call(
            Method::GET,
            "/v1/conversations",
            Some("sk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    // alg:none with the same claims.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = alice.split('.').nth(1).unwrap();
    let none = format!("{}.{claims}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#));
    problem(
        &s.call(Method::GET, "/v1/conversations", Some(&none), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    // A token forged with another platform key.
    let forged = crate::server::mint_with(&[1u8; 32], &tenant, "alice", s.clock_now());
    problem(
        &s.call(Method::GET, "/v1/conversations", Some(&forged), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    // Expired: ten minutes of validity plus 30 s leeway.
    assert_eq!(
        s.call(Method::GET, "/v1/conversations", Some(&alice), None)
            .await
            .status,
        StatusCode::OK
    );
    s.advance(Duration::from_secs(600 + 31));
    problem(
        &s.call(Method::GET, "/v1/conversations", Some(&alice), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    // Users cannot mint tokens or act as the operator.
    let fresh = s.token(&secret, "alice").await;
    problem(
        &s.call(Method::POST, "/v1/users/alice/tokens", Some(&fresh), None)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    problem(
        &s.call(
            Method::POST,
            "/v1/tenants",
            Some(&secret),
            Some(json!({"name": "x"})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

impl Server {
    fn clock_now(&self) -> caas_core::time::Timestamp {
        use caas_core::time::Clock;
        self.clock.now()
    }
}

#[tokio::test]
async fn tenants_and_non_members_cannot_reach_each_other() {
    let s = Server::start().await;
    let (_, secret_a) = s.tenant(&["alice", "bob", "eve"]).await;
    let (_, secret_b) = s.tenant(&["alice"]).await;
    let alice = s.token(&secret_a, "alice").await;
    let eve = s.token(&secret_a, "eve").await;
    let alice_b = s.token(&secret_b, "alice").await;
    let r = s
        .call(
            Method::POST,
            "/v1/conversations",
            Some(&alice),
            Some(json!({"kind": "group", "members": ["bob"], "name": "g"})),
        )
        .await;
    let conv = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/conversations/{conv}/messages");
    let r = s.call(Method::GET, &path, Some(&eve), None).await;
    problem(&r, StatusCode::FORBIDDEN, "forbidden");
    assert!(
        r.body["detail"].as_str().unwrap().contains("default-deny"),
        "the rule is named: {:?}",
        r.body
    );
    problem(
        &s.call(Method::GET, &path, Some(&alice_b), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    problem(
        &s.call(Method::GET, &path, Some(&secret_b), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn malformed_and_oversized_input_gets_problem_json() {
    let s = Server::with_config(caas_transport::GatewayConfig {
        edge_quota: None,
        max_body_bytes: 4096,
        ..Default::default()
    })
    .await;
    let (_, secret) = s.tenant(&["alice", "bob"]).await;
    let alice = s.token(&secret, "alice").await;
    let r = s
        .call(
            Method::POST,
            "/v1/conversations",
            Some(&alice),
            Some(json!({"kind": "group", "members": ["bob"], "name": "g"})),
        )
        .await;
    let path = format!(
        "/v1/conversations/{}/messages",
        r.body["id"].as_str().unwrap()
    );
    let raw = s
        .http
        .post(format!("{}{path}", s.base))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    assert_eq!(raw.headers()["content-type"], "application/problem+json");
    problem(
        &s.call(
            Method::POST,
            &path,
            Some(&alice),
            Some(json!({"client_msg_id": "k", "body": "x", "evil": 1})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    problem(
        &s.call(
            Method::POST,
            &path,
            Some(&alice),
            Some(json!({"client_msg_id": "k k", "body": "x"})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    problem(
        &s.call(
            Method::POST,
            &path,
            Some(&alice),
            Some(json!({"client_msg_id": "k", "body": "x".repeat(8000)})),
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    problem(
        &s.call(
            Method::GET,
            "/v1/conversations/bad%20id/messages",
            Some(&alice),
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    problem(
        &s.call(Method::GET, "/v1/nowhere", Some(&alice), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    problem(
        &s.call(Method::GET, &format!("{path}?limit=0"), Some(&alice), None)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    // Nothing was stored by any of the above.
    let hist = s.call(Method::GET, &path, Some(&alice), None).await;
    assert_eq!(hist.body["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_errors_by_code() {
    let s = Server::start().await;
    let (_, secret) = s.tenant(&["alice"]).await;
    let _ = s
        .call(Method::GET, "/v1/users/nobody", Some(&secret), None)
        .await;
    let r = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(
        text.contains(
            "caas_http_requests_total{method=\"PUT\",route=\"/v1/users/{user_id}\",status=\"200\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("caas_http_errors_total{code=\"not_found\"}"),
        "{text}"
    );
    for series in [
        "caas_store_duration_seconds_count{port=\"event_log\",op=\"append\",outcome=\"ok\"}",
        "caas_store_duration_seconds_count{port=\"bus\",op=\"publish\",outcome=\"ok\"}",
    ] {
        assert!(text.contains(series), "{series} missing from {text}");
    }
    assert!(
        text.contains(
            "caas_http_request_duration_seconds_bucket{route=\"/v1/tenants\",le=\"0.001\"}"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn the_edge_limit_answers_429_with_retry_after() {
    let s = Server::with_config(caas_transport::GatewayConfig {
        edge_quota: Some(quota(5)),
        ..Default::default()
    })
    .await;
    // Any route but the health probes, which are exempt.
    for i in 0..5 {
        let r = s.call(Method::GET, "/openapi.json", None, None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.headers["ratelimit-remaining"],
            (4 - i).to_string().as_str()
        );
    }
    let r = s.call(Method::GET, "/openapi.json", None, None).await;
    problem(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(r.headers["retry-after"], "12");
    s.advance(Duration::from_secs(12));
    assert_eq!(
        s.call(Method::GET, "/openapi.json", None, None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn secrets_rotate_with_a_grace_period_and_tenants_suspend() {
    let s = Server::start().await;
    let (tenant, old) = s.tenant(&["alice"]).await;
    let r = s
        .call(
            Method::POST,
            &format!("/v1/tenants/{tenant}/secrets"),
            Some(&old),
            Some(json!({"grace_secs": 60})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let new = r.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        s.call(Method::GET, "/v1/users/alice", Some(&old), None)
            .await
            .status,
        StatusCode::OK
    );
    s.advance(Duration::from_secs(61));
    problem(
        &s.call(Method::GET, "/v1/users/alice", Some(&old), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_eq!(
        s.call(Method::GET, "/v1/users/alice", Some(&new), None)
            .await
            .status,
        StatusCode::OK
    );
    // The tenant view never shows hashes.
    let view = s
        .call(
            Method::GET,
            &format!("/v1/tenants/{tenant}"),
            Some(&s.operator),
            None,
        )
        .await;
    assert!(
        !view.body.to_string().contains(&new[3..])
            && view.body["secrets"].as_array().unwrap().len() == 1,
        "{:?}",
        view.body
    );
    let r = s
        .call(
            Method::DELETE,
            &format!("/v1/tenants/{tenant}"),
            Some(&s.operator),
            None,
        )
        .await;
    assert_eq!(r.body["status"], "suspended");
    problem(
        &s.call(
            Method::PUT,
            "/v1/users/bob",
            Some(&new),
            Some(json!({"name": "Bob"})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let jwks = s
        .call(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(jwks.body["keys"][0]["kty"], "OKP");
}

#[tokio::test]
async fn openapi_describes_every_route_and_docs_work_offline() {
    let s = Server::start().await;
    let doc = s.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(
        doc.body["openapi"].as_str().unwrap().starts_with("3.1"),
        "{:?}",
        doc.body["openapi"]
    );
    let paths: std::collections::BTreeSet<String> = doc.body["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    // Every documented path answers something other than the fallback 404.
    for p in &paths {
        let concrete = p
            .replace("{id}", "c_x")
            .replace("{user_id}", "u")
            .replace("{message_id}", "m_x")
            .replace("{emoji}", "x");
        let r = s.call(Method::OPTIONS, &concrete, None, None).await;
        assert_ne!(
            r.body["detail"], "no such route",
            "documented but not routed: {p}"
        );
    }
    for must in [
        "/v1/conversations/{id}/messages",
        "/v1/sync",
        "/v1/tenants",
        "/v1/users/{user_id}/tokens",
        "/.well-known/jwks.json",
    ] {
        assert!(paths.contains(must), "{must} is not documented");
    }
    let schemas = doc.body["components"]["schemas"].as_object().unwrap();
    for s in ["Message", "Conversation", "Problem", "Event", "Send"] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
    let created = &schemas["Message"]["properties"]["created_at"];
    let created = match created["$ref"].as_str() {
        Some(r) => &schemas[r.rsplit('/').next().unwrap()],
        None => created,
    };
    assert_eq!(
        created["format"], "date-time",
        "times are RFC 3339: {created:?}"
    );
    let page = s
        .http
        .get(format!("{}/docs", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("/openapi.json") && !page.contains("http://") && !page.contains("https://"),
        "the docs page must not load anything from the network"
    );
}

#[tokio::test]
async fn cors_only_for_configured_origins() {
    let s = Server::with_config(caas_transport::GatewayConfig {
        edge_quota: None,
        cors_origins: vec!["https://app.example".into()],
        ..Default::default()
    })
    .await;
    let pre = s
        .http
        .request(Method::OPTIONS, format!("{}/v1/conversations", s.base))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = s
        .http
        .get(format!("{}/health/live", s.base))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let off = Server::start().await;
    let r = off
        .http
        .get(format!("{}/health/live", off.base))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "no CORS unless configured"
    );
}

#[tokio::test]
async fn e2ee_keys_are_verified_on_upload_and_one_time_keys_go_once() {
    let s = Server::start().await;
    let (_, secret) = s.tenant(&["alice", "bob"]).await;
    let (alice, bob) = (
        s.token(&secret, "alice").await,
        s.token(&secret, "bob").await,
    );
    let mut device = caas_crypto::e2ee::LocalDevice::generate("bob", "phone", 0).unwrap();
    device.add_one_time_prekeys(2).unwrap();
    let wire = serde_json::to_value(device.device_keys().unwrap()).unwrap();
    let keys = json!({
        "identity_signing_key": wire["identity"]["signing"],
        "identity_agreement_key": wire["identity"]["agreement"],
        "identity_signature": wire["identity"]["signature"],
        "signed_prekey": {"key_id": wire["signed_prekey"]["id"], "public_key": wire["signed_prekey"]["public"], "signature": wire["signed_prekey"]["signature"]},
        "one_time_prekeys": wire["one_time_prekeys"].as_array().unwrap().iter().map(|k| json!({"key_id": k["id"], "public_key": k["public"]})).collect::<Vec<_>>(),
    });
    let mut forged = keys.clone();
    forged["signed_prekey"]["signature"] = keys["identity_signature"].clone();
    problem(
        &s.call(
            Method::PUT,
            "/v1/devices/phone/keys",
            Some(&bob),
            Some(forged),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    let r = s
        .call(
            Method::PUT,
            "/v1/devices/phone/keys",
            Some(&bob),
            Some(keys),
        )
        .await;
    assert_eq!(
        (r.status, r.body["one_time_prekeys"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{:?}",
        r.body
    );
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..3 {
        let b = s
            .call(Method::GET, "/v1/users/bob/keys", Some(&alice), None)
            .await;
        assert_eq!(b.status, StatusCode::OK);
        if let Some(k) = b.body["items"][0]["one_time_prekey"]["key_id"].as_u64() {
            assert!(seen.insert(k), "a one-time prekey was handed out twice");
        }
    }
    assert_eq!(seen.len(), 2);
}

#[tokio::test]
async fn the_audit_log_is_for_the_tenant() {
    let s = Server::start().await;
    let (_, secret) = s.tenant(&["alice"]).await;
    let alice = s.token(&secret, "alice").await;
    let r = s
        .call(Method::GET, "/v1/audit?limit=10", Some(&secret), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let actions: Vec<_> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        actions.contains(&"tenant.create".to_owned())
            && actions.contains(&"user.upsert".to_owned()),
        "{actions:?}"
    );
    problem(
        &s.call(Method::GET, "/v1/audit", Some(&alice), None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let hashes: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["hash"].as_str().unwrap())
        .collect();
    assert!(hashes.iter().all(|h| h.len() == 64), "{hashes:?}");
    let v = s
        .call(Method::GET, "/v1/audit/verify", Some(&secret), None)
        .await;
    assert_eq!(v.status, StatusCode::OK, "{:?}", v.body);
    assert_eq!(v.body["ok"], json!(true), "{:?}", v.body);
    assert_eq!(v.body["checked"].as_u64(), Some(hashes.len() as u64));
    assert_eq!(v.body["head_hash"].as_str(), hashes.last().copied());
    assert_eq!(v.body["broken_at"], json!(null));
    problem(
        &s.call(Method::GET, "/v1/audit/verify", Some(&alice), None)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

#[tokio::test]
async fn a_users_export_streams_json_lines_ending_with_a_count() {
    let s = Server::start().await;
    let (_, secret) = s.tenant(&["alice", "bob"]).await;
    let alice = s.token(&secret, "alice").await;
    let c = s
        .call(
            Method::POST,
            "/v1/conversations",
            Some(&alice),
            Some(json!({"kind": "group", "members": ["bob"], "name": "g"})),
        )
        .await;
    let conv = c.body["id"].as_str().unwrap().to_owned();
    for i in 0..3 {
        let r = s
            .call(
                Method::POST,
                &format!("/v1/conversations/{conv}/messages"),
                Some(&alice),
                Some(json!({"client_msg_id": format!("m{i}"), "body": format!("note {i}")})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let r = s
        .call(
            Method::GET,
            "/v1/compliance/users/alice/export",
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/x-ndjson");
    let text = r.body.as_str().expect("JSON lines, not one JSON value");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds[0], "user");
    assert_eq!(kinds.iter().filter(|k| **k == "message").count(), 3);
    assert_eq!(kinds.iter().filter(|k| **k == "membership").count(), 1);
    let last = lines.last().unwrap();
    assert_eq!(last["kind"], "end");
    assert_eq!(last["items"].as_u64(), Some(lines.len() as u64 - 1));
    for (path, who, status, code) in [
        (
            "/v1/compliance/users/alice/export",
            &alice,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "/v1/compliance/users/nobody/export",
            &secret,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/v1/compliance/users/%20/export",
            &secret,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
        ),
    ] {
        problem(
            &s.call(Method::GET, path, Some(who), None).await,
            status,
            code,
        );
    }
}

#[tokio::test]
async fn an_export_job_runs_in_the_background_and_downloads_the_same_lines() {
    let s = Server::start().await;
    let (_, secret) = s.tenant(&["alice", "bob"]).await;
    let alice = s.token(&secret, "alice").await;
    let conv = group(&s, &alice, &["bob"], "g").await;
    for i in 0..3 {
        say(&s, &alice, &conv, &format!("m{i}"), &format!("note {i}")).await;
    }
    let started = s
        .call(
            Method::POST,
            "/v1/compliance/users/alice/exports",
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{:?}", started.body);
    let id = started.body["export_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("exp_"), "{id}");
    assert_eq!(
        started.headers["location"],
        format!("/v1/compliance/exports/{id}").as_str()
    );
    assert_eq!(started.body["user_id"], "alice");
    assert_eq!(started.body["conversations_total"], 1);

    // Follow it until it is complete.
    let mut job = started.body.clone();
    for _ in 0..200 {
        job = s
            .call(
                Method::GET,
                &format!("/v1/compliance/exports/{id}"),
                Some(&secret),
                None,
            )
            .await
            .body;
        if job["status"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(job["status"], "complete", "{job}");
    assert_eq!(job["conversations_done"], 1);
    assert!(job["expires_at"].is_string(), "{job}");

    let download = s
        .call(
            Method::GET,
            &format!("/v1/compliance/exports/{id}/download"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(download.headers["content-type"], "application/x-ndjson");
    let text = download.body.as_str().expect("JSON lines").to_owned();
    assert_eq!(job["bytes"].as_u64(), Some(text.len() as u64));
    assert_eq!(
        download.headers["content-length"],
        text.len().to_string().as_str()
    );
    let streamed = s
        .call(
            Method::GET,
            "/v1/compliance/users/alice/export",
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(streamed.body.as_str(), Some(text.as_str()));
    assert_eq!(text.matches("\"kind\":\"message\"").count(), 3);

    let job_path = format!("/v1/compliance/exports/{id}");
    for (method, path, who, status, code) in [
        (
            Method::POST,
            "/v1/compliance/users/alice/exports".to_owned(),
            &alice,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Method::POST,
            "/v1/compliance/users/nobody/exports".to_owned(),
            &secret,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            job_path.clone(),
            &alice,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Method::GET,
            "/v1/compliance/exports/exp_unknown".to_owned(),
            &secret,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/compliance/exports/%20/download".to_owned(),
            &secret,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
        ),
    ] {
        problem(&s.call(method, &path, Some(who), None).await, status, code);
    }
    let deleted = s.call(Method::DELETE, &job_path, Some(&secret), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    problem(
        &s.call(
            Method::GET,
            &format!("{job_path}/download"),
            Some(&secret),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn what_the_schema_check_found_stays_fixed() {
    let s = Server::start().await;
    let (_, secret) = s.tenant(&["alice", "bob"]).await;
    let alice = s.token(&secret, "alice").await;
    let conv = group(&s, &alice, &["bob"], "g").await;
    // An operation only a user can do, with the tenant's credential: refused by
    // the built-in rule, not as a bad argument.
    let r = s
        .call(
            Method::POST,
            &format!("/v1/conversations/{conv}/messages"),
            Some(&secret),
            Some(json!({"client_msg_id": "m1", "body": "as the server"})),
        )
        .await;
    problem(&r, StatusCode::FORBIDDEN, "forbidden");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("user-token-required"),
        "{:?}",
        r.body
    );
    // An empty cursor is the first page.
    for path in [
        "/v1/conversations?cursor=".to_owned(),
        format!("/v1/conversations/{conv}/messages?cursor="),
    ] {
        let r = s.call(Method::GET, &path, Some(&alice), None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
    }
    // Positions past what the document's int64 allows are refused.
    for path in [
        "/v1/sync?since=9223372036854775808",
        "/v1/sync?since=18446744073709551615",
        "/v1/sync?limit=201",
        "/v1/sync?limit=0",
    ] {
        let r = s.call(Method::GET, path, Some(&alice), None).await;
        problem(&r, StatusCode::BAD_REQUEST, "invalid_argument");
    }
    let r = s
        .call(
            Method::GET,
            "/v1/sync?since=9223372036854775807",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // `null` for an optional body is no body.
    let webhook = s
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(&secret),
            Some(json!({"url": "https://hooks.example.com/caas", "kinds": ["*"]})),
        )
        .await;
    assert_eq!(webhook.status, StatusCode::CREATED, "{:?}", webhook.body);
    let id = webhook.body["webhook"]["id"].as_str().unwrap().to_owned();
    let r = s
        .call(
            Method::POST,
            &format!("/v1/webhooks/{id}/secrets"),
            Some(&secret),
            Some(serde_json::Value::Null),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // An unsigned payment-provider call is refused as unsigned, configured or not.
    let r = s
        .call(Method::POST, "/v1/billing/stripe", None, Some(json!({})))
        .await;
    problem(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn field_and_page_limits_answer_their_documented_codes() {
    let s = Server::start().await;
    let (_, secret) = s.tenant(&["alice", "bob"]).await;
    let alice = s.token(&secret, "alice").await;
    let conv = group(&s, &alice, &["bob"], "g").await;
    let send = |body: serde_json::Value| {
        let (s, alice, conv) = (&s, alice.clone(), conv.clone());
        async move {
            s.call(
                Method::POST,
                &format!("/v1/conversations/{conv}/messages"),
                Some(&alice),
                Some(body),
            )
            .await
        }
    };
    // Attachments: at most 10 a message; mentions: at most 50.
    let attachment = json!({"blob_id": "b_x", "content_type": "text/plain", "size": 1});
    let r =
        send(json!({"client_msg_id": "a", "body": "x", "attachments": vec![attachment; 11]})).await;
    problem(&r, StatusCode::BAD_REQUEST, "invalid_argument");
    assert!(
        r.body["detail"].as_str().unwrap().contains("attachments"),
        "{:?}",
        r.body
    );
    let mentions: Vec<String> = (0..51).map(|i| format!("u{i}")).collect();
    let r = send(json!({"client_msg_id": "m", "body": "x", "mentions": mentions})).await;
    problem(&r, StatusCode::BAD_REQUEST, "invalid_argument");
    assert!(
        r.body["detail"].as_str().unwrap().contains("mentions"),
        "{:?}",
        r.body
    );
    let sent = say(&s, &alice, &conv, "ok", "fine").await;
    let id = sent["id"].as_str().unwrap();
    // An emoji is at most 64 bytes.
    let long = "😀".repeat(17);
    let r = s
        .call(
            Method::PUT,
            &format!("/v1/conversations/{conv}/messages/{id}/reactions/{long}"),
            Some(&alice),
            None,
        )
        .await;
    problem(&r, StatusCode::BAD_REQUEST, "invalid_argument");
    // Pages: 1 to 200 on every list; a search query is 1 to 256 bytes.
    for path in [
        format!("/v1/conversations/{conv}/messages?limit=201"),
        "/v1/conversations?limit=201".to_owned(),
        format!("/v1/search/messages?q={}", "a".repeat(257)),
        format!(
            "/v1/presence?users={}",
            (0..201)
                .map(|i| format!("u{i}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
    ] {
        let r = s.call(Method::GET, &path, Some(&alice), None).await;
        problem(&r, StatusCode::BAD_REQUEST, "invalid_argument");
    }
    let r = s
        .call(
            Method::GET,
            &format!("/v1/conversations/{conv}/messages?limit=200"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // Names are at most 256 bytes, past it `payload_too_large`.
    let r = s
        .call(
            Method::PUT,
            "/v1/users/carol",
            Some(&secret),
            Some(json!({"name": "n".repeat(257)})),
        )
        .await;
    problem(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let r = s
        .call(
            Method::PATCH,
            &format!("/v1/conversations/{conv}"),
            Some(&alice),
            Some(json!({"name": "n".repeat(257)})),
        )
        .await;
    problem(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // Minted tokens live 1 s to a day.
    for ttl in [0, 86_401] {
        let r = s
            .call(
                Method::POST,
                "/v1/users/alice/tokens",
                Some(&secret),
                Some(json!({"ttl_s": ttl})),
            )
            .await;
        problem(&r, StatusCode::BAD_REQUEST, "invalid_argument");
    }
}

#[tokio::test]
async fn stored_user_attributes_reach_policy_decisions() {
    let s = Server::start().await;
    let policy = r#"{"version":1,"extends":"default","rules":[{"id":"staff-only-send","effect":"deny","actions":["message.send"],"when":{"not":{"attr":"subject.attr.department","eq":"staff"}}}]}"#;
    let (_, secret) = s
        .tenant_with(&[], json!({"policy": {"format": "json", "text": policy}}))
        .await;
    for (user, department) in [("alice", "staff"), ("bob", "guests")] {
        let r = s
            .call(
                Method::PUT,
                &format!("/v1/users/{user}"),
                Some(&secret),
                Some(json!({"name": user, "attributes": {"department": department}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let (alice, bob) = (
        s.token(&secret, "alice").await,
        s.token(&secret, "bob").await,
    );
    let r = s
        .call(
            Method::POST,
            "/v1/conversations",
            Some(&alice),
            Some(json!({"kind": "group", "members": ["bob"], "name": "g"})),
        )
        .await;
    let conv = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/conversations/{conv}/messages");
    let sent = s
        .call(
            Method::POST,
            &path,
            Some(&alice),
            Some(json!({"client_msg_id": "a-1", "body": "hi"})),
        )
        .await;
    assert_eq!(sent.status, StatusCode::CREATED, "{:?}", sent.body);
    let denied = s
        .call(
            Method::POST,
            &path,
            Some(&bob),
            Some(json!({"client_msg_id": "b-1", "body": "hi"})),
        )
        .await;
    problem(&denied, StatusCode::FORBIDDEN, "forbidden");
    assert!(
        denied.body["detail"]
            .as_str()
            .unwrap()
            .contains("staff-only-send"),
        "{:?}",
        denied.body
    );
    // A change of attributes applies to the next decision.
    let r = s
        .call(
            Method::PUT,
            "/v1/users/bob",
            Some(&secret),
            Some(json!({"name": "bob", "attributes": {"department": "staff"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let sent = s
        .call(
            Method::POST,
            &path,
            Some(&bob),
            Some(json!({"client_msg_id": "b-1", "body": "hi"})),
        )
        .await;
    assert_eq!(sent.status, StatusCode::CREATED, "{:?}", sent.body);
}

/// A conversation of `owner` with `members`, created over REST; its id.
async fn group(s: &Server, owner: &str, members: &[&str], name: &str) -> String {
    let r = s
        .call(
            Method::POST,
            "/v1/conversations",
            Some(owner),
            Some(json!({"kind": "group", "members": members, "name": name})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn say(s: &Server, token: &str, conv: &str, key: &str, body: &str) -> serde_json::Value {
    let r = s
        .call(
            Method::POST,
            &format!("/v1/conversations/{conv}/messages"),
            Some(token),
            Some(json!({"client_msg_id": key, "body": body})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body
}

/// Follows `next_cursor` through a list, `limit` at a time; every item.
async fn all_pages(s: &Server, token: &str, path: &str, limit: usize) -> Vec<serde_json::Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let r = s.call(Method::GET, &url, Some(token), None).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {:?}", r.body);
        let page = r.body["items"].as_array().unwrap().clone();
        assert!(page.len() <= limit);
        items.extend(page);
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
    panic!("{path} never ended");
}

#[tokio::test]
async fn conversation_lists_and_searches_page_with_cursors() {
    let s = Server::start().await;
    let (_, secret) = s.tenant(&["alice", "bob"]).await;
    let alice = s.token(&secret, "alice").await;
    let mut convs = Vec::new();
    for i in 0..7 {
        let c = group(&s, &alice, &["bob"], &format!("planning {i}")).await;
        say(&s, &alice, &c, "k1", &format!("roadmap item {i}")).await;
        say(&s, &alice, &c, "k2", "roadmap again").await;
        s.advance(Duration::from_secs(1));
        convs.push(c);
    }
    let listed = all_pages(&s, &alice, "/v1/conversations", 3).await;
    let ids: Vec<&str> = listed
        .iter()
        .map(|c| c["conversation"]["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = convs.iter().rev().map(String::as_str).collect();
    assert_eq!(ids, newest_first, "newest activity first, each once");
    assert!(listed.iter().all(|c| c["last_seq"] == 2));

    let hits = all_pages(&s, &alice, "/v1/search/messages?q=roadmap", 4).await;
    assert_eq!(hits.len(), 14, "every match, once");
    let mut seen: Vec<(u64, String)> = hits
        .iter()
        .map(|h| {
            (
                h["seq"].as_u64().unwrap(),
                h["conversation_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let in_order = seen.clone();
    seen.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    assert_eq!(in_order, seen, "highest seq first, then conversation id");
    seen.dedup();
    assert_eq!(seen.len(), 14);

    let found = all_pages(&s, &alice, "/v1/search/conversations?q=planning", 2).await;
    assert_eq!(found.len(), 7);
    let users = all_pages(&s, &alice, "/v1/search/users?q=b", 1).await;
    assert_eq!(users, [json!("bob")]);

    let bad = s
        .call(
            Method::GET,
            "/v1/conversations?cursor=garbage",
            Some(&alice),
            None,
        )
        .await;
    problem(&bad, StatusCode::BAD_REQUEST, "invalid_argument");
    let bad = s
        .call(
            Method::GET,
            "/v1/search/messages?q=roadmap&limit=0",
            Some(&alice),
            None,
        )
        .await;
    problem(&bad, StatusCode::BAD_REQUEST, "invalid_argument");
}

#[tokio::test]
async fn pins_receipts_and_presence_have_endpoints() {
    let s = Server::start().await;
    let (_, secret) = s.tenant(&["alice", "bob", "eve"]).await;
    let (alice, bob, eve) = (
        s.token(&secret, "alice").await,
        s.token(&secret, "bob").await,
        s.token(&secret, "eve").await,
    );
    let conv = group(&s, &alice, &["bob"], "g").await;
    let m = say(&s, &alice, &conv, "k1", "pin me").await;
    let mid = m["id"].as_str().unwrap();
    let pin = format!("/v1/conversations/{conv}/messages/{mid}/pin");
    // The owner (an admin) pins; a plain member may not.
    problem(
        &s.call(Method::PUT, &pin, Some(&bob), None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let r = s.call(Method::PUT, &pin, Some(&alice), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.body["pinned"].is_object(), "{:?}", r.body);
    let pins = s
        .call(
            Method::GET,
            &format!("/v1/conversations/{conv}/pins"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(pins.body["items"][0]["id"], mid);
    problem(
        &s.call(
            Method::GET,
            &format!("/v1/conversations/{conv}/pins"),
            Some(&eve),
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let r = s.call(Method::DELETE, &pin, Some(&alice), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let pins = s
        .call(
            Method::GET,
            &format!("/v1/conversations/{conv}/pins"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(pins.body["items"], json!([]));

    let r = s
        .call(
            Method::POST,
            &format!("/v1/conversations/{conv}/read"),
            Some(&bob),
            Some(json!({"seq": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let receipts = s
        .call(
            Method::GET,
            &format!("/v1/conversations/{conv}/receipts"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(receipts.status, StatusCode::OK, "{:?}", receipts.body);
    let bobs = receipts.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["user"] == "bob")
        .cloned()
        .expect("bob's receipt");
    assert_eq!(
        (bobs["read"].as_u64(), bobs["delivered"].as_u64()),
        (Some(1), Some(1))
    );
    problem(
        &s.call(
            Method::GET,
            &format!("/v1/conversations/{conv}/receipts"),
            Some(&eve),
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    let presence = s
        .call(
            Method::GET,
            "/v1/presence?users=bob,eve",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(presence.status, StatusCode::OK, "{:?}", presence.body);
    let items = presence.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|p| p["status"] == "offline"), "{items:?}");
    problem(
        &s.call(
            Method::GET,
            "/v1/presence?users=no%20such",
            Some(&alice),
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
}

#[tokio::test]
async fn forward_takes_an_optional_client_msg_id() {
    let s = Server::start().await;
    let (_, secret) = s.tenant(&["alice", "bob"]).await;
    let alice = s.token(&secret, "alice").await;
    let from = group(&s, &alice, &["bob"], "from").await;
    let to = group(&s, &alice, &["bob"], "to").await;
    let m = say(&s, &alice, &from, "k1", "pass it on").await;
    let path = format!(
        "/v1/conversations/{from}/messages/{}/forward",
        m["id"].as_str().unwrap()
    );
    let once = s
        .call(
            Method::POST,
            &path,
            Some(&alice),
            Some(json!({"to_conversation_id": to, "client_msg_id": "fw-1"})),
        )
        .await;
    assert_eq!(once.status, StatusCode::CREATED, "{:?}", once.body);
    assert_eq!(once.body["forwarded_from"]["message_id"], m["id"]);
    let retry = s
        .call(
            Method::POST,
            &path,
            Some(&alice),
            Some(json!({"to_conversation_id": to, "client_msg_id": "fw-1"})),
        )
        .await;
    assert_eq!(
        (retry.status, &retry.body["id"]),
        (StatusCode::OK, &once.body["id"])
    );
    let fresh = s
        .call(
            Method::POST,
            &path,
            Some(&alice),
            Some(json!({"to_conversation_id": to})),
        )
        .await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{:?}", fresh.body);
    assert_ne!(fresh.body["id"], once.body["id"]);
    assert_eq!(fresh.body["seq"], 2);
}

#[tokio::test]
async fn media_goes_up_to_a_signed_url_and_down_to_members_only() {
    let s = Server::start().await;
    let (_, secret) = s.tenant(&["alice", "bob", "carol"]).await;
    let (alice, bob, carol) = (
        s.token(&secret, "alice").await,
        s.token(&secret, "bob").await,
        s.token(&secret, "carol").await,
    );
    let conv = group(&s, &alice, &["bob"], "files").await;
    let bytes = b"%PDF-1.7 not really".to_vec();
    let announce = json!({"conversation_id": conv, "content_type": "application/pdf",
        "size": bytes.len(), "name": "report.pdf"});

    let r = s
        .call(
            Method::POST,
            "/v1/media/uploads",
            Some(&carol),
            Some(announce.clone()),
        )
        .await;
    problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = s
        .call(
            Method::POST,
            "/v1/media/uploads",
            Some(&alice),
            Some(announce),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let blob = r.body["blob_id"].as_str().unwrap().to_owned();
    let upload_url = r.body["upload_url"].as_str().unwrap().to_owned();
    assert!(
        upload_url.starts_with(&format!("{}/v1/blobs/", s.base)),
        "{upload_url}"
    );
    assert_eq!(r.body["upload_headers"]["content-type"], "application/pdf");
    assert!(r.body["expires_at"].is_string());

    // Not complete before the bytes arrive; attaching it is refused meanwhile.
    let r = s
        .call(
            Method::POST,
            &format!("/v1/media/{blob}/complete"),
            Some(&alice),
            None,
        )
        .await;
    problem(&r, StatusCode::BAD_REQUEST, "invalid_argument");

    // The signed URL is the credential: no bearer, exact type and size.
    let put = |body: Vec<u8>, content_type: &'static str, url: String| {
        let http = s.http.clone();
        async move {
            http.put(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = put(bytes.clone(), "text/html", upload_url.clone()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = put(
        vec![0; bytes.len() + 1],
        "application/pdf",
        upload_url.clone(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = put(
        bytes.clone(),
        "application/pdf",
        upload_url.replace("signature=", "signature=x"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = put(bytes.clone(), "application/pdf", upload_url.clone()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let r = s
        .call(
            Method::POST,
            &format!("/v1/media/{blob}/complete"),
            Some(&bob),
            None,
        )
        .await;
    problem(&r, StatusCode::NOT_FOUND, "not_found");
    let r = s
        .call(
            Method::POST,
            &format!("/v1/media/{blob}/complete"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["size"], bytes.len());
    assert!(r.body["completed_at"].is_string());
    assert_eq!(r.body["sha256"].as_str().unwrap().len(), 64);

    let sent = s
        .call(
            Method::POST,
            &format!("/v1/conversations/{conv}/messages"),
            Some(&alice),
            Some(json!({"client_msg_id": "m-1", "attachments": [
                {"blob_id": blob, "content_type": "application/pdf", "size": bytes.len()}]})),
        )
        .await;
    assert_eq!(sent.status, StatusCode::CREATED, "{:?}", sent.body);
    assert_eq!(sent.body["attachments"][0]["name"], "report.pdf");

    let r = s
        .call(
            Method::GET,
            &format!("/v1/media/{blob}/url"),
            Some(&carol),
            None,
        )
        .await;
    problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = s
        .call(
            Method::GET,
            &format!("/v1/media/{blob}/url"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let url = r.body["url"].as_str().unwrap().to_owned();
    let got = s.http.get(&url).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.headers()["content-type"], "application/pdf");
    assert_eq!(got.headers()["x-content-type-options"], "nosniff");
    assert_eq!(got.bytes().await.unwrap().to_vec(), bytes);

    let r = s
        .call(
            Method::DELETE,
            &format!("/v1/media/{blob}"),
            Some(&bob),
            None,
        )
        .await;
    problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = s
        .call(
            Method::DELETE,
            &format!("/v1/media/{blob}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        s.http.get(&url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let r = s
        .call(Method::GET, "/v1/media/not%20an%20id/url", Some(&bob), None)
        .await;
    problem(&r, StatusCode::BAD_REQUEST, "invalid_argument");
}

#[tokio::test]
async fn usage_reports_meters_and_quotas_answer_quota_exceeded() {
    let s = Server::start().await;
    let (_, secret) = s
        .tenant_with(&["alice"], json!({"quotas": {"messages_per_month": 2}}))
        .await;
    let alice = s.token(&secret, "alice").await;
    let conv = group(&s, &alice, &[], "metered").await;
    say(&s, &alice, &conv, "m1", "one").await;
    say(&s, &alice, &conv, "m2", "two").await;
    let r = s
        .call(
            Method::POST,
            &format!("/v1/conversations/{conv}/messages"),
            Some(&alice),
            Some(json!({"client_msg_id": "m3", "body": "three"})),
        )
        .await;
    problem(&r, StatusCode::TOO_MANY_REQUESTS, "quota_exceeded");

    let r = s.call(Method::GET, "/v1/usage", Some(&secret), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["totals"]["messages"], 2, "{:?}", r.body);
    assert_eq!(r.body["totals"]["storage_bytes"], 6);
    assert!(r.body["totals"]["api_calls"].as_i64().unwrap() >= 3);
    assert_eq!(r.body["days"][0]["messages"], 2);
    let month = &r.body["from"].as_str().unwrap()[..7];
    assert_eq!(r.body["active_users"][month], 1);

    let r = s.call(Method::GET, "/v1/usage", Some(&alice), None).await;
    problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = s
        .call(
            Method::GET,
            "/v1/usage?from=2026-02-30",
            Some(&secret),
            None,
        )
        .await;
    problem(&r, StatusCode::BAD_REQUEST, "invalid_argument");
    let r = s
        .call(
            Method::GET,
            "/v1/usage?since=2026-01-01",
            Some(&secret),
            None,
        )
        .await;
    problem(&r, StatusCode::BAD_REQUEST, "invalid_argument");
}

/// Stripe's signature scheme, as the platform wires it.
#[derive(Debug)]
struct StripeSignatures(caas_crypto::webhook::WebhookSigner);

impl caas_transport::WebhookVerifier for StripeSignatures {
    fn verify(&self, signature: &str, body: &[u8], now: i64, tolerance: u64) -> Result<(), String> {
        self.0
            .verify(signature, body, now, tolerance)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

#[tokio::test]
async fn the_payment_webhook_checks_stripe_signatures_and_suspends_and_resumes() {
    const SECRET: &[u8] = b"whsec_0123456789abcdefghijklmnopqrstuvwxyz";
    let s = Server::with_config(caas_transport::GatewayConfig {
        edge_quota: None,
        payment_webhook: Some(std::sync::Arc::new(StripeSignatures(
            caas_crypto::webhook::WebhookSigner::new(SECRET).unwrap(),
        ))),
        ..caas_transport::GatewayConfig::default()
    })
    .await;
    let (tenant, secret) = s.tenant(&["alice"]).await;
    let signer = caas_crypto::webhook::WebhookSigner::new(SECRET).unwrap();
    let now = i64::try_from(caas_core::time::Clock::now(s.clock.as_ref()).as_secs()).unwrap();
    let deliver = |body: serde_json::Value, signature: Option<String>| {
        let http = s.http.clone();
        let url = format!("{}/v1/billing/stripe", s.base);
        async move {
            let mut r = http.post(url).header("content-type", "application/json");
            if let Some(sig) = signature {
                r = r.header("stripe-signature", sig);
            }
            let r = r.body(body.to_string()).send().await.unwrap();
            let status = r.status();
            (
                status,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let failed = json!({"id": "evt_1", "type": "invoice.payment_failed",
        "data": {"object": {"metadata": {"tenant_id": tenant}}}});
    let sign = |body: &serde_json::Value, at: i64| signer.sign(at, body.to_string().as_bytes());

    let (status, _) = deliver(failed.clone(), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = deliver(failed.clone(), Some(sign(&failed, now - 301))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let other = caas_crypto::webhook::WebhookSigner::new(&[7u8; 32]).unwrap();
    let forged = other.sign(now, failed.to_string().as_bytes());
    let (status, _) = deliver(failed.clone(), Some(forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = deliver(failed.clone(), Some(sign(&failed, now))).await;
    assert_eq!(
        (status, &body["outcome"]),
        (StatusCode::OK, &json!("applied")),
        "{body}"
    );
    let r = s.call(Method::GET, "/v1/usage", Some(&secret), None).await;
    problem(&r, StatusCode::FORBIDDEN, "forbidden");
    // The same delivery again is a replay.
    let (_, body) = deliver(failed.clone(), Some(sign(&failed, now))).await;
    assert_eq!(body["outcome"], "duplicate");

    let paid = json!({"id": "evt_2", "type": "invoice.paid",
        "data": {"object": {"metadata": {"tenant_id": tenant}}}});
    let (_, body) = deliver(paid.clone(), Some(sign(&paid, now))).await;
    assert_eq!(body["outcome"], "applied");
    let r = s.call(Method::GET, "/v1/usage", Some(&secret), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // Events it does not act on are acknowledged; malformed ones are not.
    let other_kind = json!({"id": "evt_3", "type": "charge.refunded", "data": {"object": {}}});
    let (status, body) = deliver(other_kind.clone(), Some(sign(&other_kind, now))).await;
    assert_eq!(
        (status, &body["outcome"]),
        (StatusCode::OK, &json!("ignored"))
    );
    let nonsense = json!({"type": "invoice.paid"});
    let (status, _) = deliver(nonsense.clone(), Some(sign(&nonsense, now))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let r = s
        .call(
            Method::GET,
            "/v1/usage/invoice?period=2027-01",
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["period"], "2027-01");
}

#[tokio::test]
async fn erasure_over_rest_leaves_tombstones_and_locks_the_user_out() {
    let s = Server::start().await;
    let (_, secret) = s.tenant(&["alice", "bob"]).await;
    let (alice, bob) = (
        s.token(&secret, "alice").await,
        s.token(&secret, "bob").await,
    );
    let conv = group(&s, &alice, &["bob"], "g").await;
    let said = say(&s, &alice, &conv, "a1", "mine to forget").await;
    say(&s, &bob, &conv, "b1", "bob stays").await;

    let r = s
        .call(
            Method::DELETE,
            "/v1/compliance/users/alice",
            Some(&bob),
            None,
        )
        .await;
    problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = s
        .call(
            Method::DELETE,
            "/v1/compliance/users/alice",
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["messages"], 1);
    assert_eq!(r.body["memberships"], 1);

    let h = s
        .call(
            Method::GET,
            &format!("/v1/conversations/{conv}/messages"),
            Some(&bob),
            None,
        )
        .await;
    let items = h.body["items"].as_array().unwrap();
    let gone = items.iter().find(|m| m["id"] == said["id"]).unwrap();
    assert!(
        gone["body"].is_null() && gone["deleted"].is_object(),
        "{gone}"
    );
    assert_eq!(gone["seq"], said["seq"]);
    let sync = s
        .call(Method::GET, "/v1/sync?since=0", Some(&bob), None)
        .await;
    assert!(!sync.body.to_string().contains("mine to forget"));

    let r = s
        .call(Method::GET, "/v1/conversations", Some(&alice), None)
        .await;
    problem(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    let r = s
        .call(
            Method::DELETE,
            "/v1/compliance/users/nobody",
            Some(&secret),
            None,
        )
        .await;
    problem(&r, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn reports_reach_moderators_who_settle_them_over_rest() {
    let s = Server::start().await;
    let (_, secret) = s.tenant(&["alice", "bob", "carol"]).await;
    let (alice, bob, carol) = (
        s.token(&secret, "alice").await,
        s.token(&secret, "bob").await,
        s.token(&secret, "carol").await,
    );
    let conv = group(&s, &alice, &["bob", "carol"], "g").await;
    let m = say(&s, &bob, &conv, "b1", "rude words").await;
    let mid = m["id"].as_str().unwrap();
    let r = s
        .call(
            Method::POST,
            &format!("/v1/conversations/{conv}/messages/{mid}/flag"),
            Some(&carol),
            Some(json!({"reason": "rude"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["reporter"], "carol");
    let r = s
        .call(
            Method::GET,
            &format!("/v1/conversations/{conv}/flags"),
            Some(&bob),
            None,
        )
        .await;
    problem(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = s
        .call(
            Method::GET,
            &format!("/v1/conversations/{conv}/flags"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.body["items"][0]["reason"], "rude", "{:?}", r.body);
    let r = s
        .call(
            Method::GET,
            &format!("/v1/conversations/{conv}/messages/{mid}/edits"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.body["items"], json!([]));
    let r = s
        .call(
            Method::POST,
            &format!("/v1/conversations/{conv}/messages/{mid}/flags/resolve"),
            Some(&alice),
            Some(json!({"action": "erase"})),
        )
        .await;
    problem(&r, StatusCode::BAD_REQUEST, "invalid_argument");
    let r = s
        .call(
            Method::POST,
            &format!("/v1/conversations/{conv}/messages/{mid}/flags/resolve"),
            Some(&alice),
            Some(json!({"action": "delete"})),
        )
        .await;
    assert_eq!(r.body["resolved"], 1, "{:?}", r.body);
    let r = s
        .call(
            Method::GET,
            &format!("/v1/conversations/{conv}/flags"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.body["items"], json!([]));
}

#[tokio::test]
async fn webhooks_are_managed_over_http_and_never_show_a_secret_twice() {
    let s = Server::start().await;
    let (_, secret) = s.tenant(&["alice"]).await;
    let alice = s.token(&secret, "alice").await;
    let new = json!({"url": "https://hooks.example.com/caas", "kinds": ["message.created", "push.requested"]});
    let r = s
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(&alice),
            Some(new.clone()),
        )
        .await;
    problem(&r, StatusCode::FORBIDDEN, "forbidden");
    for bad in [
        json!({"url": "http://hooks.example.com/caas", "kinds": ["*"]}),
        json!({"url": "https://127.0.0.1/caas", "kinds": ["*"]}),
        json!({"url": "https://hooks.example.com/caas", "kinds": ["typing"]}),
        json!({"url": "https://hooks.example.com/caas", "kinds": []}),
        json!({"url": "https://hooks.example.com/caas", "kinds": ["*"], "extra": 1}),
    ] {
        let r = s
            .call(
                Method::POST,
                "/v1/webhooks",
                Some(&secret),
                Some(bad.clone()),
            )
            .await;
        problem(&r, StatusCode::BAD_REQUEST, "invalid_argument");
    }
    let r = s
        .call(Method::POST, "/v1/webhooks", Some(&secret), Some(new))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let shown = r.body["secret"].as_str().unwrap().to_owned();
    assert!(shown.starts_with("whsec_"));
    let id = r.body["webhook"]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wh_"));
    assert_eq!(
        r.body["webhook"]["kinds"],
        json!(["message.created", "push.requested"])
    );

    let r = s
        .call(Method::GET, "/v1/webhooks", Some(&secret), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"][0]["id"], id.as_str());
    assert!(
        !r.body.to_string().contains(&shown),
        "the secret is shown once"
    );

    let r = s
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(&secret),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["disabled"], true);

    let r = s
        .call(
            Method::POST,
            &format!("/v1/webhooks/{id}/secrets"),
            Some(&secret),
            Some(json!({"grace_secs": 60})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_ne!(r.body["secret"], shown.as_str());
    assert_eq!(r.body["webhook"]["secrets"].as_array().unwrap().len(), 2);
    assert!(r.body["webhook"]["secrets"][1]["expires_at"].is_string());

    let r = s
        .call(
            Method::GET,
            &format!("/v1/webhooks/{id}/dead-letters"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"], json!([]));
    let r = s
        .call(
            Method::POST,
            &format!("/v1/webhooks/{id}/dead-letters/replay"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["delivered"], json!([]));

    let r = s
        .call(Method::GET, "/v1/webhooks/wh_nope", Some(&secret), None)
        .await;
    problem(&r, StatusCode::NOT_FOUND, "not_found");
    let r = s
        .call(Method::GET, "/v1/webhooks/bad%20id", Some(&secret), None)
        .await;
    problem(&r, StatusCode::BAD_REQUEST, "invalid_argument");
    let r = s
        .call(
            Method::DELETE,
            &format!("/v1/webhooks/{id}"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = s
        .call(
            Method::GET,
            &format!("/v1/webhooks/{id}"),
            Some(&secret),
            None,
        )
        .await;
    problem(&r, StatusCode::NOT_FOUND, "not_found");

    let r = s.call(Method::GET, "/openapi.json", None, None).await;
    for path in [
        "/v1/webhooks",
        "/v1/webhooks/{id}",
        "/v1/webhooks/{id}/secrets",
        "/v1/webhooks/{id}/dead-letters",
        "/v1/webhooks/{id}/dead-letters/replay",
    ] {
        assert!(r.body["paths"][path].is_object(), "{path} in /openapi.json");
    }
}
