-- Messages people expect (SPEC §4.2): replies, mentions, reactions, pins and full-text search.

-- The message a reply answers (same conversation, checked on send).
ALTER TABLE messages ADD COLUMN reply_to_id BLOB REFERENCES messages (id) ON DELETE SET NULL;
-- The participants an `@username` of the content named when it was sent (a JSON array of
-- ids, in order of first mention; NULL: none).
ALTER TABLE messages ADD COLUMN mentions TEXT;
-- Bumped by every reaction change of the message: a reader keeps the newest `reaction:updated`.
ALTER TABLE messages ADD COLUMN reaction_version INTEGER NOT NULL DEFAULT 0;

-- One row per mention, for the unread mention count of a conversation (`mentionedCount`).
CREATE TABLE message_mentions (
    message_id      BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    PRIMARY KEY (message_id, user_id)
) STRICT;
CREATE INDEX message_mentions_user_idx ON message_mentions (user_id, conversation_id, seq);

-- Who reacted with what. The primary key makes a repeated reaction a no-op.
CREATE TABLE message_reactions (
    message_id BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    emoji      TEXT NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
) STRICT;

-- Pinned messages, at most 50 per conversation (one writer: checked in the transaction).
CREATE TABLE message_pins (
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    message_id      BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    pinned_by       BLOB REFERENCES users (id) ON DELETE SET NULL,
    pinned_at       TEXT NOT NULL,
    PRIMARY KEY (conversation_id, message_id)
) STRICT;

-- Full-text search: FTS5 over `messages.content` (external content, keyed by the rowid).
-- `unicode61` with diacritics kept and combining marks as word characters (`M*`; by default
-- they split words, and a Thai word such as สวัสดี fell apart at its vowel signs), so the
-- tokens are PostgreSQL's `simple` ones: every language's words as written. Triggers keep it
-- in step with every insert, edit and tombstone (content NULL); `rebuild` indexes the
-- messages already stored.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content,
    content = 'messages',
    content_rowid = 'rowid',
    tokenize = "unicode61 remove_diacritics 0 categories 'L* N* Co M*'"
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
END;
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
