import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
  type Health,
  type HealthCheckResponse,
} from "../gen/grpc/health/v1/health_pb.js";

export { ServingStatus };

type Listener = (status: ServingStatus) => void;

/**
 * The serving status of each service in a process; the empty name stands for the whole server.
 * Drain flips everything to NOT_SERVING before deregistering, and Watch streams see each change.
 */
export class HealthStatus {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly listeners = new Map<string, Set<Listener>>();

  constructor(services: Iterable<string> = []) {
    this.statuses.set("", ServingStatus.SERVING);
    for (const name of services) this.statuses.set(name, ServingStatus.SERVING);
  }

  /** The status of a service, or undefined when the process does not serve it. */
  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** Sets one service's status and tells its watchers when it changed. */
  set(service: string, status: ServingStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const listener of this.listeners.get(service) ?? []) listener(status);
  }

  /** Sets every known service (and the server) at once, as drain does. */
  setAll(status: ServingStatus): void {
    for (const name of [...this.statuses.keys()]) this.set(name, status);
  }

  /** Calls the listener on every change of the service's status until the returned function is called. */
  subscribe(service: string, listener: Listener): () => void {
    let set = this.listeners.get(service);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(service, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(service);
    };
  }
}

function response(status: ServingStatus): HealthCheckResponse {
  return create(HealthCheckResponseSchema, { status });
}

/** The grpc.health.v1.Health implementation every im-mesh process serves, for probes and load balancers. */
export function createHealthService(health: HealthStatus): ServiceImpl<typeof Health> {
  return {
    check(req) {
      const status = health.get(req.service);
      if (status === undefined) {
        throw new ConnectError(`service "${req.service}" is not served by this process`, Code.NotFound);
      }
      return response(status);
    },
    async *watch(req, ctx) {
      // Changes that arrive while the previous one is being written are coalesced: only the latest matters.
      let pending: ServingStatus | undefined = health.get(req.service) ?? ServingStatus.SERVICE_UNKNOWN;
      let wake: (() => void) | undefined;
      const unsubscribe = health.subscribe(req.service, (status) => {
        pending = status;
        wake?.();
      });
      const onAbort = () => wake?.();
      ctx.signal.addEventListener("abort", onAbort);
      try {
        while (!ctx.signal.aborted) {
          if (pending !== undefined) {
            const status = pending;
            pending = undefined;
            yield response(status);
            continue;
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      } finally {
        unsubscribe();
        ctx.signal.removeEventListener("abort", onAbort);
      }
    },
  };
}
