// The transport ceiling: the same streams and frames as the 1:1 scenario (one stream per sending client, the same
// window of sends in flight, the same text) against bare connect-node with nothing behind it. Whatever ours does
// beyond this is the cost of auth, storage, routing and delivery. The server's and the load generator's CPU are
// reported beside it, so that a row where the load generator is at 100 % and the server is not reads as what it is.
import { fileURLToPath } from "node:url";
import { startNodeProcess } from "../test/processes.js";
import { cpuColumns, startCpuWindow } from "./cpu-meter.js";
import { benchText, type BenchOptions, type Row } from "./options.js";
import { printTable, saveResult } from "./report.js";
import { StreamLoad } from "./stream-load.js";

/** What the ceiling measured: answered frames per second and their round trip. */
export interface TransportFigures {
  readonly streams: number;
  readonly perSecond: number;
  readonly row: Row;
}

/** Measures the ceiling with `streams` streams, `window` frames in flight each, for `seconds`. */
export async function measureTransport(options: { streams: number; window: number; seconds: number }): Promise<TransportFigures> {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const server = await startNodeProcess("bench/transport-server.ts", {}, root);
  const load = await StreamLoad.start({ url: `http://127.0.0.1:${server.port}`, workers: 1, connections: options.streams, sourceAddresses: 1 });
  try {
    const opened = await load.open(Array.from({ length: options.streams }, () => ""));
    if (opened.welcomed !== options.streams) throw new Error(`transport: only ${opened.welcomed} of ${options.streams} streams opened (${opened.error})`);
    const cpu = startCpuWindow([server.child.pid!], load.pids);
    const started = process.hrtime.bigint();
    const { answered, perSecond, histogram } = await load.echo(options.seconds, options.window, benchText);
    const wall = Number(process.hrtime.bigint() - started) / 1e9;
    const row: Row = {
      system: "transport (bare connect-node echo)",
      streams: options.streams,
      window: options.window,
      "msgs/s": Math.round(perSecond),
      "p50 ms": (histogram.getValueAtPercentile(50) / 1000).toFixed(1),
      "p99 ms": (histogram.getValueAtPercentile(99) / 1000).toFixed(1),
      "p999 ms": (histogram.getValueAtPercentile(99.9) / 1000).toFixed(1),
      ...cpuColumns(cpu, wall, answered),
    };
    histogram.destroy();
    return { streams: options.streams, perSecond, row };
  } finally {
    await load.stop();
    server.child.kill("SIGTERM");
    await server.exited;
  }
}

/** `npm run bench -- transport`. */
export async function transportBench(options: BenchOptions): Promise<TransportFigures> {
  const figures = await measureTransport({ streams: options.pairs, window: options.window, seconds: options.seconds });
  console.log(`\ntransport: ${figures.streams} streams, ${options.window} frames in flight each, one load process (server CPU % and load CPU % are of one core)${options.smoke ? " (smoke run: figures are not meaningful)" : ""}`);
  printTable([figures.row]);
  console.log(`saved ${saveResult("transport", { options, rows: [figures.row] })}`);
  return figures;
}
