// The SDK against an in-memory im-mesh (client/fake-im-server.ts): races between pushes, syncs, resumes, token
// refreshes and reconnects are staged step by step, each step waiting for an event, never for time.
import { expect } from "chai";
import { Kick_Reason } from "../gen/im/gateway/v1/gateway_pb.js";
import type { Message } from "../gen/im/msg/v1/msg_pb.js";
import { FakeImServer } from "./fake-im-server.js";
import { ImClient } from "./im-client.js";

const conv = "d:me:peer";
const other = "d:me:other";

/** An SDK client on the fake server, and what its app heard. */
function clientOf(server: FakeImServer, accessMs?: number): { client: ImClient; got: (c?: string) => bigint[]; typing: () => number; messages: Message[] } {
  const messages: Message[] = [];
  let typing = 0;
  const client = new ImClient(
    { baseUrl: "http://fake.invalid", apiKey: "key", transport: () => server.transport },
    {
      message: (m) => {
        messages.push(m);
        server.changes.notify();
      },
      typing: () => {
        typing++;
        server.changes.notify();
      },
    },
  );
  client.restore(server.session(accessMs));
  return { client, messages, got: (c = conv) => messages.filter((m) => m.conversationId === c).map((m) => m.seq), typing: () => typing };
}

const seqs = (...n: number[]) => n.map(BigInt);

