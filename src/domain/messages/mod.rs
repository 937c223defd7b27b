//! The message pipeline shared by the socket and REST paths: rate limit, membership and
//! block checks, the storage transaction (dedup + `seq`), then the broadcast. Also history
//! pages, edits and tombstones; the missed-message replay and `sync` are in [`replay`], the
//! delivered watermarks in [`delivered`].

mod delivered;
mod replay;

pub use delivered::DELIVERED_FLUSH;
pub use replay::{REPLAY_LIMIT, Replay, ReplayBatch};

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Instant,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Deps,
    access::{membership, message_in},
    conversations::page_limit,
    cursor,
    delivery::LocalSockets,
    mentions::mentioned_names,
    message_input::{Ciphertext, MessageEdit, OutgoingMessage},
    message_writer::{MessageWriter, NotifyPlanner, Stored},
    push::OutboxSignal,
    quota,
    reactions::reader_views,
    time::Timestamp,
    typing::TypingService,
    unread::UnreadNotifier,
    views::Message,
};
use crate::{
    clock::SharedClock,
    error::{AppError, AppResult},
    fanout::Fanout,
    shared_state::{Quota, SharedState},
    storage::{
        Storage,
        models::{HistoryQuery, MessageRecord, NewMessage},
    },
    sync::lock,
};

/// Messages one seed 003 poll returns at most; the next poll goes on from the last.
pub const POLL_PAGE: i64 = 100;
/// Conversations one forward may target.
pub const FORWARD_MAX: usize = 10;
/// A stored message and whether this call stored it (`false`: a retry found the original).
pub struct Sent {
    pub message: Message,
    pub created: bool,
}

/// How one socket's send overlaps with what the socket does next (the Socket.IO gateway
/// pipelines `message:send`): `queued` is told once the message holds its place in the
/// writer's queue, so the socket's next event may start while this one is committed; `turn`
/// resolves once the send queued before it on the same socket has been broadcast and
/// answered, so that broadcasts and acks keep the order the messages were sent in.
#[derive(Default)]
pub struct SendOrder {
    pub queued: Option<tokio::sync::oneshot::Sender<()>>,
    /// Closes (its sender is dropped) once the sends before it on the socket are done.
    pub turn: Option<tokio::sync::watch::Receiver<()>>,
}

impl SendOrder {
    fn release(&mut self) {
        if let Some(queued) = self.queued.take() {
            let _ = queued.send(());
        }
    }

    async fn wait_turn(&mut self) {
        if let Some(mut turn) = self.turn.take() {
            // Nothing is ever sent: `changed` ends (Err) when the earlier sends are done.
            let _ = turn.changed().await;
        }
    }

    /// A send answered without reaching the writer (refused early) still answers in its
    /// turn: its `message:error` and ack do not overtake the sends before it.
    pub async fn settle(&mut self) {
        self.release();
        self.wait_turn().await;
    }
}

pub struct HistoryPage {
    pub messages: Vec<Message>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// Which page of history a client asks for.
#[derive(Default)]
pub struct HistoryRequest<'a> {
    pub cursor: Option<&'a str>,
    pub limit: Option<i64>,
    pub after_seq: Option<i64>,
    pub since: Option<&'a str>,
}

#[derive(Serialize, Deserialize)]
struct HistoryPosition {
    s: i64,
}

/// The services a stored message moves on to: typing ends, unread counts change, and this
/// replica's delivered watermarks move for the users it holds sockets of.
pub struct SendPipeline {
    pub typing: Arc<TypingService>,
    pub unread: Arc<UnreadNotifier>,
    pub local: Arc<LocalSockets>,
}

/// The sends under way on this replica, so that a drain lets each one that may have been
/// stored finish its broadcast before the process exits (a message stored but never
/// broadcast reaches nobody live: a retry elsewhere finds it and broadcasts nothing).
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: tokio::sync::Notify,
    draining: AtomicBool,
}

/// One send under way (see [`InFlight`]).
struct Sending<'a>(&'a InFlight);

