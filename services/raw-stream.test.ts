// The raw stream's guarantees (DESIGN.md §7.8), seen by a client written from the protos (test/raw-stream.ts, no
// SDK): each conversation's messages in seq order and once across the offline/online boundary, in both modes; and a
// stream whose client stopped reading is cleaned up (route, presence, unacknowledged messages back to the inbox).
import { randomUUID } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { MsgService } from "../gen/im/msg/v1/msg_pb.js";
import { demo } from "../platform/store/demo-data.js";
import { demoAccessToken } from "../test/demo-sign-in.js";
import { eventually } from "../test/eventually.js";
import { startAllInOneDeployment, startMeshTestDeployment, type TestDeployment } from "../test/mesh-deployment.js";
import { openRawStream } from "../test/raw-stream.js";
import { maxQueuedFrames } from "./gateway/connection.js";

const [, bob] = demo.users;
const unlimitedSends = { IM_SEND_RATE_USER: "off", IM_SEND_RATE_APP: "off" };

const login = demoAccessToken;

function sender(url: string, token: string) {
  const msg = createClient(MsgService, createGrpcTransport({ baseUrl: url }));
  return (text: string) =>
    msg.sendMessage({ clientMsgId: randomUUID(), target: { case: "peerUserId", value: bob.id }, content: { kind: { case: "text", value: { text } } } }, { headers: { authorization: `Bearer ${token}` } });
}

function expectIncreasing(seqs: bigint[]): void {
  for (let i = 1; i < seqs.length; i++) expect(seqs[i]! > seqs[i - 1]!, `seq ${seqs[i]} after ${seqs[i - 1]} in ${seqs.join(",")}`).to.equal(true);
}

function orderSuite(deploy: () => Promise<TestDeployment>): void {
  let deployment: TestDeployment;
  before(async () => (deployment = await deploy()));
  after(() => deployment?.stop());

  it("delivers a conversation's messages in seq order and once across the offline/online boundary", async () => {
    const { urls } = deployment;
    const bobUrl = urls[urls.length - 1]!;
    const bobToken = await login(bobUrl, "bob");
    const send = sender(urls[0]!, await login(urls[0]!, "alice"));
    for (let round = 0; round < 3; round++) {
      // Away: these go to the offline inbox. Then, while bob's stream opens and replays it, more arrive live.
      const away = [];
      for (let i = 0; i < 5; i++) away.push(await send(`away ${round}.${i}`));
      const stream = openRawStream(bobUrl, bobToken, { autoAck: true });
      const live = await Promise.all(Array.from({ length: 5 }, (_, i) => send(`live ${round}.${i}`)));
      const conversationId = away[0]!.conversationId;
      const expected = [...away, ...live].map((r) => r.seq);
      await eventually(`round ${round}: bob has ${expected.join(",")}`, () => expected.every((s) => stream.seqs(conversationId).includes(s)));
      expectIncreasing(stream.seqs(conversationId));
      stream.reset();
      await stream.ended;
    }
  });
}

describe("raw stream order, all-in-one", function () {
  this.timeout(60_000);
  orderSuite(() => startAllInOneDeployment());
});

describe("raw stream order, mesh mode on two gateways @infra", function () {
  this.timeout(180_000);
  orderSuite(() => startMeshTestDeployment(2));
});

describe("a stream whose client stopped reading, all-in-one", function () {
  this.timeout(60_000);
  let deployment: TestDeployment;
  // The gateway is the public edge: its /metrics takes the operator's credential. One user sends 2,100 messages
  // here, far past the per-user send limit.
  const adminToken = "operator-credential-for-the-raw-stream-test";
  beforeEach(async () => (deployment = await startAllInOneDeployment({ IM_HEARTBEAT_SECONDS: "1", IM_ADMIN_TOKEN: adminToken, ...unlimitedSends })));
  afterEach(() => deployment.stop());

  const connections = async () => {
    const text = await (await fetch(`${deployment.urls[0]}/metrics`, { headers: { authorization: `Bearer ${adminToken}` } })).text();
    return Number(/^gateway_connections(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? "NaN");
  };
  const until = async (what: string, check: () => Promise<boolean>) => {
    const deadline = Date.now() + 20_000;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  for (const how of ["resets its connection", "keeps its connection open"] as const) {
    it(`is cleaned up when it ${how}, and what it never acknowledged goes back to the inbox`, async () => {
      const url = deployment.urls[0]!;
      const device = randomUUID();
      const bobToken = await login(url, "bob", device);
      const send = sender(url, await login(url, "alice"));
      const stuck = openRawStream(url, bobToken, { windowBytes: 1024 });
      await eventually("welcome", () => stuck.frames.length > 0);
      stuck.pause();
      // More than the gateway queues for one client: it kicks the stream as a slow consumer, a kick it cannot write.
      const sent = [];
      for (let i = 0; i < maxQueuedFrames + 100; i += 100) sent.push(...(await Promise.all(Array.from({ length: 100 }, (_, k) => send(`${i + k} ${"x".repeat(200)}`)))));
      if (how === "resets its connection") stuck.reset();
      // Within a heartbeat after the reset, or after three silent heartbeats and the close grace otherwise.
      await until("the gateway to let go of the stream", async () => (await connections()) === 0);
      stuck.reset();
      const back = openRawStream(url, bobToken, { autoAck: true });
      const conversationId = sent[0]!.conversationId;
      // What it never acknowledged went back to the inbox, which a new stream replays (500 at a time) in order.
      await eventually("the unacknowledged messages back", () => back.seqs(conversationId).length >= 500);
      expectIncreasing(back.seqs(conversationId));
      expect(sent.map((r) => r.seq)).to.include.members(back.seqs(conversationId));
      back.reset();
    });
  }
});
