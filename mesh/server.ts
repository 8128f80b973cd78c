import http from "node:http";
import http2 from "node:http2";
import { setMaxListeners } from "node:events";
import net from "node:net";
import type { AddressInfo } from "node:net";
import type { DescMethodBiDiStreaming, DescService } from "@bufbuild/protobuf";
import { createContextValues, type ConnectRouter, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { admitBeforeDecode, bearerToken, type AdmissionLimits } from "./admission.js";
import { appendForwardedFor } from "./client-address.js";
import { grpcBidiRoute, type GrpcBidiRoute } from "./grpc-bidi.js";
import type { CredentialVerifier } from "./identity.js";
import { destroyTransport, nodeRequestKey } from "./node-request.js";
import { reclassifyMalformedRequests } from "./malformed-requests.js";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { createHealthService, HealthStatus, ServingStatus } from "./health-service.js";

/** One RPC service mounted on a server: its descriptor and its handlers. */
export interface MountedService<S extends DescService = DescService> {
  readonly desc: S;
  readonly impl: Partial<ServiceImpl<S>>;
  /**
   * A proxy forwards to the service's real instances (the gateway's public API): it is served but never
   * registered under the service's name and never called in-process, or calls would come back to it.
   */
  readonly proxy?: boolean;
}

export { destroyTransport, nodeRequestKey } from "./node-request.js";

/** Pairs a descriptor with its implementation while keeping both type-checked against each other. */
export function mount<S extends DescService>(desc: S, impl: Partial<ServiceImpl<S>>, options: { proxy?: boolean } = {}): MountedService {
  return { desc, impl, proxy: options.proxy } as MountedService;
}

/** What startServer needs; limits default to values safe for a public edge. */
export interface ServerOptions {
  /** Used in logs and as the metrics label. */
  readonly name: string;
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly services: readonly MountedService[];
  readonly interceptors?: readonly Interceptor[];
  readonly metrics?: Registry;
  readonly logger?: Logger;
  /** Largest request message accepted (connect-node's own default is about 4 GiB). */
  readonly readMaxBytes?: number;
  /** Largest response message sent. */
  readonly writeMaxBytes?: number;
  /** Upper bound on a client-requested deadline. */
  readonly maxTimeoutMs?: number;
  /**
   * The public edge (the gateway): the client's socket address is appended to `x-forwarded-for` (see
   * client-address.ts), so per-address limits downstream cannot be dodged or turned against others; and /metrics
   * needs the operator's credential there (it stays open on internal ports, for Prometheus).
   */
  readonly publicEdge?: boolean;
  /** Connection and request time limits (default serverTimeouts). */
  readonly timeouts?: Partial<ServerTimeouts>;
  /**
   * Authenticates each call from its headers before its body is read (see admission.ts); the auth interceptor
   * then uses that verdict. Without it, calls are authenticated by the interceptors alone, after parsing.
   */
  readonly verifier?: CredentialVerifier;
  /** Unary body limits per kind of caller, with `verifier` (default admissionDefaults). */
  readonly admission?: AdmissionLimits;
}

/** A running server: where it listens, its health, and how to drain it. */
export interface RunningServer {
  readonly port: number;
  /** http://host:port, for clients and logs. */
  readonly url: string;
  readonly health: HealthStatus;
  /**
   * Drains: every service goes NOT_SERVING, the listener stops accepting, HTTP/2 sessions get GOAWAY so
   * open calls can finish, and after graceMs whatever is still running is aborted and its sockets closed.
   */
  close(graceMs?: number): Promise<void>;
}

/** Defaults for message sizes and deadlines (DESIGN.md §6: default deadline 5 s; bodies are at most 64 KiB). */
export const serverDefaults = {
  readMaxBytes: 4 * 1024 * 1024,
  writeMaxBytes: 16 * 1024 * 1024,
  maxTimeoutMs: 60_000,
  graceMs: 10_000,
} as const;

/**
 * How long a peer may take at each stage before its connection or stream is closed, so silent or trickling
 * connections cannot pile up. Long-lived streams (Connect, Subscribe, Health/Watch) are cut by none of them: they
 * keep their session busy and their request body is either done at once or, for bidi streams, never timed.
 */
export interface ServerTimeouts {
  /** A new connection must send its first bytes (the HTTP/2 preface or an HTTP/1.1 request line) within this. */
  readonly firstBytesMs: number;
  /** HTTP/1.1 request headers must be complete within this; an HTTP/2 session must open its first stream within it. */
  readonly headersMs: number;
  /** A request body must be complete within this, except for client- and bidi-streaming calls. */
  readonly bodyMs: number;
  /** An HTTP/2 session without an open stream is closed (GOAWAY) after this. */
  readonly idleSessionMs: number;
}

/** Default time limits: a phone on a slow link sends a 1 MiB body in under 20 s. */
export const serverTimeouts: ServerTimeouts = { firstBytesMs: 10_000, headersMs: 10_000, bodyMs: 20_000, idleSessionMs: 60_000 };

const http2Preface = "PRI ";

type NodeServerRequest = Parameters<ReturnType<typeof connectNodeAdapter>>[0];
type NodeServerResponse = Parameters<ReturnType<typeof connectNodeAdapter>>[1];


/**
 * Starts one listener that speaks Connect, gRPC and gRPC-Web over HTTP/2 (prior knowledge) and Connect unary and
 * server streaming over HTTP/1.1, serves grpc.health.v1.Health for every mounted service, and /metrics.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const health = new HealthStatus([Health.typeName, ...options.services.map((s) => s.desc.typeName)]);
  const timeouts: ServerTimeouts = { ...serverTimeouts, ...options.timeouts };
  const shutdown = new AbortController();
  // Every call in flight listens for the shutdown (connect-node's handler contexts, each stream of the gRPC path):
  // thousands of listeners on it are the normal case, not a leak, so Node's warning past 10 is turned off.
  setMaxListeners(0, shutdown.signal);
  const routes = (router: ConnectRouter) => {
    router.service(Health, createHealthService(health));
    for (const { desc, impl } of options.services) router.service(desc, impl);
    if (options.verifier) admitBeforeDecode(router.handlers, options.verifier, options.admission);
    reclassifyMalformedRequests(router.handlers);
  };
  // On the public edge, metrics are the operator's: they name services, methods and error rates.
  const metricsAllowed = async (req: NodeServerRequest): Promise<boolean> => {
    if (!options.publicEdge) return true;
    const token = bearerToken(req.headers.authorization);
    return token !== undefined && options.verifier !== undefined && (await options.verifier.verifyAdmin(token)) !== undefined;
  };
  const serveMetrics = async (metrics: Registry, req: NodeServerRequest, res: NodeServerResponse) => {
    if (!(await metricsAllowed(req))) {
      res.writeHead(401, { "content-type": "text/plain", "www-authenticate": 'Bearer realm="metrics"' });
      res.end("/metrics on the public port needs the operator's credential (authorization: Bearer <IM_ADMIN_TOKEN>)\n");
      return;
    }
    const body = await metrics.metrics();
    res.writeHead(200, { "content-type": metrics.contentType });
    res.end(body);
  };
  const handler = connectNodeAdapter({
    routes,
    interceptors: [...(options.interceptors ?? [])],
    readMaxBytes: options.readMaxBytes ?? serverDefaults.readMaxBytes,
    writeMaxBytes: options.writeMaxBytes ?? serverDefaults.writeMaxBytes,
    maxTimeoutMs: options.maxTimeoutMs ?? serverDefaults.maxTimeoutMs,
    shutdownSignal: shutdown.signal,
    contextValues: (req) => createContextValues().set(nodeRequestKey, req),
    fallback: (req, res) => {
      if (req.method === "GET" && req.url === "/metrics" && options.metrics) {
        serveMetrics(options.metrics, req, res).catch((err: unknown) => {
          options.logger?.error({ err }, "metrics collection failed");
          if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
          res.end("metrics collection failed\n");
        });
        return;
      }
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found: RPCs are served at /<package>.<Service>/<Method>, metrics at /metrics\n");
    },
  });

  // Request bodies are timed, except those of calls whose request is a stream by design.
  const untimedBodies = new Set(
    [{ desc: Health }, ...options.services].flatMap(({ desc }) =>
      desc.methods.filter((m) => m.methodKind === "bidi_streaming" || m.methodKind === "client_streaming").map((m) => `/${desc.typeName}/${m.name}`),
    ),
  );
  const timeBody = (req: NodeServerRequest, res: NodeServerResponse) => {
    if (req.readableEnded || untimedBodies.has((req.url ?? "").split("?")[0]!)) return;
    // Over HTTP/2 the stream is what stays open: the request object can be destroyed (a refused body is left
    // unread) while the client goes on sending on its stream.
    const complete = () => ("stream" in req ? req.stream.closed || req.stream.state?.remoteClose === 1 : req.readableEnded);
    const timer = setTimeout(() => {
      if (complete()) return;
      options.logger?.info({ url: req.url, afterMs: timeouts.bodyMs }, "request body incomplete in time; closing its stream");
      // A peer that trickles a body loses its connection too: over HTTP/2 the session gets GOAWAY (its other
      // streams may finish), or it would idle on for idleSessionMs after each reset stream.
      if ("stream" in req) req.stream.session?.close();
      destroyTransport(req);
    }, timeouts.bodyMs);
    timer.unref();
    const done = () => clearTimeout(timer);
    req.once("end", done);
    if ("stream" in req) req.stream.once("close", done);
    else {
      req.once("close", done);
      res.once("close", done);
    }
  };
  // Bidi streams spoken as plain gRPC skip connect-node's generic handler (grpc-bidi.ts); the rest goes through it.
  const fastRoutes = new Map<string, GrpcBidiRoute>();
  if (options.verifier) {
    for (const { desc, impl } of options.services) {
      for (const method of desc.methods) {
        const fn = (impl as Record<string, unknown>)[method.localName];
        if (method.methodKind !== "bidi_streaming" || typeof fn !== "function" || desc.typeName === Health.typeName) continue;
        const route = grpcBidiRoute(desc, method as DescMethodBiDiStreaming, fn.bind(impl) as Parameters<typeof grpcBidiRoute>[2], {
          verifier: options.verifier,
          logger: options.logger,
          metrics: options.metrics,
          shutdownSignal: shutdown.signal,
          readMaxBytes: options.readMaxBytes ?? serverDefaults.readMaxBytes,
        });
        fastRoutes.set(route.path, route);
      }
    }
  }
  const serve: typeof handler = (req, res) => {
    if (options.publicEdge) req.headers["x-forwarded-for"] = appendForwardedFor(req.headers["x-forwarded-for"], req.socket?.remoteAddress);
    timeBody(req, res);
    const fast = "stream" in req ? fastRoutes.get(req.url ?? "") : undefined;
    if (fast?.serve(req as http2.Http2ServerRequest, res as http2.Http2ServerResponse)) return;
    // The compat response always ends with trailers: once they are out, the call is answered.
    if ("stream" in req) req.stream.once("wantTrailers", () => setImmediate(stopUnreadBody, req.stream));
    handler(req, res);
  };
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, serve);
  const h1 = http.createServer(
    {
      keepAliveTimeout: 5_000,
      headersTimeout: timeouts.headersMs,
      requestTimeout: timeouts.headersMs + timeouts.bodyMs,
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(timeouts.headersMs / 4))),
    },
    serve,
  );
  // h1 never listens itself (connections are handed to it), and Node tracks connections for headersTimeout,
  // requestTimeout and closeIdleConnections only once its server has emitted 'listening'.
  h1.emit("listening");
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    closeWhenIdle(session, timeouts);
  });
  const sockets = new Set<net.Socket>();

  // Route each connection by its first bytes: the HTTP/2 client preface starts with "PRI ", no HTTP/1 method does.
  const listener = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    const silent = setTimeout(() => socket.destroy(), timeouts.firstBytesMs);
    silent.unref();
    const route = () => {
      if (socket.readableLength < http2Preface.length && !socket.readableEnded) return false;
      clearTimeout(silent);
      socket.off("readable", onReadable);
      const head = socket.read() as Buffer | null;
      if (head === null) {
        socket.destroy();
        return true;
      }
      socket.unshift(head);
      const isHttp2 = head.subarray(0, http2Preface.length).toString("latin1") === http2Preface;
      (isHttp2 ? h2 : h1).emit("connection", socket);
      return true;
    };
    const onReadable = () => void route();
    socket.on("readable", onReadable);
    socket.once("error", () => socket.destroy());
    socket.once("close", () => clearTimeout(silent));
  });

  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(options.port, options.host ?? "127.0.0.1", () => {
      listener.off("error", reject);
      resolve();
    });
  });
  const address = listener.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  options.logger?.info({ url, services: options.services.map((s) => s.desc.typeName) }, `${options.name} listening`);

  let closing: Promise<void> | undefined;
  const close = (graceMs: number = serverDefaults.graceMs): Promise<void> => {
    closing ??= (async () => {
      health.setAll(ServingStatus.NOT_SERVING);
      const stopped = new Promise<void>((resolve) => listener.close(() => resolve()));
      for (const session of sessions) session.close();
      h1.closeIdleConnections();
      const drained = Promise.all([...sessions].map((s) => new Promise<void>((r) => s.once("close", () => r()))));
      const timer = setTimeout(() => shutdown.abort(new Error(`${options.name} is shutting down`)), graceMs);
      await Promise.race([drained, new Promise<void>((r) => shutdown.signal.addEventListener("abort", () => r()))]);
      clearTimeout(timer);
      if (!shutdown.signal.aborted) shutdown.abort(new Error(`${options.name} is shutting down`));
      for (const socket of sockets) socket.destroy();
      h1.close(() => {});
      await stopped;
      options.logger?.info(`${options.name} stopped`);
    })();
    return closing;
  };

  return { port: address.port, url, health, close };
}

/**
 * Once an HTTP/2 response is complete, a request body the client is still sending is refused with RST_STREAM
 * NO_ERROR (as gRPC servers do): a call answered before its body was read (an oversized or unauthenticated one)
 * would otherwise stay open for good, flow control blocking the client and the open stream keeping its session up.
 */
function stopUnreadBody(stream: http2.ServerHttp2Stream): void {
  if (!stream.closed && !stream.destroyed && stream.state?.remoteClose === 0) stream.close(http2.constants.NGHTTP2_NO_ERROR);
}

/**
 * Closes an HTTP/2 session while it has no open stream: one that opened none within headersMs (a slow or silent
 * preface) is destroyed, one idle for idleSessionMs after its streams is sent GOAWAY.
 */
function closeWhenIdle(session: http2.ServerHttp2Session, timeouts: ServerTimeouts): void {
  let open = 0;
  let everOpened = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    timer = setTimeout(() => {
      if (!everOpened) return session.destroy();
      session.close();
      setTimeout(() => session.destroy(), 1_000).unref();
    }, everOpened ? timeouts.idleSessionMs : timeouts.headersMs);
    timer.unref();
  };
  session.on("stream", (stream) => {
    open++;
    everOpened = true;
    clearTimeout(timer);
    stream.once("close", () => {
      if (--open === 0 && !session.closed && !session.destroyed) arm();
    });
  });
  session.once("close", () => clearTimeout(timer));
  arm();
}
