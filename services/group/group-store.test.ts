import { MemoryTables } from "../../platform/store/memory-tables.js";
import { seedDemo } from "../../platform/store/demo-data.js";
import { scratchDatabase } from "../../test/mysql-db.js";
import { groupStoreContract } from "./group-store.contract.js";
import { MemoryGroupStore, SqlGroupStore } from "./group-store.js";

describe("group store: memory", () => {
  groupStoreContract(async () => {
    const tables = new MemoryTables();
    seedDemo(tables);
    return { store: new MemoryGroupStore(tables), close: async () => {} };
  });
});

describe("group store: MariaDB @infra", function () {
  this.timeout(30_000);
  groupStoreContract(async () => {
    const scratch = await scratchDatabase(["demo"]);
    return { store: new SqlGroupStore(scratch.db), close: () => scratch.drop() };
  });
});
