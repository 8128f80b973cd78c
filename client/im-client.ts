// The TypeScript SDK: signs in, keeps one stream open (reconnecting with jittered backoff and refreshing the token),
// and hands the app each message exactly once and in seq order per conversation, filling gaps by sync.
// It imports only gen/ and the Connect client packages, so it ships without server code.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { AuthService, Platform, type Session } from "../gen/im/auth/v1/auth_pb.js";
import { GatewayService, Kick_Reason, type Kick, type Presence, type ServerFrame, type SendResult, type TypingUpdate } from "../gen/im/gateway/v1/gateway_pb.js";
import { GroupService } from "../gen/im/group/v1/group_pb.js";
import { MessageSchema, MsgService, type Message, type MessageEvent, type ReadReceipt, type SendMessageResponse } from "../gen/im/msg/v1/msg_pb.js";
import { ConversationOrder } from "./conversation-order.js";
import { grpcTransport } from "./grpc-transport.js";
import { RequestFrames } from "./request-frames.js";
import { SessionTokens } from "./session-tokens.js";

/** How to reach im-mesh and who signs in. */
export interface ImClientOptions {
  /** The gateway, e.g. http://127.0.0.1:8080 (HTTP/2 with prior knowledge). */
  readonly baseUrl: string;
  readonly apiKey: string;
  /** The device this client is; a second stream of the same device replaces the first. */
  readonly deviceId?: string;
  /** Alternative gateways to reconnect to when the current one is gone. */
  readonly fallbackUrls?: readonly string[];
  /** Builds the transport to a gateway URL (default: gRPC over HTTP/2); tests pass an in-memory one. */
  readonly transport?: (baseUrl: string) => Transport;
}

/** What the client tells the app. */
export interface ImClientEvents {
  /** A message, once per msg id, in seq order within its conversation. */
  message?(m: Message): void;
  receipt?(r: ReadReceipt): void;
  event?(e: MessageEvent): void;
  /** A followed user came online or went offline (see followPresence). */
  presence?(p: Presence): void;
  /** Someone in a conversation started or stopped typing; treat "typing" as stale after a few seconds. */
  typing?(t: TypingUpdate): void;
  /** Connection state changes, for a status line. */
  state?(state: "connecting" | "connected" | "disconnected", detail?: string): void;
}

/** An error a send frame came back with. */
export class SendError extends Error {
  constructor(
    readonly code: Code,
    message: string,
  ) {
    super(message);
    this.name = "SendError";
  }
}

interface Outgoing {
  readonly frameId: bigint;
  readonly target: { case: "conversationId" | "peerUserId"; value: string };
  readonly clientMsgId: string;
  readonly text: string;
  resolve(r: SendMessageResponse): void;
  reject(e: unknown): void;
}

/** A signed-in user's connection to im-mesh. */
export class ImClient {
  private readonly tokens = new SessionTokens(() => this.auth);
  private urls: string[];
  private urlIndex = 0;
  private transport: Transport;
  private readonly transports = new Map<string, Transport>();
  private auth: Client<typeof AuthService>;
  private msg: Client<typeof MsgService>;
  private group: Client<typeof GroupService>;
  private running = false;
  /** Counts connect() calls: a loop of an earlier one (before a close()) retires instead of reconnecting. */
  private generation = 0;
  private up: Promise<void> | undefined;
  private endBackoff: (() => void) | undefined;
  private stream: RequestFrames | undefined;
  private nextFrameId = 1n;
  private readonly unsent = new Map<bigint, Outgoing>();
  private readonly order: ConversationOrder;
  /** Highest seq handed to the app per conversation. */
  readonly lastSeq: Map<string, bigint>;
  private followed: string[] | undefined;

