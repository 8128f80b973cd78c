// 1:1 delivery end to end: pairs of SDK clients (in this process) talk through im-mesh running in other processes on
// loopback — all-in-one (one process, in-memory adapters) and, when the infrastructure variables are set, mesh mode
// (auth, user, msg and two gateways on etcd, MariaDB, Redis and Kafka; senders on one gateway, receivers on the
// other). Each sender keeps a window of sends in flight. Reports delivered messages/s and send→deliver latency,
// first at full speed, then at half of that rate.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { ImClient } from "../client/im-client.js";
import { startMeshDeployment } from "../test/mesh-deployment.js";
import { latencyHistogram, printTable, saveResult } from "./report.js";

const infraVariables = ["IM_ETCD_ENDPOINTS", "IM_MYSQL_URL", "IM_REDIS_URL", "IM_KAFKA_BROKERS"];

/** The all-in-one process on a free port, with nothing but memory behind it. */
async function startAllInOne(): Promise<{ urls: string[]; stop: () => Promise<void> }> {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !infraVariables.includes(k)));
  const server = spawn(process.execPath, ["--import", "tsx", "services/all-in-one.ts"], { cwd: root, env: { ...env, IM_GATEWAY_PORT: "0", IM_LOG_LEVEL: "warn" }, stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    server.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /at (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    server.once("exit", (code) => reject(new Error(`all-in-one exited with ${code}`)));
  });
  const exited = new Promise((r) => server.once("exit", r));
  return { urls: [url], stop: async () => void (server.kill("SIGTERM"), await exited) };
}

/** Runs the scenario; `smoke` makes it a few seconds long for CI (figures then mean little). */
export async function e2eOneToOneBench(options: { smoke: boolean }): Promise<void> {
  const rows: Record<string, string | number>[] = [];
  rows.push(...(await measureDeployment("all-in-one", await startAllInOne(), options.smoke)));
  if (process.env.IM_ETCD_ENDPOINTS) rows.push(...(await measureDeployment("mesh, 2 gateways", await startMeshDeployment({ gateways: 2, redisDb: 12 }), options.smoke)));
  else console.log("e2e-1to1: IM_ETCD_ENDPOINTS is not set, so mesh mode is left out (source deploy/local/env.sh after make infra-up)");
  console.log(`\ne2e-1to1: pairs of SDK clients, 4 sends in flight per sender${options.smoke ? " (smoke run: figures are not meaningful)" : ""}`);
  printTable(rows);
  console.log(`saved ${saveResult("e2e-1to1", { smoke: options.smoke, rows })}`);
}

async function measureDeployment(mode: string, deployment: { urls: string[]; stop: () => Promise<void> }, smoke: boolean): Promise<Record<string, string | number>[]> {
  const pairs = smoke ? 2 : 50;
  const window = 4;
  const seconds = smoke ? 1 : 8;
  const url = deployment.urls[0]!;
  const receiverUrl = deployment.urls[deployment.urls.length - 1]!;
  const rows: Record<string, string | number>[] = [];
  const clients: ImClient[] = [];
  try {
    const names = Array.from({ length: pairs * 2 }, () => `b${randomUUID().replaceAll("-", "").slice(0, 12)}`);
    const sentAt = new Map<string, bigint>();
    let histogram = latencyHistogram();
    let delivered = 0;
    const ids: string[] = [];
    for (const [i, username] of names.entries()) {
      const c = new ImClient({ baseUrl: i % 2 === 0 ? url : receiverUrl, apiKey: "demo-api-key", deviceId: "bench" }, {
        message: (m) => {
          const t0 = sentAt.get(m.clientMsgId);
          if (t0 === undefined) return;
          sentAt.delete(m.clientMsgId);
          histogram.recordValue(Number(process.hrtime.bigint() - t0) / 1000);
          delivered++;
        },
      });
      // Registering signs the device in; logging in 100 users from one address would trip the sign-in limiter.
      await c.register(username, "bench password 1");
      await c.connect();
      clients.push(c);
      ids.push(c.userId);
    }
    const run = async (label: string, ratePerSender: number | undefined) => {
      histogram.destroy();
      histogram = latencyHistogram();
      delivered = 0;
      const end = Date.now() + seconds * 1000;
      const started = process.hrtime.bigint();
      await Promise.all(
        Array.from({ length: pairs }, async (_, p) => {
          const from = clients[2 * p]!;
          const to = ids[2 * p + 1]!;
          await Promise.all(
            Array.from({ length: window }, async () => {
              while (Date.now() < end) {
                const id = randomUUID();
                sentAt.set(id, process.hrtime.bigint());
                const t = Date.now();
                await from.sendText({ peerUserId: to }, "benchmark message of a typical chat length, about sixty bytes", id);
                if (ratePerSender !== undefined) await new Promise((r) => setTimeout(r, Math.max(0, (window * 1000) / ratePerSender - (Date.now() - t))));
              }
            }),
          );
        }),
      );
      await new Promise((r) => setTimeout(r, 300));
      const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
      rows.push({
        mode,
        load: label,
        pairs,
        "delivered/s": Math.round(delivered / elapsed),
        "p50 ms": (histogram.getValueAtPercentile(50) / 1000).toFixed(1),
        "p99 ms": (histogram.getValueAtPercentile(99) / 1000).toFixed(1),
        "p999 ms": (histogram.getValueAtPercentile(99.9) / 1000).toFixed(1),
      });
      sentAt.clear();
      return delivered / elapsed;
    };
    const peak = await run("peak", undefined);
    await run("50% of peak", Math.max(1, peak / 2 / pairs));
    histogram.destroy();
  } finally {
    for (const c of clients) c.close();
    await deployment.stop();
  }
  return rows;
}
