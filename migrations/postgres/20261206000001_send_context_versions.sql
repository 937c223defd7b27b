-- What a send's checks read, versioned, so each replica's message writer may keep it cached
-- and ask only for the numbers (see src/domain/message_writer.rs):
-- * `conversations.members_version`: bumped by every change of the conversation's members;
-- * `send_context_generation`: one number bumped by every change to blocks and to who has
--   a push subscription (rare, and read by every check).
ALTER TABLE conversations ADD COLUMN members_version BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION bump_members_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- `changed_members`: the rows the statement inserted or deleted (both triggers name
    -- their transition table so).
    UPDATE conversations SET members_version = members_version + 1
    WHERE id IN (SELECT conversation_id FROM changed_members);
    RETURN NULL;
END
$$;

CREATE TRIGGER conversation_members_added AFTER INSERT ON conversation_participants
    REFERENCING NEW TABLE AS changed_members FOR EACH STATEMENT EXECUTE FUNCTION bump_members_version();
CREATE TRIGGER conversation_members_removed AFTER DELETE ON conversation_participants
    REFERENCING OLD TABLE AS changed_members FOR EACH STATEMENT EXECUTE FUNCTION bump_members_version();

CREATE TABLE send_context_generation (
    id         SMALLINT PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO send_context_generation (id, generation) VALUES (1, 0);

CREATE FUNCTION bump_send_context_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE send_context_generation SET generation = generation + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER blocks_changed AFTER INSERT OR DELETE OR UPDATE ON blocks
    FOR EACH STATEMENT EXECUTE FUNCTION bump_send_context_generation();
CREATE TRIGGER push_subscribers_changed AFTER INSERT OR DELETE OR UPDATE OF user_id ON push_subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION bump_send_context_generation();
