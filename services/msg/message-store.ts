import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import type { SqlDatabase, SqlExecutor, SqlValue } from "../../platform/store/sql.js";
import type { MemberRow, MemoryTables, MessageRow, OfflineRow } from "../../platform/store/memory-tables.js";

/** A persisted message (a `messages` row); body is the protobuf encoding of MessageContent. */
export type StoredMessage = MessageRow;

/** A pending offline delivery (an `offline_messages` row); payload is the protobuf encoding of Message. */
export type OfflineEntry = OfflineRow;

/** What the service needs to know of a conversation. */
export interface ConversationState {
  readonly appId: string;
  readonly id: string;
  /** 1 single, 2 group (ConversationType). */
  readonly type: number;
  readonly groupId: string | null;
  readonly maxSeq: number;
  /** The seq of the latest membership change (0: none). */
  readonly membersSeq: number;
  readonly updatedAt: Date;
}

/** A member of a conversation, present or past, with the seqs bounding what they receive. */
export interface MemberSpan {
  readonly userId: string;
  readonly joinedSeq: number;
  readonly leftSeq: number | null;
}

/** Every member span of a conversation, as of its `membersSeq`. */
export interface MemberSpans {
  readonly membersSeq: number;
  readonly members: readonly MemberSpan[];
}

/** The result of a system message that changes membership. */
export type MembershipOutcome =
  /** Stored; these users joined and left at its seq. */
  | { readonly kind: "applied"; readonly joined: readonly string[]; readonly left: readonly string[] }
  /** Everyone named already was (or was not) a member: nothing was stored. */
  | { readonly kind: "unchanged" }
  | { readonly kind: "duplicate"; readonly original: StoredMessage }
  | { readonly kind: "seq-taken" };

/** One member's state in a conversation. */
export interface Membership {
  readonly lastReadSeq: number;
  readonly joinedSeq: number;
  /** The seq at which the member left; reads stop there. */
  readonly leftSeq: number | null;
  readonly muted: boolean;
  readonly starred: boolean;
}

/** A row of ListConversations. */
export interface ConversationSummary {
  readonly conversation: ConversationState;
  readonly member: Membership;
  readonly last: StoredMessage | undefined;
  /** Messages that mention the member after its last read seq. */
  readonly unreadMentions: number;
}

/** The result of inserting one message of a batch. */
export type InsertOutcome =
  | { readonly kind: "stored" }
  /** The sender already sent this client_msg_id in the conversation: the original stands. */
  | { readonly kind: "duplicate"; readonly original: StoredMessage }
  /** Another message holds this seq (only after the seq counter was lost): take a new seq and try again. */
  | { readonly kind: "seq-taken" };

/** A page position in ListConversations: after this conversation in (updatedAt desc, id) order. */
export interface ConversationCursor {
  readonly updatedAt: Date;
  readonly id: string;
}

/** Bits of `user_message.flags` (Zulip's pattern): read, starred, mentioned. */
export const flagBits = { read: 1, starred: 2, mentioned: 4 } as const;

/**
 * The msg service's storage: conversations, members and their read state, messages, per-user flags, the offline
 * inbox and sequence snapshots (DESIGN.md §4). Every read and write is scoped to an app.
 */
export interface MessageStore {
  /** Creates a 1:1 conversation and its two members if it does not exist yet. */
  ensureDirect(appId: string, conversationId: string, userIds: readonly [string, string]): Promise<void>;
  conversation(appId: string, conversationId: string): Promise<ConversationState | undefined>;
  membership(appId: string, conversationId: string, userId: string): Promise<Membership | undefined>;
  /** Current members (not those who left). */
  members(appId: string, conversationId: string): Promise<string[]>;
  /** Every member span, present and past, read after the conversation's membersSeq (so never older than it says). */
  memberSpans(appId: string, conversationId: string): Promise<MemberSpans>;
  /**
   * Stores a system message of a group conversation (creating the conversation with the first one) and, in the
   * same transaction, makes `join` members from its seq and ends `leave`'s membership at it; users who already
   * are (or are not) members are skipped, and when that leaves nothing to change, nothing is stored.
   */
  applyMembership(message: StoredMessage, groupId: string, join: readonly string[], leave: readonly string[]): Promise<MembershipOutcome>;
  /**
   * Persists a batch in one transaction (group commit), raises each conversation's max seq and each sender's
   * last read seq (a sender has read what they sent); a duplicate
   * client_msg_id or a taken seq is reported per message, and the rest are stored.
   */
  insert(batch: readonly StoredMessage[], mentions?: readonly { userId: string; conversationId: string; seq: number }[]): Promise<InsertOutcome[]>;
  /** Messages with seq in (afterSeq, upToSeq], oldest first. */
  after(appId: string, conversationId: string, afterSeq: number, limit: number, upToSeq?: number): Promise<StoredMessage[]>;
  message(appId: string, conversationId: string, seq: number): Promise<StoredMessage | undefined>;
  /** Changes a message in place (edit, recall); undefined when absent. */
  update(appId: string, conversationId: string, seq: number, patch: Partial<Pick<StoredMessage, "body" | "contentType" | "searchText" | "editedAt" | "recalled">>): Promise<StoredMessage | undefined>;
  /** The user's conversations, most recently active first. */
  listConversations(appId: string, userId: string, limit: number, after?: ConversationCursor): Promise<ConversationSummary[]>;
  /** Raises the member's last read seq to `seq` (never lowers it, never past max seq); returns the new value. */
  markRead(appId: string, conversationId: string, userId: string, seq: number): Promise<number>;
  /** The lowest seq that is certainly above every seq ever issued: max(latest snapshot + 10,000, max persisted). */
  seqFloor(appId: string, conversationId: string): Promise<number>;
  /** Records that `seq` was issued (every 10,000th). */
  snapshotSeq(appId: string, conversationId: string, seq: number): Promise<void>;
  /** Sets and clears flag bits on the user's messages; returns how many rows changed. */
  setFlags(appId: string, userId: string, conversationId: string, seqs: readonly number[], add: number, remove: number): Promise<number>;
  /** The user's flag bits on those messages (absent = 0). */
  flags(userId: string, conversationId: string, seqs: readonly number[]): Promise<Map<number, number>>;
  /** Full-text search over the conversations the user belongs to (or one of them), newest first. */
  search(appId: string, userId: string, query: string, conversationId: string | undefined, limit: number, offset: number): Promise<StoredMessage[]>;
  /** Adds to the offline inbox; an entry already there is left alone (redelivery of the bus is harmless). */
  storeOffline(entries: readonly OfflineEntry[]): Promise<void>;
  /** The user's oldest offline entries, by conversation and seq. */
  offline(appId: string, userId: string, limit: number): Promise<OfflineEntry[]>;
  /** Removes the user's entries up to each given seq (what the device acknowledged). */
  deleteOffline(appId: string, userId: string, upTo: readonly { conversationId: string; seq: number }[]): Promise<number>;
  /** Removes offline entries created before the instant (the 7-day purge). */
  purgeOffline(before: Date): Promise<number>;
}

