// All-in-one mode: several services in one process through the same bootstrap, calling each other in-process.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { EchoService } from "../gen/im/testing/v1/echo_pb.js";
import { MemoryRegistry } from "../platform/registry/memory-registry.js";
import { createEchoService } from "../test/echo-service.js";
import { rpcError } from "../test/rpc-errors.js";
import { createLocalTransport, startServiceProcess, type ServiceProcess } from "./bootstrap.js";
import { ServiceDirectory } from "./directory.js";
import { createMeshVerifier, ServiceCredentials } from "./identity.js";
import { createLogger } from "./logger.js";
import { createMetricsRegistry } from "./metrics.js";
import { mount } from "./server.js";
import { MeshClients } from "./service-client.js";

describe("all-in-one mode", () => {
  const credentials = new ServiceCredentials("all-in-one-test-secret-of-32-characters!", "all-in-one");
  const verifier = createMeshVerifier({ serviceCredentials: credentials });
  const logger = createLogger("all-in-one-test", "silent");
  let registry: MemoryRegistry;
  let directory: ServiceDirectory;
  let clients: MeshClients;
  let service: ServiceProcess;
  let metrics: ReturnType<typeof createMetricsRegistry>;

  beforeEach(async () => {
    metrics = createMetricsRegistry("all-in-one-test");
    registry = new MemoryRegistry();
    directory = await ServiceDirectory.open(registry);
    const echo = () => clients.client(EchoService);
    const services = [mount(EchoService, createEchoService("solo", echo))];
    clients = new MeshClients({ directory, credentials, metrics, local: createLocalTransport(services, { logger, metrics, verifier }) });
    service = await startServiceProcess({ name: "all-in-one", port: 0, services, registry, verifier, logger, metrics });
  });
  afterEach(async () => {
    await service.stop(100);
    await clients.close();
    await directory.close();
    await registry.close();
  });

  it("calls services of the same process in-process, with the same identity, request id, deadline and metrics rules", async () => {
    const res = await clients.client(EchoService).relay({ echo: { text: "inside" } }, { headers: { "x-request-id": "local-1" } });
    expect(res.echo).to.include({ text: "inside", caller: "service:all-in-one", requestId: "local-1", instanceId: "solo" });
    expect(res.echo?.timeoutMs).to.be.within(1, 5000);
    const text = await metrics.metrics();
    expect(text).to.match(/rpc_server_requests_total\{rpc="im\.testing\.v1\.EchoService\/Echo",code="ok"[^}]*\} 1/);
    expect(text, "no network connection was made").to.not.match(/mesh_breaker_state\{/);
    // protovalidate runs where requests enter; a call between services of one process is not validated again.
    const inside = await rpcError(clients.client(EchoService).echo({ delayMs: 99_999 }, { timeoutMs: 50 }));
    expect((inside as ConnectError).code).to.be.oneOf([Code.Canceled, Code.DeadlineExceeded]);
    const outside = createClient(EchoService, createGrpcTransport({ baseUrl: service.server.url }));
    const invalid = await rpcError(outside.echo({ delayMs: 99_999 }, { headers: { authorization: `Bearer ${await credentials.token()}` } }));
    expect((invalid as ConnectError).code).to.equal(Code.InvalidArgument);
  });

  it("registers the process in the in-memory registry and serves outside callers over the network too", async () => {
    expect(directory.instances(EchoService.typeName).map((i) => i.addr)).to.deep.equal([`127.0.0.1:${service.server.port}`]);
    const outside = createClient(EchoService, createGrpcTransport({ baseUrl: service.server.url }));
    const res = await outside.echo({ text: "from outside" }, { headers: { authorization: `Bearer ${await credentials.token()}` } });
    expect(res.instanceId).to.equal("solo");
    await service.stop(100);
    expect(directory.instances(EchoService.typeName)).to.deep.equal([]);
  });
});
