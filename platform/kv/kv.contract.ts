// The behaviour every Kv adapter must show; kv.test.ts runs it against the in-memory and the Redis adapter.
import { randomUUID } from "node:crypto";
import { expect } from "chai";
import type { Kv } from "./kv.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Registers the shared Kv cases for one adapter; `open` returns a fresh client. */
export function kvContract(open: () => Promise<Kv>): void {
  let kv: Kv;
  let ns: string;
  beforeEach(async () => {
    kv = await open();
    ns = `im:test:${randomUUID()}:`;
  });
  afterEach(() => kv.close());

  it("gets what was set, and nothing after delete", async () => {
    expect(await kv.get(`${ns}a`)).to.equal(null);
    expect(await kv.set(`${ns}a`, "1")).to.equal(true);
    expect(await kv.set(`${ns}a`, "2")).to.equal(true);
    expect(await kv.get(`${ns}a`)).to.equal("2");
    expect(await kv.del(`${ns}a`, `${ns}missing`)).to.equal(1);
    expect(await kv.get(`${ns}a`)).to.equal(null);
    expect(await kv.del()).to.equal(0);
  });

  it("reads several keys at once, in order, absent and expired ones as null", async () => {
    await kv.set(`${ns}m1`, "one");
    await kv.set(`${ns}m3`, "three");
    await kv.set(`${ns}gone`, "x", { ttlMs: 30 });
    await sleep(60);
    expect(await kv.getMany([`${ns}m3`, `${ns}m2`, `${ns}m1`, `${ns}gone`])).to.deep.equal(["three", null, "one", null]);
    expect(await kv.getMany([])).to.deep.equal([]);
  });

  it("expires keys after their TTL and reports the TTL left", async () => {
    await kv.set(`${ns}t`, "x", { ttlMs: 80 });
    await kv.set(`${ns}forever`, "x");
    const left = await kv.ttlMs(`${ns}t`);
    expect(left).to.be.within(1, 80);
    expect(await kv.ttlMs(`${ns}forever`)).to.equal(-1);
    expect(await kv.ttlMs(`${ns}absent`)).to.equal(-2);
    await sleep(130);
    expect(await kv.get(`${ns}t`)).to.equal(null);
    expect(await kv.ttlMs(`${ns}t`)).to.equal(-2);
    await kv.del(`${ns}forever`);
  });

  it("writes with ifAbsent only once until the key expires (dedup)", async () => {
    expect(await kv.set(`${ns}d`, "first", { ifAbsent: true, ttlMs: 80 })).to.equal(true);
    expect(await kv.set(`${ns}d`, "second", { ifAbsent: true, ttlMs: 80 })).to.equal(false);
    expect(await kv.get(`${ns}d`)).to.equal("first");
    await sleep(130);
    expect(await kv.set(`${ns}d`, "third", { ifAbsent: true })).to.equal(true);
    expect(await kv.get(`${ns}d`)).to.equal("third");
    await kv.del(`${ns}d`);
  });

  it("lets exactly one of 50 concurrent ifAbsent writers win", async () => {
    const wins = await Promise.all(Array.from({ length: 50 }, (_, i) => kv.set(`${ns}race`, String(i), { ifAbsent: true, ttlMs: 10_000 })));
    expect(wins.filter(Boolean)).to.have.length(1);
    const winner = wins.indexOf(true);
    expect(await kv.get(`${ns}race`)).to.equal(String(winner));
    await kv.del(`${ns}race`);
  });

  it("increments atomically: 100 concurrent incr give 1..100 once each", async () => {
    const values = await Promise.all(Array.from({ length: 100 }, () => kv.incr(`${ns}seq`)));
    expect([...values].sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(await kv.incr(`${ns}seq`, 10_000)).to.equal(10_100);
    expect(await kv.get(`${ns}seq`)).to.equal("10100");
    await kv.del(`${ns}seq`);
  });

  it("claims then increments in one step: the counter moves only for the claim that won", async () => {
    const claim = (n: number) => kv.claimThenIncr({ key: `${ns}dedup`, value: `v${n}`, ttlMs: 60_000 }, `${ns}seq`);
    const results = await Promise.all(Array.from({ length: 20 }, (_, n) => claim(n)));
    const won = results.filter((r) => r.claimed);
    expect(won).to.have.length(1);
    expect(won[0]).to.deep.equal({ claimed: true, counter: 1 });
    const winner = results.indexOf(won[0]!);
    for (const r of results) if (!r.claimed) expect(r.existing).to.equal(`v${winner}`);
    expect(await kv.get(`${ns}seq`)).to.equal("1");
    expect(await kv.claimThenIncr({ key: `${ns}other`, value: "x", ttlMs: 60_000 }, `${ns}seq`)).to.deep.equal({ claimed: true, counter: 2 });
    expect(await kv.ttlMs(`${ns}other`)).to.be.within(1, 60_000);
  });

  it("continues a counter restored with ifAbsent (seq recovery after data loss)", async () => {
    expect(await kv.set(`${ns}seq`, "20001", { ifAbsent: true })).to.equal(true);
    expect(await kv.incr(`${ns}seq`)).to.equal(20002);
    expect(await kv.set(`${ns}seq`, "5", { ifAbsent: true })).to.equal(false);
    await kv.del(`${ns}seq`);
  });

  it("refuses a take once the bucket is empty, with a retry-after, and refills over time", async () => {
    const bucket = { capacity: 5, refillPerSecond: 20 };
    const takes = [];
    for (let i = 0; i < 6; i++) takes.push(await kv.take(`${ns}bucket`, bucket));
    expect(takes.map((t) => t.allowed)).to.deep.equal([true, true, true, true, true, false]);
    const refused = takes[5]!;
    expect(refused.retryAfterMs).to.be.within(1, 50);
    expect(refused.remaining).to.be.below(1);
    await sleep(refused.retryAfterMs + 30);
    expect((await kv.take(`${ns}bucket`, bucket)).allowed).to.equal(true);
    expect((await kv.take(`${ns}bucket`, bucket, 6)).allowed, "cost above capacity").to.equal(false);
    await kv.del(`${ns}bucket`);
  });

  it("keeps buckets apart and never over-grants under concurrency", async () => {
    const bucket = { capacity: 10, refillPerSecond: 0.001 };
    const results = await Promise.all(Array.from({ length: 30 }, () => kv.take(`${ns}b1`, bucket)));
    expect(results.filter((r) => r.allowed)).to.have.length(10);
    expect((await kv.take(`${ns}b2`, bucket)).allowed).to.equal(true);
    await kv.del(`${ns}b1`, `${ns}b2`);
  });
}
