// @infra: the mesh runtime on real etcd with Echo instances in their own processes (test/echo-process.ts).
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { expect } from "chai";
import { UserService } from "../gen/im/user/v1/user_pb.js";
import { EchoService } from "../gen/im/testing/v1/echo_pb.js";
import { eventually } from "../test/eventually.js";
import { EtcdRegistry } from "../platform/registry/etcd-registry.js";
import { infraEnv } from "../test/infra.js";
import { startNodeProcess, type NodeProcess } from "../test/processes.js";
import { rpcError } from "../test/rpc-errors.js";
import { ServiceDirectory } from "./directory.js";
import { ServiceCredentials } from "./identity.js";
import { createMetricsRegistry } from "./metrics.js";
import { MeshClients } from "./service-client.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const secret = "mesh-test-secret-with-at-least-32-characters";

interface EchoProcess extends NodeProcess {
  readonly id: string;
}

async function startEcho(namespace: string, id: string, ttlSeconds: number): Promise<EchoProcess> {
  const env = { IM_ETCD_NAMESPACE: namespace, IM_MESH_SECRET: secret, ECHO_INSTANCE_ID: id, ECHO_TTL_SECONDS: String(ttlSeconds) };
  return { id, ...(await startNodeProcess("test/echo-process.ts", env, root)) };
}

