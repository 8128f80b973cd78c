// The same 1:1 scenario over XMPP against ejabberd from Debian, in each configuration asked for (bench/ejabberd-server.ts):
// without an archive, the peer of our all-in-one (which keeps messages in memory), and with mod_mam archiving every
// message to MariaDB, the peer of our mesh mode (which stores every message there). The same pairs, the same window
// of sends in flight (a send counts as done when the server acks it with stream management) and the same text;
// compared with our figures from the same run, each of our modes with its own peer.
import { randomUUID } from "node:crypto";
import { cpuColumns, pidListeningOn, startCpuWindow } from "./cpu-meter.js";
import { e2eOneToOneBench } from "./e2e-1to1.js";
import { BaselineUnavailable, startEjabberd } from "./ejabberd-server.js";
import { benchText, type BenchOptions, type EjabberdArchive, type Row } from "./options.js";
import { Deliveries, drivePairs } from "./pair-load.js";
import { printTable, saveResult } from "./report.js";
import type { BenchContext } from "./run.js";
import { XmppClient } from "./xmpp-client.js";

/** What one ejabberd configuration measured, or why it was skipped. */
interface EjabberdFigures {
  readonly archive: EjabberdArchive;
  readonly rows: Row[];
  /** Delivered messages per second at peak; undefined when skipped. */
  readonly perSecond?: number;
  readonly skipped?: string;
}

/** The row label of each configuration; the durable peer of mesh mode is MariaDB's, or mnesia's when that is all there is. */
function label(archive: EjabberdArchive, durablePeer: EjabberdArchive | undefined): string {
  if (archive === "none") return "ejabberd, no archive (in-memory peer of all-in-one)";
  const where = archive === "sql" ? "MAM on MariaDB" : "MAM on mnesia";
  return archive === durablePeer ? `ejabberd, ${where} (durable peer of mesh mode)` : `ejabberd, ${where}`;
}

/** Pairs of XMPP clients against one configuration, the even one sending to the odd one; peak first, then half the peak. */
async function measureEjabberd(options: BenchOptions, archive: EjabberdArchive): Promise<EjabberdFigures> {
  const { pairs } = options;
  let ejabberd;
  try {
    ejabberd = await startEjabberd(archive);
  } catch (err) {
    if (err instanceof BaselineUnavailable) return { archive, rows: [], skipped: err.message };
    throw err;
  }
  const clients: XmppClient[] = [];
  const rows: Row[] = [];
  const deliveries = new Deliveries();
  let failed = true;
  try {
    for (let i = 0; i < pairs * 2; i += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, pairs * 2 - i) }, async (_, k) => {
          const c = new XmppClient("127.0.0.1", ejabberd.port, "localhost", `b${randomUUID().replaceAll("-", "").slice(0, 12)}`, "bench password 1");
          c.onMessage = (_from, id) => deliveries.delivered(id);
          await c.connect(true);
          clients[i + k] = c;
        }),
      );
    }
    const database = ejabberd.sql && pidListeningOn(ejabberd.sql.port);
    const run = async (load: string, ratePerSender: number | undefined) => {
      const cpu = startCpuWindow(ejabberd.pids(), [process.pid], database === undefined ? undefined : [database]);
      const measured = await drivePairs(options, deliveries, (p, id) => clients[2 * p]!.send(clients[2 * p + 1]!.jid, id, benchText), ratePerSender);
      const row = deliveries.row(measured.seconds);
      rows.push({ archive, load, pairs, window: options.window, ...row, ...cpuColumns(cpu, measured.seconds, deliveries.count) });
      return row["msgs/s"];
    };
    const perSecond = await run("peak", undefined);
    await run("50% of peak", Math.max(1, perSecond / 2 / pairs));
    failed = false;
    return { archive, rows, perSecond };
  } finally {
    deliveries.close();
    for (const c of clients) c?.close();
    await ejabberd.stop(failed);
  }
}

/** `npm run bench -- ejabberd [--pairs N] [--window N] [--ejabberd-archive none,sql]`: ejabberd, then ours unless measured. */
export async function ejabberdBench(options: BenchOptions, context: BenchContext = {}): Promise<void> {
  const theirs: EjabberdFigures[] = [];
  for (const archive of options.ejabberdArchives) theirs.push(await measureEjabberd(options, archive));
  if (context.oneToOne === undefined) await e2eOneToOneBench(options, context);
  const ours = context.oneToOne!;
  const measured = (a: EjabberdArchive) => theirs.find((t) => t.archive === a && t.perSecond !== undefined);
  const durable = measured("sql") ?? measured("mnesia");
  const inMemory = measured("none");
  const blank = { "msgs/s": "-", "p50 ms": "-", "p99 ms": "-", "p999 ms": "-", "failed sends": "-", "server CPU %": "-", "load CPU %": "-", "server CPU µs/msg": "-", "infra CPU µs/msg": "-" };
  const rows: Row[] = [
    ...theirs.flatMap((t): Row[] =>
      t.skipped !== undefined
        ? [{ system: label(t.archive, durable?.archive), load: "skipped", pairs: options.pairs, window: options.window, ...blank, "ours ÷ peer": "-" }]
        : t.rows.map(({ archive, ...r }) => ({ system: label(archive as EjabberdArchive, durable?.archive), ...r, "ours ÷ peer": "-" })),
    ),
    ...ours.map((o) => {
      const peer = o.mode === "all-in-one" ? inMemory : durable;
      return {
        system: `ours (${o.mode})`,
        ...o.row,
        "ours ÷ peer": peer?.perSecond ? `${(o.perSecond / peer.perSecond).toFixed(2)}× (${peer.archive === "none" ? "no archive" : `MAM on ${peer.archive === "sql" ? "MariaDB" : "mnesia"}`})` : "no peer measured",
      };
    }),
  ];
  console.log(
    `\nejabberd: ${options.pairs} pairs over XMPP, ${options.window} sends in flight per sender (acked by stream management), ${options.seconds} s per load;` +
      ` CPU % is of one core, µs/msg is CPU per delivered message (infra: MariaDB for ejabberd, etcd + MariaDB + Redis + Kafka for mesh mode)` +
      `${options.smoke ? " (smoke run: figures are not meaningful)" : ""}`,
  );
  printTable(rows);
  for (const t of theirs) if (t.skipped !== undefined) console.log(`skipped ${label(t.archive, durable?.archive)}: ${t.skipped}`);
  console.log(`saved ${saveResult("ejabberd", { options, rows, skipped: theirs.filter((t) => t.skipped).map((t) => ({ archive: t.archive, reason: t.skipped })) })}`);
}
