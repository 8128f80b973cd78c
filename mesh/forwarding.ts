import type { DescService } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { onBehalfOf } from "./acting-for.js";
import { identityKey } from "./interceptors/auth-interceptor.js";
import type { MeshClients } from "./service-client.js";

/** Headers a forwarded call keeps: the caller's credential (for calls by no verified user) and its address. */
const forwarded = ["authorization", "x-forwarded-for"] as const;

/**
 * A handler for every unary RPC of a service that passes the call on to an instance of the owning service, with
 * the caller's credential, request id and remaining deadline: how the gateway serves the public unary API.
 */
export function createForwarder<S extends DescService>(desc: S, clients: MeshClients): Partial<ServiceImpl<S>> {
  const client = clients.client(desc) as unknown as Record<string, (req: unknown, options: object) => Promise<unknown>>;
  const impl: Record<string, (req: unknown, ctx: HandlerContext) => Promise<unknown>> = {};
  for (const method of desc.methods) {
    if (method.methodKind !== "unary") continue;
    impl[method.localName] = (req, ctx) => {
      const user = ctx.values.get(identityKey);
      // A user the gateway verified is named under its mesh credential: the owning service does not verify again.
      if (user?.kind === "user") {
        const address = ctx.requestHeader.get("x-forwarded-for");
        return client[method.localName]!(req, { ...onBehalfOf(user, address === null ? undefined : { "x-forwarded-for": address }), signal: ctx.signal });
      }
      const headers: Record<string, string> = {};
      for (const name of forwarded) {
        const value = ctx.requestHeader.get(name);
        if (value !== null) headers[name] = value;
      }
      return client[method.localName]!(req, { headers, signal: ctx.signal });
    };
  }
  return impl as Partial<ServiceImpl<S>>;
}
