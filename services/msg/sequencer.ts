import type { ClaimResult, Kv } from "../../platform/kv/kv.js";
import type { MessageStore } from "./message-store.js";

/** Every this many seqs a conversation's counter is written to `sequence_snapshots`. */
export const snapshotEvery = 10_000;

/**
 * Issues seqs per conversation from `INCR seq:<conversation>` in kv (DESIGN.md §3 step 3). When the counter is
 * missing (a new conversation, or Redis lost its data) it is raised above everything ever issued, taken from the
 * store's snapshots and persisted seqs, before the seq is used: seqs never repeat and never go backwards.
 */
export class Sequencer {
  constructor(
    private readonly kv: Kv,
    private readonly store: MessageStore,
  ) {}

  async next(appId: string, conversationId: string): Promise<number> {
    return this.settle(appId, conversationId, await this.kv.incr(`seq:${conversationId}`));
  }

  /**
   * The send path's first kv round trip: claims the sender's dedup marker and, only when the claim wins, issues
   * the seq (DESIGN.md §6: dedup and seq in one round trip). A lost claim returns the marker's value.
   */
  async claimAndNext(appId: string, conversationId: string, claim: { key: string; value: string; ttlMs: number }): Promise<ClaimResult> {
    const result = await this.kv.claimThenIncr(claim, `seq:${conversationId}`);
    return result.claimed ? { claimed: true, counter: await this.settle(appId, conversationId, result.counter) } : result;
  }

  /** Raises a counter that started over (1) above every seq ever issued, and snapshots every 10,000th. */
  private async settle(appId: string, conversationId: string, issued: number): Promise<number> {
    let seq = issued;
    if (seq === 1) {
      const floor = await this.store.seqFloor(appId, conversationId);
      if (floor > 0) seq = await this.kv.incr(`seq:${conversationId}`, floor);
    }
    if (seq % snapshotEvery === 0) await this.store.snapshotSeq(appId, conversationId, seq);
    return seq;
  }
}
