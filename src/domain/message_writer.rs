//! Group commit for sends. Every send of this replica, socket or REST, queues here; one task
//! takes whatever queued up while the previous batch was being committed (up to
//! [`MAX_BATCH`]), checks the batch's conversations, members and blocks with two queries,
//! and stores it in one transaction. Each sender gets its answer only after the commit, so
//! "acked means stored" holds, while the database sees one transaction per batch instead of
//! one per message. An idle server commits a lone message at once: no timer holds it back.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    storage::{
        Storage, StorageError,
        models::{ConversationKind, MessageRecord, NewMessage, SendContext, SendOutcome},
    },
};

/// Messages one transaction stores at most.
pub const MAX_BATCH: usize = 256;
/// Sends waiting for the writer before senders wait for room in the queue.
const QUEUE_DEPTH: usize = 8192;

/// What became of one send.
pub enum Stored {
    /// Stored now; `participants` are the conversation's members it goes to.
    Created { record: MessageRecord, participants: Vec<Uuid> },
    /// A retry: the message stored earlier under the same (sender, clientMessageId).
    Duplicate(MessageRecord),
}

struct PendingSend {
    message: NewMessage,
    reply: oneshot::Sender<AppResult<Stored>>,
}

/// The sending side of the group-commit queue; the writer task ends when it is dropped.
pub struct MessageWriter {
    queue: mpsc::Sender<PendingSend>,
}

impl MessageWriter {
    pub fn spawn(storage: Arc<dyn Storage>) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(storage, pending));
        Self { queue }
    }

    /// Stores `message` with the next batch: refused (not found, not a member, blocked) or
    /// stored, once the batch's transaction committed.
    pub async fn store(&self, message: NewMessage) -> AppResult<Stored> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(PendingSend { message, reply })
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("the message writer has stopped")))?;
        answer.await.map_err(|_| AppError::Internal(anyhow::anyhow!("the message writer dropped a send")))?
    }
}

async fn run(storage: Arc<dyn Storage>, mut queue: mpsc::Receiver<PendingSend>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics::histogram!("parley_send_batch_size").record(batch.len() as f64);
        let (messages, replies): (Vec<NewMessage>, Vec<_>) = batch.drain(..).map(|p| (p.message, p.reply)).unzip();
        let answers = store_isolating_failures(storage.as_ref(), &messages).await;
        for (reply, answer) in replies.into_iter().zip(answers) {
            // A sender that went away (its socket closed) no longer waits; the message stays stored.
            let _ = reply.send(answer);
        }
    }
}

/// [`store_batch`]; when the batch's transaction fails, each message is tried alone, so one
/// message the database refuses does not take the others of its batch down with it.
async fn store_isolating_failures(storage: &dyn Storage, messages: &[NewMessage]) -> Vec<AppResult<Stored>> {
    let err = match store_batch(storage, messages).await {
        Ok(answers) => return answers,
        Err(err) => err,
    };
    tracing::error!(error = %err, sends = messages.len(), "a batch of messages was not stored; storing them one by one");
    let mut answers = Vec::with_capacity(messages.len());
    for message in messages {
        let answer = match store_batch(storage, std::slice::from_ref(message)).await {
            Ok(mut one) => one.pop().unwrap_or_else(|| Err(AppError::Internal(anyhow::anyhow!("no outcome")))),
            Err(err) => {
                tracing::error!(error = %err, "a message was not stored");
                Err(AppError::Internal(anyhow::anyhow!("message not stored: {err}")))
            }
        };
        answers.push(answer);
    }
    answers
}

/// Checks every send of the batch, stores those that pass, and answers each in order.
async fn store_batch(storage: &dyn Storage, messages: &[NewMessage]) -> Result<Vec<AppResult<Stored>>, StorageError> {
    let checks = check_senders(storage, messages).await?;
    let mut accepted = Vec::with_capacity(messages.len());
    let mut answers: Vec<Option<AppResult<Stored>>> = Vec::with_capacity(messages.len());
    let mut participants = Vec::with_capacity(messages.len());
    for (message, check) in messages.iter().zip(checks) {
        match check {
            Ok(members) => {
                accepted.push(message.clone());
                participants.push(members);
                answers.push(None);
            }
            Err(refusal) => answers.push(Some(Err(refusal))),
        }
    }
    let outcomes = storage.send_messages(&accepted).await?;
    let mut stored = outcomes.into_iter().zip(participants).map(|(outcome, participants)| match outcome {
        SendOutcome::Created(record) => Ok(Stored::Created { record, participants }),
        SendOutcome::Duplicate(record) => Ok(Stored::Duplicate(record)),
        SendOutcome::ConversationGone => Err(AppError::NotFound("conversation")),
    });
    let missing = || Err(AppError::Internal(anyhow::anyhow!("the store returned too few outcomes")));
    Ok(answers.into_iter().map(|answer| answer.or_else(|| stored.next()).unwrap_or_else(missing)).collect())
}

/// Per send: the conversation's members when the sender may post there, or the refusal
/// (unknown or deleted conversation, not a member, a block between the two of a direct chat).
async fn check_senders(
    storage: &dyn Storage,
    messages: &[NewMessage],
) -> Result<Vec<AppResult<Vec<Uuid>>>, StorageError> {
    let mut ids: Vec<Uuid> = messages.iter().map(|m| m.conversation_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let contexts: HashMap<Uuid, SendContext> =
        storage.send_contexts(&ids).await?.into_iter().map(|c| (c.id, c)).collect();
    let mut direct_members: Vec<Uuid> = contexts
        .values()
        .filter(|c| c.kind == ConversationKind::Direct)
        .flat_map(|c| c.members.iter().copied())
        .collect();
    direct_members.sort_unstable();
    direct_members.dedup();
    let blocks: HashSet<(Uuid, Uuid)> = storage.blocks_among(&direct_members).await?.into_iter().collect();
    Ok(messages.iter().map(|message| check_sender(&contexts, &blocks, message)).collect())
}

fn check_sender(
    contexts: &HashMap<Uuid, SendContext>,
    blocks: &HashSet<(Uuid, Uuid)>,
    message: &NewMessage,
) -> AppResult<Vec<Uuid>> {
    let sender = message.sender_id;
    let context = contexts.get(&message.conversation_id).ok_or(AppError::NotFound("conversation"))?;
    if !context.members.contains(&sender) {
        return Err(AppError::NotInConversation);
    }
    let blocked = |other: Uuid| blocks.contains(&(sender, other)) || blocks.contains(&(other, sender));
    if context.kind == ConversationKind::Direct && context.members.iter().any(|m| *m != sender && blocked(*m)) {
        return Err(AppError::Blocked("messages between you and this user are blocked"));
    }
    Ok(context.members.clone())
}
