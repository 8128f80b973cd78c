// What `npm run dlq` does, as functions (the tests call them): list a dead-letter topic, and replay its records to
// the topic they came from, once.
import { randomUUID } from "node:crypto";
import kafkajs from "kafkajs";
import { recordScope, type BusMessage, type BusRecord } from "./bus.js";
import { deadLetterHeaders } from "./dead-letters.js";
import { KafkaBus } from "./kafka-bus.js";
import { deadLetterTopic } from "./topics.js";

const { Kafka, logLevel } = kafkajs;

/** One dead letter as an operator reads it. */
export interface DeadLetter {
  /** Where it sits on the dead-letter topic. */
  readonly partition: number;
  readonly offset: string;
  readonly key: string;
  readonly sourceTopic: string;
  readonly sourcePartition: string;
  readonly sourceOffset: string;
  readonly error: string;
  /** When it was set aside (ISO 8601), or "" if the header is missing. */
  readonly time: string;
  /** Size of the record's value in bytes. */
  readonly size: number;
  /** The deployment that published the record ("" for the unscoped one). */
  readonly scope: string;
  /** The consumer group that could not process it. */
  readonly group: string;
}

/** Where dead-letter tools connect, and how long they wait for the topic to be read. */
export interface DeadLetterToolOptions {
  readonly brokers: readonly string[];
  /** Give up reading after this long (default 60 s); a replay keeps what it committed so far. */
  readonly timeoutMs?: number;
}

/** `group_msg` and `group_msg.dlq` both name group_msg's dead letters. */
function topicsOf(topic: string): { source: string; dlq: string } {
  return topic.endsWith(".dlq") ? { source: topic.slice(0, -".dlq".length), dlq: topic } : { source: topic, dlq: deadLetterTopic(topic) };
}

function deadLetterOf(r: BusRecord, source: string): DeadLetter {
  const h = r.headers ?? {};
  return {
    partition: r.partition,
    offset: r.offset,
    key: r.key,
    sourceTopic: h[deadLetterHeaders.sourceTopic] ?? source,
    sourcePartition: h[deadLetterHeaders.sourcePartition] ?? "?",
    sourceOffset: h[deadLetterHeaders.sourceOffset] ?? "?",
    error: h[deadLetterHeaders.error] ?? "",
    time: h[deadLetterHeaders.time] ?? "",
    size: r.value.byteLength,
    scope: recordScope(r),
    group: h[deadLetterHeaders.group] ?? "",
  };
}

/** The record as it was before it became a dead letter: its key, value and own headers (its scope included). */
function originalOf(r: BusRecord): BusMessage {
  const dlq = new Set<string>(Object.values(deadLetterHeaders));
  return { key: r.key, value: r.value, headers: Object.fromEntries(Object.entries(r.headers ?? {}).filter(([k]) => !dlq.has(k))) };
}

/** Per partition, the offset below which everything must be read: the topic's end when the read starts. */
async function ends(brokers: readonly string[], topic: string, groupId?: string): Promise<{ total: number; pending: Map<number, bigint> }> {
  const admin = new Kafka({ clientId: "im-dlq", brokers: [...brokers], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(topic)) throw new Error(`topic ${topic} does not exist on ${brokers.join(",")} (make infra-up creates the dead-letter topics)`);
    const offsets = await admin.fetchTopicOffsets(topic);
    const committed = new Map<number, bigint>();
    if (groupId !== undefined) {
      const [ofTopic] = await admin.fetchOffsets({ groupId, topics: [topic] });
      for (const p of ofTopic?.partitions ?? []) if (p.offset !== "-1") committed.set(p.partition, BigInt(p.offset));
    }
    let total = 0;
    const pending = new Map<number, bigint>();
    for (const p of offsets) {
      const [low, high] = [BigInt(p.low), BigInt(p.high)];
      const start = committed.has(p.partition) && committed.get(p.partition)! > low ? committed.get(p.partition)! : low;
      if (start < high) {
        pending.set(p.partition, high);
        total += Number(high - start);
      }
    }
    return { total, pending };
  } finally {
    await admin.disconnect();
  }
}

/**
 * Reads `topic` in consumer group `groupId` until every partition reached the end it had when the read started
 * (or `enough()` says so), handing each batch to `handle`; the group commits what was handled.
 */
async function readToEnd(options: DeadLetterToolOptions, topic: string, groupId: string, pending: Map<number, bigint>, handle: (records: readonly BusRecord[]) => Promise<void>, enough: () => boolean = () => false): Promise<void> {
  const bus = new KafkaBus(options.brokers, { clientId: "im-dlq" });
  let finished!: () => void;
  const done = new Promise<void>((resolve) => (finished = resolve));
  const check = () => {
    if (pending.size === 0 || enough()) finished();
  };
  let timer: NodeJS.Timeout | undefined;
  try {
    const subscription = await bus.subscribe({
      groupId,
      topic,
      fromBeginning: true,
      handler: async (records) => {
        await handle(records);
        const last = BigInt(records[records.length - 1]!.offset);
        const partition = records[0]!.partition;
        if (pending.has(partition) && last + 1n >= pending.get(partition)!) pending.delete(partition);
        check();
      },
    });
    check();
    const timeoutMs = options.timeoutMs ?? 60_000;
    // Stopping lets the running handlers finish and commits what they handled.
    await Promise.race([
      done,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${topic}: partitions ${[...pending.keys()].join(", ")} not read to their end within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]).finally(() => subscription.stop());
  } finally {
    clearTimeout(timer);
    await bus.close();
  }
}

