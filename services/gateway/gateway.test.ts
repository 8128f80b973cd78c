// The gateway's own behaviour, in all-in-one mode on port 0: HTTP/1.1 clients, heartbeats, the bounded queue,
// redelivery of what a device never acknowledged, and the drain.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { ConnectRequestSchema, GatewayService, Kick_Reason, type ServerFrame } from "../../gen/im/gateway/v1/gateway_pb.js";
import { MsgService } from "../../gen/im/msg/v1/msg_pb.js";
import { demo } from "../../platform/store/demo-data.js";
import { demoAccessToken } from "../../test/demo-sign-in.js";
import { eventually } from "../../test/eventually.js";
import { startProcess, type RunningProcess } from "../runtime.js";
import { Connection, maxQueuedFrames } from "./connection.js";
import { allModules } from "../modules.js";

const [alice, bob] = demo.users;

/** A bare bidi stream: what it received, a way to send frames, and to end it. */
function openStream(url: string, token: string, transport = createGrpcTransport({ baseUrl: url })) {
  const frames: ServerFrame[] = [];
  const queue: ReturnType<typeof create<typeof ConnectRequestSchema>>[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const requests = (async function* () {
    for (;;) {
      while (queue.length > 0) yield queue.shift()!;
      if (ended) return;
      await new Promise<void>((r) => (wake = r));
    }
  })();
  const abort = new AbortController();
  const done = (async () => {
    try {
      for await (const res of createClient(GatewayService, transport).connect(requests, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal })) {
        if (res.frame) frames.push(res.frame);
      }
    } catch {
      // ended by abort or by the server
    } finally {
      ended = true;
      wake?.();
    }
  })();
  return {
    frames,
    done,
    send: (frame: Parameters<typeof create<typeof ConnectRequestSchema>>[1]) => {
      queue.push(create(ConnectRequestSchema, frame));
      wake?.();
    },
    end: () => {
      ended = true;
      wake?.();
      abort.abort();
    },
  };
}

