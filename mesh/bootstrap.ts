import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { Interceptor, Transport } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Registry as Metrics } from "prom-client";
import { encodeInstance, instanceKey, type Registration, type Registry } from "../platform/registry/registry.js";
import { ServingStatus } from "./health-service.js";
import { createDirectTransport } from "./direct-transport.js";
import type { CredentialVerifier } from "./identity.js";
import { createAuthInterceptor } from "./interceptors/auth-interceptor.js";
import { createErrorInterceptor } from "./interceptors/error-interceptor.js";
import { createMetricsInterceptor } from "./interceptors/metrics-interceptor.js";
import { createScopeInterceptor } from "./interceptors/scope-interceptor.js";
import { createValidationInterceptor } from "./interceptors/validation-interceptor.js";
import { startServer, type MountedService, type RunningServer } from "./server.js";

/**
 * The server interceptors of every im-mesh process, outermost first (Connect wraps the first array element
 * around all the others): call scope, error mapping and logs, RED metrics, authentication by declared access
 * level, validation. So a refused call still has a request id, a log line and a metric.
 */
export function createServerInterceptors(options: { logger: Logger; metrics: Metrics; verifier: CredentialVerifier }): Interceptor[] {
  return [
    createScopeInterceptor(),
    createErrorInterceptor(options.logger),
    createMetricsInterceptor(options.metrics),
    createAuthInterceptor(options.verifier),
    createValidationInterceptor(),
  ];
}

/**
 * The in-process transport of a process's own services (all-in-one mode and any process calling a service it
 * mounts): unary calls go straight to the handlers with the same identity, access, deadline, error and metrics
 * rules as the network path (mesh/direct-transport.ts); streams pass the standard interceptors.
 */
export function createLocalTransport(
  services: readonly MountedService[],
  options: { logger: Logger; metrics: Metrics; verifier: CredentialVerifier },
): { services: ReadonlySet<string>; transport: Transport } {
  const real = services.filter((s) => !s.proxy);
  const transport = createDirectTransport(real, { ...options, interceptors: createServerInterceptors(options) });
  return { services: new Set(real.map((s) => s.desc.typeName)), transport };
}

/** What a service process needs to run in the mesh. */
export interface ServiceProcessOptions {
  /** The process's service name (auth, user, msg, group, gateway, or a test's). */
  readonly name: string;
  readonly instanceId?: string;
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Host other processes use to reach this one (default: the listening host). */
  readonly advertiseHost?: string;
  readonly version?: string;
  readonly services: readonly MountedService[];
  readonly registry: Registry;
  readonly verifier: CredentialVerifier;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Lease TTL in the registry (default 90 s). */
  readonly leaseTtlSeconds?: number;
  /** This process is the public edge (see ServerOptions.publicEdge). */
  readonly publicEdge?: boolean;
}

/** A running, registered service process. */
export interface ServiceProcess {
  readonly instanceId: string;
  readonly server: RunningServer;
  readonly registration: Registration;
  /**
   * Drains: health NOT_SERVING, deregistration (the instance disappears for clients at once), then the server
   * finishes in-flight calls for up to graceMs and closes.
   */
  stop(graceMs?: number): Promise<void>;
}

/** Starts a service: the server with the standard interceptors, then its registration under one lease. */
export async function startServiceProcess(options: ServiceProcessOptions): Promise<ServiceProcess> {
  const instanceId = options.instanceId ?? `${options.name}-${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
  const server = await startServer({
    name: options.name,
    host: options.host,
    port: options.port,
    services: options.services,
    interceptors: createServerInterceptors(options),
    metrics: options.metrics,
    logger: options.logger,
    publicEdge: options.publicEdge,
    verifier: options.verifier,
  });
  const addr = `${options.advertiseHost ?? options.host ?? "127.0.0.1"}:${server.port}`;
  const instance = { service: options.name, instanceId, addr, version: options.version ?? "dev", weight: 1 };
  let registration: Registration;
  try {
    registration = await options.registry.register(instance, {
      ttlSeconds: options.leaseTtlSeconds,
      onRenewed: () => options.logger.warn({ instanceId }, "registry lease was lost and has been re-granted"),
      onError: (err) => options.logger.error({ err, instanceId }, "re-granting the registry lease failed; retrying"),
    });
    for (const { desc } of options.services.filter((s) => !s.proxy)) {
      await registration.put(instanceKey(desc.typeName, instanceId), encodeInstance({ ...instance, service: desc.typeName }));
    }
  } catch (err) {
    await server.close(0);
    throw err;
  }
  options.logger.info({ instanceId, addr }, `${options.name} registered`);
  let stopping: Promise<void> | undefined;
  return {
    instanceId,
    server,
    registration,
    stop: (graceMs?: number) =>
      (stopping ??= (async () => {
        server.health.setAll(ServingStatus.NOT_SERVING);
        await registration.revoke().catch((err: unknown) => options.logger.warn({ err }, "deregistration failed; the lease will expire"));
        await server.close(graceMs);
      })()),
  };
}

/** Drains on SIGTERM or SIGINT and exits 0 (1 if the drain failed). */
export function exitOnSignals(stop: () => Promise<void>, logger: Logger): void {
  const onSignal = (signal: NodeJS.Signals) => {
    logger.info({ signal }, "draining");
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "drain failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
}
