// Admission: what a call costs before anyone knows who sent it. connect-node reads and parses a unary request's
// body before any interceptor runs, so a 4 MiB body of tiny unknown fields costs a second of CPU and 250 MB even
// when its token is missing. The gate here authenticates from the headers first and bounds the bytes read by
// what the caller may send: anonymous callers little, end users more, services and the operator the server's limit.
import { getOption } from "@bufbuild/protobuf";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, createContextValues } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { Access, method as methodRules } from "../gen/im/options/v1/options_pb.js";
import { actingForHeader, decodeActingFor } from "./acting-for.js";
import type { CredentialVerifier, Identity } from "./identity.js";

/** Services that answer without a credential whatever their options say: probes must reach health. */
const openServices = new Set([Health.typeName]);

/** Largest unary request body per kind of caller, checked while the body is read (before it is parsed). */
export interface AdmissionLimits {
  /** PUBLIC RPCs (Register, Login, Refresh): nobody is known yet. */
  readonly anonymousBytes: number;
  /** USER RPCs, once the access token verified. */
  readonly userBytes: number;
}

/** Defaults: a Login is a few hundred bytes; the largest user request (a 64 Ki-character text) stays below 1 MiB. */
export const admissionDefaults: AdmissionLimits = { anonymousBytes: 64 * 1024, userBytes: 1024 * 1024 };

/** The gate's verdict on a call, handed to the auth interceptor so the credential is verified once. */
export type Admission = { readonly identity: Identity | undefined } | { readonly error: ConnectError };

/** Where the gate leaves its verdict in the call's context values. */
export const admissionKey = createContextKey<Admission | undefined>(undefined, { description: "admission verdict" });

/** The token of an `authorization: Bearer <token>` value, if it is one (one owner for the parse, server and calls). */
export function bearerToken(value: string | null | undefined): string | undefined {
  return value === null || value === undefined ? undefined : /^Bearer\s+(\S{1,8192})$/i.exec(value)?.[1];
}

/**
 * The access check every RPC goes through (im.options.v1.method): PUBLIC passes (undefined), USER needs a valid
 * access token, INTERNAL a service credential, ADMIN the operator credential; an RPC without a level is refused.
 * No credential or an invalid one is Unauthenticated; a valid one of the wrong kind is PermissionDenied.
 */
export async function authenticate(method: DescMethod, header: Headers, verifier: CredentialVerifier): Promise<Identity | undefined> {
  if (openServices.has(method.parent.typeName)) return undefined;
  const access = getOption(method, methodRules).access;
  if (access === Access.PUBLIC) return undefined;
  const rpc = `${method.parent.typeName}/${method.name}`;
  if (access === Access.UNSPECIFIED) throw new ConnectError(`${rpc} declares no access level and is refused`, Code.PermissionDenied);
  const token = bearerToken(header.get("authorization"));
  if (token === undefined) throw new ConnectError(`${rpc} needs "authorization: Bearer <token>"`, Code.Unauthenticated);
  let identity: Identity | undefined;
  const actingFor = header.get(actingForHeader);
  if (actingFor !== null) {
    // A mesh service calling for a user the gateway verified: the header counts only beside a service credential.
    if ((await verifier.verifyService(token)) === undefined) throw new ConnectError(`${rpc}: ${actingForHeader} is accepted only from mesh services`, Code.Unauthenticated);
    const user = decodeActingFor(actingFor);
    if (access !== Access.USER) throw new ConnectError(`${rpc} is not open to users`, Code.PermissionDenied);
    return user;
  }
  if (access === Access.USER) identity = await verifier.verifyUser(token);
  else if (access === Access.INTERNAL) identity = await verifier.verifyService(token);
  else identity = await verifier.verifyAdmin(token);
  if (identity !== undefined) return identity;
  const what = access === Access.USER ? "access token" : access === Access.INTERNAL ? "service credential" : "admin credential";
  // A valid credential of another kind (a user's token on an internal RPC): the caller is known, just not allowed.
  const other =
    (access !== Access.INTERNAL ? await verifier.verifyService(token) : undefined) ??
    (access !== Access.ADMIN ? await verifier.verifyAdmin(token) : undefined) ??
    (access !== Access.USER ? await verifier.verifyUser(token) : undefined);
  if (other !== undefined) throw new ConnectError(`${rpc} needs ${what === "admin credential" ? "an" : "a"} ${what}; a ${other.kind} credential is not allowed here`, Code.PermissionDenied);
  throw new ConnectError(`${rpc} needs a valid ${what}; the one given is invalid or expired`, Code.Unauthenticated);
}

