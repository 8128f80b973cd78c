// The MessageStore on MySQL/MariaDB (mesh mode; both adapters pass message-store.contract.ts).
import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import type { SqlDatabase, SqlExecutor, SqlValue } from "../../platform/store/sql.js";
import {
  chunks,
  flagBits,
  snapshotSpan,
  type ConversationCursor,
  type ConversationState,
  type ConversationSummary,
  type InsertOutcome,
  type Membership,
  type MembershipOutcome,
  type MemberSpans,
  type MessageStore,
  type OfflineEntry,
  type StoredMessage,
} from "./message-store.js";

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