const snapshotSpan = 10_000;

/** Splits a list into runs of at most `size`, so statements stay under MySQL's placeholder limit. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Batch positions ordered by conversation, then seq: the order a batch is checked and written in. */
function byConversationAndSeq(batch: readonly StoredMessage[]): number[] {
  return batch
    .map((_, i) => i)
    .sort((a, b) => {
      const x = batch[a]!;
      const y = batch[b]!;
      return x.conversationId === y.conversationId ? x.seq - y.seq : x.conversationId < y.conversationId ? -1 : 1;
    });
}

function memberOf(row: MemberRow): Membership {
  return { lastReadSeq: row.lastReadSeq, joinedSeq: row.joinedSeq, leftSeq: row.leftSeq, muted: row.muted, starred: row.starred };
}

/** The MessageStore on the in-memory tables (all-in-one mode and unit tests). */
export class MemoryMessageStore implements MessageStore {
  constructor(private readonly tables: MemoryTables) {}

  private rows(conversationId: string): Map<number, MessageRow> {
    let rows = this.tables.messages.get(conversationId);
    if (rows === undefined) this.tables.messages.set(conversationId, (rows = new Map()));
    return rows;
  }

  async ensureDirect(appId: string, conversationId: string, userIds: readonly [string, string]): Promise<void> {
    if (this.tables.conversations.has(conversationId)) return;
    const now = new Date();
    this.tables.conversations.set(conversationId, { appId, id: conversationId, type: 1, groupId: null, maxSeq: 0, membersSeq: 0, createdAt: now, updatedAt: now });
    for (const userId of userIds) {
      this.tables.members.set(`${conversationId} ${userId}`, { appId, conversationId, userId, lastReadSeq: 0, joinedSeq: 0, leftSeq: null, muted: false, starred: false, updatedAt: now });
    }
  }

  async conversation(appId: string, conversationId: string): Promise<ConversationState | undefined> {
    const c = this.tables.conversations.get(conversationId);
    return c?.appId === appId ? { appId, id: c.id, type: c.type, groupId: c.groupId, maxSeq: c.maxSeq, membersSeq: c.membersSeq, updatedAt: c.updatedAt } : undefined;
  }

  async membership(appId: string, conversationId: string, userId: string): Promise<Membership | undefined> {
    const m = this.tables.members.get(`${conversationId} ${userId}`);
    return m?.appId === appId ? memberOf(m) : undefined;
  }

  async members(appId: string, conversationId: string): Promise<string[]> {
    return [...this.tables.members.values()].filter((m) => m.appId === appId && m.conversationId === conversationId && m.leftSeq === null).map((m) => m.userId);
  }

  async memberSpans(appId: string, conversationId: string): Promise<MemberSpans> {
    const c = this.tables.conversations.get(conversationId);
    if (c?.appId !== appId) return { membersSeq: 0, members: [] };
    const members = [...this.tables.members.values()]
      .filter((m) => m.conversationId === conversationId)
      .map((m) => ({ userId: m.userId, joinedSeq: m.joinedSeq, leftSeq: m.leftSeq }));
    return { membersSeq: c.membersSeq, members };
  }

