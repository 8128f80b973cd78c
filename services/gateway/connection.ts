import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Kick_Reason, KickSchema, ServerFrameSchema, type ServerFrame } from "../../gen/im/gateway/v1/gateway_pb.js";
import type { Message } from "../../gen/im/msg/v1/msg_pb.js";
import type { Identity } from "../../mesh/identity.js";

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
  private wake: (() => void) | undefined;
  private ended = false;
  lastHeard = Date.now();

  constructor(
    readonly identity: UserIdentity,
    /** The client's bearer credential, forwarded on the calls made for it. */
    readonly authorization: string,
    /** The client's address, forwarded for per-address limits. */
    readonly forwardedFor: string,
  ) {}

  get key(): string {
    return connectionKey(this.identity.appId, this.identity.userId, this.identity.deviceId);
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Queues a frame; false when the stream is gone or has just been closed for being too slow. */
  send(frame: MessageInitShape<typeof ServerFrameSchema>): boolean {
    if (this.ended) return false;
    if (this.queue.length >= maxQueuedFrames) {
      this.kick(Kick_Reason.SLOW_CONSUMER, "too many frames waiting for this client; reconnect and sync", true);
      return false;
    }
    this.queue.push(create(ServerFrameSchema, frame));
    this.wake?.();
    return true;
  }

  /** Queues a pushed message and remembers it until the device acknowledges it. */
  deliver(frame: MessageInitShape<typeof ServerFrameSchema>): boolean {
    const sent = this.send(frame);
    const body = frame.body;
    if (sent && body?.case === "message" && body.value) {
      const m = body.value as Message;
      if (this.unacked.size >= maxQueuedFrames) this.unacked.delete(this.unacked.keys().next().value!);
      this.unacked.set(`${m.conversationId} ${m.seq}`, m);
    }
    return sent;
  }

  /** The device has everything of the conversation up to seq. */
  acked(conversationId: string, seq: bigint): void {
    for (const [key, m] of this.unacked) if (m.conversationId === conversationId && m.seq <= seq) this.unacked.delete(key);
  }

  /** What was pushed and never acknowledged (once the stream is over), oldest first. */
  takeUnacked(): Message[] {
    const left = [...this.unacked.values()];
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
    this.ended = true;
    this.wake?.();
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
