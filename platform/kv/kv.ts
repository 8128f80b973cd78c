/** Options of Kv.set: an expiry, and "only if absent" for dedup and locks. */
export interface SetOptions {
  /** Expire after this many milliseconds. */
  readonly ttlMs?: number;
  /** Write only when the key does not exist yet (SET NX). */
  readonly ifAbsent?: boolean;
}

/** A token bucket: `capacity` tokens at most, refilled continuously at `refillPerSecond`. */
export interface BucketSpec {
  readonly capacity: number;
  readonly refillPerSecond: number;
}

/** The outcome of taking tokens from a bucket. */
export interface TakeResult {
  readonly allowed: boolean;
  /** Tokens left after this take (fractional while refilling). */
  readonly remaining: number;
  /** When refused: how long until enough tokens are back, for a retry-after hint. */
  readonly retryAfterMs: number;
}

/** The outcome of claimThenIncr: the claim won and the counter's new value, or the claim's existing value. */
export type ClaimResult = { readonly claimed: true; readonly counter: number } | { readonly claimed: false; readonly existing: string };

/**
 * The key-value port (DESIGN.md §5 Redis keys): sequence counters, dedup markers, caches, revocations and rate
 * limits. Both adapters give the same answers; every failure to reach the store is an UnavailableError.
 */
export interface Kv {
  get(key: string): Promise<string | null>;
  /** Reads several keys in one round trip (Redis MGET), in the order given. */
  getMany(keys: readonly string[]): Promise<(string | null)[]>;
  /** Returns false only when ifAbsent was set and the key already existed. */
  set(key: string, value: string, options?: SetOptions): Promise<boolean>;
  /** Deletes the keys and returns how many existed. */
  del(...keys: string[]): Promise<number>;
  /** Atomically adds 1 (or `by`) and returns the new value; a missing key counts from 0. */
  incr(key: string, by?: number): Promise<number>;
  /** Milliseconds until the key expires, -1 without expiry, -2 when absent (Redis PTTL). */
  ttlMs(key: string): Promise<number>;
  /**
   * In one round trip: writes `claim` if absent (SET NX with expiry) and, only when that won, increments `counter`
   * (the send path's dedup marker and seq). Both keys must live on one Redis node (no cluster slots apart).
   */
  claimThenIncr(claim: { readonly key: string; readonly value: string; readonly ttlMs: number }, counter: string): Promise<ClaimResult>;
  /** Atomically takes `cost` tokens from the bucket at `key` if it holds enough. */
  take(key: string, bucket: BucketSpec, cost?: number): Promise<TakeResult>;
  close(): Promise<void>;
}
