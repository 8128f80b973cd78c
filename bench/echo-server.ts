// The server side of the mesh-client benchmark, in its own process: one Echo instance on an ephemeral port,
// with the standard interceptors. Env: IM_MESH_SECRET. Prints "ready <port>".
import { EchoService } from "../gen/im/testing/v1/echo_pb.js";
import { exitOnSignals, startServiceProcess } from "../mesh/bootstrap.js";
import { createMeshVerifier, ServiceCredentials } from "../mesh/identity.js";
import { createLogger } from "../mesh/logger.js";
import { createMetricsRegistry } from "../mesh/metrics.js";
import { mount } from "../mesh/server.js";
import { MemoryRegistry } from "../platform/registry/memory-registry.js";
import { createEchoService } from "../test/echo-service.js";

const secret = process.env.IM_MESH_SECRET;
if (!secret) throw new Error("IM_MESH_SECRET is not set");
const logger = createLogger("bench-echo", "warn");
const registry = new MemoryRegistry();
const service = await startServiceProcess({
  name: "bench-echo",
  port: 0,
  services: [mount(EchoService, createEchoService("bench"))],
  registry,
  verifier: createMeshVerifier({ serviceCredentials: new ServiceCredentials(secret, "bench-echo") }),
  logger,
  metrics: createMetricsRegistry("bench-echo"),
});
process.stdout.write(`ready ${service.server.port}\n`);
exitOnSignals(async () => {
  await service.stop(1000);
  await registry.close();
}, logger);
