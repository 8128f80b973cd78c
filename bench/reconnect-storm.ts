// Reconnect storm: N SDK clients on one gateway of a mesh deployment (real etcd, MariaDB, Redis, Kafka), in pairs.
// The gateway is SIGKILLed, so every client loses its stream at once and reconnects to the other gateway; at that
// moment every even client sends its peer a message (queued by the SDK until it is connected again). Measured: the
// time until every client is connected again and every message has arrived, and how many were lost (must be 0) or
// delivered twice. The baseline in the same run: the same number of bare streams cut at once and reconnected to
// the transport server.
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { JWK } from "jose";
import mysql from "mysql2/promise";
import { SessionSchema } from "../gen/im/auth/v1/auth_pb.js";
import { ImClient } from "../client/im-client.js";
import { demo } from "../platform/store/demo-data.js";
import { AccessTokenIssuer } from "../services/auth/access-tokens.js";
import { startMeshDeployment, type MeshDeployment } from "../test/mesh-deployment.js";
import { startNodeProcess } from "../test/processes.js";
import { benchText, type BenchOptions, type Row } from "./options.js";
import { printTable, saveResult } from "./report.js";
import { processUsage, StreamLoad } from "./stream-load.js";
import { benchEnv } from "./deployments.js";

/** Resolves when `done()` holds, checking every 50 ms; false when `timeoutMs` passed first. */
async function until(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

const progress = (step: string) => console.error(`reconnect-storm: ${step}`);

/** Sends until the server acknowledges it, retrying with the same client_msg_id (stored once) as an app would. */
async function sendSurely(c: ImClient, to: string, text: string, deadline: number): Promise<boolean> {
  const id = randomUUID();
  for (;;) {
    try {
      await c.sendText({ peerUserId: to }, text, id);
      return true;
    } catch {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function baseline(clients: number): Promise<Row> {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const server = await startNodeProcess("bench/transport-server.ts", {}, root);
  const url = `http://127.0.0.1:${server.port}`;
  const load = await StreamLoad.start({ url, workers: 1, connections: clients, sourceAddresses: 1 });
  try {
    const tokens = Array.from({ length: clients }, () => "");
    await load.open(tokens);
    const storm = await load.storm(tokens);
    progress(`baseline: ${storm.welcomed} streams back in ${Math.round(storm.ms)} ms`);
    return { system: "transport (bare connect-node)", clients, reconnected: storm.welcomed, "all caught up ms": Math.round(storm.ms), "messages sent": 0, "not acknowledged": 0, arrived: 0, lost: 0, duplicates: 0 };
  } finally {
    await load.stop();
    server.child.kill("SIGTERM");
    await server.exited;
  }
}

async function ours(mesh: MeshDeployment, count: number, timeoutMs: number): Promise<Row> {
  const userIds = Array.from({ length: count }, () => randomUUID());
  const conn = await mysql.createConnection({ uri: mesh.env.IM_MYSQL_URL! });
  try {
    for (let i = 0; i < count; i += 1000) {
      await conn.query("INSERT INTO users (app_id, id, username, display_name, password_hash) VALUES ?", [
        userIds.slice(i, i + 1000).map((id) => [demo.appId, id, `s${id.replaceAll("-", "").slice(0, 20)}`, "Storm", demo.passwordHash]),
      ]);
    }
  } finally {
    await conn.end();
  }
  const issuer = await AccessTokenIssuer.fromPrivateJwks(JSON.parse(mesh.env.IM_AUTH_SIGNING_KEYS!) as JWK[]);
  // received[i]: how many times client i got each marker.
  const received = userIds.map(() => new Map<string, number>());
  const connectedAt = userIds.map(() => 0);
  const clients = await Promise.all(
    userIds.map(async (userId, i) => {
      const issued = await issuer.issue({ appId: demo.appId, userId, deviceId: "storm" });
      const c = new ImClient(
        { baseUrl: mesh.urls[0]!, fallbackUrls: [mesh.urls[1]!], apiKey: demo.apiKey, deviceId: "storm" },
        {
          message: (m) => {
            if (m.content?.kind.case !== "text") return;
            const text = m.content.kind.value.text;
            received[i]!.set(text, (received[i]!.get(text) ?? 0) + 1);
          },
          state: (s) => {
            if (s === "connected") connectedAt[i] = Date.now();
          },
        },
      );
      c.restore(create(SessionSchema, { appId: demo.appId, userId, deviceId: "storm", tokens: { accessToken: issued.token, accessExpiresAt: timestampFromDate(issued.expiresAt) } }));
      return c;
    }),
  );
  try {
    const connectStart = Date.now();
    for (let i = 0; i < count; i += 200) await Promise.all(clients.slice(i, i + 200).map((c) => c.connect()));
    progress(`${count} clients connected in ${Date.now() - connectStart} ms`);
    // Every pair talks once before the storm, so that the storm is about reconnecting, not first contact.
    const pairs = Math.floor(count / 2);
    const before = `${benchText} (before)`;
    for (let p = 0; p < pairs; p += 200) {
      await Promise.all(Array.from({ length: Math.min(200, pairs - p) }, (_, k) => sendSurely(clients[2 * (p + k)]!, userIds[2 * (p + k) + 1]!, before, Date.now() + timeoutMs)));
    }
    if (!(await until(() => received.every((r, i) => i % 2 === 0 || r.has(before)), timeoutMs))) throw new Error("reconnect-storm: the messages before the storm did not all arrive");

    progress("every pair has talked once; killing the gateway");
    const during = `${benchText} (during the storm)`;
    const survivors = mesh.processes.filter((p) => p !== mesh.gateways[0]);
    const cpuBefore = survivors.map((p) => processUsage(p.child.pid!).cpuSeconds);
    const stormAt = Date.now();
    mesh.gateways[0]!.child.kill("SIGKILL");
    const sends = Array.from({ length: pairs }, (_, p) => sendSurely(clients[2 * p]!, userIds[2 * p + 1]!, during, stormAt + timeoutMs));
    const caughtUp = () => connectedAt.every((t) => t > stormAt) && received.every((r, i) => i % 2 === 0 || r.has(during));
    const ticker = setInterval(() => progress(`${connectedAt.filter((t) => t > stormAt).length} reconnected, ${received.filter((r, i) => i % 2 === 1 && r.has(during)).length} of ${pairs} messages arrived`), 5000);
    await until(caughtUp, timeoutMs).finally(() => clearInterval(ticker));
    const doneAt = Date.now();
    const cpu = survivors.map((p, i) => `${/services\/(\w+)\//.exec(p.script)?.[1] ?? p.script} ${(processUsage(p.child.pid!).cpuSeconds - cpuBefore[i]!).toFixed(1)} s`);
    progress(`CPU used by each process from the storm until all caught up: ${cpu.join(", ")}; this load process ${(process.cpuUsage().user / 1e6).toFixed(0)} s in all`);
    if (!caughtUp() && mesh.gateways[1]!.child.exitCode !== null) progress(`the other gateway exited: ${mesh.gateways[1]!.output().slice(-3000)}`);
    const acked = await Promise.race([Promise.all(sends), new Promise<boolean[]>((r) => setTimeout(() => r([]), 5000))]);
    const arrivedTo = received.map((r, i) => i % 2 === 1 && r.has(during));
    const arrived = arrivedTo.filter(Boolean).length;
    // Lost: the server acknowledged the send, and the receiver, connected, never got it.
    const lost = acked.filter((ok, p) => ok && !arrivedTo[2 * p + 1]).length;
    return {
      system: "ours (SDK, mesh, gateway SIGKILLed)",
      clients: count,
      reconnected: connectedAt.filter((t) => t > stormAt).length,
      "all caught up ms": caughtUp() ? doneAt - stormAt : `not within ${timeoutMs / 1000} s`,
      "messages sent": pairs,
      "not acknowledged": acked.length === 0 ? "unknown" : acked.filter((ok) => !ok).length,
      arrived,
      lost,
      duplicates: received.reduce((n, r) => n + [...r.values()].reduce((k, v) => k + v - 1, 0), 0),
    };
  } finally {
    for (const c of clients) c.close();
  }
}

/** `npm run bench -- reconnect-storm [--clients N]`; needs the real infrastructure. */
export async function reconnectStormBench(options: BenchOptions): Promise<Row[]> {
  if (!process.env.IM_ETCD_ENDPOINTS) {
    console.log("reconnect-storm: needs the real infrastructure (make infra-up, then source deploy/local/env.sh)");
    return [];
  }
  const count = options.stormClients;
  const rows: Row[] = [await baseline(count)];
  // The production lease TTL (90 s): the survivor must keep its lease through the storm, as it would in production.
  const mesh = await startMeshDeployment({ gateways: 2, redisDb: 12, extraEnv: { ...benchEnv, IM_LEASE_TTL_SECONDS: "90" } });
  try {
    rows.push(await ours(mesh, count, options.smoke ? 60_000 : 180_000));
  } finally {
    await mesh.stop();
  }
  console.log(`\nreconnect-storm: ${count} clients lose their gateway at once and reconnect${options.smoke ? " (smoke run: figures are not meaningful)" : ""}`);
  printTable(rows);
  console.log(`saved ${saveResult("reconnect-storm", { options, rows })}`);
  return rows;
}