describe("SDK against an in-memory im-mesh", () => {
  const clients: ImClient[] = [];
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });

  /** Connected, positioned after seq 3 of `conv`, and past the resume that follows the welcome. */
  async function connected(server: FakeImServer, accessMs?: number): Promise<ReturnType<typeof clientOf>> {
    server.store(conv, 1, 2, 3);
    const app = clientOf(server, accessMs);
    clients.push(app.client);
    app.client.lastSeq.set(conv, 3n);
    await app.client.connect();
    // The resume reads max_seq 3 when its call arrives: nothing to sync, whenever its answer is handled.
    await server.changes.until("the resume after the welcome", () => server.listCalls.length === 1);
    return app;
  }

  it("hands out a message held behind a gap when the sync in flight read the store before the gap was filled (#25)", async () => {
    const server = new FakeImServer();
    const app = await connected(server);
    server.store(conv, 4, 5);
    const firstSync = server.hold("sync", 0);
    server.push(conv, 5); // 4's push is lost: 5 is held and a sync reads 4 and 5
    await server.changes.until("the sync of the first gap", () => server.syncCalls.length === 1);
    server.store(conv, 6, 7);
    server.push(conv, 7); // 6's push is lost too, and the sync in flight read the store before 6 was stored
    server.pushBarrier(conv);
    await server.changes.until("the client handled the push of 7", () => app.typing() === 1);
    firstSync.open();
    // No further traffic: 7 must not wait for the next message or reconnect.
    await server.changes.until(() => `4 to 7 reaching the app (it has ${app.got().join()})`, () => app.got().length === 4);
    expect(app.got()).to.deep.equal(seqs(4, 5, 6, 7));
    expect(server.syncCalls.map((c) => c.afterSeq)).to.deep.equal(seqs(3, 5));
  });

  it("queues one follow-up sync per conversation however many gaps open while a sync is in flight", async () => {
    const server = new FakeImServer();
    const app = await connected(server);
    server.store(conv, 4, 5);
    const firstSync = server.hold("sync", 0);
    server.push(conv, 5);
    await server.changes.until("the sync of the first gap", () => server.syncCalls.length === 1);
    server.store(conv, 6, 7, 8, 9, 10, 11);
    for (const seq of [7, 9, 11]) server.push(conv, seq);
    server.pushBarrier(conv);
    await server.changes.until("the client handled the pushes", () => app.typing() === 1);
    firstSync.open();
    await server.changes.until(() => `4 to 11 reaching the app (it has ${app.got().join()}; ${server.syncCalls.length} syncs)`, () => app.got().length === 8);
    expect(app.got()).to.deep.equal(seqs(4, 5, 6, 7, 8, 9, 10, 11));
    expect(server.syncCalls).to.have.length(2);
  });

  it("releases a held message whose missing seq never existed once a sync reaches the conversation's end", async () => {
    const server = new FakeImServer();
    const app = await connected(server);
    // The app opens the conversation: its sync reads the store before 5 is stored (4 is never stored: the
    // server skipped it), and ends at max_seq 3.
    const firstSync = server.hold("sync", 0);
    const opened = app.client.sync(conv);
    await server.changes.until("the app's sync", () => server.syncCalls.length === 1);
    server.store(conv, 5);
    server.push(conv, 5);
    server.pushBarrier(conv);
    await server.changes.until("the client handled the push of 5", () => app.typing() === 1);
    firstSync.open();
    await opened;
    await server.changes.until(() => `5 reaching the app (it has ${app.got().join()})`, () => app.got().length === 1);
    expect(app.got()).to.deep.equal(seqs(5));
  });

  it("hands out a held message the sync answer skipped, in order before the later ones it returned", async () => {
    const server = new FakeImServer();
    const app = await connected(server);
    // 5 was pushed but the sync does not return it (it is not readable any more); 6 is.
    const [five] = server.store(conv, 5, 6);
    server.hidden.add(five!.msgId);
    server.push(conv, 5);
    await server.changes.until(() => `5 and 6 reaching the app (it has ${app.got().join()})`, () => app.got().length === 2);
    expect(app.got()).to.deep.equal(seqs(5, 6));
  });

  it("never sends a refresh token twice: a refresh asked for while one is in flight waits for it", async () => {
    const server = new FakeImServer();
    const app = clientOf(server, 30_000); // at-0 has 30 s left, so connecting refreshes it first
    clients.push(app.client);
    const first = server.hold("refresh", 0);
    const connecting = app.client.connect();
    await server.changes.until("the refresh before connecting", () => server.refreshCalls.length === 1);
    const now = app.client.refreshNow();
    first.open();
    await Promise.all([connecting, now]);
    expect(server.refreshCalls).to.deep.equal(["rt-0", "rt-1"]);
  });

  it("refreshes an expired access token before syncing, once for all the syncs that need it", async () => {
    const server = new FakeImServer();
    const app = await connected(server);
    server.store(other, 1, 2, 3);
    app.client.lastSeq.set(other, 3n);
    // The stream outlived its access token (15 minutes): at-0 expired a second ago and is refused.
    app.client.restore(server.session(-1000));
    server.expire("at-0");
    const refresh = server.hold("refresh", 0);
    for (const c of [conv, other]) {
      server.store(c, 4, 5);
      server.push(c, 5);
    }
    server.pushBarrier(conv);
    await server.changes.until("the client handled both pushes", () => app.typing() === 1);
    refresh.open();
    await server.changes.until(() => `4 and 5 of both conversations (${app.got().join()} and ${app.got(other).join()})`, () => app.got().length + app.got(other).length === 4);
    expect(server.refreshCalls).to.deep.equal(["rt-0"]);
    expect(server.syncCalls.map((c) => c.authorization)).to.deep.equal(["Bearer at-1", "Bearer at-1"]);
  });

  it("close() then connect(): the earlier stream's kick and end leave the new stream and its reconnects alone", async () => {
    const server = new FakeImServer();
    const app = await connected(server);
    const before = server.stream();
    app.client.close();
    await server.changes.until("the first stream's request side ending", () => before.requestsEnded);
    // The app connects again before the server has ended the first stream; opening the second replaces the
    // first, which is kicked as the gateway does (no reconnect), and read to its end by the client.
    server.onOpen = async (opened) => {
      if (opened.id !== 2) return;
      before.push({ body: { case: "kick", value: { reason: Kick_Reason.REPLACED, reconnect: false, message: "this device connected again elsewhere" } } });
      before.end();
      await server.changes.until("the client reading the first stream to its end", () => before.finished);
    };
    await app.client.connect();
    const sent = app.client.sendText({ conversationId: conv }, "still here").catch(() => undefined);
    await server.changes.until("the send on the second stream", () => server.stream().received.some((f) => f.body.case === "send"));
    expect(server.stream().id).to.equal(2);
    // The second stream is drained: the client reconnects, as the kick of the first did not stop it.
    server.stream().push({ body: { case: "kick", value: { reason: Kick_Reason.DRAINING, reconnect: true, message: "draining" } } });
    server.stream().end();
    await server.changes.until("a third stream", () => server.streams.length === 3);
    app.client.close();
    await sent;
  });

  it("retries a resume that failed under load, so what arrived while away still reaches the app", async () => {
    const server = new FakeImServer();
    server.store(conv, 1, 2, 3, 4, 5); // 4 and 5 came while the device was away, and its inbox had nothing
    server.failLists = 1;
    const app = clientOf(server);
    clients.push(app.client);
    app.client.lastSeq.set(conv, 3n);
    await app.client.connect();
    await server.changes.until(() => `4 and 5 reaching the app (it has ${app.got().join()})`, () => app.got().length === 2);
    expect(app.got()).to.deep.equal(seqs(4, 5));
    expect(server.listCalls).to.have.length(2);
  });

  it("hands out the offline inbox replayed after the resume positioned a new conversation at its end, in order, once", async () => {
    const server = new FakeImServer();
    server.store(conv, 1, 2, 3); // 2 and 3 wait in this user's offline inbox
    const app = clientOf(server);
    clients.push(app.client);
    await app.client.connect();
    await server.changes.until("the resume after the welcome", () => server.listCalls.length === 1);
    await app.client.resume(); // the resume positioned the conversation at max_seq 3 (no history)
    expect(app.client.lastSeq.get(conv)).to.equal(3n);
    // The gateway replays the inbox after the welcome, so its frames may come after the resume read the list.
    server.push(conv, 2);
    server.push(conv, 3);
    server.push(conv, 3);
    server.store(conv, 4);
    server.push(conv, 4);
    await server.changes.until(() => `2 to 4 reaching the app (it has ${app.got().join()})`, () => app.got().length === 3);
    expect(app.got()).to.deep.equal(seqs(2, 3, 4));
  });

  it("runs a resume asked for while one is in flight again after it", async () => {
    const server = new FakeImServer();
    server.store(conv, 1, 2, 3);
    const app = clientOf(server);
    clients.push(app.client);
    app.client.lastSeq.set(conv, 3n);
    const firstList = server.hold("list", 0);
    await app.client.connect();
    await server.changes.until("the resume after the welcome", () => server.listCalls.length === 1);
    server.store(conv, 4, 5); // after the resume in flight read max_seq 3
    const again = app.client.resume();
    firstList.open();
    await again;
    expect(app.got()).to.deep.equal(seqs(4, 5));
    expect(server.listCalls).to.have.length(2);
  });
});
