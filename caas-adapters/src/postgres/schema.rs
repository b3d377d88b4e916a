//! The schema, as numbered migrations compiled into the binary.
//!
//! `caas_schema.version` holds how many migrations the schema has had. Every
//! node checks it when it connects: an older schema is brought up to date under
//! an advisory lock (so nodes starting together migrate once), all missing
//! migrations in one transaction with the version bump (PostgreSQL's DDL is
//! transactional: a failure leaves the previous version intact). A schema with
//! more migrations than this binary knows was written by a newer caas: the node
//! refuses to run against it rather than guess.
//!
//! Every text key is `COLLATE "C"`: pages and cursors follow the byte order the
//! ports promise (Rust's `str` order), whatever the database's collation.

use caas_core::{Error, Result};

use super::error::BACKEND;
use super::pool::Lease;

/// Migration `i` takes a schema from version `i` to `i + 1`. Append only: never
/// edit a released migration.
pub(super) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6];

/// Version 6: webhooks (`WebhookStore`). One row per tenant and endpoint: the
/// configuration is the JSON document (its `created_at` is a column, so an
/// update keeps the first, and the document's copy is replaced by it on read),
/// the delivery progress a JSON document of its own, rewritten by the lease
/// holder. `disabled` and `retry_at` (unix nanoseconds, NULL when not backing
/// off) are columns for `due`, which the partial index of enabled endpoints
/// serves in its order (tenant, id); `lease_holder` and `lease_until` are the
/// delivery lease, taken and checked by single conditional `UPDATE`s. Dead
/// letters are one row per tenant, endpoint and delivery id, listed oldest
/// cursor first from their own index.
const V6: &str = r#"
CREATE TABLE webhooks (
    tenant       text COLLATE "C" NOT NULL,
    id           text COLLATE "C" NOT NULL,
    created_at   bigint NOT NULL,
    disabled     boolean NOT NULL,
    retry_at     bigint,
    lease_holder text,
    lease_until  bigint,
    doc          text NOT NULL,
    progress     text NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX webhooks_due ON webhooks (tenant, id, retry_at) WHERE NOT disabled;
CREATE TABLE webhook_dead_letters (
    tenant  text COLLATE "C" NOT NULL,
    webhook text COLLATE "C" NOT NULL,
    id      text COLLATE "C" NOT NULL,
    cursor  bigint NOT NULL,
    doc     text NOT NULL,
    PRIMARY KEY (tenant, webhook, id)
);
CREATE INDEX webhook_dead_letters_by_cursor
    ON webhook_dead_letters (tenant, webhook, cursor, id);
"#;

/// Version 5: flags (`FlagStore`), one row per tenant, conversation, message
/// and reporter (the port's "one flag per reporter and message"). What a
/// resolution changes is in columns, so settling a message's flags is one
/// `UPDATE`: `open`, and `resolution` (JSON, NULL while open). `created_at` is
/// in unix nanoseconds; the partial index holds the open flags only, in the
/// moderators' listing order (oldest first, then message and reporter). The
/// document holds the flag as reported.
const V5: &str = r#"
CREATE TABLE flags (
    tenant       text COLLATE "C" NOT NULL,
    conversation text COLLATE "C" NOT NULL,
    message      text COLLATE "C" NOT NULL,
    reporter     text COLLATE "C" NOT NULL,
    created_at   bigint NOT NULL,
    open         boolean NOT NULL,
    resolution   text,
    doc          text NOT NULL,
    PRIMARY KEY (tenant, conversation, message, reporter)
);
CREATE INDEX flags_open ON flags (tenant, conversation, created_at, message, reporter)
    WHERE open;
"#;

/// Version 4: usage meters (`UsageStore`). One row per tenant, day (since the
/// Unix epoch) and meter, holding a sum or a peak; and one row per user active
/// in a month (`YYYYMM`), so the month's count is a range of the key. Days and
/// months are `bigint` so every `u32` of the port fits.
const V4: &str = r#"
CREATE TABLE usage (
    tenant text COLLATE "C" NOT NULL,
    day    bigint NOT NULL,
    meter  text COLLATE "C" NOT NULL,
    value  bigint NOT NULL,
    PRIMARY KEY (tenant, day, meter)
);
CREATE TABLE active_users (
    tenant  text COLLATE "C" NOT NULL,
    month   bigint NOT NULL,
    user_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, month, user_id)
);
"#;

