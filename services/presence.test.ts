// Presence, typing and multi-device sync end to end through the SDK, all-in-one and in mesh mode (two gateways):
// online while any device is connected, offline with last_seen after the last one (or its gateway) is gone,
// typing relayed to members only and rate-limited, read state and sends shared across a user's devices.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import type { JWK } from "jose";
import { SessionSchema } from "../gen/im/auth/v1/auth_pb.js";
import { PresenceStatus, type Presence, type TypingUpdate } from "../gen/im/gateway/v1/gateway_pb.js";
import type { Message, ReadReceipt } from "../gen/im/msg/v1/msg_pb.js";
import { ImClient } from "../client/im-client.js";
import { demo } from "../platform/store/demo-data.js";
import { AccessTokenIssuer } from "./auth/access-tokens.js";
import { eventually } from "../test/eventually.js";
import { startAllInOneDeployment, startMeshDeployment, startMeshTestDeployment, type TestDeployment } from "../test/mesh-deployment.js";

const [alice, bob, , carol] = demo.users;

interface Device {
  readonly c: ImClient;
  readonly presence: Presence[];
  readonly typing: TypingUpdate[];
  readonly messages: Message[];
  readonly receipts: ReadReceipt[];
  readonly states: string[];
}

function presenceSuite(deploy: () => Promise<TestDeployment>): void {
  let deployment: TestDeployment;
  const clients: ImClient[] = [];

  const device = async (username: string, gateway: number): Promise<Device> => {
    const d: Device = { c: undefined as unknown as ImClient, presence: [], typing: [], messages: [], receipts: [], states: [] };
    const c = new ImClient(
      { baseUrl: deployment.urls[gateway % deployment.urls.length]!, apiKey: demo.apiKey, deviceId: randomUUID() },
      {
        presence: (p) => d.presence.push(p),
        typing: (t) => d.typing.push(t),
        message: (m) => d.messages.push(m),
        receipt: (r) => d.receipts.push(r),
        state: (s, detail) => d.states.push(`${s}:${detail ?? ""}`),
      },
    );
    (d as { c: ImClient }).c = c;
    clients.push(c);
    await c.login(username, demo.password);
    await c.connect();
    return d;
  };

  const lastOf = (d: Device, userId: string) => [...d.presence].reverse().find((p) => p.userId === userId);

  before(async () => {
    deployment = await deploy();
  });
  after(async () => {
    await deployment?.stop();
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });

  it("shows a user online while any device is connected, and offline with last_seen only after the last one", async () => {
    const phone = await device("alice", 0);
    const laptop = await device("alice", 1);
    const b = await device("bob", 1);
    b.c.followPresence([]);
    await eventually("bob sees alice (his 1:1 peer) online", () => lastOf(b, alice.id)?.status === PresenceStatus.ONLINE);
    phone.c.close();
    await new Promise((r) => setTimeout(r, 4000));
    expect(lastOf(b, alice.id)?.status, "the laptop is still connected").to.equal(PresenceStatus.ONLINE);
    const closedAt = Date.now();
    laptop.c.close();
    await eventually("bob sees alice offline", () => lastOf(b, alice.id)?.status === PresenceStatus.OFFLINE, 10_000);
    const seen = Number(lastOf(b, alice.id)!.lastSeen!.seconds) * 1000;
    expect(seen).to.be.within(closedAt - 2000, closedAt + 2000);
    // A follower arriving later gets the state and last_seen at once.
    const c = await device("carol", 0);
    c.c.followPresence([alice.id]);
    await eventually("carol sees alice offline", () => lastOf(c, alice.id)?.status === PresenceStatus.OFFLINE);
    expect(lastOf(c, alice.id)!.lastSeen).to.exist;
  });

  it("does not tell followers about a reconnect within a few seconds", async () => {
    const b = await device("bob", 1);
    b.c.followPresence([alice.id]);
    const a = await device("alice", 0);
    await eventually("alice online", () => lastOf(b, alice.id)?.status === PresenceStatus.ONLINE);
    const before = b.presence.length;
    a.c.close();
    await device("alice", 1);
    await new Promise((r) => setTimeout(r, 4000));
    expect(b.presence.slice(before).filter((p) => p.userId === alice.id && p.status === PresenceStatus.OFFLINE)).to.deep.equal([]);
  });

  it("relays typing to the other member at most every few seconds, and drops it from non-members", async () => {
    const a = await device("alice", 0);
    const b = await device("bob", 1);
    const c = await device("carol", 0);
    for (let i = 0; i < 100; i++) a.c.sendTyping(demo.directConversationId);
    c.c.sendTyping(demo.directConversationId);
    a.c.sendTyping(demo.groupConversationId);
    await eventually("bob sees alice typing", () => b.typing.some((t) => t.userId === alice.id));
    await new Promise((r) => setTimeout(r, 500));
    const fromAlice = b.typing.filter((t) => t.userId === alice.id && t.conversationId === demo.directConversationId);
    expect(fromAlice.length, "a burst of 100 arrives as a handful").to.be.within(1, 3);
    expect(b.typing.filter((t) => t.userId === carol.id), "carol is not in the conversation").to.deep.equal([]);
    expect(b.typing.some((t) => t.conversationId === demo.groupConversationId), "group members see it too").to.equal(true);
    expect(a.typing, "never to the sender").to.deep.equal([]);
    a.c.sendTyping(demo.directConversationId, false);
    await eventually("bob sees alice stop", () => b.typing.some((t) => t.userId === alice.id && !t.typing));
  });

  it("shares a user's sends and read state across their devices; a revoked device is kicked and signed out", async () => {
    const phone = await device("alice", 0);
    const laptop = await device("alice", 1);
    const b = await device("bob", 0);
    const sent = await phone.c.sendText({ peerUserId: bob.id }, "from my phone");
    await eventually("the laptop shows it as sent by me", () => laptop.messages.some((m) => m.msgId === sent.msgId && m.senderId === alice.id));
    await eventually("bob has it", () => b.messages.some((m) => m.msgId === sent.msgId));
    await phone.c.api.msg.markRead({ conversationId: demo.directConversationId, seq: sent.seq }, { headers: phone.c.api.headers() });
    await eventually("the laptop hears its own read state", () => laptop.receipts.some((r) => r.userId === alice.id && r.lastReadSeq === sent.seq));
    const list = await laptop.c.api.msg.listConversations({}, { headers: laptop.c.api.headers() });
    expect(list.conversations.find((c) => c.conversationId === demo.directConversationId)?.unreadCount).to.equal(0n);

    const devices = await phone.c.api.auth.listDevices({}, { headers: phone.c.api.headers() });
    expect(devices.devices.map((d) => d.deviceId)).to.include.members([phone.c.deviceId, laptop.c.deviceId]);
    await phone.c.api.auth.revokeDevice({ deviceId: laptop.c.deviceId }, { headers: phone.c.api.headers() });
    // Its calls are refused at once: the edge checks revocation on every call, though no service re-verifies tokens.
    const refused = await laptop.c.api.msg.listConversations({}, { headers: laptop.c.api.headers() }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(refused?.code).to.equal(Code.Unauthenticated);
    await eventually("the laptop's stream was kicked", () => laptop.states.some((s) => s.includes("kicked")));
    const refresh = await laptop.c.refreshNow().then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(refresh?.code).to.equal(Code.Unauthenticated);
  });
}

describe("presence, typing and devices, all-in-one", function () {
  this.timeout(40_000);
  presenceSuite(() => startAllInOneDeployment());
});

describe("presence, typing and devices, mesh mode on two gateways @infra", function () {
  this.timeout(60_000);
  presenceSuite(() => startMeshTestDeployment());

  it("takes the users of a SIGKILLed gateway offline once its lease expires; its 200 devices reconnect to the other gateway, which survives the storm", async () => {
    const mesh = await startMeshDeployment({ gateways: 2 });
    const clients: ImClient[] = [];
    try {
      const seen: Presence[] = [];
      const a = new ImClient({ baseUrl: mesh.urls[0]!, apiKey: demo.apiKey, deviceId: randomUUID() });
      const b = new ImClient({ baseUrl: mesh.urls[1]!, apiKey: demo.apiKey, deviceId: randomUUID() }, { presence: (p) => seen.push(p) });
      clients.push(a, b);
      await a.login("alice", demo.password);
      await a.connect();
      await b.login("bob", demo.password);
      await b.connect();
      b.followPresence([alice.id]);
      // Carol's many devices on the gateway that will crash, each able to fall back to the other one.
      const issuer = await AccessTokenIssuer.fromPrivateJwks(JSON.parse(mesh.env.IM_AUTH_SIGNING_KEYS!) as JWK[]);
      const gateways = new Map<ImClient, string>();
      const devices = await Promise.all(
        Array.from({ length: 200 }, async () => {
          const deviceId = randomUUID();
          const issued = await issuer.issue({ appId: demo.appId, userId: carol.id, deviceId });
          const c: ImClient = new ImClient({ baseUrl: mesh.urls[0]!, fallbackUrls: [mesh.urls[1]!], apiKey: demo.apiKey, deviceId }, { state: (st, detail) => st === "connected" && gateways.set(c, detail ?? "") });
          c.restore(create(SessionSchema, { appId: demo.appId, userId: carol.id, deviceId, tokens: { accessToken: issued.token, accessExpiresAt: timestampFromDate(issued.expiresAt) } }));
          clients.push(c);
          return c;
        }),
      );
      await Promise.all(devices.map((c) => c.connect()));
      const crashed = gateways.get(devices[0]!);
      await eventually("alice online", () => seen.some((p) => p.userId === alice.id && p.status === PresenceStatus.ONLINE));
      mesh.gateways[0]!.child.kill("SIGKILL");
      a.close();
      // Each reconnect to the surviving gateway asks the crashed one to kick the device's old stream; that must fail quietly.
      await eventually("all 200 devices on the other gateway", () => devices.every((c) => gateways.get(c) !== crashed), 30_000);
      expect(mesh.gateways[1]!.child.exitCode, mesh.gateways[1]!.output()).to.equal(null);
      await eventually("alice offline after the 5 s lease", () => seen.some((p) => p.userId === alice.id && p.status === PresenceStatus.OFFLINE), 20_000);
    } finally {
      for (const c of clients) c.close();
      await mesh.stop();
    }
  });
});
