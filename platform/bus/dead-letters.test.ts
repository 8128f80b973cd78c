import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { expect } from "chai";
import kafkajs from "kafkajs";
import { Registry } from "prom-client";
import { GroupMessageRecordSchema } from "../../gen/im/msg/v1/msg_pb.js";
import { eventually } from "../../test/eventually.js";
import { infraEnv } from "../../test/infra.js";
import { scopeHeader, type Bus, type BusMessage, type BusRecord, type Subscription } from "./bus.js";
import { formatListing, listDeadLetters, replayDeadLetters } from "./dead-letter-tools.js";
import { deadLetterHeaders, withDeadLetters } from "./dead-letters.js";
import { KafkaBus } from "./kafka-bus.js";
import { MemoryBus } from "./memory-bus.js";
import { decodeRecord, PoisonRecordError } from "./poison-record.js";
import { deadLetterTopic, topics } from "./topics.js";

const { Kafka, logLevel } = kafkajs;

/** A group_msg record of a message with this id, as msg publishes it. */
const goodRecord = (msgId: string, groupId = "g1"): BusMessage => ({
  key: groupId,
  value: toBinary(GroupMessageRecordSchema, create(GroupMessageRecordSchema, { appId: "app", groupId, message: { msgId, conversationId: `g:${groupId}` } })),
});

/** Bytes no protobuf decoder accepts: tag 0x37 is field 6 with wire type 7, the error of the report. */
const corruptRecord = (groupId = "g1"): BusMessage => ({ key: groupId, value: new Uint8Array([0x37, 0x01, 0x02]), headers: { origin: "a test" } });

/** A logger that keeps what it was told to warn about. */
function recordingLogger(): { warn: (obj: object, msg: string) => void; lines: { obj: Record<string, unknown>; msg: string }[] } {
  const lines: { obj: Record<string, unknown>; msg: string }[] = [];
  return { lines, warn: (obj, msg) => void lines.push({ obj: obj as Record<string, unknown>, msg }) };
}

