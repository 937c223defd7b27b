-- Reaching people who are offline (SPEC §4.4): Web Push subscriptions, and the outbox from
-- which pushes and webhooks are sent. Outbox rows are written in the same transaction as the
-- message they announce, so a message that was acked has its notifications on record.

CREATE TABLE push_subscriptions (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The push service URL the browser gave; one browser profile, one endpoint.
    endpoint   TEXT NOT NULL UNIQUE,
    -- base64url: the browser's P-256 public key (65 bytes) and auth secret (16 bytes).
    p256dh     TEXT NOT NULL,
    auth       TEXT NOT NULL,
    user_agent TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX push_subscriptions_user_idx ON push_subscriptions (user_id);

CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- 'push': one Web Push to `subscription_id`; 'webhook': one POST of `event` to WEBHOOK_URL.
    kind            TEXT NOT NULL CHECK (kind IN ('push', 'webhook')),
    event           TEXT NOT NULL,
    subscription_id UUID REFERENCES push_subscriptions (id) ON DELETE CASCADE,
    user_id         UUID,
    conversation_id UUID,
    message_id      UUID,
    -- A push may show the message's text (not when the conversation is muted for them).
    with_preview    BOOLEAN NOT NULL DEFAULT TRUE,
    -- Group pushes to one subscription for one conversation go out at most once a window,
    -- as one push that counts them.
    coalesced       BOOLEAN NOT NULL DEFAULT FALSE,
    -- A webhook's body and delivery id, fixed at its first attempt so retries send the same bytes.
    body            TEXT,
    delivery_id     TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    due_at          TIMESTAMPTZ NOT NULL,
    -- A sender claims a row until then; a replica that dies mid-send releases it this way.
    claimed_until   TIMESTAMPTZ,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT
);
CREATE INDEX outbox_due_idx ON outbox (due_at, id);
CREATE INDEX outbox_coalesce_idx ON outbox (subscription_id, conversation_id) WHERE coalesced;

-- The coalescing windows of group pushes: no push to this subscription for this
-- conversation before `open_until`.
CREATE TABLE push_windows (
    subscription_id UUID NOT NULL REFERENCES push_subscriptions (id) ON DELETE CASCADE,
    conversation_id UUID NOT NULL,
    open_until      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (subscription_id, conversation_id)
);
