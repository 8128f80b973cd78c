import { UnavailableError } from "../errors.js";
import { retryDelayMs, type Bus, type BusMessage, type BusRecord, type SubscribeOptions, type Subscription } from "./bus.js";
import type { TopicSpec } from "./topics.js";

interface Partition {
  /** Offset of records[0]; records below it were trimmed after every group committed them. */
  base: number;
  records: BusRecord[];
}

interface Topic {
  spec: TopicSpec;
  partitions: Partition[];
}

interface Member {
  options: SubscribeOptions;
  stopped: boolean;
  /** Partition pumps currently running for this member. */
  running: Set<Promise<void>>;
}

interface Group {
  committed: Map<string, number>;
  members: Member[];
  /** Bumped on every rebalance; a pump whose generation is old stops, like a stale Kafka member. */
  generation: number;
}

/** FNV-1a: a stable key → partition mapping, so one key always lands in one partition. */
function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const maxBatch = 500;

/**
 * The in-memory Bus for all-in-one mode and unit tests, with Kafka's semantics: partitions by key,
 * consumer groups sharing partitions, offsets committed only after the handler succeeds.
 */
export class MemoryBus implements Bus {
  private readonly topics = new Map<string, Topic>();
  private readonly groups = new Map<string, Group>();
  private readonly waiters = new Set<() => void>();
  private closed = false;

  async ensureTopics(specs: readonly TopicSpec[]): Promise<string[]> {
    const created: string[] = [];
    for (const spec of specs) {
      if (this.topics.has(spec.name)) continue;
      created.push(spec.name);
      this.topics.set(spec.name, {
        spec,
        partitions: Array.from({ length: spec.partitions }, () => ({ base: 0, records: [] })),
      });
    }
    return created;
  }

  private topic(name: string): Topic {
    const topic = this.topics.get(name);
    if (topic === undefined) throw new Error(`topic ${name} does not exist; create it with ensureTopics first`);
    return topic;
  }

  async publish(topicName: string, messages: readonly BusMessage[]): Promise<void> {
    if (this.closed) throw new UnavailableError("memory", "the bus is closed");
    const topic = this.topic(topicName);
    const now = Date.now();
    for (const message of messages) {
      const partition = hashKey(message.key) % topic.partitions.length;
      const log = topic.partitions[partition]!;
      log.records.push({
        key: message.key,
        value: message.value,
        headers: message.headers ?? {},
        topic: topicName,
        partition,
        offset: String(log.base + log.records.length),
        timestamp: now,
      });
    }
    this.wake();
  }

  private wake(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const resolve of waiters) resolve();
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.add(resolve));
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    const topic = this.topic(options.topic);
    const groupKey = `${options.groupId}\u0000${options.topic}`;
    let group = this.groups.get(groupKey);
    if (group === undefined) {
      group = { committed: new Map(), members: [], generation: 0 };
      this.groups.set(groupKey, group);
      topic.partitions.forEach((p, i) => {
        group!.committed.set(String(i), options.fromBeginning === false ? p.base + p.records.length : p.base);
      });
    }
    const member: Member = { options, stopped: false, running: new Set() };
    group.members.push(member);
    this.rebalance(topic, group);
    return {
      stop: async () => {
        if (member.stopped) return;
        member.stopped = true;
        this.wake();
        await Promise.all(member.running);
        group.members = group.members.filter((m) => m !== member);
        this.rebalance(topic, group);
      },
    };
  }

  /** Spreads the partitions over the group's members round robin and restarts their pumps. */
  private rebalance(topic: Topic, group: Group): void {
    group.generation++;
    this.wake();
    const generation = group.generation;
    group.members.forEach((member, index) => {
      topic.partitions.forEach((_, partition) => {
        if (partition % group.members.length !== index) return;
        const pump = this.pump(topic, group, member, partition, generation);
        member.running.add(pump);
        void pump.finally(() => member.running.delete(pump));
      });
    });
  }

  private async pump(topic: Topic, group: Group, member: Member, partition: number, generation: number): Promise<void> {
    const log = topic.partitions[partition]!;
    const current = () => !member.stopped && !this.closed && group.generation === generation;
    let attempt = 0;
    while (current()) {
      const next = group.committed.get(String(partition))!;
      const start = next - log.base;
      if (start >= log.records.length) {
        await this.changed();
        continue;
      }
      const records = log.records.slice(start, start + maxBatch);
      try {
        await member.options.handler(records);
      } catch (err) {
        attempt++;
        member.options.onError?.(err, records, attempt);
        await new Promise((r) => setTimeout(r, retryDelayMs(attempt)));
        continue;
      }
      attempt = 0;
      // A member that lost the partition meanwhile must not commit over the new owner's progress.
      if (group.generation !== generation) return;
      group.committed.set(String(partition), next + records.length);
      this.trim(topic, partition);
    }
  }

  /** Drops records every group has committed and that are past the topic's retention. */
  private trim(topic: Topic, partition: number): void {
    const log = topic.partitions[partition]!;
    let floor = log.base + log.records.length;
    for (const [key, group] of this.groups) {
      if (key.endsWith(`\u0000${topic.spec.name}`)) floor = Math.min(floor, group.committed.get(String(partition)) ?? log.base);
    }
    const cutoff = Date.now() - topic.spec.retentionMs;
    let drop = 0;
    while (drop < floor - log.base && log.records[drop]!.timestamp <= cutoff) drop++;
    if (drop > 0) {
      log.records.splice(0, drop);
      log.base += drop;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake();
    await Promise.all([...this.groups.values()].flatMap((g) => g.members.flatMap((m) => [...m.running])));
  }
}
