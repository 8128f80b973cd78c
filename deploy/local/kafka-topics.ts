// Creates the topics of platform/bus/topics.ts on the broker in IM_KAFKA_BROKERS, or brings existing ones to the
// design's partition counts and retention (KafkaBus.ensureTopics). Replication factor from IM_KAFKA_REPLICATION_FACTOR.
import { KafkaBus } from "../../platform/bus/kafka-bus.js";
import { topics } from "../../platform/bus/topics.js";

const brokers = (process.env.IM_KAFKA_BROKERS ?? "").split(",").filter(Boolean);
if (brokers.length === 0) {
  console.error("kafka    FAILED: IM_KAFKA_BROKERS is not set (comma-separated host:port list)");
  process.exit(1);
}
const bus = new KafkaBus(brokers, { clientId: "im-topics", replicationFactor: Number(process.env.IM_KAFKA_REPLICATION_FACTOR ?? "1") });
try {
  const created = await bus.ensureTopics(topics);
  const what = created.length > 0 ? `created ${created.join(", ")}` : "all present";
  console.log(`kafka    topics ${what}: ${topics.map((t) => `${t.name}/${t.partitions}`).join(" ")}`);
} catch (err) {
  console.error(`kafka    FAILED: topics on ${brokers.join(",")}: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
} finally {
  await bus.close();
}
