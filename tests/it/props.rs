//! Property tests: random operation sequences from two tenants, several users and
//! conversations, checked step by step against a small reference model.
//!
//! Invariants: seq per conversation is gap-free and increasing; a retried send never
//! creates a second message; nothing crosses tenants or reaches a non-member;
//! unread counts equal last seq minus the read watermark, own messages excluded;
//! every denied operation names a rule that exists.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use caas::core::events::Event;
use caas::core::ids::{ConversationId, Cursor, Seq, TenantId};
use caas::core::model::{ReceiptKind, TenantSettings};
use caas::core::policy::{DEFAULT_DENY, default_set};
use caas::core::ports::{BusMessage, HistoryPage};
use caas::core::ratelimit::Quota;
use caas::core::service::{MemberChange, NewConversation, SendMessage};
use caas::core::time::{ManualClock, Timestamp};
use caas::{Caas, Config, Error, Principal};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use crate::sets::{Set, TempDir, on_every_set};
use crate::world::{key, uid};

const USERS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Create {
        t: usize,
        owner: usize,
        members: Vec<usize>,
    },
    Send {
        t: usize,
        u: usize,
        c: usize,
        k: usize,
    },
    Add {
        t: usize,
        by: usize,
        c: usize,
        u: usize,
    },
    Remove {
        t: usize,
        by: usize,
        c: usize,
        u: usize,
    },
    Mute {
        t: usize,
        by: usize,
        c: usize,
        u: usize,
        on: bool,
    },
    Read {
        t: usize,
        u: usize,
        c: usize,
        frac: u8,
    },
    Foreign {
        t: usize,
        u: usize,
        c: usize,
    },
    Check {
        t: usize,
        u: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let t = 0..2usize;
    let u = 0..USERS;
    let c = 0..4usize;
    prop_oneof![
        1 => (t.clone(), u.clone(), proptest::collection::vec(u.clone(), 0..4)).prop_map(|(t, owner, members)| Op::Create { t, owner, members }),
        6 => (t.clone(), u.clone(), c.clone(), 0..6usize).prop_map(|(t, u, c, k)| Op::Send { t, u, c, k }),
        1 => (t.clone(), u.clone(), c.clone(), u.clone()).prop_map(|(t, by, c, u)| Op::Add { t, by, c, u }),
        1 => (t.clone(), u.clone(), c.clone(), u.clone()).prop_map(|(t, by, c, u)| Op::Remove { t, by, c, u }),
        1 => (t.clone(), u.clone(), c.clone(), u.clone(), any::<bool>()).prop_map(|(t, by, c, u, on)| Op::Mute { t, by, c, u, on }),
        2 => (t.clone(), u.clone(), c.clone(), any::<u8>()).prop_map(|(t, u, c, frac)| Op::Read { t, u, c, frac }),
        1 => (t.clone(), u.clone(), c.clone()).prop_map(|(t, u, c)| Op::Foreign { t, u, c }),
        2 => (t, u).prop_map(|(t, u)| Op::Check { t, u }),
    ]
}

#[derive(Debug, Default)]
struct Conv {
    id: Option<ConversationId>,
    owner: usize,
    members: BTreeMap<usize, bool>, // user -> muted
    msgs: Vec<(usize, usize)>,      // (sender, key), index = seq - 1
    reads: BTreeMap<usize, u64>,
}

struct Sim {
    caas: Caas,
    bus: Box<dyn caas::core::ports::Subscription>,
    events_checked: usize,
    /// The tenant of the markers [`Sim::published`] sends, and how many it sent.
    mark_tenant: TenantId,
    marks: u64,
    clock: Arc<ManualClock>,
    tenants: Vec<TenantId>,
    convs: Vec<Vec<Conv>>,
    /// The backends' data, if on disk: after `caas`, so removed once it is closed.
    _dir: Option<TempDir>,
}

fn op_tenant(op: &Op) -> usize {
    match op {
        Op::Create { t, .. }
        | Op::Send { t, .. }
        | Op::Add { t, .. }
        | Op::Remove { t, .. }
        | Op::Mute { t, .. }
        | Op::Read { t, .. }
        | Op::Foreign { t, .. }
        | Op::Check { t, .. } => *t,
    }
}

fn name(u: usize) -> String {
    format!("user{u}")
}

