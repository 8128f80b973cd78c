import { expect } from "chai";
import { eventually } from "../../test/eventually.js";
import { scopedBus, scopeHeader, type Bus, type BusRecord } from "./bus.js";
import { MemoryBus } from "./memory-bus.js";
import { topics } from "./topics.js";

const text = (r: BusRecord) => new TextDecoder().decode(r.value);
const bytes = (s: string) => new TextEncoder().encode(s);

describe("scoped bus (deployments sharing brokers)", () => {
  let shared: MemoryBus;
  /** The group ids the deployments subscribed the shared bus with. */
  let groupIds: string[];
  let recording: Bus;

  beforeEach(async () => {
    shared = new MemoryBus();
    await shared.ensureTopics(topics);
    groupIds = [];
    recording = {
      ensureTopics: (specs) => shared.ensureTopics(specs),
      publish: (topic, messages) => shared.publish(topic, messages),
      subscribe: (options) => {
        groupIds.push(options.groupId);
        return shared.subscribe(options);
      },
      close: () => shared.close(),
    };
  });
  afterEach(() => shared.close());

  it("delivers each deployment only its own records, the unscoped one only records without a scope", async () => {
    const deployments = { blue: scopedBus(recording, "blue"), green: scopedBus(recording, "green"), unscoped: scopedBus(recording, "") };
    const seen: Record<string, string[]> = { blue: [], green: [], unscoped: [] };
    const subs = await Promise.all(
      Object.entries(deployments).map(([name, bus]) =>
        bus.subscribe({ groupId: "fanout", topic: "group_msg", handler: async (records) => void seen[name]!.push(...records.map(text)) }),
      ),
    );
    await deployments.blue.publish("group_msg", [{ key: "g1", value: bytes("blue 1") }]);
    await deployments.green.publish("group_msg", [{ key: "g1", value: bytes("green 1") }]);
    await deployments.unscoped.publish("group_msg", [{ key: "g1", value: bytes("unscoped 1") }]);
    await shared.publish("group_msg", [{ key: "g1", value: bytes("left by a test"), headers: { [scopeHeader]: "test-1234" } }]);
    await shared.publish("group_msg", [{ key: "g1", value: bytes("unscoped 2") }]);
    await deployments.blue.publish("group_msg", [{ key: "g2", value: bytes("blue 2") }]);
    // A record that comes after all the others of its partition: once it is seen, every earlier one was handed out.
    await deployments.unscoped.publish("group_msg", [{ key: "g1", value: bytes("unscoped 3") }]);
    await eventually("every deployment's records", () => seen["blue"]!.length === 2 && seen["green"]!.length === 1 && seen["unscoped"]!.includes("unscoped 3"));
    expect(seen).to.deep.equal({ blue: ["blue 1", "blue 2"], green: ["green 1"], unscoped: ["unscoped 1", "unscoped 2", "unscoped 3"] });
    // The unscoped deployment keeps the group ids it always had, so its committed offsets stay valid.
    expect(groupIds).to.deep.equal(["blue.fanout", "green.fanout", "fanout"]);
    await Promise.all(subs.map((s) => s.stop()));
  });

  it("stamps records with the deployment's scope, and the unscoped deployment's with none", async () => {
    const got: BusRecord[] = [];
    const sub = await shared.subscribe({ groupId: "raw", topic: "group_msg", handler: async (records) => void got.push(...records) });
    await scopedBus(shared, "blue").publish("group_msg", [{ key: "g1", value: bytes("blue"), headers: { kind: "k" } }]);
    await scopedBus(shared, "").publish("group_msg", [{ key: "g1", value: bytes("unscoped"), headers: { kind: "k", [scopeHeader]: "stale" } }]);
    await eventually("both records", () => got.length === 2);
    expect(got.map((r) => r.headers)).to.deep.equal([{ kind: "k", [scopeHeader]: "blue" }, { kind: "k" }]);
    await sub.stop();
  });
});
