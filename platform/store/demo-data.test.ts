import { scryptSync } from "node:crypto";
import { expect } from "chai";
import type { RowDataPacket } from "mysql2/promise";
import { scratchDatabase } from "../../test/mysql-db.js";
import { demo, seedDemo } from "./demo-data.js";
import { MemoryTables } from "./memory-tables.js";

describe("demo data", () => {
  it("hashes the documented demo password", () => {
    const [, params, salt, hash] = demo.passwordHash.split("$");
    expect(params).to.equal("ln=15,r=8,p=1");
    const derived = scryptSync(demo.password, Buffer.from(salt!, "base64url"), 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
    expect(derived.toString("base64url")).to.equal(hash);
  });

  it("is the same in memory as migrations/V002 loads into MariaDB @infra", async function () {
    this.timeout(30_000);
    const scratch = await scratchDatabase(["demo"]);
    try {
      const apps = await scratch.db.query<RowDataPacket>("SELECT id, name, api_key, api_secret_hash FROM app ORDER BY id");
      const users = await scratch.db.query<RowDataPacket>(
        "SELECT app_id, id, username, email, display_name, avatar_url, password_hash FROM users ORDER BY id",
      );
      const tables = new MemoryTables();
      seedDemo(tables);
      expect(apps.map((r) => ({ ...r }))).to.deep.equal(
        [...tables.apps.values()].map((a) => ({ id: a.id, name: a.name, api_key: a.apiKey, api_secret_hash: a.apiSecretHash })),
      );
      expect(users.map((r) => ({ ...r }))).to.deep.equal(
        [...tables.users.values()]
          .sort((a, b) => (a.id < b.id ? -1 : 1))
          .map((u) => ({
            app_id: u.appId,
            id: u.id,
            username: u.username,
            email: u.email,
            display_name: u.displayName,
            avatar_url: u.avatarUrl,
            password_hash: u.passwordHash,
          })),
      );
      const messages = await scratch.db.query<RowDataPacket>(
        "SELECT conversation_id, seq, msg_id, client_msg_id, sender_id, HEX(body) AS body, search_text FROM messages ORDER BY conversation_id, seq",
      );
      expect(messages.map((r) => ({ ...r }))).to.deep.equal(
        [...tables.messages.values()]
          .flatMap((rows) => [...rows.values()])
          .sort((a, b) => (a.conversationId === b.conversationId ? a.seq - b.seq : a.conversationId < b.conversationId ? -1 : 1))
          .map((m) => ({
            conversation_id: m.conversationId,
            seq: m.seq,
            msg_id: m.msgId,
            client_msg_id: m.clientMsgId,
            sender_id: m.senderId,
            body: Buffer.from(m.body).toString("hex").toUpperCase(),
            search_text: m.searchText,
          })),
      );
      const members = await scratch.db.query<RowDataPacket>("SELECT conversation_id, user_id, last_read_seq FROM conversation_members ORDER BY conversation_id, user_id");
      expect(members.map((r) => ({ ...r }))).to.deep.equal(
        [...tables.members.values()]
          .sort((a, b) => (a.conversationId === b.conversationId ? (a.userId < b.userId ? -1 : 1) : a.conversationId < b.conversationId ? -1 : 1))
          .map((m) => ({ conversation_id: m.conversationId, user_id: m.userId, last_read_seq: m.lastReadSeq })),
      );
      const groups = await scratch.db.query<RowDataPacket>("SELECT app_id, id, name, owner_id, member_count FROM chat_groups ORDER BY id");
      expect(groups.map((r) => ({ ...r }))).to.deep.equal(
        [...tables.groups.values()].map((g) => ({ app_id: g.appId, id: g.id, name: g.name, owner_id: g.ownerId, member_count: g.memberCount })),
      );
      const groupMembers = await scratch.db.query<RowDataPacket>("SELECT group_id, user_id, role FROM group_members ORDER BY group_id, user_id");
      expect(groupMembers.map((r) => ({ ...r }))).to.deep.equal(
        [...tables.groupMembers.values()]
          .sort((a, b) => (a.userId < b.userId ? -1 : 1))
          .map((m) => ({ group_id: m.groupId, user_id: m.userId, role: m.role })),
      );
    } finally {
      await scratch.drop();
    }
  });
});
