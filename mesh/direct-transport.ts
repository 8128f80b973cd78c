// Calls to a service in the same process, without the wire (DESIGN.md §6 cost rules): the handler gets the caller's
// message object and a light context; identity, access level, deadline, error mapping, request ids and RED metrics
// follow the same rules as the network path, but nothing is encoded, no HTTP is spoken, no interceptor chain runs,
// and requests are not validated again (protovalidate ran where they entered). Streams keep the router transport.
import { create, getOption, isMessage, type DescMethod, type DescMethodUnary, type DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  createRouterTransport,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type Transport,
  type UnaryResponse,
} from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Counter, Histogram, Registry as Metrics } from "prom-client";
import { Access, method as methodRules } from "../gen/im/options/v1/options_pb.js";
import { actingForKey, inProcessCallerKey } from "./acting-for.js";
import { authenticate } from "./admission.js";
import { requestIdHeader, scopeFromHeaders, withScope } from "./call-scope.js";
import type { CredentialVerifier, Identity } from "./identity.js";
import { identityKey } from "./interceptors/auth-interceptor.js";
import { createErrorMapper } from "./interceptors/error-interceptor.js";
import { rpcServerMetrics } from "./interceptors/metrics-interceptor.js";
import type { MountedService } from "./server.js";

type UnaryImpl = (request: unknown, context: HandlerContext) => unknown;

/** One method's handler and what its calls need, resolved once. */
interface Entry {
  readonly rpc: string;
  readonly access: Access;
  readonly impl: UnaryImpl | undefined;
  readonly duration: ReturnType<Histogram["labels"]>;
  readonly ok: ReturnType<Counter["labels"]>;
}

const neverAborted = new AbortController().signal;

/** The HandlerContext of an in-process call: its abort signal (with the deadline) is only made when asked for. */
class DirectContext implements HandlerContext {
  readonly requestMethod = "POST";
  readonly protocolName = "in-process";
  readonly responseHeader = new Headers();
  readonly responseTrailer = new Headers();
  private made: AbortSignal | undefined;

  constructor(
    readonly service: DescService,
    readonly method: DescMethod,
    readonly requestHeader: Headers,
    readonly values: ContextValues,
    private readonly deadline: number | undefined,
    private readonly callerSignal: AbortSignal | undefined,
  ) {}

  get url(): string {
    return `inprocess:///${this.service.typeName}/${this.method.name}`;
  }

  get signal(): AbortSignal {
    if (this.made === undefined) {
      const signals = [this.callerSignal ?? neverAborted];
      if (this.deadline !== undefined) signals.push(AbortSignal.timeout(Math.max(0, this.deadline - Date.now())));
      this.made = signals.length === 1 ? signals[0]! : AbortSignal.any(signals);
    }
    return this.made;
  }

  timeoutMs(): number | undefined {
    return this.deadline === undefined ? undefined : this.deadline - Date.now();
  }
}

/** Whether an identity the caller vouched for (in-process) may call an RPC of this access level. */
function permitted(access: Access, identity: Identity): boolean {
  if (access === Access.PUBLIC) return true;
  if (access === Access.USER) return identity.kind === "user";
  if (access === Access.INTERNAL) return identity.kind === "service";
  if (access === Access.ADMIN) return identity.kind === "admin";
  return false;
}

/**
 * A transport to the given services in this process: unary calls go straight to their handlers (see the file
 * comment); streaming calls go through a router transport with the standard interceptors.
 */
export function createDirectTransport(
  services: readonly MountedService[],
  options: { logger: Logger; metrics: Metrics; verifier: CredentialVerifier; interceptors: Interceptor[] },
): Transport {
  const { requests, duration } = rpcServerMetrics(options.metrics);
  const mapError = createErrorMapper(options.logger);
  const entries = new Map<DescMethod, Entry>();
  for (const { desc, impl } of services) {
    for (const method of desc.methods) {
      if (method.methodKind !== "unary") continue;
      const rpc = `${desc.typeName}/${method.name}`;
      const fn = (impl as Record<string, unknown>)[method.localName];
      entries.set(method, {
        rpc,
        access: getOption(method, methodRules).access,
        impl: typeof fn === "function" ? (fn.bind(impl) as UnaryImpl) : undefined,
        duration: duration.labels({ rpc }),
        ok: requests.labels({ rpc, code: "ok" }),
      });
    }
  }
  const streams = createRouterTransport(
    (router) => {
      for (const { desc, impl } of services) router.service(desc, impl);
    },
    { router: { interceptors: options.interceptors } },
  );

  const unary = async (
    method: DescMethodUnary,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: ConstructorParameters<typeof Headers>[0],
    input: unknown,
    contextValues?: ContextValues,
  ): Promise<UnaryResponse> => {
    const entry = entries.get(method);
    const started = performance.now();
    const requestHeader = header instanceof Headers ? header : new Headers(header);
    const scope = scopeFromHeaders(requestHeader, timeoutMs);
    const rpc = entry?.rpc ?? `${method.parent.typeName}/${method.name}`;
    try {
      if (entry === undefined) throw new ConnectError(`${rpc} is not served in this process`, Code.Unimplemented);
      if (timeoutMs !== undefined && timeoutMs <= 0) throw new ConnectError("the operation timed out", Code.DeadlineExceeded);
      const values = contextValues ?? createContextValues();
      const vouched = values.get(actingForKey) ?? values.get(inProcessCallerKey);
      let identity: Identity | undefined;
      if (vouched !== undefined) {
        if (!permitted(entry.access, vouched)) throw new ConnectError(`${rpc} is not open to ${vouched.kind} callers`, Code.PermissionDenied);
        identity = entry.access === Access.PUBLIC ? undefined : vouched;
      } else identity = await authenticate(method, requestHeader, options.verifier);
      if (identity !== undefined) {
        values.set(identityKey, identity);
        scope.identity = identity;
      }
      if (entry.impl === undefined) throw new ConnectError(`${rpc} is not implemented`, Code.Unimplemented);
      const message = isMessage(input, method.input) ? input : create(method.input, input as never);
      const ctx = new DirectContext(method.parent, method, requestHeader, values, scope.deadline, signal);
      const out = await withScope(scope, () => entry.impl!(message, ctx));
      entry.ok.inc();
      entry.duration.observe((performance.now() - started) / 1000);
      return {
        stream: false,
        service: method.parent,
        method,
        header: ctx.responseHeader,
        trailer: ctx.responseTrailer,
        message: isMessage(out, method.output) ? out : create(method.output, out as never),
      } as UnaryResponse;
    } catch (err) {
      const ce = mapError(err, rpc, scope);
      ce.metadata.set(requestIdHeader, scope.requestId);
      requests.inc({ rpc, code: Code[ce.code] });
      duration.observe({ rpc }, (performance.now() - started) / 1000);
      throw ce;
    }
  };
  return { unary: unary as Transport["unary"], stream: (...args) => streams.stream(...args) };
}
