// Groups end to end through the SDK, all-in-one (in-memory adapters) and in mesh mode (every service its own
// process, the fan-out worker consuming group_msg from real Kafka, members on two gateways): ordering, joins and
// removals by seq, roles, mentions, dissolution, and a fan-out worker killed mid-stream.
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { expect } from "chai";
import { GroupRole } from "../gen/im/group/v1/group_pb.js";
import { SystemContent_Kind, type Message } from "../gen/im/msg/v1/msg_pb.js";
import { ImClient, SendError } from "../client/im-client.js";
import { demo } from "../platform/store/demo-data.js";
import { eventually } from "../test/eventually.js";
import { startAllInOneDeployment, startMeshDeployment, startMeshTestDeployment, type MeshDeployment, type TestDeployment } from "../test/mesh-deployment.js";
import { rpcError } from "../test/rpc-errors.js";

const [alice, bob, charlie, carol] = demo.users;

const textOf = (m: Message) => (m.content?.kind.case === "text" ? m.content.kind.value.text : undefined);
const systemOf = (m: Message) => (m.content?.kind.case === "system" ? m.content.kind.value : undefined);

function groupSuite(deploy: () => Promise<TestDeployment>): void {
  let deployment: TestDeployment;
  const clients: ImClient[] = [];

  /** Signs a demo user in on a gateway (alice on the first, bob on the last, the others alternating). */
  const member = async (username: string, gateway: number, inbox: Message[] = []) => {
    const url = deployment.urls[gateway % deployment.urls.length]!;
    const c = new ImClient({ baseUrl: url, apiKey: demo.apiKey, deviceId: randomUUID() }, { message: (m) => inbox.push(m) });
    clients.push(c);
    await c.login(username, demo.password);
    await c.connect();
    await c.resume();
    const as = { headers: c.api.headers() };
    return { c, inbox, group: c.api.group, msg: c.api.msg, as };
  };

  /** Each test's own group, laid out like the demo's: alice owner, bob admin, charlie member. */
  let groupId: string;
  let conversationId: string;

  before(async () => {
    deployment = await deploy();
  });

  after(async () => {
    await deployment?.stop();
  });

  beforeEach(async () => {
    const a = await member("alice", 0);
    const { group } = await a.group.createGroup({ requestId: randomUUID(), name: "Launch team", memberIds: [bob.id, charlie.id] }, a.as);
    groupId = group!.groupId;
    conversationId = group!.conversationId;
    await a.group.setMemberRole({ groupId, userId: bob.id, role: GroupRole.ADMIN }, a.as);
    for (const c of clients.splice(0)) c.close();
  });

  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });

  it("creates a group whose members, on different gateways, all receive every message in the same seq order", async () => {
    const a = await member("alice", 0);
    const b = await member("bob", 1);
    const c = await member("carol", 2);
    const { group } = await a.group.createGroup({ requestId: randomUUID(), name: "Weekend plans", memberIds: [bob.id, carol.id] }, a.as);
    expect(group).to.include({ name: "Weekend plans", ownerId: alice.id, memberCount: 3 });
    const conversationId = group!.conversationId;
    await eventually("everyone got the creation message", () => [a, b, c].every((x) => x.inbox.some((m) => m.conversationId === conversationId)) || [b, c].every((x) => x.inbox.length > 0));
    const sends = await Promise.all(
      [a, b, c].flatMap((x, i) => Array.from({ length: 5 }, (_, k) => x.c.sendText({ conversationId }, `from ${i}: ${k}`))),
    );
    const texts = new Set(sends.map((s) => s.msgId));
    expect(texts.size).to.equal(15);
    for (const [i, x] of [a, b, c].entries()) {
      await eventually(`member ${i} received the others' ten messages`, () => x.inbox.filter((m) => textOf(m)?.startsWith("from")).length === 10);
      const seqs = x.inbox.filter((m) => m.conversationId === conversationId).map((m) => Number(m.seq));
      expect(seqs, "in seq order").to.deep.equal([...seqs].sort((p, q) => p - q));
      expect(x.inbox.filter((m) => textOf(m)?.startsWith(`from ${i}:`)), "never one's own").to.deep.equal([]);
    }
    const history = await b.msg.syncMessages({ conversationId, afterSeq: 0n, limit: 100 }, b.as);
    expect(history.messages.map((m) => Number(m.seq))).to.deep.equal(Array.from({ length: 16 }, (_, i) => i + 1));
    expect(systemOf(history.messages[0]!)?.kind).to.equal(SystemContent_Kind.GROUP_CREATED);
  });

  it("lets a member added mid-conversation read from the seq that added them, and a removed one nothing after removal", async () => {
    const a = await member("alice", 0);
    const b = await member("bob", 1);
    const c = await member("carol", 1);
    for (let i = 0; i < 3; i++) await a.c.sendText({ conversationId }, `before carol ${i}`);
    const added = await b.group.addMembers({ groupId: groupId, userIds: [carol.id] }, b.as);
    expect(added).to.deep.include({ addedUserIds: [carol.id], memberCount: 4 });
    await a.c.sendText({ conversationId }, "welcome carol");
    await eventually("carol got the welcome", () => c.inbox.some((m) => textOf(m) === "welcome carol"));
    expect(c.inbox.map((m) => textOf(m) ?? systemOf(m)?.kind)).to.deep.equal([SystemContent_Kind.MEMBERS_ADDED, "welcome carol"]);
    const joinedSeq = c.inbox[0]!.seq;
    const carolsView = await c.msg.syncMessages({ conversationId, afterSeq: 0n }, c.as);
    expect(carolsView.messages[0]!.seq, "history starts at her join").to.equal(joinedSeq);
    const members = await c.group.listMembers({ groupId: groupId }, c.as);
    expect(members.members.find((m) => m.userId === carol.id)?.joinedSeq).to.equal(joinedSeq);

    const removed = await a.group.removeMembers({ groupId: groupId, userIds: [carol.id] }, a.as);
    expect(removed).to.deep.include({ removedUserIds: [carol.id], memberCount: 3 });
    await eventually("carol saw her removal", () => c.inbox.some((m) => systemOf(m)?.kind === SystemContent_Kind.MEMBERS_REMOVED));
    const removalSeq = c.inbox.find((m) => systemOf(m)?.kind === SystemContent_Kind.MEMBERS_REMOVED)!.seq;
    await a.c.sendText({ conversationId }, "after carol left");
    await eventually("bob got it", () => b.inbox.some((m) => textOf(m) === "after carol left"));
    await new Promise((r) => setTimeout(r, 300));
    expect(c.inbox.filter((m) => m.seq > removalSeq), "nothing after her removal").to.deep.equal([]);
    const after = await c.msg.syncMessages({ conversationId, afterSeq: 0n }, c.as);
    expect(after.maxSeq).to.equal(removalSeq);
    expect(after.messages.map((m) => m.seq).every((s) => s >= joinedSeq && s <= removalSeq)).to.equal(true);
    const send = await c.c.sendText({ conversationId }, "let me back in").catch((e: SendError) => e);
    expect((send as SendError).code).to.equal(Code.PermissionDenied);
    expect((await rpcError(c.group.getGroup({ groupId: groupId }, c.as))).code).to.equal(Code.PermissionDenied);
  });

  it("enforces roles: members cannot manage, only the owner changes roles, admins cannot touch the owner or other admins", async () => {
    const a = await member("alice", 0);
    const b = await member("bob", 1);
    const ch = await member("charlie", 0);
    expect((await rpcError(ch.group.setMemberRole({ groupId, userId: bob.id, role: GroupRole.MEMBER }, ch.as))).code).to.equal(Code.PermissionDenied);
    expect((await rpcError(ch.group.addMembers({ groupId, userIds: [carol.id] }, ch.as))).code).to.equal(Code.PermissionDenied);
    expect((await rpcError(ch.group.updateGroup({ groupId, name: "Mine now" }, ch.as))).code).to.equal(Code.PermissionDenied);
    expect((await rpcError(b.group.removeMembers({ groupId, userIds: [alice.id] }, b.as))).code).to.equal(Code.PermissionDenied);
    expect((await rpcError(ch.group.dissolveGroup({ groupId }, ch.as))).code).to.equal(Code.PermissionDenied);
    expect((await rpcError(ch.group.transferOwnership({ groupId, newOwnerId: ch.c.userId }, ch.as))).code).to.equal(Code.PermissionDenied);
    expect((await rpcError(b.group.setMemberRole({ groupId, userId: charlie.id, role: GroupRole.ADMIN }, b.as))).code, "only the owner promotes").to.equal(Code.PermissionDenied);
    expect((await b.group.getGroup({ groupId }, ch.as)).myRole, "charlie is still a member").to.equal(GroupRole.MEMBER);
    const promoted = await a.group.setMemberRole({ groupId, userId: charlie.id, role: GroupRole.ADMIN }, a.as);
    expect(promoted.member?.role).to.equal(GroupRole.ADMIN);
    expect((await rpcError(b.group.setMemberRole({ groupId, userId: charlie.id, role: GroupRole.MEMBER }, b.as))).code, "only the owner demotes").to.equal(Code.PermissionDenied);
    expect((await rpcError(b.group.removeMembers({ groupId, userIds: [charlie.id] }, b.as))).code).to.equal(Code.PermissionDenied);
    expect((await rpcError(a.group.addMembers({ groupId, userIds: [randomUUID()] }, a.as))).code, "unknown user").to.equal(Code.NotFound);
    expect((await rpcError(a.group.leaveGroup({ groupId }, a.as))).code, "the owner transfers first").to.equal(Code.FailedPrecondition);
    expect((await rpcError(a.group.getGroup({ groupId: randomUUID() }, a.as))).code).to.equal(Code.NotFound);
    expect((await rpcError(a.group.addMembers({ groupId: "not-a-uuid", userIds: [carol.id] }, a.as))).code).to.equal(Code.InvalidArgument);
    await eventually("charlie saw his promotion", () => ch.inbox.some((m) => systemOf(m)?.kind === SystemContent_Kind.ROLE_CHANGED));
  });

  it("keeps member_count exact under concurrent AddMembers and RemoveMembers", async () => {
    const a = await member("alice", 0);
    const b = await member("bob", 1);
    await Promise.all([
      a.group.addMembers({ groupId, userIds: [carol.id] }, a.as),
      b.group.addMembers({ groupId, userIds: [carol.id] }, b.as),
      a.group.removeMembers({ groupId, userIds: [charlie.id] }, a.as),
      b.group.removeMembers({ groupId, userIds: [charlie.id] }, b.as),
      a.group.addMembers({ groupId, userIds: [charlie.id, carol.id] }, a.as),
    ]);
    const { group } = await a.group.getGroup({ groupId }, a.as);
    const { members } = await a.group.listMembers({ groupId, pageSize: 100 }, a.as);
    expect(group!.memberCount).to.equal(members.length);
    // The conversation agrees with the group on who is in it.
    const inConversation = new Set<string>();
    const sync = await a.msg.syncMessages({ conversationId: conversationId, afterSeq: 0n, limit: 100 }, a.as);
    for (const m of sync.messages) {
      const s = systemOf(m);
      if (s?.kind === SystemContent_Kind.MEMBERS_ADDED) s.targetUserIds.forEach((u) => inConversation.add(u));
      if (s?.kind === SystemContent_Kind.MEMBERS_REMOVED) s.targetUserIds.forEach((u) => inConversation.delete(u));
    }
    for (const u of [carol.id, charlie.id]) expect(inConversation.has(u), u).to.equal(members.some((m) => m.userId === u));
  });

  it("flags mentions for the mentioned only; @all is for owners and admins; a dissolved group stays readable", async () => {
    const a = await member("alice", 0);
    const b = await member("bob", 1);
    const ch = await member("charlie", 0);
    const sendMention = (x: typeof a, text: { text: string; mentionedUserIds?: string[]; mentionAll?: boolean }) =>
      x.msg.sendMessage({ clientMsgId: randomUUID(), target: { case: "conversationId", value: conversationId }, content: { kind: { case: "text", value: text } } }, x.as);
    await sendMention(b, { text: "@charlie can you check?", mentionedUserIds: [charlie.id, carol.id] });
    const unread = async (x: typeof a) => (await x.msg.listConversations({}, x.as)).conversations.find((c) => c.conversationId === conversationId)!;
    expect((await unread(ch)).unreadMentions).to.equal(1n);
    expect((await unread(a)).unreadMentions).to.equal(0n);
    expect((await rpcError(sendMention(ch, { text: "@all hello", mentionAll: true }))).code).to.equal(Code.PermissionDenied);
    await sendMention(a, { text: "@all meeting now", mentionAll: true });
    expect((await unread(ch)).unreadMentions).to.equal(2n);
    expect((await unread(b)).unreadMentions).to.equal(1n);
    expect((await unread(a)).unreadMentions, "not the sender").to.equal(0n);

    await a.group.transferOwnership({ groupId: groupId, newOwnerId: bob.id }, a.as);
    expect((await a.group.getGroup({ groupId: groupId }, a.as)).myRole).to.equal(GroupRole.ADMIN);
    await a.group.leaveGroup({ groupId: groupId }, a.as);
    const dissolved = await b.group.dissolveGroup({ groupId: groupId }, b.as);
    expect(dissolved.dissolvedAt).to.exist;
    expect((await rpcError(b.group.addMembers({ groupId: groupId, userIds: [carol.id] }, b.as))).code).to.equal(Code.FailedPrecondition);
    const send = await ch.c.sendText({ conversationId }, "anyone?").catch((e: SendError) => e);
    expect((send as SendError).code).to.equal(Code.PermissionDenied);
    const history = await ch.msg.syncMessages({ conversationId, afterSeq: 0n, limit: 100 }, ch.as);
    expect(systemOf(history.messages[history.messages.length - 1]!)?.kind).to.equal(SystemContent_Kind.GROUP_DISSOLVED);
    expect((await b.group.listMyGroups({}, b.as)).groups.map((g) => g.groupId)).to.not.include(groupId);
  });
}

