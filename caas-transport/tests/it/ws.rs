//! The WebSocket server end to end: the Rust client and raw sockets against a real
//! server on 127.0.0.1:0.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use caas_core::events::EventPayload;
use caas_core::ids::{ClientMsgId, ConversationId, UserId};
use caas_core::model::PresenceStatus;
use caas_core::ratelimit::Quota;
use caas_transport::WsConfig;
use caas_transport::client::{Backoff, Client, ClientConfig, ClientError, Events, Notice};
use caas_transport::ws::Codec;
use caas_transport::ws::frames::{
    AckResult, CallSignalRequest, ClientFrame, PingRequest, PresenceRequest, ReactionRequest,
    ReadRequest, Request, ServerFrame, TypingRequest, WireEvent,
};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::server::Server;

type Raw =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Long enough for anything that should happen, short enough to fail fast.
const WAIT: Duration = Duration::from_secs(5);

fn url(s: &Server) -> String {
    format!("{}/v1/ws", s.base.replace("http://", "ws://"))
}

async fn raw(
    s: &Server,
    token: Option<&str>,
    protocol: Option<&str>,
) -> Result<Raw, tungstenite::Error> {
    let mut req = url(s).into_client_request()?;
    if let Some(t) = token {
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
        );
    }
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_str(p).unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// The next data or close message (pings and pongs skipped).
async fn recv(ws: &mut Raw) -> Message {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("the stream is open")
            .expect("a readable frame");
        if !matches!(m, Message::Ping(_) | Message::Pong(_)) {
            return m;
        }
    }
}

