// Creates the topics of platform/bus/topics.ts on the broker in IM_KAFKA_BROKERS, or checks and repairs
// them when they exist: missing partitions are added and retention is set to the design's value.
import { Kafka, logLevel } from "kafkajs";
import { topics } from "../../platform/bus/topics.js";

const brokers = (process.env.IM_KAFKA_BROKERS ?? "").split(",").filter(Boolean);
if (brokers.length === 0) {
  console.error("kafka    FAILED: IM_KAFKA_BROKERS is not set (comma-separated host:port list)");
  process.exit(1);
}
const replicationFactor = Number(process.env.IM_KAFKA_REPLICATION_FACTOR ?? "1");

const kafka = new Kafka({ clientId: "im-topics", brokers, logLevel: logLevel.NOTHING, retry: { retries: 10 } });
const admin = kafka.admin();
try {
  await admin.connect();
  const existing = new Set(await admin.listTopics());
  const missing = topics.filter((t) => !existing.has(t.name));
  if (missing.length > 0) {
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((t) => ({
        topic: t.name,
        numPartitions: t.partitions,
        replicationFactor,
        configEntries: [{ name: "retention.ms", value: String(t.retentionMs) }],
      })),
    });
  }
  const metadata = await admin.fetchTopicMetadata({ topics: topics.map((t) => t.name) });
  const grow = topics.flatMap((t) => {
    const have = metadata.topics.find((m) => m.name === t.name)?.partitions.length ?? 0;
    return have < t.partitions ? [{ topic: t.name, count: t.partitions }] : [];
  });
  if (grow.length > 0) await admin.createPartitions({ topicPartitions: grow, validateOnly: false });
  await admin.alterConfigs({
    validateOnly: false,
    resources: topics.map((t) => ({
      type: 2, // ConfigResourceTypes.TOPIC
      name: t.name,
      configEntries: [{ name: "retention.ms", value: String(t.retentionMs) }],
    })),
  });
  const created = missing.length > 0 ? `created ${missing.map((t) => t.name).join(", ")}` : "all present";
  console.log(`kafka    topics ${created}: ${topics.map((t) => `${t.name}/${t.partitions}`).join(" ")}`);
} catch (err) {
  console.error(`kafka    FAILED: topics on ${brokers.join(",")}: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
} finally {
  await admin.disconnect();
}
