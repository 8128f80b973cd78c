// A bounded abuse run against the all-in-one process in this process (port 0, loopback only), issue #18: 200
// slowloris connections that the time limits must close, 4 MiB amplification requests anonymous and signed in,
// and fuzzed bodies for every unary RPC (IM_ABUSE_FUZZ_COUNT per RPC, default 200; IM_ABUSE_SEED). The server
// must answer all of it with client errors, keep serving, and its RSS must grow by less than rssBoundBytes.
import http2 from "node:http2";
import net from "node:net";
import { randomUUID } from "node:crypto";
import v8 from "node:v8";
import vm from "node:vm";
import { getOption } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { exportJWK, generateKeyPair } from "jose";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { Access, method as methodRules } from "../gen/im/options/v1/options_pb.js";
import { ServingStatus } from "../mesh/health-service.js";
import { demo } from "../platform/store/demo-data.js";
import { AccessTokenIssuer } from "../services/auth/access-tokens.js";
import { startAllInOneDeployment, type TestDeployment } from "./mesh-deployment.js";
import { payloads, prng } from "./fuzz-payloads.js";
import { abusedServices, call, clientCodes, oneShot, unknownFields } from "./hostile-calls.js";

const fuzzCount = Number(process.env.IM_ABUSE_FUZZ_COUNT ?? 200);
const seed = Number(process.env.IM_ABUSE_SEED ?? 18);
/**
 * RSS growth allowed over the whole run. Bounded admission keeps it to tens of MB; before it, five 4 MiB anonymous
 * bodies of tiny unknown fields alone cost over 1 GB.
 */
const rssBoundBytes = 256 * 1024 * 1024;
/** Every slowloris connection must be closed by then (the longest limit, a request body, is 20 s). */
const slowlorisDeadlineMs = 40_000;


/** A full GC, when this process can ask for one (it can expose gc at run time). */
function collect(): void {
  try {
    v8.setFlagsFromString("--expose_gc");
    (vm.runInNewContext("gc") as () => void)();
  } catch {
    // Without it the measurement only gets noisier.
  }
}

/** Opens a connection that says `head` and then `drip` every 2 s; resolves when the server has closed it. */
function slowloris(port: number, head: string, drip?: string): { closed: Promise<void> } {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => {});
  socket.on("data", () => {});
  socket.once("connect", () => {
    if (head !== "") socket.write(head);
    if (drip !== undefined) {
      const timer = setInterval(() => socket.writable && socket.write(drip), 2_000);
      socket.once("close", () => clearInterval(timer));
    }
  });
  return { closed: new Promise((resolve) => socket.once("close", () => resolve())) };
}

/** An HTTP/2 unary call whose body is trickled at a byte every 2 s; resolves when its connection is closed. */
function slowBody(url: string): { closed: Promise<void> } {
  const session = http2.connect(url);
  session.on("error", () => {});
  const req = session.request({ ":method": "POST", ":path": "/im.auth.v1.AuthService/Login", "content-type": "application/grpc", te: "trailers" });
  req.on("error", () => {});
  req.on("data", () => {});
  req.write(Uint8Array.of(0, 0, 0, 1, 0));
  const timer = setInterval(() => req.writable && req.write(Uint8Array.of(0)), 2_000);
  return { closed: new Promise((resolve) => session.once("close", () => (clearInterval(timer), resolve()))) };
}

