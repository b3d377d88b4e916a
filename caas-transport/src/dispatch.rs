//! One request dispatch for every front door. Each request the API offers on
//! more than one door (REST, the WebSocket, Socket.IO later) is a typed value
//! ([`crate::requests`], [`crate::ws::frames`]) that implements [`Operation`]:
//! the one mapping from the request to the core's use case and its typed
//! result. A door only turns its wire form into the request and the result into
//! its wire form; errors go through [`crate::ApiError`] on every door, so each
//! kind has one `api.md` code.

use std::future::Future;

use caas_core::ids::{ConversationId, Cursor, UserId};
use caas_core::model::{Message, Presence, Receipt, ReceiptKind};
use caas_core::ports::{HistoryPage, MessageHit};
use caas_core::service::{ConversationSummary, Page, SendMessage, Sent, SyncPage};
use caas_core::time::Timestamp;
use caas_core::{Caas, Error, Principal};

use crate::requests::{
    ConversationsRequest, DEFAULT_PAGE, DEFAULT_SEARCH_PAGE, ForwardRequest, HistoryRequest,
    MediaRequest, MediaUploadRequest, PinRequest, PinsRequest, PresenceQuery, ReceiptsRequest,
    SearchRequest,
};
use crate::ws::frames::{
    CallSignalRequest, DeleteRequest, EditRequest, PingRequest, PresenceRequest, ReactionRequest,
    ReadRequest, SendRequest, SyncRequest, TypingRequest,
};

/// One operation of the API: a typed request, the use case it runs, and its
/// typed result.
pub trait Operation: Send + Sized {
    /// What it returns.
    type Output: Send;
    /// Its name (the WebSocket frame `type`), for logs and metrics.
    const NAME: &'static str;

    /// Runs it as `p`. Use [`dispatch`], which also counts it.
    fn run(
        self,
        caas: &Caas,
        p: &Principal,
    ) -> impl Future<Output = Result<Self::Output, Error>> + Send;
}

/// Runs `op` as `p` and counts it (`caas_requests_total{operation, outcome}`),
/// whichever door it came through.
pub async fn dispatch<O: Operation>(caas: &Caas, p: &Principal, op: O) -> Result<O::Output, Error> {
    let out = op.run(caas, p).await;
    let outcome = match &out {
        Ok(_) => "ok",
        Err(e) => e.code(),
    };
    metrics::counter!("caas_requests_total", "operation" => O::NAME, "outcome" => outcome)
        .increment(1);
    out
}

/// Counts a message that was stored now (not a retry), on every door.
fn count_sent(sent: &Sent) {
    if !sent.duplicate {
        metrics::counter!("caas_messages_sent_total").increment(1);
    }
}

fn limit(requested: Option<u32>, default: u32) -> usize {
    usize::try_from(requested.unwrap_or(default)).unwrap_or(usize::MAX)
}

impl Operation for SendRequest {
    type Output = Sent;
    const NAME: &'static str = "send";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Sent, Error> {
        let message = SendMessage {
            client_msg_id: self.client_msg_id,
            body: self.body,
            ciphertext: self.ciphertext,
            attachments: self.attachments,
            reply_to: self.reply_to,
            mentions: self.mentions,
        };
        let sent = caas.send_message(p, &self.conversation_id, message).await?;
        count_sent(&sent);
        Ok(sent)
    }
}

impl Operation for ForwardRequest {
    type Output = Sent;
    const NAME: &'static str = "forward";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Sent, Error> {
        let key = match self.client_msg_id {
            Some(k) => k,
            // No key, no idempotency: a fresh one per call.
            None => caas_core::ids::ClientMsgId::parse(
                caas_core::ids::MessageId::generate(caas.now()).as_str(),
            )?,
        };
        let sent = caas
            .forward_message(
                p,
                &self.conversation_id,
                &self.message_id,
                &self.to_conversation_id,
                key,
            )
            .await?;
        count_sent(&sent);
        Ok(sent)
    }
}

impl Operation for EditRequest {
    type Output = Message;
    const NAME: &'static str = "edit";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Message, Error> {
        caas.edit_message(p, &self.conversation_id, &self.message_id, &self.body)
            .await
    }
}

