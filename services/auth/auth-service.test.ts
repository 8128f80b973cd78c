// The auth service on a real server (port 0) through the mesh bootstrap, on memory adapters and on MariaDB + Redis.
import { randomUUID } from "node:crypto";
import { Code, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { AuthAdminService, AuthInternalService, AuthService, Platform } from "../../gen/im/auth/v1/auth_pb.js";
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
import { MemoryAccountStore, SqlAccountStore, type AccountStore } from "./account-store.js";
import { AccessTokenVerifier, Revocations } from "../../mesh/user-tokens.js";
import { AccessTokenIssuer } from "./access-tokens.js";
import { signInDefaults } from "./auth-limits.js";
import { createAuthServices } from "./auth-service.js";
import { MemoryRefreshTokenStore, SqlRefreshTokenStore, type RefreshTokenStore } from "./refresh-token-store.js";
import { rpcError } from "../../test/rpc-errors.js";

interface Backend {
  accounts: AccountStore;
  refreshTokens: RefreshTokenStore;
  kv: Kv;
  close(): Promise<void>;
}

const secret = "auth-test-mesh-secret-at-least-32-chars!";

function authSuite(openBackend: () => Promise<Backend>): void {
  let backend: Backend;
  let service: ServiceProcess;
  let registry: MemoryRegistry;
  let auth: Client<typeof AuthService>;
  let internal: Client<typeof AuthInternalService>;
  let admin: Client<typeof AuthAdminService>;
  const adminToken = "operator-token-from-configuration-000";
  let apiKey: string;
  let otherKey: string;
  const device = (id = "phone") => ({ deviceId: id, name: `My ${id}`, platform: Platform.IOS });
  const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
  /** A call as the gateway forwards it for a client at `address`. */
  const from = (address: string) => ({ headers: { "x-forwarded-for": address } });
  const register = (username: string, password = "correct horse 42", over: object = {}) =>
    auth.register({ apiKey, username, password, email: `${username}@example.com`, displayName: username, device: device(), ...over });

  beforeEach(async () => {
    backend = await openBackend();
    apiKey = `key-${randomUUID()}`;
    otherKey = `key-${randomUUID()}`;
    await backend.accounts.createApp({ id: randomUUID(), name: "Test", apiKey, apiSecretHash: "h" });
    await backend.accounts.createApp({ id: randomUUID(), name: "Other", apiKey: otherKey, apiSecretHash: "h" });
    const issuer = await AccessTokenIssuer.generate();
    const revocations = new Revocations(backend.kv);
    const verifier = new AccessTokenVerifier(issuer.publicKeys(), (q) => revocations.isRevoked(q));
    const services = createAuthServices({
      ...backend,
      issuer,
      verifier,
      revocations,
      // Small enough to reach in a test: 15 failures per account, 4 registrations per address and 6 per app.
      signInLimits: { ...signInDefaults, perAccount: { capacity: 15, refillPerSecond: 15 / 3600 } },
      registrationLimits: { perAddress: { capacity: 4, refillPerSecond: 4 / 3600 }, perApp: { capacity: 6, refillPerSecond: 6 / 3600 } },
    });
    const credentials = new ServiceCredentials(secret, "auth");
    registry = new MemoryRegistry();
    service = await startServiceProcess({
      name: "auth",
      port: 0,
      services: [mount(AuthService, services.auth), mount(AuthInternalService, services.internal), mount(AuthAdminService, services.admin)],
      registry,
      verifier: createMeshVerifier({ serviceCredentials: credentials, adminToken, verifyUser: (t) => verifier.verify(t) }),
      logger: createLogger("auth-test", "silent"),
      metrics: createMetricsRegistry("auth-test"),
    });
    const transport = createGrpcTransport({ baseUrl: service.server.url });
    auth = createClient(AuthService, transport);
    internal = createClient(AuthInternalService, transport);
    admin = createClient(AuthAdminService, transport);
  });
  afterEach(async () => {
    await service.stop(100);
    await registry.close();
    await backend.close();
  });

  it("registers, signs the device in, and the access token works on user RPCs", async () => {
    const { session } = await register("alice");
    expect(session?.deviceId).to.equal("phone");
    const devices = await auth.listDevices({}, bearer(session!.tokens!.accessToken));
    expect(devices.devices.map((d) => [d.deviceId, d.name, d.current])).to.deep.equal([["phone", "My phone", true]]);
    const verified = await internal.verifyToken({ accessToken: session!.tokens!.accessToken }, bearer(await new ServiceCredentials(secret, "gateway").token()));
    expect(verified).to.include({ userId: session!.userId, deviceId: "phone", appId: session!.appId });
  });

  it("refuses a taken username, a weak password, a bad email and an unknown API key, and stores nothing", async () => {
    await register("bob");
    expect((await rpcError(register("BOB"))).code).to.equal(Code.AlreadyExists);
    const weak = await rpcError(register("carol", "aaaaaaaaaaaa"));
    expect([weak.code, weak.rawMessage]).to.deep.equal([Code.InvalidArgument, "the password repeats too few different characters"]);
    expect((await rpcError(register("carol", "correct horse 42", { email: "not-an-email" }))).code).to.equal(Code.InvalidArgument);
    expect((await rpcError(register("carol", "correct horse 42", { apiKey: "nope" }))).code).to.equal(Code.Unauthenticated);
    const login = await rpcError(auth.login({ apiKey, login: { case: "username", value: "carol" }, password: "correct horse 42", device: device() }));
    expect(login.code, "carol was never stored").to.equal(Code.Unauthenticated);
  });

  it("answers a wrong password and an unknown user alike, and keeps apps apart", async () => {
    await register("dave");
    const wrong = await rpcError(auth.login({ apiKey, login: { case: "username", value: "dave" }, password: "not the password", device: device() }));
    const unknown = await rpcError(auth.login({ apiKey, login: { case: "username", value: "nobody" }, password: "whatever 123", device: device() }));
    const otherApp = await rpcError(auth.login({ apiKey: otherKey, login: { case: "username", value: "dave" }, password: "correct horse 42", device: device() }));
    for (const err of [wrong, unknown, otherApp]) expect([err.code, err.rawMessage]).to.deep.equal([Code.Unauthenticated, "wrong username, email or password"]);
    const byEmail = await auth.login({ apiKey, login: { case: "email", value: "DAVE@example.com" }, password: "correct horse 42", device: device("laptop") });
    expect(byEmail.session?.deviceId).to.equal("laptop");
  });

  it("rotates refresh tokens, and a replayed one ends the whole session", async () => {
    const { session } = await register("erin");
    const first = await auth.refreshToken({ refreshToken: session!.tokens!.refreshToken });
    const second = await auth.refreshToken({ refreshToken: first.session!.tokens!.refreshToken });
    expect(second.session?.userId).to.equal(session?.userId);
    const replay = await rpcError(auth.refreshToken({ refreshToken: session!.tokens!.refreshToken }));
    expect(replay.code).to.equal(Code.Unauthenticated);
    expect(replay.rawMessage).to.match(/already used/);
    expect((await rpcError(auth.refreshToken({ refreshToken: second.session!.tokens!.refreshToken }))).code, "the newest token died with its family").to.equal(Code.Unauthenticated);
    expect((await rpcError(auth.listDevices({}, bearer(second.session!.tokens!.accessToken)))).code, "and so did the access token").to.equal(Code.Unauthenticated);
  });

  it("logs out: the access and refresh tokens stop working at once", async () => {
    const { session } = await register("frank");
    expect((await auth.logout({}, bearer(session!.tokens!.accessToken))).devicesSignedOut).to.equal(1);
    expect((await rpcError(auth.listDevices({}, bearer(session!.tokens!.accessToken)))).code).to.equal(Code.Unauthenticated);
    expect((await rpcError(auth.refreshToken({ refreshToken: session!.tokens!.refreshToken }))).code).to.equal(Code.Unauthenticated);
  });

  it("revokes another of the user's devices, and a new sign-in of a device replaces its old session", async () => {
    const phone = (await register("grace")).session!;
    const laptop = (await auth.login({ apiKey, login: { case: "username", value: "grace" }, password: "correct horse 42", device: device("laptop") })).session!;
    const listed = await auth.listDevices({}, bearer(phone.tokens!.accessToken));
    expect(listed.devices.map((d) => d.deviceId).sort()).to.deep.equal(["laptop", "phone"]);
    await auth.revokeDevice({ deviceId: "laptop" }, bearer(phone.tokens!.accessToken));
    expect((await rpcError(auth.listDevices({}, bearer(laptop.tokens!.accessToken)))).code).to.equal(Code.Unauthenticated);
    expect((await rpcError(auth.refreshToken({ refreshToken: laptop.tokens!.refreshToken }))).code).to.equal(Code.Unauthenticated);
    await new Promise((r) => setTimeout(r, 5));
    const again = (await auth.login({ apiKey, login: { case: "username", value: "grace" }, password: "correct horse 42", device: device("phone") })).session!;
    expect((await rpcError(auth.listDevices({}, bearer(phone.tokens!.accessToken)))).code, "the replaced session").to.equal(Code.Unauthenticated);
    expect((await auth.listDevices({}, bearer(again.tokens!.accessToken))).devices.map((d) => d.deviceId)).to.deep.equal(["phone"]);
  });

  it("throttles repeated sign-in attempts on one account with a retry-after", async function () {
    this.timeout(30_000);
    await register("heidi");
    const attempt = () => rpcError(auth.login({ apiKey, login: { case: "username", value: "heidi" }, password: "guess guess 1", device: device() }));
    const codes: Code[] = [];
    for (let i = 0; i < 11; i++) codes.push((await attempt())!.code);
    expect(codes.slice(0, 10).every((c) => c === Code.Unauthenticated)).to.equal(true);
    const limited = await attempt();
    expect(limited.code).to.equal(Code.ResourceExhausted);
    expect(Number(limited.metadata.get("retry-after"))).to.be.within(1, 900);
    const rightPassword = await rpcError(auth.login({ apiKey, login: { case: "username", value: "heidi" }, password: "correct horse 42", device: device() }));
    expect(rightPassword.code, "even the right password waits, from that address").to.equal(Code.ResourceExhausted);
    const elsewhere = await auth.login({ apiKey, login: { case: "username", value: "heidi" }, password: "correct horse 42", device: device() }, from("198.51.100.7"));
    expect(elsewhere.session?.deviceId, "the owner elsewhere is not locked out").to.equal("phone");
  });

  it("counts wrong passwords from everywhere, and past that admits only addresses the account signed in from", async function () {
    this.timeout(30_000);
    await register("kim");
    const attempt = (password: string, address: string) => auth.login({ apiKey, login: { case: "username", value: "kim" }, password, device: device() }, from(address));
    for (let i = 0; i < 10; i++) expect((await rpcError(attempt("guess guess 1", "203.0.113.1"))).code).to.equal(Code.Unauthenticated);
    for (let i = 0; i < 5; i++) expect((await rpcError(attempt("guess guess 2", "203.0.113.2"))).code).to.equal(Code.Unauthenticated);
    const stranger = await rpcError(attempt("correct horse 42", "203.0.113.3"));
    expect([stranger.code, stranger.rawMessage]).to.match(/device that signed in before/).and.include(Code.ResourceExhausted);
    const known = await auth.login({ apiKey, login: { case: "username", value: "kim" }, password: "correct horse 42", device: device() });
    expect(known.session?.deviceId, "the address kim registered from still signs in").to.equal("phone");
  });

  it("limits registrations per address and per app, with a retry-after", async function () {
    this.timeout(30_000);
    const at = (username: string, address: string) =>
      auth.register({ apiKey, username, password: "correct horse 42", device: device() }, from(address));
    for (let i = 0; i < 4; i++) await at(`first${i}`, "198.51.100.1");
    const address = await rpcError(at("first4", "198.51.100.1"));
    expect([address.code, address.rawMessage]).to.match(/from this address/).and.include(Code.ResourceExhausted);
    expect(Number(address.metadata.get("retry-after"))).to.be.above(0);
    for (let i = 0; i < 2; i++) await at(`second${i}`, "198.51.100.2");
    const app = await rpcError(at("third0", "198.51.100.3"));
    expect([app.code, app.rawMessage]).to.match(/this app/).and.include(Code.ResourceExhausted);
  });

  it("registers with a taken email without saying so, and the email stays with its first account", async () => {
    const first = (await register("lena")).session!;
    const second = await auth.register({ apiKey, username: "lena2", password: "other horse 43", email: "LENA@example.com", device: device() });
    expect(second.session?.userId, "answered like any registration").to.be.a("string").and.not.equal(first.userId);
    const byEmail = await auth.login({ apiKey, login: { case: "email", value: "lena@example.com" }, password: "correct horse 42", device: device() });
    expect(byEmail.session?.userId).to.equal(first.userId);
    expect((await rpcError(auth.login({ apiKey, login: { case: "email", value: "lena@example.com" }, password: "other horse 43", device: device() }))).code).to.equal(Code.Unauthenticated);
    expect((await rpcError(register("LENA"))).code, "a taken username is still said").to.equal(Code.AlreadyExists);
  });

  it("lets the operator create an app whose users can register, and rotate its secret; nobody else", async () => {
    const created = await admin.createApp({ name: "New App" }, bearer(adminToken));
    expect(created.apiKey).to.match(/^ak_[A-Za-z0-9_-]{22}$/);
    expect(created.apiSecret).to.have.length(43);
    const stored = await backend.accounts.findApp(created.appId);
    expect(stored?.apiSecretHash).to.match(/^sha256\$[0-9a-f]{64}$/);
    expect(stored?.apiSecretHash).to.not.contain(created.apiSecret);
    const { session } = await auth.register({ apiKey: created.apiKey, username: "judy", password: "correct horse 42", device: device() });
    expect(session?.appId).to.equal(created.appId);
    const rotated = await admin.rotateAppSecret({ appId: created.appId }, bearer(adminToken));
    expect(rotated.apiSecret).to.not.equal(created.apiSecret);
    expect((await backend.accounts.findApp(created.appId))?.apiSecretHash).to.not.equal(stored?.apiSecretHash);
    expect((await rpcError(admin.rotateAppSecret({ appId: randomUUID() }, bearer(adminToken)))).code).to.equal(Code.NotFound);
    expect((await rpcError(admin.createApp({ name: "x" }, bearer("operator-token-guess-0000000000000")))).code).to.equal(Code.Unauthenticated);
    expect((await rpcError(admin.createApp({ name: "x" }, bearer(session!.tokens!.accessToken)))).code, "a user is known, but not the operator").to.equal(Code.PermissionDenied);
  });

  it("refuses user RPCs without a token or with a service credential instead, and internal RPCs with a user token", async () => {
    const { session } = await register("ivan");
    expect((await rpcError(auth.listDevices({}))).code).to.equal(Code.Unauthenticated);
    expect((await rpcError(auth.listDevices({}, bearer(await new ServiceCredentials(secret, "gateway").token())))).code).to.equal(Code.PermissionDenied);
    expect((await rpcError(internal.verifyToken({ accessToken: "x" }, bearer(session!.tokens!.accessToken)))).code).to.equal(Code.PermissionDenied);
  });
}

describe("auth service: memory adapters", function () {
  this.timeout(20_000);
  authSuite(async () => {
    const tables = new MemoryTables();
    const kv = new MemoryKv();
    return { accounts: new MemoryAccountStore(tables), refreshTokens: new MemoryRefreshTokenStore(tables), kv, close: () => kv.close() };
  });
});

describe("auth service: MariaDB and Redis @infra", function () {
  this.timeout(30_000);
  authSuite(async () => {
    const scratch = await scratchDatabase();
    const kv = await RedisKv.connect(infraEnv("IM_REDIS_URL"));
    return {
      accounts: new SqlAccountStore(scratch.db),
      refreshTokens: new SqlRefreshTokenStore(scratch.db),
      kv,
      close: async () => {
        await kv.close();
        await scratch.drop();
      },
    };
  });
});
