// A load-generator process for the stream scenarios (transport, connections, reconnect-storm baseline): it holds
// many bare Connect streams to a gateway (ours or the transport server) over a chosen number of HTTP/2 connections
// from chosen 127.0.0.x source addresses, and does what its parent asks over IPC. Forked by bench/stream-load.ts.
import net from "node:net";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClientFrameSchema, ConnectRequestSchema, GatewayService, type ConnectRequest, type ServerFrame } from "../gen/im/gateway/v1/gateway_pb.js";
import * as hdr from "hdr-histogram-js";
import { latencyHistogram } from "./report.js";
import type { WorkerCommand, WorkerReply } from "./stream-load.js";

/** One device's stream: frames pushed in, frames handed to `onFrame`. */
class BenchStream {
  private queue: ConnectRequest[] = [];
  private wake: (() => void) | undefined;
  private ended = false;
  private readonly abort = new AbortController();
  onFrame: (f: ServerFrame) => void = () => {};
  welcomed = false;
  /** Resolves when the stream is over, for whatever reason. */
  readonly done: Promise<void>;

  constructor(transport: Transport, token: string, onWelcome: () => void) {
    const requests = async function* (this: BenchStream) {
      for (;;) {
        while (this.queue.length > 0) yield this.queue.shift()!;
        if (this.ended) return;
        await new Promise<void>((r) => (this.wake = r));
      }
    }.call(this);
    const headers = token ? { authorization: `Bearer ${token}` } : undefined;
    this.done = (async () => {
      try {
        for await (const res of createClient(GatewayService, transport).connect(requests, { headers, signal: this.abort.signal, timeoutMs: 0 })) {
          if (!res.frame) continue;
          if (res.frame.body.case === "welcome" && !this.welcomed) {
            this.welcomed = true;
            onWelcome();
          }
          this.onFrame(res.frame);
        }
      } catch (err) {
        lastError = String((err as Error).message ?? err);
      }
      this.ended = true;
    })();
  }

  push(frame: MessageInitShape<typeof ClientFrameSchema>): void {
    this.queue.push(create(ConnectRequestSchema, { frame }));
    this.wake?.();
  }

  close(): void {
    this.ended = true;
    this.wake?.();
    this.abort.abort();
  }
}

let lastError = "";
let sockets: net.Socket[] = [];
let streams: BenchStream[] = [];
let pinger: NodeJS.Timeout | undefined;

/** HTTP/2 connections to `url`, the k-th from localAddresses[k % n], each made on first use. */
function transports(url: string, connections: number, localAddresses: readonly string[]): Transport[] {
  const { hostname, port } = new URL(url);
  return Array.from({ length: connections }, (_, k) =>
    createGrpcTransport({
      baseUrl: url,
      nodeOptions: {
        createConnection: () => {
          const s = net.connect({ host: hostname, port: Number(port), localAddress: localAddresses[k % localAddresses.length], noDelay: true });
          sockets.push(s);
          return s;
        },
      },
    }),
  );
}

/** Opens one stream per token, at most `concurrency` connecting at once; resolves with how many were welcomed. */
async function open(cmd: Extract<WorkerCommand, { op: "open" }>): Promise<WorkerReply> {
  const ts = transports(cmd.url, cmd.connections, cmd.localAddresses);
  const started = performance.now();
  let next = 0;
  let welcomed = 0;
  const one = async () => {
    while (next < cmd.tokens.length) {
      const i = next++;
      await new Promise<void>((resolve) => {
        const s = new BenchStream(ts[i % ts.length]!, cmd.tokens[i]!, () => {
          welcomed++;
          resolve();
        });
        streams.push(s);
        void s.done.then(() => resolve());
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(cmd.concurrency, cmd.tokens.length) }, one));
  const ms = performance.now() - started;
  if (cmd.pingMs > 0) {
    clearInterval(pinger);
    pinger = setInterval(() => {
      for (const s of streams) s.push({ body: { case: "ping", value: { clientTimeMs: BigInt(Date.now()) } } });
    }, cmd.pingMs);
  }
  return { op: "opened", welcomed, failed: cmd.tokens.length - welcomed, ms, error: lastError };
}

/** Every stream keeps `window` sends in flight for `seconds`; each answer's round trip is recorded. */
async function echo(cmd: Extract<WorkerCommand, { op: "echo" }>): Promise<WorkerReply> {
  const histogram = latencyHistogram();
  let answered = 0;
  const end = performance.now() + cmd.seconds * 1000;
  const started = performance.now();
  await Promise.all(
    streams.map(
      (s) =>
        new Promise<void>((resolve) => {
          const sentAt = new Map<bigint, number>();
          let frameId = 0n;
          let inFlight = 0;
          const send = () => {
            frameId++;
            sentAt.set(frameId, performance.now());
            inFlight++;
            s.push({ frameId, body: { case: "send", value: { clientMsgId: `m${frameId}`, target: { case: "conversationId", value: "d:peer" }, content: { kind: { case: "text", value: { text: cmd.text } } } } } });
          };
          s.onFrame = (f) => {
            const t0 = sentAt.get(f.replyTo);
            if (t0 === undefined) return;
            sentAt.delete(f.replyTo);
            inFlight--;
            answered++;
            histogram.recordValue(Math.round((performance.now() - t0) * 1000));
            if (performance.now() < end) send();
            else if (inFlight === 0) resolve();
          };
          for (let i = 0; i < cmd.window; i++) send();
          void s.done.then(() => resolve());
        }),
    ),
  );
  const elapsed = (performance.now() - started) / 1000;
  const reply: WorkerReply = { op: "echoed", answered, seconds: elapsed, histogram: hdr.encodeIntoCompressedBase64(histogram) };
  histogram.destroy();
  return reply;
}

/** Cuts every connection at once; each stream reconnects after a random 0–200 ms (the SDK's first backoff). */
async function storm(cmd: Extract<WorkerCommand, { op: "storm" }>): Promise<WorkerReply> {
  const tokens = streams.map((_, i) => cmd.tokens[i] ?? "");
  const old = streams;
  for (const s of sockets) s.destroy();
  sockets = [];
  await Promise.all(old.map((s) => s.done));
  streams = [];
  const started = performance.now();
  const ts = transports(cmd.url, cmd.connections, cmd.localAddresses);
  let welcomed = 0;
  await Promise.all(
    tokens.map(
      (token, i) =>
        new Promise<void>((resolve) =>
          setTimeout(() => {
            const s = new BenchStream(ts[i % ts.length]!, token, () => {
              welcomed++;
              resolve();
            });
            streams.push(s);
            void s.done.then(() => resolve());
          }, Math.random() * 200),
        ),
    ),
  );
  return { op: "stormed", welcomed, ms: performance.now() - started, error: lastError };
}

process.on("message", (cmd: WorkerCommand) => {
  const run = async (): Promise<WorkerReply> => {
    switch (cmd.op) {
      case "open":
        return open(cmd);
      case "echo":
        return echo(cmd);
      case "storm":
        return storm(cmd);
      case "close":
        clearInterval(pinger);
        for (const s of streams) s.close();
        for (const s of sockets) s.destroy();
        return { op: "closed" };
    }
  };
  run().then(
    (reply) => process.send!(reply),
    (err: unknown) => process.send!({ op: "failed", error: String(err) }),
  );
});
process.send!({ op: "ready" });
