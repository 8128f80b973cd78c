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
  /** Atomically takes `cost` tokens from the bucket at `key` if it holds enough. */
  take(key: string, bucket: BucketSpec, cost?: number): Promise<TakeResult>;
  close(): Promise<void>;
}
