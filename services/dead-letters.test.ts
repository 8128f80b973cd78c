// Records no consumer can process, on each topic the services consume (all-in-one, the runtime's bus): each goes to
// its topic's dead letters, is counted, and the records after it are still delivered.
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { expect } from "chai";
import { ConversationType, GroupMessageRecordSchema, MessageSchema, OfflineDeliverySchema, type Message } from "../gen/im/msg/v1/msg_pb.js";
import { ImClient } from "../client/im-client.js";
import type { BusRecord, Subscription } from "../platform/bus/bus.js";
import { deadLetterHeaders } from "../platform/bus/dead-letters.js";
import { demo } from "../platform/store/demo-data.js";
import { eventually } from "../test/eventually.js";
import { allModules } from "./modules.js";
import { startProcess, type RunningProcess } from "./runtime.js";

const [alice, bob] = demo.users;
const textOf = (m: Message) => (m.content?.kind.case === "text" ? m.content.kind.value.text : undefined);
/** Tag 0x37 (field 6, wire type 7): what the fan-out worker of the report choked on. */
const corrupt = new Uint8Array([0x37, 0x00]);

describe("dead letters of the services' consumers, all-in-one", function () {
  this.timeout(30_000);
  let running: RunningProcess;
  const clients: ImClient[] = [];
  const subscriptions: Subscription[] = [];
  const dead: Record<string, BusRecord[]> = {};

  beforeEach(async () => {
    running = await startProcess({ mode: "all-in-one", name: "all-in-one", modules: allModules, port: 0, env: { IM_LOG_LEVEL: "silent" } });
    for (const topic of ["group_msg", "offline_msg", "membership_change"]) {
      dead[topic] = [];
      subscriptions.push(await running.runtime.bus.subscribe({ groupId: "test-dlq", topic: `${topic}.dlq`, handler: async (rs) => void dead[topic]!.push(...rs) }));
    }
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await Promise.all(subscriptions.splice(0).map((s) => s.stop()));
    await running?.stop();
  });

  const signIn = async (username: string, inbox: Message[] = []) => {
    const c = new ImClient({ baseUrl: running.process.server.url, apiKey: demo.apiKey, deviceId: randomUUID() }, { message: (m) => inbox.push(m) });
    clients.push(c);
    await c.login(username, demo.password);
    await c.connect();
    return { c, inbox };
  };
  const counted = async (topic: string) =>
    (await running.runtime.metrics.getSingleMetric("bus_dead_letters_total")!.get()).values.find((v) => v.labels.topic === topic)?.value ?? 0;

  it("group_msg: a corrupt record and one without a message go to group_msg.dlq, and the group's messages around them are delivered", async () => {
    const { inbox } = await signIn("bob");
    const { c: a } = await signIn("alice");
    await a.sendText({ conversationId: demo.groupConversationId }, "before");
    const bus = running.runtime.bus;
    await bus.publish("group_msg", [{ key: demo.groupId, value: corrupt }]);
    await bus.publish("group_msg", [{ key: demo.groupId, value: toBinary(GroupMessageRecordSchema, create(GroupMessageRecordSchema, { appId: demo.appId, groupId: demo.groupId })) }]);
    await a.sendText({ conversationId: demo.groupConversationId }, "after");
    await eventually("bob has both group messages", () => inbox.filter((m) => m.conversationId === demo.groupConversationId).length === 2);
    expect(inbox.map(textOf)).to.deep.equal(["before", "after"]);
    await eventually("both dead letters", () => dead["group_msg"]!.length === 2);
    const errors = dead["group_msg"]!.map((r) => r.headers?.[deadLetterHeaders.error]);
    expect(errors[0]).to.match(/illegal tag: field no 6 wire type 7/);
    expect(errors[1]).to.equal("group_msg record without a message");
    expect(dead["group_msg"]!.map((r) => r.headers?.[deadLetterHeaders.group])).to.deep.equal(["fanout", "fanout"]);
    expect(await counted("group_msg")).to.equal(2);
  });

  it("offline_msg: bad records go to offline_msg.dlq, and the inbox entry after them reaches bob", async () => {
    const inbox: Message[] = [];
    await signIn("bob", inbox);
    const late = create(MessageSchema, {
      conversationId: demo.directConversationId,
      seq: 100n,
      msgId: randomUUID(),
      clientMsgId: randomUUID(),
      senderId: alice!.id,
      senderDeviceId: "phone",
      content: { kind: { case: "text", value: { text: "after the bad records" } } },
      createdAt: timestampNow(),
      conversationType: ConversationType.SINGLE,
    });
    await running.runtime.bus.publish("offline_msg", [
      { key: bob!.id, value: corrupt },
      { key: bob!.id, value: toBinary(OfflineDeliverySchema, create(OfflineDeliverySchema, { appId: demo.appId, userId: bob!.id })) },
      { key: bob!.id, value: toBinary(OfflineDeliverySchema, create(OfflineDeliverySchema, { appId: demo.appId, userId: bob!.id, message: late })) },
    ]);
    await eventually("the entry after the bad records", () => inbox.some((m) => m.msgId === late.msgId));
    await eventually("both dead letters", () => dead["offline_msg"]!.length === 2);
    const errors = dead["offline_msg"]!.map((r) => r.headers?.[deadLetterHeaders.error]);
    expect(errors[0]).to.match(/^not a valid im\.msg\.v1\.OfflineDelivery: /);
    expect(errors[1]).to.equal("offline_msg record without a message");
    expect(await counted("offline_msg")).to.equal(2);
  });

  it("membership_change: a corrupt record goes to membership_change.dlq", async () => {
    await running.runtime.bus.publish("membership_change", [{ key: demo.groupId, value: corrupt }]);
    await eventually("the dead letter", () => dead["membership_change"]!.length === 1);
    expect(dead["membership_change"]![0]!.headers?.[deadLetterHeaders.sourceTopic]).to.equal("membership_change");
    expect(await counted("membership_change")).to.equal(1);
  });
});
