// The per-connection order of message frames: seq order per conversation, once each, across the inbox replay, live
// pushes, gaps filled from the store and gaps the store cannot fill.
import { create } from "@bufbuild/protobuf";
import { expect } from "chai";
import { MessageSchema, type Message } from "../../gen/im/msg/v1/msg_pb.js";
import { eventually } from "../../test/eventually.js";
import { ConversationOrder } from "./conversation-order.js";

const m = (seq: number, conversationId = "s:a:b") => create(MessageSchema, { conversationId, seq: BigInt(seq), msgId: `${conversationId}/${seq}` });

function setup(store: Message[] = [], gapWaitMs = 50) {
  const sent: string[] = [];
  const fetches: bigint[] = [];
  const order = new ConversationOrder((x) => sent.push(`${x.conversationId === "s:a:b" ? "" : x.conversationId + "#"}${x.seq}`) > 0, {
    fetchAfter: async (conversationId, after) => {
      fetches.push(after);
      return store.filter((x) => x.conversationId === conversationId && x.seq > after).slice(0, 100);
    },
    gapWaitMs,
  });
  return { order, sent, fetches };
}

describe("conversation order (raw stream guarantee)", () => {
  it("sends in order once, dropping repeats", () => {
    const { order, sent } = setup();
    for (const s of [3, 4, 4, 5, 3]) order.offer(m(s));
    expect(sent).to.deep.equal(["3", "4", "5"]);
  });

  it("replays the inbox before live pushes that came meanwhile, and drops the live copies of inbox entries", () => {
    const { order, sent } = setup();
    order.beginReplay();
    order.offer(m(6)); // the offline writer pushed 6 before the inbox was read
    order.offer(m(9, "g:x")); // another conversation, live
    for (const s of [2, 3, 4, 5, 6]) order.offer(m(s), { replay: true });
    expect(sent).to.deep.equal(["2", "3", "4", "5", "6"]);
    order.endReplay();
    expect(sent).to.deep.equal(["2", "3", "4", "5", "6", "g:x#9"]);
  });

  it("holds a message behind a gap until a push fills it, then sends both in order", async () => {
    const { order, sent } = setup([], 10_000);
    order.offer(m(4));
    order.offer(m(6));
    expect(sent).to.deep.equal(["4"]);
    order.offer(m(5));
    expect(sent).to.deep.equal(["4", "5", "6"]);
    expect(order.held).to.equal(0);
  });

  it("fills a gap from the store when no push brings it", async () => {
    const { order, sent, fetches } = setup([m(5), m(6), m(7)]);
    order.offer(m(4));
    order.offer(m(7));
    await eventually("filled", () => sent.length === 4);
    expect(sent).to.deep.equal(["4", "5", "6", "7"]);
    expect(fetches).to.deep.equal([4n]);
    order.offer(m(6));
    expect(sent, "the pushed copy of a filled seq is a repeat").to.have.length(4);
  });

  it("gives up on a seq the store never has after the wait, sending what was held in order", async () => {
    const { order, sent } = setup([m(6), m(8)]);
    order.offer(m(4));
    order.offer(m(8));
    order.offer(m(7)); // 5 was issued but never stored; 6 is stored but its push is late
    await eventually("released", () => sent.length === 4);
    expect(sent).to.deep.equal(["4", "6", "7", "8"]);
  });

  it("passes over seqs the device knows from its own send results", () => {
    const { order, sent } = setup();
    order.offer(m(4));
    order.known("s:a:b", 5n);
    order.offer(m(6));
    order.offer(m(5));
    expect(sent).to.deep.equal(["4", "6"]);
  });

  it("hands back what it held when the stream ends, and sends nothing after", () => {
    const { order, sent } = setup([], 10_000);
    order.offer(m(1));
    order.offer(m(3));
    order.offer(m(4));
    expect(order.stop().map((x) => x.seq)).to.deep.equal([3n, 4n]);
    order.offer(m(2));
    expect(sent).to.deep.equal(["1"]);
  });
});
