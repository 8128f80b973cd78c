import net from "node:net";
import type { DescMessage, DescMethodStreaming, DescMethodUnary, DescService, MessageInitShape } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel as Idempotency } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createContextValues, type Client, type ContextValues, type StreamResponse, type Transport, type UnaryResponse } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import CircuitBreaker from "opossum";
import { Counter, Gauge, type Registry } from "prom-client";
import type { ServiceInstance } from "../platform/registry/registry.js";
import { actingForHeader, actingForKey, encodeActingFor, inProcessCallerKey } from "./acting-for.js";
import { currentScope, requestIdHeader } from "./call-scope.js";
import type { ServiceDirectory } from "./directory.js";

/** Settings of the mesh clients of one process. */
export interface MeshClientOptions {
  readonly directory: ServiceDirectory;
  /** Supplies this service's credential for internal RPCs. */
  readonly credentials?: { token(): Promise<string>; readonly serviceName?: string };
  /** Deadline of a call that has none of its own and no incoming deadline to inherit (default 5 s). */
  readonly defaultTimeoutMs?: number;
  /** Tries of an idempotent call, on different instances when there are several (default 3). */
  readonly maxAttempts?: number;
  readonly metrics?: Registry;
  /** Breaker tuning: share of failures that opens it, how long it stays open, how many calls before it judges. */
  readonly breaker?: { errorThresholdPercentage?: number; resetTimeoutMs?: number; volumeThreshold?: number };
  readonly readMaxBytes?: number;
  readonly writeMaxBytes?: number;
  /**
   * RPC services mounted in this very process, called in-process (all-in-one mode) instead of over the network;
   * a call pinned to another instance (by `instanceId`) still goes over the network.
   */
  readonly local?: { readonly services: ReadonlySet<string>; readonly transport: Transport; readonly instanceId?: string };
}

interface Target {
  readonly instance: ServiceInstance;
  readonly manager: Http2SessionManager;
  readonly transport: Transport;
  readonly breaker: CircuitBreaker<[() => Promise<unknown>], unknown>;
}

/** Codes that say the instance (not the request) is in trouble: they count against its breaker and allow a retry. */
const instanceFailures = new Set([Code.Unavailable, Code.Unknown, Code.Internal]);

/** host:port (host may be a bracketed IPv6 address) as connect() wants it. */
function splitAddr(addr: string): [string, number] {
  const i = addr.lastIndexOf(":");
  return [addr.slice(0, i).replace(/^\[|\]$/g, ""), Number(addr.slice(i + 1))];
}

/** How long a connection to an instance that left the registry stays open for the calls it still carries. */
const retiredGraceMs = 30_000;

function backoffMs(attempt: number): number {
  return Math.floor(Math.random() * Math.min(1000, 25 * 2 ** attempt));
}

/**
 * Clients of the mesh: each call goes to a registered instance of its service, round robin over those whose
 * breaker is closed; deadlines default to 5 s and shrink to what is left of the incoming call's; idempotent calls
 * that fail for instance reasons are retried with jittered backoff on another instance; requests carry the request
 * id and this service's credential.
 */
export class MeshClients {
  private readonly targets = new Map<string, Target>();
  private readonly cursor = new Map<string, number>();
  private readonly pinned = new Map<string, unknown>();
  private readonly unsubscribe: () => void;
  private readonly requests: Counter | undefined;
  private local: MeshClientOptions["local"];

  constructor(private readonly options: MeshClientOptions) {
    this.local = options.local;
    this.unsubscribe = options.directory.subscribe((service) => this.prune(service));
    // One MeshClients per process is the norm; a second one on the same registry shares the request counter and
    // leaves breaker reporting to the first.
    const existing = options.metrics?.getSingleMetric("rpc_client_requests_total") as Counter | undefined;
    if (existing) this.requests = existing;
    else if (options.metrics) {
      this.requests = new Counter({
        name: "rpc_client_requests_total",
        help: "Outgoing mesh calls, by method and status code",
        labelNames: ["rpc", "code"],
        registers: [options.metrics],
      });
      const targets = this.targets;
      new Gauge({
        name: "mesh_breaker_state",
        help: "Circuit breaker per instance: 0 closed, 1 half-open, 2 open",
        labelNames: ["service", "instance"],
        registers: [options.metrics],
        collect() {
          this.reset();
          for (const t of targets.values()) {
            this.set({ service: t.instance.service, instance: t.instance.instanceId }, t.breaker.opened ? 2 : t.breaker.halfOpen ? 1 : 0);
          }
        },
      });
    }
  }