describe("mesh runtime on etcd @infra", function () {
  this.timeout(60_000);
  let namespace: string;
  let registry: EtcdRegistry;
  let directory: ServiceDirectory;
  let clients: MeshClients;
  let echo: Client<typeof EchoService>;
  let processes: EchoProcess[];
  let metrics: ReturnType<typeof createMetricsRegistry>;

  const start = async (count: number, ttlSeconds = 30) => {
    const started = await Promise.all(Array.from({ length: count }, (_, i) => startEcho(namespace, `e${i + 1}`, ttlSeconds)));
    processes.push(...started);
    await eventually(`${count} instances in the directory`, () => directory.instances(EchoService.typeName).length === count);
    return started;
  };

  beforeEach(async () => {
    namespace = `/test-${randomUUID()}`;
    registry = new EtcdRegistry(infraEnv("IM_ETCD_ENDPOINTS").split(","), { namespace });
    metrics = createMetricsRegistry("mesh-test");
    directory = await ServiceDirectory.open(registry);
    clients = new MeshClients({ directory, credentials: new ServiceCredentials(secret, "tester"), metrics, breaker: { resetTimeoutMs: 30_000 } });
    echo = clients.client(EchoService);
    processes = [];
  });
  afterEach(async () => {
    for (const p of processes) if (p.child.exitCode === null) p.child.kill("SIGKILL");
    await Promise.all(processes.map((p) => p.exited));
    await clients.close();
    await directory.close();
    await registry.close();
  });

  it("spreads calls round robin over every registered instance", async () => {
    await start(3);
    const counts = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const res = await echo.echo({ text: `hi ${i}` });
      expect(res.text).to.equal(`hi ${i}`);
      counts.set(res.instanceId, (counts.get(res.instanceId) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).to.deep.equal(["e1", "e2", "e3"]);
    for (const n of counts.values()) expect(n).to.equal(10);
  });

  it("stops calling a SIGKILLed instance once its lease expires, with errors bounded meanwhile", async () => {
    const [, , victim] = await start(3, 3);
    const echoErrors: string[] = [];
    let recordErrors = 0;
    const answeredBy = new Set<string>();
    victim!.child.kill("SIGKILL");
    const killedAt = Date.now();
    let breakerOpened = false;
    while (Date.now() - killedAt < 6000) {
      if (!breakerOpened && Date.now() - killedAt < 2500) {
        breakerOpened = /mesh_breaker_state\{service="im\.testing\.v1\.EchoService",instance="e3"[^}]*\} 2/.test(await metrics.metrics());
      }
      await echo.echo({ text: "x" }).then(
        (r) => answeredBy.add(r.instanceId),
        (e: unknown) => echoErrors.push(`${Code[ConnectError.from(e).code]}: ${ConnectError.from(e).rawMessage}`),
      );
      await echo.record({}).catch(() => recordErrors++);
      await new Promise((r) => setTimeout(r, 20));
    }
    // Echo is idempotent: a failure on the dead instance is retried on a live one.
    expect(echoErrors).to.deep.equal([]);
    // Record is not retried: its calls to the dead instance fail, but only until that instance's breaker opens,
    // which happens well before the lease expires.
    expect(breakerOpened, "the dead instance's circuit opened before its lease expired").to.equal(true);
    expect(recordErrors).to.be.at.most(6);
    expect(answeredBy.has(victim!.id)).to.equal(false);
    expect(directory.instances(EchoService.typeName).map((i) => i.instanceId).sort()).to.deep.equal(["e1", "e2"]);
  });

  it("lets a SIGTERMed instance finish its in-flight call and leaves the directory at once", async () => {
    const [only] = await start(1, 60);
    const inFlight = echo.echo({ text: "slow", delayMs: 1500 });
    await new Promise((r) => setTimeout(r, 200));
    only!.child.kill("SIGTERM");
    await eventually("deregistration well before the 60 s lease runs out", () => directory.instances(EchoService.typeName).length === 0, 5000);
    expect((await inFlight).text).to.equal("slow");
    expect(await only!.exited).to.equal(0);
    const err = await rpcError(echo.echo({ text: "late" }));
    expect(err).to.be.instanceOf(ConnectError);
    expect((err as ConnectError).code).to.equal(Code.Unavailable);
    expect((err as ConnectError).rawMessage).to.match(/no instance of im\.testing\.v1\.EchoService is registered/);
  });

  it("propagates the remaining deadline, the request id and the caller's identity, and cuts slow downstream calls", async () => {
    await start(2);
    const res = await echo.relay({ echo: { text: "via relay" } }, { timeoutMs: 800, headers: { "x-request-id": "trace-42" } });
    expect(res.echo?.text).to.equal("via relay");
    expect(res.echo?.timeoutMs).to.be.within(1, 800);
    expect(res.echo?.requestId).to.equal("trace-42");
    expect(res.echo?.caller).to.equal("service:echo");
    const err = await rpcError(echo.relay({ echo: { text: "too slow", delayMs: 3000 } }, { timeoutMs: 500 }));
    expect(err.code).to.equal(Code.DeadlineExceeded);
    expect(err.rawMessage).to.contain("im.testing.v1.EchoService/Relay");
  });

  it("never retries a call that is not idempotent", async () => {
    await start(1);
    const err = await rpcError(echo.record({ failCode: Code.Unavailable }));
    expect((err as ConnectError).code).to.equal(Code.Unavailable);
    expect((await echo.record({})).count).to.equal(2);
  });

  it("fails fast, naming the service, when nothing is registered or the deadline has passed", async () => {
    const users = clients.client(UserService);
    const none = await rpcError(users.getUser({ userId: randomUUID() }));
    expect((none as ConnectError).code).to.equal(Code.Unavailable);
    expect((none as ConnectError).rawMessage).to.equal("im.user.v1.UserService/GetUser: no instance of im.user.v1.UserService is registered");
    await start(1);
    const late = await rpcError(echo.echo({ text: "x", delayMs: 2000 }, { timeoutMs: 100 }));
    expect((late as ConnectError).code).to.equal(Code.DeadlineExceeded);
    expect((late as ConnectError).rawMessage).to.contain("im.testing.v1.EchoService/Echo");
  });

  it("refuses internal calls without a valid service credential, and validates input", async () => {
    await start(1);
    const anonymous = new MeshClients({ directory });
    const forged = new MeshClients({ directory, credentials: new ServiceCredentials("another-secret-that-is-32-characters-long", "intruder") });
    try {
      const noToken = await rpcError(anonymous.client(EchoService).echo({ text: "x" }));
      expect((noToken as ConnectError).code).to.equal(Code.Unauthenticated);
      const badToken = await rpcError(forged.client(EchoService).echo({ text: "x" }));
      expect((badToken as ConnectError).code).to.equal(Code.Unauthenticated);
      expect((badToken as ConnectError).rawMessage).to.match(/needs a valid service credential/);
      const invalid = await rpcError(echo.echo({ text: "x", delayMs: 70_000 }));
      expect((invalid as ConnectError).code).to.equal(Code.InvalidArgument);
      expect((invalid as ConnectError).rawMessage).to.match(/delay_ms: .*60000/);
    } finally {
      await anonymous.close();
      await forged.close();
    }
  });

  it("serves per-RPC counters and latency histograms, and the client's breaker states, at /metrics", async () => {
    const [one] = await start(1);
    await echo.echo({ text: "count me" });
    await echo.echo({ text: "x", failCode: Code.NotFound }).catch(() => {});
    const text = await (await fetch(`http://127.0.0.1:${one!.port}/metrics`)).text();
    expect(text).to.match(/rpc_server_requests_total\{rpc="im\.testing\.v1\.EchoService\/Echo",code="ok",process="echo-e1"\} 1/);
    expect(text).to.match(/rpc_server_requests_total\{rpc="im\.testing\.v1\.EchoService\/Echo",code="NotFound",process="echo-e1"\} 1/);
    expect(text).to.match(/rpc_server_duration_seconds_bucket\{(?=[^}]*le="0\.005")(?=[^}]*rpc="im\.testing\.v1\.EchoService\/Echo")/);
    expect(await metrics.metrics()).to.match(/mesh_breaker_state\{service="im\.testing\.v1\.EchoService",instance="e1",process="mesh-test"\} 0/);
  });

  it("answers a @grpc/grpc-js client with a service credential, and its health Watch", async () => {
    const [one] = await start(1);
    const def = protoLoader.loadSync(["im/testing/v1/echo.proto", "grpc/health/v1/health.proto"], {
      includeDirs: [`${root}/proto`, `${root}/.run/proto-deps`],
      enums: String,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      im: { testing: { v1: { EchoService: grpc.ServiceClientConstructor } } };
      grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
    };
    const address = `127.0.0.1:${one!.port}`;
    type Callback<T> = (err: grpc.ServiceError | null, res: T) => void;
    const client = new pkg.im.testing.v1.EchoService(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      Echo(req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: Callback<{ text: string; caller: string }>): void;
    };
    const health = new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      Watch(req: object): grpc.ClientReadableStream<{ status: string }>;
    };
    try {
      const metadata = new grpc.Metadata();
      metadata.set("authorization", `Bearer ${await new ServiceCredentials(secret, "grpc-js").token()}`);
      const res = await new Promise<{ text: string; caller: string }>((resolve, reject) =>
        client.Echo({ text: "from grpc-js" }, metadata, { deadline: Date.now() + 5000 }, (err, r) => (err ? reject(err) : resolve(r))),
      );
      expect(res).to.include({ text: "from grpc-js", caller: "service:grpc-js" });
      const statuses: string[] = [];
      const watch = health.Watch({ service: EchoService.typeName });
      await new Promise<void>((resolve) => {
        watch.on("data", (m: { status: string }) => {
          statuses.push(m.status);
          if (statuses.length === 1) one!.child.kill("SIGTERM");
        });
        watch.on("error", () => resolve());
        watch.on("end", () => resolve());
      });
      expect(statuses.slice(0, 2)).to.deep.equal(["SERVING", "NOT_SERVING"]);
    } finally {
      client.close();
      health.close();
    }
  });
});