#[track_caller]
fn denied_by_a_real_rule<T: std::fmt::Debug>(r: caas::Result<T>, why: &str) {
    match r {
        Err(Error::Forbidden { rule }) => {
            assert!(
                rule == DEFAULT_DENY || default_set().rule(&rule).is_some(),
                "unknown rule {rule}"
            );
        }
        other => panic!("{why}: expected a denial, got {other:?}"),
    }
}

impl Sim {
    async fn new(set: Set) -> Self {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
        let opened = set.open(clock.clone()).await;
        let caas = Caas::new(opened.backends, Config::default());
        let mut settings = TenantSettings::default();
        // Limits are tested elsewhere; here they would only add noise.
        settings
            .limits
            .insert("message.send".into(), Quota::per_second(1_000_000));
        let mut tenants = Vec::new();
        for i in 0..2 {
            let t = caas
                .create_tenant(&Principal::operator(), &format!("t{i}"), settings.clone())
                .await
                .unwrap();
            for u in 0..USERS {
                caas.upsert_user(
                    &Principal::tenant_server(t.id.clone()),
                    &uid(&name(u)),
                    "n",
                    Default::default(),
                )
                .await
                .unwrap();
            }
            tenants.push(t.id);
        }
        let bus = caas.backends().bus.subscribe().await.unwrap();
        Self {
            caas,
            bus,
            events_checked: 0,
            mark_tenant: caas_core::testkit::tenant(),
            marks: 0,
            clock,
            tenants,
            convs: vec![Vec::new(), Vec::new()],
            _dir: opened.dir,
        }
    }

    fn p(&self, t: usize, u: usize) -> Principal {
        Principal::user(self.tenants[t].clone(), uid(&name(u)))
    }

    fn conv(&self, t: usize, c: usize) -> Option<usize> {
        let n = self.convs[t].len();
        (n > 0).then_some(c % n)
    }

    /// Applies `op`, then checks every event it published: right tenant, and an
    /// audience made only of members from before or after the operation (a removed
    /// member is told of their removal).
    async fn apply(&mut self, op: Op) {
        let t = op_tenant(&op);
        let before = self.memberships(t);
        self.apply_op(op).await;
        let after = self.memberships(t);
        for e in self.published().await {
            if e.payload.kind() == "user.updated" {
                continue;
            }
            self.events_checked += 1;
            assert_eq!(e.tenant, self.tenants[t], "an event crossed tenants: {e:?}");
            let conv = e
                .payload
                .conversation_id()
                .expect("conversation events only here");
            let allowed: BTreeSet<String> = before
                .get(conv)
                .into_iter()
                .chain(after.get(conv))
                .flatten()
                .cloned()
                .collect();
            for u in e.audience.iter() {
                assert!(
                    allowed.contains(u.as_str()),
                    "{} published to non-member {u}",
                    e.payload.kind()
                );
            }
        }
    }

