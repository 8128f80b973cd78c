// The behaviour every Bus adapter must show; bus.test.ts runs it against the in-memory and the Kafka adapter.
import { randomUUID } from "node:crypto";
import { expect } from "chai";
import { eventually } from "../../test/eventually.js";
import type { Bus, BusRecord, Subscription } from "./bus.js";
import type { TopicSpec } from "./topics.js";

const text = (r: BusRecord) => new TextDecoder().decode(r.value);
const bytes = (s: string) => new TextEncoder().encode(s);

/** Registers the shared Bus cases for one adapter; `open` returns a connected bus. */
export function busContract(open: () => Promise<Bus>, cleanup: (bus: Bus, topic: string) => Promise<void> = async () => {}): void {
  let bus: Bus;
  let topic: TopicSpec;
  const subscriptions: Subscription[] = [];
  const group = () => `test-${randomUUID()}`;
  const subscribe = async (...args: Parameters<Bus["subscribe"]>) => {
    const s = await bus.subscribe(...args);
    subscriptions.push(s);
    return s;
  };

  beforeEach(async () => {
    bus = await open();
    topic = { name: `test_${randomUUID().replaceAll("-", "")}`, partitions: 4, retentionMs: 3_600_000, purpose: "test" };
    await bus.ensureTopics([topic]);
  });
  afterEach(async () => {
    await Promise.all(subscriptions.splice(0).map((s) => s.stop()));
    await cleanup(bus, topic.name);
    await bus.close();
  });

  it("delivers each published record with its key, value and headers", async () => {
    const got: BusRecord[] = [];
    await subscribe({ groupId: group(), topic: topic.name, handler: async (rs) => void got.push(...rs) });
    await bus.publish(topic.name, [{ key: "g1", value: bytes("hello"), headers: { kind: "greeting" } }]);
    await eventually("the record", () => got.length === 1);
    const [r] = got;
    expect([r!.key, text(r!), r!.headers?.kind, r!.topic]).to.deep.equal(["g1", "hello", "greeting", topic.name]);
    expect(r!.offset).to.match(/^\d+$/);
    expect(r!.timestamp).to.be.closeTo(Date.now(), 60_000);
  });

  it("keeps records of one key in publish order, across concurrent publishes", async () => {
    const seen = new Map<string, number[]>();
    await subscribe({
      groupId: group(),
      topic: topic.name,
      handler: async (rs) => {
        for (const r of rs) {
          const list = seen.get(r.key) ?? [];
          list.push(Number(text(r)));
          seen.set(r.key, list);
        }
      },
    });
    const keys = ["a", "b", "c", "d", "e"];
    for (let i = 0; i < 40; i++) {
      await Promise.all(keys.map((key) => bus.publish(topic.name, [{ key, value: bytes(String(i)) }])));
    }
    await eventually("200 records", () => [...seen.values()].reduce((n, l) => n + l.length, 0) >= 200);
    for (const key of keys) expect(seen.get(key), key).to.deep.equal(Array.from({ length: 40 }, (_, i) => i));
  });

  it("hands a failed batch over again, with nothing after it delivered first, until the handler succeeds", async () => {
    const deliveries: string[] = [];
    let failures = 0;
    await subscribe({
      groupId: group(),
      topic: topic.name,
      handler: async (rs) => {
        deliveries.push(...rs.map(text));
        if (rs.some((r) => text(r) === "2") && failures < 2) {
          failures++;
          throw new Error("downstream unavailable");
        }
      },
    });
    await bus.publish(topic.name, ["0", "1", "2", "3", "4"].map((v) => ({ key: "k", value: bytes(v) })));
    await eventually("the retried batch", () => deliveries.includes("4") && failures === 2);
    await new Promise((r) => setTimeout(r, 200));
    // Each delivery is a prefix-free run in order: after a failure the run restarts at the first uncommitted record.
    const firstTwo = deliveries.indexOf("2");
    expect(firstTwo).to.be.greaterThan(-1);
    expect(deliveries.filter((v) => v === "2").length).to.equal(3);
    expect(deliveries.slice(-1)[0]).to.equal("4");
    const afterLastTwo = deliveries.slice(deliveries.lastIndexOf("2"));
    expect(afterLastTwo).to.deep.equal(["2", "3", "4"].slice(0, afterLastTwo.length));
  });

  it("redelivers records a stopped member never committed to the next member of the group", async () => {
    const groupId = group();
    let attempts = 0;
    const first = await subscribe({
      groupId,
      topic: topic.name,
      handler: async () => {
        attempts++;
        throw new Error("crashes before committing");
      },
    });
    await bus.publish(topic.name, [{ key: "k", value: bytes("uncommitted") }]);
    await eventually("the first member to receive the record", () => attempts > 0);
    await first.stop();
    const got: string[] = [];
    await subscribe({ groupId, topic: topic.name, handler: async (rs) => void got.push(...rs.map(text)) });
    await eventually("the redelivered record", () => got.includes("uncommitted"));
  });

  it("does not redeliver committed records to a member that rejoins the group", async () => {
    const groupId = group();
    const firstGot: string[] = [];
    const first = await subscribe({ groupId, topic: topic.name, handler: async (rs) => void firstGot.push(...rs.map(text)) });
    await bus.publish(topic.name, ["a", "b", "c"].map((v, i) => ({ key: `k${i}`, value: bytes(v) })));
    await eventually("the first three", () => firstGot.length === 3);
    await first.stop();
    await bus.publish(topic.name, ["d", "e"].map((v, i) => ({ key: `k${i}`, value: bytes(v) })));
    const secondGot: string[] = [];
    await subscribe({ groupId, topic: topic.name, handler: async (rs) => void secondGot.push(...rs.map(text)) });
    await eventually("the two new records", () => secondGot.length >= 2);
    await new Promise((r) => setTimeout(r, 300));
    expect([...secondGot].sort()).to.deep.equal(["d", "e"]);
  });

  it("gives every group every record, and splits a group's records between its members", async () => {
    const solo: string[] = [];
    const shared: [string[], string[]] = [[], []];
    const sharedGroup = group();
    await subscribe({ groupId: group(), topic: topic.name, handler: async (rs) => void solo.push(...rs.map(text)) });
    await subscribe({ groupId: sharedGroup, topic: topic.name, handler: async (rs) => void shared[0].push(...rs.map(text)) });
    await subscribe({ groupId: sharedGroup, topic: topic.name, handler: async (rs) => void shared[1].push(...rs.map(text)) });
    const values = Array.from({ length: 40 }, (_, i) => String(i));
    await bus.publish(topic.name, values.map((v) => ({ key: `key-${v}`, value: bytes(v) })));
    await eventually("all records in both groups", () => solo.length >= 40 && new Set([...shared[0], ...shared[1]]).size === 40);
    expect(new Set(solo).size).to.equal(40);
    // With 4 partitions and 40 keys, both members of the shared group end up with some of the work.
    await eventually("both members to have worked", () => shared[0].length > 0 && shared[1].length > 0);
  });

  it("starts a new group at the end of the topic when fromBeginning is false", async () => {
    await bus.publish(topic.name, [{ key: "k", value: bytes("old") }]);
    const got: string[] = [];
    await subscribe({ groupId: group(), topic: topic.name, fromBeginning: false, handler: async (rs) => void got.push(...rs.map(text)) });
    await bus.publish(topic.name, [{ key: "k", value: bytes("new") }]);
    await eventually("the new record", () => got.includes("new"));
    expect(got).to.deep.equal(["new"]);
  });

  it("refuses to publish to a topic that does not exist", async () => {
    const err = await bus.publish(`missing_${randomUUID()}`, [{ key: "k", value: bytes("x") }]).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(Error);
  });
}
