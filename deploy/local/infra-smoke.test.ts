// @infra: proves the foundation talks to the real dependencies by round-tripping a value through each.
import { randomUUID } from "node:crypto";
import { expect } from "chai";
import { Etcd3 } from "etcd3";
import { Redis } from "ioredis";
import { Kafka, logLevel } from "kafkajs";
import mysql from "mysql2/promise";
import { scopeHeader } from "../../platform/bus/bus.js";
import { topics } from "../../platform/bus/topics.js";
import { infraEnv } from "../../test/infra.js";

describe("real infrastructure @infra", () => {
  it("etcd: a key put under a lease is readable, watchable and gone when the lease is revoked", async () => {
    const client = new Etcd3({ hosts: infraEnv("IM_ETCD_ENDPOINTS").split(","), dialTimeout: 3000 });
    try {
      const prefix = `/im/test/${randomUUID()}/`;
      const watcher = await client.watch().prefix(prefix).create();
      const events: string[] = [];
      watcher.on("put", (kv) => events.push(`put ${kv.value.toString()}`));
      watcher.on("delete", () => events.push("delete"));
      const lease = client.lease(10, { autoKeepAlive: false });
      await lease.put(`${prefix}a`).value("gateway-1");
      expect(await client.get(`${prefix}a`).string()).to.equal("gateway-1");
      await lease.revoke();
      expect(await client.get(`${prefix}a`).string()).to.equal(null);
      for (let i = 0; i < 50 && events.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
      expect(events).to.deep.equal(["put gateway-1", "delete"]);
      await watcher.cancel();
    } finally {
      client.close();
    }
  });

  it("MariaDB: the service account writes and reads utf8mb4 in im_chat inside a transaction", async () => {
    const conn = await mysql.createConnection({ uri: infraEnv("IM_MYSQL_URL"), connectTimeout: 3000 });
    const table = `smoke_${randomUUID().replaceAll("-", "")}`;
    try {
      await conn.query(`CREATE TABLE \`${table}\` (id INT PRIMARY KEY, body TEXT) DEFAULT CHARSET=utf8mb4`);
      await conn.beginTransaction();
      await conn.execute(`INSERT INTO \`${table}\` (id, body) VALUES (?, ?)`, [1, "héllo 👋 你好"]);
      await conn.commit();
      await conn.beginTransaction();
      await conn.execute(`INSERT INTO \`${table}\` (id, body) VALUES (?, ?)`, [2, "rolled back"]);
      await conn.rollback();
      const [rows] = await conn.query<mysql.RowDataPacket[]>(`SELECT id, body FROM \`${table}\` ORDER BY id`);
      expect(rows.map((r) => [r.id, r.body])).to.deep.equal([[1, "héllo 👋 你好"]]);
    } finally {
      await conn.query(`DROP TABLE IF EXISTS \`${table}\``);
      await conn.end();
    }
  });

  it("Redis: SET NX lets exactly one of many concurrent callers win, INCR counts, EX expires", async () => {
    const client = new Redis(infraEnv("IM_REDIS_URL"), { maxRetriesPerRequest: 1 });
    const key = `im:test:${randomUUID()}`;
    try {
      expect(await client.ping()).to.equal("PONG");
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => client.set(`${key}:nx`, String(i), "EX", 60, "NX")));
      expect(results.filter((r) => r === "OK")).to.have.length(1);
      const counts = await Promise.all(Array.from({ length: 20 }, () => client.incr(`${key}:seq`)));
      expect([...counts].sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 20 }, (_, i) => i + 1));
      await client.set(`${key}:ttl`, "x", "PX", 50);
      await new Promise((r) => setTimeout(r, 120));
      expect(await client.get(`${key}:ttl`)).to.equal(null);
    } finally {
      await client.del(`${key}:nx`, `${key}:seq`, `${key}:ttl`);
      client.disconnect();
    }
  });

  it("Kafka: the design's topics exist, and a record produced to group_msg is consumed in key order", async () => {
    const kafka = new Kafka({ clientId: "im-smoke", brokers: infraEnv("IM_KAFKA_BROKERS").split(","), logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    try {
      const metadata = await admin.fetchTopicMetadata({ topics: topics.map((t) => t.name) });
      for (const t of topics) {
        expect(metadata.topics.find((m) => m.name === t.name)?.partitions, t.name).to.have.length(t.partitions);
      }
    } finally {
      await admin.disconnect();
    }

    const run = randomUUID();
    const key = `group-${run}`;
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    const consumer = kafka.consumer({ groupId: `im-smoke-${run}`, sessionTimeout: 10000, heartbeatInterval: 1000 });
    const received: string[] = [];
    try {
      await consumer.connect();
      await consumer.subscribe({ topic: "group_msg", fromBeginning: true });
      const done = new Promise<void>((resolve) => {
        void consumer.run({
          eachMessage: async ({ message }) => {
            if (message.key?.toString() !== key) return;
            received.push(message.value!.toString());
            if (received.length === 5) resolve();
          },
        });
      });
      await producer.connect();
      for (let i = 0; i < 5; i++) {
        // Scoped like a test deployment's records, so a deployment sharing the broker never consumes them.
        await producer.send({ topic: "group_msg", acks: -1, messages: [{ key, value: `${run}:${i}`, headers: { [scopeHeader]: "im-smoke" } }] });
      }
      await Promise.race([
        done,
        new Promise((_, reject) => setTimeout(() => reject(new Error(`consumed ${received.length} of 5 records in 20 s`)), 20000)),
      ]);
      expect(received).to.deep.equal(Array.from({ length: 5 }, (_, i) => `${run}:${i}`));
    } finally {
      await producer.disconnect();
      await consumer.disconnect();
    }
  });
});
