import { Counter, type Registry } from "prom-client";
import type { BatchHandler, Bus, BusMessage, BusRecord, SubscribeOptions } from "./bus.js";
import { PoisonRecordError } from "./poison-record.js";
import { deadLetterTopic } from "./topics.js";

/** The headers a dead letter carries besides its record's own, so an operator (npm run dlq) sees what failed where. */
export const deadLetterHeaders = {
  /** Why the record could not be processed (at most maxErrorLength characters). */
  error: "im-dlq-error",
  sourceTopic: "im-dlq-source-topic",
  sourcePartition: "im-dlq-source-partition",
  sourceOffset: "im-dlq-source-offset",
  /** When the record was set aside, ISO 8601. */
  time: "im-dlq-time",
  /** The consumer group that could not process it. */
  group: "im-dlq-group",
} as const;

/** Longest error text a dead letter carries; a protobuf error can quote arbitrary input. */
export const maxErrorLength = 512;

/** What the decorator reports through. */
export interface DeadLetterOptions {
  /** A pino logger, or anything with its warn(object, message). */
  readonly logger: { warn(obj: object, msg: string): void };
  readonly metrics: Registry;
}

const sameRecord = (a: BusRecord, b: BusRecord) => a === b || (a.topic === b.topic && a.partition === b.partition && a.offset === b.offset);

/** The dead letter of a record: its own key, value and headers, plus what failed, where and when. */
function deadLetterOf(record: BusRecord, err: PoisonRecordError, groupId: string): BusMessage {
  return {
    key: record.key,
    value: record.value,
    headers: {
      ...record.headers,
      [deadLetterHeaders.error]: err.reason.slice(0, maxErrorLength),
      [deadLetterHeaders.sourceTopic]: record.topic,
      [deadLetterHeaders.sourcePartition]: String(record.partition),
      [deadLetterHeaders.sourceOffset]: record.offset,
      [deadLetterHeaders.time]: new Date().toISOString(),
      [deadLetterHeaders.group]: groupId,
    },
  };
}

/**
 * A bus whose subscriptions never stall on a record that can't be processed: when a handler throws a
 * PoisonRecordError for one of its records, that record is published to `<topic>.dlq` (counted in
 * `bus_dead_letters_total{topic}` and logged once) and the batch is handed over again without it, so the records
 * after it are processed and committed. Each poison record costs at most one extra call. Any other error keeps the
 * bus's semantics (the same records are retried, nothing is skipped), and so does a failed dead-letter publish.
 */
export function withDeadLetters(bus: Bus, options: DeadLetterOptions): Bus {
  const counted =
    (options.metrics.getSingleMetric("bus_dead_letters_total") as Counter<"topic"> | undefined) ??
    new Counter({ name: "bus_dead_letters_total", help: "Records set aside on <topic>.dlq because they could not be processed", labelNames: ["topic"], registers: [options.metrics] });

  const deadLettering = (subscription: SubscribeOptions): BatchHandler => {
    const target = deadLetterTopic(subscription.topic);
    return async (records) => {
      let remaining = records;
      for (;;) {
        try {
          await subscription.handler(remaining);
          return;
        } catch (err) {
          if (!(err instanceof PoisonRecordError)) throw err;
          const poison = remaining.find((r) => sameRecord(r, err.record));
          // A record already set aside or not in this batch: nothing to skip, so it is an ordinary failure.
          if (poison === undefined) throw err;
          const where = { topic: poison.topic, partition: poison.partition, offset: poison.offset, key: poison.key, groupId: subscription.groupId };
          try {
            await bus.publish(target, [deadLetterOf(poison, err, subscription.groupId)]);
          } catch (publishErr) {
            options.logger.warn({ err: publishErr, ...where, deadLetterTopic: target }, "publishing a dead letter failed; the batch will be retried");
            throw publishErr;
          }
          counted.inc({ topic: subscription.topic });
          options.logger.warn({ err, ...where, deadLetterTopic: target }, "a record that cannot be processed was moved to its dead-letter topic");
          remaining = remaining.filter((r) => r !== poison);
          if (remaining.length === 0) return;
        }
      }
    };
  };

  return {
    ensureTopics: (specs) => bus.ensureTopics(specs),
    publish: (topic, messages) => bus.publish(topic, messages),
    subscribe: (subscription) => bus.subscribe({ ...subscription, handler: deadLettering(subscription) }),
    close: () => bus.close(),
  };
}
