import type { DescMessage } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { wrapIterable } from "./scoped-iterable.js";

/**
 * Checks every request message (each message of a client stream too) against the protovalidate rules in the
 * contract, and refuses a bad one with InvalidArgument listing every violation, before any handler runs.
 */
export function createValidationInterceptor(): Interceptor {
  const validator = createValidator();
  const check = (schema: DescMessage, message: unknown) => {
    const result = validator.validate(schema, message as never);
    if (result.kind === "valid") return;
    if (result.kind === "error") throw new ConnectError(`cannot validate ${schema.typeName}: ${result.error.message}`, Code.Internal);
    throw new ConnectError(`invalid ${schema.name}: ${result.violations.map((v) => v.toString()).join("; ")}`, Code.InvalidArgument);
  };
  return (next) => async (req) => {
    if (!req.stream) {
      check(req.method.input, req.message);
      return next(req);
    }
    return next({
      ...req,
      message: wrapIterable(req.message, async (step) => {
        const result = await step();
        if (!result.done) check(req.method.input, result.value);
        return result;
      }),
    });
  };
}
