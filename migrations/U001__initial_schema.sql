-- Undo of V001: drops every table, children before parents. IF EXISTS makes it safe to run after a V001 that
-- failed halfway (the runner does so to put the database back as it was).
DROP TABLE IF EXISTS sync_state;
DROP TABLE IF EXISTS sequence_snapshots;
DROP TABLE IF EXISTS offline_messages;
DROP TABLE IF EXISTS user_message;
DROP TABLE IF EXISTS messages;
DROP TABLE IF EXISTS conversation_members;
DROP TABLE IF EXISTS conversations;
DROP TABLE IF EXISTS group_members;
DROP TABLE IF EXISTS chat_groups;
DROP TABLE IF EXISTS refresh_tokens;
DROP TABLE IF EXISTS users;
DROP TABLE IF EXISTS app;
