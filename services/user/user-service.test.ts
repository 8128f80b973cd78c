// The user service on a real server (port 0) through the mesh bootstrap, on memory adapters and on MariaDB + Redis.
import { randomUUID } from "node:crypto";
import { Code, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { UserService } from "../../gen/im/user/v1/user_pb.js";
import { startServiceProcess, type ServiceProcess } from "../../mesh/bootstrap.js";
import { createMeshVerifier, ServiceCredentials } from "../../mesh/identity.js";
import { createLogger } from "../../mesh/logger.js";
import { createMetricsRegistry } from "../../mesh/metrics.js";
import { mount } from "../../mesh/server.js";
import type { Kv } from "../../platform/kv/kv.js";
import { MemoryKv } from "../../platform/kv/memory-kv.js";
import { RedisKv } from "../../platform/kv/redis-kv.js";
import { MemoryRegistry } from "../../platform/registry/memory-registry.js";
import { MemoryTables } from "../../platform/store/memory-tables.js";
import { infraEnv } from "../../test/infra.js";
import { scratchDatabase } from "../../test/mysql-db.js";
import { AccessTokenIssuer } from "../auth/access-tokens.js";
import { AccessTokenVerifier } from "../../mesh/user-tokens.js";
import { MemoryProfileStore, SqlProfileStore, type ProfileStore } from "./profile-store.js";
import { createUserService } from "./user-service.js";
import { rpcError } from "../../test/rpc-errors.js";

interface Backend {
  profiles: ProfileStore;
  kv: Kv;
  seed(appId: string, users: { id: string; username: string; displayName: string }[]): Promise<void>;
  close(): Promise<void>;
}

function userSuite(openBackend: () => Promise<Backend>): void {
  let backend: Backend;
  let service: ServiceProcess;
  let registry: MemoryRegistry;
  let users: Client<typeof UserService>;
  let issuer: AccessTokenIssuer;
  const app = randomUUID();
  const otherApp = randomUUID();
  const ids = { alice: randomUUID(), bob: randomUUID(), albert: randomUUID(), stranger: randomUUID() };
  const as = async (appId: string, userId: string) => ({ headers: { authorization: `Bearer ${(await issuer.issue({ appId, userId, deviceId: "d" })).token}` } });

  beforeEach(async () => {
    backend = await openBackend();
    await backend.seed(app, [
      { id: ids.alice, username: "alice", displayName: "Alice" },
      { id: ids.bob, username: "bob", displayName: "Bob" },
      { id: ids.albert, username: "albert", displayName: "Albert" },
    ]);
    await backend.seed(otherApp, [{ id: ids.stranger, username: "alicia", displayName: "Alicia" }]);
    issuer = await AccessTokenIssuer.generate();
    const verifier = new AccessTokenVerifier(issuer.publicKeys());
    registry = new MemoryRegistry();
    service = await startServiceProcess({
      name: "user",
      port: 0,
      services: [mount(UserService, createUserService(backend))],
      registry,
      verifier: createMeshVerifier({ serviceCredentials: new ServiceCredentials("user-test-mesh-secret-32-characters!!", "user"), verifyUser: (t) => verifier.verify(t) }),
      logger: createLogger("user-test", "silent"),
      metrics: createMetricsRegistry("user-test"),
    });
    users = createClient(UserService, createGrpcTransport({ baseUrl: service.server.url }));
  });
  afterEach(async () => {
    await service.stop(100);
    await registry.close();
    await backend.close();
  });

  it("shows profiles within the app, with the email only on the caller's own", async () => {
    const own = await users.getUser({ userId: ids.alice }, await as(app, ids.alice));
    expect(own.user).to.include({ username: "alice", email: "alice@example.com" });
    const other = await users.getUser({ userId: ids.bob }, await as(app, ids.alice));
    expect(other.user).to.include({ username: "bob", email: "" });
    const foreign = await rpcError(users.getUser({ userId: ids.stranger }, await as(app, ids.alice)));
    expect([foreign.code, foreign.rawMessage]).to.deep.equal([Code.NotFound, `no user ${ids.stranger} in this app`]);
    expect((await rpcError(users.getUser({ userId: ids.alice }))).code).to.equal(Code.Unauthenticated);
    expect((await rpcError(users.getUser({ userId: "alice" }, await as(app, ids.alice)))).code).to.equal(Code.InvalidArgument);
  });

  it("batch-gets in order and lists the ids it could not find", async () => {
    const missing = randomUUID();
    const res = await users.batchGetUsers({ userIds: [ids.bob, missing, ids.stranger, ids.alice] }, await as(app, ids.bob));
    expect(res.users.map((u) => u.username)).to.deep.equal(["bob", "alice"]);
    expect(res.missingUserIds).to.deep.equal([missing, ids.stranger]);
  });

  it("updates only the caller's own profile, refuses non-https avatars, and serves the change at once despite the cache", async () => {
    const auth = await as(app, ids.bob);
    expect((await users.getUser({ userId: ids.bob }, auth)).user?.displayName).to.equal("Bob");
    const updated = await users.updateProfile({ displayName: "  Robert ", avatarUrl: "https://cdn.example.com/bob.png" }, auth);
    expect(updated.user).to.include({ displayName: "Robert", avatarUrl: "https://cdn.example.com/bob.png" });
    expect((await users.getUser({ userId: ids.bob }, await as(app, ids.alice))).user?.displayName).to.equal("Robert");
    for (const avatarUrl of ["http://cdn.example.com/x.png", "javascript:alert(1)", "not a url"]) {
      expect((await rpcError(users.updateProfile({ avatarUrl }, auth))).code, avatarUrl).to.equal(Code.InvalidArgument);
    }
    expect((await rpcError(users.updateProfile({ displayName: "   " }, auth))).code).to.equal(Code.InvalidArgument);
    expect((await users.updateProfile({ avatarUrl: "" }, auth)).user?.avatarUrl).to.equal("");
  });

  it("searches by prefix within the app and pages with opaque tokens", async () => {
    const auth = await as(app, ids.alice);
    const first = await users.searchUsers({ query: "al", pageSize: 1 }, auth);
    expect(first.users.map((u) => u.username)).to.deep.equal(["albert"]);
    const second = await users.searchUsers({ query: "al", pageSize: 1, pageToken: first.nextPageToken }, auth);
    expect(second.users.map((u) => u.username)).to.deep.equal(["alice"]);
    expect(second.nextPageToken).to.equal("");
    expect((await rpcError(users.searchUsers({ query: "al", pageToken: "!!bogus" }, auth))).code).to.equal(Code.InvalidArgument);
  });
}

describe("user service: memory adapters", () => {
  userSuite(async () => {
    const tables = new MemoryTables();
    const kv = new MemoryKv();
    return {
      profiles: new MemoryProfileStore(tables),
      kv,
      seed: async (appId, list) => {
        const now = new Date();
        tables.apps.set(appId, { id: appId, name: "app", apiKey: `key-${appId}`, apiSecretHash: "h", createdAt: now });
        for (const u of list) tables.users.set(u.id, { ...u, appId, email: `${u.username}@example.com`, avatarUrl: "", passwordHash: "h", createdAt: now, updatedAt: now });
      },
      close: () => kv.close(),
    };
  });
});

describe("user service: MariaDB and Redis @infra", function () {
  this.timeout(30_000);
  userSuite(async () => {
    const scratch = await scratchDatabase();
    const kv = await RedisKv.connect(infraEnv("IM_REDIS_URL"));
    return {
      profiles: new SqlProfileStore(scratch.db),
      kv,
      seed: async (appId, list) => {
        await scratch.db.execute("INSERT INTO app (id, name, api_key, api_secret_hash) VALUES (?, 'app', ?, 'h')", [appId, `key-${appId}`]);
        for (const u of list) {
          await scratch.db.execute("INSERT INTO users (app_id, id, username, email, display_name, password_hash) VALUES (?, ?, ?, ?, ?, 'h')", [
            appId, u.id, u.username, `${u.username}@example.com`, u.displayName,
          ]);
        }
      },
      close: async () => {
        await kv.close();
        await scratch.drop();
      },
    };
  });
});
