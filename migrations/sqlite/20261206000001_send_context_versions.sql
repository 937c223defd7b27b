-- What a send's checks read, versioned, so each replica's message writer may keep it cached
-- and ask only for the numbers (see src/domain/message_writer.rs):
-- * `conversations.members_version`: bumped by every change of the conversation's members;
-- * `send_context_generation`: one number bumped by every change to blocks and to who has
--   a push subscription (rare, and read by every check).
-- Triggers also fire for the rows foreign keys delete in cascade.
ALTER TABLE conversations ADD COLUMN members_version INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER conversation_members_added AFTER INSERT ON conversation_participants BEGIN
    UPDATE conversations SET members_version = members_version + 1 WHERE id = NEW.conversation_id;
END;
CREATE TRIGGER conversation_members_removed AFTER DELETE ON conversation_participants BEGIN
    UPDATE conversations SET members_version = members_version + 1 WHERE id = OLD.conversation_id;
END;

CREATE TABLE send_context_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
) STRICT;
INSERT INTO send_context_generation (id, generation) VALUES (1, 0);

CREATE TRIGGER blocks_added AFTER INSERT ON blocks BEGIN
    UPDATE send_context_generation SET generation = generation + 1;
END;
CREATE TRIGGER blocks_removed AFTER DELETE ON blocks BEGIN
    UPDATE send_context_generation SET generation = generation + 1;
END;
CREATE TRIGGER blocks_changed AFTER UPDATE ON blocks BEGIN
    UPDATE send_context_generation SET generation = generation + 1;
END;
CREATE TRIGGER push_subscribers_added AFTER INSERT ON push_subscriptions BEGIN
    UPDATE send_context_generation SET generation = generation + 1;
END;
CREATE TRIGGER push_subscribers_removed AFTER DELETE ON push_subscriptions BEGIN
    UPDATE send_context_generation SET generation = generation + 1;
END;
CREATE TRIGGER push_subscribers_moved AFTER UPDATE OF user_id ON push_subscriptions BEGIN
    UPDATE send_context_generation SET generation = generation + 1;
END;
