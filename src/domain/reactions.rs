//! Reactions (SPEC §4.2): one emoji per reaction, at most [`MAX_EMOJI`] different ones per
//! message, counts exact however many replicas take them at once (the storage serializes a
//! message's reactors), and `reaction:updated` to every participant with their own `me`.

use std::collections::{HashMap, HashSet};

use unicode_segmentation::UnicodeSegmentation;
use uuid::Uuid;

use super::{
    Deps,
    access::{membership, message_in, not_blocked_in},
    quota,
    views::{Message, Reaction, ReactionUpdate},
};
use crate::{
    clock::SharedClock,
    error::{AppError, AppResult},
    fanout::Fanout,
    shared_state::{Quota, SharedState},
    storage::{
        Storage,
        extras::{ReactionChange, ReactionOutcome, ReactionSummary},
        models::MessageRecord,
    },
};

/// Different emoji one message may carry.
pub const MAX_EMOJI: usize = 20;
/// The longest emoji taken, in UTF-8 bytes.
pub const EMOJI_MAX_BYTES: usize = 16;

/// One emoji: a single grapheme cluster (`unicode-segmentation`) of at most
/// [`EMOJI_MAX_BYTES`] bytes that is an emoji of Unicode's list (the `emojis` crate), kept in
/// its fully qualified form, so `❤` and `❤️` are one reaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emoji(&'static str);