  async applyMembership(m: StoredMessage, groupId: string, join: readonly string[], leave: readonly string[]): Promise<MembershipOutcome> {
    let c = this.tables.conversations.get(m.conversationId);
    if (c === undefined) {
      c = { appId: m.appId, id: m.conversationId, type: 2, groupId, maxSeq: 0, membersSeq: 0, createdAt: m.createdAt, updatedAt: m.createdAt };
      this.tables.conversations.set(m.conversationId, c);
    }
    const original = this.tables.messagesByClientId.get(`${m.conversationId} ${m.senderId} ${m.clientMsgId}`);
    if (original) return { kind: "duplicate", original };
    if (m.seq <= c.maxSeq) return { kind: "seq-taken" };
    const active = (u: string) => this.tables.members.get(`${m.conversationId} ${u}`)?.leftSeq === null;
    const joined = [...new Set(join)].filter((u) => !active(u));
    const left = [...new Set(leave)].filter(active);
    if (join.length + leave.length > 0 && joined.length + left.length === 0) return { kind: "unchanged" };
    const row = { ...m };
    this.rows(m.conversationId).set(m.seq, row);
    this.tables.messagesByClientId.set(`${m.conversationId} ${m.senderId} ${m.clientMsgId}`, row);
    c.maxSeq = m.seq;
    c.updatedAt = m.createdAt;
    if (joined.length + left.length > 0) c.membersSeq = m.seq;
    for (const userId of joined) {
      this.tables.members.set(`${m.conversationId} ${userId}`, {
        appId: m.appId, conversationId: m.conversationId, userId, lastReadSeq: userId === m.senderId ? m.seq : m.seq - 1, joinedSeq: m.seq, leftSeq: null, muted: false, starred: false, updatedAt: m.createdAt,
      });
    }
    for (const userId of left) this.tables.members.get(`${m.conversationId} ${userId}`)!.leftSeq = m.seq;
    const sender = this.tables.members.get(`${m.conversationId} ${m.senderId}`);
    if (sender) sender.lastReadSeq = Math.max(sender.lastReadSeq, m.seq);
    return { kind: "applied", joined, left };
  }

  async insert(batch: readonly StoredMessage[], mentions: readonly { userId: string; conversationId: string; seq: number }[] = []): Promise<InsertOutcome[]> {
    const outcomes: InsertOutcome[] = batch.map(() => ({ kind: "stored" }));
    for (const i of byConversationAndSeq(batch)) {
      const m = batch[i]!;
      const rows = this.rows(m.conversationId);
      const uniqueKey = `${m.conversationId} ${m.senderId} ${m.clientMsgId}`;
      const original = this.tables.messagesByClientId.get(uniqueKey);
      if (original) outcomes[i] = { kind: "duplicate", original };
      else if (rows.has(m.seq) || m.seq <= (this.tables.conversations.get(m.conversationId)?.maxSeq ?? 0)) outcomes[i] = { kind: "seq-taken" };
      else {
        const row = { ...m };
        rows.set(m.seq, row);
        this.tables.messagesByClientId.set(uniqueKey, row);
        const c = this.tables.conversations.get(m.conversationId);
        if (c) {
          c.maxSeq = Math.max(c.maxSeq, m.seq);
          c.updatedAt = m.createdAt;
        }
        const sender = this.tables.members.get(`${m.conversationId} ${m.senderId}`);
        if (sender) sender.lastReadSeq = Math.max(sender.lastReadSeq, m.seq);
      }
    }
    for (const x of mentions) {
      const m = batch.find((b) => b.conversationId === x.conversationId && b.seq === x.seq);
      if (m) await this.setFlags(m.appId, x.userId, x.conversationId, [x.seq], flagBits.mentioned, 0);
    }
    return outcomes;
  }

  async after(appId: string, conversationId: string, afterSeq: number, limit: number, upToSeq = Number.MAX_SAFE_INTEGER): Promise<StoredMessage[]> {
    return [...(this.tables.messages.get(conversationId)?.values() ?? [])]
      .filter((m) => m.appId === appId && m.seq > afterSeq && m.seq <= upToSeq)
      .sort((a, b) => a.seq - b.seq)
      .slice(0, limit);
  }

  async message(appId: string, conversationId: string, seq: number): Promise<StoredMessage | undefined> {
    const m = this.tables.messages.get(conversationId)?.get(seq);
    return m?.appId === appId ? m : undefined;
  }

  async update(appId: string, conversationId: string, seq: number, patch: Partial<StoredMessage>): Promise<StoredMessage | undefined> {
    const m = await this.message(appId, conversationId, seq);
    if (m === undefined) return undefined;
    Object.assign(m, patch);
    return m;
  }

  async listConversations(appId: string, userId: string, limit: number, after?: ConversationCursor): Promise<ConversationSummary[]> {
    const out: ConversationSummary[] = [];
    for (const m of this.tables.members.values()) {
      if (m.appId !== appId || m.userId !== userId) continue;
      const c = this.tables.conversations.get(m.conversationId)!;
      const rows = this.tables.messages.get(c.id);
      const upTo = m.leftSeq ?? c.maxSeq;
      let last: MessageRow | undefined;
      for (const r of rows?.values() ?? []) if (r.seq <= upTo && (last === undefined || r.seq > last.seq)) last = r;
      let unreadMentions = 0;
      for (const f of this.tables.userMessages.values()) {
        if (f.userId === userId && f.conversationId === c.id && f.seq > m.lastReadSeq && f.flags & flagBits.mentioned) unreadMentions++;
      }
      out.push({ conversation: { appId, id: c.id, type: c.type, groupId: c.groupId, maxSeq: c.maxSeq, membersSeq: c.membersSeq, updatedAt: c.updatedAt }, member: memberOf(m), last, unreadMentions });
    }
    const order = (a: ConversationCursor, b: ConversationCursor) => b.updatedAt.getTime() - a.updatedAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    return out
      .map((s) => ({ s, k: { updatedAt: s.conversation.updatedAt, id: s.conversation.id } }))
      .filter(({ k }) => after === undefined || order(after, k) < 0)
      .sort((x, y) => order(x.k, y.k))
      .slice(0, limit)
      .map(({ s }) => s);
  }

