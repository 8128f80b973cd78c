// Idle streams against one gateway: C devices, each its own stream with its own token, opened as fast as the
// gateway welcomes them, then left idle with a heartbeat ping every 10 s (what the SDK does). Reports the connect
// rate, the gateway's RSS per stream and the CPU the idle streams cost. The baseline in the same run holds the
// same streams on the bare transport server. One TCP connection per stream up to the file-descriptor limit of a
// process here (hard RLIMIT_NOFILE 20,000, not raisable); past it, streams share connections, as they would
// behind an HTTP/2 load balancer.
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { startNodeProcess } from "../test/processes.js";
import { mintTokens, startAllInOne } from "./deployments.js";
import type { BenchOptions, Row } from "./options.js";
import { printTable, saveResult } from "./report.js";
import { connectionsPerProcess, processUsage, StreamLoad } from "./stream-load.js";

/** The most TCP connections one server process can accept here, leaving room for its other descriptors. */
const serverConnectionLimit = connectionsPerProcess;

async function measure(system: string, url: string, pid: number, tokens: string[], idleSeconds: number): Promise<Row> {
  const streams = tokens.length;
  const connections = Math.min(streams, serverConnectionLimit);
  // A load process holds at most 9,500 connections, so that it too stays far below its descriptor limit.
  const workers = Math.max(1, Math.ceil(connections / 9_500));
  const load = await StreamLoad.start({ url, workers, connections, sourceAddresses: 4 });
  try {
    const before = processUsage(pid);
    const opened = await load.open(tokens, { concurrency: 128, pingMs: 10_000 });
    // Let allocation settle (GC, route writes) before reading memory.
    await new Promise((r) => setTimeout(r, 2000));
    const open = processUsage(pid);
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const idle = processUsage(pid);
    return {
      system,
      streams,
      "TCP conns": connections,
      open: opened.welcomed,
      "connects/s": Math.round(opened.welcomed / (opened.ms / 1000)),
      "RSS MiB": Math.round(open.rss / 2 ** 20),
      "KiB/stream": ((open.rss - before.rss) / 1024 / Math.max(1, opened.welcomed)).toFixed(1),
      "idle CPU %": (((idle.cpuSeconds - open.cpuSeconds) / idleSeconds) * 100).toFixed(1),
      ...(opened.failed > 0 ? { "first error": opened.error.slice(0, 80) } : {}),
    };
  } finally {
    await load.stop();
  }
}

/** `npm run bench -- connections [--connections C]`. */
export async function connectionsBench(options: BenchOptions): Promise<Row[]> {
  const idleSeconds = options.smoke ? 1 : options.quick ? 10 : 30;
  const rows: Row[] = [];
  const root = fileURLToPath(new URL("..", import.meta.url));
  const transport = await startNodeProcess("bench/transport-server.ts", {}, root);
  try {
    rows.push(await measure("transport (bare connect-node)", `http://127.0.0.1:${transport.port}`, transport.child.pid!, Array.from({ length: options.connections }, () => ""), idleSeconds));
  } finally {
    transport.child.kill("SIGTERM");
    await transport.exited;
  }
  const ours = await startAllInOne();
  try {
    const tokens = await mintTokens(ours.signingKeys, Array.from({ length: options.connections }, () => randomUUID()));
    rows.push(await measure("ours (gateway, all-in-one)", ours.urls[0]!, ours.gatewayPid, tokens, idleSeconds));
  } finally {
    await ours.stop();
  }
  console.log(`\nconnections: idle streams against one server process, ${idleSeconds} s idle with a ping every 10 s${options.smoke ? " (smoke run: figures are not meaningful)" : ""}`);
  printTable(rows);
  console.log(`saved ${saveResult("connections", { options, rows })}`);
  return rows;
}
