//! The one way out to clients. Domain services say *what* happened to *whom* through
//! [`Fanout`]: a typed [`ServerEvent`] for an [`Audience`] of users, a conversation's
//! subscribers or login sessions. Each transport implements [`Delivery`] and decides how
//! that goes on its wire; the Socket.IO gateway's implementation is
//! [`socketio::SocketIoDelivery`] (rooms, the adapter across replicas, legacy twins). A
//! further transport adds a `Delivery`, not edits across services.
//!
//! * [`events`]: every server event, typed; [`legacy`]: their legacy twins, derived once;
//! * [`rooms`]: the Socket.IO room names;
//! * [`socketio`]: the Socket.IO delivery, and the replies a socket handler sends to the one
//!   socket it serves (`message:sent`, `auth:success`, `sync:complete`, `pong`, …).
//!
//! Nothing outside this module emits or names a room.

pub mod events;
pub mod legacy;
pub mod rooms;
pub mod socketio;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

pub use events::ServerEvent;
use events::{
    AuthError, ConversationEvent, KeysChanged, MessageDeleted, MessageEvent, MessagePinned, MessageUnpinned,
    ParticipantAdded, ParticipantRemoved, ParticipantUpdated, ReceiptCount, ReceiptUpdated, TypingEvent, UnreadUpdated,
};

use crate::{
    domain::{
        time::Timestamp,
        views::{Conversation, Message, PresenceView, ReactionUpdate, TypingUser, User},
    },
    storage::models::Role,
};

/// Who receives an event: every connection of `users`, of the `subscribers_of` a
/// conversation and of `sessions`, once each; minus the connections of `except_users` and
/// the one connection `except_connection` (the one that caused it).
#[derive(Clone, Debug, Default)]
pub struct Audience {
    pub users: Vec<Uuid>,
    pub subscribers_of: Option<Uuid>,
    pub sessions: Vec<Uuid>,
    pub except_users: Vec<Uuid>,
    pub except_connection: Option<String>,
}

impl Audience {
    pub fn users(users: &[Uuid]) -> Self {
        Self { users: users.to_vec(), ..Self::default() }
    }

    pub fn user(user: Uuid) -> Self {
        Self { users: vec![user], ..Self::default() }
    }
}

/// A transport that reaches clients (on every replica).
#[async_trait]
pub trait Delivery: Send + Sync {
    /// Sends `event` to every connection of `audience`.
    async fn deliver(&self, audience: &Audience, event: &ServerEvent<'_>);
    /// Closes every connection of `audience`.
    async fn disconnect(&self, audience: &Audience);
    /// Makes every live connection of `user` a subscriber of `conversation` (or no longer).
    async fn set_subscription(&self, user: Uuid, conversation: Uuid, subscribed: bool);
}

/// Typed events over the transports. Cheap to clone.
#[derive(Clone)]
pub struct Fanout {
    deliveries: Arc<[Arc<dyn Delivery>]>,
}

impl Fanout {
    pub fn new(deliveries: Vec<Arc<dyn Delivery>>) -> Self {
        Self { deliveries: deliveries.into() }
    }

    async fn send(&self, audience: Audience, event: ServerEvent<'_>) {
        if audience.users.is_empty() && audience.subscribers_of.is_none() && audience.sessions.is_empty() {
            return;
        }
        for delivery in self.deliveries.iter() {
            delivery.deliver(&audience, &event).await;
        }
    }

    /// `message:received` to every connection of every participant and every subscriber,
    /// once each, except the connection that sent it.
    pub async fn message_created(&self, message: &Message, participants: &[Uuid], origin: Option<&str>) {
        let audience = Audience {
            users: participants.to_vec(),
            subscribers_of: Some(message.conversation_id),
            except_connection: origin.map(str::to_owned),
            ..Audience::default()
        };
        self.send(audience, ServerEvent::MessageReceived(MessageEvent { message })).await;
    }

    /// `message:received` for a reply: its preview goes to those who may see the message it
    /// answers (`readers`), and is left out for the others (`strangers`: from before they
    /// joined, or cleared for them).
    pub async fn reply_created(
        &self,
        message: &Message,
        readers: &[Uuid],
        hidden: &Message,
        strangers: &[Uuid],
        origin: Option<&str>,
    ) {
        let audience = Audience {
            users: readers.to_vec(),
            subscribers_of: Some(message.conversation_id),
            except_users: strangers.to_vec(),
            except_connection: origin.map(str::to_owned),
            ..Audience::default()
        };
        self.send(audience, ServerEvent::MessageReceived(MessageEvent { message })).await;
        let audience = Audience { except_connection: origin.map(str::to_owned), ..Audience::users(strangers) };
        self.send(audience, ServerEvent::MessageReceived(MessageEvent { message: hidden })).await;
    }

    /// `reaction:updated` as `users` see it.
    pub async fn reaction_updated(&self, update: &ReactionUpdate, users: &[Uuid]) {
        self.send(Audience::users(users), ServerEvent::ReactionUpdated(update)).await;
    }

    pub async fn message_pinned(
        &self,
        conversation: Uuid,
        message: Uuid,
        by: Option<Uuid>,
        at: Timestamp,
        participants: &[Uuid],
    ) {
        let event = MessagePinned { conversation_id: conversation, message_id: message, pinned_by: by, pinned_at: at };
        self.send(Audience::users(participants), ServerEvent::MessagePinned(event)).await;
    }

    pub async fn message_unpinned(&self, conversation: Uuid, message: Uuid, by: Uuid, participants: &[Uuid]) {
        let event = MessageUnpinned { conversation_id: conversation, message_id: message, unpinned_by: by };
        self.send(Audience::users(participants), ServerEvent::MessageUnpinned(event)).await;
    }