/// Version 3: upload records (`MediaStore`). What changes after the
/// announcement is in columns, so each change is one conditional statement:
/// `completed_at` and `sha256` (set by completion), `shared_in` (appended to in
/// the order shares arrive) and `pending_until`, the deadline while the upload
/// is pending and NULL once complete, so the cleanup scans a partial index of
/// pending uploads only. The document holds the rest as announced.
const V3: &str = r#"
CREATE TABLE media (
    tenant        text COLLATE "C" NOT NULL,
    id            text COLLATE "C" NOT NULL,
    owner         text COLLATE "C" NOT NULL,
    conversation  text COLLATE "C" NOT NULL,
    pending_until bigint,
    completed_at  bigint,
    sha256        text,
    shared_in     text[] NOT NULL DEFAULT '{}',
    doc           text NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX media_pending ON media (pending_until) WHERE pending_until IS NOT NULL;
CREATE INDEX media_by_owner ON media (tenant, owner, id);
"#;

/// Version 2: the audit log's hash chain; each tenant's head keeps the hash
/// of its last record (records written before this have none, and a chain
/// check reports the first of them).
const V2: &str = r#"
ALTER TABLE audit_heads ADD COLUMN hash text NOT NULL DEFAULT '';
"#;

/// Version 1: every store port, the event log and search.
const V1: &str = r#"
CREATE TABLE tenants (
    id          text COLLATE "C" PRIMARY KEY,
    -- The hashes of the tenant's credentials, for `find_by_credential`.
    cred_hashes text[] NOT NULL DEFAULT '{}',
    doc         text NOT NULL
);
CREATE INDEX tenants_by_credential ON tenants USING gin (cred_hashes);

-- `created_at` is a column so an upsert keeps the first one in one statement; the
-- document's copy is replaced by it on read.
CREATE TABLE users (
    tenant     text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    created_at bigint NOT NULL,
    doc        text NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE conversations (
    tenant     text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    direct_key text COLLATE "C",
    doc        text NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE UNIQUE INDEX conversations_direct_key
    ON conversations (tenant, direct_key) WHERE direct_key IS NOT NULL;

CREATE TABLE members (
    tenant       text COLLATE "C" NOT NULL,
    conversation text COLLATE "C" NOT NULL,
    member       text COLLATE "C" NOT NULL,
    doc          text NOT NULL,
    PRIMARY KEY (tenant, conversation, member)
);
CREATE INDEX members_by_user ON members (tenant, member, conversation);

-- One row per conversation with messages or search entries: a small key for the
-- big tables, and the head (newest seq). An append locks its conversation's row
-- until it commits: that is what keeps seqs gap-free and unique across nodes.
CREATE TABLE streams (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant        text COLLATE "C" NOT NULL,
    conversation  text COLLATE "C" NOT NULL,
    last_seq      bigint NOT NULL DEFAULT 0,
    last_activity bigint,
    UNIQUE (tenant, conversation)
);

-- `words`: the message's search lexemes (the core's tokens) plus one naming its
-- stream, NULL when it has none (deleted, encrypted, or sealed at rest).
-- `caller_words`: the stored body is sealed at rest, so only the caller's
-- `index_message` can give its words (kept in search_extra).
-- The unique indexes lead with the time-ordered id and client_msg_id, so a
-- batch's inserts land on the last pages instead of one page per conversation.
CREATE TABLE messages (
    stream        bigint NOT NULL,
    seq           bigint NOT NULL,
    id            text COLLATE "C" NOT NULL,
    sender        text COLLATE "C" NOT NULL,
    client_msg_id text COLLATE "C" NOT NULL,
    pinned        boolean NOT NULL DEFAULT false,
    caller_words  boolean NOT NULL DEFAULT false,
    words         tsvector,
    doc           text NOT NULL,
    PRIMARY KEY (stream, seq)
);
CREATE UNIQUE INDEX messages_by_id ON messages (id, stream);
CREATE UNIQUE INDEX messages_by_client_msg_id ON messages (client_msg_id, stream, sender);
CREATE INDEX messages_pinned ON messages (stream, seq) WHERE pinned;
-- A small pending list: the insert that finds it full merges it into the index,
-- and a large one makes that insert (and its batch) wait long.
CREATE INDEX messages_words ON messages USING gin (words) WITH (gin_pending_list_limit = 256);

-- Search entries whose words came from the caller: messages this store does not
-- hold, and bodies sealed at rest.
CREATE TABLE search_extra (
    stream     bigint NOT NULL,
    message_id text COLLATE "C" NOT NULL,
    seq        bigint NOT NULL,
    digest     bigint NOT NULL,
    words      tsvector NOT NULL,
    PRIMARY KEY (stream, message_id)
);
CREATE INDEX search_extra_words ON search_extra USING gin (words);

CREATE TABLE search_conversations (
    tenant       text COLLATE "C" NOT NULL,
    conversation text COLLATE "C" NOT NULL,
    words        tsvector,
    PRIMARY KEY (tenant, conversation)
);

CREATE TABLE search_users (
    tenant text COLLATE "C" NOT NULL,
    uid    text COLLATE "C" NOT NULL,
    words  tsvector,
    PRIMARY KEY (tenant, uid)
);
CREATE INDEX search_users_words ON search_users USING gin (words);

CREATE TABLE receipts (
    tenant       text COLLATE "C" NOT NULL,
    conversation text COLLATE "C" NOT NULL,
    member       text COLLATE "C" NOT NULL,
    delivered    bigint NOT NULL,
    read         bigint NOT NULL,
    updated_at   bigint NOT NULL,
    PRIMARY KEY (tenant, conversation, member)
);

-- The event log. A tenant's newest cursor lives in log_heads; a write that logs
-- takes the tenant's row there (it is locked until the write commits), so
-- cursors are handed out in commit order and `sync` never sees cursor 12
-- committed while cursor 11 may still appear.
CREATE TABLE log_heads (
    tenant text COLLATE "C" PRIMARY KEY,
    head   bigint NOT NULL
);
-- Audiences as sets, stored once per tenant and distinct list of users.
CREATE TABLE audiences (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL,
    digest text NOT NULL,
    users  text NOT NULL,
    UNIQUE (tenant, digest)
);
CREATE TABLE audience_members (
    tenant   text COLLATE "C" NOT NULL,
    member   text COLLATE "C" NOT NULL,
    audience bigint NOT NULL,
    PRIMARY KEY (tenant, member, audience)
);
-- `msg_seq`: a `message.created` event's document is written before the
-- message has its seq (the batch assigns it here); reads put it back.
CREATE TABLE events (
    tenant   text COLLATE "C" NOT NULL,
    cur      bigint NOT NULL,
    audience bigint NOT NULL,
    msg_seq  bigint,
    doc      text NOT NULL,
    PRIMARY KEY (tenant, cur)
);
CREATE INDEX events_by_audience ON events (tenant, audience, cur);

CREATE TABLE devices (
    tenant text COLLATE "C" NOT NULL,
    uid    text COLLATE "C" NOT NULL,
    device text COLLATE "C" NOT NULL,
    doc    text NOT NULL,
    PRIMARY KEY (tenant, uid, device)
);
-- The id orders each device's pool: first published, first handed out.
CREATE TABLE one_time_prekeys (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant     text COLLATE "C" NOT NULL,
    uid        text COLLATE "C" NOT NULL,
    device     text COLLATE "C" NOT NULL,
    key_id     bigint NOT NULL,
    public_key text NOT NULL,
    UNIQUE (tenant, uid, device, key_id)
);
CREATE INDEX one_time_prekeys_pool ON one_time_prekeys (tenant, uid, device, id);

CREATE TABLE audit_heads (
    tenant text COLLATE "C" PRIMARY KEY,
    head   bigint NOT NULL
);
CREATE TABLE audit (
    tenant text COLLATE "C" NOT NULL,
    pos    bigint NOT NULL,
    doc    text NOT NULL,
    PRIMARY KEY (tenant, pos)
);

CREATE TABLE password_logins (
    tenant text COLLATE "C" NOT NULL,
    uid    text COLLATE "C" NOT NULL,
    doc    text NOT NULL,
    PRIMARY KEY (tenant, uid)
);
-- `status` is a column so a rotation is one compare-and-set; reads put it back
-- into the document.
CREATE TABLE refresh_sessions (
    tenant text COLLATE "C" NOT NULL,
    hash   text COLLATE "C" NOT NULL,
    family text COLLATE "C" NOT NULL,
    status text NOT NULL,
    doc    text NOT NULL,
    PRIMARY KEY (tenant, hash)
);
CREATE INDEX refresh_sessions_by_family ON refresh_sessions (tenant, family);

-- The id of an audience set, stored now if it is new. Two writers storing the
-- same new set: the second waits for the first and then finds its row.
CREATE FUNCTION caas_audience(p_tenant text, p_digest text, p_users text)
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    v_id bigint;
BEGIN
    SELECT id INTO v_id FROM audiences WHERE tenant = p_tenant AND digest = p_digest;
    IF FOUND THEN
        RETURN v_id;
    END IF;
    INSERT INTO audiences (tenant, digest, users) VALUES (p_tenant, p_digest, p_users)
        ON CONFLICT (tenant, digest) DO NOTHING
        RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT id INTO v_id FROM audiences WHERE tenant = p_tenant AND digest = p_digest;
        RETURN v_id;
    END IF;
    INSERT INTO audience_members (tenant, member, audience)
        SELECT p_tenant, u, v_id FROM unnest(string_to_array(p_users, E'\n')) u
        WHERE u <> '';
    RETURN v_id;
END
$fn$;

-- Logs one event: the tenant's next cursor, under its log_heads row.
CREATE FUNCTION caas_log(p_tenant text, p_doc text, p_audience bigint, p_digest text, p_users text,
                         OUT o_cur bigint, OUT o_audience bigint)
LANGUAGE plpgsql AS $fn$
BEGIN
    o_audience := coalesce(p_audience, caas_audience(p_tenant, p_digest, p_users));
    INSERT INTO log_heads AS h (tenant, head) VALUES (p_tenant, 1)
        ON CONFLICT (tenant) DO UPDATE SET head = h.head + 1
        RETURNING h.head INTO o_cur;
    INSERT INTO events (tenant, cur, audience, msg_seq, doc)
        VALUES (p_tenant, o_cur, o_audience, NULL, p_doc);
END
$fn$;

-- Appends a batch of messages, each with its message.created event, in the
-- caller's transaction (one statement: one round trip, one commit). Locks are
-- taken in one global order so concurrent batches never deadlock: new audience
-- sets (by tenant, digest), then conversation heads (by tenant, conversation),
-- then tenants' log heads (by tenant). For each item it returns the seq, and
-- either the cursor of its new event or, for a retry, the stored original.
-- Items of one batch must not share (conversation, sender, client_msg_id): the
-- caller sends such a retry in a later batch.
CREATE FUNCTION caas_append(
    p_tenant text[], p_conv text[], p_id text[], p_sender text[], p_key text[],
    p_created bigint[], p_doc text[], p_words text[], p_caller_words boolean[],
    p_event text[], p_audience bigint[], p_digest text[], p_users text[])
RETURNS TABLE (o_i int, o_seq bigint, o_cur bigint, o_audience bigint, o_id text, o_doc text)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_n int := coalesce(cardinality(p_tenant), 0);
    v_stream bigint[];
    v_base bigint[];
    v_seq bigint[] := array_fill(NULL::bigint, ARRAY[v_n]);
    v_old boolean[] := array_fill(false, ARRAY[v_n]);
    v_cur bigint[];
    v_prev bigint;
    v_next bigint;
    k int;
    r record;
BEGIN
    -- Every statement reads the inputs with one unnest (a subscript into a text
    -- array walks it from the start) and looks rows up through LIMIT 1 laterals
    -- (index probes per item, never a scan of a whole table).
    FOR k IN SELECT x FROM generate_subscripts(p_tenant, 1) x
             WHERE p_audience[x] IS NULL ORDER BY p_tenant[x], p_digest[x] LOOP
        p_audience[k] := caas_audience(p_tenant[k], p_digest[k], p_users[k]);
    END LOOP;

    -- Each conversation's head, created if missing, locked in order.
    WITH h AS (
        INSERT INTO streams AS s (tenant, conversation)
        SELECT DISTINCT u.t, u.c FROM unnest(p_tenant, p_conv) AS u(t, c)
        ORDER BY 1, 2
        ON CONFLICT (tenant, conversation) DO UPDATE SET last_seq = s.last_seq
        RETURNING s.id, s.tenant, s.conversation, s.last_seq
    )
    SELECT array_agg(h.id ORDER BY u.i), array_agg(h.last_seq ORDER BY u.i)
        INTO v_stream, v_base
        FROM unnest(p_tenant, p_conv) WITH ORDINALITY AS u(t, c, i)
        JOIN h ON h.tenant = u.t AND h.conversation = u.c;

    -- Retries, seen now that the heads are locked: nothing else can store one
    -- of these keys before this transaction ends.
    FOR r IN SELECT u.i, m.seq, m.id, m.doc
             FROM unnest(v_stream, p_sender, p_key) WITH ORDINALITY AS u(stream, sender, key, i)
             CROSS JOIN LATERAL (
                 SELECT seq, id, doc FROM messages
                 WHERE client_msg_id = u.key AND stream = u.stream AND sender = u.sender
                 LIMIT 1
             ) m LOOP
        v_old[r.i] := true;
        v_seq[r.i] := r.seq;
        o_i := r.i; o_seq := r.seq; o_cur := NULL; o_audience := p_audience[r.i];
        o_id := r.id; o_doc := r.doc;
        RETURN NEXT;
    END LOOP;

    -- Seqs for the rest, per conversation in the batch's order.
    FOR r IN SELECT u.i, u.stream, u.base
             FROM unnest(v_stream, v_base, v_old) WITH ORDINALITY AS u(stream, base, old, i)
             WHERE NOT u.old ORDER BY u.stream, u.i LOOP
        IF v_prev IS DISTINCT FROM r.stream THEN
            v_prev := r.stream;
            v_next := r.base;
        END IF;
        v_next := v_next + 1;
        v_seq[r.i] := v_next;
    END LOOP;

    INSERT INTO messages (stream, seq, id, sender, client_msg_id, caller_words, words, doc)
    SELECT u.stream, u.seq, u.id, u.sender, u.key, u.caller,
           CASE WHEN u.words IS NULL THEN NULL
                ELSE array_to_tsvector(string_to_array(u.words, ' ')
                                       || (chr(57344) || u.stream::text)) END,
           u.doc
    FROM unnest(v_stream, v_seq, v_old, p_id, p_sender, p_key, p_caller_words, p_words, p_doc)
         AS u(stream, seq, old, id, sender, key, caller, words, doc)
    WHERE NOT u.old;

    -- The stored form wins over words a caller gave for the same id before.
    IF EXISTS (SELECT 1 FROM search_extra) THEN
        DELETE FROM search_extra WHERE ctid = ANY (ARRAY(
            SELECT e.ctid FROM unnest(v_stream, p_id, v_old) AS u(stream, id, old)
            CROSS JOIN LATERAL (
                SELECT ctid FROM search_extra WHERE stream = u.stream AND message_id = u.id LIMIT 1
            ) e
            WHERE NOT u.old));
    END IF;

    UPDATE streams s SET last_seq = v.seq, last_activity = v.at
    FROM (SELECT DISTINCT ON (u.stream) u.stream, u.seq, u.at
          FROM unnest(v_stream, v_seq, v_old, p_created) AS u(stream, seq, old, at)
          WHERE NOT u.old
          ORDER BY u.stream, u.seq DESC) v
    WHERE s.id = v.stream;

    -- Cursors, under each tenant's log head (locked until commit), in seq order
    -- within each conversation.
    WITH items AS (
        SELECT u.i, u.tenant,
               row_number() OVER (PARTITION BY u.tenant ORDER BY u.stream, u.seq) AS rn,
               count(*) OVER (PARTITION BY u.tenant) AS n
        FROM unnest(p_tenant, v_stream, v_seq, v_old) WITH ORDINALITY AS u(tenant, stream, seq, old, i)
        WHERE NOT u.old
    ), heads AS (
        INSERT INTO log_heads AS lh (tenant, head)
        SELECT tenant, max(n) FROM items GROUP BY tenant ORDER BY tenant
        ON CONFLICT (tenant) DO UPDATE SET head = lh.head + excluded.head
        RETURNING lh.tenant, lh.head
    )
    SELECT array_agg(hd.head - it.n + it.rn ORDER BY a.i) INTO v_cur
        FROM generate_series(1, v_n::bigint) a(i)
        LEFT JOIN items it ON it.i = a.i
        LEFT JOIN heads hd ON hd.tenant = it.tenant;

    INSERT INTO events (tenant, cur, audience, msg_seq, doc)
    SELECT u.tenant, u.cur, u.aud, u.seq, u.ev
    FROM unnest(p_tenant, v_cur, p_audience, v_seq, p_event) AS u(tenant, cur, aud, seq, ev)
    WHERE u.cur IS NOT NULL;

    RETURN QUERY SELECT u.i::int, u.seq, u.cur, u.aud, NULL::text, NULL::text
        FROM unnest(v_cur, v_seq, p_audience) WITH ORDINALITY AS u(cur, seq, aud, i)
        WHERE u.cur IS NOT NULL;
END
$fn$;
"#;

fn refuse(context: String) -> Error {
    Error::Unavailable {
        backend: BACKEND,
        context,
        temporary: false,
        source: None,
    }
}

/// Reads the schema's version: 0 when caas has never run here. A schema that
/// holds tables but no version was made by something else: refused.
async fn version(c: &mut Lease<'_>) -> Result<i32> {
    let row = c
        .query_one(
            "SELECT to_regclass('caas_schema') IS NOT NULL,
                    (SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema())",
            &[],
            "inspect the schema",
        )
        .await?;
    let (ours, tables): (bool, i64) = (super::codec::get(&row, 0)?, super::codec::get(&row, 1)?);
    if !ours {
        if tables != 0 {
            return Err(refuse(
                "the database schema holds tables of another application; refusing to use it \
                 (point caas at an empty schema)"
                    .into(),
            ));
        }
        return Ok(0);
    }
    let row = c
        .query_one(
            "SELECT version FROM caas_schema WHERE id = 1",
            &[],
            "read the schema version",
        )
        .await?;
    super::codec::get(&row, 0)
}

fn check_known(version: i32, known: i32) -> Result<()> {
    if version > known {
        return Err(refuse(format!(
            "the database has caas schema version {version}, newer than the {known} this binary \
             knows; it was written by a newer caas: upgrade this node, or restore a backup \
             taken before the upgrade"
        )));
    }
    if version < 0 {
        return Err(Error::internal(format!(
            "postgres: the database has an invalid schema version {version}"
        )));
    }
    Ok(())
}

/// Brings the schema up to date, or refuses a newer one. Runs once per
/// [`super::PostgresStore::connect`], before anything else.
pub(super) async fn migrate(c: &mut Lease<'_>, migrations: &[&str]) -> Result<()> {
    let known = i32::try_from(migrations.len()).unwrap_or(i32::MAX);
    let seen = version(c).await?;
    check_known(seen, known)?;
    if seen == known {
        return Ok(());
    }
    c.begin().await?;
    let outcome = async {
        // One migrator per schema at a time; the others wait here and then find
        // the work done.
        c.query(
            "SELECT pg_advisory_xact_lock(hashtext('caas_schema:' || current_schema()))",
            &[],
            "lock the schema for migration",
        )
        .await?;
        let seen = version(c).await?;
        check_known(seen, known)?;
        if seen == 0 {
            c.batch(
                "CREATE TABLE caas_schema (id int PRIMARY KEY CHECK (id = 1), version int NOT NULL);
                 INSERT INTO caas_schema (id, version) VALUES (1, 0);",
                "create the schema version table",
            )
            .await?;
        }
        for (i, sql) in migrations.iter().enumerate().skip(seen.max(0) as usize) {
            let to = i + 1;
            c.batch(sql, &format!("apply schema migration {to}"))
                .await?;
            c.batch(
                &format!("UPDATE caas_schema SET version = {to} WHERE id = 1"),
                "record the schema version",
            )
            .await?;
        }
        Ok(())
    }
    .await;
    c.finish(outcome).await
}