impl Operation for DeleteRequest {
    type Output = Message;
    const NAME: &'static str = "delete";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Message, Error> {
        caas.delete_message(p, &self.conversation_id, &self.message_id)
            .await
    }
}

/// `react` (`add`) or `unreact`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaction {
    /// The request.
    pub request: ReactionRequest,
    /// Add (`react`) or remove (`unreact`).
    pub add: bool,
}

impl Operation for Reaction {
    type Output = Message;
    const NAME: &'static str = "react";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Message, Error> {
        let r = self.request;
        caas.react(p, &r.conversation_id, &r.message_id, &r.emoji, self.add)
            .await
    }
}

/// `pin` (`pinned`) or `unpin`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pinning {
    /// The request.
    pub request: PinRequest,
    /// Pin or unpin.
    pub pinned: bool,
}

impl Operation for Pinning {
    type Output = Message;
    const NAME: &'static str = "pin";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Message, Error> {
        let r = self.request;
        caas.pin(p, &r.conversation_id, &r.message_id, self.pinned)
            .await
    }
}

impl Operation for PinsRequest {
    type Output = Vec<Message>;
    const NAME: &'static str = "pins";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Vec<Message>, Error> {
        caas.pinned(p, &self.conversation_id).await
    }
}

impl Operation for HistoryRequest {
    type Output = Page<Message>;
    const NAME: &'static str = "history";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Page<Message>, Error> {
        let limit = limit(self.limit, DEFAULT_PAGE);
        let cursor = self
            .cursor
            .as_deref()
            .map(|s| {
                s.parse::<u64>()
                    .map_err(|_| Error::invalid("cursor", "not a cursor this list returned"))
            })
            .transpose()?
            .map(caas_core::ids::Seq);
        let page = match (self.before_seq, self.after_seq, cursor) {
            (Some(_), Some(_), _) => {
                return Err(Error::invalid(
                    "before_seq",
                    "give before_seq or after_seq, not both",
                ));
            }
            (None, Some(a), None) => HistoryPage::After(a),
            (Some(b), None, None) => HistoryPage::Before(b),
            (None, None, None) => HistoryPage::Latest,
            (None, Some(_), Some(cur)) => HistoryPage::After(cur),
            (_, None, Some(cur)) => HistoryPage::Before(cur),
        };
        let items = caas.history(p, &self.conversation_id, page, limit).await?;
        // A full page may have more beyond it, in its direction; seq 1 has
        // nothing before it.
        let next_cursor = match page {
            _ if items.len() < limit => None,
            HistoryPage::After(_) => items.last().map(|m| m.seq.to_string()),
            HistoryPage::Before(_) | HistoryPage::Latest => items
                .first()
                .filter(|m| m.seq.get() > 1)
                .map(|m| m.seq.to_string()),
        };
        Ok(Page { items, next_cursor })
    }
}

impl Operation for ReadRequest {
    type Output = Receipt;
    const NAME: &'static str = "read";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Receipt, Error> {
        let kind = if self.delivered_only {
            ReceiptKind::Delivered
        } else {
            ReceiptKind::Read
        };
        caas.mark(p, &self.conversation_id, kind, self.seq).await
    }
}

impl Operation for ReceiptsRequest {
    type Output = Vec<Receipt>;
    const NAME: &'static str = "receipts";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Vec<Receipt>, Error> {
        caas.receipts(p, &self.conversation_id).await
    }
}

impl Operation for TypingRequest {
    type Output = ();
    const NAME: &'static str = "typing";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<(), Error> {
        caas.typing(p, &self.conversation_id, self.typing).await
    }
}

impl Operation for PresenceRequest {
    type Output = Presence;
    const NAME: &'static str = "presence";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Presence, Error> {
        caas.set_presence(p, self.status).await
    }
}

impl Operation for PresenceQuery {
    type Output = Vec<Presence>;
    const NAME: &'static str = "presence_of";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Vec<Presence>, Error> {
        caas.presence(p, &self.users).await
    }
}

