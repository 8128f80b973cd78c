-- Undo of V003. IF EXISTS makes it safe after a V003 that failed halfway.
ALTER TABLE group_members DROP KEY IF EXISTS idx_group_members_user_group;
ALTER TABLE conversations DROP COLUMN IF EXISTS members_seq;
