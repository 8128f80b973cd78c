import { seedDemo } from "../../platform/store/demo-data.js";
import { MemoryTables } from "../../platform/store/memory-tables.js";
import { scratchDatabase } from "../../test/mysql-db.js";
import { messageStoreContract } from "./message-store.contract.js";
import { MemoryMessageStore } from "./memory-message-store.js";
import { SqlMessageStore } from "./sql-message-store.js";

describe("msg store: memory", () => {
  messageStoreContract(async () => {
    const tables = new MemoryTables();
    seedDemo(tables);
    return { store: new MemoryMessageStore(tables), close: async () => {} };
  });
});

describe("msg store: MariaDB @infra", () => {
  messageStoreContract(async () => {
    const scratch = await scratchDatabase(["demo"]);
    return { store: new SqlMessageStore(scratch.db), close: () => scratch.drop() };
  });
});
