import type { TopicSpec } from "./topics.js";

/** A record to publish: the key picks the partition, so records with one key stay in order. */
export interface BusMessage {
  readonly key: string;
  readonly value: Uint8Array;
  readonly headers?: Readonly<Record<string, string>>;
}

/** A consumed record with its position. */
export interface BusRecord extends BusMessage {
  readonly topic: string;
  readonly partition: number;
  /** Offset within the partition, as a decimal string (Kafka offsets are 64-bit). */
  readonly offset: string;
  /** When the record was published, in ms since the epoch. */
  readonly timestamp: number;
}

/**
 * Handles a run of records from one partition, in offset order. Resolving commits them; throwing means
 * "not done": the same records are handed over again (after a backoff) and nothing after them is delivered
 * from that partition meanwhile, so order holds and nothing is skipped. The one exception, under the dead-letter
 * decorator (dead-letters.ts): a PoisonRecordError names a record that can never be processed, which is set aside.
 */
export type BatchHandler = (records: readonly BusRecord[]) => Promise<void>;

/** How a consumer group member subscribes. */
export interface SubscribeOptions {
  /** Members of one group share the partitions; each group sees every record. */
  readonly groupId: string;
  readonly topic: string;
  readonly handler: BatchHandler;
  /** Where a group with no committed offset starts: the oldest retained record (default) or only new ones. */
  readonly fromBeginning?: boolean;
  /** Called when the handler throws, before the retry; for logs and metrics. */
  readonly onError?: (err: unknown, records: readonly BusRecord[], attempt: number) => void;
}

/** A live subscription; stop() lets the running handler finish, commits what succeeded, and leaves the group. */
export interface Subscription {
  stop(): Promise<void>;
}

/**
 * The message-bus port (DESIGN.md §5 Kafka topics): group fan-out, offline queue, membership changes.
 * publish resolves once the records are durable (acks=all); delivery is at least once, ordered per key.
 */
export interface Bus {
  /** Creates missing topics (and brings existing ones to the spec where the bus can); returns the names created. */
  ensureTopics(specs: readonly TopicSpec[]): Promise<string[]>;
  publish(topic: string, messages: readonly BusMessage[]): Promise<void>;
  subscribe(options: SubscribeOptions): Promise<Subscription>;
  close(): Promise<void>;
}

/** Exponential backoff with full jitter for handler retries: 50 ms doubling up to 5 s. */
export function retryDelayMs(attempt: number): number {
  return Math.floor(Math.random() * Math.min(5000, 50 * 2 ** Math.min(attempt, 10)));
}

/** The record header naming the deployment a record was published by. */
export const scopeHeader = "im-scope";

/** The bus scope of a deployment from its etcd namespace ("/prod/" → "prod"), so the runtime and `npm run dlq` agree. */
export function scopeOfNamespace(namespace: string | undefined): string {
  return (namespace ?? "").replace(/^\/+|\/+$/g, "").replace(/[^A-Za-z0-9._-]/g, "_");
}

/** The scope a record was published in: its scope header, or "" (the unscoped deployment) when it has none. */
export function recordScope(record: BusRecord): string {
  return record.headers?.[scopeHeader] ?? "";
}

/**
 * The bus of one deployment among several sharing the brokers (one per etcd namespace): records are stamped with
 * the scope and consumer group ids are prefixed with it, and each deployment consumes only its own scope's records
 * (others are committed unseen), so deployments never consume one another's messages nor split one another's
 * partitions. The unscoped deployment (scope "") publishes without the header, keeps its group ids unprefixed
 * (compatible with its committed offsets) and consumes only records that carry no scope.
 */
export function scopedBus(bus: Bus, scope: string): Bus {
  const stamp = (m: BusMessage): BusMessage => {
    const { [scopeHeader]: _, ...headers } = m.headers ?? {};
    return { ...m, headers: scope === "" ? headers : { ...headers, [scopeHeader]: scope } };
  };
  return {
    ensureTopics: (specs) => bus.ensureTopics(specs),
    publish: (topic, messages) => bus.publish(topic, messages.map(stamp)),
    subscribe: (options) =>
      bus.subscribe({
        ...options,
        groupId: scope === "" ? options.groupId : `${scope}.${options.groupId}`,
        handler: async (records) => {
          const ours = records.filter((r) => recordScope(r) === scope);
          if (ours.length > 0) await options.handler(ours);
        },
      }),
    close: () => bus.close(),
  };
}
