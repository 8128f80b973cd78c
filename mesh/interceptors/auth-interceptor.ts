import { getOption } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { Access, method as methodRules } from "../../gen/im/options/v1/options_pb.js";
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

/** Services that answer without a credential whatever their options say: probes must reach health. */
const openServices = new Set([Health.typeName]);

function bearer(header: Headers): string | undefined {
  const value = header.get("authorization");
  const match = value === null ? null : /^Bearer\s+(\S{1,8192})$/i.exec(value);
  return match?.[1];
}

/**
 * Enforces the access level each RPC declares in its contract (im.options.v1.method): PUBLIC passes, USER needs a
 * valid access token, INTERNAL a service credential (a user token is never enough), ADMIN the operator credential,
 * and an RPC without a level is refused. The verified identity goes into the context and the call scope.
 */
export function createAuthInterceptor(verifier: CredentialVerifier): Interceptor {
  return (next) => async (req) => {
    if (openServices.has(req.service.typeName)) return next(req);
    const access = getOption(req.method, methodRules).access;
    if (access === Access.PUBLIC) return next(req);
    const rpc = `${req.service.typeName}/${req.method.name}`;
    if (access === Access.UNSPECIFIED) throw new ConnectError(`${rpc} declares no access level and is refused`, Code.PermissionDenied);
    const token = bearer(req.header);
    if (token === undefined) throw new ConnectError(`${rpc} needs "authorization: Bearer <token>"`, Code.Unauthenticated);
    let identity: Identity | undefined;
    if (access === Access.USER) identity = await verifier.verifyUser(token);
    else if (access === Access.INTERNAL) identity = await verifier.verifyService(token);
    else identity = await verifier.verifyAdmin(token);
    if (identity === undefined) {
      const what = access === Access.USER ? "access token" : access === Access.INTERNAL ? "service credential" : "admin credential";
      throw new ConnectError(`${rpc} needs a valid ${what}; the one given is invalid or expired`, Code.Unauthenticated);
    }
    req.contextValues.set(identityKey, identity);
    const scope = currentScope();
    if (scope !== undefined) scope.identity = identity;
    return next(req);
  };
}
