import { Kafka, logLevel } from "kafkajs";
import { infraEnv } from "../../test/infra.js";
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