/** The body's bytes, refused with ResourceExhausted once they pass `max` (or the declared length does). */
async function* capped(body: AsyncIterable<Uint8Array>, max: number, rpc: string): AsyncIterable<Uint8Array> {
  let read = 0;
  for await (const chunk of body) {
    read += chunk.byteLength;
    if (read > max) throw new ConnectError(`${rpc}: request body over ${max} bytes for this caller`, Code.ResourceExhausted);
    yield chunk;
  }
}

/**
 * The smallest valid request in the call's own protocol (an empty message, enveloped where the protocol frames
 * messages), standing in for the body of a call that is refused before its body is read.
 */
function emptyRequest(contentType: string): AsyncIterable<Uint8Array> {
  const json = /json/.test(contentType);
  const message = json ? new TextEncoder().encode("{}") : new Uint8Array(0);
  const enveloped = /^application\/(grpc|connect\+)/.test(contentType);
  let bytes = message;
  if (enveloped) {
    bytes = new Uint8Array(5 + message.byteLength);
    new DataView(bytes.buffer).setUint32(1, message.byteLength);
    bytes.set(message, 5);
  }
  return (async function* () {
    yield bytes;
  })();
}

function wrap(handler: UniversalHandler, verifier: CredentialVerifier, limits: AdmissionLimits): UniversalHandler {
  const method = handler.method;
  const rpc = `${method.parent.typeName}/${method.name}`;
  const unary = method.methodKind === "unary";
  const anonymous = openServices.has(method.parent.typeName) || getOption(method, methodRules).access === Access.PUBLIC;
  const admitted = async (req: UniversalServerRequest) => {
    const contextValues = req.contextValues ?? createContextValues();
    let verdict: Admission;
    try {
      verdict = { identity: await authenticate(method, req.header, verifier) };
    } catch (err) {
      verdict = { error: ConnectError.from(err) };
    }
    contextValues.set(admissionKey, verdict);
    let body = req.body;
    let header = req.header;
    const refuse = () => {
      // A refused call's body is never read: an empty request stands in for it, and the auth interceptor answers.
      header = new Headers(req.header);
      header.delete("content-length");
      header.delete("content-encoding");
      header.delete("grpc-encoding");
      header.delete("connect-content-encoding");
      body = emptyRequest(header.get("content-type") ?? "");
    };
    if ("error" in verdict) refuse();
    else if (unary && isBytes(body)) {
      const max = anonymous ? limits.anonymousBytes : verdict.identity?.kind === "user" ? limits.userBytes : Number.POSITIVE_INFINITY;
      const declared = Number(req.header.get("content-length") ?? 0);
      if (declared > max) {
        contextValues.set(admissionKey, { error: new ConnectError(`${rpc}: request body of ${declared} bytes is over ${max} for this caller`, Code.ResourceExhausted) });
        refuse();
      } else if (Number.isFinite(max)) body = capped(body, max, rpc);
    }
    return handler({ ...req, header, body, contextValues });
  };
  return Object.assign(admitted, handler) as UniversalHandler;
}

function isBytes(body: UniversalServerRequest["body"]): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

/**
 * Wraps every handler of a router so the caller is authenticated from the headers before the body is read, a
 * refused call's body is never parsed, and unary bodies are bounded by the caller's kind.
 */
export function admitBeforeDecode(handlers: UniversalHandler[], verifier: CredentialVerifier, limits: AdmissionLimits = admissionDefaults): void {
  for (let i = 0; i < handlers.length; i++) handlers[i] = wrap(handlers[i]!, verifier, limits);
}
