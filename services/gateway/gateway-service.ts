import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import { Gauge, type Registry as Metrics } from "prom-client";
import {
  type ClientFrame,
  ClientFrameSchema,
  type FrameErrorSchema,
  type GatewayService,
  Kick_Reason,
  PushService,
  type ServerFrameSchema,
} from "../../gen/im/gateway/v1/gateway_pb.js";
import { MsgInternalService, MsgService } from "../../gen/im/msg/v1/msg_pb.js";
import { onBehalfOf } from "../../mesh/acting-for.js";
import { requireUser } from "../../mesh/interceptors/auth-interceptor.js";
import { validationError } from "../../mesh/interceptors/validation-interceptor.js";
import { encodeRoute, kickDevice, routeKey } from "../../mesh/routes.js";
import { destroyTransport, nodeRequestKey } from "../../mesh/server.js";
import type { MeshClients } from "../../mesh/service-client.js";
import type { Registration, Registry } from "../../platform/registry/registry.js";
import { Connection, connectionKey } from "./connection.js";
import { maxFollowed, type PresenceTracker } from "./presence.js";
import type { TypingRelay } from "./typing.js";

/** What the gateway handlers work with. */
export interface GatewayDeps {
  readonly gatewayId: string;
  readonly clients: MeshClients;
  /** Where a device's earlier route is read, to kick its stream on another gateway. */
  readonly registry: Registry;
  /** Routes are attached to this registration, so they vanish with the gateway's lease. */
  readonly registration: () => Promise<Registration>;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** Heartbeat period announced to clients; a stream silent for three of them is closed (default 30 s). */
  readonly heartbeatMs?: number;
  /**
   * How long a closed connection may take to finish writing (its kick, its queue) before its transport is torn
   * down and it is cleaned up anyway (default: the heartbeat period, at most 5 s).
   */
  readonly closeGraceMs?: number;
  /** How long a gap in a conversation is waited for before held messages go out (default 1 s). */
  readonly gapWaitMs?: number;
  /** Presence frames for the users a stream follows. */
  readonly presence?: PresenceTracker;
  /** Typing frames to the other members of a conversation. */
  readonly typing?: TypingRelay;
}

/** The live connections of this gateway, one per device. */
export class ConnectionHub {
  private readonly connections = new Map<string, Connection>();

  get size(): number {
    return this.connections.size;
  }

  get(appId: string, userId: string, deviceId: string): Connection | undefined {
    return this.connections.get(connectionKey(appId, userId, deviceId));
  }

  /** Adds the connection; an earlier one of the same device is kicked (DESIGN.md §3: the second replaces the first). */
  add(conn: Connection): void {
    const previous = this.connections.get(conn.key);
    this.connections.set(conn.key, conn);
    previous?.kick(Kick_Reason.REPLACED, "this device connected again elsewhere", false);
  }

  /** Removes the connection if it is still the device's current one; true when it was. */
  remove(conn: Connection): boolean {
    if (this.connections.get(conn.key) !== conn) return false;
    this.connections.delete(conn.key);
    return true;
  }

  all(): Connection[] {
    return [...this.connections.values()];
  }
}

function frameError(err: unknown): MessageInitShape<typeof FrameErrorSchema> {
  const ce = ConnectError.from(err);
  const retry = Number(ce.metadata.get("retry-after") ?? 0);
  return { code: ce.code, message: ce.rawMessage, retryAfterMs: Number.isFinite(retry) ? retry * 1000 : 0 };
}

/**
 * The gateway's handlers: client streams (bidi Connect, and Subscribe plus unary Ack for HTTP/1.1 clients) and
 * PushService for the services that deliver to them.
 */
