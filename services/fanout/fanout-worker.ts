import type { Logger } from "pino";
import { Counter, Histogram, type Registry } from "prom-client";
import { GroupMessageRecordSchema, MembershipChangeSchema, type GroupMessageRecord } from "../../gen/im/msg/v1/msg_pb.js";
import type { BatchHandler, Bus, Subscription } from "../../platform/bus/bus.js";
import { decodeRecord, PoisonRecordError } from "../../platform/bus/poison-record.js";
import { messageFrame, type Delivery, type Outgoing } from "../msg/delivery.js";
import type { MemberSpan, MessageStore } from "../msg/message-store.js";
import { MemberCache } from "./member-cache.js";

/** What a fan-out worker works with. */
export interface FanoutDeps {
  readonly store: MessageStore;
  readonly delivery: Delivery;
  readonly bus: Bus;
  readonly logger: Logger;
  readonly metrics: Registry;
  /** Names this worker's private `membership_change` subscription, so every worker sees every change. */
  readonly instanceId: string;
  /**
   * Groups up to this many members also get offline inbox entries for members with no device online (default
   * 500); members of larger groups catch up by ListConversations and Sync when they reconnect (read diffusion).
   */
  readonly offlineInboxMaxMembers?: number;
}

/** Whether a member receives the message with this seq: from the seq that added them to the one that removed them. */
export function receives(member: MemberSpan, seq: number): boolean {
  return member.joinedSeq <= seq && (member.leftSeq === null || seq <= member.leftSeq);
}

/**
 * The fan-out of group messages (DESIGN.md §3 "Send to group"): a batch of `group_msg` records becomes one
 * delivery per message to the members it was sent to, pushed as one batch per gateway, with offline members of
 * groups up to 500 members handed to `offline_msg`. The handler resolves, and the bus commits the offsets, only when all of it succeeded;
 * a worker killed mid-batch leaves the batch to be consumed again (clients drop what they already have).
 */
export function createFanoutHandler(deps: FanoutDeps, cache: MemberCache): BatchHandler {
  const offlineInboxMaxMembers = deps.offlineInboxMaxMembers ?? 500;
  const messages = new Counter({ name: "fanout_messages_total", help: "Group messages fanned out", registers: [deps.metrics] });
  const recipients = new Counter({ name: "fanout_recipients_total", help: "Members a group message was fanned out to", labelNames: ["path"], registers: [deps.metrics] });
  const seconds = new Histogram({ name: "fanout_batch_seconds", help: "Time to fan out one batch of group_msg records", registers: [deps.metrics], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
  return async (records) => {
    const stop = seconds.startTimer();
    const byConversation = new Map<string, GroupMessageRecord[]>();
    for (const r of records) {
      const record = decodeRecord(GroupMessageRecordSchema, r);
      if (record.message === undefined) throw new PoisonRecordError(r, "group_msg record without a message");
      const conversationId = record.message.conversationId;
      const list = byConversation.get(conversationId);
      if (list) list.push(record);
      else byConversation.set(conversationId, [record]);
    }
    const outs: Outgoing[] = [];
    for (const [conversationId, list] of byConversation) {
      const appId = list[0]!.appId;
      // One primary-key read per conversation and batch: the cached members are used only while no membership
      // change happened since they were read, so a removed member never gets a message past their removal.
      const conversation = await deps.store.conversation(appId, conversationId);
      if (conversation === undefined) {
        deps.logger.warn({ conversationId, records: list.length }, "group_msg records for an unknown conversation dropped");
        continue;
      }
      const spans = await cache.spans(appId, conversationId, conversation.membersSeq);
      for (const { message } of list.sort((a, b) => Number(a.message!.seq - b.message!.seq))) {
        const seq = Number(message!.seq);
        const userIds = spans.members.filter((m) => receives(m, seq)).map((m) => m.userId);
        // A copy per offline member would make a 10,000-member group's message 9,000 inbox records and hold the
        // group's next messages behind them (measured); large groups leave offline members to sync instead.
        const inbox = userIds.length <= offlineInboxMaxMembers;
        outs.push({ appId, userIds, frame: messageFrame(message!), exceptDevice: { userId: message!.senderId, deviceId: message!.senderDeviceId }, offlineMessage: inbox ? message! : undefined });
      }
    }
    const result = await deps.delivery.deliverNow(outs);
    messages.inc(outs.length);
    recipients.inc({ path: "pushed" }, result.pushedDevices);
    recipients.inc({ path: "offline" }, result.offlineUsers);
    stop();
  };
}

/** Starts consuming `group_msg` (consumer group "fanout") and `membership_change` (to drop cached members). */
export async function startFanoutWorker(deps: FanoutDeps): Promise<Subscription> {
  const cache = new MemberCache(deps.store);
  const changes = await deps.bus.subscribe({
    groupId: `fanout-cache-${deps.instanceId}`,
    topic: "membership_change",
    fromBeginning: false,
    handler: async (records) => {
      for (const r of records) {
        const change = decodeRecord(MembershipChangeSchema, r);
        if (change.conversationId === "") throw new PoisonRecordError(r, "membership_change record without a conversation id");
        cache.drop(change.conversationId);
      }
    },
  });
  const fanout = await deps.bus.subscribe({
    groupId: "fanout",
    topic: "group_msg",
    handler: createFanoutHandler(deps, cache),
    onError: (err, records, attempt) => deps.logger.warn({ err, records: records.length, attempt }, "fan-out batch failed; it will be retried"),
  });
  return {
    async stop() {
      await fanout.stop();
      await changes.stop();
    },
  };
}
