// Hostile input before and after authentication, against a real server on port 0 with the standard interceptors:
// a refused call's body is never read, anonymous and user bodies are bounded, and validation errors stay small.
import http2 from "node:http2";
import { Writable } from "node:stream";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { pino } from "pino";
import { AuthService } from "../gen/im/auth/v1/auth_pb.js";
import { UserService } from "../gen/im/user/v1/user_pb.js";
import { rpcError } from "../test/rpc-errors.js";
import { actingForHeader, encodeActingFor } from "./acting-for.js";
import { createServerInterceptors } from "./bootstrap.js";
import { createMeshVerifier, ServiceCredentials } from "./identity.js";
import { createMetricsRegistry } from "./metrics.js";
import { mount, startServer, type RunningServer } from "./server.js";

const user = { kind: "user", appId: "00000000-0000-0000-0000-000000000001", userId: "a11ce000-0000-4000-8000-000000000001", deviceId: "d1", tokenId: "t1" } as const;

/** A gRPC unary call over a raw HTTP/2 stream: its trailers' status and message, or "open" if none came in time. */
function rawGrpc(url: string, path: string, headers: Record<string, string>, chunks: Uint8Array[], end: boolean, waitMs = 10_000): Promise<{ status: string; message: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const req = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
    let status = "";
    let message = "";
    const finish = (s: string) => {
      clearTimeout(timer);
      session.destroy();
      resolve({ status: s, message });
    };
    const timer = setTimeout(() => finish("open"), waitMs);
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) message = decodeURIComponent(String(h["grpc-message"]));
    };
    req.on("response", take);
    req.on("trailers", take);
    req.on("data", () => {});
    req.on("close", () => finish(status));
    req.on("error", () => finish(status));
    for (const c of chunks) req.write(c);
    if (end) req.end();
  });
}

/** A gRPC envelope of `size` bytes made of tiny unknown fields (tag 15, varint 0), the costliest bytes to parse. */
function unknownFields(size: number): Uint8Array {
  const out = new Uint8Array(5 + size);
  new DataView(out.buffer).setUint32(1, size);
  for (let i = 5; i + 1 < out.length; i += 2) out[i] = 15 << 3;
  return out;
}

describe("admission: work bounded before authentication, validation errors bounded after", () => {
  let server: RunningServer;
  const lines: string[] = [];
  const credentials = new ServiceCredentials("a".repeat(32), "admission-test");

  before(async () => {
    const logger = pino({ level: "info" }, new Writable({ write: (chunk, _enc, done) => void (lines.push(String(chunk)), done()) }));
    const verifier = createMeshVerifier({ serviceCredentials: credentials, verifyUser: async (t) => (t === "good-user-token" ? user : undefined) });
    server = await startServer({
      name: "admission-test",
      port: 0,
      services: [mount(UserService, {}), mount(AuthService, {})],
      interceptors: createServerInterceptors({ logger, metrics: createMetricsRegistry("admission-test"), verifier }),
      verifier,
    });
  });
  after(() => server.close(100));

  it("answers an anonymous call to a user RPC at once, without waiting for (or parsing) its body", async () => {
    // Headers and half a body, never ended: a server that parses first would wait for the rest forever.
    const half = unknownFields(1 << 20).subarray(0, 1 << 19);
    const res = await rawGrpc(server.url, "/im.user.v1.UserService/BatchGetUsers", {}, [half], false);
    expect(res.status, res.message).to.equal(String(Code.Unauthenticated));
    expect(res.message).to.contain("authorization: Bearer");
    const forged = await rawGrpc(server.url, "/im.user.v1.UserService/BatchGetUsers", { authorization: "Bearer forged" }, [half], false);
    expect(forged.status).to.equal(String(Code.Unauthenticated));
  });

  it("refuses an anonymous body over 64 KiB with ResourceExhausted, by its declared length or as it streams", async () => {
    const big = unknownFields(100 * 1024);
    const streamed = await rawGrpc(server.url, "/im.auth.v1.AuthService/Login", {}, [big], true);
    expect(streamed.status, streamed.message).to.equal(String(Code.ResourceExhausted));
    const declared = await fetchConnect(server.url, "/im.auth.v1.AuthService/Login", big.subarray(5), {});
    expect(declared.status).to.equal(429);
    expect(declared.body).to.contain("resource_exhausted");
  });

  it("answers a signed-in list of 300,000 invalid ids with one short InvalidArgument and a short log line", async () => {
    lines.length = 0;
    const client = createClient(UserService, createGrpcTransport({ baseUrl: server.url }));
    const err = await rpcError(client.batchGetUsers({ userIds: new Array<string>(300_000).fill("") }, { headers: { authorization: "Bearer good-user-token" } }));
    expect(err.code).to.equal(Code.InvalidArgument);
    expect(err.rawMessage.length).to.be.at.most(512);
    expect(Math.max(0, ...lines.map((l) => l.length))).to.be.below(4096);
  });

  it("takes an acting-for identity only beside a mesh service credential, never from a client", async () => {
    const client = createClient(UserService, createGrpcTransport({ baseUrl: server.url }));
    const forged = { [actingForHeader]: encodeActingFor({ ...user, userId: "b0b00000-0000-4000-8000-000000000002" }) };
    for (const authorization of ["Bearer good-user-token", "Bearer forged", undefined]) {
      const err = await rpcError(client.getUser({ userId: user.userId }, { headers: { ...forged, ...(authorization ? { authorization } : {}) } }));
      expect(err.code, `acting-for with ${authorization}`).to.equal(Code.Unauthenticated);
    }
    // From a mesh service it names the caller: the call passes authentication (and reaches the unimplemented handler).
    const fromService = await rpcError(client.getUser({ userId: user.userId }, { headers: { ...forged, authorization: `Bearer ${await credentials.token()}` } }));
    expect(fromService.code).to.equal(Code.Unimplemented);
  });

  it("refuses a signed-in unary body over 1 MiB with ResourceExhausted", async () => {
    const client = createClient(UserService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
    const err = await rpcError(client.batchGetUsers({ userIds: new Array<string>(600_000).fill("x") }, { headers: { authorization: "Bearer good-user-token" } }));
    expect(err.code).to.equal(Code.ResourceExhausted);
  });
});

/** A Connect unary POST with a binary body over HTTP/2: the HTTP status and the body text. */
function fetchConnect(url: string, path: string, body: Uint8Array, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const req = session.request({ ":method": "POST", ":path": path, "content-type": "application/proto", "content-length": String(body.byteLength), ...headers });
    let status = 0;
    let text = "";
    req.on("response", (h) => (status = Number(h[":status"])));
    req.on("data", (d: Buffer) => (text += d.toString("utf8")));
    req.on("close", () => {
      session.destroy();
      resolve({ status, body: text });
    });
    req.on("error", () => {});
    req.end(body);
  });
}
