import type { Kv } from "../../platform/kv/kv.js";
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
    const key = `seq:${conversationId}`;
    let seq = await this.kv.incr(key);
    if (seq === 1) {
      const floor = await this.store.seqFloor(appId, conversationId);
      if (floor > 0) seq = await this.kv.incr(key, floor);
    }
    if (seq % snapshotEvery === 0) await this.store.snapshotSeq(appId, conversationId, seq);
    return seq;
  }
}
