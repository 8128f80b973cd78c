// The SDK's ordering: each message reaches the app once and in seq order per conversation; a message behind a seq
// gap is held while a sync fills the gap, and a resume after (re)connecting catches up on what moved meanwhile.
import type { ListConversationsResponse, Message, SyncMessagesResponse } from "../gen/im/msg/v1/msg_pb.js";
import { CoalescedRuns } from "./coalesced-runs.js";

/** What catching up asks the server; an interface, so the ordering knows nothing of transports and tokens. */
export interface CatchUpSource {
  /** One page of the conversation after `afterSeq`. */
  syncMessages(conversationId: string, afterSeq: bigint): Promise<SyncMessagesResponse>;
  /** One page of the caller's conversations. */
  listConversations(pageToken: string): Promise<ListConversationsResponse>;
}

/** How the ordering reaches the app and the stream, without knowing either. */
export interface OrderHooks {
  /** A message for the app, in order and once. */
  message(m: Message): void;
  /** A message this device has (handed out, or older than what was handed out): acknowledge it to the server. */
  ack(m: Message): void;
  /** Whether failed syncs and resumes are still worth retrying (the client runs). */
  keepTrying(): boolean;
}

const bySeq = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);

/** Retries work with jittered backoff (at most 10 times, 250 ms doubling to 30 s) while `keepTrying()`. */
async function retrying(work: () => Promise<void>, keepTrying: () => boolean): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      if (!keepTrying() || attempt >= 10) throw err;
      await new Promise((r) => setTimeout(r, Math.min(30_000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2)));
    }
  }
}

/**
 * Keeps the SDK's promise per conversation (each message once, in order): what was handed out, what is held behind
 * a gap, and the syncs that fill gaps.
 */
export class ConversationOrder {
  /** Highest seq handed to the app per conversation. */
  readonly lastSeq = new Map<string, bigint>();
  private readonly seen = new Map<string, Set<string>>();
  private readonly held = new Map<string, Map<bigint, Message>>();
  private readonly syncs = new CoalescedRuns<string>();
  private readonly resumes = new CoalescedRuns<boolean>();
  /**
   * Conversations whose position a resume assumed (their max seq when first seen, so history is not synced), with
   * the highest seq actually handed out since. A message pushed at or below an assumed position is new to this
   * client all the same (sent while the resume read the list, or replayed from the offline inbox): it is handed out.
   */
  private readonly assumed = new Map<string, bigint>();

  constructor(
    private readonly source: CatchUpSource,
    private readonly hooks: OrderHooks,
  ) {}

  /** Hands a message to the app once, in seq order; a gap is filled by sync first. `notify` false: our own send. */
  accept(m: Message, notify = true): void {
    const conv = m.conversationId;
    const last = this.lastSeq.get(conv);
    if (last !== undefined && m.seq <= last) {
      const handed = this.assumed.get(conv);
      // The stream brings a conversation's messages in seq order: one above what was handed out is new.
      if (notify && handed !== undefined && m.seq > handed) {
        if (m.seq >= last) this.assumed.delete(conv);
        else this.assumed.set(conv, m.seq);
        this.handOut(m);
        return;
      }
      return this.hooks.ack(m);
    }
    if (!notify) this.seen.get(conv)?.add(m.msgId) ?? this.seen.set(conv, new Set([m.msgId]));
    // Without a position in the conversation yet, our own message must not become it: a message of someone else
    // with a lower seq may still be on its way, and would then look old and be dropped.
    if (last === undefined && !notify) return;
    if (last !== undefined && m.seq > last + 1n) {
      let held = this.held.get(conv);
      if (!held) this.held.set(conv, (held = new Map()));
      held.set(m.seq, m);
      void this.sync(conv).catch(() => {});
      return;
    }
    this.deliver(m);
    this.flush(conv);
  }