impl Operation for MediaUploadRequest {
    type Output = caas_core::service::UploadTicket;
    const NAME: &'static str = "media_upload";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Self::Output, Error> {
        let upload = caas_core::service::NewUpload {
            conversation_id: self.conversation_id,
            content_type: self.content_type,
            size: self.size,
            sha256: self.sha256,
            name: self.name,
        };
        caas.request_upload(p, upload).await
    }
}

/// `media_complete`: [`MediaRequest`] finishing an upload.
#[derive(Debug)]
pub struct CompleteMedia(pub MediaRequest);

impl Operation for CompleteMedia {
    type Output = caas_core::model::Media;
    const NAME: &'static str = "media_complete";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Self::Output, Error> {
        caas.complete_upload(p, &self.0.blob_id).await
    }
}

/// `media_url`: [`MediaRequest`] asking for a download URL.
#[derive(Debug)]
pub struct MediaUrl(pub MediaRequest);

impl Operation for MediaUrl {
    type Output = caas_core::service::DownloadUrl;
    const NAME: &'static str = "media_url";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Self::Output, Error> {
        caas.download_url(p, &self.0.blob_id).await
    }
}

/// `media_delete`: [`MediaRequest`] deleting an upload.
#[derive(Debug)]
pub struct DeleteMedia(pub MediaRequest);

impl Operation for DeleteMedia {
    type Output = ();
    const NAME: &'static str = "media_delete";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<(), Error> {
        caas.delete_media(p, &self.0.blob_id).await
    }
}

impl Operation for CallSignalRequest {
    type Output = ();
    const NAME: &'static str = "call_signal";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<(), Error> {
        caas.call_signal(p, &self.conversation_id, self.to, self.signal)
            .await
    }
}

/// A `sync` capped to a door's page size.
#[derive(Debug, Clone, PartialEq)]
pub struct Sync {
    /// The request.
    pub request: SyncRequest,
    /// The door's largest page.
    pub max_page: usize,
}

impl Operation for Sync {
    type Output = SyncPage;
    const NAME: &'static str = "sync";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<SyncPage, Error> {
        let cap = self.max_page.max(1);
        let limit = self
            .request
            .limit
            .map_or(cap, |l| usize::try_from(l).unwrap_or(usize::MAX))
            .min(cap);
        caas.sync(p, self.request.since.unwrap_or(Cursor(0)), limit)
            .await
    }
}

impl Operation for PingRequest {
    type Output = Timestamp;
    const NAME: &'static str = "ping";

    async fn run(self, caas: &Caas, _: &Principal) -> Result<Timestamp, Error> {
        Ok(caas.now())
    }
}

impl Operation for ConversationsRequest {
    type Output = Page<ConversationSummary>;
    const NAME: &'static str = "conversations";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Page<ConversationSummary>, Error> {
        caas.list_conversations(p, limit(self.limit, DEFAULT_PAGE), self.cursor.as_deref())
            .await
    }
}

/// `search_messages`.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchMessages(pub SearchRequest);

impl Operation for SearchMessages {
    type Output = Page<MessageHit>;
    const NAME: &'static str = "search_messages";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Page<MessageHit>, Error> {
        let r = self.0;
        caas.search_messages(
            p,
            &r.q,
            limit(r.limit, DEFAULT_SEARCH_PAGE),
            r.cursor.as_deref(),
        )
        .await
    }
}

/// `search_conversations`.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchConversations(pub SearchRequest);

impl Operation for SearchConversations {
    type Output = Page<ConversationId>;
    const NAME: &'static str = "search_conversations";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Page<ConversationId>, Error> {
        let r = self.0;
        caas.search_conversations(
            p,
            &r.q,
            limit(r.limit, DEFAULT_SEARCH_PAGE),
            r.cursor.as_deref(),
        )
        .await
    }
}

/// `search_users`.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchUsers(pub SearchRequest);

impl Operation for SearchUsers {
    type Output = Page<UserId>;
    const NAME: &'static str = "search_users";

    async fn run(self, caas: &Caas, p: &Principal) -> Result<Page<UserId>, Error> {
        let r = self.0;
        caas.search_users(
            p,
            &r.q,
            limit(r.limit, DEFAULT_SEARCH_PAGE),
            r.cursor.as_deref(),
        )
        .await
    }
}
