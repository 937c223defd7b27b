-- Groups that can be run (SPEC §4.1): a description and an avatar, history from the moment
-- of joining, per-user mute, and invite links.

ALTER TABLE conversations ADD COLUMN description TEXT;
ALTER TABLE conversations ADD COLUMN avatar_url TEXT;

-- The conversation's last_seq when the participant joined: they see (and count as readers
-- of) messages after it only. Existing participants were there from the start: 0.
ALTER TABLE conversation_participants ADD COLUMN joined_seq INTEGER NOT NULL DEFAULT 0;
-- No push for this conversation before this time (unread counts are unaffected).
ALTER TABLE conversation_participants ADD COLUMN muted_until TEXT;

CREATE TABLE conversation_invites (
    -- 128 random bits, base64url: the link's secret, shown to owners and admins.
    code            TEXT PRIMARY KEY,
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    created_by      BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT,
    max_uses        INTEGER,
    uses            INTEGER NOT NULL DEFAULT 0,
    revoked_at      TEXT
) STRICT;
CREATE INDEX conversation_invites_conversation_idx ON conversation_invites (conversation_id, created_at);
