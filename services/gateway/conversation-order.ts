// The raw stream's order guarantee (DESIGN.md §7.8): whatever path a message takes to this gateway (the offline
// inbox replayed at connect, a live push from msg, a fan-out worker, the offline writer's push after it stored an
// entry), each conversation's messages leave on one connection in seq order and once. Messages that arrive ahead
// of a gap are held while the gap is filled from the store; a gap the store cannot fill (a seq that was issued but
// never stored) is given up after a short wait, and the client's own gap detection takes over from there.
import type { Message } from "../../gen/im/msg/v1/msg_pb.js";

/** Marks a seq the device already knows from its own send result: it is passed over, never sent. */
const known = Symbol("known");

/** What one connection has sent of one conversation. */
interface Track {
  /** The highest seq sent (or known to the device); everything at or below it is a duplicate. */
  last: bigint;
  /** Messages (or known seqs) above last + 1, waiting for the gap below them to close. */
  readonly held: Map<bigint, Message | typeof known>;
  filling: boolean;
}

/** How ConversationOrder reaches the store and how long it waits for a gap. */
export interface OrderOptions {
  /** The conversation's stored messages with seq > afterSeq, oldest first (a page; empty at the end). */
  readonly fetchAfter: (conversationId: string, afterSeq: bigint) => Promise<readonly Message[]>;
  /** How long a gap the store could not fill is waited for before the held messages go out (default 1 s). */
  readonly gapWaitMs?: number;
}

/**
 * Puts one connection's messages in seq order per conversation and drops repeats, so a client written from the
 * contract sees each message once and in order across the offline/online boundary.
 */
export class ConversationOrder {
  private readonly tracks = new Map<string, Track>();
  private buffered: Message[] | undefined;
  private heldCount = 0;
  private stopped = false;

  constructor(
    /** Writes a message to the stream; false when the stream cannot take it. */
    private readonly emit: (message: Message) => boolean,
    private readonly options: OrderOptions,
  ) {}

  /** How many messages wait behind gaps (they count against the connection's queue bound). */
  get held(): number {
    return this.heldCount;
  }

  /** Live messages are kept back until endReplay(): the offline inbox goes first. */
  beginReplay(): void {
    this.buffered ??= [];
  }

  /** The inbox is out: what arrived meanwhile goes through in order, repeats of the inbox dropped. */
  endReplay(): void {
    const buffered = this.buffered ?? [];
    this.buffered = undefined;
    for (const m of buffered) this.offer(m);
  }

  /** Takes a message for the stream: sent now, held behind a gap, or dropped as a repeat. */
  offer(message: Message, options: { replay?: boolean } = {}): void {
    if (this.stopped) return;
    if (this.buffered !== undefined && !options.replay) {
      this.buffered.push(message);
      return;
    }
    this.place(message.conversationId, message.seq, message);
  }

  /** The device learnt this seq from its own send result: later messages need not wait for it, nor repeat it. */
  known(conversationId: string, seq: bigint): void {
    if (!this.stopped) this.place(conversationId, seq, known);
  }

  /** Stops ordering (the stream ended) and hands back what was held, oldest first per conversation. */
  stop(): Message[] {
    this.stopped = true;
    const left: Message[] = [...(this.buffered ?? [])];
    for (const track of this.tracks.values()) {
      for (const seq of [...track.held.keys()].sort(compare)) {
        const m = track.held.get(seq);
        if (m !== known && m !== undefined) left.push(m);
      }
      track.held.clear();
    }
    this.heldCount = 0;
    this.buffered = undefined;
    return left;
  }

  private place(conversationId: string, seq: bigint, item: Message | typeof known): void {
    let track = this.tracks.get(conversationId);
    // The first message of a conversation on this connection sets where it starts.
    if (track === undefined) this.tracks.set(conversationId, (track = { last: seq - 1n, held: new Map(), filling: false }));
    if (seq <= track.last || track.held.has(seq)) return;
    if (seq === track.last + 1n) {
      this.advance(track, seq, item);
      this.drain(track);
      return;
    }
    track.held.set(seq, item);
    if (item !== known) this.heldCount++;
    if (!track.filling) void this.fill(conversationId, track);
  }

  private advance(track: Track, seq: bigint, item: Message | typeof known): void {
    track.last = seq;
    if (item !== known) this.emit(item);
  }

  /** Sends what the gap's closing freed: held seqs that now follow on. */
  private drain(track: Track): void {
    for (let next = track.held.get(track.last + 1n); next !== undefined; next = track.held.get(track.last + 1n)) {
      track.held.delete(track.last + 1n);
      if (next !== known) this.heldCount--;
      this.advance(track, track.last + 1n, next);
    }
  }

  private lowestHeld(track: Track): bigint | undefined {
    let low: bigint | undefined;
    for (const seq of track.held.keys()) if (low === undefined || seq < low) low = seq;
    return low;
  }

  /**
   * Fills the gap below the held messages from the store, waits once more for a push if the store did not have
   * it, then sends what is held in order whatever happened: a gap is never held open for good.
   */
  private async fill(conversationId: string, track: Track): Promise<void> {
    track.filling = true;
    try {
      for (let round = 0; round < 2 && !this.stopped; round++) {
        if (round > 0) await new Promise((resolve) => setTimeout(resolve, this.options.gapWaitMs ?? 1000).unref());
        let low = this.lowestHeld(track);
        while (!this.stopped && low !== undefined && low > track.last + 1n) {
          const page = await this.options.fetchAfter(conversationId, track.last);
          const before = track.last;
          for (const m of page) {
            if (m.seq >= low || m.seq <= track.last) continue;
            // First round: only what follows on (a missing seq may still be on its way to the store). After the
            // wait the store is the authority below the held messages: what it lacks is skipped.
            if (round === 0 && m.seq !== track.last + 1n) break;
            this.advance(track, m.seq, m);
          }
          this.drain(track);
          low = this.lowestHeld(track);
          if (page.length === 0 || track.last === before || page[page.length - 1]!.seq >= (low ?? 0n)) break;
        }
        if (low === undefined) return;
      }
    } catch {
      // The store could not be asked (a restart, an expired token): what is held goes out, and the client syncs.
    } finally {
      track.filling = false;
      if (!this.stopped) {
        for (const seq of [...track.held.keys()].sort(compare)) {
          const item = track.held.get(seq)!;
          track.held.delete(seq);
          if (item !== known) this.heldCount--;
          if (seq > track.last) this.advance(track, seq, item);
        }
      }
    }
  }
}

function compare(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