  /**
   * Fetches what the conversation holds after the last seq handed out, until caught up. A sync asked for while
   * one of the same conversation is in flight runs again after it (once, however often it was asked): the one in
   * flight may have read the store before the message that fills a new gap was stored.
   */
  sync(conversationId: string): Promise<void> {
    // A busy or restarting server does not leave a gap open for good: the sync is retried while the client runs.
    return this.syncs.request(conversationId, () => retrying(() => this.syncOnce(conversationId), () => this.hooks.keepTrying()));
  }

  /**
   * Catches up after (re)connecting: every conversation whose max seq moved past what this client has seen is
   * synced. Conversations never seen before start from their current end, except when `history` is set. A resume
   * asked for while one is in flight runs again after it; a failed one is retried while the client runs.
   */
  resume(history = false): Promise<void> {
    return this.resumes.request(history, async () => {
      // Listing is retried here; a conversation's sync has retried on its own already, so its failure is reported.
      let failed: unknown;
      await retrying(async () => void (failed = await this.resumeOnce(history)), () => this.hooks.keepTrying());
      if (failed !== undefined) throw failed;
    });
  }

  private async syncOnce(conv: string): Promise<void> {
    for (;;) {
      const res = await this.source.syncMessages(conv, this.lastSeq.get(conv) ?? 0n);
      const lastInPage = res.messages.at(-1)?.seq ?? 0n;
      // A page covers every readable seq up to its last message, and the last page every one up to max_seq: a seq
      // held back for in that range does not exist for this reader and will never come.
      const end = !res.hasMore || res.messages.length === 0;
      this.release(conv, res.messages, end && res.maxSeq > lastInPage ? res.maxSeq : lastInPage);
      if (end) return;
    }
  }

  /** One pass over the conversations; resolves with the first sync failure, if any. */
  private async resumeOnce(history: boolean): Promise<unknown> {
    let pageToken = "";
    let failed: unknown;
    do {
      const page = await this.source.listConversations(pageToken);
      for (const c of page.conversations) {
        const known = this.lastSeq.get(c.conversationId);
        if (known === undefined && !history) {
          this.lastSeq.set(c.conversationId, c.maxSeq);
          this.assumed.set(c.conversationId, 0n);
          continue;
        }
        // One conversation's failure does not keep the others behind.
        if (c.maxSeq > (known ?? 0n)) await this.sync(c.conversationId).catch((err: unknown) => (failed ??= err));
      }
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return failed;
  }

  /** Hands out a sync page together with what is held up to `upTo`, in seq order; then what follows contiguously. */
  private release(conv: string, page: readonly Message[], upTo: bigint): void {
    const out = new Map<bigint, Message>();
    const held = this.held.get(conv);
    if (held) {
      for (const [seq, m] of held) {
        if (seq > upTo) continue;
        out.set(seq, m);
        held.delete(seq);
      }
    }
    for (const m of page) out.set(m.seq, m);
    for (const seq of [...out.keys()].sort(bySeq)) this.deliver(out.get(seq)!);
    this.flush(conv);
  }

  private deliver(m: Message): void {
    const conv = m.conversationId;
    const prev = this.lastSeq.get(conv) ?? 0n;
    if (m.seq > prev) {
      this.lastSeq.set(conv, m.seq);
      this.assumed.delete(conv);
    }
    this.handOut(m);
  }

  /** To the app once (by msg id), and acknowledged either way. */
  private handOut(m: Message): void {
    const conv = m.conversationId;
    let ids = this.seen.get(conv);
    if (!ids) this.seen.set(conv, (ids = new Set()));
    if (!ids.has(m.msgId)) {
      ids.add(m.msgId);
      if (ids.size > 10_000) ids.delete(ids.values().next().value!);
      this.hooks.message(m);
    }
    this.hooks.ack(m);
  }

  /** Hands out what is held and now next in line. */
  private flush(conv: string): void {
    const held = this.held.get(conv);
    if (!held) return;
    for (;;) {
      const next = held.get((this.lastSeq.get(conv) ?? 0n) + 1n);
      if (!next) break;
      held.delete(next.seq);
      this.deliver(next);
    }
    for (const seq of held.keys()) if (seq <= (this.lastSeq.get(conv) ?? 0n)) held.delete(seq);
    if (held.size === 0) this.held.delete(conv);
  }
}
