// The transport ceiling: the same streams and frames as the 1:1 scenario (one stream per sending client, the same
// window of sends in flight, the same text) against bare connect-node with nothing behind it. Whatever ours does
// beyond this is the cost of auth, storage, routing and delivery.
import { fileURLToPath } from "node:url";
import { startNodeProcess } from "../test/processes.js";
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
    const { perSecond, histogram } = await load.echo(options.seconds, options.window, benchText);
    const row: Row = {
      system: "transport (bare connect-node echo)",
      streams: options.streams,
      "msgs/s": Math.round(perSecond),
      "p50 ms": (histogram.getValueAtPercentile(50) / 1000).toFixed(1),
      "p99 ms": (histogram.getValueAtPercentile(99) / 1000).toFixed(1),
      "p999 ms": (histogram.getValueAtPercentile(99.9) / 1000).toFixed(1),
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
  console.log(`\ntransport: ${figures.streams} streams, ${options.window} frames in flight each, one load process${options.smoke ? " (smoke run: figures are not meaningful)" : ""}`);
  printTable([figures.row]);
  console.log(`saved ${saveResult("transport", { options, rows: [figures.row] })}`);
  return figures;
}
