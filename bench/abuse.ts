// A normal 1:1 round trip while hostile clients hammer the server (issue #18): the all-in-one process in a process of
// its own with its abuse limits on (only the per-user send rate is off, which would refuse the measuring pair's
// sequential sends), two demo users signed in with their passwords (alice sends, bob receives), `sends` sequential
// sends each waiting for its delivery: once quiet, once while forked load processes run test/abuse.test.ts's hostile
// load in a loop (5 anonymous and 5 signed-in 4 MiB bodies at once, fuzzed bodies for every unary RPC, 200 slowloris
// connections; bench/abuse-worker.ts). Reports send→deliver p50/p99 of both, their ratio, the server's RSS before, at
// its peak and after the load, its CPU, and whether every send of the pair went through.
import { fork, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import type * as hdr from "hdr-histogram-js";
import type { JWK } from "jose";
import { ImClient } from "../client/im-client.js";
import { demo } from "../platform/store/demo-data.js";
import type { AbuseCommand, AbuseReply, AbuseRole, AbuseStats } from "./abuse-worker.js";
import { CpuMeter } from "./cpu-meter.js";
import { startAllInOne } from "./deployments.js";
import { printProfile } from "./e2e-1to1.js";
import { benchText, type BenchOptions, type Row } from "./options.js";
import { latencyHistogram, printTable, saveResult } from "./report.js";

/** A send not delivered by then counts as failed. */
const sendTimeoutMs = 10_000;

/** The server's resident set in bytes, from /proc (0 when it is gone). */
function rssOf(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MiB`;

/** `sends` sequential sends from alice to bob, each waiting for bob's delivery; latency, failures and wall time. */
async function roundTrips(alice: ImClient, waiting: Map<string, () => void>, peer: string, sends: number): Promise<{ histogram: hdr.Histogram; failed: number; seconds: number }> {
  const histogram = latencyHistogram();
  let failed = 0;
  const started = process.hrtime.bigint();
  for (let i = 0; i < sends; i++) {
    const id = randomUUID();
    const t0 = process.hrtime.bigint();
    let timer: NodeJS.Timeout | undefined;
    const delivered = new Promise<void>((resolve) => waiting.set(id, resolve));
    const ok = await Promise.race([
      Promise.all([alice.sendText({ peerUserId: peer }, benchText, id), delivered]).then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), sendTimeoutMs))),
    ]).catch(() => false);
    clearTimeout(timer);
    waiting.delete(id);
    if (ok) histogram.recordValue(Number(process.hrtime.bigint() - t0) / 1000);
    else failed++;
  }
  return { histogram, failed, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

/** One forked load process in a role; resolves once it has started its load. */
async function startLoad(role: AbuseRole, url: string, signingKeys: JWK[], maxSeconds: number): Promise<{ child: ChildProcess; stop: () => Promise<AbuseStats> }> {
  const script = fileURLToPath(new URL("./abuse-worker.ts", import.meta.url));
  const child = fork(script, [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const replies: AbuseReply[] = [];
  let wake: (() => void) | undefined;
  child.on("message", (r: AbuseReply) => (replies.push(r), wake?.()));
  const next = async (op: AbuseReply["op"]): Promise<AbuseReply> => {
    for (;;) {
      const i = replies.findIndex((r) => r.op === op);
      if (i >= 0) return replies.splice(i, 1)[0]!;
      if (child.exitCode !== null) throw new Error(`abuse worker (${role}) exited with ${child.exitCode}`);
      await new Promise<void>((r) => ((wake = r), setTimeout(r, 200)));
    }
  };
  await next("ready");
  child.send({ op: "start", role, url, signingKeys, seed: 18, maxSeconds } satisfies AbuseCommand);
  await next("started");
  return {
    child,
    stop: async () => {
      child.send({ op: "stop" } satisfies AbuseCommand);
      const r = await next("stopped");
      return (r as { stats: AbuseStats }).stats;
    },
  };
}

/** `npm run bench -- abuse [--sends N] [--profile]`; --profile prints where the server's time went under abuse. */
export async function abuseBench(options: BenchOptions): Promise<Row[]> {
  const sends = options.abuseSends;
  // The limits stay at the server's defaults, but for the per-user send rate (50 at once, then 5 a second), which
  // would refuse alice's sequential sends; the per-app rate (2000/s) stays on and the fuzzing users share it.
  const profileDir = fileURLToPath(new URL(`./results/profile-${Date.now()}/`, import.meta.url));
  let abusedWindow: [bigint, bigint] = [0n, 0n];
  const server = await startAllInOne(options.profile ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [], { IM_SEND_RATE_USER: "off", IM_SEND_RATE_APP: undefined, IM_REGISTER_RATE_ADDRESS: undefined, IM_REGISTER_RATE_APP: undefined });
  const url = server.urls[0]!;
  const pid = server.gatewayPid;
  const waiting = new Map<string, () => void>();
  const alice = new ImClient({ baseUrl: url, apiKey: demo.apiKey, deviceId: "bench-alice" });
  const bob = new ImClient({ baseUrl: url, apiKey: demo.apiKey, deviceId: "bench-bob" }, { message: (m) => waiting.get(m.clientMsgId)?.() });
  const loads: Awaited<ReturnType<typeof startLoad>>[] = [];
  let rssPeak = 0;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssOf(pid))), 50);
  try {
    await alice.login("alice", demo.password);
    await bob.login("bob", demo.password);
    await Promise.all([alice.connect(), bob.connect()]);
    const peer = bob.userId;
    // First contact (the peer check and the conversation's creation) and warm-up, not measured.
    await roundTrips(alice, waiting, peer, Math.min(50, sends));

    let cpu = new CpuMeter([pid]);
    const quiet = await roundTrips(alice, waiting, peer, sends);
    const quietCpu = cpu.seconds();
    const rssBefore = rssOf(pid);
    rssPeak = rssBefore;

    const maxSeconds = 60 + quiet.seconds * 20;
    for (const role of ["slowloris", "amplify", "fuzz"] as const) loads.push(await startLoad(role, url, server.signingKeys, maxSeconds));
    // Let the load reach its steady state (every slowloris connection open, the amplification slots busy).
    await new Promise((r) => setTimeout(r, options.smoke ? 500 : 2_000));
    cpu = new CpuMeter([pid]);
    const loadCpu = new CpuMeter(loads.map((l) => l.child.pid!));
    const abusedStart = process.hrtime.bigint();
    const abused = await roundTrips(alice, waiting, peer, sends);
    abusedWindow = [abusedStart, process.hrtime.bigint()];
    const abusedCpu = cpu.seconds();
    const abusedLoadCpu = loadCpu.seconds();
    const stats = await Promise.all(loads.splice(0).map((l) => l.stop()));
    const health = await alice.api.msg.listConversations({ pageSize: 1 }, { headers: alice.api.headers() }).then(
      () => "yes",
      (e: unknown) => `no (${String(e)})`,
    );
    await new Promise((r) => setTimeout(r, 2_000));
    const rssAfter = rssOf(pid);

    const ms = (h: hdr.Histogram, p: number) => h.getValueAtPercentile(p) / 1000;
    const ratio = (p: number) => `${(ms(abused.histogram, p) / Math.max(0.001, ms(quiet.histogram, p))).toFixed(2)}×`;
    const row = (label: string, r: typeof quiet, cpuSeconds: number, loadSeconds: number | undefined, rss: string): Row => ({
      phase: label,
      sends,
      "p50 ms": ms(r.histogram, 50).toFixed(2),
      "p99 ms": ms(r.histogram, 99).toFixed(2),
      "max ms": ms(r.histogram, 100).toFixed(2),
      "failed sends": r.failed,
      "server CPU %": Math.round((cpuSeconds / r.seconds) * 100),
      "load CPU %": loadSeconds === undefined ? "-" : Math.round((loadSeconds / r.seconds) * 100),
      "server RSS": rss,
    });
    const table: Row[] = [
      row("quiet", quiet, quietCpu, undefined, mib(rssBefore)),
      row("under abuse", abused, abusedCpu, abusedLoadCpu, `peak ${mib(rssPeak)}, after ${mib(rssAfter)}`),
      { phase: "ratio", sends: "-", "p50 ms": ratio(50), "p99 ms": ratio(99), "max ms": ratio(100), "failed sends": "-", "server CPU %": "-", "load CPU %": "-", "server RSS": `+${mib(rssPeak - rssBefore)} at peak` },
    ];
    const loadRows: Row[] = stats.map((s) => ({
      load: s.role,
      what:
        s.role === "amplify"
          ? "4 MiB bodies, 5 anonymous + 5 signed in at once"
          : s.role === "fuzz"
            ? "fuzzed unary calls, 16 in flight"
            : "slowloris connections, 200 open at once",
      made: s.requests,
      [`refused / closed by server`]: s.refused,
      "other answers (faults) / left open": s.other,
    }));
    const faults = stats.flatMap((s) => s.sample);
    const kept = abused.failed === 0 && health === "yes";
    console.log(
      `\nabuse: ${sends} sequential alice → bob sends (each waits for bob's delivery), quiet and then under hostile load from 3 forked processes; all-in-one with its abuse limits on (IM_SEND_RATE_USER off)${options.smoke ? " (smoke run: figures are not meaningful)" : ""}`,
    );
    printTable(table);
    printTable(loadRows);
    console.log(`server kept serving: ${kept ? "yes" : "NO"} (failed sends under abuse: ${abused.failed}; a unary call after the load: ${health})`);
    if (faults.length > 0) console.log(`load answers that were not client errors (samples):\n  ${faults.join("\n  ")}`);
    console.log(`saved ${saveResult("abuse", { options, rows: table, load: loadRows, kept, faults })}`);
    if (!kept) throw new Error("abuse: the server did not keep serving the measuring pair");
    return table;
  } finally {
    clearInterval(sampler);
    await Promise.all(loads.map((l) => l.stop().catch(() => undefined)));
    for (const l of loads) l.child.kill();
    alice.close();
    bob.close();
    await server.stop();
    if (options.profile) printProfile(profileDir, abusedWindow, "the round trips under abuse");
  }
}