describe("dead letters (memory bus)", () => {
  let memory: MemoryBus;
  let bus: Bus;
  let metrics: Registry;
  let logger: ReturnType<typeof recordingLogger>;
  const subscriptions: Subscription[] = [];
  const deadLetters: BusRecord[] = [];

  const countedFor = async (topic: string) => (await metrics.getSingleMetric("bus_dead_letters_total")!.get()).values.find((v) => v.labels.topic === topic)?.value ?? 0;

  beforeEach(async () => {
    memory = new MemoryBus();
    await memory.ensureTopics(topics);
    metrics = new Registry();
    logger = recordingLogger();
    bus = withDeadLetters(memory, { logger, metrics });
    deadLetters.length = 0;
    subscriptions.push(await memory.subscribe({ groupId: "dlq-reader", topic: "group_msg.dlq", handler: async (rs) => void deadLetters.push(...rs) }));
  });
  afterEach(async () => {
    await Promise.all(subscriptions.splice(0).map((s) => s.stop()));
    await memory.close();
  });

  it("sets a corrupt record aside on <topic>.dlq and hands over the records after it", async () => {
    const handled: string[] = [];
    const calls: number[] = [];
    subscriptions.push(
      await bus.subscribe({
        groupId: "fanout",
        topic: "group_msg",
        handler: async (records) => {
          calls.push(records.length);
          const decoded = records.map((r) => decodeRecord(GroupMessageRecordSchema, r));
          handled.push(...decoded.map((d) => d.message!.msgId));
        },
      }),
    );
    await memory.publish("group_msg", [goodRecord("first"), corruptRecord(), goodRecord("second")]);
    await eventually("both good records", () => handled.length === 2);
    await eventually("the dead letter", () => deadLetters.length === 1);
    expect(handled).to.deep.equal(["first", "second"]);
    expect(calls).to.deep.equal([3, 2]);
    const [dead] = deadLetters;
    expect(dead!.key).to.equal("g1");
    expect([...dead!.value]).to.deep.equal([0x37, 0x01, 0x02]);
    expect(dead!.headers).to.include({
      origin: "a test",
      [deadLetterHeaders.sourceTopic]: "group_msg",
      [deadLetterHeaders.sourceOffset]: "1",
      [deadLetterHeaders.group]: "fanout",
    });
    expect(dead!.headers![deadLetterHeaders.error]).to.match(/^not a valid im\.msg\.v1\.GroupMessageRecord: .*illegal tag: field no 6 wire type 7/);
    expect(Date.parse(dead!.headers![deadLetterHeaders.time]!)).to.be.closeTo(Date.now(), 60_000);
    expect(await countedFor("group_msg")).to.equal(1);
    expect(logger.lines).to.have.length(1);
    expect(logger.lines[0]!.obj.err).to.be.instanceOf(PoisonRecordError);
    expect(logger.lines[0]!.obj).to.include({ topic: "group_msg", offset: "1", deadLetterTopic: "group_msg.dlq" });
  });

  it("retries a batch that failed for any other reason, with nothing set aside", async () => {
    const handled: string[] = [];
    const errors: unknown[] = [];
    let failures = 0;
    subscriptions.push(
      await bus.subscribe({
        groupId: "fanout",
        topic: "group_msg",
        handler: async (records) => {
          if (failures++ < 2) throw new Error("MySQL is down");
          handled.push(...records.map((r) => decodeRecord(GroupMessageRecordSchema, r).message!.msgId));
        },
        onError: (err) => void errors.push(err),
      }),
    );
    await memory.publish("group_msg", [goodRecord("first"), goodRecord("second")]);
    await eventually("the records, after two failures", () => handled.length === 2);
    expect(handled).to.deep.equal(["first", "second"]);
    expect(errors.map(String)).to.deep.equal(["Error: MySQL is down", "Error: MySQL is down"]);
    expect(deadLetters).to.have.length(0);
    expect(await countedFor("group_msg")).to.equal(0);
  });

  it("retries the whole batch when the dead letter cannot be published, and loses nothing", async () => {
    let dlqDown = true;
    const flaky = withDeadLetters(
      {
        ensureTopics: (specs) => memory.ensureTopics(specs),
        subscribe: (options) => memory.subscribe(options),
        close: () => memory.close(),
        publish: async (topic, messages) => {
          if (topic.endsWith(".dlq") && dlqDown) {
            dlqDown = false;
            throw new Error("broker unavailable");
          }
          await memory.publish(topic, messages);
        },
      },
      { logger, metrics },
    );
    const batches: string[][] = [];
    const errors: unknown[] = [];
    subscriptions.push(
      await flaky.subscribe({
        groupId: "fanout",
        topic: "group_msg",
        handler: async (records) => {
          batches.push(records.map((r) => r.offset));
          for (const r of records) decodeRecord(GroupMessageRecordSchema, r);
        },
        onError: (err) => void errors.push(err),
      }),
    );
    await memory.publish("group_msg", [corruptRecord(), goodRecord("after")]);
    await eventually("the dead letter, on the second try", () => deadLetters.length === 1);
    await eventually("the good record", () => batches.some((b) => b.length === 1 && b[0] === "1"));
    expect(batches).to.deep.equal([["0", "1"], ["0", "1"], ["1"]]);
    expect(errors.map(String)).to.deep.equal(["Error: broker unavailable"]);
    expect(await countedFor("group_msg")).to.equal(1);
  });

  it("treats a PoisonRecordError for a record not in the batch as an ordinary failure", async () => {
    let stale: BusRecord | undefined;
    let attempts = 0;
    subscriptions.push(
      await bus.subscribe({
        groupId: `g-${randomUUID()}`,
        topic: "group_msg",
        handler: async (records) => {
          attempts++;
          stale ??= { ...records[0]!, offset: "999" };
          if (attempts < 3) throw new PoisonRecordError(stale, "blames a record it was not given");
        },
      }),
    );
    await memory.publish("group_msg", [goodRecord("only")]);
    await eventually("the third attempt", () => attempts === 3);
    expect(deadLetters).to.have.length(0);
  });
});

