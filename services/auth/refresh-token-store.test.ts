import { MemoryTables } from "../../platform/store/memory-tables.js";
import { scratchDatabase } from "../../test/mysql-db.js";
import { MemoryAccountStore, SqlAccountStore } from "./account-store.js";
import { MemoryRefreshTokenStore, SqlRefreshTokenStore } from "./refresh-token-store.js";
import { refreshTokenStoreContract } from "./refresh-token-store.contract.js";

describe("auth refresh token store: memory", () => {
  refreshTokenStoreContract(async () => {
    const tables = new MemoryTables();
    return { tokens: new MemoryRefreshTokenStore(tables), accounts: new MemoryAccountStore(tables), close: async () => {} };
  });
});

describe("auth refresh token store: MariaDB @infra", () => {
  refreshTokenStoreContract(async () => {
    const scratch = await scratchDatabase();
    return { tokens: new SqlRefreshTokenStore(scratch.db), accounts: new SqlAccountStore(scratch.db), close: () => scratch.drop() };
  });
});
