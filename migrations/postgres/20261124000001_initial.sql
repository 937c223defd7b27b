-- Parley's whole data model (PostgreSQL). The SQLite twin lives in migrations/sqlite.
-- Times are TIMESTAMPTZ written by the application (millisecond precision), ids are UUIDv7.

CREATE TABLE users (
    id                    UUID PRIMARY KEY,
    email                 TEXT NOT NULL,          -- lower-cased on the way in
    username              TEXT NOT NULL,          -- lower-case slug
    display_name          TEXT NOT NULL,
    avatar_url            TEXT,
    password_hash         TEXT NOT NULL,          -- Argon2id PHC string
    show_last_seen        BOOLEAN NOT NULL DEFAULT TRUE,
    presence_sharing      TEXT NOT NULL DEFAULT 'everyone'
                          CHECK (presence_sharing IN ('everyone', 'friends', 'nobody')),
    read_receipts_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    last_seen_at          TIMESTAMPTZ,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE UNIQUE INDEX users_username_key ON users (username);
-- prefix search: byte-order ranges (`>= prefix AND < prefix || U+10FFFF`), whatever the
-- database's default collation
CREATE INDEX users_username_prefix_idx ON users ((username COLLATE "C"));
CREATE INDEX users_display_name_prefix_idx ON users ((lower(display_name) COLLATE "C"));

-- Opaque refresh tokens, stored as SHA-256 hashes. A login starts a family; each refresh
-- rotates within it; presenting a rotated token revokes the family (reuse detection).
CREATE TABLE refresh_tokens (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   UUID NOT NULL,
    token_hash  BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    rotated_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expiry_idx ON refresh_tokens (expires_at);

-- Friends are mutual follows.
CREATE TABLE follows (
    follower_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)
);
CREATE INDEX follows_followee_idx ON follows (followee_id, follower_id);

CREATE TABLE blocks (
    blocker_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
);
CREATE INDEX blocks_blocked_idx ON blocks (blocked_id, blocker_id);

CREATE TABLE conversations (
    id               UUID PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    title            TEXT,
    -- "<smaller uuid>:<larger uuid>" for a live direct conversation, NULL otherwise:
    -- makes a direct conversation unique per pair.
    direct_key       TEXT,
    created_by       UUID REFERENCES users (id) ON DELETE SET NULL,
    -- per-conversation message sequence: the last `seq` handed out
    last_seq         BIGINT NOT NULL DEFAULT 0,
    last_message_id  UUID,
    last_activity_at TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    deleted_at       TIMESTAMPTZ
);
CREATE UNIQUE INDEX conversations_direct_key ON conversations (direct_key);
CREATE INDEX conversations_activity_idx ON conversations (last_activity_at DESC, id DESC);

-- Membership plus every per-user piece of conversation state.
CREATE TABLE conversation_participants (
    conversation_id     UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id             UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role                TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at           TIMESTAMPTZ NOT NULL,
    -- read watermark: every message with seq <= last_read_seq is read
    last_read_seq       BIGINT NOT NULL DEFAULT 0,
    last_read_at        TIMESTAMPTZ,
    -- delivered watermark: what the user's devices have been sent (missed-message replay)
    last_delivered_seq  BIGINT NOT NULL DEFAULT 0,
    -- "clear history for me": messages with seq <= cleared_seq are gone for this user
    cleared_seq         BIGINT NOT NULL DEFAULT 0,
    messages_cleared_at TIMESTAMPTZ,
    archived_at         TIMESTAMPTZ,
    -- "delete for me": hidden while the conversation's last_seq <= hidden_seq
    hidden_seq          BIGINT,
    -- explicit "mark unread"
    marked_unread       BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_participants_user_idx ON conversation_participants (user_id, conversation_id);

CREATE TABLE messages (
    id                UUID PRIMARY KEY,
    conversation_id   UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq               BIGINT NOT NULL,
    sender_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_message_id TEXT NOT NULL,
    content           TEXT,
    content_type      TEXT NOT NULL DEFAULT 'text'
                      CHECK (content_type IN ('text', 'image', 'video', 'file')),
    media             JSONB,
    forwarded_from    UUID REFERENCES messages (id) ON DELETE SET NULL,
    forwarded_count   INTEGER NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    deleted_at        TIMESTAMPTZ
);
-- ordering, replay (`seq > n`), history pages and unread counts
CREATE UNIQUE INDEX messages_conversation_seq_key ON messages (conversation_id, seq);
-- exactly-once sends: a retried clientMessageId finds the original
CREATE UNIQUE INDEX messages_sender_client_id_key ON messages (sender_id, client_message_id);
-- `since=<time>` polling
CREATE INDEX messages_conversation_created_idx ON messages (conversation_id, created_at);

-- When each reader's watermark reached a point: one row per advance, so "who read message
-- M and when" is the earliest advance at or past M's seq.
CREATE TABLE read_receipts (
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    read_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (conversation_id, user_id, seq)
);
CREATE INDEX read_receipts_seq_idx ON read_receipts (conversation_id, seq);
