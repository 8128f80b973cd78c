import type { RowDataPacket } from "mysql2/promise";
import type { MemoryTables, RefreshTokenRow } from "../../platform/store/memory-tables.js";
import type { SqlDatabase } from "../../platform/store/sql.js";

/** A stored refresh token (only its SHA-256 hash is kept; the token itself exists only at the client). */
export type RefreshTokenRecord = Readonly<RefreshTokenRow>;

/** A new token: everything but the times the store sets. */
export type NewRefreshToken = Omit<RefreshTokenRecord, "createdAt" | "usedAt" | "revokedAt">;

/** A signed-in device, derived from its live refresh tokens. */
export interface DeviceSession {
  readonly deviceId: string;
  readonly deviceName: string;
  readonly platform: number;
  readonly lastActiveAt: Date;
}

/**
 * Refresh tokens of one-time use, grouped in families (one sign-in chain). consume() is atomic: of concurrent uses
 * of one token exactly one is the first, so a replayed token is always recognised.
 */
export interface RefreshTokenStore {
  insert(token: NewRefreshToken): Promise<void>;
  /** Marks the token used; returns it as stored and whether this was its first use, or undefined if unknown. */
  consume(tokenHash: string, now: Date): Promise<{ record: RefreshTokenRecord; firstUse: boolean } | undefined>;
  /** Revokes every token of a family (after a replay); returns how many were live. */
  revokeFamily(familyId: string, now: Date): Promise<number>;
  /** Revokes one device's tokens (Logout, RevokeDevice). */
  revokeDevice(appId: string, userId: string, deviceId: string, now: Date): Promise<number>;
  /** Revokes all of a user's tokens (Logout of every device). */
  revokeUser(appId: string, userId: string, now: Date): Promise<number>;
  /** Devices with an unrevoked, unexpired, unused token, most recently active first. */
  devices(appId: string, userId: string, now: Date): Promise<DeviceSession[]>;
}

/** The in-memory RefreshTokenStore over the shared tables. */
export class MemoryRefreshTokenStore implements RefreshTokenStore {
  constructor(private readonly tables: MemoryTables) {}

  async insert(token: NewRefreshToken): Promise<void> {
    if (this.tables.refreshTokens.has(token.tokenHash)) throw new Error("duplicate refresh token hash");
    this.tables.refreshTokens.set(token.tokenHash, { ...token, createdAt: new Date(), usedAt: null, revokedAt: null });
  }

  async consume(tokenHash: string, now: Date): Promise<{ record: RefreshTokenRecord; firstUse: boolean } | undefined> {
    const row = this.tables.refreshTokens.get(tokenHash);
    if (row === undefined) return undefined;
    const firstUse = row.usedAt === null;
    if (firstUse) row.usedAt = now;
    return { record: { ...row }, firstUse };
  }

  private revokeWhere(match: (row: RefreshTokenRow) => boolean, now: Date): number {
    let count = 0;
    for (const row of this.tables.refreshTokens.values()) {
      if (match(row) && row.revokedAt === null) {
        row.revokedAt = now;
        count++;
      }
    }
    return count;
  }

  async revokeFamily(familyId: string, now: Date): Promise<number> {
    return this.revokeWhere((r) => r.familyId === familyId, now);
  }

  async revokeDevice(appId: string, userId: string, deviceId: string, now: Date): Promise<number> {
    return this.revokeWhere((r) => r.appId === appId && r.userId === userId && r.deviceId === deviceId, now);
  }

  async revokeUser(appId: string, userId: string, now: Date): Promise<number> {
    return this.revokeWhere((r) => r.appId === appId && r.userId === userId, now);
  }

