import { Redis, ReplyError } from "ioredis";
import { UnavailableError } from "../errors.js";
import type { BucketSpec, ClaimResult, Kv, SetOptions, TakeResult } from "./kv.js";

/**
 * The token bucket in one atomic script, timed by the Redis server's clock so every instance agrees.
 * Returns {allowed 0|1, remaining tokens as a string (Lua numbers reply as integers), retry-after ms}.
 */
const takeScript = `
local capacity = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2]) / 1000
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
if tokens == nil then
  tokens = capacity
else
  tokens = math.min(capacity, tokens + math.max(0, now - tonumber(state[2])) * per_ms)
end
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / per_ms) + 1000)
local retry = 0
if allowed == 0 then retry = math.ceil((cost - tokens) / per_ms) end
return {allowed, tostring(tokens), retry}
`;

/** SET NX PX on the claim key, then INCR the counter only when the claim won: {1, counter} or {0, existing}. */
const claimScript = `
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  return {1, redis.call('INCR', KEYS[2])}
end
return {0, redis.call('GET', KEYS[1]) or ''}
`;

interface TakeCommand {
  imTake(key: string, capacity: number, refillPerSecond: number, cost: number): Promise<[number, string, number]>;
  imClaimThenIncr(claimKey: string, counterKey: string, value: string, ttlMs: number): Promise<[number, number | string]>;
}

/** Options of the Redis adapter. */
export interface RedisKvOptions {
  /** A command that gets no answer in this time fails as unavailable (default 2 s). */
  readonly commandTimeoutMs?: number;
}

/** The Redis Kv for mesh mode: fails fast while disconnected (no offline queue) and reconnects by itself. */
export class RedisKv implements Kv {
  private constructor(private readonly client: Redis & TakeCommand) {}

  /** Connects and waits until Redis answers, so a wrong URL fails at start rather than on the first call. */
  static async connect(url: string, options: RedisKvOptions = {}): Promise<RedisKv> {
    const client = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? 2000,
      connectTimeout: 3000,
      retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2000) + Math.floor(Math.random() * 100),
    }) as Redis & TakeCommand;
    client.defineCommand("imTake", { numberOfKeys: 1, lua: takeScript });
    client.defineCommand("imClaimThenIncr", { numberOfKeys: 2, lua: claimScript });
    // Connection errors reach callers as UnavailableError; without a listener ioredis would print each one.
    client.on("error", () => {});
    try {
      await client.connect();
    } catch (err) {
      client.disconnect();
      throw new UnavailableError("redis", `cannot connect to ${url.replace(/\/\/[^@]*@/, "//***@")}`, { cause: err });
    }
    return new RedisKv(client);
  }

  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (err instanceof ReplyError) throw err;
      throw new UnavailableError("redis", `${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  get(key: string): Promise<string | null> {
    return this.call("GET", () => this.client.get(key));
  }

  getMany(keys: readonly string[]): Promise<(string | null)[]> {
    if (keys.length === 0) return Promise.resolve([]);
    return this.call("MGET", () => this.client.mget(...keys));
  }

  set(key: string, value: string, options: SetOptions = {}): Promise<boolean> {
    return this.call("SET", async () => {
      const { ttlMs, ifAbsent } = options;
      let reply: string | null;
      if (ttlMs !== undefined && ifAbsent) reply = await this.client.set(key, value, "PX", ttlMs, "NX");
      else if (ttlMs !== undefined) reply = await this.client.set(key, value, "PX", ttlMs);
      else if (ifAbsent) reply = await this.client.set(key, value, "NX");
      else reply = await this.client.set(key, value);
      return reply === "OK";
    });
  }

  claimThenIncr(claim: { key: string; value: string; ttlMs: number }, counter: string): Promise<ClaimResult> {
    return this.call("claim and INCR", async () => {
      const [won, value] = await this.client.imClaimThenIncr(claim.key, counter, claim.value, claim.ttlMs);
      return won === 1 ? { claimed: true, counter: Number(value) } : { claimed: false, existing: String(value) };
    });
  }

  del(...keys: string[]): Promise<number> {
    if (keys.length === 0) return Promise.resolve(0);
    return this.call("DEL", () => this.client.del(...keys));
  }

  incr(key: string, by = 1): Promise<number> {
    return this.call("INCRBY", () => this.client.incrby(key, by));
  }

  ttlMs(key: string): Promise<number> {
    return this.call("PTTL", () => this.client.pttl(key));
  }

  take(key: string, bucket: BucketSpec, cost = 1): Promise<TakeResult> {
    return this.call("token bucket", async () => {
      const [allowed, remaining, retryAfterMs] = await this.client.imTake(key, bucket.capacity, bucket.refillPerSecond, cost);
      return { allowed: allowed === 1, remaining: Number(remaining), retryAfterMs };
    });
  }

  async close(): Promise<void> {
    await this.client.quit().catch(() => this.client.disconnect());
  }
}
