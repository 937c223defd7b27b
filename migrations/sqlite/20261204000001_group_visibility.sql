-- Who may join a group without being added: `public` groups are open to anyone who knows
-- the id (`POST /api/conversations/:id/join`), `private` ones only to members' invitations.
--
-- Existing groups become `private`. Until this migration any signed-in user who knew a
-- group's id could join it and read its history, and nobody ever chose to make a group
-- open: `private` keeps out everyone who is not already a member, and an owner who wants an
-- open group can say so. Choosing `public` would keep the hole open for every existing
-- group. Direct conversations are `private` too (they cannot be joined at all).
ALTER TABLE conversations
    ADD COLUMN visibility TEXT NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'public'));
