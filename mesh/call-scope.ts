import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";
import type { Identity } from "./identity.js";

/**
 * What an incoming call carries into everything it does: outgoing mesh calls read the scope to propagate the
 * request id, respect the remaining deadline, and log who asked.
 */
export interface CallScope {
  readonly requestId: string;
  /** Absolute deadline (ms since the epoch), if the caller set one. */
  readonly deadline: number | undefined;
  identity: Identity | undefined;
}

const storage = new AsyncLocalStorage<CallScope>();

/** The scope of the call being handled, if any. */
export function currentScope(): CallScope | undefined {
  return storage.getStore();
}

/** Runs `work` inside a call scope. */
export function withScope<T>(scope: CallScope, work: () => T): T {
  return storage.run(scope, work);
}

/** The header that carries a request id between services and into logs. */
export const requestIdHeader = "x-request-id";

const validRequestId = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The scope of a call that arrives with these headers: the caller's request id when it is a plain id (else a new
 * one), and the deadline of its timeout header, or of `timeoutMs` when the caller passed one directly.
 */
export function scopeFromHeaders(header: Headers, timeoutMs: number | undefined = timeoutFromHeaders(header)): CallScope {
  const given = header.get(requestIdHeader);
  return {
    requestId: given !== null && validRequestId.test(given) ? given : randomUUID(),
    deadline: timeoutMs === undefined ? undefined : Date.now() + timeoutMs,
    identity: undefined,
  };
}

const grpcUnits: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** Reads the caller's timeout from gRPC's `grpc-timeout` or Connect's `connect-timeout-ms` header. */
export function timeoutFromHeaders(header: Headers): number | undefined {
  const grpc = header.get("grpc-timeout");
  if (grpc !== null) {
    const match = /^(\d{1,8})([HMSmun])$/.exec(grpc);
    if (match) return Number(match[1]) * grpcUnits[match[2]!]!;
  }
  const connect = header.get("connect-timeout-ms");
  if (connect !== null && /^\d{1,10}$/.test(connect)) return Number(connect);
  return undefined;
}
