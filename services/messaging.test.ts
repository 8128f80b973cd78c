// 1:1 messaging end to end through the SDK, in all-in-one mode (in-memory adapters, one process on port 0) and in
// mesh mode (every service its own process on the real infrastructure, alice and bob on different gateways):
// streams, sends, offline delivery, dedup, kicks, read state, edits, and the errors bad input gets.
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { AuthAdminService, AuthService, Platform } from "../gen/im/auth/v1/auth_pb.js";
import { ConversationType, MessageFlag, MessageSchema, MsgService, OfflineDeliverySchema, SendMessageRequestSchema, type Message } from "../gen/im/msg/v1/msg_pb.js";
import { ImClient, SendError } from "../client/im-client.js";
import { demo } from "../platform/store/demo-data.js";
import { eventually } from "../test/eventually.js";
import { startMeshDeployment } from "../test/mesh-deployment.js";
import { rpcError } from "../test/rpc-errors.js";
import { startProcess, type RunningProcess } from "./runtime.js";
import { allModules } from "./modules.js";

const [alice, bob, , carol] = demo.users;
const adminToken = "operator-credential-for-the-tests-0001";

/** Where the suite's clients connect: alice to the first gateway, everyone else to the last. */
interface Deployment {
  readonly urls: string[];
  /** Where admin RPCs are served, and the operator credential they take. */
  readonly admin: { url: string; token: string };
  stop(): Promise<void>;
}