describe("dead letters on Kafka, and npm run dlq @infra", function () {
  this.timeout(120_000);
  const brokers = () => infraEnv("IM_KAFKA_BROKERS").split(",");
  let kafka: KafkaBus;
  let topic: string;
  const groups: string[] = [];
  const subscriptions: Subscription[] = [];

  beforeEach(async () => {
    kafka = new KafkaBus(brokers(), { clientId: "im-dlq-test" });
    topic = `test_${randomUUID().replaceAll("-", "")}`;
    await kafka.ensureTopics([
      { name: topic, partitions: 1, retentionMs: 3_600_000, purpose: "test" },
      { name: deadLetterTopic(topic), partitions: 2, retentionMs: 3_600_000, purpose: "test" },
    ]);
  });
  afterEach(async () => {
    await Promise.all(subscriptions.splice(0).map((s) => s.stop()));
    await kafka.close();
    const admin = new Kafka({ clientId: "im-dlq-test-admin", brokers: brokers(), logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    await admin.deleteGroups(groups.splice(0)).catch(() => {});
    await admin.deleteTopics({ topics: [topic, deadLetterTopic(topic)] }).catch(() => {});
    await admin.disconnect();
  });

  it("processes the record after a corrupt one, which the dlq command lists and replays once", async () => {
    const metrics = new Registry();
    const bus = withDeadLetters(kafka, { logger: recordingLogger(), metrics });
    const handled: string[] = [];
    const groupId = `test-${randomUUID()}`;
    groups.push(groupId, `dlq-replay-${topic}`);
    const consumer = await bus.subscribe({
      groupId,
      topic,
      handler: async (records) => void handled.push(...records.map((r) => decodeRecord(GroupMessageRecordSchema, r).message!.msgId)),
    });
    subscriptions.push(consumer);
    await kafka.publish(topic, [corruptRecord(), goodRecord("after")]);
    await eventually("the record after the corrupt one", () => handled.includes("after"), 60_000);
    expect(handled).to.deep.equal(["after"]);
    await consumer.stop();

    // Another deployment's dead letter on the same topic: listed, but not replayed by this one.
    await kafka.publish(deadLetterTopic(topic), [{ key: "g2", value: new Uint8Array([1]), headers: { [scopeHeader]: "blue", [deadLetterHeaders.sourceTopic]: topic, [deadLetterHeaders.error]: "blue's" } }]);
    const listing = await listDeadLetters({ brokers: brokers(), topic });
    expect(listing.total).to.equal(2);
    const ours = listing.shown.find((d) => d.scope === "");
    expect(ours).to.include({ sourceTopic: topic, sourcePartition: "0", sourceOffset: "0", key: "g1", size: 3, group: groupId });
    expect(ours!.error).to.match(/illegal tag: field no 6 wire type 7/);
    expect(formatListing(listing).join("\n")).to.include(`${topic}[0]@0`).and.include("illegal tag");
    expect((await listDeadLetters({ brokers: brokers(), topic: deadLetterTopic(topic), scope: "" })).shown).to.have.length(1);

    expect(await replayDeadLetters({ brokers: brokers(), topic })).to.include({ replayed: 1, skipped: 1 });
    expect(await replayDeadLetters({ brokers: brokers(), topic })).to.include({ replayed: 0 });

    // The topic holds the corrupt record again, with its own headers and none of the dead letter's.
    const again: BusRecord[] = [];
    const reader = `test-${randomUUID()}`;
    groups.push(reader);
    subscriptions.push(await kafka.subscribe({ groupId: reader, topic, handler: async (rs) => void again.push(...rs) }));
    await eventually("the replayed record", () => again.length === 3, 60_000);
    expect([...again[2]!.value]).to.deep.equal([0x37, 0x01, 0x02]);
    expect(again[2]!.headers).to.deep.equal({ origin: "a test" });
  });
});
