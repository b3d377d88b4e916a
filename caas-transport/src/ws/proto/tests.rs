//! Every frame type through both codecs, and the protobuf bytes that the
//! hand-written prost messages (before the code was generated) produced.

use std::collections::BTreeSet;
use std::sync::Arc;

use caas_core::events::{Event, EventPayload};
use caas_core::ids::{
    BlobId, ClientMsgId, ConversationId, CorrelationId, Cursor, DeviceId, MessageId, Seq, TenantId,
    UserId,
};
use caas_core::model;
use caas_core::time::Timestamp;

use prost::Message as _;

use super::pb;
use crate::ws::codec::{self, Encoded, FrameError};
use crate::ws::frames::{
    self, Ack, AckResult, ClientFrame, Codec, ErrorBody, ErrorFrame, Request, ServerFrame,
    WireEvent,
};

fn conv() -> ConversationId {
    ConversationId::parse("c_1").unwrap()
}

fn msg_id() -> MessageId {
    MessageId::parse("m_1").unwrap()
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn at(n: u64) -> Timestamp {
    Timestamp::from_nanos(1_800_000_000_000_000_000 + n)
}

fn attributes() -> model::Attributes {
    [
        ("public".to_owned(), serde_json::json!(true)),
        (
            "topic".to_owned(),
            serde_json::json!({"lang": "en", "tags": [1, 2]}),
        ),
    ]
    .into_iter()
    .collect()
}

/// A message with every field set, so every field crosses both codecs.
fn full_message() -> model::Message {
    let mut m = model::NewMessage {
        tenant: TenantId::parse("t").unwrap(),
        conversation: conv(),
        id: msg_id(),
        sender: user("alice"),
        client_msg_id: ClientMsgId::parse("k-1").unwrap(),
        body: Some("hi".into()),
        ciphertext: Some(model::Ciphertext {
            algorithm: "x3dh-dr-v1".into(),
            data: "AAEC".into(),
        }),
        attachments: vec![
            model::Attachment {
                blob_id: BlobId::parse("b_1").unwrap(),
                content_type: "image/png".into(),
                size: 42,
                name: Some("cat.png".into()),
            },
            model::Attachment {
                blob_id: BlobId::parse("b_2").unwrap(),
                content_type: "text/plain".into(),
                size: 0,
                name: None,
            },
        ],
        reply_to: Some(MessageId::parse("m_0").unwrap()),
        forwarded_from: Some(model::ForwardRef {
            conversation_id: ConversationId::parse("c_0").unwrap(),
            message_id: MessageId::parse("m_9").unwrap(),
        }),
        mentions: vec![user("bob"), user("carol")],
        created_at: at(123_456_789),
    }
    .into_message(Seq(18));
    // Several emoji, so the order of the map's entries on the wire shows.
    m.apply_reaction(&user("carol"), "🎉", true);
    m.apply_reaction(&user("bob"), "👍", true);
    m.apply_reaction(&user("alice"), "👍", true);
    m.apply_reaction(&user("bob"), "a", true);
    m.apply_edit("hi!".into(), at(2_000_000_000));
    m.apply_edit("hi!!".into(), at(3_000_000_000));
    m.pinned = Some(model::Pin {
        pinned_by: user("bob"),
        pinned_at: at(4),
    });
    m
}

/// A deleted message: no body, a tombstone.
fn deleted_message() -> model::Message {
    let mut m = model::NewMessage {
        tenant: TenantId::parse("t").unwrap(),
        conversation: conv(),
        id: MessageId::parse("m_2").unwrap(),
        sender: user("alice"),
        client_msg_id: ClientMsgId::parse("k-2").unwrap(),
        body: Some("bye".into()),
        ciphertext: None,
        attachments: Vec::new(),
        reply_to: None,
        forwarded_from: None,
        mentions: Vec::new(),
        created_at: at(5),
    }
    .into_message(Seq(19));
    m.apply_delete(user("alice"), at(6));
    m
}

fn conversation(kind: model::ConversationKind) -> model::Conversation {
    model::Conversation {
        tenant: TenantId::parse("t").unwrap(),
        id: conv(),
        kind,
        name: Some("general".into()),
        attributes: attributes(),
        created_by: Some(user("alice")),
        direct_key: None,
        created_at: at(7),
    }
}

fn member(role: model::Role, muted: bool, banned: bool) -> model::Member {
    model::Member {
        conversation: conv(),
        user: user("bob"),
        role,
        muted,
        banned,
        joined_at: at(8),
    }
}

fn frame(reference: &str, request: Request) -> ClientFrame {
    ClientFrame {
        reference: reference.into(),
        request,
    }
}

/// Named client frames: at least one of every [`Request`] variant, with optional
/// fields both set and absent.
pub(super) fn requests() -> Vec<(&'static str, ClientFrame)> {
    let reaction = frames::ReactionRequest {
        conversation_id: conv(),
        message_id: msg_id(),
        emoji: "👍".into(),
    };
    let m = full_message();
    vec![
        (
            "send",
            frame(
                "1",
                Request::Send(frames::SendRequest {
                    conversation_id: conv(),
                    client_msg_id: ClientMsgId::parse("m-42").unwrap(),
                    body: Some("hi".into()),
                    ciphertext: m.ciphertext.clone(),
                    attachments: m.attachments.clone(),
                    reply_to: m.reply_to.clone(),
                    mentions: m.mentions.clone(),
                }),
            ),
        ),
        (
            "send_minimal",
            frame(
                "2",
                Request::Send(frames::SendRequest {
                    body: None,
                    ..frames::SendRequest::text(conv(), ClientMsgId::parse("m-43").unwrap(), "")
                }),
            ),
        ),
        (
            "edit",
            frame(
                "3",
                Request::Edit(frames::EditRequest {
                    conversation_id: conv(),
                    message_id: msg_id(),
                    body: "hi!".into(),
                }),
            ),
        ),
        (
            "delete",
            frame(
                "4",
                Request::Delete(frames::DeleteRequest {
                    conversation_id: conv(),
                    message_id: msg_id(),
                }),
            ),
        ),
        ("react", frame("5", Request::React(reaction.clone()))),
        ("unreact", frame("6", Request::Unreact(reaction))),
        (
            "read",
            frame(
                "7",
                Request::Read(frames::ReadRequest {
                    conversation_id: conv(),
                    seq: Seq(18),
                    delivered_only: true,
                }),
            ),
        ),
        (
            "typing",
            frame(
                "8",
                Request::Typing(frames::TypingRequest {
                    conversation_id: conv(),
                    typing: false,
                }),
            ),
        ),
        (
            "presence",
            frame(
                "9",
                Request::Presence(frames::PresenceRequest {
                    status: model::PresenceStatus::Away,
                }),
            ),
        ),
        (
            "call_signal",
            frame(
                "10",
                Request::CallSignal(frames::CallSignalRequest {
                    conversation_id: conv(),
                    to: Some(user("bob")),
                    signal: serde_json::json!({"sdp": "v=0", "type": "offer"}),
                }),
            ),
        ),
        (
            "sync",
            frame(
                "11",
                Request::Sync(frames::SyncRequest {
                    since: Some(Cursor(7)),
                    limit: Some(100),
                }),
            ),
        ),
        (
            "sync_empty",
            frame("12", Request::Sync(frames::SyncRequest::default())),
        ),
        ("ping", frame("13", Request::Ping(frames::PingRequest {}))),
        (
            "pin",
            frame(
                "23",
                Request::Pin(frames::PinRequest {
                    conversation_id: conv(),
                    message_id: msg_id(),
                }),
            ),
        ),
        (
            "unpin",
            frame(
                "24",
                Request::Unpin(frames::PinRequest {
                    conversation_id: conv(),
                    message_id: msg_id(),
                }),
            ),
        ),
        (
            "pins",
            frame(
                "25",
                Request::Pins(frames::PinsRequest {
                    conversation_id: conv(),
                }),
            ),
        ),
        (
            "receipts",
            frame(
                "26",
                Request::Receipts(frames::ReceiptsRequest {
                    conversation_id: conv(),
                }),
            ),
        ),
        (
            "presence_of",
            frame(
                "27",
                Request::PresenceOf(frames::PresenceQuery {
                    users: vec![
                        UserId::parse("bob").unwrap(),
                        UserId::parse("carol").unwrap(),
                    ],
                }),
            ),
        ),
        (
            "media_upload",
            frame(
                "28",
                Request::MediaUpload(frames::MediaUploadRequest {
                    conversation_id: conv(),
                    content_type: "image/png".into(),
                    size: 1024,
                    sha256: Some("ab".repeat(32)),
                    name: Some("cat.png".into()),
                }),
            ),
        ),
        (
            "media_complete",
            frame("29", Request::MediaComplete(media_request())),
        ),
        ("media_url", frame("30", Request::MediaUrl(media_request()))),
        (
            "media_delete",
            frame("31", Request::MediaDelete(media_request())),
        ),
    ]
}

fn media_request() -> frames::MediaRequest {
    frames::MediaRequest {
        blob_id: caas_core::ids::BlobId::parse("b_1").unwrap(),
    }
}

fn ok(reference: &str, result: AckResult) -> Ack {
    Ack {
        reference: reference.into(),
        outcome: Ok(result),
    }
}

/// Named acks: every shape of [`AckResult`], and a failure.
pub(super) fn acks() -> Vec<(&'static str, Ack)> {
    vec![
        (
            "ack_send",
            ok(
                "1",
                AckResult::Sent(frames::SentResult {
                    message_id: msg_id(),
                    conversation_id: conv(),
                    seq: Seq(18),
                    created_at: at(9),
                    duplicate: false,
                }),
            ),
        ),
        (
            "ack_edit",
            ok(
                "3",
                AckResult::Edited(frames::EditedResult {
                    message_id: msg_id(),
                    seq: Seq(18),
                    edited_at: at(10),
                }),
            ),
        ),
        (
            "ack_read",
            ok(
                "7",
                AckResult::Receipt(frames::ReceiptResult {
                    conversation_id: conv(),
                    delivered: Seq(18),
                    read: Seq(17),
                }),
            ),
        ),
        (
            "ack_typing",
            ok(
                "8",
                AckResult::Typing(frames::TypingResult { forwarded: true }),
            ),
        ),
        (
            "ack_presence",
            ok(
                "9",
                AckResult::Presence(frames::PresenceResult {
                    status: model::PresenceStatus::Online,
                    last_seen: Some(at(11)),
                }),
            ),
        ),
        (
            "ack_call_signal",
            ok("10", AckResult::Done(frames::DoneResult {})),
        ),
        (
            "ack_sync",
            ok(
                "11",
                AckResult::Synced(frames::SyncedResult {
                    next_cursor: Cursor(42),
                    has_more: true,
                    count: 3,
                }),
            ),
        ),
        (
            "ack_ping",
            ok(
                "13",
                AckResult::Pong(frames::PongResult {
                    server_time: at(12),
                }),
            ),
        ),
        (
            "ack_message",
            ok(
                "17",
                AckResult::Message(frames::MessageRef {
                    message_id: msg_id(),
                    seq: Seq(18),
                }),
            ),
        ),
        (
            "ack_pins",
            ok(
                "18",
                AckResult::Messages(frames::MessagesResult {
                    messages: vec![full_message()],
                }),
            ),
        ),
        (
            "ack_pins_none",
            ok(
                "19",
                AckResult::Messages(frames::MessagesResult { messages: vec![] }),
            ),
        ),
        (
            "ack_receipts",
            ok(
                "20",
                AckResult::Receipts(frames::ReceiptsResult {
                    receipts: vec![model::Receipt {
                        conversation: conv(),
                        user: UserId::parse("bob").unwrap(),
                        delivered: Seq(18),
                        read: Seq(17),
                        updated_at: at(13),
                    }],
                }),
            ),
        ),
        (
            "ack_receipts_none",
            ok(
                "21",
                AckResult::Receipts(frames::ReceiptsResult { receipts: vec![] }),
            ),
        ),
        (
            "ack_presences",
            ok(
                "22",
                AckResult::Presences(frames::PresencesResult {
                    presences: vec![
                        model::Presence {
                            user: UserId::parse("bob").unwrap(),
                            status: model::PresenceStatus::Away,
                            last_seen: Some(at(14)),
                        },
                        model::Presence {
                            user: UserId::parse("carol").unwrap(),
                            status: model::PresenceStatus::Offline,
                            last_seen: None,
                        },
                    ],
                }),
            ),
        ),
        (
            "ack_media_upload",
            ok(
                "28",
                AckResult::Upload(frames::UploadResult {
                    blob_id: caas_core::ids::BlobId::parse("b_1").unwrap(),
                    upload_url: "http://127.0.0.1:8080/v1/blobs/t_1/b_1?expires=1&signature=x"
                        .into(),
                    upload_headers: [("content-type".to_owned(), "image/png".to_owned())].into(),
                    expires_at: at(5),
                }),
            ),
        ),
        (
            "ack_media_complete",
            ok(
                "29",
                AckResult::Media(frames::MediaResult {
                    media: model::Media {
                        tenant: caas_core::ids::TenantId::parse("t_1").unwrap(),
                        id: caas_core::ids::BlobId::parse("b_1").unwrap(),
                        owner: user("alice"),
                        conversation_id: conv(),
                        content_type: "image/png".into(),
                        size: 1024,
                        sha256: Some("ab".repeat(32)),
                        name: None,
                        created_at: at(1),
                        expires_at: at(5),
                        completed_at: Some(at(2)),
                        shared_in: vec![ConversationId::parse("c_2").unwrap()],
                    },
                }),
            ),
        ),
        (
            "ack_media_url",
            ok(
                "30",
                AckResult::Download(frames::DownloadResult {
                    url: "http://127.0.0.1:8080/v1/blobs/t_1/b_1?expires=9&signature=y".into(),
                    expires_at: at(9),
                }),
            ),
        ),
        (
            "ack_failed",
            Ack {
                reference: "15".into(),
                outcome: Err(ErrorBody {
                    code: "rate_limited".into(),
                    message: "slow down".into(),
                    retry_after_ms: Some(250),
                }),
            },
        ),
    ]
}

/// Named error frames: with a `ref` and a retry, and a bare `resync` notice.
pub(super) fn errors() -> Vec<(&'static str, ErrorFrame)> {
    vec![
        (
            "error_rate_limited",
            ErrorFrame {
                reference: Some("16".into()),
                code: "rate_limited".into(),
                message: "over the frame rate".into(),
                retry_after_ms: Some(1000),
                resync: false,
            },
        ),
        (
            "error_resync",
            ErrorFrame {
                reference: None,
                code: "resync".into(),
                message: "events were lost".into(),
                retry_after_ms: None,
                resync: true,
            },
        ),
    ]
}

/// Named events: at least one of every [`EventPayload`] kind, live and from `sync`.
pub(super) fn events() -> Vec<(&'static str, Event, Option<Cursor>)> {
    let payloads = vec![
        (
            "event_message_created",
            EventPayload::MessageCreated {
                message: full_message(),
            },
        ),
        (
            "event_message_edited",
            EventPayload::MessageEdited {
                message: deleted_message(),
            },
        ),
        (
            "event_message_deleted",
            EventPayload::MessageDeleted {
                conversation_id: conv(),
                message_id: msg_id(),
                seq: Seq(18),
                deleted_by: user("alice"),
            },
        ),
        (
            "event_message_pinned",
            EventPayload::MessagePinned {
                conversation_id: conv(),
                message_id: msg_id(),
                seq: Seq(18),
                by: user("bob"),
                pinned: true,
            },
        ),
        (
            "event_reaction_added",
            EventPayload::ReactionAdded {
                conversation_id: conv(),
                message_id: msg_id(),
                seq: Seq(18),
                user_id: user("bob"),
                emoji: "👍".into(),
            },
        ),
        (
            "event_reaction_removed",
            EventPayload::ReactionRemoved {
                conversation_id: conv(),
                message_id: msg_id(),
                seq: Seq(18),
                user_id: user("bob"),
                emoji: "👍".into(),
            },
        ),
        (
            "event_receipt_updated",
            EventPayload::ReceiptUpdated {
                conversation_id: conv(),
                user_id: user("bob"),
                receipt: model::ReceiptKind::Read,
                seq: Seq(18),
            },
        ),
        (
            "event_conversation_created",
            EventPayload::ConversationCreated {
                conversation: model::Conversation {
                    kind: model::ConversationKind::Direct,
                    name: None,
                    attributes: model::Attributes::new(),
                    created_by: None,
                    direct_key: Some("alice|bob".into()),
                    ..conversation(model::ConversationKind::Direct)
                },
            },
        ),
        (
            "event_conversation_updated",
            EventPayload::ConversationUpdated {
                conversation: conversation(model::ConversationKind::Channel),
            },
        ),
        (
            "event_member_joined",
            EventPayload::MemberJoined {
                conversation_id: conv(),
                member: member(model::Role::Member, false, false),
            },
        ),
        (
            "event_member_left",
            EventPayload::MemberLeft {
                conversation_id: conv(),
                user_id: user("bob"),
                by: user("alice"),
            },
        ),
        (
            "event_member_updated",
            EventPayload::MemberUpdated {
                conversation_id: conv(),
                member: member(model::Role::Moderator, true, true),
            },
        ),
        (
            "event_typing",
            EventPayload::Typing {
                conversation_id: conv(),
                user_id: user("bob"),
                typing: true,
            },
        ),
        (
            "event_presence",
            EventPayload::Presence {
                user_id: user("bob"),
                status: model::PresenceStatus::Offline,
                last_seen: Some(at(13)),
            },
        ),
        (
            "event_call_signal",
            EventPayload::CallSignal {
                conversation_id: conv(),
                from: user("alice"),
                from_device: Some(DeviceId::parse("d_1").unwrap()),
                to: None,
                signal: serde_json::json!({"candidate": "a=1", "type": "ice"}),
            },
        ),
        (
            "event_user_updated",
            EventPayload::UserUpdated {
                user: model::User {
                    tenant: TenantId::parse("t").unwrap(),
                    id: user("bob"),
                    name: "Bob".into(),
                    attributes: attributes(),
                    created_at: at(14),
                    updated_at: at(15),
                },
            },
        ),
        (
            "event_tenant_updated",
            EventPayload::TenantUpdated {
                tenant_id: TenantId::parse("t").unwrap(),
                status: model::TenantStatus::Suspended,
            },
        ),
    ];
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, (name, payload))| {
            let event = Event {
                tenant: TenantId::parse("t").unwrap(),
                correlation_id: CorrelationId::parse("r_1").unwrap(),
                at: at(1_000 + i as u64),
                audience: Arc::from(vec![user("bob")]),
                payload,
            };
            // Durable events also as `sync` sends them: with their cursor.
            let cursor =
                (!event.payload.is_ephemeral() && i % 2 == 0).then_some(Cursor(100 + i as u64));
            (name, event, cursor)
        })
        .collect()
}

