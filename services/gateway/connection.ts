import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Kick_Reason, KickSchema, ServerFrameSchema, type ServerFrame } from "../../gen/im/gateway/v1/gateway_pb.js";
import type { Message } from "../../gen/im/msg/v1/msg_pb.js";
import type { Identity } from "../../mesh/identity.js";
import { ConversationOrder, type OrderOptions } from "./conversation-order.js";

/** A verified end user, as the gateway holds them. */
export type UserIdentity = Extract<Identity, { kind: "user" }>;

/** Frames waiting for a slow client beyond this many close its stream (it resumes by sync on reconnect). */
export const maxQueuedFrames = 2000;

/**
 * One device's stream: a bounded outbound queue the stream drains, and the way to end it with a kick frame.
 * Producers (pushes, send results) never wait on a slow client; when the queue is full the client is told it is
 * too slow and disconnected, so memory stays bounded whatever the client does.
 */
export class Connection {
  private queue: ServerFrame[] = [];
  /** Messages pushed to this device and not acknowledged yet, by `${conversation} ${seq}`. */
  private readonly unacked = new Map<string, Message>();
  /** Message frames in seq order per conversation, once each (DESIGN.md §7.8). */
  readonly order: ConversationOrder;
  private wake: (() => void) | undefined;
  private ended = false;
  private readonly closeListeners: (() => void)[] = [];
  lastHeard = Date.now();

  constructor(
    readonly identity: UserIdentity,
    /** The client's address, forwarded for per-address limits. */
    readonly forwardedFor: string,
    /** Where gaps in a conversation are filled from (default: nowhere; held messages go out after the wait). */
    order: OrderOptions = { fetchAfter: async () => [] },
  ) {
    this.order = new ConversationOrder((m) => this.emit(m), order);
  }

  get key(): string {
    return connectionKey(this.identity.appId, this.identity.userId, this.identity.deviceId);
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Queues a frame; false when the stream is gone or has just been closed for being too slow. */
  send(frame: MessageInitShape<typeof ServerFrameSchema>): boolean {
    if (this.ended) return false;
    if (this.queue.length + this.order.held >= maxQueuedFrames) {
      this.kick(Kick_Reason.SLOW_CONSUMER, "too many frames waiting for this client; reconnect and sync", true);
      return false;
    }
    this.queue.push(create(ServerFrameSchema, frame));
    this.wake?.();
    return true;
  }

  /**
   * Takes a pushed frame: a message goes through the conversation order (sent in seq order, once, and remembered
   * until the device acknowledges it); `replay` marks the offline inbox, which goes before live messages.
   */
  deliver(frame: MessageInitShape<typeof ServerFrameSchema>, options: { replay?: boolean } = {}): boolean {
    if (this.ended) return false;
    const body = frame.body;
    if (body?.case !== "message" || body.value === undefined) return this.send(frame);
    this.order.offer(body.value as Message, options);
    return !this.ended;
  }

  private emit(m: Message): boolean {
    if (!this.send({ body: { case: "message", value: m } })) return false;
    if (this.unacked.size >= maxQueuedFrames) this.unacked.delete(this.unacked.keys().next().value!);
    this.unacked.set(`${m.conversationId} ${m.seq}`, m);
    return true;
  }

  /** The device has everything of the conversation up to seq. */
  acked(conversationId: string, seq: bigint): void {
    for (const [key, m] of this.unacked) if (m.conversationId === conversationId && m.seq <= seq) this.unacked.delete(key);
  }

  /** What was pushed and never acknowledged, or still held behind a gap (once the stream is over), oldest first. */
  takeUnacked(): Message[] {
    const left = [...this.unacked.values(), ...this.order.stop()];
    this.unacked.clear();
    return left;
  }

  /** Sends a kick frame after what is queued, then ends the stream. */
  kick(reason: Kick_Reason, message: string, reconnect: boolean, reconnectAfterMs = 0): void {
    if (this.ended) return;
    // The kick goes out even when the queue is full: it replaces the frames the client will sync anyway.
    if (reason === Kick_Reason.SLOW_CONSUMER) this.queue = [];
    this.queue.push(create(ServerFrameSchema, { body: { case: "kick", value: create(KickSchema, { reason, message, reconnect, reconnectAfterMs }) } }));
    this.close();
  }

  /** Ends the stream once the queue is drained. */
  close(): void {
    if (!this.ended) {
      this.ended = true;
      for (const listener of this.closeListeners.splice(0)) listener();
    }
    this.wake?.();
  }

  /** Runs once when the connection is closed (kicked, replaced, drained, or its stream gone). */
  onClose(listener: () => void): void {
    if (this.ended) listener();
    else this.closeListeners.push(listener);
  }

  /** The frames to write, until the connection ends. */
  async *frames(): AsyncGenerator<ServerFrame> {
    for (;;) {
      while (this.queue.length > 0) yield this.queue.shift()!;
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

/** The key of a device's connection in the hub. */
export function connectionKey(appId: string, userId: string, deviceId: string): string {
  return `${appId}/${userId}/${deviceId}`;
}
