//! Store ports on MongoDB (6.0 or later, as a replica set), with the official
//! `mongodb` driver.
//!
//! One [`MongoStore`] (cheap to clone) implements every store port:
//! [`TenantStore`], [`UserStore`], [`ConversationStore`], [`MessageStore`],
//! [`ReceiptStore`], [`EventLog`], [`KeyDirectory`], [`AuditStore`],
//! [`CredentialStore`], [`MediaStore`], [`UsageStore`], [`FlagStore`],
//! [`WebhookStore`] and [`SearchIndex`], so nodes on one database share one
//! search index. The crate README says what is stored where and what each
//! part promises; in short:
//!
//! * **Replica sets only.** An append stores the message, advances its
//!   conversation's head and logs its event in one multi-document transaction,
//!   which MongoDB offers only on a replica set (a single-node one will do) or
//!   through `mongos`. [`MongoStore::connect`] refuses a standalone server with
//!   a clear error rather than give up gap-free seqs or the atomic event there.
//! * **Seqs**: the transaction takes the next seq with `findOneAndUpdate`
//!   `$inc` on the conversation's head document; a concurrent append of the
//!   same conversation meets a write conflict and starts over, so seqs are
//!   unique and gap-free, and an aborted append (or a crash before commit)
//!   leaves no trace. Unique indexes on `(tenant, conversation, seq)` and on
//!   `(tenant, conversation, sender, client_msg_id)` back both promises.
//! * **The event log** hands out each tenant's cursors from its `log_heads`
//!   document in the same way, so cursors become visible in the order they
//!   were handed out and a `sync` reader never passes an event that commits
//!   later.
//! * **Search** keeps each entry's distinct lowercase words (the core's
//!   `tokenize`) in a multikey-indexed array and matches each query word as
//!   an anchored, escaped prefix regex on it (see `search.rs`); MongoDB's
//!   `$text` indexes stem and cannot match prefixes, so they are not used.
//! * **Indexes** are created at connect (creating an existing one is a no-op).
//! * **Every command document** an operation sends is built by a pure function
//!   (`commands` in each file), checked by unit tests without a server.
//!
//! [`TenantStore`]: caas_core::ports::TenantStore
//! [`UserStore`]: caas_core::ports::UserStore
//! [`ConversationStore`]: caas_core::ports::ConversationStore
//! [`MessageStore`]: caas_core::ports::MessageStore
//! [`ReceiptStore`]: caas_core::ports::ReceiptStore
//! [`EventLog`]: caas_core::ports::EventLog
//! [`KeyDirectory`]: caas_core::ports::KeyDirectory
//! [`AuditStore`]: caas_core::ports::AuditStore
//! [`CredentialStore`]: caas_core::ports::CredentialStore
//! [`MediaStore`]: caas_core::ports::MediaStore
//! [`UsageStore`]: caas_core::ports::UsageStore
//! [`FlagStore`]: caas_core::ports::FlagStore
//! [`WebhookStore`]: caas_core::ports::WebhookStore
//! [`SearchIndex`]: caas_core::ports::SearchIndex

mod audit;
mod codec;
mod conversations;
mod credentials;
mod error;
mod events;
mod flags;
mod keys;
mod media;
mod messages;
mod receipts;
mod search;
mod tenants;
mod txn;
mod usage;
mod users;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use caas_core::{Error, Result};
use mongodb::bson::{Document, doc};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};

use error::Ctx;

/// How a [`MongoStore`] connects and runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MongoConfig {
    /// A `mongodb://` connection string naming the replica set's members (and
    /// `replicaSet=…`). `mongodb+srv://` is refused: this build has no DNS
    /// resolver of its own (see the crate's feature notes). TLS options of the
    /// connection string (`tls=true`, …) are honoured, through rustls.
    pub url: String,
    /// The database holding caas's collections (default `caas`).
    pub database: String,
    /// Connections per server (default 16).
    pub pool_size: u32,
    /// Bound on opening a connection and on finding a suitable server
    /// (default 5 s).
    pub connect_timeout: Duration,
    /// Bound on each call, retries of conflicting transactions included
    /// (default 10 s). A write that runs out of time is reported as
    /// unavailable with an unknown outcome, never acknowledged.
    pub op_timeout: Duration,
    /// The driver's `appName`, as the server's logs and `currentOp` show it
    /// (default `caas`).
    pub app_name: String,
}

