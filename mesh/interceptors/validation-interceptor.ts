import type { DescMessage } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

const validator = createValidator();

/**
 * The protovalidate verdict on one message: undefined when valid, else an InvalidArgument naming every violation
 * (Internal when the rules themselves cannot be evaluated).
 */
export function validationError(schema: DescMessage, message: unknown): ConnectError | undefined {
  const result = validator.validate(schema, message as never);
  if (result.kind === "valid") return undefined;
  if (result.kind === "error") return new ConnectError(`cannot validate ${schema.typeName}: ${result.error.message}`, Code.Internal);
  return new ConnectError(`invalid ${schema.name}: ${result.violations.map((v) => v.toString()).join("; ")}`, Code.InvalidArgument);
}

/**
 * Checks every unary and server-streaming request against the protovalidate rules in the contract, and refuses a
 * bad one with InvalidArgument listing every violation, before any handler runs. Client-stream messages are left
 * to their handler (validationError), so one bad frame gets an error reply instead of ending a long-lived stream.
 */
export function createValidationInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (!req.stream) {
      const err = validationError(req.method.input, req.message);
      if (err) throw err;
    }
    return next(req);
  };
}
