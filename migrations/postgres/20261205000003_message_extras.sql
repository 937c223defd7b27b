-- Messages people expect (SPEC §4.2): replies, mentions, reactions, pins and full-text search.

-- The message a reply answers (same conversation, checked on send). A deleted original stays
-- (tombstoned), so the reference normally outlives it; SET NULL only if a row ever goes.
ALTER TABLE messages ADD COLUMN reply_to_id UUID REFERENCES messages (id) ON DELETE SET NULL;
-- The participants an `@username` of the content named when it was sent (a JSON array of
-- ids, in order of first mention; NULL: none).
ALTER TABLE messages ADD COLUMN mentions JSONB;
-- Bumped by every reaction change of the message: a reader keeps the newest `reaction:updated`.
ALTER TABLE messages ADD COLUMN reaction_version BIGINT NOT NULL DEFAULT 0;

-- One row per mention, for the unread mention count of a conversation (`mentionedCount`).
CREATE TABLE message_mentions (
    message_id      UUID NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX message_mentions_user_idx ON message_mentions (user_id, conversation_id, seq);

-- Who reacted with what. The primary key makes a repeated reaction a no-op, so counts are
-- exact however many replicas take reactions at once.
CREATE TABLE message_reactions (
    message_id UUID NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    emoji      TEXT NOT NULL,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);

-- Pinned messages, at most 50 per conversation (checked under the conversation's row lock).
CREATE TABLE message_pins (
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    message_id      UUID NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    pinned_by       UUID REFERENCES users (id) ON DELETE SET NULL,
    pinned_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (conversation_id, message_id)
);

-- Full-text search: the `simple` configuration (lower-casing, no stemming, no stop words), so
-- every language's words are indexed as written, Thai included; the same tokens as SQLite's
-- FTS5 `unicode61` with diacritics kept. Generated, so existing messages are indexed by this
-- migration and every edit or tombstone (content NULL) re-indexes at once.
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', coalesce(content, ''))) STORED;
CREATE INDEX messages_search_idx ON messages USING GIN (search);