    /// Every event published since the last call: the bus may be a network
    /// away, so a marker published now closes the batch (one publisher's events
    /// reach a subscriber in publish order).
    async fn published(&mut self) -> Vec<Arc<Event>> {
        self.marks += 1;
        let mark = Arc::new(caas_core::testkit::events::event(
            &self.mark_tenant,
            &caas_core::testkit::conversation(),
            &[],
            self.marks,
        ));
        self.caas
            .backends()
            .bus
            .publish(mark.clone())
            .await
            .unwrap();
        let mut events = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.bus.next()).await {
                Ok(Some(BusMessage::Event(e))) if e == mark => return events,
                Ok(Some(BusMessage::Event(e))) => events.push(e),
                other => panic!("the bus lagged, closed or went silent: {other:?}"),
            }
        }
    }

    fn memberships(&self, t: usize) -> BTreeMap<ConversationId, BTreeSet<String>> {
        self.convs[t]
            .iter()
            .map(|m| {
                (
                    m.id.clone().unwrap(),
                    m.members.keys().map(|u| name(*u)).collect(),
                )
            })
            .collect()
    }

    async fn apply_op(&mut self, op: Op) {
        self.clock.advance(Duration::from_millis(10));
        match op {
            Op::Create { t, owner, members } => {
                let new = NewConversation {
                    kind: caas::core::model::ConversationKind::Group,
                    members: members.iter().map(|m| uid(&name(*m))).collect(),
                    name: None,
                    attributes: Default::default(),
                };
                let conv = self
                    .caas
                    .create_conversation(&self.p(t, owner), new)
                    .await
                    .unwrap()
                    .into_inner();
                let mut m = Conv {
                    id: Some(conv.id),
                    owner,
                    ..Default::default()
                };
                m.members.insert(owner, false);
                for u in members {
                    m.members.insert(u, false);
                }
                self.convs[t].push(m);
            }
            Op::Send { t, u, c, k } => {
                let Some(ci) = self.conv(t, c) else { return };
                let id = self.convs[t][ci].id.clone().unwrap();
                let r = self
                    .caas
                    .send_message(
                        &self.p(t, u),
                        &id,
                        SendMessage::text(key(&format!("k{k}")), format!("from {u}")),
                    )
                    .await;
                let m = &mut self.convs[t][ci];
                match m.members.get(&u) {
                    None => denied_by_a_real_rule(r, "non-member send"),
                    Some(true) => denied_by_a_real_rule(r, "muted send"),
                    Some(false) => {
                        let sent = r.unwrap();
                        match m.msgs.iter().position(|x| *x == (u, k)) {
                            Some(i) => {
                                assert!(sent.duplicate, "a retry must not create a message");
                                assert_eq!(sent.message.seq, Seq(i as u64 + 1));
                            }
                            None => {
                                assert!(!sent.duplicate);
                                m.msgs.push((u, k));
                                assert_eq!(
                                    sent.message.seq,
                                    Seq(m.msgs.len() as u64),
                                    "seq is the next gap-free one"
                                );
                            }
                        }
                    }
                }
            }
            Op::Add { t, by, c, u } => {
                let Some(ci) = self.conv(t, c) else { return };
                let id = self.convs[t][ci].id.clone().unwrap();
                let r = self
                    .caas
                    .add_member(&self.p(t, by), &id, &uid(&name(u)), None)
                    .await;
                let m = &mut self.convs[t][ci];
                if m.members.contains_key(&by) && by == m.owner {
                    r.unwrap();
                    m.members.entry(u).or_insert(false);
                } else {
                    denied_by_a_real_rule(r, "add by non-owner");
                }
            }
            Op::Remove { t, by, c, u } => {
                let Some(ci) = self.conv(t, c) else { return };
                let id = self.convs[t][ci].id.clone().unwrap();
                let r = self
                    .caas
                    .remove_member(&self.p(t, by), &id, &uid(&name(u)))
                    .await;
                let m = &mut self.convs[t][ci];
                let leave = by == u && m.members.contains_key(&by);
                let kick = by == m.owner
                    && m.members.contains_key(&by)
                    && u != m.owner
                    && m.members.contains_key(&u);
                if leave || kick {
                    r.unwrap();
                    m.members.remove(&u);
                } else {
                    denied_by_a_real_rule(r, "remove");
                }
            }
            Op::Mute { t, by, c, u, on } => {
                let Some(ci) = self.conv(t, c) else { return };
                let id = self.convs[t][ci].id.clone().unwrap();
                let change = MemberChange {
                    muted: Some(on),
                    ..Default::default()
                };
                let r = self
                    .caas
                    .update_member(&self.p(t, by), &id, &uid(&name(u)), change)
                    .await;
                let m = &mut self.convs[t][ci];
                if !m.members.contains_key(&u) {
                    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
                } else if by == m.owner && m.members.contains_key(&by) && u != by {
                    r.unwrap();
                    m.members.insert(u, on);
                } else {
                    denied_by_a_real_rule(r, "mute");
                }
            }
            Op::Read { t, u, c, frac } => {
                let Some(ci) = self.conv(t, c) else { return };
                let id = self.convs[t][ci].id.clone().unwrap();
                let last = self.convs[t][ci].msgs.len() as u64;
                let seq = last * u64::from(frac) / 255;
                let r = self
                    .caas
                    .mark(&self.p(t, u), &id, ReceiptKind::Read, Seq(seq))
                    .await;
                let m = &mut self.convs[t][ci];
                if m.members.contains_key(&u) {
                    let got = r.unwrap();
                    let wm = m.reads.entry(u).or_default();
                    *wm = (*wm).max(seq);
                    assert_eq!(got.read, Seq(*wm), "watermarks only move forward");
                } else {
                    denied_by_a_real_rule(r, "non-member read");
                }
            }
            Op::Foreign { t, u, c } => {
                let other = 1 - t;
                let Some(ci) = self.conv(other, c) else {
                    return;
                };
                let id = self.convs[other][ci].id.clone().unwrap();
                let p = self.p(t, u);
                let h = self.caas.history(&p, &id, HistoryPage::Latest, 10).await;
                assert!(
                    matches!(h, Err(Error::NotFound { .. })),
                    "cross-tenant history: {h:?}"
                );
                let s = self
                    .caas
                    .send_message(&p, &id, SendMessage::text(key("x"), "x"))
                    .await;
                assert!(
                    matches!(s, Err(Error::NotFound { .. })),
                    "cross-tenant send: {s:?}"
                );
            }
            Op::Check { t, u } => self.check(t, u).await,
        }
    }

    async fn check(&self, t: usize, u: usize) {
        let p = self.p(t, u);
        let list = self
            .caas
            .list_conversations(&p, 200, None)
            .await
            .unwrap()
            .items;
        let want: BTreeSet<_> = self.convs[t]
            .iter()
            .filter(|m| m.members.contains_key(&u))
            .map(|m| m.id.clone().unwrap())
            .collect();
        let got: BTreeSet<_> = list.iter().map(|s| s.conversation.id.clone()).collect();
        assert_eq!(
            got, want,
            "the conversation list is exactly the memberships"
        );
        for s in &list {
            let m = self.convs[t]
                .iter()
                .find(|m| m.id.as_ref() == Some(&s.conversation.id))
                .unwrap();
            let read = m.reads.get(&u).copied().unwrap_or(0);
            let unread = m
                .msgs
                .iter()
                .skip(read as usize)
                .filter(|(sender, _)| *sender != u)
                .count() as u64;
            assert_eq!(s.last_seq, Seq(m.msgs.len() as u64));
            assert_eq!(
                s.unread_count, unread,
                "unread = last seq - watermark, own excluded"
            );
            let hist = self
                .caas
                .history(&p, &s.conversation.id, HistoryPage::After(Seq(0)), 200)
                .await
                .unwrap();
            assert_eq!(hist.len(), m.msgs.len());
            for (i, (msg, (sender, k))) in hist.iter().zip(&m.msgs).enumerate() {
                assert_eq!(msg.seq, Seq(i as u64 + 1), "gap-free");
                assert_eq!(
                    (msg.sender.as_str(), msg.client_msg_id.as_str()),
                    (name(*sender).as_str(), format!("k{k}").as_str())
                );
            }
        }
        let page = self.caas.sync(&p, Cursor(0), 200).await.unwrap();
        for e in &page.events {
            assert_eq!(
                e.event.tenant, self.tenants[t],
                "sync never crosses tenants"
            );
            assert!(
                e.event.audience.contains(&uid(&name(u))),
                "sync returns only what the user may see"
            );
        }
    }
}

