// One Echo instance in its own process, registered in etcd, for mesh tests that kill or drain it.
// Env: IM_ETCD_ENDPOINTS, IM_ETCD_NAMESPACE, IM_MESH_SECRET, ECHO_INSTANCE_ID, ECHO_TTL_SECONDS.
// Prints "ready <port>" once registered.
import { EchoService } from "../gen/im/testing/v1/echo_pb.js";
import { exitOnSignals, startServiceProcess } from "../mesh/bootstrap.js";
import { ServiceDirectory } from "../mesh/directory.js";
import { createMeshVerifier, ServiceCredentials } from "../mesh/identity.js";
import { createLogger } from "../mesh/logger.js";
import { createMetricsRegistry } from "../mesh/metrics.js";
import { mount } from "../mesh/server.js";
import { MeshClients } from "../mesh/service-client.js";
import { EtcdRegistry } from "../platform/registry/etcd-registry.js";
import { createEchoService } from "./echo-service.js";

const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const instanceId = env("ECHO_INSTANCE_ID");
const logger = createLogger(`echo-${instanceId}`, "warn");
const metrics = createMetricsRegistry(`echo-${instanceId}`);
const registry = new EtcdRegistry(env("IM_ETCD_ENDPOINTS").split(","), { namespace: process.env.IM_ETCD_NAMESPACE });
const credentials = new ServiceCredentials(env("IM_MESH_SECRET"), "echo");
const directory = await ServiceDirectory.open(registry);
const clients = new MeshClients({ directory, credentials, metrics });
const echo = clients.client(EchoService);
const service = await startServiceProcess({
  name: "echo",
  instanceId,
  port: 0,
  services: [mount(EchoService, createEchoService(instanceId, () => echo))],
  registry,
  verifier: createMeshVerifier({ serviceCredentials: credentials }),
  logger,
  metrics,
  leaseTtlSeconds: Number(process.env.ECHO_TTL_SECONDS ?? "90"),
});
process.stdout.write(`ready ${service.server.port}\n`);
exitOnSignals(async () => {
  await service.stop(5000);
  await clients.close();
  await directory.close();
  await registry.close();
}, logger);
