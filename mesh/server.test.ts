import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { expect } from "chai";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { AuthService, LoginRequestSchema } from "../gen/im/auth/v1/auth_pb.js";
import { createMetricsRegistry } from "./metrics.js";
import { mount, startServer, type RunningServer } from "./server.js";
import { ServingStatus } from "./health-service.js";

const healthProto = fileURLToPath(new URL("../proto/grpc/health/v1/health.proto", import.meta.url));

interface GrpcHealthClient extends grpc.Client {
  Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
  Watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }>;
}

function grpcJsHealthClient(url: string): GrpcHealthClient {
  const def = protoLoader.loadSync(healthProto, { enums: String });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { health: { v1: { Health: new (addr: string, creds: grpc.ChannelCredentials) => GrpcHealthClient } } };
  };
  return new pkg.grpc.health.v1.Health(url.replace("http://", ""), grpc.credentials.createInsecure());
}

describe("mesh server", () => {
  let server: RunningServer;

  beforeEach(async () => {
    server = await startServer({
      name: "test",
      port: 0,
      // AuthService is mounted without handlers: its RPCs must answer Unimplemented, its health SERVING.
      services: [mount(AuthService, {})],
      metrics: createMetricsRegistry("test"),
      readMaxBytes: 1024,
    });
  });
  afterEach(() => server.close(100));

  it("answers Health/Check from a Connect client over HTTP/2 and HTTP/1.1, and over gRPC-Web", async () => {
    for (const transport of [
      createConnectTransport({ baseUrl: server.url, httpVersion: "2" }),
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
      createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    ]) {
      const client = createClient(Health, transport);
      const res = await client.check({ service: "" });
      expect(res.status).to.equal(ServingStatus.SERVING);
      const auth = await client.check({ service: "im.auth.v1.AuthService" });
      expect(auth.status).to.equal(ServingStatus.SERVING);
    }
  });

  it("answers Health/Check from an @grpc/grpc-js client", async () => {
    const client = grpcJsHealthClient(server.url);
    try {
      const res = await new Promise<{ status: string }>((resolve, reject) =>
        client.Check({ service: "im.auth.v1.AuthService" }, (err, r) => (err ? reject(err) : resolve(r!))),
      );
      expect(res.status).to.equal("SERVING");
      const err = await new Promise<grpc.ServiceError>((resolve) =>
        client.Check({ service: "im.nope.v1.NopeService" }, (e) => resolve(e!)),
      );
      expect(err.code).to.equal(grpc.status.NOT_FOUND);
      expect(err.details).to.contain("im.nope.v1.NopeService");
    } finally {
      client.close();
    }
  });

  it("streams Health/Watch to @grpc/grpc-js and reports NOT_SERVING when the server drains", async () => {
    const client = grpcJsHealthClient(server.url);
    const seen: string[] = [];
    const stream = client.Watch({ service: "" });
    const ended = new Promise<void>((resolve) => {
      stream.on("data", (msg: { status: string }) => {
        seen.push(msg.status);
        if (seen.length === 1) void server.close(300);
      });
      stream.on("error", () => resolve());
      stream.on("end", () => resolve());
    });
    await ended;
    client.close();
    expect(seen).to.deep.equal(["SERVING", "NOT_SERVING"]);
  });

  it("streams Health/Watch to a Connect gRPC client, SERVICE_UNKNOWN for an unknown name", async () => {
    const client = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    const ac = new AbortController();
    const statuses: ServingStatus[] = [];
    for await (const res of client.watch({ service: "im.nope.v1.NopeService" }, { signal: ac.signal })) {
      statuses.push(res.status);
      ac.abort();
      break;
    }
    expect(statuses).to.deep.equal([ServingStatus.SERVICE_UNKNOWN]);
  });

  it("answers Unimplemented for an RPC mounted without a handler", async () => {
    const client = createClient(AuthService, createGrpcTransport({ baseUrl: server.url }));
    const err = await client
      .login(create(LoginRequestSchema, { apiKey: "k", password: "p" }))
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).to.equal(Code.Unimplemented);
  });

  it("refuses a request larger than readMaxBytes with ResourceExhausted", async () => {
    const client = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    const err = await client
      .check({ service: "x".repeat(4096) })
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).to.equal(Code.ResourceExhausted);
  });

  describe("a request body that is not a valid message (invalid UTF-8 in a string field)", () => {
    const invalidUtf8 = Buffer.from([0x0a, 0x02, 0xff, 0xfe]);

    it("answers InvalidArgument naming the message to a gRPC client", async () => {
      const client = new grpc.Client(server.url.replace("http://", ""), grpc.credentials.createInsecure());
      const err = await new Promise<grpc.ServiceError | null>((resolve) => {
        client.makeUnaryRequest("/grpc.health.v1.Health/Check", (b: Buffer) => b, (b: Buffer) => b, invalidUtf8,
          (e) => resolve(e));
      });
      client.close();
      expect(err?.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(err?.details).to.match(/not a valid grpc\.health\.v1\.HealthCheckRequest message.*UTF-8/);
    });

    it("answers 400 invalid_argument to a Connect unary call over HTTP/1.1", async () => {
      const res = await fetch(`${server.url}/grpc.health.v1.Health/Check`, {
        method: "POST",
        headers: { "content-type": "application/proto", "connect-protocol-version": "1" },
        body: invalidUtf8,
      });
      expect(res.status).to.equal(400);
      const body = (await res.json()) as { code: string; message: string };
      expect(body.code).to.equal("invalid_argument");
      expect(body.message).to.match(/HealthCheckRequest/);
    });

    it("leaves other errors and valid requests alone", async () => {
      const res = await fetch(`${server.url}/grpc.health.v1.Health/Check`, {
        method: "POST",
        headers: { "content-type": "application/json", "connect-protocol-version": "1" },
        body: JSON.stringify({ service: "" }),
      });
      expect(res.status).to.equal(200);
      expect(await res.json()).to.deep.equal({ status: "SERVING" });
    });
  });

  it("serves Prometheus metrics over HTTP/1.1 and 404 for other paths", async () => {
    const metrics = await fetch(`${server.url}/metrics`);
    expect(metrics.status).to.equal(200);
    expect(metrics.headers.get("content-type")).to.contain("text/plain");
    expect(await metrics.text()).to.match(/process_cpu_user_seconds_total\{process="test"\}/);
    const other = await fetch(`${server.url}/elsewhere`);
    expect(other.status).to.equal(404);
  });

  it("stops accepting connections after close", async () => {
    await server.close(100);
    const err = await fetch(`${server.url}/metrics`).then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(Error);
  });
});
