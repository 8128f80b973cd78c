import { randomUUID } from "node:crypto";
import type { Interceptor } from "@connectrpc/connect";
import { requestIdHeader, timeoutFromHeaders, withScope, type CallScope } from "../call-scope.js";
import { wrapIterable } from "./scoped-iterable.js";

const validRequestId = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Opens the call scope: takes the caller's request id (or makes one), notes the deadline, echoes the id in the
 * response header, and runs the handler (streaming ones included) inside the scope.
 */
export function createScopeInterceptor(): Interceptor {
  return (next) => async (req) => {
    const given = req.header.get(requestIdHeader);
    const timeout = timeoutFromHeaders(req.header);
    const scope: CallScope = {
      requestId: given !== null && validRequestId.test(given) ? given : randomUUID(),
      deadline: timeout === undefined ? undefined : Date.now() + timeout,
      identity: undefined,
    };
    const res = await withScope(scope, () => next(req));
    res.header.set(requestIdHeader, scope.requestId);
    if (!res.stream) return res;
    return { ...res, message: wrapIterable(res.message, (step) => withScope(scope, step)) };
  };
}
