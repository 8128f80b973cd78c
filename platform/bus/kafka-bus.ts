import kafkajs from "kafkajs";
import type { Consumer, Producer, TopicMessages } from "kafkajs";
import { UnavailableError } from "../errors.js";
import { retryDelayMs, type Bus, type BusMessage, type BusRecord, type SubscribeOptions, type Subscription } from "./bus.js";
import type { TopicSpec } from "./topics.js";

// kafkajs is CommonJS and Node's ESM loader does not detect all of its exports (KafkaJSError,
// ConfigResourceTypes), so values come from the default import, which always has them.
const { ConfigResourceTypes, Kafka, KafkaJSError, logLevel, Partitioners } = kafkajs;

/** Options of the Kafka adapter. */
export interface KafkaBusOptions {
  readonly clientId?: string;
  /** Replication factor for topics this adapter creates (1 on a single local broker, 3 in a cluster). */
  readonly replicationFactor?: number;
  /** Partitions of one subscription handled at the same time; order still holds within each partition. */
  readonly partitionsConsumedConcurrently?: number;
  /** How long subscribe() waits for the member to join its group (default 30 s). */
  readonly joinTimeoutMs?: number;
}

interface Pending {
  topic: string;
  messages: readonly BusMessage[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

function toUnavailable(what: string, err: unknown): unknown {
  if (err instanceof KafkaJSError || (err instanceof Error && /ECONNREFUSED|ETIMEDOUT|Connection/i.test(err.message))) {
    return new UnavailableError("kafka", `${what}: ${err.message}`, { cause: err });
  }
  return err;
}

/**
 * The Kafka Bus for mesh mode (kafkajs). The producer is idempotent with acks=all and merges concurrent
 * publishes into one request per tick; consumers commit a partition's batch only after the handler succeeded.
 */
/** One produce request stays well under the broker's default message.max.bytes (1 MiB) per record batch. */
const maxRequestBytes = 512 * 1024;

/** Splits topic messages into requests of at most `limit` bytes of keys and values, keeping each topic's order. */
function splitBySize(topicMessages: TopicMessages[], limit: number): TopicMessages[][] {
  const requests: TopicMessages[][] = [];
  let current: TopicMessages[] = [];
  let size = 0;
  for (const { topic, messages } of topicMessages) {
    let entry: TopicMessages = { topic, messages: [] };
    current.push(entry);
    for (const m of messages) {
      const bytes = (m.value as Buffer).byteLength + (m.key?.length ?? 0) + 64;
      if (size + bytes > limit && size > 0) {
        requests.push(current);
        entry = { topic, messages: [] };
        current = [entry];
        size = 0;
      }
      entry.messages.push(m);
      size += bytes;
    }
  }
  if (current.some((t) => t.messages.length > 0)) requests.push(current.filter((t) => t.messages.length > 0));
  return requests;
}

export class KafkaBus implements Bus {
  private readonly kafka: InstanceType<typeof Kafka>;
  private producer: Producer | undefined;
  private connecting: Promise<Producer> | undefined;
  private queue: Pending[] = [];
  private flushScheduled = false;
  private readonly subscriptions = new Set<Subscription>();

  constructor(
    private readonly brokers: readonly string[],
    private readonly options: KafkaBusOptions = {},
  ) {
    this.kafka = new Kafka({
      clientId: options.clientId ?? "im-mesh",
      brokers: [...brokers],
      logLevel: logLevel.NOTHING,
      connectionTimeout: 3000,
      requestTimeout: 10000,
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
    });
  }

  /**
   * Creates missing topics and repairs existing ones: too few partitions are added (partitions can only grow)
   * and retention is set to the spec. Returns the names it created.
   */
  /**
   * Runs admin work again on retriable broker errors until the join timeout: kafkajs does not retry admin calls, and a
   * busy broker answers UNKNOWN_TOPIC_OR_PARTITION for a topic another process has just created.
   */
  private async retryingAdmin<T>(what: string, work: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + (this.options.joinTimeoutMs ?? 30_000);
    for (let attempt = 0; ; attempt++) {
      try {
        return await work();
      } catch (err) {
        const cause = err instanceof UnavailableError ? err.cause : err;
        const retriable = cause instanceof KafkaJSError && cause.retriable;
        if (!retriable || Date.now() >= deadline) throw err instanceof UnavailableError ? err : toUnavailable(what, err);
        await new Promise((r) => setTimeout(r, 100 + retryDelayMs(attempt)));
      }
    }
  }

  ensureTopics(specs: readonly TopicSpec[]): Promise<string[]> {
    return this.retryingAdmin(`creating topics on ${this.brokers.join(",")}`, () => this.ensureTopicsOnce(specs));
  }

  private async ensureTopicsOnce(specs: readonly TopicSpec[]): Promise<string[]> {
    const admin = this.kafka.admin();
    try {
      await admin.connect();
      const existing = new Set(await admin.listTopics());
      const missing = specs.filter((s) => !existing.has(s.name));
      if (missing.length > 0) {
        await admin.createTopics({
          waitForLeaders: true,
          topics: missing.map((s) => ({
            topic: s.name,
            numPartitions: s.partitions,
            replicationFactor: this.options.replicationFactor ?? 1,
            configEntries: [{ name: "retention.ms", value: String(s.retentionMs) }],
          })),
        });
      }
      const present = specs.filter((s) => existing.has(s.name));
      if (present.length > 0) {
        const metadata = await admin.fetchTopicMetadata({ topics: present.map((s) => s.name) });
        const grow = present.flatMap((s) => {
          const have = metadata.topics.find((m) => m.name === s.name)?.partitions.length ?? 0;
          return have < s.partitions ? [{ topic: s.name, count: s.partitions }] : [];
        });
        if (grow.length > 0) await admin.createPartitions({ topicPartitions: grow, validateOnly: false });
        await admin.alterConfigs({
          validateOnly: false,
          resources: present.map((s) => ({
            type: ConfigResourceTypes.TOPIC,
            name: s.name,
            configEntries: [{ name: "retention.ms", value: String(s.retentionMs) }],
          })),
        });
      }
      return missing.map((s) => s.name);
    } catch (err) {
      throw toUnavailable(`creating topics on ${this.brokers.join(",")}`, err);
    } finally {
      await admin.disconnect();
    }
  }

  private connectProducer(): Promise<Producer> {
    if (this.producer) return Promise.resolve(this.producer);
    this.connecting ??= (async () => {
      const producer = this.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      try {
        await producer.connect();
      } catch (err) {
        this.connecting = undefined;
        throw err;
      }
      this.producer = producer;
      return producer;
    })();
    return this.connecting;
  }

  publish(topic: string, messages: readonly BusMessage[]): Promise<void> {
    if (messages.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.queue.push({ topic, messages, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  /** Sends everything queued since the last tick as one request; each caller learns the shared outcome. */
  private async flush(): Promise<void> {
    this.flushScheduled = false;
    const batch = this.queue;
    this.queue = [];
    const byTopic = new Map<string, TopicMessages>();
    for (const { topic, messages } of batch) {
      let entry = byTopic.get(topic);
      if (entry === undefined) {
        entry = { topic, messages: [] };
        byTopic.set(topic, entry);
      }
      for (const m of messages) {
        entry.messages.push({ key: m.key, value: Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength), headers: m.headers ? { ...m.headers } : undefined });
      }
    }
    try {
      const producer = await this.connectProducer();
      for (const request of splitBySize([...byTopic.values()], maxRequestBytes)) await producer.sendBatch({ acks: -1, topicMessages: request });
      for (const p of batch) p.resolve();
    } catch (err) {
      // An idempotent producer whose send failed can be left with sequence numbers the broker no longer accepts
      // ("out of order sequence number" on every later send): start over with a new producer id.
      const failed = this.producer;
      this.producer = undefined;
      this.connecting = undefined;
      void failed?.disconnect().catch(() => {});
      const mapped = toUnavailable("publish", err);
      for (const p of batch) p.reject(mapped);
    }
  }

  /**
   * Kafka resolves "latest" at the new member's first fetch, after it joined, so a record published just after
   * subscribe() returned could be skipped. For a group without offsets, commit the current ends first instead.
   */
  private async startGroupAtEnd(groupId: string, topic: string): Promise<void> {
    const admin = this.kafka.admin();
    try {
      await admin.connect();
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      if (committed !== undefined && committed.partitions.some((p) => p.offset !== "-1")) return;
      const ends = await admin.fetchTopicOffsets(topic);
      await admin.setOffsets({ groupId, topic, partitions: ends.map((p) => ({ partition: p.partition, offset: p.high })) });
    } finally {
      await admin.disconnect();
    }
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    if (options.fromBeginning === false) {
      // A fresh broker answers NOT_COORDINATOR while it loads offsets.
      await this.retryingAdmin(`positioning ${options.groupId} at the end of ${options.topic}`, () => this.startGroupAtEnd(options.groupId, options.topic));
    }
    const consumer: Consumer = this.kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: 10_000,
      heartbeatInterval: 1_000,
      retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 2000 },
      allowAutoTopicCreation: false,
    });
    let stopping = false;
    const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
    try {
      await consumer.connect();
      await consumer.subscribe({ topic: options.topic, fromBeginning: options.fromBeginning ?? true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: this.options.partitionsConsumedConcurrently ?? 4,
        eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset }) => {
          if (batch.messages.length === 0) return;
          const records: BusRecord[] = batch.messages.map((m) => ({
            topic: batch.topic,
            partition: batch.partition,
            offset: m.offset,
            timestamp: Number(m.timestamp),
            key: m.key?.toString() ?? "",
            value: m.value ?? new Uint8Array(),
            headers: Object.fromEntries(Object.entries(m.headers ?? {}).map(([k, v]) => [k, v?.toString() ?? ""])),
          }));
          // Retry here rather than by throwing to kafkajs: a throw before any offset was committed can make a
          // fresh group skip records (kafkajs#238). Returning without a commit leaves them for the next owner.
          for (let attempt = 1; ; attempt++) {
            if (stopping || !isRunning() || isStale()) return;
            try {
              await options.handler(records);
              break;
            } catch (err) {
              options.onError?.(err, records, attempt);
              const until = Date.now() + retryDelayMs(attempt);
              while (Date.now() < until && !stopping) {
                await new Promise((r) => setTimeout(r, Math.min(500, until - Date.now())));
                await heartbeat().catch(() => {});
              }
            }
          }
          // kafkajs fetches again from the last resolved offset, whatever was committed: resolve, then commit.
          resolveOffset(batch.lastOffset());
          const next = (BigInt(batch.lastOffset()) + 1n).toString();
          await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }]);
          await heartbeat();
        },
      });
      let timer: NodeJS.Timeout | undefined;
      const timeoutMs = this.options.joinTimeoutMs ?? 30_000;
      await Promise.race([
        joined,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`group ${options.groupId} not joined within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
    } catch (err) {
      await consumer.disconnect().catch(() => {});
      throw toUnavailable(`subscribing ${options.groupId} to ${options.topic}`, err);
    }
    const subscription: Subscription = {
      stop: async () => {
        if (stopping) return;
        stopping = true;
        this.subscriptions.delete(subscription);
        // disconnect() waits for the running eachBatch calls, then leaves the group.
        await consumer.disconnect();
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((s) => s.stop()));
    if (this.queue.length > 0) await this.flush();
    await this.producer?.disconnect();
    this.producer = undefined;
    this.connecting = undefined;
  }
}
