import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { AddressInfo } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import { createContextKey, createContextValues, type ConnectRouter, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { admitBeforeDecode, type AdmissionLimits } from "./admission.js";
import type { CredentialVerifier } from "./identity.js";
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

/**
 * The Node request behind a call, for handlers of long-lived streams that must end a stream whose writes are stuck
 * (a peer that stopped reading): connect-node's write waits for 'drain' or 'error', never for 'close'.
 */
export const nodeRequestKey = createContextKey<http.IncomingMessage | http2.Http2ServerRequest | undefined>(undefined, { description: "node request" });

/** Ends the transport of a call at once: its HTTP/2 stream is reset, an HTTP/1.1 call's socket destroyed. */
export function destroyTransport(req: http.IncomingMessage | http2.Http2ServerRequest | undefined): void {
  if (req === undefined) return;
  if ("stream" in req) {
    if (!req.stream.destroyed) req.stream.close(http2.constants.NGHTTP2_CANCEL);
  } else req.socket.destroy();
}

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
   * The public edge (the gateway): `x-forwarded-for` is set to the client's socket address, replacing whatever
   * the client sent, so per-address limits downstream cannot be dodged or turned against others.
   */
  readonly publicEdge?: boolean;
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

const http2Preface = "PRI ";

/**
 * Starts one listener that speaks Connect, gRPC and gRPC-Web over HTTP/2 (prior knowledge) and Connect unary and
 * server streaming over HTTP/1.1, serves grpc.health.v1.Health for every mounted service, and /metrics.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const health = new HealthStatus([Health.typeName, ...options.services.map((s) => s.desc.typeName)]);
  const shutdown = new AbortController();
  const routes = (router: ConnectRouter) => {
    router.service(Health, createHealthService(health));
    for (const { desc, impl } of options.services) router.service(desc, impl);
    if (options.verifier) admitBeforeDecode(router.handlers, options.verifier, options.admission);
    reclassifyMalformedRequests(router.handlers);
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
        const metrics = options.metrics;
        metrics.metrics().then(
          (body) => {
            res.writeHead(200, { "content-type": metrics.contentType });
            res.end(body);
          },
          (err: unknown) => {
            options.logger?.error({ err }, "metrics collection failed");
            res.writeHead(500, { "content-type": "text/plain" });
            res.end("metrics collection failed\n");
          },
        );
        return;
      }
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found: RPCs are served at /<package>.<Service>/<Method>, metrics at /metrics\n");
    },
  });

  const serve: typeof handler = options.publicEdge
    ? (req, res) => {
        req.headers["x-forwarded-for"] = req.socket?.remoteAddress ?? "unknown";
        handler(req, res);
      }
    : handler;
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, serve);
  const h1 = http.createServer({ keepAliveTimeout: 5_000 }, serve);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  const sockets = new Set<net.Socket>();

  // Route each connection by its first bytes: the HTTP/2 client preface starts with "PRI ", no HTTP/1 method does.
  const listener = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    const route = () => {
      if (socket.readableLength < http2Preface.length && !socket.readableEnded) return false;
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
      await stopped;
      options.logger?.info(`${options.name} stopped`);
    })();
    return closing;
  };

  return { port: address.port, url, health, close };
}
