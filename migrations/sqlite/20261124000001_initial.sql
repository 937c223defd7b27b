-- Parley's whole data model (SQLite). The PostgreSQL twin lives in migrations/postgres.
-- Times are RFC 3339 TEXT written by the application (millisecond precision); ids are
-- UUIDv7 stored as 16-byte BLOBs.
-- Tables are STRICT so a wrong type fails loudly instead of being coerced.

CREATE TABLE users (
    id                    BLOB PRIMARY KEY,
    email                 TEXT NOT NULL,          -- lower-cased on the way in
    username              TEXT NOT NULL,          -- lower-case slug
    display_name          TEXT NOT NULL,
    avatar_url            TEXT,
    password_hash         TEXT NOT NULL,          -- Argon2id PHC string
    show_last_seen        INTEGER NOT NULL DEFAULT 1,
    presence_sharing      TEXT NOT NULL DEFAULT 'everyone'
                          CHECK (presence_sharing IN ('everyone', 'friends', 'nobody')),
    read_receipts_enabled INTEGER NOT NULL DEFAULT 1,
    last_seen_at          TEXT,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE UNIQUE INDEX users_username_key ON users (username);
-- prefix search: byte-order ranges (`>= prefix AND < prefix || U+10FFFF`); the unique
-- username index serves the username side
CREATE INDEX users_display_name_prefix_idx ON users (lower(display_name));

-- Opaque refresh tokens, stored as SHA-256 hashes. A login starts a family; each refresh
-- rotates within it; presenting a rotated token revokes the family (reuse detection).
CREATE TABLE refresh_tokens (
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   BLOB NOT NULL,
    token_hash  BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    rotated_at  TEXT,
    revoked_at  TEXT
) STRICT;
CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expiry_idx ON refresh_tokens (expires_at);

-- Friends are mutual follows.
CREATE TABLE follows (
    follower_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)
) STRICT;
CREATE INDEX follows_followee_idx ON follows (followee_id, follower_id);

CREATE TABLE blocks (
    blocker_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
) STRICT;
CREATE INDEX blocks_blocked_idx ON blocks (blocked_id, blocker_id);

CREATE TABLE conversations (
    id               BLOB PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    title            TEXT,
    -- "<smaller uuid>:<larger uuid>" for a live direct conversation, NULL otherwise:
    -- makes a direct conversation unique per pair.
    direct_key       TEXT,
    created_by       BLOB REFERENCES users (id) ON DELETE SET NULL,
    -- per-conversation message sequence: the last `seq` handed out
    last_seq         INTEGER NOT NULL DEFAULT 0,
    last_message_id  BLOB,
    last_activity_at TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    deleted_at       TEXT
) STRICT;
CREATE UNIQUE INDEX conversations_direct_key ON conversations (direct_key);
CREATE INDEX conversations_activity_idx ON conversations (last_activity_at DESC, id DESC);

-- Membership plus every per-user piece of conversation state.
CREATE TABLE conversation_participants (
    conversation_id     BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id             BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role                TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at           TEXT NOT NULL,
    -- read watermark: every message with seq <= last_read_seq is read
    last_read_seq       INTEGER NOT NULL DEFAULT 0,
    last_read_at        TEXT,
    -- delivered watermark: what the user's devices have been sent (missed-message replay)
    last_delivered_seq  INTEGER NOT NULL DEFAULT 0,
    -- "clear history for me": messages with seq <= cleared_seq are gone for this user
    cleared_seq         INTEGER NOT NULL DEFAULT 0,
    messages_cleared_at TEXT,
    archived_at         TEXT,
    -- "delete for me": hidden while the conversation's last_seq <= hidden_seq
    hidden_seq          INTEGER,
    -- explicit "mark unread"
    marked_unread       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
) STRICT;
CREATE INDEX conversation_participants_user_idx ON conversation_participants (user_id, conversation_id);

CREATE TABLE messages (
    id                BLOB PRIMARY KEY,
    conversation_id   BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq               INTEGER NOT NULL,
    sender_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_message_id TEXT NOT NULL,
    content           TEXT,
    content_type      TEXT NOT NULL DEFAULT 'text'
                      CHECK (content_type IN ('text', 'image', 'video', 'file')),
    media             TEXT,
    forwarded_from    BLOB REFERENCES messages (id) ON DELETE SET NULL,
    forwarded_count   INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    deleted_at        TEXT
) STRICT;
-- ordering, replay (`seq > n`), history pages and unread counts
CREATE UNIQUE INDEX messages_conversation_seq_key ON messages (conversation_id, seq);
-- exactly-once sends: a retried clientMessageId finds the original
CREATE UNIQUE INDEX messages_sender_client_id_key ON messages (sender_id, client_message_id);
-- `since=<time>` polling
CREATE INDEX messages_conversation_created_idx ON messages (conversation_id, created_at);

-- When each reader's watermark reached a point: one row per advance, so "who read message
-- M and when" is the earliest advance at or past M's seq.
CREATE TABLE read_receipts (
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    read_at         TEXT NOT NULL,
    PRIMARY KEY (conversation_id, user_id, seq)
) STRICT;
CREATE INDEX read_receipts_seq_idx ON read_receipts (conversation_id, seq);
