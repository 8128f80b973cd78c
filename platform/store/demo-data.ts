// The demo context in memory (for `npm start`): the same rows migrations/V002__demo_data.sql loads into MySQL.
// demo-data.test.ts loads V002 into MariaDB and compares, so the two never drift apart.
import type { MemoryTables } from "./memory-tables.js";

/** Ids and credentials of the demo data, for the README, the CLI and tests. */
export const demo = {
  appId: "00000000-0000-0000-0000-000000000001",
  appName: "Demo App",
  apiKey: "demo-api-key",
  apiSecretHash: "sha256$81ba29a3c94c9cf43ff329391ab198559a0418b4a17436642403a88478987654",
  password: "demo-password",
  passwordHash: "scrypt$ln=15,r=8,p=1$q6kOTrUBf5xoC-wGaRrNSA$HkClRo2P9_Z0SFM9h8njMXsLNhmHrn6OWR1c3Pa8c-Y",
  users: [
    { id: "a11ce000-0000-4000-8000-000000000001", username: "alice", displayName: "Alice" },
    { id: "b0b00000-0000-4000-8000-000000000002", username: "bob", displayName: "Bob" },
    { id: "c4a51e00-0000-4000-8000-000000000003", username: "charlie", displayName: "Charlie" },
    { id: "ca201000-0000-4000-8000-000000000004", username: "carol", displayName: "Carol" },
  ],
  groupId: "6a0c0000-0000-4000-8000-000000000010",
  /** Alice and Bob's 1:1 conversation: "s:" and the two user ids in order. */
  directConversationId: "s:a11ce000-0000-4000-8000-000000000001:b0b00000-0000-4000-8000-000000000002",
  groupConversationId: "g:6a0c0000-0000-4000-8000-000000000010",
} as const;

const [alice, bob, charlie] = demo.users;

/** The demo messages as V002 has them; bodies are protobuf im.msg.v1.MessageContent{text: {text}}. */
const demoMessages: { conversationId: string; seq: number; msgId: string; senderId: string; body: string; text: string }[] = [
  { conversationId: demo.directConversationId, seq: 1, msgId: "d0000000-0000-4000-8000-000000000001", senderId: alice.id, body: "0a1d0a1b486920426f62212057656c636f6d6520746f20696d2d6d6573682e", text: "Hi Bob! Welcome to im-mesh." },
  { conversationId: demo.directConversationId, seq: 2, msgId: "d0000000-0000-4000-8000-000000000002", senderId: bob.id, body: "0a160a1448657920416c6963652c20697420776f726b7321", text: "Hey Alice, it works!" },
  { conversationId: demo.directConversationId, seq: 3, msgId: "d0000000-0000-4000-8000-000000000003", senderId: alice.id, body: "0a2a0a284c6574277320706c616e20746865206c61756e636820696e20746865207465616d2067726f75702e", text: "Let's plan the launch in the team group." },
  { conversationId: demo.groupConversationId, seq: 1, msgId: "d0000000-0000-4000-8000-000000000004", senderId: alice.id, body: "0a270a2557656c636f6d6520746f20746865204c61756e6368207465616d2c2065766572796f6e6521", text: "Welcome to the Launch team, everyone!" },
  { conversationId: demo.groupConversationId, seq: 2, msgId: "d0000000-0000-4000-8000-000000000005", senderId: bob.id, body: "0a200a1e5468616e6b7320416c6963652120476c616420746f20626520686572652e", text: "Thanks Alice! Glad to be here." },
  { conversationId: demo.groupConversationId, seq: 3, msgId: "d0000000-0000-4000-8000-000000000006", senderId: charlie.id, body: "0a210a1f49276c6c2070726570617265207468652072656c65617365206e6f7465732e", text: "I'll prepare the release notes." },
];

/** Loads the demo context into the in-memory tables (those the in-memory repositories have so far). */
export function seedDemo(tables: MemoryTables): void {
  const createdAt = new Date();
  tables.apps.set(demo.appId, { id: demo.appId, name: demo.appName, apiKey: demo.apiKey, apiSecretHash: demo.apiSecretHash, createdAt });
  for (const u of demo.users) {
    tables.users.set(u.id, {
      appId: demo.appId,
      id: u.id,
      username: u.username,
      email: `${u.username}@example.com`,
      displayName: u.displayName,
      avatarUrl: "",
      passwordHash: demo.passwordHash,
      createdAt,
      updatedAt: createdAt,
    });
  }
  const conversations = [
    { id: demo.directConversationId, type: 1, groupId: null, members: [[alice.id, 3], [bob.id, 2]] as const },
    { id: demo.groupConversationId, type: 2, groupId: demo.groupId, members: [[alice.id, 2], [bob.id, 3], [charlie.id, 3]] as const },
  ];
  for (const c of conversations) {
    tables.conversations.set(c.id, { appId: demo.appId, id: c.id, type: c.type, groupId: c.groupId, maxSeq: 3, membersSeq: 0, createdAt, updatedAt: createdAt });
    for (const [userId, lastReadSeq] of c.members) {
      tables.members.set(`${c.id} ${userId}`, {
        appId: demo.appId,
        conversationId: c.id,
        userId,
        lastReadSeq,
        joinedSeq: 0,
        leftSeq: null,
        muted: false,
        starred: false,
        updatedAt: createdAt,
      });
    }
  }
  tables.groups.set(demo.groupId, { appId: demo.appId, id: demo.groupId, name: "Launch team", avatarUrl: "", ownerId: alice.id, memberCount: 3, version: 1, createdAt, dissolvedAt: null });
  for (const [userId, role] of [[alice.id, 1], [bob.id, 2], [charlie.id, 3]] as const) {
    tables.groupMembers.set(`${demo.groupId} ${userId}`, { appId: demo.appId, groupId: demo.groupId, userId, role, joinedAt: createdAt, joinedSeq: 0 });
  }
  for (const m of demoMessages) {
    let rows = tables.messages.get(m.conversationId);
    if (rows === undefined) tables.messages.set(m.conversationId, (rows = new Map()));
    const row = {
      appId: demo.appId,
      conversationId: m.conversationId,
      seq: m.seq,
      msgId: m.msgId,
      clientMsgId: `demo-${m.msgId.slice(-1)}`,
      senderId: m.senderId,
      senderDeviceId: "demo",
      contentType: 1,
      body: Buffer.from(m.body, "hex"),
      searchText: m.text,
      createdAt,
      editedAt: null,
      recalled: false,
    };
    rows.set(m.seq, row);
    tables.messagesByClientId.set(`${m.conversationId} ${m.senderId} ${row.clientMsgId}`, row);
  }
}