fn binary(e: Encoded) -> Vec<u8> {
    match e {
        Encoded::Binary(b) => b,
        Encoded::Text(t) => panic!("protobuf gave text: {t}"),
    }
}

fn text(e: Encoded) -> String {
    match e {
        Encoded::Text(t) => t,
        Encoded::Binary(b) => panic!("JSON gave {} binary bytes", b.len()),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("golden bytes are hex"))
        .collect()
}

/// What a client decodes from an event the server sent.
fn wire(event: &Event, cursor: Option<Cursor>) -> WireEvent {
    WireEvent {
        cursor,
        at: event.at,
        correlation_id: Some(event.correlation_id.clone()),
        payload: event.payload.clone(),
    }
}

/// Every sample as protobuf bytes, by name.
fn encoded_samples() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, f) in requests() {
        out.push((name, binary(codec::encode_client(Codec::Proto, &f))));
    }
    for (name, a) in acks() {
        out.push((name, binary(codec::encode_ack(Codec::Proto, &a))));
    }
    for (name, e) in errors() {
        out.push((name, binary(codec::encode_error(Codec::Proto, &e))));
    }
    for (name, e, c) in events() {
        out.push((name, binary(codec::encode_event(Codec::Proto, &e, c))));
    }
    out
}

/// The variant names of an internally tagged enum as its serde derive lists them in
/// the error for an unknown tag, so the list follows the enum by construction.
fn serde_variants<T: serde::de::DeserializeOwned + std::fmt::Debug>(tag: &str) -> BTreeSet<String> {
    let err = serde_json::from_value::<T>(serde_json::json!({ tag: "?" }))
        .expect_err("`?` is no variant")
        .to_string();
    let (_, list) = err
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("serde's error lists the variants: {err}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_samples_cover_every_request_and_event_kind() {
    let requests: BTreeSet<String> = requests()
        .iter()
        .map(|(_, f)| f.request.kind().to_owned())
        .collect();
    // The earlier platform's `media:*` names are aliases, not kinds of their own.
    let variants: BTreeSet<String> = serde_variants::<Request>("type")
        .into_iter()
        .filter(|v| !v.contains(':'))
        .collect();
    assert_eq!(requests, variants);
    let kinds: BTreeSet<String> = events()
        .iter()
        .map(|(_, e, _)| e.payload.kind().to_owned())
        .collect();
    assert_eq!(kinds, serde_variants::<EventPayload>("kind"));
    // Every kind has its own message in the schema: none falls back to JSON text.
    for (name, event, cursor) in events() {
        let msg =
            pb::ServerFrame::decode(&*binary(codec::encode_event(Codec::Proto, &event, cursor)))
                .expect("an encoded event decodes");
        let Some(pb::server_frame::Frame::Event(pb::EventFrame { event: Some(e) })) = msg.frame
        else {
            panic!("{name}: not an event frame")
        };
        assert!(
            !matches!(e.payload, Some(pb::event::Payload::OtherJson(_)) | None),
            "{name} has no message of its own in caas.v1.proto"
        );
    }
}

#[test]
fn every_frame_type_round_trips_through_json_and_protobuf() {
    for (name, f) in requests() {
        let json = text(codec::encode_client(Codec::Json, &f));
        let proto = binary(codec::encode_client(Codec::Proto, &f));
        assert_eq!(
            codec::decode_client(Codec::Json, true, json.as_bytes()),
            Ok(f.clone()),
            "{name} (JSON)"
        );
        assert_eq!(
            codec::decode_client(Codec::Proto, false, &proto),
            Ok(f),
            "{name} (protobuf)"
        );
    }
    let server = |name: &str, json: Encoded, proto: Encoded, expected: ServerFrame| {
        let json = text(json);
        let proto = binary(proto);
        assert_eq!(
            codec::decode_server(Codec::Json, true, json.as_bytes()),
            Ok(expected.clone()),
            "{name} (JSON)"
        );
        assert_eq!(
            codec::decode_server(Codec::Proto, false, &proto),
            Ok(expected),
            "{name} (protobuf)"
        );
    };
    for (name, a) in acks() {
        server(
            name,
            codec::encode_ack(Codec::Json, &a),
            codec::encode_ack(Codec::Proto, &a),
            ServerFrame::Ack(a),
        );
    }
    for (name, e) in errors() {
        server(
            name,
            codec::encode_error(Codec::Json, &e),
            codec::encode_error(Codec::Proto, &e),
            ServerFrame::Error(e),
        );
    }
    for (name, e, c) in events() {
        server(
            name,
            codec::encode_event(Codec::Json, &e, c),
            codec::encode_event(Codec::Proto, &e, c),
            ServerFrame::Event { event: wire(&e, c) },
        );
    }
}

/// The protobuf bytes of every sample: those of frames that existed before
/// `caas.v1.proto` was compiled at build time are as the hand-written prost
/// messages wrote them; later frames (pins, receipts, presence lookups) are
/// recorded as first written. The code must read them into the same frames and
/// write the same bytes back: a changed byte is a changed wire.
const GOLDEN: &[(&str, &str)] = &[
    (
        "send",
        "0a013112640a03635f3112046d2d34321a02686922120a0a783364682d64722d76311204414145432a1b0a03625f311209696d6167652f706e67182a22076361742e706e672a110a03625f32120a746578742f706c61696e32036d5f303a03626f623a056361726f6c",
    ),
    ("send_minimal", "0a0132120b0a03635f3112046d2d3433"),
    ("edit", "0a01331a0f0a03635f3112036d5f311a03686921"),
    ("delete", "0a0134220a0a03635f3112036d5f31"),
    ("react", "0a01352a100a03635f3112036d5f311a04f09f918d"),
    ("unreact", "0a013632100a03635f3112036d5f311a04f09f918d"),
    ("read", "0a01373a090a03635f3110121801"),
    ("typing", "0a013842070a03635f311000"),
    ("presence", "0a01394a020802"),
    (
        "call_signal",
        "0a02313052280a03635f311203626f621a1c7b22736470223a22763d30222c2274797065223a226f66666572227d",
    ),
    ("sync", "0a0231315a0408071064"),
    ("sync_empty", "0a0231325a00"),
    ("ping", "0a0231336200"),
    (
        "ack_send",
        "0a1f0a013110011a180a036d5f311203635f311812208980d09de9ceb8fd183000",
    ),
    (
        "ack_edit",
        "0a180a013310011a110a036d5f311812288a80d09de9ceb8fd18",
    ),
    ("ack_read", "0a100a013710011a091203635f3138124011"),
    ("ack_typing", "0a090a013810011a025801"),
    ("ack_presence", "0a130a013910011a0c4803508b80d09de9ceb8fd18"),
    ("ack_call_signal", "0a080a02313010011a00"),
    ("ack_sync", "0a0e0a02313110011a06602a68017003"),
    ("ack_ping", "0a120a02313310011a0a788c80d09de9ceb8fd18"),
    (
        "ack_failed",
        "0a220a023135221c0a0c726174655f6c696d697465641209736c6f7720646f776e18fa01",
    ),
    (
        "error_rate_limited",
        "1a2a0a023136120c726174655f6c696d697465641a136f76657220746865206672616d65207261746520e807",
    ),
    (
        "error_resync",
        "1a1c1206726573796e631a106576656e74732077657265206c6f73742801",
    ),
    (
        "event_message_created",
        "12a5020aa202086410e887d09de9ceb8fd181a03725f31220f6d6573736167652e6372656174656452fd010a01741203635f311a036d5f3120122a05616c69636532036b2d313a046869212142120a0a783364682d64722d76311204414145434a1b0a03625f311209696d6167652f706e67182a22076361742e706e674a110a03625f32120a746578742f706c61696e52036d5f305a0a0a03635f3012036d5f396203626f6262056361726f6c6a0a0a016112050a03626f626a0f0a04f09f8e8912070a056361726f6c6a140a04f09f918d120c0a05616c6963650a03626f62720e0a0268691080a8a6d7f0ceb8fd18720f0a036869211080bc91b4f4ceb8fd187880bc91b4f4ceb8fd188a010f0a03626f62108480d09de9ceb8fd189001959abfd8e9ceb8fd18",
    ),
    (
        "event_message_edited",
        "125d0a5b10e987d09de9ceb8fd181a03725f31220e6d6573736167652e6564697465645a3a0a01741203635f311a036d5f3220132a05616c69636532036b2d328201110a05616c696365108680d09de9ceb8fd1890018580d09de9ceb8fd18",
    ),
    (
        "event_message_deleted",
        "12390a37086610ea87d09de9ceb8fd181a03725f31220f6d6573736167652e64656c6574656462130a03635f3112036d5f3118122205616c696365",
    ),
    (
        "event_message_pinned",
        "12360a3410eb87d09de9ceb8fd181a03725f31220e6d6573736167652e70696e6e65646a130a03635f3112036d5f3118122203626f622801",
    ),
    (
        "event_reaction_added",
        "123c0a3a086810ec87d09de9ceb8fd181a03725f31220e7265616374696f6e2e616464656472170a03635f3112036d5f3118122203626f622a04f09f918d",
    ),
    (
        "event_reaction_removed",
        "123c0a3a10ed87d09de9ceb8fd181a03725f3122107265616374696f6e2e72656d6f7665647a170a03635f3112036d5f3118122203626f622a04f09f918d",
    ),
    (
        "event_receipt_updated",
        "12350a33086a10ee87d09de9ceb8fd181a03725f31220f726563656970742e7570646174656482010e0a03635f311203626f6218022012",
    ),
    (
        "event_conversation_created",
        "12490a4710ef87d09de9ceb8fd181a03725f312214636f6e766572736174696f6e2e637265617465648a011f0a01741203635f3118013a09616c6963657c626f62408780d09de9ceb8fd18",
    ),
    (
        "event_conversation_updated",
        "1285010a8201086c10f087d09de9ceb8fd181a03725f312214636f6e766572736174696f6e2e757064617465649201580a01741203635f311803220767656e6572616c2a327b227075626c6963223a747275652c22746f706963223a7b226c616e67223a22656e222c2274616773223a5b312c325d7d7d3205616c696365408780d09de9ceb8fd18",
    ),
    (
        "event_member_joined",
        "12400a3e10f187d09de9ceb8fd181a03725f31220d6d656d6265722e6a6f696e65649a011d0a03635f3112160a03635f311203626f621804308880d09de9ceb8fd18",
    ),
    (
        "event_member_left",
        "12340a32086e10f287d09de9ceb8fd181a03725f31220b6d656d6265722e6c656674a201110a03635f311203626f621a05616c696365",
    ),
    (
        "event_member_updated",
        "12450a4310f387d09de9ceb8fd181a03725f31220e6d656d6265722e75706461746564aa01210a03635f31121a0a03635f311203626f62180320012801308880d09de9ceb8fd18",
    ),
    (
        "event_typing",
        "12280a2610f487d09de9ceb8fd181a03725f312206747970696e67b2010c0a03635f311203626f621801",
    ),
    (
        "event_presence",
        "122f0a2d10f587d09de9ceb8fd181a03725f31220870726573656e6365ba01110a03626f621001188d80d09de9ceb8fd18",
    ),
    (
        "event_call_signal",
        "12540a5210f687d09de9ceb8fd181a03725f31220b63616c6c2e7369676e616cc201330a03635f311205616c6963651a03645f312a207b2263616e646964617465223a22613d31222c2274797065223a22696365227d",
    ),
    (
        "event_user_updated",
        "12770a7510f787d09de9ceb8fd181a03725f31220c757365722e75706461746564ca01550a01741203626f621a03426f6222327b227075626c6963223a747275652c22746f706963223a7b226c616e67223a22656e222c2274616773223a5b312c325d7d7d288e80d09de9ceb8fd18308f80d09de9ceb8fd18",
    ),
    (
        "event_tenant_updated",
        "122b0a29087410f887d09de9ceb8fd181a03725f31220e74656e616e742e75706461746564d201050a01741002",
    ),
    ("pin", "0a0232336a0a0a03635f3112036d5f31"),
    ("unpin", "0a023234720a0a03635f3112036d5f31"),
    ("pins", "0a0232357a050a03635f31"),
    ("receipts", "0a0232368201050a03635f31"),
    ("presence_of", "0a0232378a010c0a03626f620a056361726f6c"),
    ("ack_message", "0a0f0a02313710011a070a036d5f311812"),
    (
        "ack_pins",
        "0a8d020a02313810011a8402820180020afd010a01741203635f311a036d5f3120122a05616c69636532036b2d313a046869212142120a0a783364682d64722d76311204414145434a1b0a03625f311209696d6167652f706e67182a22076361742e706e674a110a03625f32120a746578742f706c61696e52036d5f305a0a0a03635f3012036d5f396203626f6262056361726f6c6a0a0a016112050a03626f626a0f0a04f09f8e8912070a056361726f6c6a140a04f09f918d120c0a05616c6963650a03626f62720e0a0268691080a8a6d7f0ceb8fd18720f0a036869211080bc91b4f4ceb8fd187880bc91b4f4ceb8fd188a010f0a03626f62108480d09de9ceb8fd189001959abfd8e9ceb8fd18",
    ),
    ("ack_pins_none", "0a0b0a02313910011a03820100"),
    (
        "ack_receipts",
        "0a250a02323010011a1d8a011a0a180a03635f311203626f6218122011288d80d09de9ceb8fd18",
    ),
    ("ack_receipts_none", "0a0b0a02323110011a038a0100"),
    (
        "ack_presences",
        "0a290a02323210011a2192011e0a110a03626f621002188e80d09de9ceb8fd180a090a056361726f6c1001",
    ),
    (
        "media_upload",
        "0a02323892015e0a03635f311209696d6167652f706e671880082240616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261622a076361742e706e67",
    ),
    ("media_complete", "0a0232399a01050a03625f31"),
    ("media_url", "0a023330a201050a03625f31"),
    ("media_delete", "0a023331aa01050a03625f31"),
    (
        "ack_media_upload",
        "0a740a02323810011a6c9a0103625f31a2013c687474703a2f2f3132372e302e302e313a383038302f76312f626c6f62732f745f312f625f313f657870697265733d31267369676e61747572653d78aa01190a0c636f6e74656e742d747970651209696d6167652f706e67b0018580d09de9ceb8fd18",
    ),
    (
        "ack_media_complete",
        "0a96010a02323910011a8d01c20189010a03745f311203625f311a05616c6963652203635f312a09696d6167652f706e673080083a4061626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162488180d09de9ceb8fd18508580d09de9ceb8fd18588280d09de9ceb8fd186203635f32",
    ),
    (
        "ack_media_url",
        "0a520a02333010011a4ab0018980d09de9ceb8fd18ba013c687474703a2f2f3132372e302e302e313a383038302f76312f626c6f62732f745f312f625f313f657870697265733d39267369676e61747572653d79",
    ),
];

#[test]
fn the_bytes_of_the_hand_written_messages_are_unchanged() {
    let samples = encoded_samples();
    for (name, bytes) in &samples {
        let Some((_, golden)) = GOLDEN.iter().find(|(n, _)| n == name) else {
            panic!(
                "no golden bytes for {name}; if they are right, add (\"{name}\", \"{}\")",
                hex(bytes)
            )
        };
        assert_eq!(hex(bytes), *golden, "{name}: the encoding changed");
    }
    assert_eq!(
        samples.len(),
        GOLDEN.len(),
        "a golden sample is no longer built"
    );
    // And decoding the old bytes gives back the samples, whose encoding is above.
    let golden = |name: &str| unhex(GOLDEN.iter().find(|(n, _)| *n == name).expect("golden").1);
    for (name, f) in requests() {
        assert_eq!(
            codec::decode_client(Codec::Proto, false, &golden(name)),
            Ok(f),
            "{name}"
        );
    }
    for (name, a) in acks() {
        assert_eq!(
            codec::decode_server(Codec::Proto, false, &golden(name)),
            Ok(ServerFrame::Ack(a)),
            "{name}"
        );
    }
    for (name, e) in errors() {
        assert_eq!(
            codec::decode_server(Codec::Proto, false, &golden(name)),
            Ok(ServerFrame::Error(e)),
            "{name}"
        );
    }
    for (name, e, c) in events() {
        assert_eq!(
            codec::decode_server(Codec::Proto, false, &golden(name)),
            Ok(ServerFrame::Event { event: wire(&e, c) }),
            "{name}"
        );
    }
}

fn client_bytes(reference: &str, request: Option<pb::client_frame::Request>) -> Vec<u8> {
    pb::ClientFrame {
        r#ref: reference.into(),
        request,
    }
    .encode_to_vec()
}

#[test]
fn bad_client_frames_are_refused_with_their_ref() {
    let malformed = |r: Result<ClientFrame, FrameError>, reference: Option<&str>| {
        assert!(
            matches!(&r, Err(FrameError::Malformed { reference: got, .. }) if got.as_deref() == reference),
            "{r:?}"
        );
    };
    malformed(
        codec::decode_client(Codec::Proto, false, &[0xff, 0xff, 0xff]),
        None,
    );
    // Every cut of a valid frame is refused or read, never a panic.
    let send = unhex(GOLDEN[0].1);
    for end in 0..send.len() {
        let _ = codec::decode_client(Codec::Proto, false, &send[..end]);
    }
    assert!(matches!(
        codec::decode_client(Codec::Proto, false, &client_bytes("9", None)),
        Err(FrameError::Unknown { reference: Some(r), .. }) if r == "9"
    ));
    let bad_id = client_bytes(
        "3",
        Some(pb::client_frame::Request::Delete(pb::DeleteRequest {
            conversation_id: "c 1".into(),
            message_id: "m".into(),
        })),
    );
    malformed(
        codec::decode_client(Codec::Proto, false, &bad_id),
        Some("3"),
    );
    for status in [0, 4, -1] {
        let bad_status = client_bytes(
            "4",
            Some(pb::client_frame::Request::Presence(pb::PresenceRequest {
                status,
            })),
        );
        malformed(
            codec::decode_client(Codec::Proto, false, &bad_status),
            Some("4"),
        );
    }
    let bad_signal = client_bytes(
        "5",
        Some(pb::client_frame::Request::CallSignal(
            pb::CallSignalRequest {
                conversation_id: "c_1".into(),
                to: None,
                signal_json: "{not json".into(),
            },
        )),
    );
    malformed(
        codec::decode_client(Codec::Proto, false, &bad_signal),
        Some("5"),
    );
    // A string field that is not UTF-8 is not protobuf for this schema.
    let mut not_utf8 = client_bytes(
        "6",
        Some(pb::client_frame::Request::Ping(pb::PingRequest {})),
    );
    not_utf8[2] = 0xff;
    malformed(codec::decode_client(Codec::Proto, false, &not_utf8), None);
}

#[test]
fn bad_server_frames_are_refused() {
    let malformed = |bytes: &[u8]| {
        let r = codec::decode_server(Codec::Proto, false, bytes);
        assert!(
            matches!(
                r,
                Err(FrameError::Malformed {
                    reference: None,
                    ..
                })
            ),
            "{r:?}"
        );
    };
    malformed(&[0x0a, 0xff]);
    for (_, golden) in GOLDEN {
        let bytes = unhex(golden);
        for end in 0..bytes.len() {
            let _ = codec::decode_server(Codec::Proto, false, &bytes[..end]);
        }
    }
    let event = |payload: Option<pb::event::Payload>| {
        pb::ServerFrame {
            frame: Some(pb::server_frame::Frame::Event(pb::EventFrame {
                event: Some(pb::Event {
                    cursor: None,
                    at: 1,
                    correlation_id: String::new(),
                    kind: "typing".into(),
                    payload,
                }),
            })),
        }
        .encode_to_vec()
    };
    malformed(&event(None));
    malformed(&event(Some(pb::event::Payload::Typing(pb::TypingEvent {
        conversation_id: "c 1".into(),
        user_id: "bob".into(),
        typing: true,
    }))));
    malformed(&event(Some(pb::event::Payload::ReceiptUpdated(
        pb::ReceiptUpdated {
            conversation_id: "c_1".into(),
            user_id: "bob".into(),
            receipt: 0,
            seq: 1,
        },
    ))));
    malformed(&event(Some(pb::event::Payload::OtherJson("{}".into()))));
    // No correlation id is none, not an invalid one.
    let Ok(ServerFrame::Event { event: e }) = codec::decode_server(
        Codec::Proto,
        false,
        &event(Some(pb::event::Payload::Typing(pb::TypingEvent {
            conversation_id: "c_1".into(),
            user_id: "bob".into(),
            typing: true,
        }))),
    ) else {
        panic!("a typing event")
    };
    assert_eq!(e.correlation_id, None);
    for empty in [
        pb::ServerFrame { frame: None },
        pb::ServerFrame {
            frame: Some(pb::server_frame::Frame::Event(pb::EventFrame {
                event: None,
            })),
        },
    ] {
        assert!(matches!(
            codec::decode_server(Codec::Proto, false, &empty.encode_to_vec()),
            Err(FrameError::Unknown {
                reference: None,
                ..
            })
        ));
    }
}
