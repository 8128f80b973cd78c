// The health check of the real infrastructure (make infra-check): one line per component, exit 1 if any fails.
// etcd: put/get/delete; MySQL: a query on the service database; Redis: PING and SET/GET;
// Kafka: metadata lists every topic of the design with its partition count.
import { randomUUID } from "node:crypto";
import { Etcd3 } from "etcd3";
import { Redis } from "ioredis";
import { Kafka, logLevel } from "kafkajs";
import mysql from "mysql2/promise";
import { topics } from "../../platform/bus/topics.js";

type Check = () => Promise<string>;

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

async function withTimeout<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms from ${what}`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const checks: Record<string, Check> = {
  async etcd() {
    const endpoints = required("IM_ETCD_ENDPOINTS");
    const client = new Etcd3({ hosts: endpoints.split(","), dialTimeout: 3000 });
    try {
      const key = `/im/infra-check/${randomUUID()}`;
      await client.put(key).value("ok");
      const value = await client.get(key).string();
      await client.delete().key(key);
      if (value !== "ok") throw new Error(`put/get returned ${value}`);
      const status = await client.maintenance.status();
      return `${endpoints} put/get ok, etcd ${status.version}`;
    } finally {
      client.close();
    }
  },
  async mysql() {
    const url = required("IM_MYSQL_URL");
    const conn = await mysql.createConnection({ uri: url, connectTimeout: 3000 });
    try {
      const [rows] = await conn.query<mysql.RowDataPacket[]>("SELECT VERSION() AS version, DATABASE() AS db");
      const row = rows[0];
      return `${new URL(url).host} database ${row?.db}, server ${row?.version}`;
    } finally {
      await conn.end();
    }
  },
  async redis() {
    const url = required("IM_REDIS_URL");
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000, retryStrategy: () => null });
    try {
      await client.connect();
      const pong = await client.ping();
      const key = `im:infra-check:${randomUUID()}`;
      await client.set(key, "ok", "EX", 10);
      const value = await client.get(key);
      await client.del(key);
      if (pong !== "PONG" || value !== "ok") throw new Error(`PING ${pong}, SET/GET ${value}`);
      const info = await client.info("server");
      const version = /redis_version:(\S+)/.exec(info)?.[1] ?? "?";
      return `${new URL(url).host} PING ok, SET/GET ok, redis ${version}`;
    } finally {
      client.disconnect();
    }
  },
  async kafka() {
    const brokers = required("IM_KAFKA_BROKERS").split(",");
    const admin = new Kafka({ clientId: "im-infra-check", brokers, logLevel: logLevel.NOTHING, retry: { retries: 2 } }).admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      const metadata = await admin.fetchTopicMetadata({ topics: topics.map((t) => t.name) });
      const problems: string[] = [];
      const found = topics.map((t) => {
        const partitions = metadata.topics.find((m) => m.name === t.name)?.partitions.length ?? 0;
        if (partitions !== t.partitions) problems.push(`${t.name} has ${partitions} partitions, expected ${t.partitions}`);
        return `${t.name}/${partitions}`;
      });
      if (problems.length > 0) throw new Error(problems.join("; "));
      return `${brokers.join(",")} ${cluster.brokers.length} broker(s), topics ${found.join(" ")}`;
    } finally {
      await admin.disconnect();
    }
  },
};

let failed = 0;
await Promise.all(
  Object.entries(checks).map(async ([name, check]) => {
    try {
      const detail = await withTimeout(15000, name, check());
      return `${name.padEnd(8)} ok      ${detail}`;
    } catch (err) {
      failed++;
      return `${name.padEnd(8)} FAILED  ${err instanceof Error ? err.message : String(err)}`;
    }
  }),
).then((lines) => console.log(lines.join("\n")));
process.exit(failed > 0 ? 1 : 0);
