// The mesh client's overhead: unary Echo calls per second and latency through MeshClients (discovery, round robin,
// breaker, deadline, credential) against a bare Connect gRPC client, both to the same Echo server process.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EchoService } from "../gen/im/testing/v1/echo_pb.js";
import { ServiceDirectory } from "../mesh/directory.js";
import { ServiceCredentials } from "../mesh/identity.js";
import { MeshClients } from "../mesh/service-client.js";
import { MemoryRegistry } from "../platform/registry/memory-registry.js";
import { latencyHistogram, printTable, saveResult } from "./report.js";

/** Runs the scenario; `smoke` makes it a few seconds long for CI (figures then mean little). */
export async function meshClientBench(options: { smoke: boolean; quick: boolean }): Promise<void> {
  const calls = options.smoke ? 400 : options.quick ? 1_500 : 20_000;
  const secret = randomBytes(32).toString("base64url");
  const root = fileURLToPath(new URL("..", import.meta.url));
  const server = spawn(process.execPath, ["--import", "tsx", "bench/echo-server.ts"], {
    cwd: root,
    env: { ...process.env, IM_MESH_SECRET: secret },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    server.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /ready (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    server.once("exit", (code) => reject(new Error(`bench echo server exited with ${code}`)));
  });
  const credentials = new ServiceCredentials(secret, "bench-client");
  const registry = new MemoryRegistry();
  const directory = await ServiceDirectory.open(registry);
  const registration = await registry.register({ service: EchoService.typeName, instanceId: "bench", addr: `127.0.0.1:${port}`, version: "bench", weight: 1 });
  const mesh = new MeshClients({ directory, credentials });
  const clients: Record<string, Client<typeof EchoService>> = {
    bare: createClient(EchoService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` })),
    mesh: mesh.client(EchoService),
  };
  const token = await credentials.token();
  const rows: Record<string, string | number>[] = [];
  try {
    for (const concurrency of [1, 64]) {
      for (const [name, client] of Object.entries(clients)) {
        const headers = name === "bare" ? { authorization: `Bearer ${token}` } : undefined;
        const run = async (n: number, record: boolean) => {
          const histogram = latencyHistogram();
          let next = 0;
          const started = process.hrtime.bigint();
          await Promise.all(
            Array.from({ length: concurrency }, async () => {
              while (next++ < n) {
                const t0 = process.hrtime.bigint();
                await client.echo({ text: "ping" }, { headers, timeoutMs: 5000 });
                if (record) histogram.recordValue(Number(process.hrtime.bigint() - t0) / 1000);
              }
            }),
          );
          return { histogram, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
        };
        await run(Math.min(2000, calls), false);
        const { histogram, seconds } = await run(calls, true);
        rows.push({
          client: name,
          concurrency,
          calls,
          "calls/s": Math.round(calls / seconds),
          "p50 µs": histogram.getValueAtPercentile(50),
          "p99 µs": histogram.getValueAtPercentile(99),
        });
        histogram.destroy();
      }
      const [bare, meshed] = rows.slice(-2);
      rows[rows.length - 1]!["vs bare"] = `${Math.round((Number(meshed!["calls/s"]) / Number(bare!["calls/s"])) * 100)}%`;
      rows[rows.length - 2]!["vs bare"] = "100%";
    }
  } finally {
    await mesh.close();
    await registration.revoke();
    await directory.close();
    server.kill("SIGTERM");
  }
  console.log(`\nmesh-client: unary Echo to a server in another process${options.smoke ? " (smoke run: figures are not meaningful)" : ""}`);
  printTable(rows);
  console.log(`saved ${saveResult("mesh-client", { smoke: options.smoke, rows })}`);
}
