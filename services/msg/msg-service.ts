import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  ConversationType,
  GroupMessageRecordSchema,
  MembershipChangeSchema,
  MessageContentSchema,
  MessageEvent_Kind,
  MessageFlag,
  MessageSchema,
  type Conversation,
  type Message,
  type MessageContent,
  type MsgInternalService,
  type MsgService,
  type SendMessageResponse,
  SendMessageResponseSchema,
} from "../../gen/im/msg/v1/msg_pb.js";
import { requireUser } from "../../mesh/interceptors/auth-interceptor.js";
import type { MeshClients } from "../../mesh/service-client.js";
import type { BucketSpec, Kv } from "../../platform/kv/kv.js";
import type { Limit, RateLimiter } from "../../platform/rate-limiter.js";
import { GroupInternalService, GroupRole } from "../../gen/im/group/v1/group_pb.js";
import type { Bus } from "../../platform/bus/bus.js";
import { ConversationAccess, directConversationId, groupOf } from "./conversation-access.js";
import { messageFrame, type Delivery } from "./delivery.js";
import { GroupCommit } from "./group-commit.js";
import type { InsertOutcome, MessageStore, StoredMessage } from "./message-store.js";
import { contentType, decodeCursor, encodeCursor, flagOf, searchText, toMessage } from "./message-view.js";
import type { Sequencer } from "./sequencer.js";

/** The sender of a system message no user caused. */
const systemSender = "00000000-0000-0000-0000-000000000000";

/** Dedup markers live 7 days (DESIGN.md §3 step 2). */
const dedupTtlMs = 7 * 24 * 3_600_000;

/** What the msg handlers work with. */
export interface MsgDeps {
  readonly store: MessageStore;
  readonly kv: Kv;
  readonly sequencer: Sequencer;
  readonly delivery: Delivery;
  readonly clients: MeshClients;
  /** Group messages go to `group_msg` for the fan-out workers; membership changes to `membership_change`. */
  readonly bus: Bus;
  /** How long after sending the sender may still edit or recall a message (default 15 minutes). */
  readonly editWindowMs?: number;
  /** Read receipts of groups larger than this go only to the reader's own devices (default 100). */
  readonly receiptMaxMembers?: number;
  /** Send rate limits per user and per app (SECURITY.md), checked first on every send; none when absent. */
  readonly sendLimits?: { readonly limiter: RateLimiter; readonly perUser?: BucketSpec; readonly perApp?: BucketSpec };
}

export { directConversationId, directMembers, groupOf } from "./conversation-access.js";

/** The limits a send of one user passes, built once per call from the configured buckets; undefined when none are set. */
function sendLimitsOf(config: MsgDeps["sendLimits"]): { limiter: RateLimiter; of(appId: string, userId: string): Limit[] } | undefined {
  if (config === undefined || (config.perUser === undefined && config.perApp === undefined)) return undefined;
  const { perUser, perApp } = config;
  return {
    limiter: config.limiter,
    of: (appId, userId) => [
      ...(perUser ? [{ key: `rl:send:user:${appId}:${userId}`, bucket: perUser, what: "you are sending messages too fast" }] : []),
      ...(perApp ? [{ key: `rl:send:app:${appId}`, bucket: perApp, what: "this app is sending messages too fast" }] : []),
    ],
  };
}

