// The msg service's storage port: what it stores and the questions it asks. The adapters are
// memory-message-store.ts and sql-message-store.ts, and both pass message-store.contract.ts.
import type { MessageRow, OfflineRow } from "../../platform/store/memory-tables.js";

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

/** Seqs between two snapshots of a conversation's counter (DESIGN.md §3, seq recovery). */
export const snapshotSpan = 10_000;

/** Splits a list into runs of at most `size`, so statements stay under MySQL's placeholder limit. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Batch positions ordered by conversation, then seq: the order a batch is checked and written in. */
export function byConversationAndSeq(batch: readonly StoredMessage[]): number[] {
  return batch
    .map((_, i) => i)
    .sort((a, b) => {
      const x = batch[a]!;
      const y = batch[b]!;
      return x.conversationId === y.conversationId ? x.seq - y.seq : x.conversationId < y.conversationId ? -1 : 1;
    });
}
