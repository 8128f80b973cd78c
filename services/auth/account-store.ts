import type { RowDataPacket } from "mysql2/promise";
import { ConflictError } from "../../platform/errors.js";
import { collationKey, type AppRow, type MemoryTables, type UserRow } from "../../platform/store/memory-tables.js";
import { isDuplicateKey, type SqlDatabase } from "../../platform/store/sql.js";

/** A tenant as auth sees it: the API key identifies it, the secret is kept only as a hash. */
export type App = AppRow;

/** An account's sign-in data (the users table's credential side; profiles belong to the user service). */
export interface Account {
  readonly appId: string;
  readonly id: string;
  readonly username: string;
  readonly email: string | null;
  readonly displayName: string;
  readonly passwordHash: string;
  readonly createdAt: Date;
}

/** What a new account is made of; the store sets the times. */
export type NewAccount = Omit<Account, "createdAt">;

/** Auth's storage of apps and accounts; every account lookup is scoped to one app. */
export interface AccountStore {
  /** Adds an app; ConflictError("api_key") when the key is taken. */
  createApp(app: Omit<App, "createdAt">): Promise<App>;
  findApp(id: string): Promise<App | undefined>;
  findAppByApiKey(apiKey: string): Promise<App | undefined>;
  /** Replaces an app's secret hash; false when there is no such app. */
  setAppSecretHash(id: string, hash: string): Promise<boolean>;
  /** Adds an account; ConflictError("username" | "email") when either is taken in the app (case-insensitively). */
  createAccount(account: NewAccount): Promise<Account>;
  findAccount(appId: string, id: string): Promise<Account | undefined>;
  findAccountByUsername(appId: string, username: string): Promise<Account | undefined>;
  findAccountByEmail(appId: string, email: string): Promise<Account | undefined>;
  /** Replaces an account's password hash (after a rehash with stronger parameters); false when absent. */
  setPasswordHash(appId: string, id: string, hash: string): Promise<boolean>;
}

function account(row: UserRow): Account {
  const { appId, id, username, email, displayName, passwordHash, createdAt } = row;
  return { appId, id, username, email, displayName, passwordHash, createdAt };
}

/** The in-memory AccountStore over the shared tables. */
export class MemoryAccountStore implements AccountStore {
  constructor(private readonly tables: MemoryTables) {}

  async createApp(app: Omit<App, "createdAt">): Promise<App> {
    for (const existing of this.tables.apps.values()) {
      if (existing.apiKey === app.apiKey) throw new ConflictError("api_key", "an app with this API key exists");
    }
    if (this.tables.apps.has(app.id)) throw new ConflictError("id", `app ${app.id} exists`);
    const row = { ...app, createdAt: new Date() };
    this.tables.apps.set(app.id, row);
    return { ...row };
  }

  async findApp(id: string): Promise<App | undefined> {
    const row = this.tables.apps.get(id);
    return row && { ...row };
  }

  async findAppByApiKey(apiKey: string): Promise<App | undefined> {
    for (const row of this.tables.apps.values()) if (row.apiKey === apiKey) return { ...row };
    return undefined;
  }

  async setAppSecretHash(id: string, hash: string): Promise<boolean> {
    const row = this.tables.apps.get(id);
    if (row === undefined) return false;
    row.apiSecretHash = hash;
    return true;
  }

  async createAccount(next: NewAccount): Promise<Account> {
    if (!this.tables.apps.has(next.appId)) throw new Error(`app ${next.appId} does not exist`);
    for (const row of this.tables.users.values()) {
      if (row.appId !== next.appId) continue;
      if (collationKey(row.username) === collationKey(next.username)) throw new ConflictError("username", "this username is taken");
      if (next.email !== null && row.email !== null && collationKey(row.email) === collationKey(next.email)) {
        throw new ConflictError("email", "this email is already registered");
      }
    }
    if (this.tables.users.has(next.id)) throw new ConflictError("id", `user ${next.id} exists`);
    const now = new Date();
    const row: UserRow = { ...next, avatarUrl: "", createdAt: now, updatedAt: now };
    this.tables.users.set(next.id, row);
    return account(row);
  }

  async findAccount(appId: string, id: string): Promise<Account | undefined> {
    const row = this.tables.users.get(id);
    return row?.appId === appId ? account(row) : undefined;
  }

  async findAccountByUsername(appId: string, username: string): Promise<Account | undefined> {
    const key = collationKey(username);
    for (const row of this.tables.users.values()) if (row.appId === appId && collationKey(row.username) === key) return account(row);
    return undefined;
  }

  async findAccountByEmail(appId: string, email: string): Promise<Account | undefined> {
    const key = collationKey(email);
    for (const row of this.tables.users.values()) {
      if (row.appId === appId && row.email !== null && collationKey(row.email) === key) return account(row);
    }
    return undefined;
  }

