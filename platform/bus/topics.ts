/** One Kafka topic of the design (DESIGN.md §5): name, partition count and how long records are kept. */
export interface TopicSpec {
  readonly name: string;
  readonly partitions: number;
  readonly retentionMs: number;
  /** What the topic carries and what its key is, for operators reading `infra-check` output. */
  readonly purpose: string;
}

const hour = 60 * 60 * 1000;

/** The topic a topic's dead letters go to (records its consumers could never process); one name for all users. */
export function deadLetterTopic(topic: string): string {
  return `${topic}.dlq`;
}

/** A dead-letter topic: few partitions (little traffic) and two weeks for an operator to look and replay. */
function deadLetters(topic: string): TopicSpec {
  return { name: deadLetterTopic(topic), partitions: 3, retentionMs: 14 * 24 * hour, purpose: `${topic} records its consumers could not process, same key; npm run dlq` };
}

/** Every topic im-mesh uses; created before any consumer starts, since KRaft refuses to subscribe to unknown topics. */
export const topics: readonly TopicSpec[] = [
  { name: "group_msg", partitions: 32, retentionMs: hour, purpose: "group messages to fan out, keyed by group id" },
  { name: "offline_msg", partitions: 64, retentionMs: 7 * 24 * hour, purpose: "deliveries for offline users, keyed by user id" },
  { name: "membership_change", partitions: 16, retentionMs: hour, purpose: "group membership changes, keyed by group id" },
  deadLetters("group_msg"),
  deadLetters("offline_msg"),
  deadLetters("membership_change"),
];
