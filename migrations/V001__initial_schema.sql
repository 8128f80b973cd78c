-- im-mesh schema, version 1: every table of DESIGN.md §4.
-- Written for both MariaDB 10.11 and MySQL 8. Every row carries app_id, and every query filters by it.
-- Ids are UUIDs in CHAR(36) ascii; conversation ids are 's:<userA>:<userB>' (sorted) or 'g:<groupId>'.
-- Times are TIMESTAMP(3) in UTC. The matching undo, U001, drops everything in reverse order.

CREATE TABLE app (
  id              CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name            VARCHAR(128) NOT NULL,
  api_key         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  api_secret_hash VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at      TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_app_api_key (api_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Usernames compare case-insensitively (utf8mb4_unicode_ci), so 'Alice' and 'alice' cannot both register.
CREATE TABLE users (
  app_id        CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  id            CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  username      VARCHAR(32) NOT NULL,
  email         VARCHAR(254) NULL,
  display_name  VARCHAR(64) NOT NULL,
  avatar_url    VARCHAR(2048) NOT NULL DEFAULT '',
  password_hash VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at    TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at    TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_users_app_username (app_id, username),
  UNIQUE KEY uk_users_app_email (app_id, email),
  KEY idx_users_app_display_name (app_id, display_name),
  CONSTRAINT fk_users_app FOREIGN KEY (app_id) REFERENCES app (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Refresh tokens are stored hashed; a family is one sign-in chain, revoked whole when a used token is replayed.
CREATE TABLE refresh_tokens (
  id          CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  app_id      CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  user_id     CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  device_id   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  device_name VARCHAR(64) NOT NULL DEFAULT '',
  platform    TINYINT UNSIGNED NOT NULL DEFAULT 0,
  family_id   CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  token_hash  CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  expires_at  TIMESTAMP(3) NOT NULL,
  used_at     TIMESTAMP(3) NULL,
  revoked_at  TIMESTAMP(3) NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_refresh_tokens_hash (token_hash),
  KEY idx_refresh_tokens_family (family_id),
  KEY idx_refresh_tokens_user_device (user_id, device_id),
  CONSTRAINT fk_refresh_tokens_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- 'groups' is a reserved word in MySQL 8 (window functions), hence chat_groups.
-- version increases on every membership change so member-list caches can tell a stale copy.
CREATE TABLE chat_groups (
  app_id       CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  id           CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name         VARCHAR(128) NOT NULL,
  avatar_url   VARCHAR(2048) NOT NULL DEFAULT '',
  owner_id     CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  member_count INT UNSIGNED NOT NULL DEFAULT 0,
  version      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  created_at   TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at   TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  dissolved_at TIMESTAMP(3) NULL,
  PRIMARY KEY (id),
  KEY idx_chat_groups_app_owner (app_id, owner_id),
  CONSTRAINT fk_chat_groups_app FOREIGN KEY (app_id) REFERENCES app (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- role: 1 owner, 2 admin, 3 member (im.group.v1.GroupRole).
CREATE TABLE group_members (
  app_id     CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  group_id   CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  user_id    CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  role       TINYINT UNSIGNED NOT NULL,
  joined_at  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  joined_seq BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (group_id, user_id),
  KEY idx_group_members_user (user_id),
  CONSTRAINT fk_group_members_group FOREIGN KEY (group_id) REFERENCES chat_groups (id) ON DELETE CASCADE,
  CONSTRAINT chk_group_members_role CHECK (role BETWEEN 1 AND 3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- type: 1 single (1:1), 2 group (im.msg.v1.ConversationType). max_seq is the highest persisted seq.
CREATE TABLE conversations (
  app_id     CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  id         VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  type       TINYINT UNSIGNED NOT NULL,
  group_id   CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
  max_seq    BIGINT UNSIGNED NOT NULL DEFAULT 0,
  created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_conversations_group (group_id),
  KEY idx_conversations_app (app_id),
  CONSTRAINT fk_conversations_app FOREIGN KEY (app_id) REFERENCES app (id),
  CONSTRAINT chk_conversations_type CHECK (type IN (1, 2))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Per-member read state: unread = conversations.max_seq - last_read_seq. left_seq bounds a former member's reads.
CREATE TABLE conversation_members (
  app_id          CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  conversation_id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  user_id         CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  last_read_seq   BIGINT UNSIGNED NOT NULL DEFAULT 0,
  joined_seq      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  left_seq        BIGINT UNSIGNED NULL,
  muted           BOOLEAN NOT NULL DEFAULT FALSE,
  starred         BOOLEAN NOT NULL DEFAULT FALSE,
  updated_at      TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (conversation_id, user_id),
  KEY idx_conversation_members_user (user_id, updated_at),
  CONSTRAINT fk_conversation_members_conversation FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- body is the protobuf encoding of im.msg.v1.MessageContent; search_text holds its text for FULLTEXT search.
-- content_type: 1 text, 2 media, 3 custom, 4 system.
CREATE TABLE messages (
  app_id           CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  conversation_id  VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  seq              BIGINT UNSIGNED NOT NULL,
  msg_id           CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  client_msg_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  sender_id        CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  sender_device_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  content_type     TINYINT UNSIGNED NOT NULL,
  body             MEDIUMBLOB NOT NULL,
  search_text      TEXT NULL,
  created_at       TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  edited_at        TIMESTAMP(3) NULL,
  recalled         BOOLEAN NOT NULL DEFAULT FALSE,
  PRIMARY KEY (conversation_id, seq),
  UNIQUE KEY uk_messages_msg_id (msg_id),
  UNIQUE KEY uk_messages_sender_client_msg (conversation_id, sender_id, client_msg_id),
  FULLTEXT KEY ft_messages_search_text (search_text),
  CONSTRAINT fk_messages_conversation FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Sparse per-user flags (the Zulip pattern): bit 0 read, bit 1 starred, bit 2 mentioned.
CREATE TABLE user_message (
  app_id          CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  user_id         CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  conversation_id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  seq             BIGINT UNSIGNED NOT NULL,
  flags           INT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, conversation_id, seq),
  KEY idx_user_message_conversation (conversation_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The offline inbox. Partitioned by user: InnoDB allows no foreign keys here, and every unique key holds user_id.
-- Rows older than 7 days are purged by a job (idx_offline_messages_created).
CREATE TABLE offline_messages (
  app_id          CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  user_id         CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  conversation_id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  seq             BIGINT UNSIGNED NOT NULL,
  msg_id          CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  payload         MEDIUMBLOB NOT NULL,
  created_at      TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (user_id, conversation_id, seq),
  KEY idx_offline_messages_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
  PARTITION BY KEY (user_id) PARTITIONS 16;

-- Every 10,000th seq of a conversation, so seqs can be restored above any issued one after Redis loses them.
CREATE TABLE sequence_snapshots (
  app_id          CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  conversation_id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  seq             BIGINT UNSIGNED NOT NULL,
  created_at      TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (conversation_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Each device's sync position, so a reconnect resumes where that device stopped.
CREATE TABLE sync_state (
  app_id     CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  user_id    CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  device_id  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  cursor_pos VARCHAR(1024) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (user_id, device_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
