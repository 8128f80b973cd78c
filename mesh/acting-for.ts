// A user's identity, verified once where it entered (the gateway), carried on the calls made for that user: as an
// object inside one process, and as a header beside the calling service's mesh credential between processes. No
// service verifies the user's Ed25519 signature again, and nobody outside the mesh can use the header: it counts
// only on a call whose bearer is a valid service credential.
import { Code, ConnectError, createContextKey, createContextValues, type ContextValues } from "@connectrpc/connect";
import type { Identity } from "./identity.js";

/** A verified end user. */
export type UserIdentity = Extract<Identity, { kind: "user" }>;

/** The header that names the user a mesh service calls for (only with a service credential). */
export const actingForHeader = "x-im-acting-for";

/** Set by the caller: the user this call is made for (the callee treats it as the caller). */
export const actingForKey = createContextKey<UserIdentity | undefined>(undefined, { description: "acting for user" });

/** Set by a process's own mesh clients on calls to services in the same process: the calling service. */
export const inProcessCallerKey = createContextKey<Identity | undefined>(undefined, { description: "in-process caller" });

/** Call options that make a mesh call on behalf of a verified user (fresh context values per call). */
export function onBehalfOf(user: UserIdentity, headers?: Record<string, string>): { contextValues: ContextValues; headers?: Record<string, string> } {
  return { contextValues: createContextValues().set(actingForKey, user), headers };
}

const part = /^[A-Za-z0-9._:-]{1,128}$/;

/** The header value for a user: app, user, device and token id, each a plain id. */
export function encodeActingFor(user: UserIdentity): string {
  return `${user.appId}/${user.userId}/${user.deviceId}/${user.tokenId}`;
}

/** The user a header names; InvalidArgument when it is malformed. */
export function decodeActingFor(value: string): UserIdentity {
  const parts = value.split("/");
  if (parts.length !== 4 || !parts.every((p) => part.test(p))) throw new ConnectError(`malformed ${actingForHeader} header`, Code.InvalidArgument);
  const [appId, userId, deviceId, tokenId] = parts as [string, string, string, string];
  return { kind: "user", appId, userId, deviceId, tokenId };
}
