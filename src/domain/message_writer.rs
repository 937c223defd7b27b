//! Group commit for sends. Every send of this replica, socket or REST, queues here; one task
//! takes whatever queued up while the previous batch was being committed (up to
//! [`MAX_BATCH`]), checks the batch's conversations, members and blocks ([`SendChecks`]:
//! one short query while its cache is current), and stores it in one transaction. Each
//! sender gets its answer only after the commit, so "acked means stored" holds, while the
//! database sees one transaction per batch instead of one per message. An idle server commits a lone message at once: no timer holds it back.
//!
//! Before the transaction, the [`NotifyPlanner`] works out which recipients are offline,
//! so the transaction also writes the outbox rows of their pushes and webhooks: "acked"
//! means its notifications will go out too.

use std::{collections::HashSet, sync::Arc};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::{
    domain::{
        push::SendsWaiting,
        send_checks::{Checked, SendChecks},
    },
    error::{AppError, AppResult},
    shared_state::SharedState,
    storage::{
        Storage, StorageError,
        models::{ConversationKind, MessageRecord, NewMessage, SendOutcome},
        push::Notify,
    },
};

/// Messages one transaction stores at most.
pub const MAX_BATCH: usize = 256;
/// Sends waiting for the writer before senders wait for room in the queue.
const QUEUE_DEPTH: usize = 8192;

/// What became of one send.
pub enum Stored {
    /// Stored now; `participants` are the conversation's members it goes to; `notified`:
    /// outbox rows may have been written with it.
    Created { record: MessageRecord, participants: Vec<Uuid>, notified: bool },
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
    waiting: SendsWaiting,
}

impl MessageWriter {
    pub fn spawn(storage: Arc<dyn Storage>, planner: NotifyPlanner, waiting: SendsWaiting) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(storage, planner, pending));
        Self { queue, waiting }
    }

    /// Stores `message` with the next batch: refused (not found, not a member, blocked) or
    /// stored, once the batch's transaction committed.
    pub async fn store(&self, message: NewMessage) -> AppResult<Stored> {
        self.enqueue(message).await?.outcome().await
    }

    /// Gives `message` its place in the writer's queue (waiting while the queue is full) and
    /// returns the outcome to come: sends queued one after the other are stored in that order,
    /// so a socket may go on with its next event while this one is being committed.
    pub async fn enqueue(&self, message: NewMessage) -> AppResult<QueuedSend> {
        let (reply, answer) = oneshot::channel();
        let waited = Waited::new(&self.waiting);
        self.queue
            .send(PendingSend { message, reply })
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("the message writer has stopped")))?;
        Ok(QueuedSend { answer, _waited: waited })
    }
}

/// A send in the writer's queue.
pub struct QueuedSend {
    answer: oneshot::Receiver<AppResult<Stored>>,
    _waited: Waited,
}

impl QueuedSend {
    /// Refused or stored, once its batch's transaction committed.
    pub async fn outcome(self) -> AppResult<Stored> {
        self.answer.await.map_err(|_| AppError::Internal(anyhow::anyhow!("the message writer dropped a send")))?
    }
}

/// Counts a send in [`SendsWaiting`] until it is answered or abandoned.
struct Waited(SendsWaiting);

impl Waited {
    fn new(waiting: &SendsWaiting) -> Self {
        waiting.add(1);
        Self(waiting.clone())
    }
}

impl Drop for Waited {
    fn drop(&mut self) {
        self.0.remove(1);
    }
}

async fn run(storage: Arc<dyn Storage>, planner: NotifyPlanner, mut queue: mpsc::Receiver<PendingSend>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut checks = SendChecks::default();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics::histogram!("parley_send_batch_size").record(batch.len() as f64);
        let (messages, replies): (Vec<NewMessage>, Vec<_>) = batch.drain(..).map(|p| (p.message, p.reply)).unzip();
        let answers = store_isolating_failures(storage.as_ref(), &mut checks, &planner, messages).await;
        for (reply, answer) in replies.into_iter().zip(answers) {
            // A sender that went away (its socket closed) no longer waits; the message stays stored.
            let _ = reply.send(answer);
        }
    }
}

