import { expect } from "chai";
import { Kafka, logLevel } from "kafkajs";
import { infraEnv } from "../../test/infra.js";
import { TestKafkaBroker } from "../../test/kafka-broker.js";
import { UnavailableError } from "../errors.js";
import { eventually } from "../../test/eventually.js";
import { busContract } from "./bus.contract.js";
import { KafkaBus } from "./kafka-bus.js";
import { MemoryBus } from "./memory-bus.js";

describe("bus: memory adapter", () => {
  busContract(async () => new MemoryBus());
});

describe("bus: Kafka adapter @infra", function () {
  this.timeout(60_000);
  busContract(
    async () => new KafkaBus(infraEnv("IM_KAFKA_BROKERS").split(","), { clientId: "im-bus-test" }),
    async (_bus, topic) => {
      const admin = new Kafka({ clientId: "im-bus-test-admin", brokers: infraEnv("IM_KAFKA_BROKERS").split(","), logLevel: logLevel.NOTHING }).admin();
      await admin.connect();
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.disconnect();
    },
  );
});

describe("bus: Kafka broker restart @infra", function () {
  this.timeout(180_000);
  let broker: TestKafkaBroker;
  before(async () => {
    broker = await TestKafkaBroker.create();
    await broker.start();
  });
  after(() => broker.dispose());

  it("fails publishes as unavailable while the broker is down, then publishes and consumes again without loss", async () => {
    const bus = new KafkaBus([`127.0.0.1:${broker.port}`], { clientId: "im-restart-test" });
    const topic = { name: "restart_test", partitions: 2, retentionMs: 3_600_000, purpose: "test" };
    const got: string[] = [];
    try {
      await bus.ensureTopics([topic]);
      const sub = await bus.subscribe({ groupId: "restart", topic: topic.name, handler: async (rs) => void got.push(...rs.map((r) => new TextDecoder().decode(r.value))) });
      await bus.publish(topic.name, [{ key: "k", value: new TextEncoder().encode("before") }]);
      await eventually("the record published before the restart", () => got.includes("before"));
      // Delivery is at least once: only a record whose offset the broker has committed must not come back.
      const admin = new Kafka({ clientId: "im-restart-admin", brokers: [`127.0.0.1:${broker.port}`], logLevel: logLevel.NOTHING }).admin();
      await admin.connect();
      let committed = 0;
      for (let i = 0; i < 100 && committed < 1; i++) {
        const [offsets] = await admin.fetchOffsets({ groupId: "restart", topics: [topic.name] });
        committed = offsets!.partitions.reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
        if (committed < 1) await new Promise((r) => setTimeout(r, 100));
      }
      await admin.disconnect();
      expect(committed).to.equal(1);

      await broker.stop("SIGKILL");
      const err = await bus.publish(topic.name, [{ key: "k", value: new TextEncoder().encode("while-down") }]).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(UnavailableError);
      expect((err as UnavailableError).component).to.equal("kafka");

      await broker.start();
      let published = false;
      for (let i = 0; i < 60 && !published; i++) {
        published = await bus.publish(topic.name, [{ key: "k", value: new TextEncoder().encode("after") }]).then(() => true, () => false);
        if (!published) await new Promise((r) => setTimeout(r, 500));
      }
      expect(published, "publishing works again once the broker is back").to.equal(true);
      await eventually("the consumer to resume", () => got.includes("after"), 90_000);
      expect(got.filter((v) => v === "before")).to.have.length(1);
      await sub.stop();
    } finally {
      await bus.close();
    }
  });
});