  constructor(
    private readonly options: ImClientOptions,
    private readonly on: ImClientEvents = {},
  ) {
    this.urls = [options.baseUrl, ...(options.fallbackUrls ?? [])];
    this.transport = (options.transport ?? grpcTransport)(options.baseUrl);
    this.transports.set(options.baseUrl, this.transport);
    this.auth = createClient(AuthService, this.transport);
    this.msg = createClient(MsgService, this.transport);
    this.group = createClient(GroupService, this.transport);
    this.order = new ConversationOrder(
      {
        syncMessages: async (conversationId, afterSeq) => {
          await this.freshTokenIfPossible();
          return this.msg.syncMessages({ conversationId, afterSeq, limit: 100 }, { headers: this.headers() });
        },
        listConversations: async (pageToken) => {
          await this.freshTokenIfPossible();
          return this.msg.listConversations({ pageSize: 100, pageToken }, { headers: this.headers() });
        },
      },
      { message: (m) => this.on.message?.(m), ack: (m) => this.ack(m), keepTrying: () => this.running },
    );
    this.lastSeq = this.order.lastSeq;
  }

  get userId(): string {
    return this.tokens.session?.userId ?? "";
  }

  get deviceId(): string {
    return this.tokens.session?.deviceId ?? "";
  }

  private useUrl(url: string): void {
    // One transport (one HTTP/2 session) per URL, reused: a new one per reconnect attempt would leave the earlier
    // sessions open, and a client cycling through its URLs would hold ever more connections on both sides.
    let transport = this.transports.get(url);
    if (transport === undefined) this.transports.set(url, (transport = (this.options.transport ?? grpcTransport)(url)));
    this.transport = transport;
    this.auth = createClient(AuthService, this.transport);
    this.msg = createClient(MsgService, this.transport);
    this.group = createClient(GroupService, this.transport);
  }

  private headers(): { authorization: string } {
    return this.tokens.headers();
  }

  /** Signs in by username or email. */
  async login(login: string, password: string): Promise<Session> {
    const res = await this.auth.login({
      apiKey: this.options.apiKey,
      login: login.includes("@") ? { case: "email", value: login } : { case: "username", value: login },
      password,
      device: { deviceId: this.options.deviceId ?? randomUUID(), name: "im-mesh client", platform: Platform.CLI },
    });
    this.tokens.session = res.session!;
    return res.session!;
  }

  /** Takes over a session signed in elsewhere (kept by the app between runs, or issued in bulk by a load test). */
  restore(session: Session): void {
    this.tokens.session = session;
  }

  /** Creates an account in the app and signs this device in with it. */
  async register(username: string, password: string, profile: { email?: string; displayName?: string } = {}): Promise<Session> {
    const res = await this.auth.register({
      apiKey: this.options.apiKey,
      username,
      password,
      ...profile,
      device: { deviceId: this.options.deviceId ?? randomUUID(), name: "im-mesh client", platform: Platform.CLI },
    });
    this.tokens.session = res.session!;
    return res.session!;
  }

  /**
   * Rotates the session's tokens now, after any refresh in flight (the refresh token is single-use: two refreshes
   * with the same one end the session); rejects when the session was revoked.
   */
  async refreshNow(): Promise<void> {
    if (!this.tokens.session) throw new Error("not signed in");
    await this.tokens.rotate();
  }

  /** Before a unary call: a token about to expire is refreshed first; if that fails, the call tries the old one. */
  private async freshTokenIfPossible(): Promise<void> {
    await this.tokens.fresh().catch(() => {});
  }

  /** The typed msg and group clients with this user's token, for the unary API (ListConversations, MarkRead, …). */
  get api(): { auth: Client<typeof AuthService>; msg: Client<typeof MsgService>; group: Client<typeof GroupService>; headers: () => { authorization: string } } {
    return { auth: this.auth, msg: this.msg, group: this.group, headers: () => this.headers() };
  }

