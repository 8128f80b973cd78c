import { MemoryTables } from "../../platform/store/memory-tables.js";
import { scratchDatabase } from "../../test/mysql-db.js";
import { MemoryAccountStore, SqlAccountStore } from "./account-store.js";
import { accountStoreContract } from "./account-store.contract.js";

describe("auth account store: memory", () => {
  accountStoreContract(async () => ({ store: new MemoryAccountStore(new MemoryTables()), close: async () => {} }));
});

describe("auth account store: MariaDB @infra", () => {
  accountStoreContract(async () => {
    const scratch = await scratchDatabase();
    return { store: new SqlAccountStore(scratch.db), close: () => scratch.drop() };
  });
});