impl Emoji {
    pub fn parse(raw: &str) -> AppResult<Self> {
        let refuse = |reason: &str| AppError::invalid_field("emoji", reason);
        if raw.len() > EMOJI_MAX_BYTES {
            return Err(refuse("must be one emoji of at most 16 bytes"));
        }
        if raw.graphemes(true).count() != 1 {
            return Err(refuse("must be exactly one emoji (one grapheme cluster)"));
        }
        let emoji = emojis::get(raw).ok_or_else(|| refuse("must be an emoji"))?;
        Ok(Self(emoji.as_str()))
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

pub struct ReactionService {
    storage: std::sync::Arc<dyn Storage>,
    shared: SharedState,
    fanout: Fanout,
    clock: SharedClock,
    quota: Quota,
}

impl ReactionService {
    /// `per_minute`: each user's reaction budget, shared by every replica.
    pub fn new(deps: &Deps, per_minute: u32) -> Self {
        Self {
            storage: deps.storage.clone(),
            shared: deps.shared.clone(),
            fanout: deps.fanout.clone(),
            clock: deps.clock.clone(),
            quota: Quota::per_minute(per_minute),
        }
    }

    /// Adds (`add`) or removes `user`'s `emoji` on a message they can see, then tells every
    /// participant. Adding one already there, or removing one that is not, changes nothing
    /// and tells no one.
    pub async fn react(
        &self,
        user: Uuid,
        conversation: Uuid,
        message: Uuid,
        emoji: &Emoji,
        add: bool,
    ) -> AppResult<ReactionUpdate> {
        let (record, participant) = membership(self.storage.as_ref(), user, conversation).await?;
        not_blocked_in(self.storage.as_ref(), &record, user).await?;
        let target = message_in(self.storage.as_ref(), conversation, message).await?;
        if target.seq <= participant.visible_from() || target.deleted_at.is_some() {
            return Err(AppError::NotFound("message"));
        }
        quota::take(&self.shared, &format!("reactions:{user}"), self.quota, "reactions").await?;
        let change = ReactionChange {
            message_id: message,
            user_id: user,
            emoji: emoji.as_str().into(),
            add,
            at: self.clock.now(),
        };
        let (changed, version, reactions) = match self.storage.react(&change, MAX_EMOJI).await? {
            ReactionOutcome::Done { changed, version, reactions } => (changed, version, reactions),
            ReactionOutcome::TooManyEmoji => {
                return Err(AppError::invalid_field("emoji", "a message carries at most 20 different emoji"));
            }
            ReactionOutcome::MessageGone => return Err(AppError::NotFound("message")),
        };
        let update = ReactionUpdate {
            conversation_id: conversation,
            message_id: message,
            reactions: views(&reactions),
            version,
        };
        if changed {
            self.announce(&update).await?;
        }
        Ok(update)
    }

    /// `reaction:updated` to every participant, each with their own `me`: one update for
    /// everyone who reacted with none of these emoji, one per reactor.
    async fn announce(&self, update: &ReactionUpdate) -> AppResult<()> {
        let participants = self.storage.member_ids(update.conversation_id).await?;
        let mut mine: HashMap<Uuid, HashSet<String>> = HashMap::new();
        for (user, emoji) in self.storage.reactors(update.message_id).await? {
            mine.entry(user).or_default().insert(emoji);
        }
        let seen_by = |emoji: Option<&HashSet<String>>| ReactionUpdate {
            reactions: update
                .reactions
                .iter()
                .map(|r| Reaction { me: emoji.is_some_and(|set| set.contains(&r.emoji)), ..r.clone() })
                .collect(),
            ..update.clone()
        };
        let (reactors, others): (Vec<Uuid>, Vec<Uuid>) = participants.iter().partition(|p| mine.contains_key(p));
        self.fanout.reaction_updated(&seen_by(None), &others).await;
        for reactor in reactors {
            self.fanout.reaction_updated(&seen_by(mine.get(&reactor)), &[reactor]).await;
        }
        Ok(())
    }
}

fn views(summaries: &[ReactionSummary]) -> Vec<Reaction> {
    summaries
        .iter()
        .map(|s| Reaction { emoji: s.emoji.clone(), count: s.count, user_ids: s.user_ids.clone(), me: s.me })
        .collect()
}

/// `rows` as `reader` sees them: the reply preview only where the original is theirs to see
/// (`floor` of each row: the `seq` at or below which its conversation is not theirs), and
/// their reactions (one query, only for messages that ever had one).
pub async fn reader_views(
    storage: &dyn Storage,
    reader: Uuid,
    rows: &[MessageRecord],
    floor: impl Fn(&MessageRecord) -> i64,
) -> AppResult<Vec<Message>> {
    let mut messages: Vec<Message> = rows.iter().map(|row| Message::from(row).for_reader(floor(row))).collect();
    let reacted: Vec<Uuid> = rows.iter().filter(|r| r.reaction_version > 0).map(|r| r.id).collect();
    if reacted.is_empty() {
        return Ok(messages);
    }
    let mut by_message: HashMap<Uuid, Vec<Reaction>> = HashMap::new();
    for summary in storage.reactions(&reacted, reader).await? {
        by_message.entry(summary.message_id).or_default().extend(views(std::slice::from_ref(&summary)));
    }
    for message in &mut messages {
        if let Some(reactions) = by_message.remove(&message.id) {
            message.reactions = Some(reactions);
        }
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_emoji_is_taken_in_its_fully_qualified_form() {
        assert_eq!(Emoji::parse("👍").unwrap().as_str(), "👍");
        assert_eq!(Emoji::parse("❤").unwrap(), Emoji::parse("❤️").unwrap(), "one reaction");
        assert_eq!(Emoji::parse("👍🏽").unwrap().as_str(), "👍🏽", "a skin tone");
        assert_eq!(Emoji::parse("🇹🇭").unwrap().as_str(), "🇹🇭", "a flag");
        assert_eq!(Emoji::parse("🧑‍💻").unwrap().as_str(), "🧑‍💻", "a ZWJ sequence");
    }

    #[test]
    fn text_several_emoji_and_long_sequences_are_refused() {
        for bad in ["a", "", " ", "👍👍", "ok", "👍 ", "\u{200d}", "👨‍👩‍👧‍👦"] {
            let err = Emoji::parse(bad).unwrap_err();
            assert_eq!(err.code(), "VALIDATION_ERROR", "{bad:?}");
        }
    }
}
