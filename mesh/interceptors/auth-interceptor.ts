import { Code, ConnectError, createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { admissionKey, authenticate } from "../admission.js";
import { currentScope } from "../call-scope.js";
import type { CredentialVerifier, Identity } from "../identity.js";

/** The verified caller, for handlers: `ctx.values.get(identityKey)`. */
export const identityKey = createContextKey<Identity | undefined>(undefined, { description: "verified caller" });

/** The verified end user behind a call, for handlers of USER RPCs; Unauthenticated when the caller is not one. */
export function requireUser(ctx: HandlerContext): Extract<Identity, { kind: "user" }> {
  const identity = ctx.values.get(identityKey);
  if (identity?.kind !== "user") throw new ConnectError("this RPC needs a user's access token", Code.Unauthenticated);
  return identity;
}

/**
 * Enforces the access level each RPC declares in its contract (im.options.v1.method, see `authenticate`). On a
 * server the admission gate has already verified the credential before the body was read; its verdict is used
 * here, so the credential is checked once. The verified identity goes into the context and the call scope.
 */
export function createAuthInterceptor(verifier: CredentialVerifier): Interceptor {
  return (next) => async (req) => {
    const admitted = req.contextValues.get(admissionKey);
    if (admitted !== undefined && "error" in admitted) throw admitted.error;
    const identity = admitted !== undefined ? admitted.identity : await authenticate(req.method, req.header, verifier);
    if (identity !== undefined) {
      req.contextValues.set(identityKey, identity);
      const scope = currentScope();
      if (scope !== undefined) scope.identity = identity;
    }
    return next(req);
  };
}
