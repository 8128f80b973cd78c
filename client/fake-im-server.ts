// An in-memory im-mesh for SDK tests (Connect's router transport): a store per conversation, one bidi stream per
// connect, single-use refresh tokens, and hooks that hold a call until a test lets it go, so races are staged by
// events instead of by timing. It imports only gen/ and @connectrpc/connect, like the SDK it stands in front of.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport, type HandlerContext, type Transport } from "@connectrpc/connect";
import { AuthService, SessionSchema, type Session } from "../gen/im/auth/v1/auth_pb.js";
import { GatewayService, type ClientFrame, type ServerFrameSchema } from "../gen/im/gateway/v1/gateway_pb.js";
import { MessageSchema, MsgService, type Message } from "../gen/im/msg/v1/msg_pb.js";

type FrameInit = MessageInitShape<typeof ServerFrameSchema>;

/** Lets tests wait for what the fake server or the client reports, re-checking a condition on each report. */
export class Changes {
  private readonly waiters = new Set<() => void>();

  notify(): void {
    for (const check of [...this.waiters]) check();
  }

  /** Resolves once `condition()` holds after some report; rejects after `timeoutMs` (the failure, not the wait). */
  until(what: string | (() => string), condition: () => boolean, timeoutMs = 3000): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const stop = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      const check = () => {
        if (!condition()) return;
        stop();
        resolve();
      };
      const timer = setTimeout(() => {
        stop();
        reject(new Error(`timed out waiting for ${typeof what === "string" ? what : what()}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }
}

/** Lets a held call answer, so a test decides when the second half of a race happens. */
export interface Gate {
  open(): void;
}

function gate(): Gate & { readonly opened: Promise<void> } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

/** One Connect stream as the fake gateway sees it, so tests push frames and read what the client sent. */
export class FakeStream {
  readonly received: ClientFrame[] = [];
  /** The client stopped sending (ended or aborted its side). */
  requestsEnded = false;
  /** The response side is over: the client read past its last frame, or the call was aborted. */
  finished = false;
  private readonly queue: FrameInit[] = [];
  private ended = false;
  private wake: (() => void) | undefined;

  constructor(
    readonly id: number,
    private readonly changes: Changes,
  ) {}

  push(frame: FrameInit): void {
    this.queue.push(frame);
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *frames(signal: AbortSignal): AsyncGenerator<{ frame: FrameInit }> {
    signal.addEventListener("abort", () => this.end(), { once: true });
    try {
      for (;;) {
        while (this.queue.length > 0) yield { frame: this.queue.shift()! };
        if (this.ended) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      this.finished = true;
      this.changes.notify();
    }
  }

  async read(requests: AsyncIterable<{ frame?: ClientFrame }>): Promise<void> {
    try {
      for await (const r of requests) {
        if (r.frame) this.received.push(r.frame);
        this.changes.notify();
      }
    } catch {
      // An aborted call ends the request side too.
    }
    this.requestsEnded = true;
    this.changes.notify();
  }
}

/** Builds the fake store's messages, with msg ids tests can name. */
export function textMessage(conversationId: string, seq: number): Message {
  return create(MessageSchema, { conversationId, seq: BigInt(seq), msgId: `${conversationId}#${seq}`, senderId: "peer", content: { kind: { case: "text", value: { text: `m${seq}` } } } });
}

/**
 * The fake deployment, so SDK races are tested without servers: what it stores, what it was asked, and hooks to
 * hold or fail calls.
 */
export class FakeImServer {
  readonly changes = new Changes();
  readonly streams: FakeStream[] = [];
  /** Messages by conversation, in seq order; `hidden` ones are counted in max_seq but never returned by sync. */
  private readonly stored = new Map<string, Message[]>();
  readonly hidden = new Set<string>();
  readonly syncCalls: { conversationId: string; afterSeq: bigint; authorization: string }[] = [];
  readonly listCalls: { authorization: string }[] = [];
  readonly refreshCalls: string[] = [];
  /** How many ListConversations calls still fail with Unavailable, as under a reconnect storm. */
  failLists = 0;
  /** Runs when a stream opens, before its welcome. */
  onOpen: ((stream: FakeStream) => Promise<void> | void) | undefined;
  private readonly gates = new Map<string, Promise<void>>();
  private readonly validTokens = new Set<string>(["at-0"]);
  private refreshToken = "rt-0";
  private issued = 0;
  private ended = false;
  readonly transport: Transport;

  constructor() {
    this.transport = createRouterTransport((router) => {
      router.service(AuthService, { refreshToken: (req) => this.refresh(req.refreshToken) });
      router.service(GatewayService, { connect: (requests, ctx) => this.connect(requests, ctx) });
      router.service(MsgService, {
        syncMessages: async (req, ctx) => {
          const authorization = this.authorize(ctx);
          const call = this.syncCalls.push({ conversationId: req.conversationId, afterSeq: req.afterSeq, authorization }) - 1;
          // The store is read when the call arrives; a held call answers later with what it read then.
          const all = this.stored.get(req.conversationId) ?? [];
          const maxSeq = all.at(-1)?.seq ?? 0n;
          const after = all.filter((m) => m.seq > req.afterSeq && !this.hidden.has(m.msgId));
          const limit = req.limit === 0 ? 50 : req.limit;
          this.changes.notify();
          await this.gates.get(`sync ${call}`);
          return { messages: after.slice(0, limit), maxSeq, hasMore: after.length > limit };
        },
        listConversations: async (_req, ctx) => {
          const authorization = this.authorize(ctx);
          const call = this.listCalls.push({ authorization }) - 1;
          const conversations = [...this.stored].map(([conversationId, all]) => ({ conversationId, maxSeq: all.at(-1)?.seq ?? 0n }));
          this.changes.notify();
          await this.gates.get(`list ${call}`);
          if (this.failLists > 0) {
            this.failLists--;
            throw new ConnectError("overloaded", Code.Unavailable);
          }
          return { conversations, nextPageToken: "" };
        },
      });
    });
  }

  /** The session the client restores: access token at-0 (valid for `accessMs`) and refresh token rt-0. */
  session(accessMs = 15 * 60_000): Session {
    return create(SessionSchema, { appId: "app", userId: "me", deviceId: "phone", tokens: { accessToken: "at-0", accessExpiresAt: timestampFromDate(new Date(Date.now() + accessMs)), refreshToken: "rt-0" } });
  }

  /** Stores messages; a message is stored before it is pushed, as im-mesh does. */
  store(conversationId: string, ...seqs: number[]): Message[] {
    const all = this.stored.get(conversationId) ?? [];
    this.stored.set(conversationId, all);
    const added = seqs.map((seq) => textMessage(conversationId, seq));
    all.push(...added);
    all.sort((a, b) => Number(a.seq - b.seq));
    return added;
  }

  /** Pushes a stored message on the newest stream. */
  push(conversationId: string, seq: number): void {
    const m = this.stored.get(conversationId)?.find((x) => x.seq === BigInt(seq));
    if (!m) throw new Error(`message ${seq} of ${conversationId} is not stored`);
    this.stream().push({ body: { case: "message", value: m } });
  }

  /**
   * Pushes a typing frame; the client handles frames in order, so once the app has heard it, every frame pushed
   * before it has been handled.
   */
  pushBarrier(conversationId: string): void {
    this.stream().push({ body: { case: "typing", value: { conversationId, userId: "peer", typing: true } } });
  }

  stream(): FakeStream {
    const s = this.streams.at(-1);
    if (!s) throw new Error("no stream is open");
    return s;
  }

  /** Holds the n-th call (from 0) of SyncMessages, ListConversations or RefreshToken until the gate is opened. */
  hold(kind: "sync" | "list" | "refresh", n: number): Gate {
    const g = gate();
    this.gates.set(`${kind} ${n}`, g.opened);
    return g;
  }

  /** Makes an access token unusable, as time passing would. */
  expire(accessToken: string): void {
    this.validTokens.delete(accessToken);
  }

  private authorize(ctx: HandlerContext): string {
    const authorization = ctx.requestHeader.get("authorization") ?? "";
    if (this.ended || !this.validTokens.has(authorization.replace(/^Bearer /, ""))) throw new ConnectError("invalid or expired access token", Code.Unauthenticated);
    return authorization;
  }

  private async refresh(token: string): Promise<{ session: Session }> {
    const call = this.refreshCalls.push(token) - 1;
    this.changes.notify();
    // Single use, as the auth service does: a second use of a token ends the session (a replay).
    if (token !== this.refreshToken || this.ended) {
      this.ended = true;
      throw new ConnectError("this refresh token was already used; the session has been ended, sign in again", Code.Unauthenticated);
    }
    this.refreshToken = "";
    await this.gates.get(`refresh ${call}`);
    if (this.ended) throw new ConnectError("the session has ended: sign in again", Code.Unauthenticated);
    this.issued++;
    this.refreshToken = `rt-${this.issued}`;
    this.validTokens.add(`at-${this.issued}`);
    const s = this.session();
    s.tokens!.accessToken = `at-${this.issued}`;
    s.tokens!.refreshToken = this.refreshToken;
    return { session: s };
  }

  private async *connect(requests: AsyncIterable<{ frame?: ClientFrame }>, ctx: HandlerContext): AsyncGenerator<{ frame: FrameInit }> {
    this.authorize(ctx);
    const stream = new FakeStream(this.streams.length + 1, this.changes);
    this.streams.push(stream);
    void stream.read(requests);
    this.changes.notify();
    await this.onOpen?.(stream);
    stream.push({ body: { case: "welcome", value: { gatewayId: "fake", heartbeatIntervalMs: 30_000 } } });
    yield* stream.frames(ctx.signal);
  }
}
