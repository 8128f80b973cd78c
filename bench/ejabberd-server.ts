// A private ejabberd from Debian (`apt-get install ejabberd`) for the ejabberd scenario, started on a free loopback
// port in one of three configurations that differ only in where mod_mam archives every message: nowhere (the
// in-memory peer of our all-in-one), mnesia (ejabberd's own database, in files of its spool), or MariaDB through
// ejabberd's SQL backend (the durable peer of our mesh mode, which stores in the same MariaDB), in a database and
// with a user of its own, created from the package's schema and dropped afterwards. All three keep in-band
// registration, stream management for server acks and offline storage.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import mysql from "mysql2/promise";
import { freePort, waitForPort } from "../test/processes.js";
import { processGroupPids } from "./cpu-meter.js";
import type { EjabberdArchive } from "./options.js";
import { XmppClient } from "./xmpp-client.js";

const ctl = "/usr/sbin/ejabberdctl";
const erlangLibs = "/usr/lib/erlang/lib";
const mysqlSchema = "/usr/share/ejabberd/sql/mysql.sql";

/** Why one configuration of a baseline cannot run on this machine: its row is printed as skipped, the run goes on. */
export class BaselineUnavailable extends Error {}

/**
 * The MariaDB ejabberd's SQL backend archives to, and the administrator who sets it up there:
 * IM_BENCH_EJABBERD_SQL_URL, else root without a password on loopback. ejabberd itself signs in as a user of its own
 * with a password (Debian's p1_mysql cannot sign in with an empty one: it sends a scramble of it anyway).
 */
