import { expect } from "chai";
import { eventually } from "../../test/eventually.js";
import { scopedBus } from "./bus.js";
import { MemoryBus } from "./memory-bus.js";
import { topics } from "./topics.js";

describe("scoped bus (deployments sharing brokers)", () => {
  it("delivers each deployment only its own records, in consumer groups of its own", async () => {
    const shared = new MemoryBus();
    await shared.ensureTopics(topics);
    const blue = scopedBus(shared, "blue");
    const green = scopedBus(shared, "green");
    const seen: Record<string, string[]> = { blue: [], green: [] };
    const subs = await Promise.all(
      (["blue", "green"] as const).map((name) =>
        (name === "blue" ? blue : green).subscribe({
          groupId: "fanout",
          topic: "group_msg",
          handler: async (records) => void seen[name]!.push(...records.map((r) => new TextDecoder().decode(r.value))),
        }),
      ),
    );
    await blue.publish("group_msg", [{ key: "g1", value: new TextEncoder().encode("blue 1") }]);
    await green.publish("group_msg", [{ key: "g1", value: new TextEncoder().encode("green 1") }]);
    await shared.publish("group_msg", [{ key: "g1", value: new TextEncoder().encode("unscoped") }]);
    await blue.publish("group_msg", [{ key: "g2", value: new TextEncoder().encode("blue 2") }]);
    await eventually("both consumed", () => seen["blue"]!.length === 2 && seen["green"]!.length === 1);
    expect(seen).to.deep.equal({ blue: ["blue 1", "blue 2"], green: ["green 1"] });
    await Promise.all(subs.map((s) => s.stop()));
    await shared.close();
  });
});