on_every_set!(random_operation_sequences_keep_the_invariants);

/// Sequences per set, from the same generator. A case takes about 50 ms on memory
/// and four times that on SQLite (every write is a commit), so the SQLite sets run
/// a quarter as many: each set then takes about 2.5 s of a debug build.
fn cases(set: Set) -> u32 {
    match set {
        Set::Memory => 48,
        _ => 12,
    }
}

fn random_operation_sequences_keep_the_invariants(set: Set) {
    let mut runner = TestRunner::new(ProptestConfig {
        cases: cases(set),
        // Where failing sequences are kept, as `proptest!` would.
        source_file: Some(file!()),
        ..ProptestConfig::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..60), |ops| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(set, ops));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\n{runner}");
    }
}

async fn run(set: Set, ops: Vec<Op>) {
    let mut sim = Sim::new(set).await;
    // Start with one conversation per tenant so most operations hit something.
    sim.apply(Op::Create {
        t: 0,
        owner: 0,
        members: vec![1, 2],
    })
    .await;
    sim.apply(Op::Create {
        t: 1,
        owner: 1,
        members: vec![0, 3],
    })
    .await;
    for op in ops {
        sim.apply(op).await;
    }
    assert!(sim.events_checked >= 2, "the bus check saw no events");
    for t in 0..2 {
        for u in 0..USERS {
            sim.check(t, u).await;
        }
    }
}