describe("gateway", function () {
  this.timeout(30_000);
  let running: RunningProcess;
  let url: string;
  const login = (username: string, deviceId?: string) => demoAccessToken(url, username, deviceId);

  beforeEach(async () => {
    running = await startProcess({ mode: "all-in-one", name: "all-in-one", modules: allModules, port: 0, env: { IM_LOG_LEVEL: "silent", IM_HEARTBEAT_SECONDS: "1" } });
    url = running.process.server.url;
  });
  afterEach(() => running.stop());

  it("serves HTTP/1.1 clients: Subscribe streams deliveries, SendMessage and Ack are unary", async () => {
    const http1 = createConnectTransport({ baseUrl: url, httpVersion: "1.1" });
    const bobToken = await login("bob");
    const aliceToken = await login("alice");
    const frames: ServerFrame[] = [];
    const abort = new AbortController();
    const reading = (async () => {
      try {
        for await (const res of createClient(GatewayService, http1).subscribe({}, { headers: { authorization: `Bearer ${bobToken}` }, signal: abort.signal })) {
          if (res.frame) frames.push(res.frame);
        }
      } catch {
        // aborted
      }
    })();
    await eventually("welcome", () => frames.some((f) => f.body.case === "welcome"));
    const sent = await createClient(MsgService, http1).sendMessage(
      { clientMsgId: randomUUID(), target: { case: "peerUserId", value: bob.id }, content: { kind: { case: "text", value: { text: "over HTTP/1.1" } } } },
      { headers: { authorization: `Bearer ${aliceToken}` } },
    );
    await eventually("bob's subscription got it", () => frames.some((f) => f.body.case === "message" && f.body.value.seq === sent.seq));
    await createClient(GatewayService, http1).ack({ acks: [{ conversationId: sent.conversationId, seq: sent.seq }] }, { headers: { authorization: `Bearer ${bobToken}` } });
    abort.abort();
    await reading;
  });

  it("closes a stream that stays silent for three heartbeats, with a reconnect hint; pings keep it open", async () => {
    const silent = openStream(url, await login("bob"));
    const pinging = openStream(url, await login("alice"));
    const ping = setInterval(() => pinging.send({ frame: { body: { case: "ping", value: { clientTimeMs: 1n } } } }), 300);
    try {
      await silent.done;
      const kick = silent.frames.at(-1);
      expect(kick?.body.case).to.equal("kick");
      expect(kick?.body.case === "kick" && [kick.body.value.reason, kick.body.value.reconnect]).to.deep.equal([Kick_Reason.IDLE, true]);
      expect(pinging.frames.filter((f) => f.body.case === "pong").length).to.be.greaterThan(5);
      expect(pinging.frames.some((f) => f.body.case === "kick")).to.equal(false);
    } finally {
      clearInterval(ping);
      pinging.end();
    }
  });

  it("gives a device what it never acknowledged again when it reconnects", async () => {
    const device = randomUUID();
    const first = openStream(url, await login("bob", device));
    await eventually("welcome", () => first.frames.length > 0);
    const aliceToken = await login("alice");
    const msg = createClient(MsgService, createGrpcTransport({ baseUrl: url }));
    const seqs = [];
    for (let i = 0; i < 3; i++) {
      const r = await msg.sendMessage({ clientMsgId: randomUUID(), target: { case: "peerUserId", value: bob.id }, content: { kind: { case: "text", value: { text: `m${i}` } } } }, { headers: { authorization: `Bearer ${aliceToken}` } });
      seqs.push(r.seq);
    }
    await eventually("pushed live", () => first.frames.filter((f) => f.body.case === "message").length === 3);
    // Only the first is acknowledged before the stream goes.
    first.send({ frame: { body: { case: "ack", value: { conversationId: demo.directConversationId, seq: seqs[0]! } } } });
    await new Promise((r) => setTimeout(r, 200));
    first.end();
    await first.done;
    await new Promise((r) => setTimeout(r, 300));
    const second = openStream(url, await login("bob", device));
    await eventually("redelivered", () => second.frames.filter((f) => f.body.case === "message").length >= 2);
    expect(second.frames.filter((f) => f.body.case === "message").map((f) => f.body.case === "message" && f.body.value.seq)).to.deep.equal(seqs.slice(1));
    second.end();
  });

  it("serves the bidi stream over gRPC (its own path) and over the Connect protocol (connect-node) alike", async () => {
    const token = await login("bob");
    for (const transport of [createGrpcTransport({ baseUrl: url }), createConnectTransport({ baseUrl: url, httpVersion: "2" })]) {
      const stream = openStream(url, token, transport);
      stream.send({ frame: { frameId: 9n, body: { case: "ping", value: { clientTimeMs: 5n } } } });
      await eventually("welcome and pong", () => stream.frames.some((f) => f.body.case === "welcome") && stream.frames.some((f) => f.body.case === "pong" && f.replyTo === 9n));
      stream.end();
      await stream.done;
    }
  });

  it("tells its clients to reconnect elsewhere when it drains", async () => {
    const stream = openStream(url, await login("alice"));
    await eventually("welcome", () => stream.frames.length > 0);
    await running.stop();
    await stream.done;
    const kick = stream.frames.at(-1);
    expect(kick?.body.case === "kick" && [kick.body.value.reason, kick.body.value.reconnect]).to.deep.equal([Kick_Reason.DRAINING, true]);
  });

  it("bounds a slow client's queue: past the limit it gets only a kick and nothing more is queued", async () => {
    const conn = new Connection({ kind: "user", appId: demo.appId, userId: alice.id, deviceId: "d", tokenId: "t" }, "");
    for (let i = 0; i < maxQueuedFrames; i++) expect(conn.send({ body: { case: "pong", value: {} } })).to.equal(true);
    expect(conn.send({ body: { case: "pong", value: {} } })).to.equal(false);
    expect(conn.closed).to.equal(true);
    const left: ServerFrame[] = [];
    for await (const f of conn.frames()) left.push(f);
    expect(left.map((f) => f.body.case)).to.deep.equal(["kick"]);
    expect(left[0]!.body.case === "kick" && left[0]!.body.value.reason).to.equal(Kick_Reason.SLOW_CONSUMER);
  });
});