describe("abuse, all-in-one: bounded in count, time and memory", function () {
  this.timeout(120_000);
  let deployment: TestDeployment;
  let url: string;
  let port: number;
  let token: (userId: string) => Promise<string>;

  before(async () => {
    const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
    const keys = [{ ...(await exportJWK(privateKey)), kid: randomUUID() }];
    deployment = await startAllInOneDeployment({ IM_AUTH_SIGNING_KEYS: JSON.stringify(keys), IM_HOST: "127.0.0.1" });
    url = deployment.urls[0]!;
    port = Number(new URL(url).port);
    const issuer = await AccessTokenIssuer.fromPrivateJwks(keys);
    token = async (userId) => (await issuer.issue({ appId: demo.appId, userId, deviceId: `abuse-${userId.slice(0, 8)}` })).token;
  });
  after(() => deployment?.stop());

  it("stays up and within its memory bound through slowloris, amplification and fuzzing", async () => {
    collect();
    const rssBefore = process.memoryUsage().rss;
    const started = Date.now();

    // 200 connections that never finish what they started; nothing below waits for them.
    const slow = [
      ...Array.from({ length: 50 }, () => slowloris(port, "")),
      ...Array.from({ length: 50 }, () => slowloris(port, "PRI * HTTP/2.0\r\n")),
      ...Array.from({ length: 50 }, () => slowloris(port, "POST /im.auth.v1.AuthService/Login HTTP/1.1\r\nHost: x\r\n", "x")),
      ...Array.from({ length: 25 }, () => slowloris(port, "POST /im.auth.v1.AuthService/Login HTTP/1.1\r\nHost: x\r\ncontent-type: application/proto\r\nconnect-protocol-version: 1\r\ncontent-length: 100\r\n\r\n", "\0")),
      ...Array.from({ length: 25 }, () => slowBody(url)),
    ];

    // 5 anonymous and 5 signed-in 4 MiB bodies at once: refused before they are parsed.
    const user = await token("a11ce000-0000-4000-8000-0000000000ab");
    const big = unknownFields(4 * 1024 * 1024);
    const amplified = await Promise.all([
      ...Array.from({ length: 5 }, () => oneShot(url, "/im.auth.v1.AuthService/Login", big)),
      ...Array.from({ length: 5 }, () => oneShot(url, "/im.msg.v1.MsgService/SendMessage", big, user)),
    ]);
    expect(amplified, "every 4 MiB body refused as too large").to.deep.equal(new Array(10).fill(Code.ResourceExhausted));

    // Fuzzed bodies for every unary RPC, 16 in flight on one connection per RPC, a fresh user per RPC.
    const rnd = prng(seed);
    const faults: string[] = [];
    let sent = 0;
    for (const service of abusedServices) {
      for (const method of service.methods.filter((m) => m.methodKind === "unary")) {
        const access = service === Health ? Access.PUBLIC : getOption(method, methodRules).access;
        const bearer = access === Access.PUBLIC ? undefined : await token(randomUUID());
        const session = http2.connect(url);
        session.on("error", () => {});
        const queue = payloads(rnd, method.input, fuzzCount);
        const worker = async () => {
          for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
            const code = await call(session, method, p, bearer);
            sent++;
            if (!clientCodes.has(code) && faults.length < 20) faults.push(`${service.typeName}/${method.name} ${p.kind} ${Buffer.from(p.body).toString("hex").slice(0, 120)}: ${code}`);
          }
        };
        await Promise.all(Array.from({ length: 16 }, worker));
        session.destroy();
      }
    }
    expect(faults, `server faults among ${sent} fuzzed calls`).to.deep.equal([]);

    // The slowloris connections are closed by the time limits, not by this test.
    const closedInTime = await Promise.race([
      Promise.all(slow.map((s) => s.closed)).then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), Math.max(0, slowlorisDeadlineMs - (Date.now() - started))).unref()),
    ]);
    expect(closedInTime, "all 200 slowloris connections closed by the server").to.equal(true);

    const health = await createClient(Health, createGrpcTransport({ baseUrl: url })).check({ service: "" });
    expect(health.status, "still serving").to.equal(ServingStatus.SERVING);
    collect();
    const growth = process.memoryUsage().rss - rssBefore;
    expect(growth, `RSS grew by ${Math.round(growth / 2 ** 20)} MiB`).to.be.below(rssBoundBytes);
  });
});