function sqlTarget(port: number) {
  const url = new URL(process.env.IM_BENCH_EJABBERD_SQL_URL ?? `mysql://root@127.0.0.1:${process.env.IM_LOCAL_MYSQL_PORT ?? "3306"}`);
  const admin = { host: url.hostname, port: Number(url.port || 3306), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
  const name = `bench_ejabberd_${port}`;
  return { admin, url: `mysql://${admin.user}@${admin.host}:${admin.port}`, host: admin.host, port: admin.port, database: name, user: name, password: randomBytes(12).toString("hex") };
}

type SqlTarget = ReturnType<typeof sqlTarget>;

/** ejabberd's YAML configuration; `sql` is set exactly when the archive (and with it every other table) is in MariaDB. */
function config(port: number, archive: EjabberdArchive, sql: SqlTarget | undefined): string {
  const database = sql
    ? `sql_type: mysql
sql_server: "${sql.host}"
sql_port: ${sql.port}
sql_database: "${sql.database}"
sql_username: "${sql.user}"
sql_password: "${sql.password}"
default_db: sql
auth_method: sql
`
    : "auth_method: internal\n";
  const mam = archive === "none" ? "" : `  mod_mam:\n    default: always\n    db_type: ${archive}\n`;
  return `loglevel: warning
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
${database}registration_timeout: infinity
access_rules:
  register:
    allow: all
modules:
  mod_register:
    access: register
    ip_access: all
  mod_stream_mgmt: {}
  mod_offline: {}
${mam}  mod_roster: {}
  mod_disco: {}
  mod_ping: {}
`;
}

/** Creates the SQL backend's database from the package's schema, or says why it cannot be used here. */
async function createSqlDatabase(sql: SqlTarget): Promise<void> {
  if (!readdirSync(erlangLibs).some((d) => d.startsWith("p1_mysql-"))) {
    throw new BaselineUnavailable("Erlang's MySQL driver is not installed (apt-get install erlang-p1-mysql), so ejabberd's SQL backend cannot reach MariaDB");
  }
  if (!existsSync(mysqlSchema)) throw new BaselineUnavailable(`ejabberd's MySQL schema ${mysqlSchema} is missing`);
  let conn: mysql.Connection;
  try {
    conn = await mysql.createConnection({ ...sql.admin, multipleStatements: true, connectTimeout: 5000 });
    await conn.query(`DROP DATABASE IF EXISTS \`${sql.database}\`; CREATE DATABASE \`${sql.database}\` CHARACTER SET utf8mb4`);
    // 'localhost' as well as '%': MariaDB may resolve 127.0.0.1 to localhost, where an anonymous user would win over '%'.
    for (const host of ["%", "localhost"]) {
      await conn.query(`CREATE OR REPLACE USER ?@? IDENTIFIED BY ?; GRANT ALL ON \`${sql.database}\`.* TO ?@?`, [sql.user, host, sql.password, sql.user, host]);
    }
  } catch (err) {
    throw new BaselineUnavailable(`MariaDB at ${sql.url} (set IM_BENCH_EJABBERD_SQL_URL) does not let the bench create a database: ${(err as Error).message}`);
  }
  try {
    await conn.query(`USE \`${sql.database}\`; ${readFileSync(mysqlSchema, "utf8")}`);
  } finally {
    await conn.end();
  }
}

async function dropSqlDatabase(sql: SqlTarget): Promise<void> {
  const conn = await mysql.createConnection({ ...sql.admin, multipleStatements: true });
  try {
    await conn.query(`DROP DATABASE IF EXISTS \`${sql.database}\`; DROP USER IF EXISTS ?@'%', ?@'localhost'`, [sql.user, sql.user]);
  } finally {
    await conn.end();
  }
}

/** A running private ejabberd: its port, its processes (for CPU), the MariaDB it archives to, and how to stop it. */
export interface EjabberdServer {
  readonly port: number;
  /** The processes of ejabberd's process group (ejabberdctl, the Erlang VM and its helpers), read now. */
  pids(): number[];
  /** Where the SQL backend archives, when it does. */
  readonly sql?: { host: string; port: number };
  /** Stops it and removes its state (its logs are kept when `keepLogs`), and its database. */
  stop(keepLogs: boolean): Promise<void>;
}

/** Starts ejabberd with the archive in `archive`; throws BaselineUnavailable when that configuration cannot run here. */
export async function startEjabberd(archive: EjabberdArchive): Promise<EjabberdServer> {
  if (!existsSync(ctl)) throw new Error("ejabberd is not installed: apt-get install -y ejabberd (the ejabberd scenario compares with it)");
  const port = await freePort();
  const sql = archive === "sql" ? sqlTarget(port) : undefined;
  if (sql) await createSqlDatabase(sql);
  const dir = fileURLToPath(new URL(`../.run/bench-ejabberd-${port}/`, import.meta.url));
  mkdirSync(`${dir}spool`, { recursive: true });
  mkdirSync(`${dir}logs`, { recursive: true });
  writeFileSync(`${dir}ejabberd.yml`, config(port, archive, sql));
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
  const stop = async (keepLogs: boolean) => {
    spawnSync(ctl, [...args, "stop"], { cwd: dir, stdio: "ignore", timeout: 30_000, ...asUser });
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
    // What ejabberdctl started runs in the process group of the process we spawned.
    if (server.exitCode === null) process.kill(-server.pid!, "SIGKILL");
    if (keepLogs) console.error(`ejabberd's logs are kept in ${dir}logs`);
    else rmSync(dir, { recursive: true, force: true });
    if (sql) await dropSqlDatabase(sql);
  };
  try {
    await waitForPort(port, 60_000);
  } catch (err) {
    await stop(true);
    throw err;
  }
  // The SQL backend connects in the background and only fails the requests that need it, so one registration
  // tells whether ejabberd can use MariaDB at all; if not, the reason is in its error log.
  if (sql) {
    const probe = new XmppClient("127.0.0.1", port, "localhost", `probe${randomUUID().slice(0, 8)}`, "probe password 1");
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("no answer within 30 s")), 30_000)));
    try {
      await Promise.race([probe.connect(true), timeout]);
    } catch (err) {
      const log = existsSync(`${dir}logs/error.log`) ? readFileSync(`${dir}logs/error.log`, "utf8") : "";
      const lastError = log.split("\n").filter((l) => l.includes("[error]")).pop()?.replace(/^.*?\[error\]\s*\S+\s*/, "") ?? "";
      await stop(true);
      throw new BaselineUnavailable(`ejabberd's SQL backend cannot use MariaDB at ${sql.url} (${(err as Error).message.slice(0, 120)}): ${lastError.slice(0, 300) || "nothing in its error log"}`);
    } finally {
      clearTimeout(timer);
      probe.close();
    }
  }
  return { port, pids: () => processGroupPids(server.pid!), sql: sql && { host: sql.host, port: sql.port }, stop };
}