/** What `list` found: how many dead letters the topic holds (of every scope) and the first of them. */
export interface DeadLetterListing {
  readonly topic: string;
  readonly total: number;
  readonly shown: readonly DeadLetter[];
}

/**
 * The first `limit` dead letters of a topic (`scope` given: only that deployment's), for an operator to decide
 * whether to replay them; reads in a throwaway consumer group and deletes it afterwards.
 */
export async function listDeadLetters(options: DeadLetterToolOptions & { readonly topic: string; readonly limit?: number; readonly scope?: string }): Promise<DeadLetterListing> {
  const { source, dlq } = topicsOf(options.topic);
  const limit = options.limit ?? 20;
  const { total, pending } = await ends(options.brokers, dlq);
  const shown: DeadLetter[] = [];
  if (total === 0 || limit <= 0) return { topic: dlq, total, shown };
  const groupId = `im-dlq-list-${randomUUID()}`;
  try {
    await readToEnd(options, dlq, groupId, pending, async (records) => {
      for (const r of records) {
        if (shown.length < limit && (options.scope === undefined || recordScope(r) === options.scope)) shown.push(deadLetterOf(r, source));
      }
    }, () => shown.length >= limit);
  } finally {
    const admin = new Kafka({ clientId: "im-dlq", brokers: [...options.brokers], logLevel: logLevel.NOTHING }).admin();
    await admin.connect().then(() => admin.deleteGroups([groupId])).catch(() => {});
    await admin.disconnect();
  }
  shown.sort((a, b) => a.time.localeCompare(b.time) || a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
  return { topic: dlq, total, shown };
}

/** Cuts a value for one table cell, so one odd record can't flood the terminal. */
const cell = (text: string, width: number) => (text.length > width ? `${text.slice(0, width - 1)}…` : text);

/** The lines `npm run dlq -- list` prints: a count, then one line per dead letter shown, each of bounded width. */
export function formatListing(listing: DeadLetterListing, scope?: string): string[] {
  const of = scope === undefined ? "" : ` (scope ${scope || "none"}: ${listing.shown.length} shown)`;
  const lines = [`${listing.topic}: ${listing.total} dead letter(s) retained${of}`];
  if (listing.shown.length > 0) lines.push(["set aside".padEnd(24), "source".padEnd(28), "key".padEnd(40), "size".padStart(9), "scope".padEnd(6), "error"].join("  "));
  for (const d of listing.shown) {
    lines.push(
      [
        (d.time || "?").padEnd(24),
        `${d.sourceTopic}[${d.sourcePartition}]@${d.sourceOffset}`.padEnd(28),
        cell(JSON.stringify(d.key), 40).padEnd(40),
        `${d.size} B`.padStart(9),
        cell(d.scope || "-", 20).padEnd(6),
        cell(d.error.replace(/\s+/g, " "), 160),
      ].join("  "),
    );
  }
  if (scope === undefined && listing.total > listing.shown.length) lines.push(`… ${listing.total - listing.shown.length} more (--limit N shows up to 1000)`);
  return lines;
}

/** What `replay` did. */
export interface ReplayOutcome {
  readonly topic: string;
  /** Consumer group keeping the replay's progress on the dead-letter topic. */
  readonly groupId: string;
  /** Dead letters published again to the topic they came from. */
  readonly replayed: number;
  /** Dead letters of other scopes, passed over. */
  readonly skipped: number;
}

/**
 * Publishes each dead letter of one deployment (`scope`, "" for the unscoped one) back to the topic it came from,
 * with its own key and headers, and commits the progress in a fixed consumer group, so a second replay only
 * publishes dead letters set aside since. For after the consumers were fixed or the cause removed.
 */
export async function replayDeadLetters(options: DeadLetterToolOptions & { readonly topic: string; readonly scope?: string }): Promise<ReplayOutcome> {
  const { source, dlq } = topicsOf(options.topic);
  const scope = options.scope ?? "";
  const groupId = `${scope === "" ? "" : `${scope}.`}dlq-replay-${source}`;
  const { total, pending } = await ends(options.brokers, dlq, groupId);
  let replayed = 0;
  let skipped = 0;
  if (total === 0) return { topic: dlq, groupId, replayed, skipped };
  const publisher = new KafkaBus(options.brokers, { clientId: "im-dlq-replay" });
  try {
    await readToEnd(options, dlq, groupId, pending, async (records) => {
      const ours = records.filter((r) => recordScope(r) === scope);
      const byTopic = new Map<string, BusMessage[]>();
      for (const r of ours) {
        const target = r.headers?.[deadLetterHeaders.sourceTopic] ?? source;
        byTopic.set(target, [...(byTopic.get(target) ?? []), originalOf(r)]);
      }
      for (const [target, messages] of byTopic) await publisher.publish(target, messages);
      replayed += ours.length;
      skipped += records.length - ours.length;
    });
  } finally {
    await publisher.close();
  }
  return { topic: dlq, groupId, replayed, skipped };
}