  async markRead(appId: string, conversationId: string, userId: string, seq: number): Promise<number> {
    const m = this.tables.members.get(`${conversationId} ${userId}`);
    const c = this.tables.conversations.get(conversationId);
    if (m === undefined || c === undefined || m.appId !== appId) return 0;
    m.lastReadSeq = Math.max(m.lastReadSeq, Math.min(seq, c.maxSeq));
    m.updatedAt = new Date();
    return m.lastReadSeq;
  }

  async seqFloor(appId: string, conversationId: string): Promise<number> {
    const snapshot = Math.max(0, ...(this.tables.snapshots.get(conversationId) ?? []));
    const persisted = Math.max(0, ...[...(this.tables.messages.get(conversationId)?.keys() ?? [])]);
    const c = this.tables.conversations.get(conversationId);
    return Math.max(snapshot > 0 ? snapshot + snapshotSpan : 0, persisted, c?.appId === appId ? c.maxSeq : 0);
  }

  async snapshotSeq(_appId: string, conversationId: string, seq: number): Promise<void> {
    const list = this.tables.snapshots.get(conversationId) ?? [];
    if (!list.includes(seq)) list.push(seq);
    this.tables.snapshots.set(conversationId, list);
  }

  async setFlags(appId: string, userId: string, conversationId: string, seqs: readonly number[], add: number, remove: number): Promise<number> {
    let changed = 0;
    for (const seq of seqs) {
      if (!this.tables.messages.get(conversationId)?.has(seq)) continue;
      const key = `${userId} ${conversationId} ${seq}`;
      const row = this.tables.userMessages.get(key) ?? { appId, userId, conversationId, seq, flags: 0 };
      const flags = (row.flags | add) & ~remove;
      if (flags !== row.flags || !this.tables.userMessages.has(key)) changed++;
      this.tables.userMessages.set(key, { ...row, flags });
    }
    return changed;
  }

  async flags(userId: string, conversationId: string, seqs: readonly number[]): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    for (const seq of seqs) {
      const row = this.tables.userMessages.get(`${userId} ${conversationId} ${seq}`);
      if (row && row.flags !== 0) out.set(seq, row.flags);
    }
    return out;
  }

  async search(appId: string, userId: string, query: string, conversationId: string | undefined, limit: number, offset: number): Promise<StoredMessage[]> {
    const words = query.toLowerCase().split(/\s+/).filter((w) => w.length > 0);
    const hits: StoredMessage[] = [];
    for (const m of this.tables.members.values()) {
      if (m.appId !== appId || m.userId !== userId || (conversationId !== undefined && m.conversationId !== conversationId)) continue;
      for (const r of this.tables.messages.get(m.conversationId)?.values() ?? []) {
        // The same read window as sync: from the message that added the member to the one that removed them.
        if (r.recalled || r.searchText === null || r.seq < m.joinedSeq || (m.leftSeq !== null && r.seq > m.leftSeq)) continue;
        const text = r.searchText.toLowerCase();
        if (words.every((w) => new RegExp(`(^|\\W)${w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`, "u").test(text))) hits.push(r);
      }
    }
    return hits.sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || b.seq - a.seq).slice(offset, offset + limit);
  }

  async storeOffline(entries: readonly OfflineEntry[]): Promise<void> {
    for (const e of entries) {
      const key = `${e.userId} ${e.conversationId} ${e.seq}`;
      if (!this.tables.offline.has(key)) this.tables.offline.set(key, { ...e });
    }
  }

  async offline(appId: string, userId: string, limit: number): Promise<OfflineEntry[]> {
    return [...this.tables.offline.values()]
      .filter((e) => e.appId === appId && e.userId === userId)
      .sort((a, b) => (a.conversationId === b.conversationId ? a.seq - b.seq : a.conversationId < b.conversationId ? -1 : 1))
      .slice(0, limit);
  }

  async deleteOffline(appId: string, userId: string, upTo: readonly { conversationId: string; seq: number }[]): Promise<number> {
    let n = 0;
    for (const [key, e] of this.tables.offline) {
      if (e.appId === appId && e.userId === userId && upTo.some((u) => u.conversationId === e.conversationId && e.seq <= u.seq)) {
        this.tables.offline.delete(key);
        n++;
      }
    }
    return n;
  }

  async purgeOffline(before: Date): Promise<number> {
    let n = 0;
    for (const [key, e] of this.tables.offline) {
      if (e.createdAt < before) {
        this.tables.offline.delete(key);
        n++;
      }
    }
    return n;
  }
}

const messageColumns =
  "app_id, conversation_id, seq, msg_id, client_msg_id, sender_id, sender_device_id, content_type, body, search_text, created_at, edited_at, recalled";

function toMessage(r: RowDataPacket): StoredMessage {
  return {
    appId: r.app_id,
    conversationId: r.conversation_id,
    seq: Number(r.seq),
    msgId: r.msg_id,
    clientMsgId: r.client_msg_id,
    senderId: r.sender_id,
    senderDeviceId: r.sender_device_id,
    contentType: r.content_type,
    body: new Uint8Array(r.body),
    searchText: r.search_text,
    createdAt: r.created_at,
    editedAt: r.edited_at,
    recalled: Boolean(r.recalled),
  };
}