  /**
   * Calls to these services stay in this process from now on (all-in-one mode mounts its services after the
   * clients they use were made).
   */
  serveLocally(local: NonNullable<MeshClientOptions["local"]>): void {
    this.local = local;
  }

  /**
   * A typed client of one RPC service; with `instanceId`, every call goes to that instance only (the gateway
   * holding a user's stream), and fails Unavailable when it is not registered.
   */
  client<S extends DescService>(desc: S, options: { instanceId?: string } = {}): Client<S> {
    if (options.instanceId === undefined) return createClient(desc, this.transport(desc.typeName));
    // Pushes to a gateway ask for its client on every batch: one per instance is kept until it leaves the registry.
    const key = `${desc.typeName}/${options.instanceId}`;
    let client = this.pinned.get(key) as Client<S> | undefined;
    if (client === undefined) {
      client = createClient(desc, this.transport(desc.typeName, options.instanceId));
      if (this.pinned.size >= 10_000) this.pinned.clear();
      this.pinned.set(key, client);
    }
    return client;
  }

  private key(i: ServiceInstance): string {
    return `${i.service}/${i.instanceId}/${i.addr}`;
  }

  /**
   * Stops routing to instances that left the registry. Their connections are closed only after a grace period:
   * a draining instance deregisters first and then finishes the calls it has, which an abort would cut.
   */
  private prune(service: string): void {
    const registered = new Set(this.options.directory.instances(service).map((i) => i.instanceId));
    for (const key of this.pinned.keys()) {
      const [typeName, instanceId] = [key.slice(0, key.indexOf("/")), key.slice(key.indexOf("/") + 1)];
      if (typeName === service && !registered.has(instanceId)) this.pinned.delete(key);
    }
    const live = new Set(this.options.directory.instances(service).map((i) => this.key(i)));
    for (const [key, target] of this.targets) {
      if (target.instance.service === service && !live.has(key)) {
        this.targets.delete(key);
        const close = setTimeout(() => {
          target.manager.abort(new ConnectError(`${service} instance ${target.instance.instanceId} left the registry`, Code.Unavailable));
          target.breaker.shutdown();
        }, retiredGraceMs);
        close.unref();
      }
    }
  }

  private target(instance: ServiceInstance): Target {
    const key = this.key(instance);
    let target = this.targets.get(key);
    if (target === undefined) {
      const url = `http://${instance.addr}`;
      const [host, port] = splitAddr(instance.addr);
      // Nagle's algorithm holds small HTTP/2 frames back; with it off, unary calls measured ~50% faster here.
      const manager = new Http2SessionManager(
        url,
        { pingIntervalMs: 30_000, pingTimeoutMs: 10_000, idleConnectionTimeoutMs: 15 * 60_000 },
        { createConnection: () => net.connect({ host, port, noDelay: true }) },
      );
      const transport = createGrpcTransport({
        baseUrl: url,
        sessionManager: manager,
        readMaxBytes: this.options.readMaxBytes ?? 16 * 1024 * 1024,
        writeMaxBytes: this.options.writeMaxBytes ?? 4 * 1024 * 1024,
      });
      const tuning = this.options.breaker ?? {};
      const breaker = new CircuitBreaker(async (call: () => Promise<unknown>) => call(), {
        timeout: false,
        errorThresholdPercentage: tuning.errorThresholdPercentage ?? 50,
        resetTimeout: tuning.resetTimeoutMs ?? 5000,
        volumeThreshold: tuning.volumeThreshold ?? 5,
        rollingCountTimeout: 10_000,
        // Only failures of the instance count; a refused request (InvalidArgument, NotFound…) is the caller's.
        errorFilter: (err: unknown) => !instanceFailures.has(ConnectError.from(err).code),
      });
      target = { instance, manager, transport, breaker };
      this.targets.set(key, target);
    }
    return target;
  }