impl MongoConfig {
    /// The defaults, for the deployment at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            database: "caas".into(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            op_timeout: Duration::from_secs(10),
            app_name: "caas".into(),
        }
    }
}

/// Every store port over one MongoDB database. Clones share one driver
/// client (and its connection pool).
#[derive(Debug, Clone)]
pub struct MongoStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    db: Database,
    config: MongoConfig,
}

/// The collections, by name, in one place.
pub(crate) mod names {
    /// One document per conversation with messages: its head.
    pub(crate) const HEADS: &str = "heads";
    /// The messages.
    pub(crate) const MESSAGES: &str = "messages";
    /// One document per tenant with events: its newest cursor.
    pub(crate) const LOG_HEADS: &str = "log_heads";
    /// The event log.
    pub(crate) const EVENTS: &str = "events";
    /// Conversations.
    pub(crate) const CONVERSATIONS: &str = "conversations";
    /// Membership records.
    pub(crate) const MEMBERS: &str = "members";
    /// Tenants.
    pub(crate) const TENANTS: &str = "tenants";
    /// Users.
    pub(crate) const USERS: &str = "users";
    /// Receipt watermarks.
    pub(crate) const RECEIPTS: &str = "receipts";
    /// Devices' identity keys and signed prekeys.
    pub(crate) const DEVICES: &str = "devices";
    /// One-time prekeys, one document each.
    pub(crate) const ONE_TIME_PREKEYS: &str = "one_time_prekeys";
    /// One document per tenant with audit records: its newest position.
    pub(crate) const AUDIT_HEADS: &str = "audit_heads";
    /// The audit log.
    pub(crate) const AUDIT: &str = "audit";
    /// Password logins.
    pub(crate) const PASSWORD_LOGINS: &str = "password_logins";
    /// Refresh-token sessions.
    pub(crate) const REFRESH_SESSIONS: &str = "refresh_sessions";
    /// Search entries of messages: keys, seq and words.
    pub(crate) const SEARCH_MESSAGES: &str = "search_messages";
    /// Search entries of conversations: keys and the words of the name.
    pub(crate) const SEARCH_CONVERSATIONS: &str = "search_conversations";
    /// Search entries of users: keys and the words of the name and id.
    pub(crate) const SEARCH_USERS: &str = "search_users";
    /// Upload records.
    pub(crate) const MEDIA: &str = "media";
    /// Usage meters: one document per tenant, day and meter.
    pub(crate) const USAGE: &str = "usage";
    /// Monthly active users: one document per tenant, month and user.
    pub(crate) const ACTIVE_USERS: &str = "active_users";
    /// Flags: one document per tenant, conversation, message and reporter.
    pub(crate) const FLAGS: &str = "flags";
    /// Webhook endpoints and their delivery progress and lease.
    pub(crate) const WEBHOOKS: &str = "webhooks";
    /// Webhook deliveries given up: one document per tenant, endpoint and id.
    pub(crate) const WEBHOOK_DEAD_LETTERS: &str = "webhook_dead_letters";
}

