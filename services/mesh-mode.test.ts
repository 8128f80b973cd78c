// @infra: auth and user each in their own process (their main.ts) on real etcd, MariaDB and Redis, as `make mesh-up`
// and the helm chart run them. The user service verifies access tokens locally with keys it fetched from auth.
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { expect } from "chai";
import { exportJWK, generateKeyPair } from "jose";
import { AuthService, Platform } from "../gen/im/auth/v1/auth_pb.js";
import { UserService } from "../gen/im/user/v1/user_pb.js";
import { demo } from "../platform/store/demo-data.js";
import { infraEnv } from "../test/infra.js";
import { scratchDatabase, type ScratchDatabase } from "../test/mysql-db.js";
import { startNodeProcess, type NodeProcess } from "../test/processes.js";
import { rpcError } from "../test/rpc-errors.js";

const root = fileURLToPath(new URL("..", import.meta.url));

async function signingKey(): Promise<object> {
  const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  return { ...(await exportJWK(privateKey)), kid: randomUUID() };
}

describe("auth and user in mesh mode @infra", function () {
  this.timeout(60_000);
  let database: ScratchDatabase;
  let env: NodeJS.ProcessEnv;
  const running: NodeProcess[] = [];

  const start = async (service: "auth" | "user", extra: NodeJS.ProcessEnv = {}) => {
    const p = await startNodeProcess(`services/${service}/main.ts`, { ...env, ...extra }, root);
    running.push(p);
    return p;
  };

  beforeEach(async () => {
    database = await scratchDatabase(["demo"]);
    env = {
      IM_ETCD_ENDPOINTS: infraEnv("IM_ETCD_ENDPOINTS"),
      IM_ETCD_NAMESPACE: `/test-${randomUUID()}/`,
      IM_MYSQL_URL: database.url,
      IM_REDIS_URL: infraEnv("IM_REDIS_URL"),
      IM_MESH_SECRET: randomUUID() + randomUUID(),
      IM_AUTH_SIGNING_KEYS: JSON.stringify([await signingKey()]),
      IM_AUTH_PORT: "0",
      IM_USER_PORT: "0",
      IM_LOG_LEVEL: "warn",
    };
  });

  afterEach(async () => {
    for (const p of running.splice(0)) {
      if (p.child.exitCode === null) p.child.kill("SIGKILL");
      await p.exited;
    }
    await database.drop();
  });

  it("a @grpc/grpc-js client registers at auth, and the user service accepts the token, then refuses it after logout", async () => {
    const auth = await start("auth");
    const user = await start("user");
    const def = protoLoader.loadSync(["im/auth/v1/auth.proto", "im/user/v1/user.proto"], { includeDirs: [`${root}/proto`, `${root}/.run/proto-deps`] });
    const pkg = grpc.loadPackageDefinition(def) as any;
    type Unary = (req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: any) => void) => void;
    const authClient = new pkg.im.auth.v1.AuthService(`127.0.0.1:${auth.port}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Unary>;
    const userClient = new pkg.im.user.v1.UserService(`127.0.0.1:${user.port}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Unary>;
    const call = (client: Record<string, Unary>, method: string, req: object, token?: string) => {
      const md = new grpc.Metadata();
      if (token) md.set("authorization", `Bearer ${token}`);
      return new Promise<any>((resolve, reject) => client[method]!(req, md, (err, res) => (err ? reject(err) : resolve(res))));
    };
    try {
      const device = { deviceId: "grpc-js", name: "grpc-js", platform: "PLATFORM_SERVER" };
      const { session } = await call(authClient, "Register", { apiKey: demo.apiKey, username: "mesh_zed", password: "correct horse 42", email: "zed@example.com", device });
      const me = await call(userClient, "GetUser", { userId: session.userId }, session.tokens.accessToken);
      expect(me.user).to.include({ username: "mesh_zed", email: "zed@example.com" });
      const alice = await call(userClient, "GetUser", { userId: demo.users[0]!.id }, session.tokens.accessToken);
      expect(alice.user.username).to.equal("alice");
      await call(authClient, "Logout", {}, session.tokens.accessToken);
      // The revocation lives in Redis, which the user service reads too.
      const refused = await call(userClient, "GetUser", { userId: session.userId }, session.tokens.accessToken).catch((e: grpc.ServiceError) => e);
      expect((refused as grpc.ServiceError).code).to.equal(grpc.status.UNAUTHENTICATED);
    } finally {
      authClient.close();
      userClient.close();
    }
  });

  it("after auth restarts with a rotated key, the user service learns it from the first token and keeps the old tokens valid", async () => {
    const oldKey = JSON.parse(env.IM_AUTH_SIGNING_KEYS!)[0];
    const auth = await start("auth");
    const user = await start("user");
    const device = { deviceId: "rotation", name: "rotation", platform: Platform.CLI };
    const login = async (port: number) =>
      (await createClient(AuthService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` })).login({
        apiKey: demo.apiKey,
        login: { case: "username", value: "bob" },
        password: demo.password,
        device: { ...device, deviceId: randomUUID() },
      })).session!.tokens!.accessToken;
    const users = createClient(UserService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${user.port}` }));
    const asBearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
    const before = await login(auth.port);
    expect((await users.getUser({ userId: demo.users[1]!.id }, asBearer(before))).user?.username).to.equal("bob");

    auth.child.kill("SIGTERM");
    expect(await auth.exited).to.equal(0);
    const rotated = await start("auth", { IM_AUTH_SIGNING_KEYS: JSON.stringify([await signingKey(), oldKey]) });
    const after = await login(rotated.port);
    // The user service fetched keys at start; an unknown key id makes it fetch again (at most every 5 s).
    const deadline = Date.now() + 15_000;
    for (;;) {
      const res = await users.getUser({ userId: demo.users[1]!.id }, asBearer(after)).catch((e: unknown) => e);
      if (!(res instanceof Error)) break;
      expect((await rpcError(Promise.reject(res))).code).to.equal(Code.Unauthenticated);
      if (Date.now() > deadline) throw new Error("the user service never learned the rotated key");
      await new Promise((r) => setTimeout(r, 500));
    }
    expect((await users.getUser({ userId: demo.users[1]!.id }, asBearer(before))).user?.username, "a token of the old key").to.equal("bob");
  });

  it("refuses to start without the shared secret and names the variable", async () => {
    const err = await start("user", { IM_MESH_SECRET: "" }).catch((e: Error) => e);
    expect((err as Error).message).to.match(/exited with 2/);
    expect((err as Error).message).to.contain("IM_MESH_SECRET: must be set in mesh mode");
  });
});
