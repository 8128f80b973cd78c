// The in-memory twin of the MySQL schema (migrations/), for all-in-one mode and unit tests. Several services'
// in-memory repositories share one instance, as their MySQL repositories share one database.

/** A row of `app`. */
export interface AppRow {
  id: string;
  name: string;
  apiKey: string;
  apiSecretHash: string;
  createdAt: Date;
}

/** A row of `users`. */
export interface UserRow {
  appId: string;
  id: string;
  username: string;
  email: string | null;
  displayName: string;
  avatarUrl: string;
  passwordHash: string;
  createdAt: Date;
  updatedAt: Date;
}

/** A row of `refresh_tokens`. */
export interface RefreshTokenRow {
  id: string;
  appId: string;
  userId: string;
  deviceId: string;
  deviceName: string;
  platform: number;
  familyId: string;
  tokenHash: string;
  createdAt: Date;
  expiresAt: Date;
  usedAt: Date | null;
  revokedAt: Date | null;
}

/** A row of `conversations`. */
export interface ConversationRow {
  appId: string;
  id: string;
  type: number;
  groupId: string | null;
  maxSeq: number;
  /** The seq of the latest membership change (0: none). */
  membersSeq: number;
  createdAt: Date;
  updatedAt: Date;
}

/** A row of `chat_groups`. */
export interface GroupRow {
  appId: string;
  id: string;
  name: string;
  avatarUrl: string;
  ownerId: string;
  memberCount: number;
  version: number;
  createdAt: Date;
  dissolvedAt: Date | null;
}

/** A row of `group_members`; role 1 owner, 2 admin, 3 member. */
export interface GroupMemberRow {
  appId: string;
  groupId: string;
  userId: string;
  role: number;
  joinedAt: Date;
  joinedSeq: number;
}

/** A row of `conversation_members`. */
export interface MemberRow {
  appId: string;
  conversationId: string;
  userId: string;
  lastReadSeq: number;
  joinedSeq: number;
  leftSeq: number | null;
  muted: boolean;
  starred: boolean;
  updatedAt: Date;
}

/** A row of `messages`. */
export interface MessageRow {
  appId: string;
  conversationId: string;
  seq: number;
  msgId: string;
  clientMsgId: string;
  senderId: string;
  senderDeviceId: string;
  contentType: number;
  body: Uint8Array;
  searchText: string | null;
  createdAt: Date;
  editedAt: Date | null;
  recalled: boolean;
}

/** A row of `offline_messages`. */
export interface OfflineRow {
  appId: string;
  userId: string;
  conversationId: string;
  seq: number;
  msgId: string;
  payload: Uint8Array;
  createdAt: Date;
}

/** The tables; later issues add theirs here as their repositories need them. */
export class MemoryTables {
  readonly apps = new Map<string, AppRow>();
  readonly users = new Map<string, UserRow>();
  /** Keyed by token hash, as the unique key in MySQL. */
  readonly refreshTokens = new Map<string, RefreshTokenRow>();
  readonly conversations = new Map<string, ConversationRow>();
  readonly groups = new Map<string, GroupRow>();
  /** Keyed by `${groupId} ${userId}`. */
  readonly groupMembers = new Map<string, GroupMemberRow>();
  /** Keyed by `${conversationId} ${userId}`. */
  readonly members = new Map<string, MemberRow>();
  /** Per conversation, rows by seq (JavaScript maps keep insertion order; readers sort). */
  readonly messages = new Map<string, Map<number, MessageRow>>();
  /** The unique key (conversation, sender, client_msg_id) of `messages`, keyed by `${conversationId} ${senderId} ${clientMsgId}`. */
  readonly messagesByClientId = new Map<string, MessageRow>();
  /** `user_message` flags, keyed by `${userId} ${conversationId} ${seq}`. */
  readonly userMessages = new Map<string, { appId: string; userId: string; conversationId: string; seq: number; flags: number }>();
  /** Keyed by `${userId} ${conversationId} ${seq}`. */
  readonly offline = new Map<string, OfflineRow>();
  /** `sequence_snapshots`: per conversation, the snapshotted seqs. */
  readonly snapshots = new Map<string, number[]>();
}

/**
 * How MySQL's utf8mb4_unicode_ci compares text, for the in-memory twin: case- and accent-insensitive,
 * so uniqueness and prefix search agree between the two adapters.
 */
export function collationKey(text: string): string {
  return text.normalize("NFD").replace(/\p{Diacritic}/gu, "").toLowerCase();
}