/// Letters, digits, `_` and `-` only (a database name may not hold `/\. "$`
/// or NUL, and some of those differ between platforms).
fn valid_database(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What `hello` says about the deployment, reduced to what caas needs:
/// whether multi-document transactions are available. A replica-set member
/// names its set (`setName`); `mongos` answers `msg: "isdbgrid"`.
pub(crate) fn offers_transactions(hello: &Document) -> bool {
    hello.get_str("setName").is_ok() || hello.get_str("msg").is_ok_and(|m| m == "isdbgrid")
}

/// Every `createIndexes` command run at connect.
fn create_indexes() -> Vec<Document> {
    let [conversations, members] = conversations::commands::create_indexes();
    let [devices, one_time_prekeys] = keys::commands::create_indexes();
    let [logins, sessions] = credentials::commands::create_indexes();
    let [search_messages, search_conversations, search_users] = search::commands::create_indexes();
    let [usage, active_users] = usage::commands::create_indexes();
    let [webhooks, webhook_dead_letters] = webhooks::commands::create_indexes();
    vec![
        messages::commands::create_indexes(),
        events::commands::create_indexes(),
        conversations,
        members,
        tenants::commands::create_indexes(),
        users::commands::create_indexes(),
        receipts::commands::create_indexes(),
        devices,
        one_time_prekeys,
        audit::commands::create_indexes(),
        logins,
        sessions,
        search_messages,
        search_conversations,
        search_users,
        media::commands::create_indexes(),
        usage,
        active_users,
        flags::commands::create_indexes(),
        webhooks,
        webhook_dead_letters,
    ]
}

impl MongoStore {
    /// Connects, checks that the deployment offers transactions (a replica
    /// set or `mongos`; a standalone server is refused with a one-line reason)
    /// and creates the indexes (a no-op when they exist).
    pub async fn connect(config: MongoConfig) -> Result<Self> {
        if !valid_database(&config.database) {
            return Err(Error::invalid(
                "mongo database",
                "letters, digits, _ and - only, at most 63 bytes",
            ));
        }
        if config.url.trim_start().starts_with("mongodb+srv://") {
            return Err(Error::invalid(
                "mongo url",
                "mongodb+srv:// needs DNS SRV lookups, which this build leaves out: list the \
                 hosts in a mongodb:// URL",
            ));
        }
        let mut options =
            tokio::time::timeout(config.connect_timeout, ClientOptions::parse(&config.url))
                .await
                .map_err(|_| error::timed_out("parse the mongo url"))?
                .map_err(|e| Error::invalid("mongo url", e.to_string()))?;
        options.app_name = Some(config.app_name.clone());
        options.max_pool_size = Some(config.pool_size.max(1));
        options.connect_timeout = Some(config.connect_timeout);
        options.server_selection_timeout = Some(config.connect_timeout);
        let client = Client::with_options(options).ctx("create the mongo client")?;
        let db = client.database(&config.database);
        let store = Self {
            inner: Arc::new(Inner { client, db, config }),
        };
        let hello = store
            .bounded(
                "check the server",
                store.inner.db.run_command(doc! { "hello": 1 }),
            )
            .await?;
        if !offers_transactions(&hello) {
            return Err(Error::Unavailable {
                backend: error::BACKEND,
                context: "caas needs MongoDB as a replica set (a single-node one will do) or \
                          through mongos: a standalone server has no multi-document \
                          transactions, and without them an append cannot store its message \
                          and its event together or keep seqs gap-free"
                    .into(),
                temporary: false,
                source: None,
            });
        }
        // The head collections have no index but `_id`, so no
        // `createIndexes` creates them; they are created here rather than
        // implicitly inside the first transactions that write them.
        for name in [names::HEADS, names::LOG_HEADS, names::AUDIT_HEADS] {
            let created = tokio::time::timeout(
                store.inner.config.op_timeout,
                store
                    .inner
                    .db
                    .run_command(doc! { "create": name })
                    .into_future(),
            )
            .await
            .map_err(|_| error::timed_out("create collections"))?;
            match created {
                Ok(_) => {}
                Err(e) if error::namespace_exists(&e) => {}
                Err(e) => return Err(error::map("create collections", e)),
            }
        }
        for command in create_indexes() {
            store
                .bounded("create indexes", store.inner.db.run_command(command))
                .await?;
        }
        Ok(store)
    }

    /// Every store port this store implements on `Backends`, the search
    /// index included (messages and the event log must be one store: a send
    /// logs its event in the same write), with `caas_storage::memory`'s bus,
    /// blobs, presence, rate limits and revocations and the system clock. A
    /// platform that keeps those elsewhere (Redis, S3…) replaces the fields.
    pub fn backends(&self) -> caas_core::ports::Backends {
        let db = Arc::new(self.clone());
        caas_core::ports::Backends {
            tenants: db.clone(),
            users: db.clone(),
            conversations: db.clone(),
            messages: db.clone(),
            receipts: db.clone(),
            events: db.clone(),
            credentials: db.clone(),
            keys: db.clone(),
            audit: db.clone(),
            media: db.clone(),
            usage: db.clone(),
            flags: db.clone(),
            shredder: Arc::new(caas_core::ports::NoShredding),
            webhooks: db.clone(),
            search: db,
            ..caas_storage::memory::backends()
        }
    }

    /// The configuration it was connected with.
    pub fn config(&self) -> &MongoConfig {
        &self.inner.config
    }

    fn coll(&self, name: &str) -> Collection<Document> {
        self.inner.db.collection(name)
    }

    fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Every document of a `find`, in the order of `sort`, at most `limit`
    /// (`None`: no limit), all under the store's deadline.
    async fn find_all(
        &self,
        context: &str,
        collection: &str,
        filter: Document,
        sort: Document,
        limit: Option<i64>,
    ) -> Result<Vec<Document>> {
        self.find_projected(context, collection, filter, sort, Document::new(), limit)
            .await
    }

    /// [`find_all`](Self::find_all) returning only the fields of
    /// `projection` (empty: every field).
    async fn find_projected(
        &self,
        context: &str,
        collection: &str,
        filter: Document,
        sort: Document,
        projection: Document,
        limit: Option<i64>,
    ) -> Result<Vec<Document>> {
        let coll = self.coll(collection);
        let run = async {
            let mut find = coll.find(filter);
            if !sort.is_empty() {
                find = find.sort(sort);
            }
            if !projection.is_empty() {
                find = find.projection(projection);
            }
            if let Some(limit) = limit {
                find = find.limit(limit);
            }
            let mut cursor = find.await?;
            let mut found = Vec::new();
            while cursor.advance().await? {
                found.push(cursor.deserialize_current()?);
            }
            Ok::<_, mongodb::error::Error>(found)
        };
        tokio::time::timeout(self.inner.config.op_timeout, run)
            .await
            .map_err(|_| error::timed_out(context))?
            .ctx(context)
    }

    /// Runs one driver call under the store's deadline, mapping its error.
    async fn bounded<T>(
        &self,
        context: &str,
        call: impl std::future::IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T> {
        tokio::time::timeout(self.inner.config.op_timeout, call.into_future())
            .await
            .map_err(|_| error::timed_out(context))?
            .ctx(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_replica_sets_and_mongos_offer_transactions() {
        assert!(offers_transactions(
            &doc! { "isWritablePrimary": true, "setName": "rs0" }
        ));
        assert!(offers_transactions(
            &doc! { "isWritablePrimary": true, "msg": "isdbgrid" }
        ));
        assert!(!offers_transactions(&doc! { "isWritablePrimary": true }));
        assert!(!offers_transactions(
            &doc! { "isWritablePrimary": true, "msg": "something else" }
        ));
    }

    #[test]
    fn connect_creates_every_index() {
        let commands = create_indexes();
        let collections: Vec<&str> = commands
            .iter()
            .map(|c| c.get_str("createIndexes").unwrap())
            .collect();
        assert_eq!(
            collections,
            [
                "messages",
                "events",
                "conversations",
                "members",
                "tenants",
                "users",
                "receipts",
                "devices",
                "one_time_prekeys",
                "audit",
                "password_logins",
                "refresh_sessions",
                "search_messages",
                "search_conversations",
                "search_users",
                "media",
                "usage",
                "active_users",
                "flags",
                "webhooks",
                "webhook_dead_letters",
            ]
        );
        // Each names its indexes, so a re-run at the next start is a no-op
        // rather than a clash of generated names.
        for c in &commands {
            for spec in c.get_array("indexes").unwrap() {
                let spec = spec.as_document().unwrap();
                assert!(spec.get_str("name").is_ok(), "{spec}");
                assert!(spec.get_document("key").is_ok(), "{spec}");
            }
        }
    }

    #[test]
    fn database_names_are_plain() {
        assert!(valid_database("caas"));
        assert!(valid_database("caas_test-1"));
        assert!(!valid_database(""));
        assert!(!valid_database("a.b"));
        assert!(!valid_database("a b"));
        assert!(!valid_database("a$b"));
        assert!(!valid_database(&"x".repeat(64)));
    }
}
