-- The encryption key directory (SPEC §4.5, seed 004 Phase 4): public keys per device,
-- verification records, and end-to-end encrypted messages stored as the client sent them.
-- Nothing here can hold a private key: `public_key` only ever receives bytes that parsed as
-- a public key of `algorithm` (see `domain::keys`).

CREATE TABLE device_keys (
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id   TEXT NOT NULL,
    algorithm   TEXT NOT NULL CHECK (algorithm IN ('x25519', 'p256', 'ed25519')),
    -- Standard base64 (with padding) of the public key bytes as the client sent them.
    public_key  TEXT NOT NULL,
    -- Lower-case hex SHA-256 of those bytes.
    fingerprint TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    -- Set when the device rotated to a new key or the key was deleted; kept so a
    -- verification of an old key can be told apart from one of the current key.
    revoked_at  TEXT
) STRICT;
-- One active key per device: a rotation revokes the old row and inserts the new one.
CREATE UNIQUE INDEX device_keys_active_device_key ON device_keys (user_id, device_id) WHERE revoked_at IS NULL;
CREATE INDEX device_keys_user_idx ON device_keys (user_id, created_at);

-- `verifier_id` compared `fingerprint` of `user_id`'s key out of band and vouched for it.
CREATE TABLE key_verifications (
    verifier_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    verified_at TEXT NOT NULL,
    PRIMARY KEY (verifier_id, user_id, fingerprint)
) STRICT;
CREATE INDEX key_verifications_user_idx ON key_verifications (user_id, fingerprint);

-- An encrypted message keeps `content` empty and carries the ciphertext untouched.
ALTER TABLE messages ADD COLUMN is_encrypted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN encrypted_content TEXT;