  async setPasswordHash(appId: string, id: string, hash: string): Promise<boolean> {
    const row = this.tables.users.get(id);
    if (row?.appId !== appId) return false;
    row.passwordHash = hash;
    row.updatedAt = new Date();
    return true;
  }
}

interface AppSqlRow extends RowDataPacket {
  id: string;
  name: string;
  api_key: string;
  api_secret_hash: string;
  created_at: Date;
}

interface AccountSqlRow extends RowDataPacket {
  app_id: string;
  id: string;
  username: string;
  email: string | null;
  display_name: string;
  password_hash: string;
  created_at: Date;
}

const appColumns = "id, name, api_key, api_secret_hash, created_at";
const accountColumns = "app_id, id, username, email, display_name, password_hash, created_at";

function appFromRow(r: AppSqlRow): App {
  return { id: r.id, name: r.name, apiKey: r.api_key, apiSecretHash: r.api_secret_hash, createdAt: r.created_at };
}

function accountFromRow(r: AccountSqlRow): Account {
  return {
    appId: r.app_id,
    id: r.id,
    username: r.username,
    email: r.email,
    displayName: r.display_name,
    passwordHash: r.password_hash,
    createdAt: r.created_at,
  };
}

/** Which unique key a duplicate-key error names, as the field the caller should fix. */
function conflictField(err: unknown): string {
  const message = (err as Error).message;
  if (message.includes("uk_users_app_username")) return "username";
  if (message.includes("uk_users_app_email")) return "email";
  if (message.includes("uk_app_api_key")) return "api_key";
  return "id";
}

const conflictMessages: Record<string, string> = {
  username: "this username is taken",
  email: "this email is already registered",
  api_key: "an app with this API key exists",
  id: "a record with this id exists",
};

/** The MySQL AccountStore over the `app` and `users` tables. */
export class SqlAccountStore implements AccountStore {
  constructor(private readonly db: SqlDatabase) {}

  private async insert(sql: string, params: (string | null)[]): Promise<void> {
    try {
      await this.db.execute(sql, params);
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      const field = conflictField(err);
      throw new ConflictError(field, conflictMessages[field]!);
    }
  }

  async createApp(app: Omit<App, "createdAt">): Promise<App> {
    await this.insert("INSERT INTO app (id, name, api_key, api_secret_hash) VALUES (?, ?, ?, ?)", [app.id, app.name, app.apiKey, app.apiSecretHash]);
    return (await this.findApp(app.id))!;
  }

  async findApp(id: string): Promise<App | undefined> {
    const [row] = await this.db.query<AppSqlRow>(`SELECT ${appColumns} FROM app WHERE id = ?`, [id]);
    return row && appFromRow(row);
  }

  async findAppByApiKey(apiKey: string): Promise<App | undefined> {
    const [row] = await this.db.query<AppSqlRow>(`SELECT ${appColumns} FROM app WHERE api_key = ?`, [apiKey]);
    return row && appFromRow(row);
  }

  async setAppSecretHash(id: string, hash: string): Promise<boolean> {
    const result = await this.db.execute("UPDATE app SET api_secret_hash = ? WHERE id = ?", [hash, id]);
    return result.affectedRows === 1;
  }

  async createAccount(next: NewAccount): Promise<Account> {
    await this.insert(
      "INSERT INTO users (app_id, id, username, email, display_name, password_hash) VALUES (?, ?, ?, ?, ?, ?)",
      [next.appId, next.id, next.username, next.email, next.displayName, next.passwordHash],
    );
    return (await this.findAccount(next.appId, next.id))!;
  }

  async findAccount(appId: string, id: string): Promise<Account | undefined> {
    const [row] = await this.db.query<AccountSqlRow>(`SELECT ${accountColumns} FROM users WHERE app_id = ? AND id = ?`, [appId, id]);
    return row && accountFromRow(row);
  }

  async findAccountByUsername(appId: string, username: string): Promise<Account | undefined> {
    const [row] = await this.db.query<AccountSqlRow>(`SELECT ${accountColumns} FROM users WHERE app_id = ? AND username = ?`, [appId, username]);
    return row && accountFromRow(row);
  }

  async findAccountByEmail(appId: string, email: string): Promise<Account | undefined> {
    const [row] = await this.db.query<AccountSqlRow>(`SELECT ${accountColumns} FROM users WHERE app_id = ? AND email = ?`, [appId, email]);
    return row && accountFromRow(row);
  }

  async setPasswordHash(appId: string, id: string, hash: string): Promise<boolean> {
    const result = await this.db.execute("UPDATE users SET password_hash = ? WHERE app_id = ? AND id = ?", [hash, appId, id]);
    return result.affectedRows === 1;
  }
}
