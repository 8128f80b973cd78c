// Access levels answered by what the caller is (issue #18, finding 9): no credential or an invalid one is
// Unauthenticated, a valid credential of the wrong kind (a user's token on an internal or admin RPC) PermissionDenied.
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { pino } from "pino";
import { AuthAdminService, AuthInternalService, AuthService } from "../gen/im/auth/v1/auth_pb.js";
import { rpcError } from "../test/rpc-errors.js";
import { createServerInterceptors } from "./bootstrap.js";
import { createMeshVerifier, ServiceCredentials } from "./identity.js";
import { createMetricsRegistry } from "./metrics.js";
import { mount, startServer, type RunningServer } from "./server.js";

const adminToken = "operator-credential-for-the-access-test";
const userToken = "valid-user-token";

describe("access levels: unknown callers are Unauthenticated, known callers of the wrong kind PermissionDenied", () => {
  let server: RunningServer;
  const credentials = new ServiceCredentials("c".repeat(32), "access-test");

  before(async () => {
    const verifier = createMeshVerifier({
      serviceCredentials: credentials,
      adminToken,
      verifyUser: async (t) => (t === userToken ? { kind: "user", appId: "a", userId: "u", deviceId: "d", tokenId: "t" } : undefined),
    });
    server = await startServer({
      name: "access-test",
      port: 0,
      services: [
        mount(AuthService, { listDevices: async () => ({ devices: [] }) }),
        mount(AuthInternalService, { verifyToken: async () => ({ appId: "a", userId: "u", deviceId: "d", jti: "t" }) }),
        mount(AuthAdminService, { rotateAppSecret: async () => ({ apiSecret: "s" }) }),
      ],
      interceptors: createServerInterceptors({ logger: pino({ level: "silent" }), metrics: createMetricsRegistry("access-test"), verifier }),
      verifier,
    });
  });
  after(() => server.close(100));

  it("answers each kind of caller on each access level", async () => {
    const transport = createGrpcTransport({ baseUrl: server.url });
    const user = createClient(AuthService, transport);
    const internal = createClient(AuthInternalService, transport);
    const admin = createClient(AuthAdminService, transport);
    const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
    const service = await credentials.token();
    const code = async (call: Promise<unknown>) => (await rpcError(call)).code;

    expect(await code(internal.verifyToken({ accessToken: "x" }, as(userToken))), "a user on an internal RPC").to.equal(Code.PermissionDenied);
    expect(await code(admin.rotateAppSecret({ appId: "00000000-0000-4000-8000-000000000001" }, as(userToken))), "a user on an admin RPC").to.equal(Code.PermissionDenied);
    expect(await code(admin.rotateAppSecret({ appId: "00000000-0000-4000-8000-000000000001" }, as(service))), "a service on an admin RPC").to.equal(Code.PermissionDenied);
    expect(await code(user.listDevices({}, as(service))), "a service on a user RPC").to.equal(Code.PermissionDenied);
    expect(await code(internal.verifyToken({ accessToken: "x" }, as(adminToken))), "the operator on an internal RPC").to.equal(Code.PermissionDenied);

    for (const token of ["forged", "operator-credential-guess-00000000000"]) {
      expect(await code(internal.verifyToken({ accessToken: "x" }, as(token))), `${token} on an internal RPC`).to.equal(Code.Unauthenticated);
      expect(await code(admin.rotateAppSecret({ appId: "00000000-0000-4000-8000-000000000001" }, as(token)))).to.equal(Code.Unauthenticated);
    }
    expect(await code(internal.verifyToken({ accessToken: "x" })), "no credential").to.equal(Code.Unauthenticated);

    expect((await internal.verifyToken({ accessToken: "x" }, as(service))).userId).to.equal("u");
    expect((await admin.rotateAppSecret({ appId: "00000000-0000-4000-8000-000000000001" }, as(adminToken))).apiSecret).to.equal("s");
    expect((await user.listDevices({}, as(userToken))).devices).to.deep.equal([]);
  });
});