function messagingSuite(deploy: () => Promise<Deployment>): void {
  let deployment: Deployment;
  let url: string;
  const clients: ImClient[] = [];
  const urlOf = (username: string) => (username === "alice" ? deployment.urls[0]! : deployment.urls[deployment.urls.length - 1]!);

  const connect = async (username: string, deviceId: string = randomUUID(), inbox: Message[] = []) => {
    const c = new ImClient({ baseUrl: urlOf(username), apiKey: demo.apiKey, deviceId }, { message: (m) => inbox.push(m) });
    clients.push(c);
    await c.login(username, demo.password);
    await c.connect();
    return { c, inbox };
  };

  beforeEach(async () => {
    deployment = await deploy();
    url = deployment.urls[deployment.urls.length - 1]!;
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await deployment?.stop();
  });

  it("alice and bob exchange messages both ways, each delivered once with increasing seqs", async () => {
    const a = await connect("alice");
    const b = await connect("bob");
    const sent = [];
    for (let i = 0; i < 5; i++) sent.push(await a.c.sendText({ peerUserId: bob.id }, `hello ${i}`));
    const reply = await b.c.sendText({ conversationId: demo.directConversationId }, "hi alice");
    await eventually("bob has alice's five messages", () => b.inbox.length === 5);
    await eventually("alice has bob's reply", () => a.inbox.length === 1);
    expect(b.inbox.map((m) => m.content?.kind.case === "text" && m.content.kind.value.text)).to.deep.equal([0, 1, 2, 3, 4].map((i) => `hello ${i}`));
    expect(b.inbox.map((m) => m.seq)).to.deep.equal(sent.map((s) => s.seq));
    expect(sent.map((s) => Number(s.seq))).to.deep.equal([4, 5, 6, 7, 8]);
    expect(reply.seq).to.equal(9n);
    expect(a.inbox[0]!.senderId).to.equal(bob.id);
  });

  it("delivers what bob missed while offline when he reconnects, in order, once", async () => {
    const a = await connect("alice");
    const bobDevice = randomUUID();
    const first = await connect("bob", bobDevice);
    first.c.close();
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 6; i++) await a.c.sendText({ peerUserId: bob.id }, `while away ${i}`);
    const inbox: Message[] = [];
    const again = await connect("bob", bobDevice, inbox);
    again.c.lastSeq.set(demo.directConversationId, 3n);
    await again.c.resume();
    await eventually("bob caught up", () => inbox.length >= 6);
    await new Promise((r) => setTimeout(r, 200));
    expect(inbox.map((m) => Number(m.seq))).to.deep.equal([4, 5, 6, 7, 8, 9]);
  });

  it("stores a resent client_msg_id once and answers it with the original seq", async () => {
    const a = await connect("alice");
    const id = randomUUID();
    const first = await a.c.sendText({ peerUserId: bob.id }, "once", id);
    const again = await a.c.sendText({ peerUserId: bob.id }, "once", id);
    expect(again.seq).to.equal(first.seq);
    expect(again.msgId).to.equal(first.msgId);
    expect(again.duplicate).to.equal(true);
    const sync = await a.c.api.msg.syncMessages({ conversationId: demo.directConversationId, afterSeq: 3n }, { headers: a.c.api.headers() });
    expect(sync.messages).to.have.length(1);
  });

  it("kicks the first stream of a device that connects twice", async () => {
    const device = randomUUID();
    const states: string[] = [];
    const first = new ImClient({ baseUrl: deployment.urls[0]!, apiKey: demo.apiKey, deviceId: device }, { state: (s, d) => states.push(`${s}:${d ?? ""}`) });
    clients.push(first);
    await first.login("bob", demo.password);
    await first.connect();
    // With two gateways, the first stream is on the first and the second on the last: the kick crosses gateways.
    await connect("bob", device);
    await eventually("the first stream was kicked", () => states.some((s) => s.includes("kicked")));
  });

  it("refuses non-members, unknown conversations, other apps' users and oversized text, storing nothing", async () => {
    const c = await connect("carol");
    const msg = createClient(MsgService, createGrpcTransport({ baseUrl: url }));
    const notMember = await c.c.sendText({ conversationId: demo.directConversationId }, "let me in").catch((e: SendError) => e);
    expect((notMember as SendError).code, "a conversation carol is not in looks like a missing one").to.equal(Code.NotFound);
    const unknown = await c.c.sendText({ conversationId: "g:00000000-0000-4000-8000-00000000dead" }, "hello?").catch((e: SendError) => e);
    expect((unknown as SendError).code).to.equal(Code.NotFound);
    const stranger = await c.c.sendText({ peerUserId: randomUUID() }, "who are you").catch((e: SendError) => e);
    expect((stranger as SendError).code).to.equal(Code.NotFound);
    // A real user of another app: neither side can reach the other, and nothing says whether the id exists.
    const otherApp = await createClient(AuthAdminService, createGrpcTransport({ baseUrl: deployment.admin.url }))
      .createApp({ name: "Other App" }, { headers: { authorization: `Bearer ${deployment.admin.token}` } });
    const auth = createClient(AuthService, createGrpcTransport({ baseUrl: url }));
    const device = { deviceId: randomUUID(), name: "laptop", platform: Platform.WEB };
    const { session } = await auth.register({ apiKey: otherApp.apiKey, username: "mallory", password: "correct horse 42", device });
    const mallory = new ImClient({ baseUrl: url, apiKey: otherApp.apiKey, deviceId: device.deviceId }, {});
    clients.push(mallory);
    await mallory.login("mallory", "correct horse 42");
    await mallory.connect();
    const intoDemo = await mallory.sendText({ peerUserId: alice.id }, "hi from elsewhere").catch((e: SendError) => e);
    expect((intoDemo as SendError).code).to.equal(Code.NotFound);
    const intoDemoConversation = await mallory.sendText({ conversationId: demo.directConversationId }, "hi").catch((e: SendError) => e);
    expect((intoDemoConversation as SendError).code, "a 1:1 id without the caller in it").to.equal(Code.NotFound);
    const fromDemo = await c.c.sendText({ peerUserId: session!.userId }, "hi mallory").catch((e: SendError) => e);
    expect((fromDemo as SendError).code).to.equal(Code.NotFound);
    const peek = await rpcError(msg.syncMessages({ conversationId: demo.directConversationId }, { headers: mallory.api.headers() }));
    expect(peek.code).to.equal(Code.NotFound);
    const huge = await c.c.sendText({ peerUserId: alice.id }, "x".repeat(16_385)).catch((e: SendError) => e);
    expect((huge as SendError).code).to.equal(Code.InvalidArgument);
    // Invalid UTF-8 in the text never parses: InvalidArgument naming the message (a raw Connect call over HTTP/1.1).
    const wire = Buffer.from(toBinary(SendMessageRequestSchema, create(SendMessageRequestSchema, {
      clientMsgId: "bad-utf8",
      target: { case: "peerUserId", value: alice.id },
      content: { kind: { case: "text", value: { text: "@@@@" } } },
    })));
    wire.set([0xff, 0xfe, 0xfd, 0xfc], wire.indexOf("@@@@"));
    const raw = await fetch(`${url}/im.msg.v1.MsgService/SendMessage`, {
      method: "POST",
      headers: { "content-type": "application/proto", "connect-protocol-version": "1", ...c.c.api.headers() },
      body: wire,
    });
    expect(raw.status).to.equal(400);
    expect(await raw.json()).to.deep.include({ code: "invalid_argument" });
    const list = await msg.listConversations({}, { headers: c.c.api.headers() });
    expect(list.conversations, "carol has no conversation yet").to.deep.equal([]);
    const sync = await rpcError(msg.syncMessages({ conversationId: demo.directConversationId }, { headers: c.c.api.headers() }));
    expect(sync.code).to.equal(Code.NotFound);
    expect(carol.username).to.equal("carol");
  });

  it("pushes read receipts, edits and recalls to the other side; flags and search answer for the caller only", async () => {
    const receipts: bigint[] = [];
    const events: string[] = [];
    const a = new ImClient({ baseUrl: urlOf("alice"), apiKey: demo.apiKey, deviceId: randomUUID() }, { receipt: (r) => receipts.push(r.lastReadSeq) });
    clients.push(a);
    await a.login("alice", demo.password);
    await a.connect();
    const b = new ImClient({ baseUrl: url, apiKey: demo.apiKey, deviceId: randomUUID() }, { event: (e) => events.push(`${e.kind}:${e.message?.seq}:${e.message?.recalled}`) });
    clients.push(b);
    await b.login("bob", demo.password);
    await b.connect();
    const sent = await a.sendText({ peerUserId: bob.id }, "the launch moves to friday");
    const asBob = { headers: b.api.headers() };
    const asAlice = { headers: a.api.headers() };
    expect((await b.api.msg.markRead({ conversationId: demo.directConversationId, seq: sent.seq }, asBob)).lastReadSeq).to.equal(sent.seq);
    await eventually("alice sees bob's read receipt", () => receipts.includes(sent.seq));
    const list = await b.api.msg.listConversations({}, asBob);
    expect(list.conversations.find((c) => c.conversationId === demo.directConversationId)?.unreadCount).to.equal(0n);

    const edited = await a.api.msg.editMessage({ conversationId: demo.directConversationId, seq: sent.seq, content: { kind: { case: "text", value: { text: "the launch moves to monday" } } } }, asAlice);
    expect(edited.message?.editedAt).to.not.equal(undefined);
    const notMine = await rpcError(b.api.msg.recallMessage({ conversationId: demo.directConversationId, seq: sent.seq }, asBob));
    expect(notMine.code).to.equal(Code.PermissionDenied);
    expect((await b.api.msg.searchMessages({ query: "monday" }, asBob)).messages.map((m) => m.seq)).to.deep.equal([sent.seq]);
    expect((await b.api.msg.searchMessages({ query: "friday" }, asBob)).messages).to.deep.equal([]);
    const recalled = await a.api.msg.recallMessage({ conversationId: demo.directConversationId, seq: sent.seq }, asAlice);
    expect(recalled.message?.recalled).to.equal(true);
    expect(recalled.message?.content, "a recalled message has no content").to.equal(undefined);
    await eventually("bob saw the edit and the recall", () => events.length === 2);
    expect(events).to.deep.equal([`1:${sent.seq}:false`, `2:${sent.seq}:true`]);

    expect((await b.api.msg.setMessageFlags({ conversationId: demo.directConversationId, seqs: [1n, 2n], add: [MessageFlag.STARRED] }, asBob)).updated).to.equal(2);
    const synced = await b.api.msg.syncMessages({ conversationId: demo.directConversationId, afterSeq: 0n, limit: 2 }, asBob);
    expect(synced.messages.map((m) => m.flags)).to.deep.equal([[MessageFlag.STARRED], [MessageFlag.STARRED]]);
    expect(synced.hasMore).to.equal(true);
    const alicesView = await a.api.msg.syncMessages({ conversationId: demo.directConversationId, afterSeq: 0n, limit: 1 }, asAlice);
    expect(alicesView.messages[0]!.flags, "flags are per user").to.deep.equal([]);
    const mentioned = await rpcError(b.api.msg.setMessageFlags({ conversationId: demo.directConversationId, seqs: [1n], add: [MessageFlag.MENTIONED] }, asBob));
    expect(mentioned.code).to.equal(Code.InvalidArgument);
  });
}

