-- The seq of the latest membership change of a conversation (0: none since creation). Fan-out workers compare it
-- with the value their member cache was loaded at, so a cached member list is never used after a change.
ALTER TABLE conversations ADD COLUMN members_seq BIGINT UNSIGNED NOT NULL DEFAULT 0 AFTER max_seq;

-- ListMembers pages through a group by user id; ListMyGroups finds a user's groups.
ALTER TABLE group_members ADD KEY idx_group_members_user_group (user_id, group_id);