function toMembership(r: RowDataPacket): Membership {
  return {
    lastReadSeq: Number(r.last_read_seq),
    joinedSeq: Number(r.joined_seq),
    leftSeq: r.left_seq === null ? null : Number(r.left_seq),
    muted: Boolean(r.muted),
    starred: Boolean(r.starred),
  };
}

/** Characters InnoDB's boolean-mode FULLTEXT syntax gives a meaning; user text is matched as plain words. */
function booleanModeQuery(query: string): string {
  return query
    .replace(/[+\-><()~*"@]/g, " ")
    .split(/\s+/)
    .filter((w) => w.length > 0)
    .map((w) => `+${w}*`)
    .join(" ");
}

/** The MessageStore on MySQL/MariaDB. */
export class SqlMessageStore implements MessageStore {
  constructor(private readonly db: SqlDatabase) {}

  async ensureDirect(appId: string, conversationId: string, userIds: readonly [string, string]): Promise<void> {
    await this.db.transaction(async (tx) => {
      const created = await tx.execute("INSERT IGNORE INTO conversations (app_id, id, type) VALUES (?, ?, 1)", [appId, conversationId]);
      if (created.affectedRows === 0) return;
      await tx.execute("INSERT IGNORE INTO conversation_members (app_id, conversation_id, user_id) VALUES (?, ?, ?), (?, ?, ?)", [
        appId,
        conversationId,
        userIds[0],
        appId,
        conversationId,
        userIds[1],
      ]);
    });
  }

  async conversation(appId: string, conversationId: string): Promise<ConversationState | undefined> {
    const [r] = await this.db.query<RowDataPacket>("SELECT app_id, id, type, group_id, max_seq, members_seq, updated_at FROM conversations WHERE app_id = ? AND id = ?", [appId, conversationId]);
    return r ? { appId: r.app_id, id: r.id, type: r.type, groupId: r.group_id, maxSeq: Number(r.max_seq), membersSeq: Number(r.members_seq), updatedAt: r.updated_at } : undefined;
  }

  async membership(appId: string, conversationId: string, userId: string): Promise<Membership | undefined> {
    const [r] = await this.db.query<RowDataPacket>(
      "SELECT last_read_seq, joined_seq, left_seq, muted, starred FROM conversation_members WHERE app_id = ? AND conversation_id = ? AND user_id = ?",
      [appId, conversationId, userId],
    );
    return r ? toMembership(r) : undefined;
  }

  async members(appId: string, conversationId: string): Promise<string[]> {
    const rows = await this.db.query<RowDataPacket>("SELECT user_id FROM conversation_members WHERE app_id = ? AND conversation_id = ? AND left_seq IS NULL", [appId, conversationId]);
    return rows.map((r) => r.user_id);
  }

  async memberSpans(appId: string, conversationId: string): Promise<MemberSpans> {
    const c = await this.conversation(appId, conversationId);
    if (c === undefined) return { membersSeq: 0, members: [] };
    const rows = await this.db.query<RowDataPacket>("SELECT user_id, joined_seq, left_seq FROM conversation_members WHERE conversation_id = ? AND app_id = ?", [conversationId, appId]);
    return { membersSeq: c.membersSeq, members: rows.map((r) => ({ userId: r.user_id, joinedSeq: Number(r.joined_seq), leftSeq: r.left_seq === null ? null : Number(r.left_seq) })) };
  }

  async applyMembership(m: StoredMessage, groupId: string, join: readonly string[], leave: readonly string[]): Promise<MembershipOutcome> {
    return this.db.transaction(async (tx) => {
      await tx.execute("INSERT IGNORE INTO conversations (app_id, id, type, group_id) VALUES (?, ?, 2, ?)", [m.appId, m.conversationId, groupId]);
      const [c] = await tx.query<RowDataPacket>("SELECT app_id, max_seq FROM conversations WHERE id = ? FOR UPDATE", [m.conversationId]);
      if (c?.app_id !== m.appId) throw new Error(`conversation ${m.conversationId} belongs to another app`);
      const [dup] = await tx.query<RowDataPacket>(`SELECT ${messageColumns} FROM messages WHERE conversation_id = ? AND sender_id = ? AND client_msg_id = ?`, [m.conversationId, m.senderId, m.clientMsgId]);
      if (dup) return { kind: "duplicate", original: toMessage(dup) };
      if (m.seq <= Number(c.max_seq)) return { kind: "seq-taken" };
      const named = [...new Set([...join, ...leave])];
      const active = new Set<string>();
      for (const ids of chunks(named, 1000)) {
        const rows = await tx.query<RowDataPacket>(
          `SELECT user_id FROM conversation_members WHERE conversation_id = ? AND left_seq IS NULL AND user_id IN (${ids.map(() => "?").join(", ")})`,
          [m.conversationId, ...ids],
        );
        for (const r of rows) active.add(r.user_id);
      }
      const joined = [...new Set(join)].filter((u) => !active.has(u));
      const left = [...new Set(leave)].filter((u) => active.has(u));
      if (named.length > 0 && joined.length + left.length === 0) return { kind: "unchanged" };
      await tx.execute(`INSERT INTO messages (${messageColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, [
        m.appId, m.conversationId, m.seq, m.msgId, m.clientMsgId, m.senderId, m.senderDeviceId, m.contentType, m.body, m.searchText, m.createdAt, m.editedAt, m.recalled,
      ]);
      const changed = joined.length + left.length > 0;
      await tx.execute(`UPDATE conversations SET max_seq = ?, updated_at = ?${changed ? ", members_seq = ?" : ""} WHERE id = ?`, changed ? [m.seq, m.createdAt, m.seq, m.conversationId] : [m.seq, m.createdAt, m.conversationId]);
      for (const ids of chunks(joined, 1000)) {
        await tx.execute(
          `INSERT INTO conversation_members (app_id, conversation_id, user_id, last_read_seq, joined_seq) VALUES ${ids.map(() => "(?, ?, ?, ?, ?)").join(", ")}
           ON DUPLICATE KEY UPDATE joined_seq = VALUES(joined_seq), left_seq = NULL, last_read_seq = VALUES(last_read_seq)`,
          ids.flatMap((u) => [m.appId, m.conversationId, u, u === m.senderId ? m.seq : m.seq - 1, m.seq]),
        );
      }
      for (const ids of chunks(left, 1000)) {
        await tx.execute(`UPDATE conversation_members SET left_seq = ? WHERE conversation_id = ? AND user_id IN (${ids.map(() => "?").join(", ")})`, [m.seq, m.conversationId, ...ids]);
      }
      await tx.execute("UPDATE conversation_members SET last_read_seq = GREATEST(last_read_seq, ?) WHERE conversation_id = ? AND user_id = ?", [m.seq, m.conversationId, m.senderId]);
      return { kind: "applied", joined, left };
    });
  }

  async insert(batch: readonly StoredMessage[], mentions: readonly { userId: string; conversationId: string; seq: number }[] = []): Promise<InsertOutcome[]> {
    if (batch.length === 0) return [];
    return this.db.transaction(async (tx) => {
      const outcomes: InsertOutcome[] = batch.map(() => ({ kind: "stored" }));
      // A seq at or below what a conversation already holds would reach clients out of order (after the seq
      // counter was lost, or from a slower msg instance): refuse it, and the sender takes a new seq.
      const ids = [...new Set(batch.map((m) => m.conversationId))];
      const locked = await tx.query<RowDataPacket>(`SELECT id, max_seq FROM conversations WHERE id IN (${ids.map(() => "?").join(", ")}) FOR UPDATE`, ids);
      const maxSeq = new Map(locked.map((r) => [r.id as string, Number(r.max_seq)]));
      for (const [i, m] of batch.entries()) if (m.seq <= (maxSeq.get(m.conversationId) ?? 0)) outcomes[i] = { kind: "seq-taken" };
      const rows = batch.filter((_, i) => outcomes[i]!.kind === "stored");
      if (rows.length === 0) return outcomes;
      const values: SqlValue[] = [];
      for (const m of rows) {
        values.push(m.appId, m.conversationId, m.seq, m.msgId, m.clientMsgId, m.senderId, m.senderDeviceId, m.contentType, m.body, m.searchText, m.createdAt, m.editedAt, m.recalled);
      }
      // IGNORE skips rows that hit a unique key (a resent client_msg_id, a taken seq); they are sorted out below.
      const res = await tx.execute(`INSERT IGNORE INTO messages (${messageColumns}) VALUES ${rows.map(() => "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)").join(", ")}`, values);
      if (res.affectedRows < rows.length) {
        const ours = await tx.query<RowDataPacket>(`SELECT msg_id FROM messages WHERE msg_id IN (${rows.map(() => "?").join(", ")})`, rows.map((m) => m.msgId));
        const stored = new Set(ours.map((r) => r.msg_id as string));
        for (const [i, m] of batch.entries()) {
          if (outcomes[i]!.kind !== "stored" || stored.has(m.msgId)) continue;
          const [original] = await tx.query<RowDataPacket>(
            `SELECT ${messageColumns} FROM messages WHERE conversation_id = ? AND sender_id = ? AND client_msg_id = ?`,
            [m.conversationId, m.senderId, m.clientMsgId],
          );
          outcomes[i] = original ? { kind: "duplicate", original: toMessage(original) } : { kind: "seq-taken" };
        }
      }
      const top = new Map<string, StoredMessage>();
      for (const [i, m] of batch.entries()) {
        if (outcomes[i]!.kind === "stored" && (top.get(m.conversationId)?.seq ?? 0) < m.seq) top.set(m.conversationId, m);
      }
      for (const [conversationId, m] of top) {
        await tx.execute("UPDATE conversations SET max_seq = GREATEST(max_seq, ?), updated_at = ? WHERE id = ?", [m.seq, m.createdAt, conversationId]);
      }
      // A sender has read what they sent.
      const read = new Map<string, StoredMessage>();
      for (const [i, m] of batch.entries()) {
        const key = `${m.conversationId} ${m.senderId}`;
        if (outcomes[i]!.kind === "stored" && (read.get(key)?.seq ?? 0) < m.seq) read.set(key, m);
      }
      for (const m of read.values()) {
        await tx.execute("UPDATE conversation_members SET last_read_seq = GREATEST(last_read_seq, ?) WHERE conversation_id = ? AND user_id = ?", [m.seq, m.conversationId, m.senderId]);
      }
      const flagged = mentions.filter((x) => batch.some((m, i) => outcomes[i]!.kind === "stored" && m.conversationId === x.conversationId && m.seq === x.seq));
      if (flagged.length > 0) {
        const appOf = (x: { conversationId: string }) => batch.find((m) => m.conversationId === x.conversationId)!.appId;
        await tx.execute(
          `INSERT INTO user_message (app_id, user_id, conversation_id, seq, flags) VALUES ${flagged.map(() => "(?, ?, ?, ?, ?)").join(", ")} ON DUPLICATE KEY UPDATE flags = flags | VALUES(flags)`,
          flagged.flatMap((x) => [appOf(x), x.userId, x.conversationId, x.seq, flagBits.mentioned]),
        );
      }
      return outcomes;
    });
  }

  async after(appId: string, conversationId: string, afterSeq: number, limit: number, upToSeq = Number.MAX_SAFE_INTEGER): Promise<StoredMessage[]> {
    const rows = await this.db.query<RowDataPacket>(
      `SELECT ${messageColumns} FROM messages WHERE conversation_id = ? AND app_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
      [conversationId, appId, afterSeq, upToSeq, limit],
    );
    return rows.map(toMessage);
  }

  async message(appId: string, conversationId: string, seq: number): Promise<StoredMessage | undefined> {
    const [r] = await this.db.query<RowDataPacket>(`SELECT ${messageColumns} FROM messages WHERE conversation_id = ? AND app_id = ? AND seq = ?`, [conversationId, appId, seq]);
    return r ? toMessage(r) : undefined;
  }

  async update(appId: string, conversationId: string, seq: number, patch: Partial<StoredMessage>): Promise<StoredMessage | undefined> {
    const columns: [string, SqlValue][] = [];
    if (patch.body !== undefined) columns.push(["body", patch.body]);
    if (patch.contentType !== undefined) columns.push(["content_type", patch.contentType]);
    if (patch.searchText !== undefined) columns.push(["search_text", patch.searchText]);
    if (patch.editedAt !== undefined) columns.push(["edited_at", patch.editedAt]);
    if (patch.recalled !== undefined) columns.push(["recalled", patch.recalled]);
    if (columns.length > 0) {
      await this.db.execute(`UPDATE messages SET ${columns.map(([c]) => `${c} = ?`).join(", ")} WHERE conversation_id = ? AND app_id = ? AND seq = ?`, [
        ...columns.map(([, v]) => v),
        conversationId,
        appId,
        seq,
      ]);
    }
    return this.message(appId, conversationId, seq);
  }

  async listConversations(appId: string, userId: string, limit: number, after?: ConversationCursor): Promise<ConversationSummary[]> {
    const params: SqlValue[] = [appId, userId];
    let page = "";
    if (after) {
      page = "AND (c.updated_at < ? OR (c.updated_at = ? AND c.id > ?))";
      params.push(after.updatedAt, after.updatedAt, after.id);
    }
    params.push(limit);
    const rows = await this.db.query<RowDataPacket>(
      `SELECT c.app_id, c.id, c.type, c.group_id, c.max_seq, c.members_seq, c.updated_at, m.last_read_seq, m.joined_seq, m.left_seq, m.muted, m.starred,
              (SELECT COUNT(*) FROM user_message um WHERE um.user_id = m.user_id AND um.conversation_id = c.id AND um.seq > m.last_read_seq AND um.flags & ${flagBits.mentioned}) AS unread_mentions
         FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id
        WHERE m.app_id = ? AND m.user_id = ? ${page}
        ORDER BY c.updated_at DESC, c.id LIMIT ?`,
      params,
    );
    const out: ConversationSummary[] = [];
    for (const r of rows) {
      const member = toMembership(r);
      const upTo = member.leftSeq ?? Number(r.max_seq);
      const [last] = await this.db.query<RowDataPacket>(`SELECT ${messageColumns} FROM messages WHERE conversation_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1`, [r.id, upTo]);
      out.push({
        conversation: { appId: r.app_id, id: r.id, type: r.type, groupId: r.group_id, maxSeq: Number(r.max_seq), membersSeq: Number(r.members_seq), updatedAt: r.updated_at },
        member,
        last: last ? toMessage(last) : undefined,
        unreadMentions: Number(r.unread_mentions),
      });
    }
    return out;
  }

  async markRead(appId: string, conversationId: string, userId: string, seq: number): Promise<number> {
    await this.db.execute(
      `UPDATE conversation_members m JOIN conversations c ON c.id = m.conversation_id
          SET m.last_read_seq = GREATEST(m.last_read_seq, LEAST(?, c.max_seq))
        WHERE m.app_id = ? AND m.conversation_id = ? AND m.user_id = ?`,
      [seq, appId, conversationId, userId],
    );
    return (await this.membership(appId, conversationId, userId))?.lastReadSeq ?? 0;
  }

  async seqFloor(appId: string, conversationId: string): Promise<number> {
    const [r] = await this.db.query<RowDataPacket>(
      `SELECT (SELECT MAX(seq) FROM sequence_snapshots WHERE conversation_id = ?) AS snapshot,
              (SELECT MAX(seq) FROM messages WHERE conversation_id = ?) AS persisted,
              (SELECT max_seq FROM conversations WHERE id = ? AND app_id = ?) AS max_seq`,
      [conversationId, conversationId, conversationId, appId],
    );
    const snapshot = r?.snapshot === null || r?.snapshot === undefined ? 0 : Number(r.snapshot) + snapshotSpan;
    return Math.max(snapshot, Number(r?.persisted ?? 0), Number(r?.max_seq ?? 0));
  }

  async snapshotSeq(appId: string, conversationId: string, seq: number): Promise<void> {
    await this.db.execute("INSERT IGNORE INTO sequence_snapshots (app_id, conversation_id, seq) VALUES (?, ?, ?)", [appId, conversationId, seq]);
  }

  async setFlags(appId: string, userId: string, conversationId: string, seqs: readonly number[], add: number, remove: number): Promise<number> {
    return this.db.transaction(async (tx: SqlExecutor) => {
      const existing = await tx.query<RowDataPacket>(
        `SELECT seq FROM messages WHERE conversation_id = ? AND app_id = ? AND seq IN (${seqs.map(() => "?").join(", ")})`,
        [conversationId, appId, ...seqs],
      );
      if (existing.length === 0) return 0;
      const res: ResultSetHeader = await tx.execute(
        `INSERT INTO user_message (app_id, user_id, conversation_id, seq, flags) VALUES ${existing.map(() => "(?, ?, ?, ?, ?)").join(", ")}
         ON DUPLICATE KEY UPDATE flags = (flags | ?) & ~?`,
        [...existing.flatMap((r) => [appId, userId, conversationId, Number(r.seq), add & ~remove]), add, remove],
      );
      // MySQL counts an updated row twice and an unchanged one zero times.
      return Math.min(existing.length, res.affectedRows);
    });
  }

  async flags(userId: string, conversationId: string, seqs: readonly number[]): Promise<Map<number, number>> {
    if (seqs.length === 0) return new Map();
    const rows = await this.db.query<RowDataPacket>(
      `SELECT seq, flags FROM user_message WHERE user_id = ? AND conversation_id = ? AND seq IN (${seqs.map(() => "?").join(", ")}) AND flags <> 0`,
      [userId, conversationId, ...seqs],
    );
    return new Map(rows.map((r) => [Number(r.seq), Number(r.flags)]));
  }

  async search(appId: string, userId: string, query: string, conversationId: string | undefined, limit: number, offset: number): Promise<StoredMessage[]> {
    const terms = booleanModeQuery(query);
    if (terms === "") return [];
    const params: SqlValue[] = [appId, userId];
    let only = "";
    if (conversationId !== undefined) {
      only = "AND m.conversation_id = ?";
      params.push(conversationId);
    }
    params.push(terms, limit, offset);
    const rows = await this.db.query<RowDataPacket>(
      `SELECT ${messageColumns.split(", ").map((c) => `msg.${c}`).join(", ")}
         FROM conversation_members m JOIN messages msg ON msg.conversation_id = m.conversation_id
        WHERE m.app_id = ? AND m.user_id = ? ${only} AND msg.recalled = FALSE AND msg.seq >= m.joined_seq AND (m.left_seq IS NULL OR msg.seq <= m.left_seq)
          AND MATCH (msg.search_text) AGAINST (? IN BOOLEAN MODE)
        ORDER BY msg.created_at DESC, msg.seq DESC LIMIT ? OFFSET ?`,
      params,
    );
    return rows.map(toMessage);
  }

  async storeOffline(entries: readonly OfflineEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.db.execute(
      `INSERT IGNORE INTO offline_messages (app_id, user_id, conversation_id, seq, msg_id, payload, created_at) VALUES ${entries.map(() => "(?, ?, ?, ?, ?, ?, ?)").join(", ")}`,
      entries.flatMap((e) => [e.appId, e.userId, e.conversationId, e.seq, e.msgId, e.payload, e.createdAt]),
    );
  }

  async offline(appId: string, userId: string, limit: number): Promise<OfflineEntry[]> {
    const rows = await this.db.query<RowDataPacket>(
      "SELECT app_id, user_id, conversation_id, seq, msg_id, payload, created_at FROM offline_messages WHERE user_id = ? AND app_id = ? ORDER BY conversation_id, seq LIMIT ?",
      [userId, appId, limit],
    );
    return rows.map((r) => ({ appId: r.app_id, userId: r.user_id, conversationId: r.conversation_id, seq: Number(r.seq), msgId: r.msg_id, payload: new Uint8Array(r.payload), createdAt: r.created_at }));
  }

  async deleteOffline(appId: string, userId: string, upTo: readonly { conversationId: string; seq: number }[]): Promise<number> {
    if (upTo.length === 0) return 0;
    const res = await this.db.execute(
      `DELETE FROM offline_messages WHERE user_id = ? AND app_id = ? AND (${upTo.map(() => "(conversation_id = ? AND seq <= ?)").join(" OR ")})`,
      [userId, appId, ...upTo.flatMap((u) => [u.conversationId, u.seq])],
    );
    return res.affectedRows;
  }

  async purgeOffline(before: Date): Promise<number> {
    let total = 0;
    // In slices, so the purge never holds long locks on a busy inbox.
    for (;;) {
      const res = await this.db.execute("DELETE FROM offline_messages WHERE created_at < ? LIMIT 5000", [before]);
      total += res.affectedRows;
      if (res.affectedRows < 5000) return total;
    }
  }
}
