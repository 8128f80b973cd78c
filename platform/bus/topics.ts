/** One Kafka topic of the design (DESIGN.md §5): name, partition count and how long records are kept. */
export interface TopicSpec {
  readonly name: string;
  readonly partitions: number;
  readonly retentionMs: number;
  /** What the topic carries and what its key is, for operators reading `infra-check` output. */
  readonly purpose: string;
}

const hour = 60 * 60 * 1000;

/** Every topic im-mesh uses; created before any consumer starts, since KRaft refuses to subscribe to unknown topics. */
export const topics: readonly TopicSpec[] = [
  { name: "group_msg", partitions: 32, retentionMs: hour, purpose: "group messages to fan out, keyed by group id" },
  { name: "offline_msg", partitions: 64, retentionMs: 7 * 24 * hour, purpose: "deliveries for offline users, keyed by user id" },
  { name: "membership_change", partitions: 16, retentionMs: hour, purpose: "group membership changes, keyed by group id" },
];
