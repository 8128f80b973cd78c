// `npm start`: every service in one process on in-memory adapters with the demo data, no infrastructure needed,
// through the same bootstrap as mesh mode. Services are mounted here as their issues land (auth and user so far).
import { randomBytes } from "node:crypto";
import { createLocalTransport, exitOnSignals, startServiceProcess } from "../mesh/bootstrap.js";
import { ServiceDirectory } from "../mesh/directory.js";
import { createMeshVerifier, ServiceCredentials } from "../mesh/identity.js";
import { createLogger } from "../mesh/logger.js";
import { createMetricsRegistry } from "../mesh/metrics.js";
import { mount, type MountedService } from "../mesh/server.js";
import { MeshClients } from "../mesh/service-client.js";
import { ConfigError, loadConfig } from "../platform/config.js";
import { MemoryKv } from "../platform/kv/memory-kv.js";
import { MemoryRegistry } from "../platform/registry/memory-registry.js";
import { demo, seedDemo } from "../platform/store/demo-data.js";
import { MemoryTables } from "../platform/store/memory-tables.js";
import { AccessTokenVerifier, Revocations } from "../mesh/user-tokens.js";
import { AuthAdminService, AuthInternalService, AuthService } from "../gen/im/auth/v1/auth_pb.js";
import { UserService } from "../gen/im/user/v1/user_pb.js";
import { MemoryAccountStore } from "./auth/account-store.js";
import { AccessTokenIssuer } from "./auth/access-tokens.js";
import { createAuthServices } from "./auth/auth-service.js";
import { MemoryRefreshTokenStore } from "./auth/refresh-token-store.js";
import { MemoryProfileStore } from "./user/profile-store.js";
import { createUserService } from "./user/user-service.js";

try {
  const config = loadConfig("all-in-one", ["gateway", "auth", "user", "msg", "group"]);
  const logger = createLogger("all-in-one", config.logLevel);
  const metrics = createMetricsRegistry("all-in-one");
  // Internal calls never leave the process, so a per-process secret is enough unless one is configured.
  const credentials = new ServiceCredentials(process.env.IM_MESH_SECRET ?? randomBytes(32).toString("base64url"), "all-in-one");
  const tables = new MemoryTables();
  seedDemo(tables);
  const kv = new MemoryKv();
  const issuer = await AccessTokenIssuer.generate();
  const revocations = new Revocations(kv);
  const tokens = new AccessTokenVerifier(issuer.publicKeys(), (q) => revocations.isRevoked(q));
  const verifier = createMeshVerifier({ serviceCredentials: credentials, adminToken: process.env.IM_ADMIN_TOKEN, verifyUser: (t) => tokens.verify(t) });
  const registry = new MemoryRegistry();
  const directory = await ServiceDirectory.open(registry);
  const auth = createAuthServices({
    accounts: new MemoryAccountStore(tables),
    refreshTokens: new MemoryRefreshTokenStore(tables),
    issuer,
    verifier: tokens,
    revocations,
    kv,
  });
  const services: MountedService[] = [
    mount(AuthService, auth.auth),
    mount(AuthInternalService, auth.internal),
    mount(AuthAdminService, auth.admin),
    mount(UserService, createUserService({ profiles: new MemoryProfileStore(tables), kv })),
  ];
  const clients = new MeshClients({ directory, credentials, metrics, local: createLocalTransport(services, { logger, metrics, verifier }) });
  const service = await startServiceProcess({
    name: "all-in-one",
    host: config.host,
    port: config.ports.gateway,
    services,
    registry,
    verifier,
    logger,
    metrics,
  });
  const url = service.server.url;
  process.stdout.write(
    [
      "",
      `im-mesh is running (all-in-one, in-memory adapters) at ${url}`,
      `  health:  npx buf curl --schema proto --protocol grpc --http2-prior-knowledge ${url}/grpc.health.v1.Health/Check`,
      `  metrics: curl ${url}/metrics`,
      `  demo:    app key ${demo.apiKey}; users ${demo.users.map((u) => u.username).join(", ")}; password ${demo.password}`,
      `  sign in: npx buf curl --schema proto --protocol grpc --http2-prior-knowledge ${url}/im.auth.v1.AuthService/Login \\`,
      `             -d '{"apiKey":"${demo.apiKey}","username":"alice","password":"${demo.password}","device":{"deviceId":"cli"}}'`,
      "  stop:    Ctrl-C",
      "",
    ].join("\n"),
  );
  exitOnSignals(async () => {
    await service.stop();
    await clients.close();
    await directory.close();
    await registry.close();
    await kv.close();
  }, logger);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`im-mesh: configuration error: ${err.message}\n`);
    process.exit(2);
  }
  if ((err as NodeJS.ErrnoException).code === "EADDRINUSE") {
    process.stderr.write("im-mesh: the port is already in use; set IM_GATEWAY_PORT to another port (0 picks a free one)\n");
    process.exit(2);
  }
  throw err;
}