/** Builds the msg service's handlers: sending with dedup, seq and group commit, sync, read state, edits and search. */
export function createMsgServices(deps: MsgDeps): { msg: ServiceImpl<typeof MsgService>; internal: ServiceImpl<typeof MsgInternalService> } {
  const { store, kv } = deps;
  const editWindowMs = deps.editWindowMs ?? 15 * 60_000;
  const receiptMaxMembers = deps.receiptMaxMembers ?? 100;
  const access = new ConversationAccess(store, deps.clients, editWindowMs);
  const sendLimits = sendLimitsOf(deps.sendLimits);
  const commit = new GroupCommit<{ row: StoredMessage; mentions: readonly string[] }, InsertOutcome>((batch) =>
    store.insert(
      batch.map((b) => b.row),
      batch.flatMap((b) => b.mentions.map((userId) => ({ userId, conversationId: b.row.conversationId, seq: b.row.seq }))),
    ),
  );

  /** Hands a stored group message to the fan-out workers; durable on the bus when this resolves. */
  const publishGroupMessage = async (appId: string, message: Message) => {
    const groupId = groupOf(message.conversationId)!;
    try {
      await deps.bus.publish("group_msg", [{ key: groupId, value: toBinary(GroupMessageRecordSchema, create(GroupMessageRecordSchema, { appId, groupId, message })) }]);
    } catch {
      throw new ConnectError("the message is stored but could not be handed to delivery; send it again with the same client_msg_id", Code.Unavailable);
    }
  };

  /** Writes the row with a fresh seq, taking another while the write finds the seq taken (only after the counter was lost). */
  const withFreshSeq = async <O extends { kind: string }>(row: Omit<StoredMessage, "seq">, write: (stored: StoredMessage) => Promise<O>, firstSeq?: number) => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const seq = attempt === 0 && firstSeq !== undefined ? firstSeq : await deps.sequencer.next(row.appId, row.conversationId);
      const stored = { ...row, seq };
      const outcome = await write(stored);
      if (outcome.kind !== "seq-taken") return { stored, outcome: outcome as Exclude<O, { kind: "seq-taken" }> };
    }
    throw new ConnectError("could not assign a sequence number; retry", Code.Unavailable);
  };

  /** Persists with a fresh seq, taking another when the seq turns out taken (only after the counter was lost). */
  const persist = async (row: Omit<StoredMessage, "seq">, mentions: readonly string[] = [], firstSeq?: number): Promise<{ stored: StoredMessage; duplicate: boolean }> => {
    const { stored, outcome } = await withFreshSeq(row, (stored) => commit.submit({ row: stored, mentions }), firstSeq);
    return outcome.kind === "duplicate" ? { stored: outcome.original, duplicate: true } : { stored, duplicate: false };
  };

  const result = (m: StoredMessage, duplicate: boolean): SendMessageResponse =>
    create(SendMessageResponseSchema, { conversationId: m.conversationId, seq: BigInt(m.seq), msgId: m.msgId, serverTime: timestampFromDate(m.createdAt), duplicate });

  /** Waits for a concurrent send of the same client_msg_id to finish and returns its result. */
  const awaitOriginal = async (key: string, seen?: string): Promise<SendMessageResponse> => {
    for (let i = 0; i < 60; i++) {
      const value = i === 0 && seen !== undefined ? seen : await kv.get(key);
      if (value === null) break;
      if (value !== "pending") {
        const r = JSON.parse(value) as { c: string; s: number; m: string; t: number };
        return create(SendMessageResponseSchema, { conversationId: r.c, seq: BigInt(r.s), msgId: r.m, serverTime: timestampFromDate(new Date(r.t)), duplicate: true });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new ConnectError("the same client_msg_id is being sent right now; retry", Code.Unavailable);
  };

  const pushEvent = async (appId: string, conversationId: string, kind: MessageEvent_Kind, message: Message, except: { userId: string; deviceId: string }) => {
    deps.delivery.send({ appId, userIds: await store.members(appId, conversationId), frame: { body: { case: "messageEvent", value: { kind, message } } }, exceptDevice: except });
  };

  /** Who a text message mentions: named members (never the sender), or every member for an owner's or admin's @all. */
  const mentionsOf = async (me: { appId: string; userId: string }, conversationId: string, content: MessageContent, members: readonly string[]): Promise<string[]> => {
    if (content.kind.case !== "text") return [];
    const text = content.kind.value;
    const groupId = groupOf(conversationId);
    if (text.mentionAll) {
      if (groupId === undefined) throw new ConnectError("mention_all is for group conversations", Code.InvalidArgument);
      const role = await deps.clients.client(GroupInternalService).isMember({ appId: me.appId, groupId, userId: me.userId });
      if (role.role !== GroupRole.OWNER && role.role !== GroupRole.ADMIN) throw new ConnectError("only the group's owner and admins may mention everyone", Code.PermissionDenied);
      return members.filter((u) => u !== me.userId);
    }
    const present = new Set(members);
    return text.mentionedUserIds.filter((u) => u !== me.userId && present.has(u));
  };

  const msg: ServiceImpl<typeof MsgService> = {
    async sendMessage(req, ctx) {
      const me = requireUser(ctx);
      if (sendLimits !== undefined) await sendLimits.limiter.take(sendLimits.of(me.appId, me.userId));
      const conversationId = req.target.case === "peerUserId" ? directConversationId(me.userId, req.target.value) : req.target.value!;
      if (req.target.case === "peerUserId" && req.target.value === me.userId) throw new ConnectError("you cannot message yourself", Code.InvalidArgument);
      const content = req.content!;
      if (content.kind.case === "system") throw new ConnectError("system messages are posted by the services, not by clients", Code.InvalidArgument);
      const members = await access.open(ctx, me.appId, me.userId, conversationId, true);
      const mentions = await mentionsOf(me, conversationId, content, members);
      const dedupKey = `dedup:${me.appId}:${me.userId}:${req.clientMsgId}`;
      // One kv round trip claims the client_msg_id and issues the seq.
      const claim = await deps.sequencer.claimAndNext(me.appId, conversationId, { key: dedupKey, value: "pending", ttlMs: dedupTtlMs });
      if (!claim.claimed) {
        const original = await awaitOriginal(dedupKey, claim.existing);
        // The id names one message: reused for another conversation, the new message would silently vanish.
        if (original.conversationId !== conversationId) {
          throw new ConnectError(`client_msg_id ${req.clientMsgId} was already used for a message in ${original.conversationId}; use a new id for a new message`, Code.AlreadyExists);
        }
        return original;
      }
      let sent: { stored: StoredMessage; duplicate: boolean };
      try {
        sent = await persist({
          appId: me.appId,
          conversationId,
          msgId: randomUUID(),
          clientMsgId: req.clientMsgId,
          senderId: me.userId,
          senderDeviceId: me.deviceId,
          contentType: contentType(content),
          body: toBinary(MessageContentSchema, content),
          searchText: searchText(content),
          createdAt: new Date(),
          editedAt: null,
          recalled: false,
        }, mentions, claim.counter);
      } catch (err) {
        await kv.del(dedupKey).catch(() => {});
        throw err;
      }
      const { stored, duplicate } = sent;
      if (groupOf(conversationId) !== undefined) {
        // A resent duplicate is published again: fan-out is at least once and clients drop what they have.
        try {
          await publishGroupMessage(me.appId, toMessage(stored));
        } catch (err) {
          await kv.del(dedupKey).catch(() => {});
          throw err;
        }
      }
      await kv.set(dedupKey, JSON.stringify({ c: stored.conversationId, s: stored.seq, m: stored.msgId, t: stored.createdAt.getTime() }), { ttlMs: dedupTtlMs });
      if (!duplicate && groupOf(conversationId) === undefined) {
        const message = toMessage(stored);
        deps.delivery.send({ appId: me.appId, userIds: members, frame: { body: { case: "message", value: message } }, exceptDevice: { userId: me.userId, deviceId: me.deviceId }, offlineMessage: message });
      }
      return result(stored, duplicate);
    },

    async syncMessages(req, ctx) {
      const me = requireUser(ctx);
      const { conversation, member } = await access.requireMember(me.appId, req.conversationId, me.userId);
      const limit = req.limit === 0 ? 50 : req.limit;
      const upTo = member.leftSeq ?? conversation.maxSeq;
      // A member reads from the message that added them (joinedSeq) up to the one that removed them (leftSeq).
      const rows = await store.after(me.appId, req.conversationId, Math.max(Number(req.afterSeq), member.joinedSeq - 1), limit + 1, upTo);
      const page = rows.slice(0, limit);
      const flags = await store.flags(me.userId, req.conversationId, page.map((m) => m.seq));
      return { messages: page.map((m) => toMessage(m, flags.get(m.seq))), maxSeq: BigInt(upTo), hasMore: rows.length > limit };
    },

    async listConversations(req, ctx) {
      const me = requireUser(ctx);
      const size = req.pageSize === 0 ? 50 : req.pageSize;
      const cursor = decodeCursor(req.pageToken, (v): v is { u: number; i: string } => typeof (v as { u?: unknown }).u === "number" && typeof (v as { i?: unknown }).i === "string");
      const rows = await store.listConversations(me.appId, me.userId, size + 1, cursor && { updatedAt: new Date(cursor.u), id: cursor.i });
      const page = rows.slice(0, size);
      const conversations: Conversation[] = page.map((s) => {
        const maxSeq = s.member.leftSeq ?? s.conversation.maxSeq;
        const single = s.conversation.type === 1;
        return {
          $typeName: "im.msg.v1.Conversation",
          conversationId: s.conversation.id,
          type: single ? ConversationType.SINGLE : ConversationType.GROUP,
          peerUserId: single ? (s.conversation.id.split(":").slice(1).find((id) => id !== me.userId) ?? "") : "",
          groupId: s.conversation.groupId ?? "",
          maxSeq: BigInt(maxSeq),
          lastReadSeq: BigInt(s.member.lastReadSeq),
          unreadCount: BigInt(Math.max(0, maxSeq - s.member.lastReadSeq)),
          unreadMentions: BigInt(s.unreadMentions),
          lastMessage: s.last ? toMessage(s.last) : undefined,
          muted: s.member.muted,
          starred: s.member.starred,
          updatedAt: timestampFromDate(s.conversation.updatedAt),
        };
      });
      const last = page[page.length - 1];
      return { conversations, nextPageToken: rows.length > size && last ? encodeCursor({ u: last.conversation.updatedAt.getTime(), i: last.conversation.id }) : "" };
    },

    async markRead(req, ctx) {
      const me = requireUser(ctx);
      await access.requireMember(me.appId, req.conversationId, me.userId);
      const lastReadSeq = await store.markRead(me.appId, req.conversationId, me.userId, Number(req.seq));
      // The other members see the receipt (not in large groups, where it would be noise); the reader's other
      // devices clear their unread count.
      const members = await store.members(me.appId, req.conversationId);
      deps.delivery.send({
        appId: me.appId,
        userIds: members.length > receiptMaxMembers ? [me.userId] : members,
        frame: { body: { case: "readReceipt", value: { conversationId: req.conversationId, userId: me.userId, lastReadSeq: BigInt(lastReadSeq), readAt: timestampFromDate(new Date()) } } },
        exceptDevice: { userId: me.userId, deviceId: me.deviceId },
      });
      return { lastReadSeq: BigInt(lastReadSeq) };
    },

    async recallMessage(req, ctx) {
      const { me, m } = await access.editable(ctx, req.conversationId, req.seq);
      const updated = await store.update(me.appId, req.conversationId, m.seq, { recalled: true, searchText: null });
      const message = toMessage(updated!);
      await pushEvent(me.appId, req.conversationId, MessageEvent_Kind.RECALLED, message, { userId: me.userId, deviceId: me.deviceId });
      return { message };
    },

    async editMessage(req, ctx) {
      const content = req.content!;
      const { me, m } = await access.editable(ctx, req.conversationId, req.seq);
      if (content.kind.case !== "text" || m.contentType !== 1) throw new ConnectError("only text messages can be edited, into text", Code.InvalidArgument);
      const updated = await store.update(me.appId, req.conversationId, m.seq, { body: toBinary(MessageContentSchema, content), searchText: searchText(content), editedAt: new Date() });
      const message = toMessage(updated!);
      await pushEvent(me.appId, req.conversationId, MessageEvent_Kind.EDITED, message, { userId: me.userId, deviceId: me.deviceId });
      return { message };
    },

    async setMessageFlags(req, ctx) {
      const me = requireUser(ctx);
      await access.requireMember(me.appId, req.conversationId, me.userId);
      // Read state moves with MarkRead and mentions are the server's: users set only STARRED (as the contract says).
      if ([...req.add, ...req.remove].some((f) => f !== MessageFlag.STARRED)) throw new ConnectError("only the starred flag can be set or cleared", Code.InvalidArgument);
      const bits = (flags: MessageFlag[]) => flags.reduce((b, f) => b | flagOf[f]!, 0);
      const updated = await store.setFlags(me.appId, me.userId, req.conversationId, req.seqs.map(Number), bits(req.add), bits(req.remove));
      return { updated };
    },

    async searchMessages(req, ctx) {
      const me = requireUser(ctx);
      if (req.conversationId !== "") await access.requireMember(me.appId, req.conversationId, me.userId);
      const size = req.pageSize === 0 ? 20 : req.pageSize;
      const offset = decodeCursor(req.pageToken, (v): v is { o: number } => Number.isInteger((v as { o?: unknown }).o) && (v as { o: number }).o >= 0)?.o ?? 0;
      const rows = await store.search(me.appId, me.userId, req.query, req.conversationId || undefined, size + 1, offset);
      return { messages: rows.slice(0, size).map((m) => toMessage(m)), nextPageToken: rows.length > size ? encodeCursor({ o: offset + size }) : "" };
    },
  };

  const internal: ServiceImpl<typeof MsgInternalService> = {
    async postSystemMessage(req) {
      const groupId = groupOf(req.conversationId);
      if (groupId === undefined || (req.groupId !== "" && req.groupId !== groupId)) {
        throw new ConnectError(`system messages go to group conversations ("g:<group id>"), not ${req.conversationId}`, Code.InvalidArgument);
      }
      const body = toBinary(MessageContentSchema, create(MessageContentSchema, { kind: { case: "system", value: req.content! } }));
      const row = {
        appId: req.appId,
        conversationId: req.conversationId,
        msgId: randomUUID(),
        clientMsgId: req.idempotencyKey,
        senderId: req.content!.actorUserId || systemSender,
        senderDeviceId: "",
        contentType: 4,
        body,
        searchText: null,
        createdAt: new Date(),
        editedAt: null,
        recalled: false,
      };
      const { stored, outcome } = await withFreshSeq(row, (stored) => store.applyMembership(stored, groupId, req.joinedUserIds, req.leftUserIds));
      if (outcome.kind === "unchanged") return {};
      const message = toMessage(outcome.kind === "duplicate" ? outcome.original : stored);
      const joined = outcome.kind === "applied" ? outcome.joined : [];
      const left = outcome.kind === "applied" ? outcome.left : [];
      // Caches drop the group before the message reaches the fan-out, which rereads the members anyway when
      // their seq moved; a retried duplicate publishes both again (consumers are idempotent).
      if (req.joinedUserIds.length + req.leftUserIds.length > 0) {
        await deps.bus.publish("membership_change", [
          { key: groupId, value: toBinary(MembershipChangeSchema, create(MembershipChangeSchema, { appId: req.appId, groupId, conversationId: req.conversationId, seq: message.seq })) },
        ]);
      }
      await publishGroupMessage(req.appId, message);
      return { message, joinedUserIds: [...joined], leftUserIds: [...left] };
    },
    async deliverGroupMessage(req) {
      const message = req.message!;
      return deps.delivery.deliverNow([
        { appId: req.appId, userIds: req.userIds, frame: messageFrame(message), exceptDevice: { userId: message.senderId, deviceId: message.senderDeviceId }, offlineMessage: message },
      ]);
    },
    async fetchOffline(req) {
      const limit = req.limit === 0 ? 500 : req.limit;
      const rows = await store.offline(req.appId, req.userId, limit + 1);
      return { messages: rows.slice(0, limit).map((r) => fromBinary(MessageSchema, r.payload)), hasMore: rows.length > limit };
    },
    async requeueOffline(req) {
      const now = new Date();
      await store.storeOffline(
        req.messages.map((m) => ({ appId: req.appId, userId: req.userId, conversationId: m.conversationId, seq: Number(m.seq), msgId: m.msgId, payload: toBinary(MessageSchema, m), createdAt: now })),
      );
      return {};
    },
    async ackOffline(req) {
      const removed = await store.deleteOffline(req.appId, req.userId, req.acks.map((a) => ({ conversationId: a.conversationId, seq: Number(a.seq) })));
      return { removed };
    },
  };
  return { msg, internal };
}