  /** The next instance of the service in round-robin order whose breaker lets calls through, avoiding `tried`. */
  private pick(service: string, tried: ReadonlySet<string>, pinned?: string): Target {
    const registered = this.options.directory.instances(service);
    const instances = pinned === undefined ? registered : registered.filter((i) => i.instanceId === pinned);
    if (pinned !== undefined && instances.length === 0) throw new ConnectError(`${service} instance ${pinned} is not registered`, Code.Unavailable);
    if (instances.length === 0) throw new ConnectError(`no instance of ${service} is registered`, Code.Unavailable);
    const start = this.cursor.get(service) ?? 0;
    this.cursor.set(service, start + 1);
    let fallback: Target | undefined;
    for (let i = 0; i < instances.length; i++) {
      const target = this.target(instances[(start + i) % instances.length]!);
      if (target.breaker.opened) continue;
      if (!tried.has(this.key(target.instance))) return target;
      fallback ??= target;
    }
    if (fallback) return fallback;
    throw new ConnectError(`no healthy instance of ${service}: all ${instances.length} have open circuits`, Code.Unavailable);
  }

  private async headers(header: ConstructorParameters<typeof Headers>[0], contextValues?: ContextValues): Promise<Headers> {
    const h = new Headers(header);
    const scope = currentScope();
    if (scope && !h.has(requestIdHeader)) h.set(requestIdHeader, scope.requestId);
    const user = contextValues?.get(actingForKey);
    if (user !== undefined) {
      // For a user the gateway verified: the service credential vouches for the named identity.
      h.set(actingForHeader, encodeActingFor(user));
      if (this.options.credentials) h.set("authorization", `Bearer ${await this.options.credentials.token()}`);
    } else if (this.options.credentials && !h.has("authorization")) h.set("authorization", `Bearer ${await this.options.credentials.token()}`);
    return h;
  }

  private deadline(timeoutMs: number | undefined): number {
    const own = Date.now() + (timeoutMs ?? this.options.defaultTimeoutMs ?? 5000);
    const inherited = currentScope()?.deadline;
    return inherited === undefined ? own : Math.min(own, inherited);
  }

  /** A stream's own timeout, else what is left of the incoming call's deadline; streams get no default deadline. */
  private streamTimeout(timeoutMs: number | undefined): number | undefined {
    const inherited = currentScope()?.deadline;
    return timeoutMs ?? (inherited === undefined ? undefined : inherited - Date.now());
  }

  private fail(err: unknown, rpc: string): ConnectError {
    const ce = (err as { code?: string })?.code === "EOPENBREAKER" ? new ConnectError("circuit open", Code.Unavailable) : ConnectError.from(err);
    this.requests?.inc({ rpc, code: Code[ce.code] });
    return ce.rawMessage.startsWith(rpc) ? ce : new ConnectError(`${rpc}: ${ce.rawMessage}`, ce.code, ce.metadata, undefined, ce);
  }

  private transport(service: string, pinned?: string): Transport {
    const remote = this.remoteTransport(service, pinned);
    let cached: { from: MeshClientOptions["local"]; transport: Transport | undefined } | undefined;
    const local = (): Transport | undefined => {
      if (cached === undefined || cached.from !== this.local) {
        const here = this.local?.services.has(service) && (pinned === undefined || pinned === this.local.instanceId);
        const transport = here ? this.localTransport(service, this.local!.transport) : undefined;
        cached = { from: this.local, transport };
      }
      return cached.transport;
    };
    return {
      unary: (...args) => (local() ?? remote).unary(...args),
      stream: (...args) => (local() ?? remote).stream(...args),
    };
  }

