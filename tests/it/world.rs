//! A tenant with users, on a set of backends and a manual clock.

use std::sync::Arc;

use caas::core::ids::{ClientMsgId, ConversationId, TenantId, UserId};
use caas::core::model::{ConversationKind, TenantSettings};
use caas::core::service::{NewConversation, SendMessage, Sent};
use caas::core::time::{ManualClock, Timestamp};
use caas::{Caas, Config, Principal};

use crate::sets::{Set, TempDir};

pub(crate) struct World {
    pub(crate) caas: Arc<Caas>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) tenant: TenantId,
    /// The SQLite store of the embedded sets.
    pub(crate) sqlite: Option<caas::storage::sqlite::SqliteStore>,
    /// The backends' data, if on disk: declared after `caas` so it is removed
    /// only once the stores are closed.
    _dir: Option<TempDir>,
}

pub(crate) fn uid(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

pub(crate) fn key(s: &str) -> ClientMsgId {
    ClientMsgId::parse(s).unwrap()
}

impl World {
    pub(crate) async fn new(set: Set, users: &[&str]) -> Self {
        Self::with_settings(set, users, TenantSettings::default()).await
    }

    pub(crate) async fn with_settings(set: Set, users: &[&str], settings: TenantSettings) -> Self {
        Self::with_config(set, users, settings, Config::default()).await
    }

    pub(crate) async fn with_config(
        set: Set,
        users: &[&str],
        settings: TenantSettings,
        config: Config,
    ) -> Self {
        Self::with_service(set, users, settings, config, |c| c).await
    }

    /// A world whose service `extend` finishes (credentials, a webhook sender).
    pub(crate) async fn with_service(
        set: Set,
        users: &[&str],
        settings: TenantSettings,
        config: Config,
        extend: impl FnOnce(Caas) -> Caas,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
        let opened = set.open(clock.clone()).await;
        let caas = Arc::new(extend(Caas::new(opened.backends, config)));
        let tenant = caas
            .create_tenant(&Principal::operator(), "test", settings)
            .await
            .unwrap();
        let w = World {
            caas,
            clock,
            tenant: tenant.id,
            sqlite: opened.sqlite,
            _dir: opened.dir,
        };
        for u in users {
            w.caas
                .upsert_user(&w.server(), &uid(u), u, Default::default())
                .await
                .unwrap();
        }
        w
    }

    pub(crate) async fn add_tenant(&self, users: &[&str]) -> TenantId {
        let t = self
            .caas
            .create_tenant(&Principal::operator(), "other", TenantSettings::default())
            .await
            .unwrap();
        for u in users {
            self.caas
                .upsert_user(
                    &Principal::tenant_server(t.id.clone()),
                    &uid(u),
                    u,
                    Default::default(),
                )
                .await
                .unwrap();
        }
        t.id
    }

    /// Where the backends keep their files, for sets on disk.
    pub(crate) fn data_dir(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(|d| d.path())
    }

    pub(crate) fn server(&self) -> Principal {
        Principal::tenant_server(self.tenant.clone())
    }

    pub(crate) fn user(&self, u: &str) -> Principal {
        Principal::user(self.tenant.clone(), uid(u))
    }

    pub(crate) async fn group(&self, owner: &str, members: &[&str]) -> ConversationId {
        self.conversation(owner, ConversationKind::Group, members)
            .await
    }

    pub(crate) async fn conversation(
        &self,
        owner: &str,
        kind: ConversationKind,
        members: &[&str],
    ) -> ConversationId {
        let new = NewConversation {
            kind,
            members: members.iter().map(|m| uid(m)).collect(),
            name: (kind != ConversationKind::Direct).then(|| "room".to_owned()),
            attributes: Default::default(),
        };
        self.caas
            .create_conversation(&self.user(owner), new)
            .await
            .unwrap()
            .into_inner()
            .id
    }

    pub(crate) async fn send(
        &self,
        who: &str,
        conv: &ConversationId,
        k: &str,
        body: &str,
    ) -> caas::Result<Sent> {
        self.caas
            .send_message(&self.user(who), conv, SendMessage::text(key(k), body))
            .await
    }
}

#[track_caller]
pub(crate) fn forbidden<T: std::fmt::Debug>(r: caas::Result<T>, rule: &str) {
    match r {
        Err(caas::Error::Forbidden { rule: got }) => assert_eq!(got, rule),
        other => panic!("expected forbidden by {rule}, got {other:?}"),
    }
}
