// A hostile load process for the `abuse` scenario (bench/abuse.ts forks it): what test/abuse.test.ts does once, in a
// loop until its parent says stop (or maxSeconds pass), in one of three roles: 4 MiB amplification bodies (5
// anonymous and 5 signed in at once), fuzzed bodies for every unary RPC (16 in flight per RPC, a fresh user per RPC
// and pass, test/fuzz-payloads.ts), or 200 slowloris connections (each reopened when the server closes it). The
// requests are test/hostile-calls.ts's, shared with the abuse test.
import http2 from "node:http2";
import net from "node:net";
import { randomUUID } from "node:crypto";
import { getOption } from "@bufbuild/protobuf";
import type { JWK } from "jose";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { Access, method as methodRules } from "../gen/im/options/v1/options_pb.js";
import { demo } from "../platform/store/demo-data.js";
import { AccessTokenIssuer } from "../services/auth/access-tokens.js";
import { payloads, prng } from "../test/fuzz-payloads.js";
import { abusedServices, call, clientCodes, oneShot, unknownFields } from "../test/hostile-calls.js";

export type AbuseRole = "amplify" | "fuzz" | "slowloris";

export type AbuseCommand = { op: "start"; role: AbuseRole; url: string; signingKeys: JWK[]; seed: number; maxSeconds: number } | { op: "stop" };

/** What a role did: requests or connections made, and answers that were not a client error (server faults). */
export interface AbuseStats {
  role: AbuseRole;
  requests: number;
  /** amplify: bodies answered ResourceExhausted; fuzz: calls answered with a client code; slowloris: connections the server closed. */
  refused: number;
  /** amplify and fuzz: answers other than a client error (or none); slowloris: connections still open at the stop. */
  other: number;
  sample: string[];
}

export type AbuseReply = { op: "ready" } | { op: "started" } | { op: "stopped"; stats: AbuseStats };

let stopped = false;
const open = new Set<{ destroy(): void }>();

async function amplify(url: string, token: (u: string) => Promise<string>, stats: AbuseStats): Promise<void> {
  const big = unknownFields(4 * 1024 * 1024);
  const user = await token("a11ce000-0000-4000-8000-0000000000ab");
  const slot = async (signed: boolean) => {
    while (!stopped) {
      const code = await oneShot(url, signed ? "/im.msg.v1.MsgService/SendMessage" : "/im.auth.v1.AuthService/Login", big, signed ? user : undefined);
      stats.requests++;
      if (code === 8) stats.refused++;
      else if (!stopped) (stats.other++, stats.sample.length < 5 && stats.sample.push(`${signed ? "signed" : "anonymous"}: ${code}`));
    }
  };
  await Promise.all([...Array.from({ length: 5 }, () => slot(false)), ...Array.from({ length: 5 }, () => slot(true))]);
}

async function fuzz(url: string, token: (u: string) => Promise<string>, seed: number, stats: AbuseStats): Promise<void> {
  const rnd = prng(seed);
  while (!stopped) {
    for (const service of abusedServices) {
      for (const method of service.methods.filter((m) => m.methodKind === "unary")) {
        if (stopped) return;
        const access = service === Health ? Access.PUBLIC : getOption(method, methodRules).access;
        const bearer = access === Access.PUBLIC ? undefined : await token(randomUUID());
        const session = http2.connect(url);
        session.on("error", () => {});
        open.add(session);
        const queue = payloads(rnd, method.input, 50);
        const worker = async () => {
          for (let p = queue.shift(); p !== undefined && !stopped; p = queue.shift()) {
            const code = await call(session, method, p, bearer);
            stats.requests++;
            if (clientCodes.has(code)) stats.refused++;
            else if (!stopped) (stats.other++, stats.sample.length < 5 && stats.sample.push(`${service.typeName}/${method.name} ${p.kind}: ${code}`));
          }
        };
        await Promise.all(Array.from({ length: 16 }, worker));
        session.destroy();
        open.delete(session);
      }
    }
  }
}

/** One slowloris slot: a connection that never finishes what it started, reopened each time the server closes it. */
function slowSlot(url: string, port: number, kind: number, stats: AbuseStats): void {
  const reopen = () => !stopped && setTimeout(() => slowSlot(url, port, kind, stats), 100);
  stats.requests++;
  if (kind === 4) {
    // An HTTP/2 unary call whose body is trickled at a byte every 2 s.
    const session = http2.connect(url);
    session.on("error", () => {});
    open.add(session);
    const req = session.request({ ":method": "POST", ":path": "/im.auth.v1.AuthService/Login", "content-type": "application/grpc", te: "trailers" });
    req.on("error", () => {});
    req.on("data", () => {});
    req.write(Uint8Array.of(0, 0, 0, 1, 0));
    const timer = setInterval(() => req.writable && req.write(Uint8Array.of(0)), 2_000);
    session.once("close", () => (clearInterval(timer), open.delete(session), stopped || stats.refused++, reopen()));
    return;
  }
  const [head, drip] = (
    [
      ["", undefined],
      ["PRI * HTTP/2.0\r\n", undefined],
      ["POST /im.auth.v1.AuthService/Login HTTP/1.1\r\nHost: x\r\n", "x"],
      ["POST /im.auth.v1.AuthService/Login HTTP/1.1\r\nHost: x\r\ncontent-type: application/proto\r\nconnect-protocol-version: 1\r\ncontent-length: 100\r\n\r\n", "\0"],
    ] as const
  )[kind]!;
  const socket = net.connect(port, "127.0.0.1");
  open.add(socket);
  socket.on("error", () => {});
  socket.on("data", () => {});
  let timer: NodeJS.Timeout | undefined;
  socket.once("connect", () => {
    if (head !== "") socket.write(head);
    if (drip !== undefined) timer = setInterval(() => socket.writable && socket.write(drip), 2_000);
  });
  socket.once("close", () => (clearInterval(timer), open.delete(socket), stopped || stats.refused++, reopen()));
}

process.on("message", (cmd: AbuseCommand) => {
  if (cmd.op === "stop") {
    stopped = true;
    return;
  }
  const stats: AbuseStats = { role: cmd.role, requests: 0, refused: 0, other: 0, sample: [] };
  const finish = () => {
    stopped = true;
    if (cmd.role === "slowloris") stats.other = open.size;
    for (const o of open) o.destroy();
    process.send!({ op: "stopped", stats } satisfies AbuseReply, () => process.exit(0));
  };
  const stopWatch = setInterval(() => stopped && (clearInterval(stopWatch), finish()), 50);
  setTimeout(() => (stopped = true), cmd.maxSeconds * 1000).unref();
  void (async () => {
    const issuer = await AccessTokenIssuer.fromPrivateJwks(cmd.signingKeys);
    const token = async (userId: string) => (await issuer.issue({ appId: demo.appId, userId, deviceId: `abuse-${userId.slice(0, 8)}` })).token;
    const port = Number(new URL(cmd.url).port);
    process.send!({ op: "started" } satisfies AbuseReply);
    if (cmd.role === "amplify") await amplify(cmd.url, token, stats);
    else if (cmd.role === "fuzz") await fuzz(cmd.url, token, cmd.seed, stats);
    else for (let i = 0; i < 200; i++) slowSlot(cmd.url, port, Math.min(4, Math.floor(i / 50) + (i >= 175 ? 1 : 0)), stats);
  })().catch((e: unknown) => stats.sample.push(`worker error: ${String(e)}`));
});
process.send!({ op: "ready" } satisfies AbuseReply);