async fn recv_json(ws: &mut Raw) -> Value {
    match recv(ws).await {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The next ack or error frame, skipping events (such as the user's own presence
/// going online as the connection opens).
async fn reply(ws: &mut Raw) -> Value {
    loop {
        let v = recv_json(ws).await;
        if v["type"] != "event" {
            return v;
        }
    }
}

/// The next binary frame that is not an event.
async fn reply_proto(ws: &mut Raw) -> ServerFrame {
    loop {
        let Message::Binary(b) = recv(ws).await else {
            panic!("a binary frame")
        };
        let f = caas_transport::ws::decode_server_frame(Codec::Proto, &b).unwrap();
        if !matches!(f, ServerFrame::Event { .. }) {
            return f;
        }
    }
}

async fn send_json(ws: &mut Raw, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The close frame that ends the stream (frames before it are skipped).
async fn close_of(ws: &mut Raw) -> (u16, String) {
    loop {
        if let Message::Close(f) = recv(ws).await {
            let f = f.expect("a close frame with a code");
            return (u16::from(f.code), f.reason.to_string());
        }
    }
}

async fn client(s: &Server, token: &str, codec: Codec) -> (Client, Events) {
    Client::connect(
        ClientConfig::new(s.base.clone(), token)
            .codec(codec)
            .backoff(Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(200),
            }),
    )
    .await
    .unwrap()
}

/// Events until `done` says so (or the wait ends, which fails the test).
async fn events_until(
    events: &mut Events,
    mut done: impl FnMut(&WireEvent) -> bool,
) -> Vec<WireEvent> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let e = tokio::time::timeout_at(deadline, events.next_event())
            .await
            .unwrap_or_else(|_| panic!("timed out; got {:?}", kinds(&out)))
            .expect("the client is open");
        let stop = done(&e);
        out.push(e);
        if stop {
            return out;
        }
    }
}

fn kinds(events: &[WireEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.payload.kind()).collect()
}

fn created_seqs(events: &[WireEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match &e.payload {
            EventPayload::MessageCreated { message } => Some(message.seq.get()),
            _ => None,
        })
        .collect()
}

fn is_created(e: &WireEvent, body: &str) -> bool {
    matches!(&e.payload, EventPayload::MessageCreated { message } if message.body.as_deref() == Some(body))
}

/// A tenant with alice, bob, carol and eve, and a group of the first three.
struct Fixture {
    secret: String,
    alice: String,
    bob: String,
    eve: String,
    conv: ConversationId,
}

async fn fixture(s: &Server, settings: Value) -> Fixture {
    let (_, secret) = s
        .tenant_with(&["alice", "bob", "carol", "eve"], settings)
        .await;
    let alice = s.token(&secret, "alice").await;
    let bob = s.token(&secret, "bob").await;
    let eve = s.token(&secret, "eve").await;
    let r = s
        .call(
            Method::POST,
            "/v1/conversations",
            Some(&alice),
            Some(json!({"kind": "group", "members": ["bob", "carol"], "name": "g"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    Fixture {
        secret,
        alice,
        bob,
        eve,
        conv: ConversationId::parse(r.body["id"].as_str().unwrap()).unwrap(),
    }
}

fn k(s: &str) -> ClientMsgId {
    ClientMsgId::parse(s).unwrap()
}

async fn two_users_chat(codec: Codec) {
    let s = Server::start().await;
    let f = fixture(&s, json!({})).await;
    let (alice, mut alice_events) = client(&s, &f.alice, codec).await;
    let (bob, mut bob_events) = client(&s, &f.bob, codec).await;

    let sent = alice.send_text(&f.conv, &k("m-1"), "hi bob").await.unwrap();
    assert_eq!(sent.seq.get(), 1);
    assert!(!sent.duplicate);
    let message_id = sent.message_id.clone();
    let got = events_until(&mut bob_events, |e| is_created(e, "hi bob")).await;
    let created = got.last().unwrap();
    assert!(created.correlation_id.is_some());
    let EventPayload::MessageCreated { message } = &created.payload else {
        unreachable!()
    };
    assert_eq!(
        (message.id.clone(), message.seq.get()),
        (message_id.clone(), 1)
    );

    // Receipts, reactions, edits and deletes arrive as events too.
    let read = bob
        .request(Request::Read(ReadRequest {
            conversation_id: f.conv.clone(),
            seq: caas_core::ids::Seq(1),
            delivered_only: false,
        }))
        .await
        .unwrap();
    let AckResult::Receipt(read) = read else {
        panic!("{read:?}")
    };
    assert_eq!(read.read.get(), 1);
    bob.request(Request::React(ReactionRequest {
        conversation_id: f.conv.clone(),
        message_id: message_id.clone(),
        emoji: "👍".into(),
    }))
    .await
    .unwrap();
    let edited = alice
        .request(Request::Edit(caas_transport::ws::frames::EditRequest {
            conversation_id: f.conv.clone(),
            message_id: message_id.clone(),
            body: "hi bob!".into(),
        }))
        .await
        .unwrap();
    assert!(matches!(edited, AckResult::Edited(_)), "{edited:?}");
    let got = events_until(&mut alice_events, |e| e.payload.kind() == "message.edited").await;
    let seen = kinds(&got);
    for kind in [
        "message.created",
        "receipt.updated",
        "reaction.added",
        "message.edited",
    ] {
        assert!(seen.contains(&kind), "{kind} missing from {seen:?}");
    }
    let EventPayload::MessageEdited { message } = &got.last().unwrap().payload else {
        unreachable!()
    };
    assert_eq!(message.body.as_deref(), Some("hi bob!"));
    assert_eq!(message.reactions["👍"], vec![UserId::parse("bob").unwrap()]);

    // Typing is throttled per connection: one start per conversation per interval.
    let typing = |typing| {
        Request::Typing(TypingRequest {
            conversation_id: f.conv.clone(),
            typing,
        })
    };
    let forwarded = |r: AckResult| match r {
        AckResult::Typing(t) => Some(t.forwarded),
        _ => None,
    };
    assert_eq!(
        forwarded(alice.request(typing(true)).await.unwrap()),
        Some(true)
    );
    assert_eq!(
        forwarded(alice.request(typing(true)).await.unwrap()),
        Some(false)
    );
    s.advance(Duration::from_secs(2));
    assert_eq!(
        forwarded(alice.request(typing(true)).await.unwrap()),
        Some(true)
    );
    assert_eq!(
        forwarded(alice.request(typing(false)).await.unwrap()),
        Some(true)
    );
    assert_eq!(
        forwarded(alice.request(typing(false)).await.unwrap()),
        Some(false)
    );

    // A call signal is relayed to the one member it names.
    bob.request(Request::CallSignal(CallSignalRequest {
        conversation_id: f.conv.clone(),
        to: Some(UserId::parse("alice").unwrap()),
        signal: json!({"type": "offer", "sdp": "v=0"}),
    }))
    .await
    .unwrap();
    let got = events_until(&mut alice_events, |e| e.payload.kind() == "call.signal").await;
    let EventPayload::CallSignal { from, signal, .. } = &got.last().unwrap().payload else {
        unreachable!()
    };
    assert_eq!((from.as_str(), &signal["type"]), ("bob", &json!("offer")));
    let got = events_until(&mut bob_events, |e| {
        matches!(&e.payload, EventPayload::Typing { typing: false, .. })
    })
    .await;
    let typing_events = got.iter().filter(|e| e.payload.kind() == "typing").count();
    assert_eq!(
        typing_events,
        3,
        "two starts and a stop got through: {:?}",
        kinds(&got)
    );

    // Presence: an explicit status, and offline when the last connection goes.
    let away = bob
        .request(Request::Presence(PresenceRequest {
            status: PresenceStatus::Away,
        }))
        .await
        .unwrap();
    assert!(
        matches!(&away, AckResult::Presence(p) if p.status == PresenceStatus::Away),
        "{away:?}"
    );
    bob.close().await;
    events_until(&mut alice_events, |e| {
        matches!(&e.payload, EventPayload::Presence { user_id, status: PresenceStatus::Offline, .. } if user_id.as_str() == "bob")
    })
    .await;
}

#[tokio::test]
async fn two_users_chat_over_json() {
    two_users_chat(Codec::Json).await;
}

#[tokio::test]
async fn two_users_chat_over_protobuf() {
    two_users_chat(Codec::Proto).await;
}

#[tokio::test]
async fn json_frames_have_the_api_md_shape() {
    let s = Server::start().await;
    let f = fixture(&s, json!({})).await;
    let mut alice = raw(&s, Some(&f.alice), Some("caas.v1.json")).await.unwrap();
    send_json(
        &mut alice,
        json!({"type":"send","ref":"7","conversation_id": f.conv,"client_msg_id":"m-42","body":"hi"}),
    )
    .await;
    // The sender is in the audience too: its event and its ack, in either order
    // (after Alice's own presence going online).
    let (mut ack, mut event) = (Value::Null, Value::Null);
    while ack.is_null() || event.is_null() {
        let v = recv_json(&mut alice).await;
        match v["type"].as_str() {
            Some("ack") => ack = v,
            Some("event") if v["event"]["kind"] == "message.created" => event = v,
            Some("event") => assert_eq!(v["event"]["kind"], "presence", "{v}"),
            _ => panic!("{v}"),
        }
    }
    assert_eq!(
        (&ack["ref"], &ack["ok"]),
        (&json!("7"), &json!(true)),
        "{ack}"
    );
    assert_eq!(ack["result"]["seq"], 1);
    assert!(ack["result"]["message_id"].is_string() && ack["result"]["created_at"].is_string());
    let e = &event["event"];
    assert_eq!(e["kind"], "message.created");
    assert_eq!(e["conversation_id"], json!(f.conv));
    assert_eq!(e["seq"], 1);
    assert_eq!(e["message"]["body"], "hi");
    assert!(e.get("audience").is_none(), "audiences are not sent: {e}");
}

#[tokio::test]
async fn a_resend_over_ws_is_idempotent() {
    let s = Server::start().await;
    let f = fixture(&s, json!({})).await;
    let (alice, _) = client(&s, &f.alice, Codec::Proto).await;
    let (_bob, mut bob_events) = client(&s, &f.bob, Codec::Json).await;
    let first = alice.send_text(&f.conv, &k("once"), "hello").await.unwrap();
    let again = alice.send_text(&f.conv, &k("once"), "hello").await.unwrap();
    assert_eq!(first.message_id, again.message_id);
    assert_eq!((first.duplicate, again.duplicate), (false, true));
    alice
        .send_text(&f.conv, &k("after"), "after")
        .await
        .unwrap();
    let got = events_until(&mut bob_events, |e| is_created(e, "after")).await;
    assert_eq!(
        created_seqs(&got),
        vec![1, 2],
        "one event for the resent message"
    );
}

#[tokio::test]
async fn a_reconnecting_client_gets_every_event_once() {
    let s = Server::start().await;
    let f = fixture(&s, json!({})).await;
    let (alice, _) = client(&s, &f.alice, Codec::Json).await;
    let (bob, mut bob_events) =
        Client::connect(ClientConfig::new(s.base.clone(), &f.bob).backoff(Backoff {
            initial: Duration::from_millis(300),
            max: Duration::from_millis(300),
        }))
        .await
        .unwrap();
    for i in 1..=3 {
        alice
            .send_text(&f.conv, &k(&format!("m{i}")), format!("m{i}"))
            .await
            .unwrap();
    }
    let mut got = events_until(&mut bob_events, |e| is_created(e, "m3")).await;

    bob.drop_connection();
    // While Bob is away (at least 150 ms of backoff), and then as he returns.
    for i in 4..=8 {
        alice
            .send_text(&f.conv, &k(&format!("m{i}")), format!("m{i}"))
            .await
            .unwrap();
    }
    let mut notices = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = tokio::time::timeout_at(deadline, bob_events.next())
            .await
            .expect("Bob reconnects and catches up")
            .unwrap();
        match n {
            Notice::Event(e) => got.push(e),
            Notice::Synced { .. } if notices.iter().any(|n| matches!(n, Notice::Connected)) => {
                break;
            }
            other => notices.push(other),
        }
    }
    assert!(
        matches!(notices.first(), Some(Notice::Disconnected { .. })),
        "{notices:?}"
    );
    for i in 9..=10 {
        alice
            .send_text(&f.conv, &k(&format!("m{i}")), format!("m{i}"))
            .await
            .unwrap();
    }
    got.extend(events_until(&mut bob_events, |e| is_created(e, "m10")).await);
    assert_eq!(created_seqs(&got), (1..=10).collect::<Vec<_>>());
    assert!(bob.cursor().0 > 0, "the cursor moved with the catch-up");

    // Once more, with the drop racing the sends, and a final marker to flush.
    bob.drop_connection();
    for i in 11..=15 {
        alice
            .send_text(&f.conv, &k(&format!("m{i}")), format!("m{i}"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    got.extend(events_until(&mut bob_events, |e| is_created(e, "m15")).await);
    alice.send_text(&f.conv, &k("m16"), "m16").await.unwrap();
    got.extend(events_until(&mut bob_events, |e| is_created(e, "m16")).await);
    assert_eq!(created_seqs(&got), (1..=16).collect::<Vec<_>>());
}

#[tokio::test]
async fn bad_credentials_are_refused_before_the_upgrade() {
    let s = Server::start().await;
    let f = fixture(&s, json!({})).await;
    let refused = |r: Result<Raw, tungstenite::Error>, status: u16, code: &str| {
        let Err(tungstenite::Error::Http(res)) = r else {
            panic!("expected HTTP {status}, got {r:?}");
        };
        assert_eq!(res.status().as_u16(), status);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let body: Value = serde_json::from_slice(res.body().as_deref().unwrap()).unwrap();
        assert_eq!(body["code"], code, "{body}");
    };
    refused(raw(&s, None, None).await, 401, "unauthenticated");
    refused(raw(&s, Some("garbage"), None).await, 401, "unauthenticated");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = f.alice.split('.').nth(1).unwrap();
    let none = format!("{}.{claims}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#));
    refused(raw(&s, Some(&none), None).await, 401, "unauthenticated");
    let forged = {
        let signing_input: Vec<&str> = f.alice.split('.').collect();
        let header: Value = serde_json::from_slice(&b64.decode(signing_input[0]).unwrap()).unwrap();
        assert_eq!(header["kid"], "test-1");
        let c: Value = serde_json::from_slice(&b64.decode(signing_input[1]).unwrap()).unwrap();
        crate::server::mint_with(
            &[1u8; 32],
            c["tenant"].as_str().unwrap(),
            "alice",
            caas_core::time::Timestamp::from_secs(c["iat"].as_u64().unwrap()),
        )
    };
    refused(raw(&s, Some(&forged), None).await, 401, "unauthenticated");
    refused(raw(&s, Some(&f.secret), None).await, 403, "forbidden");
    // The query form works, and an expired token does not.
    let ok =
        tokio_tungstenite::connect_async(format!("{}?access_token={}", url(&s), f.alice)).await;
    assert!(ok.is_ok(), "{:?}", ok.err());
    s.advance(Duration::from_secs(600 + 31));
    refused(raw(&s, Some(&f.alice), None).await, 401, "unauthenticated");
    let expired =
        tokio_tungstenite::connect_async(format!("{}?access_token={}", url(&s), f.alice)).await;
    refused(expired.map(|(ws, _)| ws), 401, "unauthenticated");
}

#[tokio::test]
async fn an_open_connection_closes_when_its_token_expires() {
    let s = Server::start().await;
    let f = fixture(&s, json!({})).await;
    let mut ws = raw(&s, Some(&f.alice), None).await.unwrap();
    send_json(&mut ws, json!({"type": "ping", "ref": "1"})).await;
    assert_eq!(reply(&mut ws).await["ok"], true);
    s.advance(Duration::from_secs(600 + 31));
    send_json(&mut ws, json!({"type": "ping", "ref": "2"})).await;
    assert_eq!(close_of(&mut ws).await.0, 4001);
}

#[tokio::test]
async fn idle_connections_close_but_listeners_stay_and_expiry_reaches_them() {
    let s = Server::with_ws(WsConfig {
        idle_timeout: Duration::from_millis(300),
        ping_interval: Duration::from_millis(50),
        ..WsConfig::default()
    })
    .await;
    let f = fixture(&s, json!({})).await;
    // Never reads, so never answers the server's pings: closed as idle.
    let mut mute = raw(&s, Some(&f.alice), None).await.unwrap();
    // Only reads (answering pings on the way), never sends: kept.
    let mut listener = raw(&s, Some(&f.bob), None).await.unwrap();
    let until = tokio::time::Instant::now() + Duration::from_millis(700);
    while let Ok(m) = tokio::time::timeout_at(until, listener.next()).await {
        let m = m.expect("open").expect("readable");
        assert!(
            !matches!(m, Message::Close(_)),
            "a listener is not idle: {m:?}"
        );
    }
    assert_eq!(s.ws.connections(), 1, "the mute one is gone");
    // It was sent 1001, but reading first flushes the pongs it owes to a socket
    // the server has closed: either ending is fine.
    loop {
        match tokio::time::timeout(WAIT, mute.next()).await.unwrap() {
            Some(Ok(Message::Close(f))) => {
                assert_eq!(f.map(|f| u16::from(f.code)), Some(1001));
                break;
            }
            Some(Ok(_)) => {} // its presence event, pings
            None | Some(Err(_)) => break,
        }
    }
    // Its token expires: the next pong ends it, with no frame from the client.
    s.advance(Duration::from_secs(600 + 31));
    assert_eq!(close_of(&mut listener).await.0, 4001);
}

#[tokio::test]
async fn a_non_member_gets_a_forbidden_ack_and_stays_connected() {
    let s = Server::start().await;
    let f = fixture(&s, json!({})).await;
    let (eve, _) = client(&s, &f.eve, Codec::Proto).await;
    let err = eve
        .send_text(&f.conv, &k("x"), "let me in")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("forbidden"), "{err}");
    assert!(
        matches!(err, ClientError::Server { ref message, .. } if message.contains("default-deny"))
    );
    assert!(eve.ping().await.unwrap().server_time > caas_core::time::Timestamp::EPOCH);
}

#[tokio::test]
async fn malformed_and_unknown_frames_get_error_frames() {
    let s = Server::start().await;
    let f = fixture(&s, json!({})).await;
    let mut ws = raw(&s, Some(&f.alice), Some("caas.v1.json")).await.unwrap();
    ws.send(Message::Text("{not json".into())).await.unwrap();
    let e = reply(&mut ws).await;
    assert_eq!(
        (&e["type"], &e["code"]),
        (&json!("error"), &json!("invalid_argument")),
        "{e}"
    );
    send_json(&mut ws, json!({"type": "dance", "ref": "d1"})).await;
    let e = reply(&mut ws).await;
    assert_eq!(
        (&e["ref"], &e["code"]),
        (&json!("d1"), &json!("invalid_argument")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("dance"), "{e}");
    send_json(
        &mut ws,
        json!({"type": "send", "ref": "s1", "conversation_id": "bad id"}),
    )
    .await;
    let e = reply(&mut ws).await;
    assert_eq!(
        (&e["type"], &e["ref"]),
        (&json!("error"), &json!("s1")),
        "{e}"
    );
    ws.send(Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(reply(&mut ws).await["code"], "invalid_argument");
    send_json(&mut ws, json!({"type": "ping", "ref": "alive"})).await;
    let ack = reply(&mut ws).await;
    assert_eq!(
        (&ack["ref"], &ack["ok"]),
        (&json!("alive"), &json!(true)),
        "{ack}"
    );

    // The same over protobuf.
    let mut ws = raw(&s, Some(&f.alice), Some("caas.v1.proto"))
        .await
        .unwrap();
    ws.send(Message::Binary(vec![0xff, 0xff, 0xff].into()))
        .await
        .unwrap();
    let ServerFrame::Error(e) = reply_proto(&mut ws).await else {
        panic!("an error frame")
    };
    assert_eq!(e.code, "invalid_argument");
    ws.send(Message::Text("{}".into())).await.unwrap();
    assert!(matches!(reply_proto(&mut ws).await, ServerFrame::Error(_)));
    let ping = ClientFrame {
        reference: "p".into(),
        request: Request::Ping(PingRequest {}),
    };
    ws.send(Message::Binary(
        caas_transport::ws::encode_client_frame(Codec::Proto, &ping).into(),
    ))
    .await
    .unwrap();
    let ServerFrame::Ack(ack) = reply_proto(&mut ws).await else {
        panic!("an ack")
    };
    assert!(ack.ok() && ack.reference == "p");
}

#[tokio::test]
async fn oversized_frames_get_an_error_or_close_the_connection() {
    let s = Server::with_ws(WsConfig {
        max_frame_bytes: 4 * 1024,
        max_message_bytes: 16 * 1024,
        ..WsConfig::default()
    })
    .await;
    let f = fixture(&s, json!({})).await;
    let mut ws = raw(&s, Some(&f.alice), None).await.unwrap();
    let big = json!({"type":"send","ref":"big","conversation_id": f.conv,"client_msg_id":"b","body":"x".repeat(8 * 1024)});
    send_json(&mut ws, big).await;
    let e = reply(&mut ws).await;
    assert_eq!(
        (&e["type"], &e["code"]),
        (&json!("error"), &json!("payload_too_large")),
        "{e}"
    );
    send_json(&mut ws, json!({"type": "ping", "ref": "still"})).await;
    assert_eq!(reply(&mut ws).await["ok"], true);
    // Past what the socket reads at all: closed with 1009.
    ws.send(Message::Text("y".repeat(32 * 1024).into()))
        .await
        .unwrap();
    assert_eq!(close_of(&mut ws).await.0, 1009);
}

#[tokio::test]
async fn a_flood_closes_the_connection_with_a_reason() {
    let s = Server::with_ws(WsConfig {
        frame_quota: Quota {
            limit: 5,
            period_secs: 1,
            burst: Some(5),
        },
        flood_quota: Quota {
            limit: 3,
            period_secs: 10,
            burst: Some(3),
        },
        ..WsConfig::default()
    })
    .await;
    let f = fixture(&s, json!({})).await;
    let mut ws = raw(&s, Some(&f.alice), None).await.unwrap();
    for i in 0..20 {
        // The server may close before reading all of them.
        let _ = ws
            .send(Message::Text(
                json!({"type": "ping", "ref": i.to_string()})
                    .to_string()
                    .into(),
            ))
            .await;
    }
    let (mut acks, mut limited) = (0, 0);
    let close = loop {
        match recv(&mut ws).await {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                match v["type"].as_str() {
                    Some("event") => {}
                    Some("ack") => acks += 1,
                    Some("error") => {
                        assert_eq!(v["code"], "rate_limited", "{v}");
                        assert!(v["retry_after_ms"].as_u64().unwrap() > 0);
                        limited += 1;
                    }
                    _ => panic!("{v}"),
                }
            }
            Message::Close(f) => break f.unwrap(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        (acks, limited),
        (5, 3),
        "the burst, then the refusals it tolerates"
    );
    assert_eq!(u16::from(close.code), 1008);
    assert!(close.reason.contains("flood"), "{}", close.reason);
}

#[tokio::test]
async fn too_many_connections_per_user_are_refused() {
    let s = Server::with_ws(WsConfig {
        max_connections_per_user: 2,
        ..WsConfig::default()
    })
    .await;
    let f = fixture(&s, json!({})).await;
    let _one = raw(&s, Some(&f.alice), None).await.unwrap();
    let _two = raw(&s, Some(&f.alice), None).await.unwrap();
    let Err(tungstenite::Error::Http(res)) = raw(&s, Some(&f.alice), None).await else {
        panic!("the third is refused")
    };
    assert_eq!(res.status().as_u16(), 429);
    let body: Value = serde_json::from_slice(res.body().as_deref().unwrap()).unwrap();
    assert_eq!(body["code"], "quota_exceeded");
    assert!(
        raw(&s, Some(&f.bob), None).await.is_ok(),
        "other users are not affected"
    );
}

#[tokio::test]
async fn a_slow_consumer_is_dropped_without_slowing_others() {
    let s = Server::with_ws(WsConfig {
        queue_capacity: 16,
        max_sync_page: 8,
        close_timeout: Duration::from_millis(200),
        frame_quota: Quota::per_second(1_000_000),
        ..WsConfig::default()
    })
    .await;
    let limits = json!({"limits": {"message.send": {"limit": 1_000_000, "period_secs": 1}}});
    let f = fixture(&s, limits).await;
    let carol_token = s.token(&f.secret, "carol").await;
    let (alice, _) = client(&s, &f.alice, Codec::Proto).await;
    let (_carol, mut carol_events) = client(&s, &carol_token, Codec::Proto).await;
    // Bob connects with a small receive buffer and never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr = s.base.trim_start_matches("http://").parse().unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut req = url(&s).into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", f.bob)).unwrap(),
    );
    let (mut bob, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    assert_eq!(s.ws.connections(), 3);

    let body = "z".repeat(15 * 1024);
    let start = Instant::now();
    let mut slowest_ack = Duration::ZERO;
    let mut sent = 0u64;
    while s.ws.connections() == 3 {
        assert!(sent < 3000, "Bob was never dropped");
        let t = Instant::now();
        alice
            .send_text(&f.conv, &k(&format!("s{sent}")), body.clone())
            .await
            .unwrap();
        slowest_ack = slowest_ack.max(t.elapsed());
        sent += 1;
    }
    // Carol got every message, promptly, while Bob stalled and was dropped.
    let mut seen = 0u64;
    while seen < sent {
        let e = tokio::time::timeout(WAIT, carol_events.next_event())
            .await
            .expect("Carol keeps up")
            .unwrap();
        if e.payload.kind() == "message.created" {
            seen += 1;
        }
    }
    let elapsed = start.elapsed();
    assert!(
        slowest_ack < Duration::from_secs(1),
        "slowest ack {slowest_ack:?}"
    );
    assert!(
        elapsed < Duration::from_secs(20),
        "{sent} messages took {elapsed:?}"
    );
    // Bob, reading at last, finds the end of his stream (a 4008 close frame, if the
    // server could still write it past the data he left unread).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, bob.next())
            .await
            .expect("Bob's stream ends")
        {
            None | Some(Err(_)) => break,
            Some(Ok(Message::Close(f))) => {
                assert_eq!(f.map(|f| u16::from(f.code)), Some(4008));
                break;
            }
            Some(Ok(_)) => {}
        }
    }
    eprintln!(
        "slow consumer dropped after {sent} messages of 15 KiB; slowest ack {slowest_ack:?}; all delivered to Carol in {elapsed:?}"
    );
}

#[tokio::test]
async fn graceful_shutdown_tells_clients_to_reconnect() {
    let s = Server::start().await;
    let f = fixture(&s, json!({})).await;
    let mut ws = raw(&s, Some(&f.alice), None).await.unwrap();
    let (bob, mut bob_events) = client(&s, &f.bob, Codec::Json).await;
    bob.ping().await.unwrap();
    let report = s.ws.shutdown(Duration::from_secs(2)).await;
    assert_eq!((report.closed, report.remaining), (2, 0));
    assert_eq!(
        close_of(&mut ws).await,
        (1012, "service restart".to_owned())
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = tokio::time::timeout_at(deadline, bob_events.next())
            .await
            .unwrap()
            .unwrap();
        if let Notice::Disconnected { code, .. } = n {
            assert_eq!(code, Some(1012));
            break;
        }
    }
    let Err(tungstenite::Error::Http(res)) = raw(&s, Some(&f.alice), None).await else {
        panic!("no new connections while shutting down")
    };
    assert_eq!(res.status().as_u16(), 503);
    // A load balancer stops sending new clients as soon as draining starts.
    let ready = s.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.status.as_u16(), 503);
    assert_eq!(ready.body["status"], "draining");
}

/// A client given other nodes tries them in turn: a first URL where nothing
/// listens does not stop it, and it fails only when every URL fails.
#[tokio::test]
async fn a_client_fails_over_to_its_fallback_urls() {
    let s = Server::start().await;
    let f = fixture(&s, json!({})).await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let (bob, _events) = Client::connect(
        ClientConfig::new(dead.clone(), &f.bob)
            .fallback(dead.clone())
            .fallback(s.base.clone()),
    )
    .await
    .unwrap();
    bob.ping().await.unwrap();
    let err = Client::connect(ClientConfig::new(dead.clone(), &f.bob).fallback(dead))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
}

#[tokio::test]
async fn sync_over_ws_pages_through_the_log() {
    let s = Server::start().await;
    let f = fixture(&s, json!({})).await;
    for i in 0..5 {
        let r = s
            .call(
                Method::POST,
                &format!("/v1/conversations/{}/messages", f.conv),
                Some(&f.alice),
                Some(json!({"client_msg_id": format!("r{i}"), "body": format!("r{i}")})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let mut ws = raw(&s, Some(&f.bob), None).await.unwrap();
    let mut cursor = 0;
    let mut seqs = BTreeMap::new();
    for page in 0.. {
        assert!(page < 10);
        send_json(
            &mut ws,
            json!({"type": "sync", "ref": "s", "since": cursor, "limit": 2}),
        )
        .await;
        let ack = loop {
            let v = recv_json(&mut ws).await;
            if v["type"] == "ack" {
                break v;
            }
            let e = &v["event"];
            if e["kind"] == "presence" {
                continue; // live and ephemeral: no cursor
            }
            assert!(e["cursor"].as_u64().unwrap() > cursor, "{v}");
            if e["kind"] == "message.created" {
                *seqs.entry(e["seq"].as_u64().unwrap()).or_insert(0) += 1;
            }
        };
        cursor = ack["result"]["next_cursor"].as_u64().unwrap();
        if ack["result"]["has_more"] == false {
            break;
        }
    }
    assert_eq!(seqs, (1..=5).map(|s| (s, 1)).collect());
}

/// The server's resident memory per idle connection. The clients live in a child
/// process (this test binary again), so the parent's growth is the server's side
/// alone: sockets, buffers, tasks, queues and registry entries.
///
/// `cargo test -p caas-transport --test it -- --ignored --nocapture memory_per`
/// (`CAAS_WS_MEMORY_N` connections, 2000 by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn memory_per_idle_connection() {
    const CHILD: &str = "CAAS_WS_MEMORY_CLIENT";
    if let Ok(spec) = std::env::var(CHILD) {
        let (url, n) = spec.split_once('|').unwrap();
        let mut held = Vec::new();
        for _ in 0..n.parse::<usize>().unwrap() {
            held.push(tokio_tungstenite::connect_async(url).await.unwrap().0);
        }
        // The parent measures, then kills this process.
        tokio::time::sleep(Duration::from_secs(120)).await;
        return;
    }
    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
    let n: usize = std::env::var("CAAS_WS_MEMORY_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    // CAAS_WS_MEMORY_BUFFER=131072 compares with tungstenite's default buffers.
    let buffer = std::env::var("CAAS_WS_MEMORY_BUFFER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(WsConfig::default().read_buffer_bytes);
    let s = Server::with_ws(WsConfig {
        max_connections_per_user: usize::MAX,
        read_buffer_bytes: buffer,
        write_buffer_bytes: buffer,
        ..WsConfig::default()
    })
    .await;
    let f = fixture(&s, json!({})).await;
    let url = format!("{}?access_token={}", url(&s), f.alice);
    // Warm up: the hub's tasks, the tenant cache, allocator arenas.
    let warm = raw(&s, Some(&f.alice), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "ws::memory_per_idle_connection"])
        .env(CHILD, format!("{url}|{n}"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while s.ws.connections() < n + 1 {
        assert!(
            Instant::now() < deadline,
            "{} connected",
            s.ws.connections()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib();
    child.kill().unwrap();
    child.wait().unwrap();
    drop(warm);
    eprintln!(
        "{n} idle connections, {buffer} B buffers: server RSS +{} KiB, {:.1} KiB per connection",
        after - before,
        (after - before) as f64 / n as f64
    );
}

#[tokio::test]
async fn websocket_traffic_shows_in_metrics() {
    two_users_chat(Codec::Json).await;
    let s = Server::start().await;
    let text = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "caas_ws_connections",
        "caas_ws_frames_in_total",
        "caas_ws_deliveries_total",
        "caas_ws_frames_per_write_bucket{le=\"1\"}",
        "caas_ws_frames_out_total",
    ] {
        assert!(text.contains(series), "{series} missing from /metrics");
    }
}

#[tokio::test]
async fn a_suspended_tenant_or_a_missing_user_is_refused_before_the_upgrade() {
    let s = Server::start().await;
    let f = fixture(&s, json!({})).await;
    let status = |r: Result<Raw, tungstenite::Error>| match r {
        Err(tungstenite::Error::Http(res)) => {
            let body: Value = serde_json::from_slice(res.body().as_deref().unwrap()).unwrap();
            (
                res.status().as_u16(),
                body["code"].as_str().unwrap().to_owned(),
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    };
    // A validly signed token whose user was never created.
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(f.alice.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let tenant = claims["tenant"].as_str().unwrap().to_owned();
    let ghost = crate::server::mint_with(
        &crate::server::SIGNING_SEED,
        &tenant,
        "ghost",
        caas_core::time::Timestamp::from_secs(claims["iat"].as_u64().unwrap()),
    );
    assert_eq!(
        status(raw(&s, Some(&ghost), None).await),
        (401, "unauthenticated".to_owned())
    );
    let r = s
        .call(Method::GET, "/v1/conversations", Some(&ghost), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);

    // Suspension refuses the upgrade as REST refuses requests.
    let r = s
        .call(
            Method::DELETE,
            &format!("/v1/tenants/{tenant}"),
            Some(&s.operator),
            None,
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let rest = s
        .call(Method::GET, "/v1/conversations", Some(&f.alice), None)
        .await;
    assert_eq!(rest.status, StatusCode::FORBIDDEN);
    assert_eq!(
        status(raw(&s, Some(&f.alice), None).await),
        (403, "forbidden".to_owned())
    );
}

#[tokio::test]
async fn protocol_violations_get_a_close_frame_with_their_code() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let s = Server::start().await;
    let f = fixture(&s, json!({})).await;

    let mut ws = raw(&s, Some(&f.alice), Some("caas.v1.json")).await.unwrap();
    ws.send(Message::Frame(Frame::message(
        vec![0xff, 0xfe, 0x41],
        OpCode::Data(Data::Text),
        true,
    )))
    .await
    .unwrap();
    assert_eq!(close_of(&mut ws).await.0, 1007, "text that is not UTF-8");

    let mut ws = raw(&s, Some(&f.alice), Some("caas.v1.json")).await.unwrap();
    let mut reserved = Frame::message(b"{}".to_vec(), OpCode::Data(Data::Text), true);
    reserved.header_mut().rsv1 = true;
    ws.send(Message::Frame(reserved)).await.unwrap();
    assert_eq!(close_of(&mut ws).await.0, 1002, "reserved bits");

    // An unmasked client frame, written by hand after a hand-made handshake.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "GET /v1/ws HTTP/1.1\r\nhost: caas\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nauthorization: Bearer {}\r\n\r\n",
        f.alice
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 101"));
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut frames = got[end..].to_vec();
    tcp.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    // Read frames until the close frame (events such as presence may come first).
    let code = loop {
        if frames.len() >= 4 {
            // Server frames are unmasked; events fit a 16-bit length here.
            let (len, at) = match frames[1] & 0x7f {
                126 => (usize::from(u16::from_be_bytes([frames[2], frames[3]])), 4),
                127 => panic!("no frame here is that large"),
                n => (usize::from(n), 2),
            };
            if frames.len() >= at + len {
                if frames[0] & 0x0f == 0x8 {
                    break u16::from_be_bytes([frames[at], frames[at + 1]]);
                }
                frames.drain(..at + len);
                continue;
            }
        }
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed without a close frame");
        frames.extend_from_slice(&buf[..n]);
    };
    assert_eq!(code, 1002, "an unmasked client frame");
}

async fn pins_receipts_and_presence_lookups(codec: Codec) {
    use caas_transport::ws::frames::{PinRequest, PinsRequest, PresenceQuery, ReceiptsRequest};
    let s = Server::start().await;
    let f = fixture(&s, json!({})).await;
    let (alice, _alice_events) = client(&s, &f.alice, codec).await;
    let (bob, _bob_events) = client(&s, &f.bob, codec).await;
    let sent = alice.send_text(&f.conv, &k("p-1"), "pin me").await.unwrap();
    let pin = PinRequest {
        conversation_id: f.conv.clone(),
        message_id: sent.message_id.clone(),
    };
    // Alice owns the group (an admin); Bob is a plain member.
    let refused = bob.request(Request::Pin(pin.clone())).await.unwrap_err();
    assert_eq!(refused.code(), Some("forbidden"), "{refused}");
    let pinned = alice.request(Request::Pin(pin.clone())).await.unwrap();
    assert!(
        matches!(&pinned, AckResult::Message(m) if m.message_id == sent.message_id && m.seq == sent.seq),
        "{pinned:?}"
    );
    let pins = || {
        Request::Pins(PinsRequest {
            conversation_id: f.conv.clone(),
        })
    };
    let AckResult::Messages(list) = bob.request(pins()).await.unwrap() else {
        panic!("a list of messages")
    };
    assert_eq!(list.messages.len(), 1);
    assert_eq!(list.messages[0].id, sent.message_id);
    alice.request(Request::Unpin(pin)).await.unwrap();
    let AckResult::Messages(list) = bob.request(pins()).await.unwrap() else {
        panic!("a list of messages")
    };
    assert!(list.messages.is_empty(), "an empty list stays a list");

    bob.request(Request::Read(ReadRequest {
        conversation_id: f.conv.clone(),
        seq: sent.seq,
        delivered_only: false,
    }))
    .await
    .unwrap();
    let AckResult::Receipts(r) = alice
        .request(Request::Receipts(ReceiptsRequest {
            conversation_id: f.conv.clone(),
        }))
        .await
        .unwrap()
    else {
        panic!("receipts")
    };
    let bobs = r
        .receipts
        .iter()
        .find(|r| r.user.as_str() == "bob")
        .expect("bob's receipt");
    assert_eq!(bobs.read, sent.seq);

    let AckResult::Presences(p) = alice
        .request(Request::PresenceOf(PresenceQuery {
            users: vec![
                UserId::parse("bob").unwrap(),
                UserId::parse("carol").unwrap(),
            ],
        }))
        .await
        .unwrap()
    else {
        panic!("presences")
    };
    let status: Vec<_> = p
        .presences
        .iter()
        .map(|p| (p.user.as_str(), p.status))
        .collect();
    assert_eq!(
        status,
        [
            ("bob", PresenceStatus::Online),
            ("carol", PresenceStatus::Offline)
        ]
    );
    // The eve of another conversation reads none of it.
    let (eve, _) = client(&s, &f.eve, codec).await;
    let refused = eve.request(pins()).await.unwrap_err();
    assert_eq!(refused.code(), Some("forbidden"), "{refused}");
}

#[tokio::test]
async fn pins_receipts_and_presence_lookups_over_json() {
    pins_receipts_and_presence_lookups(Codec::Json).await;
}

#[tokio::test]
async fn pins_receipts_and_presence_lookups_over_protobuf() {
    pins_receipts_and_presence_lookups(Codec::Proto).await;
}

#[tokio::test]
async fn media_requests_over_json_with_the_earlier_names_and_over_protobuf() {
    let s = Server::start().await;
    let f = fixture(&s, json!({})).await;
    let mut alice = raw(&s, Some(&f.alice), Some("caas.v1.json")).await.unwrap();
    send_json(
        &mut alice,
        json!({"type": "media:request-upload", "ref": "u", "conversation_id": f.conv,
            "content_type": "text/plain", "size": 5}),
    )
    .await;
    let ack = reply(&mut alice).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let blob = ack["result"]["blob_id"].as_str().unwrap().to_owned();
    let upload_url = ack["result"]["upload_url"].as_str().unwrap().to_owned();
    assert!(upload_url.starts_with("http://"), "{upload_url}");
    let put = s
        .http
        .put(&upload_url)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    send_json(
        &mut alice,
        json!({"type": "media_complete", "ref": "c", "blob_id": blob}),
    )
    .await;
    let ack = reply(&mut alice).await;
    assert_eq!(ack["result"]["media"]["size"], 5, "{ack}");

    // Bob, a member, over protobuf: a download URL that serves the bytes; his
    // delete is refused (only the uploader deletes).
    let (bob, _) = client(&s, &f.bob, Codec::Proto).await;
    let request = caas_transport::ws::frames::MediaRequest {
        blob_id: caas_core::ids::BlobId::parse(&blob).unwrap(),
    };
    let Ok(AckResult::Download(d)) = bob.request(Request::MediaUrl(request.clone())).await else {
        panic!("a download URL")
    };
    let got = s.http.get(&d.url).send().await.unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"hello");
    match bob.request(Request::MediaDelete(request.clone())).await {
        Err(ClientError::Server { code, .. }) => assert_eq!(code, "forbidden"),
        other => panic!("expected forbidden, got {other:?}"),
    }
    let Ok(AckResult::Upload(u)) = bob
        .request(Request::MediaUpload(
            caas_transport::ws::frames::MediaUploadRequest {
                conversation_id: f.conv.clone(),
                content_type: "image/png".into(),
                size: 3,
                sha256: None,
                name: None,
            },
        ))
        .await
    else {
        panic!("an upload ticket")
    };
    assert_eq!(u.upload_headers["content-type"], "image/png");

    send_json(
        &mut alice,
        json!({"type": "media:delete", "ref": "d", "blob_id": blob}),
    )
    .await;
    let ack = reply(&mut alice).await;
    assert_eq!(
        (&ack["ok"], &ack["result"]),
        (&json!(true), &json!({})),
        "{ack}"
    );
    send_json(
        &mut alice,
        json!({"type": "media:get-download-url", "ref": "g", "blob_id": blob}),
    )
    .await;
    let ack = reply(&mut alice).await;
    assert_eq!(ack["error"]["code"], "not_found", "{ack}");
}
