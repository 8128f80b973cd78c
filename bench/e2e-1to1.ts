// 1:1 delivery end to end: pairs of SDK clients (in this process) talk through im-mesh running in other processes on
// loopback — all-in-one (one process, in-memory adapters) and, when the infrastructure variables are set, mesh mode
// (auth, user, msg, group, fan-out and two gateways on etcd, MariaDB, Redis and Kafka; senders on one gateway,
// receivers on the other). Each sender keeps a window of sends in flight. Reports delivered messages/s and
// send→deliver latency, first at full speed, then at half of that rate, and the ratio to the transport ceiling
// measured with the same streams and window; beside each, the CPU of the server processes, of the load generator
// and (mesh mode) of etcd, MariaDB, Redis and Kafka, per delivered message.
import { randomUUID } from "node:crypto";
import { readdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { JWK } from "jose";
import mysql from "mysql2/promise";
import { SessionSchema } from "../gen/im/auth/v1/auth_pb.js";
import { ImClient } from "../client/im-client.js";
import { demo } from "../platform/store/demo-data.js";
import { AccessTokenIssuer } from "../services/auth/access-tokens.js";
import { startMeshDeployment } from "../test/mesh-deployment.js";
import { cpuColumns, infrastructurePids, startCpuWindow } from "./cpu-meter.js";
import { benchEnv, startAllInOne } from "./deployments.js";
import { benchText, type BenchOptions, type Row } from "./options.js";
import { summarizeProfile } from "./profile-summary.js";
import { Deliveries, drivePairs } from "./pair-load.js";
import { printTable, saveResult } from "./report.js";
import type { BenchContext } from "./run.js";
import { measureTransport } from "./transport.js";

/** What one mode measured at full speed: its row (load, latency, CPU columns) for other scenarios' tables. */
export interface OneToOneFigures {
  readonly mode: string;
  readonly perSecond: number;
  readonly row: Row;
}

/** Prints the largest self-time costs of the profiled all-in-one process during a window (hrtime ns; here the peak load). */
export function printProfile(dir: string, window: [bigint, bigint], during = "the peak load"): void {
  const file = readdirSync(dir)
    .map((f) => `${dir}${f}`)
    .sort((a, b) => statSync(b).size - statSync(a).size)[0];
  if (file === undefined) return void console.log(`no profile was written to ${dir}`);
  const { total, functions, places, ours } = summarizeProfile(file, [Number(window[0] / 1000n), Number(window[1] / 1000n)]);
  const pct = (ms: number) => `${((ms / total) * 100).toFixed(1).padStart(5)} %`;
  console.log(`\nprofile of the all-in-one process (${file}), self time during ${during}, ${Math.round(total)} ms sampled:`);
  for (const [k, ms] of places.slice(0, 12)) console.log(`  ${pct(ms)}  ${k}`);
  console.log("largest functions:");
  for (const [k, ms] of functions.slice(0, 15)) console.log(`  ${pct(ms)}  ${k}`);
  console.log("our functions, inclusive:");
  for (const [k, ms] of ours.slice(0, 20)) console.log(`  ${pct(ms)}  ${k}`);
}

/** Prints, from every mesh process's /metrics, how many times each RPC ran and its mean server time (whole run). */
async function printRpcTimes(ports: number[]): Promise<void> {
  const rpcs = new Map<string, { sum: number; count: number }>();
  for (const port of ports) {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${benchEnv.IM_ADMIN_TOKEN}` } })).text().catch(() => "");
    for (const [, kind, rpc, value] of text.matchAll(/^\w*rpc_server_duration_seconds_(sum|count)\{[^}]*\brpc="([^"]+)"[^}]*\} (\S+)$/gm)) {
      const e = rpcs.get(rpc!) ?? { sum: 0, count: 0 };
      if (kind === "sum") e.sum += Number(value);
      else e.count += Number(value);
      rpcs.set(rpc!, e);
    }
  }
  const rows = [...rpcs].filter(([rpc]) => !rpc.endsWith("/Connect")).sort((a, b) => b[1].sum - a[1].sum).slice(0, 10);
  console.log("\nmesh mode, server time per RPC over the whole run (from each process's /metrics):");
  printTable(rows.map(([rpc, e]) => ({ rpc, calls: e.count, "mean ms": ((e.sum / Math.max(1, e.count)) * 1000).toFixed(2), "total s": e.sum.toFixed(1) })));
}

/** `npm run bench -- e2e-1to1 [--pairs N] [--profile]`. */
export async function e2eOneToOneBench(options: BenchOptions, context: BenchContext = {}): Promise<OneToOneFigures[]> {
  context.transport ??= await measureTransport({ streams: options.pairs, window: options.window, seconds: options.seconds });
  const ceiling = context.transport;
  const rows: Row[] = [];
  const figures: OneToOneFigures[] = [];
  const profileDir = fileURLToPath(new URL(`./results/profile-${Date.now()}/`, import.meta.url));
  const aio = await startAllInOne(options.profile ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : []);
  const measured = await measureOneToOne("all-in-one", aio.urls, { server: [aio.gatewayPid] }, options, registerClients(options.pairs * 2)).finally(() => aio.stop());
  if (options.profile) printProfile(profileDir, measured.peakWindow);
  rows.push(...measured.rows);
  figures.push(measured.figures);
  if (process.env.IM_ETCD_ENDPOINTS) {
    const mesh = await startMeshDeployment({ gateways: 2, redisDb: 12, extraEnv: { ...benchEnv, IM_LEASE_TTL_SECONDS: "30" } });
    const infra = infrastructurePids(mesh.env);
    const missing = infra.filter((p) => p.pid === undefined).map((p) => `${p.name} (:${p.port})`);
    if (missing.length > 0) console.log(`e2e-1to1: no process found listening for ${missing.join(", ")}; infra CPU leaves it out`);
    const pids = { server: mesh.processes.map((p) => p.child.pid!), infra: infra.flatMap((p) => (p.pid === undefined ? [] : [p.pid])) };
    const m = await measureOneToOne("mesh, 2 gateways", mesh.urls, pids, options, bulkClients(options.pairs * 2, mesh.env))
      .then(async (r) => (await printRpcTimes(mesh.processes.map((p) => p.port)), r))
      .finally(() => mesh.stop());
    rows.push(...m.rows);
    figures.push(m.figures);
  } else console.log("e2e-1to1: IM_ETCD_ENDPOINTS is not set, so mesh mode is left out (source deploy/local/env.sh after make infra-up)");
  context.oneToOne = figures;
  const t = ceiling.row;
  const table: Row[] = [
    { system: String(t.system), mode: "-", load: "peak", pairs: ceiling.streams, window: t.window!, "msgs/s": t["msgs/s"]!, "p50 ms": t["p50 ms"]!, "p99 ms": t["p99 ms"]!, "p999 ms": t["p999 ms"]!, "failed sends": 0, "server CPU %": t["server CPU %"]!, "load CPU %": t["load CPU %"]!, "server CPU µs/msg": t["server CPU µs/msg"]!, "infra CPU µs/msg": t["infra CPU µs/msg"]!, "vs transport": "100 %" },
    ...rows.map((r) => ({ system: "ours", ...r, "vs transport": `${((Number(r["msgs/s"]) / ceiling.perSecond) * 100).toFixed(1)} %` })),
  ];
  console.log(`\ne2e-1to1: ${options.pairs} pairs of SDK clients (${options.pairs * 2} clients), ${options.window} sends in flight per sender, ${options.seconds} s per load; CPU % is of one core, µs/msg is CPU per delivered message (infra: etcd + MariaDB + Redis + Kafka)${options.smoke ? " (smoke run: figures are not meaningful)" : ""}`);
  printTable(table);
  console.log(`saved ${saveResult("e2e-1to1", { options, rows: table })}`);
  return figures;
}

type MakeClients = (urls: string[], on: (m: { clientMsgId: string }) => void) => Promise<ImClient[]>;

/** Registers `count` users through the API (scrypt), signing their devices in; even ones on the first gateway. */
function registerClients(count: number): MakeClients {
  return async (urls, on) => {
    const clients: ImClient[] = [];
    for (let i = 0; i < count; i += 8) {
      await Promise.all(
        Array.from({ length: Math.min(8, count - i) }, async (_, k) => {
          const c = new ImClient({ baseUrl: urls[(i + k) % 2 === 0 ? 0 : urls.length - 1]!, apiKey: demo.apiKey, deviceId: "bench" }, { message: on });
          await c.register(`b${randomUUID().replaceAll("-", "").slice(0, 12)}`, "bench password 1");
          clients[i + k] = c;
        }),
      );
    }
    return clients;
  };
}

/** Users bulk-inserted into the deployment's database, signed in with tokens from its own signing key. */
function bulkClients(count: number, env: NodeJS.ProcessEnv): MakeClients {
  return async (urls, on) => {
    const userIds = Array.from({ length: count }, () => randomUUID());
    const conn = await mysql.createConnection({ uri: env.IM_MYSQL_URL! });
    try {
      await conn.query("INSERT INTO users (app_id, id, username, display_name, password_hash) VALUES ?", [
        userIds.map((id) => [demo.appId, id, `b${id.replaceAll("-", "").slice(0, 20)}`, "Bench", demo.passwordHash]),
      ]);
    } finally {
      await conn.end();
    }
    const issuer = await AccessTokenIssuer.fromPrivateJwks(JSON.parse(env.IM_AUTH_SIGNING_KEYS!) as JWK[]);
    return Promise.all(
      userIds.map(async (userId, i) => {
        const issued = await issuer.issue({ appId: demo.appId, userId, deviceId: "bench" });
        const c = new ImClient({ baseUrl: urls[i % 2 === 0 ? 0 : urls.length - 1]!, apiKey: demo.apiKey, deviceId: "bench" }, { message: on });
        c.restore(create(SessionSchema, { appId: demo.appId, userId, deviceId: "bench", tokens: { accessToken: issued.token, accessExpiresAt: timestampFromDate(issued.expiresAt) } }));
        return c;
      }),
    );
  };
}

/** Pairs (2p, 2p+1): the even client sends to the odd one, peak first, then half the peak. */
async function measureOneToOne(
  mode: string,
  urls: string[],
  pids: { server: number[]; infra?: number[] },
  options: BenchOptions,
  makeClients: MakeClients,
): Promise<{ rows: Row[]; figures: OneToOneFigures; peakWindow: [bigint, bigint] }> {
  const { pairs } = options;
  const rows: Row[] = [];
  const deliveries = new Deliveries();
  const clients = await makeClients(urls, (m) => deliveries.delivered(m.clientMsgId));
  let peak: OneToOneFigures | undefined;
  let peakWindow: [bigint, bigint] = [0n, 0n];
  try {
    for (let i = 0; i < clients.length; i += 100) await Promise.all(clients.slice(i, i + 100).map((c) => c.connect()));
    // First contact (the peer check and the conversation's creation) happens once per pair, before measuring.
    for (let p = 0; p < pairs; p += 50) {
      await Promise.all(Array.from({ length: Math.min(50, pairs - p) }, (_, k) => clients[2 * (p + k)]!.sendText({ peerUserId: clients[2 * (p + k) + 1]!.userId }, "hello").catch(() => {})));
    }
    const run = async (label: string, ratePerSender: number | undefined): Promise<OneToOneFigures> => {
      const cpu = startCpuWindow(pids.server, [process.pid], pids.infra);
      const measured = await drivePairs(options, deliveries, (p, id) => clients[2 * p]!.sendText({ peerUserId: clients[2 * p + 1]!.userId }, benchText, id), ratePerSender);
      if (ratePerSender === undefined) peakWindow = [measured.started, measured.finished];
      const latency = deliveries.row(measured.seconds);
      const row: Row = { load: label, pairs, window: options.window, ...latency, ...cpuColumns(cpu, measured.seconds, deliveries.count) };
      rows.push({ mode, ...row });
      return { mode, perSecond: latency["msgs/s"], row };
    };
    peak = await run("peak", undefined);
    await run("50% of peak", Math.max(1, peak.perSecond / 2 / pairs));
  } finally {
    deliveries.close();
    for (const c of clients) c.close();
  }
  return { rows, figures: peak, peakWindow };
}