describe("groups, all-in-one", function () {
  this.timeout(30_000);
  groupSuite(() => startAllInOneDeployment());
});

describe("groups, mesh mode on two gateways with a fan-out worker on Kafka @infra", function () {
  this.timeout(90_000);
  groupSuite(() => startMeshTestDeployment());
});

describe("group fan-out worker killed with SIGKILL mid-stream @infra", function () {
  this.timeout(120_000);
  let mesh: MeshDeployment;
  const clients: ImClient[] = [];
  before(async () => {
    // 200 sends of one user in 4 s: past the per-user send limit, which is not what this test is about.
    mesh = await startMeshDeployment({ gateways: 2, extraEnv: { IM_SEND_RATE_USER: "off" } });
  });
  after(async () => {
    for (const c of clients) c.close();
    await mesh?.stop();
  });

  it("loses nothing: a new worker consumes from the last committed offsets and every member gets every message", async () => {
    const inboxes = new Map<string, Message[]>();
    const connect = async (username: string, url: string) => {
      const inbox: Message[] = [];
      const c = new ImClient({ baseUrl: url, apiKey: demo.apiKey, deviceId: randomUUID() }, { message: (m) => inbox.push(m) });
      clients.push(c);
      await c.login(username, demo.password);
      await c.connect();
      await c.resume();
      inboxes.set(username, inbox);
      return c;
    };
    const a = await connect("alice", mesh.urls[0]!);
    await connect("bob", mesh.urls[1]!);
    await connect("carol", mesh.urls[0]!);
    const { group } = await a.api.group.createGroup({ requestId: randomUUID(), name: "Chaos", memberIds: [bob.id, carol.id] }, { headers: a.api.headers() });
    const conversationId = group!.conversationId;
    const sent: string[] = [];
    let killed = false;
    // 8 senders in flight for ~4 s; the worker dies a second in, and a new one starts two seconds later.
    const sending = Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; i < 25; i++) {
          const r = await a.sendText({ conversationId }, `chaos ${w}-${i}`);
          sent.push(r.msgId);
          await new Promise((res) => setTimeout(res, 150));
        }
      }),
    );
    await new Promise((r) => setTimeout(r, 1000));
    mesh.fanout.child.kill("SIGKILL");
    killed = true;
    await mesh.fanout.exited;
    await new Promise((r) => setTimeout(r, 2000));
    await mesh.start("fanout");
    await sending;
    expect(killed).to.equal(true);
    for (const name of ["bob", "carol"]) {
      const inbox = inboxes.get(name)!;
      await eventually(`${name} has all ${sent.length} messages`, () => sent.every((id) => inbox.some((m) => m.msgId === id)), 60_000);
      const ids = inbox.filter((m) => textOf(m)?.startsWith("chaos")).map((m) => m.msgId);
      expect(new Set(ids).size, `${name} saw each message once`).to.equal(ids.length);
      const seqs = inbox.filter((m) => m.conversationId === conversationId).map((m) => Number(m.seq));
      expect(seqs).to.deep.equal([...seqs].sort((x, y) => x - y));
    }
  });
});