  private remoteTransport(service: string, pinned?: string): Transport {
    return {
      unary: async <I extends DescMessage, O extends DescMessage>(
        method: DescMethodUnary<I, O>,
        signal: AbortSignal | undefined,
        timeoutMs: number | undefined,
        header: ConstructorParameters<typeof Headers>[0],
        input: MessageInitShape<I>,
        contextValues?: ContextValues,
      ): Promise<UnaryResponse<I, O>> => {
        const rpc = `${service}/${method.name}`;
        const deadline = this.deadline(timeoutMs);
        const headers = await this.headers(header, contextValues);
        const retryable = method.idempotency !== Idempotency.IDEMPOTENCY_UNKNOWN;
        const attempts = retryable ? (this.options.maxAttempts ?? 3) : 1;
        const tried = new Set<string>();
        for (let attempt = 1; ; attempt++) {
          const remaining = deadline - Date.now();
          if (remaining <= 0) throw this.fail(new ConnectError("deadline exceeded before the call could be made", Code.DeadlineExceeded), rpc);
          let target: Target;
          try {
            target = this.pick(service, tried, pinned);
          } catch (err) {
            throw this.fail(err, rpc);
          }
          try {
            const res = (await target.breaker.fire(() =>
              target.transport.unary(method, signal, remaining, headers, input, contextValues),
            )) as UnaryResponse<I, O>;
            this.requests?.inc({ rpc, code: "ok" });
            return res;
          } catch (err) {
            const code = (err as { code?: string })?.code === "EOPENBREAKER" ? Code.Unavailable : ConnectError.from(err).code;
            // A stream cut by a dying connection surfaces as Canceled or Aborted; unless the caller cancelled, it is
            // the instance's failure like Unavailable, and safe to retry for an idempotent call.
            const instanceFailure = instanceFailures.has(code) || ((code === Code.Canceled || code === Code.Aborted) && !signal?.aborted);
            if (!instanceFailure || attempt >= attempts || signal?.aborted) throw this.fail(err, rpc);
            tried.add(this.key(target.instance));
            await new Promise((r) => setTimeout(r, Math.min(backoffMs(attempt), Math.max(0, deadline - Date.now()))));
          }
        }
      },
      stream: async <I extends DescMessage, O extends DescMessage>(
        method: DescMethodStreaming<I, O>,
        signal: AbortSignal | undefined,
        timeoutMs: number | undefined,
        header: ConstructorParameters<typeof Headers>[0],
        input: AsyncIterable<MessageInitShape<I>>,
        contextValues?: ContextValues,
      ): Promise<StreamResponse<I, O>> => {
        // A stream cannot be replayed, so it gets one instance and no retry; it has no default deadline either.
        const rpc = `${service}/${method.name}`;
        const remaining = this.streamTimeout(timeoutMs);
        try {
          const target = this.pick(service, new Set(), pinned);
          return await target.transport.stream(method, signal, remaining, await this.headers(header, contextValues), input, contextValues);
        } catch (err) {
          throw this.fail(err, rpc);
        }
      },
    };
  }

  /**
   * In-process calls carry the request id and the deadline; the caller is vouched for as an object (the user it acts
   * for, or this process's service) instead of a credential the callee would verify again.
   */
  private localTransport(service: string, transport: Transport): Transport {
    const caller = this.options.credentials?.serviceName;
    const vouch = (contextValues: ContextValues | undefined): ContextValues => {
      const values = contextValues ?? createContextValues();
      if (caller !== undefined && values.get(actingForKey) === undefined) values.set(inProcessCallerKey, { kind: "service", service: caller });
      return values;
    };
    return {
      unary: async (method, signal, timeoutMs, header, input, contextValues) => {
        const rpc = `${service}/${method.name}`;
        const remaining = this.deadline(timeoutMs) - Date.now();
        if (remaining <= 0) throw this.fail(new ConnectError("deadline exceeded before the call could be made", Code.DeadlineExceeded), rpc);
        try {
          const headers = new Headers(header);
          const scope = currentScope();
          if (scope && !headers.has(requestIdHeader)) headers.set(requestIdHeader, scope.requestId);
          // A call that brings its own credential is authenticated by it, as over the network.
          const values = headers.has("authorization") ? contextValues : vouch(contextValues);
          const res = await transport.unary(method, signal, remaining, headers, input, values);
          this.requests?.inc({ rpc, code: "ok" });
          return res;
        } catch (err) {
          throw this.fail(err, rpc);
        }
      },
      stream: async (method, signal, timeoutMs, header, input, contextValues) => {
        const remaining = this.streamTimeout(timeoutMs);
        return transport.stream(method, signal, remaining, await this.headers(header, contextValues), input, contextValues);
      },
    };
  }

  async close(): Promise<void> {
    this.unsubscribe();
    for (const t of this.targets.values()) {
      t.manager.abort();
      t.breaker.shutdown();
    }
    this.targets.clear();
  }
}
