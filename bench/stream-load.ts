// The parent side of the stream load generators: forks worker processes (bench/stream-worker.ts), spreads streams
// and source addresses over them, merges what they report; plus what a server process uses, read from /proc.
import { fork, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as hdr from "hdr-histogram-js";
import { latencyHistogram } from "./report.js";

/** What a worker is asked to do. */
export type WorkerCommand =
  | { op: "open"; url: string; tokens: string[]; connections: number; localAddresses: string[]; concurrency: number; pingMs: number }
  | { op: "echo"; seconds: number; window: number; text: string }
  | { op: "storm"; url: string; tokens: string[]; connections: number; localAddresses: string[] }
  | { op: "close" };

/** What a worker answers. */
export type WorkerReply =
  | { op: "ready" }
  | { op: "opened"; welcomed: number; failed: number; ms: number; error: string }
  | { op: "echoed"; answered: number; seconds: number; histogram: string }
  | { op: "stormed"; welcomed: number; ms: number; error: string }
  | { op: "closed" }
  | { op: "failed"; error: string };

/** A file-descriptor budget per process: the hard RLIMIT_NOFILE here is 20,000 and cannot be raised. */
export const connectionsPerProcess = 19_000;

class Worker {
  private waiting: ((r: WorkerReply) => void) | undefined;
  readonly ready: Promise<void>;

  constructor(readonly child: ChildProcess) {
    this.ready = new Promise((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`stream worker exited with ${code}`)));
      child.on("message", (r: WorkerReply) => {
        if (r.op === "ready") return resolve();
        const w = this.waiting;
        this.waiting = undefined;
        w?.(r);
      });
    });
  }

  ask(cmd: WorkerCommand): Promise<WorkerReply> {
    return new Promise((resolve, reject) => {
      this.waiting = (r) => (r.op === "failed" ? reject(new Error(r.error)) : resolve(r));
      this.child.send(cmd);
    });
  }
}

/** Streams spread over `workers` processes, each with its share of the connections and source addresses. */
export class StreamLoad {
  private constructor(
    private readonly workers: Worker[],
    private readonly plan: { url: string; connections: number[]; localAddresses: string[] },
  ) {}

  /** Forks the workers; `connections` TCP connections in all carry the streams, from 127.0.0.1..n. */
  static async start(options: { url: string; workers: number; connections: number; sourceAddresses: number }): Promise<StreamLoad> {
    const script = fileURLToPath(new URL("./stream-worker.ts", import.meta.url));
    const workers = Array.from({ length: options.workers }, () => new Worker(fork(script, [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] })));
    await Promise.all(workers.map((w) => w.ready));
    const localAddresses = Array.from({ length: options.sourceAddresses }, (_, i) => `127.0.0.${i + 1}`);
    const connections = workers.map((_, w) => Math.max(1, Math.floor(options.connections / workers.length) + (w < options.connections % workers.length ? 1 : 0)));
    return new StreamLoad(workers, { url: options.url, connections, localAddresses });
  }

  /** The worker processes' ids, to read their CPU from /proc. */
  get pids(): number[] {
    return this.workers.map((w) => w.child.pid!);
  }

  private share(tokens: readonly string[], w: number): string[] {
    return tokens.filter((_, i) => i % this.workers.length === w);
  }

  /** Opens one stream per token (an empty token sends no credentials); resolves with welcomed, failed and ms. */
  async open(tokens: readonly string[], options: { concurrency?: number; pingMs?: number } = {}): Promise<{ welcomed: number; failed: number; ms: number; error: string }> {
    const replies = await Promise.all(
      this.workers.map((w, i) =>
        w.ask({
          op: "open",
          url: this.plan.url,
          tokens: this.share(tokens, i),
          connections: this.plan.connections[i]!,
          localAddresses: this.plan.localAddresses,
          concurrency: options.concurrency ?? 256,
          pingMs: options.pingMs ?? 0,
        }),
      ),
    );
    const opened = replies as Extract<WorkerReply, { op: "opened" }>[];
    return {
      welcomed: opened.reduce((n, r) => n + r.welcomed, 0),
      failed: opened.reduce((n, r) => n + r.failed, 0),
      ms: Math.max(...opened.map((r) => r.ms)),
      error: opened.map((r) => r.error).find((e) => e) ?? "",
    };
  }

  /** Every stream keeps `window` frames in flight for `seconds`; answered frames (in all, per second) and their latency. */
  async echo(seconds: number, window: number, text: string): Promise<{ answered: number; seconds: number; perSecond: number; histogram: hdr.Histogram }> {
    const replies = (await Promise.all(this.workers.map((w) => w.ask({ op: "echo", seconds, window, text })))) as Extract<WorkerReply, { op: "echoed" }>[];
    const histogram = latencyHistogram();
    for (const r of replies) {
      const part = hdr.decodeFromCompressedBase64(r.histogram);
      histogram.add(part);
      part.destroy();
    }
    const answered = replies.reduce((n, r) => n + r.answered, 0);
    const elapsed = Math.max(...replies.map((r) => r.seconds));
    return { answered, seconds: elapsed, perSecond: answered / elapsed, histogram };
  }

  /** Cuts every connection at once and reconnects every stream; resolves when all are welcomed again. */
  async storm(tokens: readonly string[]): Promise<{ welcomed: number; ms: number; error: string }> {
    const replies = (await Promise.all(
      this.workers.map((w, i) => w.ask({ op: "storm", url: this.plan.url, tokens: this.share(tokens, i), connections: this.plan.connections[i]!, localAddresses: this.plan.localAddresses })),
    )) as Extract<WorkerReply, { op: "stormed" }>[];
    return { welcomed: replies.reduce((n, r) => n + r.welcomed, 0), ms: Math.max(...replies.map((r) => r.ms)), error: replies.map((r) => r.error).find((e) => e) ?? "" };
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.workers.map(async (w) => {
        await w.ask({ op: "close" }).catch(() => {});
        w.child.kill();
      }),
    );
  }
}

/** A process's resident memory in bytes and CPU time in seconds, from /proc. */
export function processUsage(pid: number): { rss: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
  // Fields 14 and 15 of /proc/<pid>/stat (after the parenthesised name) are utime and stime in clock ticks.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { rss, cpuSeconds: ticks / 100 };
}
