// The MessageStore on the in-memory tables: all-in-one mode and unit tests (both adapters pass message-store.contract.ts).
import type { MemberRow, MemoryTables, MessageRow } from "../../platform/store/memory-tables.js";
import {
  byConversationAndSeq,
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
