//! The shortest true story of the caas API: a host application embeds caas-core
//! in-process on the memory backends, creates a tenant, three users, a group and a
//! direct conversation, sends, edits, reacts and reads, and prints the events each
//! user receives.
//!
//! Run: `cargo run --example quickstart`

use std::collections::BTreeMap;
use std::time::Duration;

use caas::core::events::{Event, EventPayload};
use caas::core::ids::{ClientMsgId, UserId};
use caas::core::model::{ConversationKind, ReceiptKind, TenantSettings};
use caas::core::ports::BusMessage;
use caas::core::service::{NewConversation, SendMessage};
use caas::{Caas, Config, Principal};

fn describe(e: &Event) -> String {
    match &e.payload {
        EventPayload::MessageCreated { message } => format!(
            "message.created  #{} from {}: {:?}",
            message.seq,
            message.sender,
            message.body.as_deref().unwrap_or("")
        ),
        EventPayload::MessageEdited { message } => format!(
            "message.edited   #{} now {:?} (was {:?})",
            message.seq,
            message.body.as_deref().unwrap_or(""),
            message.edits.last().map(|e| e.body.as_str()).unwrap_or("")
        ),
        EventPayload::ReactionAdded {
            seq,
            user_id,
            emoji,
            ..
        } => {
            format!("reaction.added   #{seq} {emoji} by {user_id}")
        }
        EventPayload::ReceiptUpdated {
            user_id,
            receipt,
            seq,
            ..
        } => {
            format!("receipt.updated  {user_id} {receipt:?} up to #{seq}")
        }
        EventPayload::ConversationCreated { conversation } => format!(
            "conversation.created {} ({})",
            conversation.name.as_deref().unwrap_or("direct"),
            conversation.kind.as_str()
        ),
        EventPayload::Typing {
            user_id, typing, ..
        } => format!("typing           {user_id} typing={typing}"),
        other => other.kind().to_owned(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> caas::Result<()> {
    let caas = Caas::new(caas::storage::memory::backends(), Config::default());
    // Subscribe before acting, as a transport would, to see every event.
    let mut bus = caas.subscribe().await?;

    // The operator creates a tenant; the tenant's server creates users.
    let tenant = caas
        .create_tenant(&Principal::operator(), "acme", TenantSettings::default())
        .await?;
    let server = Principal::tenant_server(tenant.id.clone());
    let (alice, bob, carol) = (
        UserId::parse("alice")?,
        UserId::parse("bob")?,
        UserId::parse("carol")?,
    );
    for (id, name) in [(&alice, "Alice"), (&bob, "Bob"), (&carol, "Carol")] {
        caas.upsert_user(&server, id, name, Default::default())
            .await?;
    }
    let as_alice = Principal::user(tenant.id.clone(), alice.clone());
    let as_bob = Principal::user(tenant.id.clone(), bob.clone());
    let as_carol = Principal::user(tenant.id.clone(), carol.clone());

    // A group and a direct conversation.
    let group = caas
        .create_conversation(
            &as_alice,
            NewConversation {
                kind: ConversationKind::Group,
                members: vec![bob.clone(), carol.clone()],
                name: Some("launch".into()),
                attributes: Default::default(),
            },
        )
        .await?
        .into_inner();
    let dm = caas
        .create_conversation(
            &as_bob,
            NewConversation {
                kind: ConversationKind::Direct,
                members: vec![carol.clone()],
                name: None,
                attributes: Default::default(),
            },
        )
        .await?
        .into_inner();

    // Send (a retry returns the same message), edit, react, read.
    let key = |k: &str| ClientMsgId::parse(k);
    caas.typing(&as_alice, &group.id, true).await?;
    let hello = caas
        .send_message(
            &as_alice,
            &group.id,
            SendMessage::text(key("a-1")?, "Launch is on Tuesdya"),
        )
        .await?;
    let retry = caas
        .send_message(
            &as_alice,
            &group.id,
            SendMessage::text(key("a-1")?, "Launch is on Tuesdya"),
        )
        .await?;
    assert!(retry.duplicate && retry.message.id == hello.message.id);
    caas.edit_message(
        &as_alice,
        &group.id,
        &hello.message.id,
        "Launch is on Tuesday",
    )
    .await?;
    caas.send_message(&as_bob, &group.id, SendMessage::text(key("b-1")?, "Ready!"))
        .await?;
    caas.react(&as_carol, &group.id, &hello.message.id, "🚀", true)
        .await?;
    caas.mark(&as_carol, &group.id, ReceiptKind::Read, hello.message.seq)
        .await?;
    caas.send_message(
        &as_bob,
        &dm.id,
        SendMessage::text(key("b-2")?, "Coffee after?"),
    )
    .await?;

    // Route what the bus carried to each user, as the WebSocket server does.
    let mut inbox: BTreeMap<UserId, Vec<String>> = BTreeMap::new();
    while let Ok(Some(BusMessage::Event(e))) =
        tokio::time::timeout(Duration::from_millis(50), bus.next()).await
    {
        for user in e.audience.iter() {
            inbox.entry(user.clone()).or_default().push(describe(&e));
        }
    }
    for (user, events) in &inbox {
        println!("{user} received {} events:", events.len());
        for e in events {
            println!("  {e}");
        }
    }

    // What each user's conversation list says now.
    println!();
    for (name, p) in [("alice", &as_alice), ("bob", &as_bob), ("carol", &as_carol)] {
        for s in caas.list_conversations(p, 50, None).await?.items {
            println!(
                "{name}: {:<8} last #{} unread {}",
                s.conversation.name.as_deref().unwrap_or("direct"),
                s.last_seq,
                s.unread_count
            );
        }
    }
    Ok(())
}