/// Checks the batch, plans its notifications and stores what passed in one transaction;
/// when that transaction fails, each message is tried alone, so one message the database
/// refuses does not take the others of its batch down with it. One answer per send, in order.
async fn store_isolating_failures(
    storage: &dyn Storage,
    checks: &mut SendChecks,
    planner: &NotifyPlanner,
    messages: Vec<NewMessage>,
) -> Vec<AppResult<Stored>> {
    let count = messages.len();
    let started = std::time::Instant::now();
    let checks = match checks.check(storage, &messages).await {
        Ok(checks) => checks,
        Err(err) => {
            tracing::error!(error = %err, sends = count, "the checks of a batch of sends failed");
            return (0..count).map(|_| Err(AppError::Internal(anyhow::anyhow!("checking the send: {err}")))).collect();
        }
    };
    let mut answers: Vec<Option<AppResult<Stored>>> = Vec::with_capacity(count);
    let mut accepted: Vec<(NewMessage, Checked)> = Vec::with_capacity(count);
    for (message, check) in messages.into_iter().zip(checks) {
        match check {
            Ok(checked) => {
                accepted.push((message, checked));
                answers.push(None);
            }
            Err(refusal) => answers.push(Some(Err(refusal))),
        }
    }
    let checked = std::time::Instant::now();
    planner.plan(&mut accepted).await;
    let planned = std::time::Instant::now();
    let stored = match store_accepted(storage, &accepted).await {
        Ok(stored) => stored,
        Err(err) => {
            tracing::error!(error = %err, sends = accepted.len(), "a batch of messages was not stored; storing them one by one");
            let mut stored = Vec::with_capacity(accepted.len());
            for one in accepted.chunks(1) {
                stored.push(match store_accepted(storage, one).await {
                    Ok(mut answer) => {
                        answer.pop().unwrap_or_else(|| Err(AppError::Internal(anyhow::anyhow!("no outcome"))))
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "a message was not stored");
                        Err(AppError::Internal(anyhow::anyhow!("message not stored: {err}")))
                    }
                });
            }
            stored
        }
    };
    let stage = |name: &'static str, from: std::time::Instant, to: std::time::Instant| {
        metrics::histogram!("parley_send_batch_seconds", "stage" => name).record((to - from).as_secs_f64());
    };
    stage("checks", started, checked);
    stage("plan", checked, planned);
    stage("store", planned, std::time::Instant::now());
    let mut stored = stored.into_iter();
    let missing = || Err(AppError::Internal(anyhow::anyhow!("the store returned too few outcomes")));
    answers.into_iter().map(|answer| answer.or_else(|| stored.next()).unwrap_or_else(missing)).collect()
}

/// Stores sends that passed their checks in one transaction: one answer each, in order.
async fn store_accepted(
    storage: &dyn Storage,
    accepted: &[(NewMessage, Checked)],
) -> Result<Vec<AppResult<Stored>>, StorageError> {
    let messages: Vec<NewMessage> = accepted.iter().map(|(m, _)| m.clone()).collect();
    let outcomes = storage.send_messages(&messages).await?;
    Ok(outcomes
        .into_iter()
        .zip(accepted)
        .map(|(outcome, (message, checked))| match outcome {
            SendOutcome::Created(record) => Ok(Stored::Created {
                record,
                participants: checked.members.clone(),
                notified: message.notify.is_some(),
            }),
            SendOutcome::Duplicate(record) => Ok(Stored::Duplicate(record)),
            SendOutcome::ConversationGone => Err(AppError::NotFound("conversation")),
        })
        .collect())
}

/// Works out, for a batch of sends, which recipients have no connected socket on any
/// replica (`/chat` or `/chat/ws`): they get pushes (and `message.offline` webhooks).
/// Presence is only asked about recipients who could get something: those with a push
/// subscription (known from the send's checks), or everyone when webhooks are configured.
pub struct NotifyPlanner {
    pub shared: SharedState,
    pub webhooks: bool,
}

impl NotifyPlanner {
    async fn plan(&self, accepted: &mut [(NewMessage, Checked)]) {
        let mut candidates: Vec<Uuid> = accepted
            .iter()
            .flat_map(|(m, c)| {
                let reachable = if self.webhooks { &c.members } else { &c.subscribed };
                reachable.iter().copied().filter(|u| *u != m.sender_id)
            })
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        let offline = match self.offline(candidates).await {
            Ok(offline) => offline,
            Err(err) => {
                tracing::error!(error = %err, "could not plan the notifications of a batch; none are sent for it");
                return;
            }
        };
        for (message, checked) in accepted.iter_mut() {
            let offline: Vec<Uuid> =
                checked.members.iter().copied().filter(|u| *u != message.sender_id && offline.contains(u)).collect();
            if offline.is_empty() && !self.webhooks {
                continue;
            }
            message.notify = Some(Notify {
                offline,
                mentioned: message.mentions.clone(),
                coalesce: checked.kind == ConversationKind::Group,
                webhooks: self.webhooks,
            });
        }
    }

    async fn offline(&self, candidates: Vec<Uuid>) -> Result<HashSet<Uuid>, StorageError> {
        if candidates.is_empty() {
            return Ok(HashSet::new());
        }
        let online: HashSet<Uuid> = match self.shared.presence.online(&candidates).await {
            Ok(online) => online.into_iter().collect(),
            Err(err) => {
                // Better a push someone did not need than a message nobody hears of.
                tracing::warn!(error = %err, "presence unreachable: treating recipients as offline");
                HashSet::new()
            }
        };
        Ok(candidates.into_iter().filter(|u| !online.contains(u)).collect())
    }
}