    pub async fn message_updated(&self, message: &Message, participants: &[Uuid]) {
        self.send(Audience::users(participants), ServerEvent::MessageUpdated(MessageEvent { message })).await;
    }

    pub async fn message_deleted(&self, conversation: Uuid, message: Uuid, participants: &[Uuid]) {
        let event = ServerEvent::MessageDeleted(MessageDeleted { conversation_id: conversation, message_id: message });
        self.send(Audience::users(participants), event).await;
    }

    /// `conversation:updated` to every connection of `user`, with `user`'s own view.
    pub async fn conversation_updated(&self, user: Uuid, conversation: &Conversation) {
        let event = ConversationEvent { conversation, removed: false };
        self.send(Audience::user(user), ServerEvent::ConversationUpdated(event)).await;
    }

    /// `conversation:updated {conversation, removed: true}` to every connection of `user`: the
    /// conversation left their list (they left it, or it was deleted for everyone).
    pub async fn conversation_removed(&self, user: Uuid, conversation: &Conversation) {
        let event = ConversationEvent { conversation, removed: true };
        self.send(Audience::user(user), ServerEvent::ConversationUpdated(event)).await;
    }

    /// `presence:update` to every connection of the `audience`.
    pub async fn presence_changed(&self, view: &PresenceView, audience: &[Uuid]) {
        self.send(Audience::users(audience), ServerEvent::PresenceUpdate(view)).await;
    }

    /// `typing:started` / `typing:stopped` to the conversation's subscribers, except the
    /// typist's connections and those of `except_users`.
    pub async fn typing(&self, conversation: Uuid, typist: &TypingUser, started: bool, except_users: &[Uuid]) {
        let mut except = vec![typist.user_id];
        except.extend_from_slice(except_users);
        let audience = Audience { subscribers_of: Some(conversation), except_users: except, ..Audience::default() };
        let typing = TypingEvent::of(conversation, typist);
        let event = if started { ServerEvent::TypingStarted(typing) } else { ServerEvent::TypingStopped(typing) };
        self.send(audience, event).await;
    }

    /// `receipt:updated` to `others`' connections.
    pub async fn receipt_updated(
        &self,
        conversation: Uuid,
        message: Uuid,
        reader: Uuid,
        at: Timestamp,
        others: &[Uuid],
    ) {
        let receipt =
            ReceiptUpdated { conversation_id: conversation, message_id: message, user_id: reader, read_at: at };
        self.send(Audience::users(others), ServerEvent::ReceiptUpdated(receipt)).await;
    }

    /// `receipt:count` to every participant: how many have read `message` by now.
    pub async fn receipt_count(&self, conversation: Uuid, message: Uuid, count: usize, participants: &[Uuid]) {
        let event = ReceiptCount { conversation_id: conversation, message_id: message, count };
        self.send(Audience::users(participants), ServerEvent::ReceiptCount(event)).await;
    }

    /// `unread:updated` to every connection of `users` (whose counts are all these).
    pub async fn unread_updated(&self, users: &[Uuid], conversation: Uuid, unread: i64, total: i64) {
        let event = UnreadUpdated { conversation_id: conversation, unread_count: unread, total };
        self.send(Audience::users(users), ServerEvent::UnreadUpdated(event)).await;
    }

    /// `participant:added` to `audience` (the members who were there): `users` joined,
    /// added `by` someone (or by themselves).
    pub async fn participants_added(&self, conversation: Uuid, users: &[User], by: Uuid, audience: &[Uuid]) {
        let event = ParticipantAdded { conversation_id: conversation, users, by };
        self.send(Audience::users(audience), ServerEvent::ParticipantAdded(event)).await;
    }

    /// `participant:removed` to `audience` (the members who stay); `reason`: `removed` or `left`.
    pub async fn participant_removed(
        &self,
        conversation: Uuid,
        user: Uuid,
        by: Uuid,
        reason: &'static str,
        audience: &[Uuid],
    ) {
        let event = ParticipantRemoved { conversation_id: conversation, user_id: user, by, reason };
        self.send(Audience::users(audience), ServerEvent::ParticipantRemoved(event)).await;
    }

    /// `participant:updated` to every participant: `user`'s role is now `role`.
    pub async fn participant_updated(&self, conversation: Uuid, user: Uuid, role: Role, by: Uuid, audience: &[Uuid]) {
        let event = ParticipantUpdated { conversation_id: conversation, user_id: user, role, by };
        self.send(Audience::users(audience), ServerEvent::ParticipantUpdated(event)).await;
    }

    /// `keys:changed {userId}` to every connection of `audience`.
    pub async fn keys_changed(&self, user: Uuid, audience: &[Uuid]) {
        self.send(Audience::users(audience), ServerEvent::KeysChanged(KeysChanged { user_id: user })).await;
    }

    /// Tells the connections of a signed-out session why they go, then closes them.
    pub async fn session_revoked(&self, session: Uuid) {
        let audience = Audience { sessions: vec![session], ..Audience::default() };
        let event = AuthError { error: "the session was signed out".into(), code: "TOKEN_REVOKED" };
        self.send(audience.clone(), ServerEvent::AuthError(event)).await;
        for delivery in self.deliveries.iter() {
            delivery.disconnect(&audience).await;
        }
    }

    /// Subscribes every connection of `user` to the conversation (or unsubscribes).
    pub async fn set_subscription(&self, user: Uuid, conversation: Uuid, subscribed: bool) {
        for delivery in self.deliveries.iter() {
            delivery.set_subscription(user, conversation, subscribed).await;
        }
    }
}