export function createGatewayServices(deps: GatewayDeps): {
  gateway: ServiceImpl<typeof GatewayService>;
  push: ServiceImpl<typeof PushService>;
  hub: ConnectionHub;
  drain: () => Promise<void>;
} {
  const hub = new ConnectionHub();
  const heartbeatMs = deps.heartbeatMs ?? 30_000;
  if (deps.metrics && !deps.metrics.getSingleMetric("gateway_connections")) {
    new Gauge({ name: "gateway_connections", help: "Client streams open on this gateway", registers: [deps.metrics], collect() {
      this.set(hub.size);
    } });
  }
  const msg = deps.clients.client(MsgService);
  const msgInternal = deps.clients.client(MsgInternalService);

  /**
   * Options of calls made on the client's behalf: the identity verified when its stream opened (no service
   * verifies its token again; revocation kicks the stream) and its address, for per-address limits.
   */
  const asClient = (conn: Connection) => onBehalfOf(conn.identity, { "x-forwarded-for": conn.forwardedFor });

  /** Acks of conversations that had offline entries delivered on this connection remove those entries. */
  const ackOffline = async (conn: Connection, pending: Map<string, bigint>, acks: readonly { conversationId: string; seq: bigint }[]) => {
    const done = acks.filter((a) => pending.has(a.conversationId));
    if (done.length === 0) return;
    for (const a of done) if (a.seq >= pending.get(a.conversationId)!) pending.delete(a.conversationId);
    const { appId, userId } = conn.identity;
    await msgInternal.ackOffline({ appId, userId, acks: done.map((a) => ({ conversationId: a.conversationId, seq: a.seq })) });
  };

  const handleFrame = async (conn: Connection, frame: ClientFrame, pending: Map<string, bigint>) => {
    const replyTo = frame.frameId;
    const reply = (body: MessageInitShape<typeof ServerFrameSchema>["body"]) => conn.send({ replyTo, body });
    const invalid = validationError(ClientFrameSchema, frame);
    if (invalid) {
      // A bad frame gets its own error; the stream stays open.
      if (frame.body.case === "send") reply({ case: "sendResult", value: { clientMsgId: frame.body.value.clientMsgId, result: { case: "error", value: frameError(invalid) } } });
      else reply({ case: "error", value: frameError(invalid) });
      return;
    }
    switch (frame.body.case) {
      case "ping":
        reply({ case: "pong", value: { clientTimeMs: frame.body.value.clientTimeMs, serverTimeMs: BigInt(Date.now()) } });
        return;
      case "send": {
        const req = frame.body.value;
        try {
          const ok = await msg.sendMessage(req, asClient(conn));
          // The device knows its own message from this result: later ones need not wait for it, nor repeat it.
          conn.order.known(ok.conversationId, ok.seq);
          reply({ case: "sendResult", value: { clientMsgId: req.clientMsgId, result: { case: "ok", value: ok } } });
        } catch (err) {
          reply({ case: "sendResult", value: { clientMsgId: req.clientMsgId, result: { case: "error", value: frameError(err) } } });
        }
        return;
      }
      case "sync":
        try {
          reply({ case: "syncResult", value: await msg.syncMessages(frame.body.value, asClient(conn)) });
        } catch (err) {
          reply({ case: "error", value: frameError(err) });
        }
        return;
      case "ack":
        conn.acked(frame.body.value.conversationId, frame.body.value.seq);
        await ackOffline(conn, pending, [frame.body.value]).catch((err: unknown) => deps.logger.warn({ err: String(err) }, "removing acknowledged offline entries failed"));
        return;
      case "typing":
        if (deps.typing) await deps.typing.relay(conn, frame.body.value).catch((err: unknown) => deps.logger.debug({ err: String(err) }, "a typing frame was not relayed"));
        return;
      case "presence": {
        if (!deps.presence) break;
        try {
          // 1:1 peers are followed without being listed (the most recent conversations, up to the limit).
          const list = await msg.listConversations({ pageSize: 100 }, asClient(conn));
          const peers = list.conversations.map((c) => c.peerUserId).filter((u) => u !== "");
          await deps.presence.follow(conn, [...frame.body.value.userIds, ...peers].slice(0, maxFollowed));
        } catch (err) {
          reply({ case: "error", value: frameError(err) });
        }
        return;
      }
      default:
        break;
    }
    reply({ case: "error", value: { code: Code.Unimplemented, message: `${frame.body.case ?? "empty"} frames are not supported here` } });
  };

  /** Opens a device's stream: registers it and its route, then the welcome and the offline inbox. */
  const open = async (ctx: HandlerContext): Promise<{ conn: Connection; pending: Map<string, bigint>; close: () => Promise<void> }> => {
    const me = requireUser(ctx);
    const conn: Connection = new Connection(me, ctx.requestHeader.get("x-forwarded-for") ?? "", {
      fetchAfter: async (conversationId, afterSeq) => (await msg.syncMessages({ conversationId, afterSeq, limit: 100 }, asClient(conn))).messages,
      gapWaitMs: deps.gapWaitMs,
    });
    // Live pushes wait until the offline inbox is out, so the stream starts with the oldest messages.
    conn.order.beginReplay();
    hub.add(conn);
    const key = routeKey(me.appId, me.userId, me.deviceId);
    const registration = await deps.registration();
    const route = encodeRoute({ ...me, gatewayId: deps.gatewayId, since: Date.now() });
    // The device's earlier stream, if on another gateway, is kicked there (best effort; its route is ours now).
    const kick = { reason: Kick_Reason.REPLACED, message: "this device connected again elsewhere", reconnect: false };
    // The failure is handled at once: a previous gateway that is gone (crashed, breaker open) answers before the
    // route write finishes, and a rejection left unhandled until then would end this process.
    const replacing = kickDevice(deps.registry, deps.clients, { appId: me.appId, userId: me.userId, deviceId: me.deviceId }, kick, deps.gatewayId).catch((err: unknown) =>
      deps.logger.info({ err: String(err) }, "the previous gateway of a reconnected device could not be told"),
    );
    await registration.put(key, route);
    await replacing;
    conn.send({ body: { case: "welcome", value: { gatewayId: deps.gatewayId, heartbeatIntervalMs: heartbeatMs, serverTime: timestampFromDate(new Date()) } } });
    const pending = new Map<string, bigint>();
    try {
      const inbox = await msgInternal.fetchOffline({ appId: me.appId, userId: me.userId, limit: 500 });
      for (const m of inbox.messages) {
        if (m.seq > (pending.get(m.conversationId) ?? 0n)) pending.set(m.conversationId, m.seq);
        conn.deliver({ body: { case: "message", value: m } }, { replay: true });
      }
    } catch (err) {
      // Not fatal: the client resumes by ListConversations and Sync.
      deps.logger.warn({ err }, "fetching the offline inbox failed");
    } finally {
      conn.order.endReplay();
    }
    const silence = setInterval(() => {
      if (Date.now() - conn.lastHeard > 3 * heartbeatMs) conn.kick(Kick_Reason.IDLE, "no heartbeat for three intervals", true);
    }, heartbeatMs);
    silence.unref();
    let finishing: Promise<void> | undefined;
    const finish = () => (finishing ??= cleanUp());
    // A stream whose transport is gone is cleaned up at once, whatever its write loop is waiting for.
    ctx.signal.addEventListener("abort", () => {
      conn.close();
      void finish();
    }, { once: true });
    if (ctx.signal.aborted) {
      conn.close();
      void finish();
    }
    // A closed connection whose last frames cannot be written (a peer that stopped reading) is torn down.
    const graceMs = deps.closeGraceMs ?? Math.min(heartbeatMs, 5_000);
    conn.onClose(() => {
      setTimeout(() => {
        if (finishing !== undefined) return;
        destroyTransport(ctx.values.get(nodeRequestKey));
        void finish();
      }, graceMs).unref();
    });
    const cleanUp = async () => {
      clearInterval(silence);
      conn.close();
      const current = hub.remove(conn);
      deps.presence?.unfollow(conn);
      if (current) {
        await deps.presence?.closed(me.appId, me.userId).catch(() => {});
        await registration.delete(key, route).catch((err: unknown) => deps.logger.warn({ err: String(err) }, "removing a route failed; it goes with the lease"));
      }
      // What the device never acknowledged goes to its new stream, or back to the inbox for the next one.
      const unacked = conn.takeUnacked();
      if (unacked.length === 0) return;
      const successor = current ? undefined : hub.get(me.appId, me.userId, me.deviceId);
      if (successor) for (const m of unacked) successor.deliver({ body: { case: "message", value: m } });
      else {
        await msgInternal
          .requeueOffline({ appId: me.appId, userId: me.userId, messages: unacked })
          .catch((err: unknown) => deps.logger.warn({ err, count: unacked.length }, "requeueing unacknowledged messages failed; the device catches up by sync"));
      }
    };
    return { conn, pending, close: finish };
  };

  const gateway: ServiceImpl<typeof GatewayService> = {
    async *connect(requests, ctx) {
      const { conn, pending, close } = await open(ctx);
      const reader = (async () => {
        for await (const req of requests) {
          conn.lastHeard = Date.now();
          if (req.frame) void handleFrame(conn, req.frame, pending);
        }
      })().then(
        () => conn.close(),
        () => conn.close(),
      );
      try {
        for await (const frame of conn.frames()) yield { frame };
      } finally {
        await close();
        void reader;
      }
    },

    async *subscribe(_req, ctx) {
      const { conn, close } = await open(ctx);
      // A server stream hears nothing from its client; its pings are the unary Ack calls, or nothing at all.
      conn.lastHeard = Number.MAX_SAFE_INTEGER;
      try {
        for await (const frame of conn.frames()) yield { frame };
      } finally {
        await close();
      }
    },

    async ack(req, ctx) {
      const me = requireUser(ctx);
      const conn = hub.get(me.appId, me.userId, me.deviceId);
      await msgInternal.ackOffline({ appId: me.appId, userId: me.userId, acks: req.acks.map((a) => ({ conversationId: a.conversationId, seq: a.seq })) });
      if (conn) conn.lastHeard = Date.now();
      return {};
    },
  };

  const push: ServiceImpl<typeof PushService> = {
    async push(req) {
      let delivered = 0;
      const notConnected = [];
      for (const d of req.deliveries) {
        for (const device of d.devices) {
          const conn = hub.get(device.appId, device.userId, device.deviceId);
          if (conn?.deliver(d.frame ?? {})) delivered++;
          else notConnected.push(device);
        }
      }
      return { delivered, notConnected };
    },
    async kick(req) {
      const d = req.device;
      const conn = d && hub.get(d.appId, d.userId, d.deviceId);
      if (!conn) return { kicked: false };
      const k = req.kick;
      conn.kick(k?.reason ?? Kick_Reason.REVOKED, k?.message ?? "signed out", k?.reconnect ?? false, k?.reconnectAfterMs ?? 0);
      return { kicked: true };
    },
  };

  /** Tells every client to reconnect (to another gateway), spread over a few seconds so they do not all come at once. */
  const drain = async () => {
    for (const conn of hub.all()) conn.kick(Kick_Reason.DRAINING, "this gateway is shutting down", true, Math.floor(Math.random() * 3000));
  };

  return { gateway, push, hub, drain };
}
