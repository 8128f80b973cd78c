import type { BucketSpec, ClaimResult, Kv, SetOptions, TakeResult } from "./kv.js";

interface Entry {
  value: string;
  expiresAt: number | undefined;
}

/** Token bucket arithmetic shared by the in-memory adapter; the Redis adapter runs the same steps in Lua. */
export function refill(tokens: number, elapsedMs: number, bucket: BucketSpec): number {
  return Math.min(bucket.capacity, tokens + (elapsedMs * bucket.refillPerSecond) / 1000);
}

/** The in-memory Kv for all-in-one mode and unit tests; expiry is checked on access, like Redis's lazy expiry. */
export class MemoryKv implements Kv {
  private readonly entries = new Map<string, Entry>();
  private readonly buckets = new Map<string, { tokens: number; at: number; expiresAt: number }>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly now: () => number = Date.now) {
    // Keys that are never read again (dedup markers) must still go away: sweep once a minute.
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
  }

  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry?.expiresAt !== undefined && entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  private sweep(): void {
    for (const key of this.entries.keys()) this.live(key);
    const now = this.now();
    for (const [key, bucket] of this.buckets) if (bucket.expiresAt <= now) this.buckets.delete(key);
  }

  async get(key: string): Promise<string | null> {
    return this.live(key)?.value ?? null;
  }

  async getMany(keys: readonly string[]): Promise<(string | null)[]> {
    return keys.map((key) => this.live(key)?.value ?? null);
  }

  async set(key: string, value: string, options: SetOptions = {}): Promise<boolean> {
    if (options.ifAbsent && this.live(key) !== undefined) return false;
    this.entries.set(key, { value, expiresAt: options.ttlMs === undefined ? undefined : this.now() + options.ttlMs });
    return true;
  }

  async del(...keys: string[]): Promise<number> {
    let removed = 0;
    for (const key of keys) if (this.live(key) !== undefined && this.entries.delete(key)) removed++;
    return removed;
  }

  async incr(key: string, by = 1): Promise<number> {
    const entry = this.live(key);
    const current = entry === undefined ? 0 : Number(entry.value);
    if (!Number.isSafeInteger(current)) throw new Error(`ERR value at ${key} is not an integer or out of range`);
    const next = current + by;
    this.entries.set(key, { value: String(next), expiresAt: entry?.expiresAt });
    return next;
  }

  async claimThenIncr(claim: { key: string; value: string; ttlMs: number }, counter: string): Promise<ClaimResult> {
    const existing = this.live(claim.key);
    if (existing !== undefined) return { claimed: false, existing: existing.value };
    this.entries.set(claim.key, { value: claim.value, expiresAt: this.now() + claim.ttlMs });
    return { claimed: true, counter: await this.incr(counter) };
  }

  async ttlMs(key: string): Promise<number> {
    const entry = this.live(key);
    if (entry === undefined) return -2;
    return entry.expiresAt === undefined ? -1 : entry.expiresAt - this.now();
  }

  async take(key: string, bucket: BucketSpec, cost = 1): Promise<TakeResult> {
    const now = this.now();
    const state = this.buckets.get(key);
    let tokens = state === undefined || state.expiresAt <= now ? bucket.capacity : refill(state.tokens, now - state.at, bucket);
    const allowed = tokens >= cost;
    if (allowed) tokens -= cost;
    const fullInMs = Math.ceil((bucket.capacity / bucket.refillPerSecond) * 1000);
    this.buckets.set(key, { tokens, at: now, expiresAt: now + fullInMs + 1000 });
    const retryAfterMs = allowed ? 0 : Math.ceil(((cost - tokens) / bucket.refillPerSecond) * 1000);
    return { allowed, remaining: tokens, retryAfterMs };
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}