impl InFlight {
    /// `None` once draining: the send must not start.
    fn enter(&self) -> Option<Sending<'_>> {
        self.count.fetch_add(1, Ordering::SeqCst);
        let sending = Sending(self);
        (!self.draining.load(Ordering::SeqCst)).then_some(sending)
    }

    /// Stops new sends and waits for those under way.
    async fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        loop {
            let idle = self.idle.notified();
            let mut idle = std::pin::pin!(idle);
            idle.as_mut().enable();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

pub struct MessageService {
    storage: Arc<dyn Storage>,
    shared: SharedState,
    fanout: Fanout,
    typing: Arc<TypingService>,
    unread: Arc<UnreadNotifier>,
    local: Arc<LocalSockets>,
    outbox: OutboxSignal,
    clock: SharedClock,
    quota: Quota,
    writer: MessageWriter,
    /// Delivered watermarks not yet written: user → conversation → seq.
    delivered: Mutex<HashMap<Uuid, HashMap<Uuid, i64>>>,
    /// Held while gathered watermarks are written (see `flush_delivered_for`).
    delivered_writes: tokio::sync::Mutex<()>,
    in_flight: InFlight,
}

impl MessageService {
    /// Starts the group-commit writer; `per_minute` is each sender's message budget.
    pub fn new(deps: &Deps, pipeline: SendPipeline, per_minute: u32) -> Self {
        Self {
            storage: deps.storage.clone(),
            shared: deps.shared.clone(),
            fanout: deps.fanout.clone(),
            clock: deps.clock.clone(),
            typing: pipeline.typing,
            unread: pipeline.unread,
            local: pipeline.local,
            quota: Quota::per_minute(per_minute),
            writer: MessageWriter::spawn(
                deps.storage.clone(),
                NotifyPlanner { shared: deps.shared.clone(), webhooks: deps.outbox.webhooks },
                deps.outbox.sends_waiting.clone(),
            ),
            outbox: deps.outbox.signal.clone(),
            delivered: Mutex::default(),
            delivered_writes: tokio::sync::Mutex::new(()),
            in_flight: InFlight::default(),
        }
    }

    /// Sends `message` from `sender`. `origin` is the sending socket, which gets
    /// `message:sent` from its handler instead of `message:received`.
    pub async fn send(&self, sender: Uuid, message: OutgoingMessage, origin: Option<&str>) -> AppResult<Sent> {
        self.send_copy(sender, message, origin, None, &mut SendOrder::default()).await
    }

    /// [`Self::send`] from a socket whose sends are pipelined (see [`SendOrder`]).
    pub async fn send_ordered(
        &self,
        sender: Uuid,
        message: OutgoingMessage,
        origin: Option<&str>,
        mut order: SendOrder,
    ) -> AppResult<Sent> {
        let sent = self.send_copy(sender, message, origin, None, &mut order).await;
        order.settle().await;
        sent
    }

    /// Forwards a message to up to [`FORWARD_MAX`] conversations the caller is in: each copy
    /// goes through the send pipeline (its own transaction, broadcasts, rate limit) with
    /// `forwardedFrom` set; a retried forward finds the copies made before. Returns the
    /// copies and how many this call created.
    pub async fn forward(&self, user: Uuid, message: Uuid, targets: &[Uuid]) -> AppResult<(Vec<Message>, usize)> {
        let mut unique = Vec::new();
        for target in targets {
            if !unique.contains(target) {
                unique.push(*target);
            }
        }
        if unique.is_empty() || unique.len() > FORWARD_MAX {
            return Err(AppError::invalid_field("conversationIds", "must name 1 to 10 conversations"));
        }
        let original = self.storage.message(message).await?.ok_or(AppError::NotFound("message"))?;
        let (_, participant) = membership(self.storage.as_ref(), user, original.conversation_id).await?;
        // What came before the caller joined is not theirs to see, nor to forward.
        if original.seq <= participant.joined_seq {
            return Err(AppError::NotFound("message"));
        }
        let content =
            original.content.clone().filter(|_| original.deleted_at.is_none()).ok_or(AppError::NotFound("message"))?;
        if original.is_encrypted {
            // Its ciphertext was made for the keys of its own conversation's members.
            return Err(AppError::validation(
                "an encrypted message cannot be forwarded: re-encrypt it and send it as a new message",
            ));
        }
        for target in &unique {
            membership(self.storage.as_ref(), user, *target).await?;
        }
        let mut copies = Vec::with_capacity(unique.len());
        let mut created = 0;
        let mut refusal = None;
        for target in unique {
            let copy = OutgoingMessage {
                conversation_id: target,
                content: content.clone(),
                client_message_id: format!("forward:{message}:{target}"),
                content_type: original.content_type,
                media: original.media.as_ref().map(|m| m.0.clone()),
                encrypted_content: None,
                reply_to_id: None,
            };
            match self.send_copy(user, copy, None, Some(original.id), &mut SendOrder::default()).await {
                Ok(sent) => {
                    created += i32::from(sent.created);
                    copies.push(sent.message);
                }
                Err(err) => {
                    refusal = Some(err);
                    break;
                }
            }
        }
        // Copies made before a refusal (say, the rate limit) still count.
        if created > 0 {
            self.storage.increment_forwarded(original.id, created).await?;
        }
        match refusal {
            Some(err) => Err(err),
            None => Ok((copies, created as usize)),
        }
    }

    async fn send_copy(
        &self,
        sender: Uuid,
        message: OutgoingMessage,
        origin: Option<&str>,
        forwarded_from: Option<Uuid>,
        order: &mut SendOrder,
    ) -> AppResult<Sent> {
        let received = Instant::now();
        // A draining replica takes no new sends (their clients are cut, or get this answer and
        // retry elsewhere); those under way finish their broadcast first (see `drain`).
        let Some(_sending) = self.in_flight.enter() else {
            return Err(AppError::RateLimited { retry_after: std::time::Duration::from_secs(1) });
        };
        if let Err(refusal) = self.admit(sender).await {
            return self.original_or(sender, &message.client_message_id, refusal).await;
        }
        let (reply_to_id, mentions) = match self.resolve(sender, &message).await {
            Ok(resolved) => resolved,
            Err(refusal) => return self.original_or(sender, &message.client_message_id, refusal).await,
        };
        // `{uploadId}` media items get their url, type, size and thumbnail from the upload,
        // which must be the sender's (a forwarded copy keeps the original's items as they are).
        let media = match message.media {
            Some(media) if forwarded_from.is_none() => {
                match super::uploads::fill_media(self.storage.as_ref(), sender, media).await {
                    Ok(filled) => Some(filled),
                    Err(refusal) => return self.original_or(sender, &message.client_message_id, refusal).await,
                }
            }
            other => other,
        };
        let new = NewMessage {
            id: Uuid::now_v7(),
            conversation_id: message.conversation_id,
            sender_id: sender,
            client_message_id: message.client_message_id,
            content: message.content,
            content_type: message.content_type,
            media,
            encrypted_content: message.encrypted_content.map(Ciphertext::into_inner),
            forwarded_from,
            reply_to_id,
            mentions,
            created_at: self.clock.now(),
            notify: None,
        };
        let client_message_id = new.client_message_id.clone();
        let queued = self.writer.enqueue(new).await;
        order.release();
        let outcome = match queued {
            Ok(queued) => queued.outcome().await,
            Err(err) => Err(err),
        };
        order.wait_turn().await;
        let (stored, participants) = match outcome {
            Ok(Stored::Created { record, participants, notified }) => {
                if notified {
                    self.outbox.wake();
                }
                (record, participants)
            }
            Ok(Stored::Duplicate(original)) => {
                metrics::counter!("parley_messages_deduplicated_total").increment(1);
                return Ok(Sent { message: Message::from(&original), created: false });
            }
            Err(refusal @ (AppError::NotFound(_) | AppError::NotInConversation | AppError::Blocked(_))) => {
                return self.original_or(sender, &client_message_id, refusal).await;
            }
            Err(other) => return Err(other),
        };
        metrics::counter!("parley_messages_persisted_total").increment(1);
        metrics::histogram!("parley_message_latency_seconds", "stage" => "persisted")
            .record(received.elapsed().as_secs_f64());
        let view = Message::from(&stored);
        match self.split_for_reply(&view, &participants).await {
            Some((readers, strangers)) => {
                let hidden = Message { reply_to: None, ..view.clone() };
                self.fanout.reply_created(&view, &readers, &hidden, &strangers, origin).await;
            }
            _ => self.fanout.message_created(&view, &participants, origin).await,
        }
        metrics::counter!("parley_messages_delivered_total").increment(participants.len() as u64);
        metrics::histogram!("parley_message_latency_seconds", "stage" => "emitted")
            .record(received.elapsed().as_secs_f64());
        self.typing.end(sender, stored.conversation_id).await;
        self.record_delivery(&stored, &participants);
        let recipients: Vec<Uuid> = participants.iter().copied().filter(|p| *p != sender).collect();
        self.unread.changed(&recipients, stored.conversation_id);
        Ok(Sent { message: view, created: true })
    }

    /// A drain: new sends are refused, the delivered watermarks gathered but not written are
    /// dropped (their sockets are being cut: a reconnect replays those messages rather than
    /// risk skipping one that was still on its way), and this waits for the sends under way
    /// to finish their broadcasts.
    pub async fn drain(&self) {
        lock(&self.delivered).clear();
        self.in_flight.drain().await;
    }

    /// What a message refers to, checked before it is written: the message it answers (one of
    /// the same conversation that the sender can see) and the participants its `@username`s
    /// name. Plain messages (no reply, no `@`) cost nothing here.
    async fn resolve(&self, sender: Uuid, message: &OutgoingMessage) -> AppResult<(Option<Uuid>, Vec<Uuid>)> {
        let reply_to_id = match message.reply_to_id {
            Some(id) => {
                let (_, participant) = membership(self.storage.as_ref(), sender, message.conversation_id).await?;
                let target = self.storage.message(id).await?;
                let visible = target.is_some_and(|target| {
                    target.conversation_id == message.conversation_id && target.seq > participant.visible_from()
                });
                if !visible {
                    return Err(AppError::invalid_field("replyToId", "must be a message of this conversation"));
                }
                Some(id)
            }
            None => None,
        };
        let names = mentioned_names(&message.content);
        if names.is_empty() {
            return Ok((reply_to_id, Vec::new()));
        }
        let found = self.storage.members_named(message.conversation_id, &names).await?;
        let mentions = names
            .iter()
            .filter_map(|name| found.iter().find(|(_, username)| username == name).map(|(id, _)| *id))
            .collect();
        Ok((reply_to_id, mentions))
    }

    /// A refused send that is in fact a retry of a stored message answers with the original:
    /// a client retrying after a lost ack must not see an error for a message that exists.
    async fn original_or(&self, sender: Uuid, client_message_id: &str, refusal: AppError) -> AppResult<Sent> {
        match self.storage.message_by_client_id(sender, client_message_id).await? {
            Some(original) => Ok(Sent { message: Message::from(&original), created: false }),
            None => Err(refusal),
        }
    }

    /// The shared token bucket; an unreachable Redis admits rather than blocking chat.
    async fn admit(&self, sender: Uuid) -> AppResult<()> {
        quota::take(&self.shared, &format!("messages:{sender}"), self.quota, "messages").await
    }

    pub async fn history(&self, user: Uuid, conversation: Uuid, request: HistoryRequest<'_>) -> AppResult<HistoryPage> {
        let limit = page_limit(request.limit)?;
        let (_, participant) = membership(self.storage.as_ref(), user, conversation).await?;
        let query = match (request.after_seq, request.since, request.cursor) {
            (Some(_), Some(_), _) => return Err(AppError::validation("use either afterSeq or since, not both")),
            (Some(seq), None, _) if seq < 0 => return Err(AppError::invalid_field("afterSeq", "must be 0 or more")),
            (Some(seq), None, _) => HistoryQuery::After { seq },
            (None, Some(since), _) => HistoryQuery::Since { time: parse_time("since", since)? },
            (None, None, Some(raw)) => HistoryQuery::Before { seq: Some(cursor::decode::<HistoryPosition>(raw)?.s) },
            (None, None, None) => HistoryQuery::Before { seq: None },
        };
        let mut rows = self.storage.history(conversation, participant.cleared_seq, query, limit + 1).await?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = match query {
            HistoryQuery::Before { .. } if has_more => {
                rows.last().map(|m| cursor::encode(&HistoryPosition { s: m.seq }))
            }
            _ => None,
        };
        let messages = self.views_for(user, participant.visible_from(), &rows).await?;
        Ok(HistoryPage { messages, next_cursor, has_more })
    }

    /// Seed 003's poll: messages after `since` (oldest first, at most a page), and the time
    /// to pass as the next `since`. Every message gets a `created_at` later than the one
    /// before it in its conversation, at commit (see the storage's send), so the next poll
    /// from the returned time misses and repeats nothing, even for a message committed in the
    /// same millisecond as this poll.
    pub async fn poll(
        &self,
        user: Uuid,
        conversation: Uuid,
        since: Option<&str>,
    ) -> AppResult<(Vec<Message>, Timestamp)> {
        // Read before the messages: anything committed after this is later than it.
        let (record, participant) = membership(self.storage.as_ref(), user, conversation).await?;
        let since = match since {
            Some(raw) => parse_time("since", raw)?,
            None => DateTime::<Utc>::UNIX_EPOCH,
        };
        let query = HistoryQuery::Since { time: since };
        let rows = self.storage.history(conversation, participant.cleared_seq, query, POLL_PAGE).await?;
        let next = rows.last().map_or(record.last_activity_at, |m| m.created_at);
        Ok((self.views_for(user, participant.visible_from(), &rows).await?, Timestamp(next)))
    }

    /// Edits the caller's own message: new text for a plain message, a new ciphertext for an
    /// encrypted one.
    pub async fn edit(&self, user: Uuid, conversation: Uuid, message: Uuid, edit: MessageEdit) -> AppResult<Message> {
        membership(self.storage.as_ref(), user, conversation).await?;
        let existing = self.message_in(conversation, message).await?;
        if existing.sender_id != user {
            return Err(AppError::Forbidden("you can only edit your own messages"));
        }
        let (content, ciphertext) = match (&edit, existing.is_encrypted) {
            (MessageEdit::Text(text), false) => (text.as_str(), None),
            (MessageEdit::Encrypted(ciphertext), true) => ("", Some(ciphertext.as_str())),
            (MessageEdit::Text(_), true) => {
                return Err(AppError::invalid_field("encryptedContent", "is required to edit an encrypted message"));
            }
            (MessageEdit::Encrypted(_), false) => {
                return Err(AppError::invalid_field("content", "is required to edit a message that is not encrypted"));
            }
        };
        let edited = self
            .storage
            .edit_message(message, content, ciphertext, self.clock.now())
            .await?
            .ok_or(AppError::NotFound("message"))?;
        // Reactions stay as they are: `message:updated` carries none.
        let view = Message { reactions: None, ..Message::from(&edited) };
        let participants = self.storage.member_ids(conversation).await?;
        match self.split_for_reply(&view, &participants).await {
            Some((readers, strangers)) => {
                self.fanout.message_updated(&view, &readers).await;
                self.fanout.message_updated(&Message { reply_to: None, ..view.clone() }, &strangers).await;
            }
            _ => self.fanout.message_updated(&view, &participants).await,
        }
        Ok(view)
    }

    /// For a reply that some participants may not see the original of (from before they
    /// joined, or cleared for them): (those who may, those who may not). `None` for other
    /// messages, or when that cannot be read: then everyone gets the preview the sender saw.
    async fn split_for_reply(&self, view: &Message, participants: &[Uuid]) -> Option<(Vec<Uuid>, Vec<Uuid>)> {
        let reply = view.reply_to.as_ref()?;
        let strangers = match self.storage.participants_not_seeing(view.conversation_id, reply.seq).await {
            Ok(strangers) => strangers,
            Err(err) => {
                tracing::warn!(error = %err, "reply preview audience not read");
                return None;
            }
        };
        if strangers.is_empty() {
            return None;
        }
        let readers = participants.iter().copied().filter(|p| !strangers.contains(p)).collect();
        Some((readers, strangers))
    }

    /// `rows` of one conversation as `reader` sees them (see [`reader_views`]).
    pub(crate) async fn views_for(
        &self,
        reader: Uuid,
        visible_from: i64,
        rows: &[MessageRecord],
    ) -> AppResult<Vec<Message>> {
        reader_views(self.storage.as_ref(), reader, rows, |_| visible_from).await
    }

    /// Deletes (tombstones) a message: its sender, or an owner/admin of the conversation.
    pub async fn delete(&self, user: Uuid, conversation: Uuid, message: Uuid) -> AppResult<Message> {
        let (_, participant) = membership(self.storage.as_ref(), user, conversation).await?;
        let existing = self.message_in(conversation, message).await?;
        if existing.sender_id != user && !participant.role.moderates() {
            return Err(AppError::Forbidden("you can only delete your own messages"));
        }
        if existing.deleted_at.is_some() {
            return Ok(Message::from(&existing));
        }
        let Some(deleted) = self.storage.delete_message(message, self.clock.now()).await? else {
            return Ok(Message::from(&self.message_in(conversation, message).await?));
        };
        let participants = self.storage.member_ids(conversation).await?;
        self.fanout.message_deleted(conversation, message, &participants).await;
        self.unread.changed(&participants, conversation);
        Ok(Message::from(&deleted))
    }

    async fn message_in(&self, conversation: Uuid, message: Uuid) -> AppResult<MessageRecord> {
        message_in(self.storage.as_ref(), conversation, message).await
    }
}

fn parse_time(field: &str, raw: &str) -> AppResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| AppError::invalid_field(field, "must be an RFC 3339 time"))
}
