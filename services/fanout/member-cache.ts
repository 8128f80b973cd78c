import type { MemberSpans, MessageStore } from "../msg/message-store.js";

/**
 * Member spans of group conversations, kept until the conversation's `members_seq` moves (checked by the caller
 * per batch) or a `membership_change` record drops them; at most `max` conversations, least recently used out.
 */
export class MemberCache {
  private readonly entries = new Map<string, MemberSpans>();

  constructor(
    private readonly store: MessageStore,
    private readonly max = 10_000,
  ) {}

  /** The spans as of `membersSeq` (the value just read from the conversation): cached, or read again. */
  async spans(appId: string, conversationId: string, membersSeq: number): Promise<MemberSpans> {
    const cached = this.entries.get(conversationId);
    if (cached !== undefined && cached.membersSeq === membersSeq) {
      this.entries.delete(conversationId);
      this.entries.set(conversationId, cached);
      return cached;
    }
    const fresh = await this.store.memberSpans(appId, conversationId);
    this.entries.set(conversationId, fresh);
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
    return fresh;
  }

  drop(conversationId: string): void {
    this.entries.delete(conversationId);
  }
}
