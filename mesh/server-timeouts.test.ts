// Time limits at every stage of a connection (issue #18, finding 4), against a real server on port 0 with short
// limits: silent connections, stalled prefaces, trickled headers and bodies are closed, idle HTTP/2 sessions get
// GOAWAY, and long-lived streams (a bidi stream, a server stream) stay open through all of it.
import http2 from "node:http2";
import net from "node:net";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ConnectRequestSchema, GatewayService, type ConnectRequest } from "../gen/im/gateway/v1/gateway_pb.js";
import { AuthService } from "../gen/im/auth/v1/auth_pb.js";
import { ServingStatus } from "./health-service.js";
import { createMeshVerifier, ServiceCredentials } from "./identity.js";
import { mount, startServer, type RunningServer, type ServerTimeouts } from "./server.js";

const limits: ServerTimeouts = { firstBytesMs: 300, headersMs: 300, bodyMs: 600, idleSessionMs: 900 };
/** Far beyond every limit above: a connection still open then was not closed by them. */
const deadlineMs = 5_000;

/** Resolves with whether the emitter emitted `event` before the deadline. */
function within(emitter: NodeJS.EventEmitter, event: string, ms = deadlineMs): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    emitter.once(event, () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** A raw TCP connection to the server that has said `head` and then keeps sending `drip` every 100 ms. */
async function trickle(server: RunningServer, head: string, drip?: string): Promise<net.Socket> {
  const socket = net.connect(server.port, "127.0.0.1");
  await new Promise((resolve) => socket.once("connect", resolve));
  socket.on("error", () => {});
  socket.on("data", () => {});
  if (head !== "") socket.write(head);
  if (drip !== undefined) {
    const timer = setInterval(() => socket.writable && socket.write(drip), 100);
    socket.once("close", () => clearInterval(timer));
  }
  return socket;
}

/** An async iterable the test pushes requests into. */
function requests(): { push(r: ConnectRequest): void; end(): void; iterable: AsyncIterable<ConnectRequest> } {
  const queue: ConnectRequest[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  return {
    push: (r) => void (queue.push(r), wake?.()),
    end: () => void ((ended = true), wake?.()),
    iterable: (async function* () {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (ended) return;
        await new Promise<void>((r) => (wake = r));
      }
    })(),
  };
}

describe("server time limits", () => {
  let server: RunningServer;

  beforeEach(async () => {
    server = await startServer({
      name: "timeouts-test",
      port: 0,
      services: [
        mount(GatewayService, {
          async *connect(reqs) {
            for await (const r of reqs) yield { frame: { replyTo: r.frame?.frameId ?? 0n, body: { case: "pong", value: {} } } };
          },
        }),
      ],
      timeouts: limits,
    });
  });
  afterEach(() => server.close(100));

  it("closes a connection that sends nothing", async () => {
    const socket = await trickle(server, "");
    expect(await within(socket, "close"), "closed by the first-bytes limit").to.equal(true);
  });

  it("closes an HTTP/2 connection whose preface stalls", async () => {
    const socket = await trickle(server, "PRI * HTTP/2.0\r\n");
    expect(await within(socket, "close"), "closed while waiting for the rest of the preface").to.equal(true);
  });

  it("closes an HTTP/1.1 connection whose headers trickle in", async () => {
    const socket = await trickle(server, "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\n", "x");
    expect(await within(socket, "close"), "closed by the headers limit").to.equal(true);
  });

  it("closes an HTTP/1.1 unary call whose body trickles in", async () => {
    const head = "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\ncontent-type: application/proto\r\nconnect-protocol-version: 1\r\ncontent-length: 1000\r\n\r\n";
    const socket = await trickle(server, head, "\0");
    expect(await within(socket, "close"), "closed by the body limit").to.equal(true);
  });

  it("resets an HTTP/2 unary call whose body trickles in, and closes its connection", async () => {
    // Idle sessions live long here: the connection closes because its body was trickled, not because it idles.
    const patient = await startServer({ name: "patient", port: 0, services: [], timeouts: { ...limits, idleSessionMs: 60_000 } });
    const session = http2.connect(patient.url);
    session.on("error", () => {});
    try {
      const stream = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" });
      stream.on("error", () => {});
      stream.on("data", () => {});
      stream.write(Uint8Array.of(0, 0, 0, 3, 232));
      const timer = setInterval(() => stream.writable && stream.write(Uint8Array.of(0)), 100);
      stream.once("close", () => clearInterval(timer));
      const closed = within(session, "close");
      expect(await within(stream, "close"), "reset by the body limit").to.equal(true);
      expect(await closed, "the connection is closed too").to.equal(true);
    } finally {
      session.destroy();
      await patient.close(100);
    }
  });

  it("refuses the rest of a body once its call is answered (RST_STREAM NO_ERROR), in gRPC and Connect", async () => {
    // Long limits: the stream must end because its answer is complete, not because of a time limit.
    const verifier = createMeshVerifier({ serviceCredentials: new ServiceCredentials("t".repeat(32), "timeouts-test") });
    const gated = await startServer({ name: "gated", port: 0, services: [mount(AuthService, {})], verifier, timeouts: { ...limits, bodyMs: 60_000, idleSessionMs: 60_000 } });
    const session = http2.connect(gated.url);
    session.on("error", () => {});
    try {
      const body = new Uint8Array(4 * 1024 * 1024);
      for (const headers of [
        { "content-type": "application/grpc", te: "trailers" },
        { "content-type": "application/proto", "connect-protocol-version": "1" },
      ]) {
        // An anonymous body of 4 MiB: read up to the 64 KiB anonymous callers may send, then answered.
        const stream = session.request({ ":method": "POST", ":path": "/im.auth.v1.AuthService/Login", ...headers });
        stream.on("error", () => {});
        stream.on("data", () => {});
        const closed = within(stream, "close");
        stream.end(body);
        expect(await closed, `${headers["content-type"]}: the stream ends with its answer`).to.equal(true);
        expect(stream.rstCode, "NO_ERROR").to.equal(http2.constants.NGHTTP2_NO_ERROR);
      }
    } finally {
      session.destroy();
      await gated.close(100);
    }
  });

  it("sends GOAWAY to an HTTP/2 session left without streams, and keeps long-lived streams open meanwhile", async () => {
    const transport = createGrpcTransport({ baseUrl: server.url });
    // A bidi stream whose request side stays open, and a server stream: neither may be cut.
    const up = requests();
    const down = createClient(GatewayService, transport).connect(up.iterable)[Symbol.asyncIterator]();
    up.push(create(ConnectRequestSchema, { frame: { frameId: 1n, body: { case: "ping", value: {} } } }));
    expect((await down.next()).value?.frame?.replyTo).to.equal(1n);
    const watch = new AbortController();
    const statuses = createClient(Health, transport).watch({ service: "" }, { signal: watch.signal })[Symbol.asyncIterator]();
    expect((await statuses.next()).value?.status).to.equal(ServingStatus.SERVING);
    let watchEnded = false;
    const watching = statuses.next().then(() => (watchEnded = true), () => (watchEnded = true));

    // Another session makes one call and then idles: its GOAWAY is the sign that every limit has had its time.
    const idle = http2.connect(server.url);
    idle.on("error", () => {});
    const call = idle.request({ ":method": "GET", ":path": "/metrics" });
    call.on("data", () => {});
    await new Promise((r) => call.once("close", r));
    expect(await within(idle, "goaway"), "the idle session was sent GOAWAY").to.equal(true);
    idle.destroy();

    up.push(create(ConnectRequestSchema, { frame: { frameId: 2n, body: { case: "ping", value: {} } } }));
    expect((await down.next()).value?.frame?.replyTo, "the bidi stream still answers").to.equal(2n);
    expect(watchEnded, "the server stream is still open").to.equal(false);
    up.end();
    watch.abort();
    await watching;
  });
});