describe("1:1 messaging, all-in-one", function () {
  this.timeout(30_000);
  messagingSuite(async () => {
    const running: RunningProcess = await startProcess({
      mode: "all-in-one",
      name: "all-in-one",
      modules: allModules,
      port: 0,
      env: { IM_LOG_LEVEL: "silent", IM_ADMIN_TOKEN: adminToken },
    });
    const url = running.process.server.url;
    return { urls: [url], admin: { url, token: adminToken }, stop: () => running.stop() };
  });
});

describe("offline inbox entries for a device that connected meanwhile, all-in-one", function () {
  this.timeout(30_000);
  let running: RunningProcess;
  const clients: ImClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await running?.stop();
  });

  it("pushes an entry written after the device fetched its inbox, once", async () => {
    running = await startProcess({ mode: "all-in-one", name: "all-in-one", modules: allModules, port: 0, env: { IM_LOG_LEVEL: "silent" } });
    const url = running.process.server.url;
    const inbox: Message[] = [];
    const deviceId = randomUUID();
    const b = new ImClient({ baseUrl: url, apiKey: demo.apiKey, deviceId }, { message: (m) => inbox.push(m) });
    clients.push(b);
    await b.login("bob", demo.password);
    await b.connect();
    const a = new ImClient({ baseUrl: url, apiKey: demo.apiKey, deviceId: randomUUID() });
    clients.push(a);
    await a.login("alice", demo.password);
    await a.connect();
    const first = await a.sendText({ peerUserId: bob.id }, "before");
    await eventually("bob has alice's first message", () => inbox.length === 1);
    // What a msg instance does when its route table still showed bob's device on a gateway it had left: the push
    // failed, so the message went to offline_msg, and it reaches the inbox after bob's new stream fetched it.
    const late = create(MessageSchema, {
      conversationId: first.conversationId,
      seq: first.seq + 1n,
      msgId: randomUUID(),
      clientMsgId: randomUUID(),
      senderId: alice.id,
      senderDeviceId: "phone",
      content: { kind: { case: "text", value: { text: "routed to a gateway bob had left" } } },
      createdAt: timestampNow(),
      conversationType: ConversationType.SINGLE,
    });
    await running.runtime.bus.publish("offline_msg", [{ key: bob.id, value: toBinary(OfflineDeliverySchema, create(OfflineDeliverySchema, { appId: demo.appId, userId: bob.id, message: late })) }]);
    await eventually("bob, connected, gets the entry written to his inbox", () => inbox.some((m) => m.msgId === late.msgId));
    await new Promise((r) => setTimeout(r, 300));
    expect(inbox.filter((m) => m.msgId === late.msgId)).to.have.length(1);
  });
});

describe("1:1 messaging, mesh mode on two gateways @infra", function () {
  this.timeout(60_000);
  messagingSuite(async () => {
    const deployment = await startMeshDeployment({ gateways: 2, extraEnv: { IM_ADMIN_TOKEN: adminToken } });
    return { ...deployment, admin: { url: deployment.authUrl, token: adminToken } };
  });
});
