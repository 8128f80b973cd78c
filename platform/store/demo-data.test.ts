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
    } finally {
      await scratch.drop();
    }
  });
});
