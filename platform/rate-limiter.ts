// Rate limits on the hot path: token buckets per key kept in the process, with the shared Kv bucket (Redis in mesh
// mode) consulted only for keys that are busy, i.e. whose local bucket is below half. A normal sender costs a map
// lookup; a flood is refused locally without a round trip; a sender spread over instances is caught by the shared
// bucket once each instance sees it busy (so the limit holds within a factor of the instance count at worst).
import { Code, ConnectError } from "@connectrpc/connect";
import type { BucketSpec, Kv } from "./kv/kv.js";
import { refill } from "./kv/memory-kv.js";

/** One limit a call must pass: its bucket's key and size, and how a refusal names it to the caller. */
export interface Limit {
  readonly key: string;
  readonly bucket: BucketSpec;
  /** Says what was limited, e.g. "you are sending messages too fast". */
  readonly what: string;
}

/** The ResourceExhausted a refused call gets: the retry hint in seconds, also as `retry-after` metadata. */
export function rateLimited(what: string, retryAfterMs: number): ConnectError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new ConnectError(`${what}; try again in ${seconds} s`, Code.ResourceExhausted, { "retry-after": String(seconds) });
}

interface LocalBucket {
  tokens: number;
  at: number;
}

/** Token buckets per key in this process, backed by the shared Kv buckets for busy keys. */
export class RateLimiter {
  private readonly local = new Map<string, LocalBucket>();

  constructor(
    private readonly shared: Kv,
    private readonly options: {
      /** Reports a shared store that could not be asked; the local buckets still limit meanwhile. */
      readonly onSharedError?: (err: unknown) => void;
      /** The most keys remembered locally; the least recently used go first (default 100,000). */
      readonly maxKeys?: number;
      readonly now?: () => number;
    } = {},
  ) {}

  private bucket(limit: Limit, now: number): LocalBucket {
    let state = this.local.get(limit.key);
    if (state === undefined) {
      const maxKeys = this.options.maxKeys ?? 100_000;
      if (this.local.size >= maxKeys) this.local.delete(this.local.keys().next().value!);
      state = { tokens: limit.bucket.capacity, at: now };
    } else {
      this.local.delete(limit.key);
      state.tokens = refill(state.tokens, now - state.at, limit.bucket);
      state.at = now;
    }
    // Most recently used last, so the first key is the one to drop.
    this.local.set(limit.key, state);
    return state;
  }

  /** Takes one token for each limit, or throws ResourceExhausted (with retry-after) for the first that refuses. */
  async take(limits: readonly Limit[]): Promise<void> {
    const now = (this.options.now ?? Date.now)();
    const states = limits.map((limit) => this.bucket(limit, now));
    for (let i = 0; i < limits.length; i++) {
      const { bucket, what } = limits[i]!;
      if (states[i]!.tokens < 1) throw rateLimited(what, ((1 - states[i]!.tokens) / bucket.refillPerSecond) * 1000);
    }
    const busy: number[] = [];
    for (let i = 0; i < limits.length; i++) {
      states[i]!.tokens -= 1;
      if (states[i]!.tokens < limits[i]!.bucket.capacity / 2) busy.push(i);
    }
    if (busy.length === 0) return;
    let results;
    try {
      results = await Promise.all(busy.map((i) => this.shared.take(limits[i]!.key, limits[i]!.bucket)));
    } catch (err) {
      this.options.onSharedError?.(err);
      return;
    }
    for (let j = 0; j < busy.length; j++) {
      const i = busy[j]!;
      const result = results[j]!;
      // The local bucket never holds more than the shared one: what other instances spent counts here too.
      states[i]!.tokens = Math.min(states[i]!.tokens, result.remaining);
      if (!result.allowed) throw rateLimited(limits[i]!.what, result.retryAfterMs);
    }
  }
}
