import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { capText } from "../../platform/cap-text.js";
import { ConflictError, UnavailableError } from "../../platform/errors.js";
import { currentScope, type CallScope } from "../call-scope.js";
import { describeIdentity } from "../identity.js";
import { wrapIterable } from "./scoped-iterable.js";

/** Client mistakes are logged at info; everything else at warn or error. */
/** The longest error message logged or answered: the rest of a client-inflated message is cut. */
const maxLoggedMessageChars = 2048;

const clientCodes = new Set([Code.InvalidArgument, Code.NotFound, Code.AlreadyExists, Code.PermissionDenied, Code.Unauthenticated, Code.FailedPrecondition, Code.OutOfRange, Code.Canceled]);

/**
 * Turns whatever a handler throws into a ConnectError with the right code and a message safe to show: platform
 * errors map to Unavailable and AlreadyExists, and anything unexpected is logged in full and answered as Internal
 * with only the request id, so no stack trace or driver message leaks.
 */
export function createErrorInterceptor(logger: Logger): Interceptor {
  const map = createErrorMapper(logger);
  return (next) => async (req) => {
    const rpc = `${req.service.typeName}/${req.method.name}`;
    const scope = currentScope();
    try {
      const res = await next(req);
      if (!res.stream) return res;
      return {
        ...res,
        message: wrapIterable(res.message, async (step) => {
          try {
            return await step();
          } catch (err) {
            throw map(err, rpc, scope);
          }
        }),
      };
    } catch (err) {
      throw map(err, rpc, scope);
    }
  };
}

/**
 * The mapping of the error interceptor as a function, for the in-process transport (which runs no interceptor
 * chain): logs the failure and returns what the caller may see.
 */
export function createErrorMapper(logger: Logger): (err: unknown, rpc: string, scope: CallScope | undefined) => ConnectError {
  return (err, rpc, scope) => {
    const requestId = scope?.requestId;
    const fields = { rpc, requestId, caller: describeIdentity(scope?.identity) };
    if (err instanceof ConnectError) {
      // A message built from the request (a validation error, a parse error) is capped in the log and the answer.
      const message = capText(err.rawMessage, maxLoggedMessageChars);
      (clientCodes.has(err.code) ? logger.info.bind(logger) : logger.warn.bind(logger))({ ...fields, code: Code[err.code], err: message }, "rpc failed");
      return message === err.rawMessage ? err : new ConnectError(message, err.code, err.metadata, undefined, err);
    }
    if (err instanceof UnavailableError) {
      logger.warn({ ...fields, component: err.component, err: err.message }, "dependency unavailable");
      return new ConnectError(`${err.component} is unavailable; retry later (request id ${requestId})`, Code.Unavailable);
    }
    if (err instanceof ConflictError) {
      logger.info({ ...fields, field: err.field }, "conflict");
      return new ConnectError(err.message, Code.AlreadyExists);
    }
    logger.error({ ...fields, err }, "unexpected error");
    return new ConnectError(`internal error (request id ${requestId})`, Code.Internal);
  };
}
