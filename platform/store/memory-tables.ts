// The in-memory twin of the MySQL schema (migrations/), for all-in-one mode and unit tests. Several services'
// in-memory repositories share one instance, as their MySQL repositories share one database.

/** A row of `app`. */
export interface AppRow {
  id: string;
  name: string;
  apiKey: string;
  apiSecretHash: string;
  createdAt: Date;
}

/** A row of `users`. */
export interface UserRow {
  appId: string;
  id: string;
  username: string;
  email: string | null;
  displayName: string;
  avatarUrl: string;
  passwordHash: string;
  createdAt: Date;
  updatedAt: Date;
}

/** A row of `refresh_tokens`. */
export interface RefreshTokenRow {
  id: string;
  appId: string;
  userId: string;
  deviceId: string;
  deviceName: string;
  platform: number;
  familyId: string;
  tokenHash: string;
  createdAt: Date;
  expiresAt: Date;
  usedAt: Date | null;
  revokedAt: Date | null;
}

/** The tables; later issues add theirs here as their repositories need them. */
export class MemoryTables {
  readonly apps = new Map<string, AppRow>();
  readonly users = new Map<string, UserRow>();
  /** Keyed by token hash, as the unique key in MySQL. */
  readonly refreshTokens = new Map<string, RefreshTokenRow>();
}

/**
 * How MySQL's utf8mb4_unicode_ci compares text, for the in-memory twin: case- and accent-insensitive,
 * so uniqueness and prefix search agree between the two adapters.
 */
export function collationKey(text: string): string {
  return text.normalize("NFD").replace(/\p{Diacritic}/gu, "").toLowerCase();
}
