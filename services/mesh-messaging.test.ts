// @infra: 1:1 messaging in mesh mode, each service in its own process (their main.ts) on real etcd, MariaDB, Redis
// and Kafka, with two gateways: alice and bob on different gateways, a Redis data loss, and a gateway killed.
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import { Redis } from "ioredis";
import { exportJWK, generateKeyPair } from "jose";
import { ImClient } from "../client/im-client.js";
import type { Message } from "../gen/im/msg/v1/msg_pb.js";
import { demo } from "../platform/store/demo-data.js";
import { eventually } from "../test/eventually.js";
import { infraEnv } from "../test/infra.js";
import { scratchDatabase, type ScratchDatabase } from "../test/mysql-db.js";
import { startNodeProcess, type NodeProcess } from "../test/processes.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const [alice, bob] = demo.users;
/** A Redis database of its own, so flushing it loses only this suite's seqs and dedup markers. */
const redisDb = 11;

describe("1:1 messaging in mesh mode @infra", function () {
  this.timeout(120_000);
  let database: ScratchDatabase;
  let env: NodeJS.ProcessEnv;
  const running: NodeProcess[] = [];
  const clients: ImClient[] = [];

  const start = async (service: string, extra: NodeJS.ProcessEnv = {}) => {
    const p = await startNodeProcess(`services/${service}/main.ts`, { ...env, ...extra }, root);
    running.push(p);
    return p;
  };

  const connect = async (username: string, urls: string[], inbox: Message[], deviceId = randomUUID()) => {
    const c = new ImClient({ baseUrl: urls[0]!, fallbackUrls: urls.slice(1), apiKey: demo.apiKey, deviceId }, { message: (m) => inbox.push(m), state: (s, d) => process.env.DEBUG_CLIENT && console.log(username, s, d) });
    clients.push(c);
    await c.login(username, demo.password);
    await c.connect();
    return c;
  };

  beforeEach(async () => {
    database = await scratchDatabase(["demo"]);
    const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
    const redis = new URL(infraEnv("IM_REDIS_URL"));
    redis.pathname = `/${redisDb}`;
    env = {
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
      IM_GATEWAY_PORT: "0",
      IM_LEASE_TTL_SECONDS: "5",
      IM_LOG_LEVEL: "warn",
    };
    const flush = new Redis(redis.toString());
    await flush.flushdb();
    flush.disconnect();
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const p of running.splice(0)) {
      if (p.child.exitCode === null) p.child.kill("SIGKILL");
      await p.exited;
    }
    await database.drop();
  });

  it("alice and bob on two gateways exchange messages; Redis loses its data and no seq repeats; a killed gateway loses nothing", async () => {
    await Promise.all([start("auth"), start("user"), start("msg")]);
    const [g1, g2] = await Promise.all([start("gateway"), start("gateway")]);
    const url1 = `http://127.0.0.1:${g1!.port}`;
    const url2 = `http://127.0.0.1:${g2!.port}`;
    const aliceInbox: Message[] = [];
    const bobInbox: Message[] = [];
    const a = await connect("alice", [url1, url2], aliceInbox);
    const b = await connect("bob", [url2, url1], bobInbox);

    const seqs: bigint[] = [];
    for (let i = 0; i < 5; i++) seqs.push((await a.sendText({ peerUserId: bob.id }, `a${i}`)).seq);
    seqs.push((await b.sendText({ peerUserId: alice.id }, "b0")).seq);
    await eventually("bob has alice's messages", () => bobInbox.length === 5);
    await eventually("alice has bob's", () => aliceInbox.length === 1);

    // Redis loses everything: seqs go on above what was issued, never repeating.
    const redis = new Redis(env.IM_REDIS_URL!);
    await redis.flushdb();
    redis.disconnect();
    for (let i = 5; i < 8; i++) seqs.push((await a.sendText({ peerUserId: bob.id }, `a${i}`)).seq);
    expect(new Set(seqs).size, "no seq repeats").to.equal(seqs.length);
    expect([...seqs].sort((x, y) => (x < y ? -1 : 1)), "seqs only grow").to.deep.equal(seqs);

    // Bob's gateway dies; he reconnects to the other one and catches up on what alice sent meanwhile.
    g2!.child.kill("SIGKILL");
    const during: bigint[] = [];
    for (let i = 8; i < 14; i++) during.push((await a.sendText({ peerUserId: bob.id }, `a${i}`)).seq);
    const sentToBob = [...seqs.slice(0, 5), ...seqs.slice(6), ...during];
    await eventually("bob has everything alice sent", () => new Set(bobInbox.map((m) => m.seq)).size === sentToBob.length, 30_000);
    expect(bobInbox.map((m) => m.seq), "once each, in order").to.deep.equal(sentToBob);
  });
});
