-- Uploads (SPEC §4.3). The bytes live in the object store (local files or S3) under the
-- upload's id, its thumbnail under `<id>.thumb`; this row says whose they are and what they
-- are. Which messages reference an upload (and so who may read it) is in `message_uploads`.
CREATE TABLE uploads (
    id             BLOB PRIMARY KEY,
    owner_id       BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Sniffed from the bytes, never taken from the client.
    content_type   TEXT NOT NULL,
    size           INTEGER NOT NULL,
    -- Lower-case hex SHA-256 of the bytes, computed while they streamed in (the ETag).
    sha256         TEXT NOT NULL,
    -- The file name the client gave, if any (for `Content-Disposition`).
    name           TEXT,
    -- Images: their dimensions and a thumbnail of at most 320 px.
    width          INTEGER,
    height         INTEGER,
    thumbnail_type TEXT,
    thumbnail_size INTEGER,
    created_at     TEXT NOT NULL,
    -- Set by the first message that references the upload; an upload left unattached for
    -- 24 hours is deleted by the cleanup task.
    attached_at    TEXT
) STRICT;
CREATE INDEX uploads_owner_idx ON uploads (owner_id);
CREATE INDEX uploads_unattached_idx ON uploads (created_at) WHERE attached_at IS NULL;

-- A message whose `media` names an upload; participants of its conversation may read it.
-- No foreign key to `uploads`: a send never fails over a file (the read joins `uploads`).
CREATE TABLE message_uploads (
    upload_id       BLOB NOT NULL,
    message_id      BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    conversation_id BLOB NOT NULL,
    PRIMARY KEY (upload_id, message_id)
) STRICT;
