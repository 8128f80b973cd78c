import type { TypingUpdate } from "../../gen/im/gateway/v1/gateway_pb.js";
import { GroupInternalService } from "../../gen/im/group/v1/group_pb.js";
import type { MeshClients } from "../../mesh/service-client.js";
import type { Delivery } from "../msg/delivery.js";
import { directMembers } from "../msg/msg-service.js";
import type { Connection } from "./connection.js";

/** What the relay works with. */
export interface TypingDeps {
  readonly clients: MeshClients;
  readonly delivery: Delivery;
  /** Groups with more members than this get no typing frames (default 100). */
  readonly maxGroupMembers?: number;
  /** One "typing" per sender and conversation per this long (default 3 s); "stopped" passes once after it. */
  readonly intervalMs?: number;
}

const memberCacheMs = 10_000;

/**
 * Relays "is typing" to the other members of a conversation who are online (never stored, never queued for
 * offline users): at most one per sender and conversation per interval, only from members, and not in large groups.
 * Frames it drops are dropped silently: typing is a hint, not a request.
 */
export class TypingRelay {
  private readonly last = new Map<string, { at: number; typing: boolean }>();
  private readonly groups = new Map<string, { at: number; memberIds: string[] }>();
  private readonly maxGroupMembers: number;
  private readonly intervalMs: number;

  constructor(private readonly deps: TypingDeps) {
    this.maxGroupMembers = deps.maxGroupMembers ?? 100;
    this.intervalMs = deps.intervalMs ?? 3_000;
  }

  /** The members who should see the sender typing, or undefined when the sender may not signal there. */
  private async recipients(appId: string, userId: string, conversationId: string): Promise<string[] | undefined> {
    const direct = directMembers(conversationId);
    if (direct) return direct[0] === userId ? [direct[1]] : direct[1] === userId ? [direct[0]] : undefined;
    if (!conversationId.startsWith("g:")) return undefined;
    const groupId = conversationId.slice(2);
    const key = `${appId}/${groupId}`;
    let cached = this.groups.get(key);
    if (cached === undefined || Date.now() - cached.at > memberCacheMs) {
      const internal = this.deps.clients.client(GroupInternalService);
      const res = await internal.getMemberIds({ appId, groupId }).catch(() => undefined);
      if (res === undefined) return undefined;
      cached = { at: Date.now(), memberIds: res.userIds };
      if (this.groups.size >= 10_000) this.groups.delete(this.groups.keys().next().value!);
      this.groups.set(key, cached);
    }
    if (!cached.memberIds.includes(userId) || cached.memberIds.length > this.maxGroupMembers) return undefined;
    return cached.memberIds.filter((u) => u !== userId);
  }

  async relay(conn: Connection, update: TypingUpdate): Promise<void> {
    const { appId, userId } = conn.identity;
    const key = `${appId}/${userId}/${update.conversationId}`;
    const previous = this.last.get(key);
    const now = Date.now();
    if (update.typing && previous?.typing && now - previous.at < this.intervalMs) return;
    if (!update.typing && !previous?.typing) return;
    const to = await this.recipients(appId, userId, update.conversationId);
    if (to === undefined || to.length === 0) return;
    if (this.last.size >= 100_000) this.last.delete(this.last.keys().next().value!);
    this.last.set(key, { at: now, typing: update.typing });
    this.deps.delivery.send({
      appId,
      userIds: to,
      frame: { body: { case: "typing", value: { conversationId: update.conversationId, userId, typing: update.typing } } },
    });
  }
}
