// The same 1:1 scenario over XMPP against ejabberd from Debian (`apt-get install ejabberd`), started here on a free
// loopback port with a configuration of our own: in-band registration, stream management for server acks, offline
// storage and a message archive (mod_mam on mnesia), like ours stores every message. The same number of pairs,
// the same window of sends in flight (a send counts as done when the server acks it) and the same text; compared
// with our all-in-one figures from the same run.
import { spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chownSync, existsSync, mkdirSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { freePort, waitForPort } from "../test/processes.js";
import { e2eOneToOneBench } from "./e2e-1to1.js";
import { benchText, type BenchOptions, type Row } from "./options.js";
import { Deliveries, drivePairs } from "./pair-load.js";
import { printTable, saveResult } from "./report.js";
import type { BenchContext } from "./run.js";
import { XmppClient } from "./xmpp-client.js";

const ctl = "/usr/sbin/ejabberdctl";

const config = (port: number) => `loglevel: warning
hosts:
  - localhost
listen:
  -
    port: ${port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    backlog: 1024
    max_stanza_size: 65536
    shaper: none
    access: all
    starttls: false
auth_method: internal
registration_timeout: infinity
access_rules:
  register:
    allow: all
modules:
  mod_register:
    access: register
    ip_access: all
  mod_stream_mgmt: {}
  mod_offline: {}
  mod_mam:
    default: always
    db_type: mnesia
  mod_roster: {}
  mod_disco: {}
  mod_ping: {}
`;

/** A private ejabberd on a free port, its state in .run/; stop() stops it and removes that state unless asked to keep it. */
async function startEjabberd(): Promise<{ port: number; stop: (keepLogs: boolean) => Promise<void> }> {
  if (!existsSync(ctl)) throw new Error("ejabberd is not installed: apt-get install -y ejabberd (the ejabberd scenario compares with it)");
  const port = await freePort();
  const dir = fileURLToPath(new URL(`../.run/bench-ejabberd-${port}/`, import.meta.url));
  mkdirSync(`${dir}spool`, { recursive: true });
  mkdirSync(`${dir}logs`, { recursive: true });
  writeFileSync(`${dir}ejabberd.yml`, config(port));
  // ejabberdctl reads its own settings file, which would otherwise point at /etc/ejabberd/ejabberd.yml.
  writeFileSync(`${dir}ejabberdctl.cfg`, `EJABBERD_CONFIG_PATH=${dir}ejabberd.yml\n`);
  copyFileSync("/etc/ejabberd/inetrc", `${dir}inetrc`);
  // Started by root, ejabberdctl would su to the ejabberd user, and su's pam_limits sets the descriptor limit back to
  // 1024 (1,000 clients then fail with "too many open files" and mnesia stops), so root starts it as that user itself.
  const asUser: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv } = {};
  if (process.getuid?.() === 0) {
    const uid = Number(spawnSync("id", ["-u", "ejabberd"]).stdout.toString().trim());
    const gid = Number(spawnSync("id", ["-g", "ejabberd"]).stdout.toString().trim());
    for (const p of [dir, `${dir}spool`, `${dir}logs`, `${dir}ejabberd.yml`, `${dir}ejabberdctl.cfg`, `${dir}inetrc`]) chownSync(p, uid, gid);
    Object.assign(asUser, { uid, gid, env: { ...process.env, HOME: "/var/lib/ejabberd", USER: "ejabberd", LOGNAME: "ejabberd" } });
  }
  const args = ["--config-dir", dir, "--spool", `${dir}spool`, "--logs", `${dir}logs`, "--node", `bench${port}@localhost`];
  const server = spawn(ctl, [...args, "foreground"], { cwd: dir, stdio: ["ignore", "ignore", "inherit"], detached: true, ...asUser });
  const exited = new Promise<void>((r) => server.once("exit", () => r()));
  await waitForPort(port, 60_000);
  return {
    port,
    stop: async (keepLogs) => {
      spawnSync(ctl, [...args, "stop"], { cwd: dir, stdio: "ignore", timeout: 30_000, ...asUser });
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      // What ejabberdctl started runs in the process group of the process we spawned.
      if (server.exitCode === null) process.kill(-server.pid!, "SIGKILL");
      if (keepLogs) console.error(`ejabberd's logs are kept in ${dir}logs`);
      else rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Pairs of XMPP clients, the even one sending to the odd one; peak first, then half the peak. */
async function measureEjabberd(options: BenchOptions): Promise<{ rows: Row[]; perSecond: number; p99Ms: number }> {
  const { pairs } = options;
  const ejabberd = await startEjabberd();
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
    const run = async (label: string, ratePerSender: number | undefined) => {
      const measured = await drivePairs(options, deliveries, (p, id) => clients[2 * p]!.send(clients[2 * p + 1]!.jid, id, benchText), ratePerSender);
      const row = deliveries.row(measured.seconds);
      rows.push({ system: "ejabberd 23.01 (XMPP)", load: label, pairs, ...row });
      return { perSecond: row["msgs/s"], p99Ms: Number(row["p99 ms"]) };
    };
    const peak = await run("peak", undefined);
    await run("50% of peak", Math.max(1, peak.perSecond / 2 / pairs));
    failed = false;
    return { rows, ...peak };
  } finally {
    deliveries.close();
    for (const c of clients) c?.close();
    await ejabberd.stop(failed);
  }
}

/** `npm run bench -- ejabberd [--pairs N]`: ejabberd, then ours (unless this run already measured it). */
export async function ejabberdBench(options: BenchOptions, context: BenchContext = {}): Promise<void> {
  const theirs = await measureEjabberd(options);
  if (context.oneToOne === undefined) await e2eOneToOneBench(options, context);
  const ours = context.oneToOne!;
  const rows: Row[] = [
    ...theirs.rows.map((r) => ({ ...r, "ours/ejabberd": "-" })),
    ...ours.map((o) => ({
      system: `ours (${o.mode})`,
      load: "peak",
      pairs: options.pairs,
      ...o.row,
      "ours/ejabberd": `${(o.perSecond / theirs.perSecond).toFixed(2)}×`,
    })),
  ];
  console.log(`\nejabberd: ${options.pairs} pairs over XMPP, ${options.window} sends in flight per sender (acked by stream management), ${options.seconds} s per load${options.smoke ? " (smoke run: figures are not meaningful)" : ""}`);
  printTable(rows);
  console.log(`saved ${saveResult("ejabberd", { options, rows })}`);
}
