// The msg service's answers to misuse (issue #18, findings 5, 10, 12, 13 and 15), all-in-one on port 0 with the
// demo data: send rate limits per user and per app (unary and on the stream), system messages that no one may
// change, only STARRED settable, a client_msg_id never reused for another conversation, and non-members told the
// same about a conversation whether or not it exists.
import { randomUUID } from "node:crypto";
import { Code, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { AuthService, Platform } from "../gen/im/auth/v1/auth_pb.js";
import { GroupService } from "../gen/im/group/v1/group_pb.js";
import { MessageFlag, MsgService } from "../gen/im/msg/v1/msg_pb.js";
import { demo } from "../platform/store/demo-data.js";
import { eventually } from "../test/eventually.js";
import { startAllInOneDeployment, type TestDeployment } from "../test/mesh-deployment.js";
import { openRawStream } from "../test/raw-stream.js";
import { rpcError } from "../test/rpc-errors.js";
import { directConversationId } from "./msg/conversation-access.js";

const [alice, bob, charlie, carol] = demo.users;

interface Session {
  readonly token: string;
  readonly as: { headers: { authorization: string } };
  readonly msg: Client<typeof MsgService>;
  readonly group: Client<typeof GroupService>;
}

async function signIn(url: string, username: string): Promise<Session> {
  const transport = createGrpcTransport({ baseUrl: url });
  const res = await createClient(AuthService, transport).login({ apiKey: demo.apiKey, login: { case: "username", value: username }, password: demo.password, device: { deviceId: randomUUID(), platform: Platform.CLI } });
  const token = res.session!.tokens!.accessToken;
  return { token, as: { headers: { authorization: `Bearer ${token}` } }, msg: createClient(MsgService, transport), group: createClient(GroupService, transport) };
}

const text = (s: Session, target: { case: "conversationId" | "peerUserId"; value: string }, body: string, clientMsgId: string = randomUUID()) =>
  s.msg.sendMessage({ clientMsgId, target, content: { kind: { case: "text", value: { text: body } } } }, s.as);

describe("message rules, all-in-one", function () {
  this.timeout(30_000);
  let deployment: TestDeployment;
  let url: string;
  before(async () => {
    deployment = await startAllInOneDeployment({ IM_SEND_RATE_USER: "off", IM_SEND_RATE_APP: "off" });
    url = deployment.urls[0]!;
  });
  after(() => deployment?.stop());

  it("tells a non-member the same about an existing conversation and a missing one", async () => {
    const c = await signIn(url, "carol");
    const missingDirect = directConversationId(alice.id, "00000000-0000-4000-8000-00000000dead");
    const pairs = [
      [demo.directConversationId, missingDirect],
      [demo.groupConversationId, "g:00000000-0000-4000-8000-00000000dead"],
    ];
    const calls: [string, (id: string) => Promise<unknown>][] = [
      ["send", (id) => text(c, { case: "conversationId", value: id }, "let me in")],
      ["sync", (id) => c.msg.syncMessages({ conversationId: id }, c.as)],
      ["mark read", (id) => c.msg.markRead({ conversationId: id, seq: 1n }, c.as)],
      ["recall", (id) => c.msg.recallMessage({ conversationId: id, seq: 1n }, c.as)],
      ["edit", (id) => c.msg.editMessage({ conversationId: id, seq: 1n, content: { kind: { case: "text", value: { text: "x" } } } }, c.as)],
      ["flags", (id) => c.msg.setMessageFlags({ conversationId: id, seqs: [1n], add: [MessageFlag.STARRED] }, c.as)],
      ["search", (id) => c.msg.searchMessages({ conversationId: id, query: "launch" }, c.as)],
    ];
    for (const [existing, missing] of pairs) {
      for (const [what, call] of calls) {
        const a = await rpcError(call(existing!));
        const b = await rpcError(call(missing!));
        expect([a.code, a.rawMessage.replace(existing!, "<id>")], `${what} ${existing} vs ${missing}`).to.deep.equal([b.code, b.rawMessage.replace(missing!, "<id>")]);
        expect(a.code, what).to.equal(Code.NotFound);
      }
    }
  });

  it("lets no one recall or edit a system message, not even the member whose change it announced", async () => {
    const a = await signIn(url, "alice");
    const { group } = await a.group.createGroup({ requestId: randomUUID(), name: "Recall test", memberIds: [bob.id] }, a.as);
    const { addedUserIds } = await a.group.addMembers({ groupId: group!.groupId, userIds: [charlie.id] }, a.as);
    expect(addedUserIds).to.deep.equal([charlie.id]);
    const history = await a.msg.syncMessages({ conversationId: group!.conversationId }, a.as);
    const added = history.messages.find((m) => m.content?.kind.case === "system" && m.senderId === alice.id && m.seq > 1n)!;
    expect(added, "the MEMBERS_ADDED message names alice as its sender").to.exist;
    const recall = await rpcError(a.msg.recallMessage({ conversationId: group!.conversationId, seq: added.seq }, a.as));
    expect([recall.code, recall.rawMessage]).to.deep.equal([Code.PermissionDenied, "system messages cannot be recalled or edited"]);
    const edit = await rpcError(a.msg.editMessage({ conversationId: group!.conversationId, seq: added.seq, content: { kind: { case: "text", value: { text: "nothing happened" } } } }, a.as));
    expect(edit.code).to.equal(Code.PermissionDenied);
    const after = await a.msg.syncMessages({ conversationId: group!.conversationId }, a.as);
    expect(after.messages.find((m) => m.seq === added.seq)?.recalled).to.equal(false);
  });

  it("sets only the starred flag", async () => {
    const a = await signIn(url, "alice");
    const conversationId = demo.directConversationId;
    expect((await a.msg.setMessageFlags({ conversationId, seqs: [1n], add: [MessageFlag.STARRED] }, a.as)).updated).to.equal(1);
    for (const flags of [{ add: [MessageFlag.READ] }, { remove: [MessageFlag.READ] }, { add: [MessageFlag.MENTIONED] }]) {
      expect((await rpcError(a.msg.setMessageFlags({ conversationId, seqs: [1n], ...flags }, a.as))).code, JSON.stringify(flags)).to.equal(Code.InvalidArgument);
    }
  });

  it("refuses a client_msg_id reused for another conversation, naming the one it was used in, and stores nothing", async () => {
    const a = await signIn(url, "alice");
    const id = randomUUID();
    const first = await text(a, { case: "peerUserId", value: bob.id }, "for bob", id);
    const reused = await rpcError(text(a, { case: "peerUserId", value: charlie.id }, "for charlie", id));
    expect(reused.code).to.equal(Code.AlreadyExists);
    expect(reused.rawMessage).to.contain(demo.directConversationId);
    const toCharlie = directConversationId(alice.id, charlie.id);
    const charlieSees = await a.msg.syncMessages({ conversationId: toCharlie }, a.as).then((r) => r.messages.length, () => 0);
    expect(charlieSees, "nothing reached charlie").to.equal(0);
    const again = await text(a, { case: "peerUserId", value: bob.id }, "for bob", id);
    expect([again.duplicate, again.seq], "a retry to the same conversation is still a duplicate").to.deep.equal([true, first.seq]);
  });
});

describe("send rate limits, all-in-one", function () {
  this.timeout(30_000);
  let deployment: TestDeployment | undefined;
  afterEach(() => deployment?.stop());

  it("limits each user's sends, with a retry hint on unary calls and in the stream's FrameError", async () => {
    deployment = await startAllInOneDeployment({ IM_SEND_RATE_USER: "3/3600", IM_SEND_RATE_APP: "off" });
    const url = deployment.urls[0]!;
    const a = await signIn(url, "alice");
    for (let i = 0; i < 3; i++) await text(a, { case: "peerUserId", value: bob.id }, `hello ${i}`);
    const refused = await rpcError(text(a, { case: "peerUserId", value: bob.id }, "one too many"));
    expect(refused.code).to.equal(Code.ResourceExhausted);
    expect(Number(refused.metadata.get("retry-after"))).to.be.within(1, 3600);
    const stream = openRawStream(url, a.token);
    stream.send({ frameId: 7n, body: { case: "send", value: { clientMsgId: randomUUID(), target: { case: "peerUserId", value: bob.id }, content: { kind: { case: "text", value: { text: "streamed" } } } } } });
    await eventually("the stream answered the send", () => stream.frames.some((f) => f.replyTo === 7n));
    const answer = stream.frames.find((f) => f.replyTo === 7n)!.body;
    const error = answer.case === "sendResult" && answer.value.result.case === "error" ? answer.value.result.value : undefined;
    expect(error?.code, "a refused send").to.equal(Code.ResourceExhausted);
    expect(error?.retryAfterMs).to.be.at.least(1000);
    stream.reset();
    const b = await signIn(url, "bob");
    expect((await text(b, { case: "peerUserId", value: alice.id }, "bob is not limited by alice")).seq).to.be.a("bigint");
  });

  it("limits the sends of all users of an app together", async () => {
    deployment = await startAllInOneDeployment({ IM_SEND_RATE_USER: "off", IM_SEND_RATE_APP: "4/3600" });
    const url = deployment.urls[0]!;
    const [a, b] = [await signIn(url, "alice"), await signIn(url, "bob")];
    for (let i = 0; i < 2; i++) await text(a, { case: "peerUserId", value: bob.id }, `a ${i}`);
    for (let i = 0; i < 2; i++) await text(b, { case: "peerUserId", value: alice.id }, `b ${i}`);
    const refused = await rpcError(text(b, { case: "peerUserId", value: carol.id }, "the app is over its limit"));
    expect([refused.code, refused.rawMessage]).to.match(/app/).and.include(Code.ResourceExhausted);
  });
});
