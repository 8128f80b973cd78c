// A whole im-mesh in mesh mode for tests: auth, user, msg, group, a fan-out worker and N gateways, each its own process (their main.ts), on
// the real infrastructure with a scratch database, a private etcd namespace and a Redis database of its own.
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { exportJWK, generateKeyPair } from "jose";
import { allModules } from "../services/modules.js";
import { startProcess } from "../services/runtime.js";
import { infraEnv } from "./infra.js";
import { scratchDatabase } from "./mysql-db.js";
import { startNodeProcess, type NodeProcess } from "./processes.js";

const root = fileURLToPath(new URL("..", import.meta.url));

/** A running deployment. */
export interface MeshDeployment {
  /** The gateways' URLs, in start order. */
  readonly urls: string[];
  readonly gateways: NodeProcess[];
  /** Every process of the deployment, gateways included, in start order. */
  readonly processes: NodeProcess[];
  /** The auth process's URL (admin RPCs are served there, not through the gateways). */
  readonly authUrl: string;
  /** The first fan-out worker process. */
  readonly fanout: NodeProcess;
  /** Starts one more process of a service (its main.ts) in the deployment; stop() kills it too. */
  start(service: string): Promise<NodeProcess>;
  readonly env: NodeJS.ProcessEnv;
  /** Kills every process (SIGKILL) and drops the database. */
  stop(): Promise<void>;
}

/** Starts the services and `gateways` gateways; Redis database `redisDb` is flushed first. */
export async function startMeshDeployment(options: { gateways?: number; redisDb?: number; extraEnv?: NodeJS.ProcessEnv } = {}): Promise<MeshDeployment> {
  const database = await scratchDatabase(["demo"]);
  const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const redis = new URL(infraEnv("IM_REDIS_URL"));
  redis.pathname = `/${options.redisDb ?? 11}`;
  const flush = new Redis(redis.toString());
  await flush.flushdb();
  flush.disconnect();
  const env: NodeJS.ProcessEnv = {
    IM_ETCD_ENDPOINTS: infraEnv("IM_ETCD_ENDPOINTS"),
    IM_ETCD_NAMESPACE: `/test-${randomUUID()}/`,
    IM_MYSQL_URL: database.url,
    IM_REDIS_URL: redis.toString(),
    IM_KAFKA_BROKERS: infraEnv("IM_KAFKA_BROKERS"),
    IM_MESH_SECRET: randomUUID() + randomUUID(),
    IM_AUTH_SIGNING_KEYS: JSON.stringify([{ ...(await exportJWK(privateKey)), kid: randomUUID() }]),
    IM_AUTH_PORT: "0",
    IM_USER_PORT: "0",
    IM_MSG_PORT: "0",
    IM_GROUP_PORT: "0",
    IM_FANOUT_PORT: "0",
    IM_GATEWAY_PORT: "0",
    IM_LEASE_TTL_SECONDS: "5",
    IM_LOG_LEVEL: "warn",
    ...options.extraEnv,
  };
  const processes: NodeProcess[] = [];
  const start = async (service: string) => {
    const p = await startNodeProcess(`services/${service}/main.ts`, env, root);
    processes.push(p);
    return p;
  };
  const stop = async () => {
    // Consumers leave their Kafka groups on SIGTERM (no stale member holds partitions); the rest is killed.
    const alive = (p: NodeProcess) => p.child.exitCode === null && p.child.signalCode === null;
    const consumers = processes.filter((p) => alive(p) && /services\/(msg|fanout)\//.test(p.script));
    for (const p of consumers) p.child.kill("SIGTERM");
    await Promise.race([Promise.all(consumers.map((p) => p.exited)), new Promise((r) => setTimeout(r, 5000))]);
    for (const p of processes) if (alive(p)) p.child.kill("SIGKILL");
    await Promise.all(processes.map((p) => p.exited));
    await database.drop();
  };
  // Every start is awaited before a failure is thrown, so that stop() also ends the processes still starting then.
  const all = async <T>(starts: Promise<T>[]): Promise<T[]> => {
    const settled = await Promise.allSettled(starts);
    const failed = settled.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
  };
  try {
    const [auth, , , , fanout] = (await all([start("auth"), start("user"), start("msg"), start("group"), start("fanout")])) as [NodeProcess, NodeProcess, NodeProcess, NodeProcess, NodeProcess];
    const gateways = await all(Array.from({ length: options.gateways ?? 1 }, () => start("gateway")));
    return { urls: gateways.map((g) => `http://127.0.0.1:${g.port}`), gateways, processes, authUrl: `http://127.0.0.1:${auth.port}`, fanout, start, env, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Where a suite's clients connect, in either mode; `mesh` is set in mesh mode. */
export interface TestDeployment {
  readonly urls: string[];
  readonly mesh?: MeshDeployment;
  stop(): Promise<void>;
}

/** Every module in one process on port 0 with the in-memory adapters and the demo data (what `npm start` runs). */
export async function startAllInOneDeployment(env: NodeJS.ProcessEnv = {}): Promise<TestDeployment> {
  const running = await startProcess({ mode: "all-in-one", name: "all-in-one", modules: allModules, port: 0, env: { IM_LOG_LEVEL: "silent", ...env } });
  return { urls: [running.process.server.url], stop: () => running.stop() };
}

/** A mesh deployment with `gateways` gateways, as a TestDeployment. */
export async function startMeshTestDeployment(gateways = 2): Promise<TestDeployment> {
  const mesh = await startMeshDeployment({ gateways });
  return { urls: mesh.urls, mesh, stop: () => mesh.stop() };
}
