// CPU time of the processes a benchmark row measures, read from /proc/<pid>/stat (utime + stime) at the start and
// the end of the measured window: the server's processes (one Node process, every im-mesh process of a mesh
// deployment, ejabberd's process group), the load generator's, and apart from them the shared infrastructure
// (etcd, MariaDB, Redis, Kafka), found by the loopback ports it listens on.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { Row } from "./options.js";

/** Linux reports utime and stime in clock ticks of USER_HZ, which is 100 on every architecture Node runs on here. */
const ticksPerSecond = 100;

/** CPU seconds (user + system) a process has used so far, or undefined when it is gone. */
export function cpuSecondsOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields 14 and 15 (after the parenthesised name: indexes 11 and 12) are utime and stime.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  } catch {
    return undefined;
  }
}

/** The CPU seconds a fixed set of processes used since the meter was made; one gone meanwhile counts until then. */
export class CpuMeter {
  private readonly last = new Map<number, number>();
  private readonly first = new Map<number, number>();

  constructor(readonly pids: readonly number[]) {
    for (const pid of pids) {
      const s = cpuSecondsOf(pid);
      if (s !== undefined) this.first.set(pid, s);
    }
  }

  /** Seconds used since construction, summed over the processes (reading them now). */
  seconds(): number {
    let sum = 0;
    for (const [pid, before] of this.first) {
      const now = cpuSecondsOf(pid) ?? this.last.get(pid) ?? before;
      this.last.set(pid, now);
      sum += now - before;
    }
    return sum;
  }
}

/** The processes whose process group is `pgid` (a detached child and everything it started, like ejabberdctl's VM). */
export function processGroupPids(pgid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // After the name: state, ppid, pgrp.
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) === pgid) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Socket inodes listening on a TCP port (IPv4 or IPv6), from /proc/net/tcp{,6}. */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is f[1] (ADDR:PORT), st is f[3] (0A = LISTEN), inode is f[9].
      if (f[1]?.endsWith(`:${hexPort}`) && f[3] === "0A" && f[9] !== undefined) inodes.add(f[9]);
    }
  }
  return inodes;
}

/** The pid of the process that listens on a loopback port, or undefined (not running, or not ours to see). */
export function pidListeningOn(port: number): number | undefined {
  const inodes = listeningInodes(port);
  if (inodes.size === 0) return undefined;
  const targets = new Set([...inodes].map((i) => `socket:[${i}]`));
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (targets.has(readlinkSync(`/proc/${entry}/fd/${fd}`))) return Number(entry);
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined;
}

/** The port in a URL or host:port list (its first entry), or the fallback. */
function portOf(value: string | undefined, fallback: number): number {
  const first = value?.split(",")[0]?.trim();
  if (!first) return fallback;
  const m = /:(\d+)(?:\/|$)/.exec(first.replace(/^[a-z]+:\/\/[^@/]*@/, "//"));
  return m ? Number(m[1]) : fallback;
}

/** The infrastructure processes (etcd, MariaDB, Redis, Kafka) found by the ports in the IM_* variables. */
export function infrastructurePids(env: NodeJS.ProcessEnv = process.env, only?: readonly string[]): { name: string; port: number; pid?: number }[] {
  const all = [
    { name: "etcd", port: portOf(env.IM_ETCD_ENDPOINTS, 2379) },
    { name: "mariadb", port: portOf(env.IM_MYSQL_URL, 3306) },
    { name: "redis", port: portOf(env.IM_REDIS_URL, 6379) },
    { name: "kafka", port: portOf(env.IM_KAFKA_BROKERS, 9092) },
  ].filter((p) => only === undefined || only.includes(p.name));
  return all.map((p) => ({ ...p, pid: pidListeningOn(p.port) }));
}

/** The meters of one measured window: the server's processes, the load generator's and, where used, the infrastructure. */
export interface CpuWindow {
  readonly server: CpuMeter;
  readonly load: CpuMeter;
  readonly infra?: CpuMeter;
}

/** Starts the meters of a window; `infraPids` undefined means the system uses no shared infrastructure. */
export function startCpuWindow(serverPids: readonly number[], loadPids: readonly number[], infraPids?: readonly number[]): CpuWindow {
  return { server: new CpuMeter(serverPids), load: new CpuMeter(loadPids), infra: infraPids === undefined ? undefined : new CpuMeter(infraPids) };
}

/** A row's CPU columns: share of one core over the window, and CPU µs per delivered message (server, infrastructure). */
export function cpuColumns(window: CpuWindow, seconds: number, delivered: number): Row {
  const server = window.server.seconds();
  const load = window.load.seconds();
  const infra = window.infra?.seconds();
  const perMessage = (s: number) => (delivered > 0 ? Math.round((s * 1e6) / delivered) : "-");
  return {
    "server CPU %": Math.round((server / seconds) * 100),
    "load CPU %": Math.round((load / seconds) * 100),
    "server CPU µs/msg": perMessage(server),
    "infra CPU µs/msg": infra === undefined ? "-" : perMessage(infra),
  };
}
