import type { RowDataPacket } from "mysql2/promise";
import { collationKey, type MemoryTables, type UserRow } from "../../platform/store/memory-tables.js";
import type { SqlDatabase, SqlValue } from "../../platform/store/sql.js";

/** A profile as the user service serves it (the users table without credentials). */
export interface Profile {
  readonly appId: string;
  readonly id: string;
  readonly username: string;
  readonly email: string | null;
  readonly displayName: string;
  readonly avatarUrl: string;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** The fields UpdateProfile may change; absent ones stay as they are. */
export interface ProfileChanges {
  readonly displayName?: string;
  readonly avatarUrl?: string;
}

/** A page of search results and where the next page starts. */
export interface ProfilePage {
  readonly profiles: readonly Profile[];
  /** The username to continue after, or undefined on the last page. */
  readonly nextAfter: string | undefined;
}

/** The user service's storage of profiles; every call is scoped to one app. */
export interface ProfileStore {
  get(appId: string, id: string): Promise<Profile | undefined>;
  /** The profiles found, in the order of `ids`; unknown ids (or another app's) are left out. */
  batchGet(appId: string, ids: readonly string[]): Promise<Profile[]>;
  /** Applies the changes and returns the profile after them, or undefined when there is no such user. */
  update(appId: string, id: string, changes: ProfileChanges): Promise<Profile | undefined>;
  /**
   * Users whose username or display name starts with `prefix` (case- and accent-insensitive),
   * by username, at most `limit`, after the username `after` when continuing.
   */
  search(appId: string, prefix: string, limit: number, after?: string): Promise<ProfilePage>;
}

function profile(row: UserRow): Profile {
  const { appId, id, username, email, displayName, avatarUrl, createdAt, updatedAt } = row;
  return { appId, id, username, email, displayName, avatarUrl, createdAt, updatedAt };
}

/** The in-memory ProfileStore over the shared tables. */
export class MemoryProfileStore implements ProfileStore {
  constructor(private readonly tables: MemoryTables) {}

  async get(appId: string, id: string): Promise<Profile | undefined> {
    const row = this.tables.users.get(id);
    return row?.appId === appId ? profile(row) : undefined;
  }

  async batchGet(appId: string, ids: readonly string[]): Promise<Profile[]> {
    return ids.flatMap((id) => {
      const row = this.tables.users.get(id);
      return row?.appId === appId ? [profile(row)] : [];
    });
  }

  async update(appId: string, id: string, changes: ProfileChanges): Promise<Profile | undefined> {
    const row = this.tables.users.get(id);
    if (row?.appId !== appId) return undefined;
    if (changes.displayName !== undefined) row.displayName = changes.displayName;
    if (changes.avatarUrl !== undefined) row.avatarUrl = changes.avatarUrl;
    row.updatedAt = new Date();
    return profile(row);
  }

  async search(appId: string, prefix: string, limit: number, after?: string): Promise<ProfilePage> {
    const key = collationKey(prefix);
    const afterKey = after === undefined ? undefined : collationKey(after);
    const matches = [...this.tables.users.values()]
      .filter((r) => r.appId === appId)
      .filter((r) => collationKey(r.username).startsWith(key) || collationKey(r.displayName).startsWith(key))
      .filter((r) => afterKey === undefined || collationKey(r.username) > afterKey)
      .sort((a, b) => (collationKey(a.username) < collationKey(b.username) ? -1 : 1));
    const page = matches.slice(0, limit).map(profile);
    return { profiles: page, nextAfter: matches.length > limit ? page[page.length - 1]?.username : undefined };
  }
}

interface ProfileSqlRow extends RowDataPacket {
  app_id: string;
  id: string;
  username: string;
  email: string | null;
  display_name: string;
  avatar_url: string;
  created_at: Date;
  updated_at: Date;
}

const columns = "app_id, id, username, email, display_name, avatar_url, created_at, updated_at";

function fromRow(r: ProfileSqlRow): Profile {
  return {
    appId: r.app_id,
    id: r.id,
    username: r.username,
    email: r.email,
    displayName: r.display_name,
    avatarUrl: r.avatar_url,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** Escapes LIKE's wildcards so a search for "a_b" matches only that text. */
function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The MySQL ProfileStore over the `users` table. */
export class SqlProfileStore implements ProfileStore {
  constructor(private readonly db: SqlDatabase) {}

  async get(appId: string, id: string): Promise<Profile | undefined> {
    const [row] = await this.db.query<ProfileSqlRow>(`SELECT ${columns} FROM users WHERE app_id = ? AND id = ?`, [appId, id]);
    return row && fromRow(row);
  }

  async batchGet(appId: string, ids: readonly string[]): Promise<Profile[]> {
    if (ids.length === 0) return [];
    const rows = await this.db.query<ProfileSqlRow>(
      `SELECT ${columns} FROM users WHERE app_id = ? AND id IN (${ids.map(() => "?").join(", ")})`,
      [appId, ...ids],
    );
    const byId = new Map(rows.map((r) => [r.id, fromRow(r)]));
    return ids.flatMap((id) => (byId.has(id) ? [byId.get(id)!] : []));
  }

  async update(appId: string, id: string, changes: ProfileChanges): Promise<Profile | undefined> {
    const sets: string[] = ["updated_at = CURRENT_TIMESTAMP(3)"];
    const params: SqlValue[] = [];
    if (changes.displayName !== undefined) {
      sets.push("display_name = ?");
      params.push(changes.displayName);
    }
    if (changes.avatarUrl !== undefined) {
      sets.push("avatar_url = ?");
      params.push(changes.avatarUrl);
    }
    const result = await this.db.execute(`UPDATE users SET ${sets.join(", ")} WHERE app_id = ? AND id = ?`, [...params, appId, id]);
    if (result.affectedRows === 0) return undefined;
    return this.get(appId, id);
  }

  async search(appId: string, prefix: string, limit: number, after?: string): Promise<ProfilePage> {
    const like = likePrefix(prefix);
    const rows = await this.db.query<ProfileSqlRow>(
      `SELECT ${columns} FROM users
       WHERE app_id = ? AND (username LIKE ? OR display_name LIKE ?) ${after === undefined ? "" : "AND username > ?"}
       ORDER BY username LIMIT ?`,
      after === undefined ? [appId, like, like, limit + 1] : [appId, like, like, after, limit + 1],
    );
    const page = rows.slice(0, limit).map(fromRow);
    return { profiles: page, nextAfter: rows.length > limit ? page[page.length - 1]?.username : undefined };
  }
}
