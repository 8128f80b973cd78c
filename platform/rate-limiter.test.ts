import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import type { BucketSpec, TakeResult } from "./kv/kv.js";
import { MemoryKv } from "./kv/memory-kv.js";
import { RateLimiter, type Limit } from "./rate-limiter.js";

/** A shared store that counts the round trips made to it. */
class CountingKv extends MemoryKv {
  trips = 0;
  override take(key: string, bucket: BucketSpec, cost?: number): Promise<TakeResult> {
    this.trips++;
    return super.take(key, bucket, cost);
  }
}

const refused = async (p: Promise<void>): Promise<ConnectError> => {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("the take was allowed");
};

describe("RateLimiter", () => {
  let clock = 0;
  const now = () => clock;
  const kvs: MemoryKv[] = [];
  const store = () => {
    const kv = new CountingKv(now);
    kvs.push(kv);
    return kv;
  };
  const user: Limit = { key: "rl:test:user", bucket: { capacity: 10, refillPerSecond: 1 }, what: "too fast" };
  const app: Limit = { key: "rl:test:app", bucket: { capacity: 100, refillPerSecond: 100 }, what: "the app is too fast" };
  beforeEach(() => (clock = 1_000_000));
  afterEach(async () => {
    for (const kv of kvs.splice(0)) await kv.close();
  });

  it("allows a quiet key without a round trip, and refuses a flood locally with a retry hint", async () => {
    const shared = store();
    const limiter = new RateLimiter(shared, { now });
    for (let i = 0; i < 5; i++) await limiter.take([user, app]);
    expect(shared.trips, "half a bucket is spent without the shared store").to.equal(0);
    for (let i = 0; i < 5; i++) await limiter.take([user, app]);
    const tripsAtLimit = shared.trips;
    for (let i = 0; i < 100; i++) {
      const err = await refused(limiter.take([user, app]));
      expect(err.code).to.equal(Code.ResourceExhausted);
      expect(err.metadata.get("retry-after")).to.equal("1");
      expect(err.rawMessage).to.match(/^too fast; try again in 1 s$/);
    }
    expect(shared.trips, "refused locally").to.equal(tripsAtLimit);
    clock += 3_000;
    for (let i = 0; i < 3; i++) await limiter.take([user]);
    await refused(limiter.take([user]));
  });

  it("holds a key spread over instances to the shared bucket once they see it busy", async () => {
    const shared = store();
    const instances = [new RateLimiter(shared, { now }), new RateLimiter(shared, { now }), new RateLimiter(shared, { now })];
    let allowed = 0;
    for (let round = 0; round < 20; round++) {
      for (const limiter of instances) await limiter.take([user]).then(() => allowed++, () => {});
    }
    // Each instance spends its free half (5) alone; past that, the shared bucket (10) decides for all three.
    expect(allowed).to.equal(3 * 5 + 10);
    expect((await shared.take(user.key, user.bucket, 0)).remaining).to.be.below(1);
  });

  it("keeps limiting locally when the shared store fails, and reports it", async () => {
    const errors: unknown[] = [];
    const broken = store();
    broken.take = () => Promise.reject(new Error("redis is down"));
    const limiter = new RateLimiter(broken, { now, onSharedError: (err) => errors.push(err) });
    for (let i = 0; i < 10; i++) await limiter.take([user]);
    expect(errors).to.have.length(5);
    await refused(limiter.take([user]));
  });

  it("forgets the least recently used keys past maxKeys", async () => {
    const permissive = store();
    permissive.take = async () => ({ allowed: true, remaining: 1, retryAfterMs: 0 });
    const limiter = new RateLimiter(permissive, { now, maxKeys: 2 });
    const tiny = (key: string): Limit => ({ key, bucket: { capacity: 1, refillPerSecond: 0.001 }, what: key });
    await limiter.take([tiny("a")]);
    await limiter.take([tiny("b")]);
    await refused(limiter.take([tiny("a")]));
    await refused(limiter.take([tiny("b")]));
    await limiter.take([tiny("c")]);
    await limiter.take([tiny("a")]);
    await refused(limiter.take([tiny("c")]));
  });
});
