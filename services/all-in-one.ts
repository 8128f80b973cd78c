// `npm start`: every service in one process on in-memory adapters, no infrastructure needed, through the same
// bootstrap as mesh mode. Services are mounted here as their issues land; until then it serves health and metrics.
import { randomBytes } from "node:crypto";
import { createLocalTransport, exitOnSignals, startServiceProcess } from "../mesh/bootstrap.js";
import { ServiceDirectory } from "../mesh/directory.js";
import { createMeshVerifier, ServiceCredentials } from "../mesh/identity.js";
import { createLogger } from "../mesh/logger.js";
import { createMetricsRegistry } from "../mesh/metrics.js";
import type { MountedService } from "../mesh/server.js";
import { MeshClients } from "../mesh/service-client.js";
import { ConfigError, loadConfig } from "../platform/config.js";
import { MemoryRegistry } from "../platform/registry/memory-registry.js";

try {
  const config = loadConfig("all-in-one", ["gateway", "auth", "user", "msg", "group"]);
  const logger = createLogger("all-in-one", config.logLevel);
  const metrics = createMetricsRegistry("all-in-one");
  // Internal calls never leave the process, so a per-process secret is enough unless one is configured.
  const credentials = new ServiceCredentials(process.env.IM_MESH_SECRET ?? randomBytes(32).toString("base64url"), "all-in-one");
  const verifier = createMeshVerifier({ serviceCredentials: credentials, adminToken: process.env.IM_ADMIN_TOKEN });
  const registry = new MemoryRegistry();
  const directory = await ServiceDirectory.open(registry);
  const services: MountedService[] = [];
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
      "  stop:    Ctrl-C",
      "",
    ].join("\n"),
  );
  exitOnSignals(async () => {
    await service.stop();
    await clients.close();
    await directory.close();
    await registry.close();
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
