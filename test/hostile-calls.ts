// Requests a hostile client sends, written on node:http2 from the wire formats alone, for the abuse test suite
// and the abuse benchmark's load processes (one copy for both): unary calls in gRPC or Connect framing with a
// payload as given, and 4 MiB bodies of the costliest bytes to parse.
import http2 from "node:http2";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { AuthAdminService, AuthInternalService, AuthService } from "../gen/im/auth/v1/auth_pb.js";
import { GatewayService, PushService } from "../gen/im/gateway/v1/gateway_pb.js";
import { GroupInternalService, GroupService } from "../gen/im/group/v1/group_pb.js";
import { MsgInternalService, MsgService } from "../gen/im/msg/v1/msg_pb.js";
import { UserService } from "../gen/im/user/v1/user_pb.js";
import type { Payload } from "./fuzz-payloads.js";

/** Every service a hostile client can reach on a server that mounts them all. */
export const abusedServices: DescService[] = [Health, AuthService, AuthInternalService, AuthAdminService, UserService, MsgService, MsgInternalService, GroupService, GroupInternalService, GatewayService, PushService];
/** gRPC status codes that are a client error (or OK): a hostile request must get one of these, never a fault. */
export const clientCodes = new Set([0, Code.InvalidArgument, Code.NotFound, Code.AlreadyExists, Code.PermissionDenied, Code.ResourceExhausted, Code.FailedPrecondition, Code.OutOfRange, Code.Unimplemented, Code.Unauthenticated]);
const connectCodes: Record<string, number> = { invalid_argument: 3, not_found: 5, already_exists: 6, permission_denied: 7, resource_exhausted: 8, failed_precondition: 9, out_of_range: 11, unimplemented: 12, unauthenticated: 16, internal: 13, unknown: 2, unavailable: 14 };

export function envelope(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + bytes.byteLength);
  new DataView(out.buffer).setUint32(1, bytes.byteLength);
  out.set(bytes, 5);
  return out;
}

/** A unary call on an open session: gRPC with an envelope, or Connect with JSON; its status code, -1 if unanswered. */
export function call(session: http2.ClientHttp2Session, method: DescMethod, payload: Payload, token: string | undefined): Promise<number> {
  const json = payload.kind === "json";
  return new Promise((resolve) => {
    const headers: http2.OutgoingHttpHeaders = json
      ? { ":method": "POST", ":path": `/${method.parent.typeName}/${method.name}`, "content-type": "application/json", "connect-protocol-version": "1" }
      : { ":method": "POST", ":path": `/${method.parent.typeName}/${method.name}`, "content-type": "application/grpc", te: "trailers" };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request(headers);
    } catch {
      return resolve(-1);
    }
    let grpcStatus: number | undefined;
    let httpStatus = 0;
    let text = "";
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h[":status"] !== undefined) httpStatus = Number(h[":status"]);
      if (h["grpc-status"] !== undefined) grpcStatus = Number(h["grpc-status"]);
    };
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      if (!req.closed) req.close(http2.constants.NGHTTP2_NO_ERROR);
      if (!json) return resolve(grpcStatus ?? -1);
      if (httpStatus === 200) return resolve(0);
      let code = "";
      try {
        code = String((JSON.parse(text) as { code?: unknown }).code);
      } catch {
        // not JSON
      }
      resolve(connectCodes[code] ?? -1);
    };
    req.on("response", take);
    req.on("trailers", (h) => (take(h), finish()));
    req.on("data", (d: Buffer) => json && text.length < 4096 && (text += d.toString("utf8")));
    req.on("end", finish);
    req.on("error", () => {});
    req.on("close", finish);
    req.end(json ? payload.body : envelope(payload.body));
  });
}

/** A gRPC envelope of `size` bytes of tiny unknown fields (tag 15, varint 0), the costliest bytes to parse. */
export function unknownFields(size: number): Uint8Array {
  const body = new Uint8Array(size);
  for (let i = 0; i + 1 < size; i += 2) body[i] = 15 << 3;
  return envelope(body);
}

/** Sends `body` in one go on a fresh connection; the answer's grpc-status. */
export async function oneShot(url: string, path: string, body: Uint8Array, token?: string): Promise<number> {
  const session = http2.connect(url);
  session.on("error", () => {});
  try {
    return await new Promise<number>((resolve) => {
      const req = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...(token ? { authorization: `Bearer ${token}` } : {}) });
      let status = -1;
      const take = (h: http2.IncomingHttpHeaders) => h["grpc-status"] !== undefined && (status = Number(h["grpc-status"]));
      req.on("response", take);
      req.on("trailers", (h) => (take(h), resolve(status)));
      req.on("data", () => {});
      req.on("error", () => {});
      req.on("close", () => resolve(status));
      req.end(body);
    });
  } finally {
    session.destroy();
  }
}