  async devices(appId: string, userId: string, now: Date): Promise<DeviceSession[]> {
    const byDevice = new Map<string, DeviceSession>();
    for (const r of this.tables.refreshTokens.values()) {
      if (r.appId !== appId || r.userId !== userId || r.revokedAt !== null || r.usedAt !== null || r.expiresAt <= now) continue;
      const seen = byDevice.get(r.deviceId);
      if (seen === undefined || seen.lastActiveAt < r.createdAt) {
        byDevice.set(r.deviceId, { deviceId: r.deviceId, deviceName: r.deviceName, platform: r.platform, lastActiveAt: r.createdAt });
      }
    }
    return [...byDevice.values()].sort((a, b) => b.lastActiveAt.getTime() - a.lastActiveAt.getTime());
  }
}

interface TokenSqlRow extends RowDataPacket {
  id: string;
  app_id: string;
  user_id: string;
  device_id: string;
  device_name: string;
  platform: number;
  family_id: string;
  token_hash: string;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
  revoked_at: Date | null;
}

function fromRow(r: TokenSqlRow): RefreshTokenRecord {
  return {
    id: r.id,
    appId: r.app_id,
    userId: r.user_id,
    deviceId: r.device_id,
    deviceName: r.device_name,
    platform: r.platform,
    familyId: r.family_id,
    tokenHash: r.token_hash,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    usedAt: r.used_at,
    revokedAt: r.revoked_at,
  };
}

/** The MySQL RefreshTokenStore over `refresh_tokens`. */
export class SqlRefreshTokenStore implements RefreshTokenStore {
  constructor(private readonly db: SqlDatabase) {}

  async insert(t: NewRefreshToken): Promise<void> {
    await this.db.execute(
      `INSERT INTO refresh_tokens (id, app_id, user_id, device_id, device_name, platform, family_id, token_hash, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [t.id, t.appId, t.userId, t.deviceId, t.deviceName, t.platform, t.familyId, t.tokenHash, t.expiresAt],
    );
  }

  async consume(tokenHash: string, now: Date): Promise<{ record: RefreshTokenRecord; firstUse: boolean } | undefined> {
    // The conditional UPDATE is the atomic step: only one of concurrent consumers changes the row.
    const result = await this.db.execute("UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL", [now, tokenHash]);
    const [row] = await this.db.query<TokenSqlRow>("SELECT * FROM refresh_tokens WHERE token_hash = ?", [tokenHash]);
    return row === undefined ? undefined : { record: fromRow(row), firstUse: result.affectedRows === 1 };
  }

  private async revoke(where: string, params: string[], now: Date): Promise<number> {
    const result = await this.db.execute(`UPDATE refresh_tokens SET revoked_at = ? WHERE ${where} AND revoked_at IS NULL`, [now, ...params]);
    return result.affectedRows;
  }

  revokeFamily(familyId: string, now: Date): Promise<number> {
    return this.revoke("family_id = ?", [familyId], now);
  }

  revokeDevice(appId: string, userId: string, deviceId: string, now: Date): Promise<number> {
    return this.revoke("app_id = ? AND user_id = ? AND device_id = ?", [appId, userId, deviceId], now);
  }

  revokeUser(appId: string, userId: string, now: Date): Promise<number> {
    return this.revoke("app_id = ? AND user_id = ?", [appId, userId], now);
  }

  async devices(appId: string, userId: string, now: Date): Promise<DeviceSession[]> {
    const rows = await this.db.query<RowDataPacket>(
      `SELECT t.device_id, t.device_name, t.platform, t.created_at FROM refresh_tokens t
       JOIN (SELECT device_id, MAX(created_at) AS latest FROM refresh_tokens
             WHERE app_id = ? AND user_id = ? AND revoked_at IS NULL AND used_at IS NULL AND expires_at > ?
             GROUP BY device_id) d ON d.device_id = t.device_id AND d.latest = t.created_at
       WHERE t.app_id = ? AND t.user_id = ? AND t.revoked_at IS NULL AND t.used_at IS NULL AND t.expires_at > ?
       ORDER BY t.created_at DESC`,
      [appId, userId, now, appId, userId, now],
    );
    return rows.map((r) => ({ deviceId: r.device_id, deviceName: r.device_name, platform: r.platform, lastActiveAt: r.created_at }));
  }
}
