// The behaviour both MessageStore adapters must show, on the demo data (alice, bob, charlie; their 1:1 and group).
import { randomUUID } from "node:crypto";
import { expect } from "chai";
import { demo } from "../../platform/store/demo-data.js";
import { flagBits, type MessageStore, type StoredMessage } from "./message-store.js";

const [alice, bob, charlie, carol] = demo.users;
const direct = demo.directConversationId;

function message(conversationId: string, seq: number, senderId: string, text: string, clientMsgId: string = randomUUID()): StoredMessage {
  return {
    appId: demo.appId,
    conversationId,
    seq,
    msgId: randomUUID(),
    clientMsgId,
    senderId,
    senderDeviceId: "phone",
    contentType: 1,
    body: new TextEncoder().encode(text),
    searchText: text,
    createdAt: new Date(Date.now() + seq),
    editedAt: null,
    recalled: false,
  };
}

/** Registers the shared cases; `open` returns a store holding the demo data. */
export function messageStoreContract(open: () => Promise<{ store: MessageStore; close: () => Promise<void> }>): void {
  let store: MessageStore;
  let close: () => Promise<void>;
  beforeEach(async () => ({ store, close } = await open()));
  afterEach(() => close());

  it("stores a batch, reports a resent client_msg_id with the original and a taken seq, and raises max seq", async () => {
    const first = message(direct, 4, alice.id, "four", "c-4");
    expect(await store.insert([first, message(direct, 5, bob.id, "five")])).to.deep.equal([{ kind: "stored" }, { kind: "stored" }]);
    const outcomes = await store.insert([message(direct, 6, alice.id, "again", "c-4"), message(direct, 5, charlie.id, "taken"), message(direct, 7, bob.id, "seven")]);
    expect(outcomes[0]!.kind).to.equal("duplicate");
    expect(outcomes[0]!.kind === "duplicate" && outcomes[0]!.original.msgId).to.equal(first.msgId);
    expect(outcomes.slice(1)).to.deep.equal([{ kind: "seq-taken" }, { kind: "stored" }]);
    // Below the conversation's max seq, even where no message holds it: clients would see it out of order.
    expect(await store.insert([message(direct, 6, bob.id, "late")])).to.deep.equal([{ kind: "seq-taken" }]);
    expect(await store.insert([message(direct, 9, bob.id, "nine"), message(direct, 8, bob.id, "eight")])).to.deep.equal([{ kind: "stored" }, { kind: "stored" }]);
    expect((await store.conversation(demo.appId, direct))?.maxSeq).to.equal(9);
    expect((await store.membership(demo.appId, direct, bob.id))?.lastReadSeq, "a sender has read what they sent").to.equal(9);
    expect((await store.membership(demo.appId, direct, alice.id))?.lastReadSeq).to.equal(4);
    expect((await store.after(demo.appId, direct, 3, 10)).map((m) => m.seq)).to.deep.equal([4, 5, 7, 8, 9]);
    expect((await store.after(demo.appId, direct, 0, 2)).map((m) => m.seq)).to.deep.equal([1, 2]);
    expect((await store.after(demo.appId, direct, 0, 10, 2)).map((m) => m.seq)).to.deep.equal([1, 2]);
    expect(Buffer.from((await store.message(demo.appId, direct, 4))!.body).toString()).to.equal("four");
  });

  it("keeps apps apart", async () => {
    const other = randomUUID();
    expect(await store.conversation(other, direct)).to.equal(undefined);
    expect(await store.membership(other, direct, alice.id)).to.equal(undefined);
    expect(await store.after(other, direct, 0, 10)).to.deep.equal([]);
    expect(await store.listConversations(other, alice.id, 10)).to.deep.equal([]);
  });

  it("creates a 1:1 conversation once, with both members", async () => {
    const id = `s:${bob.id}:${carol.id}`;
    await store.ensureDirect(demo.appId, id, [bob.id, carol.id]);
    await store.ensureDirect(demo.appId, id, [bob.id, carol.id]);
    expect((await store.members(demo.appId, id)).sort()).to.deep.equal([bob.id, carol.id].sort());
    expect(await store.membership(demo.appId, id, alice.id)).to.equal(undefined);
    expect((await store.conversation(demo.appId, id))?.maxSeq).to.equal(0);
  });

  it("marks read up to max seq at most and never backwards", async () => {
    expect(await store.markRead(demo.appId, direct, bob.id, 99)).to.equal(3);
    expect(await store.markRead(demo.appId, direct, bob.id, 1)).to.equal(3);
    expect((await store.membership(demo.appId, direct, bob.id))?.lastReadSeq).to.equal(3);
  });

  it("lists conversations most recently active first, with the last message, pages by cursor", async () => {
    await store.insert([message(demo.groupConversationId, 4, bob.id, "hello group @alice")], [{ userId: alice.id, conversationId: demo.groupConversationId, seq: 4 }]);
    const all = await store.listConversations(demo.appId, alice.id, 10);
    expect(all.map((s) => s.conversation.id)).to.deep.equal([demo.groupConversationId, direct]);
    expect(all[0]!.last?.seq).to.equal(4);
    expect(all[0]!.member.lastReadSeq).to.equal(2);
    expect(all[0]!.unreadMentions).to.equal(1);
    const first = await store.listConversations(demo.appId, alice.id, 1);
    const rest = await store.listConversations(demo.appId, alice.id, 1, { updatedAt: first[0]!.conversation.updatedAt, id: first[0]!.conversation.id });
    expect(rest.map((s) => s.conversation.id)).to.deep.equal([direct]);
  });

  it("puts the seq floor above snapshots and persisted seqs", async () => {
    expect(await store.seqFloor(demo.appId, direct)).to.equal(3);
    await store.snapshotSeq(demo.appId, direct, 10_000);
    expect(await store.seqFloor(demo.appId, direct)).to.equal(20_000);
    expect(await store.seqFloor(demo.appId, "s:none:none")).to.equal(0);
  });

  it("sets and clears flag bits on existing messages only", async () => {
    expect(await store.setFlags(demo.appId, bob.id, direct, [1, 2, 99], flagBits.starred, 0)).to.equal(2);
    await store.setFlags(demo.appId, bob.id, direct, [2], flagBits.read, flagBits.starred);
    expect([...(await store.flags(bob.id, direct, [1, 2, 3]))]).to.deep.equal([[1, flagBits.starred], [2, flagBits.read]]);
    expect((await store.flags(alice.id, direct, [1])).size).to.equal(0);
  });

  it("edits and recalls in place", async () => {
    const edited = await store.update(demo.appId, direct, 1, { body: new TextEncoder().encode("x"), searchText: "x", editedAt: new Date() });
    expect(edited?.searchText).to.equal("x");
    expect(edited?.editedAt).to.be.instanceOf(Date);
    expect((await store.update(demo.appId, direct, 2, { recalled: true }))?.recalled).to.equal(true);
    expect(await store.update(demo.appId, direct, 99, { recalled: true })).to.equal(undefined);
  });

  it("searches only the user's conversations, by word prefix, skipping recalled messages", async () => {
    expect((await store.search(demo.appId, alice.id, "launch", undefined, 10, 0)).map((m) => m.msgId).sort()).to.deep.equal(
      ["d0000000-0000-4000-8000-000000000003", "d0000000-0000-4000-8000-000000000004"],
    );
    expect((await store.search(demo.appId, carol.id, "launch", undefined, 10, 0))).to.deep.equal([]);
    expect((await store.search(demo.appId, alice.id, "laun", direct, 10, 0)).map((m) => m.seq)).to.deep.equal([3]);
    await store.update(demo.appId, direct, 3, { recalled: true });
    expect((await store.search(demo.appId, alice.id, "launch", direct, 10, 0))).to.deep.equal([]);
    expect(await store.search(demo.appId, alice.id, '+"()*', undefined, 10, 0)).to.deep.equal([]);
  });

  it("searches a group only within the member's read window: nothing before they joined, nothing while they were out", async () => {
    const group = `g:${randomUUID()}`;
    const groupId = randomUUID();
    const said = (seq: number, text: string) => store.insert([message(group, seq, alice.id, text)]);
    await store.applyMembership(message(group, 1, alice.id, "alice created the group"), groupId, [alice.id], []);
    await said(2, "zebra before carol");
    await store.applyMembership(message(group, 3, alice.id, "alice added carol"), groupId, [carol.id], []);
    await said(4, "zebra with carol");
    await store.applyMembership(message(group, 5, alice.id, "alice removed carol"), groupId, [], [carol.id]);
    const whileMember = await store.search(demo.appId, carol.id, "zebra", group, 10, 0);
    await said(6, "zebra while carol was out");
    const afterRemoval = await store.search(demo.appId, carol.id, "zebra", undefined, 10, 0);
    await store.applyMembership(message(group, 7, alice.id, "alice added carol again"), groupId, [carol.id], []);
    await said(8, "zebra after carol came back");
    expect(whileMember.map((m) => m.seq), "a late joiner searches from the message that added them").to.deep.equal([4]);
    expect(afterRemoval.map((m) => m.seq), "a removed member keeps what they could read, not what came after").to.deep.equal([4]);
    // A member re-added reads (by sync and by search alike) from the message that added them again.
    expect((await store.search(demo.appId, carol.id, "zebra", group, 10, 0)).map((m) => m.seq)).to.deep.equal([8]);
    expect((await store.search(demo.appId, alice.id, "zebra", group, 10, 0)).map((m) => m.seq)).to.deep.equal([8, 6, 4, 2]);
  });

  it("keeps the offline inbox per user, once per message, deletes what was acknowledged and purges old entries", async () => {
    const entry = (seq: number, createdAt = new Date()) => ({ appId: demo.appId, userId: bob.id, conversationId: direct, seq, msgId: randomUUID(), payload: new Uint8Array([seq]), createdAt });
    await store.storeOffline([entry(5), entry(4), entry(6, new Date(Date.now() - 8 * 86_400_000))]);
    await store.storeOffline([entry(4)]);
    expect((await store.offline(demo.appId, bob.id, 10)).map((e) => e.seq)).to.deep.equal([4, 5, 6]);
    expect(await store.offline(demo.appId, alice.id, 10)).to.deep.equal([]);
    expect(await store.purgeOffline(new Date(Date.now() - 7 * 86_400_000))).to.equal(1);
    expect(await store.deleteOffline(demo.appId, bob.id, [{ conversationId: direct, seq: 4 }])).to.equal(1);
    expect((await store.offline(demo.appId, bob.id, 10)).map((e) => e.seq)).to.deep.equal([5]);
  });

  it("changes group membership with a system message: joins from its seq, leaves at it, skips no-ops, creates the conversation", async () => {
    const group = demo.groupConversationId;
    const added = await store.applyMembership(message(group, 4, alice.id, "alice added carol", "add-carol"), demo.groupId, [carol.id, bob.id], []);
    expect(added).to.deep.equal({ kind: "applied", joined: [carol.id], left: [] });
    expect((await store.conversation(demo.appId, group))?.membersSeq).to.equal(4);
    expect((await store.membership(demo.appId, group, carol.id))).to.include({ joinedSeq: 4, leftSeq: null, lastReadSeq: 3 });
    expect((await store.applyMembership(message(group, 5, alice.id, "again", "add-carol"), demo.groupId, [carol.id], [])).kind).to.equal("duplicate");
    expect(await store.applyMembership(message(group, 5, alice.id, "add carol twice"), demo.groupId, [carol.id], [])).to.deep.equal({ kind: "unchanged" });
    expect((await store.applyMembership(message(group, 4, alice.id, "stale seq"), demo.groupId, [], [bob.id])).kind).to.equal("seq-taken");
    expect(await store.applyMembership(message(group, 6, alice.id, "alice removed bob"), demo.groupId, [], [bob.id])).to.deep.equal({ kind: "applied", joined: [], left: [bob.id] });
    expect(await store.members(demo.appId, group)).to.have.members([alice.id, charlie.id, carol.id]);
    const spans = await store.memberSpans(demo.appId, group);
    expect(spans.membersSeq).to.equal(6);
    expect(spans.members.find((m) => m.userId === bob.id)).to.deep.equal({ userId: bob.id, joinedSeq: 0, leftSeq: 6 });
    expect((await store.insert([message(group, 7, carol.id, "hi all")]))[0]!.kind).to.equal("stored");
    expect((await store.conversation(demo.appId, group))?.membersSeq, "a plain message is no membership change").to.equal(6);
    const fresh = `g:${randomUUID()}`;
    const created = await store.applyMembership(message(fresh, 1, carol.id, "carol created the group"), randomUUID(), [carol.id, alice.id], []);
    expect(created.kind).to.equal("applied");
    expect((await store.conversation(demo.appId, fresh))).to.include({ type: 2, maxSeq: 1, membersSeq: 1 });
    expect((await store.membership(demo.appId, fresh, carol.id))?.lastReadSeq, "the actor has read it").to.equal(1);
    expect((await store.membership(demo.appId, fresh, alice.id))?.lastReadSeq).to.equal(0);
  });
}
