import { MemoryTables } from "../../platform/store/memory-tables.js";
import { scratchDatabase } from "../../test/mysql-db.js";
import { MemoryProfileStore, SqlProfileStore } from "./profile-store.js";
import { profileStoreContract } from "./profile-store.contract.js";

describe("user profile store: memory", () => {
  profileStoreContract(async () => {
    const tables = new MemoryTables();
    return {
      store: new MemoryProfileStore(tables),
      seed: async (users) => {
        const now = new Date();
        for (const u of users) {
          tables.apps.set(u.appId, { id: u.appId, name: "app", apiKey: `key-${u.appId}`, apiSecretHash: "h", createdAt: now });
          tables.users.set(u.id, { ...u, email: u.email ?? null, avatarUrl: "", passwordHash: "h", createdAt: now, updatedAt: now });
        }
      },
      close: async () => {},
    };
  });
});

describe("user profile store: MariaDB @infra", () => {
  profileStoreContract(async () => {
    const scratch = await scratchDatabase();
    return {
      store: new SqlProfileStore(scratch.db),
      seed: async (users) => {
        for (const appId of new Set(users.map((u) => u.appId))) {
          await scratch.db.execute("INSERT INTO app (id, name, api_key, api_secret_hash) VALUES (?, 'app', ?, 'h')", [appId, `key-${appId}`]);
        }
        for (const u of users) {
          await scratch.db.execute(
            "INSERT INTO users (app_id, id, username, email, display_name, password_hash) VALUES (?, ?, ?, ?, ?, 'h')",
            [u.appId, u.id, u.username, u.email ?? null, u.displayName],
          );
        }
      },
      close: () => scratch.drop(),
    };
  });
});