  /**
   * Opens the stream and keeps it open until close(); resolves once the first stream is up. While connected or
   * connecting it only waits for that: one loop per client, as a second stream of the device would replace the first.
   */
  connect(): Promise<void> {
    if (this.running && this.up) return this.up;
    this.running = true;
    const generation = ++this.generation;
    let first!: () => void;
    this.up = new Promise<void>((resolve) => (first = resolve));
    void this.loop(generation, first);
    return this.up;
  }

  private async loop(generation: number, onFirstConnect: () => void): Promise<void> {
    let attempt = 0;
    const live = () => this.running && this.generation === generation;
    while (live()) {
      this.on.state?.("connecting");
      let reconnectAfter = 0;
      try {
        await this.tokens.fresh();
        reconnectAfter = await this.runStream(generation, () => {
          attempt = 0;
          onFirstConnect();
        });
      } catch (err) {
        if (this.generation !== generation) return;
        const ce = ConnectError.from(err);
        this.on.state?.("disconnected", ce.rawMessage);
        // Another gateway may be up when this one is not.
        if (ce.code === Code.Unavailable || ce.code === Code.Unknown || ce.code === Code.Internal) {
          this.urlIndex = (this.urlIndex + 1) % this.urls.length;
          this.useUrl(this.urls[this.urlIndex]!);
        }
      }
      if (!live()) return;
      attempt++;
      const backoff = Math.max(reconnectAfter, Math.floor(Math.random() * Math.min(10_000, 200 * 2 ** Math.min(attempt, 6))));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, backoff);
        this.endBackoff = () => (clearTimeout(timer), resolve());
      });
    }
  }

  /**
   * One stream's life; returns the delay the server asked for before reconnecting. A stream of a retired loop
   * (connect() was called again after close()) is read to its end, but neither its welcome nor its kick nor its end
   * touches the client's current stream or state.
   */
  private async runStream(generation: number, connected: () => void): Promise<number> {
    const current = () => this.generation === generation;
    const abort = new AbortController();
    const stream = new RequestFrames();
    this.stream = stream;
    const heartbeat = setInterval(() => stream.push({ frame: { body: { case: "ping", value: { clientTimeMs: BigInt(Date.now()) } } } }), 10_000);
    let reconnectAfter = 0;
    try {
      const responses = createClient(GatewayService, this.transport).connect(stream, { headers: this.headers(), signal: abort.signal });
      for await (const res of responses) {
        const frame = res.frame;
        if (!frame) continue;
        if (frame.body.case === "welcome" && current()) {
          this.on.state?.("connected", frame.body.value.gatewayId);
          connected();
          // Sends that never got a result go again with the same client_msg_id: the server dedups them.
          for (const o of this.unsent.values()) this.pushSend(o);
          // A new stream follows what the previous one followed.
          if (this.followed) stream.push({ frame: { body: { case: "presence", value: { userIds: this.followed } } } });
          void this.resume().catch(() => {});
        }
        const kick = this.handle(frame);
        if (kick) {
          reconnectAfter = kick.reconnectAfterMs;
          if (!kick.reconnect && kick.reason !== Kick_Reason.DRAINING && kick.reason !== Kick_Reason.SLOW_CONSUMER && current()) {
            this.running = false;
            this.on.state?.("disconnected", `kicked: ${kick.message}`);
          }
        }
      }
      if (current()) this.on.state?.("disconnected", "stream ended");
    } finally {
      clearInterval(heartbeat);
      stream.end();
      if (this.stream === stream) this.stream = undefined;
      abort.abort();
    }
    return reconnectAfter;
  }

  private handle(frame: ServerFrame): Kick | undefined {
    switch (frame.body.case) {
      case "message":
        this.order.accept(frame.body.value);
        return undefined;
      case "sendResult":
        this.settle(frame.replyTo, frame.body.value);
        return undefined;
      case "readReceipt":
        this.on.receipt?.(frame.body.value);
        return undefined;
      case "messageEvent":
        this.on.event?.(frame.body.value);
        return undefined;
      case "presence":
        this.on.presence?.(frame.body.value);
        return undefined;
      case "typing":
        this.on.typing?.(frame.body.value);
        return undefined;
      case "kick":
        return frame.body.value;
      default:
        return undefined;
    }
  }

  private settle(frameId: bigint, result: SendResult): void {
    const o = this.unsent.get(frameId);
    if (!o) return;
    this.unsent.delete(frameId);
    if (result.result.case === "ok") {
      const ok = result.result.value;
      // Our own message takes its place in the conversation's order without being handed back to the app.
      this.order.accept(create(MessageSchema, { conversationId: ok.conversationId, seq: ok.seq, msgId: ok.msgId, clientMsgId: o.clientMsgId, senderId: this.userId, senderDeviceId: this.deviceId, content: { kind: { case: "text", value: { text: o.text } } }, createdAt: ok.serverTime }), false);
      o.resolve(ok);
    }
    else {
      const e = result.result.value;
      const code = (e?.code ?? Code.Unknown) as Code;
      // Unavailable means "try again": keep it queued for the next stream.
      if (code === Code.Unavailable) {
        this.unsent.set(frameId, o);
        setTimeout(() => this.stream && this.pushSend(o), 500);
        return;
      }
      o.reject(new SendError(code, e?.message ?? "send failed"));
    }
  }

  private ack(m: Message): void {
    this.stream?.push({ frame: { body: { case: "ack", value: { conversationId: m.conversationId, seq: m.seq } } } });
  }

  /**
   * Fetches what the conversation holds after the last seq handed out, until caught up; asked for while a sync of
   * the conversation is in flight, it runs again after that one.
   */
  sync(conversationId: string): Promise<void> {
    return this.order.sync(conversationId);
  }

  /**
   * Catches up after (re)connecting: every conversation whose max seq moved past what this client has seen is
   * synced. Conversations never seen before start from their current end, except when `history` is set.
   */
  resume(history = false): Promise<void> {
    return this.order.resume(history);
  }

  /**
   * Follows the presence of these users (and of every 1:1 peer, implicitly); the state of each comes at once,
   * then every change. Replaces what was followed before, and is kept across reconnects.
   */
  followPresence(userIds: readonly string[]): void {
    this.followed = [...userIds];
    this.stream?.push({ frame: { body: { case: "presence", value: { userIds: this.followed } } } });
  }

  /** Tells the conversation's other members that this user is (or stopped) typing; the server rate-limits it. */
  sendTyping(conversationId: string, typing = true): void {
    this.stream?.push({ frame: { body: { case: "typing", value: { conversationId, typing } } } });
  }

  private pushSend(o: Outgoing): void {
    this.stream?.push({ frame: { frameId: o.frameId, body: { case: "send", value: { clientMsgId: o.clientMsgId, target: o.target, content: { kind: { case: "text", value: { text: o.text } } } } } } });
  }

  /**
   * Sends a text to a conversation or a peer user; resolves with the seq once it is durable. While disconnected
   * it waits and goes out on the next stream with the same client_msg_id, so it is stored once.
   */
  sendText(to: { conversationId: string } | { peerUserId: string }, text: string, clientMsgId: string = randomUUID()): Promise<SendMessageResponse> {
    return new Promise((resolve, reject) => {
      const target = "conversationId" in to ? { case: "conversationId" as const, value: to.conversationId } : { case: "peerUserId" as const, value: to.peerUserId };
      const o: Outgoing = { frameId: this.nextFrameId++, target, clientMsgId, text, resolve, reject };
      this.unsent.set(o.frameId, o);
      this.pushSend(o);
    });
  }

  /** Closes the stream for good. */
  close(): void {
    this.running = false;
    this.up = undefined;
    this.endBackoff?.();
    this.stream?.end();
    for (const o of this.unsent.values()) o.reject(new SendError(Code.Canceled, "the client was closed"));
    this.unsent.clear();
  }
}
