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
} as const;

/** Loads the demo context into the in-memory tables (the tables it has so far: apps and users). */
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
}
